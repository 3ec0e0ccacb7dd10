/* test_kquants.c: the K-quants (Q4_K, Q5_K, Q6_K, Q3_K, Q2_K) and Q8_K.
 *
 * Checks, against src/kernels/kquants.{h,c} and the SIMD variants:
 *  - hand-built blocks of every format decode to hand-computed values (the
 *    bit layouts of llama.cpp's ggml-quants.c, including Q4_K/Q5_K's packed
 *    6-bit scales of sub-blocks 4..7, Q6_K's ql/qh split and -32 offset,
 *    Q3_K's packed 6-bit signed scales and hmask bits, and Q2_K's scale/min
 *    nibbles), with literal values worked out by hand;
 *  - the word-wise scale unpacking used by the SIMD code equals the spec;
 *  - round-trip RMS error on N(0,1) data under stated bounds, ordered
 *    Q6_K < Q5_K < Q4_K < Q3_K < Q2_K; zeros stay zeros; huge and tiny inputs give
 *    finite output;
 *  - Q8_K: llama.cpp's sign convention and round-half-even, and every ISA's
 *    quantizer byte-identical to the reference (NaN, inf, ties included);
 *  - vec_dot_*_ref equals the double dot product of the dequantized rows
 *    within 2e-7 * sum |w_i a_i| (float rounding);
 *  - every SIMD vec_dot the CPU has within 1e-6 * sum |w_i a_i| of the
 *    reference, for ny = 1..8 and n = 256 .. 256*11, with a padded
 *    act_stride, NaN-poisoned outputs and untouched out[ny];
 *  - kernels_register_kquants fills exactly its entries.
 * ISAs the CPU lacks are skipped (printed). Exit 0 pass, 1 fail.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kquants.h"
#include "testutil.h"
#include "util.h"

#if defined(__x86_64__)
#define T_AVX2(f) f##_avx2
#define T_AVX512(f) f##_avx512
#else
#define T_AVX2(f) NULL
#define T_AVX512(f) NULL
#endif

#define MAX_BLOCKS 11

struct fmt {
	const char *name;
	enum ggml_type type;
	size_t block_bytes;
	quantize_row_fn quantize;
	dequantize_row_fn dequantize;
	vec_dot_fn dot[KERNEL_ISA_COUNT];
	gemv_fn gemv[KERNEL_ISA_COUNT];
	double rms_bound; /* round-trip RMS error on N(0,1) */
};

/* Ordered by precision: each bound is below the next one. Measured values
 * (seed 1, 64 blocks): q6_K 0.0174, q5_K 0.0360, q4_K 0.0715, q3_K 0.146,
 * q2_K 0.273. */
static const struct fmt fmts[] = {
	{ "q6_K", GGML_TYPE_Q6_K, sizeof(struct block_q6_K), quantize_row_q6_K_ref,
	  dequantize_row_q6_K_ref,
	  { vec_dot_q6_K_ref, T_AVX2(vec_dot_q6_K), T_AVX512(vec_dot_q6_K) },
	  { NULL, T_AVX2(gemv_q6_K), T_AVX512(gemv_q6_K) }, 0.0185 },
	{ "q5_K", GGML_TYPE_Q5_K, sizeof(struct block_q5_K), quantize_row_q5_K_ref,
	  dequantize_row_q5_K_ref,
	  { vec_dot_q5_K_ref, T_AVX2(vec_dot_q5_K), T_AVX512(vec_dot_q5_K) },
	  { NULL, T_AVX2(gemv_q5_K), T_AVX512(gemv_q5_K) }, 0.038 },
	{ "q4_K", GGML_TYPE_Q4_K, sizeof(struct block_q4_K), quantize_row_q4_K_ref,
	  dequantize_row_q4_K_ref,
	  { vec_dot_q4_K_ref, T_AVX2(vec_dot_q4_K), T_AVX512(vec_dot_q4_K) },
	  { NULL, T_AVX2(gemv_q4_K), T_AVX512(gemv_q4_K) }, 0.075 },
	{ "q3_K", GGML_TYPE_Q3_K, sizeof(struct block_q3_K), quantize_row_q3_K_ref,
	  dequantize_row_q3_K_ref,
	  { vec_dot_q3_K_ref, T_AVX2(vec_dot_q3_K), T_AVX512(vec_dot_q3_K) },
	  { NULL, T_AVX2(gemv_q3_K), T_AVX512(gemv_q3_K) }, 0.155 },
	{ "q2_K", GGML_TYPE_Q2_K, sizeof(struct block_q2_K), quantize_row_q2_K_ref,
	  dequantize_row_q2_K_ref,
	  { vec_dot_q2_K_ref, T_AVX2(vec_dot_q2_K), T_AVX512(vec_dot_q2_K) },
	  { NULL, T_AVX2(gemv_q2_K), T_AVX512(gemv_q2_K) }, 0.285 },
};
#define N_FMTS (sizeof(fmts) / sizeof(fmts[0]))

