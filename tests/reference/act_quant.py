"""act_quant.py: optional emulation of 8-bit activation rounding, the one
numeric step a ggml-style engine adds to a quantized-weight mat-vec.

Owns: rounding an activation vector through Q8_0 (for Q4_0/Q8_0 weights)
or Q8_K (for K-quant weights) and back, as the ggml formats define them:
  Q8_0 (32 el): d = amax/127 (f32), q = roundf(x * (1/d)) (half away from
        zero), d stored as fp16; value = q * fp16(d).
  Q8_K (256 el): m = the element of largest |x| (signed, first one on
        ties), iscale = -127/m (f32), q = min(127, nearest-even(iscale*x)),
        d = 1/iscale (f32); value = q * d.
F32, F16 and BF16 weights leave the activation as is.
Used by qwen3moe.forward(act_quant=True); the default reference (no
rounding) is the model's true value, this mode only sharpens comparisons
of quantized engines (test_reference.py). Not a model of any particular
engine's code: only of the formats.
"""

import numpy as np

ROUND_Q8_0 = ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0")
ROUND_Q8_K = ("Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K")


def _blocks(x, n):
    x32 = np.asarray(x, dtype=np.float32)
    if x32.shape[-1] % n:
        raise ValueError(f"activation length {x32.shape[-1]} not a multiple"
                         f" of {n}")
    return x32.reshape(-1, n)


def round_q8_0(x):
    """x (..., k*32) -> float64 values after a Q8_0 round trip."""
    b = _blocks(x, 32)
    amax = np.max(np.abs(b), axis=1, keepdims=True)
    d = amax / np.float32(127)
    with np.errstate(divide="ignore"):
        inv = np.where(d > 0, np.float32(1) / d, np.float32(0)).astype(np.float32)
    v = (b * inv).astype(np.float64)           # the float32 product, exactly
    q = np.sign(v) * np.floor(np.abs(v) + 0.5)  # roundf
    d16 = d.astype(np.float16).astype(np.float32)
    out = q.astype(np.float32) * d16
    return out.astype(np.float64).reshape(np.shape(x))


def round_q8_k(x):
    """x (..., k*256) -> float64 values after a Q8_K round trip."""
    b = _blocks(x, 256)
    first = np.argmax(np.abs(b), axis=1)[:, None]
    m = np.take_along_axis(b, first, axis=1)
    zero = m == 0
    with np.errstate(divide="ignore"):
        iscale = np.where(zero, np.float32(0),
                          np.float32(-127) / np.where(zero, np.float32(1), m))
    iscale = iscale.astype(np.float32)
    q = np.minimum(np.rint(b * iscale), 127)
    with np.errstate(divide="ignore"):
        d = np.where(zero, np.float32(0),
                     np.float32(1) / np.where(zero, np.float32(1), iscale))
    out = q.astype(np.float32) * d.astype(np.float32)
    return out.astype(np.float64).reshape(np.shape(x))


def round_for(weight_type, x):
    """The activation x as a `weight_type` mat-vec would see it."""
    if weight_type in ROUND_Q8_0:
        return round_q8_0(x)
    if weight_type in ROUND_Q8_K:
        return round_q8_k(x)
    return np.asarray(x, dtype=np.float64)
