/* test_kernels.c: every weight format x every ISA this CPU has, against the
 * scalar reference; plus the layout, round-trip and special-value checks of
 * the plain and 32-block formats (src/kernels/basic.c).
 *
 * The generic part walks the ref table, so every format whose reference
 * vec_dot is registered (the K-quants included) is covered:
 *  - vec_dot: random weights (ref quantizer), random activations (ref act
 *    quantizer), ny = 1..8, several n with odd block counts, rows at their
 *    real misalignment, outputs pre-filled with NaN: results must be written
 *    for j < ny, left alone for j >= ny, and within a named tolerance of ref.
 *    The tolerance is relative to S_j = sum_i |w_i * x_ji| (dequantized
 *    weights, float activations): both sides compute the same products (exact
 *    integer sums for the quantized formats) and differ only in float
 *    summation order, so the error is a few ulps of S_j.
 *  - quantize_act: each ISA's bytes equal ref's exactly (random rows and rows
 *    with zeros, NaN, Inf and rounding ties).
 * Exit 0 pass, 1 fail; ISAs the CPU lacks are reported as skipped.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/formats.h"
#include "kernels/kernels.h"
#include "testutil.h"
#include "util.h"

/* Tolerances for |isa - ref| / S_j, per weight type (~2^-19, a dozen float
 * ulps). Measured worst cases (Zen 4, avx2 and avx512): 1.7e-7 for
 * f32/f16/bf16, 6.4e-8 for q8_0/q4_0, 5.4e-8 for the K-quants. A dropped
 * element or block moves a result by about 1/n of S_j, >= 2e-4 here. */
#define TOL_FLOAT 2e-6
#define TOL_QUANT 2e-6
#define TOL_KQUANT 2e-6

static double tolerance(enum ggml_type t)
{
	switch (t) {
	case GGML_TYPE_F32:
	case GGML_TYPE_F16:
	case GGML_TYPE_BF16:
		return TOL_FLOAT;
	case GGML_TYPE_Q8_0:
	case GGML_TYPE_Q4_0:
		return TOL_QUANT;
	default:
		return TOL_KQUANT;
	}
}

static double g_worst[GGML_TYPE_COUNT]; /* test-program state, reported at the end */

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p) {
		fprintf(stderr, "out of memory\n");
		exit(1);
	}
	return p;
}

static void fill_normal(struct t_rng *r, float *x, size_t n, float scale)
{
	for (size_t i = 0; i < n; i++)
		x[i] = scale * t_rand_normal(r);
}

/* A weight row in its format plus its dequantized floats. */
struct wrow {
	uint8_t *buf;  /* off + row_bytes bytes, exactly (ASan sees over-reads) */
	uint8_t *data; /* buf + off: the row at the misalignment real rows have */
	float *deq;    /* [n] */
};

static void make_wrow(const struct kernels *ref, enum ggml_type t, size_t n,
		      struct t_rng *r, struct wrow *w)
{
	const struct ggml_type_traits *tr = ggml_type_get(t);
	size_t rb = ggml_row_bytes(t, n), off = tr->blck_bytes % 4 ? 2 : 4;
	float *x = xmalloc(n * sizeof(float));
	fill_normal(r, x, n, 0.5f);
	w->buf = xmalloc(off + rb);
	w->data = w->buf + off;
	w->deq = xmalloc(n * sizeof(float));
	ref->fmt[t].quantize(x, w->data, n);
	if (ref->fmt[t].dequantize)
		ref->fmt[t].dequantize(w->data, w->deq, n);
	else
		memcpy(w->deq, x, n * sizeof(float));
	free(x);
}

/* KERNEL_MAX_NY activation rows, stride bytes apart, and their floats. */
struct arows {
	uint8_t *buf;
	size_t stride;
	float *x; /* [KERNEL_MAX_NY][n] */
};

