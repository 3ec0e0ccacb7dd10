/* forward.c: the qwen3moe forward pass over a batch of tokens.
 *
 *   h = Emb[token]
 *   per layer: x = rmsnorm(h); q,k,v = Wq x, Wk x, Wv x; per-head q_norm/k_norm;
 *              NeoX RoPE; store k,v; causal GQA attention; h += Wo o
 *              x = rmsnorm(h); softmax(Wr x) -> top-k -> renormalise;
 *              h += sum_e w_e Wdown_e(silu(Wgate_e x) * Wup_e x)
 *   logits = Wout rmsnorm(h)
 *
 * Each step is one pool job over rows (matmul.c) or over (token, KV head)
 * pairs (attention). The MoE groups the batch's (token, expert) pairs by
 * expert, so each expert's weights are read once per batch. */
#include "forward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "experts.h"
#include "ops.h"

/* Activation formats a product may need; F32 rows are the floats themselves. */
enum { ACT_Q8_0, ACT_Q8_K, ACT_N };

struct act_buf {
	void *data[ACT_N];
	size_t cap_bytes[ACT_N];
	const float *src;    /* what the quantized rows hold */
	int n, n_tok;
	bool valid[ACT_N];
};

struct fwd {
	const struct model *m;
	const struct hparams *hp;
	const struct kernels *k;
	struct pool *pool;
	struct kv_cache *kv;
	struct fm_mem *mem;
	int n_batch, n_ctx, q_dim, kv_dim, n_pair;
	size_t scratch_bytes;
	uint8_t *scratch;
	float *h, *xn;          /* [B][n_embd] */
	float *q, *kb, *vb;     /* [B][q_dim], [B][kv_dim], [B][kv_dim] */
	float *attn;            /* [B][q_dim] */
	float *tmp;             /* [B][n_embd] */
	float *router;          /* [B][n_expert] */
	float *rope_cs;         /* [B][n_rot] */
	float *att_scratch;     /* [n_threads][kv_scratch_floats] */
	int *sel;               /* [B][K] expert ids */
	float *selw;            /* [B][K] weights */
	int *cnt, *first;       /* [n_expert] */
	int *pair_tok;          /* [B*K] token of each pair, grouped by expert */
	float *pair_w;          /* [B*K] */
	float *g, *u;           /* [B*K][n_ff] */
	float *down;            /* [B*K][n_embd] */
	float *xg;              /* [B*K][n_embd] gathered f32 rows (f32 act formats) */
	struct qmat *emats;     /* [3][n_expert_used * n_batch] per-expert views */
	struct act_buf act;     /* x rows in activation formats */
	struct act_buf act_pair; /* gathered expert inputs, pair order */
	void *act_ff[ACT_N];    /* SwiGLU outputs (down inputs), pair order */
	struct mm_job job;
	/* expert streaming (NULL: experts are read from the mapping) */
	struct experts *x;
	struct experts_trace *trace;
	bool prefetch;
	uint64_t n_tokens_seen;      /* token numbers of the trace */
	struct experts_ref *refs;    /* [min(B*K, n_expert)] */
	struct expert_src *srcs;     /* [n_expert] */
	float *router_next;          /* [B][n_expert] the next layer's router */
	int32_t *guess;              /* [B*K] */
};

/* Where one expert's three matrices are for this layer's computation. */
struct expert_src {
	int e;
	const uint8_t *part[3];      /* gate, up, down */
};

static int act_slot(enum ggml_type t)
{
	return t == GGML_TYPE_Q8_0 ? ACT_Q8_0 : t == GGML_TYPE_Q8_K ? ACT_Q8_K : -1;
}

static void act_reset(struct act_buf *a, const float *src, int n, int n_tok)
{
	a->src = src;
	a->n = n;
	a->n_tok = n_tok;
	memset(a->valid, 0, sizeof(a->valid));
}

