/* oai_req.c: OpenAI requests into srv_req (oai.h): the JSON fields, the chat
 * messages rendered with the model's template, the prompt's tokens. Every
 * field is checked for its type and range; a bad one is a 400 naming it. */
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "oai.h"

/* Nesting deeper than this is refused (json-c recurses per level). */
#define OAI_JSON_DEPTH 64

int oai_fail(struct oai_error *e, int status, const char *type, const char *param,
	     const char *code, const char *fmt, ...)
{
	e->status = status;
	e->type = type;
	e->param = param;
	e->code = code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return -1;
}

static int bad(struct oai_error *e, const char *param, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int bad(struct oai_error *e, const char *param, const char *fmt, ...)
{
	char msg[480];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return oai_fail(e, 400, "invalid_request_error", param, NULL, "%s", msg);
}

static bool is_number(struct json_object *v)
{
	return json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double);
}

/* A number field in [lo, hi] into *out; absent or null: unchanged. */
static int get_num(struct json_object *root, const char *key, double lo, double hi, double *out,
		   struct oai_error *e)
{
	struct json_object *v;
	if (!json_object_object_get_ex(root, key, &v) || json_object_is_type(v, json_type_null))
		return 0;
	double x = json_object_get_double(v);
	if (!is_number(v) || !(x >= lo && x <= hi))
		return bad(e, key, "'%s' must be a number in [%g, %g]", key, lo, hi);
	*out = x;
	return 0;
}

/* An integer field in [lo, hi]; absent or null: unchanged. */
static int get_int(struct json_object *root, const char *key, int64_t lo, int64_t hi,
		   int64_t *out, struct oai_error *e)
{
	struct json_object *v;
	if (!json_object_object_get_ex(root, key, &v) || json_object_is_type(v, json_type_null))
		return 0;
	int64_t x = json_object_get_int64(v);
	if (!json_object_is_type(v, json_type_int) || x < lo || x > hi)
		return bad(e, key, "'%s' must be an integer in [%lld, %lld]", key, (long long)lo,
			   (long long)hi);
	*out = x;
	return 0;
}

static int get_bool(struct json_object *root, const char *key, bool *out, struct oai_error *e)
{
	struct json_object *v;
	if (!json_object_object_get_ex(root, key, &v) || json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, json_type_boolean))
		return bad(e, key, "'%s' must be true or false", key);
	*out = json_object_get_boolean(v);
	return 0;
}

/* 64 random bits (the kernel's generator; else mixed from the clock). */
static uint64_t random_u64(uint64_t salt)
{
	uint64_t x = 0;
	if (getrandom(&x, sizeof(x), GRND_NONBLOCK) != (ssize_t)sizeof(x))
		x = salt ^ (uint64_t)(req_now_s() * 1e9) * 0x9e3779b97f4a7c15ull;
	return x;
}

static int add_stop(struct srv_req *r, const char *s, struct oai_error *e)
{
	if (!*s)
		return 0;
	if (r->n_stop == REQ_MAX_STOP)
		return bad(e, "stop", "at most %d stop strings", REQ_MAX_STOP);
	if (!(r->stop[r->n_stop] = strdup(s)))
		return oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
	r->n_stop++;
	return 0;
}

/* "stop": a string or an array of strings. */
static int parse_stop(struct json_object *root, struct srv_req *r, struct oai_error *e)
{
	struct json_object *v;
	if (!json_object_object_get_ex(root, "stop", &v) || json_object_is_type(v, json_type_null))
		return 0;
	if (json_object_is_type(v, json_type_string))
		return add_stop(r, json_object_get_string(v), e);
	if (!json_object_is_type(v, json_type_array))
		return bad(e, "stop", "'stop' must be a string or an array of strings");
	for (size_t i = 0; i < json_object_array_length(v); i++) {
		struct json_object *s = json_object_array_get_idx(v, i);
		if (!json_object_is_type(s, json_type_string))
			return bad(e, "stop", "'stop' must be a string or an array of strings");
		if (add_stop(r, json_object_get_string(s), e))
			return -1;
	}
	return 0;
}

