"""selftest_model.py: checks of the math and the forward pass in qwen3moe.py
(run by selftest.py). Hand cases use numbers worked out on paper; the
model checks compare against tinymodel.decode_loop, a naive second
transcription of architectures.md §5."""

import math
import os
import tempfile

import numpy as np

import gguf_writer as gw
import qwen3moe as ref
from checklib import check, close
from tinymodel import DEFAULT_SHAPE, decode_loop, make_tiny_model, tiny_metadata


def test_rms_norm_hand():
    # x = [3, 4]: mean square 12.5; w = [1, 2]
    y = ref.rms_norm(np.array([3.0, 4.0]), np.array([1.0, 2.0]), 0.0)
    close(y, [0.848528137423857, 2.262741699796952], 1e-15, "rms_norm")
    y = ref.rms_norm(np.array([[0.0, 0.0]]), np.array([1.0, 1.0]), 1e-6)
    close(y, [[0.0, 0.0]], 0, "rms_norm of zeros with eps")


def test_rope_hand():
    # hd = n_rot = 4, base 100: inv_freq = [1, 0.1]; pos 2: angles [2, 0.2];
    # pairs (0, 2) and (1, 3). cos 2 = -0.41615, sin 2 = 0.90930,
    # cos .2 = 0.98007, sin .2 = 0.19867.
    x = np.array([[[1.0, 2.0, 3.0, 4.0]]])
    y = ref.rope_neox(x, [2], 4, 100.0)
    want = [-3.1440391170241875, 1.1654558325022384,
            -0.33914308281574557, 4.317604972955089]
    close(y[0, 0], want, 1e-12, "rope pos 2")
    close(ref.rope_neox(x, [0], 4, 100.0), x, 0, "rope pos 0 is identity")
    # partial: n_rot 2 rotates the pair (0, 1) by pos*1 and leaves 2, 3
    y = ref.rope_neox(x, [2], 2, 100.0)
    want = [1 * math.cos(2) - 2 * math.sin(2), 2 * math.cos(2) + 1 * math.sin(2),
            3.0, 4.0]
    close(y[0, 0], want, 1e-12, "rope partial")


def test_attention_hand():
    # T = 2, two query heads sharing one kv head, hd = 2.
    # k0 = [0, 0], k1 = [sqrt2 * ln 3, 0]; v0 = [4, 0], v1 = [0, 8].
    # Token 0 sees only itself: out = v0 for both heads.
    # Token 1, head 0, q = [1, 0]: scores [0, ln 3] -> p = [1/4, 3/4]
    #   -> out = [1, 6]. Head 1, q = [0, 1]: scores [0, 0] -> out = [2, 4].
    q = np.array([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]]])
    k = np.array([[[0.0, 0.0]], [[math.sqrt(2) * math.log(3), 0.0]]])
    v = np.array([[[4.0, 0.0]], [[0.0, 8.0]]])
    out = ref.attention(q, k, v)
    close(out, [[4, 0, 4, 0], [1, 6, 2, 4]], 1e-12, "attention")
    # GQA grouping: 4 query heads, 2 kv heads -> heads 0,1 use kv 0 and
    # heads 2,3 use kv 1 (consecutive, not modulo).
    q = np.zeros((1, 4, 2))
    k = np.zeros((1, 2, 2))
    v = np.array([[[1.0, 2.0], [3.0, 4.0]]])
    close(ref.attention(q, k, v), [[1, 2, 1, 2, 3, 4, 3, 4]], 0, "gqa groups")


def test_route_hand():
    # probs 1:2:3:4 / 10; top 2 = experts 3, 2 with 0.4, 0.3
    logits = np.log(np.array([[1.0, 2.0, 3.0, 4.0]]))
    idx, w, _ = ref.route(logits, 2, True)
    check(list(idx[0]) == [3, 2], f"route idx {idx}")
    close(w, [[4 / 7, 3 / 7]], 1e-15, "route renormalised")
    _, w, _ = ref.route(logits, 2, False)
    close(w, [[0.4, 0.3]], 1e-15, "route not renormalised")