static const quantize_row_fn q8_K_isa[KERNEL_ISA_COUNT] = {
	quantize_row_q8_K_ref, T_AVX2(quantize_row_q8_K), T_AVX512(quantize_row_q8_K)
};
static const char *const isa_name[KERNEL_ISA_COUNT] = { "ref", "avx2", "avx512" };

static bool isa_usable(int isa)
{
	return q8_K_isa[isa] && kernels_isa_supported((enum kernel_isa)isa);
}

/* ---- hand-built blocks --------------------------------------------------- */

/* Scales and mins of the Q4_K/Q5_K test block; sub-blocks 4..7 use the high
 * two bits. Packed by hand (see test_k4_scales): e.g. byte 1 = 2 | (46>>4)<<6
 * = 0x82, byte 9 = (46 & 15) | (40 & 15) << 4 = 0x8e. */
static const uint8_t k4_sc[8] = { 1, 2, 3, 4, 37, 46, 55, 63 };
static const uint8_t k4_mn[8] = { 5, 6, 7, 8, 33, 40, 50, 61 };
static const uint8_t k4_packed[K_SCALE_BYTES] = { 0x81, 0x82, 0xc3, 0xc4, 0x85, 0x86,
						  0xc7, 0xc8, 0x15, 0x8e, 0x27, 0xdf };

/* Spec decoding of sub-block j (written independently of kquants.c). */
static void spec_scale_min(const uint8_t *s, int j, int *sc, int *m)
{
	if (j < 4) {
		*sc = s[j] & 63;
		*m = s[j + 4] & 63;
	} else {
		*sc = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
		*m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
	}
}

static void test_k4_scales(void)
{
	uint32_t u[4];
	kq_unpack_scales_k4(k4_packed, u);
	const uint8_t *b = (const uint8_t *)u;
	for (int j = 0; j < 8; j++) {
		int sc, m;
		spec_scale_min(k4_packed, j, &sc, &m);
		CHECK(sc == k4_sc[j] && m == k4_mn[j], "spec decode j=%d: %d %d", j, sc, m);
		CHECK(b[j] == k4_sc[j] && b[8 + j] == k4_mn[j], "unpack j=%d: %d %d", j, b[j], b[8 + j]);
	}
	struct t_rng r = { 3 };
	for (int it = 0; it < 2000; it++) { /* word-wise unpack == spec, any bytes */
		uint8_t s[K_SCALE_BYTES];
		for (int i = 0; i < K_SCALE_BYTES; i++)
			s[i] = (uint8_t)t_rand_u64(&r);
		kq_unpack_scales_k4(s, u);
		for (int j = 0; j < 8; j++) {
			int sc, m;
			spec_scale_min(s, j, &sc, &m);
			CHECK(b[j] == sc && b[8 + j] == m, "random unpack it=%d j=%d", it, j);
		}
	}
}

/* Q4_K/Q5_K test pattern: qs[i] low nibble i%16, high nibble 15 - i%16. */
static int k4_level(int e)
{
	int c = e / 64, l = e % 32, i = 32 * c + l;
	return (e % 64) < 32 ? i % 16 : 15 - i % 16;
}

static void test_q4_K_layout(void)
{
	struct block_q4_K b;
	float y[QK_K];
	b.d = 0x3c00;    /* 1.0 */
	b.dmin = 0x3800; /* 0.5 */
	memcpy(b.scales, k4_packed, K_SCALE_BYTES);
	for (int i = 0; i < QK_K / 2; i++)
		b.qs[i] = (uint8_t)((i % 16) | ((15 - i % 16) << 4));
	dequantize_row_q4_K_ref(&b, y, QK_K);
	for (int e = 0; e < QK_K; e++) {
		int j = e / 32;
		float want = (float)(k4_sc[j] * k4_level(e)) - 0.5f * k4_mn[j];
		CHECK(y[e] == want, "q4_K y[%d] = %g, want %g", e, y[e], want);
	}
	/* by hand: e=163 is sub-block 5, high nibble of qs[67] = 15-3 = 12:
	 * 46*12 - 0.5*40; e=224: high nibble of qs[96] = 15: 63*15 - 0.5*61 */
	CHECK(y[163] == 532.0f && y[224] == 914.5f && y[255] == -30.5f && y[0] == -2.5f,
	      "q4_K literals %g %g %g %g", y[163], y[224], y[255], y[0]);
}

