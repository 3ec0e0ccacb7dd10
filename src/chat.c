/* chat.c: the chat templates of chat.h, each a C transcription of the Jinja
 * template it stands for (architectures.md §10.4): Qwen3's chat_template in
 * the checkpoint's tokenizer_config.json, and the Qwen3.5 MoE checkpoints'
 * (tests/chat/qwen35.jinja). Strings the templates test or split are Python
 * strings there: strip()/trim drop Unicode whitespace, rstrip('\n') only
 * newlines; both are spelled out below. tests/chat/run.sh renders the same
 * conversations with the real templates under jinja2 and compares bytes.
 */
#include "chat.h"

#include <string.h>

#include "chat_json.h"
#include "util.h"

void chat_put_n(struct chat_out *o, const char *s, size_t n)
{
	if (o->len < o->cap) {
		size_t room = o->cap - o->len;
		memcpy(o->buf + o->len, s, n < room ? n : room);
	}
	o->len += n;
}

void chat_put(struct chat_out *o, const char *s)
{
	chat_put_n(o, s, strlen(s));
}

/* A string view, for the templates' split/strip arithmetic. */
struct sv {
	const char *p;
	size_t n;
};

static struct sv sv_of(const char *s)
{
	return (struct sv){ s ? s : "", s ? strlen(s) : 0 };
}

static void put_sv(struct chat_out *o, struct sv s)
{
	chat_put_n(o, s.p, s.n);
}

static bool is_role(const struct chat_msg *m, const char *role)
{
	return !strcmp(m->role, role);
}

/* The state of one rendering: the tools (a json-c array, or NULL) and
 * whether the template raised (raise_exception in the Jinja source). */
struct render {
	struct chat_out *o;
	json_object *tools;
	const struct chat_msg *msgs;
	size_t n;
	bool gen, thinking;
	bool raised;
};

typedef void (*chat_render_fn)(struct render *r);

static void chatml_turn(struct chat_out *o, const char *role, struct sv content)
{
	chat_put(o, "<|im_start|>");
	chat_put(o, role);
	chat_put(o, "\n");
	put_sv(o, content);
	chat_put(o, "<|im_end|>\n");
}

static void render_chatml(struct render *r)
{
	for (size_t i = 0; i < r->n; i++)
		chatml_turn(r->o, r->msgs[i].role, sv_of(r->msgs[i].content));
	if (r->gen)
		chat_put(r->o, "<|im_start|>assistant\n");
}

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

/* Length of the Python whitespace character (str.isspace) at s[0..n), or 0:
 * \t..\r, \x1c..\x1f, space, U+0085, U+00A0, U+1680, U+2000..U+200A,
 * U+2028, U+2029, U+202F, U+205F, U+3000. */
static size_t py_space_at(const unsigned char *s, size_t n)
{
	if (n >= 1 && ((s[0] >= 0x09 && s[0] <= 0x0d) || (s[0] >= 0x1c && s[0] <= 0x20)))
		return 1;
	if (n >= 2 && s[0] == 0xc2 && (s[1] == 0x85 || s[1] == 0xa0))
		return 2;
	if (n < 3)
		return 0;
	if (s[0] == 0xe1 && s[1] == 0x9a && s[2] == 0x80) /* U+1680 */
		return 3;
	if (s[0] == 0xe2 && s[1] == 0x80 && (s[2] <= 0x8a || s[2] == 0xa8 || s[2] == 0xa9 ||
					     s[2] == 0xaf))
		return s[2] >= 0x80 ? 3 : 0; /* U+2000..200A, 2028, 2029, 202F */
	if (s[0] == 0xe2 && s[1] == 0x81 && s[2] == 0x9f) /* U+205F */
		return 3;
	if (s[0] == 0xe3 && s[1] == 0x80 && s[2] == 0x80) /* U+3000 */
		return 3;
	return 0;
}

/* Python's str.strip() (Jinja's trim). */
static struct sv py_strip(struct sv s)
{
	size_t k;
	while (s.n && (k = py_space_at((const unsigned char *)s.p, s.n)))
		s.p += k, s.n -= k;
	for (;;) { /* a whitespace character ending the string: 1 to 3 bytes */
		size_t cut = 0;
		for (size_t back = 1; back <= 3 && back <= s.n && !cut; back++)
			if (py_space_at((const unsigned char *)s.p + s.n - back, back) == back)
				cut = back;
		if (!cut)
			return s;
		s.n -= cut;
	}
}

static bool sv_starts(struct sv s, const char *head)
{
	size_t h = strlen(head);
	return s.n >= h && !memcmp(s.p, head, h);
}

