/* basic.c: scalar references for F32, F16, BF16, Q8_0 and Q4_0, and the
 * registration of every variant of these formats into a kernel table.
 *
 * Owns: quantize_row_*_ref, dequantize_row_*_ref, vec_dot_*_ref for the five
 * formats (plain C that reads as the format's definition, see formats.h) and
 * kernels_register_basic(). It does not own the SIMD variants (basic_avx2.c,
 * basic_avx512.c) nor the K-quants (kquants*.c).
 * Spec: ggml's ggml-common.h block layouts and ggml-quants.c reference
 * quantizers (quantize_row_q8_0_ref, quantize_row_q4_0_ref), re-derived here.
 */
#include "formats.h"

#include <math.h>
#include <string.h>

#include "../util.h"

/* ---- plain formats ---- */

void quantize_row_f32_ref(const float *x, void *y, size_t n)
{
	memcpy(y, x, n * sizeof(float));
}

void dequantize_row_f32_ref(const void *x, float *y, size_t n)
{
	memcpy(y, x, n * sizeof(float));
}

void quantize_row_f16_ref(const float *x, void *y, size_t n)
{
	uint16_t *h = y;
	for (size_t i = 0; i < n; i++)
		h[i] = fm_fp32_to_fp16(x[i]);
}

void dequantize_row_f16_ref(const void *x, float *y, size_t n)
{
	const uint16_t *h = x;
	for (size_t i = 0; i < n; i++)
		y[i] = fm_fp16_to_fp32(h[i]);
}

void quantize_row_bf16_ref(const float *x, void *y, size_t n)
{
	uint16_t *h = y;
	for (size_t i = 0; i < n; i++)
		h[i] = fm_fp32_to_bf16(x[i]);
}

void dequantize_row_bf16_ref(const void *x, float *y, size_t n)
{
	const uint16_t *h = x;
	for (size_t i = 0; i < n; i++)
		y[i] = fm_bf16_to_fp32(h[i]);
}

/* Activation row j of a vec_dot call. */
static const void *act_row(const void *act, size_t act_stride, int j)
{
	return (const uint8_t *)act + (size_t)j * act_stride;
}

void vec_dot_f32_ref(size_t n, const void *w_row, const void *act, size_t act_stride,
		     int ny, float *out)
{
	const float *w = w_row;
	for (int j = 0; j < ny; j++) {
		const float *a = act_row(act, act_stride, j);
		float sum = 0.0f;
		for (size_t i = 0; i < n; i++)
			sum += w[i] * a[i];
		out[j] = sum;
	}
}

void vec_dot_f16_ref(size_t n, const void *w_row, const void *act, size_t act_stride,
		     int ny, float *out)
{
	const uint16_t *w = w_row;
	for (int j = 0; j < ny; j++) {
		const float *a = act_row(act, act_stride, j);
		float sum = 0.0f;
		for (size_t i = 0; i < n; i++)
			sum += fm_fp16_to_fp32(w[i]) * a[i];
		out[j] = sum;
	}
}

void vec_dot_bf16_ref(size_t n, const void *w_row, const void *act, size_t act_stride,
		      int ny, float *out)
{
	const uint16_t *w = w_row;
	for (int j = 0; j < ny; j++) {
		const float *a = act_row(act, act_stride, j);
		float sum = 0.0f;
		for (size_t i = 0; i < n; i++)
			sum += fm_bf16_to_fp32(w[i]) * a[i];
		out[j] = sum;
	}
}

/* ---- Q8_0 ---- */

/* roundf(v) clamped to [-lim, lim]; NaN -> 0. */
static int round_clamp(float v, int lim)
{
	if (v != v)
		return 0;
	if (v >= (float)lim)
		return lim;
	if (v <= (float)-lim)
		return -lim;
	return (int)roundf(v);
}

