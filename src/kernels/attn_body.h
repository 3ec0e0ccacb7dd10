/* attn_body.h: the bodies of attn.h's functions, included by attn.c,
 * attn_avx2.c and attn_avx512.c after they define ATTN_DOT_ROWS and ATTN_WSUM
 * as the names of their variants (attn_dot_rows_avx2 ...): one source,
 * compiled once per ISA. Not a header of its own. */
#include <stdint.h>
#include <string.h>

typedef float attn_v8 __attribute__((vector_size(32)));
typedef float attn_v4 __attribute__((vector_size(16)));
/* attn_ld8 is always inlined: its vector return never crosses an ABI boundary */
#pragma GCC diagnostic ignored "-Wpsabi"

static inline __attribute__((always_inline)) attn_v8 attn_ld8(const float *p)
{
	attn_v8 v;
	memcpy(&v, p, sizeof(v));
	return v;
}

/* A row's 16 running sums, as two halves: lanes 0-7 and 8-15. */
struct attn_sums {
	attn_v8 lo, hi;
};

/* The row's score: elements past the last whole 16 go into sum 0, then the
 * sums are folded pairwise, s[j] += s[j + w] for w = 8, 4, 2, 1 (on vector
 * halves when there is no tail: the same adds). */
static inline __attribute__((always_inline)) float attn_fold(const struct attn_sums *a, const float *q,
							     const float *k, int i, int n)
{
	if (i < n) {
		float s[16];
		memcpy(s, &a->lo, sizeof(a->lo));
		memcpy(s + 8, &a->hi, sizeof(a->hi));
		for (; i < n; i++)
			s[0] += q[i] * k[i];
		for (int w = 8; w >= 1; w /= 2)
			for (int j = 0; j < w; j++)
				s[j] += s[j + w];
		return s[0];
	}
	attn_v8 s8 = a->lo + a->hi;
	attn_v4 lo4, hi4;
	memcpy(&lo4, &s8, sizeof(lo4));
	memcpy(&hi4, (const char *)&s8 + sizeof(lo4), sizeof(hi4));
	attn_v4 s4 = lo4 + hi4;
	return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}

static inline __attribute__((always_inline)) void attn_sum16(struct attn_sums *a,
							     const float *q, const float *k)
{
	a->lo += attn_ld8(q) * attn_ld8(k);
	a->hi += attn_ld8(q + 8) * attn_ld8(k + 8);
}

/* 16 running sums per row, folded pairwise at the end. Four rows at a time:
 * one row's sums are a chain of dependent adds whose latency, not the FP
 * units, set the pace (18 ns per 128-long row with one row at a time and one
 * 16-wide sum; 5.7 ns like this with AVX-512VL, 9.5 with AVX2); q's loads are
 * shared. Every row's arithmetic is exactly that of a one-row loop. */
void ATTN_DOT_ROWS(float *out, const float *q, const float *rows, int n_rows, int n, float scale)
{
	int t = 0;
	for (; t + 4 <= n_rows; t += 4) {
		const float *k0 = rows + (size_t)t * n, *k1 = k0 + n, *k2 = k1 + n, *k3 = k2 + n;
		struct attn_sums a0 = { 0 }, a1 = { 0 }, a2 = { 0 }, a3 = { 0 };
		int i = 0;
		for (; i + 16 <= n; i += 16) {
			attn_sum16(&a0, q + i, k0 + i);
			attn_sum16(&a1, q + i, k1 + i);
			attn_sum16(&a2, q + i, k2 + i);
			attn_sum16(&a3, q + i, k3 + i);
		}
		out[t] = attn_fold(&a0, q, k0, i, n) * scale;
		out[t + 1] = attn_fold(&a1, q, k1, i, n) * scale;
		out[t + 2] = attn_fold(&a2, q, k2, i, n) * scale;
		out[t + 3] = attn_fold(&a3, q, k3, i, n) * scale;
	}
	for (; t < n_rows; t++) {
		const float *k = rows + (size_t)t * n;
		struct attn_sums a = { 0 };
		int i = 0;
		for (; i + 16 <= n; i += 16)
			attn_sum16(&a, q + i, k + i);
		out[t] = attn_fold(&a, q, k, i, n) * scale;
	}
}

/* 64 columns at a time held in registers over all rows: one pass over the
 * rows per 64 columns, no load/store of o per row. Each column's sum runs over
 * t in order from zero, as repeated y += p[t] * row would. Four 16-wide sums
 * with AVX-512 (6 ns per 128-long row), eight 8-wide ones otherwise: 16-wide
 * vector types compiled for AVX2 went through memory (87 ns; 8.7 like this). */