static bool sv_ends(struct sv s, const char *tail)
{
	size_t t = strlen(tail);
	return s.n >= t && !memcmp(s.p + s.n - t, tail, t);
}

/* First / last occurrence of needle in s, or NULL. */
static const char *find_first(struct sv s, const char *needle)
{
	size_t k = strlen(needle);
	for (size_t i = 0; i + k <= s.n; i++)
		if (!memcmp(s.p + i, needle, k))
			return s.p + i;
	return NULL;
}

static const char *find_last(struct sv s, const char *needle)
{
	size_t k = strlen(needle);
	for (size_t i = s.n >= k ? s.n - k + 1 : 0; i-- > 0;)
		if (!memcmp(s.p + i, needle, k))
			return s.p + i;
	return NULL;
}

/* Both templates: with '</think>' in content,
 * reasoning = content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n')
 * answer    = content.split('</think>')[-1].lstrip('\n'); false without it. */
static bool split_reasoning(struct sv all, struct sv *answer, struct sv *reasoning)
{
	const char *first = find_first(all, "</think>");
	if (!first)
		return false;
	const char *last = find_last(all, "</think>");
	*answer = lstrip_nl((struct sv){ last + 8, all.n - (size_t)(last + 8 - all.p) });
	struct sv before = rstrip_nl((struct sv){ all.p, (size_t)(first - all.p) });
	const char *open = find_last(before, "<think>");
	if (open)
		before = (struct sv){ open + 7, before.n - (size_t)(open + 7 - before.p) };
	*reasoning = lstrip_nl(before);
	return true;
}

/* ns.last_query_index: the last user message that is not a wrapped tool
 * response (its content trimmed first when trim); -1 if none. */
static long last_query_index(const struct chat_msg *msgs, size_t n, bool trim)
{
	for (size_t i = n; i-- > 0;) {
		if (!is_role(&msgs[i], "user"))
			continue;
		struct sv c = sv_of(msgs[i].content);
		if (trim)
			c = py_strip(c);
		if (!(sv_starts(c, "<tool_response>") && sv_ends(c, "</tool_response>")))
			return (long)i;
	}
	return -1;
}

/* The tools list as the templates' `tools` sees it: NULL (no text, "[]")
 * when falsy; an error for text that is not a JSON array. */
static int parse_tools(const char *tools_json, json_object **out)
{
	*out = NULL;
	if (!tools_json)
		return 0;
	json_object *v = chat_json_parse(tools_json, strlen(tools_json));
	if (!v || !json_object_is_type(v, json_type_array)) {
		json_object_put(v);
		return FM_EINVAL;
	}
	if (json_object_array_length(v) == 0)
		json_object_put(v);
	else
		*out = v;
	return 0;
}

static void put_tools_json(struct render *r)
{
	for (size_t i = 0; i < json_object_array_length(r->tools); i++) {
		chat_put(r->o, "\n");
		chat_json_dump(r->o, json_object_array_get_idx(r->tools, i));
	}
}

/* ---- Qwen3 ---- */

static const char qwen3_tools_head[] =
	"# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
	"You are provided with function signatures within <tools></tools> XML tags:\n<tools>";
static const char qwen3_tools_tail[] =
	"\n</tools>\n\nFor each function call, return a json object with function name and "
	"arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": "
	"<function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n";

static void qwen3_system(struct render *r)
{
	bool sys = r->n && is_role(&r->msgs[0], "system");
	if (r->tools) {
		chat_put(r->o, "<|im_start|>system\n");
		if (sys) {
			put_sv(r->o, sv_of(r->msgs[0].content));
			chat_put(r->o, "\n\n");
		}
		chat_put(r->o, qwen3_tools_head);
		put_tools_json(r);
		chat_put(r->o, qwen3_tools_tail);
	} else if (sys) {
		chatml_turn(r->o, "system", sv_of(r->msgs[0].content));
	}
}

/* Arguments are written as the text given: the template's
 * `tool_call.arguments is string` branch (OpenAI sends them as a string). */
static void qwen3_tool_calls(struct chat_out *o, const struct chat_msg *m, struct sv content)
{
	for (size_t k = 0; k < m->n_tool_calls; k++) {
		const struct chat_tool_call *tc = &m->tool_calls[k];
		if (k || content.n)
			chat_put(o, "\n");
		chat_put(o, "<tool_call>\n{\"name\": \"");
		chat_put(o, tc->name);
		chat_put(o, "\", \"arguments\": ");
		chat_put(o, tc->arguments);
		chat_put(o, "}\n</tool_call>");
	}
}

