/* chat_parse.c: the output parser of flashmoe.h (fm_chat_parser_*): generated
 * text, fed in chunks of any size, split into content, reasoning and tool
 * calls as llama-server reports them (reasoning_content; tool_calls with an
 * id, the name and the arguments as JSON text).
 *
 * The text is held in one buffer; each feed appends and then decides as much
 * as it can. What could still be the start of a tag ("</thi", "<tool_")
 * and whitespace that may turn out to sit before a tag are held back:
 *   START    the output's beginning: "<think>" (after whitespace) opens the
 *            reasoning, anything else is content
 *   THINK    reasoning up to "</think>", without the whitespace at its ends
 *   CONTENT  content up to "<tool_call>" (when tools are parsed); the
 *            whitespace before a tool call and after </think> or a call is
 *            dropped
 *   TOOL     a call, held whole until "</tool_call>"; then reported if its
 *            body is {"name": .., "arguments": {..}} (Qwen3) or
 *            <function=NAME><parameter=K>\nV\n</parameter>..</function>
 *            (Qwen3.5; V is JSON when it parses as JSON, True/False/None
 *            as Python writes them, else a string),
 *            else written out as content, tags and all
 * The arguments are written as Python's json.dumps writes them
 * (chat_json.c): the form the templates render a call in, so a returned
 * call renders back as the model wrote it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "chat.h"
#include "chat_json.h"
#include "util.h"

enum parse_state { ST_START, ST_THINK, ST_CONTENT, ST_TOOL };

struct fm_chat_parser {
	enum parse_state state;
	bool tools;
	bool skip_ws;         /* drop whitespace at the start of what follows */
	char *buf;            /* [cap] the undecided text */
	size_t len, cap;
	size_t body;          /* TOOL: where the call's body starts in buf */
	size_t scan;          /* TOOL: where to look for </tool_call> next */
	int n_calls;
	uint64_t id_seed;
	fm_chat_event_fn cb;
	void *user;
};

static const char TAG_THINK[] = "<think>", TAG_THINK_END[] = "</think>",
		  TAG_CALL[] = "<tool_call>", TAG_CALL_END[] = "</tool_call>";

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void emit(struct fm_chat_parser *p, enum fm_chat_event_kind kind, const char *text,
		 size_t len)
{
	if (len || kind > FM_CHAT_REASONING) {
		struct fm_chat_event ev = { .kind = kind, .text = text, .len = len, .index = -1 };
		p->cb(&ev, p->user);
	}
}

static void consume(struct fm_chat_parser *p, size_t n)
{
	if (n == 0)
		return;
	memmove(p->buf, p->buf + n, p->len - n);
	p->len -= n;
}

static const char *find(const char *s, size_t n, const char *tag)
{
	size_t k = strlen(tag);
	for (size_t i = 0; i + k <= n; i++)
		if (s[i] == tag[0] && !memcmp(s + i, tag, k))
			return s + i;
	return NULL;
}

/* The longest suffix of s[0..n) that is a proper prefix of tag. */
static size_t partial_tag(const char *s, size_t n, const char *tag)
{
	size_t k = strlen(tag);
	for (size_t m = k - 1 < n ? k - 1 : n; m > 0; m--)
		if (!memcmp(s + n - m, tag, m))
			return m;
	return 0;
}

static size_t rstrip_ws(const char *s, size_t n)
{
	while (n && is_ws(s[n - 1]))
		n--;
	return n;
}

/* Drops leading whitespace while skip_ws is set; false when nothing is left. */
static bool skip_leading_ws(struct fm_chat_parser *p)
{
	if (!p->skip_ws)
		return p->len > 0;
	size_t i = 0;
	while (i < p->len && is_ws(p->buf[i]))
		i++;
	consume(p, i);
	p->skip_ws = p->len == 0;
	return p->len > 0;
}

/* START: wait until the text either opens with <think> or cannot. */
static bool step_start(struct fm_chat_parser *p, bool final)
{
	size_t i = 0, k = strlen(TAG_THINK);
	while (i < p->len && is_ws(p->buf[i]))
		i++;
	size_t n = p->len - i;
	if (n >= k && !memcmp(p->buf + i, TAG_THINK, k)) {
		consume(p, i + k);
		p->state = ST_THINK, p->skip_ws = true;
		return true;
	}
	if (!final && n < k && !memcmp(p->buf + i, TAG_THINK, n))
		return false;
	p->state = ST_CONTENT;
	return true;
}

/* THINK and CONTENT: text up to a closing tag, holding back what may be the
 * start of that tag and (hold_ws) the whitespace before it. */
