/* basic_avx512.c: AVX-512 (F, BW, VL, DQ, VNNI) variants for the plain and
 * 32-block formats.
 *
 * Owns: vec_dot_{f32,f16,bf16,q8_0,q4_0}_avx512 and quantize_row_q8_0_avx512
 * (compiled with the Makefile's ISA_AVX512 flags; dispatch.c calls them only
 * when the CPU has all of them). Each vec_dot matches the reference in basic.c
 * up to float summation order; quantize_row_q8_0_avx512 gives the reference's
 * exact bytes.
 *
 * Float formats: 16 lanes per zmm, ny x u accumulators, and the tail (n not a
 * multiple of 16) as one masked load, which cannot fault past the row's end.
 * Q8_0 / Q4_0: two blocks per zmm. Weights are unpacked once per pair to
 * signed bytes w; |w| and the mask (w < 0) serve all ny rows; per row,
 * vpdpbusd(|w|, a negated where w < 0) gives w.a in int32 lanes (8 per block,
 * no int16 saturation unlike maddubs), then one float FMA with the per-block
 * scales [d_w0 d_a0 x8 | d_w1 d_a1 x8]. An odd last block runs the same code
 * with the upper half zero.
 */
#include <immintrin.h>

#include "formats.h"

#define FM_INLINE static inline __attribute__((always_inline))

enum wfmt { W_F32, W_F16, W_BF16, W_Q8_0, W_Q4_0 };

/* ---- F32 / F16 / BF16 weights x F32 activations ---- */

/* Sixteen weights from element i as floats; lanes outside m read as 0. */
FM_INLINE __m512 load16(const void *w, size_t i, __mmask16 m, const int fmt)
{
	if (fmt == W_F32)
		return _mm512_maskz_loadu_ps(m, (const float *)w + i);
	__m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)w + i);
	if (fmt == W_F16)
		return _mm512_cvtph_ps(h);
	return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* u vectors of 16 weights per step, ny x u accumulators (ny * u <= 16). */
FM_INLINE void dot_float(size_t n, const void *w, const void *act, size_t stride,
			 float *out, const int ny, const int u, const int fmt)
{
	const float *a[KERNEL_MAX_NY];
	__m512 acc[4][KERNEL_MAX_NY];
#pragma GCC unroll 8
	for (int j = 0; j < ny; j++) {
		a[j] = (const float *)((const uint8_t *)act + (size_t)j * stride);
#pragma GCC unroll 4
		for (int k = 0; k < u; k++)
			acc[k][j] = _mm512_setzero_ps();
	}
	size_t i = 0;
	for (; i + 16 * (size_t)u <= n; i += 16 * (size_t)u) {
#pragma GCC unroll 4
		for (int k = 0; k < u; k++) {
			__m512 wv = load16(w, i + 16 * (size_t)k, 0xffff, fmt);
#pragma GCC unroll 8
			for (int j = 0; j < ny; j++)
				acc[k][j] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(a[j] + i + 16 * k),
							    acc[k][j]);
		}
	}
	for (; i < n; i += 16) {
		__mmask16 m = n - i >= 16 ? 0xffff : (__mmask16)((1u << (n - i)) - 1);
		__m512 wv = load16(w, i, m, fmt);
#pragma GCC unroll 8
		for (int j = 0; j < ny; j++)
			acc[0][j] = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, a[j] + i),
						    acc[0][j]);
	}
#pragma GCC unroll 8
	for (int j = 0; j < ny; j++) {
#pragma GCC unroll 4
		for (int k = 1; k < u; k++)
			acc[0][j] = _mm512_add_ps(acc[0][j], acc[k][j]);
		out[j] = _mm512_reduce_add_ps(acc[0][j]);
	}
}

FM_INLINE void dot_float_ny(size_t n, const void *w, const void *act, size_t stride,
			    int ny, float *out, const int fmt)
{
	switch (ny) {
	case 1: dot_float(n, w, act, stride, out, 1, 2, fmt); break;
	case 2: dot_float(n, w, act, stride, out, 2, 4, fmt); break;
	case 3: dot_float(n, w, act, stride, out, 3, 4, fmt); break;
	case 4: dot_float(n, w, act, stride, out, 4, 4, fmt); break;
	case 5: dot_float(n, w, act, stride, out, 5, 2, fmt); break;
	case 6: dot_float(n, w, act, stride, out, 6, 2, fmt); break;
	case 7: dot_float(n, w, act, stride, out, 7, 2, fmt); break;
	case 8: dot_float(n, w, act, stride, out, 8, 2, fmt); break;
	default: break;
	}
}

