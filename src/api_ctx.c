/* api_ctx.c: contexts (KV cache + scratch), evaluation, statistics and the
 * model description of the public API. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "experts.h"

#define FM_DEFAULT_BATCH 256

/* The model's forward scratch, shared by its contexts (evaluations take
 * turns, so one is enough): made at the first context, remade larger when a
 * context needs a longer batch, context or attention scratch (the old one
 * freed first; put back if the new one does not fit). eval_mu held. */
static int grow_scratch(struct fm_model *fm, int n_batch, int n_ctx, size_t att,
			struct fm_error *err)
{
	if (fm->fwd && n_batch <= fm->fwd_n_batch && n_ctx <= fm->fwd_n_ctx && att <= fm->fwd_att)
		return 0;
	int nb = n_batch > fm->fwd_n_batch ? n_batch : fm->fwd_n_batch;
	int nc = n_ctx > fm->fwd_n_ctx ? n_ctx : fm->fwd_n_ctx;
	size_t na = att > fm->fwd_att ? att : fm->fwd_att;
	uint64_t seen = fwd_tokens_seen(fm->fwd);
	fwd_free(fm->fwd);
	fm->fwd = fwd_new(&fm->m, fm->k, fm->pool, nb, nc, na, &fm->mem, err);
	if (fm->fwd)
		fwd_set_tokens_seen(fm->fwd, seen);
	int rc = fm->fwd ? api_stream_attach(fm, fm->fwd, err) : (err ? err->code : FM_ENOMEM);
	if (!rc) {
		fm->fwd_n_batch = nb, fm->fwd_n_ctx = nc, fm->fwd_att = na;
		return 0;
	}
	fwd_free(fm->fwd);
	fm->fwd = NULL;
	if (fm->fwd_n_batch) { /* the contexts made so far keep working */
		fm->fwd = fwd_new(&fm->m, fm->k, fm->pool, fm->fwd_n_batch, fm->fwd_n_ctx, fm->fwd_att,
				  &fm->mem, NULL);
		if (fm->fwd)
			fwd_set_tokens_seen(fm->fwd, seen);
		if (fm->fwd && api_stream_attach(fm, fm->fwd, NULL)) {
			fwd_free(fm->fwd);
			fm->fwd = NULL;
		}
	}
	if (!fm->fwd)
		fm->fwd_n_batch = fm->fwd_n_ctx = 0, fm->fwd_att = 0;
	return rc;
}

struct fm_ctx *fm_ctx_new(struct fm_model *fm, int n_ctx, struct fm_error *err)
{
	if (n_ctx <= 0)
		n_ctx = fm->m.hp.n_ctx_train < 4096 ? fm->m.hp.n_ctx_train : 4096;
	if (n_ctx > (1 << 24)) {
		fm_err(err, FM_EINVAL, NULL, FM_NO_OFFSET, "context of %d tokens is too large", n_ctx);
		return NULL;
	}
	struct fm_ctx *c = calloc(1, sizeof(*c));
	if (!c) {
		fm_err(err, FM_ENOMEM, NULL, FM_NO_OFFSET, "out of memory");
		return NULL;
	}
	const struct hparams *hp = &fm->m.hp;
	c->fm = fm;
	c->n_ctx = n_ctx;
	c->multi_end = -1;
	c->n_batch = n_ctx < FM_DEFAULT_BATCH ? n_ctx : FM_DEFAULT_BATCH;
	c->st = state_new(hp, n_ctx, (enum kv_type)fm->kv_type_k, (enum kv_type)fm->kv_type_v,
			  &fm->mem, err);
	if (!c->st)
		goto fail;
	pthread_mutex_lock(&fm->eval_mu);
	int rc = grow_scratch(fm, c->n_batch, n_ctx, c->st->kv ? kv_scratch_floats(c->st->kv) : 0, err);
	pthread_mutex_unlock(&fm->eval_mu);
	if (rc)
		goto fail;
	return c;
fail:
	fm_ctx_free(c);
	return NULL;
}

void fm_ctx_free(struct fm_ctx *c)
{
	if (!c)
		return;
	state_free(c->st);
	free(c);
}

