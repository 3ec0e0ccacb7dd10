/* test_chat_parse.c: the output parser (fm_chat_parser_*) on fixed model
 * outputs: reasoning, content, Qwen3 JSON and Qwen3.5 XML tool calls,
 * malformed and unclosed calls (content, as written), partial tags. Each text
 * is fed whole, split in two at every byte, and one byte at a time; the
 * events, with adjacent text of one kind joined, must read the same every
 * time. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flashmoe.h"
#include "testutil.h"

/* The events as one string: R[..] reasoning, C[..] content,
 * T[name|args] a tool call. */
struct transcript {
	char s[4096];
	size_t n;
	enum fm_chat_event_kind last;
	int open_call; /* index of the call between BEGIN and END, or -1 */
	char id[64];
	int n_calls;
	bool bad;      /* an event out of order or a malformed id */
};

static void add(struct transcript *t, const char *s, size_t n)
{
	if (t->n + n < sizeof(t->s)) {
		memcpy(t->s + t->n, s, n);
		t->n += n;
		t->s[t->n] = 0;
	}
}

static bool id_ok(const char *id)
{
	if (!id || strncmp(id, "call_", 5) || strlen(id) != 29)
		return false;
	for (const char *c = id + 5; *c; c++)
		if (!isalnum((unsigned char)*c))
			return false;
	return true;
}

static void on_event(const struct fm_chat_event *ev, void *user)
{
	struct transcript *t = user;
	bool text = ev->kind == FM_CHAT_CONTENT || ev->kind == FM_CHAT_REASONING;
	if (text && (t->open_call >= 0 || ev->len == 0))
		t->bad = true;
	if (text && t->n && t->last == ev->kind) { /* join: drop the "]" */
		t->n--;
	} else if (text) {
		add(t, ev->kind == FM_CHAT_CONTENT ? "C[" : "R[", 2);
	}
	switch (ev->kind) {
	case FM_CHAT_CONTENT:
	case FM_CHAT_REASONING:
		add(t, ev->text, ev->len);
		add(t, "]", 1);
		break;
	case FM_CHAT_TOOL_CALL_BEGIN:
		if (t->open_call >= 0 || ev->index != t->n_calls || !id_ok(ev->id) || !ev->name)
			t->bad = true;
		t->open_call = ev->index;
		snprintf(t->id, sizeof(t->id), "%s", ev->id ? ev->id : "");
		add(t, "T[", 2);
		add(t, ev->name ? ev->name : "", ev->name ? strlen(ev->name) : 0);
		add(t, "|", 1);
		break;
	case FM_CHAT_TOOL_CALL_ARGS:
		if (t->open_call != ev->index || strcmp(t->id, ev->id))
			t->bad = true;
		add(t, ev->text, ev->len);
		break;
	case FM_CHAT_TOOL_CALL_END:
		if (t->open_call != ev->index || strcmp(t->id, ev->id))
			t->bad = true;
		t->open_call = -1;
		t->n_calls++;
		add(t, "]", 1);
		break;
	}
	t->last = ev->kind;
}

/* Feed text in pieces of the given sizes (0 = the rest), then finish. */
static void run(const char *tmpl, bool in_think, bool tools, const char *text, size_t split,
		size_t step, struct transcript *t)
{
	memset(t, 0, sizeof(*t));
	t->open_call = -1;
	t->last = FM_CHAT_TOOL_CALL_END;
	struct fm_chat_parser *p = fm_chat_parser_new(tmpl, in_think, tools);
	size_t n = strlen(text), at = 0;
	if (!p) {
		t->bad = true;
		return;
	}
	if (split && fm_chat_parser_feed(p, text, split, on_event, t))
		t->bad = true;
	for (at = split; at < n; at += step)
		if (fm_chat_parser_feed(p, text + at, step < n - at ? step : n - at, on_event, t))
			t->bad = true;
	if (fm_chat_parser_finish(p, on_event, t) || t->open_call >= 0)
		t->bad = true;
	fm_chat_parser_free(p);
}

