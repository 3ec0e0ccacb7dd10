/* basic_avx2.c: AVX2 + FMA + F16C variants for the plain and 32-block formats.
 *
 * Owns: vec_dot_{f32,f16,bf16,q8_0,q4_0}_avx2 and quantize_row_q8_0_avx2
 * (compiled with -mavx2 -mfma -mf16c; dispatch.c calls them only when the CPU
 * has those). Each vec_dot matches the reference in basic.c up to float
 * summation order; quantize_row_q8_0_avx2 gives the reference's exact bytes.
 *
 * Shape: one always-inline body per family, instantiated per ny (1..8) with
 * compile-time ny and unroll, so the ny x u accumulators stay in registers and
 * every weight vector is loaded and unpacked once for all ny activation rows.
 * Q8_0 / Q4_0 blocks use the sign trick: maddubs(|w|, sign(a, w)) (u8 x s8
 * pairs, no int16 overflow since |w|, |a| <= 127 or |w| <= 8), then madd with
 * ones to int32, one float FMA per block with scale d_w * d_a (the scales
 * are converted several at a time, see scales4).
 */
#include <immintrin.h>

#include "formats.h"

#define FM_INLINE static inline __attribute__((always_inline))

enum wfmt { W_F32, W_F16, W_BF16, W_Q8_0, W_Q4_0 };

FM_INLINE float hsum8(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

/* ---- F32 / F16 / BF16 weights x F32 activations ---- */

/* Eight weights from element i, as floats. */
FM_INLINE __m256 load8(const void *w, size_t i, const int fmt)
{
	if (fmt == W_F32)
		return _mm256_loadu_ps((const float *)w + i);
	__m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)w + i));
	if (fmt == W_F16)
		return _mm256_cvtph_ps(h);
	return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

FM_INLINE float load1(const void *w, size_t i, const int fmt)
{
	if (fmt == W_F32)
		return ((const float *)w)[i];
	uint16_t h = ((const uint16_t *)w)[i];
	if (fmt == W_F16)
		return _cvtsh_ss(h);
	return _mm_cvtss_f32(_mm_castsi128_ps(_mm_cvtsi32_si128((int)((uint32_t)h << 16))));
}

/* u vectors of 8 weights per step, ny x u accumulators (ny * u <= 8). */
FM_INLINE void dot_float(size_t n, const void *w, const void *act, size_t stride,
			 float *out, const int ny, const int u, const int fmt)
{
	const float *a[KERNEL_MAX_NY];
	__m256 acc[4][KERNEL_MAX_NY];
#pragma GCC unroll 8
	for (int j = 0; j < ny; j++) {
		a[j] = (const float *)((const uint8_t *)act + (size_t)j * stride);
#pragma GCC unroll 4
		for (int k = 0; k < u; k++)
			acc[k][j] = _mm256_setzero_ps();
	}
	size_t i = 0;
	for (; i + 8 * (size_t)u <= n; i += 8 * (size_t)u) {
#pragma GCC unroll 4
		for (int k = 0; k < u; k++) {
			__m256 wv = load8(w, i + 8 * (size_t)k, fmt);
#pragma GCC unroll 8
			for (int j = 0; j < ny; j++)
				acc[k][j] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(a[j] + i + 8 * k),
							    acc[k][j]);
		}
	}
	for (; i + 8 <= n; i += 8) {
		__m256 wv = load8(w, i, fmt);
#pragma GCC unroll 8
		for (int j = 0; j < ny; j++)
			acc[0][j] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(a[j] + i), acc[0][j]);
	}
#pragma GCC unroll 8
	for (int j = 0; j < ny; j++) {
#pragma GCC unroll 4
		for (int k = 1; k < u; k++)
			acc[0][j] = _mm256_add_ps(acc[0][j], acc[k][j]);
		float sum = hsum8(acc[0][j]);
		for (size_t t = i; t < n; t++)
			sum += load1(w, t, fmt) * a[j][t];
		out[j] = sum;
	}
}

