/* chat_exact.c: chat_render (src/chat.c) against the real Jinja templates.
 *
 *   chat_exact CASES.json [TEMPLATE_DIR]
 *
 * CASES.json comes from render_jinja.py: per case the template, the tools
 * JSON text, the messages, the switches and the text the Jinja template gave
 * (or error: it raised). The C rendering must be the same bytes, or refuse
 * (FM_EINVAL) exactly where the template raised. Then the round trip: each
 * rendered assistant turn that holds tool calls goes through the output
 * parser (fm_chat_parser_*), which must give back the calls of the messages
 * (unless a message's own text holds <tool_call> markup): the same names,
 * the same arguments (as JSON values; written in json.dumps form). With
 * TEMPLATE_DIR, its qwen3.jinja and qwen35.jinja must be detected as those
 * templates. Prints the first difference of each failing case and
 * "N passed, N failed". Exit 0 / 1.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "chat_json.h"
#include "flashmoe.h"
#include "util.h"

#define MAX_MSGS 16
#define MAX_CALLS 8

static const char *str(json_object *o, const char *key)
{
	json_object *v;
	if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
		return NULL;
	return json_object_get_string(v);
}

static bool flag(json_object *o, const char *key)
{
	json_object *v;
	return json_object_object_get_ex(o, key, &v) && json_object_get_boolean(v);
}

/* Print where got and want part, with some context. */
static void show_diff(const char *want, const char *got, size_t got_len)
{
	size_t i = 0, wn = strlen(want);
	while (i < wn && i < got_len && want[i] == got[i])
		i++;
	size_t from = i > 40 ? i - 40 : 0;
	printf("  first difference at byte %zu (want %zu bytes, got %zu)\n", i, wn, got_len);
	printf("  want: %.*s\n", (int)(wn - from < 120 ? wn - from : 120), want + from);
	printf("  got : %.*s\n", (int)(got_len - from < 120 ? got_len - from : 120), got + from);
}

/* The calls the parser finds, as "name(args)\n" lines. */
struct calls_text {
	char s[8192];
	size_t n;
};

static void cat(struct calls_text *t, const char *s, size_t n)
{
	if (t->n + n < sizeof(t->s)) {
		memcpy(t->s + t->n, s, n);
		t->n += n;
		t->s[t->n] = 0;
	}
}

static void on_event(const struct fm_chat_event *ev, void *user)
{
	struct calls_text *t = user;
	if (ev->kind == FM_CHAT_TOOL_CALL_BEGIN) {
		cat(t, ev->name, strlen(ev->name));
		cat(t, "(", 1);
	} else if (ev->kind == FM_CHAT_TOOL_CALL_ARGS) {
		cat(t, ev->text, ev->len);
	} else if (ev->kind == FM_CHAT_TOOL_CALL_END) {
		cat(t, ")\n", 2);
	}
}

/* Arguments text in json.dumps form. */
static void canonical(struct calls_text *t, const char *args)
{
	json_object *v = chat_json_parse(args, strlen(args));
	char buf[4096];
	struct chat_out o = { buf, sizeof(buf) - 1, 0 };
	if (v)
		chat_json_dump(&o, v);
	json_object_put(v);
	cat(t, buf, o.len < sizeof(buf) - 1 ? o.len : 0);
}

/* Parse every assistant turn of text that calls tools; compare with the
 * messages' calls. */
static bool round_trip(const char *tmpl, const struct chat_msg *m, size_t n, const char *text)
{
	struct calls_text want = { .n = 0 }, got = { .n = 0 };
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < m[i].n_tool_calls; k++) {
			cat(&want, m[i].tool_calls[k].name, strlen(m[i].tool_calls[k].name));
			cat(&want, "(", 1);
			canonical(&want, m[i].tool_calls[k].arguments);
			cat(&want, ")\n", 2);
		}
	const char *open = "<|im_start|>assistant\n";
	for (const char *p = strstr(text, open); p; p = strstr(p, open)) {
		p += strlen(open);
		const char *end = strstr(p, "<|im_end|>");
		size_t len = end ? (size_t)(end - p) : strlen(p);
		struct fm_chat_parser *ps = fm_chat_parser_new(tmpl, false, true);
		if (!ps)
			return false;
		fm_chat_parser_feed(ps, p, len, on_event, &got);
		fm_chat_parser_finish(ps, on_event, &got);
		fm_chat_parser_free(ps);
	}
	if (!strcmp(want.s, got.s))
		return true;
	printf("  round trip: want calls\n%s  parsed\n%s", want.s, got.s);
	return false;
}

