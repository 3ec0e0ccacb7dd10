/* kquants_avx512.c: AVX-512 (F, BW, VL, VNNI) variants of the K-quant dot
 * products (Q4_K, Q5_K, Q6_K, Q3_K, Q2_K x Q8_K) and of the Q8_K quantizer.
 *
 * Owns only SIMD math; formats, references and registration are in
 * kquants.c / kquants.h. Compiled with the AVX-512 flags of the Makefile's
 * *_avx512.c rule; reached only through the kernel table.
 *
 * Same plan as kquants_avx2.c (unsigned weight levels, signed Q8_K quants,
 * minima and Q6_K's -32 / Q3_K's -4 through the bsums, a block unpacked once for all ny
 * rows), on 64-element pieces (one zmm of activations), with VNNI:
 * _mm512_dpbusd_epi32 multiplies a piece's u8 levels by the s8 activations
 * straight into int32 sums of 4; two pieces are packed back to int16 (the
 * sums fit) and one _mm512_dpwssd_epi32 applies the sub-block scales and
 * accumulates. That is 6 multiply instructions per super-block and row
 * against 8 for maddubs + dpwssd; measured on Zen 4 it is a few per cent
 * faster, and well ahead of AVX2 (numbers: bench/bench_kquants.c).
 */
#include "kquants.h"

#include <immintrin.h>

#define KQ_INLINE static inline __attribute__((always_inline))

KQ_INLINE const struct block_q8_K *act_row(const void *act, size_t stride, int y)
{
	return (const struct block_q8_K *)((const uint8_t *)act + (size_t)y * stride);
}

/* The dot product of a 64-element piece p: dpbusd gives 16 int32 lanes, lane
 * i the sum of elements 4i..4i+3 of the piece (|sum| <= 4*63*128 < 2^15).
 * Two pieces are packed to int16 with packs_epi32, which interleaves them per
 * 128-bit lane L: int16 j of the pair comes from lane 4L + j%4 of the first
 * piece (j%8 < 4) or of the second; dpwssd then applies the scales. These
 * vpermw tables give the sub-block of each int16 position j of pair t:
 *   Q4_K/Q5_K (32-element sub-blocks, 8 lanes each): 4t + 2*(j%8 >= 4) + (L >= 2)
 *   Q6_K/Q3_K/Q2_K (16-element sub-blocks, 4 lanes each): 8t + 4*(j%8 >= 4) + L */
static const int16_t perm_32[2][32] = {
	{ 0, 0, 0, 0, 2, 2, 2, 2, 0, 0, 0, 0, 2, 2, 2, 2, 1, 1, 1, 1, 3, 3, 3, 3, 1, 1, 1, 1, 3, 3, 3, 3 },
	{ 4, 4, 4, 4, 6, 6, 6, 6, 4, 4, 4, 4, 6, 6, 6, 6, 5, 5, 5, 5, 7, 7, 7, 7, 5, 5, 5, 5, 7, 7, 7, 7 },
};
static const int16_t perm_16[2][32] = {
	{ 0, 0, 0, 0, 4, 4, 4, 4, 1, 1, 1, 1, 5, 5, 5, 5, 2, 2, 2, 2, 6, 6, 6, 6, 3, 3, 3, 3, 7, 7, 7, 7 },
	{ 8, 8, 8, 8, 12, 12, 12, 12, 9, 9, 9, 9, 13, 13, 13, 13,
	  10, 10, 10, 10, 14, 14, 14, 14, 11, 11, 11, 11, 15, 15, 15, 15 },
};

KQ_INLINE __m512i spread_scales(const int16_t perm[32], __m512i sc)
{
	return _mm512_permutexvar_epi16(_mm512_loadu_si512(perm), sc);
}

/* A super-block unpacked: 4 pieces of 64 unsigned levels, their int16 scale
 * vectors, 16 int16 to madd with the 16 bsums (mins; Q6_K: its scales),
 * the fp16 factors as floats. */
