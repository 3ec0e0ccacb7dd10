"""qwen3next.py: an independent float64 NumPy forward pass of the hybrid
Qwen3-Next (`qwen3next`) and Qwen3.5-MoE (`qwen35moe`) GGUF models, as
llama.cpp's converter writes them.

Owns: hyperparameters from the `{arch}.*` keys, tensor shape checks, and
the math: embedding, RMSNorm (GGUF norms are plain weights: the converter
already added the 1), per layer either gated full attention (attn_q holds
[q_a | gate_a] per head, q/k norm, partial NeoX RoPE or, for qwen35moe,
interleaved M-RoPE with text positions, causal GQA, o * sigmoid(gate),
attn_output) or a Gated DeltaNet (attn_qkv [all q | all k | all v],
attn_gate z, beta/alpha, causal depthwise conv + SiLU, q/k L2 norm, q
scaled by 1/sqrt(dk), beta = sigmoid(b), g = ssm_a * softplus(a + dt_bias),
the delta rule, gated RMSNorm, ssm_out), then post_attention_norm and the
MoE block (softmax -> top-k -> renormalise, SwiGLU experts) plus the shared
expert gated by sigmoid(ffn_gate_inp_shexp . x); output_norm, head.
The MTP block(s) (the last `nextn_predict_layers` blocks) are skipped.
Does not own: file parsing (gguf_reader), block formats (dequant), the
command line (cli.py, which dispatches on general.architecture).

Spec: shared/architectures.md §6 (forward pass), §7.2-7.3 (conv over a
prompt, chunked delta rule), §9 (keys, tensor names, ne); every name, key
and convention checked against llama.cpp as vendored in llama-cpp-python
0.3.36 (src/models/qwen3next.cpp, qwen35moe.cpp, delta-net-base.cpp,
models.h, llama-model.cpp, ggml-cpu/ops.cpp rope/ssm_conv, conversion/
qwen.py). Where those differ from architectures.md this file follows
llama.cpp (see README.md). Written from that text, not from the C engine.

Conventions (llama.cpp 0.3.36):
  - layer i (< n_layer = block_count - nextn_predict_layers) is a GDN layer
    iff `{arch}.attention.recurrent_layers`[i] (bool array over
    block_count, or a scalar), else iff (i + 1) % full_attention_interval
    != 0 (interval default 4).
  - l2norm(x) = x / sqrt(sum x^2 + eps), eps = layer_norm_rms_epsilon
    (models.h build_gdn_l2_norm = rms_norm(x, eps/n) / sqrt(n)).
  - value head j reads key head j // (nv/nk) in qwen3next (grouped, the
    interleaved repeat of qwen3next.cpp) and j % nk in qwen35moe (tiled:
    the converter permuted every per-value-head tensor, ggml_repeat_4d).
  - qwen3next ssm_ba rows: per key group g, [b x r, a x r]; legacy files
    carry ssm_in (per key group [q | k | v x r | z x r]) instead of
    attn_qkv + attn_gate.
  - IMROPE (qwen35moe): rotary pair i (of n_rot/2) takes its position from
    stream t/h/w/e by sector s = i % sum(sections): s%3==1 and s<3*sec[1]
    -> h, s%3==2 and s<3*sec[2] -> w, s%3==0 and s<3*sec[0] -> t, else e;
    for text t = h = w = the token position and e = 0 (llama-graph.cpp
    llm_graph_input_pos::set_input). With [11,11,10,0] (or any sections
    that never reach e) this is exactly 1-D NeoX RoPE.
"""

import sys

import numpy as np

import act_quant
from dequant import dequantize_tensor
from gguf_reader import GGUFError, GGUFFile
from qwen3moe import ModelError, attention, moe_ffn, rms_norm, rope_neox, silu

ARCHS = ("qwen3next", "qwen35moe")