int fm_ctx_n_ctx(const struct fm_ctx *c)
{
	return c->n_ctx;
}

int fm_ctx_n_past(const struct fm_ctx *c)
{
	return c->n_past;
}

int fm_ctx_truncate(struct fm_ctx *c, int n_keep)
{
	if (n_keep < 0 || n_keep > c->n_past)
		return FM_EINVAL;
	int pos = state_rewind(c->st, c->n_past, n_keep, true);
	if (pos < 0)
		return pos;
	c->n_past = pos;
	if (c->multi_end > pos)
		c->multi_end = -1;
	return 0;
}

int fm_ctx_rewind(struct fm_ctx *c, int n_keep)
{
	if (n_keep < 0 || n_keep > c->n_past)
		return FM_EINVAL;
	int pos = state_rewind(c->st, c->n_past, n_keep, false);
	if (pos >= 0)
		c->n_past = pos;
	if (pos >= 0 && c->multi_end > pos)
		c->multi_end = -1;
	return pos;
}

/* NaN or infinite logits mean broken weights (or a bug), never a token:
 * greedy decoding of NaN rows prints token 0 forever. */
static int check_finite(struct fm_ctx *c, const float *out, int rows, int pos0,
			struct fm_error *err)
{
	size_t n_vocab = (size_t)c->fm->m.hp.n_vocab;
	for (int r = 0; r < rows; r++) {
		const float *row = out + (size_t)r * n_vocab;
		float acc = 0.0f;
		for (size_t i = 0; i < n_vocab; i++)
			acc += row[i] * 0.0f; /* NaN if any is NaN or infinite */
		if (acc != acc)
			return fm_err(err, FM_EFORMAT, gguf_path(c->fm->file), FM_NO_OFFSET,
				      "the logits at position %d are not finite (NaN or infinite): "
				      "the model's weights or hyperparameters are broken",
				      pos0 + r);
	}
	return 0;
}

/* The shared scratch is gone only when remaking it larger failed and so did
 * putting the old one back (memory taken meanwhile by others). */
static int no_scratch(struct fm_error *err)
{
	return fm_err(err, FM_ENOMEM, NULL, FM_NO_OFFSET,
		      "no memory for the forward pass's scratch (it was lost growing it "
		      "for a larger context)");
}

/* Run tokens[0..n) of context c (eval_mu held); 0 or a negative code, the
 * context unchanged on failure before its first batch. */
static int eval_locked(struct fm_ctx *c, const int32_t *tokens, int n, float *logits,
		       bool all_logits, struct fm_error *err)
{
	if (n <= 0)
		return fm_err(err, FM_EINVAL, NULL, FM_NO_OFFSET, "no tokens to evaluate");
	if (c->n_past + n > c->n_ctx)
		return fm_err(err, FM_ERANGE, NULL, FM_NO_OFFSET,
			      "context full: %d tokens + %d new > context size %d", c->n_past, n,
			      c->n_ctx);
	if (!c->fm->fwd)
		return no_scratch(err);
	int ready = api_stream_ready(c->fm, err);
	if (ready)
		return ready;
	int n_vocab = c->fm->m.hp.n_vocab;
	/* a prompt's start (unless it continues the previous call's) and end:
	 * where a chat's prefix reuse may come back to (state.h) */
	bool cont = c->n_past == c->multi_end;
	if (n > 1 && !cont)
		state_snapshot(c->st, c->n_past, -1);
	for (int i = 0; i < n; i += c->n_batch) {
		int nb = n - i < c->n_batch ? n - i : c->n_batch;
		bool last = i + nb == n;
		float *out = NULL;
		if (logits && all_logits)
			out = logits + (size_t)i * n_vocab;
		else if (logits && last)
			out = logits;
		int rc = fwd_batch(c->fm->fwd, c->st, tokens + i, nb, c->n_past, out, all_logits, err);
		if (!rc && out)
			rc = check_finite(c, out, all_logits ? nb : 1,
					  all_logits ? c->n_past : c->n_past + nb - 1, err);
		if (rc)
			return rc;
		c->n_past += nb;
	}
	if (n > 1) {
		state_snapshot(c->st, c->n_past, cont ? c->multi_end : -1);
		c->multi_end = c->n_past;
	}
	return 0;
}