/* Rows of a->src in the activation format of weight type wt; *stride set. */
static const void *act_get(struct fwd *f, struct act_buf *a, enum ggml_type wt, size_t *stride)
{
	enum ggml_type at = f->k->fmt[wt].act_type;
	int s = act_slot(at);
	if (s < 0) {
		*stride = (size_t)a->n * sizeof(float);
		return a->src;
	}
	*stride = act_row_bytes(at, a->n);
	if (!a->valid[s]) {
		act_quantize(f->k, at, a->src, (size_t)a->n, a->n, a->n_tok, a->data[s], *stride);
		a->valid[s] = true;
	}
	return a->data[s];
}

/* One allocation carved into the buffers; a first pass (base == NULL) only
 * measures. */
struct carve {
	uint8_t *base;
	size_t off;
};

static void *carve(struct carve *c, size_t bytes)
{
	size_t at = (c->off + 63) & ~(size_t)63;
	c->off = at + bytes;
	return c->base ? c->base + at : NULL;
}

static size_t act_max_bytes(int n)
{
	size_t a = ggml_row_bytes(GGML_TYPE_Q8_0, (uint64_t)((n + 31) / 32 * 32));
	size_t b = ggml_row_bytes(GGML_TYPE_Q8_K, (uint64_t)((n + 255) / 256 * 256));
	return a > b ? a : b;
}

static void fwd_layout(struct fwd *f, struct carve *c)
{
	const struct hparams *hp = f->hp;
	size_t B = (size_t)f->n_batch, P = (size_t)f->n_pair, F = sizeof(float);
	int nth = pool_n_threads(f->pool);
	int wide = hp->n_embd > f->q_dim ? hp->n_embd : f->q_dim;
	f->h = carve(c, B * hp->n_embd * F);
	f->xn = carve(c, B * wide * F);
	f->q = carve(c, B * f->q_dim * F);
	f->kb = carve(c, B * f->kv_dim * F);
	f->vb = carve(c, B * f->kv_dim * F);
	f->attn = carve(c, B * f->q_dim * F);
	f->tmp = carve(c, B * hp->n_embd * F);
	f->router = carve(c, B * hp->n_expert * F);
	f->rope_cs = carve(c, B * hp->n_rot * F);
	f->att_scratch = carve(c, (size_t)nth * kv_scratch_floats(f->kv) * F);
	f->sel = carve(c, P * sizeof(int));
	f->selw = carve(c, P * F);
	f->cnt = carve(c, (size_t)hp->n_expert * sizeof(int));
	f->first = carve(c, (size_t)hp->n_expert * sizeof(int));
	f->pair_tok = carve(c, P * sizeof(int));
	f->pair_w = carve(c, P * F);
	f->g = carve(c, P * hp->n_ff_exp * F);
	f->u = carve(c, P * hp->n_ff_exp * F);
	f->down = carve(c, P * hp->n_embd * F);
	f->xg = carve(c, P * hp->n_embd * F);
	f->emats = carve(c, 3 * (size_t)hp->n_expert * sizeof(struct qmat));
	f->refs = carve(c, (size_t)hp->n_expert * sizeof(struct experts_ref));
	f->srcs = carve(c, (size_t)hp->n_expert * sizeof(struct expert_src));
	f->router_next = carve(c, B * hp->n_expert * F);
	f->guess = carve(c, P * sizeof(int32_t));
	for (int s = 0; s < ACT_N; s++) {
		f->act.cap_bytes[s] = B * act_max_bytes(wide);
		f->act.data[s] = carve(c, f->act.cap_bytes[s]);
		/* separate: experts computed one after another (streaming) must not
		 * overwrite the gathered inputs of those still to come */
		f->act_pair.cap_bytes[s] = P * act_max_bytes(hp->n_embd);
		f->act_pair.data[s] = carve(c, f->act_pair.cap_bytes[s]);
		f->act_ff[s] = carve(c, P * act_max_bytes(hp->n_ff_exp));
	}
}

