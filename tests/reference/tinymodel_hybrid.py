"""tinymodel_hybrid.py: tiny random qwen3next / qwen35moe GGUF files written
in Python the way llama.cpp's converter (llama-cpp-python 0.3.36,
conversion/qwen.py) lays them out, and a second, deliberately naive forward
pass (token by token, explicit per-layer KV cache, conv history and delta-rule
state, per-head loops) used by selftest_hybrid.py to cross-check qwen3next.py.

Owns: make_hybrid_model, hybrid_metadata, hf_weights, to_gguf_tensors,
decode_loop_hybrid. Not used against the engine.
Spec: shared/architectures.md §6, §7, §8, §9; converter transforms from
llama.cpp conversion/qwen.py (Qwen3NextModel, _LinearAttentionVReorderBase).

Weights are generated once in HF order (value heads grouped by key head,
A_log, separate in_proj_qkv / z / b / a) and then written as the converter
would: qwen3next keeps grouped order and fuses b, a into ssm_ba (per key
group [b x r, a x r]) or, with legacy=True, writes ssm_in (per key group
[q | k | v x r | z x r]) instead of attn_qkv + attn_gate; qwen35moe
permutes every per-value-head tensor to tiled order (new head m*nk + g holds
old head g*r + m) and writes ssm_beta / ssm_alpha. ssm_a = -exp(A_log).
Same seed and shape -> the same model, so both files must give the same
logits wherever the RoPE variants agree.
"""

import math

import numpy as np

import gguf_writer as gw
from dequant import dequantize_tensor
from gguf_reader import GGUFFile

HYBRID_SHAPE = dict(n_layer=8, n_embd=64, n_head=4, n_head_kv=2, head_dim=32,
                    n_rot=16, interval=4, nk=2, nv=4, dk=16, d_conv=4,
                    n_expert=8, n_expert_used=2, n_ff=32, n_ff_shexp=48,
                    n_vocab=300, eps=1e-6, rope_base=10000.0,
                    sections=(3, 3, 2, 0))


def hybrid_metadata(arch, s, n_mtp=0, recurrent=None):
    a = arch + "."
    kvs = [("general.architecture", "string", arch),
           ("general.alignment", "uint32", 32),
           (a + "block_count", "uint32", s["n_layer"] + n_mtp),
           (a + "context_length", "uint32", 256),
           (a + "embedding_length", "uint32", s["n_embd"]),
           (a + "attention.head_count", "uint32", s["n_head"]),
           (a + "attention.head_count_kv", "uint32", s["n_head_kv"]),
           (a + "attention.key_length", "uint32", s["head_dim"]),
           (a + "attention.value_length", "uint32", s["head_dim"]),
           (a + "attention.layer_norm_rms_epsilon", "float32", s["eps"]),
           (a + "rope.freq_base", "float32", s["rope_base"]),
           (a + "rope.dimension_count", "uint32", s["n_rot"]),
           (a + "expert_count", "uint32", s["n_expert"]),
           (a + "expert_used_count", "uint32", s["n_expert_used"]),
           (a + "expert_feed_forward_length", "uint32", s["n_ff"]),
           (a + "expert_shared_feed_forward_length", "uint32", s["n_ff_shexp"]),
           (a + "ssm.conv_kernel", "uint32", s["d_conv"]),
           (a + "ssm.state_size", "uint32", s["dk"]),
           (a + "ssm.group_count", "uint32", s["nk"]),
           (a + "ssm.time_step_rank", "uint32", s["nv"]),
           (a + "ssm.inner_size", "uint32", s["dk"] * s["nv"]),
           (a + "full_attention_interval", "uint32", s["interval"])]
    if arch == "qwen35moe":
        kvs.append((a + "rope.dimension_sections", "array",
                    ("int32", list(s["sections"]))))
    if n_mtp:
        kvs.append((a + "nextn_predict_layers", "uint32", n_mtp))
    if recurrent is not None:      # over block_count; MTP blocks are False
        flags = list(recurrent) + [False] * n_mtp
        kvs.append((a + "attention.recurrent_layers", "array", ("bool", flags)))
    return kvs


