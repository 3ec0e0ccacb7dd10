"""test_reference.py: the flashmoe engine against the independent NumPy
reference (qwen3moe.py) on tiny random models.

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
from refcompare import FLOAT_TYPES, Refs, Stats, judge  # noqa: E402

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


def gen_tiny(path, seed, dims, wtype, tied):
    cmd = [BIN, "gen-tiny", "--arch", "qwen3moe", "--out", path,
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
    runs = variants(len(tokens), isas) if k_used is None else \
        [(f"experts-per-token={k_used}", ["--experts-per-token", str(k_used)])]
    base = None
    for label, extra in runs:
        eng, err = engine_logits(path, tokens, path + ".logits",
                                 model.n_vocab, extra)
        line = f"{tag} len={len(tokens)} {label}"
        if eng is None:
            tot.report(False, f"{line}: engine failed: {err}")
            continue
        ok, text = judge(eng, refs, wtype, stats)
        if label == "isa=ref":
            base = eng
        elif base is not None:
            d_ok, d_text = stats.isa(eng, base, refs.scale, wtype)
            ok, text = ok and d_ok, f"{text}, vs isa=ref {d_text}"
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


def parse_args(argv):
    """--quick (f32, q8_0, q4_k only), --types a,b and --models a,b."""
    types, models = list(ALL_TYPES), list(MODELS)
    it = iter(argv)
    for a in it:
        if a == "--quick":
            types = [t for t in types if t in QUICK_TYPES]
        elif a in ("--types", "--models"):
            val = next(it, "").split(",")
            bad = [v for v in val if v not in (ALL_TYPES if a == "--types"
                                               else MODELS)]
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
    tot, stats = Totals(), Stats()
    with tempfile.TemporaryDirectory(prefix="fm_reference_") as tmp:
        for name in models:
            for wtype in MODELS[name][2]:
                if wtype in types:
                    run_model_type(tot, stats, tmp, name, wtype, isas)
    for wtype in ALL_TYPES:
        if wtype not in FLOAT_TYPES:
            for ok, line in stats.summary(wtype):
                tot.report(ok, line)
    print(f"test_reference: {tot.passed} passed, {tot.failed} failed")
    return 0 if tot.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
