/* matmul.h: quantized matrix times activations, split over the thread pool.
 *
 * A weight matrix is rows of one ggml type (struct qmat). Activations are
 * converted once to the weight type's activation format (act_quantize) and then
 * multiplied by many rows. A job holds several segments (e.g. q, k and v, or
 * the gate and up matrices of all routed experts) so that one pool_run covers
 * them all: decode runs a handful of jobs per layer instead of dozens. */
#ifndef FM_MATMUL_H
#define FM_MATMUL_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels.h"
#include "pool.h"

struct qmat {
	enum ggml_type type;
	int n_cols;          /* elements per row */
	int n_rows;
	size_t row_bytes;
	const uint8_t *data; /* [n_rows][row_bytes] */
};

/* One product: out[t][r] = W[r] . act[t] for t < n_tok, r < W.n_rows. */
struct mm_seg {
	const struct qmat *w;
	const void *act;      /* n_tok rows in w's activation format */
	size_t act_stride;    /* bytes between token rows of act */
	int n_tok;
	float *out;           /* out[t * out_stride + r] */
	size_t out_stride;    /* floats */
};

#define MM_MAX_SEG 256
#define MM_MAX_TASKS 2048

struct mm_job {
	const struct kernels *k;
	int n_seg;
	struct mm_seg seg[MM_MAX_SEG];
	/* filled by mm_run: task -> (segment, row range) */
	int task_seg[MM_MAX_TASKS];
	int task_r0[MM_MAX_TASKS], task_r1[MM_MAX_TASKS];
};

/* Bytes of one token row of n floats in activation format t. */
size_t act_row_bytes(enum ggml_type act_type, int n);
/* Convert n_tok rows of n floats (x_stride floats apart) into act format t. */
void act_quantize(const struct kernels *k, enum ggml_type act_type, const float *x,
		  size_t x_stride, int n, int n_tok, void *out, size_t out_stride);

void mm_job_init(struct mm_job *j, const struct kernels *k);
/* Add a segment (pointers kept, not copied); false when the job is full. */
int mm_job_add(struct mm_job *j, const struct qmat *w, const void *act, size_t act_stride,
	       int n_tok, float *out, size_t out_stride);
/* Run all segments of the job on the pool. */
void mm_run(struct mm_job *j, struct pool *p);

#endif