def layer_is_recurrent(s, recurrent, il):
    if recurrent is not None:
        return bool(recurrent[il])
    return (il + 1) % s["interval"] != 0


def hf_weights(s, rng, n_mtp=0, recurrent=None, tied=False):
    """{HF-ish name: float32 array}: per layer "L{il}.<part>"; trunk first,
    then MTP, so the trunk does not depend on n_mtp."""
    H, hd, E, ff, fs = s["n_embd"], s["head_dim"], s["n_expert"], s["n_ff"], \
        s["n_ff_shexp"]
    nk, nv, dk, K = s["nk"], s["nv"], s["dk"], s["d_conv"]
    C = 2 * nk * dk + nv * dk

    def mat(*shape):
        return (rng.standard_normal(shape) / math.sqrt(shape[-1])).astype(np.float32)

    def norm(n):
        return (1.0 + 0.2 * rng.standard_normal(n)).astype(np.float32)

    w = {"token_embd": rng.standard_normal((s["n_vocab"], H)).astype(np.float32)}

    def attn_moe(p, attn):
        w[p + "attn_norm"] = norm(H)
        if attn:
            w[p + "q_proj"] = mat(2 * s["n_head"] * hd, H)
            w[p + "k_proj"] = mat(s["n_head_kv"] * hd, H)
            w[p + "v_proj"] = mat(s["n_head_kv"] * hd, H)
            w[p + "o_proj"] = mat(H, s["n_head"] * hd)
            w[p + "q_norm"] = norm(hd)
            w[p + "k_norm"] = norm(hd)
        else:
            w[p + "in_proj_qkv"] = mat(C, H)
            w[p + "in_proj_z"] = mat(nv * dk, H)
            w[p + "in_proj_b"] = mat(nv, H)
            w[p + "in_proj_a"] = mat(nv, H)
            w[p + "conv1d"] = (0.5 * rng.standard_normal((C, K))).astype(np.float32)
            w[p + "dt_bias"] = (0.5 * rng.standard_normal(nv)).astype(np.float32)
            w[p + "A_log"] = rng.uniform(-1.0, 1.0, nv).astype(np.float32)
            w[p + "lin_norm"] = norm(dk)
            w[p + "out_proj"] = mat(H, nv * dk)
        w[p + "post_norm"] = norm(H)
        w[p + "router"] = mat(E, H)
        w[p + "gate_exps"] = mat(E, ff, H)
        w[p + "up_exps"] = mat(E, ff, H)
        w[p + "down_exps"] = mat(E, H, ff)
        w[p + "sh_gate_inp"] = mat(1, H)[0]
        w[p + "sh_gate"] = mat(fs, H)
        w[p + "sh_up"] = mat(fs, H)
        w[p + "sh_down"] = mat(H, fs)

    for il in range(s["n_layer"]):
        attn_moe(f"L{il}.", not layer_is_recurrent(s, recurrent, il))
    w["output_norm"] = norm(H)
    if not tied:
        w["output"] = mat(s["n_vocab"], H)
    for j in range(n_mtp):
        p = f"L{s['n_layer'] + j}."
        attn_moe(p, True)
        w[p + "eh_proj"] = mat(H, 2 * H)
        w[p + "enorm"] = norm(H)
        w[p + "hnorm"] = norm(H)
        w[p + "shared_head_norm"] = norm(H)
    return w


def reorder_v_heads(a, axis, nk, r, head_dim):
    """Converter's _reorder_v_heads: grouped -> tiled along `axis`."""
    a = np.moveaxis(a, axis, 0)
    rest = a.shape[1:]
    a = a.reshape(nk, r, head_dim, *rest).swapaxes(0, 1).reshape(nk * r * head_dim, *rest)
    return np.ascontiguousarray(np.moveaxis(a, 0, axis))


