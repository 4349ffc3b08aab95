"""Writes tests/fixtures/whisper_logmel.json: Whisper's log-mel (the
formula of openai-whisper's audio.py: centred 400-point STFT every 160
samples, periodic Hann, power, librosa's Slaney mel filters, log10 floored
at max - 8, (x + 4) / 4, audio padded to 30 s) of a known signal, in numpy.
The Rust front end (src/encode/whisper_mel.rs) is tested against it. Run
once, in the conversion venv:

    ~/.cache/vigil/venv/bin/python models/whisper_frontend.py tests/fixtures/whisper_logmel.json
"""

import json
import sys

import numpy as np


def hz_to_mel(f):
    f = np.asarray(f, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, log_step = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / log_step, f / f_sp)


def mel_to_hz(m):
    m = np.asarray(m, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, log_step = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(log_step * (m - min_log_mel)), f_sp * m)


def mel_filters(sr=16000, n_fft=400, n_mels=80):
    """librosa.filters.mel(sr, n_fft, n_mels) with its defaults (Slaney)."""
    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sr / 2), n_mels + 2))
    diff = np.diff(edges)
    ramps = edges[:, None] - freqs[None, :]
    w = np.zeros((n_mels, len(freqs)))
    for i in range(n_mels):
        w[i] = np.maximum(0, np.minimum(-ramps[i] / diff[i], ramps[i + 2] / diff[i + 1]))
    return w * (2.0 / (edges[2 : n_mels + 2] - edges[:n_mels]))[:, None]


def log_mel(x):
    x = np.concatenate([x, np.zeros(480000, np.float32)])[:480000]
    padded = np.pad(x, (200, 200), mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)
    frames = np.stack([padded[i * 160 : i * 160 + 400] * window for i in range(3001)])
    power = (np.abs(np.fft.rfft(frames, n=400)) ** 2)[:-1]
    mel = mel_filters() @ power.T
    lm = np.log10(np.maximum(mel, 1e-10))
    lm = np.maximum(lm, lm.max() - 8.0)
    return (lm + 4.0) / 4.0


def main() -> None:
    n = np.arange(1600, dtype=np.float64)
    x = 0.4 * np.sin(2 * np.pi * 440 * n / 16000) + 0.2 * np.sin(2 * np.pi * 3000 * n / 16000)
    x += 0.1 * np.sin(2 * np.pi * (200 + 20 * n / 16) * n / 16000)
    lm = log_mel(x.astype(np.float32))
    out = {"signal": "as models/yamnet_frontend.py", "frames": lm[:, :14].T.round(5).tolist()}
    with open(sys.argv[1], "w") as f:
        json.dump(out, f)
    print(f"{len(out['frames'])} frames of 80 bands to {sys.argv[1]}")


if __name__ == "__main__":
    main()
