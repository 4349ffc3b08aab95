"""Whisper (CTranslate2 `model.bin`) to two ONNX graphs, built with the `onnx`
package alone: no torch, no transformers.

    python whisper.py SRC_DIR OUT_DIR

SRC_DIR holds model.bin, tokenizer.json and config.json (the tokens
Whisper suppresses), the last two copied beside the graphs. Run
by models/fetch.py in the conversion venv. Writes to OUT_DIR:

- `encoder.onnx`: `mel` f32 [batch, 80, 3000] (Whisper's log-mel, 30 s) →
  `hidden` f32 [batch, 1500, d], and each decoder layer's cross-attention
  keys and values, computed once per segment: `cross_k_N`, `cross_v_N`
  f32 [batch, heads, 1500, d/heads];
- `decoder.onnx`: `tokens` i64 [batch, new], the self-attention cache of
  the tokens before them `past_k_N`, `past_v_N` [batch, heads, past, d/heads]
  (past may be 0), and the cross keys and values → `logits` f32
  [batch, new, vocab] and the cache extended by the new tokens,
  `present_k_N`, `present_v_N`. Positions start at `past`; attention
  among the new tokens is causal.

The model file (binary version 6): u32 version; a string (u16 length with
a trailing NUL) naming the spec; u32 revision; u32 variables; per variable:
name, u8 rank, rank × u32 dims, u8 dtype (0 f32, 1 i8, 2 i16, 3 i32, 4 f16,
5 bf16), u32 bytes, data; then u32 aliases (name, target). Layers are
pre-norm, GELU, LayerNorm eps 1e-5; q, k, v are stacked in `linear_0`.
The weights are stored as f32 (CPU kernels for f16 are slow), but for the
token embedding, tied to the output projection and the largest tensor
(51864 x d): int8 with a scale per token, a quarter of the size, used by
Gather for the input and MatMulInteger for the logits. The result
is deterministic; vigil's tests check the transcripts it gives.
"""

import os
import re
import shutil
import struct
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# Query slices of the encoder's self-attention (1500 positions: 250 each).
ATTENTION_BLOCKS = 6

DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def read_model(path: str) -> dict:
    with open(path, "rb") as f:
        b = f.read()
    o = 0

    def u32():
        nonlocal o
        v = struct.unpack_from("<I", b, o)[0]
        o += 4
        return v

    def string():
        nonlocal o
        n = struct.unpack_from("<H", b, o)[0]
        o += 2
        s = b[o : o + n - 1].decode()
        o += n
        return s

    version = u32()
    if version != 6:
        raise SystemExit(f"whisper: model.bin version {version}, this converter reads 6")
    spec = string()
    if spec != "WhisperSpec":
        raise SystemExit(f"whisper: model.bin is a {spec}, not a WhisperSpec")
    u32()  # revision
    weights = {}
    for _ in range(u32()):
        name = string()
        rank = b[o]
        o += 1
        dims = struct.unpack_from(f"<{rank}I", b, o)
        o += 4 * rank
        dtype = b[o]
        o += 1
        size = u32()
        if dtype not in DTYPES:
            raise SystemExit(f"whisper: {name} has dtype {dtype}")
        weights[name] = np.frombuffer(b, DTYPES[dtype], size // np.dtype(DTYPES[dtype]).itemsize, o).reshape(dims)
        o += size
    for _ in range(u32()):
        alias, target = string(), string()
        weights[alias] = weights[target]
    return weights


class Graph:
    """A small builder: nodes, initializers, unique names."""

    def __init__(self, weights: dict):
        self.w = weights
        self.nodes = []
        self.inits = {}
        self.count = 0

    def name(self, hint: str) -> str:
        self.count += 1
        return f"{hint}_{self.count}"

    def const(self, value, hint="c") -> str:
        arr = np.asarray(value)
        name = self.name(hint)
        self.inits[name] = numpy_helper.from_array(arr, name)
        return name

    def weight(self, key: str, transpose=False) -> str:
        name = key.replace("/", ".") + (".T" if transpose else "")
        if name not in self.inits:
            arr = self.w[key].astype(np.float32)
            if transpose:
                arr = np.ascontiguousarray(arr.T)
            self.inits[name] = numpy_helper.from_array(arr, name)
        return name

    def op(self, op_type: str, inputs, n_out=1, **attrs):
        outs = [self.name(op_type.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, name=self.name(op_type), **attrs))
        return outs[0] if n_out == 1 else outs

    def linear(self, x: str, prefix: str, rows=None, scale=None) -> str:
        """x @ W^T + b for CTranslate2's [out, in] weight; `rows` picks a
        slice of the stacked outputs (q, k or v); `scale` multiplies the
        result, folded into the weights."""
        w = self.w[f"{prefix}/weight"].astype(np.float32)
        b = self.w.get(f"{prefix}/bias")
        b = None if b is None else b.astype(np.float32)
        if rows is not None:
            w = w[rows]
            b = None if b is None else b[rows]
        if scale is not None:
            w = w * np.float32(scale)
            b = None if b is None else b * np.float32(scale)
        wt = self.const(np.ascontiguousarray(w.T), prefix.replace("/", ".") + ".T")
        y = self.op("MatMul", [x, wt])
        if b is not None and np.any(b != 0):
            y = self.op("Add", [y, self.const(b, prefix.replace("/", ".") + ".b")])
        return y

    def layer_norm(self, x: str, prefix: str) -> str:
        g = self.weight(f"{prefix}/gamma")
        b = self.weight(f"{prefix}/beta")
        return self.op("LayerNormalization", [x, g, b], axis=-1, epsilon=1e-5)

    def gelu(self, x: str) -> str:
        # 0.5 x (1 + erf(x / sqrt 2)), as Whisper's nn.GELU().
        e = self.op("Erf", [self.op("Div", [x, self.const(np.float32(np.sqrt(2.0)))])])
        return self.op("Mul", [self.op("Mul", [x, self.const(np.float32(0.5))]), self.op("Add", [e, self.const(np.float32(1.0))])])

    def heads(self, x: str, n_heads: int, d_head: int) -> str:
        """[B, T, d] → [B, heads, T, d_head]."""
        r = self.op("Reshape", [x, self.const(np.array([0, 0, n_heads, d_head], np.int64))])
        return self.op("Transpose", [r], perm=[0, 2, 1, 3])

    def merge(self, x: str, d: int) -> str:
        """[B, heads, T, d_head] → [B, T, d]."""
        t = self.op("Transpose", [x], perm=[0, 2, 1, 3])
        return self.op("Reshape", [t, self.const(np.array([0, 0, d], np.int64))])

    def attend(self, q: str, k: str, v: str, d_head: int, mask=None) -> str:
        kt = self.op("Transpose", [k], perm=[0, 1, 3, 2])
        s = self.op("Mul", [self.op("MatMul", [q, kt]), self.const(np.float32(1.0 / np.sqrt(d_head)))])
        if mask is not None:
            s = self.op("Add", [s, mask])
        p = self.op("Softmax", [s], axis=-1)
        return self.op("MatMul", [p, v])

    def attend_blocks(self, q: str, k: str, v: str, blocks: int) -> str:
        """Attention of queries already scaled by 1/sqrt(d_head), `blocks`
        slices of them at a time: the encoder's scores are 1500 × 1500 per
        head, and one slice of them at a time is what lives in memory."""
        kt = self.op("Transpose", [k], perm=[0, 1, 3, 2])
        parts = self.op("Split", [q], n_out=blocks, axis=2) if blocks > 1 else [q]
        out = []
        for part in parts:
            p = self.op("Softmax", [self.op("MatMul", [part, kt])], axis=-1)
            out.append(self.op("MatMul", [p, v]))
        return self.op("Concat", out, axis=2) if blocks > 1 else out[0]

    def model(self, inputs, outputs, name: str) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, name, inputs, outputs, list(self.inits.values()))
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="vigil models/whisper.py")
        m.ir_version = 8
        return m


def dims(w: dict):
    d = w["encoder/conv1/weight"].shape[0]
    n_heads = int(np.asarray(w["encoder/num_heads"]).reshape(-1)[0])
    def layers(side):
        return len({k.split("/")[1] for k in w if re.match(rf"{side}/layer_\d+/", k)})

    enc_layers, dec_layers = layers("encoder"), layers("decoder")
    vocab = w["decoder/embeddings/weight"].shape[0]
    return d, n_heads, enc_layers, dec_layers, vocab


