/* test_server_out.c: the server's output path on fixed texts (src/server/
 * textout.c, oai_resp.c): generated text fed in chunks split anywhere goes
 * through the stop strings and the chat parser into a request's events,
 * then into OpenAI's JSON, whole and as SSE chunks. The streamed deltas,
 * joined, must equal the whole response: content, reasoning_content,
 * tool_calls (id, name, arguments) and finish_reason. The model's part is
 * test_chat_parse.c's; the HTTP part is tests/e2e_server.sh's. */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "server/oai.h"
#include "server/textout.h"
#include "testutil.h"

/* What a response says, joined from the whole object or the stream. */
struct said {
	char content[1024], reasoning[1024];
	char name[4][64], id[4][64], args[4][512];
	int n_calls;
	char finish[32];
	bool content_null;
};

static void cat(char *dst, size_t cap, const char *s)
{
	strncat(dst, s, cap - strlen(dst) - 1);
}

static const char *str_of(struct json_object *o, const char *key)
{
	struct json_object *v;
	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
		       ? json_object_get_string(v) : NULL;
}

/* A message or a delta into s (deltas add up). */
static void take_message(struct said *s, struct json_object *m, bool delta)
{
	const char *c = str_of(m, "content"), *r = str_of(m, "reasoning_content");
	struct json_object *calls, *v;
	if (c)
		cat(s->content, sizeof(s->content), c);
	if (!delta && json_object_object_get_ex(m, "content", &v) && json_object_is_type(v, json_type_null))
		s->content_null = true;
	if (r)
		cat(s->reasoning, sizeof(s->reasoning), r);
	if (!json_object_object_get_ex(m, "tool_calls", &calls))
		return;
	for (size_t i = 0; i < json_object_array_length(calls); i++) {
		struct json_object *tc = json_object_array_get_idx(calls, i), *f, *ix;
		int k = delta && json_object_object_get_ex(tc, "index", &ix) ? json_object_get_int(ix)
									     : (int)i;
		CHECK(k >= 0 && k < 4, "tool call index %d", k);
		if (k < 0 || k >= 4)
			return;
		s->n_calls = k + 1 > s->n_calls ? k + 1 : s->n_calls;
		if (str_of(tc, "id"))
			cat(s->id[k], sizeof(s->id[k]), str_of(tc, "id"));
		if (json_object_object_get_ex(tc, "function", &f)) {
			if (str_of(f, "name"))
				cat(s->name[k], sizeof(s->name[k]), str_of(f, "name"));
			if (str_of(f, "arguments"))
				cat(s->args[k], sizeof(s->args[k]), str_of(f, "arguments"));
		}
	}
}

static void take_choice(struct said *s, struct json_object *root, bool delta)
{
	struct json_object *choices, *ch, *m;
	if (!json_object_object_get_ex(root, "choices", &choices) ||
	    !json_object_array_length(choices))
		return;
	ch = json_object_array_get_idx(choices, 0);
	if (json_object_object_get_ex(ch, delta ? "delta" : "message", &m))
		take_message(s, m, delta);
	if (str_of(ch, "text"))
		cat(s->content, sizeof(s->content), str_of(ch, "text"));
	if (str_of(ch, "finish_reason"))
		snprintf(s->finish, sizeof(s->finish), "%s", str_of(ch, "finish_reason"));
}

/* The SSE lines of buf[0..n) into s; true when "data: [DONE]" came. */
static bool take_sse(struct said *s, const char *buf)
{
	bool done = false;
	for (const char *p = buf; (p = strstr(p, "data: "));) {
		const char *end = strstr(p, "\n\n");
		CHECK(end, "an SSE event without its blank line");
		if (!end)
			break;
		char *line = strndup(p + 6, (size_t)(end - p - 6));
		if (!strcmp(line, "[DONE]")) {
			done = true;
		} else {
			struct json_object *o = json_tokener_parse(line);
			CHECK(o, "an SSE chunk that is not JSON: %s", line);
			if (o)
				take_choice(s, o, true);
			json_object_put(o);
		}
		free(line);
		p = end + 2;
	}
	return done;
}

