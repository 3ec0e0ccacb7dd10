/* engine.c: the engine thread, its slots and its queue (engine.h).
 *
 * A step:
 *   1. (under the lock) queued requests go to free slots: the free slot whose
 *      cached tokens share the longest prefix with the prompt (a follow-up
 *      turn lands where its conversation is), else the least recently used;
 *      the slot's context is rewound to that common prefix;
 *   2. canceled requests free their slots;
 *   3. one fm_eval_batch over every slot with work: a decoding slot evaluates
 *      its last sampled token, a slot with a prompt the next chunk of it (all
 *      prompts together at most opts.chunk tokens, so that a long prompt
 *      does not stall the others' decoding);
 *   4. each slot whose logits came back samples a token, turns it into text
 *      (held back while it may be the start of a stop string), splits a
 *      chat's text into content, reasoning and tool calls (fm_chat_parser)
 *      and appends them to its request; end-of-generation, a stop string,
 *      max_tokens or the context's end finish the request.
 * A slot keeps its context's tokens after its request ends, for step 1.
 * Nothing here blocks on a client: text goes into the request's buffer and
 * the HTTP side sends it at its own pace.
 */
#include "engine.h"
#include "textout.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct slot {
	struct fm_ctx *ctx;
	int32_t *hist;          /* [n_ctx] the tokens in ctx's cache */
	int n_hist;
	float *logits;          /* [n_vocab] of the last evaluated token */
	struct srv_req *req;    /* NULL when free */
	int i_prompt;           /* next prompt token to evaluate */
	bool decoding;          /* the prompt is in; next holds a sampled token */
	int32_t next;
	struct fm_sampler *smp;
	struct fm_detok *dt;
	struct textout out;     /* stop strings, chat parser -> the request */
	double t_used;
};

struct engine {
	struct fm_model *m;
	const struct fm_tokenizer *tk;
	int n_vocab;
	struct engine_opts o;
	struct slot *slots;           /* [n_slots] */
	struct fm_batch_item *items;  /* [n_slots] */
	struct slot **owner;          /* [n_slots] the slot of items[i] */
	char *piece;                  /* [piece_cap] fm_detok_feed output */
	size_t piece_cap;
	int rr;                       /* first slot offered prompt tokens (fairness) */

	pthread_t th;
	bool started;
	pthread_mutex_t mu;           /* queue, stopping, metrics */
	pthread_cond_t cv;
	bool stopping;
	struct srv_req **queue;       /* ring [max_queue] */
	int q_head, q_len;
	struct engine_metrics mt;
};

/* ---- slots ---- */

static void slot_end(struct engine *e, struct slot *s, enum req_finish why, const char *msg)
{
	struct srv_req *r = s->req;
	if (why == REQ_FINISH_STOP || why == REQ_FINISH_LENGTH) {
		/* the bytes of an incomplete character the decoder still holds */
		int k = fm_detok_flush(s->dt, e->piece, e->piece_cap);
		why = textout_end(&s->out, why, e->piece, k > 0 ? (size_t)k : 0);
	}
	textout_release(&s->out);
	req_finish(r, why, msg);
	fm_sampler_free(s->smp);
	fm_detok_free(s->dt);
	s->smp = NULL;
	s->dt = NULL;
	s->req = NULL;
	s->t_used = req_now_s();
	pthread_mutex_lock(&e->mu);
	e->mt.slots_busy--;
	e->mt.n_done += why != REQ_FINISH_CANCELED && why != REQ_FINISH_ERROR;
	e->mt.n_canceled += why == REQ_FINISH_CANCELED;
	e->mt.n_errors += why == REQ_FINISH_ERROR;
	e->mt.n_gen_tokens += (uint64_t)r->n_gen;
	pthread_mutex_unlock(&e->mu);
	req_unref(r);
}

