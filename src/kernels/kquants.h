/* kquants.h: the K-quant block formats (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K) and their
 * activation format Q8_K, as llama.cpp's ggml-common.h lays them out.
 *
 * Owns: the block structs (byte-compatible with GGUF files made by llama.cpp),
 * the scalar references (kquants.c), the SIMD variants (kquants_avx2.c,
 * kquants_avx512.c) and kernels_register_kquants(), which puts them in a
 * kernel table. It does not own the table itself (kernels.h, dispatch.c).
 *
 * Every format packs 256 weights (a super-block) into sub-blocks that share a
 * quantized scale (and, except Q6_K, a quantized min); the super-block holds
 * the fp16 factors of those scales. Element value, per sub-block s:
 *   Q4_K  d*sc[s]*q - dmin*m[s]      q in 0..15, 8 sub-blocks of 32, 6-bit sc/m
 *   Q5_K  d*sc[s]*q - dmin*m[s]      q in 0..31, as Q4_K plus one bit in qh
 *   Q6_K  d*sc[s]*(q - 32)           q in 0..63, 16 sub-blocks of 16, int8 sc
 *   Q2_K  d*sc[s]*q - dmin*m[s]      q in 0..3, 16 sub-blocks of 16, 4-bit sc/m
 *   Q3_K  d*(sc[s] - 32)*(q - 4)     q in 0..7, 16 sub-blocks of 16, 6-bit sc
 *   Q8_K  d*q                        q in -127..127, f32 d, bsums = sums of 16 q
 * The bit layouts are spelled out beside each dequantize_row_*_ref in kquants.c.
 */
#ifndef FM_KQUANTS_H
#define FM_KQUANTS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"

#define QK_K 256 /* elements per super-block */
#define K_SCALE_BYTES 12 /* packed 6-bit scales (and mins) of Q3_K / Q4_K / Q5_K */

struct block_q4_K {
	uint16_t d;                     /* fp16 factor of the 6-bit scales */
	uint16_t dmin;                  /* fp16 factor of the 6-bit mins */
	uint8_t scales[K_SCALE_BYTES];  /* 8 scales + 8 mins, 6 bits each */
	uint8_t qs[QK_K / 2];           /* 4-bit quants */
};
_Static_assert(sizeof(struct block_q4_K) == 144, "block_q4_K size");

struct block_q5_K {
	uint16_t d;
	uint16_t dmin;
	uint8_t scales[K_SCALE_BYTES];
	uint8_t qh[QK_K / 8];           /* 5th bit of each quant */
	uint8_t qs[QK_K / 2];           /* low 4 bits */
};
_Static_assert(sizeof(struct block_q5_K) == 176, "block_q5_K size");

struct block_q6_K {
	uint8_t ql[QK_K / 2];           /* low 4 bits */
	uint8_t qh[QK_K / 4];           /* high 2 bits */
	int8_t scales[QK_K / 16];       /* 8-bit signed scales */
	uint16_t d;                     /* fp16 factor of the scales */
};
_Static_assert(sizeof(struct block_q6_K) == 210, "block_q6_K size");

struct block_q2_K {
	uint8_t scales[QK_K / 16];      /* low nibble scale, high nibble min */
	uint8_t qs[QK_K / 4];           /* 2-bit quants */
	uint16_t d;
	uint16_t dmin;
};
_Static_assert(sizeof(struct block_q2_K) == 84, "block_q2_K size");

struct block_q3_K {
	uint8_t hmask[QK_K / 8];        /* 3rd bit of each quant */
	uint8_t qs[QK_K / 4];           /* low 2 bits */
	uint8_t scales[K_SCALE_BYTES];  /* 16 scales, 6 bits each, stored + 32 */
	uint16_t d;                     /* fp16 factor of the scales */
};
_Static_assert(sizeof(struct block_q3_K) == 110, "block_q3_K size");

struct block_q8_K {
	float d;                        /* value = d * qs[i] */
	int8_t qs[QK_K];
	int16_t bsums[QK_K / 16];       /* sum of each 16 consecutive qs */
};
_Static_assert(sizeof(struct block_q8_K) == 292, "block_q8_K size");

