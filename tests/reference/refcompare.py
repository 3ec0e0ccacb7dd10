"""refcompare.py: how test_reference.py judges engine logits against the
reference, and the tolerances it uses (README.md: the measured figures).

Owns: Refs (the reference logits of one sequence, exact and with 8-bit
activation rounding, and its flip-free positions), judge (one case), Stats
(the per-type tallies behind the SUMMARY lines, and the Tolerances in force:
QWEN3MOE_TOL, or HYBRID_TOL for qwen3next / qwen35moe). Errors are always
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

# The hybrids (qwen3next / qwen35moe, test_reference.HYBRID_MODELS; README.md
# gives the measured figures). Float types: the same 1e-4 at every position.
# Quantized types: in these random hybrids one 8-bit activation landing on
# the other side of a rounding step (float32 vs float64 inputs) moves every
# later position by ~1e-2 through the DeltaNet state and the KV cache, and
# that happens at ~10% of the positions; the exact reference differs from
# the 8-bit-activation one by up to 0.2 without any expert swap. So: 4e-1 on
# the flip-free positions (a gross check), the tight 1e-4 tallies (SUMMARY)
# over the first HYBRID_AQ_WINDOW positions of the runs counted, and on runs
# longer than AQ_MEDIAN_MIN_LEN the median row error against the
# 8-bit-activation reference <= 6e-2.
HYBRID_EXACT_TOL = dict(EXACT_TOL, **{t: 4e-1 for t in EXACT_TOL
                                      if t not in FLOAT_TYPES})
HYBRID_AQ_WINDOW = 4
HYBRID_AQ_MEDIAN_TOL = 6e-2
AQ_MEDIAN_MIN_LEN = 32


class Tolerances:
    """One set of bounds: exact (per type), aq_window (the SUMMARY tallies
    count the first aq_window positions of each run; None: all) and
    aq_median (quantized: the median row error of a run longer than
    AQ_MEDIAN_MIN_LEN against the 8-bit-activation reference; None: not
    checked)."""

    def __init__(self, exact, aq_window=None, aq_median=None):
        self.exact, self.aq_window, self.aq_median = exact, aq_window, aq_median


QWEN3MOE_TOL = Tolerances(EXACT_TOL)
HYBRID_TOL = Tolerances(HYBRID_EXACT_TOL, HYBRID_AQ_WINDOW,
                        HYBRID_AQ_MEDIAN_TOL)


class Refs:
    """The reference for one token sequence: exact float64 logits, logits
    with 8-bit activation rounding (aq), and the flip-free positions (those
    before the first token whose experts the rounding swaps in any layer)."""

    def __init__(self, model, tokens, k_used=None, forward=ref.forward):
        """forward: the reference's forward pass for the model's architecture
        (qwen3moe.forward, or qwen3next.forward for the hybrids)."""
        tr_e, tr_q = [], []
        self.exact = forward(model, tokens, k_used, tr_e)
        if any(t.type_name in act_quant.ROUND_Q8_0 + act_quant.ROUND_Q8_K
               for t in model.g.tensors.values()):
            self.aq = forward(model, tokens, k_used, tr_q, True)
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


def judge(eng, refs, wtype, stats, tally=True):
    """(ok, text) of one engine run, with stats.tol's bounds; feeds stats
    with the aq errors when tally."""
    tol = stats.tol
    exact_tol = tol.exact[wtype]
    ff = refs.flip_free
    ex = row_err(eng, refs.exact, refs.scale)
    aq = row_err(eng, refs.aq, refs.scale)
    ex_ff = float(np.max(ex[ff])) if np.any(ff) else 0.0
    dec_ok, _, _ = _top1(eng, refs.exact, ff, ex_ff, refs.scale)
    _, n_agree, n_fine = _top1(eng, refs.exact, slice(None),
                               exact_tol, refs.scale)
    n = len(ff)
    ok = bool(np.all(np.isfinite(eng)) and ex_ff <= exact_tol and
              dec_ok and n_fine >= TOP1_MIN_FRACTION * n)
    if wtype in FLOAT_TYPES:
        ok = ok and float(np.max(ex)) <= exact_tol
    if tally:
        stats.add_aq(wtype, aq)
    text = (f"exact {np.max(ex):.1e}, flip-free {int(np.sum(ff))}/{n}"
            f" {ex_ff:.1e} (tol {exact_tol:.0e}); top1 {n_agree}/{n}"
            f" ({n_fine - n_agree} near ties);"
            f" aq {np.max(aq):.1e} ({int(np.sum(aq <= AQ_TOL))}/{n}"
            f" <= {AQ_TOL:.0e})")
    if tol.aq_median is not None and wtype not in FLOAT_TYPES and \
            n > AQ_MEDIAN_MIN_LEN:
        med = float(np.median(aq))
        ok = ok and med <= tol.aq_median
        text += f", median {med:.1e} (<= {tol.aq_median:.0e})"
    if not dec_ok:
        text += " (a decisive position's top-1 differs)"
    return ok, text


class Stats:
    """Per-type tallies of the positions within AQ_TOL / ISA_TOL, and the
    bounds (tol, a Tolerances) judge applies."""

    def __init__(self, label="", tol=QWEN3MOE_TOL):
        self.label = label          # printed after SUMMARY (e.g. "hybrid ")
        self.tol = tol
        self.aq = {}
        self.isa_runs = {}

    def add_aq(self, wtype, errs):
        self.aq.setdefault(wtype, []).extend(
            float(e) for e in errs[:self.tol.aq_window])

    def isa(self, eng, base, scale, wtype, tally=True):
        """(ok, text) of a variant against the --isa ref run. Float types
        must agree everywhere; quantized ones are tallied for the summary
        (when tally)."""
        d = row_err(eng, base, scale)
        if tally:
            self.isa_runs.setdefault(wtype, []).extend(
                float(e) for e in d[:self.tol.aq_window])
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
                        f"SUMMARY {self.label}{wtype}:"
                        f" {int(np.sum(e <= tol))}/{e.size}"
                        f" positions within {tol:.0e} of the {what}"
                        f" ({frac:.0%}, need {need:.0%}); median {np.median(e):.1e},"
                        f" max {np.max(e):.1e}"))
        return out
