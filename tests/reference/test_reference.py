"""test_reference.py: the flashmoe engine against the independent NumPy
reference (qwen3moe.py; qwen3next.py for the hybrids) on tiny random models.

  /usr/bin/python3 tests/reference/test_reference.py [--quick]
      [--types f32,q4_k,...] [--models a,b,...]
  exit 0 pass, 1 fail, 77 skip (no build/release/flashmoe, or no numpy);
  FLASHMOE_BIN=path overrides the binary.

For each tiny model shape (MODELS) and weight type it runs `flashmoe
gen-tiny`, then `flashmoe logits` on token sequences of lengths 1, 5 and
19, and the reference on the same file and tokens. On the longest sequence
the engine also runs with each ISA the CPU has (--isa ref|avx2|avx512),
with -t 2 and with --batch 1 (token by token); K = 1 and K = n_expert
(--experts-per-token) run on some types. Errors are max|engine - ref| /
max|ref| per position (refcompare.py); README.md gives the measured figures
behind every tolerance. Per case (one line each):
  - exact: against the exact float64 reference, on the flip-free positions
    (before the first token whose experts 8-bit activation rounding swaps
    in the reference itself) <= EXACT_TOL[type]; f32/f16/bf16: 1e-4;
  - top-1: every decisive flip-free position agrees with the exact
    reference, and >= 75% of all positions agree or are near ties (a
    top-1/top-2 gap under twice the tolerance);
  - float types also: every position within 1e-4 of the reference and of
    the engine's own --isa ref run.
Per quantized type, over all its cases (SUMMARY lines): >= 50% of the
positions within AQ_TOL of the reference that rounds activations to
Q8_0/Q8_K as the formats define (act_quant.py), and >= 50% of the variant
positions within ISA_TOL of the --isa ref run. (A rounding that lands on a
different side of a .5 in float32 than in float64 moves the result ~1e-3
from that token on; a real kernel bug moves every position.)

The hybrids (HYBRID_MODELS: qwen3next "next", qwen35moe "35moe"; every
type): sequences of 5 and 160 tokens (160 crosses the engine's 64-token
DeltaNet prefill chunks), the long one run as one batch, token by token
(--batch 1) and in batches of 37, each resident and streamed through a
cache of STREAM_SLOTS expert slots (--cache-size; must give exactly the
resident run's bytes), plus every ISA and -t 2; K = 1 and K = n_expert on
f32/q8_0/q4_k; 8 more 4-token sequences. Same judging with HYBRID_TOL
(refcompare.py): float types 1e-4 everywhere; quantized types a gross 4e-1
on flip-free positions, the median error of a long run against the
8-bit-activation reference <= 6e-2, and the SUMMARY hybrid tallies over the
first 4 positions of one run per sequence (one rounding event there moves
all later positions ~1e-2, and events are frequent in these models).
Then the `N passed, N failed` totals.
"""

import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
except ImportError:  # the tier needs Debian's python3-numpy
    print("SKIP test_reference: numpy missing (apt-get install python3-numpy;"
          " run with /usr/bin/python3)")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import qwen3moe as ref  # noqa: E402
import qwen3next as hyb  # noqa: E402
from refcompare import FLOAT_TYPES, HYBRID_TOL, Refs, Stats, judge  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("FLASHMOE_BIN",
                     os.path.join(ROOT, "build", "release", "flashmoe"))

# name -> (seed, gen-tiny flags, types). Rows of K-quant tensors must be
# multiples of 256, so the K types run on shapes whose row lengths
# (hidden, n_head*head_dim, expert_ff) are multiples of 256. gen-tiny
# needs vocab >= 259 (bytes + specials).
BLOCK32_TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0")
ALL_TYPES = BLOCK32_TYPES + ("q4_k", "q5_k", "q6_k", "q3_k", "q2_k")
MODELS = {
    # the brief's first shape: GQA 4/2, 8 experts, 2 used
    "a": (11, dict(layers=2, hidden=64, heads=4, kv_heads=2, head_dim=16,
                   experts=8, experts_used=2, expert_ff=32, vocab=300),
          BLOCK32_TYPES),
    # more layers, n_head == n_kv_head, head_dim 64, odd vocab
    "b": (22, dict(layers=4, hidden=256, heads=4, kv_heads=4, head_dim=64,
                   experts=8, experts_used=2, expert_ff=256, vocab=301),
          ALL_TYPES),
    # experts_used == n_expert, head_dim 32, GQA 8/2
    "c": (33, dict(layers=3, hidden=256, heads=8, kv_heads=2, head_dim=32,
                   experts=4, experts_used=4, expert_ff=256, vocab=270),
          ALL_TYPES),
    # tied output (no output.weight), MQA 8/1, 16 experts
    "d": (44, dict(layers=2, hidden=512, heads=8, kv_heads=1, head_dim=64,
                   experts=16, experts_used=4, expert_ff=256, vocab=260),
          ("f32", "q8_0", "q4_k", "q6_k")),
}
TIED = {"d"}
SEQ_LENS = (1, 5, 19)
OVERRIDE_TYPES = ("f32", "q8_0", "q4_k")
QUICK_TYPES = ("f32", "q8_0", "q4_k")

