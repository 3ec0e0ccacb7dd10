/* fuzz_chat_parser.c: libFuzzer target for the chat output parser
 * (src/chat_parse.c) and the templates' JSON (src/chat_json.c, src/chat.c).
 *
 * Input: byte 0 picks the parser's setup (bit 0 in_think, bit 1 tools,
 * bit 2 qwen35 rather than qwen3) and byte 1 seeds the chunk sizes; the rest
 * is model output. It is parsed whole and again in random chunks: both runs
 * must give the same events (adjacent text of one kind joined). Events must
 * be well formed: BEGIN, ARGS, END in order for one call, a fresh index
 * each, a non-empty name, arguments that are a JSON object; no calls when
 * tools are off. Then the same bytes go through chat_render as a message's
 * content, as a tool call's arguments and as the tools JSON (refusals are
 * fine, crashes and sanitizer reports are not).
 *
 * Build and run: `make fuzz` (Makefile), or by hand from the repository root:
 *   clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
 *     -Iinclude -Isrc -o /tmp/fuzz_chat_parser tests/fuzz/fuzz_chat_parser.c \
 *     src/chat.c src/chat_json.c src/chat_parse.c src/util.c -ljson-c -lm
 *   /tmp/fuzz_chat_parser -max_len=4096 -dict=tests/fuzz/fuzz_chat_parser.dict CORPUS
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "chat_json.h"
#include "flashmoe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct log {
	char *s;
	size_t n, cap;
	int last;      /* kind of the last event, -1 at the start */
	int open;      /* index of the open call, -1 if none */
	int n_calls;
	bool tools;
};

static void log_add(struct log *l, const char *s, size_t n)
{
	if (l->n + n + 1 > l->cap) {
		size_t cap = (l->n + n + 1) * 2;
		char *p = realloc(l->s, cap);
		if (!p)
			abort();
		l->s = p, l->cap = cap;
	}
	memcpy(l->s + l->n, s, n);
	l->n += n;
	l->s[l->n] = 0;
}

static void on_event(const struct fm_chat_event *ev, void *user)
{
	struct log *l = user;
	bool text = ev->kind == FM_CHAT_CONTENT || ev->kind == FM_CHAT_REASONING;
	if (text) {
		if (l->open >= 0 || !ev->len)
			abort(); /* text inside a call, or an empty delta */
		if (l->last != (int)ev->kind)
			log_add(l, ev->kind == FM_CHAT_CONTENT ? "\x01C" : "\x01R", 2);
		log_add(l, ev->text, ev->len);
	} else if (ev->kind == FM_CHAT_TOOL_CALL_BEGIN) {
		if (!l->tools || l->open >= 0 || ev->index != l->n_calls || !ev->name ||
		    !ev->name[0] || !ev->id)
			abort();
		l->open = ev->index;
		log_add(l, "\x01T", 2);
		log_add(l, ev->name, strlen(ev->name));
	} else if (ev->kind == FM_CHAT_TOOL_CALL_ARGS) {
		json_object *v = chat_json_parse(ev->text, ev->len);
		if (l->open != ev->index || !v || !json_object_is_type(v, json_type_object))
			abort();
		json_object_put(v);
		log_add(l, "\x01A", 2);
		log_add(l, ev->text, ev->len);
	} else if (ev->kind == FM_CHAT_TOOL_CALL_END) {
		if (l->open != ev->index)
			abort();
		l->open = -1;
		l->n_calls++;
		log_add(l, "\x01E", 2);
	}
	l->last = (int)ev->kind;
}

static void parse(const char *tmpl, bool in_think, bool tools, const char *text, size_t n,
		  unsigned seed, struct log *l)
{
	*l = (struct log){ .last = -1, .open = -1, .tools = tools };
	struct fm_chat_parser *p = fm_chat_parser_new(tmpl, in_think, tools);
	if (!p)
		abort();
	for (size_t at = 0; at < n;) {
		size_t k = n - at;
		if (seed) { /* chunks of 1..16 bytes from a small LCG */
			seed = seed * 1103515245u + 12345u;
			size_t c = 1 + ((seed >> 16) & 15);
			k = c < k ? c : k;
		}
		if (fm_chat_parser_feed(p, text + at, k, on_event, l))
			abort();
		at += k;
	}
	if (fm_chat_parser_finish(p, on_event, l) || l->open >= 0)
		abort();
	fm_chat_parser_free(p);
	log_add(l, "", 0);
}

static void render(enum chat_tmpl t, const char *text, const char *tools)
{
	const struct chat_tool_call call = { "call_1", "f", text };
	const struct chat_msg msgs[] = {
		{ "system", text, NULL, NULL, 0 },
		{ "user", text, NULL, NULL, 0 },
		{ "assistant", text, NULL, &call, 1 },
		{ "tool", text, NULL, NULL, 0 },
		{ "assistant", text, text, NULL, 0 },
	};
	char buf[512];
	size_t len = 0;
	chat_render(t, msgs, 5, tools, true, true, buf, sizeof(buf), &len);
	char *big = malloc(len + 1);
	if (big && chat_render(t, msgs, 5, tools, true, true, big, len + 1, &len) == 0 &&
	    strlen(big) > len)
		abort();
	free(big);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	bool in_think = data[0] & 1, tools = data[0] & 2;
	const char *tmpl = data[0] & 4 ? "qwen35" : "qwen3";
	char *text = malloc(size - 1);
	if (!text)
		return 0;
	size_t n = size - 2;
	memcpy(text, data + 2, n);
	text[n] = 0;
	struct log whole, chunked;
	parse(tmpl, in_think, tools, text, n, 0, &whole);
	parse(tmpl, in_think, tools, text, n, data[1] | 1u, &chunked);
	if (whole.n != chunked.n || memcmp(whole.s, chunked.s, whole.n))
		abort(); /* the chunking changed what was parsed */
	free(whole.s);
	free(chunked.s);
	if (strlen(text) == n) { /* the renderer takes NUL-terminated strings */
		render(CHAT_TMPL_QWEN3, text, NULL);
		render(CHAT_TMPL_QWEN35, text, text);
		render(CHAT_TMPL_QWEN3, text, text);
	}
	free(text);
	return 0;
}
