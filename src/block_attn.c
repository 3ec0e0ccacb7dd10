/* block_attn.c: causal GQA attention over the sequence's KV rows
 * (architectures.md §5, §6.2):
 *
 *   x = rmsnorm(h); q, k, v = Wq x, Wk x, Wv x; per head q_norm / k_norm;
 *   NeoX RoPE over the first n_rot dims; store k, v; o = attn(q, K, V);
 *   gated (Qwen3-Next / 3.5): Wq x = [q_a | gate_a] per head a, o *= sigmoid(gate)
 *   h += Wo o
 *
 * One pool job for the three projections, one over (token, KV head) pairs
 * for the attention, one for the output projection. Each token attends over
 * its own sequence (its segment of the batch: KV rows, position). */
#include <math.h>
#include <string.h>

#include "blocks.h"
#include "fwd_internal.h"
#include "ops.h"

/* q/k norm and RoPE of every head of every token of the batch. */
static void qk_prepare(struct fwd *f, const struct layer_weights *l, int n)
{
	const struct hparams *hp = f->hp;
	int hd = hp->head_dim;
	for (int t = 0; t < n; t++) {
		const float *cs = f->rope_cs + (size_t)t * hp->n_rot;
		for (int a = 0; a < hp->n_head; a++) {
			float *qa = f->q + (size_t)t * f->q_dim + (size_t)a * hd;
			ops_rmsnorm(qa, qa, l->q_norm, hd, hp->rms_eps);
			ops_rope_neox(qa, hp->n_rot, cs);
		}
		for (int b = 0; b < hp->n_head_kv; b++) {
			float *kb = f->kb + (size_t)t * f->kv_dim + (size_t)b * hd;
			ops_rmsnorm(kb, kb, l->k_norm, hd, hp->rms_eps);
			ops_rope_neox(kb, hp->n_rot, cs);
		}
	}
}

/* Gated attention: the projection wrote [q_0 | gate_0 | q_1 | gate_1 | ...]
 * per token into f->q (rows of 2 q_dim); split it into q (rows of q_dim, in
 * place, front to back) and gate. */
static void split_gate(struct fwd *f, int n)
{
	int hd = f->hp->head_dim, nh = f->hp->n_head;
	for (int t = 0; t < n; t++) {
		const float *qg = f->q + (size_t)t * 2 * f->q_dim;
		float *g = f->gate + (size_t)t * f->q_dim;
		for (int a = 0; a < nh; a++)
			memcpy(g + (size_t)a * hd, qg + (size_t)(2 * a + 1) * hd, (size_t)hd * sizeof(float));
	}
	for (int t = 0; t < n; t++) {
		const float *qg = f->q + (size_t)t * 2 * f->q_dim;
		float *q = f->q + (size_t)t * f->q_dim;
		for (int a = 0; a < nh; a++) /* moves only towards the front */
			memmove(q + (size_t)a * hd, qg + (size_t)2 * a * hd, (size_t)hd * sizeof(float));
	}
}

struct attn_task {
	struct fwd *f;
	int slot;
};

/* Task = (token, KV head): the n_rep query heads that share that KV head. */
static void attn_run(void *arg, int task, int thread)
{
	struct attn_task *at = arg;
	struct fwd *f = at->f;
	const struct hparams *hp = f->hp;
	int t = task / hp->n_head_kv, h = task % hp->n_head_kv;
	int n_rep = hp->n_head / hp->n_head_kv;
	const struct fwd_seg *sg = &f->segs[f->tok_seg[t]];
	size_t off = (size_t)t * f->q_dim + (size_t)h * n_rep * hp->head_dim;
	kv_attend(sg->st->kv, f->k, at->slot, h, f->q + off, n_rep, sg->pos0 + t - sg->t0 + 1,
		  1.0f / sqrtf((float)hp->head_dim), f->attn + off,
		  f->att_scratch + (size_t)thread * f->att_floats);
}

void block_attention(struct fwd *f, int il, int n)
{
	const struct hparams *hp = f->hp;
	const struct layer_weights *l = &f->m->w.layers[il];
	bool gated = hp->arch->flags & ARCH_GATED_ATTN;
	double t0 = fm_now_s();
	int slot = hp->state_slot[il];
	rmsnorm_rows(f->xn, f->h, l->attn_norm, hp->n_embd, n, hp->rms_eps);
	act_reset(&f->act, f->xn, hp->n_embd, n);
	mm_job_init(&f->job, f->k);
	fwd_add_product(f, &l->wq, f->q, (size_t)f->q_dim * (gated ? 2 : 1));
	fwd_add_product(f, &l->wk, f->kb, (size_t)f->kv_dim);
	fwd_add_product(f, &l->wv, f->vb, (size_t)f->kv_dim);
	mm_run(&f->job, f->pool);
	if (gated)
		split_gate(f, n);
	qk_prepare(f, l, n);
	for (int s = 0; s < f->n_segs; s++) {
		const struct fwd_seg *sg = &f->segs[s];
		for (int t = 0; t < sg->n; t++)
			kv_store(sg->st->kv, slot, sg->pos0 + t, f->kb + (size_t)(sg->t0 + t) * f->kv_dim,
				 f->vb + (size_t)(sg->t0 + t) * f->kv_dim);
	}
	struct attn_task at = { f, slot };
	pool_run(f->pool, attn_run, &at, n * hp->n_head_kv);
	if (gated)
		for (size_t i = 0; i < (size_t)n * f->q_dim; i++)
			f->attn[i] *= 1.0f / (1.0f + expf(-f->gate[i]));
	act_reset(&f->act, f->attn, f->q_dim, n);
	mm_job_init(&f->job, f->k);
	fwd_add_product(f, &l->wo, f->tmp, (size_t)hp->n_embd);
	mm_run(&f->job, f->pool);
	for (size_t i = 0; i < (size_t)n * hp->n_embd; i++)
		f->h[i] += f->tmp[i];
	f->times.attn_s += fm_now_s() - t0;
}
