/* kquants_avx2.c: AVX2 + FMA + F16C variants of the K-quant dot products
 * (Q4_K, Q5_K, Q6_K, Q3_K, Q2_K x Q8_K) and of the Q8_K activation quantizer.
 *
 * Owns only SIMD math; the formats, the references they must match and the
 * registration are in kquants.c / kquants.h. Compiled with -mavx2 -mfma -mf16c
 * (Makefile rule for *_avx2.c); reached only through the kernel table.
 *
 * Scheme (one 256-element super-block, one activation row):
 *   weights are unpacked to unsigned bytes (nibbles, plus high bits), then
 *   _mm256_maddubs_epi16(weight_u8, act_s8) gives pair sums in int16 (never
 *   saturating: at most 2 * 63 * 128 = 16128 for Q6_K's 6-bit levels) and
 *   _mm256_madd_epi16 with the sub-block scale (int16) gives int32 partial
 *   sums; one cvt + fma per super-block scales them by d_w * d_a. The
 *   constant part of each sub-block (the min of Q4_K/Q5_K/Q2_K, the -32 of
 *   Q6_K, the -4 of Q3_K) is applied through the Q8_K bsums instead of per
 *   element.
 *   For ny > 1 the block is unpacked once and reused for every activation row;
 *   each ny in 1..8 gets its own inlined copy, its row loop unrolled.
 * Measured (Zen 4, one thread, 4096 x 4096 Q4_K): ~19 GB/s of weights at
 * ny = 1, against ~23 GB/s for an AVX2 summing loop over 1 GiB
 * (bench/bench_kquants.c). Software prefetch of later blocks was slower.
 */
#include "kquants.h"

#include <immintrin.h>

#define KQ_INLINE static inline __attribute__((always_inline))

KQ_INLINE float hsum_256(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

KQ_INLINE int hsum_epi32_256(__m256i v)
{
	__m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
	s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
	s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
	return _mm_cvtsi128_si32(s);
}

KQ_INLINE const struct block_q8_K *act_row(const void *act, size_t stride, int y)
{
	return (const struct block_q8_K *)((const uint8_t *)act + (size_t)y * stride);
}

/* From 8 int16 scales (one 128-bit lane), a vector whose low lane repeats
 * scale k and whose high lane repeats scale k+1 (two sub-blocks of 16). */
KQ_INLINE __m256i scale_pair(__m256i sc8x2, int k)
{
	const __m128i lo = _mm_set1_epi16((short)((2 * k) | ((2 * k + 1) << 8)));
	const __m128i hi = _mm_set1_epi16((short)((2 * k + 2) | ((2 * k + 3) << 8)));
	return _mm256_shuffle_epi8(sc8x2, _mm256_setr_m128i(lo, hi));
}

/* Repeat scale k in all 16 int16 lanes (a sub-block of 32). */
KQ_INLINE __m256i scale_one(__m256i sc8x2, int k)
{
	return _mm256_shuffle_epi8(sc8x2, _mm256_set1_epi16((short)((2 * k) | ((2 * k + 1) << 8))));
}

/* Sum of maddubs(q[k], act) * sc[k] over the 8 32-byte pieces of a block. */
KQ_INLINE __m256i dot_8x32(const __m256i q[8], const __m256i sc[8], const int8_t *aq)
{
	__m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
#pragma GCC unroll 8
	for (int k = 0; k < 8; k += 2) {
		__m256i p0 = _mm256_maddubs_epi16(q[k], _mm256_loadu_si256((const __m256i *)(aq + 32 * k)));
		__m256i p1 = _mm256_maddubs_epi16(q[k + 1], _mm256_loadu_si256((const __m256i *)(aq + 32 * k + 32)));
		s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(p0, sc[k]));
		s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(p1, sc[k + 1]));
	}
	return _mm256_add_epi32(s0, s1);
}

/* A super-block unpacked for the dot product: 256 unsigned levels in q, the
 * scale of each 32-byte piece in sc, in mins 16 int16 to madd with the 16
 * bsums (Q6_K: its scales), the two fp16 factors as floats. */
struct kq_unpacked {
	__m256i q[8];
	__m256i sc[8];
	__m256i mins;
	float d, dmin;
};

