"""selftest_hybrid.py: checks of qwen3next.py, the reference for the hybrid
qwen3next / qwen35moe models (run by selftest.py, or alone:
`/usr/bin/python3 tests/reference/selftest_hybrid.py`).

Hand cases use numbers worked out on paper (conv taps, gated RMSNorm, L2
norm, a three-step delta rule, IMROPE sectors as ggml assigns them); the
chunked delta rule is held to the token-by-token one; the whole model is
held to tinymodel_hybrid.decode_loop_hybrid, a naive token-by-token decoder
with its own state, and to itself across file layouts the converter can
produce (grouped qwen3next vs tiled qwen35moe, legacy ssm_in, merged
ffn_gate_up_exps, MTP block present or not, recurrent_layers key or not).
"""

import atexit
import contextlib
import io
import math
import os
import shutil
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import cli  # noqa: E402
import gguf_writer as gw  # noqa: E402
import qwen3moe  # noqa: E402
import qwen3next as ref  # noqa: E402
from checklib import check, close  # noqa: E402
from tinymodel import make_tiny_model  # noqa: E402
from tinymodel_hybrid import (HYBRID_SHAPE, decode_loop_hybrid,  # noqa: E402
                              hybrid_metadata, make_hybrid_model)

TOKS = [5, 17, 299, 0, 42, 42, 7, 100, 3, 250, 11, 64, 1]


_DIR = []


def _tmp(name):
    """A path in this run's scratch directory (removed at exit)."""
    if not _DIR:
        _DIR.append(tempfile.mkdtemp(prefix="selftest_hybrid_"))
        atexit.register(shutil.rmtree, _DIR[0], True)
    return os.path.join(_DIR[0], name)


def _rel(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


# ------------------------------------------------------------ hand cases

def test_conv_hand():
    # channel 0: w = [0.5, -1, 2, 3] (tap 3 = newest), x = 1, 2, 3, 4:
    #   y0 = 3*1 = 3; y1 = 2*1 + 3*2 = 8; y2 = -1*1 + 2*2 + 3*3 = 12;
    #   y3 = 0.5*1 - 1*2 + 2*3 + 3*4 = 16.5
    # channel 1: w = [1, 0, 0, 0] -> y_t = x_{t-3} = 0, 0, 0, 10
    w = np.array([[0.5, -1.0, 2.0, 3.0], [1.0, 0.0, 0.0, 0.0]])
    xs = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0]])
    y, hist = ref.causal_conv1d(xs, w)
    close(y, [[3, 0], [8, 0], [12, 0], [16.5, 10]], 1e-15, "conv taps")
    close(hist, xs[1:], 0, "conv history = last K-1 inputs")
    # continuation: 1 token, then 3 more on top of the carried history
    y1, h1 = ref.causal_conv1d(xs[:1], w)
    y2, h2 = ref.causal_conv1d(xs[1:], w, h1)
    close(np.concatenate([y1, y2]), y, 0, "conv split at 1 (T < K-1)")
    close(h1, [[0, 0], [0, 0], [1, 10]], 0, "conv history after 1 token")


def test_norms_hand():
    # l2norm [3, 4] -> [0.6, 0.8]; eps inside the root: 1/sqrt(25 + 1e-6)
    close(ref.l2norm(np.array([3.0, 4.0]), 0.0), [0.6, 0.8], 1e-16, "l2norm")
    close(ref.l2norm(np.array([3.0, 4.0]), 1e-6),
          [3 / math.sqrt(25 + 1e-6), 4 / math.sqrt(25 + 1e-6)], 1e-16, "l2norm eps")
    close(ref.l2norm(np.zeros(3), 1e-6), np.zeros(3), 0, "l2norm of zeros")
    # gated RMSNorm: o = [3, 4], w = [1, 2], z = [0, 2], eps 0:
    # rms = sqrt(12.5); o/rms*w = [3/rms, 8/rms]; silu(0) = 0,
    # silu(2) = 2/(1+e^-2) = 1.7615941559557649 -> [0, 3.9859...]
    got = ref.gated_rms_norm(np.array([3.0, 4.0]), np.array([0.0, 2.0]),
                             np.array([1.0, 2.0]), 0.0)
    close(got, [0.0, 8 / math.sqrt(12.5) * 1.7615941559557649], 1e-15,
          "gated rms norm")
    close(ref.softplus(np.array([0.0, 30.0, -30.0])),
          [math.log(2), 30 + math.exp(-30), math.exp(-30)], 1e-15, "softplus")


