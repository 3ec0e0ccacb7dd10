/* tq_avx2.c: AVX2 + FMA + F16C variants of the TurboQuant score and
 * accumulate loops (tq.h; the reference is tq.c). Compiled with -mavx2 -mfma
 * -mf16c; dispatch.c calls them only when the CPU has those. They match the
 * reference up to float summation order (tests/test_tq.c).
 *
 * Eight codes of b bits are b bytes of the bit stream (tq.h): one 32-bit
 * word, broadcast, shifted right per lane by 0, b, ..., 7b and masked gives
 * the eight codes as lane indices; vpermps looks the centroids up (the 2^b
 * <= 8 levels sit in one register; 16 levels: two lookups and a blend on
 * bit 3). Sign bits of the QJL sketch become lane masks by testing each
 * lane's bit of the byte, and flip the float sign bit.
 */
#include <immintrin.h>
#include <string.h>

#include "tq.h"

#define FM_INLINE static inline __attribute__((always_inline))

struct group8 {
	__m256i shifts, mask;
	__m256 c_lo, c_hi;             /* centroids [0, 8) and [8, 16) */
	int bits;
};

FM_INLINE struct group8 group8_make(const struct tq_codebook *cb)
{
	struct group8 g;
	int b = cb->bits;
	g.bits = b;
	g.shifts = _mm256_setr_epi32(0, b, 2 * b, 3 * b, 4 * b, 5 * b, 6 * b, 7 * b);
	g.mask = _mm256_set1_epi32((1 << b) - 1);
	g.c_lo = _mm256_loadu_ps(cb->centroid);
	g.c_hi = _mm256_loadu_ps(cb->centroid + 8);
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

/* The centroids of the 8 codes at p (b bytes); b a compile-time constant in
 * every caller. */
FM_INLINE __m256 group8_values(const struct group8 *g, const uint8_t *p, const int b)
{
	uint32_t w = (uint32_t)load_le(p, b);
	__m256i idx = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)w), g->shifts),
				       g->mask);
	__m256 lo = _mm256_permutevar8x32_ps(g->c_lo, idx);
	if (b < 4)
		return lo;
	__m256 hi = _mm256_permutevar8x32_ps(g->c_hi, idx);
	return _mm256_blendv_ps(lo, hi, _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));
}

/* All-ones in the lanes whose sign bit (of byte) is 0: the negative signs. */
FM_INLINE __m256 sign8_negative(uint8_t byte)
{
	const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
	__m256i m = _mm256_and_si256(_mm256_set1_epi32(byte), bit);
	__m256i neg = _mm256_cmpeq_epi32(m, _mm256_setzero_si256());
	return _mm256_castsi256_ps(_mm256_and_si256(neg, _mm256_set1_epi32((int)0x80000000u)));
}

FM_INLINE float hsum8(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

FM_INLINE float half_get(const uint8_t *p)
{
	uint16_t h;
	memcpy(&h, p, 2);
	return _cvtsh_ss(h);
}

/* sum over the group's n coordinates (a multiple of 16) of q[i] * c[code_i] */
FM_INLINE __m256 dot_group_b(const struct group8 *g, const float *q, const uint8_t *p, int n,
			     __m256 acc, const int b)
{
	__m256 acc2 = _mm256_setzero_ps();
	for (int i = 0; i < n; i += 16, p += 2 * b) {
		acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), group8_values(g, p, b), acc);
		acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8), group8_values(g, p + b, b),
				       acc2);
	}
	return _mm256_add_ps(acc, acc2);
}

static __m256 dot_group(const struct group8 *g, const float *q, const uint8_t *p, int n,
			__m256 acc)
{
	switch (g->bits) {
	case 1: return dot_group_b(g, q, p, n, acc, 1);
	case 2: return dot_group_b(g, q, p, n, acc, 2);
	case 3: return dot_group_b(g, q, p, n, acc, 3);
	default: return dot_group_b(g, q, p, n, acc, 4);
	}
}

void tq_score_avx2(const struct tq_format *f, const float *q_rot, const uint8_t *codes, int n,
		   size_t stride, float *scores)
{
	const int d = f->d, n_hi = f->n_hi, prod = f->variant == TQ_PROD;
	const struct group8 ghi = group8_make(f->cb_hi), glo = group8_make(f->cb_lo);
	for (int t = 0; t < n; t++) {
		const uint8_t *v = codes + (size_t)t * stride;
		__m256 acc = _mm256_setzero_ps();
		if (ghi.bits)
			acc = dot_group(&ghi, q_rot, v + f->off_hi, n_hi, acc);
		if (glo.bits)
			acc = dot_group(&glo, q_rot + n_hi, v + f->off_lo, d - n_hi, acc);
		float s = hsum8(acc);
		if (prod) {
			const uint8_t *p = v + f->off_signs;
			__m256 sa = _mm256_setzero_ps();
			for (int i = 0; i < d; i += 8)
				sa = _mm256_add_ps(sa, _mm256_xor_ps(_mm256_loadu_ps(q_rot + d + i),
								     sign8_negative(p[i >> 3])));
			s += half_get(v + 2) * hsum8(sa);
		}
		scores[t] = half_get(v) * s;
	}
}