def to_gguf_tensors(arch, s, w, n_mtp=0, recurrent=None, legacy=False,
                    merged_gate_up=False):
    """{GGUF tensor name: float32 array (NumPy shape = ne reversed)}."""
    nk, nv, dk = s["nk"], s["nv"], s["dk"]
    r = nv // nk
    out = {"token_embd.weight": w["token_embd"],
           "output_norm.weight": w["output_norm"]}
    if "output" in w:
        out["output.weight"] = w["output"]
    for il in range(s["n_layer"] + n_mtp):
        p, b = f"L{il}.", f"blk.{il}."
        out[b + "attn_norm.weight"] = w[p + "attn_norm"]
        out[b + "post_attention_norm.weight"] = w[p + "post_norm"]
        if p + "q_proj" in w:
            for src, dst in (("q_proj", "attn_q"), ("k_proj", "attn_k"),
                             ("v_proj", "attn_v"), ("o_proj", "attn_output"),
                             ("q_norm", "attn_q_norm"), ("k_norm", "attn_k_norm")):
                out[b + dst + ".weight"] = w[p + src]
        else:
            qkv, z = w[p + "in_proj_qkv"], w[p + "in_proj_z"]
            bb, aa = w[p + "in_proj_b"], w[p + "in_proj_a"]
            conv, dt, A = w[p + "conv1d"], w[p + "dt_bias"], w[p + "A_log"]
            o = w[p + "out_proj"]
            if arch == "qwen35moe" and nk != nv:
                qk = 2 * nk * dk
                qkv = np.concatenate([qkv[:qk], reorder_v_heads(qkv[qk:], 0, nk, r, dk)])
                z = reorder_v_heads(z, 0, nk, r, dk)
                bb = reorder_v_heads(bb, 0, nk, r, 1)
                aa = reorder_v_heads(aa, 0, nk, r, 1)
                dt = reorder_v_heads(dt, 0, nk, r, 1)
                A = reorder_v_heads(A, 0, nk, r, 1)
                conv = np.concatenate([conv[:qk], reorder_v_heads(conv[qk:], 0, nk, r, dk)])
                o = reorder_v_heads(o, 1, nk, r, dk)
            out[b + "ssm_conv1d.weight"] = conv
            out[b + "ssm_dt.bias"] = dt
            out[b + "ssm_a"] = (-np.exp(A.astype(np.float64))).astype(np.float32)
            out[b + "ssm_norm.weight"] = w[p + "lin_norm"]
            out[b + "ssm_out.weight"] = o
            if arch == "qwen35moe":
                out[b + "attn_qkv.weight"] = qkv
                out[b + "attn_gate.weight"] = z
                out[b + "ssm_beta.weight"] = bb
                out[b + "ssm_alpha.weight"] = aa
            else:
                rows = []
                for g in range(nk):
                    rows += [bb[g * r:(g + 1) * r], aa[g * r:(g + 1) * r]]
                out[b + "ssm_ba.weight"] = np.concatenate(rows)
                if legacy:
                    q, k, v = qkv[:nk * dk], qkv[nk * dk:2 * nk * dk], qkv[2 * nk * dk:]
                    rows = []
                    for g in range(nk):
                        rows += [q[g * dk:(g + 1) * dk], k[g * dk:(g + 1) * dk],
                                 v[g * r * dk:(g + 1) * r * dk],
                                 z[g * r * dk:(g + 1) * r * dk]]
                    out[b + "ssm_in.weight"] = np.concatenate(rows)
                else:
                    out[b + "attn_qkv.weight"] = qkv
                    out[b + "attn_gate.weight"] = z
        out[b + "ffn_gate_inp.weight"] = w[p + "router"]
        if merged_gate_up:
            out[b + "ffn_gate_up_exps.weight"] = np.concatenate(
                [w[p + "gate_exps"], w[p + "up_exps"]], axis=1)
        else:
            out[b + "ffn_gate_exps.weight"] = w[p + "gate_exps"]
            out[b + "ffn_up_exps.weight"] = w[p + "up_exps"]
        out[b + "ffn_down_exps.weight"] = w[p + "down_exps"]
        out[b + "ffn_gate_inp_shexp.weight"] = w[p + "sh_gate_inp"]
        out[b + "ffn_gate_shexp.weight"] = w[p + "sh_gate"]
        out[b + "ffn_up_shexp.weight"] = w[p + "sh_up"]
        out[b + "ffn_down_shexp.weight"] = w[p + "sh_down"]
        if p + "eh_proj" in w:
            for n in ("eh_proj", "enorm", "hnorm", "shared_head_norm"):
                out[b + "nextn." + n + ".weight"] = w[p + n]
    return out


