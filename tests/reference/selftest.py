"""selftest.py: checks the NumPy reference itself, so it cannot silently be
wrong. Needs only /usr/bin/python3 + python3-numpy; no engine.

  /usr/bin/python3 tests/reference/selftest.py      exit 0 pass, 1 fail

What it checks:
  - dequant: hand-built blocks of every format with values worked out by
    hand from the block layouts (incl. Q4_K/Q5_K six-bit scales of
    sub-blocks 4..7, whose top bits live in other bytes); random blocks
    against a second, loop-by-loop scalar transcription of the layouts.
  - gguf_reader: a written file reads back (all value types, alignment,
    offsets); broken files (bad magic/version, truncation, string past
    end, misaligned or overlapping or out-of-file tensors, duplicate keys,
    huge counts) are refused with GGUFError, never another exception.
  - math: RMSNorm, NeoX RoPE (full and partial), causal GQA attention,
    router top-k/renormalise and the SwiGLU expert sum on tiny hand cases.
  - model: a random tiny F32 qwen3moe file gives the same logits as a
    token-by-token decoder with an explicit KV cache written here with
    plain loops; prefixes agree (causality); a Q8_0 file equals the F32
    file holding its dequantized weights; tied output works.

This file holds the dequant checks; selftest_gguf.py the reader checks,
selftest_model.py the math and model checks, tinymodel.py the tiny-model
writer and the loop decoder they use; selftest_hybrid.py the checks of the
qwen3next / qwen35moe reference (qwen3next.py, tinymodel_hybrid.py).
"""

import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import act_quant  # noqa: E402
import dequant  # noqa: E402
import selftest_gguf  # noqa: E402
import selftest_hybrid  # noqa: E402
import selftest_model  # noqa: E402
from checklib import check, close, run_tests  # noqa: E402


def f16(x):
    return struct.pack("<e", x)


def deq(raw, name, n):
    return dequant.dequantize(np.frombuffer(bytes(raw), np.uint8), name, n)


# ------------------------------------------------------------ dequant: hand

def pack_k_scales(sc, m):
    """8 six-bit (scale, min) pairs -> the 12 Q4_K/Q5_K scale bytes."""
    s = bytearray(12)
    for k in range(4):
        s[k] = (sc[k] & 63) | ((sc[k + 4] >> 4) << 6)
        s[k + 4] = (m[k] & 63) | ((m[k + 4] >> 4) << 6)
        s[k + 8] = (sc[k + 4] & 15) | ((m[k + 4] & 15) << 4)
    return bytes(s)


def test_hand_simple():
    x = deq(f16(1.0) + f16(-2.0) + bytes([0xFF, 0x7B]), "F16", 3)
    close(x, [1.0, -2.0, 65504.0], 0, "F16 hand")
    x = deq(bytes([0x80, 0x3F, 0x40, 0xC0]), "BF16", 2)
    close(x, [1.0, -3.0], 0, "BF16 hand")
    qs = bytearray(32)
    qs[5] = (-100) & 0xFF
    qs[31] = 127
    x = deq(f16(0.25) + qs, "Q8_0", 32)
    close(x[[0, 5, 31]], [0.0, -25.0, 31.75], 0, "Q8_0 hand")
    qs = bytearray([0x88] * 16)
    qs[3] = 0xA2
    qs[15] = 0x0F
    x = deq(f16(0.5) + qs, "Q4_0", 32)
    close(x[[0, 3, 19, 15, 31]], [0.0, -3.0, 1.0, 3.5, -4.0], 0, "Q4_0 hand")


def test_hand_q4_k():
    sc = [1, 2, 3, 63, 17, 37, 48, 5]
    m = [0, 1, 60, 2, 33, 50, 16, 63]
    qs = bytearray(128)
    qs[0] = 0x3C        # sub-block 0 el 0: q=12; sub-block 1 el 0: q=3
    qs[64] = 0x9F       # sub-block 4 el 0: q=15; sub-block 5 el 0: q=9
    qs[127] = 0xE1      # sub-block 6 el 31: q=1; sub-block 7 el 31: q=14
    blk = f16(1.0) + f16(0.5) + pack_k_scales(sc, m) + qs
    x = deq(blk, "Q4_K", 256)
    # x = d*sc*q - dmin*m
    want = {0: 1 * 12 - 0.0, 32: 2 * 3 - 0.5, 128: 17 * 15 - 16.5,
            160: 37 * 9 - 25.0, 223: 48 * 1 - 8.0, 255: 5 * 14 - 31.5,
            1: 0.0, 100: -1.0}
    close(x[list(want)], list(want.values()), 0, "Q4_K hand")


