/* chat_session.c: the turns of `flashmoe chat` (chat_session.h).
 *
 * The KV cache keeps the whole conversation, so a turn evaluates only what is
 * new. The session keeps ids[], the tokens of the conversation: the first
 * fm_ctx_n_past are in the cache, and at most one more, the last sampled
 * token of an answer (<|im_end|> when it ended by itself). A turn:
 *   1. renders the whole conversation with the template, plus the generation
 *      prompt: "...<|im_start|>assistant\n";
 *   2. finds the longest common prefix, in bytes, of that text and the text
 *      ids[] spell, and keeps the ids wholly inside it. With ChatML that is
 *      everything: an answer's ids end with <|im_end|> and the rendering goes
 *      on with "\n<|im_start|>user\n...". The answer's tokens are kept as
 *      they were sampled; re-tokenizing its text could give other ids and
 *      lose the cache. A template that rewrites earlier turns (Qwen3 drops the
 *      <think> block of old answers) keeps less;
 *   3. tokenizes the rest of the text after the kept ids;
 *   4. cuts the cache to the common prefix of the cached and the new ids
 *      (fm_ctx_rewind: a model with recurrent layers may go back further, to
 *      where its state was kept) and evaluates the rest.
 * Messages are stored as the tokenizer would spell them (NFC, no NUL bytes),
 * so that the rendering of old turns matches their ids byte for byte.
 */
#include "chat_session.h"
#include "../server/buf.h" /* the growable string the server uses too */

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Prompt tokens per fm_eval call: how often Ctrl-C is checked during a long
 * prompt. */
#define PREFILL_CHUNK 64

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
	int n_lead;                         /* 1 when ids[0] is a BOS the template lacks */
	struct sbuf text;                   /* scratch: the bytes of ids[n_lead..n_ids) */
	int turn;
};

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
	s->msgs[s->n_msgs++] = (struct fm_chat_msg){ .role = role, .content = copy };
	return 0;
}

static size_t piece_len(const struct chat_session *s, int32_t id)
{
	size_t len = 0;
	return fm_token_bytes(s->m, id, &len) ? len : 0;
}

/* Append the bytes of token id to b; with drop_nul, less any NUL byte (a
 * message is a C string). */
static int add_piece(const struct chat_session *s, struct sbuf *b, int32_t id, bool drop_nul)
{
	size_t len = 0;
	const char *p = fm_token_bytes(s->m, id, &len);
	if (!p)
		return 0;
	if (!drop_nul)
		return sbuf_add(b, p, len);
	for (size_t i = 0; i < len; i++)
		if (p[i] && sbuf_add(b, p + i, 1))
			return FM_ENOMEM;
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

/* Ids of text (special tokens parsed) into a malloc'd *ids, after room for
 * lead ids in front; *n = lead + their count. */
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

/* text = the bytes of ids[n_lead..n_ids). */
static int spell_ids(struct chat_session *s)
{
	s->text.n = 0;
	int rc = sbuf_reserve(&s->text, 0);
	for (int k = s->n_lead; !rc && k < s->n_ids; k++)
		rc = add_piece(s, &s->text, s->ids[k], false);
	return rc;
}

/* The ids of this turn's rendering full (steps 2 and 3 of the file comment). */
static int turn_ids(struct chat_session *s, const struct sbuf *full, int32_t **ids, int *n)
{
	if (s->n_ids == 0 && fm_tokenizer_add_bos(s->tk) && fm_tokenizer_bos(s->tk) >= 0) {
		s->ids[0] = fm_tokenizer_bos(s->tk);
		s->n_ids = s->n_lead = 1;
	}
	int rc = spell_ids(s);
	if (rc)
		return rc;
	size_t common = 0, off = 0;
	while (common < s->text.n && common < full->n && s->text.p[common] == full->p[common])
		common++;
	int keep = s->n_lead;
	for (; keep < s->n_ids && off + piece_len(s, s->ids[keep]) <= common; keep++)
		off += piece_len(s, s->ids[keep]);
	rc = tokenize(s, full->p + off, full->n - off, keep, ids, n);
	if (!rc)
		memcpy(*ids, s->ids, (size_t)keep * sizeof(int32_t));
	return rc;
}

/* A message as the tokenizer spells it (NFC, no NUL): what the rendering of
 * later turns must reproduce byte for byte. */
static int push_spelled(struct chat_session *s, const char *role, const char *text)
{
	struct sbuf b = { 0 };
	int32_t *ids = NULL;
	int n = 0;
	int rc = tokenize(s, text, strlen(text), 0, &ids, &n);
	if (!rc)
		rc = sbuf_reserve(&b, 0);
	for (int k = 0; !rc && k < n; k++)
		rc = add_piece(s, &b, ids[k], true);
	if (!rc)
		rc = push_msg(s, role, b.p, b.n);
	free(ids);
	free(b.p);
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
	int rc = fm_ctx_rewind(s->c, keep);
	if (rc < 0)
		return rc;
	keep = rc;
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

enum answer_end { ANSWER_GOING, ANSWER_EOG, ANSWER_LIMIT, ANSWER_CTX_FULL, ANSWER_STOPPED };

/* Sample one token onto ids (and content unless it ends the answer), print
 * its text. 1 when it ends the answer (end-of-generation), else 0. */
static int take_token(struct chat_session *s, struct fm_detok *d, struct sbuf *content,
		      int32_t *tok)
{
	*tok = fm_sampler_sample(s->s, s->logits);
	s->ids[s->n_ids++] = *tok;
	if (fm_token_is_eog(s->m, *tok))
		return 1;
	if (add_piece(s, content, *tok, true))
		return FM_ENOMEM;
	int k = fm_detok_feed(d, *tok, s->piece, s->piece_cap);
	if (k > 0)
		fwrite(s->piece, 1, (size_t)k, stdout);
	fflush(stdout);
	return 0;
}

/* Whether to stop after n tokens of the answer (the last not yet evaluated). */
static enum answer_end answer_end(const struct chat_session *s, int n)
{
	if (*s->stop)
		return ANSWER_STOPPED;
	if (n >= s->o.n_predict)
		return ANSWER_LIMIT;
	if (fm_ctx_n_past(s->c) >= s->o.n_ctx)
		return ANSWER_CTX_FULL;
	return ANSWER_GOING;
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
	enum answer_end why = ANSWER_GOING;
	int rc = d ? sbuf_reserve(&content, 0) : FM_ENOMEM;
	for (int n = 1; !rc && why == ANSWER_GOING; n++) {
		struct fm_error err = { 0 };
		int32_t tok;
		if ((rc = take_token(s, d, &content, &tok)))
			break;
		if ((why = answer_end(s, n)) == ANSWER_GOING &&
		    (rc = fm_eval(s->c, &tok, 1, s->logits, false, &err)))
			fprintf(stderr, "\nflashmoe chat: %s\n", err.msg);
	}
	if (rc < 0)
		goto out;
	if (rc == 1)
		why = ANSWER_EOG;
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
	int rc = push_spelled(s, "user", user_text);
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
		/* Keep what reached the cache; drop the message. */
		s->n_ids = fm_ctx_n_past(s->c);
		pop_msg(s);
		if (rc == 1)
			fputs("[stopped]\n", stdout);
		rc = rc == 1 ? 0 : rc;
		goto out;
	}
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
	s->n_ids = s->n_lead = 0;
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
	if (o->system && push_spelled(s, "system", o->system))
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
