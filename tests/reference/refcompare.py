"""refcompare.py: how test_reference.py judges engine logits against the
reference, and the tolerances it uses (README.md: the measured figures).

Owns: Refs (the reference logits of one sequence, exact and with 8-bit
activation rounding, and its flip-free positions), judge (one case), Stats
(the per-type tallies behind the SUMMARY lines). Errors are always
max|engine - ref| / max|ref_exact|, per position (row of logits).
"""

import numpy as np

import act_quant
import qwen3moe as ref

FLOAT_TYPES = ("f32", "f16", "bf16")
# exact reference, flip-free positions; float types also every position
# (quantized: measured 1.6e-2 .. 2.4e-2, the cost of 8-bit activations)
EXACT_TOL = {"f32": 1e-4, "f16": 1e-4, "bf16": 1e-4, "q8_0": 4e-2,
             "q4_0": 4e-2, "q4_k": 4e-2, "q5_k": 4e-2, "q6_k": 4e-2,
             "q3_k": 4e-2, "q2_k": 4e-2}
AQ_TOL = 1e-4           # against the 8-bit-activation reference (act_quant)
ISA_TOL = 1e-4          # an engine variant against its own --isa ref run
AQ_CLEAN_MIN = 0.5      # per quantized type: share of positions within AQ_TOL
ISA_CLEAN_MIN = 0.5     # per quantized type: share within ISA_TOL
TOP1_MIN_FRACTION = 0.75


class Refs:
    """The reference for one token sequence: exact float64 logits, logits
    with 8-bit activation rounding (aq), and the flip-free positions (those
    before the first token whose experts the rounding swaps in any layer)."""

    def __init__(self, model, tokens, k_used=None):
        tr_e, tr_q = [], []
        self.exact = ref.forward(model, tokens, k_used, tr_e)
        if any(t.type_name in act_quant.ROUND_Q8_0 + act_quant.ROUND_Q8_K
               for t in model.g.tensors.values()):
            self.aq = ref.forward(model, tokens, k_used, tr_q, True)
        else:                       # no 8-bit activations: the same numbers
            self.aq, tr_q = self.exact, tr_e
        same = np.ones(len(tokens), dtype=bool)
        for a, b in zip(tr_e, tr_q):
            same &= np.all(a["experts"] == b["experts"], axis=1)
        self.flip_free = np.logical_and.accumulate(same)
        self.scale = float(np.max(np.abs(self.exact)))


def row_err(a, b, scale):
    return np.abs(a - b).max(axis=1) / scale


def _top1(eng, want, rows, tol_rel, scale):
    """(all decisive rows agree, n agree, n agree or near tie): a row is
    decisive when its reference top-1/top-2 gap exceeds twice tol_rel*scale
    (an error of tol_rel may legitimately swap a closer pair)."""
    srt = np.sort(want[rows], axis=-1)
    gap = srt[:, -1] - srt[:, -2]
    agree = np.argmax(eng[rows], axis=-1) == np.argmax(want[rows], axis=-1)
    decisive = gap > 2.0 * max(tol_rel, 1e-7) * scale
    return (bool(np.all(agree[decisive])), int(np.sum(agree)),
            int(np.sum(agree | ~decisive)))


def judge(eng, refs, wtype, stats):
    """(ok, text) of one engine run; feeds stats with the aq errors."""
    ff = refs.flip_free
    ex = row_err(eng, refs.exact, refs.scale)
    aq = row_err(eng, refs.aq, refs.scale)
    ex_ff = float(np.max(ex[ff])) if np.any(ff) else 0.0
    dec_ok, _, _ = _top1(eng, refs.exact, ff, ex_ff, refs.scale)
    _, n_agree, n_fine = _top1(eng, refs.exact, slice(None),
                               EXACT_TOL[wtype], refs.scale)
    n = len(ff)
    ok = bool(np.all(np.isfinite(eng)) and ex_ff <= EXACT_TOL[wtype] and
              dec_ok and n_fine >= TOP1_MIN_FRACTION * n)
    if wtype in FLOAT_TYPES:
        ok = ok and float(np.max(ex)) <= EXACT_TOL[wtype]
    stats.add_aq(wtype, aq)
    text = (f"exact {np.max(ex):.1e}, flip-free {int(np.sum(ff))}/{n}"
            f" {ex_ff:.1e} (tol {EXACT_TOL[wtype]:.0e}); top1 {n_agree}/{n}"
            f" ({n_fine - n_agree} near ties);"
            f" aq {np.max(aq):.1e} ({int(np.sum(aq <= AQ_TOL))}/{n}"
            f" <= {AQ_TOL:.0e})")
    if not dec_ok:
        text += " (a decisive position's top-1 differs)"
    return ok, text


class Stats:
    """Per-type tallies of the positions within AQ_TOL / ISA_TOL."""

    def __init__(self):
        self.aq = {}
        self.isa_runs = {}

    def add_aq(self, wtype, errs):
        self.aq.setdefault(wtype, []).extend(float(e) for e in errs)

    def isa(self, eng, base, scale, wtype):
        """(ok, text) of a variant against the --isa ref run. Float types
        must agree everywhere; quantized ones are tallied for the summary."""
        d = row_err(eng, base, scale)
        self.isa_runs.setdefault(wtype, []).extend(float(e) for e in d)
        ok = wtype not in FLOAT_TYPES or float(np.max(d)) <= ISA_TOL
        return ok, (f"{np.max(d):.1e} ({int(np.sum(d <= ISA_TOL))}/{d.size}"
                    f" <= {ISA_TOL:.0e})")

    def summary(self, wtype):
        """[(ok, line)] for the SUMMARY of one quantized type."""
        out = []
        for what, errs, tol, need in (
                ("8-bit-activation reference", self.aq.get(wtype), AQ_TOL,
                 AQ_CLEAN_MIN),
                ("engine --isa ref run", self.isa_runs.get(wtype), ISA_TOL,
                 ISA_CLEAN_MIN)):
            if not errs:
                continue
            e = np.array(errs)
            frac = float(np.mean(e <= tol))
            out.append((frac >= need,
                        f"SUMMARY {wtype}: {int(np.sum(e <= tol))}/{e.size}"
                        f" positions within {tol:.0e} of the {what}"
                        f" ({frac:.0%}, need {need:.0%}); median {np.median(e):.1e},"
                        f" max {np.max(e):.1e}"))
        return out