void vec_dot_f32_avx512(size_t n, const void *w_row, const void *act, size_t act_stride,
			int ny, float *out)
{
	dot_float_ny(n, w_row, act, act_stride, ny, out, W_F32);
}

void vec_dot_f16_avx512(size_t n, const void *w_row, const void *act, size_t act_stride,
			int ny, float *out)
{
	dot_float_ny(n, w_row, act, act_stride, ny, out, W_F16);
}

void vec_dot_bf16_avx512(size_t n, const void *w_row, const void *act, size_t act_stride,
			 int ny, float *out)
{
	dot_float_ny(n, w_row, act, act_stride, ny, out, W_BF16);
}

/* ---- Q8_0 / Q4_0 weights x Q8_0 activations ---- */

/* Two 32-byte halves in one zmm; two = 0 leaves the upper half zero. */
FM_INLINE __m512i join256(const int8_t *lo, const int8_t *hi, const int two)
{
	__m512i v = _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *)lo));
	if (two)
		v = _mm512_inserti64x4(v, _mm256_loadu_si256((const __m256i *)hi), 1);
	return v;
}

/* Blocks ib, ib+1 of the weight row as 64 signed bytes (Q4_0: q - 8). */
FM_INLINE __m512i unpack_pair(const void *w, size_t ib, const int two, const int fmt)
{
	if (fmt == W_Q8_0) {
		const struct block_q8_0 *b = (const struct block_q8_0 *)w + ib;
		return join256(b[0].qs, two ? b[1].qs : NULL, two);
	}
	const struct block_q4_0 *b = (const struct block_q4_0 *)w + ib;
	__m256i q = _mm256_zextsi128_si256(_mm_loadu_si128((const __m128i *)b[0].qs));
	if (two)
		q = _mm256_inserti128_si256(q, _mm_loadu_si128((const __m128i *)b[1].qs), 1);
	/* 128-bit lanes [qs0 qs0 qs1 qs1], then the high nibbles in lanes 1 and 3 */
	__m512i z = _mm512_permutexvar_epi64(_mm512_setr_epi64(0, 1, 0, 1, 2, 3, 2, 3),
					     _mm512_castsi256_si512(q));
	z = _mm512_mask_srli_epi16(z, 0xff00ff00u, z, 4);
	z = _mm512_and_si512(z, _mm512_set1_epi8(0x0f));
	return _mm512_sub_epi8(z, _mm512_set1_epi8(8));
}

/* Two fp16 scales as [s0 x8 | s1 x8] floats. */
FM_INLINE __m512 scale_pair(const uint16_t *d0, const uint16_t *d1, const int two)
{
	__m128i h = _mm_set1_epi16((short)*d0);
	__m128i g = two ? _mm_set1_epi16((short)*d1) : _mm_setzero_si128();
	return _mm512_cvtph_ps(_mm256_set_m128i(g, h));
}

FM_INLINE __m512 weight_scales(const void *w, size_t ib, const int two, const int fmt)
{
	if (fmt == W_Q8_0) {
		const struct block_q8_0 *b = (const struct block_q8_0 *)w + ib;
		return scale_pair(&b[0].d, two ? &b[1].d : NULL, two);
	}
	const struct block_q4_0 *b = (const struct block_q4_0 *)w + ib;
	return scale_pair(&b[0].d, two ? &b[1].d : NULL, two);
}

FM_INLINE uint64_t block_d(const void *w, size_t ib, const int fmt)
{
	if (fmt == W_Q8_0)
		return ((const struct block_q8_0 *)w)[ib].d;
	return ((const struct block_q4_0 *)w)[ib].d;
}

/* As in basic_avx2.c: the activation scales are packed in general-purpose
 * registers (the empty asm keeps them there), converted 8 or 16 at a time,
 * and each row's [s0 x8 | s1 x8] is one vpermps away, instead of two
 * broadcasts, an insert and a convert per row and pair. */
FM_INLINE uint64_t in_gpr(uint64_t x)
{
	__asm__("" : "+r"(x));
	return x;
}