struct fwd *fwd_new(const struct model *m, const struct kernels *k, struct pool *pool,
		    struct kv_cache *kv, int n_batch, struct fm_mem *mem, struct fm_error *err)
{
	struct fwd *f = calloc(1, sizeof(*f));
	if (!f) {
		fm_err(err, FM_ENOMEM, NULL, FM_NO_OFFSET, "out of memory");
		return NULL;
	}
	f->m = m;
	f->hp = &m->hp;
	f->k = k;
	f->pool = pool;
	f->kv = kv;
	f->mem = mem;
	f->n_batch = n_batch;
	f->n_ctx = kv_n_ctx(kv);
	/* bounded by model.c's check_ranges: these products fit an int */
	f->q_dim = m->hp.n_head * m->hp.head_dim;
	f->kv_dim = m->hp.n_head_kv * m->hp.head_dim;
	f->n_pair = n_batch * m->hp.n_expert_used;
	struct carve c = { NULL, 0 };
	fwd_layout(f, &c);
	f->scratch_bytes = c.off;
	f->scratch = fm_alloc(mem, f->scratch_bytes);
	if (!f->scratch) {
		fm_err(err, FM_ENOMEM, NULL, FM_NO_OFFSET,
		       "no memory for %.1f MiB of scratch (batch %d, context %d)",
		       f->scratch_bytes / 1048576.0, n_batch, f->n_ctx);
		free(f);
		return NULL;
	}
	c = (struct carve){ f->scratch, 0 };
	fwd_layout(f, &c);
	return f;
}

void fwd_set_experts(struct fwd *f, struct experts *x, struct experts_trace *trace, bool prefetch)
{
	f->x = x;
	f->trace = trace;
	f->prefetch = prefetch;
}

void fwd_free(struct fwd *f)
{
	if (!f)
		return;
	fm_free(f->mem, f->scratch, f->scratch_bytes);
	free(f);
}

static void embed(struct fwd *f, const int32_t *tokens, int n)
{
	const struct qmat *e = &f->m->w.tok_embd;
	for (int t = 0; t < n; t++)
		f->k->fmt[e->type].dequantize(e->data + (size_t)tokens[t] * e->row_bytes,
					      f->h + (size_t)t * f->hp->n_embd, (size_t)f->hp->n_embd);
}

static void rmsnorm_rows(float *y, const float *x, const float *w, int n, int n_tok, float eps)
{
	for (int t = 0; t < n_tok; t++)
		ops_rmsnorm(y + (size_t)t * n, x + (size_t)t * n, w, n, eps);
}

/* y[t] = W x[t] for the rows held in act (x already in f->act). */
static void add_product(struct fwd *f, const struct qmat *w, float *out, size_t out_stride)
{
	size_t stride;
	const void *a = act_get(f, &f->act, w->type, &stride);
	mm_job_add(&f->job, w, a, stride, f->act.n_tok, out, out_stride);
}

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

struct attn_task {
	struct fwd *f;
	int layer, pos0;
};

/* Task = (token, KV head): the n_rep query heads that share that KV head. */
static void attn_run(void *arg, int task, int thread)
{
	struct attn_task *at = arg;
	struct fwd *f = at->f;
	const struct hparams *hp = f->hp;
	int t = task / hp->n_head_kv, h = task % hp->n_head_kv;
	int n_rep = hp->n_head / hp->n_head_kv;
	size_t off = (size_t)t * f->q_dim + (size_t)h * n_rep * hp->head_dim;
	kv_attend(f->kv, f->k, at->layer, h, f->q + off, n_rep, at->pos0 + t + 1,
		  1.0f / sqrtf((float)hp->head_dim), f->attn + off,
		  f->att_scratch + (size_t)thread * kv_scratch_floats(f->kv));
}

