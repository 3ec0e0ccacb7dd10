/* ops.h: the small float operations of a transformer layer, in fp32.
 * Plain C (the compiler vectorises them); the heavy products are in matmul. */
#ifndef FM_OPS_H
#define FM_OPS_H

#include <stddef.h>

/* y = w * x / sqrt(mean(x^2) + eps); y may alias x; w may be NULL (= ones). */
void ops_rmsnorm(float *y, const float *x, const float *w, int n, float eps);
/* NeoX ("rotate half") RoPE on the first n_rot dims of a head: pairs
 * (i, i + n_rot/2), angle pos * theta^(-2i/n_rot). ops_rope_table fills
 * cs[0..n_rot/2) with cos and cs[n_rot/2..n_rot) with sin for one position,
 * once per token; ops_rope_neox applies it to one head. */
void ops_rope_table(float *cs, int n_rot, int pos, float theta);
/* Interleaved M-RoPE for text (all position streams but e equal to the
 * token's position, e's 0): the pairs of stream e of a table from
 * ops_rope_table become the identity. sections: t, h, w, e pair counts. */
void ops_rope_imrope_text(float *cs, int n_rot, const int sections[4]);
void ops_rope_neox(float *x, int n_rot, const float *cs);
/* In-place softmax of x[0..n). */
void ops_softmax(float *x, int n);
float ops_silu(float x);
/* y[i] = silu(g[i]) * u[i] */
void ops_swiglu(float *y, const float *g, const float *u, int n);
/* y += a * x */
void ops_axpy(float *y, float a, const float *x, int n);
float ops_dot(const float *a, const float *b, int n);

/* The k largest of x[0..n) (ties: lower index first), in decreasing order. */
void ops_topk(const float *x, int n, int k, int *idx);

#endif