static void make_arows(const struct kernels *ref, enum ggml_type at, size_t n,
		       struct t_rng *r, struct arows *a)
{
	size_t rb = ggml_row_bytes(at, n);
	a->stride = (rb + 32 + 3) & ~(size_t)3; /* not the row size: catches stride misuse */
	a->buf = xmalloc((KERNEL_MAX_NY - 1) * a->stride + rb);
	a->x = xmalloc(KERNEL_MAX_NY * n * sizeof(float));
	for (int j = 0; j < KERNEL_MAX_NY; j++) {
		float *xj = a->x + (size_t)j * n;
		fill_normal(r, xj, n, 0.37f * (float)(j + 1)); /* rows of different scale */
		if (ref->quantize_act[at])
			ref->quantize_act[at](xj, a->buf + (size_t)j * a->stride, n);
		else
			memcpy(a->buf + (size_t)j * a->stride, xj, rb);
	}
}

/* S_j = sum |w_i x_ji|: the scale of float summation error for row j. */
static double abs_scale(const float *w, const float *x, size_t n)
{
	double s = 0;
	for (size_t i = 0; i < n; i++)
		s += fabs((double)w[i] * x[i]);
	return s;
}

/* One (type, n, isa): ny = 1..8 against ref's outputs for all 8 rows. */
static void check_dot_isa(const struct kernels *k, enum ggml_type t, size_t n,
			  const struct wrow *w, const struct arows *a, const float *want)
{
	const char *tn = ggml_type_get(t)->name;
	for (int ny = 1; ny <= KERNEL_MAX_NY; ny++) {
		float out[KERNEL_MAX_NY];
		for (int j = 0; j < KERNEL_MAX_NY; j++)
			out[j] = NAN;
		k->fmt[t].vec_dot(n, w->data, a->buf, a->stride, ny, out);
		for (int j = 0; j < KERNEL_MAX_NY; j++) {
			if (j >= ny) {
				CHECK(isnan(out[j]), "%s %s n=%zu ny=%d: wrote out[%d]", k->name,
				      tn, n, ny, j);
				continue;
			}
			double s = abs_scale(w->deq, a->x + (size_t)j * n, n) + 1e-30;
			double rel = fabs((double)out[j] - want[j]) / s;
			if (rel > g_worst[t] || isnan(rel))
				g_worst[t] = isnan(rel) ? INFINITY : rel;
			CHECK(rel <= tolerance(t), "%s %s n=%zu ny=%d row %d: %.9g vs ref %.9g "
			      "(err/S = %.3g > %.3g)", k->name, tn, n, ny, j, out[j], want[j],
			      rel, tolerance(t));
		}
	}
}

static void check_dot_type(const struct kernels *const *isas, int n_isa, enum ggml_type t,
			   struct t_rng *r)
{
	static const size_t blocks[] = { 1, 2, 3, 7, 33, 64, 129 };
	static const size_t plain_n[] = { 1, 3, 7, 15, 16, 17, 31, 33, 64, 127, 1000, 4099 };
	const struct kernels *ref = isas[0];
	enum ggml_type at = ref->fmt[t].act_type;
	uint32_t bw = ggml_type_get(t)->blck_elems, ba = ggml_type_get(at)->blck_elems;
	uint32_t blck = bw > ba ? bw : ba;
	int plain = blck == 1;
	size_t count = plain ? sizeof(plain_n) / sizeof(plain_n[0])
			     : sizeof(blocks) / sizeof(blocks[0]);
	CHECK(ref->fmt[t].quantize != NULL, "%s: no reference quantizer",
	      ggml_type_get(t)->name);
	if (!ref->fmt[t].quantize || blck % bw || blck % ba)
		return;
	for (size_t c = 0; c < count; c++) {
		size_t n = plain ? plain_n[c] : blocks[c] * blck;
		struct wrow w;
		struct arows a;
		float want[KERNEL_MAX_NY];
		make_wrow(ref, t, n, r, &w);
		make_arows(ref, at, n, r, &a);
		ref->fmt[t].vec_dot(n, w.data, a.buf, a.stride, KERNEL_MAX_NY, want);
		for (int i = 0; i < n_isa; i++)
			check_dot_isa(isas[i], t, n, &w, &a, want);
		free(w.buf), free(w.deq), free(a.buf), free(a.x);
	}
}