# The hybrid architectures (Gated DeltaNet + gated attention + shared
# expert): name -> (seed, arch, gen-tiny flags, types). Every row length is
# a multiple of 256 (hidden, n_head*head_dim, ssm heads*state, expert_ff),
# so every type runs; the value heads outnumber the key heads (grouped vs
# tiled matters). "next": DeltaNet layers 0-2, attention at 3, shared_ff
# 256 (all quantized); "35moe": attention at 1 and 3, 3 of 8 experts, the
# default shared_ff 48 (its down projection stays F32).
HYBRID_MODELS = {
    "next": (55, "qwen3next",
             dict(layers=4, hidden=256, heads=2, kv_heads=1, head_dim=128,
                  experts=8, experts_used=2, expert_ff=256, shared_ff=256,
                  vocab=300, ssm_state=64, ssm_groups=2, ssm_heads=4),
             ALL_TYPES),
    "35moe": (66, "qwen35moe",
              dict(layers=4, full_attn_interval=2, hidden=256, heads=4,
                   kv_heads=2, head_dim=64, experts=8, experts_used=3,
                   expert_ff=256, vocab=300, ssm_state=32, ssm_groups=2,
                   ssm_heads=8),
              ALL_TYPES),
}
# the engine's DeltaNet prefill works in chunks of 64 tokens: 160 = 64 + 64
# + 32, and --batch 37 splits chunks across fm_eval calls
HYBRID_LENS = (5, 160)
STREAM_SLOTS = 6        # expert cache slots when streamed (>= experts_used)
# short sequences per (model, type), run with --isa ref and the default
# ISA: independent starting points for the tight tallies (refcompare:
# HYBRID_AQ_WINDOW), which one rounding event ends for the rest of a run
HYBRID_SHORT = (8, 4)   # (how many, length)


class Totals:
    def __init__(self):
        self.passed = self.failed = 0

    def report(self, ok, line):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        print(("PASS " if ok else "FAIL ") + line, flush=True)


def cpu_isas():
    """ISAs to try besides ref, from /proc/cpuinfo (Linux x86-64)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = set(f.read().split())
    except OSError:
        return []
    out = []
    if {"avx2", "fma", "f16c"} <= flags:
        out.append("avx2")
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
        out.append("avx512")
    return out


def run(cmd):
    """Run a command; returns (ok, stderr tail)."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return False, "timed out after 120 s"
    return p.returncode == 0, (p.stderr or p.stdout).strip()[-400:]


def gen_tiny(path, seed, dims, wtype, tied, arch="qwen3moe"):
    cmd = [BIN, "gen-tiny", "--arch", arch, "--out", path,
           "--seed", str(seed), "--type", wtype]
    for k, v in dims.items():
        cmd += ["--" + k.replace("_", "-"), str(v)]
    if tied:
        cmd.append("--tied")
    return run(cmd)


def engine_logits(model, tokens, out, n_vocab, extra):
    """The engine's logits (T, V) as float64, or (None, why)."""
    cmd = [BIN, "logits", "-m", model, "--token-ids",
           ",".join(map(str, tokens)), "--out", out] + extra
    ok, err = run(cmd)
    if not ok:
        return None, err
    want = len(tokens) * n_vocab * 4
    size = os.path.getsize(out)
    if size != want:
        return None, f"{out}: {size} bytes, expected {want}"
    return np.fromfile(out, dtype="<f4").astype(np.float64).reshape(
        len(tokens), n_vocab), ""


def variants(n_tok, isas):
    """(label, extra flags) of the engine runs for a sequence length."""
    if n_tok != max(SEQ_LENS):
        return [("default", [])]
    out = [("isa=ref", ["--isa", "ref"])]
    out += [(f"isa={i}", ["--isa", i]) for i in isas]
    out += [("t=2", ["-t", "2"]), ("batch=1", ["--batch", "1"])]
    return out