FM_INLINE void add_group_b(const struct group8 *g, __m256 w, const uint8_t *p, int n,
			   float *acc, const int b)
{
	for (int i = 0; i < n; i += 8, p += b)
		_mm256_storeu_ps(acc + i, _mm256_fmadd_ps(w, group8_values(g, p, b),
							  _mm256_loadu_ps(acc + i)));
}

static void add_group(const struct group8 *g, __m256 w, const uint8_t *p, int n, float *acc)
{
	switch (g->bits) {
	case 1: add_group_b(g, w, p, n, acc, 1); break;
	case 2: add_group_b(g, w, p, n, acc, 2); break;
	case 3: add_group_b(g, w, p, n, acc, 3); break;
	default: add_group_b(g, w, p, n, acc, 4); break;
	}
}

void tq_accumulate_avx2(const struct tq_format *f, const float *w, const uint8_t *codes, int n,
			size_t stride, float *acc)
{
	const int d = f->d, n_hi = f->n_hi, prod = f->variant == TQ_PROD;
	const struct group8 ghi = group8_make(f->cb_hi), glo = group8_make(f->cb_lo);
	for (int t = 0; t < n; t++) {
		const uint8_t *v = codes + (size_t)t * stride;
		float wn = w[t] * half_get(v);
		__m256 wv = _mm256_set1_ps(wn);
		if (ghi.bits)
			add_group(&ghi, wv, v + f->off_hi, n_hi, acc);
		if (glo.bits)
			add_group(&glo, wv, v + f->off_lo, d - n_hi, acc + n_hi);
		if (!prod)
			continue;
		const uint8_t *p = v + f->off_signs;
		__m256 wg = _mm256_set1_ps(wn * half_get(v + 2));
		for (int i = 0; i < d; i += 8)
			_mm256_storeu_ps(acc + d + i,
					 _mm256_add_ps(_mm256_loadu_ps(acc + d + i),
						       _mm256_xor_ps(wg, sign8_negative(p[i >> 3]))));
	}
}

FM_INLINE void decode_group_b(const struct group8 *g, __m256 s, const uint8_t *p, int n,
			      float *out, const int b)
{
	for (int i = 0; i < n; i += 8, p += b)
		_mm256_storeu_ps(out + i, _mm256_mul_ps(s, group8_values(g, p, b)));
}

static void decode_group(const struct group8 *g, __m256 s, const uint8_t *p, int n, float *out)
{
	switch (g->bits) {
	case 0: memset(out, 0, (size_t)n * sizeof(float)); break;
	case 1: decode_group_b(g, s, p, n, out, 1); break;
	case 2: decode_group_b(g, s, p, n, out, 2); break;
	case 3: decode_group_b(g, s, p, n, out, 3); break;
	default: decode_group_b(g, s, p, n, out, 4); break;
	}
}

void tq_decode_avx2(const struct tq_format *f, const uint8_t *codes, int n, size_t stride,
		    float *rows)
{
	const int d = f->d, n_hi = f->n_hi, prod = f->variant == TQ_PROD;
	const size_t qf = tq_query_floats(f);
	const struct group8 ghi = group8_make(f->cb_hi), glo = group8_make(f->cb_lo);
	for (int t = 0; t < n; t++, rows += qf) {
		const uint8_t *v = codes + (size_t)t * stride;
		float s = half_get(v);
		__m256 sv = _mm256_set1_ps(s);
		if (n_hi)
			decode_group(&ghi, sv, v + f->off_hi, n_hi, rows);
		if (d - n_hi)
			decode_group(&glo, sv, v + f->off_lo, d - n_hi, rows + n_hi);
		if (!prod)
			continue;
		const uint8_t *p = v + f->off_signs;
		__m256 sg = _mm256_set1_ps(s * half_get(v + 2));
		for (int i = 0; i < d; i += 8)
			_mm256_storeu_ps(rows + d + i, _mm256_xor_ps(sg, sign8_negative(p[i >> 3])));
	}
}