def test_delta_rule_hand():
    # dk = dv = 1: q = 1, 1, 2; k = 1; v = 2, 2, 0; beta = .5, .5, 1;
    # g = 0, ln .5, 0.  t0: S = 0 -> d = .5*2 = 1, S = 1, o = 1.
    # t1: S = .5, u = .5, d = .5*1.5 = .75, S = 1.25, o = 1.25.
    # t2: u = 1.25, d = -1.25, S = 0, o = 0.
    q = np.array([1.0, 1.0, 2.0]).reshape(3, 1, 1)
    k = np.ones((3, 1, 1))
    v = np.array([2.0, 2.0, 0.0]).reshape(3, 1, 1)
    g = np.array([[0.0], [math.log(0.5)], [0.0]])
    beta = np.array([[0.5], [0.5], [1.0]])
    o, S = ref.delta_rule_recurrent(q, k, v, g, beta)
    close(o.ravel(), [1, 1.25, 0], 1e-15, "delta rule steps")
    close(S.ravel(), [0], 1e-15, "delta rule final state")
    oc, Sc = ref.delta_rule_chunked(q, k, v, g, beta, chunk=2)
    close(oc.ravel(), [1, 1.25, 0], 1e-15, "chunked delta rule steps")
    # beta = 1, unit k: after the write the state recalls v exactly for k,
    # and a query orthogonal to k reads only the (decayed) old state.
    rng = np.random.default_rng(7)
    S0 = rng.standard_normal((1, 2, 3))
    kk = np.array([[[0.6, 0.8]]])
    vv = rng.standard_normal((1, 1, 3))
    qq = np.array([[[0.8, -0.6]]])
    o, S1 = ref.delta_rule_recurrent(qq, kk, vv, np.array([[math.log(0.5)]]),
                                     np.ones((1, 1)), S0)
    close(S1[0].T @ kk[0, 0], vv[0, 0], 1e-14, "beta=1 write recalls v")
    close(o[0, 0], 0.5 * S0[0].T @ qq[0, 0], 1e-14, "orthogonal query reads old state")


def test_chunked_equals_recurrent():
    rng = np.random.default_rng(11)
    T, H, dk, dv = 150, 3, 5, 4
    q = ref.l2norm(rng.standard_normal((T, H, dk)), 1e-6) / math.sqrt(dk)
    k = ref.l2norm(rng.standard_normal((T, H, dk)), 1e-6)
    v = rng.standard_normal((T, H, dv))
    g = -ref.softplus(rng.standard_normal((T, H)) * 2)
    g[40:45] = -30.0                           # near-total forgetting
    beta = 1 / (1 + np.exp(-rng.standard_normal((T, H))))
    S0 = rng.standard_normal((H, dk, dv))
    o, S = ref.delta_rule_recurrent(q, k, v, g, beta, S0)
    for c in (1, 7, 64, 200):
        oc, Sc = ref.delta_rule_chunked(q, k, v, g, beta, S0, chunk=c)
        close(oc, o, 1e-12, f"chunk {c}: outputs")
        close(Sc, S, 1e-12, f"chunk {c}: final state")
    o0, _ = ref.delta_rule_recurrent(q, k, v, g, beta)
    oc0, _ = ref.delta_rule_chunked(q, k, v, g, beta)
    close(oc0, o0, 1e-12, "chunked from a zero state")


def test_imrope_hand():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 2, 256))
    pos = np.arange(6) * 37
    # Qwen3.5 sections: every one of the 32 pairs takes a t/h/w stream
    # (sectors 0..31: %3==0 < 33, %3==1 < 33, %3==2 < 30) -> plain NeoX
    close(ref.rope_imrope(x, pos, 64, 1e7, [11, 11, 10, 0]),
          qwen3moe.rope_neox(x, pos, 64, 1e7), 0, "imrope [11,11,10,0] = neox")
    close(ref.rope_imrope(x[..., :32], pos, 16, 1e4, [3, 3, 2, 0]),
          qwen3moe.rope_neox(x[..., :32], pos, 16, 1e4), 0, "imrope [3,3,2,0] = neox")
    # [5,1,1,0], 7 pairs (sum 7): sector 4 is %3==1 but not < 3*1, sector 5
    # is %3==2 but not < 3*1 -> stream e, position 0 for text: unrotated
    close(ref.imrope_position_mask(14, [5, 1, 1, 0]), [1, 1, 1, 1, 0, 0, 1], 0,
          "imrope sectors [5,1,1,0]")
    # [1,1,1,1] (sum 4): sector 3 is %3==0 but not < 3 -> e; pairs 3, 7
    close(ref.imrope_position_mask(16, [1, 1, 1, 1]), [1, 1, 1, 0, 1, 1, 1, 0], 0,
          "imrope sectors [1,1,1,1] wrap")
    y = ref.rope_imrope(x[..., :16], pos, 16, 1e4, [1, 1, 1, 1])
    close(y[..., [3, 11, 7, 15]], x[..., [3, 11, 7, 15]], 0, "e-stream pairs unrotated")
    close(y[..., [0, 8]], qwen3moe.rope_neox(x[..., :16], pos, 16, 1e4)[..., [0, 8]],
          0, "t-stream pair rotated as neox")