struct gen {
	enum oai_kind kind;
	const char *tmpl;
	bool tools, in_think;
	const char *stop;
	const char *text;
};

/* Generate g.text in chunks of `step` bytes; the whole response into *whole
 * and the stream's deltas into *streamed. */
static void generate(const struct gen *g, size_t step, struct said *whole, struct said *streamed)
{
	struct oai_call c = { .kind = g->kind, .model_id = "m", .id = "x-1", .created = 1 };
	struct textout t = { 0 };
	struct sbuf sse = { 0 };
	size_t seen = 0, n = strlen(g->text);
	c.r = req_new();
	c.r->chat = g->kind == OAI_CHAT;
	c.r->tmpl = g->tmpl;
	c.r->tools = g->tools;
	c.r->in_think = g->in_think;
	if (g->stop)
		c.r->stop[c.r->n_stop++] = strdup(g->stop);
	CHECK(!textout_start(&t, c.r), "textout_start");
	/* the text ends with an end-of-generation token (or a stop string) */
	enum req_finish why = REQ_FINISH_STOP;
	for (size_t i = 0, k; i < n; i += k) {
		/* as the decoder: never inside a UTF-8 character */
		k = n - i < step ? n - i : step;
		while (i + k < n && ((unsigned char)g->text[i + k] & 0xc0) == 0x80)
			k++;
		if (textout_feed(&t, g->text + i, k))
			break;
		pthread_mutex_lock(&c.r->mu);
		oai_stream_events(&sse, &c, seen, c.r->n_ev);
		seen = c.r->n_ev;
		pthread_mutex_unlock(&c.r->mu);
	}
	req_finish(c.r, textout_end(&t, why, NULL, 0), NULL);
	pthread_mutex_lock(&c.r->mu);
	oai_stream_events(&sse, &c, seen, c.r->n_ev);
	oai_stream_end(&sse, &c);
	pthread_mutex_unlock(&c.r->mu);
	CHECK(take_sse(streamed, sse.p), "the stream does not end with data: [DONE]");
	struct sbuf b = { 0 };
	oai_response(&b, &c);
	struct json_object *o = json_tokener_parse(b.p);
	CHECK(o, "the response is not JSON: %s", b.p);
	if (o)
		take_choice(whole, o, false);
	json_object_put(o);
	sbuf_free(&b);
	sbuf_free(&sse);
	textout_free(&t);
	oai_call_release(&c);
}

/* Every split of g gives `want` (whole and streamed, which must agree). */
static void expect(const struct gen *g, const struct said *want, int line)
{
	static const size_t steps[] = { 1, 2, 3, 5, 8, 13, 1000 };
	for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
		struct said w = { 0 }, s = { 0 };
		generate(g, steps[k], &w, &s);
		for (int pass = 0; pass < 2; pass++) {
			const struct said *x = pass ? &s : &w;
			const char *how = pass ? "streamed" : "whole";
			CHECK(!strcmp(x->content, want->content), "line %d step %zu %s: content '%s', want '%s'",
			      line, steps[k], how, x->content, want->content);
			CHECK(!strcmp(x->reasoning, want->reasoning), "line %d step %zu %s: reasoning '%s'",
			      line, steps[k], how, x->reasoning);
			CHECK(!strcmp(x->finish, want->finish), "line %d step %zu %s: finish '%s', want '%s'",
			      line, steps[k], how, x->finish, want->finish);
			CHECK(x->n_calls == want->n_calls, "line %d step %zu %s: %d tool calls, want %d",
			      line, steps[k], how, x->n_calls, want->n_calls);
			for (int i = 0; i < x->n_calls && i < want->n_calls; i++) {
				CHECK(!strcmp(x->name[i], want->name[i]), "line %d %s: call %d name '%s'",
				      line, how, i, x->name[i]);
				CHECK(!strcmp(x->args[i], want->args[i]), "line %d %s: call %d arguments '%s'",
				      line, how, i, x->args[i]);
				CHECK(!strncmp(x->id[i], "call_", 5), "line %d %s: call %d id '%s'", line,
				      how, i, x->id[i]);
				CHECK(!strcmp(w.id[i], s.id[i]), "line %d: ids differ: '%s' vs '%s'", line,
				      w.id[i], s.id[i]);
			}
		}
		CHECK(w.content_null == (want->n_calls > 0 && !want->content[0]),
		      "line %d: message.content null %d", line, w.content_null);
	}
}

