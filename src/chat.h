/* chat.h: chat templates, messages -> the prompt text a model was tuned on.
 *
 * Follows architectures.md §10.4 and the Jinja templates shipped with the
 * checkpoints (Qwen3's tokenizer_config.json chat_template), re-written in C:
 * flashmoe has no Jinja interpreter. Each template is one render function in
 * chat.c's table; adding one is a new function and a table row.
 *   chatml  <|im_start|>{role}\n{content}<|im_end|>\n per message; generation
 *           prompt <|im_start|>assistant\n.
 *   qwen3   ChatML with Qwen3's rules: the first system message leads; earlier
 *           assistant turns lose their <think> reasoning, turns after the last
 *           user query keep it; consecutive tool messages become one user turn
 *           of <tool_response> blocks; enable_thinking false appends an empty
 *           <think>\n\n</think>\n\n to the generation prompt.
 *   qwen35  as qwen3, but the generation prompt always opens <think>\n
 *           (thinking on by default; also Qwen3-*-Thinking-2507).
 * Tool definitions (the "# Tools" system block) and tool_calls are not
 * rendered: messages carry only role and content.
 */
#ifndef FM_CHAT_H
#define FM_CHAT_H

#include <stdbool.h>
#include <stddef.h>

struct chat_msg {
	const char *role;    /* "system", "user", "assistant", "tool" */
	const char *content; /* NUL-terminated */
};

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

/* Render n messages (+ the generation prompt when asked) into buf. Writes at
 * most cap bytes, NUL-terminated when it fits; *len = the length the whole
 * text needs (without the NUL), so a too-small buf can be retried. Returns 0,
 * or FM_EINVAL (unknown template, NULL role/content). */
int chat_render(enum chat_tmpl t, const struct chat_msg *msgs, size_t n,
		bool add_generation_prompt, bool enable_thinking, char *buf, size_t cap,
		size_t *len);

#endif
