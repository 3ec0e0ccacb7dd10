/* req.c: the request object shared by the HTTP side and the engine (req.h). */
#include "req.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double req_now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

struct srv_req *req_new(void)
{
	struct srv_req *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, &ca);
	pthread_condattr_destroy(&ca);
	fm_sampler_params_default(&r->sp);
	atomic_init(&r->refs, 1);
	atomic_init(&r->cancel, false);
	r->t_submit = req_now_s();
	return r;
}

void req_ref(struct srv_req *r)
{
	atomic_fetch_add(&r->refs, 1);
}

void req_unref(struct srv_req *r)
{
	if (!r || atomic_fetch_sub(&r->refs, 1) != 1)
		return;
	free(r->prompt);
	for (int i = 0; i < r->n_stop; i++)
		free(r->stop[i]);
	free(r->ev);
	sbuf_free(&r->text);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

int req_emit(struct srv_req *r, enum req_ev_kind kind, const char *text, size_t len,
	     const char *id)
{
	pthread_mutex_lock(&r->mu);
	int rc = 0;
	if (r->n_ev == r->cap_ev) {
		size_t cap = r->cap_ev ? 2 * r->cap_ev : 64;
		struct req_ev *p = realloc(r->ev, cap * sizeof(*p));
		if (!p) {
			rc = FM_ENOMEM;
			goto out;
		}
		r->ev = p;
		r->cap_ev = cap;
	}
	struct req_ev e = { .kind = kind, .off = r->text.n };
	if ((rc = sbuf_add_utf8(&r->text, text, len)))
		goto out;
	e.len = r->text.n - e.off;
	e.id_off = r->text.n;
	if (id && (rc = sbuf_add_utf8(&r->text, id, strlen(id))))
		goto out;
	e.id_len = r->text.n - e.id_off;
	r->ev[r->n_ev++] = e;
	if (kind == REQ_EV_TOOL_BEGIN)
		r->has_tool_calls = true;
	if (!r->t_first)
		r->t_first = req_now_s();
	pthread_cond_broadcast(&r->cv);
out:
	pthread_mutex_unlock(&r->mu);
	return rc;
}

void req_finish(struct srv_req *r, enum req_finish why, const char *msg)
{
	pthread_mutex_lock(&r->mu);
	if (r->finish == REQ_GOING) {
		r->finish = why;
		if (msg)
			strncpy(r->err, msg, sizeof(r->err) - 1);
		r->t_end = req_now_s();
	}
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

void req_wait_locked(struct srv_req *r, size_t n_seen, int timeout_ms)
{
	if (r->n_ev > n_seen || r->finish != REQ_GOING)
		return;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_nsec += (long)timeout_ms * 1000000L;
	ts.tv_sec += ts.tv_nsec / 1000000000L;
	ts.tv_nsec %= 1000000000L;
	while (r->n_ev <= n_seen && r->finish == REQ_GOING)
		if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) == ETIMEDOUT)
			break;
}