static bool step_text(struct fm_chat_parser *p, enum fm_chat_event_kind kind, const char *tag,
		      bool hold_ws, bool final)
{
	if (!skip_leading_ws(p))
		return false;
	const char *at = tag ? find(p->buf, p->len, tag) : NULL;
	if (at) {
		size_t pre = (size_t)(at - p->buf);
		emit(p, kind, p->buf, rstrip_ws(p->buf, pre));
		if (kind == FM_CHAT_REASONING) {
			consume(p, pre + strlen(tag));
			p->state = ST_CONTENT, p->skip_ws = true;
		} else { /* keep the whitespace and tag: a bad call is content */
			size_t keep = rstrip_ws(p->buf, pre);
			consume(p, keep);
			p->state = ST_TOOL;
			p->body = p->scan = pre - keep + strlen(tag);
		}
		return true;
	}
	size_t n = p->len;
	if (!final) {
		n -= tag ? partial_tag(p->buf, n, tag) : 0;
		if (hold_ws)
			n = rstrip_ws(p->buf, n);
	} else if (kind == FM_CHAT_REASONING) {
		n = rstrip_ws(p->buf, n);
	}
	emit(p, kind, p->buf, n);
	consume(p, n);
	if (final)
		p->len = 0;
	return false;
}

static char *dup_n(const char *s, size_t n)
{
	char *d = malloc(n + 1);
	if (d) {
		memcpy(d, s, n);
		d[n] = 0;
	}
	return d;
}

/* The arguments JSON of a call body, and its name (malloc'd), or false. */
static bool parse_json_call(const char *s, size_t n, char **name, char **args)
{
	json_object *v = chat_json_parse(s, n), *jn, *ja;
	bool ok = v && json_object_object_get_ex(v, "name", &jn) &&
		  json_object_is_type(jn, json_type_string) && json_object_get_string_len(jn) &&
		  json_object_object_get_ex(v, "arguments", &ja) &&
		  json_object_is_type(ja, json_type_object);
	if (ok) {
		struct chat_out o = { NULL, 0, 0 };
		chat_json_dump(&o, ja);
		*args = malloc(o.len + 1);
		*name = dup_n(json_object_get_string(jn), (size_t)json_object_get_string_len(jn));
		if (*args) {
			o = (struct chat_out){ *args, o.len + 1, 0 };
			chat_json_dump(&o, ja);
			(*args)[o.len] = 0;
		}
		ok = *args && *name && strlen(*name) == (size_t)json_object_get_string_len(jn);
	}
	json_object_put(v);
	return ok;
}

struct cursor {
	const char *p, *end;
};

static void cur_ws(struct cursor *c)
{
	while (c->p < c->end && is_ws(*c->p))
		c->p++;
}

static bool cur_lit(struct cursor *c, const char *lit)
{
	size_t k = strlen(lit);
	if ((size_t)(c->end - c->p) < k || memcmp(c->p, lit, k))
		return false;
	c->p += k;
	return true;
}

/* Text up to '>' on one line (a function or parameter name; no NUL). */
static bool cur_name(struct cursor *c, const char **s, size_t *n)
{
	*s = c->p;
	while (c->p < c->end && *c->p != '>' && *c->p != '\n' && *c->p != '<' && *c->p)
		c->p++;
	*n = (size_t)(c->p - *s);
	return *n && cur_lit(c, ">");
}

/* One <parameter=K>\nV\n</parameter> into args. */
static bool xml_param(struct cursor *c, json_object *args)
{
	const char *k, *end;
	size_t kn;
	if (!cur_lit(c, "<parameter=") || !cur_name(c, &k, &kn) ||
	    !(end = find(c->p, (size_t)(c->end - c->p), "</parameter>")))
		return false;
	const char *v = c->p;
	size_t vn = (size_t)(end - v);
	if (vn && v[0] == '\n')
		v++, vn--;
	if (vn && v[vn - 1] == '\n')
		vn--;
	c->p = end + strlen("</parameter>");
	if (vn > INT32_MAX)
		return false;
	json_object *val = chat_json_parse(v, vn);
	if (!val) /* the template writes Python's str(): True, False, None */
		val = vn == 4 && !memcmp(v, "True", 4)	  ? json_object_new_boolean(1)
		      : vn == 5 && !memcmp(v, "False", 5) ? json_object_new_boolean(0)
		      : vn == 4 && !memcmp(v, "None", 4)  ? json_object_new_null()
							  : json_object_new_string_len(v, (int)vn);
	if (!val && !(vn == 4 && !memcmp(v, "None", 4)))
		return false;
	char *key = dup_n(k, kn);
	bool ok = key && json_object_object_add(args, key, val) == 0;
	if (!ok)
		json_object_put(val);
	free(key);
	return ok;
}

