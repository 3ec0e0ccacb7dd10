/* tok_exact.c: the C side of the tokenizer exactness test (run.sh).
 *
 *   tok_exact check TOKENIZER_JSON DIR
 *       DIR holds cases.bin, expected.txt and chat.json from gen_cases.js.
 *       Every case must give the JavaScript encoder's ids, and decoding must
 *       give back the input bytes (tok_piece and the stream decoder). Invalid
 *       UTF-8: JS only sees the text with U+FFFD for each bad sequence, so
 *       flashmoe must match JS on that text, and round-trip the raw bytes.
 *       Chat cases: chat_render(qwen3) must equal the real Jinja template.
 *       The cases run twice: on the tokenizer.json, and on the same tokenizer
 *       written into a GGUF (tok_write_gguf) and loaded back (tok_load_gguf).
 *       Prints each failure and "N passed, N failed"; exit 0 or 1.
 *   tok_exact bench TOKENIZER_JSON FILE
 *       Load time, and MB/s of one tok_encode of FILE (best of 3).
 * Needs the network only through run.sh (npm); not a tests/test_*.c program.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat.h"
#include "gguf.h"
#include "tokenizer.h"
#include "util.h"

static char *read_file(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long sz = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *buf = sz >= 0 ? malloc((size_t)sz + 1) : NULL;
	if (buf && fread(buf, 1, (size_t)sz, f) != (size_t)sz) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	if (buf) {
		buf[sz] = 0;
		*n = (size_t)sz;
	}
	return buf;
}

static void show(const char *what, const char *s, size_t n)
{
	fprintf(stdout, "    %s \"", what);
	for (size_t i = 0; i < n && i < 160; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\\' || c == '"')
			fprintf(stdout, "\\%c", c);
		else if (c >= 0x20 && c != 0x7f)
			fputc(c, stdout);
		else
			fprintf(stdout, "\\x%02x", c);
	}
	fprintf(stdout, "\"%s\n", n > 160 ? "..." : "");
}

static void show_ids(const char *what, const int32_t *ids, int n)
{
	fprintf(stdout, "    %s", what);
	for (int i = 0; i < n && i < 40; i++)
		fprintf(stdout, " %d", ids[i]);
	fprintf(stdout, "%s\n", n > 40 ? " ..." : "");
}

/* Encode s; *ids malloc'd. Returns the count or a negative code. */
static int encode(const struct tok *t, const char *s, size_t n, int32_t **ids)
{
	int cap = (int)n + 8;
	*ids = malloc((size_t)cap * sizeof(int32_t));
	int k = tok_encode(t, s, n, true, *ids, cap);
	if (k > cap) { /* NFC made the text longer */
		free(*ids);
		*ids = malloc((size_t)k * sizeof(int32_t));
		k = tok_encode(t, s, n, true, *ids, k);
	}
	return k;
}

/* decode(ids) == s, both by pieces and by the stream decoder. */
static bool round_trip(const struct tok *t, const int32_t *ids, int k, const char *s, size_t n)
{
	char *a = malloc(n + 1), *b = malloc(n + tok_stream_max_bytes(t) + 8);
	size_t na = 0, nb = 0, len;
	bool ok = true;
	struct tok_stream st;
	tok_stream_init(&st, t, false);
	for (int i = 0; ok && i < k; i++) {
		const char *p = tok_piece(t, ids[i], &len);
		ok = p && na + len <= n;
		if (ok) {
			memcpy(a + na, p, len);
			na += len;
			int w = tok_stream_feed(&st, ids[i], b + nb, n + tok_stream_max_bytes(t) - nb);
			ok = w >= 0 && nb + (size_t)w <= n;
			nb += w > 0 ? (size_t)w : 0;
		}
	}
	if (ok) {
		int w = tok_stream_flush(&st, b + nb, 8);
		nb += w > 0 ? (size_t)w : 0;
	}
	ok = ok && na == n && nb == n && !memcmp(a, s, n) && !memcmp(b, s, n);
	free(a);
	free(b);
	return ok;
}

static int parse_ids(char *line, int32_t *ids, int cap)
{
	int n = 0;
	for (char *p = strtok(line, " "); p; p = strtok(NULL, " "))
		if (n < cap)
			ids[n++] = (int32_t)strtol(p, NULL, 10);
	return n;
}

struct counts {
	int pass, fail, shown;
};

