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

int main(void)
{
	test_chatml();
	test_qwen3();
	test_qwen35();
	test_detect();
	test_buffer();
	return t_done("test_chat");
}
