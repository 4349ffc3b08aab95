"""The quiet-camera benchmark's clip and its peer (tests/bench/gating.sh).

    python gating.py clip VTEST OUT.avi [S]  # the quiet clip, and its truth (S s in)
    python gating.py loop CLIP MODEL THREADS # the plain loop: presence per frame
    python gating.py tracks EVENTS SECONDS   # vigil's presence per frame, from its tracks
    python gating.py score TRUTH FRAMES      # presence F1 of frames against truth
    python gating.py agree REFERENCE FRAMES  # presence F1 of frames against other frames
    python gating.py count EVENTS            # person tracks (their start records)

The clip: vtest.avi's walkway emptied (the per-pixel median of 120 of its
frames: the pedestrians go, the parked van and car stay), held still for
30 s, then 10 s of the real footage (a visit), four times over, ending
still: 190 s at 10 fps, 79 % still. Written as MJPEG in AVI, with
OUT.truth.txt beside it: one line per second of clip, 1 where people are
in view. With S, the same clip begins S seconds in and wraps round (the
live benchmark's cameras, whose visits do not all come at once).

The loop: what a user would write without vigil. OpenCV decodes every
frame, every second one (5 of 10 fps) is letterboxed to 416x416 with
NanoDet's normalisation and run through the same nanodet.onnx on
onnxruntime; a person is present when a cell's person score reaches 0.4
(vigil's threshold for people). Prints `t present` per analysed frame.
"""

import sys

import numpy as np

SIDE = 416
MEAN = np.array([103.53, 116.28, 123.675], np.float32)
STD = np.array([57.375, 57.12, 58.395], np.float32)
STILL, VISIT, VISITS, FPS = 30, 10, 4, 10


def clip(vtest: str, out: str, offset: int = 0) -> None:
    import cv2

    cap = cv2.VideoCapture(vtest)
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    if len(frames) < VISITS * VISIT * FPS:
        sys.exit(f"gating.py: {vtest}: {len(frames)} frames")
    sample = np.stack(frames[:: max(1, len(frames) // 120)])
    empty = np.median(sample, axis=0).astype(np.uint8)
    h, w = empty.shape[:2]
    sequence, truth = [], []
    for v in range(VISITS):
        sequence += [empty] * (STILL * FPS)
        truth += [0] * STILL
        start = v * VISIT * FPS
        sequence += frames[start : start + VISIT * FPS]
        truth += [1] * VISIT
    sequence += [empty] * (STILL * FPS)
    truth += [0] * STILL
    offset %= len(truth)
    sequence = sequence[offset * FPS :] + sequence[: offset * FPS]
    truth = truth[offset:] + truth[:offset]
    writer = cv2.VideoWriter(out, cv2.VideoWriter_fourcc(*"MJPG"), FPS, (w, h))
    for f in sequence:
        writer.write(f)
    writer.release()
    with open(out.rsplit(".", 1)[0] + ".truth.txt", "w") as t:
        t.write("".join(f"{x}\n" for x in truth))


def letterbox(frame) -> np.ndarray:
    import cv2

    h, w = frame.shape[:2]
    scale = SIDE / max(w, h)
    nw, nh = round(w * scale), round(h * scale)
    img = np.full((SIDE, SIDE, 3), 114, np.uint8)
    dx, dy = (SIDE - nw) // 2, (SIDE - nh) // 2
    img[dy : dy + nh, dx : dx + nw] = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_LINEAR)
    x = (img.astype(np.float32) - MEAN) / STD  # OpenCV frames are BGR already
    return x.transpose(2, 0, 1)[None]


def loop(path: str, model: str, threads: int) -> None:
    import cv2
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    scores = [o.name for o in session.get_outputs() if o.name.startswith("scores")]
    cap = cv2.VideoCapture(path)
    fps = cap.get(cv2.CAP_PROP_FPS) or FPS
    step = max(1, round(fps / 5))
    i = 0
    out = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if i % step == 0:
            res = session.run(scores, {"image": letterbox(frame)})
            person = max(float(r[..., 0].max()) for r in res)
            out.append(f"{i / fps:.3f} {int(person >= 0.4)}")
        i += 1
    print("\n".join(out))


def tracks(events: str, seconds: float) -> None:
    """vigil's person presence at each analysed time (5 fps): a person
    track's object event covers it."""
    import json

    spans = []
    for line in open(events):
        r = json.loads(line)
        if r.get("kind") == "object" and r.get("phase") == "end" and "person" in r.get("labels", []):
            spans.append((r["start"], r["end"]))
    out = []
    for k in range(int(seconds * 5)):
        t = k / 5
        out.append(f"{t:.3f} {int(any(a <= t < b for a, b in spans))}")
    print("\n".join(out))


def score(truth_file: str, frames_file: str) -> None:
    truth = [int(x) for x in open(truth_file).read().split()]
    tp = fp = fn = 0
    for line in open(frames_file):
        t, p = line.split()
        s = int(float(t))
        if s >= len(truth):
            continue
        want, got = truth[s], int(p)
        tp += want and got
        fp += got and not want
        fn += want and not got
    f1 = 2 * tp / max(1, 2 * tp + fp + fn)
    print(f"{f1:.3f} {tp} {fp} {fn}")


def agree(reference: str, frames_file: str) -> None:
    """Presence F1 of FRAMES against REFERENCE, both `t present` per
    analysed frame, matched by time (to the millisecond)."""

    def read(path):
        return {round(float(t), 3): int(p) for t, p in (line.split() for line in open(path) if line.strip())}

    ref, got = read(reference), read(frames_file)
    tp = fp = fn = 0
    for t, want in ref.items():
        p = got.get(t, 0)
        tp += want and p
        fp += p and not want
        fn += want and not p
    f1 = 2 * tp / max(1, 2 * tp + fp + fn)
    print(f"{f1:.3f} {tp} {fp} {fn}")


def count(events: str) -> None:
    import json

    n = 0
    for line in open(events):
        r = json.loads(line)
        n += r.get("kind") == "object" and r.get("phase") == "start" and "person" in r.get("labels", [])
    print(n)


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "clip":
        clip(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 0)
    elif cmd == "loop":
        loop(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif cmd == "tracks":
        tracks(sys.argv[2], float(sys.argv[3]))
    elif cmd == "score":
        score(sys.argv[2], sys.argv[3])
    elif cmd == "agree":
        agree(sys.argv[2], sys.argv[3])
    elif cmd == "count":
        count(sys.argv[2])
    else:
        sys.exit(__doc__)
