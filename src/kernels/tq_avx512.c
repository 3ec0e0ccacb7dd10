/* tq_avx512.c: AVX-512 (F, BW, DQ, VL) variants of the TurboQuant score and
 * accumulate loops (tq.h; the reference is tq.c). Compiled with the
 * Makefile's ISA_AVX512 flags; dispatch.c calls them only when the CPU has
 * those. They match the reference up to float summation order
 * (tests/test_tq.c).
 *
 * Sixteen codes of b bits are 2b bytes of the bit stream (tq.h): the first
 * eight in the low 8b bits, the next eight above. Each half is broadcast to
 * its 256-bit half of a register, shifted right per lane by 0, b, ..., 7b and
 * masked: sixteen lane indices, and one vpermps looks up all 16 centroids.
 * Two bytes of QJL sign bits are directly a lane mask.
 */
#include <immintrin.h>
#include <string.h>

#include "tq.h"

#define FM_INLINE static inline __attribute__((always_inline))

struct group16 {
	__m512i shifts, mask;
	__m512 c;                      /* the 16 centroids */
	int bits;
};

FM_INLINE struct group16 group16_make(const struct tq_codebook *cb)
{
	struct group16 g;
	int b = cb->bits;
	g.bits = b;
	g.shifts = _mm512_setr_epi32(0, b, 2 * b, 3 * b, 4 * b, 5 * b, 6 * b, 7 * b, 0, b, 2 * b,
				     3 * b, 4 * b, 5 * b, 6 * b, 7 * b);
	g.mask = _mm512_set1_epi32((1 << b) - 1);
	g.c = _mm512_loadu_ps(cb->centroid);
	return g;
}

/* n (1, 2, 3, 4, 6 or 8, a compile-time constant) bytes at p as a little-endian
 * integer, from whole-width loads: a memcpy of 3 or 6 bytes into a zeroed
 * word goes through the stack and stalls store forwarding (7x slower at 3
 * bits, measured). */
FM_INLINE uint64_t load_le(const uint8_t *p, const int n)
{
	uint16_t h;
	uint32_t w;
	uint64_t q;
	switch (n) {
	case 1:
		return p[0];
	case 2:
		memcpy(&h, p, 2);
		return h;
	case 3:
		memcpy(&h, p, 2);
		return h | (uint64_t)p[2] << 16;
	case 4:
		memcpy(&w, p, 4);
		return w;
	case 6:
		memcpy(&w, p, 4);
		memcpy(&h, p + 4, 2);
		return w | (uint64_t)h << 32;
	default:
		memcpy(&q, p, 8);
		return q;
	}
}

/* The centroids of the 16 codes at p (2b bytes); b a compile-time constant
 * in every caller. */
FM_INLINE __m512 group16_values(const struct group16 *g, const uint8_t *p, const int b)
{
	uint64_t w = load_le(p, 2 * b);
	uint32_t lo = (uint32_t)(w & ((1ull << (8 * b)) - 1));
	uint32_t hi = (uint32_t)(w >> (8 * b));
	__m512i v = _mm512_inserti32x8(_mm512_castsi256_si512(_mm256_set1_epi32((int)lo)),
				       _mm256_set1_epi32((int)hi), 1);
	__m512i idx = _mm512_and_si512(_mm512_srlv_epi32(v, g->shifts), g->mask);
	return _mm512_permutexvar_ps(idx, g->c);
}

FM_INLINE float half_get(const uint8_t *p)
{
	uint16_t h;
	memcpy(&h, p, 2);
	return _cvtsh_ss(h);
}

FM_INLINE __mmask16 signs16(const uint8_t *p)
{
	return (__mmask16)(p[0] | p[1] << 8);
}

/* sum over the group's n coordinates (a multiple of 16) of q[i] * c[code_i] */
FM_INLINE __m512 dot_group_b(const struct group16 *g, const float *q, const uint8_t *p, int n,
			     __m512 acc, const int b)
{
	int i = 0;
	__m512 acc2 = _mm512_setzero_ps();
	for (; i + 32 <= n; i += 32, p += 4 * b) {
		acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), group16_values(g, p, b), acc);
		acc2 = _mm512_fmadd_ps(_mm512_loadu_ps(q + i + 16), group16_values(g, p + 2 * b, b),
				       acc2);
	}
	if (i < n)
		acc = _mm512_fmadd_ps(_mm512_loadu_ps(q + i), group16_values(g, p, b), acc);
	return _mm512_add_ps(acc, acc2);
}

static __m512 dot_group(const struct group16 *g, const float *q, const uint8_t *p, int n,
			__m512 acc)
{
	switch (g->bits) {
	case 1: return dot_group_b(g, q, p, n, acc, 1);
	case 2: return dot_group_b(g, q, p, n, acc, 2);
	case 3: return dot_group_b(g, q, p, n, acc, 3);
	default: return dot_group_b(g, q, p, n, acc, 4);
	}
}

