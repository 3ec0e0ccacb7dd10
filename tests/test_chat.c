/* test_chat.c: chat templates against hand-written renderings
 * (architectures.md §10.4; Qwen3's shipped Jinja template), template
 * detection from Jinja text, and the buffer contract. The same renderer is
 * checked against the real template rendered in JavaScript by
 * tests/tokenizer/run.sh. */
#include <stdio.h>
#include <string.h>

#include "chat.h"
#include "testutil.h"
#include "util.h"

/* {role, content} pairs: the tool fields stay zero */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#define MSGS(...) ((const struct chat_msg[]){ __VA_ARGS__ })
#define N(...) (sizeof((const struct chat_msg[]){ __VA_ARGS__ }) / sizeof(struct chat_msg))

static void expect(enum chat_tmpl t, const struct chat_msg *m, size_t n, bool gen, bool think,
		   const char *want, int line)
{
	char buf[1024];
	size_t len = 0;
	int rc = chat_render(t, m, n, NULL, gen, think, buf, sizeof(buf), &len);
	CHECK(rc == 0 && len == strlen(want) && !strcmp(buf, want),
	      "line %d (%s): rc %d got \"%s\"", line, chat_tmpl_name(t), rc, rc ? "" : buf);
}

#define EXPECT(t, gen, think, want, ...) \
	expect(t, MSGS(__VA_ARGS__), N(__VA_ARGS__), gen, think, want, __LINE__)

static void test_chatml(void)
{
	EXPECT(CHAT_TMPL_CHATML, true, true,
	       "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
	       "<|im_start|>assistant\n",
	       { "system", "S" }, { "user", "hi" });
	EXPECT(CHAT_TMPL_CHATML, false, false, "<|im_start|>user\nhi<|im_end|>\n", { "user", "hi" });
}

static void test_qwen3(void)
{
	EXPECT(CHAT_TMPL_QWEN3, true, true, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
	       { "user", "Hi" });
	EXPECT(CHAT_TMPL_QWEN3, true, false,
	       "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
	       { "user", "Hi" });
	/* the last assistant turn after the query gets an (empty) think block */
	EXPECT(CHAT_TMPL_QWEN3, false, true,
	       "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
	       "Hello<|im_end|>\n",
	       { "user", "Hi" }, { "assistant", "Hello" });
	/* earlier turns lose their reasoning */
	EXPECT(CHAT_TMPL_QWEN3, true, true,
	       "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nq1<|im_end|>\n"
	       "<|im_start|>assistant\na1<|im_end|>\n<|im_start|>user\nq2<|im_end|>\n"
	       "<|im_start|>assistant\n",
	       { "system", "S" }, { "user", "q1" }, { "assistant", "<think>\nr1\n</think>\n\na1" },
	       { "user", "q2" });
	/* inside a tool loop the reasoning stays; tool results join one user turn */
	EXPECT(CHAT_TMPL_QWEN3, true, true,
	       "<|im_start|>user\nw?<|im_end|>\n<|im_start|>assistant\n<think>\nt\n</think>\n\n"
	       "call<|im_end|>\n<|im_start|>user\n<tool_response>\nr1\n</tool_response>\n"
	       "<tool_response>\nr2\n</tool_response><|im_end|>\n<|im_start|>assistant\n",
	       { "user", "w?" }, { "assistant", "<think>t</think>call" }, { "tool", "r1" },
	       { "tool", "r2" });
	/* a later system message is an ordinary turn */
	EXPECT(CHAT_TMPL_QWEN3, false, true,
	       "<|im_start|>user\na<|im_end|>\n<|im_start|>system\nb<|im_end|>\n",
	       { "user", "a" }, { "system", "b" });
}

static void test_qwen35(void)
{
	EXPECT(CHAT_TMPL_QWEN35, true, true,
	       "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n", { "user", "Hi" });
	EXPECT(CHAT_TMPL_QWEN35, true, false,
	       "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
	       { "user", "Hi" });
}