/* The counters a step adds, before they are shared out. */
struct step_acct {
	double dt;                 /* wall time of the step */
	struct fwd_times ft;
	struct experts_stats xs;   /* the store's counters: the step's delta */
	int n_tok;                 /* tokens of all items */
};

/* What the store counted since the previous step (eval_mu held). */
static void store_delta(struct fm_model *fm, struct experts_stats *d)
{
	memset(d, 0, sizeof(*d));
	if (!fm->experts)
		return;
	struct experts_stats now, *was = &fm->xs_seen;
	experts_get_stats(fm->experts, &now);
	d->lookups = now.lookups - was->lookups;
	d->hits = now.hits - was->hits;
	d->misses = now.misses - was->misses;
	d->bytes_read = now.bytes_read - was->bytes_read;
	d->wait_s = now.wait_s - was->wait_s;
	d->read_s = now.read_s - was->read_s;
	d->prefetch_issued = now.prefetch_issued - was->prefetch_issued;
	d->prefetch_used = now.prefetch_used - was->prefetch_used;
	d->prefetch_wasted_bytes = now.prefetch_wasted_bytes - was->prefetch_wasted_bytes;
	d->prefetch_guesses = now.prefetch_guesses - was->prefetch_guesses;
	d->prefetch_guess_hits = now.prefetch_guess_hits - was->prefetch_guess_hits;
	d->pf_passes_on = now.pf_passes_on - was->pf_passes_on;
	d->pf_passes_off = now.pf_passes_off - was->pf_passes_off;
	d->pf_probe_on_s = now.pf_probe_on_s; /* gauges */
	d->pf_probe_off_s = now.pf_probe_off_s;
	*was = now;
}

/* Add the share num/den of a step's counters to st; an item of n tokens
 * counts as prompt (n > 1) or generated (n == 1). Integer counters are
 * split so that the shares of all items add up to the whole. */
static uint64_t share_u(uint64_t v, int num, int den, int before)
{
	return v * (uint64_t)(before + num) / (uint64_t)den - v * (uint64_t)before / (uint64_t)den;
}

static void stats_add(struct fm_stats *st, const struct step_acct *a, int n, int before)
{
	int den = a->n_tok;
	double f = (double)n / den;
	if (n > 1) {
		st->n_prompt_tokens += (uint64_t)n;
		st->prompt_s += a->dt * f;
	} else {
		st->n_gen_tokens += 1;
		st->gen_s += a->dt * f;
	}
	st->attn_s += a->ft.attn_s * f;
	st->gdn_s += a->ft.gdn_s * f;
	st->route_s += a->ft.route_s * f;
	st->experts_s += a->ft.experts_s * f;
	st->shared_s += a->ft.shared_s * f;
	st->head_s += a->ft.head_s * f;
	const struct experts_stats *x = &a->xs;
	st->expert_lookups += share_u(x->lookups, n, den, before);
	st->expert_hits += share_u(x->hits, n, den, before);
	st->expert_misses += share_u(x->misses, n, den, before);
	st->bytes_read += share_u(x->bytes_read, n, den, before);
	st->io_wait_s += x->wait_s * f;
	st->read_s += x->read_s * f;
	st->prefetch_issued += share_u(x->prefetch_issued, n, den, before);
	st->prefetch_used += share_u(x->prefetch_used, n, den, before);
	st->prefetch_wasted_bytes += share_u(x->prefetch_wasted_bytes, n, den, before);
	st->prefetch_guesses += share_u(x->prefetch_guesses, n, den, before);
	st->prefetch_guess_hits += share_u(x->prefetch_guess_hits, n, den, before);
	st->prefetch_tokens_on += share_u(x->pf_passes_on, n, den, before);
	st->prefetch_tokens_off += share_u(x->pf_passes_off, n, den, before);
	if (x->pf_probe_on_s > 0) {
		st->prefetch_probe_on_s = x->pf_probe_on_s;
		st->prefetch_probe_off_s = x->pf_probe_off_s;
	}
}

