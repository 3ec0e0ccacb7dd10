"""tinymodel.py: tiny random qwen3moe GGUF files written in Python, and a
second, deliberately naive forward pass (token by token, explicit KV cache,
plain loops) used by the self-tests to cross-check qwen3moe.py.

Owns: make_tiny_model, tiny_metadata, quantize_q8_0, decode_loop. Not used against the
engine (the engine's own `gen-tiny` makes those files).
Spec: shared/architectures.md §5, §5.1, §9.2, §9.3.
"""

import math

import numpy as np

import gguf_writer as gw
from dequant import dequantize_tensor
from gguf_reader import GGUFFile

DEFAULT_SHAPE = dict(n_layer=2, n_embd=64, n_head=4, n_head_kv=2, head_dim=16,
                     n_expert=8, n_expert_used=2, n_ff=32, n_vocab=300,
                     eps=1e-6, rope_base=10000.0, n_rot=None)


def quantize_q8_0(a):
    """Row-major float array (..., n*32) -> Q8_0 bytes (d = amax/127 as fp16,
    q = round(x/d)). Any valid encoding will do for the self-tests."""
    blocks = np.asarray(a, dtype=np.float32).reshape(-1, 32)
    amax = np.max(np.abs(blocks), axis=1, keepdims=True)
    d = (amax / 127.0).astype(np.float16)
    dd = d.astype(np.float32)
    q = np.where(dd > 0, np.rint(blocks / np.where(dd > 0, dd, 1)), 0)
    q = np.clip(q, -127, 127).astype(np.int8)
    out = np.concatenate([d.view(np.uint8).reshape(-1, 2),
                          q.view(np.uint8)], axis=1)
    return out.tobytes()


def tiny_metadata(s):
    a = "qwen3moe."
    kvs = [("general.architecture", "string", "qwen3moe"),
           ("general.alignment", "uint32", 32),
           (a + "block_count", "uint32", s["n_layer"]),
           (a + "context_length", "uint32", 256),
           (a + "embedding_length", "uint32", s["n_embd"]),
           (a + "attention.head_count", "uint32", s["n_head"]),
           (a + "attention.head_count_kv", "uint32", s["n_head_kv"]),
           (a + "attention.key_length", "uint32", s["head_dim"]),
           (a + "attention.value_length", "uint32", s["head_dim"]),
           (a + "attention.layer_norm_rms_epsilon", "float32", s["eps"]),
           (a + "rope.freq_base", "float32", s["rope_base"]),
           (a + "expert_count", "uint32", s["n_expert"]),
           (a + "expert_used_count", "uint32", s["n_expert_used"]),
           (a + "expert_feed_forward_length", "uint32", s["n_ff"])]
    if s.get("n_rot"):
        kvs.append((a + "rope.dimension_count", "uint32", s["n_rot"]))
    return kvs


def _random_weights(s, rng, tied):
    """name -> float32 array in NumPy shape (ne reversed)."""
    H, hd, E, ff = s["n_embd"], s["head_dim"], s["n_expert"], s["n_ff"]
    q, kv = s["n_head"] * hd, s["n_head_kv"] * hd

    def mat(*shape):
        return (rng.standard_normal(shape) / math.sqrt(shape[-1])).astype(np.float32)

    def norm(n):
        return (1.0 + 0.2 * rng.standard_normal(n)).astype(np.float32)

    w = {"token_embd.weight": rng.standard_normal((s["n_vocab"], H)).astype(np.float32)}
    for il in range(s["n_layer"]):
        p = f"blk.{il}."
        w.update({p + "attn_norm.weight": norm(H), p + "attn_q.weight": mat(q, H),
                  p + "attn_k.weight": mat(kv, H), p + "attn_v.weight": mat(kv, H),
                  p + "attn_output.weight": mat(H, q),
                  p + "attn_q_norm.weight": norm(hd), p + "attn_k_norm.weight": norm(hd),
                  p + "ffn_norm.weight": norm(H), p + "ffn_gate_inp.weight": mat(E, H),
                  p + "ffn_gate_exps.weight": mat(E, ff, H),
                  p + "ffn_up_exps.weight": mat(E, ff, H),
                  p + "ffn_down_exps.weight": mat(E, H, ff)})
    w["output_norm.weight"] = norm(H)
    if not tied:
        w["output.weight"] = mat(s["n_vocab"], H)
    return w


def make_tiny_model(path, seed=0, wtype="F32", tied=False, **shape):
    """Write a random qwen3moe GGUF at `path`. wtype F32 or Q8_0 (every
    2-D/3-D weight; norms stay F32). Returns {name: float32 array} of the
    values the file holds (dequantized for Q8_0)."""
    s = dict(DEFAULT_SHAPE, **shape)
    w = _random_weights(s, np.random.default_rng(seed), tied)
    tensors = []
    for name, a in w.items():
        if wtype == "Q8_0" and a.ndim >= 2:
            ne = tuple(reversed(a.shape))
            tensors.append((name, ne, 8, quantize_q8_0(a)))
        else:
            tensors.append(gw.f32_tensor(name, a))
    gw.write_gguf(path, tiny_metadata(s), tensors)
    g = GGUFFile(path)
    vals = {n: dequantize_tensor(g, n) for n in w}
    g.close()
    return vals