/* From bytes 8..15 of s8 (the 8 mins of a Q4_K/Q5_K block), 16 int16
 * m0 m0 m1 m1 ... m7 m7: madd with the 16 bsums pairs each min with the sum
 * of its 32 activations. */
KQ_INLINE __m256i mins_dup(__m128i s8)
{
	__m128i m = _mm_unpackhi_epi64(s8, s8);
	return _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m, m));
}

/* Q4_K: q[2c] = low nibbles of qs[32c..], q[2c+1] = high nibbles. */
KQ_INLINE void unpack_q4_K(const struct block_q4_K *b, struct kq_unpacked *u)
{
	const __m256i m4 = _mm256_set1_epi8(0x0f);
	uint32_t s[4];
	kq_unpack_scales_k4(b->scales, s);
	__m128i s8 = _mm_loadu_si128((const __m128i *)s);
	__m256i sc = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(s8));
	u->mins = mins_dup(s8);
#pragma GCC unroll 4
	for (int c = 0; c < 4; c++) {
		__m256i q = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * c));
		u->q[2 * c] = _mm256_and_si256(q, m4);
		u->q[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
		u->sc[2 * c] = scale_one(sc, 2 * c);
		u->sc[2 * c + 1] = scale_one(sc, 2 * c + 1);
	}
	u->d = _cvtsh_ss(b->d);
	u->dmin = _cvtsh_ss(b->dmin);
}

/* Bit `bit` of every byte of v moved to bit 4 (the 16s of a Q5_K level). */
KQ_INLINE __m256i bit_to_16s(__m256i v, int bit)
{
	v = bit < 4 ? _mm256_slli_epi16(v, 4 - bit) : _mm256_srli_epi16(v, bit - 4);
	return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

/* Q5_K: Q4_K plus qh bit k as the 16s of sub-block k. */
KQ_INLINE void unpack_q5_K(const struct block_q5_K *b, struct kq_unpacked *u)
{
	const __m256i m4 = _mm256_set1_epi8(0x0f);
	const __m256i hb = _mm256_loadu_si256((const __m256i *)b->qh);
	uint32_t s[4];
	kq_unpack_scales_k4(b->scales, s);
	__m128i s8 = _mm_loadu_si128((const __m128i *)s);
	__m256i sc = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(s8));
	u->mins = mins_dup(s8);
#pragma GCC unroll 4
	for (int c = 0; c < 4; c++) {
		__m256i q = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * c));
		u->q[2 * c] = _mm256_or_si256(_mm256_and_si256(q, m4), bit_to_16s(hb, 2 * c));
		u->q[2 * c + 1] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4),
						  bit_to_16s(hb, 2 * c + 1));
		u->sc[2 * c] = scale_one(sc, 2 * c);
		u->sc[2 * c + 1] = scale_one(sc, 2 * c + 1);
	}
	u->d = _cvtsh_ss(b->d);
	u->dmin = _cvtsh_ss(b->dmin);
}

/* Q6_K: levels 0..63 (the -32 goes through bsums); piece 4h+v holds
 * elements 128h+32v.. (sub-blocks 8h+2v, 8h+2v+1). mins = the 16 scales. */
KQ_INLINE void unpack_q6_K(const struct block_q6_K *b, struct kq_unpacked *u)
{
	const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(0x30);
#pragma GCC unroll 2
	for (int h = 0; h < 2; h++) {
		__m256i l0 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h));
		__m256i l1 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h + 32));
		__m256i qh = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * h));
		u->q[4 * h + 0] = _mm256_or_si256(_mm256_and_si256(l0, m4),
						  _mm256_and_si256(_mm256_slli_epi16(qh, 4), m2));
		u->q[4 * h + 1] = _mm256_or_si256(_mm256_and_si256(l1, m4),
						  _mm256_and_si256(_mm256_slli_epi16(qh, 2), m2));
		u->q[4 * h + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
						  _mm256_and_si256(qh, m2));
		u->q[4 * h + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
						  _mm256_and_si256(_mm256_srli_epi16(qh, 2), m2));
		__m128i s8 = _mm_loadl_epi64((const __m128i *)(b->scales + 8 * h));
		__m256i sc = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(s8));
