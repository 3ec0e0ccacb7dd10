/* test_tokenizer.c: the byte-level BPE tokenizer on a small hand-made
 * vocabulary (no network): a tokenizer.json written here (both merge
 * formats), the same tokenizer through a GGUF, added/special tokens, BPE tie
 * order, NFC, invalid UTF-8, streaming decode of split characters, long
 * runs, the cap contract, concurrent encoders, loader errors, and the
 * vocabularies refused at load (empty, duplicated, a byte without a token,
 * more tokens than embedding rows).
 * The exactness test against the real Qwen3 tokenizer is tests/tokenizer/. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "testutil.h"
#include "tokenizer.h"
#include "util.h"

/* Vocabulary: ids 0..255 are the bytes (GPT-2 characters), then merges. */
static const char *const merges[][2] = {
	{ "l", "l" }, { "h", "e" }, { "he", "ll" }, { "hell", "o" }, { "Ġ", "w" }, { "o", "r" },
	{ "Ġw", "or" }, { "l", "d" }, { "Ġwor", "ld" }, { "a", "a" }, { "Ã", "©" },
	{ "ä", "¸" }, { "¤", "Ì" },
};
#define N_MERGES 13
enum { ID_LL = 256, ID_HELLO = 259, ID_WORLD = 264, ID_AA = 265, ID_EACUTE = 266,
       ID_A4_CC = 268, ID_EOT = 269, ID_IM_START, ID_IM_END, ID_THINK };

static unsigned byte_cp(unsigned b)
{
	unsigned n = 0;
	for (unsigned x = 0; x < b; x++)
		n += !((x >= 0x21 && x <= 0x7e) || (x >= 0xa1 && x <= 0xac) || x >= 0xae);
	return (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae ? b : 256 + n;
}

/* JSON string of byte b's GPT-2 character. */
static void put_byte_char(FILE *f, unsigned b)
{
	unsigned cp = byte_cp(b);
	if (cp == '"' || cp == '\\')
		fprintf(f, "\"\\%c\"", cp);
	else if (cp < 0x80)
		fprintf(f, "\"%c\"", cp);
	else
		fprintf(f, "\"\\u%04x\"", cp);
}

static void write_json(const char *path, bool old_merges, const char *model_type)
{
	FILE *f = fopen(path, "w");
	fprintf(f, "{\"version\":\"1.0\",\"added_tokens\":["
		   "{\"id\":269,\"content\":\"<|endoftext|>\",\"special\":true},"
		   "{\"id\":270,\"content\":\"<|im_start|>\",\"special\":true},"
		   "{\"id\":271,\"content\":\"<|im_end|>\",\"special\":true},"
		   "{\"id\":272,\"content\":\"<think>\",\"special\":false}],"
		   "\"normalizer\":{\"type\":\"NFC\"},\"pre_tokenizer\":{\"type\":\"Sequence\","
		   "\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":"
		   "\"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}| "
		   "?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"},"
		   "\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\","
		   "\"add_prefix_space\":false,\"use_regex\":false}]},"
		   "\"model\":{\"type\":\"%s\",\"vocab\":{", model_type);
	for (unsigned b = 0; b < 256; b++) {
		put_byte_char(f, b);
		fprintf(f, ":%u,", b);
	}
	for (int i = 0; i < N_MERGES; i++)
		fprintf(f, "\"%s%s\":%d%s", merges[i][0], merges[i][1], 256 + i,
			i + 1 < N_MERGES ? "," : "},\"merges\":[");
	for (int i = 0; i < N_MERGES; i++)
		fprintf(f, old_merges ? "\"%s %s\"%s" : "[\"%s\",\"%s\"]%s", merges[i][0],
			merges[i][1], i + 1 < N_MERGES ? "," : "]}}\n");
	fclose(f);
}

static int enc(const struct tok *t, const char *s, bool special, int32_t *ids, int cap)
{
	return tok_encode(t, s, strlen(s), special, ids, cap);
}