def run_sequence(ctx, tag, tokens, wtype, k_used=None):
    """Every engine variant of one token sequence against the reference."""
    tot, stats, path, model, isas = ctx
    refs = Refs(model, tokens, k_used)
    run_variants(ctx, tag, tokens, wtype, refs, k_used)


def run_variants(ctx, tag, tokens, wtype, refs, k_used=None, runs=None,
                 tally=None):
    """The engine runs (label, flags) of one sequence against refs; the
    "isa=ref" run is the base the others are also compared with; a label
    "X stream" must give exactly the bytes of the resident run "X".
    tally: the labels whose errors feed the SUMMARY tallies (None: all)."""
    tot, stats, path, model, isas = ctx
    if runs is None:
        runs = variants(len(tokens), isas) if k_used is None else \
            [(f"experts-per-token={k_used}",
              ["--experts-per-token", str(k_used)])]
    base, done = None, {}
    for label, extra in runs:
        eng, err = engine_logits(path, tokens, path + ".logits",
                                 model.n_vocab, extra)
        line = f"{tag} len={len(tokens)} {label}"
        if eng is None:
            tot.report(False, f"{line}: engine failed: {err}")
            continue
        done[label] = eng
        counted = tally is None or label in tally
        ok, text = judge(eng, refs, wtype, stats, counted)
        if label == "isa=ref":
            base = eng
        elif base is not None:
            d_ok, d_text = stats.isa(eng, base, refs.scale, wtype, counted)
            ok, text = ok and d_ok, f"{text}, vs isa=ref {d_text}"
        if label.endswith(" stream"):
            res = done.get(label[:-len(" stream")])
            same = res is not None and np.array_equal(eng, res)
            ok, text = ok and same, text + (", bit-identical to resident"
                                            if same else
                                            ", DIFFERS from resident")
        tot.report(ok, f"{line} {text}")


def check_types(model, wtype):
    """The file really holds the requested type in its expert tensors."""
    t = model.g.tensors["blk.0.ffn_gate_exps.weight"].type_name
    return t == wtype.upper(), t


def run_model_type(tot, stats, tmp, name, wtype, isas):
    seed, dims, _types = MODELS[name]
    tag = f"{name} {wtype}"
    path = os.path.join(tmp, f"{name}_{wtype}.gguf")
    ok, err = gen_tiny(path, seed, dims, wtype, name in TIED)
    if not ok:
        tot.report(False, f"{tag}: gen-tiny failed: {err}")
        return
    try:
        model = ref.Model(path)
    except (ref.GGUFError, ref.ModelError, ValueError) as e:
        tot.report(False, f"{tag}: reference cannot read gen-tiny's file: {e}")
        return
    ok, got = check_types(model, wtype)
    if not ok:
        tot.report(False, f"{tag}: expert tensors are {got}, asked {wtype}")
    ctx = (tot, stats, path, model, isas)
    rng = np.random.default_rng(seed * 1000 + len(wtype))
    for n in SEQ_LENS:
        tokens = [int(t) for t in rng.integers(0, model.n_vocab, n)]
        run_sequence(ctx, tag, tokens, wtype)
    if wtype in OVERRIDE_TYPES:
        for k in sorted({1, model.hp.n_expert}):
            run_sequence(ctx, tag, tokens[:5], wtype, k)
    model.close()
    os.unlink(path)


def slot_bytes(model):
    """Bytes of one expert cache slot (gate + up + down of one expert)."""
    t = model.g.tensors
    n = sum(t[f"blk.0.ffn_{w}_exps.weight"].n_bytes
            for w in ("gate", "up", "down"))
    return n // model.hp.n_expert


def hybrid_variants(n_tok, isas, cache):
    """(label, flags) of the engine runs on a hybrid model: one batch, token
    by token and batches of 37, each resident and streamed through a cache
    of STREAM_SLOTS expert slots; on the long sequence also every ISA and
    -t 2 (one batch, resident)."""
    stream = ["--cache-size", str(cache)]
    if n_tok != max(HYBRID_LENS):
        return [("batch=all", []), ("batch=all stream", stream)]
    out = [("isa=ref", ["--isa", "ref"])]
    out += [(f"isa={i}", ["--isa", i]) for i in isas]
    out += [("t=2", ["-t", "2"])]
    for b in ("all", "1", "37"):
        flags = [] if b == "all" else ["--batch", b]
        out += [(f"batch={b}", flags), (f"batch={b} stream", flags + stream)]
    return out