#pragma GCC unroll 4
		for (int v = 0; v < 4; v++)
			u->sc[4 * h + v] = scale_pair(sc, 2 * v);
	}
	u->mins = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->scales));
	u->d = _cvtsh_ss(b->d);
	u->dmin = 0;
}

/* Q2_K: piece 4h+k = bits 2k..2k+1 of qs[32h..32h+31] (sub-blocks 8h+2k,
 * 8h+2k+1); mins = the 16 four-bit mins as int16. */
KQ_INLINE void unpack_q2_K(const struct block_q2_K *b, struct kq_unpacked *u)
{
	const __m256i m2 = _mm256_set1_epi8(3);
	const __m128i m4 = _mm_set1_epi8(0x0f);
	const __m128i s = _mm_loadu_si128((const __m128i *)b->scales);
	u->mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(s, 4), m4));
#pragma GCC unroll 2
	for (int h = 0; h < 2; h++) {
		__m256i q = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * h));
		__m128i s8 = _mm_loadl_epi64((const __m128i *)(b->scales + 8 * h));
		__m256i sch = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_and_si128(s8, m4)));
#pragma GCC unroll 4
		for (int k = 0; k < 4; k++) {
			u->q[4 * h + k] = _mm256_and_si256(_mm256_srli_epi16(q, 2 * k), m2);
			u->sc[4 * h + k] = scale_pair(sch, 2 * k);
		}
	}
	u->d = _cvtsh_ss(b->d);
	u->dmin = _cvtsh_ss(b->dmin);
}

/* Q3_K: levels 0..7 (the -4 goes through bsums); piece 4h+k as Q2_K's, with
 * hmask bit 4h+k as the 4s. mins = the 16 signed scales (sc - 32). */
KQ_INLINE void unpack_q3_K(const struct block_q3_K *b, struct kq_unpacked *u)
{
	const __m256i m2 = _mm256_set1_epi8(3), m4 = _mm256_set1_epi8(4);
	const __m256i hm = _mm256_loadu_si256((const __m256i *)b->hmask);
	uint32_t s[4];
	kq_unpack_scales_q3(b->scales, s);
	const __m128i s8 = _mm_sub_epi8(_mm_loadu_si128((const __m128i *)s), _mm_set1_epi8(32));
	u->mins = _mm256_cvtepi8_epi16(s8);
#pragma GCC unroll 2
	for (int h = 0; h < 2; h++) {
		__m256i q = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * h));
		__m128i s8h = h ? _mm_unpackhi_epi64(s8, s8) : s8; /* scales 8h..8h+7 */
		__m256i sch = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(s8h));
#pragma GCC unroll 4
		for (int k = 0; k < 4; k++) {
			const int bit = 4 * h + k; /* moved to bit 2 */
			__m256i hb = bit < 2 ? _mm256_slli_epi16(hm, 2 - bit) : _mm256_srli_epi16(hm, bit - 2);
			u->q[4 * h + k] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 2 * k), m2),
							  _mm256_and_si256(hb, m4));
			u->sc[4 * h + k] = scale_pair(sch, 2 * k);
		}
	}
	u->d = _cvtsh_ss(b->d);
	u->dmin = 0;
}

KQ_INLINE __m256i bsums_16(const struct block_q8_K *a)
{
	return _mm256_loadu_si256((const __m256i *)a->bsums);
}

enum kq_fmt { KQ_Q4_K, KQ_Q5_K, KQ_Q6_K, KQ_Q2_K, KQ_Q3_K };

/* Symmetric formats store level + 2^shift (Q6_K +32, Q3_K +4), removed through
 * the bsums as 2^shift * sum(scale * bsum); 0: an asymmetric format, whose
 * min goes through dmin. */
KQ_INLINE int sym_shift(enum kq_fmt f)
{
	return f == KQ_Q6_K ? 5 : f == KQ_Q3_K ? 2 : 0;
}