static void expect_ids(const struct tok *t, const char *s, bool special, const int32_t *want,
		       int n)
{
	int32_t got[64];
	int k = enc(t, s, special, got, 64);
	bool same = k == n && (!n || !memcmp(got, want, (size_t)n * sizeof(int32_t)));
	CHECK(same, "'%s': got %d ids (first %d), want %d (first %d)", s, k, k > 0 ? got[0] : -1,
	      n, n ? want[0] : -1);
}

/* decode(encode(s)) == s by pieces. */
static bool round_trips(const struct tok *t, const char *s, size_t n)
{
	int32_t *ids = malloc((n + 1) * sizeof(int32_t));
	int k = tok_encode(t, s, n, true, ids, (int)n + 1);
	size_t off = 0, len;
	bool ok = k >= 0 && k <= (int)n + 1;
	for (int i = 0; ok && i < k; i++) {
		const char *p = tok_piece(t, ids[i], &len);
		ok = p && off + len <= n && !memcmp(s + off, p, len);
		off += len;
	}
	free(ids);
	return ok && off == n;
}

static void test_basic(const struct tok *t)
{
	expect_ids(t, "hello world", true, (int32_t[]){ ID_HELLO, ID_WORLD }, 2);
	expect_ids(t, "aaaaa", true, (int32_t[]){ ID_AA, ID_AA, 'a' }, 3); /* leftmost first */
	expect_ids(t, "a  b", true, (int32_t[]){ 'a', ' ', ' ', 'b' }, 4);
	expect_ids(t, "123", true, (int32_t[]){ '1', '2', '3' }, 3);
	expect_ids(t, "é", true, (int32_t[]){ ID_EACUTE }, 1);
	expect_ids(t, "e\xcc\x81", true, (int32_t[]){ ID_EACUTE }, 1); /* NFC */
	expect_ids(t, "", true, NULL, 0);
	CHECK(tok_n_vocab(t) == 273, "n_vocab %d", tok_n_vocab(t));
	CHECK(tok_n_merges(t) == N_MERGES, "merges %d", tok_n_merges(t));
	CHECK(!strcmp(tok_pre_name(t), "qwen2"), "pre %s", tok_pre_name(t));
	/* qwen2: a combining mark is not a letter, so "ä" + U+0301 is 2 pieces */
	expect_ids(t, "a\xcc\x88\xcc\x81", true, (int32_t[]){ 0xc3, 0xa4, 0xcc, 0x81 }, 4);
}

static void test_special(const struct tok *t)
{
	expect_ids(t, "hello<|im_end|>", true, (int32_t[]){ ID_HELLO, ID_IM_END }, 2);
	expect_ids(t, "<|im_start|><|im_end|>", true, (int32_t[]){ ID_IM_START, ID_IM_END }, 2);
	expect_ids(t, "<think>", false, (int32_t[]){ ID_THINK }, 1); /* not special: always */
	int32_t ids[64];
	int k = enc(t, "x<|im_end|>", false, ids, 64);
	CHECK(k == 11, "unparsed special: %d ids", k);
	for (int i = 0; i < k && i < 64; i++)
		CHECK(ids[i] < 256, "unparsed special gave id %d", ids[i]);
	CHECK(tok_eos(t) == ID_IM_END, "eos %d", tok_eos(t));
	CHECK(tok_is_eog(t, ID_IM_END) && tok_is_eog(t, ID_EOT) && !tok_is_eog(t, ID_THINK),
	      "eog set");
	CHECK(tok_is_control(t, ID_IM_START) && !tok_is_control(t, ID_THINK), "control");
	CHECK(tok_find(t, "<think>", 7) == ID_THINK && tok_find(t, "nope", 4) == -1, "find");
	size_t len;
	const char *p = tok_piece(t, ID_IM_END, &len);
	CHECK(p && len == 10 && !memcmp(p, "<|im_end|>", 10), "special piece");
	CHECK(!tok_piece(t, 273, &len) && !tok_piece(t, -1, &len), "bad id piece");
}