static void test_q5_K_layout(void)
{
	struct block_q5_K b;
	float y[QK_K];
	b.d = 0x3c00;
	b.dmin = 0x3800;
	memcpy(b.scales, k4_packed, K_SCALE_BYTES);
	for (int i = 0; i < QK_K / 2; i++)
		b.qs[i] = (uint8_t)((i % 16) | ((15 - i % 16) << 4));
	for (int l = 0; l < QK_K / 8; l++)
		b.qh[l] = (uint8_t)(l * 37 + 11);
	dequantize_row_q5_K_ref(&b, y, QK_K);
	for (int e = 0; e < QK_K; e++) {
		int j = e / 32, q = k4_level(e) + 16 * ((b.qh[e % 32] >> j) & 1);
		float want = (float)(k4_sc[j] * q) - 0.5f * k4_mn[j];
		CHECK(y[e] == want, "q5_K y[%d] = %g, want %g", e, y[e], want);
	}
	/* by hand: e=163, qh[3] = 122 = 0b1111010, bit 5 set: q = 12 + 16 = 28 */
	CHECK(y[163] == 1268.0f, "q5_K y[163] = %g", y[163]);
}

static void test_q6_K_layout(void)
{
	struct block_q6_K b;
	float y[QK_K];
	b.d = 0x3400; /* 0.25 */
	for (int s = 0; s < 16; s++)
		b.scales[s] = (int8_t)(s * 17 - 128);
	for (int i = 0; i < QK_K / 2; i++)
		b.ql[i] = (uint8_t)(i * 7 + 3);
	for (int i = 0; i < QK_K / 4; i++)
		b.qh[i] = (uint8_t)(i * 13 + 5);
	dequantize_row_q6_K_ref(&b, y, QK_K);
	for (int e = 0; e < QK_K; e++) {
		int h = e / 128, g = (e % 128) / 32, l = e % 32;
		int lo = b.ql[64 * h + 32 * (g & 1) + l], hi = b.qh[32 * h + l];
		int q = (g >= 2 ? lo >> 4 : lo & 15) | (((hi >> (2 * g)) & 3) << 4);
		float want = 0.25f * (float)(b.scales[e / 16] * (q - 32));
		CHECK(y[e] == want, "q6_K y[%d] = %g, want %g", e, y[e], want);
	}
	/* by hand: e=200: ql[72] = 251 (high nibble 15), qh[40] = 13 (bits 4-5:
	 * 0), q = 15 - 32 = -17, scale 12*17-128 = 76: 0.25*76*-17 */
	CHECK(y[200] == -323.0f, "q6_K y[200] = %g", y[200]);
	CHECK(y[0] == 0.25f * -128 * (((3 & 15) | ((5 & 3) << 4)) - 32), "q6_K y[0] = %g", y[0]);
}

static void test_q2_K_layout(void)
{
	struct block_q2_K b;
	float y[QK_K];
	b.d = 0x4000;    /* 2.0 */
	b.dmin = 0x3c00; /* 1.0 */
	for (int s = 0; s < 16; s++)
		b.scales[s] = (uint8_t)(s | ((15 - s) << 4));
	for (int i = 0; i < QK_K / 4; i++)
		b.qs[i] = (uint8_t)(i * 29 + 7);
	dequantize_row_q2_K_ref(&b, y, QK_K);
	for (int e = 0; e < QK_K; e++) {
		int h = e / 128, k = (e % 128) / 32, l = e % 32, s = e / 16;
		int q = (b.qs[32 * h + l] >> (2 * k)) & 3;
		float want = (float)(2 * s * q) - (float)(15 - s);
		CHECK(y[e] == want, "q2_K y[%d] = %g, want %g", e, y[e], want);
	}
	/* by hand: e=230: qs[38] = 85 = 0b01010101, bits 6-7 = 1; sub-block 14:
	 * 2*14*1 - 1 */
	CHECK(y[230] == 27.0f, "q2_K y[230] = %g", y[230]);
}

/* Q3_K scales (stored 0..63, value sc - 32) and their 12 bytes, packed by
 * hand: s[j % 8] holds the low nibble of scale j (low half of the byte for
 * j < 8, high half for j >= 8), bits 2*(j/4) of s[8 + j % 4] its top two
 * bits. E.g. byte 5 = (63 & 15) | (60 & 15) << 4 = 0xcf; byte 9 = top bits
 * of scales 1, 5, 9, 13 = 0 | 3 << 2 | 0 << 4 | 3 << 6 = 0xcc. */
static const uint8_t q3_sc[16] = { 0, 1, 31, 32, 33, 63, 47, 16, 5, 10, 20, 40, 50, 60, 17, 34 };
static const uint8_t q3_packed[K_SCALE_BYTES] = { 0x50, 0xa1, 0x4f, 0x80, 0x21, 0xcf,
						  0x1f, 0x20, 0xc8, 0xcc, 0x59, 0xa6 };