static int common_prefix(const int32_t *a, int na, const int32_t *b, int nb)
{
	int k = 0;
	while (k < na && k < nb && a[k] == b[k])
		k++;
	return k;
}

/* The free slot for r: longest common prefix, then least recently used. */
static struct slot *pick_slot(struct engine *e, const struct srv_req *r)
{
	struct slot *best = NULL;
	int best_k = -1;
	for (int i = 0; i < e->o.n_slots; i++) {
		struct slot *s = &e->slots[i];
		if (s->req)
			continue;
		int k = common_prefix(s->hist, s->n_hist, r->prompt, r->n_prompt);
		if (k > best_k || (k == best_k && s->t_used < best->t_used)) {
			best = s;
			best_k = k;
		}
	}
	return best;
}

/* Give r to slot s: rewind its context to the common prefix (at least the
 * prompt's last token is evaluated again, for its logits). */
static int slot_start(struct engine *e, struct slot *s, struct srv_req *r)
{
	int keep = common_prefix(s->hist, s->n_hist, r->prompt, r->n_prompt - 1);
	int kept = fm_ctx_rewind(s->ctx, keep);
	if (kept < 0) {
		kept = 0;
		if (fm_ctx_truncate(s->ctx, 0))
			return FM_EINVAL;
	}
	s->n_hist = kept;
	s->i_prompt = kept;
	s->decoding = false;
	s->smp = fm_sampler_new(&r->sp, e->n_vocab);
	s->dt = fm_detok_new(e->tk, true);
	if (!s->smp || !s->dt || textout_start(&s->out, r)) {
		fm_sampler_free(s->smp);
		fm_detok_free(s->dt);
		textout_release(&s->out);
		s->smp = NULL;
		s->dt = NULL;
		return FM_ENOMEM;
	}
	s->req = r;
	r->n_cached = kept;
	return 0;
}

/* Under mu: queued requests into free slots. */
static void assign_locked(struct engine *e)
{
	while (e->q_len > 0 && e->mt.slots_busy < e->o.n_slots) {
		struct srv_req *r = e->queue[e->q_head];
		e->q_head = (e->q_head + 1) % e->o.max_queue;
		e->q_len--;
		if (atomic_load(&r->cancel)) {
			req_finish(r, REQ_FINISH_CANCELED, NULL);
			e->mt.n_canceled++;
			req_unref(r);
			continue;
		}
		struct slot *s = pick_slot(e, r);
		int rc = slot_start(e, s, r);
		if (rc) {
			req_finish(r, REQ_FINISH_ERROR, "out of memory starting the request");
			e->mt.n_errors++;
			req_unref(r);
			continue;
		}
		e->mt.slots_busy++;
		e->mt.n_prompt_tokens += (uint64_t)r->n_prompt;
		e->mt.n_cached_tokens += (uint64_t)r->n_cached;
	}
	e->mt.queue_depth = e->q_len;
}

/* Sample the next token of slot s from its logits. */
static void slot_sample(struct engine *e, struct slot *s)
{
	struct srv_req *r = s->req;
	int32_t tok = fm_sampler_sample(s->smp, s->logits);
	r->n_gen++;
	if (fm_token_is_eog(e->m, tok)) {
		slot_end(e, s, REQ_FINISH_STOP, NULL);
		return;
	}
	int k = fm_detok_feed(s->dt, tok, e->piece, e->piece_cap);
	if (k > 0 && textout_feed(&s->out, e->piece, (size_t)k)) {
		slot_end(e, s, REQ_FINISH_STOP, NULL);
		return;
	}
	if (r->n_gen >= r->max_tokens || s->n_hist >= e->o.n_ctx) {
		slot_end(e, s, REQ_FINISH_LENGTH, NULL);
		return;
	}
	s->next = tok;
	s->decoding = true;
}