static void test_invalid_utf8(const struct tok *t)
{
	static const char *const cases[] = { "\xff\xfe" "ab", "a\xe4\xb8", "\xed\xa0\x80x",
					     "\xc0\x80", "ok\x80\x80 \xf0\x9f\x98", "\xe4\xb8\x96" };
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CHECK(round_trips(t, cases[i], strlen(cases[i])), "round trip of case %zu", i);
	/* a NUL is a character like any other */
	CHECK(round_trips(t, "a\0b", 3), "NUL round trip");
	/* the truncated 2 bytes of U+4E16 merge as valid ones would */
	expect_ids(t, "\xe4\xb8", true, (int32_t[]){ 267 }, 1);
}

/* Feed ids one at a time; returns the concatenated output length. */
static size_t stream(const struct tok *t, const int32_t *ids, int n, char *out, int *n_empty)
{
	struct tok_stream s;
	tok_stream_init(&s, t, false);
	size_t o = 0;
	*n_empty = 0;
	for (int i = 0; i < n; i++) {
		int w = tok_stream_feed(&s, ids[i], out + o, 64);
		CHECK(w >= 0, "feed %d", w);
		*n_empty += w == 0;
		o += w > 0 ? (size_t)w : 0;
	}
	int w = tok_stream_flush(&s, out + o, 8);
	return o + (w > 0 ? (size_t)w : 0);
}

static void test_stream(const struct tok *t)
{
	char out[256];
	int empty;
	/* U+1F600 = F0 9F 98 80 as four byte tokens: nothing until the last */
	int32_t emoji[] = { 0xf0, 0x9f, 0x98, 0x80, 'a' };
	struct tok_stream s;
	tok_stream_init(&s, t, false);
	for (int i = 0; i < 3; i++)
		CHECK(tok_stream_feed(&s, emoji[i], out, sizeof(out)) == 0, "held byte %d", i);
	CHECK(tok_stream_feed(&s, emoji[3], out, sizeof(out)) == 4 && !memcmp(out, "\xf0\x9f\x98\x80", 4),
	      "emoji completes");
	size_t n = stream(t, emoji, 5, out, &empty);
	CHECK(n == 5 && empty == 3, "emoji stream %zu %d", n, empty);
	/* a lead byte then ASCII: the lead comes out as is, then 'a' */
	int32_t broken[] = { 0xe4, 'a', 0xff, 0xe4, 0xb8 };
	n = stream(t, broken, 5, out, &empty);
	CHECK(n == 5 && !memcmp(out, "\xe4" "a\xff\xe4\xb8", 5), "broken stream %zu", n);
	/* a merged token ending inside a character: 0xE4 0xB8 held, 0x96 ends it */
	int32_t split[] = { 267, 0x96 };
	n = stream(t, split, 2, out, &empty);
	CHECK(n == 3 && empty == 1 && !memcmp(out, "\xe4\xb8\x96", 3), "split char %zu %d", n,
	      empty);
	tok_stream_init(&s, t, true);
	CHECK(tok_stream_feed(&s, ID_IM_END, out, sizeof(out)) == 0, "skip control");
	CHECK(tok_stream_feed(&s, ID_THINK, out, sizeof(out)) == 7, "<think> is shown");
	CHECK(tok_stream_feed(&s, 999, out, sizeof(out)) == FM_EINVAL, "bad id");
	CHECK(tok_stream_feed(&s, ID_HELLO, out, 2) == FM_ERANGE, "small cap");
}

static void test_long_and_cap(const struct tok *t)
{
	size_t n = 1 << 20;
	char *s = malloc(n + 1);
	memset(s, ' ', n);
	s[n] = 0;
	CHECK(round_trips(t, s, n), "1 MiB of spaces");
	memset(s, 'a', n);
	int32_t *ids = malloc((n / 2 + 1) * sizeof(int32_t));
	int k = tok_encode(t, s, n, true, ids, (int)(n / 2 + 1));
	CHECK(k == (int)(n / 2), "1 MiB of 'a': %d ids", k);
	int32_t small[2] = { -7, -7 };
	CHECK(tok_encode(t, s, 10, true, small, 1) == 5 && small[0] == ID_AA && small[1] == -7,
	      "cap: only cap ids written, full count returned");
	free(ids);
	free(s);
}

