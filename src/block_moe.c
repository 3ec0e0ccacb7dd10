/* block_moe.c: the mixture of experts (architectures.md §5, §6.4):
 *
 *   x = rmsnorm(h); p = softmax(Wr x); S = topk(p); w = p_S (/ sum p_S)
 *   h += sum_{e in S} w_e Wdown_e(silu(Wgate_e x) * Wup_e x)
 *   with a shared expert: h += sigmoid(w_sg . x) Wsdown(silu(Wsgate x) * Wsup x)
 *
 * The batch's (token, expert) pairs are grouped by expert, so each expert's
 * weights are read once per batch. Experts come from the mapping (resident)
 * or through the expert store (streamed): the cached ones are computed while
 * the misses are read. */
#include <math.h>
#include <string.h>

#include "blocks.h"
#include "experts.h"
#include "fwd_internal.h"
#include "ops.h"

/* softmax over all experts -> top-k -> (renormalised) weights, per token. */
static void route(struct fwd *f, int n)
{
	const struct hparams *hp = f->hp;
	int K = hp->n_expert_used;
	for (int t = 0; t < n; t++) {
		float *p = f->router + (size_t)t * hp->n_expert;
		int *sel = f->sel + (size_t)t * K;
		float *w = f->selw + (size_t)t * K;
		ops_softmax(p, hp->n_expert);
		ops_topk(p, hp->n_expert, K, sel);
		float sum = 0.0f;
		for (int j = 0; j < K; j++)
			sum += p[sel[j]];
		for (int j = 0; j < K; j++)
			w[j] = hp->norm_topk ? p[sel[j]] / sum : p[sel[j]];
	}
}

/* Group the batch's (token, expert) pairs by expert: pairs of expert e are
 * [first[e], first[e] + cnt[e]). */
static void group_pairs(struct fwd *f, int n)
{
	const struct hparams *hp = f->hp;
	int K = hp->n_expert_used, at = 0;
	memset(f->cnt, 0, (size_t)hp->n_expert * sizeof(int));
	for (int i = 0; i < n * K; i++)
		f->cnt[f->sel[i]]++;
	for (int e = 0; e < hp->n_expert; e++) {
		f->first[e] = at;
		at += f->cnt[e];
		f->cnt[e] = 0;
	}
	for (int i = 0; i < n * K; i++) {
		int e = f->sel[i], p = f->first[e] + f->cnt[e]++;
		f->pair_tok[p] = i / K;
		f->pair_w[p] = f->selw[i];
	}
}

/* The matrix view of part `which` of an expert whose bytes are at data. */
static const struct qmat *expert_mat(struct fwd *f, const struct qexps *x, int which, int e,
				     const uint8_t *data)
{
	struct qmat *q = &f->emats[(size_t)which * f->hp->n_expert + e];
	*q = (struct qmat){ x->type, x->n_cols, x->n_rows, x->row_bytes, data };
	return q;
}

/* Copy each pair's token row of the activations into pair order. */
static const void *gather_rows(struct fwd *f, enum ggml_type wt, int n_pair, size_t *stride)
{
	const void *src = act_get(f, &f->act, wt, stride);
	int s = act_slot(f->k->fmt[wt].act_type);
	uint8_t *dst = s < 0 ? (uint8_t *)f->xg : f->act_pair.data[s];
	for (int p = 0; p < n_pair; p++)
		memcpy(dst + (size_t)p * *stride, (const uint8_t *)src + (size_t)f->pair_tok[p] * *stride,
		       *stride);
	return dst;
}

struct moe_inputs {
	const void *xa, *xb;         /* gathered inputs of gate and up, pair order */
	size_t stride_a, stride_b;
};

/* Gate/up, SwiGLU and down for the experts srcs[0..n): their pairs' rows of
 * g, u and down are written; nothing else is touched, so experts may be run
 * in any grouping and order with the same result. */
