"""Writes tests/fixtures/yamnet_logmel.json: YAMNet's log-mel features of a
known signal, computed with TensorFlow's own ops the way YAMNet's
features.py computes them. The Rust front end (src/encode/logmel.rs) is
tested against it. Run once, in the conversion venv (it has tensorflow):

    ~/.cache/vigil/venv/bin/python models/yamnet_frontend.py tests/fixtures/yamnet_logmel.json
"""

import json
import sys

import numpy as np
import tensorflow as tf


def signal() -> np.ndarray:
    """0.1 s at 16 kHz: a 440 Hz tone, a 3 kHz tone and a chirp, integers
    mixed in so that the test can rebuild it exactly."""
    n = np.arange(1600, dtype=np.float64)
    x = 0.4 * np.sin(2 * np.pi * 440 * n / 16000) + 0.2 * np.sin(2 * np.pi * 3000 * n / 16000)
    x += 0.1 * np.sin(2 * np.pi * (200 + 20 * n / 16 ) * n / 16000)
    return x.astype(np.float32)


def main() -> None:
    x = signal()
    stft = tf.signal.stft(x, frame_length=400, frame_step=160, fft_length=512,
                          window_fn=tf.signal.hann_window, pad_end=False)
    magnitude = tf.abs(stft)
    weights = tf.signal.linear_to_mel_weight_matrix(
        num_mel_bins=64, num_spectrogram_bins=257, sample_rate=16000,
        lower_edge_hertz=125.0, upper_edge_hertz=7500.0)
    mel = tf.matmul(magnitude, weights)
    log_mel = tf.math.log(mel + 0.001).numpy()
    out = {
        "signal": "0.4 sin(2π·440 n/16000) + 0.2 sin(2π·3000 n/16000) + 0.1 sin(2π·(200 + 20 n/16) n/16000), n = 0..1599, f32",
        "frames": log_mel.round(5).tolist(),
    }
    with open(sys.argv[1], "w") as f:
        json.dump(out, f)
    print(f"{log_mel.shape[0]} frames of {log_mel.shape[1]} bands to {sys.argv[1]}")


if __name__ == "__main__":
    main()