static void test_detect(void)
{
	const char *chatml = "{% for message in messages %}{{'<|im_start|>' + message['role'] + "
			     "'\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}";
	const char *qwen3 = "{{- '<|im_start|>' + message.role + '\\n<think>\\n' }}{%- if "
			    "enable_thinking is defined and enable_thinking is false %}"
			    "{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}";
	const char *qwen35 = "{{- '<|im_start|>assistant\\n' }}{%- if enable_thinking is false %}"
			     "{{- '<think>\\n\\n</think>\\n\\n' }}{%- else %}{{- '<think>\\n' }}";
	CHECK(chat_tmpl_detect(chatml) == CHAT_TMPL_CHATML, "chatml");
	CHECK(chat_tmpl_detect(qwen3) == CHAT_TMPL_QWEN3, "qwen3");
	CHECK(chat_tmpl_detect(qwen35) == CHAT_TMPL_QWEN35, "qwen35");
	CHECK(chat_tmpl_detect(NULL) == CHAT_TMPL_NONE, "NULL");
	CHECK(chat_tmpl_detect("{{ bos_token }}[INST]") == CHAT_TMPL_NONE, "llama");
	for (int t = CHAT_TMPL_CHATML; t <= CHAT_TMPL_QWEN35; t++)
		CHECK(chat_tmpl_from_name(chat_tmpl_name((enum chat_tmpl)t)) == (enum chat_tmpl)t,
		      "name %d", t);
	CHECK(chat_tmpl_from_name("jinja") == CHAT_TMPL_NONE, "unknown name");
}

static void test_buffer(void)
{
	const struct chat_msg m[] = { { "user", "hello" } };
	char buf[8];
	size_t len = 0;
	CHECK(chat_render(CHAT_TMPL_CHATML, m, 1, NULL, false, true, buf, sizeof(buf), &len) == 0 &&
		      len == 33 && buf[7] == 0 && !memcmp(buf, "<|im_st", 7),
	      "short buffer: len %zu", len);
	CHECK(chat_render(CHAT_TMPL_CHATML, m, 1, NULL, true, true, NULL, 0, &len) == 0 && len == 55,
	      "size query: len %zu", len);
	CHECK(chat_render(CHAT_TMPL_NONE, m, 1, NULL, true, true, buf, sizeof(buf), &len) == FM_EINVAL,
	      "no template");
	const struct chat_msg bad[] = { { NULL, "x" } };
	CHECK(chat_render(CHAT_TMPL_QWEN3, bad, 1, NULL, true, true, buf, sizeof(buf), &len) == FM_EINVAL,
	      "NULL role");
	CHECK(chat_render(CHAT_TMPL_QWEN3, NULL, 0, NULL, false, true, buf, sizeof(buf), &len) == 0 &&
		      len == 0 && buf[0] == 0,
	      "no messages");
}

/* Render with tools into a static buffer; NULL on an error. */
static const char *render_tools(enum chat_tmpl t, const struct chat_msg *m, size_t n,
				const char *tools, bool gen, bool think)
{
	static char buf[16384];
	size_t len = 0;
	int rc = chat_render(t, m, n, tools, gen, think, buf, sizeof(buf), &len);
	return rc == 0 && len < sizeof(buf) ? buf : NULL;
}

static bool has(const char *s, const char *part)
{
	return s && strstr(s, part);
}

/* The tools block and calls (tests/e2e_chat_tools.sh compares whole
 * renderings with the real Jinja templates; these are its rules in short). */