/* Share a finished step out to its contexts and to the model-wide sums
 * (eval_mu held). ctxs[i] ran n[i] tokens (0: it failed, nothing counted). */
static void account(struct fm_model *fm, struct fm_ctx *const *ctxs, const int *n, int n_items,
		    struct fwd *f, double dt)
{
	struct step_acct a = { .dt = dt };
	if (!f)
		return;
	fwd_take_times(f, &a.ft);
	store_delta(fm, &a.xs);
	for (int i = 0; i < n_items; i++)
		a.n_tok += n[i];
	if (!a.n_tok)
		return;
	pthread_mutex_lock(&fm->stats_mu);
	for (int i = 0, before = 0; i < n_items; before += n[i], i++)
		if (n[i]) {
			stats_add(&ctxs[i]->stats, &a, n[i], before);
			stats_add(&fm->stats, &a, n[i], before);
		}
	pthread_mutex_unlock(&fm->stats_mu);
}

int fm_eval(struct fm_ctx *c, const int32_t *tokens, int n, float *logits, bool all_logits,
	    struct fm_error *err)
{
	struct fm_model *fm = c->fm;
	pthread_mutex_lock(&fm->eval_mu);
	double t0 = fm_now_s();
	int rc = eval_locked(c, tokens, n, logits, all_logits, err);
	int done = rc ? 0 : n;
	account(fm, &c, &done, 1, fm->fwd, fm_now_s() - t0);
	pthread_mutex_unlock(&fm->eval_mu);
	return rc;
}

/* Room in the model's per-item arrays for a batch of n items (eval_mu
 * held; grown, never shrunk: nothing allocated per step once warm). */
static int batch_room(struct fm_model *fm, int n)
{
	if (n <= fm->batch_cap)
		return 0;
	struct fwd_item *fi = realloc(fm->batch_fi, (size_t)n * sizeof(*fi));
	fm->batch_fi = fi ? fi : fm->batch_fi;
	int *map = realloc(fm->batch_map, (size_t)n * sizeof(int));
	fm->batch_map = map ? map : fm->batch_map;
	int *done = realloc(fm->batch_done, (size_t)n * sizeof(int));
	fm->batch_done = done ? done : fm->batch_done;
	struct fm_ctx **ctxs = realloc(fm->batch_ctxs, (size_t)n * sizeof(*ctxs));
	fm->batch_ctxs = ctxs ? ctxs : fm->batch_ctxs;
	if (!fi || !map || !done || !ctxs)
		return FM_ENOMEM;
	fm->batch_cap = n;
	return 0;
}

/* Why item i of a batch cannot run (its status set, err filled when it is
 * the first failure), or 0. */
static int batch_check(struct fm_batch_item *items, int i, const struct fm_model *fm,
		       int *first_rc, struct fm_error *err)
{
	struct fm_batch_item *it = &items[i];
	char why[160] = "";
	int code = FM_EINVAL;
	if (!it->ctx)
		snprintf(why, sizeof(why), "has no context");
	else if (it->ctx->fm != fm)
		snprintf(why, sizeof(why), "is a context of another model");
	else if (!it->tokens || it->n_tokens < 1)
		snprintf(why, sizeof(why), "has no tokens");
	for (int j = 0; !why[0] && j < i; j++)
		if (items[j].ctx == it->ctx)
			snprintf(why, sizeof(why), "repeats the context of item %d", j);
	if (!why[0] && it->n_tokens > it->ctx->n_ctx - it->ctx->n_past) {
		code = FM_ERANGE;
		snprintf(why, sizeof(why), "does not fit: context full: %d tokens + %d new > context size %d",
			 it->ctx->n_past, it->n_tokens, it->ctx->n_ctx);
	}
	for (int t = 0; !why[0] && t < it->n_tokens; t++)
		if (it->tokens[t] < 0 || it->tokens[t] >= fm->m.hp.n_vocab)
			snprintf(why, sizeof(why), "has token id %d at %d, outside the vocabulary [0, %d)",
				 it->tokens[t], t, fm->m.hp.n_vocab);
	if (!why[0])
		return 0;
	it->status = code;
	if (!*first_rc)
		*first_rc = fm_err(err, code, NULL, FM_NO_OFFSET, "batch item %d %s", i, why);
	return code;
}