/* Random byte strings (ASCII, <U+0300 pairs, emoji, every kind of broken
 * sequence, added tokens) must come back byte for byte, by pieces and
 * through the stream decoder. NFC leaves all of these as they are. */
static void test_random_bytes(const struct tok *t)
{
	static const char *const parts[] = { "a", " ", "\n", "\t", "hello", "'s", "1", "<|im_end|>",
					     "<think>", "\xff", "\x80", "\xe4\xb8", "\xf0\x9f\x98",
					     "\xed\xa0\x80", "\xc0\xaf", "\xf0\x9f\x98\x80",
					     "\xc3\xa9", "\xcb\x80", "<|im_", "\0", "  ", "\r\n" };
	struct t_rng rng = { 42 };
	char s[512], out[1024];
	int bad = 0;
	for (int it = 0; it < 3000; it++) {
		size_t n = 0;
		for (int k = (int)(t_rand_u64(&rng) % 24); k > 0; k--) {
			const char *p = parts[t_rand_u64(&rng) % (sizeof(parts) / sizeof(parts[0]))];
			size_t l = p[0] ? strlen(p) : 1; /* "\0" is one NUL byte */
			memcpy(s + n, p, l);
			n += l;
		}
		int32_t ids[512];
		int k = tok_encode(t, s, n, true, ids, 512);
		size_t o = 0;
		struct tok_stream st;
		tok_stream_init(&st, t, false);
		for (int i = 0; i < k; i++)
			o += (size_t)tok_stream_feed(&st, ids[i], out + o, 64);
		o += (size_t)tok_stream_flush(&st, out + o, 8);
		bad += !round_trips(t, s, n) || o != n || memcmp(out, s, n);
	}
	CHECK(bad == 0, "%d of 3000 random byte strings did not come back", bad);
}

struct worker {
	const struct tok *t;
	int32_t ids[64];
	int n;
};

static void *work(void *arg)
{
	struct worker *w = arg;
	for (int i = 0; i < 2000; i++)
		w->n = enc(w->t, "hello world, aaaa é <|im_end|> again hello", true, w->ids, 64);
	return NULL;
}

static void test_threads(const struct tok *t)
{
	struct worker w[2] = { { .t = t }, { .t = t } };
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, work, &w[i]);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	CHECK(w[0].n > 0 && w[0].n == w[1].n && !memcmp(w[0].ids, w[1].ids, sizeof(w[0].ids)),
	      "concurrent encodes agree");
}

/* With pre "qwen35" marks join letter runs: "ä" + U+0301 is one piece, so
 * the A4 CC merge applies across the letter/mark boundary. */
static void test_gguf_qwen35(const struct tok *t, const char *path)
{
	struct fm_error err = { 0 };
	struct gguf_writer *w = gguf_writer_new(32);
	CHECK(tok_write_gguf(t, w) == 0 && gguf_writer_set_str(w, "tokenizer.ggml.pre", "qwen35") == 0,
	      "qwen35 keys");
	CHECK(gguf_writer_open(w, path, &err) == 0 && gguf_writer_finish(w, &err) == 0, "write: %s",
	      err.msg);
	gguf_writer_free(w);
	struct gguf_file *f = gguf_open(path, &err);
	struct tok *g = f ? tok_load_gguf(f, &err) : NULL;
	gguf_close(f);
	CHECK(g && !strcmp(tok_pre_name(g), "qwen35"), "qwen35 load: %s", err.msg);
	if (g)
		expect_ids(g, "a\xcc\x88\xcc\x81", true, (int32_t[]){ 0xc3, ID_A4_CC, 0x81 }, 3);
	tok_free(g);
}