/* Spec decoding of Q3_K scale j (written independently of kquants.c). */
static int spec_q3_scale(const uint8_t *s, int j)
{
	int lo = j < 8 ? s[j] & 15 : s[j - 8] >> 4;
	return lo | (((s[8 + j % 4] >> (2 * (j / 4))) & 3) << 4);
}

static void test_q3_K_scales(void)
{
	uint32_t u[4];
	const uint8_t *b = (const uint8_t *)u;
	kq_unpack_scales_q3(q3_packed, u);
	for (int j = 0; j < 16; j++) {
		CHECK(spec_q3_scale(q3_packed, j) == q3_sc[j], "q3 spec decode j=%d: %d", j,
		      spec_q3_scale(q3_packed, j));
		CHECK(b[j] == q3_sc[j], "q3 unpack j=%d: %d", j, b[j]);
	}
	struct t_rng r = { 4 };
	for (int it = 0; it < 2000; it++) { /* word-wise unpack == spec, any bytes */
		uint8_t s[K_SCALE_BYTES];
		for (int i = 0; i < K_SCALE_BYTES; i++)
			s[i] = (uint8_t)t_rand_u64(&r);
		kq_unpack_scales_q3(s, u);
		for (int j = 0; j < 16; j++)
			CHECK(b[j] == spec_q3_scale(s, j), "q3 random unpack it=%d j=%d", it, j);
	}
}

static void test_q3_K_layout(void)
{
	struct block_q3_K b;
	float y[QK_K];
	b.d = 0x3800; /* 0.5 */
	memcpy(b.scales, q3_packed, K_SCALE_BYTES);
	for (int l = 0; l < QK_K / 8; l++)
		b.hmask[l] = (uint8_t)(l * 37 + 11);
	for (int i = 0; i < QK_K / 4; i++)
		b.qs[i] = (uint8_t)(i * 29 + 7);
	dequantize_row_q3_K_ref(&b, y, QK_K);
	for (int e = 0; e < QK_K; e++) {
		int h = e / 128, k = (e % 128) / 32, l = e % 32, s = e / 16;
		int q = ((b.qs[32 * h + l] >> (2 * k)) & 3) - ((b.hmask[l] >> (4 * h + k)) & 1 ? 0 : 4);
		float want = 0.5f * (float)((q3_sc[s] - 32) * q);
		CHECK(y[e] == want, "q3_K y[%d] = %g, want %g", e, y[e], want);
	}
	/* by hand: e=177 is sub-block 11: low nibble = high nibble of byte 3
	 * (0x80) = 8, top bits = bits 4-5 of byte 11 (0xa6) = 2: scale 40 - 32 = 8;
	 * qs[49] = 148 = 0b10010100, bits 2-3 = 1; hmask[17] = 128, bit 5 clear:
	 * level 1 - 4 = -3; 0.5 * 8 * -3 */
	CHECK(y[177] == -12.0f, "q3_K y[177] = %g", y[177]);
	/* e=230: sub-block 14, scale (0x1f >> 4) | (0x59 >> 6) << 4 = 17, -15;
	 * qs[38] = 85, bits 6-7 = 1; hmask[6] = 233, bit 7 set: level 1 */
	CHECK(y[230] == -7.5f, "q3_K y[230] = %g", y[230]);
	/* e=0: scale 0 - 32; qs[0] = 7, bits 0-1 = 3; hmask[0] = 11, bit 0 set */
	CHECK(y[0] == -48.0f, "q3_K y[0] = %g", y[0]);
}

/* ---- Q8_K ------------------------------------------------------------------ */

static void test_q8_K_convention(void)
{
	float x[QK_K] = { 0 };
	struct block_q8_K b;
	x[3] = 2.0f;  /* first of the two largest magnitudes: maps to -127 */
	x[9] = -2.0f;
	x[10] = 1.0f;
	quantize_row_q8_K_ref(x, &b, QK_K);
	CHECK(fabsf(b.d + 2.0f / 127) < 1e-9f, "d = %g, want -2/127", b.d);
	CHECK(b.qs[3] == -127 && b.qs[9] == 127 && b.qs[10] == -64, "qs %d %d %d", b.qs[3],
	      b.qs[9], b.qs[10]);
	/* ties round to even: max = -127 gives iscale = 1 */
	const float tie_x[6] = { -127.0f, 2.5f, 3.5f, -2.5f, 0.5f, 1.5f };
	const int tie_q[6] = { -127, 2, 4, -2, 0, 2 };
	memset(x, 0, sizeof(x));
	memcpy(x, tie_x, sizeof(tie_x));
	quantize_row_q8_K_ref(x, &b, QK_K);
	int sum = 0;
	for (int i = 0; i < 6; i++) {
		CHECK(b.qs[i] == tie_q[i], "tie %d: %d, want %d", i, b.qs[i], tie_q[i]);
		sum += tie_q[i];
	}
	CHECK(b.bsums[0] == sum && b.bsums[1] == 0, "bsums %d %d", b.bsums[0], b.bsums[1]);
	memset(x, 0, sizeof(x));
	quantize_row_q8_K_ref(x, &b, QK_K);
	CHECK(b.d == 0 && b.bsums[5] == 0 && b.qs[100] == 0, "zero block");
}