/* ---- quantize_act: same bytes as ref ---- */

/* Rows with the special cases in their first blocks (n >= 128). */
static void add_specials(float *x, size_t n)
{
	if (n < 128)
		return;
	memset(x, 0, 32 * sizeof(float)); /* all-zero block */
	x[32 + 3] = NAN;                  /* NaNs among normal values, one in the */
	x[32 + 15] = 60.0f;               /* last vector, in the lane of the max */
	x[32 + 31] = NAN;
	x[64 + 5] = INFINITY;             /* an Inf makes d = Inf */
	x[64 + 6] = -INFINITY;
	/* amax = 127 gives d = 1, id = 1: exact ties x.5 in both signs */
	for (int i = 0; i < 32; i++)
		x[96 + i] = (float)(i - 16) + 0.5f;
	x[96] = 127.0f;
}

static void check_quantize_act(const struct kernels *const *isas, int n_isa, struct t_rng *r)
{
	static const size_t blocks[] = { 1, 4, 8, 33 };
	const struct kernels *ref = isas[0];
	for (int at = 0; at < GGML_TYPE_COUNT; at++) {
		if (!ref->quantize_act[at])
			continue;
		uint32_t blck = ggml_type_get((uint32_t)at)->blck_elems;
		blck = blck < 32 ? 32 : blck;
		for (size_t c = 0; c < sizeof(blocks) / sizeof(blocks[0]); c++) {
			size_t n = blocks[c] * blck, rb = ggml_row_bytes((uint32_t)at, n);
			float *x = xmalloc(n * sizeof(float));
			uint8_t *want = xmalloc(rb), *got = xmalloc(rb);
			fill_normal(r, x, n, 3.0f);
			add_specials(x, n);
			ref->quantize_act[at](x, want, n);
			for (int i = 1; i < n_isa; i++) {
				memset(got, 0xa5, rb);
				isas[i]->quantize_act[at](x, got, n);
				CHECK(memcmp(got, want, rb) == 0, "%s quantize_act %s n=%zu: bytes "
				      "differ from ref", isas[i]->name,
				      ggml_type_get((uint32_t)at)->name, n);
			}
			free(x), free(want), free(got);
		}
	}
}

/* ---- hand-made blocks: the layouts ---- */

static void check_q8_0_layout(void)
{
	struct block_q8_0 b = { 0 };
	float y[QK8_0], x[QK8_0] = { 127.0f, -3.4f, 2.5f, -2.5f, 0.49f, -0.5f, 126.6f };
	b.d = 0x3800; /* 0.5 */
	b.qs[0] = 1, b.qs[1] = -2, b.qs[2] = 127, b.qs[31] = -127;
	dequantize_row_q8_0_ref(&b, y, QK8_0);
	CHECK(y[0] == 0.5f && y[1] == -1.0f && y[2] == 63.5f && y[3] == 0.0f &&
	      y[31] == -63.5f, "q8_0 dequant: %g %g %g %g %g", y[0], y[1], y[2], y[3], y[31]);
	/* amax = 127: d = 1 exactly, q = roundf(x), half away from zero */
	quantize_row_q8_0_ref(x, &b, QK8_0);
	static const int8_t want[7] = { 127, -3, 3, -3, 0, -1, 127 };
	CHECK(b.d == 0x3c00, "q8_0 quant: d = 0x%04x, want 0x3c00 (1.0)", b.d);
	for (int i = 0; i < 7; i++)
		CHECK(b.qs[i] == want[i], "q8_0 quant: qs[%d] = %d, want %d", i, b.qs[i], want[i]);
	for (int i = 7; i < QK8_0; i++)
		CHECK(b.qs[i] == 0, "q8_0 quant: qs[%d] = %d, want 0", i, b.qs[i]);
}

