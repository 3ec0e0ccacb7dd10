/* chat.c: the chat templates of chat.h, each a C transcription of the Jinja
 * template it stands for (architectures.md §10.4; Qwen3's template in the
 * checkpoint's tokenizer_config.json). tests/tokenizer/run.sh checks qwen3
 * against the real template rendered by a JavaScript Jinja implementation.
 */
#include "chat.h"

#include <string.h>

#include "util.h"

/* Output that counts what it could not store (snprintf-style). */
struct out {
	char *buf;
	size_t cap, len;
};

static void put_n(struct out *o, const char *s, size_t n)
{
	if (o->len < o->cap) {
		size_t room = o->cap - o->len;
		memcpy(o->buf + o->len, s, n < room ? n : room);
	}
	o->len += n;
}

static void put(struct out *o, const char *s)
{
	put_n(o, s, strlen(s));
}

static bool is_role(const struct chat_msg *m, const char *role)
{
	return !strcmp(m->role, role);
}

typedef void (*chat_render_fn)(struct out *o, const struct chat_msg *msgs, size_t n,
			       bool add_generation_prompt, bool enable_thinking);

static void render_chatml(struct out *o, const struct chat_msg *msgs, size_t n, bool gen,
			  bool thinking)
{
	(void)thinking; /* ChatML has no thinking switch */
	for (size_t i = 0; i < n; i++) {
		put(o, "<|im_start|>");
		put(o, msgs[i].role);
		put(o, "\n");
		put(o, msgs[i].content);
		put(o, "<|im_end|>\n");
	}
	if (gen)
		put(o, "<|im_start|>assistant\n");
}

/* A string view, for the template's split/strip arithmetic. */
struct sv {
	const char *p;
	size_t n;
};

static struct sv lstrip_nl(struct sv s)
{
	while (s.n && s.p[0] == '\n')
		s.p++, s.n--;
	return s;
}

static struct sv rstrip_nl(struct sv s)
{
	while (s.n && s.p[s.n - 1] == '\n')
		s.n--;
	return s;
}

/* Last occurrence of needle in s, or NULL. */
static const char *find_last(struct sv s, const char *needle)
{
	size_t k = strlen(needle);
	for (size_t i = s.n >= k ? s.n - k + 1 : 0; i-- > 0;)
		if (!memcmp(s.p + i, needle, k))
			return s.p + i;
	return NULL;
}

/* Qwen3: content.split('</think>')[-1].lstrip('\n') is the answer, and
 * content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n')
 * the reasoning; without </think> all of it is the answer. */
static void split_reasoning(const char *content, struct sv *answer, struct sv *reasoning)
{
	struct sv all = { content, strlen(content) };
	const char *first = strstr(content, "</think>");
	*reasoning = (struct sv){ content, 0 };
	*answer = all;
	if (!first)
		return;
	const char *last = find_last(all, "</think>");
	*answer = lstrip_nl((struct sv){ last + 8, all.n - (size_t)(last + 8 - content) });
	struct sv before = rstrip_nl((struct sv){ content, (size_t)(first - content) });
	const char *open = find_last(before, "<think>");
	if (open)
		before = (struct sv){ open + 7, before.n - (size_t)(open + 7 - before.p) };
	*reasoning = lstrip_nl(before);
}

static bool starts_ends(const char *s, const char *head, const char *tail)
{
	size_t n = strlen(s), h = strlen(head), t = strlen(tail);
	return n >= h && n >= t && !memcmp(s, head, h) && !memcmp(s + n - t, tail, t);
}

/* Index of the last user message that is a real query (not a wrapped tool
 * response); n - 1 if none (the template's ns.last_query_index). */
static size_t last_query_index(const struct chat_msg *msgs, size_t n)
{
	for (size_t i = n; i-- > 0;)
		if (is_role(&msgs[i], "user") &&
		    !starts_ends(msgs[i].content, "<tool_response>", "</tool_response>"))
			return i;
	return n ? n - 1 : 0;
}

static void qwen3_assistant(struct out *o, const struct chat_msg *m, bool keep_reasoning,
			    bool is_last)
{
	struct sv answer, reasoning;
	split_reasoning(m->content, &answer, &reasoning);
	put(o, "<|im_start|>assistant\n");
	if (keep_reasoning && (is_last || reasoning.n)) {
		reasoning = rstrip_nl(lstrip_nl(reasoning));
		put(o, "<think>\n");
		put_n(o, reasoning.p, reasoning.n);
		put(o, "\n</think>\n\n");
		answer = lstrip_nl(answer);
	}
	put_n(o, answer.p, answer.n);
	put(o, "<|im_end|>\n");
}

