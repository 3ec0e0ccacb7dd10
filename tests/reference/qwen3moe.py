"""qwen3moe.py: an independent float64 NumPy forward pass of Qwen3-MoE,
reading llama.cpp-named tensors from a GGUF file.

Owns: hyperparameters from the `qwen3moe.*` keys, tensor shape checks, and
the math: embedding lookup, RMSNorm, q/k/v projections, per-head q_norm and
k_norm, NeoX RoPE, causal GQA attention, output projection, residual,
ffn_norm, router softmax -> top-k -> renormalise, SwiGLU experts, output
norm and head (output.weight, or token_embd.weight when tied).
Does not own: file parsing (gguf_reader), block formats (dequant), the
command line (cli.py; `python3 qwen3moe.py MODEL --token-ids ... --out F`
runs it).

Spec: shared/architectures.md §5 (forward pass), §5.1 (RoPE), §9.2 (keys),
§9.3 (tensor names and ne). Written from that text, not from the C engine.
Weights are dequantized to float32 exactly as ggml does, then every
computation is float64. A GGUF ne {A, B, C} is the NumPy shape (C, B, A),
so a matrix ne {in, out} is W of shape (out, in) and y = W @ x.
"""

import sys

import numpy as np

import act_quant
from dequant import dequantize_tensor
from gguf_reader import GGUFError, GGUFFile

ARCH = "qwen3moe"


class ModelError(Exception):
    """The file is a valid GGUF but not a model this reference can run."""