/* A row of n elements exercising the odd cases: blocks of N(0,1) at several
 * magnitudes, all zeros, a tie block, NaN and inf, subnormals. */
static void q8_K_test_row(float *x, size_t n, struct t_rng *r)
{
	static const float mags[] = { 1.0f, 1e-3f, 1e6f, 1e-38f, 1e30f };
	for (size_t b = 0; b < n / QK_K; b++) {
		float *xb = x + b * QK_K;
		float mag = mags[b % 5];
		for (int i = 0; i < QK_K; i++)
			xb[i] = t_rand_normal(r) * mag;
		if (b == 1)
			memset(xb, 0, QK_K * sizeof(float));
		if (b == 2)
			for (int i = 0; i < QK_K; i++)
				xb[i] = i == 17 ? -127.0f : (float)(i % 7) - 3.5f; /* ties */
		if (b == 4) {
			xb[5] = NAN;
			xb[77] = -INFINITY;
		}
		if (b == 3) { /* equal magnitudes: the first one sets the sign */
			xb[20] = 50.0f;
			xb[22] = -50.0f;
			xb[25] = -50.0f;
			xb[100] = 50.0f;
		}
		if (b == 6)
			xb[200] = NAN;
		if (b == 7)
			for (int i = 0; i < QK_K; i++)
				xb[i] = t_rand_normal(r) * 1e-44f; /* subnormal */
	}
}

static void test_q8_K_isas(void)
{
	enum { N = QK_K * 9 };
	static float x[N];
	static struct block_q8_K want[N / QK_K], got[N / QK_K];
	struct t_rng r = { 11 };
	for (int rep = 0; rep < 4; rep++) {
		q8_K_test_row(x, N, &r);
		quantize_row_q8_K_ref(x, want, N);
		for (int isa = 1; isa < KERNEL_ISA_COUNT; isa++) {
			if (!isa_usable(isa))
				continue;
			memset(got, 0x5a, sizeof(got));
			q8_K_isa[isa](x, got, N);
			for (int b = 0; b < N / QK_K; b++)
				CHECK(memcmp(&want[b], &got[b], sizeof(got[b])) == 0,
				      "q8_K %s rep %d block %d differs from ref", isa_name[isa], rep, b);
		}
	}
}

/* ---- quantization quality and edge cases -------------------------------- */

static double rms_error(const struct fmt *f, const float *x, size_t n, void *q, float *y)
{
	f->quantize(x, q, n);
	f->dequantize(q, y, n);
	double e = 0;
	for (size_t i = 0; i < n; i++)
		e += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
	return sqrt(e / (double)n);
}

static void test_round_trip(void)
{
	enum { N = QK_K * 64 };
	static float x[N], xs[N], y[N];
	static uint8_t q[N * 2]; /* >= the bytes of N elements of any format, Q8_K included */
	struct t_rng r = { 1 };
	for (size_t i = 0; i < N; i++)
		x[i] = t_rand_normal(&r);
	double prev = 0;
	for (size_t k = 0; k < N_FMTS; k++) {
		const struct fmt *f = &fmts[k];
		double e = rms_error(f, x, N, q, y);
		printf("  %s: rms error %.4f on N(0,1) (bound %.4f)\n", f->name, e, f->rms_bound);
		CHECK(e < f->rms_bound, "%s rms %.4f >= %.3f", f->name, e, f->rms_bound);
		CHECK(e > prev, "%s rms %.4f not above the previous format's %.4f", f->name, e, prev);
		prev = e;
		/* the same relative error at other magnitudes within fp16's range */
		static const float mags[] = { 1e-2f, 1e3f };
		for (int m = 0; m < 2; m++) {
			for (size_t i = 0; i < N; i++)
				xs[i] = x[i] * mags[m];
			double em = rms_error(f, xs, N, q, y) / mags[m];
			CHECK(em < f->rms_bound * 1.1, "%s rms at scale %g: %.4f", f->name, mags[m], em);
		}
	}
	for (size_t i = 0; i < N; i++)
		xs[i] = x[i] * 0.1f;
	double e8 = 0;
	quantize_row_q8_K_ref(xs, q, N);
	dequantize_row_q8_K_ref(q, y, N);
	for (size_t i = 0; i < N; i++)
		e8 += ((double)xs[i] - y[i]) * ((double)xs[i] - y[i]);
	e8 = sqrt(e8 / N) / 0.1;
	printf("  q8_K: rms error %.4f on N(0,1)\n", e8);
	CHECK(e8 < 0.008, "q8_K rms %.4f", e8);
}

