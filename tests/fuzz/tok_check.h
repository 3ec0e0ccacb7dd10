/* tok_check.h: the contracts of tokenizer.h checked on a tokenizer that a
 * fuzz target managed to load (fuzz_tokenizer_json.c, fuzz_tokenizer_gguf.c);
 * abort() on a failure:
 *   - every id is a token (0 <= id < n_vocab) and tok_find(tok_text(id)) is
 *     id for every token with a string (one id per string);
 *   - the pieces of encode(s) concatenate to s (no byte >= 0xCC in the
 *     texts, so NFC changes nothing), and the stream decoder agrees;
 *   - parse_special false never produces a control token;
 *   - tok_write_gguf runs (into a writer that is never opened).
 * Header-only: each target is one translation unit.
 */
#ifndef FM_FUZZ_TOK_CHECK_H
#define FM_FUZZ_TOK_CHECK_H

#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "tokenizer.h"

static const char *const tok_check_texts[] = {
	"Hello world, hello WORLD! It's 2024 - 3.14 <|im_end|>\n\n",
	"<|im_start|>user\n<think>a  b\t\tc</think><|endoftext|>",
	"caf\xc3\xa9 \xc3\xa0 la \xc2\xa0 x\x80\xc0 <0x41> \x01\x7f",
};

/* Encode s (n bytes); check the ids, the pieces and the stream decoder. */
static void tok_check_text(const struct tok *t, const char *s, size_t n, bool special)
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

static void tok_check(const struct tok *t)
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
	for (size_t i = 0; i < sizeof(tok_check_texts) / sizeof(tok_check_texts[0]); i++) {
		tok_check_text(t, tok_check_texts[i], strlen(tok_check_texts[i]), true);
		tok_check_text(t, tok_check_texts[i], strlen(tok_check_texts[i]), false);
	}
	struct gguf_writer *w = gguf_writer_new(32);
	if (w)
		tok_write_gguf(t, w);
	gguf_writer_free(w);
}

#endif