def test_hand_q5_k():
    sc = [4, 1, 1, 1, 1, 1, 1, 20]
    m = [1, 0, 0, 0, 0, 0, 0, 40]
    qh = bytearray(32)
    qh[7] = 0x08        # bit 3: +16 for sub-block 3, element 7
    qh[31] = 0x81       # bit 0: sub-block 0 el 31; bit 7: sub-block 7 el 31
    qs = bytearray(128)
    qs[32 + 7] = 0x50   # sub-block 3 el 7: low nibble of pair 1 high = 5
    qs[31] = 0x02       # sub-block 0 el 31: 2
    qs[96 + 31] = 0xF0  # sub-block 7 el 31: 15
    blk = f16(2.0) + f16(0.25) + pack_k_scales(sc, m) + qh + qs
    x = deq(blk, "Q5_K", 256)
    want = {96 + 7: 2 * 1 * (5 + 16), 31: 2 * 4 * (2 + 16) - 0.25,
            255: 2 * 20 * (15 + 16) - 10.0, 0: -0.25, 224: -10.0}
    close(x[list(want)], list(want.values()), 0, "Q5_K hand")


def test_hand_q6_k():
    ql = bytearray(128)
    qh = bytearray(64)
    sc = bytearray(16)
    sc[3] = (-5) & 0xFF
    sc[12] = 7
    ql[50] = 0x07       # e=50: run 32+l, l=18, low nibble 7
    qh[18] = 0x08       # bits 2-3 = 0b10 -> +32
    ql[64 + 10] = 0xB0  # half 1, e=128+64+10: high nibble 11
    qh[32 + 10] = 0x30  # bits 4-5 = 0b11 -> +48
    blk = ql + qh + sc + f16(0.25)
    x = deq(blk, "Q6_K", 256)
    want = {50: 0.25 * -5 * (7 + 32 - 32), 202: 0.25 * 7 * (11 + 48 - 32),
            0: 0.0}
    close(x[list(want)], list(want.values()), 0, "Q6_K hand")


def test_hand_q2_k():
    scales = bytearray(16)
    scales[13] = 0x35   # group 13: scale 5, min 3
    scales[0] = 0x21    # group 0: scale 1, min 2
    qs = bytearray(64)
    qs[32 + 20] = 0x30  # e = 128 + 32*2 + 20 = 212: (0x30 >> 4) & 3 = 3
    qs[1] = 0x02        # e = 1: q = 2
    blk = scales + qs + f16(2.0) + f16(1.0)
    x = deq(blk, "Q2_K", 256)
    want = {212: 10 * 3 - 3.0, 1: 2 * 2 - 2.0, 0: -2.0, 16: 0.0}
    close(x[list(want)], list(want.values()), 0, "Q2_K hand")


def test_hand_q3_k():
    hmask = bytearray(32)
    hmask[5] = 0x20     # e = 128 + 32*1 + 5 = 165: bit 4*1 + 1 = 5 set
    hmask[20] = 0x01    # e = 20: bit 0 set
    qs = bytearray(64)
    qs[32 + 5] = 0x08   # e = 165: (0x08 >> 2) & 3 = 2
    qs[20] = 0x03       # e = 20 (group 1): bits 0-1 = 3
    scales = bytearray(12)
    # group 10 (e = 160..175): low nibble = high nibble of scales[2],
    # top bits = bits 4-5 of scales[10]: 0x70 -> 7, 0x30 -> 3: 7 | 48 = 55
    scales[2] = 0x70
    scales[10] = 0x30
    # group 1 (e = 16..31): low nibble of scales[1] = 2, top bits = bits
    # 0-1 of scales[9] = 0: scale 2
    scales[1] = 0x02
    blk = hmask + qs + scales + f16(0.5)
    x = deq(blk, "Q3_K", 256)
    # x = d * (sc - 32) * (low - (bit ? 0 : 4))
    want = {165: 0.5 * 23 * 2, 20: 0.5 * -30 * 3, 21: 0.5 * -30 * -4,
            0: 0.5 * -32 * -4, 164: 0.5 * 23 * -4}
    close(x[list(want)], list(want.values()), 0, "Q3_K hand")