class Hparams:
    """Hyperparameters of a qwen3moe GGUF (keys of architectures.md §9.2)."""

    def __init__(self, g):
        arch = g.get("general.architecture")
        if arch != ARCH:
            raise ModelError(f"{g.path}: general.architecture is {arch!r},"
                             f" expected {ARCH!r}")
        self.n_layer = self._req(g, "block_count")
        self.n_embd = self._req(g, "embedding_length")
        self.n_head = self._req(g, "attention.head_count")
        self.n_head_kv = self._opt(g, "attention.head_count_kv", self.n_head)
        self.head_dim = self._opt(g, "attention.key_length",
                                  self.n_embd // max(1, self.n_head))
        self.head_dim_v = self._opt(g, "attention.value_length", self.head_dim)
        self.eps = float(self._req(g, "attention.layer_norm_rms_epsilon"))
        self.rope_base = float(self._opt(g, "rope.freq_base", 10000.0))
        self.n_rot = self._opt(g, "rope.dimension_count", self.head_dim)
        self.n_expert = self._req(g, "expert_count")
        self.n_expert_used = self._req(g, "expert_used_count")
        self.n_ff_exp = self._opt(g, "expert_feed_forward_length", None)
        self.norm_topk = bool(self._opt(g, "expert_weights_norm", True))
        self._validate(g.path)
        self._refuse_unsupported(g)

    @staticmethod
    def _req(g, key):
        full = f"{ARCH}.{key}"
        if full not in g.metadata:
            raise ModelError(f"{g.path}: missing key '{full}'")
        return g.metadata[full]

    @staticmethod
    def _opt(g, key, default):
        return g.metadata.get(f"{ARCH}.{key}", default)

    def _refuse_unsupported(self, g):
        """Keys that would change the math in ways this reference does not
        implement: refuse rather than compute something else."""
        scaling = self._opt(g, "rope.scaling.type", "none")
        gating = self._opt(g, "expert_gating_func", 1)      # 1 = softmax
        scale = self._opt(g, "expert_weights_scale", 1.0)
        if scaling != "none" or gating != 1 or float(scale) != 1.0:
            raise ModelError(f"{g.path}: unsupported rope scaling {scaling!r},"
                             f" gating func {gating} or weights scale {scale}")

    def _validate(self, path):
        ints = ("n_layer", "n_embd", "n_head", "n_head_kv", "head_dim",
                "head_dim_v", "n_rot", "n_expert", "n_expert_used")
        for name in ints:
            v = getattr(self, name)
            if not isinstance(v, int) or v < 0:
                raise ModelError(f"{path}: {name} = {v!r} is not a count")
        if self.n_head == 0 or self.n_head_kv == 0 or \
                self.n_head % self.n_head_kv:
            raise ModelError(f"{path}: n_head {self.n_head} not a multiple of"
                             f" n_head_kv {self.n_head_kv}")
        if self.n_rot % 2 or self.n_rot > self.head_dim:
            raise ModelError(f"{path}: rope dims {self.n_rot} must be even"
                             f" and <= head_dim {self.head_dim}")
        if not 1 <= self.n_expert_used <= self.n_expert:
            raise ModelError(f"{path}: expert_used_count {self.n_expert_used}"
                             f" not in 1..{self.n_expert}")


# ---------------------------------------------------------------- the math

def rms_norm(x, w, eps):
    """y = w * x / sqrt(mean(x^2) + eps) over the last axis."""
    ms = np.mean(x * x, axis=-1, keepdims=True)
    return x / np.sqrt(ms + eps) * w


def silu(x):
    return x / (1.0 + np.exp(-x))


def softmax(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def rope_neox(x, pos, n_rot, base):
    """NeoX RoPE on x (T, n_heads, hd) at positions pos (T,): dims i and
    i + n_rot/2 rotate by angle pos * base^(-2i/n_rot); dims >= n_rot pass."""
    half = n_rot // 2
    inv_freq = base ** (-2.0 * np.arange(half, dtype=np.float64) / n_rot)
    ang = np.asarray(pos, dtype=np.float64)[:, None] * inv_freq[None, :]
    cos = np.cos(ang)[:, None, :]
    sin = np.sin(ang)[:, None, :]
    a = x[..., :half]
    b = x[..., half:n_rot]
    out = x.copy()
    out[..., :half] = a * cos - b * sin
    out[..., half:n_rot] = b * cos + a * sin
    return out


def attention(q, k, v):
    """Causal GQA attention. q (T, nh, hd), k (T, nkv, hd), v (T, nkv, hdv);
    query head a uses kv head a // (nh/nkv); token t sees 0..t; scale
    1/sqrt(hd). Returns (T, nh*hdv)."""
    n_tok, n_head, hd = q.shape
    group = n_head // k.shape[1]
    kk = np.repeat(k, group, axis=1)            # (T, nh, hd)
    vv = np.repeat(v, group, axis=1)            # (T, nh, hdv)
    scores = np.einsum("qhd,khd->hqk", q, kk) / np.sqrt(hd)
    mask = np.triu(np.ones((n_tok, n_tok), dtype=bool), k=1)
    scores[:, mask] = -np.inf
    p = softmax(scores, axis=-1)                # (nh, T, T)
    out = np.einsum("hqk,khd->qhd", p, vv)
    return out.reshape(n_tok, -1)


def route(logits, n_used, renorm):
    """Router: softmax over all experts, the n_used largest, optionally
    renormalised. logits (T, E) -> (idx (T, K), weights (T, K), probs)."""
    probs = softmax(logits, axis=-1)
    idx = np.argsort(-probs, axis=-1, kind="stable")[:, :n_used]
    w = np.take_along_axis(probs, idx, axis=-1)
    if renorm:
        w = w / np.sum(w, axis=-1, keepdims=True)
    return idx, w, probs


def _same(_name, x):
    return x


def moe_ffn(x, lw, n_used, renorm, trace=None):
    """Sparse MoE block on x (T, H): y = sum_e w_e down_e(silu(gate_e x) *
    up_e x) over each token's routed experts. lw["_in"](name, x), if given,
    maps a mat-vec input as weight `name` sees it (act_quant mode)."""
    inp = lw.get("_in", _same)
    idx, w, probs = route(inp("ffn_gate_inp", x) @ lw["ffn_gate_inp"].T,
                          n_used, renorm)
    if trace is not None:
        trace.append({"experts": np.sort(idx, axis=-1),
                      "margin": _route_margin(probs, n_used)})
    y = np.zeros_like(x)
    for e in np.unique(idx):
        rows, slot = np.nonzero(idx == e)
        xg = inp("ffn_gate_exps", x[rows])
        xu = inp("ffn_up_exps", x[rows])
        h = silu(xg @ lw["ffn_gate_exps"][e].T) * (xu @ lw["ffn_up_exps"][e].T)
        h = inp("ffn_down_exps", h)
        y[rows] += w[rows, slot][:, None] * (h @ lw["ffn_down_exps"][e].T)
    return y


def _route_margin(probs, n_used):
    """Per token, the gap between the K-th and (K+1)-th router probability:
    a small gap means a tiny perturbation may swap an expert."""
    if n_used >= probs.shape[-1]:
        return np.full(probs.shape[0], np.inf)
    srt = -np.sort(-probs, axis=-1)
    return srt[:, n_used - 1] - srt[:, n_used]


# ------------------------------------------------------------ the model

LAYER_TENSORS = ("attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
                 "attn_q_norm", "attn_k_norm", "ffn_norm", "ffn_gate_inp",
                 "ffn_gate_exps", "ffn_up_exps", "ffn_down_exps")


class Model:
    """A qwen3moe GGUF opened for the reference forward pass. Dequantized
    float64 weights are kept (for the next forward) up to cache_bytes."""

    def __init__(self, path, cache_bytes=1 << 30):
        self.g = GGUFFile(path)
        self._cache = {}
        self._cache_left = cache_bytes
        self.hp = Hparams(self.g)
        emb = self._shape("token_embd.weight")
        if len(emb) != 2 or emb[1] != self.hp.n_embd:
            raise ModelError(f"{path}: token_embd.weight shape {emb}")
        self.n_vocab = emb[0]
        self.head_name = "output.weight" if "output.weight" in self.g.tensors \
            else "token_embd.weight"
        self._check_shapes()

    def _shape(self, name):
        if name not in self.g.tensors:
            raise ModelError(f"{self.g.path}: missing tensor '{name}'")
        return self.g.tensors[name].shape

    def _expect(self, name, shape):
        got = self._shape(name)
        if got != tuple(shape):
            raise ModelError(f"{self.g.path}: tensor '{name}' has NumPy shape"
                             f" {got}, expected {tuple(shape)}")

    def _check_shapes(self):
        hp = self.hp
        H, E = hp.n_embd, hp.n_expert
        q, kv, vo = hp.n_head * hp.head_dim, hp.n_head_kv * hp.head_dim, \
            hp.n_head_kv * hp.head_dim_v
        self._expect("output_norm.weight", (H,))
        self._expect(self.head_name, (self.n_vocab, H))
        ff = hp.n_ff_exp
        for il in range(hp.n_layer):
            p = f"blk.{il}."
            if ff is None:
                ff = self._shape(p + "ffn_gate_exps.weight")[1]
            want = {"attn_norm": (H,), "attn_q": (q, H), "attn_k": (kv, H),
                    "attn_v": (vo, H), "attn_output": (H, hp.n_head * hp.head_dim_v),
                    "attn_q_norm": (hp.head_dim,), "attn_k_norm": (hp.head_dim,),
                    "ffn_norm": (H,), "ffn_gate_inp": (E, H),
                    "ffn_gate_exps": (E, ff, H), "ffn_up_exps": (E, ff, H),
                    "ffn_down_exps": (E, H, ff)}
            for name in LAYER_TENSORS:
                self._expect(p + name + ".weight", want[name])
        self.n_ff_exp = ff

    def weight(self, name):
        """Tensor `name` dequantized (bit-exact float32) then as float64.
        The array is shared with the cache: callers must not modify it."""
        if name in self._cache:
            return self._cache[name]
        w = dequantize_tensor(self.g, name).astype(np.float64)
        if w.nbytes <= self._cache_left:
            w.flags.writeable = False
            self._cache[name] = w
            self._cache_left -= w.nbytes
        return w

    def type_of(self, name):
        return self.g.tensors[name].type_name

    def layer(self, il, act_quant_on=False):
        """Layer il's weights by short name; with act_quant_on, "_in" maps
        each mat-vec input through the weight type's activation rounding."""
        lw = {n: self.weight(f"blk.{il}.{n}.weight") for n in LAYER_TENSORS}
        if act_quant_on:
            types = {n: self.type_of(f"blk.{il}.{n}.weight")
                     for n in LAYER_TENSORS}
            lw["_in"] = lambda n, x: act_quant.round_for(types[n], x)
        return lw

    def close(self):
        self._cache = {}
        self.g.close()


def attn_block(hp, lw, x, pos):
    """Self-attention of one layer on the normed input x (T, H)."""
    n_tok = x.shape[0]
    inp = lw.get("_in", _same)
    q = (inp("attn_q", x) @ lw["attn_q"].T).reshape(n_tok, hp.n_head, hp.head_dim)
    k = (inp("attn_k", x) @ lw["attn_k"].T).reshape(n_tok, hp.n_head_kv, hp.head_dim)
    v = (inp("attn_v", x) @ lw["attn_v"].T).reshape(n_tok, hp.n_head_kv, hp.head_dim_v)
    q = rms_norm(q, lw["attn_q_norm"], hp.eps)
    k = rms_norm(k, lw["attn_k_norm"], hp.eps)
    q = rope_neox(q, pos, hp.n_rot, hp.rope_base)
    k = rope_neox(k, pos, hp.n_rot, hp.rope_base)
    return inp("attn_output", attention(q, k, v)) @ lw["attn_output"].T


def forward(model, tokens, n_expert_used=None, trace=None, act_quant_on=False):
    """Logits (T, n_vocab) float64 for `tokens` at positions 0..T-1.
    n_expert_used overrides expert_used_count; trace, if a list, receives
    per layer {"experts": (T, K) sorted expert ids, "margin": (T,) router
    gap of each token (see _route_margin)};
    act_quant_on rounds each quantized-weight mat-vec input to 8 bits
    (act_quant.py) instead of using the exact value."""
    hp = model.hp
    k_used = hp.n_expert_used if n_expert_used is None else n_expert_used
    if not 1 <= k_used <= hp.n_expert:
        raise ModelError(f"experts per token {k_used} not in 1..{hp.n_expert}")
    tokens = np.asarray(tokens, dtype=np.int64)
    if tokens.ndim != 1 or tokens.size == 0:
        raise ModelError("need a non-empty 1-D token sequence")
    if tokens.min() < 0 or tokens.max() >= model.n_vocab:
        raise ModelError(f"token id out of range 0..{model.n_vocab - 1}")
    pos = np.arange(tokens.size)
    h = model.weight("token_embd.weight")[tokens]
    for il in range(hp.n_layer):
        lw = model.layer(il, act_quant_on)
        h = h + attn_block(hp, lw, rms_norm(h, lw["attn_norm"], hp.eps), pos)
        x = rms_norm(h, lw["ffn_norm"], hp.eps)
        h = h + moe_ffn(x, lw, k_used, hp.norm_topk, trace)
    x = rms_norm(h, model.weight("output_norm.weight"), hp.eps)
    if act_quant_on:
        x = act_quant.round_for(model.type_of(model.head_name), x)
    return x @ model.weight(model.head_name).T


def logits_for(path, tokens, n_expert_used=None, trace=None,
               act_quant_on=False):
    """Open `path`, run forward, close; returns float64 logits (T, V)."""
    model = Model(path)
    try:
        return forward(model, tokens, n_expert_used, trace, act_quant_on)
    finally:
        model.close()


__all__ = ["GGUFError", "ModelError", "Model", "forward", "logits_for",
           "rms_norm", "rope_neox", "attention", "route", "moe_ffn"]

if __name__ == "__main__":
    from cli import main
    sys.exit(main())