static void qwen3_assistant(struct chat_out *o, const struct chat_msg *m, bool after_query,
			    bool is_last)
{
	struct sv content = sv_of(m->content), reasoning = { "", 0 };
	if (m->reasoning_content)
		reasoning = sv_of(m->reasoning_content);
	else
		split_reasoning(sv_of(m->content), &content, &reasoning);
	chat_put(o, "<|im_start|>assistant\n");
	if (after_query && (is_last || reasoning.n)) {
		chat_put(o, "<think>\n");
		put_sv(o, rstrip_nl(lstrip_nl(reasoning)));
		chat_put(o, "\n</think>\n\n");
		put_sv(o, lstrip_nl(content));
	} else {
		put_sv(o, content);
	}
	qwen3_tool_calls(o, m, content);
	chat_put(o, "<|im_end|>\n");
}

/* Consecutive tool messages: one user turn of <tool_response> blocks. */
static void tool_response(struct chat_out *o, const struct chat_msg *msgs, size_t n, size_t i,
			  bool open_turn, struct sv content)
{
	if (open_turn)
		chat_put(o, "<|im_start|>user");
	chat_put(o, "\n<tool_response>\n");
	put_sv(o, content);
	chat_put(o, "\n</tool_response>");
	if (i + 1 == n || !is_role(&msgs[i + 1], "tool"))
		chat_put(o, "<|im_end|>\n");
}

static void qwen3_turns(struct render *r)
{
	long q = last_query_index(r->msgs, r->n, false);
	size_t last_query = q >= 0 ? (size_t)q : r->n - 1;
	qwen3_system(r);
	for (size_t i = 0; i < r->n; i++) {
		const struct chat_msg *m = &r->msgs[i];
		if (is_role(m, "user") || (is_role(m, "system") && i > 0))
			chatml_turn(r->o, m->role, sv_of(m->content));
		else if (is_role(m, "assistant"))
			qwen3_assistant(r->o, m, i > last_query, i + 1 == r->n);
		else if (is_role(m, "tool"))
			tool_response(r->o, r->msgs, r->n, i,
				      i == 0 || !is_role(&r->msgs[i - 1], "tool"),
				      sv_of(m->content));
	}
}

static void render_qwen3(struct render *r)
{
	qwen3_turns(r);
	if (!r->gen)
		return;
	chat_put(r->o, "<|im_start|>assistant\n");
	if (!r->thinking)
		chat_put(r->o, "<think>\n\n</think>\n\n");
}

/* ---- Qwen3.5 ---- */

static const char qwen35_tools_head[] =
	"<|im_start|>system\n# Tools\n\nYou have access to the following functions:\n\n<tools>";
static const char qwen35_tools_tail[] =
	"\n</tools>\n\nIf you choose to call a function ONLY reply in the following format with "
	"NO suffix:\n\n<tool_call>\n<function=example_function_name>\n"
	"<parameter=example_parameter_1>\nvalue_1\n</parameter>\n"
	"<parameter=example_parameter_2>\nThis is the value for the second parameter\n"
	"that can span\nmultiple lines\n</parameter>\n</function>\n</tool_call>\n\n"
	"<IMPORTANT>\nReminder:\n- Function calls MUST follow the specified format: an inner "
	"<function=...></function> block must be nested within <tool_call></tool_call> XML "
	"tags\n- Required parameters MUST be specified\n- You may provide optional reasoning "
	"for your function call in natural language BEFORE the function call, but NOT after\n"
	"- If there is no function call available, answer the question like normal with your "
	"current knowledge and do not tell the user about function calls\n</IMPORTANT>";

static void qwen35_system(struct render *r)
{
	bool sys = is_role(&r->msgs[0], "system");
	struct sv content = sys ? py_strip(sv_of(r->msgs[0].content)) : (struct sv){ "", 0 };
	if (r->tools) {
		chat_put(r->o, qwen35_tools_head);
		put_tools_json(r);
		chat_put(r->o, qwen35_tools_tail);
		if (content.n) {
			chat_put(r->o, "\n\n");
			put_sv(r->o, content);
		}
		chat_put(r->o, "<|im_end|>\n");
	} else if (sys) {
		chatml_turn(r->o, "system", content);
	}
}

/* <parameter=K>\nV\n</parameter>\n per argument: strings as they are,
 * objects and arrays as tojson, other scalars as Python's str(). The
 * template iterates `arguments|items`, so they must be a JSON object. */