def test_key_heads():
    path = _tmp("a.gguf")
    for arch, want in (("qwen3next", [0, 0, 1, 1]), ("qwen35moe", [0, 1, 0, 1])):
        make_hybrid_model(path, arch)
        m = ref.Model(path)
        close(m.hp.key_heads(), want, 0, f"{arch} value head -> key head")
        check(m.hp.recurrent == [True, True, True, False] * 2, f"{arch} layer types")
        m.close()


# ------------------------------------------------------------ whole model

VARIANTS = [
    ("qwen3next", {}),
    ("qwen35moe", {"n_mtp": 1}),
    ("qwen3next", {"n_mtp": 1, "seed": 4,
                   "recurrent": [True, False, True, True, False, True, True, True]}),
    ("qwen35moe", {"seed": 5, "sections": (1, 1, 1, 1), "n_head": 2, "n_head_kv": 2}),
    ("qwen35moe", {"seed": 6, "nv": 2, "legacy": False, "tied": True}),
    ("qwen3next", {"seed": 8, "legacy": True, "merged_gate_up": True}),
]


def test_model_vs_decode_loop():
    path = _tmp("m.gguf")
    for arch, kw in VARIANTS:
        make_hybrid_model(path, arch, **kw)
        want = decode_loop_hybrid(path, TOKS)
        got = ref.logits_for(path, TOKS)
        check(_rel(got, want) < 1e-12, f"{arch} {kw}: forward vs loop decoder"
              f" rel err {_rel(got, want):.2e}")
        pre = ref.logits_for(path, TOKS[:4])
        check(_rel(pre, got[:4]) < 1e-12, f"{arch} {kw}: prefix (causality)")


def test_model_chunked():
    path = _tmp("m.gguf")
    for arch in ref.ARCHS:
        make_hybrid_model(path, arch, seed=9)
        m = ref.Model(path)
        st_a, st_b = {}, {}
        a = ref.forward(m, TOKS, states=st_a)
        b = ref.forward(m, TOKS, chunk=4, states=st_b)
        c = ref.forward(m, TOKS, chunk=64)
        m.close()
        check(_rel(b, a) < 1e-12 and _rel(c, a) < 1e-12,
              f"{arch}: chunked forward = token-by-token forward")
        check(sorted(st_a) == [0, 1, 2, 4, 5, 6], f"{arch}: GDN layers {sorted(st_a)}")
        for il in st_a:
            close(st_b[il][1], st_a[il][1], 1e-12, f"{arch} layer {il}: final state")
            close(st_b[il][0], st_a[il][0], 1e-12, f"{arch} layer {il}: conv history")


def test_layouts_agree():
    """Files the converter can write for one model give one answer."""
    base, other = _tmp("base.gguf"), _tmp("other.gguf")
    make_hybrid_model(base, "qwen3next", seed=12)
    want = ref.logits_for(base, TOKS)
    for arch, kw, what in (
            ("qwen35moe", {}, "qwen35moe tiled file (sections = neox)"),
            ("qwen3next", {"legacy": True}, "legacy ssm_in"),
            ("qwen3next", {"merged_gate_up": True}, "ffn_gate_up_exps"),
            ("qwen3next", {"n_mtp": 1}, "MTP block skipped"),
            ("qwen3next", {"recurrent": [True, True, True, False] * 2},
             "recurrent_layers key = interval")):
        make_hybrid_model(other, arch, seed=12, **kw)
        got = ref.logits_for(other, TOKS)
        check(_rel(got, want) < 1e-12, f"{what}: rel err {_rel(got, want):.2e}")
    # a qwen35moe file whose sections send pairs to the e stream differs
    make_hybrid_model(other, "qwen35moe", seed=12, sections=(1, 1, 1, 1))
    check(_rel(ref.logits_for(other, TOKS), want) > 1e-6, "imrope e stream matters")
    # reading the tiled file with the grouped rule must fail
    make_hybrid_model(other, "qwen35moe", seed=12)
    m = ref.Model(other)
    m.hp.key_heads = lambda: np.arange(m.hp.nv) // m.hp.r
    check(_rel(ref.forward(m, TOKS), want) > 1e-6, "tiled file, grouped rule differs")
    m.close()