FM_INLINE void dot_float_ny(size_t n, const void *w, const void *act, size_t stride,
			    int ny, float *out, const int fmt)
{
	switch (ny) {
	case 1: dot_float(n, w, act, stride, out, 1, 4, fmt); break;
	case 2: dot_float(n, w, act, stride, out, 2, 2, fmt); break;
	case 3: dot_float(n, w, act, stride, out, 3, 2, fmt); break;
	case 4: dot_float(n, w, act, stride, out, 4, 2, fmt); break;
	case 5: dot_float(n, w, act, stride, out, 5, 1, fmt); break;
	case 6: dot_float(n, w, act, stride, out, 6, 1, fmt); break;
	case 7: dot_float(n, w, act, stride, out, 7, 1, fmt); break;
	case 8: dot_float(n, w, act, stride, out, 8, 1, fmt); break;
	default: break;
	}
}

void vec_dot_f32_avx2(size_t n, const void *w_row, const void *act, size_t act_stride,
		      int ny, float *out)
{
	dot_float_ny(n, w_row, act, act_stride, ny, out, W_F32);
}

void vec_dot_f16_avx2(size_t n, const void *w_row, const void *act, size_t act_stride,
		      int ny, float *out)
{
	dot_float_ny(n, w_row, act, act_stride, ny, out, W_F16);
}

void vec_dot_bf16_avx2(size_t n, const void *w_row, const void *act, size_t act_stride,
		       int ny, float *out)
{
	dot_float_ny(n, w_row, act, act_stride, ny, out, W_BF16);
}

/* ---- Q8_0 / Q4_0 weights x Q8_0 activations ---- */

/* Block ib of the weight row as 32 signed bytes (Q4_0: q - 8). */
FM_INLINE __m256i unpack_block(const void *w, size_t ib, const int fmt)
{
	if (fmt == W_Q8_0)
		return _mm256_loadu_si256((const __m256i *)((const struct block_q8_0 *)w)[ib].qs);
	__m128i q = _mm_loadu_si128((const __m128i *)((const struct block_q4_0 *)w)[ib].qs);
	__m256i v = _mm256_set_m128i(_mm_srli_epi16(q, 4), q); /* elements 0..15 | 16..31 */
	v = _mm256_and_si256(v, _mm256_set1_epi8(0x0f));
	return _mm256_sub_epi8(v, _mm256_set1_epi8(8));
}

FM_INLINE uint64_t block_d(const void *w, size_t ib, const int fmt)
{
	if (fmt == W_Q8_0)
		return ((const struct block_q8_0 *)w)[ib].d;
	return ((const struct block_q4_0 *)w)[ib].d;
}

/* The scales d_w * d_a cost more vector-port work than the integer dot
 * itself when done one by one (insert, convert, multiply, broadcast). So the
 * fp16 scales are packed in general-purpose registers (idle otherwise; the
 * empty asm keeps gcc from moving this packing to vector registers) and
 * converted and multiplied 4 or 8 at a time into vectors holding the same 4
 * scales in both 128-bit halves; each FMA then takes its scale with one
 * in-lane vpermilps. Measured on Zen 4 against one-by-one scales: about 10%
 * faster at ny = 1 and 8 (bench_kernels); storing the scales and broadcasting
 * from memory instead was slower than one-by-one (loads wait on the store). */
FM_INLINE uint64_t in_gpr(uint64_t x)
{
	__asm__("" : "+r"(x));
	return x;
}

/* Scale k (0..3) of s = [s0 s1 s2 s3 | s0 s1 s2 s3] in all lanes. */
FM_INLINE __m256 lane(__m256 s, int k)
{
	switch (k & 3) {
	case 0: return _mm256_permute_ps(s, 0x00);
	case 1: return _mm256_permute_ps(s, 0x55);
	case 2: return _mm256_permute_ps(s, 0xaa);
	default: return _mm256_permute_ps(s, 0xff);
	}
}