int fm_eval_batch(struct fm_batch_item *items, int n, struct fm_error *err)
{
	if (n < 1 || !items)
		return fm_err(err, FM_EINVAL, NULL, FM_NO_OFFSET, "no items to evaluate");
	struct fm_model *fm = items[0].ctx ? items[0].ctx->fm : NULL;
	int first_rc = 0;
	if (!fm) {
		for (int i = 0; i < n; i++)
			items[i].status = FM_EINVAL;
		return fm_err(err, FM_EINVAL, NULL, FM_NO_OFFSET, "batch item 0 has no context");
	}
	pthread_mutex_lock(&fm->eval_mu);
	double t_start = fm_now_s();
	/* the items that run, in steps of the shared scratch's batch */
	int n_ok = 0;
	for (int i = 0; i < n; i++) {
		items[i].status = 0;
		if (!batch_check(items, i, fm, &first_rc, err))
			n_ok++;
	}
	if (n_ok && !fm->fwd) {
		pthread_mutex_unlock(&fm->eval_mu);
		for (int i = 0; i < n; i++)
			items[i].status = items[i].status ? items[i].status : FM_ENOMEM;
		return first_rc ? first_rc : no_scratch(err);
	}
	struct fm_error e0 = { 0 };
	int rc0 = n_ok ? api_stream_ready(fm, &e0) : 0;
	if (rc0) {
		pthread_mutex_unlock(&fm->eval_mu);
		for (int i = 0; i < n; i++)
			items[i].status = items[i].status ? items[i].status : rc0;
		if (!first_rc && err)
			*err = e0;
		return first_rc ? first_rc : rc0;
	}
	int cap = n_ok ? fm->fwd_n_batch : 1;
	if (batch_room(fm, n)) {
		pthread_mutex_unlock(&fm->eval_mu);
		for (int i = 0; i < n; i++)
			items[i].status = items[i].status ? items[i].status : FM_ENOMEM;
		return first_rc ? first_rc : fm_err(err, FM_ENOMEM, NULL, FM_NO_OFFSET, "out of memory");
	}
	struct fwd_item *fi = fm->batch_fi;
	int *map = fm->batch_map, *done = fm->batch_done;
	struct fm_ctx **ctxs = fm->batch_ctxs;
	memset(done, 0, (size_t)n * sizeof(int));
	/* a prompt's start (see eval_locked) */
	for (int i = 0; i < n; i++) {
		struct fm_ctx *c = items[i].ctx;
		ctxs[i] = c;
		if (!items[i].status && items[i].n_tokens > 1 && c->n_past != c->multi_end)
			state_snapshot(c->st, c->n_past, -1);
	}
	/* steps of at most cap tokens: single tokens (generation) first, then
	 * prompt chunks; a prompt longer than the room left continues in the
	 * next step */
	bool failed = false;
	while (!failed) {
		int nf = 0, used = 0;
		for (int pass = 0; pass < 2; pass++)
			for (int i = 0; i < n && used < cap && nf < cap; i++) {
				struct fm_batch_item *it = &items[i];
				if (it->status || done[i] == it->n_tokens || (it->n_tokens > 1) != (pass == 1))
					continue;
				int m = it->n_tokens - done[i] < cap - used ? it->n_tokens - done[i] : cap - used;
				bool last = done[i] + m == it->n_tokens;
				fi[nf] = (struct fwd_item){ it->ctx->st, it->tokens + done[i], m,
							    it->ctx->n_past, last ? it->logits : NULL };
				map[nf++] = i;
				used += m;
			}
		if (!nf)
			break;
		struct fm_error e = { 0 };
		/* one item: exactly fm_eval's path */
		int rc = nf == 1 ? fwd_batch(fm->fwd, fi[0].st, fi[0].tokens, fi[0].n, fi[0].pos0,
					     fi[0].logits, false, &e)
				 : fwd_step(fm->fwd, fi, nf, &e);
		for (int k = 0; k < nf; k++) {
			struct fm_batch_item *it = &items[map[k]];
			struct fm_ctx *c = it->ctx;
			if (!rc && fi[k].logits)
				it->status = check_finite(c, fi[k].logits, 1, c->n_past + fi[k].n - 1, &e);
			else
				it->status = rc;
			if (it->status) {
				failed = failed || rc;
				if (!first_rc) {
					first_rc = it->status;
					if (err)
						*err = e;
				}
				continue;
			}
			c->n_past += fi[k].n;
			done[map[k]] += fi[k].n;
		}
		/* an I/O error mid-step: every item still running fails with it */
		for (int i = 0; failed && i < n; i++)
			if (!items[i].status && done[i] < items[i].n_tokens)
				items[i].status = rc;
	}
	for (int i = 0; i < n; i++) {
		struct fm_ctx *c = items[i].ctx;
		if (items[i].status) {
			done[i] = 0;
			continue;
		}
		if (items[i].n_tokens > 1) {
			state_snapshot(c->st, c->n_past,
				       c->n_past - items[i].n_tokens == c->multi_end ? c->multi_end : -1);
			c->multi_end = c->n_past;
		}
	}
	if (n_ok)
		account(fm, ctxs, done, n, fm->fwd, fm_now_s() - t_start);
	pthread_mutex_unlock(&fm->eval_mu);
	return first_rc;
}