/* Decode (gemv) walks each weight row once, from memory: prefetching the
 * bytes KQ_PREFETCH_BYTES ahead of the block being unpacked (three lines:
 * a K-quant block is 84-210 bytes) hides the memory latency the hardware
 * prefetcher leaves (measured in docs/BENCHMARKS.md: "Resident decode"). */
#define KQ_PREFETCH_BYTES 1536
static inline void kq_prefetch_ahead(const uint8_t *block)
{
	__builtin_prefetch(block + KQ_PREFETCH_BYTES, 0, 3);
	__builtin_prefetch(block + KQ_PREFETCH_BYTES + 64, 0, 3);
	__builtin_prefetch(block + KQ_PREFETCH_BYTES + 128, 0, 3);
}

/* The 8 scales and 8 mins of a Q4_K / Q5_K block, unpacked at once: bytes 0..7
 * of out are the scales, 8..15 the mins. Spec (per sub-block j):
 *   j < 4:  sc = s[j] & 63,                          m = s[j+4] & 63
 *   j >= 4: sc = (s[j+4] & 15) | (s[j-4] >> 6) << 4, m = (s[j+4] >> 4) | (s[j] >> 6) << 4
 * done here four bytes at a time in 32-bit words. */
static inline void kq_unpack_scales_k4(const uint8_t s[K_SCALE_BYTES], uint32_t out[4])
{
	uint32_t w0, w1, w2;
	memcpy(&w0, s, 4);
	memcpy(&w1, s + 4, 4);
	memcpy(&w2, s + 8, 4);
	out[0] = w0 & 0x3f3f3f3fu;
	out[1] = (w2 & 0x0f0f0f0fu) | ((w0 >> 2) & 0x30303030u);
	out[2] = w1 & 0x3f3f3f3fu;
	out[3] = ((w2 >> 4) & 0x0f0f0f0fu) | ((w1 >> 2) & 0x30303030u);
}

/* The 16 six-bit scales of a Q3_K block (0..63, value sc - 32), unpacked at
 * once into bytes 0..15 of out. Spec (sub-block j): the low 4 bits are the
 * low (j < 8) or high (j >= 8) nibble of s[j % 8], the top 2 bits are bits
 * 2*(j/4)..2*(j/4)+1 of s[8 + j % 4]; done here in 32-bit words. */
static inline void kq_unpack_scales_q3(const uint8_t s[K_SCALE_BYTES], uint32_t out[4])
{
	uint32_t w0, w1, w2;
	memcpy(&w0, s, 4);
	memcpy(&w1, s + 4, 4);
	memcpy(&w2, s + 8, 4);
	out[0] = (w0 & 0x0f0f0f0fu) | ((w2 << 4) & 0x30303030u);
	out[1] = (w1 & 0x0f0f0f0fu) | ((w2 << 2) & 0x30303030u);
	out[2] = ((w0 >> 4) & 0x0f0f0f0fu) | (w2 & 0x30303030u);
	out[3] = ((w1 >> 4) & 0x0f0f0f0fu) | ((w2 >> 2) & 0x30303030u);
}

/* Scalar references (kquants.c). n is a multiple of QK_K; vec_dot's act rows
 * are Q8_K (see vec_dot_fn in kernels.h). */
void quantize_row_q4_K_ref(const float *x, void *y, size_t n);
void quantize_row_q5_K_ref(const float *x, void *y, size_t n);
void quantize_row_q6_K_ref(const float *x, void *y, size_t n);
void quantize_row_q2_K_ref(const float *x, void *y, size_t n);
void quantize_row_q3_K_ref(const float *x, void *y, size_t n);
void quantize_row_q8_K_ref(const float *x, void *y, size_t n);

void dequantize_row_q4_K_ref(const void *x, float *y, size_t n);
void dequantize_row_q5_K_ref(const void *x, float *y, size_t n);
void dequantize_row_q6_K_ref(const void *x, float *y, size_t n);
void dequantize_row_q2_K_ref(const void *x, float *y, size_t n);
void dequantize_row_q3_K_ref(const void *x, float *y, size_t n);
void dequantize_row_q8_K_ref(const void *x, float *y, size_t n);