KQ_INLINE void unpack_block(enum kq_fmt f, const uint8_t *w, size_t i, struct kq_unpacked *u)
{
	switch (f) {
	case KQ_Q4_K: unpack_q4_K((const struct block_q4_K *)w + i, u); break;
	case KQ_Q5_K: unpack_q5_K((const struct block_q5_K *)w + i, u); break;
	case KQ_Q6_K: unpack_q6_K((const struct block_q6_K *)w + i, u); break;
	case KQ_Q2_K: unpack_q2_K((const struct block_q2_K *)w + i, u); break;
	case KQ_Q3_K: unpack_q3_K((const struct block_q3_K *)w + i, u); break;
	}
}

/* The per-row work of one block: acc += d*sum, accm += dmin*(min part). */
KQ_INLINE void block_row(enum kq_fmt f, const struct kq_unpacked *u,
			 const struct block_q8_K *a, __m256 *acc, __m256 *accm)
{
	__m256i sumi = dot_8x32(u->q, u->sc, a->qs);
	if (sym_shift(f))
		sumi = _mm256_sub_epi32(sumi, _mm256_slli_epi32(_mm256_madd_epi16(u->mins, bsums_16(a)),
								sym_shift(f)));
	*acc = _mm256_fmadd_ps(_mm256_set1_ps(u->d * a->d), _mm256_cvtepi32_ps(sumi), *acc);
	if (!sym_shift(f)) {
		__m256i m = _mm256_madd_epi16(u->mins, bsums_16(a));
		*accm = _mm256_fmadd_ps(_mm256_set1_ps(u->dmin * a->d), _mm256_cvtepi32_ps(m), *accm);
	}
}

/* out[y] = dot(row, act_y) for y < ny, the block unpacked once for all rows.
 * Inlined with constant f and ny. */
KQ_INLINE void rows(enum kq_fmt f, size_t nb, const uint8_t *w, const void *act,
		    size_t stride, int ny, float *out)
{
	__m256 acc[KERNEL_MAX_NY], accm[KERNEL_MAX_NY];
	for (int y = 0; y < ny; y++)
		acc[y] = accm[y] = _mm256_setzero_ps();
	for (size_t i = 0; i < nb; i++) {
		struct kq_unpacked u;
		unpack_block(f, w, i, &u);
#pragma GCC unroll 8
		for (int y = 0; y < ny; y++)
			block_row(f, &u, act_row(act, stride, y) + i, &acc[y], &accm[y]);
	}
	for (int y = 0; y < ny; y++)
		out[y] = hsum_256(acc[y]) - hsum_256(accm[y]);
}

/* One specialised copy per (format, ny); the table picks it at run time.
 * Generating macro, one level deep. */
typedef void (*rows_fn)(size_t nb, const uint8_t *w, const void *act, size_t stride, float *out);
#define KQ_ROWS(fmt, tag)                                                                        \
	static void rows_##tag##_1(size_t nb, const uint8_t *w, const void *a, size_t s, float *o) \
	{ rows(fmt, nb, w, a, s, 1, o); }                                                        \
	static void rows_##tag##_2(size_t nb, const uint8_t *w, const void *a, size_t s, float *o) \
	{ rows(fmt, nb, w, a, s, 2, o); }                                                        \
	static void rows_##tag##_3(size_t nb, const uint8_t *w, const void *a, size_t s, float *o) \
	{ rows(fmt, nb, w, a, s, 3, o); }                                                        \
	static void rows_##tag##_4(size_t nb, const uint8_t *w, const void *a, size_t s, float *o) \
	{ rows(fmt, nb, w, a, s, 4, o); }                                                        \
	static void rows_##tag##_5(size_t nb, const uint8_t *w, const void *a, size_t s, float *o) \
	{ rows(fmt, nb, w, a, s, 5, o); }                                                        \
	static void rows_##tag##_6(size_t nb, const uint8_t *w, const void *a, size_t s, float *o) \
	{ rows(fmt, nb, w, a, s, 6, o); }                                                        \
	static void rows_##tag##_7(size_t nb, const uint8_t *w, const void *a, size_t s, float *o) \
	{ rows(fmt, nb, w, a, s, 7, o); }                                                        \
	static void rows_##tag##_8(size_t nb, const uint8_t *w, const void *a, size_t s, float *o) \
	{ rows(fmt, nb, w, a, s, 8, o); }                                                        \
	static const rows_fn rows_##tag[KERNEL_MAX_NY] = {                                       \
		rows_##tag##_1, rows_##tag##_2, rows_##tag##_3, rows_##tag##_4,                  \
		rows_##tag##_5, rows_##tag##_6, rows_##tag##_7, rows_##tag##_8,                  \
	};

