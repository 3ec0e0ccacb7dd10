/* forward.c: tokens through the layers over a batch (a prompt's tokens,
 * matrix-matrix; or one generated token): embed, then each layer's function
 * from the architecture table (src/arch/), then the head.
 *
 *   h = Emb[token]; per layer: arch->layer(h); logits = Wout rmsnorm(h)
 *
 * Owns the batch's scratch (one counted allocation, carved) and the helpers
 * the blocks share; the blocks are block_attn.c, block_gdn.c, block_moe.c. */
#include "forward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blocks.h"
#include "experts.h"
#include "fwd_internal.h"
#include "ops.h"

int act_slot(enum ggml_type t)
{
	return t == GGML_TYPE_Q8_0 ? ACT_Q8_0 : t == GGML_TYPE_Q8_K ? ACT_Q8_K : -1;
}

void act_reset(struct act_buf *a, const float *src, int n, int n_tok)
{
	a->src = src;
	a->n = n;
	a->n_tok = n_tok;
	memset(a->valid, 0, sizeof(a->valid));
}

const void *act_get(struct fwd *f, struct act_buf *a, enum ggml_type wt, size_t *stride)
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

static int imax(int a, int b)
{
	return a > b ? a : b;
}

static void fwd_layout(struct fwd *f, struct carve *c)
{
	const struct hparams *hp = f->hp;
	size_t B = (size_t)f->n_batch, P = (size_t)f->n_pair, F = sizeof(float);
	int nth = pool_n_threads(f->pool);
	int wide = f->wide;
	bool gated = hp->arch->flags & ARCH_GATED_ATTN;
	f->h = carve(c, B * hp->n_embd * F);
	f->xn = carve(c, B * wide * F);
	f->q = carve(c, B * f->q_dim * (gated ? 2 : 1) * F);
	f->gate = gated ? carve(c, B * f->q_dim * F) : NULL;
	f->kb = carve(c, B * f->kv_dim * F);
	f->vb = carve(c, B * f->kv_dim * F);
	f->attn = carve(c, B * f->q_dim * F);
	f->tmp = carve(c, B * hp->n_embd * F);
	f->router = carve(c, B * hp->n_expert * F);
	f->rope_cs = carve(c, B * hp->n_rot * F);
	f->att_scratch = f->att_floats ? carve(c, (size_t)nth * f->att_floats * F) : NULL;
	f->segs = carve(c, B * sizeof(struct fwd_seg));
	f->tok_seg = carve(c, B * sizeof(int));
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
	if (hp->arch->flags & ARCH_SHARED_EXPERT) {
		f->sh_g = carve(c, B * hp->n_ff_shexp * F);
		f->sh_u = carve(c, B * hp->n_ff_shexp * F);
		f->sh_gate = carve(c, B * F);
	}
	if (hp->n_layer_kind[LAYER_GDN]) {
		size_t V = (size_t)hp->ssm_nv * hp->ssm_dv, nv = (size_t)hp->ssm_nv;
		f->gx = carve(c, B * f->gdn_ch * F);
		f->gy = carve(c, B * f->gdn_ch * F);
		f->gz = carve(c, B * V * F);
		f->gba = carve(c, B * 2 * nv * F);
		f->gg = carve(c, B * nv * F);
		f->gbeta = carve(c, B * nv * F);
		f->go = carve(c, B * V * F);
		f->gdn_scratch = carve(c, (size_t)nth * f->gdn_scratch_floats * F);
	}
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

/* The DeltaNet's shape for gdn.c, and the widest row a product reads. */
static void fwd_shapes(struct fwd *f)
{
	const struct hparams *hp = f->hp;
	f->gdn = (struct gdn_shape){ hp->ssm_nk, hp->ssm_nv, hp->ssm_dk, hp->ssm_dv,
				     hp->ssm_conv_k, (hp->arch->flags & ARCH_V_TILED) != 0 };
	if (hp->n_layer_kind[LAYER_GDN]) {
		f->gdn_ch = gdn_conv_channels(&f->gdn);
		f->gdn_scratch_floats = gdn_scratch_floats(&f->gdn, FWD_GDN_CHUNK);
	}
	f->wide = imax(imax(hp->n_embd, f->q_dim), imax(hp->ssm_nv * hp->ssm_dv, hp->n_ff_shexp));
}

struct fwd *fwd_new(const struct model *m, const struct kernels *k, struct pool *pool,
		    int n_batch, int n_ctx, size_t att_floats, struct fm_mem *mem,
		    struct fm_error *err)
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
	f->mem = mem;
	f->n_batch = n_batch;
	f->n_ctx = n_ctx;
	/* bounded by model.c's check_ranges: these products fit an int */
	f->q_dim = m->hp.n_head * m->hp.head_dim;
	f->kv_dim = m->hp.n_head_kv * m->hp.head_dim;
	f->n_pair = n_batch * m->hp.n_expert_used;
	f->att_floats = att_floats;
	fwd_shapes(f);
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

void fwd_take_times(struct fwd *f, struct fwd_times *out)
{
	*out = f->times;
	memset(&f->times, 0, sizeof(f->times));
}

uint64_t fwd_tokens_seen(const struct fwd *f)
{
	return f ? f->n_tokens_seen : 0;
}

void fwd_set_tokens_seen(struct fwd *f, uint64_t n)
{
	f->n_tokens_seen = n;
}

const struct hparams *fwd_hparams(const struct fwd *f)
{
	return f->hp;
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
	fm_free(f->mem, f->head_stage, f->head_stage_bytes);
	free(f);
}

/* The rows [t0, t0 + n) of h: the embeddings of tokens. */
static int embed(struct fwd *f, const int32_t *tokens, int n, int t0, struct fm_error *err)
{
	const struct qmat *e = &f->m->w.tok_embd;
	for (int t = 0; t < n; t++) {
		const uint8_t *row;
		int rc = model_embd_row((struct model *)f->m, tokens[t], &row, err);
		if (rc)
			return rc;
		f->k->fmt[e->type].dequantize(row, f->h + (size_t)(t0 + t) * f->hp->n_embd,
					      (size_t)f->hp->n_embd);
	}
	return 0;
}

void rmsnorm_rows(float *y, const float *x, const float *w, int n, int n_tok, float eps)
{
	for (int t = 0; t < n_tok; t++)
		ops_rmsnorm(y + (size_t)t * n, x + (size_t)t * n, w, n, eps);
}

void fwd_add_product(struct fwd *f, const struct qmat *w, float *out, size_t out_stride)
{
	size_t stride;
	const void *a = act_get(f, &f->act, w->type, &stride);
	mm_job_add(&f->job, w, a, stride, f->act.n_tok, out, out_stride);
}

static void output_logits(struct fwd *f, int n, float *logits, bool all)
{
	const struct hparams *hp = f->hp;
	int first = all ? 0 : n - 1, cnt = all ? n : 1;
	rmsnorm_rows(f->xn, f->h + (size_t)first * hp->n_embd, f->m->w.output_norm, hp->n_embd,
		     cnt, hp->rms_eps);
	act_reset(&f->act, f->xn, hp->n_embd, cnt);
	mm_job_init(&f->job, f->k);
	fwd_add_product(f, &f->m->w.output, logits, (size_t)hp->n_vocab);
	mm_run(&f->job, f->pool);
}

static int check_tokens(const struct hparams *hp, const int32_t *tokens, int n,
			struct fm_error *err)
{
	for (int t = 0; t < n; t++)
		if (tokens[t] < 0 || tokens[t] >= hp->n_vocab)
			return fm_err(err, FM_EINVAL, NULL, FM_NO_OFFSET,
				      "token id %d at %d is outside the vocabulary [0, %d)",
				      tokens[t], t, hp->n_vocab);
	return 0;
}

/* The segments are set and the embeddings in h: every token's segment and
 * rotary table, then the layers. */
static int run_layers(struct fwd *f, int n, struct fm_error *err)
{
	const struct hparams *hp = f->hp;
	for (int s = 0; s < f->n_segs; s++) {
		const struct fwd_seg *sg = &f->segs[s];
		for (int t = sg->t0; t < sg->t0 + sg->n; t++) {
			float *cs = f->rope_cs + (size_t)t * hp->n_rot;
			f->tok_seg[t] = s;
			ops_rope_table(cs, hp->n_rot, sg->pos0 + t - sg->t0, hp->rope_theta);
			/* sections absent (llama.cpp requires them): plain NeoX, as HF
			 * computes text positions */
			if ((hp->arch->flags & ARCH_ROPE_SECTIONS) &&
			    hp->rope_sections[0] + hp->rope_sections[1] + hp->rope_sections[2])
				ops_rope_imrope_text(cs, hp->n_rot, hp->rope_sections);
		}
	}
	for (int il = 0; il < hp->n_layer; il++) {
		int rc = hp->arch->layer(f, il, n, err);
		if (rc)
			return rc;
	}
	f->n_tokens_seen += (uint64_t)n;
	return 0;
}

int fwd_batch(struct fwd *f, struct seq_state *st, const int32_t *tokens, int n, int pos0,
	      float *logits, bool all_logits, struct fm_error *err)
{
	if (n < 1 || n > f->n_batch || pos0 < 0 || pos0 + n > st->n_ctx || st->n_ctx > f->n_ctx)
		return fm_err(err, FM_ERANGE, NULL, FM_NO_OFFSET,
			      "batch of %d tokens at position %d does not fit (batch %d, context %d)",
			      n, pos0, f->n_batch, st->n_ctx);
	int rc = check_tokens(f->hp, tokens, n, err);
	if (rc)
		return rc;
	f->segs[0] = (struct fwd_seg){ st, 0, n, pos0 };
	f->n_segs = 1;
	rc = embed(f, tokens, n, 0, err);
	if (!rc)
		rc = run_layers(f, n, err);
	if (rc)
		return rc;
	double t0 = fm_now_s();
	if (logits)
		output_logits(f, n, logits, all_logits);
	f->times.head_s += fm_now_s() - t0;
	return 0;
}

/* The logits of the last token of each item that asks for them, in one
 * product (the output matrix read once): straight into the items' buffers
 * when they are n_vocab floats apart in item order (one array), else staged
 * in the expert scratch g (free after the MoE) when it holds them, or in a
 * counted buffer kept for later steps; one row at a time only when memory
 * refuses that. */
static void step_logits(struct fwd *f, const struct fwd_item *items, int n_items)
{
	const struct hparams *hp = f->hp;
	size_t nv = (size_t)hp->n_vocab, ne = (size_t)hp->n_embd;
	int rows = 0;
	float *base = NULL;
	bool strided = true;
	for (int i = 0; i < n_items; i++)
		if (items[i].logits) {
			const struct fwd_seg *sg = &f->segs[i];
			ops_rmsnorm(f->xn + (size_t)rows * ne, f->h + (size_t)(sg->t0 + sg->n - 1) * ne,
				    f->m->w.output_norm, hp->n_embd, hp->rms_eps);
			base = rows ? base : items[i].logits;
			strided = strided && items[i].logits == base + (size_t)rows * nv;
			f->tok_seg[rows++] = i; /* reused: row -> item */
		}
	if (!rows)
		return;
	float *stage = NULL;
	size_t need = (size_t)rows * nv * sizeof(float);
	if (!strided && (size_t)f->n_pair * hp->n_ff_exp * sizeof(float) >= need) {
		stage = f->g;
	} else if (!strided) {
		if (need > f->head_stage_bytes) { /* grown once to the most rows seen */
			fm_free(f->mem, f->head_stage, f->head_stage_bytes);
			f->head_stage = fm_alloc(f->mem, need);
			f->head_stage_bytes = f->head_stage ? need : 0;
		}
		stage = f->head_stage;
	}
	int group = strided || stage ? rows : 1;
	for (int r0 = 0; r0 < rows; r0 += group) {
		act_reset(&f->act, f->xn + (size_t)r0 * ne, hp->n_embd, group);
		mm_job_init(&f->job, f->k);
		fwd_add_product(f, &f->m->w.output,
				strided ? base : stage ? stage : items[f->tok_seg[r0]].logits, nv);
		mm_run(&f->job, f->pool);
	}
	for (int r = 0; stage && r < rows; r++)
		memcpy(items[f->tok_seg[r]].logits, stage + (size_t)r * nv, nv * sizeof(float));
}

int fwd_step(struct fwd *f, const struct fwd_item *items, int n_items, struct fm_error *err)
{
	int n = 0;
	if (n_items < 1 || n_items > f->n_batch)
		return fm_err(err, FM_ERANGE, NULL, FM_NO_OFFSET, "a step of %d sequences (batch %d)",
			      n_items, f->n_batch);
	for (int i = 0; i < n_items; i++) {
		const struct fwd_item *it = &items[i];
		if (it->n < 1 || it->n > f->n_batch - n || it->pos0 < 0 ||
		    it->pos0 + it->n > it->st->n_ctx || it->st->n_ctx > f->n_ctx)
			return fm_err(err, FM_ERANGE, NULL, FM_NO_OFFSET,
				      "item %d: %d tokens at position %d do not fit (step batch %d, "
				      "%d tokens before it; context %d)",
				      i, it->n, it->pos0, f->n_batch, n, it->st->n_ctx);
		if (it->st->kv && kv_scratch_floats(it->st->kv) > f->att_floats)
			return fm_err(err, FM_ERANGE, NULL, FM_NO_OFFSET,
				      "item %d: its context (%d tokens) is longer than the step's "
				      "scratch allows", i, it->st->n_ctx);
		for (int j = 0; j < i; j++)
			if (items[j].st == it->st)
				return fm_err(err, FM_EINVAL, NULL, FM_NO_OFFSET,
					      "items %d and %d are one sequence", j, i);
		int rc = check_tokens(f->hp, it->tokens, it->n, err);
		if (rc)
			return rc;
		f->segs[i] = (struct fwd_seg){ it->st, n, it->n, it->pos0 };
		n += it->n;
	}
	f->n_segs = n_items;
	int rc = 0;
	for (int i = 0; !rc && i < n_items; i++)
		rc = embed(f, items[i].tokens, items[i].n, f->segs[i].t0, err);
	if (!rc)
		rc = run_layers(f, n, err);
	if (rc)
		return rc;
	double t0 = fm_now_s();
	step_logits(f, items, n_items);
	f->times.head_s += fm_now_s() - t0;
	return 0;
}