static void test_zero_and_extremes(void)
{
	enum { N = QK_K * 2 };
	static float x[N], y[N];
	static uint8_t q[N * 2];
	static const float mags[] = { 1e30f, 1e10f, 1e-10f, 1e-30f, 1e-44f };
	struct t_rng r = { 5 };
	for (size_t k = 0; k < N_FMTS; k++) {
		const struct fmt *f = &fmts[k];
		memset(x, 0, sizeof(x));
		rms_error(f, x, N, q, y);
		for (size_t i = 0; i < N; i++)
			CHECK(y[i] == 0, "%s zeros: y[%zu] = %g", f->name, i, y[i]);
		for (size_t m = 0; m < sizeof(mags) / sizeof(mags[0]); m++) {
			for (size_t i = 0; i < N; i++)
				x[i] = t_rand_normal(&r) * mags[m];
			rms_error(f, x, N, q, y);
			size_t bad = 0;
			for (size_t i = 0; i < N; i++)
				bad += !isfinite(y[i]);
			CHECK(bad == 0, "%s at scale %g: %zu non-finite outputs", f->name, mags[m], bad);
		}
		/* a block of one sign only (min > 0 / max < 0) */
		for (size_t i = 0; i < N; i++)
			x[i] = 5.0f + t_rand_uniform(&r);
		double e = rms_error(f, x, N, q, y);
		CHECK(e < 6 * f->rms_bound, "%s positive block rms %.4f", f->name, e);
	}
}

/* ---- dot products ------------------------------------------------------------ */

/* Random Q8_K activation rows (ny of them, stride bytes apart): quantized
 * N(0,1), except row 1, whose quants are random bytes -128..127 (bsums kept
 * consistent), to reach the extremes the quantizer never makes. */
static void make_act(uint8_t *act, size_t stride, int ny, size_t n, struct t_rng *r)
{
	static float x[QK_K * MAX_BLOCKS];
	for (int y = 0; y < ny; y++) {
		struct block_q8_K *a = (struct block_q8_K *)(act + (size_t)y * stride);
		for (size_t i = 0; i < n; i++)
			x[i] = t_rand_normal(r) * (1.0f + (float)y);
		quantize_row_q8_K_ref(x, a, n);
		if (y != 1)
			continue;
		for (size_t b = 0; b < n / QK_K; b++) {
			for (int i = 0; i < QK_K; i++)
				a[b].qs[i] = (int8_t)t_rand_u64(r);
			for (int g = 0; g < QK_K / 16; g++) {
				int s = 0;
				for (int i = 0; i < 16; i++)
					s += a[b].qs[16 * g + i];
				a[b].bsums[g] = (int16_t)s;
			}
		}
	}
}

/* A weight row: quantized N(0,1), or (random) raw random bytes with finite
 * fp16 factors, which reach every level and scale. */
static void make_row(const struct fmt *f, uint8_t *w, size_t n, bool random_bytes, struct t_rng *r)
{
	static float x[QK_K * MAX_BLOCKS];
	if (!random_bytes) {
		for (size_t i = 0; i < n; i++)
			x[i] = t_rand_normal(r);
		f->quantize(x, w, n);
		return;
	}
	for (size_t i = 0; i < n / QK_K * f->block_bytes; i++)
		w[i] = (uint8_t)t_rand_u64(r);
	for (size_t b = 0; b < n / QK_K; b++) {
		uint8_t *blk = w + b * f->block_bytes;
		uint16_t d = fm_fp32_to_fp16(t_rand_uniform(r) * 0.01f);
		uint16_t dmin = fm_fp32_to_fp16(t_rand_uniform(r) * 0.01f);
		size_t off = f->type == GGML_TYPE_Q6_K ? offsetof(struct block_q6_K, d)
			   : f->type == GGML_TYPE_Q3_K ? offsetof(struct block_q3_K, d)
			   : f->type == GGML_TYPE_Q2_K ? offsetof(struct block_q2_K, d) : 0;
		memcpy(blk + off, &d, 2);
		if (f->type != GGML_TYPE_Q6_K && f->type != GGML_TYPE_Q3_K)
			memcpy(blk + off + 2, &dmin, 2);
	}
}

/* The exact dot of the dequantized rows, and sum |w_i a_i| (the scale of
 * the rounding error). */
static double deq_dot(const struct fmt *f, const uint8_t *w, const void *a, size_t n, double *mag)
{
	static float wf[QK_K * MAX_BLOCKS], af[QK_K * MAX_BLOCKS];
	f->dequantize(w, wf, n);
	dequantize_row_q8_K_ref(a, af, n);
	double s = 0;
	*mag = 0;
	for (size_t i = 0; i < n; i++) {
		s += (double)wf[i] * af[i];
		*mag += fabs((double)wf[i] * af[i]);
	}
	return s;
}