static void check_q4_0_layout(void)
{
	struct block_q4_0 b = { 0 };
	float y[QK4_0], x[QK4_0] = { 0 };
	b.d = 0x4000; /* 2.0 */
	memset(b.qs, 0x88, sizeof(b.qs));
	b.qs[0] = 0x3a, b.qs[15] = 0xf0;
	dequantize_row_q4_0_ref(&b, y, QK4_0);
	CHECK(y[0] == 4.0f && y[16] == -10.0f && y[15] == -16.0f && y[31] == 14.0f &&
	      y[1] == 0.0f, "q4_0 dequant: %g %g %g %g %g", y[0], y[16], y[15], y[31], y[1]);
	/* m = -16: d = 2, id = 0.5, q = trunc(x / 2 + 8.5) clamped to 0..15 */
	x[0] = 4.0f, x[1] = -16.0f, x[2] = 14.0f, x[3] = 15.0f, x[4] = 1.0f, x[5] = -1.0f;
	x[16] = -3.0f, x[17] = 2.9f;
	quantize_row_q4_0_ref(x, &b, QK4_0);
	CHECK(b.d == 0x4000, "q4_0 quant: d = 0x%04x, want 0x4000 (2.0)", b.d);
	static const uint8_t want[6] = { 0x7a, 0x90, 0x8f, 0x8f, 0x89, 0x88 };
	for (int i = 0; i < 6; i++)
		CHECK(b.qs[i] == want[i], "q4_0 quant: qs[%d] = 0x%02x, want 0x%02x", i,
		      b.qs[i], want[i]);
	CHECK(b.qs[6] == 0x88, "q4_0 quant: zero -> 8, got 0x%02x", b.qs[6]);
}

/* A hand-computed dot: Q4_0 block above x Q8_0 activations. */
static void check_hand_dot(void)
{
	struct block_q4_0 w = { 0 };
	struct block_q8_0 a = { 0 };
	float out[1];
	w.d = 0x4000; /* 2.0 */
	memset(w.qs, 0x88, sizeof(w.qs)); /* all zero values ... */
	w.qs[0] = 0x3a;                   /* w[0] = 2*(10-8) = 4, w[16] = 2*(3-8) = -10 */
	a.d = 0x3800;                     /* 0.5 */
	a.qs[0] = 3, a.qs[16] = -7, a.qs[1] = 100;
	vec_dot_q4_0_ref(QK4_0, &w, &a, sizeof(a), 1, out);
	CHECK(out[0] == 4.0f * 1.5f + -10.0f * -3.5f, "q4_0 dot: %g, want 41", out[0]);
	struct block_q8_0 wq = { 0 };
	wq.d = 0x4000, wq.qs[0] = 2, wq.qs[31] = -5;
	a.qs[31] = 9;
	vec_dot_q8_0_ref(QK8_0, &wq, &a, sizeof(a), 1, out);
	CHECK(out[0] == 2.0f * 0.5f * (2 * 3 + -5 * 9), "q8_0 dot: %g, want -39", out[0]);
}

/* ---- round trips ---- */

/* Q8_0: |x - d16 q| <= d/2 + 127 |d - d16| with d = amax/127 (|d - d16| is
 * d 2^-11 for normal halves, up to 2^-25 once d is a subnormal half). */
