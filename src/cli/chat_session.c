/* chat_session.c: the turns of `flashmoe chat` (chat_session.h).
 *
 * The KV cache keeps the whole conversation, so a turn evaluates only what is
 * new. The session keeps ids[], the tokens of the conversation (the first
 * fm_ctx_n_past are in the cache; the last sampled token, which ends an
 * answer, is not yet), and text, the bytes those ids spell. A turn renders the
 * whole conversation with the template, then:
 *   - when the rendering starts with text (ChatML: an answer ends with
 *     <|im_end|>, the rendering goes on with "\n<|im_start|>user..."), only
 *     the rest is tokenized and appended to ids. The answer's tokens stay as
 *     sampled: re-tokenizing its text could give other ids, and the cache
 *     would no longer match;
 *   - otherwise (a template that rewrites earlier turns, such as Qwen3
 *     dropping old <think> blocks; an answer that ended on another
 *     end-of-generation token) the whole rendering is tokenized.
 * Either way the cache is cut to the longest common prefix of the cached ids
 * and the new ones (fm_ctx_truncate), and the rest is evaluated.
 */
#include "chat_session.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Prompt tokens per fm_eval call: how often Ctrl-C is checked during a long
 * prompt. */
#define PREFILL_CHUNK 64

/* A growable byte string, NUL-terminated. */
struct sbuf {
	char *p;
	size_t n, cap;
};

struct chat_session {
	struct chat_session_opts o;
	volatile sig_atomic_t *stop;
	struct fm_model *m;                 /* borrowed */
	const struct fm_tokenizer *tk;      /* borrowed from m */
	struct fm_ctx *c;
	struct fm_sampler *s;
	float *logits;                      /* [n_vocab] of the last evaluated token */
	int n_vocab;
	char *piece;                        /* [piece_cap] streaming decoder output */
	size_t piece_cap;
	struct fm_chat_msg *msgs;           /* [cap_msgs]; contents malloc'd */
	size_t n_msgs, cap_msgs;
	int32_t *ids;                       /* [n_ctx + 1] the conversation's tokens */
	int n_ids;
	struct sbuf text;                   /* what ids spell (after a BOS) */
	bool text_ok;                       /* false: text no longer matches ids */
	int turn;
};

/* Room for n more bytes and the NUL. */
static int sbuf_reserve(struct sbuf *b, size_t n)
{
	if (n >= SIZE_MAX / 2 - b->n)
		return FM_ENOMEM;
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->n + n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p)
			return FM_ENOMEM;
		b->p = p;
		b->cap = cap;
	}
	return 0;
}

static int sbuf_add(struct sbuf *b, const char *s, size_t n)
{
	int rc = sbuf_reserve(b, n);
	if (rc)
		return rc;
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = 0;
	return 0;
}

static int push_msg(struct chat_session *s, const char *role, const char *content, size_t len)
{
	if (s->n_msgs == s->cap_msgs) {
		size_t cap = s->cap_msgs ? 2 * s->cap_msgs : 16;
		struct fm_chat_msg *p = realloc(s->msgs, cap * sizeof(*p));
		if (!p)
			return FM_ENOMEM;
		s->msgs = p;
		s->cap_msgs = cap;
	}
	char *copy = malloc(len + 1);
	if (!copy)
		return FM_ENOMEM;
	memcpy(copy, content, len);
	copy[len] = 0;
	s->msgs[s->n_msgs++] = (struct fm_chat_msg){ role, copy };
	return 0;
}

static void pop_msg(struct chat_session *s)
{
	free((char *)s->msgs[--s->n_msgs].content);
}

/* The conversation so far plus the assistant's generation prompt. */
static int render(struct chat_session *s, struct sbuf *out)
{
	size_t len = 0;
	int rc = fm_chat_render(s->o.tmpl, s->msgs, s->n_msgs, true, s->o.think, out->p, out->cap,
				&len);
	if (!rc && len >= out->cap) {
		out->n = 0;
		if ((rc = sbuf_reserve(out, len)))
			return rc;
		rc = fm_chat_render(s->o.tmpl, s->msgs, s->n_msgs, true, s->o.think, out->p,
				    out->cap, &len);
	}
	out->n = len;
	return rc;
}

/* Ids of text (after the BOS when bos) into a malloc'd *ids with room for
 * lead more ids in front; *n = lead + the count. */
static int tokenize(struct chat_session *s, const char *text, size_t len, int lead,
		    int32_t **ids, int *n)
{
	if (len > INT_MAX / 2)
		return FM_ERANGE;
	int cap = (int)len + 16;
	for (;;) {
		int32_t *v = malloc(((size_t)lead + (size_t)cap) * sizeof(int32_t));
		if (!v)
			return FM_ENOMEM;
		int k = fm_tokenizer_encode(s->tk, text, len, true, v + lead, cap);
		if (k >= 0 && k <= cap) {
			*ids = v;
			*n = lead + k;
			return 0;
		}
		free(v);
		if (k < 0)
			return k;
		cap = k; /* NFC made the text longer: retry with the size it asked for */
	}
}