def make_hybrid_model(path, arch, seed=0, n_mtp=0, recurrent=None, legacy=False,
                      merged_gate_up=False, tied=False, extra_kvs=(), **shape):
    """Write a random F32 `arch` GGUF at `path` (see module docstring);
    recurrent: per-trunk-layer bools written as attention.recurrent_layers
    (None: no key, the interval rule). Returns {tensor name: array}."""
    s = dict(HYBRID_SHAPE, **shape)
    w = hf_weights(s, np.random.default_rng(seed), n_mtp, recurrent, tied)
    t = to_gguf_tensors(arch, s, w, n_mtp, recurrent, legacy, merged_gate_up)
    gw.write_gguf(path, hybrid_metadata(arch, s, n_mtp, recurrent) + list(extra_kvs),
                  [gw.f32_tensor(n, a) for n, a in t.items()])
    return t


# ------------------------------------------------------- the loop decoder

def _rmsnorm(x, w, eps):
    ss = sum(float(v) * float(v) for v in x) / len(x)
    r = 1.0 / math.sqrt(ss + eps)
    return np.array([float(w[i]) * float(x[i]) * r for i in range(len(x))])


def _silu(v):
    return v / (1.0 + math.exp(-v))


def _sigm(v):
    return 1.0 / (1.0 + math.exp(-v))


class _Hp:
    def __init__(self, g):
        m = g.metadata
        self.arch = a = m["general.architecture"]
        self.L = m[a + ".block_count"] - m.get(a + ".nextn_predict_layers", 0)
        self.nh = m[a + ".attention.head_count"]
        self.nkv = m[a + ".attention.head_count_kv"]
        self.hd = m[a + ".attention.key_length"]
        self.eps = m[a + ".attention.layer_norm_rms_epsilon"]
        self.base = m[a + ".rope.freq_base"]
        self.n_rot = m[a + ".rope.dimension_count"]
        self.sections = m.get(a + ".rope.dimension_sections")
        self.K = m[a + ".expert_used_count"]
        self.conv = m[a + ".ssm.conv_kernel"]
        self.dk = m[a + ".ssm.state_size"]
        self.nk = m[a + ".ssm.group_count"]
        self.nv = m[a + ".ssm.time_step_rank"]
        self.dv = m[a + ".ssm.inner_size"] // self.nv
        rec = m.get(a + ".attention.recurrent_layers")
        iv = m.get(a + ".full_attention_interval", 4)
        self.recurrent = [bool(rec[i]) if rec is not None else (i + 1) % iv != 0
                          for i in range(self.L)]

    def pair_position(self, i, pos):
        """Position used by rotary pair i: NeoX -> pos; IMROPE -> pos for
        the t/h/w sectors, 0 (the e stream of a text token) otherwise."""
        if self.sections is None:
            return pos
        sec = self.sections
        s = i % sum(sec)
        for cls, n in ((0, sec[0]), (1, sec[1]), (2, sec[2])):
            if s % 3 == cls and s < 3 * n:
                return pos
        return 0

    def key_head(self, j):
        r = self.nv // self.nk
        return j // r if self.arch == "qwen3next" else j % self.nk


def _rope(hp, x, pos):
    y = [float(v) for v in x]
    half = hp.n_rot // 2
    for i in range(half):
        ang = hp.pair_position(i, pos) * hp.base ** (-2.0 * i / hp.n_rot)
        c, s = math.cos(ang), math.sin(ang)
        y[i] = x[i] * c - x[i + half] * s
        y[i + half] = x[i + half] * c + x[i] * s
    return np.array(y)