KQ_ROWS(KQ_Q4_K, q4_K)
KQ_ROWS(KQ_Q5_K, q5_K)
KQ_ROWS(KQ_Q6_K, q6_K)
KQ_ROWS(KQ_Q2_K, q2_K)
KQ_ROWS(KQ_Q3_K, q3_K)

/* Groups of at most KERNEL_MAX_NY rows (callers pass ny <= 8; more is split). */
static void run_rows(const rows_fn *tbl, size_t n, const void *w_row, const void *act,
		     size_t stride, int ny, float *out)
{
	for (int y = 0; y < ny; y += KERNEL_MAX_NY) {
		int m = ny - y < KERNEL_MAX_NY ? ny - y : KERNEL_MAX_NY;
		tbl[m - 1](n / QK_K, w_row, act_row(act, stride, y), stride, out + y);
	}
}

void vec_dot_q4_K_avx2(size_t n, const void *w_row, const void *act, size_t act_stride,
		       int ny, float *out)
{
	run_rows(rows_q4_K, n, w_row, act, act_stride, ny, out);
}

void vec_dot_q5_K_avx2(size_t n, const void *w_row, const void *act, size_t act_stride,
		       int ny, float *out)
{
	run_rows(rows_q5_K, n, w_row, act, act_stride, ny, out);
}

void vec_dot_q6_K_avx2(size_t n, const void *w_row, const void *act, size_t act_stride,
		       int ny, float *out)
{
	run_rows(rows_q6_K, n, w_row, act, act_stride, ny, out);
}

void vec_dot_q2_K_avx2(size_t n, const void *w_row, const void *act, size_t act_stride,
		       int ny, float *out)
{
	run_rows(rows_q2_K, n, w_row, act, act_stride, ny, out);
}

void vec_dot_q3_K_avx2(size_t n, const void *w_row, const void *act, size_t act_stride,
		       int ny, float *out)
{
	run_rows(rows_q3_K, n, w_row, act, act_stride, ny, out);
}

/* ---- decode: several weight rows times one activation row ----------------
 * As in kquants_avx512.c: rows one after the other, four rows' sums reduced
 * together. */
KQ_INLINE __m256 gemv_row(enum kq_fmt f, size_t nb, size_t bb, const uint8_t *w,
			  const struct block_q8_K *a)
{
	__m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
	for (size_t i = 0; i < nb; i++) {
		kq_prefetch_ahead(w + i * bb);
		struct kq_unpacked u;
		unpack_block(f, w, i, &u);
		block_row(f, &u, a + i, &acc, &accm);
	}
	return _mm256_sub_ps(acc, accm);
}

/* The four totals of four 8-float partial sums. */
KQ_INLINE __m128 hsum4_256(__m256 a, __m256 b, __m256 c, __m256 d)
{
	__m256 s = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
	return _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
}

KQ_INLINE void gemv(enum kq_fmt f, size_t n, const void *w, size_t row_bytes, int nr,
		    const void *act, float *out)
{
	const uint8_t *wb = w;
	size_t nb = n / QK_K, bb = nb ? row_bytes / nb : 0; /* bytes of one block */
	int r = 0;
	for (; r + 4 <= nr; r += 4) {
		const uint8_t *w0 = wb + (size_t)r * row_bytes;
		__m256 s0 = gemv_row(f, nb, bb, w0, act);
		__m256 s1 = gemv_row(f, nb, bb, w0 + row_bytes, act);
		__m256 s2 = gemv_row(f, nb, bb, w0 + 2 * row_bytes, act);
		__m256 s3 = gemv_row(f, nb, bb, w0 + 3 * row_bytes, act);
		_mm_storeu_ps(out + r, hsum4_256(s0, s1, s2, s3));
	}
	/* a row's sum must not depend on how the rows were split into tasks
	 * (streamed and resident runs split differently): the tail is reduced
	 * in the same order as one lane of the four-row reduction */
	for (; r < nr; r++) {
		__m256 s = gemv_row(f, nb, bb, wb + (size_t)r * row_bytes, act);
		out[r] = _mm_cvtss_f32(hsum4_256(s, s, s, s));
	}
}