/* One case: raw (and for invalid UTF-8 the JS-visible text) vs JS ids. */
struct tcase {
	const char *raw, *js, *rt; /* input, as JS sees it, what decode gives */
	size_t nraw, njs, nrt;
};

static void check_case(const struct tok *t, struct counts *c, int idx, const char *cat,
		       const struct tcase *k, char *exp_ids)
{
	const char *raw = k->raw, *js = k->js;
	size_t nraw = k->nraw, njs = k->njs;
	int32_t *want = malloc((njs + 8) * sizeof(int32_t)), *got = NULL, *rids = NULL;
	int nwant = parse_ids(exp_ids, want, (int)njs + 8);
	int ngot = encode(t, js, njs, &got);
	bool same = ngot == nwant && !memcmp(got, want, (size_t)nwant * sizeof(int32_t));
	int nr = raw == js ? ngot : encode(t, raw, nraw, &rids);
	bool rt = nr >= 0 && round_trip(t, raw == js ? got : rids, nr, k->rt, k->nrt);
	if (same && rt) {
		c->pass++;
	} else {
		c->fail++;
		if (c->shown++ < 30) {
			fprintf(stdout, "case %d (%s): %s%s\n", idx, cat, same ? "" : "ids differ ",
				rt ? "" : "round trip fails");
			show("text", raw, nraw);
			show_ids("js:", want, nwant);
			show_ids("c: ", got, ngot);
		}
	}
	if (raw != js && idx % 25 == 0) {
		printf("invalid UTF-8, case %d:\n", idx);
		show("bytes", raw, nraw);
		show_ids("flashmoe ids (raw bytes, round-trips):", rids, nr);
		show_ids("JS ids (U+FFFD per bad sequence):     ", want, nwant);
	}
	free(want);
	free(got);
	free(rids);
}

static uint32_t rd32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int check_cases(const struct tok *t, const char *dir, struct counts *c)
{
	char path[4096];
	size_t nb, ne;
	snprintf(path, sizeof(path), "%s/cases.bin", dir);
	unsigned char *bin = (unsigned char *)read_file(path, &nb);
	snprintf(path, sizeof(path), "%s/expected.txt", dir);
	char *exp = read_file(path, &ne);
	if (!bin || !exp) {
		fprintf(stdout, "cannot read the cases in %s\n", dir);
		return -1;
	}
	size_t off = 0;
	char *save = NULL, *line = strtok_r(exp, "\n", &save);
	for (int idx = 0; off + 5 <= nb && line; idx++, line = strtok_r(NULL, "\n", &save)) {
		int kind = bin[off];
		struct tcase k;
		k.nraw = k.njs = k.nrt = rd32(bin + off + 1);
		k.raw = k.js = k.rt = (const char *)bin + off + 5;
		off += 5 + k.nraw;
		if (kind & 1) {
			k.njs = rd32(bin + off);
			k.js = (const char *)bin + off + 4;
			off += 4 + k.njs;
		}
		if (kind & 2) {
			k.nrt = rd32(bin + off);
			k.rt = (const char *)bin + off + 4;
			off += 4 + k.nrt;
		}
		char *tab = strchr(line, '\t');
		if (!tab)
			return -1;
		*tab = 0;
		check_case(t, c, idx, line, &k, tab + 1);
	}
	free(bin);
	free(exp);
	return 0;
}

static void check_chat_case(json_object *cs, struct counts *c, int idx)
{
	json_object *msgs = json_object_object_get(cs, "messages");
	size_t n = json_object_array_length(msgs);
	struct chat_msg m[16] = { 0 };
	for (size_t i = 0; i < n && i < 16; i++) {
		json_object *o = json_object_array_get_idx(msgs, i);
		m[i].role = json_object_get_string(json_object_object_get(o, "role"));
		m[i].content = json_object_get_string(json_object_object_get(o, "content"));
	}
	const char *want = json_object_get_string(json_object_object_get(cs, "expected"));
	bool gen = json_object_get_boolean(json_object_object_get(cs, "add_generation_prompt"));
	bool think = json_object_get_boolean(json_object_object_get(cs, "enable_thinking"));
	char buf[8192];
	size_t len;
	int rc = chat_render(CHAT_TMPL_QWEN3, m, n, NULL, gen, think, buf, sizeof(buf), &len);
	if (!rc && len == strlen(want) && !strcmp(buf, want)) {
		c->pass++;
		return;
	}
	c->fail++;
	fprintf(stdout, "chat case %d (gen %d, thinking %d) differs\n", idx, gen, think);
	show("want", want, strlen(want));
	show("got ", buf, len);
}