static void expect(const char *tmpl, bool in_think, bool tools, const char *text,
		   const char *want, int line)
{
	struct transcript t;
	size_t n = strlen(text);
	int fails = 0;
	for (size_t split = 0; split <= n + 1 && fails < 3; split++) {
		/* split n + 1: one byte at a time */
		size_t first = split <= n ? split : 0, step = split <= n ? n : 1;
		run(tmpl, in_think, tools, text, first, step ? step : 1, &t);
		if (!t.bad && !strcmp(t.s, want))
			continue;
		fails++;
		CHECK(0, "line %d, split %zu%s: got %s%s, want %s", line, split,
		      split > n ? " (bytewise)" : "", t.bad ? "(bad events) " : "", t.s, want);
	}
}

#define EXPECT(tmpl, in_think, tools, text, want) \
	expect(tmpl, in_think, tools, text, want, __LINE__)

static void test_reasoning(void)
{
	EXPECT("qwen3", false, false, "<think>\nLet me think.\n</think>\n\nHello!",
	       "R[Let me think.]C[Hello!]");
	EXPECT("qwen35", true, false, "Reasoning here.\n</think>\n\nAnswer.",
	       "R[Reasoning here.]C[Answer.]");
	EXPECT("qwen35", true, false, "a\n\n b \n</think>c", "R[a\n\n b]C[c]");
	EXPECT("qwen35", true, false, "x </thinking> y</think>z", "R[x </thinking> y]C[z]");
	EXPECT("qwen35", true, false, "unfinished thought  \n", "R[unfinished thought]");
	EXPECT("qwen3", false, false, "Just text, no thinking.", "C[Just text, no thinking.]");
	EXPECT("qwen3", false, false, "  \n<think>r</think>", "R[r]");
	EXPECT("qwen3", false, false, "<thinker> is a word", "C[<thinker> is a word]");
	EXPECT("qwen3", false, false, "<thin", "C[<thin]");
	EXPECT("qwen3", false, false, "a <think>b</think> c", "C[a <think>b</think> c]");
	EXPECT("qwen35", true, false, "", "");
	EXPECT("qwen35", true, false, "\n</think>\n\nonly content", "C[only content]");
	EXPECT("chatml", false, false, "keep trailing space ", "C[keep trailing space ]");
}

static void test_tool_calls(void)
{
	const char *weather = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": "
			      "{\"city\": \"Paris\", \"days\": 3}}\n</tool_call>";
	EXPECT("qwen3", false, true, weather, "T[get_weather|{\"city\": \"Paris\", \"days\": 3}]");
	EXPECT("qwen3", false, false, weather,
	       "C[<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", "
	       "\"days\": 3}}\n</tool_call>]");
	EXPECT("qwen3", false, true,
	       "<think>\nI should call it.\n</think>\n\nLet me check.\n<tool_call>\n"
	       "{\"name\":\"a\",\"arguments\":{}}\n</tool_call>\n<tool_call>\n"
	       "{\"name\": \"b\", \"arguments\": {\"q\": \"h\\u00e9llo \\\"x\\\"\", "
	       "\"n\": [1, 2.50, true, null], \"o\": {\"k\":1e2}}}\n</tool_call>\n",
	       "R[I should call it.]C[Let me check.]T[a|{}]"
	       "T[b|{\"q\": \"h\xc3\xa9llo \\\"x\\\"\", \"n\": [1, 2.5, true, null], "
	       "\"o\": {\"k\": 100.0}}]");
	/* Qwen3.5's XML calls; values that are JSON stay JSON */
	EXPECT("qwen35", true, true,
	       "Need weather.\n</think>\n\n<tool_call>\n<function=get_weather>\n"
	       "<parameter=city>\nSan Francisco, CA\n</parameter>\n<parameter=days>\n3\n"
	       "</parameter>\n<parameter=opts>\n{\"unit\": \"c\"}\n</parameter>\n<parameter=note>\n"
	       "two\nlines\n</parameter>\n</function>\n</tool_call>",
	       "R[Need weather.]T[get_weather|{\"city\": \"San Francisco, CA\", \"days\": 3, "
	       "\"opts\": {\"unit\": \"c\"}, \"note\": \"two\\nlines\"}]");
	EXPECT("qwen35", false, true, "<tool_call>\n<function=ping>\n</function>\n</tool_call>",
	       "T[ping|{}]");
	/* Python's str() of True/False/None (how the template writes them) */
	EXPECT("qwen35", false, true,
	       "<tool_call>\n<function=set>\n<parameter=on>\nTrue\n</parameter>\n"
	       "<parameter=off>\nFalse\n</parameter>\n<parameter=x>\nNone\n</parameter>\n"
	       "<parameter=s>\n\n</parameter>\n</function>\n</tool_call>",
	       "T[set|{\"on\": true, \"off\": false, \"x\": null, \"s\": \"\"}]");
	/* text after a call is content */
	EXPECT("qwen3", false, true,
	       "<tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>\n\nDone.",
	       "T[f|{}]C[Done.]");
}

