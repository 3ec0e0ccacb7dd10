/* oai.h: the OpenAI API's JSON for the server: requests of
 * /v1/chat/completions and /v1/completions into a srv_req (rendered with the
 * model's chat template and tokenized), and responses, stream chunks and
 * errors out of it. Uses json-c and flashmoe.h; no HTTP, no threads. */
#ifndef FM_SERVER_OAI_H
#define FM_SERVER_OAI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "flashmoe.h"
#include "req.h"

/* What a request is parsed against (borrowed). */
struct oai_env {
	const struct fm_tokenizer *tk;
	const char *tmpl;       /* chat template name */
	const char *model_id;   /* the id /v1/models lists */
	int n_ctx;              /* tokens per slot */
	uint64_t seed_base;     /* seeds of requests without one derive from it */
};

enum oai_kind { OAI_CHAT, OAI_COMPLETION };

/* One call: the request and how to answer it. */
struct oai_call {
	enum oai_kind kind;
	bool stream, include_usage;
	char id[64];
	long long created;
	const char *model_id;   /* borrowed from the env */
	struct srv_req *r;      /* one reference, owned by the call */
	bool sent_role;         /* stream: the first chunk went out */
	int n_tools_seen;       /* stream: tool calls begun so far */
};

/* An error as OpenAI's {"error": {message, type, param, code}}. */
struct oai_error {
	int status;             /* HTTP status */
	const char *type;       /* "invalid_request_error", ... */
	const char *param;      /* the offending field, or NULL */
	const char *code;       /* or NULL */
	char msg[512];
};

/* Fill e; returns -1 (for `return oai_fail(...)`). */
int oai_fail(struct oai_error *e, int status, const char *type, const char *param,
	     const char *code, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
int oai_error_json(struct sbuf *out, const struct oai_error *e);

/* Parse a request body into c (c->r made with the prompt's tokens). 0, or
 * -1 with e filled (nothing to free). */
int oai_parse(const struct oai_env *env, enum oai_kind kind, const char *body, size_t len,
	      struct oai_call *c, struct oai_error *e);
void oai_call_release(struct oai_call *c);

/* The whole response of a finished request (non-streaming). */
int oai_response(struct sbuf *out, struct oai_call *c);
/* Stream: SSE chunks for the request's events [from, to) (r->mu held). */
int oai_stream_events(struct sbuf *out, struct oai_call *c, size_t from, size_t to);
/* Stream: the last chunks of a finished request and "data: [DONE]" (r->mu
 * held); an error event instead when it failed. */
int oai_stream_end(struct sbuf *out, struct oai_call *c);

/* POST /apply-template: {"prompt": the chat request's rendered prompt}. 0, or
 * -1 with e filled. */
int oai_apply_template(const struct oai_env *env, const char *body, size_t len, struct sbuf *out,
		       struct oai_error *e);

/* GET /v1/models. */
int oai_models_json(struct sbuf *out, const char *model_id, long long created);

#endif