struct kq_unpacked {
	__m512i q[4];
	__m512i sc[2]; /* scales of piece pairs (0,1) and (2,3), see perm_32 */
	__m256i mins;
	float d, dmin;
};

/* [v | v >> s] as one zmm: the low and high halves of a piece. */
KQ_INLINE __m512i join_shifted(__m256i v, int s)
{
	return _mm512_inserti64x4(_mm512_castsi256_si512(v), _mm256_srli_epi16(v, s), 1);
}

KQ_INLINE void k4_scales(const uint8_t *scales, struct kq_unpacked *u)
{
	uint32_t s[4];
	kq_unpack_scales_k4(scales, s);
	__m128i s8 = _mm_loadu_si128((const __m128i *)s);
	__m512i sc = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(s8)); /* lanes 0..7: scales */
	/* m0 m0 m1 m1 ... m7 m7: madd with the 16 bsums pairs each min with its 32 */
	__m128i m = _mm_unpackhi_epi64(s8, s8);
	u->mins = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m, m));
	u->sc[0] = spread_scales(perm_32[0], sc);
	u->sc[1] = spread_scales(perm_32[1], sc);
}

/* Q4_K: piece c = [low nibbles | high nibbles] of qs[32c..32c+31]. */
KQ_INLINE void unpack_q4_K(const struct block_q4_K *b, struct kq_unpacked *u)
{
	const __m512i m4 = _mm512_set1_epi8(0x0f);
#pragma GCC unroll 4
	for (int c = 0; c < 4; c++)
		u->q[c] = _mm512_and_si512(join_shifted(_mm256_loadu_si256((const __m256i *)(b->qs + 32 * c)), 4), m4);
	k4_scales(b->scales, u);
	u->d = _cvtsh_ss(b->d);
	u->dmin = _cvtsh_ss(b->dmin);
}

/* Q5_K: Q4_K plus qh bit 2c (low half) / 2c+1 (high half) as the 16s. */
KQ_INLINE void unpack_q5_K(const struct block_q5_K *b, struct kq_unpacked *u)
{
	const __m512i m4 = _mm512_set1_epi8(0x0f), m16 = _mm512_set1_epi8(0x10);
	/* high half shifted right by one: bit 2c+1 sits where the low half has 2c */
	const __m512i hb = join_shifted(_mm256_loadu_si256((const __m256i *)b->qh), 1);
#pragma GCC unroll 4
	for (int c = 0; c < 4; c++) {
		__m512i q = _mm512_and_si512(join_shifted(_mm256_loadu_si256((const __m256i *)(b->qs + 32 * c)), 4), m4);
		__m512i h = 2 * c <= 4 ? _mm512_slli_epi16(hb, 4 - 2 * c) : _mm512_srli_epi16(hb, 2 * c - 4);
		u->q[c] = _mm512_or_si512(q, _mm512_and_si512(h, m16));
	}
	k4_scales(b->scales, u);
	u->d = _cvtsh_ss(b->d);
	u->dmin = _cvtsh_ss(b->dmin);
}

/* Q6_K half h: ql[64h..64h+63] is [l0 | l1]; piece 2h = low nibbles with qh
 * bits 0-1 / 2-3, piece 2h+1 = high nibbles with qh bits 4-5 / 6-7. */
KQ_INLINE void unpack_q6_K(const struct block_q6_K *b, struct kq_unpacked *u)
{
	const __m512i m4 = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
#pragma GCC unroll 2
	for (int h = 0; h < 2; h++) {
		__m512i l = _mm512_loadu_si512(b->ql + 64 * h);
		__m512i qh = join_shifted(_mm256_loadu_si256((const __m256i *)(b->qh + 32 * h)), 2);
		u->q[2 * h] = _mm512_or_si512(_mm512_and_si512(l, m4),
					      _mm512_and_si512(_mm512_slli_epi16(qh, 4), m30));
		u->q[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), m4),
						  _mm512_and_si512(qh, m30));
	}
	u->mins = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->scales));
	__m512i sc = _mm512_castsi256_si512(u->mins);
	u->sc[0] = spread_scales(perm_16[0], sc);
	u->sc[1] = spread_scales(perm_16[1], sc);
	u->d = _cvtsh_ss(b->d);
	u->dmin = 0;
}