static void run_experts(struct fwd *f, const struct layer_weights *l, const struct moe_inputs *in,
			const struct expert_src *srcs, int n)
{
	const struct hparams *hp = f->hp;
	int ff = hp->n_ff_exp;
	for (int i0 = 0; i0 < n; i0 += MM_MAX_SEG / 2) {
		int i1 = n - i0 < MM_MAX_SEG / 2 ? n : i0 + MM_MAX_SEG / 2;
		mm_job_init(&f->job, f->k);
		for (int i = i0; i < i1; i++) {
			int e = srcs[i].e, c = f->cnt[e], p0 = f->first[e];
			mm_job_add(&f->job, expert_mat(f, &l->gate, 0, e, srcs[i].part[0]),
				   (const uint8_t *)in->xa + (size_t)p0 * in->stride_a, in->stride_a, c,
				   f->g + (size_t)p0 * ff, (size_t)ff);
			mm_job_add(&f->job, expert_mat(f, &l->up, 1, e, srcs[i].part[1]),
				   (const uint8_t *)in->xb + (size_t)p0 * in->stride_b, in->stride_b, c,
				   f->u + (size_t)p0 * ff, (size_t)ff);
		}
		mm_run(&f->job, f->pool);
	}
	enum ggml_type at = f->k->fmt[l->down.type].act_type;
	int s = act_slot(at);
	size_t stride = s < 0 ? (size_t)ff * sizeof(float) : act_row_bytes(at, ff);
	const uint8_t *ha = s < 0 ? (const uint8_t *)f->g : (const uint8_t *)f->act_ff[s];
	for (int i = 0; i < n; i++) {
		int e = srcs[i].e, c = f->cnt[e], p0 = f->first[e];
		float *g = f->g + (size_t)p0 * ff;
		ops_swiglu(g, g, f->u + (size_t)p0 * ff, c * ff);
		if (s >= 0)
			act_quantize(f->k, at, g, (size_t)ff, ff, c, (uint8_t *)f->act_ff[s] + (size_t)p0 * stride,
				     stride);
	}
	for (int i0 = 0; i0 < n; i0 += MM_MAX_SEG) {
		int i1 = n - i0 < MM_MAX_SEG ? n : i0 + MM_MAX_SEG;
		mm_job_init(&f->job, f->k);
		for (int i = i0; i < i1; i++) {
			int e = srcs[i].e, c = f->cnt[e], p0 = f->first[e];
			mm_job_add(&f->job, expert_mat(f, &l->down, 2, e, srcs[i].part[2]),
				   ha + (size_t)p0 * stride, stride, c, f->down + (size_t)p0 * hp->n_embd,
				   (size_t)hp->n_embd);
		}
		mm_run(&f->job, f->pool);
	}
}

static void gather_inputs(struct fwd *f, const struct layer_weights *l, int n_pair,
			  struct moe_inputs *in)
{
	in->xa = gather_rows(f, l->gate.type, n_pair, &in->stride_a);
	in->xb = in->xa;
	in->stride_b = in->stride_a;
	if (f->k->fmt[l->up.type].act_type != f->k->fmt[l->gate.type].act_type)
		in->xb = gather_rows(f, l->up.type, n_pair, &in->stride_b);
}

/* Every used expert straight from the mapping (all resident). */
static int moe_resident(struct fwd *f, const struct layer_weights *l, const struct moe_inputs *in)
{
	int n = 0;
	for (int e = 0; e < f->hp->n_expert; e++) {
		if (!f->cnt[e])
			continue;
		f->srcs[n] = (struct expert_src){ e, { l->gate.data + (size_t)e * l->gate.expert_bytes,
						       l->up.data + (size_t)e * l->up.expert_bytes,
						       l->down.data + (size_t)e * l->down.expert_bytes } };
		n++;
	}
	run_experts(f, l, in, f->srcs, n);
	return 0;
}

/* Guess layer il's experts from the current hidden state (its router applied
 * to this layer's normalised input) and start reading them. */
static void prefetch_next(struct fwd *f, int il, int n)
{
	const struct hparams *hp = f->hp;
	int K = hp->n_expert_used;
	mm_job_init(&f->job, f->k);
	fwd_add_product(f, &f->m->w.layers[il].router, f->router_next, (size_t)hp->n_expert);
	mm_run(&f->job, f->pool);
	for (int t = 0; t < n; t++)
		ops_topk(f->router_next + (size_t)t * hp->n_expert, hp->n_expert, K,
			 (int *)f->guess + (size_t)t * K);
	experts_prefetch(f->x, il, f->guess, n * K);
}

static struct expert_src ref_src(const struct experts_ref *r)
{
	return (struct expert_src){ r->expert, { r->part[0], r->part[1], r->part[2] } };
}

/* Experts through the cache: the ones already there first, while the misses
 * are read; then each miss as its read completes. */