void vec_dot_q4_K_ref(size_t n, const void *w_row, const void *act, size_t act_stride,
		      int ny, float *out);
void vec_dot_q5_K_ref(size_t n, const void *w_row, const void *act, size_t act_stride,
		      int ny, float *out);
void vec_dot_q6_K_ref(size_t n, const void *w_row, const void *act, size_t act_stride,
		      int ny, float *out);
void vec_dot_q2_K_ref(size_t n, const void *w_row, const void *act, size_t act_stride,
		      int ny, float *out);
void vec_dot_q3_K_ref(size_t n, const void *w_row, const void *act, size_t act_stride,
		      int ny, float *out);

/* AVX2 + FMA + F16C (kquants_avx2.c); call only when the CPU has them.
 * quantize_row_q8_K_* writes the same bytes as the reference for any input
 * (NaN and inf included). */
void quantize_row_q8_K_avx2(const float *x, void *y, size_t n);
void vec_dot_q4_K_avx2(size_t n, const void *w_row, const void *act, size_t act_stride,
		       int ny, float *out);
void vec_dot_q5_K_avx2(size_t n, const void *w_row, const void *act, size_t act_stride,
		       int ny, float *out);
void vec_dot_q6_K_avx2(size_t n, const void *w_row, const void *act, size_t act_stride,
		       int ny, float *out);
void vec_dot_q2_K_avx2(size_t n, const void *w_row, const void *act, size_t act_stride,
		       int ny, float *out);
void vec_dot_q3_K_avx2(size_t n, const void *w_row, const void *act, size_t act_stride,
		       int ny, float *out);
void gemv_q4_K_avx2(size_t n, const void *w, size_t row_bytes, int nr, const void *act,
		float *out);
void gemv_q5_K_avx2(size_t n, const void *w, size_t row_bytes, int nr, const void *act,
		float *out);
void gemv_q6_K_avx2(size_t n, const void *w, size_t row_bytes, int nr, const void *act,
		float *out);
void gemv_q2_K_avx2(size_t n, const void *w, size_t row_bytes, int nr, const void *act,
		float *out);
void gemv_q3_K_avx2(size_t n, const void *w, size_t row_bytes, int nr, const void *act,
		float *out);

/* AVX-512 F/BW/VL/VNNI (kquants_avx512.c). */
void quantize_row_q8_K_avx512(const float *x, void *y, size_t n);
void vec_dot_q4_K_avx512(size_t n, const void *w_row, const void *act, size_t act_stride,
			 int ny, float *out);
void vec_dot_q5_K_avx512(size_t n, const void *w_row, const void *act, size_t act_stride,
			 int ny, float *out);
void vec_dot_q6_K_avx512(size_t n, const void *w_row, const void *act, size_t act_stride,
			 int ny, float *out);
void vec_dot_q2_K_avx512(size_t n, const void *w_row, const void *act, size_t act_stride,
			 int ny, float *out);
void vec_dot_q3_K_avx512(size_t n, const void *w_row, const void *act, size_t act_stride,
			 int ny, float *out);
void gemv_q4_K_avx512(size_t n, const void *w, size_t row_bytes, int nr, const void *act,
		  float *out);
void gemv_q5_K_avx512(size_t n, const void *w, size_t row_bytes, int nr, const void *act,
		  float *out);
void gemv_q6_K_avx512(size_t n, const void *w, size_t row_bytes, int nr, const void *act,
		  float *out);
void gemv_q2_K_avx512(size_t n, const void *w, size_t row_bytes, int nr, const void *act,
		  float *out);
void gemv_q3_K_avx512(size_t n, const void *w, size_t row_bytes, int nr, const void *act,
		  float *out);

/* Fill k->fmt[Q2_K, Q3_K, Q4_K, Q5_K, Q6_K] (act_type Q8_K, that ISA's vec_dot, the
 * reference quantize/dequantize) and k->quantize_act[Q8_K] with isa's
 * variants; entries of other types are left untouched. */
void kernels_register_kquants(struct kernels *k, enum kernel_isa isa);

#endif