/* Q2_K half h: piece 2h+p = [bits 4p..4p+1 | bits 4p+2..4p+3] of qs[32h..]. */
KQ_INLINE void unpack_q2_K(const struct block_q2_K *b, struct kq_unpacked *u)
{
	const __m512i m2 = _mm512_set1_epi8(3);
#pragma GCC unroll 2
	for (int h = 0; h < 2; h++) {
		__m512i q = join_shifted(_mm256_loadu_si256((const __m256i *)(b->qs + 32 * h)), 2);
		u->q[2 * h] = _mm512_and_si512(q, m2);
		u->q[2 * h + 1] = _mm512_and_si512(_mm512_srli_epi16(q, 4), m2);
	}
	const __m128i s = _mm_loadu_si128((const __m128i *)b->scales);
	__m512i sc = _mm512_castsi256_si512(_mm256_cvtepu8_epi16(_mm_and_si128(s, _mm_set1_epi8(0x0f))));
	u->mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(s, 4), _mm_set1_epi8(0x0f)));
	u->sc[0] = spread_scales(perm_16[0], sc);
	u->sc[1] = spread_scales(perm_16[1], sc);
	u->d = _cvtsh_ss(b->d);
	u->dmin = _cvtsh_ss(b->dmin);
}

/* Q3_K half h: as Q2_K, plus hmask bit 4h+2p (low half) / 4h+2p+1 (high
 * half) as the 4s; levels 0..7 (the -4 goes through bsums), mins = the 16
 * signed scales (sc - 32). */
KQ_INLINE void unpack_q3_K(const struct block_q3_K *b, struct kq_unpacked *u)
{
	const __m512i m2 = _mm512_set1_epi8(3), m4 = _mm512_set1_epi8(4);
	/* high half shifted right by one: bit 4h+2p+1 sits where the low half has 4h+2p */
	const __m512i hm = join_shifted(_mm256_loadu_si256((const __m256i *)b->hmask), 1);
#pragma GCC unroll 2
	for (int h = 0; h < 2; h++) {
		__m512i q = join_shifted(_mm256_loadu_si256((const __m256i *)(b->qs + 32 * h)), 2);
#pragma GCC unroll 2
		for (int p = 0; p < 2; p++) {
			const int bit = 4 * h + 2 * p; /* moved to bit 2 */
			__m512i hb = bit < 2 ? _mm512_slli_epi16(hm, 2 - bit) : _mm512_srli_epi16(hm, bit - 2);
			u->q[2 * h + p] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(q, 4 * p), m2),
							  _mm512_and_si512(hb, m4));
		}
	}
	uint32_t s[4];
	kq_unpack_scales_q3(b->scales, s);
	const __m128i s8 = _mm_sub_epi8(_mm_loadu_si128((const __m128i *)s), _mm_set1_epi8(32));
	u->mins = _mm256_cvtepi8_epi16(s8);
	__m512i sc = _mm512_castsi256_si512(u->mins);
	u->sc[0] = spread_scales(perm_16[0], sc);
	u->sc[1] = spread_scales(perm_16[1], sc);
	u->d = _cvtsh_ss(b->d);
	u->dmin = 0;
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

/* min part of one block: the 16 int16 of mins (Q6_K: its scales) times the
 * 16 bsums, in 8 int32. */
KQ_INLINE __m256i min_part(const struct kq_unpacked *u, const struct block_q8_K *a)
{
	return _mm256_madd_epi16(u->mins, _mm256_loadu_si256((const __m256i *)a->bsums));
}