static void attention_block(struct fwd *f, int il, int n, int pos0)
{
	const struct hparams *hp = f->hp;
	const struct layer_weights *l = &f->m->w.layers[il];
	rmsnorm_rows(f->xn, f->h, l->attn_norm, hp->n_embd, n, hp->rms_eps);
	act_reset(&f->act, f->xn, hp->n_embd, n);
	mm_job_init(&f->job, f->k);
	add_product(f, &l->wq, f->q, (size_t)f->q_dim);
	add_product(f, &l->wk, f->kb, (size_t)f->kv_dim);
	add_product(f, &l->wv, f->vb, (size_t)f->kv_dim);
	mm_run(&f->job, f->pool);
	qk_prepare(f, l, n);
	for (int t = 0; t < n; t++)
		kv_store(f->kv, il, pos0 + t, f->kb + (size_t)t * f->kv_dim,
			 f->vb + (size_t)t * f->kv_dim);
	struct attn_task at = { f, il, pos0 };
	pool_run(f->pool, attn_run, &at, n * hp->n_head_kv);
	act_reset(&f->act, f->attn, f->q_dim, n);
	mm_job_init(&f->job, f->k);
	add_product(f, &l->wo, f->tmp, (size_t)hp->n_embd);
	mm_run(&f->job, f->pool);
	for (size_t i = 0; i < (size_t)n * hp->n_embd; i++)
		f->h[i] += f->tmp[i];
}

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
	add_product(f, &f->m->w.layers[il].router, f->router_next, (size_t)hp->n_expert);
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
	if (f->prefetch && il + 1 < f->hp->n_layer)
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

static int moe_block(struct fwd *f, int il, int n, struct fm_error *err)
{
	const struct hparams *hp = f->hp;
	const struct layer_weights *l = &f->m->w.layers[il];
	rmsnorm_rows(f->xn, f->h, l->ffn_norm, hp->n_embd, n, hp->rms_eps);
	act_reset(&f->act, f->xn, hp->n_embd, n);
	mm_job_init(&f->job, f->k);
	add_product(f, &l->router, f->router, (size_t)hp->n_expert);
	mm_run(&f->job, f->pool);
	route(f, n);
	for (int t = 0; f->trace && t < n; t++)
		experts_trace_write(f->trace, f->n_tokens_seen + (uint64_t)t, il,
				    (const int32_t *)f->sel + (size_t)t * hp->n_expert_used,
				    hp->n_expert_used);
	group_pairs(f, n);
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
	return 0;
}

static void output_logits(struct fwd *f, int n, float *logits, bool all)
{
	const struct hparams *hp = f->hp;
	int first = all ? 0 : n - 1, cnt = all ? n : 1;
	rmsnorm_rows(f->xn, f->h + (size_t)first * hp->n_embd, f->m->w.output_norm, hp->n_embd,
		     cnt, hp->rms_eps);
	act_reset(&f->act, f->xn, hp->n_embd, cnt);
	mm_job_init(&f->job, f->k);
	add_product(f, &f->m->w.output, logits, (size_t)hp->n_vocab);
	mm_run(&f->job, f->pool);
}

int fwd_batch(struct fwd *f, const int32_t *tokens, int n, int pos0, float *logits,
	      bool all_logits, struct fm_error *err)
{
	const struct hparams *hp = f->hp;
	if (n < 1 || n > f->n_batch || pos0 < 0 || pos0 + n > f->n_ctx)
		return fm_err(err, FM_ERANGE, NULL, FM_NO_OFFSET,
			      "batch of %d tokens at position %d does not fit (batch %d, context %d)",
			      n, pos0, f->n_batch, f->n_ctx);
	for (int t = 0; t < n; t++)
		if (tokens[t] < 0 || tokens[t] >= hp->n_vocab)
			return fm_err(err, FM_EINVAL, NULL, FM_NO_OFFSET,
				      "token id %d at %d is outside the vocabulary [0, %d)",
				      tokens[t], t, hp->n_vocab);
	for (int t = 0; t < n; t++)
		ops_rope_table(f->rope_cs + (size_t)t * hp->n_rot, hp->n_rot, pos0 + t, hp->rope_theta);
	embed(f, tokens, n);
	for (int il = 0; il < hp->n_layer; il++) {
		attention_block(f, il, n, pos0);
		int rc = moe_block(f, il, n, err);
		if (rc)
			return rc;
	}
	f->n_tokens_seen += (uint64_t)n;
	if (logits)
		output_logits(f, n, logits, all_logits);
	return 0;
}
