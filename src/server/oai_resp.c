/* oai_resp.c: OpenAI responses out of a srv_req (oai.h): the whole object of
 * a finished request, the server-sent-event chunks of a streamed one (as
 * OpenAI and llama-server send them: a role chunk, content / reasoning /
 * tool-call deltas, a chunk with finish_reason, the usage chunk when asked,
 * "data: [DONE]"), errors and the model list. */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "oai.h"

#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

static int put_json(struct sbuf *out, struct json_object *o)
{
	if (!o)
		return FM_ENOMEM;
	int rc = sbuf_adds(out, json_object_to_json_string_ext(o, JSON_FLAGS));
	json_object_put(o);
	return rc;
}

static struct json_object *str_n(const char *s, size_t n)
{
	return json_object_new_string_len(s, (int)n);
}

void oai_call_release(struct oai_call *c)
{
	req_unref(c->r);
	c->r = NULL;
}

int oai_error_json(struct sbuf *out, const struct oai_error *e)
{
	struct json_object *err = json_object_new_object(), *root = json_object_new_object();
	json_object_object_add(err, "message", json_object_new_string(e->msg));
	json_object_object_add(err, "type", json_object_new_string(e->type ? e->type : "server_error"));
	json_object_object_add(err, "param", e->param ? json_object_new_string(e->param) : NULL);
	json_object_object_add(err, "code", e->code ? json_object_new_string(e->code)
						    : json_object_new_int(e->status));
	json_object_object_add(root, "error", err);
	return put_json(out, root);
}

int oai_models_json(struct sbuf *out, const char *model_id, long long created)
{
	struct json_object *root = json_object_new_object(), *data = json_object_new_array();
	struct json_object *m = json_object_new_object();
	json_object_object_add(m, "id", json_object_new_string(model_id));
	json_object_object_add(m, "object", json_object_new_string("model"));
	json_object_object_add(m, "created", json_object_new_int64(created));
	json_object_object_add(m, "owned_by", json_object_new_string("flashmoe"));
	json_object_array_add(data, m);
	json_object_object_add(root, "object", json_object_new_string("list"));
	json_object_object_add(root, "data", data);
	return put_json(out, root);
}

static const char *finish_name(enum req_finish f)
{
	switch (f) {
	case REQ_FINISH_LENGTH: return "length";
	case REQ_FINISH_TOOL_CALLS: return "tool_calls";
	default: return "stop";
	}
}

static struct json_object *usage_json(const struct srv_req *r)
{
	struct json_object *u = json_object_new_object(), *d = json_object_new_object();
	json_object_object_add(u, "prompt_tokens", json_object_new_int(r->n_prompt));
	json_object_object_add(u, "completion_tokens", json_object_new_int(r->n_gen));
	json_object_object_add(u, "total_tokens", json_object_new_int(r->n_prompt + r->n_gen));
	json_object_object_add(d, "cached_tokens", json_object_new_int(r->n_cached));
	json_object_object_add(u, "prompt_tokens_details", d);
	return u;
}

/* {"id", "object", "created", "model", "system_fingerprint"} of every object. */
static struct json_object *head_json(const struct oai_call *c, const char *object)
{
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "id", json_object_new_string(c->id));
	json_object_object_add(o, "object", json_object_new_string(object));
	json_object_object_add(o, "created", json_object_new_int64(c->created));
	json_object_object_add(o, "model", json_object_new_string(c->model_id));
	json_object_object_add(o, "system_fingerprint", json_object_new_string("flashmoe"));
	return o;
}

/* A tool call object: {"index"?, "id", "type", "function": {"name", "arguments"}}. */
static struct json_object *tool_call_json(int index, const char *id, size_t id_len,
					  const char *name, size_t name_len, const char *args,
					  size_t args_len, bool with_index)
{
	struct json_object *t = json_object_new_object(), *f = json_object_new_object();
	if (with_index)
		json_object_object_add(t, "index", json_object_new_int(index));
	if (id) {
		json_object_object_add(t, "id", str_n(id, id_len));
		json_object_object_add(t, "type", json_object_new_string("function"));
	}
	if (name)
		json_object_object_add(f, "name", str_n(name, name_len));
	json_object_object_add(f, "arguments", str_n(args ? args : "", args ? args_len : 0));
	json_object_object_add(t, "function", f);
	return t;
}