static int moe_streamed(struct fwd *f, int il, const struct layer_weights *l,
			const struct moe_inputs *in, int n, struct fm_error *err)
{
	int nu = experts_request(f->x, il, (const int32_t *)f->sel, n * f->hp->n_expert_used,
				 f->refs, err);
	if (nu < 0)
		return nu;
	if (il + 1 < f->hp->n_layer && experts_prefetching(f->x))
		prefetch_next(f, il + 1, n);
	int n_ready = 0;
	for (int i = 0; i < nu; i++)
		if (f->refs[i].ready)
			f->srcs[n_ready++] = ref_src(&f->refs[i]);
	run_experts(f, l, in, f->srcs, n_ready);
	for (int i = 0; i < n_ready; i++)
		experts_done(f->x, f->srcs[i].e);
	struct experts_ref r;
	int rc;
	while ((rc = experts_wait(f->x, &r, err)) > 0) {
		struct expert_src src = ref_src(&r);
		run_experts(f, l, in, &src, 1);
		experts_done(f->x, r.expert);
	}
	experts_release(f->x);
	return rc;
}

/* The shared expert's down projection and its sigmoid gate (its gate and
 * up products ran with the router): h += sigmoid(w_sg . x) Wdown(silu(g) * u). */
static void shared_expert(struct fwd *f, const struct layer_weights *l, int n)
{
	const struct hparams *hp = f->hp;
	int ffs = hp->n_ff_shexp;
	for (int t = 0; t < n; t++)
		f->sh_gate[t] = 1.0f / (1.0f + expf(-ops_dot(l->sh_gate_inp,
							       f->xn + (size_t)t * hp->n_embd,
							       hp->n_embd)));
	ops_swiglu(f->sh_g, f->sh_g, f->sh_u, n * ffs);
	act_reset(&f->act, f->sh_g, ffs, n);
	mm_job_init(&f->job, f->k);
	fwd_add_product(f, &l->sh_down, f->tmp, (size_t)hp->n_embd);
	mm_run(&f->job, f->pool);
	for (int t = 0; t < n; t++)
		ops_axpy(f->h + (size_t)t * hp->n_embd, f->sh_gate[t], f->tmp + (size_t)t * hp->n_embd,
			 hp->n_embd);
}

int block_moe(struct fwd *f, int il, int n, struct fm_error *err)
{
	const struct hparams *hp = f->hp;
	const struct layer_weights *l = &f->m->w.layers[il];
	bool shared = hp->arch->flags & ARCH_SHARED_EXPERT;
	double t0 = fm_now_s();
	rmsnorm_rows(f->xn, f->h, l->ffn_norm, hp->n_embd, n, hp->rms_eps);
	act_reset(&f->act, f->xn, hp->n_embd, n);
	mm_job_init(&f->job, f->k);
	fwd_add_product(f, &l->router, f->router, (size_t)hp->n_expert);
	if (shared) {
		fwd_add_product(f, &l->sh_gate, f->sh_g, (size_t)hp->n_ff_shexp);
		fwd_add_product(f, &l->sh_up, f->sh_u, (size_t)hp->n_ff_shexp);
	}
	mm_run(&f->job, f->pool);
	route(f, n);
	for (int t = 0; f->x && t < n; t++) { /* the cache's view of the routing */
		int32_t *sel = (int32_t *)f->sel + (size_t)t * hp->n_expert_used;
		const float *p = f->router + (size_t)t * hp->n_expert;
		experts_cache_route(f->x, il, p, sel, f->selw + (size_t)t * hp->n_expert_used,
				    hp->n_expert_used, hp->norm_topk);
		experts_observe(f->x, il, p, sel, hp->n_expert_used);
	}
	for (int t = 0; f->trace && t < n; t++) {
		experts_trace_write_probs(f->trace, f->n_tokens_seen + (uint64_t)t, il,
					  f->router + (size_t)t * hp->n_expert, hp->n_expert);
		experts_trace_write(f->trace, f->n_tokens_seen + (uint64_t)t, il,
				    (const int32_t *)f->sel + (size_t)t * hp->n_expert_used,
				    hp->n_expert_used);
	}
	group_pairs(f, n);
	double t1 = fm_now_s();
	f->times.route_s += t1 - t0;
	int n_pair = n * hp->n_expert_used;
	struct moe_inputs in;
	gather_inputs(f, l, n_pair, &in);
	int rc = f->x ? moe_streamed(f, il, l, &in, n, err) : moe_resident(f, l, &in);
	if (rc)
		return rc;
	/* combine in pair order, whatever order the experts were computed in */
	for (int p = 0; p < n_pair; p++)
		ops_axpy(f->h + (size_t)f->pair_tok[p] * hp->n_embd, f->pair_w[p],
			 f->down + (size_t)p * hp->n_embd, hp->n_embd);
	double t2 = fm_now_s();
	f->times.experts_s += t2 - t1;
	if (shared)
		shared_expert(f, l, n);
	f->times.shared_s += fm_now_s() - t2;
	return 0;
}