/* The ids of this turn's rendering (see the file comment). */
static int turn_ids(struct chat_session *s, const struct sbuf *full, int32_t **ids, int *n)
{
	if (s->text_ok && s->n_ids > 0 && full->n >= s->text.n &&
	    !memcmp(full->p, s->text.p, s->text.n)) {
		int rc = tokenize(s, full->p + s->text.n, full->n - s->text.n, s->n_ids, ids, n);
		if (!rc)
			memcpy(*ids, s->ids, (size_t)s->n_ids * sizeof(int32_t));
		return rc;
	}
	bool bos = fm_tokenizer_add_bos(s->tk) && fm_tokenizer_bos(s->tk) >= 0;
	int rc = tokenize(s, full->p, full->n, bos, ids, n);
	if (!rc && bos)
		(*ids)[0] = fm_tokenizer_bos(s->tk);
	return rc;
}

/* Cut the cache to the common prefix of its ids and ids[0..n), then evaluate
 * the rest in chunks. 0, 1 when stopped by Ctrl-C, or a negative code. */
static int prefill(struct chat_session *s, const int32_t *ids, int n)
{
	int n_past = fm_ctx_n_past(s->c), keep = 0;
	/* n - 1 at most: the last token is evaluated again for its logits */
	while (keep < n_past && keep < n - 1 && ids[keep] == s->ids[keep])
		keep++;
	int rc = fm_ctx_truncate(s->c, keep);
	if (rc)
		return rc;
	if (s->o.verbose)
		fprintf(stderr, "[turn %d: %d new tokens, %d reused from cache]\n", s->turn, n - keep,
			keep);
	for (int i = keep; i < n; i += PREFILL_CHUNK) {
		if (*s->stop)
			return 1;
		struct fm_error err = { 0 };
		int nb = n - i < PREFILL_CHUNK ? n - i : PREFILL_CHUNK;
		if ((rc = fm_eval(s->c, ids + i, nb, s->logits, false, &err))) {
			fprintf(stderr, "flashmoe chat: %s\n", err.msg);
			return rc;
		}
	}
	return 0;
}

enum answer_end { ANSWER_EOG, ANSWER_LIMIT, ANSWER_CTX_FULL, ANSWER_STOPPED };

/* Sample one token onto ids/text (and content unless it ends the answer),
 * print its text. 1 when it ends the answer (end-of-generation), else 0. */
static int take_token(struct chat_session *s, struct fm_detok *d, struct sbuf *content,
		      int32_t *tok)
{
	*tok = fm_sampler_sample(s->s, s->logits);
	size_t len = 0;
	const char *piece = fm_token_bytes(s->m, *tok, &len);
	if (!piece) {
		piece = "";
		len = 0;
	}
	s->ids[s->n_ids++] = *tok;
	if (sbuf_add(&s->text, piece, len))
		return FM_ENOMEM;
	if (fm_token_is_eog(s->m, *tok))
		return 1;
	if (sbuf_add(content, piece, len))
		return FM_ENOMEM;
	int k = fm_detok_feed(d, *tok, s->piece, s->piece_cap);
	if (k > 0)
		fwrite(s->piece, 1, (size_t)k, stdout);
	fflush(stdout);
	return 0;
}

static void say_end(struct chat_session *s, enum answer_end why)
{
	if (why == ANSWER_STOPPED)
		fputs("[stopped]\n", stdout);
	else if (why == ANSWER_CTX_FULL)
		fprintf(stderr, "[the context is full (%d tokens): /reset to start over, or use a larger -c]\n",
			s->o.n_ctx);
	else if (why == ANSWER_LIMIT && s->o.verbose)
		fprintf(stderr, "[answer cut at -n %d tokens]\n", s->o.n_predict);
	fflush(stdout);
}

/* Generate the answer after a prefill: stream it, keep its tokens (they are
 * in the cache, except the last) and add it to the conversation. */
