"""dequant.py: vectorised NumPy dequantizers for ggml block formats.

Owns: the ggml type table (id -> name, elements per block, bytes per block)
and dequantization of F32, F16, BF16, Q8_0, Q4_0, Q2_K, Q3_K, Q4_K, Q5_K,
Q6_K to float32, bit-exact with ggml's scalar reference (each product is formed
in float32 in the same order: e.g. Q4_K computes (d*sc)*q - (dmin*m)).
Does not own: quantization (the engine's job), file parsing (gguf_reader).

Block layouts (ggml-common.h, restated; all little-endian, fp16 = IEEE half):
  Q4_0  (32 el, 18 B): f16 d; u8 qs[16]. x[j] = ((qs[j] & 15) - 8) * d,
        x[j+16] = ((qs[j] >> 4) - 8) * d.
  Q8_0  (32 el, 34 B): f16 d; i8 qs[32]. x[j] = qs[j] * d.
  Q2_K  (256 el, 84 B): u8 scales[16]; u8 qs[64]; f16 d; f16 dmin.
        Element e = 128n + 32s + l: q = (qs[32n + l] >> 2s) & 3; the 16-group
        g = e / 16 has dl = d * (scales[g] & 15), ml = dmin * (scales[g] >> 4);
        x = dl * q - ml.
  Q3_K  (256 el, 110 B): u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d.
        Element e = 128n + 32s + l: low bits (qs[32n + l] >> 2s) & 3, as
        Q2_K; third bit (hmask[l] >> (4n + s)) & 1; q = low - (bit ? 0 : 4)
        (-4..3). Group g = e / 16 has a 6-bit scale: low nibble of
        scales[g % 8] (g < 8) or its high nibble (g >= 8), top two bits
        (scales[8 + g % 4] >> 2*(g // 4)) & 3; x = (d * (sc - 32)) * q.
  Q4_K  (256 el, 144 B): f16 d; f16 dmin; u8 scales[12] (8 six-bit scale/min
        pairs, see _k_scale_min); u8 qs[128]. Sub-block 2j = low nibbles of
        qs[32j..32j+31], sub-block 2j+1 = high nibbles; x = (d*sc)*q - (dmin*m).
  Q5_K  (256 el, 176 B): f16 d; f16 dmin; u8 scales[12]; u8 qh[32];
        u8 qs[128]. As Q4_K, plus bit (2j) resp. (2j+1) of qh[l] adds 16.
  Q6_K  (256 el, 210 B): u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d.
        Half n (128 el), l = 0..31, L = ql + 64n, H = qh + 32n:
        e=l: (L[l] & 15) | ((H[l] >> 0) & 3) << 4,
        e=32+l: (L[32+l] & 15) | ((H[l] >> 2) & 3) << 4,
        e=64+l: (L[l] >> 4) | ((H[l] >> 4) & 3) << 4,
        e=96+l: (L[32+l] >> 4) | ((H[l] >> 6) & 3) << 4;
        x = (d * scales[e / 16]) * (q - 32).
"""

import numpy as np

QK_K = 256

# ggml type id -> (name, elements per block, bytes per block)
GGML_TYPES = {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20), 6: ("Q5_0", 32, 22), 7: ("Q5_1", 32, 24),
    8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 36), 10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110), 12: ("Q4_K", 256, 144), 13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210), 15: ("Q8_K", 256, 292), 24: ("I8", 1, 1),
    25: ("I16", 1, 2), 26: ("I32", 1, 4), 27: ("I64", 1, 8),
    28: ("F64", 1, 8), 30: ("BF16", 1, 2),
}
TYPE_IDS = {v[0]: k for k, v in GGML_TYPES.items()}


def _f16(blocks, at):
    """The fp16 at byte offset `at` of each block, as float32 (n, 1)."""
    return blocks[:, at:at + 2].copy().view("<f2").astype(np.float32)


def _deq_f32(raw):
    return raw.view("<f4").astype(np.float32)