/* The items of this step; returns their count and the prompt tokens' count. */
static int gather(struct engine *e, int *n_prompt_tok)
{
	int n = 0, budget = e->o.chunk;
	*n_prompt_tok = 0;
	for (int j = 0; j < e->o.n_slots; j++) {
		struct slot *s = &e->slots[(e->rr + j) % e->o.n_slots];
		struct srv_req *r = s->req;
		if (!r)
			continue;
		if (atomic_load(&r->cancel)) {
			slot_end(e, s, REQ_FINISH_CANCELED, NULL);
			continue;
		}
		struct fm_batch_item *it = &e->items[n];
		*it = (struct fm_batch_item){ .ctx = s->ctx, .logits = s->logits };
		if (s->decoding) {
			it->tokens = &s->next;
			it->n_tokens = 1;
		} else {
			int left = r->n_prompt - s->i_prompt;
			int k = left < budget ? left : budget;
			if (k <= 0)
				continue;
			budget -= k;
			*n_prompt_tok += k;
			it->tokens = r->prompt + s->i_prompt;
			it->n_tokens = k;
			if (k < left)
				it->logits = NULL;
		}
		e->owner[n++] = s;
	}
	e->rr = (e->rr + 1) % e->o.n_slots;
	return n;
}

static void step(struct engine *e)
{
	int n_prompt_tok;
	int n = gather(e, &n_prompt_tok);
	if (!n)
		return;
	struct fm_error err = { 0 };
	double t0 = req_now_s();
	fm_eval_batch(e->items, n, &err);
	double dt = req_now_s() - t0;
	int n_decode = 0;
	for (int i = 0; i < n; i++) {
		struct slot *s = e->owner[i];
		struct fm_batch_item *it = &e->items[i];
		if (it->status) {
			char msg[600];
			snprintf(msg, sizeof(msg), "evaluation failed: %s",
				 err.code == it->status ? err.msg : "engine error");
			slot_end(e, s, REQ_FINISH_ERROR, msg);
			continue;
		}
		memcpy(s->hist + s->n_hist, it->tokens, (size_t)it->n_tokens * sizeof(int32_t));
		s->n_hist += it->n_tokens;
		if (s->decoding) {
			n_decode++;
		} else {
			s->i_prompt += it->n_tokens;
			if (s->i_prompt < s->req->n_prompt)
				continue;
		}
		slot_sample(e, s);
	}
	pthread_mutex_lock(&e->mu);
	e->mt.n_steps++;
	e->mt.n_batched_tokens += (uint64_t)(n_prompt_tok + n_decode);
	if (n_decode) {
		e->mt.decode_s += dt;
		e->mt.n_decode_tokens += (uint64_t)n_decode;
	}
	pthread_mutex_unlock(&e->mu);
}

static void *engine_main(void *arg)
{
	struct engine *e = arg;
	for (;;) {
		pthread_mutex_lock(&e->mu);
		while (!e->stopping && !e->q_len && !e->mt.slots_busy)
			pthread_cond_wait(&e->cv, &e->mu);
		if (e->stopping) {
			pthread_mutex_unlock(&e->mu);
			break;
		}
		assign_locked(e);
		pthread_mutex_unlock(&e->mu);
		step(e);
	}
	for (int i = 0; i < e->o.n_slots; i++)
		if (e->slots[i].req)
			slot_end(e, &e->slots[i], REQ_FINISH_CANCELED, "the server is stopping");
	pthread_mutex_lock(&e->mu);
	while (e->q_len) {
		struct srv_req *r = e->queue[e->q_head];
		e->q_head = (e->q_head + 1) % e->o.max_queue;
		e->q_len--;
		req_finish(r, REQ_FINISH_CANCELED, "the server is stopping");
		req_unref(r);
	}
	pthread_mutex_unlock(&e->mu);
	return NULL;
}

/* ---- public ---- */