/* Fields common to both endpoints: sampling, stream, stop, n, model. */
static int parse_common(const struct oai_env *env, struct json_object *root, struct oai_call *c,
			int64_t *max_tokens, struct oai_error *e)
{
	struct srv_req *r = c->r;
	struct json_object *v;
	if (json_object_object_get_ex(root, "model", &v) && !json_object_is_type(v, json_type_null)) {
		if (!json_object_is_type(v, json_type_string))
			return bad(e, "model", "'model' must be a string");
		const char *id = json_object_get_string(v);
		if (*id && strcmp(id, env->model_id))
			return oai_fail(e, 404, "invalid_request_error", "model", "model_not_found",
					"The model '%s' does not exist; this server has '%s'", id,
					env->model_id);
	}
	double temp = r->sp.temp, top_p = r->sp.top_p, min_p = r->sp.min_p;
	double rep = r->sp.repeat_penalty;
	int64_t n = 1, top_k = r->sp.top_k, seed = -1;
	if (get_num(root, "temperature", 0, 2, &temp, e) || get_num(root, "top_p", 0, 1, &top_p, e) ||
	    get_num(root, "min_p", 0, 1, &min_p, e) ||
	    get_num(root, "repeat_penalty", 0.01, 100, &rep, e) ||
	    get_int(root, "top_k", 0, 1 << 24, &top_k, e) ||
	    get_int(root, "seed", INT64_MIN, INT64_MAX, &seed, e) ||
	    get_int(root, "n", 1, 1 << 20, &n, e) ||
	    get_int(root, "max_tokens", 1, INT32_MAX, max_tokens, e) ||
	    get_int(root, "max_completion_tokens", 1, INT32_MAX, max_tokens, e) ||
	    get_bool(root, "stream", &c->stream, e) || parse_stop(root, r, e))
		return -1;
	if (n != 1)
		return bad(e, "n", "only n = 1 is supported");
	r->sp.temp = (float)temp;
	r->sp.top_p = (float)top_p;
	r->sp.min_p = (float)min_p;
	r->sp.repeat_penalty = (float)rep;
	r->sp.top_k = (int)top_k;
	/* no seed: a different one per request */
	r->sp.seed = json_object_object_get_ex(root, "seed", &v) && !json_object_is_type(v, json_type_null)
			     ? (uint64_t)seed
			     : random_u64(env->seed_base);
	if (json_object_object_get_ex(root, "stream_options", &v) &&
	    !json_object_is_type(v, json_type_null)) {
		if (!json_object_is_type(v, json_type_object))
			return bad(e, "stream_options", "'stream_options' must be an object");
		if (get_bool(v, "include_usage", &c->include_usage, e))
			return -1;
	}
	return 0;
}

/* Tokens of text into r->prompt (BOS first when the tokenizer wants it). */
static int tokenize(const struct oai_env *env, const char *text, size_t len, struct srv_req *r,
		    struct oai_error *e)
{
	int lead = fm_tokenizer_add_bos(env->tk) && fm_tokenizer_bos(env->tk) >= 0;
	if (len > (size_t)INT32_MAX / 4)
		return bad(e, "messages", "the prompt is too long");
	int cap = (int)len + 16;
	for (;;) {
		int32_t *ids = malloc(((size_t)cap + 1) * sizeof(int32_t));
		if (!ids)
			return oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
		int k = fm_tokenizer_encode(env->tk, text, len, true, ids + lead, cap);
		if (k >= 0 && k <= cap) {
			if (lead)
				ids[0] = fm_tokenizer_bos(env->tk);
			free(r->prompt);
			r->prompt = ids;
			r->n_prompt = k + lead;
			return 0;
		}
		free(ids);
		if (k < 0)
			return bad(e, NULL, "the prompt cannot be tokenized (error %d)", k);
		cap = k;
	}
}

/* The prompt must leave room for one generated token; max_tokens is capped
 * by what is left of the context. */