/* The same tokenizer through tok_write_gguf + tok_load_gguf. */
static void test_gguf(const struct tok *t, const char *dir)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/tok.gguf", dir);
	struct fm_error err = { 0 };
	struct gguf_writer *w = gguf_writer_new(32);
	CHECK(w && tok_write_gguf(t, w) == 0, "tok_write_gguf");
	CHECK(gguf_writer_open(w, path, &err) == 0 && gguf_writer_finish(w, &err) == 0, "write: %s",
	      err.msg);
	gguf_writer_free(w);
	struct gguf_file *f = gguf_open(path, &err);
	struct tok *g = f ? tok_load_gguf(f, &err) : NULL;
	gguf_close(f);
	CHECK(g, "tok_load_gguf: %s", err.msg);
	if (!g)
		return;
	test_basic(g);
	test_special(g);
	test_stream(g);
	tok_free(g);
	test_gguf_qwen35(t, path);
}

/* A GGUF with the given model/pre strings must be refused. */
static void expect_gguf_refused(const char *dir, const char *model, const char *pre)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/bad.gguf", dir);
	struct fm_error err = { 0 };
	struct gguf_writer *w = gguf_writer_new(32);
	const char *toks[] = { "a", "b" };
	gguf_writer_set_str(w, "tokenizer.ggml.model", model);
	gguf_writer_set_str(w, "tokenizer.ggml.pre", pre);
	gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, 2);
	gguf_writer_open(w, path, &err);
	gguf_writer_finish(w, &err);
	gguf_writer_free(w);
	struct gguf_file *f = gguf_open(path, &err);
	struct tok *t = f ? tok_load_gguf(f, &err) : NULL;
	CHECK(f && !t && err.code == FM_EUNSUPPORTED && strstr(err.msg, "tokenizer.ggml"),
	      "%s/%s refused: code %d '%s'", model, pre, err.code, err.msg);
	tok_free(t);
	gguf_close(f);
}

static void test_errors(const char *dir)
{
	char path[512];
	struct fm_error err = { 0 };
	snprintf(path, sizeof(path), "%s/broken.json", dir);
	FILE *f = fopen(path, "w");
	fputs("{\"model\": {\"vocab\": {\"a\": 0,}", f);
	fclose(f);
	CHECK(!tok_load_json(path, &err) && err.code == FM_EFORMAT, "broken JSON: %s", err.msg);
	snprintf(path, sizeof(path), "%s/unigram.json", dir);
	write_json(path, false, "Unigram");
	CHECK(!tok_load_json(path, &err) && err.code == FM_EUNSUPPORTED, "Unigram: %s", err.msg);
	CHECK(!tok_load_json("/nonexistent/tokenizer.json", &err) && err.code < 0, "missing file");
	expect_gguf_refused(dir, "llama", "default");
	expect_gguf_refused(dir, "gpt2", "llama-bpe");
}

/* ---- vocabularies that must be refused at load (issue 14) ---- */

/* Byte b's GPT-2 character as UTF-8 into out (NUL-terminated). */
static void byte_utf8(unsigned b, char *out)
{
	unsigned cp = byte_cp(b);
	if (cp < 0x80) {
		out[0] = (char)cp;
		out[1] = 0;
	} else {
		out[0] = (char)(0xc0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3f));
		out[2] = 0;
	}
}

/* A tokenizer.json: model.vocab = extra (JSON members, may be "") then, when
 * bytes, every byte's character but skip (-1: none) at its byte value;
 * added_tokens = [added]; model_opts (NULL: no merges) the model's other
 * members, each followed by a comma. */
static void write_vocab_json_opts(const char *path, bool bytes, int skip, const char *extra,
				  const char *added, const char *model_opts)
{
	FILE *f = fopen(path, "w");
	fprintf(f, "{\"added_tokens\":[%s],\"normalizer\":null,\"pre_tokenizer\":"
		   "{\"type\":\"ByteLevel\",\"use_regex\":true,\"add_prefix_space\":false},"
		   "\"model\":{\"type\":\"BPE\",%s\"vocab\":{%s", added,
		model_opts ? model_opts : "\"merges\":[],", extra);
	bool first = !*extra;
	for (unsigned b = 0; bytes && b < 256; b++) {
		if ((int)b == skip)
			continue;
		fputs(first ? "" : ",", f);
		put_byte_char(f, b);
		fprintf(f, ":%u", b);
		first = false;
	}
	fputs("}}}\n", f);
	fclose(f);
}