void fm_get_stats(const struct fm_model *fm, struct fm_stats *out)
{
	pthread_mutex_lock((pthread_mutex_t *)&fm->stats_mu);
	*out = fm->stats;
	pthread_mutex_unlock((pthread_mutex_t *)&fm->stats_mu);
	out->mem_peak_bytes = atomic_load(&fm->mem.peak_bytes);
	out->mem_budget_bytes = fm->mem.budget_bytes;
}

/* Zero the counters, keep the gauges (cache size, I/O mode). */
static void stats_zero(struct fm_stats *st)
{
	struct fm_stats keep = *st;
	memset(st, 0, sizeof(*st));
	st->cache_slots = keep.cache_slots;
	st->cache_bytes = keep.cache_bytes;
	st->io_mode = keep.io_mode;
}

void fm_reset_stats(struct fm_model *fm)
{
	pthread_mutex_lock(&fm->stats_mu);
	stats_zero(&fm->stats);
	pthread_mutex_unlock(&fm->stats_mu);
}

void fm_ctx_get_stats(const struct fm_ctx *c, struct fm_stats *out)
{
	struct fm_model *fm = c->fm;
	pthread_mutex_lock(&fm->stats_mu);
	*out = c->stats;
	out->cache_slots = fm->stats.cache_slots;
	out->cache_bytes = fm->stats.cache_bytes;
	out->io_mode = fm->stats.io_mode;
	pthread_mutex_unlock(&fm->stats_mu);
	out->mem_peak_bytes = atomic_load(&fm->mem.peak_bytes);
	out->mem_budget_bytes = fm->mem.budget_bytes;
}

void fm_ctx_reset_stats(struct fm_ctx *c)
{
	pthread_mutex_lock(&c->fm->stats_mu);
	memset(&c->stats, 0, sizeof(c->stats));
	pthread_mutex_unlock(&c->fm->stats_mu);
}

const char *fm_type_name(int type)
{
	const struct ggml_type_traits *t = ggml_type_get((uint32_t)type);
	return t ? t->name : NULL;
}

int fm_type_from_name(const char *name)
{
	for (int t = 0; t < GGML_TYPE_COUNT; t++) {
		const struct ggml_type_traits *tr = ggml_type_get((uint32_t)t);
		if (tr && !strcasecmp(tr->name, name))
			return t;
	}
	return -1;
}

#define APPEND(...)                                                              \
	do {                                                                     \
		int w_ = snprintf(buf + (len < cap ? len : cap), len < cap ? cap - len : 0, \
				  __VA_ARGS__);                                  \
		if (w_ > 0)                                                      \
			len += (size_t)w_;                                       \
	} while (0)

/* The sequence state: KV bytes per token of each cache format (attention
 * layers only) and the fixed recurrent state of the DeltaNet layers. */