static void test_ref_dot(void)
{
	enum { N = QK_K * MAX_BLOCKS };
	const size_t stride = N / QK_K * sizeof(struct block_q8_K);
	static uint8_t w[N], act[2 * N / QK_K * sizeof(struct block_q8_K)];
	struct t_rng r = { 21 };
	for (size_t k = 0; k < N_FMTS; k++) {
		const struct fmt *f = &fmts[k];
		for (int rep = 0; rep < 8; rep++) {
			make_row(f, w, N, rep & 1, &r);
			make_act(act, stride, 2, N, &r);
			const uint8_t *a = act + (rep & 2 ? stride : 0); /* row 1: extreme quants */
			double mag, want = deq_dot(f, w, a, N, &mag);
			float got = NAN;
			f->dot[KERNEL_ISA_REF](N, w, a, 0, 1, &got);
			/* float rounding only: measured <= 1.4e-8 * mag */
			CHECK(fabs(got - want) <= 2e-7 * mag + 1e-30, "%s ref dot rep %d: %.9g vs %.9g (mag %g)",
			      f->name, rep, (double)got, want, mag);
		}
	}
}

/* One (format, isa, n, ny) comparison against the reference. */
static void check_simd(const struct fmt *f, int isa, size_t n, int ny, const uint8_t *w,
		       const uint8_t *act, size_t stride)
{
	float ref[KERNEL_MAX_NY + 1], got[KERNEL_MAX_NY + 1];
	for (int y = 0; y <= KERNEL_MAX_NY; y++)
		ref[y] = got[y] = NAN;
	f->dot[KERNEL_ISA_REF](n, w, act, stride, ny, ref);
	f->dot[isa](n, w, act, stride, ny, got);
	for (int y = 0; y < ny; y++) {
		double mag;
		deq_dot(f, w, act + (size_t)y * stride, n, &mag);
		/* summation order only: measured <= 6.7e-8 * mag */
		CHECK(isfinite(got[y]) && fabs((double)got[y] - ref[y]) <= 1e-6 * mag + 1e-30,
		      "%s %s n=%zu ny=%d y=%d: %.9g vs ref %.9g (mag %g)", f->name, isa_name[isa], n,
		      ny, y, (double)got[y], (double)ref[y], mag);
	}
	CHECK(isnan(got[ny]), "%s %s n=%zu ny=%d wrote out[ny]", f->name, isa_name[isa], n, ny);
}

static void test_simd_dot(void)
{
	static const int n_blocks[] = { 1, 2, 3, 5, 8, 11 };
	const size_t stride = MAX_BLOCKS * sizeof(struct block_q8_K) + 68; /* padded */
	static uint8_t w[QK_K * MAX_BLOCKS], act[(MAX_BLOCKS * sizeof(struct block_q8_K) + 68) * KERNEL_MAX_NY];
	struct t_rng r = { 33 };
	for (int isa = 1; isa < KERNEL_ISA_COUNT; isa++) {
		if (!isa_usable(isa)) {
			printf("  %s: skipped (this CPU lacks it)\n", isa_name[isa]);
			continue;
		}
		int before = t_failures;
		for (size_t k = 0; k < N_FMTS; k++) {
			for (size_t m = 0; m < sizeof(n_blocks) / sizeof(n_blocks[0]); m++) {
				size_t n = (size_t)n_blocks[m] * QK_K;
				for (int rb = 0; rb < 2; rb++) {
					make_row(&fmts[k], w, n, rb, &r);
					make_act(act, stride, KERNEL_MAX_NY, n, &r);
					for (int ny = 1; ny <= KERNEL_MAX_NY; ny++)
						check_simd(&fmts[k], isa, n, ny, w, act, stride);
				}
			}
		}
		printf("  %s: vec_dot of %zu formats x 6 lengths x ny 1..8 %s\n", isa_name[isa],
		       N_FMTS, t_failures == before ? "match ref" : "FAIL");
	}
}

/* gemv (nr rows of one matrix times one activation row) against the
 * reference vec_dot row by row: every nr from 1 to 9 (the 4-row groups and
 * the remainder), rows of random blocks, and nothing written past out[nr). */