static void check_q8_0_roundtrip(struct t_rng *r)
{
	enum { NB = 64, N = NB * QK8_0 };
	float x[N], y[N];
	struct block_q8_0 b[NB];
	for (int ib = 0; ib < NB; ib++) /* block scales from 1e-5 to 1e1 */
		fill_normal(r, x + ib * QK8_0, QK8_0, powf(10.0f, (float)(ib % 7) - 5.0f));
	quantize_row_q8_0_ref(x, b, N);
	dequantize_row_q8_0_ref(b, y, N);
	for (int ib = 0; ib < NB; ib++) {
		float amax = 0;
		for (int i = 0; i < QK8_0; i++)
			amax = fmaxf(amax, fabsf(x[ib * QK8_0 + i]));
		double d = amax / 127.0, d16 = fm_fp16_to_fp32(b[ib].d);
		double bound = (0.5 * d + 127 * fabs(d - d16)) * (1 + 1e-6);
		for (int i = 0; i < QK8_0; i++) {
			double err = fabs((double)x[ib * QK8_0 + i] - y[ib * QK8_0 + i]);
			CHECK(err <= bound, "q8_0 round trip block %d [%d]: err %g > %g", ib, i,
			      err, bound);
		}
	}
}

/* Q4_0: |err| <= |d|/2 + 8 |d - d16| with |d| = amax/8; the level clamped to
 * 15 (x/d > 7.5) may be off by up to |d|. */
static void check_q4_0_roundtrip(struct t_rng *r)
{
	enum { NB = 64, N = NB * QK4_0 };
	float x[N], y[N];
	struct block_q4_0 b[NB];
	for (int ib = 0; ib < NB; ib++) /* block scales from 1e-5 to 1e1 */
		fill_normal(r, x + ib * QK4_0, QK4_0, powf(10.0f, (float)(ib % 7) - 5.0f));
	quantize_row_q4_0_ref(x, b, N);
	dequantize_row_q4_0_ref(b, y, N);
	for (int ib = 0; ib < NB; ib++) {
		float amax = 0;
		for (int i = 0; i < QK4_0; i++)
			amax = fmaxf(amax, fabsf(x[ib * QK4_0 + i]));
		double d = amax / 8.0, d16 = fabs(fm_fp16_to_fp32(b[ib].d));
		for (int i = 0; i < QK4_0; i++) {
			int q = i < 16 ? b[ib].qs[i] & 15 : b[ib].qs[i - 16] >> 4;
			double bound = ((q == 15 ? 1.0 : 0.5) * d + 8 * fabs(d - d16)) * (1 + 1e-6);
			double err = fabs((double)x[ib * QK4_0 + i] - y[ib * QK4_0 + i]);
			CHECK(err <= bound, "q4_0 round trip block %d [%d]: err %g > %g", ib, i,
			      err, bound);
		}
	}
}

/* F16 and BF16: every finite value survives exactly; random floats in the
 * normal range within half an ulp (2^-11 resp. 2^-8 relative). */
static void check_half_roundtrip(struct t_rng *r)
{
	int bad16 = 0, bad_bf = 0;
	for (uint32_t h = 0; h < 0x10000; h++) {
		uint16_t v = (uint16_t)h, got;
		float f;
		if ((h & 0x7c00) != 0x7c00) {
			dequantize_row_f16_ref(&v, &f, 1);
			quantize_row_f16_ref(&f, &got, 1);
			bad16 += got != v;
		}
		if ((h & 0x7f80) != 0x7f80) {
			dequantize_row_bf16_ref(&v, &f, 1);
			quantize_row_bf16_ref(&f, &got, 1);
			bad_bf += got != v;
		}
	}
	CHECK(bad16 == 0, "f16: %d finite halves do not round-trip", bad16);
	CHECK(bad_bf == 0, "bf16: %d finite values do not round-trip", bad_bf);
	for (int i = 0; i < 100000; i++) {
		float x = (t_rand_uniform(r) - 0.5f) * 2.0f, y;
		x = ldexpf(x < 0 ? x - 0.5f : x + 0.5f, (int)(t_rand_u64(r) % 28) - 13);
		uint16_t h;
		quantize_row_f16_ref(&x, &h, 1);
		dequantize_row_f16_ref(&h, &y, 1);
		CHECK(fabsf(y - x) <= fabsf(x) * 0x1p-11f, "f16 %.9g -> %.9g", x, y);
		quantize_row_bf16_ref(&x, &h, 1);
		dequantize_row_bf16_ref(&h, &y, 1);
		CHECK(fabsf(y - x) <= fabsf(x) * 0x1p-8f, "bf16 %.9g -> %.9g", x, y);
	}
}

