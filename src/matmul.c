/* matmul.c: row-split quantized products over the pool (see matmul.h). */
#include "matmul.h"

#include <string.h>

size_t act_row_bytes(enum ggml_type act_type, int n)
{
	return ggml_row_bytes(act_type, (uint64_t)n);
}

void act_quantize(const struct kernels *k, enum ggml_type act_type, const float *x,
		  size_t x_stride, int n, int n_tok, void *out, size_t out_stride)
{
	for (int t = 0; t < n_tok; t++) {
		const float *xt = x + (size_t)t * x_stride;
		uint8_t *ot = (uint8_t *)out + (size_t)t * out_stride;
		if (act_type == GGML_TYPE_F32 || !k->quantize_act[act_type])
			memcpy(ot, xt, (size_t)n * sizeof(float));
		else
			k->quantize_act[act_type](xt, ot, (size_t)n);
	}
}

void mm_job_init(struct mm_job *j, const struct kernels *k)
{
	j->k = k;
	j->n_seg = 0;
}

int mm_job_add(struct mm_job *j, const struct qmat *w, const void *act, size_t act_stride,
	       int n_tok, float *out, size_t out_stride)
{
	if (j->n_seg >= MM_MAX_SEG)
		return -1;
	j->seg[j->n_seg++] = (struct mm_seg){ w, act, act_stride, n_tok, out, out_stride };
	return 0;
}

/* Rows of one segment r0..r1 times all its tokens, KERNEL_MAX_NY at a time. */
static void seg_rows(const struct kernels *k, const struct mm_seg *s, int r0, int r1)
{
	const struct qmat *w = s->w;
	vec_dot_fn dot = k->fmt[w->type].vec_dot;
	gemv_fn gemv = k->fmt[w->type].gemv;
	float tmp[KERNEL_MAX_NY];
	if (s->n_tok == 1 && gemv) { /* decode: the multi-row kernel */
		gemv((size_t)w->n_cols, w->data + (size_t)r0 * w->row_bytes, w->row_bytes, r1 - r0,
		     s->act, s->out + r0);
		return;
	}
	for (int t0 = 0; t0 < s->n_tok; t0 += KERNEL_MAX_NY) {
		int ny = s->n_tok - t0 < KERNEL_MAX_NY ? s->n_tok - t0 : KERNEL_MAX_NY;
		const uint8_t *a = (const uint8_t *)s->act + (size_t)t0 * s->act_stride;
		for (int r = r0; r < r1; r++) {
			if (s->n_tok == 1) /* decode: the next row's start, as kq_prefetch_ahead */
				for (size_t b = 0; b < w->row_bytes && b < 1536; b += 64)
					__builtin_prefetch(w->data + (size_t)(r + 1) * w->row_bytes + b, 0, 3);
			dot((size_t)w->n_cols, w->data + (size_t)r * w->row_bytes, a, s->act_stride,
			    ny, tmp);
			for (int j = 0; j < ny; j++)
				s->out[(size_t)(t0 + j) * s->out_stride + r] = tmp[j];
		}
	}
}

static void mm_task(void *arg, int task, int thread)
{
	struct mm_job *j = arg;
	(void)thread;
	seg_rows(j->k, &j->seg[j->task_seg[task]], j->task_r0[task], j->task_r1[task]);
}

/* Split the rows into tasks of roughly equal work: about 4 per thread, but
 * never below a chunk that keeps the per-task overhead small. */
void mm_run(struct mm_job *j, struct pool *p)
{
	uint64_t total = 0;
	for (int s = 0; s < j->n_seg; s++)
		total += (uint64_t)j->seg[s].w->n_rows * j->seg[s].w->row_bytes * j->seg[s].n_tok;
	int nth = pool_n_threads(p);
	uint64_t chunk = total / (uint64_t)(nth * 4) + 1;
	if (chunk < 64 * 1024)
		chunk = 64 * 1024;
	int n = 0;
	for (int s = 0; s < j->n_seg; s++) {
		const struct mm_seg *sg = &j->seg[s];
		uint64_t row_work = (uint64_t)sg->w->row_bytes * sg->n_tok;
		int rows_per = (int)(chunk / (row_work ? row_work : 1));
		if (rows_per < 4)
			rows_per = 4;
		int max_tasks = MM_MAX_TASKS - n - (j->n_seg - s - 1);
		int need = (sg->w->n_rows + rows_per - 1) / rows_per;
		if (need > max_tasks && max_tasks > 0)
			rows_per = (sg->w->n_rows + max_tasks - 1) / max_tasks;
		for (int r = 0; r < sg->w->n_rows; r += rows_per) {
			j->task_seg[n] = s;
			j->task_r0[n] = r;
			j->task_r1[n] = r + rows_per < sg->w->n_rows ? r + rows_per : sg->w->n_rows;
			n++;
		}
	}
	pool_run(p, mm_task, j, n);
}