static bool qwen35_arguments(struct chat_out *o, const char *arguments)
{
	json_object *args = chat_json_parse(arguments, strlen(arguments));
	bool ok = args && json_object_is_type(args, json_type_object);
	if (ok) {
		json_object_object_foreach(args, key, val) {
			chat_put(o, "<parameter=");
			chat_put(o, key);
			chat_put(o, ">\n");
			chat_json_str(o, val);
			chat_put(o, "\n</parameter>\n");
		}
	}
	json_object_put(args);
	return ok;
}

static bool qwen35_tool_calls(struct chat_out *o, const struct chat_msg *m, struct sv content)
{
	for (size_t k = 0; k < m->n_tool_calls; k++) {
		const struct chat_tool_call *tc = &m->tool_calls[k];
		if (k)
			chat_put(o, "\n");
		else if (py_strip(content).n)
			chat_put(o, "\n\n");
		chat_put(o, "<tool_call>\n<function=");
		chat_put(o, tc->name);
		chat_put(o, ">\n");
		if (!qwen35_arguments(o, tc->arguments))
			return false;
		chat_put(o, "</function>\n</tool_call>");
	}
	return true;
}

static bool qwen35_assistant(struct chat_out *o, const struct chat_msg *m, bool after_query)
{
	struct sv content = py_strip(sv_of(m->content)), reasoning = { "", 0 };
	if (m->reasoning_content)
		reasoning = sv_of(m->reasoning_content);
	else
		split_reasoning(content, &content, &reasoning);
	reasoning = py_strip(reasoning);
	chat_put(o, "<|im_start|>assistant\n");
	if (after_query) {
		chat_put(o, "<think>\n");
		put_sv(o, reasoning);
		chat_put(o, "\n</think>\n\n");
	}
	put_sv(o, content);
	if (!qwen35_tool_calls(o, m, content))
		return false;
	chat_put(o, "<|im_end|>\n");
	return true;
}

/* The template raises on: no user query, a system message after the first,
 * an unknown role (and on no messages: there only the generation prompt is
 * written, which flashmoe's CLI uses to check a template name). */
static void render_qwen35(struct render *r)
{
	long last_query = r->n ? last_query_index(r->msgs, r->n, true) : 0;
	if (last_query < 0) {
		r->raised = true;
		return;
	}
	if (r->n)
		qwen35_system(r);
	for (size_t i = 0; i < r->n && !r->raised; i++) {
		const struct chat_msg *m = &r->msgs[i];
		if (is_role(m, "system"))
			r->raised = i > 0;
		else if (is_role(m, "user"))
			chatml_turn(r->o, "user", py_strip(sv_of(m->content)));
		else if (is_role(m, "assistant"))
			r->raised = !qwen35_assistant(r->o, m, (long)i > last_query);
		else if (is_role(m, "tool")) /* loop.previtem: none for the first message */
			tool_response(r->o, r->msgs, r->n, i,
				      i > 0 && !is_role(&r->msgs[i - 1], "tool"),
				      py_strip(sv_of(m->content)));
		else
			r->raised = true;
	}
	if (r->gen)
		chat_put(r->o, r->thinking ? "<|im_start|>assistant\n<think>\n"
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

static bool msgs_ok(const struct chat_msg *msgs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!msgs[i].role || (msgs[i].n_tool_calls && !msgs[i].tool_calls))
			return false;
		for (size_t k = 0; k < msgs[i].n_tool_calls; k++)
			if (!msgs[i].tool_calls[k].name || !msgs[i].tool_calls[k].arguments)
				return false;
	}
	return true;
}

int chat_render(enum chat_tmpl t, const struct chat_msg *msgs, size_t n, const char *tools_json,
		bool add_generation_prompt, bool enable_thinking, char *buf, size_t cap,
		size_t *len)
{
	chat_render_fn fn = NULL;
	for (size_t i = 0; i < N_TEMPLATES; i++)
		if (templates[i].id == t)
			fn = templates[i].render;
	if (!fn || (cap && !buf) || (n && !msgs) || !msgs_ok(msgs, n))
		return FM_EINVAL;
	struct chat_out o = { buf, cap, 0 };
	struct render r = { &o, NULL, msgs, n, add_generation_prompt, enable_thinking, false };
	if (parse_tools(tools_json, &r.tools))
		return FM_EINVAL;
	fn(&r);
	json_object_put(r.tools);
	if (r.raised)
		o.len = 0;
	if (o.len < cap)
		buf[o.len] = 0;
	else if (cap)
		buf[cap - 1] = 0;
	*len = o.len;
	return r.raised ? FM_EINVAL : 0;
}