/* Lanes [k0 x8 | k1 x8] of s. */
FM_INLINE __m512 lanes2(__m512 s, int k0, int k1)
{
	__m512i idx = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi32(k0)),
					 _mm256_set1_epi32(k1), 1);
	return _mm512_permutexvar_ps(idx, s);
}

/* Blocks ib..ib+3, one row: lanes 0..3 = d_w[k] * d_a[k]. */
FM_INLINE __m512 scales4(const void *w, const struct block_q8_0 *a, size_t ib, const int fmt)
{
	uint64_t dw = 0, da = 0;
#pragma GCC unroll 4
	for (int k = 0; k < 4; k++) {
		dw |= in_gpr(block_d(w, ib + k, fmt)) << 16 * k;
		da |= in_gpr(a[ib + k].d) << 16 * k;
	}
	__m256 s = _mm256_cvtph_ps(_mm_set_epi64x((long long)in_gpr(da), (long long)in_gpr(dw)));
	__m128 p = _mm_mul_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
	return _mm512_castps128_ps512(p);
}

/* Blocks ib (and ib+1), ny rows: lane j = d_w0 d_a[j][ib], lane 8 + j for ib+1. */
FM_INLINE __m512 scales_rows(const void *w, const struct block_q8_0 *const *a, size_t ib,
			     const int ny, const int two, const int fmt)
{
	uint64_t q0 = 0, q1 = 0, q2 = 0, q3 = 0;
#pragma GCC unroll 8
	for (int j = 0; j < ny; j++) {
		uint64_t h0 = in_gpr(a[j][ib].d), h1 = two ? in_gpr(a[j][ib + 1].d) : 0;
		if (j < 4)
			q0 |= h0 << 16 * j, q2 |= h1 << 16 * j;
		else
			q1 |= h0 << 16 * (j - 4), q3 |= h1 << 16 * (j - 4);
	}
	__m256i h = _mm256_set_epi64x((long long)in_gpr(q3), (long long)in_gpr(q2),
				      (long long)in_gpr(q1), (long long)in_gpr(q0));
	return _mm512_mul_ps(_mm512_cvtph_ps(h), weight_scales(w, ib, two, fmt));
}

/* acc += (w . a) * d for the pair (or single block) at ab. */
FM_INLINE __m512 pair_fma(__m512i ax, __mmask64 neg, __m512 d, const struct block_q8_0 *ab,
			  const int two, __m512 acc)
{
	__m512i av = join256(ab[0].qs, two ? ab[1].qs : NULL, two);
	av = _mm512_mask_sub_epi8(av, neg, _mm512_setzero_si512(), av);
	__m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ax, av);
	return _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), d, acc);
}

/* One step: blocks ib (and ib+1 when two) against every activation row. */
FM_INLINE void quant_step(const void *w, size_t ib, const struct block_q8_0 *const *a,
			  __m512 *acc, const int ny, const int two, const int fmt)
{
	__m512i wv = unpack_pair(w, ib, two, fmt);
	__m512i ax = _mm512_abs_epi8(wv);
	__mmask64 neg = _mm512_movepi8_mask(wv);
	__m512 s = scales_rows(w, a, ib, ny, two, fmt);
#pragma GCC unroll 8
	for (int j = 0; j < ny; j++)
		acc[j] = pair_fma(ax, neg, lanes2(s, j, 8 + j), a[j] + ib, two, acc[j]);
}

/* ny = 1 (decode): two pairs per step, two accumulators. */
FM_INLINE void dot_quant1(size_t n, const void *w, const struct block_q8_0 *a, float *out,
			  const int fmt)
{
	__m512 acc[2] = { _mm512_setzero_ps(), _mm512_setzero_ps() };
	size_t nb = n / QK8_0, ib = 0;
	for (; ib + 4 <= nb; ib += 4) {
		__m512 s = scales4(w, a, ib, fmt);
#pragma GCC unroll 2
		for (int k = 0; k < 2; k++) {
			__m512i wv = unpack_pair(w, ib + 2 * k, 1, fmt);
			__m512i ax = _mm512_abs_epi8(wv);
			__mmask64 neg = _mm512_movepi8_mask(wv);
			__m512 d = lanes2(s, 2 * k, 2 * k + 1);
			acc[k] = pair_fma(ax, neg, d, a + ib + 2 * k, 1, acc[k]);
		}
	}
	for (; ib + 2 <= nb; ib += 2)
		quant_step(w, ib, &a, acc, 1, 1, fmt);
	if (ib < nb)
		quant_step(w, ib, &a, acc, 1, 0, fmt);
	out[0] = _mm512_reduce_add_ps(_mm512_add_ps(acc[0], acc[1]));
}