static int check_chat(const struct tok *t, const char *dir, struct counts *c)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/chat.json", dir);
	json_object *root = json_object_from_file(path);
	if (!root)
		return -1;
	for (size_t i = 0; i < json_object_array_length(root); i++)
		check_chat_case(json_object_array_get_idx(root, i), c, (int)i);
	json_object_put(root);
	/* the template must be recognised from tokenizer_config.json */
	enum chat_tmpl d = chat_tmpl_detect(tok_chat_template(t));
	if (d == CHAT_TMPL_QWEN3) {
		c->pass++;
	} else {
		c->fail++;
		fprintf(stdout, "chat template detected as %s, expected qwen3\n", chat_tmpl_name(d));
	}
	return 0;
}

static int bench(const struct tok *t, const char *file)
{
	size_t n;
	char *text = read_file(file, &n);
	if (!text)
		return 1;
	int cap = (int)(n / 2 + 16);
	int32_t *ids = malloc((size_t)cap * sizeof(int32_t));
	double best = 1e9, best_cpu = 1e9;
	int k = 0;
	for (int rep = 0; rep < 3; rep++) {
		struct timespec c0, c1;
		double t0 = fm_now_s();
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
		k = tok_encode(t, text, n, true, ids, cap);
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
		double dt = fm_now_s() - t0;
		double cpu = (double)(c1.tv_sec - c0.tv_sec) + (c1.tv_nsec - c0.tv_nsec) * 1e-9;
		best = dt < best ? dt : best;
		best_cpu = cpu < best_cpu ? cpu : best_cpu;
	}
	/* CPU time of the one encoding thread: the machine may be shared */
	printf("encode: %zu bytes -> %d tokens (%.2f bytes/token) in %.3f s CPU (%.3f s wall): "
	       "%.1f MB/s\n", n, k, (double)n / k, best_cpu, best, n / best_cpu / 1e6);
	free(ids);
	free(text);
	return k > 0 ? 0 : 1;
}

/* The tokenizer written into DIR/tok.gguf and loaded back. */
static struct tok *via_gguf(const struct tok *t, const char *dir)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/tok.gguf", dir);
	struct fm_error err = { 0 };
	struct gguf_writer *w = gguf_writer_new(32);
	if (!w || tok_write_gguf(t, w) || gguf_writer_open(w, path, &err) ||
	    gguf_writer_finish(w, &err)) {
		printf("writing %s failed: %s\n", path, err.msg);
		gguf_writer_free(w);
		return NULL;
	}
	gguf_writer_free(w);
	double t0 = fm_now_s();
	struct gguf_file *f = gguf_open(path, &err);
	struct tok *g = f ? tok_load_gguf(f, &err) : NULL;
	double ms = (fm_now_s() - t0) * 1e3;
	gguf_close(f);
	if (!g)
		printf("loading %s failed: %s\n", path, err.msg);
	else
		printf("GGUF tokenizer loaded in %.0f ms (gguf_open + tok_load_gguf)\n", ms);
	return g;
}

int main(int argc, char **argv)
{
	if (argc != 4 || (strcmp(argv[1], "check") && strcmp(argv[1], "bench"))) {
		fprintf(stdout, "usage: tok_exact check TOKENIZER_JSON DIR | bench TOKENIZER_JSON FILE\n");
		return 2;
	}
	struct fm_error err = { 0 };
	double t0 = fm_now_s();
	struct tok *t = tok_load_json(argv[2], &err);
	if (!t) {
		fprintf(stdout, "load: %s\n", err.msg);
		return 1;
	}
	printf("tokenizer.json loaded in %.0f ms: %d tokens, %d merges, pre %s\n",
	       (fm_now_s() - t0) * 1e3, tok_n_vocab(t), tok_n_merges(t), tok_pre_name(t));
	if (!strcmp(argv[1], "bench")) {
		int rc = bench(t, argv[3]);
		tok_free(t);
		return rc;
	}
	struct counts c = { 0 };
	if (check_cases(t, argv[3], &c) || check_chat(t, argv[3], &c)) {
		fprintf(stdout, "cannot read the cases in %s\n", argv[3]);
		c.fail++;
	}
	struct tok *g = via_gguf(t, argv[3]);
	if (!g || check_cases(g, argv[3], &c))
		c.fail++;
	tok_free(g);
	tok_free(t);
	printf("%d passed, %d failed\n", c.pass, c.fail);
	return c.fail ? 1 : 0;
}