# -------------------------------------------- dequant: scalar transcription

def _h(b, at):
    return np.float32(struct.unpack_from("<e", b, at)[0])


def scalar_q4_k(b, with_high=False):
    """One Q4_K (or Q5_K) block, loop by loop, in float32."""
    f = np.float32
    d, dmin = _h(b, 0), _h(b, 2)
    s = b[4:16]
    qh = b[16:48] if with_high else None
    q = b[48:176] if with_high else b[16:144]
    y = []
    for j in range(4):
        for half in range(2):
            k = 2 * j + half
            if k < 4:
                sc, mn = s[k] & 63, s[k + 4] & 63
            else:
                sc = (s[k + 4] & 0xF) | ((s[k - 4] >> 6) << 4)
                mn = (s[k + 4] >> 4) | ((s[k] >> 6) << 4)
            d1, m1 = d * f(sc), dmin * f(mn)
            for l in range(32):
                v = (q[32 * j + l] >> (4 * half)) & 0xF
                if with_high and (qh[l] >> k) & 1:
                    v += 16
                y.append(d1 * f(v) - m1)
    return np.array(y, dtype=np.float32)


def scalar_q6_k(b):
    f = np.float32
    d = _h(b, 208)
    y = np.zeros(256, dtype=np.float32)
    for n in range(2):
        ql, qh = b[64 * n:64 * n + 64], b[128 + 32 * n:128 + 32 * n + 32]
        sc = [struct.unpack_from("<b", b, 192 + 8 * n + i)[0] for i in range(8)]
        for l in range(32):
            i = l // 16
            q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32
            q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32
            q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32
            q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32
            for off, si, q in ((0, 0, q1), (32, 2, q2), (64, 4, q3), (96, 6, q4)):
                y[128 * n + l + off] = d * f(sc[i + si]) * f(q)
    return y


def scalar_q2_k(b):
    f = np.float32
    d, dmin = _h(b, 80), _h(b, 82)
    y = []
    g = 0
    for n in range(2):
        q = b[16 + 32 * n:16 + 32 * n + 32]
        for shift in range(0, 8, 2):
            for part in range(2):
                sc = b[g]
                g += 1
                dl, ml = d * f(sc & 0xF), dmin * f(sc >> 4)
                for l in range(16):
                    y.append(dl * f((q[16 * part + l] >> shift) & 3) - ml)
    return np.array(y, dtype=np.float32)