static int answer(struct chat_session *s)
{
	struct sbuf content = { 0 };
	struct fm_detok *d = fm_detok_new(s->tk, true);
	enum answer_end why = ANSWER_EOG;
	int rc = d ? sbuf_reserve(&content, 0) : FM_ENOMEM;
	for (int i = 0; !rc; i++) {
		int32_t tok;
		if ((rc = take_token(s, d, &content, &tok)))
			break;
		if (*s->stop)
			why = ANSWER_STOPPED;
		else if (i + 1 >= s->o.n_predict)
			why = ANSWER_LIMIT;
		else if (fm_ctx_n_past(s->c) >= s->o.n_ctx)
			why = ANSWER_CTX_FULL;
		else {
			struct fm_error err = { 0 };
			if ((rc = fm_eval(s->c, &tok, 1, s->logits, false, &err)))
				fprintf(stderr, "\nflashmoe chat: %s\n", err.msg);
			continue;
		}
		break;
	}
	if (rc < 0)
		goto out;
	int k = fm_detok_flush(d, s->piece, s->piece_cap);
	if (k > 0)
		fwrite(s->piece, 1, (size_t)k, stdout);
	fputc('\n', stdout);
	say_end(s, why);
	rc = push_msg(s, "assistant", content.p, content.n);
out:
	if (rc == FM_ENOMEM)
		fprintf(stderr, "flashmoe chat: out of memory\n");
	free(content.p);
	fm_detok_free(d);
	return rc;
}

int chat_session_turn(struct chat_session *s, const char *user_text)
{
	struct sbuf full = { 0 };
	int32_t *ids = NULL;
	int n = 0;
	int rc = push_msg(s, "user", user_text, strlen(user_text));
	if (rc)
		goto fail;
	if ((rc = render(s, &full)) || (rc = turn_ids(s, &full, &ids, &n))) {
		pop_msg(s);
		goto fail;
	}
	if (n > s->o.n_ctx) {
		fprintf(stderr, "[the conversation needs %d tokens, more than the context (%d): "
				"/reset to start over, or use a larger -c]\n", n, s->o.n_ctx);
		pop_msg(s);
		goto out;
	}
	s->turn++;
	rc = prefill(s, ids, n);
	memcpy(s->ids, ids, (size_t)n * sizeof(int32_t));
	s->n_ids = n;
	if (rc) {
		/* Keep what reached the cache; the text no longer matches it. */
		s->n_ids = fm_ctx_n_past(s->c);
		s->text_ok = false;
		pop_msg(s);
		if (rc == 1)
			fputs("[stopped]\n", stdout);
		rc = rc == 1 ? 0 : rc;
		goto out;
	}
	struct sbuf t = s->text;
	s->text = full;
	full = t;
	s->text_ok = true;
	rc = answer(s);
	goto out;
fail:
	if (rc == FM_ENOMEM)
		fprintf(stderr, "flashmoe chat: out of memory\n");
	else
		fprintf(stderr, "flashmoe chat: cannot render or tokenize the conversation (error %d)\n",
			rc);
out:
	free(ids);
	free(full.p);
	return rc;
}

int chat_session_reset(struct chat_session *s)
{
	while (s->n_msgs > (s->o.system ? 1u : 0u))
		pop_msg(s);
	s->n_ids = 0;
	s->text.n = 0;
	s->text_ok = true;
	s->turn = 0;
	fm_sampler_free(s->s);
	s->s = fm_sampler_new(&s->o.sp, s->n_vocab);
	if (!s->s) {
		fprintf(stderr, "flashmoe chat: out of memory\n");
		return FM_ENOMEM;
	}
	return fm_ctx_truncate(s->c, 0);
}

struct chat_session *chat_session_new(struct fm_model *m, const struct chat_session_opts *o,
				      volatile sig_atomic_t *stop)
{
	struct fm_error err = { 0 };
	struct chat_session *s = calloc(1, sizeof(*s));
	if (!s)
		goto nomem;
	s->o = *o;
	s->stop = stop;
	s->m = m;
	s->tk = fm_model_tokenizer(m);
	s->n_vocab = fm_model_get_info(m)->n_vocab;
	s->text_ok = true;
	s->c = fm_ctx_new(m, o->n_ctx, &err);
	if (!s->c) {
		fprintf(stderr, "flashmoe chat: %s\n", err.msg);
		goto fail;
	}
	s->s = fm_sampler_new(&o->sp, s->n_vocab);
	s->logits = malloc((size_t)s->n_vocab * sizeof(float));
	s->ids = malloc(((size_t)o->n_ctx + 1) * sizeof(int32_t));
	s->piece_cap = fm_detok_max_bytes(s->tk);
	s->piece = malloc(s->piece_cap);
	if (!s->s || !s->logits || !s->ids || !s->piece)
		goto nomem;
	if (o->system && push_msg(s, "system", o->system, strlen(o->system)))
		goto nomem;
	return s;
nomem:
	fprintf(stderr, "flashmoe chat: out of memory\n");
fail:
	chat_session_free(s);
	return NULL;
}

void chat_session_free(struct chat_session *s)
{
	if (!s)
		return;
	while (s->n_msgs)
		pop_msg(s);
	free(s->msgs);
	free(s->text.p);
	free(s->piece);
	free(s->ids);
	free(s->logits);
	fm_sampler_free(s->s);
	fm_ctx_free(s->c);
	free(s);
}