static int fit_context(const struct oai_env *env, struct srv_req *r, int64_t max_tokens,
		       struct oai_error *e)
{
	if (r->n_prompt < 1)
		return bad(e, "prompt", "the prompt is empty");
	if (r->n_prompt >= env->n_ctx)
		return oai_fail(e, 400, "invalid_request_error", "messages", "context_length_exceeded",
				"the prompt has %d tokens; the context holds %d (one more is "
				"needed for the answer): shorten it or start the server with a "
				"larger -c", r->n_prompt, env->n_ctx);
	int left = env->n_ctx - r->n_prompt;
	r->max_tokens = max_tokens > 0 && max_tokens < left ? (int)max_tokens : left;
	return 0;
}

/* ---- chat ---- */

/* Message content: a string, null, or an array of {"type":"text","text":..}
 * parts (joined; malloc'd into *own). */
static int msg_content(struct json_object *m, const char **out, char **own, struct oai_error *e)
{
	struct json_object *v;
	*out = NULL;
	if (!json_object_object_get_ex(m, "content", &v) || json_object_is_type(v, json_type_null))
		return 0;
	if (json_object_is_type(v, json_type_string)) {
		*out = json_object_get_string(v);
		return 0;
	}
	if (!json_object_is_type(v, json_type_array))
		return bad(e, "messages", "a message's 'content' must be a string or an array of parts");
	struct sbuf b = { 0 };
	if (sbuf_reserve(&b, 0))
		return oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
	for (size_t i = 0; i < json_object_array_length(v); i++) {
		struct json_object *part = json_object_array_get_idx(v, i), *type, *text;
		if (!json_object_is_type(part, json_type_object) ||
		    !json_object_object_get_ex(part, "type", &type) ||
		    strcmp(json_object_get_string(type), "text") ||
		    !json_object_object_get_ex(part, "text", &text) ||
		    !json_object_is_type(text, json_type_string)) {
			sbuf_free(&b);
			return bad(e, "messages", "only text content parts ({\"type\": \"text\", "
						  "\"text\": ...}) are supported");
		}
		if (sbuf_adds(&b, json_object_get_string(text))) {
			sbuf_free(&b);
			return oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
		}
	}
	*out = *own = b.p;
	return 0;
}