/* ---- zeros, NaN, Inf ---- */

static void check_q8_0_specials(void)
{
	float x[3 * QK8_0] = { 0 }, y[3 * QK8_0];
	struct block_q8_0 b[3];
	for (int i = 0; i < QK8_0; i++)
		x[QK8_0 + i] = (float)(i - 10), x[2 * QK8_0 + i] = 1.0f;
	x[QK8_0 + 3] = NAN;
	x[2 * QK8_0 + 5] = -INFINITY;
	quantize_row_q8_0_ref(x, b, 3 * QK8_0);
	dequantize_row_q8_0_ref(b, y, QK8_0);
	CHECK(b[0].d == 0, "q8_0 zero block: d = 0x%04x", b[0].d);
	for (int i = 0; i < QK8_0; i++)
		CHECK(b[0].qs[i] == 0 && y[i] == 0.0f, "q8_0 zero block [%d]: %d %g", i,
		      b[0].qs[i], y[i]);
	CHECK(b[1].d == fm_fp32_to_fp16(21.0f / 127.0f) && b[1].qs[3] == 0 &&
	      b[1].qs[31] == 127, "q8_0 NaN block: d 0x%04x qs[3] %d qs[31] %d", b[1].d,
	      b[1].qs[3], b[1].qs[31]);
	CHECK(b[2].d == 0x7c00, "q8_0 Inf block: d = 0x%04x, want Inf", b[2].d);
	for (int i = 0; i < QK8_0; i++)
		CHECK(b[2].qs[i] == 0, "q8_0 Inf block: qs[%d] = %d", i, b[2].qs[i]);
}

static void check_q4_0_specials(void)
{
	float x[2 * QK4_0] = { 0 }, y[QK4_0];
	struct block_q4_0 b[2];
	for (int i = 0; i < QK4_0; i++)
		x[QK4_0 + i] = (float)(i - 8);
	x[QK4_0 + 3] = NAN;
	quantize_row_q4_0_ref(x, b, 2 * QK4_0);
	dequantize_row_q4_0_ref(b, y, QK4_0);
	CHECK(fm_fp16_to_fp32(b[0].d) == 0.0f, "q4_0 zero block: d = 0x%04x", b[0].d);
	for (int i = 0; i < QK4_0; i++)
		CHECK(y[i] == 0.0f, "q4_0 zero block [%d] = %g", i, y[i]);
	for (int i = 0; i < QK4_0 / 2; i++)
		CHECK(b[0].qs[i] == 0x88, "q4_0 zero block qs[%d] = 0x%02x", i, b[0].qs[i]);
	/* m = 23 -> d = -23/8; NaN at 3 -> level 8 (value 0) */
	CHECK(b[1].d == fm_fp32_to_fp16(-23.0f / 8.0f) && (b[1].qs[3] & 15) == 8,
	      "q4_0 NaN block: d 0x%04x qs[3] 0x%02x", b[1].d, b[1].qs[3]);
}

/* All-zero weights and activations give 0, not NaN, on every ISA. */
static void check_zero_dot(const struct kernels *const *isas, int n_isa)
{
	static const enum ggml_type types[] = { GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16,
						GGML_TYPE_Q8_0, GGML_TYPE_Q4_0 };
	enum { N = 3 * 32 };
	float zeros[N] = { 0 }, out[KERNEL_MAX_NY];
	_Alignas(64) uint8_t w[N * 4], a[N * 4];
	for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
		const struct kernel_fmt *f = &isas[0]->fmt[types[t]];
		f->quantize(zeros, w, N);
		isas[0]->quantize_act[f->act_type](zeros, a, N);
		for (int i = 0; i < n_isa; i++) {
			isas[i]->fmt[types[t]].vec_dot(N, w, a, 0, KERNEL_MAX_NY, out);
			for (int j = 0; j < KERNEL_MAX_NY; j++)
				CHECK(out[j] == 0.0f, "%s %s zero dot [%d] = %g", isas[i]->name,
				      ggml_type_get(types[t])->name, j, out[j]);
		}
	}
}