void gemv_q4_K_avx2(size_t n, const void *w, size_t rb, int nr, const void *act, float *out)
{
	gemv(KQ_Q4_K, n, w, rb, nr, act, out);
}

void gemv_q5_K_avx2(size_t n, const void *w, size_t rb, int nr, const void *act, float *out)
{
	gemv(KQ_Q5_K, n, w, rb, nr, act, out);
}

void gemv_q6_K_avx2(size_t n, const void *w, size_t rb, int nr, const void *act, float *out)
{
	gemv(KQ_Q6_K, n, w, rb, nr, act, out);
}

void gemv_q2_K_avx2(size_t n, const void *w, size_t rb, int nr, const void *act, float *out)
{
	gemv(KQ_Q2_K, n, w, rb, nr, act, out);
}

void gemv_q3_K_avx2(size_t n, const void *w, size_t rb, int nr, const void *act, float *out)
{
	gemv(KQ_Q3_K, n, w, rb, nr, act, out);
}

/* ---- Q8_K activations: same bytes as quantize_row_q8_K_ref --------------- */

/* Index of the first element of largest magnitude (ref: first strict max). */
static int first_amax(const float *x, float *amax_out)
{
	const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
	__m256 vmax = _mm256_setzero_ps();
	for (int v = 0; v < QK_K / 8; v++)
		/* operand order: max_ps returns its second operand for a NaN, so
		 * NaNs are skipped, as in the reference */
		vmax = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + 8 * v), abs_mask), vmax);
	__m128 m = _mm_max_ps(_mm256_castps256_ps128(vmax), _mm256_extractf128_ps(vmax, 1));
	m = _mm_max_ps(m, _mm_movehl_ps(m, m));
	m = _mm_max_ss(m, _mm_movehdup_ps(m));
	*amax_out = _mm_cvtss_f32(m);
	const __m256 target = _mm256_set1_ps(*amax_out);
	for (int v = 0; v < QK_K / 8; v++) {
		__m256 a = _mm256_and_ps(_mm256_loadu_ps(x + 8 * v), abs_mask);
		int bits = _mm256_movemask_ps(_mm256_cmp_ps(a, target, _CMP_EQ_OQ));
		if (bits)
			return 8 * v + __builtin_ctz((unsigned)bits);
	}
	return 0;
}

void quantize_row_q8_K_avx2(const float *x, void *y, size_t n)
{
	const __m256i perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
	struct block_q8_K *b = y;
	for (size_t i = 0; i < n / QK_K; i++, b++, x += QK_K) {
		float amax;
		int idx = first_amax(x, &amax);
		memset(b, 0, sizeof(*b));
		if (amax == 0)
			continue;
		const float iscale = -127.0f / x[idx];
		const __m256 vs = _mm256_set1_ps(iscale);
		const __m256 lo = _mm256_set1_ps(-128.0f), hi = _mm256_set1_ps(127.0f);
		for (int g = 0; g < QK_K / 32; g++) {
			__m256i v[4];
			for (int k = 0; k < 4; k++) {
				/* clamp as the reference does (a NaN product -> -128),
				 * then round to nearest even (MXCSR default) */
				__m256 t = _mm256_mul_ps(_mm256_loadu_ps(x + 32 * g + 8 * k), vs);
				t = _mm256_min_ps(_mm256_max_ps(t, lo), hi);
				v[k] = _mm256_cvtps_epi32(t);
			}
			b->bsums[2 * g] = (int16_t)hsum_epi32_256(_mm256_add_epi32(v[0], v[1]));
			b->bsums[2 * g + 1] = (int16_t)hsum_epi32_256(_mm256_add_epi32(v[2], v[3]));
			__m256i p = _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]),
						       _mm256_packs_epi32(v[2], v[3]));
			_mm256_storeu_si256((__m256i *)(b->qs + 32 * g), _mm256_permutevar8x32_epi32(p, perm));
		}
		b->d = 1 / iscale;
	}
}
