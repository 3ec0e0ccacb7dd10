/* req.h: one generation request as the HTTP side and the engine thread share
 * it. The HTTP side fills the input, submits it (engine.h) and reads the
 * output events; the engine thread appends events and finishes it. Owns the
 * request's memory (two references: one per side); no HTTP, no JSON. */
#ifndef FM_SERVER_REQ_H
#define FM_SERVER_REQ_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "flashmoe.h"

#define REQ_MAX_STOP 16

enum req_ev_kind {
	REQ_EV_CONTENT,
	REQ_EV_REASONING,
	REQ_EV_TOOL_BEGIN, /* text = the function's name, id = the call's id */
	REQ_EV_TOOL_ARGS,  /* text = a fragment of the arguments' JSON text */
	REQ_EV_TOOL_END,
};

/* An output event; its text is req.text[off, off + len). */
struct req_ev {
	enum req_ev_kind kind;
	size_t off, len;
	size_t id_off, id_len; /* REQ_EV_TOOL_BEGIN: the call's id in req.text */
};

enum req_finish {
	REQ_GOING,
	REQ_FINISH_STOP,      /* end-of-generation token or a stop string */
	REQ_FINISH_LENGTH,    /* max_tokens or the context's end */
	REQ_FINISH_TOOL_CALLS,
	REQ_FINISH_ERROR,     /* err holds the message */
	REQ_FINISH_CANCELED,  /* the client left, or the server stops */
};

struct srv_req {
	/* input: set before engine_submit, read-only afterwards */
	int32_t *prompt;          /* [n_prompt], malloc'd */
	int n_prompt;
	int max_tokens;           /* >= 1, already capped by the context */
	struct fm_sampler_params sp;
	char *stop[REQ_MAX_STOP]; /* stop strings, malloc'd */
	int n_stop;
	bool chat;                /* parse the output (reasoning, tool calls) */
	bool in_think;            /* the prompt ends inside <think> */
	bool tools;               /* tools were offered: parse <tool_call> */
	const char *tmpl;         /* chat template name (for the output parser) */

	/* output: under mu */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct req_ev *ev;
	size_t n_ev, cap_ev;
	struct sbuf text;
	enum req_finish finish;
	char err[512];
	int n_gen, n_cached;      /* completion tokens; prompt tokens reused from a slot */
	bool has_tool_calls;
	double t_submit, t_first, t_end; /* seconds (CLOCK_MONOTONIC) */

	atomic_bool cancel;       /* set by the HTTP side: stop and free the slot */
	atomic_int refs;
};

double req_now_s(void);
/* A request with one reference (the caller's); NULL when out of memory. */
struct srv_req *req_new(void);
void req_ref(struct srv_req *r);
void req_unref(struct srv_req *r);

/* Engine side, mu not held: append an event (text made valid UTF-8). */
int req_emit(struct srv_req *r, enum req_ev_kind kind, const char *text, size_t len,
	     const char *id);
/* Engine side: finish with why (and a message for REQ_FINISH_ERROR). */
void req_finish(struct srv_req *r, enum req_finish why, const char *msg);

/* HTTP side, mu held: wait until there are events past n_seen or the request
 * has finished, at most timeout_ms. */
void req_wait_locked(struct srv_req *r, size_t n_seen, int timeout_ms);

#endif