void ATTN_WSUM(float *o, const float *p, const float *rows, int n_rows, int n)
{
	int d0 = 0;
	for (; d0 + 64 <= n; d0 += 64) {
#if defined(__AVX512F__)
		typedef float v16 __attribute__((vector_size(64)));
		v16 a0 = { 0 }, a1 = { 0 }, a2 = { 0 }, a3 = { 0 };
		for (int t = 0; t < n_rows; t++) {
			const float *v = rows + (size_t)t * n + d0;
			const float pt = p[t];
			const v16 b = { pt, pt, pt, pt, pt, pt, pt, pt, pt, pt, pt, pt, pt, pt, pt, pt };
			v16 x0, x1, x2, x3;
			memcpy(&x0, v, sizeof(x0));
			memcpy(&x1, v + 16, sizeof(x1));
			memcpy(&x2, v + 32, sizeof(x2));
			memcpy(&x3, v + 48, sizeof(x3));
			a0 += b * x0, a1 += b * x1, a2 += b * x2, a3 += b * x3;
		}
		memcpy(o + d0, &a0, sizeof(a0));
		memcpy(o + d0 + 16, &a1, sizeof(a1));
		memcpy(o + d0 + 32, &a2, sizeof(a2));
		memcpy(o + d0 + 48, &a3, sizeof(a3));
#else
		attn_v8 a[8] = { { 0 } };
		for (int t = 0; t < n_rows; t++) {
			const float *v = rows + (size_t)t * n + d0;
			const float pt = p[t];
			const attn_v8 b = { pt, pt, pt, pt, pt, pt, pt, pt };
			for (int j = 0; j < 8; j++)
				a[j] += b * attn_ld8(v + 8 * j);
		}
		memcpy(o + d0, a, sizeof(a));
#endif
	}
	for (; d0 < n; d0++) {
		float acc = 0;
		for (int t = 0; t < n_rows; t++)
			acc += p[t] * rows[(size_t)t * n + d0];
		o[d0] = acc;
	}
}

/* ATTN_WSUM over IEEE-half rows (the f16 KV cache): the same loop, each
 * element converted to float (exact) as it is loaded, so every ISA returns the
 * same bits as the f32 loop on the converted rows (F16C's vcvtph2ps where the
 * ISA has it). */
#if defined(__F16C__) || defined(__AVX2__)
#include <immintrin.h>
#endif
#include "util.h"

/* One IEEE half to float, exact (F16C's vcvtph2ps where the ISA has it;
 * fm_fp16_to_fp32 otherwise: _Float16 is not available to every compiler
 * and target, e.g. clang at the base x86-64 ISA). */
static inline __attribute__((always_inline)) float attn_h2f(uint16_t h)
{
#if defined(__F16C__)
	return _cvtsh_ss(h);
#else
	return fm_fp16_to_fp32(h);
#endif
}

/* 8 halves -> 8 floats: one vcvtph2ps where the ISA has F16C (GCC 12 turns
 * __builtin_convertvector on _Float16 vectors into one conversion per
 * element: 140 ns per 128-long row instead of 6, measured), else exact
 * conversion element by element. Both are exact, so the bits agree. */
static inline __attribute__((always_inline)) attn_v8 attn_ldh8(const uint16_t *p)
{
	attn_v8 v;
#if defined(__F16C__)
	__m256 x = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)p));
	memcpy(&v, &x, sizeof(v));
#else
	for (int i = 0; i < 8; i++)
		v[i] = fm_fp16_to_fp32(p[i]);
#endif
	return v;
}

void ATTN_WSUM_F16(float *o, const float *p, const uint16_t *rows, int n_rows, int n)
{
	int d0 = 0;
	for (; d0 + 64 <= n; d0 += 64) {
#if defined(__AVX512F__)
		typedef float v16 __attribute__((vector_size(64)));
		v16 a0 = { 0 }, a1 = { 0 }, a2 = { 0 }, a3 = { 0 };
		for (int t = 0; t < n_rows; t++) {
			const uint16_t *v = rows + (size_t)t * n + d0;
			const float pt = p[t];
			const v16 b = { pt, pt, pt, pt, pt, pt, pt, pt, pt, pt, pt, pt, pt, pt, pt, pt };
			__m512 y0 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)v));
			__m512 y1 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(v + 16)));
			__m512 y2 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(v + 32)));
			__m512 y3 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(v + 48)));
			v16 x0, x1, x2, x3;
			memcpy(&x0, &y0, sizeof(x0));
			memcpy(&x1, &y1, sizeof(x1));
			memcpy(&x2, &y2, sizeof(x2));
			memcpy(&x3, &y3, sizeof(x3));
			a0 += b * x0, a1 += b * x1, a2 += b * x2, a3 += b * x3;
		}
		memcpy(o + d0, &a0, sizeof(a0));
		memcpy(o + d0 + 16, &a1, sizeof(a1));
		memcpy(o + d0 + 32, &a2, sizeof(a2));
		memcpy(o + d0 + 48, &a3, sizeof(a3));