void quantize_row_q8_0_ref(const float *x, void *y, size_t n)
{
	struct block_q8_0 *b = y;
	for (size_t ib = 0; ib < n / QK8_0; ib++, x += QK8_0) {
		float amax = 0.0f;
		for (int i = 0; i < QK8_0; i++)
			if (fabsf(x[i]) > amax) /* false for NaN: NaN is ignored */
				amax = fabsf(x[i]);
		float d = amax / 127.0f;
		float id = d != 0.0f ? 1.0f / d : 0.0f;
		b[ib].d = fm_fp32_to_fp16(d);
		for (int i = 0; i < QK8_0; i++)
			b[ib].qs[i] = (int8_t)round_clamp(x[i] * id, 127);
	}
}

void dequantize_row_q8_0_ref(const void *x, float *y, size_t n)
{
	const struct block_q8_0 *b = x;
	for (size_t ib = 0; ib < n / QK8_0; ib++) {
		float d = fm_fp16_to_fp32(b[ib].d);
		for (int i = 0; i < QK8_0; i++)
			y[ib * QK8_0 + i] = d * (float)b[ib].qs[i];
	}
}

/* sum_b d_w[b] * d_a[b] * sum_i w[b][i] * a[b][i], the integer sum exact. */
void vec_dot_q8_0_ref(size_t n, const void *w_row, const void *act, size_t act_stride,
		      int ny, float *out)
{
	const struct block_q8_0 *w = w_row;
	for (int j = 0; j < ny; j++) {
		const struct block_q8_0 *a = act_row(act, act_stride, j);
		float sum = 0.0f;
		for (size_t ib = 0; ib < n / QK8_0; ib++) {
			int isum = 0;
			for (int i = 0; i < QK8_0; i++)
				isum += w[ib].qs[i] * a[ib].qs[i];
			float d = fm_fp16_to_fp32(w[ib].d) * fm_fp16_to_fp32(a[ib].d);
			sum += (float)isum * d;
		}
		out[j] = sum;
	}
}

/* ---- Q4_0 ---- */

/* trunc(v + 8.5) clamped to 0..15; NaN -> 8 (the level of 0). */
static int q4_level(float v)
{
	if (v != v)
		return 8;
	float t = v + 8.5f;
	if (t <= 0.0f)
		return 0;
	if (t >= 15.0f)
		return 15;
	return (int)t;
}

/* d = m / -8 where m is the element of largest magnitude (sign kept), so m
 * maps to q = 0 and the 16 levels cover [-8d, 7d]; q = trunc(x/d + 8.5). */
void quantize_row_q4_0_ref(const float *x, void *y, size_t n)
{
	struct block_q4_0 *b = y;
	for (size_t ib = 0; ib < n / QK4_0; ib++, x += QK4_0) {
		float amax = 0.0f, m = 0.0f;
		for (int i = 0; i < QK4_0; i++) {
			if (fabsf(x[i]) > amax) { /* false for NaN */
				amax = fabsf(x[i]);
				m = x[i];
			}
		}
		float d = m / -8.0f;
		float id = d != 0.0f ? 1.0f / d : 0.0f;
		b[ib].d = fm_fp32_to_fp16(d);
		for (int i = 0; i < QK4_0 / 2; i++) {
			int q0 = q4_level(x[i] * id);
			int q1 = q4_level(x[i + QK4_0 / 2] * id);
			b[ib].qs[i] = (uint8_t)(q0 | q1 << 4);
		}
	}
}

void dequantize_row_q4_0_ref(const void *x, float *y, size_t n)
{
	const struct block_q4_0 *b = x;
	for (size_t ib = 0; ib < n / QK4_0; ib++) {
		float d = fm_fp16_to_fp32(b[ib].d);
		for (int i = 0; i < QK4_0 / 2; i++) {
			y[ib * QK4_0 + i] = d * (float)((b[ib].qs[i] & 0x0f) - 8);
			y[ib * QK4_0 + i + QK4_0 / 2] = d * (float)((b[ib].qs[i] >> 4) - 8);
		}
	}
}

