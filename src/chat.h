/* chat.h: chat templates, messages -> the prompt text a model was tuned on.
 *
 * Follows architectures.md §10.4 and the Jinja templates shipped with the
 * checkpoints (tests/chat/qwen3.jinja, qwen35.jinja), re-written in C:
 * flashmoe has no Jinja interpreter. Each template is one render function in
 * chat.c's table; adding one is a new function and a table row.
 *   chatml  <|im_start|>{role}\n{content}<|im_end|>\n per message; generation
 *           prompt <|im_start|>assistant\n.
 *   qwen3   ChatML with Qwen3's rules: the first system message leads; earlier
 *           assistant turns lose their <think> reasoning, turns after the last
 *           user query keep it; consecutive tool messages become one user turn
 *           of <tool_response> blocks; enable_thinking false appends an empty
 *           <think>\n\n</think>\n\n to the generation prompt.
 *   qwen35  the Qwen3.5 MoE template (tests/chat/qwen35.jinja): contents
 *           trimmed, assistant turns after the last user query always with a
 *           <think> block, the generation prompt opening <think>\n (thinking
 *           on by default; enable_thinking false closes it empty). It raises
 *           (FM_EINVAL here) on a list without a user query, a system message
 *           after the first, or another role.
 * With tools (chat_render's tools_json) qwen3 writes the "# Tools" system block
 * and tool calls as <tool_call>{"name": .., "arguments": ..}</tool_call>,
 * qwen35 its own tools block and <tool_call><function=..><parameter=..>
 * calls; the tool definitions are re-serialized as Python's json.dumps does
 * (transformers' tojson filter: key order kept, ", " and ": " separators,
 * non-ASCII as is). chat_parse.c reads the model's output back.
 */
#ifndef FM_CHAT_H
#define FM_CHAT_H

#include <stdbool.h>
#include <stddef.h>

/* The same layouts as flashmoe.h's fm_chat_tool_call and fm_chat_msg. */
struct chat_tool_call {
	const char *id;        /* not rendered */
	const char *name;
	const char *arguments; /* JSON text of an object */
};

struct chat_msg {
	const char *role;              /* "system", "user", "assistant", "tool" */
	const char *content;           /* NUL-terminated; NULL renders as "" */
	const char *reasoning_content; /* assistant: reasoning, or NULL */
	const struct chat_tool_call *tool_calls;
	size_t n_tool_calls;
};

/* Output that counts what it could not store (snprintf-style): len grows
 * past cap, so the caller learns the size the whole text needs. */
struct chat_out {
	char *buf;
	size_t cap, len;
};
void chat_put_n(struct chat_out *o, const char *s, size_t n);
void chat_put(struct chat_out *o, const char *s);

enum chat_tmpl {
	CHAT_TMPL_NONE = 0,
	CHAT_TMPL_CHATML,
	CHAT_TMPL_QWEN3,
	CHAT_TMPL_QWEN35,
};

/* "chatml", "qwen3", "qwen35" -> the template; CHAT_TMPL_NONE if unknown. */
enum chat_tmpl chat_tmpl_from_name(const char *name);
const char *chat_tmpl_name(enum chat_tmpl t); /* "none" for CHAT_TMPL_NONE */

/* Which template a Jinja chat_template string (tokenizer.chat_template) is:
 * <|im_start|> -> ChatML; plus Qwen3's enable_thinking/<think> handling ->
 * qwen3; a generation prompt that always opens '<think>\n' -> qwen35.
 * NULL or unrecognised -> CHAT_TMPL_NONE. */
enum chat_tmpl chat_tmpl_detect(const char *jinja);

/* Render n messages (+ the generation prompt when asked) into buf. tools_json:
 * OpenAI's "tools" array as JSON text, or NULL. Writes at most cap bytes,
 * NUL-terminated when it fits; *len = the length the whole text needs
 * (without the NUL), so a too-small buf can be retried. Returns 0, FM_ENOMEM,
 * or FM_EINVAL (unknown template, NULL role, tools_json or arguments that are
 * not JSON of the right shape, or a list the template raises on). */
int chat_render(enum chat_tmpl t, const struct chat_msg *msgs, size_t n, const char *tools_json,
		bool add_generation_prompt, bool enable_thinking, char *buf, size_t cap,
		size_t *len);

#endif