def _attn_layer(hp, W, p, x, t, cache):
    hd = hp.hd
    qg = W(p + "attn_q.weight") @ x
    k = (W(p + "attn_k.weight") @ x).reshape(hp.nkv, hd)
    v = (W(p + "attn_v.weight") @ x).reshape(hp.nkv, hd)
    qn, kn = W(p + "attn_q_norm.weight"), W(p + "attn_k_norm.weight")
    q = [_rope(hp, _rmsnorm(qg[a * 2 * hd:a * 2 * hd + hd], qn, hp.eps), t)
         for a in range(hp.nh)]
    gate = [qg[a * 2 * hd + hd:(a + 1) * 2 * hd] for a in range(hp.nh)]
    cache["k"].append([_rope(hp, _rmsnorm(k[b], kn, hp.eps), t) for b in range(hp.nkv)])
    cache["v"].append(list(v))
    out = []
    for a in range(hp.nh):
        b = a // (hp.nh // hp.nkv)
        sc = [float(np.dot(q[a], cache["k"][u][b])) / math.sqrt(hd) for u in range(t + 1)]
        mx = max(sc)
        e = [math.exp(s - mx) for s in sc]
        z = sum(e)
        o = sum((e[u] / z) * cache["v"][u][b] for u in range(t + 1))
        out.append(np.array([o[i] * _sigm(gate[a][i]) for i in range(hd)]))
    return W(p + "attn_output.weight") @ np.concatenate(out)


def _gdn_inputs(hp, W, g, p, x):
    """Conv input X (length C, [all q | all k | all v]), z (nv, dv), b, a."""
    nk, nv, dk, dv = hp.nk, hp.nv, hp.dk, hp.dv
    r = nv // nk
    if p + "attn_qkv.weight" in g.tensors:
        X = W(p + "attn_qkv.weight") @ x
        z = (W(p + "attn_gate.weight") @ x).reshape(nv, dv)
    else:                                   # legacy ssm_in, §6.3.1 formulas
        P = W(p + "ssm_in.weight") @ x
        qs, ks, vs, zs = [], [], [None] * nv, [None] * nv
        for gi in range(nk):
            base = gi * (2 * dk + 2 * r * dv)
            qs.append(P[base:base + dk])
            ks.append(P[base + dk:base + 2 * dk])
            for m in range(r):
                vs[gi * r + m] = P[base + 2 * dk + m * dv:base + 2 * dk + (m + 1) * dv]
                o = base + 2 * dk + r * dv
                zs[gi * r + m] = P[o + m * dv:o + (m + 1) * dv]
        X = np.concatenate(qs + ks + vs)
        z = np.array(zs)
    if hp.arch == "qwen3next":
        PB = W(p + "ssm_ba.weight") @ x
        b = [0.0] * nv
        a = [0.0] * nv
        for gi in range(nk):
            for m in range(r):
                b[gi * r + m] = PB[gi * 2 * r + m]
                a[gi * r + m] = PB[gi * 2 * r + r + m]
    else:
        b = list(W(p + "ssm_beta.weight") @ x)
        a = list(W(p + "ssm_alpha.weight") @ x)
    return X, z, b, a


def _gdn_layer(hp, W, g, p, x, st):
    nk, nv, dk, dv = hp.nk, hp.nv, hp.dk, hp.dv
    X, z, b, a = _gdn_inputs(hp, W, g, p, x)
    wc = W(p + "ssm_conv1d.weight")                 # (C, K)
    C, K = wc.shape
    window = st["conv"] + [X]                       # K-1 previous inputs + X_t
    Y = np.array([_silu(sum(float(wc[c][j]) * float(window[j][c]) for j in range(K)))
                  for c in range(C)])
    st["conv"] = window[1:]
    qh, kh = [], []
    for i in range(nk):
        qi = Y[i * dk:(i + 1) * dk]
        ki = Y[nk * dk + i * dk:nk * dk + (i + 1) * dk]
        nq = math.sqrt(sum(float(v) * float(v) for v in qi) + hp.eps)
        nkk = math.sqrt(sum(float(v) * float(v) for v in ki) + hp.eps)
        qh.append(qi / nq / math.sqrt(dk))
        kh.append(ki / nkk)
    A, dt = W(p + "ssm_a"), W(p + "ssm_dt.bias")
    wn = W(p + "ssm_norm.weight")
    outs = []
    for j in range(nv):
        i = hp.key_head(j)
        v = Y[2 * nk * dk + j * dv:2 * nk * dk + (j + 1) * dv]
        beta = _sigm(b[j])
        sp = math.log1p(math.exp(a[j] + dt[j]))
        alpha = math.exp(A[j] * sp)
        S = st["S"][j]                              # (dk, dv)
        for row in range(dk):
            S[row] *= alpha
        u = np.array([sum(S[row][col] * kh[i][row] for row in range(dk)) for col in range(dv)])
        delta = beta * (v - u)
        for row in range(dk):
            S[row] += kh[i][row] * delta
        o = np.array([sum(S[row][col] * qh[i][row] for row in range(dk)) for col in range(dv)])
        on = _rmsnorm(o, wn, hp.eps)
        outs.append(np.array([on[c] * _silu(z[j][c]) for c in range(dv)]))
    return W(p + "ssm_out.weight") @ np.concatenate(outs)