def _is_count(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


class Hparams:
    """Hyperparameters of a qwen3next / qwen35moe GGUF."""

    def __init__(self, g):
        arch = g.get("general.architecture")
        if arch not in ARCHS:
            raise ModelError(f"{g.path}: general.architecture is {arch!r},"
                             f" expected one of {ARCHS}")
        self.arch = arch
        self.path = g.path
        m = g.metadata
        self.n_layer_all = self._req(m, "block_count")
        self.n_nextn = self._opt(m, "nextn_predict_layers", 0)
        self.n_embd = self._req(m, "embedding_length")
        self.n_head = self._req(m, "attention.head_count")
        self.n_head_kv = self._opt(m, "attention.head_count_kv", self.n_head)
        if not _is_count(self.n_head) or self.n_head == 0:
            raise ModelError(f"{g.path}: head_count {self.n_head!r}")
        self.head_dim = self._opt(m, "attention.key_length",
                                  self.n_embd // self.n_head)
        self.head_dim_v = self._opt(m, "attention.value_length",
                                    self.n_embd // self.n_head)
        self.eps = float(self._req(m, "attention.layer_norm_rms_epsilon"))
        self.rope_base = float(self._opt(m, "rope.freq_base", 10000.0))
        self.n_rot = self._opt(m, "rope.dimension_count", self.head_dim)
        self.sections = None
        if arch == "qwen35moe":     # required by the qwen35moe loader
            sec = self._req(m, "rope.dimension_sections")
            sec = list(sec) if isinstance(sec, list) else [sec] * 4
            if len(sec) != 4 or not all(_is_count(s) for s in sec):
                raise ModelError(f"{g.path}: rope.dimension_sections {sec!r}"
                                 " must be 4 counts")
            self.sections = sec
        self.n_expert = self._req(m, "expert_count")
        self.n_expert_used = self._req(m, "expert_used_count")
        n_ff = self._opt(m, "feed_forward_length", 0)
        self.n_ff_exp = self._opt(m, "expert_feed_forward_length", 0)
        self.n_ff_shexp = self._opt(m, "expert_shared_feed_forward_length", 0)
        if not all(_is_count(v) for v in (n_ff, self.n_ff_exp,
                                          self.n_ff_shexp, self.n_expert_used)):
            raise ModelError(f"{g.path}: feed-forward lengths and"
                             " expert_used_count must be scalar counts")
        if self.n_ff_exp == 0 and self.n_expert_used:      # loader default
            self.n_ff_exp = n_ff // self.n_expert_used
        if self.n_ff_shexp == 0:
            self.n_ff_shexp = n_ff
        self.d_conv = self._req(m, "ssm.conv_kernel")
        d_inner = self._req(m, "ssm.inner_size")
        self.dk = self._req(m, "ssm.state_size")
        self.nv = self._req(m, "ssm.time_step_rank")
        self.nk = self._req(m, "ssm.group_count")
        self._validate(d_inner)
        self.n_layer = self.n_layer_all - self.n_nextn
        self.recurrent = self._layer_types(m)
        self._refuse_unsupported(m)

    def _req(self, m, key):
        full = f"{self.arch}.{key}"
        if full not in m:
            raise ModelError(f"{self.path}: missing key '{full}'")
        return m[full]

    def _opt(self, m, key, default):
        return m.get(f"{self.arch}.{key}", default)

    def _validate(self, d_inner):
        p = self.path
        for name in ("n_layer_all", "n_nextn", "n_embd", "n_head_kv",
                     "head_dim", "head_dim_v", "n_rot", "n_expert",
                     "d_conv", "dk", "nv", "nk"):
            if not _is_count(getattr(self, name)):
                raise ModelError(f"{p}: {name} = {getattr(self, name)!r}"
                                 " is not a count")
        if not _is_count(d_inner):
            raise ModelError(f"{p}: ssm.inner_size {d_inner!r}")
        if self.n_nextn >= self.n_layer_all:
            raise ModelError(f"{p}: nextn_predict_layers {self.n_nextn} leaves"
                             f" no layer of block_count {self.n_layer_all}")
        if self.n_head_kv == 0 or self.n_head % self.n_head_kv:
            raise ModelError(f"{p}: n_head {self.n_head} not a multiple of"
                             f" n_head_kv {self.n_head_kv}")
        if self.head_dim != self.head_dim_v:     # GGML_ASSERT in both graphs
            raise ModelError(f"{p}: key_length {self.head_dim} !="
                             f" value_length {self.head_dim_v}")
        if self.n_rot % 2 or self.n_rot > self.head_dim or self.n_rot == 0:
            raise ModelError(f"{p}: rope dims {self.n_rot} must be even,"
                             f" > 0 and <= head_dim {self.head_dim}")
        if self.sections is not None:
            tot = sum(self.sections)
            if tot == 0 or tot > self.head_dim:
                raise ModelError(f"{p}: rope.dimension_sections"
                                 f" {self.sections} sum {tot} not in"
                                 f" 1..head_dim {self.head_dim}")
        if self.n_expert == 0 or not 1 <= self.n_expert_used <= self.n_expert:
            raise ModelError(f"{p}: expert_used_count {self.n_expert_used}"
                             f" not in 1..expert_count {self.n_expert}")
        if self.n_ff_exp == 0 or self.n_ff_shexp == 0:
            raise ModelError(f"{p}: expert / shared-expert feed-forward"
                             " length is 0 (keys absent)")
        if self.nk == 0 or self.nv == 0 or self.nv % self.nk:
            raise ModelError(f"{p}: ssm.time_step_rank {self.nv} not a"
                             f" multiple of ssm.group_count {self.nk}")
        # tensor shapes use state_size as both head dims; the graph uses
        # inner_size / time_step_rank as dv and asserts S_k == S_v
        if self.dk == 0 or d_inner != self.dk * self.nv:
            raise ModelError(f"{p}: ssm.inner_size {d_inner} != state_size"
                             f" {self.dk} * time_step_rank {self.nv}")
        if self.d_conv < 1:
            raise ModelError(f"{p}: ssm.conv_kernel {self.d_conv}")
        self.dv = self.dk
        self.r = self.nv // self.nk
        self.conv_dim = 2 * self.nk * self.dk + self.nv * self.dv

    def _layer_types(self, m):
        """Per trunk layer: True for a GDN (recurrent) layer."""
        key = f"{self.arch}.attention.recurrent_layers"
        if key in m:
            v = m[key]
            if isinstance(v, list):
                if len(v) != self.n_layer_all:
                    raise ModelError(f"{self.path}: {key} has {len(v)}"
                                     f" entries, block_count {self.n_layer_all}")
                return [bool(x) for x in v[:self.n_layer]]
            return [bool(v)] * self.n_layer
        interval = self._opt(m, "full_attention_interval", 4)
        if not _is_count(interval) or interval == 0:
            raise ModelError(f"{self.path}: full_attention_interval {interval!r}")
        return [(i + 1) % interval != 0 for i in range(self.n_layer)]

    def _refuse_unsupported(self, m):
        """Keys the generic llama.cpp loader reads that would change the
        math: refuse rather than compute something else. (expert_gating_func,
        expert_weights_norm/scale and attention.scale are not read for these
        archs: softmax, renormalise, no scale, 1/sqrt(head_dim) always.)"""
        a = self.arch
        scaling = m.get(f"{a}.rope.scaling.type", "none")
        factor = float(m.get(f"{a}.rope.scaling.factor", 0.0))
        groups = m.get(f"{a}.expert_group_count", 0)
        if scaling not in ("none", "linear") or factor not in (0.0, 1.0) \
                or groups > 1:
            raise ModelError(f"{self.path}: unsupported rope scaling"
                             f" {scaling!r} x{factor} or expert groups {groups}")

    def key_heads(self):
        """Key head of each value head (length nv)."""
        j = np.arange(self.nv)
        return j // self.r if self.arch == "qwen3next" else j % self.nk


# ---------------------------------------------------------------- the math

def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def softplus(x):
    """log(1 + e^x), exactly (ggml returns x for x > 20: differs < 2e-9)."""
    return np.logaddexp(0.0, x)


def l2norm(x, eps):
    """x / sqrt(sum x^2 + eps) over the last axis (llama.cpp GDN q/k)."""
    return x / np.sqrt(np.sum(x * x, axis=-1, keepdims=True) + eps)


def gated_rms_norm(o, z, w, eps):
    """RMSNorm of o over its last axis with plain weight w, times silu(z)."""
    return rms_norm(o, w, eps) * silu(z)


def imrope_position_mask(n_rot, sections):
    """Per rotary pair (n_rot/2): 1 if it takes the t/h/w position stream
    (= the token position for text), 0 if the e stream (= 0 for text)."""
    s0, s1, s2, _ = sections
    tot = sum(sections)
    out = np.zeros(n_rot // 2)
    for i in range(n_rot // 2):
        s = i % tot
        if (s % 3 == 1 and s < 3 * s1) or (s % 3 == 2 and s < 3 * s2) or \
                (s % 3 == 0 and s < 3 * s0):
            out[i] = 1.0
    return out


def rope_imrope(x, pos, n_rot, base, sections):
    """Interleaved M-RoPE on x (T, n_heads, hd) for text positions pos (T,):
    NeoX pairing (i, i + n_rot/2), angle pos_stream(i) * base^(-2i/n_rot)."""
    half = n_rot // 2
    inv_freq = base ** (-2.0 * np.arange(half, dtype=np.float64) / n_rot)
    p = np.asarray(pos, dtype=np.float64)[:, None] * \
        imrope_position_mask(n_rot, sections)[None, :]
    ang = p * inv_freq[None, :]
    cos = np.cos(ang)[:, None, :]
    sin = np.sin(ang)[:, None, :]
    a = x[..., :half]
    b = x[..., half:n_rot]
    out = x.copy()
    out[..., :half] = a * cos - b * sin
    out[..., half:n_rot] = b * cos + a * sin
    return out


def causal_conv1d(xs, w, hist=None):
    """Depthwise causal conv. xs (T, C) new inputs, w (C, K) (GGUF ne
    {K, C}: tap K-1 multiplies the newest input), hist (K-1, C) the previous
    K-1 inputs (zeros at sequence start). Returns (pre-activation Y (T, C),
    new hist = last K-1 rows of [hist; xs])."""
    n_tok, C = xs.shape
    K = w.shape[1]
    if hist is None:
        hist = np.zeros((K - 1, C))
    win = np.concatenate([hist, xs], axis=0)            # (K-1+T, C)
    y = np.zeros((n_tok, C))
    for j in range(K):
        y += win[j:j + n_tok] * w[:, j]
    return y, win[win.shape[0] - (K - 1):].copy()


def delta_rule_recurrent(q, k, v, g, beta, state=None):
    """Gated delta rule token by token. q, k (T, H, dk) (q already scaled),
    v (T, H, dv), g (log-decay), beta (T, H); state (H, dk, dv) or zeros.
    S <- e^g S; S <- S + k (beta (v - S^T k))^T; o = S^T q.
    Returns (o (T, H, dv), final state)."""
    n_tok, H, dk = k.shape
    dv = v.shape[-1]
    S = np.zeros((H, dk, dv)) if state is None else np.array(state, dtype=np.float64)
    out = np.zeros((n_tok, H, dv))
    for t in range(n_tok):
        S *= np.exp(g[t])[:, None, None]
        u = np.einsum("hkv,hk->hv", S, k[t])
        d = beta[t][:, None] * (v[t] - u)
        S += k[t][:, :, None] * d[:, None, :]
        out[t] = np.einsum("hkv,hk->hv", S, q[t])
    return out, S


def delta_rule_chunked(q, k, v, g, beta, state=None, chunk=64):
    """The same recurrence in chunks (architectures.md §7.3): per head and
    chunk of n rows, gamma = cumsum(g), D_ij = e^(gamma_i - gamma_j) (i >= j),
    L = strict-lower(diag(beta) K K^T * D), U = (I+L)^-1 diag(beta) V and
    W = (I+L)^-1 diag(beta e^gamma) K by forward substitution, V' = U - W S,
    O = e^gamma * (Q S) + ((Q K^T) * D) V', S <- e^gamma_n S +
    (e^(gamma_n - gamma) * K)^T V'."""
    n_tok, H, dk = k.shape
    dv = v.shape[-1]
    S_all = np.zeros((H, dk, dv)) if state is None else np.array(state, dtype=np.float64)
    out = np.zeros((n_tok, H, dv))
    for h in range(H):
        S = S_all[h]
        for c0 in range(0, n_tok, chunk):
            c1 = min(c0 + chunk, n_tok)
            n = c1 - c0
            Q, K, V = q[c0:c1, h], k[c0:c1, h], v[c0:c1, h]
            b, gam = beta[c0:c1, h], np.cumsum(g[c0:c1, h])
            low = np.tril(np.ones((n, n), dtype=bool))
            D = np.exp(np.where(low, gam[:, None] - gam[None, :], -np.inf))
            L = np.tril(b[:, None] * (K @ K.T) * D, k=-1)
            U = np.zeros((n, dv))
            W = np.zeros((n, dk))
            for i in range(n):
                U[i] = b[i] * V[i] - L[i, :i] @ U[:i]
                W[i] = b[i] * np.exp(gam[i]) * K[i] - L[i, :i] @ W[:i]
            Vn = U - W @ S
            out[c0:c1, h] = np.exp(gam)[:, None] * (Q @ S) + ((Q @ K.T) * D) @ Vn
            S = np.exp(gam[-1]) * S + (np.exp(gam[-1] - gam)[:, None] * K).T @ Vn
        S_all[h] = S
    return out, S_all


def _same(_name, x):
    return x


def gdn_block(hp, lw, x, state=None, chunk=None):
    """Gated DeltaNet of one layer on the normed input x (T, H).
    state: (conv hist (K-1, C), S (nv, dk, dv)) or None for a fresh
    sequence; chunk: None for the token-by-token delta rule, else the
    chunked form with that chunk length. Returns (m (T, H), new state)."""
    inp = lw.get("_in", _same)
    n_tok = x.shape[0]
    nk, nv, dk, dv = hp.nk, hp.nv, hp.dk, hp.dv
    mixed = inp("attn_qkv", x) @ lw["attn_qkv"].T                # (T, C)
    z = (inp("attn_gate", x) @ lw["attn_gate"].T).reshape(n_tok, nv, dv)
    b = inp("ssm_beta", x) @ lw["ssm_beta"].T                    # (T, nv)
    a = inp("ssm_alpha", x) @ lw["ssm_alpha"].T                  # (T, nv)
    beta = sigmoid(b)
    g = lw["ssm_a"] * softplus(a + lw["ssm_dt.bias"])           # ssm_a = -exp(A_log)
    hist, S = (None, None) if state is None else state
    y, hist = causal_conv1d(mixed, lw["ssm_conv1d"], hist)
    y = silu(y)
    q = y[:, :nk * dk].reshape(n_tok, nk, dk)
    k = y[:, nk * dk:2 * nk * dk].reshape(n_tok, nk, dk)
    v = y[:, 2 * nk * dk:].reshape(n_tok, nv, dv)
    q = l2norm(q, hp.eps) / np.sqrt(dk)
    k = l2norm(k, hp.eps)
    kh = hp.key_heads()
    if chunk is None:
        o, S = delta_rule_recurrent(q[:, kh], k[:, kh], v, g, beta, S)
    else:
        o, S = delta_rule_chunked(q[:, kh], k[:, kh], v, g, beta, S, chunk)
    o = gated_rms_norm(o, z, lw["ssm_norm"], hp.eps).reshape(n_tok, nv * dv)
    return inp("ssm_out", o) @ lw["ssm_out"].T, (hist, S)


def gated_attn_block(hp, lw, x, pos):
    """Gated full attention of one layer on the normed input x (T, H)."""
    inp = lw.get("_in", _same)
    n_tok, hd = x.shape[0], hp.head_dim
    qg = (inp("attn_q", x) @ lw["attn_q"].T).reshape(n_tok, hp.n_head, 2 * hd)
    q, gate = qg[..., :hd], qg[..., hd:]
    k = (inp("attn_k", x) @ lw["attn_k"].T).reshape(n_tok, hp.n_head_kv, hd)
    v = (inp("attn_v", x) @ lw["attn_v"].T).reshape(n_tok, hp.n_head_kv, hd)
    q = rms_norm(q, lw["attn_q_norm"], hp.eps)
    k = rms_norm(k, lw["attn_k_norm"], hp.eps)
    if hp.sections is None:
        q = rope_neox(q, pos, hp.n_rot, hp.rope_base)
        k = rope_neox(k, pos, hp.n_rot, hp.rope_base)
    else:
        q = rope_imrope(q, pos, hp.n_rot, hp.rope_base, hp.sections)
        k = rope_imrope(k, pos, hp.n_rot, hp.rope_base, hp.sections)
    o = attention(q, k, v) * sigmoid(gate.reshape(n_tok, hp.n_head * hd))
    return inp("attn_output", o) @ lw["attn_output"].T


def moe_shared(x, lw, n_used, trace=None):
    """Routed experts (softmax -> top-k -> renormalise) plus the shared
    SwiGLU expert times sigmoid(ffn_gate_inp_shexp . x)."""
    inp = lw.get("_in", _same)
    y = moe_ffn(x, lw, n_used, True, trace)
    s = silu(inp("ffn_gate_shexp", x) @ lw["ffn_gate_shexp"].T) * \
        (inp("ffn_up_shexp", x) @ lw["ffn_up_shexp"].T)
    s = inp("ffn_down_shexp", s) @ lw["ffn_down_shexp"].T
    gam = sigmoid(inp("ffn_gate_inp_shexp", x) @ lw["ffn_gate_inp_shexp"])
    return y + gam[:, None] * s


# ------------------------------------------------------------ the model

COMMON = ("attn_norm", "post_attention_norm", "ffn_gate_inp", "ffn_down_exps",
          "ffn_gate_inp_shexp", "ffn_gate_shexp", "ffn_up_shexp",
          "ffn_down_shexp")
ATTN = ("attn_q", "attn_k", "attn_v", "attn_output", "attn_q_norm",
        "attn_k_norm")
GDN = ("ssm_conv1d", "ssm_norm", "ssm_out")


class Model:
    """A qwen3next / qwen35moe GGUF opened for the reference forward pass.
    Dequantized float64 weights are kept up to cache_bytes."""

    def __init__(self, path, cache_bytes=1 << 30):
        self.g = GGUFFile(path)
        self._cache = {}
        self._cache_left = cache_bytes
        try:
            self.hp = Hparams(self.g)
            emb = self._shape("token_embd.weight")
            if len(emb) != 2 or emb[1] != self.hp.n_embd:
                raise ModelError(f"{path}: token_embd.weight shape {emb}")
            self.n_vocab = emb[0]
            self.head_name = "output.weight" if "output.weight" in self.g.tensors \
                else "token_embd.weight"
            self._sources = [self._check_layer(il) for il in range(self.hp.n_layer)]
            self._expect("output_norm.weight", (self.hp.n_embd,))
            self._expect(self.head_name, (self.n_vocab, self.hp.n_embd))
        except Exception:
            self.g.close()
            raise

    def _shape(self, name):
        if name not in self.g.tensors:
            raise ModelError(f"{self.g.path}: missing tensor '{name}'")
        return self.g.tensors[name].shape

    def _has(self, name):
        return name in self.g.tensors

    def _expect(self, name, shape):
        got = self._shape(name)
        if got != tuple(shape):
            raise ModelError(f"{self.g.path}: tensor '{name}' has NumPy shape"
                             f" {got}, expected {tuple(shape)}")

    def _check_layer(self, il):
        """Check layer il's tensors; returns {short name: (tensor, how)}
        where how says how the array is derived from the file tensor."""
        hp, p = self.hp, f"blk.{il}."
        H, E, ff, fs = hp.n_embd, hp.n_expert, hp.n_ff_exp, hp.n_ff_shexp
        want = {"attn_norm": (H,), "post_attention_norm": (H,),
                "ffn_gate_inp": (E, H), "ffn_down_exps": (E, H, ff),
                "ffn_gate_inp_shexp": (H,), "ffn_gate_shexp": (fs, H),
                "ffn_up_shexp": (fs, H), "ffn_down_shexp": (H, fs)}
        src = {n: (p + n + ".weight", None) for n in COMMON}
        if self._has(p + "ffn_gate_up_exps.weight"):   # loader tries it first
            self._expect(p + "ffn_gate_up_exps.weight", (E, 2 * ff, H))
            src["ffn_gate_exps"] = (p + "ffn_gate_up_exps.weight", ("rows3", 0, ff))
            src["ffn_up_exps"] = (p + "ffn_gate_up_exps.weight", ("rows3", ff, 2 * ff))
        else:
            want["ffn_gate_exps"] = want["ffn_up_exps"] = (E, ff, H)
            for n in ("ffn_gate_exps", "ffn_up_exps"):
                src[n] = (p + n + ".weight", None)
        if hp.recurrent[il]:
            self._gdn_sources(il, p, want, src)
        else:
            hd = hp.head_dim
            if self._has(p + "attn_qkv.weight"):
                raise ModelError(f"{self.g.path}: fused {p}attn_qkv.weight in a"
                                 " full-attention layer is not supported")
            want.update({"attn_q": (2 * hp.n_head * hd, H),
                         "attn_k": (hp.n_head_kv * hd, H),
                         "attn_v": (hp.n_head_kv * hd, H),
                         "attn_output": (H, hp.n_head * hd),
                         "attn_q_norm": (hd,), "attn_k_norm": (hd,)})
            for n in ATTN:
                src[n] = (p + n + ".weight", None)
            for n in ("attn_q", "attn_k", "attn_v"):
                if self._has(p + n + ".bias"):
                    raise ModelError(f"{self.g.path}: {p}{n}.bias is not"
                                     " supported (the converter writes none)")
        for n, shape in want.items():   # derived views were checked at source
            if src[n][1] is None:
                self._expect(src[n][0], shape)
        return src

    def _gdn_sources(self, il, p, want, src):
        hp, H = self.hp, self.hp.n_embd
        nk, nv, dk, dv, r = hp.nk, hp.nv, hp.dk, hp.dv, hp.r
        C = hp.conv_dim
        want.update({"ssm_conv1d": (C, hp.d_conv), "ssm_norm": (dv,),
                     "ssm_out": (H, nv * dv)})
        for n in GDN:
            src[n] = (p + n + ".weight", None)
        for n in ("ssm_dt.bias", "ssm_a"):
            self._expect(p + n, (nv,))
            src[n] = (p + n, None)
        if self._has(p + "attn_qkv.weight") or hp.arch == "qwen35moe":
            want["attn_qkv"] = (C, H)
            want["attn_gate"] = (nv * dv, H)
            src["attn_qkv"] = (p + "attn_qkv.weight", None)
            src["attn_gate"] = (p + "attn_gate.weight", None)
        else:
            # legacy qwen3next: ssm_in rows per key group g:
            # [q_g (dk) | k_g (dk) | v_{g r + m} (r dv) | z_{g r + m} (r dv)]
            name = p + "ssm_in.weight"
            self._expect(name, (2 * nk * dk + 2 * nv * dv, H))
            grp = 2 * dk + 2 * r * dv
            base = np.arange(nk) * grp
            rows_q = (base[:, None] + np.arange(dk)).ravel()
            rows_k = (base[:, None] + dk + np.arange(dk)).ravel()
            rows_v = (base[:, None] + 2 * dk + np.arange(r * dv)).ravel()
            rows_z = (base[:, None] + 2 * dk + r * dv + np.arange(r * dv)).ravel()
            src["attn_qkv"] = (name, ("rows", np.concatenate([rows_q, rows_k, rows_v])))
            src["attn_gate"] = (name, ("rows", rows_z))
        if hp.arch == "qwen3next":
            # ssm_ba rows per key group g: [b_{g r + m} (r) | a_{g r + m} (r)]
            name = p + "ssm_ba.weight"
            self._expect(name, (2 * nv, H))
            g_, m_ = np.divmod(np.arange(nv), r)
            src["ssm_beta"] = (name, ("rows", g_ * 2 * r + m_))
            src["ssm_alpha"] = (name, ("rows", g_ * 2 * r + r + m_))
        else:
            want["ssm_beta"] = want["ssm_alpha"] = (nv, H)
            src["ssm_beta"] = (p + "ssm_beta.weight", None)
            src["ssm_alpha"] = (p + "ssm_alpha.weight", None)

    def weight(self, name):
        """Tensor `name` dequantized (bit-exact float32) then as float64.
        Shared with the cache: callers must not modify it."""
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
        """Layer il's weights by short name (derived views for ssm_in,
        ssm_ba and ffn_gate_up_exps); with act_quant_on, "_in" maps each
        mat-vec input through its weight type's activation rounding."""
        lw, types = {}, {}
        for n, (tname, how) in self._sources[il].items():
            w = self.weight(tname)
            if how is not None and how[0] == "rows":
                w = w[how[1]]
            elif how is not None:                      # rows3: expert row range
                w = w[:, how[1]:how[2]]
            lw[n] = w
            types[n] = self.type_of(tname)
        if act_quant_on:
            lw["_in"] = lambda n, x: act_quant.round_for(types[n], x)
        return lw

    def close(self):
        self._cache = {}
        self.g.close()


def forward(model, tokens, n_expert_used=None, trace=None, act_quant_on=False,
            chunk=None, states=None):
    """Logits (T, n_vocab) float64 for `tokens` at positions 0..T-1.
    n_expert_used overrides expert_used_count; trace, if a list, receives per
    layer the routed experts and router margins (as qwen3moe.forward);
    act_quant_on rounds quantized-weight mat-vec inputs to 8 bits; chunk:
    None = token-by-token delta rule, else the chunked form; states, if a
    dict, receives the final GDN state {layer: (conv hist, S)}."""
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
        x = rms_norm(h, lw["attn_norm"], hp.eps)
        if hp.recurrent[il]:
            m, st = gdn_block(hp, lw, x, None, chunk)
            if states is not None:
                states[il] = st
        else:
            m = gated_attn_block(hp, lw, x, pos)
        h = h + m
        x = rms_norm(h, lw["post_attention_norm"], hp.eps)
        h = h + moe_shared(x, lw, k_used, trace)
    x = rms_norm(h, model.weight("output_norm.weight"), hp.eps)
    if act_quant_on:
        x = act_quant.round_for(model.type_of(model.head_name), x)
    return x @ model.weight(model.head_name).T


def logits_for(path, tokens, n_expert_used=None, trace=None,
               act_quant_on=False, chunk=None):
    """Open `path`, run forward, close; returns float64 logits (T, V)."""
    model = Model(path)
    try:
        return forward(model, tokens, n_expert_used, trace, act_quant_on, chunk)
    finally:
        model.close()


__all__ = ["ARCHS", "GGUFError", "ModelError", "Hparams", "Model", "forward",
           "logits_for", "l2norm", "softplus", "gated_rms_norm",
           "causal_conv1d", "delta_rule_recurrent", "delta_rule_chunked",
           "rope_imrope", "imrope_position_mask"]

if __name__ == "__main__":
    from cli import main
    sys.exit(main())