KQ_INLINE void block_row(enum kq_fmt f, const struct kq_unpacked *u,
			 const struct block_q8_K *a, __m512 *acc, __m256 *accm)
{
	const __m512i zero = _mm512_setzero_si512();
	__m512i v[4];
#pragma GCC unroll 4
	for (int p = 0; p < 4; p++)
		v[p] = _mm512_dpbusd_epi32(zero, u->q[p], _mm512_loadu_si512(a->qs + 64 * p));
	__m512i sumi = _mm512_dpwssd_epi32(zero, _mm512_packs_epi32(v[0], v[1]), u->sc[0]);
	sumi = _mm512_dpwssd_epi32(sumi, _mm512_packs_epi32(v[2], v[3]), u->sc[1]);
	__m256i m = min_part(u, a);
	if (sym_shift(f)) {
		sumi = _mm512_sub_epi32(sumi, _mm512_zextsi256_si512(_mm256_slli_epi32(m, sym_shift(f))));
	} else {
		*accm = _mm256_fmadd_ps(_mm256_set1_ps(u->dmin * a->d), _mm256_cvtepi32_ps(m), *accm);
	}
	*acc = _mm512_fmadd_ps(_mm512_set1_ps(u->d * a->d), _mm512_cvtepi32_ps(sumi), *acc);
}

KQ_INLINE float hsum_256(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

/* out[y] = dot(row, act_y), y < ny, each block unpacked once for all rows. */
KQ_INLINE void rows(enum kq_fmt f, size_t nb, const uint8_t *w, const void *act,
		    size_t stride, int ny, float *out)
{
	__m512 acc[KERNEL_MAX_NY];
	__m256 accm[KERNEL_MAX_NY];
	for (int y = 0; y < ny; y++) {
		acc[y] = _mm512_setzero_ps();
		accm[y] = _mm256_setzero_ps();
	}
	for (size_t i = 0; i < nb; i++) {
		struct kq_unpacked u;
		unpack_block(f, w, i, &u);
#pragma GCC unroll 8
		for (int y = 0; y < ny; y++)
			block_row(f, &u, act_row(act, stride, y) + i, &acc[y], &accm[y]);
	}
	for (int y = 0; y < ny; y++)
		out[y] = _mm512_reduce_add_ps(acc[y]) - hsum_256(accm[y]);
}

/* One specialised copy per (format, ny). Generating macro, one level deep. */
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

static void run_rows(const rows_fn *tbl, size_t n, const void *w_row, const void *act,
		     size_t stride, int ny, float *out)
{
	for (int y = 0; y < ny; y += KERNEL_MAX_NY) {
		int m = ny - y < KERNEL_MAX_NY ? ny - y : KERNEL_MAX_NY;
		tbl[m - 1](n / QK_K, w_row, act_row(act, stride, y), stride, out + y);
	}
}

void vec_dot_q4_K_avx512(size_t n, const void *w_row, const void *act, size_t act_stride,
			 int ny, float *out)
{
	run_rows(rows_q4_K, n, w_row, act, act_stride, ny, out);
}

void vec_dot_q5_K_avx512(size_t n, const void *w_row, const void *act, size_t act_stride,
			 int ny, float *out)
{
	run_rows(rows_q5_K, n, w_row, act, act_stride, ny, out);
}

void vec_dot_q6_K_avx512(size_t n, const void *w_row, const void *act, size_t act_stride,
			 int ny, float *out)
{
	run_rows(rows_q6_K, n, w_row, act, act_stride, ny, out);
}

void vec_dot_q2_K_avx512(size_t n, const void *w_row, const void *act, size_t act_stride,
			 int ny, float *out)
{
	run_rows(rows_q2_K, n, w_row, act, act_stride, ny, out);
}

void vec_dot_q3_K_avx512(size_t n, const void *w_row, const void *act, size_t act_stride,
			 int ny, float *out)
{
	run_rows(rows_q3_K, n, w_row, act, act_stride, ny, out);
}

/* ---- Q8_K activations: same bytes as quantize_row_q8_K_ref --------------- */

static int first_amax(const float *x, float *amax_out)
{
	__m512 vmax = _mm512_setzero_ps();
	for (int v = 0; v < QK_K / 16; v++)
		/* second operand wins on NaN: NaNs are skipped, as in the reference */
		vmax = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x + 16 * v)), vmax);
	*amax_out = _mm512_reduce_max_ps(vmax);
	const __m512 target = _mm512_set1_ps(*amax_out);
	for (int v = 0; v < QK_K / 16; v++) {
		__mmask16 k = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(x + 16 * v)), target, _CMP_EQ_OQ);
		if (k)
			return 16 * v + __builtin_ctz((unsigned)k);
	}
	return 0;
}