static void test_malformed(void)
{
	EXPECT("qwen3", false, true,
	       "<tool_call>\n{\"name\": \"f\", \"arguments\": [1]}\n</tool_call>",
	       "C[<tool_call>\n{\"name\": \"f\", \"arguments\": [1]}\n</tool_call>]");
	EXPECT("qwen3", false, true, "Hi <tool_call>{bad json</tool_call> after",
	       "C[Hi <tool_call>{bad json</tool_call> after]");
	EXPECT("qwen3", false, true, "text <tool_call>\n{\"name\"",
	       "C[text <tool_call>\n{\"name\"]");
	EXPECT("qwen3", false, true, "<tool_call>{\"arguments\": {}}</tool_call>",
	       "C[<tool_call>{\"arguments\": {}}</tool_call>]");
	EXPECT("qwen3", false, true, "<tool_call>{\"name\": \"\", \"arguments\": {}}</tool_call>",
	       "C[<tool_call>{\"name\": \"\", \"arguments\": {}}</tool_call>]");
	EXPECT("qwen35", false, true,
	       "<tool_call>\n<function=f>\n<parameter=x>\n1\n</function>\n</tool_call>",
	       "C[<tool_call>\n<function=f>\n<parameter=x>\n1\n</function>\n</tool_call>]");
	EXPECT("qwen35", false, true, "<tool_call><function=>\n</function></tool_call>",
	       "C[<tool_call><function=>\n</function></tool_call>]");
	EXPECT("qwen3", false, true, "<tool_call></tool_call><tool_",
	       "C[<tool_call></tool_call><tool_]");
	EXPECT("qwen3", false, true, "a </tool_call> b", "C[a </tool_call> b]");
}

static void test_api(void)
{
	CHECK(fm_chat_parser_new("jinja", false, false) == NULL, "unknown template");
	struct fm_chat_parser *p = fm_chat_parser_new(NULL, false, true);
	CHECK(p != NULL, "NULL template is chatml");
	CHECK(fm_chat_parser_feed(p, "x", 1, NULL, NULL) == FM_EINVAL, "NULL callback");
	fm_chat_parser_free(p);
	fm_chat_parser_free(NULL);
	/* two calls get distinct ids */
	struct transcript a, b;
	const char *call = "<tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>";
	run("qwen3", false, true, call, 0, 1000, &a);
	run("qwen3", false, true, call, 0, 1000, &b);
	CHECK(!a.bad && !b.bad && strcmp(a.id, b.id), "ids %s %s", a.id, b.id);
}

int main(void)
{
	test_reasoning();
	test_tool_calls();
	test_malformed();
	test_api();
	return t_done("test_chat_parse");
}