def test_moe_hand():
    # H = I = 1, two experts, flat router -> weights 0.5, 0.5; x = 1.
    # expert 0: gate 0 -> silu 0 = 0; expert 1: gate 1, up 2, down 3 ->
    # 0.5 * 3 * silu(1) * 2 = 3 * 0.7310585786 = 2.1931757358.
    lw = {"ffn_gate_inp": np.zeros((2, 1)),
          "ffn_gate_exps": np.array([[[0.0]], [[1.0]]]),
          "ffn_up_exps": np.array([[[1.0]], [[2.0]]]),
          "ffn_down_exps": np.array([[[1.0]], [[3.0]]])}
    y = ref.moe_ffn(np.array([[1.0]]), lw, 2, True)
    close(y, [[2.193175735890015]], 1e-15, "moe sum")


def _tmp(name):
    return os.path.join(tempfile.mkdtemp(prefix="fm_ref_"), name)


def test_model_vs_loop_decoder():
    shapes = [dict(), dict(n_layer=3, n_embd=64, n_head=2, n_head_kv=2,
                           head_dim=32, n_expert=4, n_expert_used=4, n_ff=64,
                           n_vocab=100, rope_base=1e6),
              dict(n_head=8, n_head_kv=2, head_dim=8, n_rot=4, n_vocab=50)]
    rng = np.random.default_rng(7)
    for i, shape in enumerate(shapes):
        path = _tmp(f"m{i}.gguf")
        make_tiny_model(path, seed=i, **shape)
        toks = rng.integers(0, shape.get("n_vocab", 300), 6)
        got = ref.logits_for(path, toks)
        want = decode_loop(path, toks)
        err = np.max(np.abs(got - want)) / np.max(np.abs(want))
        check(err < 1e-12, f"shape {i}: forward vs loop decoder rel {err:.2e}")
        pre = ref.logits_for(path, toks[:3])
        check(np.max(np.abs(pre - got[:3])) < 1e-12 * np.max(np.abs(got)),
              f"shape {i}: prefix logits differ (causality)")
        os.unlink(path)


def test_model_q8_0_equals_dequantized_f32():
    qpath, fpath = _tmp("q.gguf"), _tmp("f.gguf")
    vals = make_tiny_model(qpath, seed=3, wtype="Q8_0")
    gw.write_gguf(fpath, tiny_metadata(DEFAULT_SHAPE),
                  [gw.f32_tensor(n, a) for n, a in vals.items()])
    toks = [5, 0, 299, 17]
    a, b = ref.logits_for(qpath, toks), ref.logits_for(fpath, toks)
    check(np.array_equal(a, b), "Q8_0 file != F32 file of its dequantized values")
    os.unlink(qpath)
    os.unlink(fpath)


def test_model_tied_output_and_override():
    path = _tmp("tied.gguf")
    vals = make_tiny_model(path, seed=4, tied=True)
    check("output.weight" not in vals, "tied model has output.weight")
    toks = [1, 2, 3]
    got = ref.logits_for(path, toks)
    close(got, decode_loop(path, toks), 1e-10, "tied output vs loop decoder")
    one = ref.logits_for(path, toks, n_expert_used=1)
    all8 = ref.logits_for(path, toks, n_expert_used=8)
    check(not np.allclose(one, got) and not np.allclose(all8, got),
          "--experts-per-token override has no effect")
    try:
        ref.logits_for(path, toks, n_expert_used=9)
        check(False, "experts per token 9 > 8 accepted")
    except ref.ModelError:
        pass
    try:
        ref.logits_for(path, [300])
        check(False, "token id 300 of vocab 300 accepted")
    except ref.ModelError:
        pass
    os.unlink(path)


TESTS = [test_rms_norm_hand, test_rope_hand, test_attention_hand,
         test_route_hand, test_moe_hand, test_model_vs_loop_decoder,
         test_model_q8_0_equals_dequantized_f32,
         test_model_tied_output_and_override]