static bool parse_xml_call(const char *s, size_t n, char **name, char **args)
{
	struct cursor c = { s, s + n };
	const char *fn;
	size_t fnn;
	cur_ws(&c);
	if (!cur_lit(&c, "<function=") || !cur_name(&c, &fn, &fnn))
		return false;
	json_object *a = json_object_new_object();
	bool ok = a != NULL;
	for (cur_ws(&c); ok && !cur_lit(&c, "</function>"); cur_ws(&c))
		ok = xml_param(&c, a);
	cur_ws(&c);
	ok = ok && c.p == c.end;
	if (ok) {
		struct chat_out o = { NULL, 0, 0 };
		chat_json_dump(&o, a);
		*args = malloc(o.len + 1);
		*name = dup_n(fn, fnn);
		if (*args) {
			o = (struct chat_out){ *args, o.len + 1, 0 };
			chat_json_dump(&o, a);
			(*args)[o.len] = 0;
		}
		ok = *args && *name;
	}
	json_object_put(a);
	return ok;
}

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* "call_" and 24 letters and digits, as llama-server's random ids. */
static void make_id(struct fm_chat_parser *p, char id[32])
{
	static const char al[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	memcpy(id, "call_", 5);
	for (int i = 0; i < 24; i++)
		id[5 + i] = al[splitmix(&p->id_seed) % 62];
	id[29] = 0;
}

/* TOOL: the whole call once </tool_call> is here; a bad one is content. */
static bool step_tool(struct fm_chat_parser *p, bool final)
{
	const char *end = find(p->buf + p->scan, p->len - p->scan, TAG_CALL_END);
	if (!end) {
		size_t k = strlen(TAG_CALL_END);
		p->scan = p->len - p->body >= k ? p->len - k + 1 : p->body;
		if (final) {
			emit(p, FM_CHAT_CONTENT, p->buf, p->len);
			p->len = 0;
		}
		return false;
	}
	const char *body = p->buf + p->body;
	size_t n = (size_t)(end - body), total = (size_t)(end - p->buf) + strlen(TAG_CALL_END);
	char *name = NULL, *args = NULL;
	bool ok = parse_json_call(body, n, &name, &args);
	if (!ok) {
		free(name), free(args);
		name = args = NULL;
		ok = parse_xml_call(body, n, &name, &args);
	}
	if (ok) {
		char id[32];
		make_id(p, id);
		struct fm_chat_event ev = { FM_CHAT_TOOL_CALL_BEGIN, NULL, 0, name, id, p->n_calls };
		p->cb(&ev, p->user);
		ev = (struct fm_chat_event){ FM_CHAT_TOOL_CALL_ARGS, args, strlen(args), name, id,
					     p->n_calls };
		p->cb(&ev, p->user);
		ev = (struct fm_chat_event){ FM_CHAT_TOOL_CALL_END, NULL, 0, name, id, p->n_calls++ };
		p->cb(&ev, p->user);
	} else {
		emit(p, FM_CHAT_CONTENT, p->buf, total);
	}
	free(name), free(args);
	consume(p, total);
	p->state = ST_CONTENT, p->skip_ws = ok;
	return true;
}

static void run(struct fm_chat_parser *p, bool final)
{
	bool more = true;
	while (more) {
		switch (p->state) {
		case ST_START:
			more = step_start(p, final);
			break;
		case ST_THINK:
			more = step_text(p, FM_CHAT_REASONING, TAG_THINK_END, true, final);
			break;
		case ST_CONTENT:
			more = step_text(p, FM_CHAT_CONTENT, p->tools ? TAG_CALL : NULL, p->tools,
					 final);
			break;
		case ST_TOOL:
			more = step_tool(p, final);
			break;
		}
	}
}

struct fm_chat_parser *fm_chat_parser_new(const char *tmpl, bool in_think, bool tools)
{
	if (tmpl && chat_tmpl_from_name(tmpl) == CHAT_TMPL_NONE)
		return NULL;
	struct fm_chat_parser *p = calloc(1, sizeof(*p));
	if (!p || !(p->buf = malloc(p->cap = 256))) {
		free(p);
		return NULL;
	}
	p->state = in_think ? ST_THINK : ST_START;
	p->skip_ws = in_think;
	p->tools = tools;
	if (getrandom(&p->id_seed, sizeof(p->id_seed), GRND_NONBLOCK) != sizeof(p->id_seed))
		p->id_seed = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)p;
	return p;
}

void fm_chat_parser_free(struct fm_chat_parser *p)
{
	if (p) {
		free(p->buf);
		free(p);
	}
}

int fm_chat_parser_feed(struct fm_chat_parser *p, const char *text, size_t len,
			fm_chat_event_fn cb, void *user)
{
	if (!p || !cb || (len && !text))
		return FM_EINVAL;
	if (p->len + len > p->cap) {
		size_t cap = p->cap;
		while (cap < p->len + len)
			cap *= 2;
		char *b = realloc(p->buf, cap);
		if (!b)
			return FM_ENOMEM;
		p->buf = b, p->cap = cap;
	}
	if (len)
		memcpy(p->buf + p->len, text, len);
	p->len += len;
	p->cb = cb, p->user = user;
	run(p, false);
	return 0;
}

int fm_chat_parser_finish(struct fm_chat_parser *p, fm_chat_event_fn cb, void *user)
{
	if (!p || !cb)
		return FM_EINVAL;
	p->cb = cb, p->user = user;
	run(p, true);
	return 0;
}