static void qwen3_turns(struct out *o, const struct chat_msg *msgs, size_t n)
{
	size_t last_query = last_query_index(msgs, n);
	if (n && is_role(&msgs[0], "system")) {
		put(o, "<|im_start|>system\n");
		put(o, msgs[0].content);
		put(o, "<|im_end|>\n");
	}
	for (size_t i = 0; i < n; i++) {
		const struct chat_msg *m = &msgs[i];
		if (is_role(m, "user") || (is_role(m, "system") && i > 0)) {
			render_chatml(o, m, 1, false, false);
		} else if (is_role(m, "assistant")) {
			qwen3_assistant(o, m, i > last_query, i + 1 == n);
		} else if (is_role(m, "tool")) {
			if (i == 0 || !is_role(&msgs[i - 1], "tool"))
				put(o, "<|im_start|>user");
			put(o, "\n<tool_response>\n");
			put(o, m->content);
			put(o, "\n</tool_response>");
			if (i + 1 == n || !is_role(&msgs[i + 1], "tool"))
				put(o, "<|im_end|>\n");
		}
	}
}

static void render_qwen3(struct out *o, const struct chat_msg *msgs, size_t n, bool gen,
			 bool thinking)
{
	qwen3_turns(o, msgs, n);
	if (!gen)
		return;
	put(o, "<|im_start|>assistant\n");
	if (!thinking)
		put(o, "<think>\n\n</think>\n\n");
}

static void render_qwen35(struct out *o, const struct chat_msg *msgs, size_t n, bool gen,
			  bool thinking)
{
	qwen3_turns(o, msgs, n);
	if (gen)
		put(o, thinking ? "<|im_start|>assistant\n<think>\n"
				: "<|im_start|>assistant\n<think>\n\n</think>\n\n");
}

static const struct {
	enum chat_tmpl id;
	const char *name;
	chat_render_fn render;
} templates[] = {
	{ CHAT_TMPL_CHATML, "chatml", render_chatml },
	{ CHAT_TMPL_QWEN3, "qwen3", render_qwen3 },
	{ CHAT_TMPL_QWEN35, "qwen35", render_qwen35 },
};

#define N_TEMPLATES (sizeof(templates) / sizeof(templates[0]))

enum chat_tmpl chat_tmpl_from_name(const char *name)
{
	for (size_t i = 0; name && i < N_TEMPLATES; i++)
		if (!strcmp(name, templates[i].name))
			return templates[i].id;
	return CHAT_TMPL_NONE;
}

const char *chat_tmpl_name(enum chat_tmpl t)
{
	for (size_t i = 0; i < N_TEMPLATES; i++)
		if (templates[i].id == t)
			return templates[i].name;
	return "none";
}

enum chat_tmpl chat_tmpl_detect(const char *jinja)
{
	if (!jinja || !strstr(jinja, "<|im_start|>"))
		return CHAT_TMPL_NONE;
	/* The Jinja source spells newlines inside string literals as \n. */
	if (strstr(jinja, "'<think>\\n'") || strstr(jinja, "\"<think>\\n\""))
		return CHAT_TMPL_QWEN35;
	if (strstr(jinja, "<think>") && strstr(jinja, "enable_thinking"))
		return CHAT_TMPL_QWEN3;
	return CHAT_TMPL_CHATML;
}

int chat_render(enum chat_tmpl t, const struct chat_msg *msgs, size_t n,
		bool add_generation_prompt, bool enable_thinking, char *buf, size_t cap,
		size_t *len)
{
	chat_render_fn fn = NULL;
	for (size_t i = 0; i < N_TEMPLATES; i++)
		if (templates[i].id == t)
			fn = templates[i].render;
	for (size_t i = 0; i < n; i++)
		if (!msgs[i].role || !msgs[i].content)
			fn = NULL;
	if (!fn || (cap && !buf))
		return FM_EINVAL;
	struct out o = { buf, cap, 0 };
	fn(&o, msgs, n, add_generation_prompt, enable_thinking);
	if (o.len < cap)
		buf[o.len] = 0;
	else if (cap)
		buf[cap - 1] = 0;
	*len = o.len;
	return 0;
}