def _moe_shared(hp, W, g, p, x, k_used):
    r = W(p + "ffn_gate_inp.weight") @ x
    mx = max(r)
    e = [math.exp(v - mx) for v in r]
    probs = [v / sum(e) for v in e]
    top = sorted(range(len(probs)), key=lambda i: -probs[i])[:k_used]
    tot = sum(probs[i] for i in top)
    if p + "ffn_gate_up_exps.weight" in g.tensors:
        gu = W(p + "ffn_gate_up_exps.weight")
        ff = gu.shape[1] // 2
        Wg, Wu = gu[:, :ff], gu[:, ff:]
    else:
        Wg, Wu = W(p + "ffn_gate_exps.weight"), W(p + "ffn_up_exps.weight")
    y = np.zeros_like(x)
    for i in top:
        gg, uu = Wg[i] @ x, Wu[i] @ x
        h = np.array([_silu(gg[j]) * uu[j] for j in range(len(gg))])
        y += (probs[i] / tot) * (W(p + "ffn_down_exps.weight")[i] @ h)
    gg, uu = W(p + "ffn_gate_shexp.weight") @ x, W(p + "ffn_up_shexp.weight") @ x
    h = np.array([_silu(gg[j]) * uu[j] for j in range(len(gg))])
    s = W(p + "ffn_down_shexp.weight") @ h
    gam = _sigm(float(np.dot(W(p + "ffn_gate_inp_shexp.weight"), x)))
    return y + gam * s


def decode_loop_hybrid(path, tokens, k_used=None):
    """Logits (T, V) float64, one token at a time; each layer keeps its own
    KV cache (attention) or conv history + delta-rule state (GDN)."""
    g = GGUFFile(path)
    hp = _Hp(g)
    k_used = hp.K if k_used is None else k_used
    memo = {}

    def W(name):
        if name not in memo:
            memo[name] = dequantize_tensor(g, name).astype(np.float64)
        return memo[name]

    head = "output.weight" if "output.weight" in g.tensors else "token_embd.weight"
    C = 2 * hp.nk * hp.dk + hp.nv * hp.dv
    state = [{"k": [], "v": []} if not hp.recurrent[il] else
             {"conv": [np.zeros(C) for _ in range(hp.conv - 1)],
              "S": [np.zeros((hp.dk, hp.dv)) for _ in range(hp.nv)]}
             for il in range(hp.L)]
    rows = []
    for t, tok in enumerate(tokens):
        h = W("token_embd.weight")[tok].copy()
        for il in range(hp.L):
            p = f"blk.{il}."
            x = _rmsnorm(h, W(p + "attn_norm.weight"), hp.eps)
            if hp.recurrent[il]:
                h = h + _gdn_layer(hp, W, g, p, x, state[il])
            else:
                h = h + _attn_layer(hp, W, p, x, t, state[il])
            x = _rmsnorm(h, W(p + "post_attention_norm.weight"), hp.eps)
            h = h + _moe_shared(hp, W, g, p, x, k_used)
        rows.append(W(head) @ _rmsnorm(h, W("output_norm.weight"), hp.eps))
    g.close()
    return np.array(rows)