void tq_score_avx512(const struct tq_format *f, const float *q_rot, const uint8_t *codes,
		     int n, size_t stride, float *scores)
{
	const int d = f->d, n_hi = f->n_hi, prod = f->variant == TQ_PROD;
	const struct group16 ghi = group16_make(f->cb_hi), glo = group16_make(f->cb_lo);
	for (int t = 0; t < n; t++) {
		const uint8_t *v = codes + (size_t)t * stride;
		__m512 acc = _mm512_setzero_ps();
		if (ghi.bits)
			acc = dot_group(&ghi, q_rot, v + f->off_hi, n_hi, acc);
		if (glo.bits)
			acc = dot_group(&glo, q_rot + n_hi, v + f->off_lo, d - n_hi, acc);
		float s = _mm512_reduce_add_ps(acc);
		if (prod) {
			const uint8_t *p = v + f->off_signs;
			__m512 sa = _mm512_setzero_ps();
			for (int i = 0; i < d; i += 16) {
				__m512 q = _mm512_loadu_ps(q_rot + d + i);
				sa = _mm512_add_ps(sa, _mm512_mask_blend_ps(signs16(p + i / 8),
									    _mm512_sub_ps(_mm512_setzero_ps(), q), q));
			}
			s += half_get(v + 2) * _mm512_reduce_add_ps(sa);
		}
		scores[t] = half_get(v) * s;
	}
}

FM_INLINE void add_group_b(const struct group16 *g, __m512 w, const uint8_t *p, int n,
			   float *acc, const int b)
{
	for (int i = 0; i < n; i += 16, p += 2 * b)
		_mm512_storeu_ps(acc + i, _mm512_fmadd_ps(w, group16_values(g, p, b),
							  _mm512_loadu_ps(acc + i)));
}

static void add_group(const struct group16 *g, __m512 w, const uint8_t *p, int n, float *acc)
{
	switch (g->bits) {
	case 1: add_group_b(g, w, p, n, acc, 1); break;
	case 2: add_group_b(g, w, p, n, acc, 2); break;
	case 3: add_group_b(g, w, p, n, acc, 3); break;
	default: add_group_b(g, w, p, n, acc, 4); break;
	}
}

void tq_accumulate_avx512(const struct tq_format *f, const float *w, const uint8_t *codes,
			  int n, size_t stride, float *acc)
{
	const int d = f->d, n_hi = f->n_hi, prod = f->variant == TQ_PROD;
	const struct group16 ghi = group16_make(f->cb_hi), glo = group16_make(f->cb_lo);
	for (int t = 0; t < n; t++) {
		const uint8_t *v = codes + (size_t)t * stride;
		float wn = w[t] * half_get(v);
		__m512 wv = _mm512_set1_ps(wn);
		if (ghi.bits)
			add_group(&ghi, wv, v + f->off_hi, n_hi, acc);
		if (glo.bits)
			add_group(&glo, wv, v + f->off_lo, d - n_hi, acc + n_hi);
		if (!prod)
			continue;
		const uint8_t *p = v + f->off_signs;
		__m512 wg = _mm512_set1_ps(wn * half_get(v + 2));
		__m512 ng = _mm512_sub_ps(_mm512_setzero_ps(), wg);
		for (int i = 0; i < d; i += 16)
			_mm512_storeu_ps(acc + d + i,
					 _mm512_add_ps(_mm512_loadu_ps(acc + d + i),
						       _mm512_mask_blend_ps(signs16(p + i / 8), ng, wg)));
	}
}

FM_INLINE void decode_group_b(const struct group16 *g, __m512 s, const uint8_t *p, int n,
			      float *out, const int b)
{
	for (int i = 0; i < n; i += 16, p += 2 * b)
		_mm512_storeu_ps(out + i, _mm512_mul_ps(s, group16_values(g, p, b)));
}

static void decode_group(const struct group16 *g, __m512 s, const uint8_t *p, int n, float *out)
{
	switch (g->bits) {
	case 0: memset(out, 0, (size_t)n * sizeof(float)); break;
	case 1: decode_group_b(g, s, p, n, out, 1); break;
	case 2: decode_group_b(g, s, p, n, out, 2); break;
	case 3: decode_group_b(g, s, p, n, out, 3); break;
	default: decode_group_b(g, s, p, n, out, 4); break;
	}
}

void tq_decode_avx512(const struct tq_format *f, const uint8_t *codes, int n, size_t stride,
		      float *rows)
{
	const int d = f->d, n_hi = f->n_hi, prod = f->variant == TQ_PROD;
	const size_t qf = tq_query_floats(f);
	const struct group16 ghi = group16_make(f->cb_hi), glo = group16_make(f->cb_lo);
	for (int t = 0; t < n; t++, rows += qf) {
		const uint8_t *v = codes + (size_t)t * stride;
		float s = half_get(v);
		__m512 sv = _mm512_set1_ps(s);
		if (n_hi)
			decode_group(&ghi, sv, v + f->off_hi, n_hi, rows);
		if (d - n_hi)
			decode_group(&glo, sv, v + f->off_lo, d - n_hi, rows + n_hi);
		if (!prod)
			continue;
		const uint8_t *p = v + f->off_signs;
		__m512 sg = _mm512_set1_ps(s * half_get(v + 2));
		__m512 ng = _mm512_xor_ps(sg, _mm512_set1_ps(-0.0f)); /* -sg, as the reference: -0 for 0 */
		for (int i = 0; i < d; i += 16)
			_mm512_storeu_ps(rows + d + i, _mm512_mask_blend_ps(signs16(p + i / 8), ng, sg));
	}
}