static void test_simd_gemv(void)
{
	enum { MAX_NR = 9, NB = 5 };
	static const int n_blocks[] = { 1, 2, NB };
	static uint8_t w[MAX_NR][QK_K * NB], act[NB * sizeof(struct block_q8_K)];
	struct t_rng r = { 77 };
	for (int isa = 1; isa < KERNEL_ISA_COUNT; isa++) {
		if (!isa_usable(isa)) {
			printf("  %s: skipped (this CPU lacks it)\n", isa_name[isa]);
			continue;
		}
		int before = t_failures;
		for (size_t k = 0; k < N_FMTS; k++) {
			const struct fmt *f = &fmts[k];
			CHECK(f->gemv[isa] != NULL, "%s %s has no gemv", f->name, isa_name[isa]);
			if (!f->gemv[isa])
				continue;
			for (size_t m = 0; m < sizeof(n_blocks) / sizeof(n_blocks[0]); m++) {
				size_t n = (size_t)n_blocks[m] * QK_K, rb = n / QK_K * f->block_bytes;
				/* the rows packed row_bytes apart, as in a matrix */
				static uint8_t mat[MAX_NR * QK_K * NB];
				for (int i = 0; i < MAX_NR; i++) {
					make_row(f, w[i], n, i % 3 == 0, &r);
					memcpy(mat + (size_t)i * rb, w[i], rb);
				}
				make_act(act, 0, 1, n, &r);
				for (int nr = 1; nr <= MAX_NR; nr++) {
					float got[MAX_NR + 1];
					for (int i = 0; i <= MAX_NR; i++)
						got[i] = NAN;
					f->gemv[isa](n, mat, rb, nr, act, got);
					for (int i = 0; i < nr; i++) {
						float ref;
						double mag;
						f->dot[KERNEL_ISA_REF](n, w[i], act, 0, 1, &ref);
						deq_dot(f, w[i], act, n, &mag);
						CHECK(isfinite(got[i]) &&
						      fabs((double)got[i] - ref) <= 1e-6 * mag + 1e-30,
						      "%s %s gemv n=%zu nr=%d row %d: %.9g vs ref %.9g", f->name,
						      isa_name[isa], n, nr, i, (double)got[i], (double)ref);
					}
					CHECK(isnan(got[nr]), "%s %s gemv nr=%d wrote out[nr]", f->name,
					      isa_name[isa], nr);
					/* issue 14.6: a row's bits must not depend on the split
					 * of the rows into tasks (streamed and resident runs
					 * split differently): each row alone, bit-identical */
					for (int i = 0; i < nr; i++) {
						float one = NAN;
						f->gemv[isa](n, mat + (size_t)i * rb, rb, 1, act, &one);
						CHECK(memcmp(&one, &got[i], sizeof(one)) == 0,
						      "%s %s gemv n=%zu nr=%d row %d: %.9g in a group, %.9g alone",
						      f->name, isa_name[isa], n, nr, i, (double)got[i],
						      (double)one);
					}
				}
			}
		}
		printf("  %s: gemv of %zu formats x 3 lengths x nr 1..9 %s\n", isa_name[isa],
		       N_FMTS, t_failures == before ? "match ref" : "FAIL");
	}
}

static void test_register(void)
{
	for (int isa = 0; isa < KERNEL_ISA_COUNT; isa++) {
		struct kernels k;
		memset(&k, 0, sizeof(k));
		kernels_register_kquants(&k, (enum kernel_isa)isa);
		for (size_t i = 0; i < N_FMTS; i++) {
			const struct kernel_fmt *e = &k.fmt[fmts[i].type];
			CHECK(e->act_type == GGML_TYPE_Q8_K, "%s %s act_type", isa_name[isa], fmts[i].name);
			CHECK(!fmts[i].dot[isa] || e->vec_dot == fmts[i].dot[isa], "%s %s vec_dot",
			      isa_name[isa], fmts[i].name);
			CHECK(e->gemv == fmts[i].gemv[isa], "%s %s gemv", isa_name[isa], fmts[i].name);
			CHECK(e->quantize == fmts[i].quantize && e->dequantize == fmts[i].dequantize,
			      "%s %s (de)quantize", isa_name[isa], fmts[i].name);
		}
		CHECK(!q8_K_isa[isa] || k.quantize_act[GGML_TYPE_Q8_K] == q8_K_isa[isa],
		      "%s quantize_act", isa_name[isa]);
		CHECK(!k.fmt[GGML_TYPE_F32].vec_dot && !k.fmt[GGML_TYPE_Q8_0].vec_dot &&
		      !k.quantize_act[GGML_TYPE_Q8_0] && !k.fmt[GGML_TYPE_Q8_K].vec_dot,
		      "%s touched other entries", isa_name[isa]);
	}
}

int main(void)
{
	test_k4_scales();
	test_q4_K_layout();
	test_q5_K_layout();
	test_q6_K_layout();
	test_q3_K_scales();
	test_q3_K_layout();
	test_q2_K_layout();
	test_q8_K_convention();
	test_q8_K_isas();
	test_round_trip();
	test_zero_and_extremes();
	test_ref_dot();
	test_simd_dot();
	test_simd_gemv();
	test_register();
	return t_done("test_kquants");
}