int engine_submit(struct engine *e, struct srv_req *r)
{
	int rc = 0;
	pthread_mutex_lock(&e->mu);
	if (e->stopping)
		rc = FM_ECANCELED;
	else if (e->q_len >= e->o.max_queue)
		rc = FM_ERANGE;
	if (!rc) {
		req_ref(r);
		e->queue[(e->q_head + e->q_len) % e->o.max_queue] = r;
		e->q_len++;
		e->mt.queue_depth = e->q_len;
		pthread_cond_broadcast(&e->cv);
	}
	pthread_mutex_unlock(&e->mu);
	return rc;
}

int engine_n_ctx(const struct engine *e)
{
	return e->o.n_ctx;
}

void engine_get_metrics(struct engine *e, struct engine_metrics *out)
{
	pthread_mutex_lock(&e->mu);
	*out = e->mt;
	pthread_mutex_unlock(&e->mu);
}

static int slots_new(struct engine *e, struct fm_error *err)
{
	size_t n_ctx = (size_t)e->o.n_ctx;
	for (int i = 0; i < e->o.n_slots; i++) {
		struct slot *s = &e->slots[i];
		s->ctx = fm_ctx_new(e->m, e->o.n_ctx, err);
		if (!s->ctx)
			return err ? err->code : FM_ENOMEM;
		s->hist = malloc(n_ctx * sizeof(int32_t));
		s->logits = malloc((size_t)e->n_vocab * sizeof(float));
		if (!s->hist || !s->logits) {
			snprintf(err->msg, sizeof(err->msg), "out of memory");
			return err->code = FM_ENOMEM;
		}
	}
	return 0;
}

struct engine *engine_new(struct fm_model *m, const struct engine_opts *o, struct fm_error *err)
{
	struct engine *e = calloc(1, sizeof(*e));
	if (!e)
		goto nomem;
	e->m = m;
	e->o = *o;
	e->tk = fm_model_tokenizer(m);
	e->n_vocab = fm_model_get_info(m)->n_vocab;
	e->mt.n_slots = o->n_slots;
	e->mt.n_ctx = o->n_ctx;
	pthread_mutex_init(&e->mu, NULL);
	pthread_cond_init(&e->cv, NULL);
	e->slots = calloc((size_t)o->n_slots, sizeof(*e->slots));
	e->items = calloc((size_t)o->n_slots, sizeof(*e->items));
	e->owner = calloc((size_t)o->n_slots, sizeof(*e->owner));
	e->queue = calloc((size_t)o->max_queue, sizeof(*e->queue));
	e->piece_cap = e->tk ? fm_detok_max_bytes(e->tk) : 0;
	e->piece = malloc(e->piece_cap + 1);
	if (!e->slots || !e->items || !e->owner || !e->queue || !e->piece)
		goto nomem;
	if (slots_new(e, err))
		goto fail;
	if (pthread_create(&e->th, NULL, engine_main, e)) {
		snprintf(err->msg, sizeof(err->msg), "cannot start the engine thread");
		err->code = FM_ENOMEM;
		goto fail;
	}
	e->started = true;
	return e;
nomem:
	if (err) {
		err->code = FM_ENOMEM;
		snprintf(err->msg, sizeof(err->msg), "out of memory");
	}
fail:
	engine_free(e);
	return NULL;
}

void engine_free(struct engine *e)
{
	if (!e)
		return;
	if (e->started) {
		pthread_mutex_lock(&e->mu);
		e->stopping = true;
		pthread_cond_broadcast(&e->cv);
		pthread_mutex_unlock(&e->mu);
		pthread_join(e->th, NULL);
	}
	for (int i = 0; e->slots && i < e->o.n_slots; i++) {
		struct slot *s = &e->slots[i];
		fm_ctx_free(s->ctx);
		free(s->hist);
		free(s->logits);
		textout_free(&s->out);
	}
	free(e->slots);
	free(e->items);
	free(e->owner);
	free(e->queue);
	free(e->piece);
	pthread_cond_destroy(&e->cv);
	pthread_mutex_destroy(&e->mu);
	free(e);
}
