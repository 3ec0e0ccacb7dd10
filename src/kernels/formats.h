/* formats.h: the plain and 32-block weight formats (F32, F16, BF16, Q8_0, Q4_0)
 * and every kernel that works on them.
 *
 * Owns: the Q8_0 / Q4_0 block structs, laid out byte for byte as ggml's
 * ggml-common.h lays them out (they are part of the GGUF file format), and the
 * declarations of the scalar references (basic.c) and the SIMD variants
 * (basic_avx2.c, basic_avx512.c). The K-quants live in kquants.h.
 *
 * Q8_0: 32 elements, value[i] = d * qs[i], d an IEEE half.
 * Q4_0: 32 elements, value[i] = d * (q[i] - 8), q[i] in 0..15; qs[k] holds
 *       element k in its low nibble and element k + 16 in its high nibble.
 * F16 and BF16 are IEEE half / bfloat16 stored as uint16_t.
 *
 * Rounding, which every quantize_row_q8_0_* variant reproduces bit for bit:
 *   amax = max |x[i]| (NaN elements ignored), d = amax / 127,
 *   id = d ? 1 / d : 0, qs[i] = roundf(x[i] * id) (half away from zero),
 *   clamped to [-127, 127], NaN -> 0; d stored as fp16 (round to nearest even).
 * An all-zero block gives d = 0 and qs = 0. A block holding +-Inf gets d = Inf
 * (its finite elements quantize to 0, so it dequantizes to NaN: the input was
 * not finite either).
 * Q4_0 (weights only, reference only) as ggml: m = the element of largest
 * magnitude, sign kept; d = m / -8, id = d ? 1 / d : 0,
 * q[i] = trunc(x[i] * id + 8.5) clamped to 0..15, NaN -> 8 (value 0).
 */
#ifndef FM_KERNELS_FORMATS_H
#define FM_KERNELS_FORMATS_H

#include <stddef.h>
#include <stdint.h>

#include "kernels.h"

#define QK8_0 32
#define QK4_0 32

struct block_q8_0 {
	uint16_t d;          /* scale, IEEE half */
	int8_t qs[QK8_0];    /* quants, -127..127 */
};
_Static_assert(sizeof(struct block_q8_0) == 34, "block_q8_0 must be 34 bytes");

struct block_q4_0 {
	uint16_t d;            /* scale, IEEE half */
	uint8_t qs[QK4_0 / 2]; /* element k: low nibble of qs[k], k+16: high nibble */
};
_Static_assert(sizeof(struct block_q4_0) == 18, "block_q4_0 must be 18 bytes");

/* Scalar references (basic.c): plain C that reads as the format's definition. */
void quantize_row_f32_ref(const float *x, void *y, size_t n);
void quantize_row_f16_ref(const float *x, void *y, size_t n);
void quantize_row_bf16_ref(const float *x, void *y, size_t n);
void quantize_row_q8_0_ref(const float *x, void *y, size_t n);
void quantize_row_q4_0_ref(const float *x, void *y, size_t n);

void dequantize_row_f32_ref(const void *x, float *y, size_t n);
void dequantize_row_f16_ref(const void *x, float *y, size_t n);
void dequantize_row_bf16_ref(const void *x, float *y, size_t n);
void dequantize_row_q8_0_ref(const void *x, float *y, size_t n);
void dequantize_row_q4_0_ref(const void *x, float *y, size_t n);

void vec_dot_f32_ref(size_t n, const void *w_row, const void *act, size_t act_stride,
		     int ny, float *out);
void vec_dot_f16_ref(size_t n, const void *w_row, const void *act, size_t act_stride,
		     int ny, float *out);
void vec_dot_bf16_ref(size_t n, const void *w_row, const void *act, size_t act_stride,
		      int ny, float *out);
void vec_dot_q8_0_ref(size_t n, const void *w_row, const void *act, size_t act_stride,
		      int ny, float *out);
void vec_dot_q4_0_ref(size_t n, const void *w_row, const void *act, size_t act_stride,
		      int ny, float *out);

/* AVX2 + FMA + F16C variants (basic_avx2.c). */
void vec_dot_f32_avx2(size_t n, const void *w_row, const void *act, size_t act_stride,
		      int ny, float *out);
void vec_dot_f16_avx2(size_t n, const void *w_row, const void *act, size_t act_stride,
		      int ny, float *out);
void vec_dot_bf16_avx2(size_t n, const void *w_row, const void *act, size_t act_stride,
		       int ny, float *out);
void vec_dot_q8_0_avx2(size_t n, const void *w_row, const void *act, size_t act_stride,
		       int ny, float *out);
void vec_dot_q4_0_avx2(size_t n, const void *w_row, const void *act, size_t act_stride,
		       int ny, float *out);
void quantize_row_q8_0_avx2(const float *x, void *y, size_t n);

/* AVX-512 F/BW/VL/DQ/VNNI variants (basic_avx512.c). */
void vec_dot_f32_avx512(size_t n, const void *w_row, const void *act, size_t act_stride,
			int ny, float *out);
void vec_dot_f16_avx512(size_t n, const void *w_row, const void *act, size_t act_stride,
			int ny, float *out);
void vec_dot_bf16_avx512(size_t n, const void *w_row, const void *act, size_t act_stride,
			 int ny, float *out);
void vec_dot_q8_0_avx512(size_t n, const void *w_row, const void *act, size_t act_stride,
			 int ny, float *out);
void vec_dot_q4_0_avx512(size_t n, const void *w_row, const void *act, size_t act_stride,
			 int ny, float *out);
void quantize_row_q8_0_avx512(const float *x, void *y, size_t n);

/* Fill k's entries for F32, F16, BF16, Q8_0, Q4_0 and quantize_act[F32],
 * quantize_act[Q8_0] with isa's variants; entries isa lacks are left as they
 * are (dispatch.c starts each table as a copy of the one below it). */
void kernels_register_basic(struct kernels *k, enum kernel_isa isa);

#endif