def scalar_q3_k(b):
    f = np.float32
    d = _h(b, 108)
    hm, s = b[0:32], b[96:108]
    y = []
    g = 0
    for n in range(2):
        q = b[32 + 32 * n:32 + 32 * n + 32]
        for j in range(4):
            for part in range(2):
                lo = (s[g] & 0xF) if g < 8 else (s[g - 8] >> 4)
                sc = lo | (((s[8 + g % 4] >> (2 * (g // 4))) & 3) << 4)
                g += 1
                dl = d * f(sc - 32)
                for l in range(16):
                    i = 16 * part + l
                    v = ((q[i] >> (2 * j)) & 3) - (0 if (hm[i] >> (4 * n + j)) & 1 else 4)
                    y.append(dl * f(v))
    return np.array(y, dtype=np.float32)


def scalar_q4_0(b):
    d = _h(b, 0)
    y = np.zeros(32, dtype=np.float32)
    for j in range(16):
        y[j] = np.float32((b[2 + j] & 0xF) - 8) * d
        y[j + 16] = np.float32((b[2 + j] >> 4) - 8) * d
    return y


def scalar_q8_0(b):
    d = _h(b, 0)
    return np.array([np.float32(v) * d for v in
                     struct.unpack_from("<32b", b, 2)], dtype=np.float32)


def random_block(rng, name, n_bytes):
    """Random bytes with sane (finite, modest) fp16 scale fields."""
    b = bytearray(rng.integers(0, 256, n_bytes, dtype=np.uint8).tobytes())
    at = {"Q4_0": [0], "Q8_0": [0], "Q4_K": [0, 2], "Q5_K": [0, 2],
          "Q6_K": [208], "Q2_K": [80, 82], "Q3_K": [108]}[name]
    for a in at:
        b[a:a + 2] = f16(float(rng.uniform(-2, 2)))
    return bytes(b)


def test_random_blocks():
    rng = np.random.default_rng(1234)
    cases = (("Q4_0", 18, 32, scalar_q4_0), ("Q8_0", 34, 32, scalar_q8_0),
             ("Q4_K", 144, 256, scalar_q4_k),
             ("Q5_K", 176, 256, lambda b: scalar_q4_k(b, True)),
             ("Q6_K", 210, 256, scalar_q6_k), ("Q2_K", 84, 256, scalar_q2_k),
             ("Q3_K", 110, 256, scalar_q3_k))
    for name, nb, ne, scalar in cases:
        blocks = [random_block(rng, name, nb) for _ in range(6)]
        got = deq(b"".join(blocks), name, ne * 6)
        want = np.concatenate([scalar(blk) for blk in blocks])
        same = np.array_equal(got.view(np.uint32), want.view(np.uint32))
        check(same, f"{name} random blocks bit-exact vs scalar loops")
    h = rng.standard_normal(40).astype(np.float16)
    close(deq(h.tobytes(), "F16", 40), h.astype(np.float32), 0, "F16 random")
    # finite bf16 of both signs: exponent field below all-ones
    bits = rng.integers(0, 0x7F80, 40).astype(np.uint16)
    bits |= (rng.integers(0, 2, 40) << 15).astype(np.uint16)
    want = bits.astype(np.uint32) << 16
    got = deq(bits.tobytes(), "BF16", 40).view(np.uint32)
    check(np.array_equal(got, want), "BF16 random bit patterns")


def test_dequant_errors():
    for raw, name, n in ((b"\0" * 33, "Q8_0", 32), (b"\0" * 34, "Q3_K", 256),
                         (b"\0" * 34, "Q8_0", 31)):
        try:
            deq(raw, name, n)
            check(False, f"dequant {name} of {len(raw)} B/{n} el not refused")
        except ValueError:
            pass


def test_act_quant_hand():
    # Q8_0, amax 127 -> d = 1: roundf sends the halves away from zero
    x = np.zeros(32)
    x[:4] = [127.0, 2.5, -2.5, 0.49999997]
    close(act_quant.round_q8_0(x)[:4], [127, 3, -3, 0], 0, "Q8_0 act halves")
    # Q8_0, amax 2.54 -> d = 0.02, stored as fp16 0.0200042724609375
    x[:4] = [2.54, 0.0101, 0.0, -1.0]
    d16 = 0.0200042724609375
    close(act_quant.round_q8_0(x)[:4], [127 * d16, d16, 0, -50 * d16], 1e-12,
          "Q8_0 act fp16 scale")
    # Q8_K, signed max -127 -> iscale 1: rint sends halves to even
    y = np.zeros(256)
    y[:4] = [-127.0, 2.5, 3.5, -2.5]
    close(act_quant.round_q8_k(y)[:4], [-127, 2, 4, -2], 0, "Q8_K act halves")
    # Q8_K, signed max +127 -> iscale -1, d -1: values keep their sign
    y[:4] = [127.0, 2.5, 0.0, -3.25]
    close(act_quant.round_q8_k(y)[:4], [127, 2, 0, -3], 0, "Q8_K act sign")
    close(act_quant.round_q8_k(np.zeros(256)), np.zeros(256), 0, "Q8_K zeros")
    close(act_quant.round_for("F16", x), x, 0, "F16 weights: no rounding")


def main():
    tests = [v for k, v in sorted(globals().items())
             if k.startswith("test_") and callable(v)]
    tests += selftest_gguf.TESTS + selftest_model.TESTS + selftest_hybrid.TESTS
    return run_tests(tests)


if __name__ == "__main__":
    sys.exit(main())
