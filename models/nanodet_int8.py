"""NanoDet (COCO-80) with its convolutions in int8: static quantisation
calibrated on frames of shared media, checked against the float model's
detections on other frames of the same media, at each input side vigil
feeds (416, and 320 for `detector_input = 320`).

    python nanodet_int8.py SRC_DIR OUT.onnx CLIP...

SRC_DIR holds nanodet.json and nanodet.bin as the npm package has them;
each CLIP is a video of ../shared/media (models/fetch.py passes the ones the
manifest names). Run by models/fetch.py inside the conversion venv. What it
does:

1. The float model, made as nanodet.py makes it.
2. ONNX Runtime's pre-processing (shape inference, folding), then static
   quantisation in QDQ form: the weights of every Conv in int8 per output
   channel, its input activations in uint8 per tensor, ranges by min/max
   over the calibration frames. Only Conv is quantised: with the
   element-wise and pooling nodes quantised too, the class scores drift far
   off the float model's.
3. Calibration frames: from each clip, one frame every `CALIBRATE_EVERY`
   seconds, letterboxed as vigil does it (aspect kept, centred, grey 114
   borders, BGR, (x − mean) / std), at every side in SIDES.
4. Check, on frames between the calibration frames, at every side in
   SIDES: the float and int8 detections (score ≥ 0.4, per-class
   non-maximum suppression at IoU 0.5) are matched by IoU; the share of
   float detections the int8 model finds, their mean IoU and class
   agreement are printed, and the file is refused below the floors in
   FLOORS at any side.

Min/max calibration is deterministic, but the float model's node order is
not (see nanodet.py), so neither is this file's sha256; a stamp marks it
current.
"""

import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nanodet  # noqa: E402

# The input sides vigil feeds: the default, and near cameras'.
SIDES = (416, 320)
PAD = 114
MEAN = np.array([103.53, 116.28, 123.675], np.float32)
STD = np.array([57.375, 57.12, 58.395], np.float32)
STRIDES = (8, 16, 32)
BINS = 11
# Calibration frames every this many seconds of each clip; the check takes
# the frames half-way between them.
CALIBRATE_EVERY = 1.0
# Detections compared in the check.
THRESHOLD = 0.4
NMS_IOU = 0.5
MATCH_IOU = 0.5
# The least the int8 model must agree with the float one to be installed.
FLOORS = {"found": 0.85, "kept": 0.85, "mean_iou": 0.85, "same_class": 0.95}


def clip_size(path: str) -> tuple[int, int, float]:
    """Width, height and frames per second of a clip's picture."""
    out = subprocess.run(["gst-discoverer-1.0", path], capture_output=True, text=True, check=True).stdout
    width = height = 0
    fps = 0.0
    for line in out.splitlines():
        key, _, value = line.strip().partition(": ")
        if key == "Width" and not width:
            width = int(value)
        elif key == "Height" and not height:
            height = int(value)
        elif key == "Frame rate" and not fps:
            num, _, den = value.partition("/")
            fps = float(num) / float(den or 1)
    if not (width and height and fps):
        raise SystemExit(f"nanodet_int8: cannot read the picture's size and rate of {path}")
    return width, height, fps


def letterboxed_frames(path: str, every: float, offset: float, side: int) -> list[np.ndarray]:
    """Frames at offset, offset + every, … seconds, each letterboxed into
    side × side BGR as vigil does it."""
    width, height, fps = clip_size(path)
    scale = side / max(width, height)
    w, h = round(width * scale), round(height * scale)
    dx, dy = (side - w) // 2, (side - h) // 2
    caps = f"video/x-raw,format=BGR,width={w},height={h},pixel-aspect-ratio=1/1"
    cmd = ["gst-launch-1.0", "-q", "filesrc", f"location={path}", "!", "decodebin", "!", "videoconvert", "!",
           "videoscale", "!", caps, "!", "fdsink", "fd=1"]
    stride = (w * 3 + 3) // 4 * 4  # GStreamer pads rows to 4 bytes
    size = stride * h
    frames = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as p:
        assert p.stdout is not None
        index, due = 0, offset
        while True:
            raw = p.stdout.read(size)
            if len(raw) < size:
                break
            if index / fps + 0.5 / fps >= due:
                picture = np.frombuffer(raw, np.uint8).reshape(h, stride)[:, : w * 3].reshape(h, w, 3)
                frame = np.full((side, side, 3), PAD, np.uint8)
                frame[dy : dy + h, dx : dx + w] = picture
                frames.append(frame)
                due += every
            index += 1
    if not frames:
        raise SystemExit(f"nanodet_int8: no frames decoded from {path}")
    return frames


def tensor(frame: np.ndarray) -> np.ndarray:
    return ((frame.astype(np.float32) - MEAN) / STD).transpose(2, 0, 1)[None]