#else
		attn_v8 a[8] = { { 0 } };
		for (int t = 0; t < n_rows; t++) {
			const uint16_t *v = rows + (size_t)t * n + d0;
			const float pt = p[t];
			const attn_v8 b = { pt, pt, pt, pt, pt, pt, pt, pt };
			for (int j = 0; j < 8; j++)
				a[j] += b * attn_ldh8(v + 8 * j);
		}
		memcpy(o + d0, a, sizeof(a));
#endif
	}
	for (; d0 < n; d0++) {
		float acc = 0;
		for (int t = 0; t < n_rows; t++)
			acc += p[t] * attn_h2f(rows[(size_t)t * n + d0]);
		o[d0] = acc;
	}
}

/* ATTN_WSUM over Q8_0 rows (the q8_0 KV cache): n / 32 blocks of an IEEE-half
 * scale d and 32 int8 q per row; each element is d * (float)q, as
 * dequantize_row_q8_0 makes it (one rounding), then the f32 loop's
 * arithmetic: the same bits as attn_wsum on the dequantized rows. */
static inline __attribute__((always_inline)) float attn_q8_scale(const uint8_t *blk)
{
	uint16_t h;
	memcpy(&h, blk, sizeof(h));
	return attn_h2f(h);
}

static inline __attribute__((always_inline)) attn_v8 attn_ldq8(const uint8_t *q, float d)
{
	attn_v8 v;
#if defined(__AVX2__)
	__m256 x = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)q)));
	memcpy(&v, &x, sizeof(v));
#else
	for (int i = 0; i < 8; i++)
		v[i] = (float)(int8_t)q[i];
#endif
	const attn_v8 dv = { d, d, d, d, d, d, d, d };
	return dv * v;
}

void ATTN_WSUM_Q8_0(float *o, const float *p, const uint8_t *rows, int n_rows, int n)
{
	const size_t rb = (size_t)n / 32 * 34; /* bytes per row */
	int d0 = 0;
	for (; d0 + 64 <= n; d0 += 64) {
		const size_t off = (size_t)d0 / 32 * 34;
#if defined(__AVX512F__)
		typedef float v16 __attribute__((vector_size(64)));
		v16 a0 = { 0 }, a1 = { 0 }, a2 = { 0 }, a3 = { 0 };
		for (int t = 0; t < n_rows; t++) {
			const uint8_t *b0 = rows + (size_t)t * rb + off, *b1 = b0 + 34;
			const float pt = p[t], s0 = attn_q8_scale(b0), s1 = attn_q8_scale(b1);
			const v16 b = { pt, pt, pt, pt, pt, pt, pt, pt, pt, pt, pt, pt, pt, pt, pt, pt };
			const v16 e0 = { s0, s0, s0, s0, s0, s0, s0, s0, s0, s0, s0, s0, s0, s0, s0, s0 };
			const v16 e1 = { s1, s1, s1, s1, s1, s1, s1, s1, s1, s1, s1, s1, s1, s1, s1, s1 };
			__m512 y0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(b0 + 2))));
			__m512 y1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(b0 + 18))));
			__m512 y2 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(b1 + 2))));
			__m512 y3 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(b1 + 18))));
			v16 x0, x1, x2, x3;
			memcpy(&x0, &y0, sizeof(x0));
			memcpy(&x1, &y1, sizeof(x1));
			memcpy(&x2, &y2, sizeof(x2));
			memcpy(&x3, &y3, sizeof(x3));
			a0 += b * (e0 * x0), a1 += b * (e0 * x1), a2 += b * (e1 * x2), a3 += b * (e1 * x3);
		}
		memcpy(o + d0, &a0, sizeof(a0));
		memcpy(o + d0 + 16, &a1, sizeof(a1));
		memcpy(o + d0 + 32, &a2, sizeof(a2));
		memcpy(o + d0 + 48, &a3, sizeof(a3));
#else
		attn_v8 a[8] = { { 0 } };
		for (int t = 0; t < n_rows; t++) {
			const uint8_t *b0 = rows + (size_t)t * rb + off;
			const float pt = p[t];
			const attn_v8 b = { pt, pt, pt, pt, pt, pt, pt, pt };
			for (int j = 0; j < 8; j++) {
				const uint8_t *blk = b0 + (j / 4) * 34;
				a[j] += b * attn_ldq8(blk + 2 + (j % 4) * 8, attn_q8_scale(blk));
			}
		}
		memcpy(o + d0, a, sizeof(a));
#endif
	}
	for (; d0 < n; d0++) {
		float acc = 0;
		for (int t = 0; t < n_rows; t++) {
			const uint8_t *blk = rows + (size_t)t * rb + (size_t)d0 / 32 * 34;
			acc += p[t] * (attn_q8_scale(blk) * (float)(int8_t)blk[2 + d0 % 32]);
		}
		o[d0] = acc;
	}
}