/* ---- dispatch ---- */

static void check_dispatch(void)
{
	const struct kernels *ref = kernels_get(KERNEL_ISA_REF), *best = kernels_best();
	CHECK(kernels_isa_from_name("ref") == KERNEL_ISA_REF, "name ref");
	CHECK(kernels_isa_from_name("avx2") == KERNEL_ISA_AVX2, "name avx2");
	CHECK(kernels_isa_from_name("avx512") == KERNEL_ISA_AVX512, "name avx512");
	CHECK(kernels_isa_from_name("neon") == -1 && kernels_isa_from_name(NULL) == -1,
	      "unknown names");
	CHECK(kernels_get(KERNEL_ISA_COUNT) == NULL, "kernels_get(COUNT) must be NULL");
	CHECK(ref && ref->isa == KERNEL_ISA_REF && strcmp(ref->name, "ref") == 0, "ref table");
	if (!ref || !best)
		return;
	for (int i = KERNEL_ISA_COUNT - 1; i >= 0; i--) {
		const struct kernels *k = kernels_get((enum kernel_isa)i);
		CHECK(!k == !kernels_isa_supported((enum kernel_isa)i), "get vs supported %d", i);
		if (!k)
			continue;
		CHECK(k->isa == (enum kernel_isa)i && kernels_isa_from_name(k->name) == i,
		      "table %d: isa %d name %s", i, k->isa, k->name);
		/* lower ISAs fill what a higher one lacks: nothing the reference has is lost */
		for (int t = 0; t < GGML_TYPE_COUNT; t++) {
			CHECK(!ref->fmt[t].vec_dot || (k->fmt[t].vec_dot && k->fmt[t].act_type ==
			      ref->fmt[t].act_type), "%s: type %d missing", k->name, t);
			CHECK(!ref->quantize_act[t] || k->quantize_act[t], "%s: act %d missing",
			      k->name, t);
		}
	}
	for (int i = KERNEL_ISA_COUNT - 1; i >= 0; i--) {
		if (kernels_isa_supported((enum kernel_isa)i)) {
			CHECK(best->isa == (enum kernel_isa)i, "best is %s, want isa %d", best->name, i);
			break;
		}
	}
}

int main(void)
{
	struct t_rng r = { 20240601 };
	const struct kernels *isas[KERNEL_ISA_COUNT];
	int n_isa = 0;
	kernels_init();
	for (int i = 0; i < KERNEL_ISA_COUNT; i++) {
		const struct kernels *k = kernels_get((enum kernel_isa)i);
		static const char *const names[] = { "ref", "avx2", "avx512" };
		if (k)
			isas[n_isa++] = k;
		else
			printf("test_kernels: %s skipped: this CPU lacks it\n", names[i]);
	}
	check_dispatch();
	check_q8_0_layout();
	check_q4_0_layout();
	check_hand_dot();
	check_q8_0_roundtrip(&r);
	check_q4_0_roundtrip(&r);
	check_half_roundtrip(&r);
	check_q8_0_specials();
	check_q4_0_specials();
	check_zero_dot(isas, n_isa);
	check_quantize_act(isas, n_isa, &r);
	for (int t = 0; t < GGML_TYPE_COUNT; t++) {
		if (!isas[0]->fmt[t].vec_dot)
			continue;
		check_dot_type(isas, n_isa, (enum ggml_type)t, &r);
		printf("test_kernels: %-5s vs ref on", ggml_type_get((uint32_t)t)->name);
		for (int i = 1; i < n_isa; i++)
			printf(" %s", isas[i]->name);
		printf(": worst err/S %.3g (tolerance %.3g)\n", g_worst[t],
		       tolerance((enum ggml_type)t));
	}
	return t_done("test_kernels");
}