def encoder(w: dict) -> onnx.ModelProto:
    d, n_heads, enc_layers, dec_layers, _ = dims(w)
    dh = d // n_heads
    g = Graph(w)
    c1 = g.op("Conv", ["mel", g.weight("encoder/conv1/weight"), g.weight("encoder/conv1/bias")], pads=[1, 1], kernel_shape=[3])
    c2 = g.op("Conv", [g.gelu(c1), g.weight("encoder/conv2/weight"), g.weight("encoder/conv2/bias")], pads=[1, 1], strides=[2], kernel_shape=[3])
    x = g.op("Transpose", [g.gelu(c2)], perm=[0, 2, 1])
    x = g.op("Add", [x, g.weight("encoder/position_encodings/encodings")])
    for n in range(enc_layers):
        p = f"encoder/layer_{n}"
        h = g.layer_norm(x, f"{p}/self_attention/layer_norm")
        q = g.heads(g.linear(h, f"{p}/self_attention/linear_0", slice(0, d), scale=1.0 / np.sqrt(dh)), n_heads, dh)
        k = g.heads(g.linear(h, f"{p}/self_attention/linear_0", slice(d, 2 * d)), n_heads, dh)
        v = g.heads(g.linear(h, f"{p}/self_attention/linear_0", slice(2 * d, 3 * d)), n_heads, dh)
        a = g.linear(g.merge(g.attend_blocks(q, k, v, ATTENTION_BLOCKS), d), f"{p}/self_attention/linear_1")
        x = g.op("Add", [x, a])
        h = g.layer_norm(x, f"{p}/ffn/layer_norm")
        f = g.linear(g.gelu(g.linear(h, f"{p}/ffn/linear_0")), f"{p}/ffn/linear_1")
        x = g.op("Add", [x, f])
    hidden = g.layer_norm(x, "encoder/layer_norm")
    g.nodes.append(helper.make_node("Identity", [hidden], ["hidden"], name="hidden_out"))
    outputs = [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", 1500, d])]
    for n in range(dec_layers):
        p = f"decoder/layer_{n}/attention/linear_1"
        k = g.heads(g.linear(hidden, p, slice(0, d)), n_heads, dh)
        v = g.heads(g.linear(hidden, p, slice(d, 2 * d)), n_heads, dh)
        for kind, t in (("k", k), ("v", v)):
            g.nodes.append(helper.make_node("Identity", [t], [f"cross_{kind}_{n}"], name=f"cross_{kind}_{n}_out"))
            outputs.append(helper.make_tensor_value_info(f"cross_{kind}_{n}", TensorProto.FLOAT, ["batch", n_heads, 1500, dh]))
    inputs = [helper.make_tensor_value_info("mel", TensorProto.FLOAT, ["batch", 80, 3000])]
    return g.model(inputs, outputs, "whisper_encoder")


def decoder(w: dict) -> onnx.ModelProto:
    d, n_heads, _, dec_layers, vocab = dims(w)
    dh = d // n_heads
    g = Graph(w)
    # Lengths: new tokens T, cached tokens P.
    t_len = g.op("Gather", [g.op("Shape", ["tokens"]), g.const(np.array(1, np.int64))], axis=0)
    p_len = g.op("Gather", [g.op("Shape", ["past_k_0"]), g.const(np.array(2, np.int64))], axis=0)
    total = g.op("Add", [p_len, t_len])
    positions = g.op("Range", [p_len, total, g.const(np.array(1, np.int64))])
    # The token embedding (tied to the output projection, 51864 x d) is kept
    # once, in int8 with a scale per token, transposed [d, vocab] for the
    # projection's MatMulInteger: a quarter of its f32 size.
    emb = w["decoder/embeddings/weight"].astype(np.float32)
    scale = (np.maximum(np.abs(emb).max(axis=1), 1e-8) / 127.0).astype(np.float32)
    q8 = np.clip(np.round(emb / scale[:, None]), -127, 127).astype(np.int8)
    qt = g.const(np.ascontiguousarray(q8.T), "decoder.embeddings.q8.T")
    sc = g.const(scale, "decoder.embeddings.scale")
    rows = g.op("Transpose", [g.op("Cast", [g.op("Gather", [qt, "tokens"], axis=1)], to=TensorProto.FLOAT)], perm=[1, 2, 0])
    row_scale = g.op("Unsqueeze", [g.op("Gather", [sc, "tokens"], axis=0), g.const(np.array([2], np.int64))])
    x = g.op("Add", [g.op("Mul", [rows, row_scale]),
                     g.op("Gather", [g.weight("decoder/position_encodings/encodings"), positions], axis=0)])
    # Causal mask [T, P + T]: new token i sees cached ones and new ones up to i.
    rows = g.op("Unsqueeze", [positions, g.const(np.array([1], np.int64))])
    cols = g.op("Unsqueeze", [g.op("Range", [g.const(np.array(0, np.int64)), total, g.const(np.array(1, np.int64))]), g.const(np.array([0], np.int64))])
    mask = g.op("Where", [g.op("Greater", [cols, rows]), g.const(np.float32(-1e9)), g.const(np.float32(0.0))])
    inputs = [helper.make_tensor_value_info("tokens", TensorProto.INT64, ["batch", "new"])]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "new", vocab])]
    for n in range(dec_layers):
        p = f"decoder/layer_{n}"
        h = g.layer_norm(x, f"{p}/self_attention/layer_norm")
        q = g.heads(g.linear(h, f"{p}/self_attention/linear_0", slice(0, d)), n_heads, dh)
        k = g.heads(g.linear(h, f"{p}/self_attention/linear_0", slice(d, 2 * d)), n_heads, dh)
        v = g.heads(g.linear(h, f"{p}/self_attention/linear_0", slice(2 * d, 3 * d)), n_heads, dh)
        k_all = g.op("Concat", [f"past_k_{n}", k], axis=2)
        v_all = g.op("Concat", [f"past_v_{n}", v], axis=2)
        g.nodes.append(helper.make_node("Identity", [k_all], [f"present_k_{n}"], name=f"present_k_{n}_out"))
        g.nodes.append(helper.make_node("Identity", [v_all], [f"present_v_{n}"], name=f"present_v_{n}_out"))
        a = g.linear(g.merge(g.attend(q, k_all, v_all, dh, mask), d), f"{p}/self_attention/linear_1")
        x = g.op("Add", [x, a])
        h = g.layer_norm(x, f"{p}/attention/layer_norm")
        q = g.heads(g.linear(h, f"{p}/attention/linear_0"), n_heads, dh)
        c = g.linear(g.merge(g.attend(q, f"cross_k_{n}", f"cross_v_{n}", dh), d), f"{p}/attention/linear_2")
        x = g.op("Add", [x, c])
        h = g.layer_norm(x, f"{p}/ffn/layer_norm")
        f = g.linear(g.gelu(g.linear(h, f"{p}/ffn/linear_0")), f"{p}/ffn/linear_1")
        x = g.op("Add", [x, f])
        for kind in ("k", "v"):
            inputs.append(helper.make_tensor_value_info(f"past_{kind}_{n}", TensorProto.FLOAT, ["batch", n_heads, "past", dh]))
            outputs.append(helper.make_tensor_value_info(f"present_{kind}_{n}", TensorProto.FLOAT, ["batch", n_heads, "total", dh]))
        for kind in ("k", "v"):
            inputs.append(helper.make_tensor_value_info(f"cross_{kind}_{n}", TensorProto.FLOAT, ["batch", n_heads, 1500, dh]))
    x = g.layer_norm(x, "decoder/layer_norm")
    # The projection is the embedding matrix (tied), in int8: the hidden
    # state quantised per call (uint8, its own scale), an integer product,
    # then both scales.
    shape = g.op("Shape", [x])
    flat = g.op("Reshape", [x, g.const(np.array([-1, d], np.int64))])
    qa, a_scale, a_zero = g.op("DynamicQuantizeLinear", [flat], n_out=3)
    acc = g.op("MatMulInteger", [qa, qt, a_zero])
    scores = g.op("Mul", [g.op("Cast", [acc], to=TensorProto.FLOAT), g.op("Mul", [a_scale, sc])])
    out_shape = g.op("Concat", [g.op("Slice", [shape, g.const(np.array([0], np.int64)), g.const(np.array([2], np.int64))]),
                                g.const(np.array([vocab], np.int64))], axis=0)
    g.nodes.append(helper.make_node("Reshape", [scores, out_shape], ["logits"], name="logits_out"))
    return g.model(inputs, outputs, "whisper_decoder")


def main() -> None:
    src, out = sys.argv[1], sys.argv[2]
    w = read_model(os.path.join(src, "model.bin"))
    os.makedirs(out, exist_ok=True)
    for name, build in (("encoder", encoder), ("decoder", decoder)):
        model = build(w)
        onnx.checker.check_model(model)
        onnx.save(model, os.path.join(out, f"{name}.onnx"))
    for name in ("tokenizer.json", "config.json"):
        shutil.copyfile(os.path.join(src, name), os.path.join(out, name))
    print(f"whisper: converted to {out}/encoder.onnx, decoder.onnx")


if __name__ == "__main__":
    main()