def run_hybrid_type(tot, stats, tmp, name, wtype, isas):
    """A qwen3next / qwen35moe gen-tiny model of one type against the hybrid
    reference (whose delta rule runs token by token: the engine's prefill
    chunks are checked against a form that has none)."""
    seed, arch, dims, _types = HYBRID_MODELS[name]
    tag = f"{name} {wtype}"
    path = os.path.join(tmp, f"{name}_{wtype}.gguf")
    ok, err = gen_tiny(path, seed, dims, wtype, False, arch)
    if not ok:
        tot.report(False, f"{tag}: gen-tiny failed: {err}")
        return
    try:
        model = hyb.Model(path)
    except (hyb.GGUFError, hyb.ModelError, ValueError) as e:
        tot.report(False, f"{tag}: reference cannot read gen-tiny's file: {e}")
        return
    ok, got = check_types(model, wtype)
    if not ok:
        tot.report(False, f"{tag}: expert tensors are {got}, asked {wtype}")
    ctx = (tot, stats, path, model, isas)
    sb = slot_bytes(model)
    cache = STREAM_SLOTS * sb + sb // 2
    rng = np.random.default_rng(seed * 1000 + len(wtype))
    # the tallies count one run of each sequence (the first positions are
    # much the same in all its variants) and, on the short ones, the
    # default ISA against --isa ref
    for n in HYBRID_LENS:
        tokens = [int(t) for t in rng.integers(0, model.n_vocab, n)]
        refs = Refs(model, tokens, None, hyb.forward)
        runs = hybrid_variants(n, isas, cache)
        run_variants(ctx, tag, tokens, wtype, refs, runs=runs,
                     tally=(runs[0][0],))
    if wtype in OVERRIDE_TYPES:
        for k in sorted({1, model.hp.n_expert}):
            refs = Refs(model, tokens[:5], k, hyb.forward)
            run_variants(ctx, tag, tokens[:5], wtype, refs, k)
    for i in range(HYBRID_SHORT[0]):
        short = [int(t) for t in rng.integers(0, model.n_vocab,
                                              HYBRID_SHORT[1])]
        refs = Refs(model, short, None, hyb.forward)
        run_variants(ctx, f"{tag} short#{i}", short, wtype, refs,
                     runs=[("isa=ref", ["--isa", "ref"]), ("default", [])])
    model.close()
    os.unlink(path)


def parse_args(argv):
    """--quick (f32, q8_0, q4_k only), --types a,b and --models a,b."""
    types, models = list(ALL_TYPES), list(MODELS) + list(HYBRID_MODELS)
    it = iter(argv)
    for a in it:
        if a == "--quick":
            types = [t for t in types if t in QUICK_TYPES]
        elif a in ("--types", "--models"):
            val = next(it, "").split(",")
            bad = [v for v in val if v not in (
                ALL_TYPES if a == "--types"
                else list(MODELS) + list(HYBRID_MODELS))]
            if bad or not val:
                raise SystemExit(f"test_reference: bad {a} {','.join(bad)}")
            types, models = (val, models) if a == "--types" else (types, val)
        else:
            raise SystemExit(f"test_reference: unknown argument {a!r}")
    return types, models


def main(argv):
    types, models = parse_args(argv)
    if not os.access(BIN, os.X_OK):
        print(f"SKIP test_reference: {BIN} not built (run make)")
        return 77
    isas = cpu_isas()
    print(f"test_reference: engine {BIN}; ISAs besides ref: "
          f"{' '.join(isas) or 'none (CPU lacks AVX2)'}")
    tot, stats, hstats = Totals(), Stats(), Stats("hybrid ", HYBRID_TOL)
    with tempfile.TemporaryDirectory(prefix="fm_reference_") as tmp:
        for name in models:
            if name in MODELS:
                for wtype in MODELS[name][2]:
                    if wtype in types:
                        run_model_type(tot, stats, tmp, name, wtype, isas)
            else:
                for wtype in HYBRID_MODELS[name][3]:
                    if wtype in types:
                        run_hybrid_type(tot, hstats, tmp, name, wtype, isas)
    for st in (stats, hstats):
        for wtype in ALL_TYPES:
            if wtype not in FLOAT_TYPES:
                for ok, line in st.summary(wtype):
                    tot.report(ok, line)
    print(f"test_reference: {tot.passed} passed, {tot.failed} failed")
    return 0 if tot.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