/* ny >= 2 (prefill): one pair per step, one accumulator per row. */
FM_INLINE void dot_quant(size_t n, const void *w, const void *act, size_t stride,
			 float *out, const int ny, const int fmt)
{
	const struct block_q8_0 *a[KERNEL_MAX_NY];
	__m512 acc[KERNEL_MAX_NY];
	size_t nb = n / QK8_0, ib = 0;
#pragma GCC unroll 8
	for (int j = 0; j < ny; j++) {
		a[j] = (const struct block_q8_0 *)((const uint8_t *)act + (size_t)j * stride);
		acc[j] = _mm512_setzero_ps();
	}
	for (; ib + 2 <= nb; ib += 2)
		quant_step(w, ib, a, acc, ny, 1, fmt);
	if (ib < nb)
		quant_step(w, ib, a, acc, ny, 0, fmt);
#pragma GCC unroll 8
	for (int j = 0; j < ny; j++)
		out[j] = _mm512_reduce_add_ps(acc[j]);
}

FM_INLINE void dot_quant_ny(size_t n, const void *w, const void *act, size_t stride,
			    int ny, float *out, const int fmt)
{
	switch (ny) {
	case 1: dot_quant1(n, w, act, out, fmt); break;
	case 2: dot_quant(n, w, act, stride, out, 2, fmt); break;
	case 3: dot_quant(n, w, act, stride, out, 3, fmt); break;
	case 4: dot_quant(n, w, act, stride, out, 4, fmt); break;
	case 5: dot_quant(n, w, act, stride, out, 5, fmt); break;
	case 6: dot_quant(n, w, act, stride, out, 6, fmt); break;
	case 7: dot_quant(n, w, act, stride, out, 7, fmt); break;
	case 8: dot_quant(n, w, act, stride, out, 8, fmt); break;
	default: break;
	}
}

void vec_dot_q8_0_avx512(size_t n, const void *w_row, const void *act, size_t act_stride,
			 int ny, float *out)
{
	dot_quant_ny(n, w_row, act, act_stride, ny, out, W_Q8_0);
}

void vec_dot_q4_0_avx512(size_t n, const void *w_row, const void *act, size_t act_stride,
			 int ny, float *out)
{
	dot_quant_ny(n, w_row, act, act_stride, ny, out, W_Q4_0);
}

/* ---- activations: f32 -> Q8_0, the reference's bytes ---- */

/* roundf(x * id) clamped to [-127, 127], NaN -> 0, as 16 bytes. */
FM_INLINE __m128i q8_levels(__m512 x, __m512 id)
{
	__m512 v = _mm512_mul_ps(x, id);
	v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, v, _CMP_ORD_Q), v);
	v = _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(-127.0f)), _mm512_set1_ps(127.0f));
	/* half away from zero: trunc, then step outwards when |frac| >= 0.5 */
	__m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
	__mmask16 up = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_sub_ps(v, t)),
					  _mm512_set1_ps(0.5f), _CMP_GE_OQ);
	__m512 step = _mm512_or_ps(_mm512_and_ps(v, _mm512_set1_ps(-0.0f)),
				   _mm512_set1_ps(1.0f));
	t = _mm512_mask_add_ps(t, up, t, step);
	return _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(t));
}

void quantize_row_q8_0_avx512(const float *x, void *y, size_t n)
{
	struct block_q8_0 *b = y;
	for (size_t ib = 0; ib < n / QK8_0; ib++, x += QK8_0) {
		__m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
		/* maxps returns its second operand when the first is NaN */
		__m512 m = _mm512_max_ps(_mm512_abs_ps(v0), _mm512_setzero_ps());
		m = _mm512_max_ps(_mm512_abs_ps(v1), m);
		float d = _mm512_reduce_max_ps(m) / 127.0f;
		__m512 id = _mm512_set1_ps(d != 0.0f ? 1.0f / d : 0.0f);
		b[ib].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
		_mm_storeu_si128((__m128i *)b[ib].qs, q8_levels(v0, id));
		_mm_storeu_si128((__m128i *)(b[ib].qs + 16), q8_levels(v1, id));
	}
}