def quantise(f32: str, out: str, calibration: list[np.ndarray], tmp: str) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Frames(CalibrationDataReader):
        def __init__(self) -> None:
            self.left = iter(calibration)

        def get_next(self):
            frame = next(self.left, None)
            return None if frame is None else {"image": tensor(frame)}

    pre = os.path.join(tmp, "pre.onnx")
    quant_pre_process(f32, pre, skip_symbolic_shape=True)
    quantize_static(
        pre,
        out,
        Frames(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["Conv"],
    )


def detections(outputs: list[np.ndarray]) -> list[tuple[int, float, np.ndarray]]:
    """NanoDet's outputs of one frame as (class, score, [x0, y0, x1, y1])
    in input pixels, after per-class non-maximum suppression."""
    found = []
    for k, stride in enumerate(STRIDES):
        scores, boxes = outputs[k][0], outputs[3 + k][0]
        cells = round(scores.shape[0] ** 0.5)
        cell, cls = np.nonzero(scores >= THRESHOLD)
        if cell.size == 0:
            continue
        dist = boxes[cell].reshape(-1, 4, BINS)
        dist = np.exp(dist - dist.max(axis=2, keepdims=True))
        dist /= dist.sum(axis=2, keepdims=True)
        d = (dist * np.arange(BINS)).sum(axis=2) * stride
        cx = (cell % cells + 0.5) * stride
        cy = (cell // cells + 0.5) * stride
        corners = np.stack([cx - d[:, 0], cy - d[:, 1], cx + d[:, 2], cy + d[:, 3]], axis=1)
        found += [(int(c), float(scores[i, c]), b) for i, c, b in zip(cell, cls, corners)]
    kept = []
    for c in sorted({f[0] for f in found}):
        left = sorted((f for f in found if f[0] == c), key=lambda f: -f[1])
        while left:
            best = left.pop(0)
            kept.append(best)
            left = [f for f in left if iou(best[2], f[2]) <= NMS_IOU]
    return kept


def iou(a: np.ndarray, b: np.ndarray) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def compare(f32: str, int8: str, frames: list[np.ndarray]) -> dict:
    """How the int8 model's detections agree with the float model's."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    sessions = [ort.InferenceSession(p, options, providers=["CPUExecutionProvider"]) for p in (f32, int8)]
    names = [f"scores_{s}" for s in STRIDES] + [f"boxes_{s}" for s in STRIDES]
    total = {"float": 0, "int8": 0, "found": 0, "kept": 0, "pairs": 0, "same_class": 0, "iou": 0.0}
    for frame in frames:
        a, b = (detections(s.run(names, {"image": tensor(frame)})) for s in sessions)
        total["float"] += len(a)
        total["int8"] += len(b)
        # Each float detection's best int8 box, whatever its class.
        for c, _, box in a:
            ious = [(iou(box, o[2]), o[0]) for o in b]
            best, cls = max(ious, default=(0.0, -1))
            if best >= MATCH_IOU:
                total["pairs"] += 1
                total["iou"] += best
                total["same_class"] += cls == c
            total["found"] += any(o[0] == c and iou(box, o[2]) >= MATCH_IOU for o in b)
        total["kept"] += sum(any(o[0] == c and iou(box, o[2]) >= MATCH_IOU for o in a) for c, _, box in b)
    pairs = max(total["pairs"], 1)
    return {
        "frames": len(frames),
        "float": total["float"],
        "int8": total["int8"],
        "found": total["found"] / max(total["float"], 1),
        "kept": total["kept"] / max(total["int8"], 1),
        "mean_iou": total["iou"] / pairs,
        "same_class": total["same_class"] / pairs,
    }


def main() -> None:
    src, out, clips = sys.argv[1], sys.argv[2], sys.argv[3:]
    if not clips:
        raise SystemExit("nanodet_int8: no calibration clips given")
    calibration, held_out = [], {side: [] for side in SIDES}
    for clip in clips:
        for side in SIDES:
            calibration += letterboxed_frames(clip, CALIBRATE_EVERY, 0.0, side)
            held_out[side] += letterboxed_frames(clip, CALIBRATE_EVERY, CALIBRATE_EVERY / 2, side)
    low = []
    with tempfile.TemporaryDirectory() as tmp:
        f32 = os.path.join(tmp, "nanodet.onnx")
        nanodet.build(src, f32)
        quantise(f32, out, calibration, tmp)
        for side in SIDES:
            got = compare(f32, out, held_out[side])
            print(
                f"nanodet_int8: calibrated on {len(calibration)} frames; at {side} × {side}, on "
                f"{got['frames']} others, int8 found {got['found']:.3f} of the float model's {got['float']} "
                f"detections, {got['kept']:.3f} of its own {got['int8']} are the float model's, "
                f"mean IoU {got['mean_iou']:.3f}, same class {got['same_class']:.3f}"
            )
            low += [f"{k} at {side}" for k, floor in FLOORS.items() if got[k] < floor]
    if low:
        os.remove(out)
        raise SystemExit(f"nanodet_int8: below the floor in {', '.join(low)} (floors {FLOORS}); not installed")


if __name__ == "__main__":
    main()
