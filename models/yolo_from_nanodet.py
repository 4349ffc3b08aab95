"""A YOLOv8-layout detector made from NanoDet, for testing vigil's YOLO
decoding on a real model: NanoDet's float graph with its box decoding
appended, so that it answers as a YOLOv8 export does.

    python yolo_from_nanodet.py SRC_DIR OUT.onnx

SRC_DIR holds nanodet.json and nanodet.bin as the npm package has them
(models/fetch.py passes it); the float NanoDet is made from them as
nanodet.py makes it.

Input `images` [batch, 3, 416, 416] (NanoDet's: BGR, (x − mean) / std,
letterboxed; the manifest says so); output `output0` [batch, 84, 3549]:
per anchor (every cell of strides 8, 16 and 32), box centre x, y, width and
height in input pixels, then the 80 class scores (sigmoid), as YOLOv8 and
YOLO11 exports give them. The boxes are NanoDet's DFL distances decoded in
the graph (softmax over 11 bins, expected bin × stride, from the cell
centre), so vigil's YOLO decoding of this model must find exactly what its
NanoDet decoding finds on the float model. Checked with ONNX Runtime
against the same decoding in numpy.
"""

import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SIDE = 416
STRIDES = (8, 16, 32)
BINS = 11
CLASSES = 80


def build(src: str, out: str) -> None:
    model = onnx.load(src)
    graph = model.graph
    inits = []
    nodes = []

    made = set()

    def const(name, value):
        if name not in made:
            made.add(name)
            inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    bins = const("yolo_bins", np.arange(BINS, dtype=np.float32).reshape(BINS, 1))
    half = const("yolo_half", np.float32(0.5))
    per_stride = []
    for s in STRIDES:
        w = SIDE // s
        n = w * w
        k = str(s)
        shape = const(f"yolo_dist_shape_{k}", np.array([0, n, 4, BINS], np.int64))
        flat = const(f"yolo_flat_shape_{k}", np.array([0, n, 4], np.int64))
        stride = const(f"yolo_stride_{k}", np.float32(s))
        i = np.arange(n)
        centres = np.stack([(i % w + 0.5) * s, (i // w + 0.5) * s], axis=1).astype(np.float32)
        c = const(f"yolo_centres_{k}", centres)
        starts = lambda v: const(f"yolo_{v}_{k}", np.array([v], np.int64))  # noqa: E731
        axis = const(f"yolo_axis_{k}", np.array([2], np.int64))
        nodes += [
            helper.make_node("Reshape", [f"boxes_{k}", shape], [f"yolo_d4_{k}"]),
            helper.make_node("Softmax", [f"yolo_d4_{k}"], [f"yolo_p_{k}"], axis=-1),
            helper.make_node("MatMul", [f"yolo_p_{k}", bins], [f"yolo_e_{k}"]),
            helper.make_node("Reshape", [f"yolo_e_{k}", flat], [f"yolo_e3_{k}"]),
            helper.make_node("Mul", [f"yolo_e3_{k}", stride], [f"yolo_dist_{k}"]),
            helper.make_node("Slice", [f"yolo_dist_{k}", starts(0), starts(2), axis], [f"yolo_lt_{k}"]),
            helper.make_node("Slice", [f"yolo_dist_{k}", starts(2), starts(4), axis], [f"yolo_rb_{k}"]),
            helper.make_node("Sub", [c, f"yolo_lt_{k}"], [f"yolo_xy0_{k}"]),
            helper.make_node("Add", [c, f"yolo_rb_{k}"], [f"yolo_xy1_{k}"]),
            helper.make_node("Add", [f"yolo_xy0_{k}", f"yolo_xy1_{k}"], [f"yolo_sum_{k}"]),
            helper.make_node("Mul", [f"yolo_sum_{k}", half], [f"yolo_cxy_{k}"]),
            helper.make_node("Sub", [f"yolo_xy1_{k}", f"yolo_xy0_{k}"], [f"yolo_wh_{k}"]),
            helper.make_node(
                "Concat", [f"yolo_cxy_{k}", f"yolo_wh_{k}", f"scores_{k}"], [f"yolo_rows_{k}"], axis=2
            ),
        ]
        per_stride.append(f"yolo_rows_{k}")
    nodes += [
        helper.make_node("Concat", per_stride, ["yolo_all"], axis=1),
        helper.make_node("Transpose", ["yolo_all"], ["output0"], perm=[0, 2, 1]),
    ]
    graph.node.extend(nodes)
    graph.initializer.extend(inits)
    anchors = sum((SIDE // s) ** 2 for s in STRIDES)
    out_info = helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", 4 + CLASSES, anchors])
    del graph.output[:]
    graph.output.append(out_info)
    dims = graph.input[0].type.tensor_type.shape.dim
    dims[2].ClearField("dim_param")
    dims[2].dim_value = SIDE
    dims[3].ClearField("dim_param")
    dims[3].dim_value = SIDE
    # The input keeps its name inside the graph; YOLO exports call it images.
    old = graph.input[0].name
    for node in graph.node:
        for j, name in enumerate(node.input):
            if name == old:
                node.input[j] = "images"
    graph.input[0].name = "images"
    model.producer_name = "vigil models/yolo_from_nanodet.py"
    onnx.checker.check_model(model)
    onnx.save(model, out)
    check(src, out)


def check(src: str, out: str) -> None:
    """output0 is NanoDet's outputs decoded the same way in numpy."""
    import onnxruntime as ort

    rng = np.random.default_rng(3)
    x = rng.normal(0.0, 1.0, size=(2, 3, SIDE, SIDE)).astype(np.float32)
    nano = ort.InferenceSession(src, providers=["CPUExecutionProvider"])
    yolo = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
    names = [f"scores_{s}" for s in STRIDES] + [f"boxes_{s}" for s in STRIDES]
    got = dict(zip(names, nano.run(names, {"image": x})))
    (y,) = yolo.run(["output0"], {"images": x})
    rows = []
    for s in STRIDES:
        w = SIDE // s
        i = np.arange(w * w)
        cx, cy = (i % w + 0.5) * s, (i // w + 0.5) * s
        d = got[f"boxes_{s}"].reshape(2, -1, 4, BINS)
        d = np.exp(d - d.max(axis=3, keepdims=True))
        d = (d / d.sum(axis=3, keepdims=True) * np.arange(BINS)).sum(axis=3) * s
        x0, y0, x1, y1 = cx - d[..., 0], cy - d[..., 1], cx + d[..., 2], cy + d[..., 3]
        box = np.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], axis=2)
        rows.append(np.concatenate([box, got[f"scores_{s}"]], axis=2))
    want = np.concatenate(rows, axis=1).transpose(0, 2, 1)
    if y.shape != want.shape or not np.allclose(y, want, atol=1e-3):
        raise SystemExit(f"yolo_from_nanodet: output0 differs from NanoDet decoded (shape {y.shape})")


def main() -> None:
    import os
    import tempfile

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import nanodet

    src, out = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as tmp:
        f32 = os.path.join(tmp, "nanodet.onnx")
        nanodet.build(src, f32)
        build(f32, out)
    print(f"yolo_from_nanodet: made {out}")


if __name__ == "__main__":
    main()