def _deq_f16(raw):
    return raw.view("<f2").astype(np.float32)


def _deq_bf16(raw):
    bits = raw.view("<u2").astype(np.uint32) << np.uint32(16)
    return bits.view(np.float32)


def _deq_q8_0(blocks):
    d = _f16(blocks, 0)
    q = blocks[:, 2:34].view(np.int8).astype(np.float32)
    return q * d


def _deq_q4_0(blocks):
    d = _f16(blocks, 0)
    qs = blocks[:, 2:18]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int32) - 8
    return q.astype(np.float32) * d


def _k_scale_min(s):
    """Unpack the 12-byte Q4_K/Q5_K scales to (sc, m), each (n, 8) uint8.
    Sub-block k < 4: sc = s[k] & 63, m = s[k+4] & 63. k >= 4: the low four
    bits come from s[k+4] (sc: low nibble, m: high nibble) and the top two
    bits from the spare top bits of s[k-4] (sc) and s[k] (m)."""
    lo = s[:, 0:4]
    mid = s[:, 4:8]
    hi = s[:, 8:12]
    sc = np.concatenate([lo & 63, (hi & 0x0F) | ((lo >> 6) << 4)], axis=1)
    m = np.concatenate([mid & 63, (hi >> 4) | ((mid >> 6) << 4)], axis=1)
    return sc, m


def _k_apply(d, dmin, sc, m, q):
    """x = (d*sc)*q - (dmin*m) per 32-element sub-block, in float32."""
    n = q.shape[0]
    dl = (d * sc.astype(np.float32)).reshape(n, 8, 1)
    ml = (dmin * m.astype(np.float32)).reshape(n, 8, 1)
    return (dl * q.reshape(n, 8, 32).astype(np.float32) - ml).reshape(n, QK_K)


def _nibble_subblocks(qs):
    """qs (n, 128) -> q (n, 8, 32): sub-block 2j low nibbles, 2j+1 high."""
    n = qs.shape[0]
    qs = qs.reshape(n, 4, 1, 32)
    return np.concatenate([qs & 0x0F, qs >> 4], axis=2).reshape(n, 8, 32)


def _deq_q4_k(blocks):
    d, dmin = _f16(blocks, 0), _f16(blocks, 2)
    sc, m = _k_scale_min(blocks[:, 4:16])
    q = _nibble_subblocks(blocks[:, 16:144])
    return _k_apply(d, dmin, sc, m, q)


def _deq_q5_k(blocks):
    n = blocks.shape[0]
    d, dmin = _f16(blocks, 0), _f16(blocks, 2)
    sc, m = _k_scale_min(blocks[:, 4:16])
    qh = blocks[:, 16:48].reshape(n, 1, 32)
    q = _nibble_subblocks(blocks[:, 48:176])
    shifts = np.arange(8, dtype=np.uint8).reshape(1, 8, 1)
    high = ((qh >> shifts) & 1) << 4        # sub-block k uses qh bit k
    return _k_apply(d, dmin, sc, m, q | high)


def _deq_q6_k(blocks):
    n = blocks.shape[0]
    ql = blocks[:, 0:128].reshape(n, 2, 2, 32)        # half, 32-run, l
    qh = blocks[:, 128:192].reshape(n, 2, 1, 32)      # half, -, l
    sc = blocks[:, 192:208].view(np.int8).astype(np.float32)
    d = _f16(blocks, 208)
    low = np.concatenate([ql & 0x0F, ql >> 4], axis=2)    # (n, 2, 4, 32)
    shifts = np.array([0, 2, 4, 6], dtype=np.uint8).reshape(1, 1, 4, 1)
    high = (qh >> shifts) & 3
    q = (low | (high << 4)).astype(np.int32) - 32
    dl = (d * sc).reshape(n, 16, 1)
    return (dl * q.reshape(n, 16, 16).astype(np.float32)).reshape(n, QK_K)