# ------------------------------------------------------- the loop decoder

def _rmsnorm(x, w, eps):
    ss = sum(float(v) * float(v) for v in x) / len(x)
    r = 1.0 / math.sqrt(ss + eps)
    return np.array([float(w[i]) * float(x[i]) * r for i in range(len(x))])


def _rope(x, pos, n_rot, base):
    y = [float(v) for v in x]
    half = n_rot // 2
    for i in range(half):
        ang = pos * base ** (-2.0 * i / n_rot)
        c, s = math.cos(ang), math.sin(ang)
        y[i] = x[i] * c - x[i + half] * s
        y[i + half] = x[i + half] * c + x[i] * s
    return np.array(y)


class _Hp:
    def __init__(self, g):
        m = g.metadata
        self.L = m["qwen3moe.block_count"]
        self.nh = m["qwen3moe.attention.head_count"]
        self.nkv = m["qwen3moe.attention.head_count_kv"]
        self.hd = m["qwen3moe.attention.key_length"]
        self.eps = m["qwen3moe.attention.layer_norm_rms_epsilon"]
        self.base = m["qwen3moe.rope.freq_base"]
        self.n_rot = m.get("qwen3moe.rope.dimension_count", self.hd)
        self.K = m["qwen3moe.expert_used_count"]


def _attend(hp, q, cache_k, cache_v, t):
    out = []
    for a in range(hp.nh):
        b = a // (hp.nh // hp.nkv)
        s = [float(np.dot(q[a], cache_k[u][b])) / math.sqrt(hp.hd)
             for u in range(t + 1)]
        mx = max(s)
        e = [math.exp(v - mx) for v in s]
        z = sum(e)
        o = sum((e[u] / z) * cache_v[u][b] for u in range(t + 1))
        out.append(o)
    return np.concatenate(out)


def _moe(hp, W, il, x, k_used):
    p = f"blk.{il}."
    r = W(p + "ffn_gate_inp.weight") @ x
    mx = max(r)
    e = [math.exp(v - mx) for v in r]
    probs = [v / sum(e) for v in e]
    top = sorted(range(len(probs)), key=lambda i: -probs[i])[:k_used]
    tot = sum(probs[i] for i in top)
    y = np.zeros_like(x)
    for i in top:
        g = W(p + "ffn_gate_exps.weight")[i] @ x
        u = W(p + "ffn_up_exps.weight")[i] @ x
        h = np.array([g[j] / (1.0 + math.exp(-g[j])) * u[j] for j in range(len(g))])
        y += (probs[i] / tot) * (W(p + "ffn_down_exps.weight")[i] @ h)
    return y


def _layer(hp, W, il, h, t, cache, k_used):
    p = f"blk.{il}."
    x = _rmsnorm(h, W(p + "attn_norm.weight"), hp.eps)
    q = (W(p + "attn_q.weight") @ x).reshape(hp.nh, hp.hd)
    k = (W(p + "attn_k.weight") @ x).reshape(hp.nkv, hp.hd)
    v = (W(p + "attn_v.weight") @ x).reshape(hp.nkv, hp.hd)
    qn, kn = W(p + "attn_q_norm.weight"), W(p + "attn_k_norm.weight")
    q = [_rope(_rmsnorm(q[a], qn, hp.eps), t, hp.n_rot, hp.base) for a in range(hp.nh)]
    k = [_rope(_rmsnorm(k[b], kn, hp.eps), t, hp.n_rot, hp.base) for b in range(hp.nkv)]
    cache[il][0].append(k)
    cache[il][1].append(list(v))
    h = h + W(p + "attn_output.weight") @ _attend(hp, q, cache[il][0], cache[il][1], t)
    x = _rmsnorm(h, W(p + "ffn_norm.weight"), hp.eps)
    return h + _moe(hp, W, il, x, k_used)


def decode_loop(path, tokens):
    """Logits (T, V) float64, one token at a time with a per-layer KV cache."""
    g = GGUFFile(path)
    hp = _Hp(g)
    memo = {}

    def W(name):
        if name not in memo:
            memo[name] = dequantize_tensor(g, name).astype(np.float64)
        return memo[name]

    head = "output.weight" if "output.weight" in g.tensors else "token_embd.weight"
    cache = [([], []) for _ in range(hp.L)]
    rows = []
    for t, tok in enumerate(tokens):
        h = W("token_embd.weight")[tok].copy()
        for il in range(hp.L):
            h = _layer(hp, W, il, h, t, cache, hp.K)
        rows.append(W(head) @ _rmsnorm(h, W("output_norm.weight"), hp.eps))
    g.close()
    return np.array(rows)