static size_t describe_state(const struct fm_model *fm, char *buf, size_t cap, size_t len)
{
	const struct hparams *hp = &fm->m.hp;
	int n_attn = hp->n_layer_kind[LAYER_ATTN];
	static const struct { enum kv_type k, v; const char *name; } f[] = {
		{ KV_F32, KV_F32, "f32" },     { KV_F16, KV_F16, "f16" },
		{ KV_Q8_0, KV_Q8_0, "q8_0" },  { KV_TQ4, KV_TQ4, "tq4" },
		{ KV_TQ3_5, KV_TQ3_5, "tq3.5" }, { KV_TQ2_5, KV_TQ2_5, "tq2.5" },
		{ KV_Q8_0, KV_TQ4, "-ctk q8_0 -ctv tq4" }, /* recommended: docs/TURBOQUANT.md */
	};
	APPEND("KV cache (%d attention layers x %d KV heads of %d), per token and for 32k tokens:\n",
	       n_attn, hp->n_head_kv, hp->head_dim);
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		size_t b = kv_bytes_per_token(n_attn, hp->n_head_kv, hp->head_dim, f[i].k, f[i].v);
		if (b)
			APPEND("  %-22s %9.1f KiB  %9.1f MiB\n", f[i].name, b / 1024.0,
			       b * 32768.0 / 1048576.0);
	}
	if (hp->n_layer_kind[LAYER_GDN])
		APPEND("recurrent state (%d DeltaNet layers): %.1f MiB per sequence, whatever its length (and as much again for each of the 3 snapshots kept for going back)\n",
		       hp->n_layer_kind[LAYER_GDN],
		       hp->n_layer_kind[LAYER_GDN] *
			       ((double)(hp->ssm_conv_k - 1) * (2 * hp->ssm_nk * hp->ssm_dk + hp->ssm_inner) +
				(double)hp->ssm_nv * hp->ssm_dv * hp->ssm_dk) * 4 / 1048576.0);
	return len;
}

size_t fm_model_describe(const struct fm_model *fm, char *buf, size_t cap)
{
	const struct fm_model_info *in = &fm->info;
	size_t len = 0;
	if (cap)
		buf[0] = 0;
	APPEND("architecture: %s\nname: %s\n", in->arch, in->name);
	APPEND("layers %d, hidden %d, heads %d (kv %d), head_dim %d, vocab %d, context %d\n",
	       in->n_layer, in->n_embd, in->n_head, in->n_head_kv, in->head_dim, in->n_vocab,
	       in->n_ctx_train);
	APPEND("experts %d (%d used per token), expert width %d\n", in->n_expert,
	       in->n_expert_used, in->n_ff_expert);
	APPEND("parameters: %.3f M; tensor bytes: %.2f MiB total, %.2f MiB experts (%.1f%%), "
	       "%.2f MiB dense\n",
	       in->n_params / 1e6, in->bytes_total / 1048576.0, in->bytes_expert / 1048576.0,
	       in->bytes_total ? 100.0 * in->bytes_expert / in->bytes_total : 0.0,
	       in->bytes_dense / 1048576.0);
	uint64_t by_type[GGML_TYPE_COUNT] = { 0 }, n_by_type[GGML_TYPE_COUNT] = { 0 };
	for (uint64_t i = 0; i < gguf_n_tensors(fm->file); i++) {
		const struct gguf_tensor_info *t = gguf_tensor(fm->file, i);
		by_type[t->type] += t->size_bytes;
		n_by_type[t->type]++;
	}
	for (int t = 0; t < GGML_TYPE_COUNT; t++)
		if (n_by_type[t])
			APPEND("  type %-5s: %4llu tensors, %10.2f MiB\n", fm_type_name(t),
			       (unsigned long long)n_by_type[t], by_type[t] / 1048576.0);
	len = describe_state(fm, buf, cap, len);
	APPEND("tensors:\n");
	for (uint64_t i = 0; i < gguf_n_tensors(fm->file); i++) {
		const struct gguf_tensor_info *t = gguf_tensor(fm->file, i);
		APPEND("  %-32s %-5s [%llu, %llu, %llu] %.2f KiB\n", t->name_z, fm_type_name((int)t->type),
		       (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
		       (unsigned long long)t->ne[2], t->size_bytes / 1024.0);
	}
	return len;
}