/* One activation row, blocks ib..ib+3: [s0 s1 s2 s3 | same], s_k = d_w[k] d_a[k]. */
FM_INLINE __m256 scales4(const void *w, const struct block_q8_0 *a, size_t ib, const int fmt)
{
	uint64_t dw = 0, da = 0;
#pragma GCC unroll 4
	for (int k = 0; k < 4; k++) {
		dw |= in_gpr(block_d(w, ib + k, fmt)) << 16 * k;
		da |= in_gpr(a[ib + k].d) << 16 * k;
	}
	__m256 s = _mm256_cvtph_ps(_mm_set_epi64x((long long)in_gpr(da), (long long)in_gpr(dw)));
	return _mm256_mul_ps(s, _mm256_permute2f128_ps(s, s, 1));
}

/* Block ib, ny activation rows: s[h] = [s_4h .. s_4h+3 | same], s_j = d_w d_a[j]. */
FM_INLINE void scales_rows(const void *w, const struct block_q8_0 *const *a, size_t ib,
			   __m256 *s, const int ny, const int fmt)
{
	uint64_t lo = 0, hi = 0;
#pragma GCC unroll 8
	for (int j = 0; j < ny; j++) {
		if (j < 4)
			lo |= in_gpr(a[j][ib].d) << 16 * j;
		else
			hi |= in_gpr(a[j][ib].d) << 16 * (j - 4);
	}
	__m256 v = _mm256_cvtph_ps(_mm_set_epi64x((long long)in_gpr(hi), (long long)in_gpr(lo)));
	v = _mm256_mul_ps(v, _mm256_set1_ps(_cvtsh_ss((uint16_t)block_d(w, ib, fmt))));
	s[0] = _mm256_permute2f128_ps(v, v, 0x00);
	if (ny > 4)
		s[1] = _mm256_permute2f128_ps(v, v, 0x11);
}

/* acc += (w . a) * d for one block; ax = |w| computed once for all rows. */
FM_INLINE __m256 block_fma(__m256i ax, __m256i wv, const struct block_q8_0 *ab, __m256 d,
			   __m256 acc)
{
	__m256i sy = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)ab->qs), wv);
	__m256i p16 = _mm256_maddubs_epi16(ax, sy);
	__m256i p32 = _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
	return _mm256_fmadd_ps(_mm256_cvtepi32_ps(p32), d, acc);
}

/* One block against ny rows, accumulating into acc[0..ny). */
FM_INLINE void block_rows(const void *w, size_t ib, const struct block_q8_0 *const *a,
			  __m256 *acc, const int ny, const int fmt)
{
	__m256i wv = unpack_block(w, ib, fmt);
	__m256i ax = _mm256_sign_epi8(wv, wv);
	__m256 s[2];
	scales_rows(w, a, ib, s, ny, fmt);
#pragma GCC unroll 8
	for (int j = 0; j < ny; j++)
		acc[j] = block_fma(ax, wv, a[j] + ib, lane(s[j / 4], j), acc[j]);
}

/* ny = 1 (decode): four blocks per step, two accumulators. */
FM_INLINE void dot_quant1(size_t n, const void *w, const struct block_q8_0 *a, float *out,
			  const int fmt)
{
	__m256 acc[2] = { _mm256_setzero_ps(), _mm256_setzero_ps() };
	size_t nb = n / QK8_0, ib = 0;
	for (; ib + 4 <= nb; ib += 4) {
		__m256 s = scales4(w, a, ib, fmt);
#pragma GCC unroll 4
		for (int k = 0; k < 4; k++) {
			__m256i wv = unpack_block(w, ib + k, fmt);
			__m256i ax = _mm256_sign_epi8(wv, wv);
			acc[k & 1] = block_fma(ax, wv, a + ib + k, lane(s, k), acc[k & 1]);
		}
	}
	for (; ib < nb; ib++)
		block_rows(w, ib, &a, acc, 1, fmt);
	out[0] = hsum8(_mm256_add_ps(acc[0], acc[1]));
}

