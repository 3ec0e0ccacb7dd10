/* attn.h: the attention inner loops over a KV cache stored as f32 rows.
 *
 *   attn_dot_rows: out[t] = dot(q, rows[t]) * scale, t < n_rows (the scores)
 *   attn_wsum:     o[d] = sum over t < n_rows of p[t] * rows[t][d] (the output)
 * rows are n floats apart. The body is written once in plain C (attn_body.h)
 * and compiled three times: attn.c (baseline: the reference), attn_avx2.c and
 * attn_avx512.c (with those ISAs' flags); the kernel table picks one. Each
 * lane's arithmetic is spelled out in the source (16 running sums for the dot,
 * 64 output columns in flight for the sum; ISO C, so no contraction into FMA),
 * so every variant returns the same bits; tests/test_attn.c checks that. */
#ifndef FM_KERNELS_ATTN_H
#define FM_KERNELS_ATTN_H

#include <stdint.h>

#include "kernels.h"

void attn_dot_rows_ref(float *out, const float *q, const float *rows, int n_rows, int n,
		       float scale);
void attn_wsum_ref(float *o, const float *p, const float *rows, int n_rows, int n);
void attn_dot_rows_avx2(float *out, const float *q, const float *rows, int n_rows, int n,
			float scale);
void attn_wsum_avx2(float *o, const float *p, const float *rows, int n_rows, int n);
void attn_dot_rows_avx512(float *out, const float *q, const float *rows, int n_rows, int n,
			  float scale);
void attn_wsum_avx512(float *o, const float *p, const float *rows, int n_rows, int n);
/* attn_wsum over IEEE-half rows (the f16 KV cache): the same bits as attn_wsum
 * on the rows converted to float. */
void attn_wsum_f16_ref(float *o, const float *p, const uint16_t *rows, int n_rows, int n);
void attn_wsum_f16_avx2(float *o, const float *p, const uint16_t *rows, int n_rows, int n);
void attn_wsum_f16_avx512(float *o, const float *p, const uint16_t *rows, int n_rows, int n);
/* attn_wsum over Q8_0 rows (n a multiple of 32; the q8_0 KV cache): the same
 * bits as attn_wsum on the rows dequantized by dequantize_row_q8_0. */
void attn_wsum_q8_0_ref(float *o, const float *p, const uint8_t *rows, int n_rows, int n);
void attn_wsum_q8_0_avx2(float *o, const float *p, const uint8_t *rows, int n_rows, int n);
void attn_wsum_q8_0_avx512(float *o, const float *p, const uint8_t *rows, int n_rows, int n);

/* Set k->attn_dot_rows / k->attn_wsum / k->attn_wsum_f16 / k->attn_wsum_q8_0 to isa's variants. */
void kernels_register_attn(struct kernels *k, enum kernel_isa isa);

#endif