static void test_tools(void)
{
	const struct chat_msg user[] = { { "user", "q" } };
	const char *tools = "[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{}}},"
			    "{\"x\": [1.0, 1e-7, 2.5e16, 1E5, -0.0, 0.1, 123456789012345678, 1e15, 1e16,"
			    " \"\u00e9\\u00e9\\n\\u0001\\/\\ud83d\\ude00\", true, null, {}]}]";
	const char *r = render_tools(CHAT_TMPL_QWEN3, user, 1, tools, true, true);
	CHECK(r && !strncmp(r, "<|im_start|>system\n# Tools\n\nYou may call", 40), "qwen3 tools head");
	/* Python's json.dumps: separators, float repr, escapes, non-ASCII as is */
	CHECK(has(r, "<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"f\", "
		     "\"parameters\": {}}}\n{\"x\": [1.0, 1e-07, 2.5e+16, 100000.0, -0.0, 0.1, "
		     "123456789012345678, 1000000000000000.0, 1e+16, \"\u00e9\u00e9\\n\\u0001/"
		     "\xf0\x9f\x98\x80\", true, null, {}]}\n</tools>"),
	      "tojson: %s", r ? r : "(error)");
	CHECK(has(r, "</tool_call><|im_end|>\n<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n"),
	      "qwen3 tools tail");
	CHECK(!strcmp(render_tools(CHAT_TMPL_QWEN3, user, 1, "[]", true, true),
		      "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n"), "[] is no tools");
	CHECK(!render_tools(CHAT_TMPL_QWEN3, user, 1, "[1,", true, true), "bad tools JSON");
	CHECK(!render_tools(CHAT_TMPL_QWEN3, user, 1, "{\"a\": 1}", true, true), "tools not a list");

	/* calls: qwen3 writes the arguments text as given, qwen35 one
	 * <parameter> per member, scalars as Python's str() */
	const struct chat_tool_call calls[] = {
		{ "c1", "get", "{\"a\":1, \"b\": \"x y\"}" },
		{ "c2", "set", "{\"on\": true, \"n\": null, \"f\": 2.50, \"o\": {\"k\": [1]}}" },
	};
	const struct chat_msg conv[] = {
		{ "user", "q" },
		{ "assistant", "", NULL, calls, 2 },
		{ "tool", "r1" },
		{ "tool", " r2 " },
	};
	r = render_tools(CHAT_TMPL_QWEN3, conv, 4, NULL, false, true);
	CHECK(has(r, "<|im_start|>assistant\n<tool_call>\n{\"name\": \"get\", "
		     "\"arguments\": {\"a\":1, \"b\": \"x y\"}}\n</tool_call>\n<tool_call>\n{\"name\": "
		     "\"set\", \"arguments\": {\"on\": true, \"n\": null, \"f\": 2.50, \"o\": {\"k\": "
		     "[1]}}}\n</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\nr1\n"
		     "</tool_response>\n<tool_response>\n r2 \n</tool_response><|im_end|>\n"),
	      "qwen3 calls: %s", r ? r : "(error)");
	r = render_tools(CHAT_TMPL_QWEN35, conv, 4, NULL, false, true);
	CHECK(has(r, "<|im_start|>assistant\n<think>\n\n</think>\n\n<tool_call>\n<function=get>\n"
		     "<parameter=a>\n1\n</parameter>\n<parameter=b>\nx y\n</parameter>\n</function>\n"
		     "</tool_call>\n<tool_call>\n<function=set>\n<parameter=on>\nTrue\n</parameter>\n"
		     "<parameter=n>\nNone\n</parameter>\n<parameter=f>\n2.5\n</parameter>\n"
		     "<parameter=o>\n{\"k\": [1]}\n</parameter>\n</function>\n</tool_call><|im_end|>\n"
		     "<|im_start|>user\n<tool_response>\nr1\n</tool_response>\n<tool_response>\nr2\n"
		     "</tool_response><|im_end|>\n"),
	      "qwen35 calls: %s", r ? r : "(error)");
	const struct chat_tool_call bad_args[] = { { "c", "f", "[1]" } };
	const struct chat_msg bad[] = { { "user", "q" }, { "assistant", "", NULL, bad_args, 1 } };
	CHECK(!render_tools(CHAT_TMPL_QWEN35, bad, 2, NULL, false, true), "qwen35: arguments not an object");
	CHECK(render_tools(CHAT_TMPL_QWEN3, bad, 2, NULL, false, true), "qwen3: arguments as given");

	/* qwen35 raises: no user query, a late system message, another role */
	const struct chat_msg only_sys[] = { { "system", "s" } };
	const struct chat_msg late_sys[] = { { "user", "q" }, { "system", "s" } };
	const struct chat_msg odd[] = { { "user", "q" }, { "developer", "d" } };
	CHECK(!render_tools(CHAT_TMPL_QWEN35, only_sys, 1, NULL, true, true), "qwen35 no query");
	CHECK(!render_tools(CHAT_TMPL_QWEN35, late_sys, 2, NULL, true, true), "qwen35 late system");
	CHECK(!render_tools(CHAT_TMPL_QWEN35, odd, 2, NULL, true, true), "qwen35 odd role");
	CHECK(render_tools(CHAT_TMPL_QWEN3, odd, 2, NULL, true, true), "qwen3 skips odd roles");

	/* nesting: 60 levels render, 70 are refused (never a deep recursion) */
	char deep[512];
	for (int levels = 60; levels <= 70; levels += 10) {
		size_t k = 0;
		deep[k++] = '[';
		for (int i = 0; i < levels; i++)
			k += (size_t)sprintf(deep + k, "{\"a\":");
		deep[k++] = '1';
		for (int i = 0; i < levels; i++)
			deep[k++] = '}';
		deep[k++] = ']';
		deep[k] = 0;
		CHECK(!render_tools(CHAT_TMPL_QWEN3, user, 1, deep, true, true) == (levels > 62),
		      "nesting %d", levels);
	}
}

int main(void)
{
	test_chatml();
	test_qwen3();
	test_qwen35();
	test_detect();
	test_buffer();
	test_tools();
	return t_done("test_chat");
}