def test_experts_override():
    path = _tmp("m.gguf")
    make_hybrid_model(path, "qwen35moe", seed=2)
    for k in (1, 8):
        got = ref.logits_for(path, TOKS[:6], n_expert_used=k)
        want = decode_loop_hybrid(path, TOKS[:6], k_used=k)
        check(_rel(got, want) < 1e-12, f"experts per token {k}")


def _raises(fn, what):
    try:
        fn()
    except (ref.ModelError, ref.GGUFError):
        return check(True, what)
    return check(False, f"{what}: not refused")


def test_refusals():
    path = _tmp("m.gguf")
    make_hybrid_model(path, "qwen3next")
    _raises(lambda: ref.logits_for(path, [300]), "token id = n_vocab")
    _raises(lambda: ref.logits_for(path, [1], n_expert_used=9), "K > n_expert")
    make_tiny_model(path)
    _raises(lambda: ref.Model(path), "a qwen3moe file")
    s = dict(HYBRID_SHAPE)
    kvs = [kv for kv in hybrid_metadata("qwen35moe", s)
           if not kv[0].endswith("rope.dimension_sections")]
    gw.write_gguf(path, kvs, [])
    _raises(lambda: ref.Model(path), "qwen35moe without rope.dimension_sections")
    kvs = [kv if not kv[0].endswith("ssm.inner_size") else (kv[0], kv[1], 100)
           for kv in hybrid_metadata("qwen3next", s)]
    gw.write_gguf(path, kvs, [])
    _raises(lambda: ref.Model(path), "inner_size != state_size * time_step_rank")
    t = make_hybrid_model(path, "qwen3next")
    del t["blk.1.ssm_a"]
    gw.write_gguf(path, hybrid_metadata("qwen3next", s),
                  [gw.f32_tensor(n, a) for n, a in t.items()])
    _raises(lambda: ref.Model(path), "missing blk.1.ssm_a")
    make_hybrid_model(path, "qwen3next", extra_kvs=[
        ("qwen3next.rope.scaling.type", "string", "yarn")])
    _raises(lambda: ref.Model(path), "yarn rope scaling")
    make_hybrid_model(path, "qwen35moe", n_mtp=1, extra_kvs=[
        ("qwen35moe.attention.recurrent_layers", "array", ("bool", [True] * 7))])
    _raises(lambda: ref.Model(path), "recurrent_layers of the wrong length")


def test_cli_dispatch():
    out = _tmp("logits.f32")
    for arch in ("qwen3moe",) + ref.ARCHS:
        path = _tmp(arch + ".gguf")
        if arch == "qwen3moe":
            make_tiny_model(path)
            want = qwen3moe.logits_for(path, [1, 2, 3])
        else:
            make_hybrid_model(path, arch)
            want = ref.logits_for(path, [1, 2, 3])
        rc = cli.main([path, "--token-ids", "1,2,3", "--out", out])
        got = np.fromfile(out, dtype="<f4").reshape(3, -1)
        check(rc == 0 and np.array_equal(got, want.astype("<f4")),
              f"cli {arch}: rc {rc}, same float32 logits")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = cli.main([path, "--token-ids", "300", "--out", out])
    check(rc == 1 and "token id out of range" in err.getvalue(),
          "cli: bad token id exits 1 with one line")


TESTS = [test_conv_hand, test_norms_hand, test_delta_rule_hand,
         test_chunked_equals_recurrent, test_imrope_hand, test_key_heads,
         test_model_vs_decode_loop, test_model_chunked, test_layouts_agree,
         test_experts_override, test_refusals, test_cli_dispatch]

if __name__ == "__main__":
    from checklib import run_tests
    sys.exit(run_tests(TESTS))