/* The message of a finished chat request: content, reasoning, tool calls. */
static struct json_object *chat_message(const struct srv_req *r)
{
	struct sbuf content = { 0 }, reasoning = { 0 }, args = { 0 };
	struct json_object *msg = json_object_new_object(), *calls = json_object_new_array();
	const struct req_ev *begin = NULL;
	sbuf_reserve(&content, 0);
	sbuf_reserve(&reasoning, 0);
	sbuf_reserve(&args, 0);
	for (size_t i = 0; i < r->n_ev; i++) {
		const struct req_ev *ev = &r->ev[i];
		const char *t = r->text.p + ev->off;
		if (ev->kind == REQ_EV_CONTENT)
			sbuf_add(&content, t, ev->len);
		else if (ev->kind == REQ_EV_REASONING)
			sbuf_add(&reasoning, t, ev->len);
		else if (ev->kind == REQ_EV_TOOL_BEGIN)
			begin = ev, args.n = 0;
		else if (ev->kind == REQ_EV_TOOL_ARGS)
			sbuf_add(&args, t, ev->len);
		else if (ev->kind == REQ_EV_TOOL_END && begin)
			json_object_array_add(calls, tool_call_json(
				0, r->text.p + begin->id_off, begin->id_len, r->text.p + begin->off,
				begin->len, args.p, args.n, false)), begin = NULL;
	}
	bool has_calls = json_object_array_length(calls) > 0;
	json_object_object_add(msg, "role", json_object_new_string("assistant"));
	json_object_object_add(msg, "content", has_calls && !content.n ? NULL
					       : str_n(content.p ? content.p : "", content.n));
	if (reasoning.n)
		json_object_object_add(msg, "reasoning_content", str_n(reasoning.p, reasoning.n));
	if (has_calls)
		json_object_object_add(msg, "tool_calls", calls);
	else
		json_object_put(calls);
	sbuf_free(&content);
	sbuf_free(&reasoning);
	sbuf_free(&args);
	return msg;
}

static struct json_object *completion_text(const struct srv_req *r)
{
	struct sbuf text = { 0 };
	sbuf_reserve(&text, 0);
	for (size_t i = 0; i < r->n_ev; i++)
		sbuf_add(&text, r->text.p + r->ev[i].off, r->ev[i].len);
	struct json_object *o = str_n(text.p ? text.p : "", text.n);
	sbuf_free(&text);
	return o;
}

int oai_response(struct sbuf *out, struct oai_call *c)
{
	struct srv_req *r = c->r;
	pthread_mutex_lock(&r->mu);
	bool chat = c->kind == OAI_CHAT;
	struct json_object *root = head_json(c, chat ? "chat.completion" : "text_completion");
	struct json_object *choices = json_object_new_array(), *ch = json_object_new_object();
	json_object_object_add(ch, "index", json_object_new_int(0));
	if (chat)
		json_object_object_add(ch, "message", chat_message(r));
	else
		json_object_object_add(ch, "text", completion_text(r));
	json_object_object_add(ch, "logprobs", NULL);
	json_object_object_add(ch, "finish_reason", json_object_new_string(finish_name(r->finish)));
	json_object_array_add(choices, ch);
	json_object_object_add(root, "choices", choices);
	json_object_object_add(root, "usage", usage_json(r));
	pthread_mutex_unlock(&r->mu);
	return put_json(out, root);
}

/* "data: {chunk}\n\n" with one choice: delta (chat) or text (completion). */
static int put_chunk(struct sbuf *out, const struct oai_call *c, struct json_object *delta,
		     const char *finish)
{
	bool chat = c->kind == OAI_CHAT;
	struct json_object *root = head_json(c, chat ? "chat.completion.chunk" : "text_completion");
	struct json_object *choices = json_object_new_array(), *ch = json_object_new_object();
	json_object_object_add(ch, "index", json_object_new_int(0));
	json_object_object_add(ch, chat ? "delta" : "text", delta);
	json_object_object_add(ch, "logprobs", NULL);
	json_object_object_add(ch, "finish_reason", finish ? json_object_new_string(finish) : NULL);
	json_object_array_add(choices, ch);
	json_object_object_add(root, "choices", choices);
	int rc = sbuf_add(out, "data: ", 6);
	if (!rc)
		rc = put_json(out, root);
	else
		json_object_put(root);
	return rc ? rc : sbuf_add(out, "\n\n", 2);
}