static void write_vocab_json(const char *path, bool bytes, int skip, const char *extra,
			     const char *added)
{
	write_vocab_json_opts(path, bytes, skip, extra, added, NULL);
}

/* tok_load_json(path) must fail with FM_EFORMAT and a message naming the
 * file and containing want. */
static void expect_json_refused(const char *path, const char *want, const char *what)
{
	struct fm_error err = { 0 };
	struct tok *t = tok_load_json(path, &err);
	if (t) {
		int32_t ids[8];
		int k = tok_encode(t, "abc", 3, true, ids, 8); /* "tokenizes to nothing" */
		CHECK(0, "%s: loaded (encode 'abc' -> %d ids)", what, k);
		tok_free(t);
		return;
	}
	CHECK(err.code == FM_EFORMAT && strstr(err.msg, path) && strstr(err.msg, want),
	      "%s: code %d '%s' (want '%s')", what, err.code, err.msg, want);
}

static void test_bad_json_vocab(const char *dir)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/bad_vocab.json", dir);
	write_vocab_json(path, false, -1, "", "");
	expect_json_refused(path, "model.vocab is empty", "empty vocab");
	write_vocab_json(path, false, -1, "", "{\"id\":0,\"content\":\"<x>\",\"special\":true}");
	expect_json_refused(path, "model.vocab is empty", "only added tokens");
	write_vocab_json(path, true, -1, "\"ab\":256,\"cd\":256", "");
	expect_json_refused(path, "'ab' and 'cd' both have id 256", "one id twice in model.vocab");
	write_vocab_json(path, true, -1, "", "{\"id\":256,\"content\":\"a\",\"special\":false}");
	expect_json_refused(path, "duplicate token 'a' (ids 97 and 256)", "added = a vocab string");
	write_vocab_json(path, true, -1, "", "{\"id\":97,\"content\":\"<x>\",\"special\":true}");
	expect_json_refused(path, "added_tokens[0]: id 97 is 'a' in model.vocab, not '<x>'",
			    "added token over a vocab id");
	write_vocab_json(path, true, -1, "", "{\"id\":256,\"content\":\"<x>\",\"special\":true},"
					    "{\"id\":256,\"content\":\"<y>\",\"special\":true}");
	expect_json_refused(path, "added_tokens[1]: id 256 is also '<x>', not '<y>'",
			    "added id twice");
	write_vocab_json(path, true, -1, "", "{\"id\":256,\"content\":\"<x>\",\"special\":true},"
					    "{\"id\":300,\"content\":\"<x>\",\"special\":true}");
	expect_json_refused(path, "duplicate token '<x>' (ids 256 and 300)", "added string twice");
	write_vocab_json(path, true, 'q', "", "");
	expect_json_refused(path, "no token for byte 0x71", "a byte without a token");
	/* a Sequence whose list is not an array: refused (json-c asserted) */
	FILE *f = fopen(path, "w");
	fputs("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"pre_tokenizer\":"
	      "{\"type\":\"Sequence\",\"pretokenizers\":{\"a\":1}}}", f);
	fclose(f);
	struct fm_error err = { 0 };
	CHECK(!tok_load_json(path, &err) && err.code == FM_EUNSUPPORTED, "pretokenizers {}: %s",
	      err.msg);
	f = fopen(path, "w");
	fputs("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"normalizer\":"
	      "{\"type\":\"Sequence\",\"normalizers\":7},\"pre_tokenizer\":{\"type\":\"ByteLevel\","
	      "\"use_regex\":true}}", f);
	fclose(f);
	CHECK(!tok_load_json(path, &err) && err.code == FM_EUNSUPPORTED, "normalizers 7: %s",
	      err.msg);
	write_vocab_json(path, true, -1, "", "{\"id\":16777216,\"content\":\"<x>\",\"special\":true}");
	expect_json_refused(path, "added_tokens[0]: id 16777216", "added id past 2^24");
	/* 257 tokens asking for 2^24 table rows: refused, not seconds of work */
	write_vocab_json(path, true, -1, "", "{\"id\":16777215,\"content\":\"<x>\",\"special\":true}");
	expect_json_refused(path, "ids go up to 16777215 but there are 257 tokens", "sparse ids");

	/* legal: an added token that repeats its vocab entry (GPT-2's
	 * <|endoftext|>), and added ids past model.vocab, with a gap (Qwen3) */
	write_vocab_json(path, true, -1, "\"<e>\":256",
			 "{\"id\":256,\"content\":\"<e>\",\"special\":true},"
			 "{\"id\":300,\"content\":\"<y>\",\"special\":true}");
	struct tok *t = tok_load_json(path, &err);
	CHECK(t && tok_n_vocab(t) == 301 && tok_is_control(t, 256) && tok_find(t, "<y>", 3) == 300,
	      "added tokens past model.vocab: %s", err.msg);
	if (t)
		expect_ids(t, "a<y>", true, (int32_t[]){ 'a', 300 }, 2);
	tok_free(t);
}