static const char *msg_role(struct json_object *m)
{
	static const char *const roles[] = { "system", "user", "assistant", "tool" };
	struct json_object *v;
	if (!json_object_object_get_ex(m, "role", &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	const char *s = json_object_get_string(v);
	if (!strcmp(s, "developer"))
		return "system";
	for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
		if (!strcmp(s, roles[i]))
			return roles[i];
	return NULL;
}

/* The messages: msgs[n] borrow from root, except own[] and calls[]
 * (freed by chat_msgs_free). */
struct chat_msgs {
	struct fm_chat_msg *msgs;
	char **own;
	struct fm_chat_tool_call **calls;
	size_t n, cap;  /* messages parsed; room (own[] and calls[] are zeroed) */
};

static void chat_msgs_free(struct chat_msgs *cm)
{
	for (size_t i = 0; i < cm->cap; i++) {
		free(cm->own ? cm->own[i] : NULL);
		free(cm->calls ? cm->calls[i] : NULL);
	}
	free(cm->own);
	free(cm->calls);
	free(cm->msgs);
}

/* A string field of o, or NULL. */
static const char *get_str(struct json_object *o, const char *key)
{
	struct json_object *v;
	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* An assistant message's "tool_calls": [{id, type, function: {name,
 * arguments (a JSON string, or an object)}}] into calls[] (malloc'd). */
static int msg_tool_calls(struct json_object *m, struct fm_chat_msg *msg,
			  struct fm_chat_tool_call **calls, struct oai_error *e)
{
	struct json_object *arr;
	if (!json_object_object_get_ex(m, "tool_calls", &arr) || json_object_is_type(arr, json_type_null))
		return 0;
	size_t n = json_object_is_type(arr, json_type_array) ? json_object_array_length(arr) : 0;
	if (!json_object_is_type(arr, json_type_array))
		return bad(e, "messages", "a message's 'tool_calls' must be an array");
	if (!n)
		return 0;
	if (!(*calls = calloc(n, sizeof(**calls))))
		return oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
	for (size_t i = 0; i < n; i++) {
		struct json_object *tc = json_object_array_get_idx(arr, i), *f, *args;
		if (!json_object_is_type(tc, json_type_object) ||
		    !json_object_object_get_ex(tc, "function", &f) ||
		    !json_object_is_type(f, json_type_object) || !get_str(f, "name"))
			return bad(e, "messages", "tool_calls[%zu] needs a function with a name", i);
		(*calls)[i].id = get_str(tc, "id");
		(*calls)[i].name = get_str(f, "name");
		if (!json_object_object_get_ex(f, "arguments", &args) ||
		    json_object_is_type(args, json_type_null))
			(*calls)[i].arguments = "{}";
		else if (json_object_is_type(args, json_type_string))
			(*calls)[i].arguments = json_object_get_string(args);
		else
			(*calls)[i].arguments = json_object_to_json_string_ext(args, JSON_C_TO_STRING_PLAIN);
	}
	msg->tool_calls = *calls;
	msg->n_tool_calls = n;
	return 0;
}

static int chat_msgs_parse(struct json_object *root, struct chat_msgs *cm, struct oai_error *e)
{
	struct json_object *arr;
	if (!json_object_object_get_ex(root, "messages", &arr) ||
	    !json_object_is_type(arr, json_type_array))
		return bad(e, "messages", "'messages' must be an array of messages");
	size_t n = json_object_array_length(arr);
	if (!n)
		return bad(e, "messages", "'messages' is empty");
	cm->msgs = calloc(n, sizeof(*cm->msgs));
	cm->own = calloc(n, sizeof(*cm->own));
	cm->calls = calloc(n, sizeof(*cm->calls));
	cm->cap = n;
	if (!cm->msgs || !cm->own || !cm->calls)
		return oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
	for (size_t i = 0; i < n; i++, cm->n++) {
		struct json_object *m = json_object_array_get_idx(arr, i);
		struct fm_chat_msg *msg = &cm->msgs[i];
		if (!json_object_is_type(m, json_type_object))
			return bad(e, "messages", "messages[%zu] is not an object", i);
		if (!(msg->role = msg_role(m)))
			return bad(e, "messages", "messages[%zu]: 'role' must be system, developer, "
						  "user, assistant or tool", i);
		if (msg_content(m, &msg->content, &cm->own[i], e))
			return -1;
		if (!strcmp(msg->role, "assistant")) {
			msg->reasoning_content = get_str(m, "reasoning_content");
			if (msg_tool_calls(m, msg, &cm->calls[i], e))
				return -1;
		}
	}
	return 0;
}

/* "tools" (OpenAI's array of {"type": "function", "function": {name, ...}})
 * as JSON text for the template, unless "tool_choice" is "none". NULL when
 * there are none. */
static int chat_tools(struct json_object *root, const char **json, struct oai_error *e)
{
	struct json_object *tools, *choice;
	*json = NULL;
	if (!json_object_object_get_ex(root, "tools", &tools) || json_object_is_type(tools, json_type_null))
		return 0;
	if (!json_object_is_type(tools, json_type_array))
		return bad(e, "tools", "'tools' must be an array");
	for (size_t i = 0; i < json_object_array_length(tools); i++) {
		struct json_object *t = json_object_array_get_idx(tools, i), *f;
		const char *type = json_object_is_type(t, json_type_object) ? get_str(t, "type") : NULL;
		if (!type || strcmp(type, "function") || !json_object_object_get_ex(t, "function", &f) ||
		    !json_object_is_type(f, json_type_object) || !get_str(f, "name"))
			return bad(e, "tools", "tools[%zu] must be {\"type\": \"function\", \"function\": "
					       "{\"name\": ..., ...}}", i);
	}
	if (json_object_object_get_ex(root, "tool_choice", &choice)) {
		if (json_object_is_type(choice, json_type_string)) {
			const char *c = json_object_get_string(choice);
			if (!strcmp(c, "none"))
				return 0;
			if (strcmp(c, "auto") && strcmp(c, "required"))
				return bad(e, "tool_choice", "'tool_choice' must be none, auto, required or "
							     "{\"type\": \"function\", ...}");
		} else if (!json_object_is_type(choice, json_type_object) &&
			   !json_object_is_type(choice, json_type_null)) {
			return bad(e, "tool_choice", "'tool_choice' must be a string or an object");
		}
	}
	if (json_object_array_length(tools))
		*json = json_object_to_json_string_ext(tools, JSON_C_TO_STRING_PLAIN);
	return 0;
}

/* The chat request's prompt: its messages (and tools) rendered with the
 * template, add_generation_prompt on; *tools set when it has tools. */
static int chat_text(const struct oai_env *env, struct json_object *root, struct sbuf *text,
		     const char **tools, struct oai_error *e)
{
	struct chat_msgs cm = { 0 };
	bool think = true;
	struct json_object *kw;
	*tools = NULL;
	int rc = chat_msgs_parse(root, &cm, e);
	if (!rc)
		rc = chat_tools(root, tools, e);
	if (!rc && json_object_object_get_ex(root, "chat_template_kwargs", &kw) &&
	    json_object_is_type(kw, json_type_object))
		rc = get_bool(kw, "enable_thinking", &think, e);
	size_t len = 0;
	if (!rc && fm_chat_render_tools(env->tmpl, cm.msgs, cm.n, *tools, true, think, NULL, 0, &len))
		rc = bad(e, "messages", "the messages cannot be rendered with the model's '%s' template "
					"(its rules: a system message only first, a user message "
					"before the answer, tool-call arguments as JSON objects)", env->tmpl);
	if (!rc && sbuf_reserve(text, len))
		rc = oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
	if (!rc && fm_chat_render_tools(env->tmpl, cm.msgs, cm.n, *tools, true, think, text->p,
					text->cap, &len))
		rc = bad(e, "messages", "the messages cannot be rendered");
	if (!rc)
		text->n = len;
	chat_msgs_free(&cm);
	return rc;
}

/* Render the messages with the template; the prompt tokens into c->r. */
static int chat_prompt(const struct oai_env *env, struct json_object *root, struct oai_call *c,
		       struct oai_error *e)
{
	struct sbuf text = { 0 };
	const char *tools = NULL;
	int rc = chat_text(env, root, &text, &tools, e);
	if (!rc) {
		/* the generation prompt opened <think> (qwen35): output starts as reasoning */
		const char *open = NULL, *close = NULL;
		for (const char *p = text.p; (p = strstr(p, "<think>")); p++)
			open = p;
		for (const char *p = text.p; (p = strstr(p, "</think>")); p++)
			close = p;
		c->r->in_think = open && (!close || close < open);
		rc = tokenize(env, text.p, text.n, c->r, e);
	}
	c->r->chat = true;
	c->r->tools = tools != NULL;
	c->r->tmpl = env->tmpl;
	sbuf_free(&text);
	return rc;
}

/* ---- completions ---- */

/* "prompt": a string, an array of token ids, or an array holding one of
 * these. */
static int completion_prompt(const struct oai_env *env, struct json_object *root,
			     struct srv_req *r, struct oai_error *e)
{
	struct json_object *p;
	if (!json_object_object_get_ex(root, "prompt", &p))
		return bad(e, "prompt", "'prompt' is missing");
	if (json_object_is_type(p, json_type_array) && json_object_array_length(p) == 1 &&
	    !json_object_is_type(json_object_array_get_idx(p, 0), json_type_int))
		p = json_object_array_get_idx(p, 0);
	if (json_object_is_type(p, json_type_string))
		return tokenize(env, json_object_get_string(p), (size_t)json_object_get_string_len(p),
				r, e);
	if (!json_object_is_type(p, json_type_array))
		return bad(e, "prompt", "'prompt' must be a string or an array of token ids");
	size_t n = json_object_array_length(p);
	int n_vocab = fm_tokenizer_n_vocab(env->tk);
	if (!n || n > (size_t)env->n_ctx)
		return bad(e, "prompt", "'prompt' has %zu token ids; 1 to %d are allowed", n, env->n_ctx);
	r->prompt = malloc(n * sizeof(int32_t));
	if (!r->prompt)
		return oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
	for (size_t i = 0; i < n; i++) {
		struct json_object *t = json_object_array_get_idx(p, i);
		int64_t id = json_object_get_int64(t);
		if (!json_object_is_type(t, json_type_int) || id < 0 || id >= n_vocab)
			return bad(e, "prompt", "'prompt'[%zu] is not a token id below %d (one prompt "
						"per request)", i, n_vocab);
		r->prompt[i] = (int32_t)id;
	}
	r->n_prompt = (int)n;
	return 0;
}

/* ---- the call ---- */

static void make_id(struct oai_call *c, const char *prefix)
{
	static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
	uint64_t x = random_u64(c->r->sp.seed) | 1;
	size_t k = (size_t)snprintf(c->id, sizeof(c->id), "%s", prefix);
	for (int i = 0; i < 24 && k + 1 < sizeof(c->id); i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		c->id[k++] = digits[x % 36];
	}
	c->id[k] = 0;
}

int oai_parse(const struct oai_env *env, enum oai_kind kind, const char *body, size_t len,
	      struct oai_call *c, struct oai_error *e)
{
	memset(c, 0, sizeof(*c));
	c->kind = kind;
	c->model_id = env->model_id;
	c->created = (long long)time(NULL);
	struct json_tokener *tok = json_tokener_new_ex(OAI_JSON_DEPTH);
	if (!tok)
		return oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
	struct json_object *root = len <= INT32_MAX ? json_tokener_parse_ex(tok, body, (int)len) : NULL;
	enum json_tokener_error je = json_tokener_get_error(tok);
	size_t end = json_tokener_get_parse_end(tok);
	while (root && end < len && strchr(" \t\r\n", body[end]))
		end++;
	int rc = 0;
	if (!root || je != json_tokener_success || end != len)
		rc = bad(e, NULL, "the body is not valid JSON (%s)",
			 je == json_tokener_continue  ? "it ends too soon"
			 : je != json_tokener_success ? json_tokener_error_desc(je)
			 : !root ? "empty" : "data after the value");
	else if (!json_object_is_type(root, json_type_object))
		rc = bad(e, NULL, "the body must be a JSON object");
	int64_t max_tokens = 0;
	if (!rc && !(c->r = req_new()))
		rc = oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
	if (!rc)
		rc = parse_common(env, root, c, &max_tokens, e);
	if (!rc)
		rc = kind == OAI_CHAT ? chat_prompt(env, root, c, e)
				      : completion_prompt(env, root, c->r, e);
	if (!rc)
		rc = fit_context(env, c->r, max_tokens, e);
	if (!rc)
		make_id(c, kind == OAI_CHAT ? "chatcmpl-" : "cmpl-");
	json_object_put(root);
	json_tokener_free(tok);
	if (rc)
		oai_call_release(c);
	return rc;
}

/* POST /apply-template (as llama-server's): the prompt text of a chat request,
 * {"prompt": TEXT}; nothing is generated. */
int oai_apply_template(const struct oai_env *env, const char *body, size_t len, struct sbuf *out,
		       struct oai_error *e)
{
	struct json_tokener *tok = json_tokener_new_ex(OAI_JSON_DEPTH);
	if (!tok)
		return oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
	struct json_object *root = len <= INT32_MAX ? json_tokener_parse_ex(tok, body, (int)len) : NULL;
	size_t end = json_tokener_get_parse_end(tok);
	while (root && end < len && strchr(" \t\r\n", body[end]))
		end++;
	struct sbuf text = { 0 };
	const char *tools;
	int rc = 0;
	if (!root || json_tokener_get_error(tok) != json_tokener_success || end != len ||
	    !json_object_is_type(root, json_type_object))
		rc = bad(e, NULL, "the body must be a JSON object");
	if (!rc)
		rc = chat_text(env, root, &text, &tools, e);
	if (!rc) {
		struct json_object *o = json_object_new_object();
		if (!o || json_object_object_add(o, "prompt", json_object_new_string_len(
								      text.p, (int)text.n)) ||
		    sbuf_adds(out, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
								       JSON_C_TO_STRING_NOSLASHESCAPE)))
			rc = oai_fail(e, 500, "server_error", NULL, NULL, "out of memory");
		json_object_put(o);
	}
	sbuf_free(&text);
	json_object_put(root);
	json_tokener_free(tok);
	return rc;
}