void quantize_row_q8_K_avx512(const float *x, void *y, size_t n)
{
	struct block_q8_K *b = y;
	for (size_t i = 0; i < n / QK_K; i++, b++, x += QK_K) {
		float amax;
		int idx = first_amax(x, &amax);
		memset(b, 0, sizeof(*b));
		if (amax == 0)
			continue;
		const float iscale = -127.0f / x[idx];
		const __m512 vs = _mm512_set1_ps(iscale);
		const __m512 lo = _mm512_set1_ps(-128.0f), hi = _mm512_set1_ps(127.0f);
		for (int g = 0; g < QK_K / 16; g++) {
			/* clamp as the reference does (NaN -> -128), round to nearest even */
			__m512 t = _mm512_mul_ps(_mm512_loadu_ps(x + 16 * g), vs);
			__m512i v = _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(t, lo), hi));
			b->bsums[g] = (int16_t)_mm512_reduce_add_epi32(v);
			_mm_storeu_si128((__m128i *)(b->qs + 16 * g), _mm512_cvtsepi32_epi8(v));
		}
		b->d = 1 / iscale;
	}
}

/* ---- decode: several weight rows times one activation row ----------------
 * Rows are walked one after the other (interleaving them measured 3x slower:
 * it breaks the hardware prefetcher's streams); what is shared is the end:
 * four rows' accumulators are folded and summed across in one go instead of
 * four horizontal reductions, which cost ~15% of a 2048-column row. */
KQ_INLINE __m256 gemv_row(enum kq_fmt f, size_t nb, size_t bb, const uint8_t *w,
			  const struct block_q8_K *a)
{
	__m512 acc = _mm512_setzero_ps();
	__m256 accm = _mm256_setzero_ps();
	for (size_t i = 0; i < nb; i++) {
		kq_prefetch_ahead(w + i * bb);
		struct kq_unpacked u;
		unpack_block(f, w, i, &u);
		block_row(f, &u, a + i, &acc, &accm);
	}
	return _mm256_sub_ps(_mm256_add_ps(_mm512_castps512_ps256(acc),
					   _mm512_extractf32x8_ps(acc, 1)), accm);
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

void gemv_q4_K_avx512(size_t n, const void *w, size_t rb, int nr, const void *act, float *out)
{
	gemv(KQ_Q4_K, n, w, rb, nr, act, out);
}

void gemv_q5_K_avx512(size_t n, const void *w, size_t rb, int nr, const void *act, float *out)
{
	gemv(KQ_Q5_K, n, w, rb, nr, act, out);
}

void gemv_q6_K_avx512(size_t n, const void *w, size_t rb, int nr, const void *act, float *out)
{
	gemv(KQ_Q6_K, n, w, rb, nr, act, out);
}

void gemv_q2_K_avx512(size_t n, const void *w, size_t rb, int nr, const void *act, float *out)
{
	gemv(KQ_Q2_K, n, w, rb, nr, act, out);
}

void gemv_q3_K_avx512(size_t n, const void *w, size_t rb, int nr, const void *act, float *out)
{
	gemv(KQ_Q3_K, n, w, rb, nr, act, out);
}