/* Text b over a tokenizer loaded from path encodes to want[0..n) and its
 * pieces give b back. */
static void expect_json_ids(const char *path, const char *b, bool special, const int32_t *want,
			    int n, const char *what)
{
	struct fm_error err = { 0 };
	struct tok *t = tok_load_json(path, &err);
	CHECK(t, "%s: %s", what, err.msg);
	if (!t)
		return;
	expect_ids(t, b, special, want, n);
	CHECK(round_trips(t, b, strlen(b)), "%s: '%s' does not come back", what, b);
	tok_free(t);
}

/* Merges and ignore_merges work on model.vocab only: an added token whose
 * string is a merge result or a whole piece in byte-level form ("Ġa" for
 * " a") stands for its text as written, so BPE must never produce it. */
static void test_added_not_bpe(const char *dir)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/added_bpe.json", dir);
	static const char ga[] = "{\"id\":256,\"content\":\"\\u0120a\",\"special\":false}";
	write_vocab_json_opts(path, true, -1, "", ga, "\"merges\":[[\"\\u0120\",\"a\"]],");
	expect_json_ids(path, " a", true, (int32_t[]){ ' ', 'a' }, 2, "merge into an added token");
	write_vocab_json_opts(path, true, -1, "", ga, "\"ignore_merges\":true,\"merges\":[],");
	expect_json_ids(path, " a", true, (int32_t[]){ ' ', 'a' }, 2, "ignore_merges, added token");
	write_vocab_json_opts(path, true, -1, "", "{\"id\":256,\"content\":\"ab\",\"special\":true}",
			      "\"merges\":[\"a b\"],");
	expect_json_ids(path, "ab", false, (int32_t[]){ 'a', 'b' }, 2, "merge into a control token");
	expect_json_ids(path, "ab", true, (int32_t[]){ 256 }, 1, "the control token itself");
}

/* A GGUF with tokenizer.ggml.tokens = toks[0..n) (model gpt2, pre qwen2, no
 * merges) and, when rows > 0, a token_embd.weight of rows x 4 F32. */
static void write_tok_gguf(const char *path, const char *const *toks, uint64_t n, uint64_t rows)
{
	struct fm_error err = { 0 };
	struct gguf_writer *w = gguf_writer_new(32);
	gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
	gguf_writer_set_str(w, "tokenizer.ggml.pre", "qwen2");
	gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, n);
	const uint64_t ne[2] = { 4, rows };
	if (rows)
		gguf_writer_add_tensor(w, "token_embd.weight", GGML_TYPE_F32, 2, ne);
	int rc = gguf_writer_open(w, path, &err);
	float *zero = calloc(rows * 4 + 1, sizeof(float));
	if (!rc && rows)
		rc = gguf_writer_write_tensor(w, 0, zero, rows * 4 * sizeof(float), &err);
	CHECK(!rc && !gguf_writer_finish(w, &err), "write %s: %s", path, err.msg);
	free(zero);
	gguf_writer_free(w);
}