def _deq_q2_k(blocks):
    n = blocks.shape[0]
    scales = blocks[:, 0:16]
    qs = blocks[:, 16:80].reshape(n, 2, 1, 32)
    d, dmin = _f16(blocks, 80), _f16(blocks, 82)
    shifts = np.array([0, 2, 4, 6], dtype=np.uint8).reshape(1, 1, 4, 1)
    q = ((qs >> shifts) & 3).reshape(n, 16, 16).astype(np.float32)
    dl = (d * (scales & 0x0F).astype(np.float32)).reshape(n, 16, 1)
    ml = (dmin * (scales >> 4).astype(np.float32)).reshape(n, 16, 1)
    return (dl * q - ml).reshape(n, QK_K)


def _q3_k_scales(s):
    """The 12 Q3_K scale bytes (n, 12) -> the 16 six-bit scales (n, 16)."""
    n = s.shape[0]
    low = np.concatenate([s[:, 0:8] & 0x0F, s[:, 0:8] >> 4], axis=1)
    shifts = np.array([0, 2, 4, 6], dtype=np.uint8).reshape(1, 4, 1)
    top = ((s[:, 8:12].reshape(n, 1, 4) >> shifts) & 3).reshape(n, 16)
    return low | (top << 4)


def _deq_q3_k(blocks):
    n = blocks.shape[0]
    hm = blocks[:, 0:32].reshape(n, 1, 1, 32)
    qs = blocks[:, 32:96].reshape(n, 2, 1, 32)
    sc = _q3_k_scales(blocks[:, 96:108]).astype(np.float32) - 32
    d = _f16(blocks, 108)
    shifts = np.array([0, 2, 4, 6], dtype=np.uint8).reshape(1, 1, 4, 1)
    low = ((qs >> shifts) & 3).astype(np.int32)             # (n, 2, 4, 32)
    bits = np.arange(8, dtype=np.uint8).reshape(1, 2, 4, 1)  # bit 4n + s
    high = ((hm >> bits) & 1).astype(np.int32)
    q = (low - 4 * (1 - high)).reshape(n, 16, 16).astype(np.float32)
    dl = (d * sc).reshape(n, 16, 1)
    return (dl * q).reshape(n, QK_K)


_ELEMENTWISE = {"F32": _deq_f32, "F16": _deq_f16, "BF16": _deq_bf16}
_BLOCKWISE = {"Q8_0": _deq_q8_0, "Q4_0": _deq_q4_0, "Q2_K": _deq_q2_k,
              "Q3_K": _deq_q3_k, "Q4_K": _deq_q4_k, "Q5_K": _deq_q5_k, "Q6_K": _deq_q6_k}
SUPPORTED = tuple(_ELEMENTWISE) + tuple(_BLOCKWISE)


def dequantize(raw, type_name, n_elements):
    """raw: uint8 array holding n_elements of `type_name`; returns a new 1-D
    float32 array of n_elements. Raises ValueError on a size mismatch or an
    unsupported type."""
    tid = TYPE_IDS.get(type_name)
    if tid is None or type_name not in SUPPORTED:
        raise ValueError(f"dequantize: unsupported type {type_name}")
    _, be, bb = GGML_TYPES[tid]
    if n_elements % be or raw.size != n_elements // be * bb:
        raise ValueError(f"dequantize {type_name}: {raw.size} bytes do not"
                         f" hold {n_elements} elements")
    raw = np.ascontiguousarray(raw, dtype=np.uint8)
    if type_name in _ELEMENTWISE:
        return _ELEMENTWISE[type_name](raw).reshape(-1).copy()
    blocks = raw.reshape(-1, bb)
    return _BLOCKWISE[type_name](blocks).astype(np.float32).reshape(-1)


def dequantize_tensor(gguf, name):
    """Tensor `name` of an open GGUFFile as float32, NumPy shape (ne reversed)."""
    t = gguf.tensors[name]
    flat = dequantize(gguf.tensor_bytes(name), t.type_name, t.n_elements)
    return flat.reshape(t.shape)