/* ny >= 2 (prefill): one block per step, one accumulator per row. */
FM_INLINE void dot_quant(size_t n, const void *w, const void *act, size_t stride,
			 float *out, const int ny, const int fmt)
{
	const struct block_q8_0 *a[KERNEL_MAX_NY];
	__m256 acc[KERNEL_MAX_NY];
#pragma GCC unroll 8
	for (int j = 0; j < ny; j++) {
		a[j] = (const struct block_q8_0 *)((const uint8_t *)act + (size_t)j * stride);
		acc[j] = _mm256_setzero_ps();
	}
	for (size_t ib = 0; ib < n / QK8_0; ib++)
		block_rows(w, ib, a, acc, ny, fmt);
#pragma GCC unroll 8
	for (int j = 0; j < ny; j++)
		out[j] = hsum8(acc[j]);
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

void vec_dot_q8_0_avx2(size_t n, const void *w_row, const void *act, size_t act_stride,
		       int ny, float *out)
{
	dot_quant_ny(n, w_row, act, act_stride, ny, out, W_Q8_0);
}

void vec_dot_q4_0_avx2(size_t n, const void *w_row, const void *act, size_t act_stride,
		       int ny, float *out)
{
	dot_quant_ny(n, w_row, act, act_stride, ny, out, W_Q4_0);
}

/* ---- activations: f32 -> Q8_0, the reference's bytes ---- */

/* roundf(v * id) clamped to [-127, 127], NaN -> 0, as 8 int32. */
FM_INLINE __m256i q8_levels(__m256 x, __m256 id)
{
	const __m256 sign = _mm256_set1_ps(-0.0f);
	__m256 v = _mm256_mul_ps(x, id);
	v = _mm256_and_ps(v, _mm256_cmp_ps(v, v, _CMP_ORD_Q));
	v = _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(-127.0f)), _mm256_set1_ps(127.0f));
	/* half away from zero: trunc, then step outwards when |frac| >= 0.5 */
	__m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
	__m256 frac = _mm256_andnot_ps(sign, _mm256_sub_ps(v, t));
	__m256 step = _mm256_or_ps(_mm256_and_ps(v, sign), _mm256_set1_ps(1.0f));
	__m256 up = _mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
	t = _mm256_add_ps(t, _mm256_and_ps(up, step));
	return _mm256_cvttps_epi32(t);
}

FM_INLINE float hmax8(__m256 v)
{
	__m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	m = _mm_max_ps(m, _mm_movehl_ps(m, m));
	m = _mm_max_ss(m, _mm_movehdup_ps(m));
	return _mm_cvtss_f32(m);
}

void quantize_row_q8_0_avx2(const float *x, void *y, size_t n)
{
	const __m256 sign = _mm256_set1_ps(-0.0f);
	struct block_q8_0 *b = y;
	for (size_t ib = 0; ib < n / QK8_0; ib++, x += QK8_0) {
		__m256 v[4], m = _mm256_setzero_ps();
#pragma GCC unroll 4
		for (int k = 0; k < 4; k++) {
			v[k] = _mm256_loadu_ps(x + 8 * k);
			/* maxps returns its second operand when the first is NaN */
			m = _mm256_max_ps(_mm256_andnot_ps(sign, v[k]), m);
		}
		float d = hmax8(m) / 127.0f;
		__m256 id = _mm256_set1_ps(d != 0.0f ? 1.0f / d : 0.0f);
		b[ib].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
		__m256i i01 = _mm256_packs_epi32(q8_levels(v[0], id), q8_levels(v[1], id));
		__m256i i23 = _mm256_packs_epi32(q8_levels(v[2], id), q8_levels(v[3], id));
		__m256i q = _mm256_packs_epi16(i01, i23);
		/* the packs work per 128-bit lane: put the dwords back in order */
		q = _mm256_permutevar8x32_epi32(q, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
		_mm256_storeu_si256((__m256i *)b[ib].qs, q);
	}
}