int main(void)
{
	/* reasoning, content, two tool calls */
	expect(&(struct gen){ OAI_CHAT, "qwen3", true, false, NULL,
			      "<think>\nI should call it.\n</think>\n\nLet me check.\n<tool_call>\n"
			      "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n"
			      "</tool_call>\n<tool_call>\n{\"name\":\"now\",\"arguments\":{}}\n</tool_call>" },
	       &(struct said){ .content = "Let me check.", .reasoning = "I should call it.",
			       .n_calls = 2, .name = { "get_weather", "now" },
			       .args = { "{\"city\": \"Paris\"}", "{}" }, .finish = "tool_calls" },
	       __LINE__);
	/* only a call: content null in the whole message */
	expect(&(struct gen){ OAI_CHAT, "qwen3", true, false, NULL,
			      "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": 1}}\n</tool_call>" },
	       &(struct said){ .n_calls = 1, .name = { "f" }, .args = { "{\"x\": 1}" },
			       .finish = "tool_calls" }, __LINE__);
	/* Qwen3.5's XML call after reasoning the prompt opened */
	expect(&(struct gen){ OAI_CHAT, "qwen35", true, true, NULL,
			      "Need weather.\n</think>\n\n<tool_call>\n<function=get_weather>\n"
			      "<parameter=city>\nParis\n</parameter>\n</function>\n</tool_call>" },
	       &(struct said){ .reasoning = "Need weather.", .n_calls = 1, .name = { "get_weather" },
			       .args = { "{\"city\": \"Paris\"}" }, .finish = "tool_calls" }, __LINE__);
	/* malformed calls are content; tools not offered: a call is content */
	expect(&(struct gen){ OAI_CHAT, "qwen3", true, false, NULL,
			      "Hi <tool_call>{bad json</tool_call> after" },
	       &(struct said){ .content = "Hi <tool_call>{bad json</tool_call> after", .finish = "stop" },
	       __LINE__);
	expect(&(struct gen){ OAI_CHAT, "qwen3", false, false, NULL,
			      "<tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>" },
	       &(struct said){ .content = "<tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>",
			       .finish = "stop" }, __LINE__);
	/* stop strings: found across chunks, text from them on dropped; near misses kept */
	expect(&(struct gen){ OAI_COMPLETION, NULL, false, false, "END", "abc ENx EN END tail" },
	       &(struct said){ .content = "abc ENx EN ", .finish = "stop" }, __LINE__);
	expect(&(struct gen){ OAI_COMPLETION, NULL, false, false, "END", "no stop here, EN" },
	       &(struct said){ .content = "no stop here, EN", .finish = "stop" }, __LINE__);
	expect(&(struct gen){ OAI_CHAT, "qwen3", false, false, "\n\nUser:",
			      "<think>r</think>Answer.\n\nUser: more" },
	       &(struct said){ .content = "Answer.", .reasoning = "r", .finish = "stop" }, __LINE__);
	/* invalid UTF-8 comes out as U+FFFD (JSON text is UTF-8) */
	expect(&(struct gen){ OAI_COMPLETION, NULL, false, false, NULL, "a\xff" "b\xc3\xa9" },
	       &(struct said){ .content = "a\xef\xbf\xbd" "b\xc3\xa9", .finish = "stop" }, __LINE__);
	return t_done("test_server_out");
}