void vec_dot_q4_0_ref(size_t n, const void *w_row, const void *act, size_t act_stride,
		      int ny, float *out)
{
	const struct block_q4_0 *w = w_row;
	for (int j = 0; j < ny; j++) {
		const struct block_q8_0 *a = act_row(act, act_stride, j);
		float sum = 0.0f;
		for (size_t ib = 0; ib < n / QK4_0; ib++) {
			int isum = 0;
			for (int i = 0; i < QK4_0 / 2; i++) {
				isum += ((w[ib].qs[i] & 0x0f) - 8) * a[ib].qs[i];
				isum += ((w[ib].qs[i] >> 4) - 8) * a[ib].qs[i + QK4_0 / 2];
			}
			float d = fm_fp16_to_fp32(w[ib].d) * fm_fp16_to_fp32(a[ib].d);
			sum += (float)isum * d;
		}
		out[j] = sum;
	}
}

/* ---- registration ---- */

static void set_fmt(struct kernels *k, enum ggml_type t, enum ggml_type act_type,
		    vec_dot_fn dot, quantize_row_fn q, dequantize_row_fn dq)
{
	k->fmt[t] = (struct kernel_fmt){ act_type, dot, q, dq, NULL };
}

static void register_ref(struct kernels *k)
{
	set_fmt(k, GGML_TYPE_F32, GGML_TYPE_F32, vec_dot_f32_ref, quantize_row_f32_ref,
		dequantize_row_f32_ref);
	set_fmt(k, GGML_TYPE_F16, GGML_TYPE_F32, vec_dot_f16_ref, quantize_row_f16_ref,
		dequantize_row_f16_ref);
	set_fmt(k, GGML_TYPE_BF16, GGML_TYPE_F32, vec_dot_bf16_ref, quantize_row_bf16_ref,
		dequantize_row_bf16_ref);
	set_fmt(k, GGML_TYPE_Q8_0, GGML_TYPE_Q8_0, vec_dot_q8_0_ref, quantize_row_q8_0_ref,
		dequantize_row_q8_0_ref);
	set_fmt(k, GGML_TYPE_Q4_0, GGML_TYPE_Q8_0, vec_dot_q4_0_ref, quantize_row_q4_0_ref,
		dequantize_row_q4_0_ref);
	k->quantize_act[GGML_TYPE_F32] = quantize_row_f32_ref;
	k->quantize_act[GGML_TYPE_Q8_0] = quantize_row_q8_0_ref;
}

/* The SIMD files are only built on x86-64 (see the Makefile). Quantize and
 * dequantize stay the references: they are not on the hot path. */
void kernels_register_basic(struct kernels *k, enum kernel_isa isa)
{
	switch (isa) {
	case KERNEL_ISA_REF:
		register_ref(k);
		break;
#if defined(__x86_64__)
	case KERNEL_ISA_AVX2:
		k->fmt[GGML_TYPE_F32].vec_dot = vec_dot_f32_avx2;
		k->fmt[GGML_TYPE_F16].vec_dot = vec_dot_f16_avx2;
		k->fmt[GGML_TYPE_BF16].vec_dot = vec_dot_bf16_avx2;
		k->fmt[GGML_TYPE_Q8_0].vec_dot = vec_dot_q8_0_avx2;
		k->fmt[GGML_TYPE_Q4_0].vec_dot = vec_dot_q4_0_avx2;
		k->quantize_act[GGML_TYPE_Q8_0] = quantize_row_q8_0_avx2;
		break;
	case KERNEL_ISA_AVX512:
		k->fmt[GGML_TYPE_F32].vec_dot = vec_dot_f32_avx512;
		k->fmt[GGML_TYPE_F16].vec_dot = vec_dot_f16_avx512;
		k->fmt[GGML_TYPE_BF16].vec_dot = vec_dot_bf16_avx512;
		k->fmt[GGML_TYPE_Q8_0].vec_dot = vec_dot_q8_0_avx512;
		k->fmt[GGML_TYPE_Q4_0].vec_dot = vec_dot_q4_0_avx512;
		k->quantize_act[GGML_TYPE_Q8_0] = quantize_row_q8_0_avx512;
		break;
#endif
	default:
		break;
	}
}