static struct json_object *delta_text(const char *key, const char *t, size_t n)
{
	struct json_object *d = json_object_new_object();
	json_object_object_add(d, key, str_n(t, n));
	return d;
}

static struct json_object *delta_tool(struct json_object *call)
{
	struct json_object *d = json_object_new_object(), *a = json_object_new_array();
	json_object_array_add(a, call);
	json_object_object_add(d, "tool_calls", a);
	return d;
}

int oai_stream_events(struct sbuf *out, struct oai_call *c, size_t from, size_t to)
{
	const struct srv_req *r = c->r;
	int rc = 0;
	if (c->kind == OAI_CHAT && !c->sent_role) {
		struct json_object *d = json_object_new_object();
		json_object_object_add(d, "role", json_object_new_string("assistant"));
		json_object_object_add(d, "content", json_object_new_string(""));
		rc = put_chunk(out, c, d, NULL);
		c->sent_role = true;
	}
	for (size_t i = from; i < to && !rc;) {
		const struct req_ev *ev = &r->ev[i];
		const char *t = r->text.p + ev->off;
		size_t n = ev->len, j = i + 1;
		if (ev->kind == REQ_EV_CONTENT || ev->kind == REQ_EV_REASONING) {
			/* adjacent text of one kind goes out as one chunk */
			while (j < to && r->ev[j].kind == ev->kind)
				n += r->ev[j++].len;
			if (!n) {
				i = j;
				continue;
			}
			if (c->kind == OAI_COMPLETION)
				rc = put_chunk(out, c, str_n(t, n), NULL);
			else
				rc = put_chunk(out, c, delta_text(ev->kind == REQ_EV_CONTENT ? "content"
									: "reasoning_content", t, n), NULL);
		} else if (ev->kind == REQ_EV_TOOL_BEGIN) {
			rc = put_chunk(out, c, delta_tool(tool_call_json(
				c->n_tools_seen++, r->text.p + ev->id_off, ev->id_len, t, n, NULL, 0,
				true)), NULL);
		} else if (ev->kind == REQ_EV_TOOL_ARGS && n) {
			rc = put_chunk(out, c, delta_tool(tool_call_json(
				c->n_tools_seen - 1, NULL, 0, NULL, 0, t, n, true)), NULL);
		}
		i = j;
	}
	return rc;
}

int oai_stream_end(struct sbuf *out, struct oai_call *c)
{
	const struct srv_req *r = c->r;
	if (r->finish == REQ_FINISH_ERROR || r->finish == REQ_FINISH_CANCELED) {
		struct oai_error e = { .status = 500, .type = "server_error" };
		snprintf(e.msg, sizeof(e.msg), "%s", r->err[0] ? r->err : "the request was canceled");
		int rc = sbuf_add(out, "data: ", 6);
		if (!rc)
			rc = oai_error_json(out, &e);
		return rc ? rc : sbuf_add(out, "\n\n", 2);
	}
	int rc = oai_stream_events(out, c, r->n_ev, r->n_ev); /* the role chunk, if none yet */
	if (!rc)
		rc = put_chunk(out, c, c->kind == OAI_CHAT ? json_object_new_object()
							   : json_object_new_string(""),
			       finish_name(r->finish));
	if (!rc && c->include_usage) {
		struct json_object *root = head_json(c, c->kind == OAI_CHAT ? "chat.completion.chunk"
									   : "text_completion");
		json_object_object_add(root, "choices", json_object_new_array());
		json_object_object_add(root, "usage", usage_json(r));
		rc = sbuf_add(out, "data: ", 6);
		if (!rc)
			rc = put_json(out, root);
		else
			json_object_put(root);
		if (!rc)
			rc = sbuf_add(out, "\n\n", 2);
	}
	return rc ? rc : sbuf_add(out, "data: [DONE]\n\n", 14);
}