/* tok_load_gguf must refuse path (FM_EFORMAT, message naming it with want). */
static void expect_gguf_vocab_refused(const char *path, const char *want, const char *what)
{
	struct fm_error err = { 0 };
	struct gguf_file *f = gguf_open(path, &err);
	CHECK(f, "%s: gguf_open: %s", what, err.msg);
	struct tok *t = f ? tok_load_gguf(f, &err) : NULL;
	if (t) {
		int32_t ids[8];
		CHECK(0, "%s: loaded (encode 'abc' -> %d ids)", what, tok_encode(t, "abc", 3, true, ids, 8));
	} else if (f) {
		CHECK(err.code == FM_EFORMAT && strstr(err.msg, path) && strstr(err.msg, want),
		      "%s: code %d '%s' (want '%s')", what, err.code, err.msg, want);
	}
	tok_free(t);
	gguf_close(f);
}

static void test_bad_gguf_vocab(const char *dir)
{
	char path[512], chars[258][4];
	const char *toks[258];
	snprintf(path, sizeof(path), "%s/bad_vocab.gguf", dir);
	for (unsigned b = 0; b < 256; b++) {
		byte_utf8(b, chars[b]);
		toks[b] = chars[b];
	}
	toks[256] = "a";
	toks[257] = "<x>";
	write_tok_gguf(path, toks, 0, 0);
	expect_gguf_vocab_refused(path, "tokenizer.ggml.tokens is empty", "empty tokens");
	write_tok_gguf(path, toks, 257, 0);
	expect_gguf_vocab_refused(path, "duplicate token 'a' (ids 97 and 256)", "duplicate token");
	write_tok_gguf(path, toks + 1, 255, 0);
	expect_gguf_vocab_refused(path, "no token for byte 0x00", "a byte without a token");
	/* more tokens than embedding rows: ids 256.. would index past it */
	toks[256] = "<y>";
	write_tok_gguf(path, toks, 258, 256);
	expect_gguf_vocab_refused(path, "258 tokens but token_embd.weight has 256 rows",
				  "tokens past the embedding");
	struct fm_error err = { 0 };
	write_tok_gguf(path, toks, 258, 300); /* fewer tokens than rows: padding, fine */
	struct gguf_file *f = gguf_open(path, &err);
	struct tok *t = f ? tok_load_gguf(f, &err) : NULL;
	CHECK(t && tok_n_vocab(t) == 258, "258 tokens, 300 rows: %s", err.msg);
	if (t) /* no tokenizer.ggml.merges: BPE probed a NULL merge table */
		expect_ids(t, "hi a", true, (int32_t[]){ 'h', 'i', ' ', 'a' }, 4);
	tok_free(t);
	gguf_close(f);
}

int main(void)
{
	const char *dir = t_tmpdir();
	char path[512];
	struct fm_error err = { 0 };
	snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
	write_json(path, false, "BPE");
	struct tok *t = tok_load_json(path, &err);
	CHECK(t, "load: %s", err.msg);
	if (!t)
		return t_done("test_tokenizer");
	test_basic(t);
	test_special(t);
	test_invalid_utf8(t);
	test_stream(t);
	test_long_and_cap(t);
	test_random_bytes(t);
	test_threads(t);
	test_gguf(t, dir);
	tok_free(t);

	write_json(path, true, "BPE"); /* merges as "a b" strings */
	t = tok_load_json(path, &err);
	CHECK(t, "load old merges: %s", err.msg);
	if (t)
		test_basic(t);
	tok_free(t);
	test_errors(dir);
	test_bad_json_vocab(dir);
	test_bad_gguf_vocab(dir);
	test_added_not_bpe(dir);
	return t_done("test_tokenizer");
}