static bool check_case(json_object *c)
{
	struct chat_msg m[MAX_MSGS] = { 0 };
	struct chat_tool_call calls[MAX_MSGS][MAX_CALLS] = { 0 };
	json_object *msgs = json_object_object_get(c, "messages");
	size_t n = json_object_array_length(msgs);
	if (n > MAX_MSGS)
		return false;
	for (size_t i = 0; i < n; i++) {
		json_object *o = json_object_array_get_idx(msgs, i), *tc;
		m[i].role = str(o, "role");
		m[i].content = str(o, "content");
		m[i].reasoning_content = str(o, "reasoning_content");
		if (!json_object_object_get_ex(o, "tool_calls", &tc))
			continue;
		size_t k = json_object_array_length(tc);
		for (size_t j = 0; j < k && j < MAX_CALLS; j++) {
			json_object *cj = json_object_array_get_idx(tc, j);
			calls[i][j] = (struct chat_tool_call){ str(cj, "id"), str(cj, "name"),
							       str(cj, "arguments") };
		}
		m[i].tool_calls = calls[i];
		m[i].n_tool_calls = k < MAX_CALLS ? k : MAX_CALLS;
	}
	enum chat_tmpl t = chat_tmpl_from_name(str(c, "tmpl"));
	const char *tools = str(c, "tools"), *want = str(c, "expected");
	bool gen = flag(c, "gen"), think = flag(c, "think");
	size_t len = 0;
	int rc = chat_render(t, m, n, tools, gen, think, NULL, 0, &len);
	char *buf = malloc(len + 1);
	if (!buf)
		return false;
	if (!rc)
		rc = chat_render(t, m, n, tools, gen, think, buf, len + 1, &len);
	bool ok = want ? rc == 0 && len == strlen(want) && !memcmp(buf, want, len)
		       : rc == FM_EINVAL;
	/* contents that hold tool-call markup themselves cannot come back apart */
	bool markup = false;
	for (size_t i = 0; i < n; i++)
		markup |= (m[i].content && strstr(m[i].content, "tool_call>")) ||
			  (m[i].reasoning_content && strstr(m[i].reasoning_content, "tool_call>"));
	if (ok && want && t != CHAT_TMPL_CHATML && !markup)
		ok = round_trip(str(c, "tmpl"), m, n, want);
	if (!ok) {
		printf("FAIL: %s %s gen=%d think=%d: rc %d%s\n", str(c, "name"), str(c, "tmpl"), gen,
		       think, rc, want ? "" : " (the template raises)");
		if (want && !rc)
			show_diff(want, buf, len);
	}
	free(buf);
	return ok;
}

/* The template files must be recognised as the templates they are. */
static bool check_detect(const char *dir, const char *name)
{
	char path[4096], *text = NULL;
	snprintf(path, sizeof(path), "%s/%s.jinja", dir, name);
	FILE *f = fopen(path, "rb");
	size_t n = 0;
	if (f && (text = calloc(1, 1 << 20)))
		n = fread(text, 1, (1 << 20) - 1, f);
	if (f)
		fclose(f);
	enum chat_tmpl t = n ? chat_tmpl_detect(text) : CHAT_TMPL_NONE;
	free(text);
	if (t == chat_tmpl_from_name(name))
		return true;
	printf("FAIL: %s detected as %s\n", path, chat_tmpl_name(t));
	return false;
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: chat_exact CASES.json [TEMPLATE_DIR]\n");
		return 2;
	}
	json_object *root = json_object_from_file(argv[1]);
	if (!root || !json_object_is_type(root, json_type_array)) {
		fprintf(stderr, "chat_exact: cannot read %s\n", argv[1]);
		return 1;
	}
	int pass = 0, fail = 0;
	for (size_t i = 0; i < json_object_array_length(root); i++)
		check_case(json_object_array_get_idx(root, i)) ? pass++ : fail++;
	json_object_put(root);
	for (int i = 0; argc == 3 && i < 2; i++)
		check_detect(argv[2], i ? "qwen35" : "qwen3") ? pass++ : fail++;
	printf("%d passed, %d failed\n", pass, fail);
	return fail ? 1 : 0;
}
