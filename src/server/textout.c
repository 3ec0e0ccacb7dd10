/* textout.c: stop strings and the chat output parser between the decoder
 * and the request (textout.h). */
#include "textout.h"

#include <stdint.h>
#include <string.h>

/* The chat output parser's events as the request's. */
static void on_chat_event(const struct fm_chat_event *ev, void *user)
{
	struct srv_req *r = user;
	switch (ev->kind) {
	case FM_CHAT_CONTENT:
		req_emit(r, REQ_EV_CONTENT, ev->text, ev->len, NULL);
		break;
	case FM_CHAT_REASONING:
		req_emit(r, REQ_EV_REASONING, ev->text, ev->len, NULL);
		break;
	case FM_CHAT_TOOL_CALL_BEGIN:
		req_emit(r, REQ_EV_TOOL_BEGIN, ev->name, strlen(ev->name), ev->id);
		break;
	case FM_CHAT_TOOL_CALL_ARGS:
		req_emit(r, REQ_EV_TOOL_ARGS, ev->text, ev->len, NULL);
		break;
	case FM_CHAT_TOOL_CALL_END:
		req_emit(r, REQ_EV_TOOL_END, "", 0, NULL);
		break;
	}
}

/* Text past the stop strings: through the chat parser, or content as it is. */
static void out(struct textout *t, const char *text, size_t len)
{
	if (!len)
		return;
	if (t->parser)
		fm_chat_parser_feed(t->parser, text, len, on_chat_event, t->r);
	else
		req_emit(t->r, REQ_EV_CONTENT, text, len, NULL);
}

/* Longest k < strlen(stop) such that text ends with stop's first k bytes. */
static size_t stop_overlap(const char *text, size_t n, const char *stop)
{
	size_t ls = strlen(stop);
	for (size_t k = ls - 1 < n ? ls - 1 : n; k > 0; k--)
		if (!memcmp(text + n - k, stop, k))
			return k;
	return 0;
}

int textout_start(struct textout *t, struct srv_req *r)
{
	textout_release(t);
	t->r = r;
	t->held.n = 0;
	t->stopped = false;
	if (sbuf_reserve(&t->held, 0))
		return FM_ENOMEM;
	if (r->chat && !(t->parser = fm_chat_parser_new(r->tmpl, r->in_think, r->tools)))
		return FM_ENOMEM;
	return 0;
}

bool textout_feed(struct textout *t, const char *text, size_t len)
{
	struct srv_req *r = t->r;
	if (!r->n_stop) {
		out(t, text, len);
		return false;
	}
	if (sbuf_add(&t->held, text, len))
		return false;
	size_t cut = SIZE_MAX;
	for (int i = 0; i < r->n_stop; i++) {
		const char *p = memmem(t->held.p, t->held.n, r->stop[i], strlen(r->stop[i]));
		if (p && (size_t)(p - t->held.p) < cut)
			cut = (size_t)(p - t->held.p);
	}
	if (cut != SIZE_MAX) {
		out(t, t->held.p, cut);
		t->held.n = 0;
		t->stopped = true;
		return true;
	}
	size_t keep = 0;
	for (int i = 0; i < r->n_stop; i++) {
		size_t k = stop_overlap(t->held.p, t->held.n, r->stop[i]);
		keep = k > keep ? k : keep;
	}
	size_t send = utf8_complete_len(t->held.p, t->held.n - keep);
	out(t, t->held.p, send);
	sbuf_consume(&t->held, send);
	return false;
}

enum req_finish textout_end(struct textout *t, enum req_finish why, const char *tail, size_t n_tail)
{
	if (!t->stopped) {
		if (n_tail && textout_feed(t, tail, n_tail))
			why = REQ_FINISH_STOP;
		else
			out(t, t->held.p, t->held.n);
	}
	t->held.n = 0;
	if (t->parser)
		fm_chat_parser_finish(t->parser, on_chat_event, t->r);
	textout_release(t);
	pthread_mutex_lock(&t->r->mu);
	bool calls = t->r->has_tool_calls;
	pthread_mutex_unlock(&t->r->mu);
	return why == REQ_FINISH_STOP && calls ? REQ_FINISH_TOOL_CALLS : why;
}

void textout_release(struct textout *t)
{
	fm_chat_parser_free(t->parser);
	t->parser = NULL;
}

void textout_free(struct textout *t)
{
	textout_release(t);
	sbuf_free(&t->held);
}
