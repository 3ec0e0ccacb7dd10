/* fuzz_tokenizer_json.c: libFuzzer target for the tokenizer.json loader
 * (src/tokenizer_json.c, the tok_build_* of src/tokenizer.c, json_file.c).
 *
 * Input: a tokenizer.json; if it holds a NUL byte (never valid JSON), what
 * follows the first NUL is the tokenizer_config.json beside it. Both are
 * written to a private directory (in /dev/shm when there is one) and
 * tok_load_json reads them as it reads a checkpoint's. A refusal must say
 * why (err.msg). A tokenizer that loads must keep tokenizer.h's contracts,
 * checked on a few fixed texts (abort on a failure):
 *   - every id is a token (0 <= id < n_vocab) and tok_find(tok_text(id)) is
 *     id for every token with a string (one id per string);
 *   - the pieces of encode(s) concatenate to s (no byte >= 0xCC in the
 *     texts, so NFC changes nothing), and the stream decoder agrees;
 *   - parse_special false never produces a control token;
 *   - tok_write_gguf runs (into a writer that is never opened).
 *
 * Build and run: `make fuzz` (Makefile), or by hand from the repository root:
 *   clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
 *     -Iinclude -Isrc -o /tmp/fuzz_tokenizer_json tests/fuzz/fuzz_tokenizer_json.c \
 *     src/tokenizer*.c src/json_file.c src/gguf*.c src/util.c \
 *     -lpcre2-8 -ljson-c -lutf8proc -lm
 *   /tmp/fuzz_tokenizer_json -max_len=8192 -dict=tests/fuzz/fuzz_tokenizer_json.dict CORPUS
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "tokenizer.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64], json_path[128], cfg_path[128];

static void remove_dir(void)
{
	unlink(json_path);
	unlink(cfg_path);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	snprintf(dir, sizeof(dir), "%s/fuzz_tokjson.XXXXXX",
		 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	if (!mkdtemp(dir)) {
		perror("fuzz_tokenizer_json: mkdtemp");
		exit(1);
	}
	snprintf(json_path, sizeof(json_path), "%s/tokenizer.json", dir);
	snprintf(cfg_path, sizeof(cfg_path), "%s/tokenizer_config.json", dir);
	atexit(remove_dir);
	return 0;
}

static void write_file(const char *path, const uint8_t *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(p, 1, n, f) != n || fclose(f))
		abort(); /* the harness's own failure, not the loader's */
}

static const char *const texts[] = {
	"Hello world, hello WORLD! It's 2024 - 3.14 <|im_end|>\n\n",
	"<|im_start|>user\n<think>a  b\t\tc</think><|endoftext|>",
	"caf\xc3\xa9 \xc3\xa0 la \xc2\xa0 x\x80\xc0 <0x41> \x01\x7f",
};

/* Encode s (n bytes); check the ids, the pieces and the stream decoder. */
static void check_text(const struct tok *t, const char *s, size_t n, bool special)
{
	int32_t ids[256];
	int k = tok_encode(t, s, n, special, ids, 256);
	if (k < 0 || (size_t)k > n)
		abort(); /* at most one id per byte: NFC has nothing to change */
	char *out = malloc(n + 1), *st = malloc((size_t)k * tok_stream_max_bytes(t) + 8);
	size_t o = 0, so = 0, len;
	struct tok_stream ts;
	tok_stream_init(&ts, t, false);
	for (int i = 0; i < k; i++) {
		const char *p = tok_piece(t, ids[i], &len);
		if (!p || o + len > n || memcmp(s + o, p, len))
			abort();
		if (!special && tok_is_control(t, ids[i]))
			abort();
		memcpy(out + o, p, len);
		o += len;
		int w = tok_stream_feed(&ts, ids[i], st + so, tok_stream_max_bytes(t));
		if (w < 0)
			abort();
		so += (size_t)w;
	}
	so += (size_t)tok_stream_flush(&ts, st + so, 8);
	if (o != n || so != n || memcmp(st, s, n))
		abort();
	free(out);
	free(st);
}

static void check_tok(const struct tok *t)
{
	int n = tok_n_vocab(t);
	if (n <= 0)
		abort();
	for (int32_t id = 0; id < n; id++) {
		size_t len;
		const char *s = tok_text(t, id, &len);
		if (!s || (tok_token_type(t, id) != TOK_TYPE_UNUSED && tok_find(t, s, len) != id))
			abort();
	}
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		check_text(t, texts[i], strlen(texts[i]), true);
		check_text(t, texts[i], strlen(texts[i]), false);
	}
	struct gguf_writer *w = gguf_writer_new(32);
	if (w)
		tok_write_gguf(t, w);
	gguf_writer_free(w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	size_t n_json = nul ? (size_t)(nul - data) : size;
	write_file(json_path, data, n_json);
	if (nul)
		write_file(cfg_path, nul + 1, size - n_json - 1);
	else
		unlink(cfg_path);
	struct fm_error err = { 0 };
	struct tok *t = tok_load_json(json_path, &err);
	if (!t && !err.msg[0])
		abort(); /* every refusal must say why */
	if (t)
		check_tok(t);
	tok_free(t);
	return 0;
}
