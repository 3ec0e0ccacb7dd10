/* tokenizer.h: byte-level BPE (GPT-2 / Qwen2 / Qwen3 / Qwen3.5 style).
 *
 * Follows architectures.md §10.1-10.3 and §10.5, and the Hugging Face
 * tokenizers pipeline of a tokenizer.json with a "BPE" model:
 *   1. added tokens (<|im_start|>, <think>, ...) are cut out of the text first,
 *      leftmost then longest match; they become their ids directly;
 *   2. each remaining segment is normalised to NFC when the tokenizer asks;
 *   3. the pre-tokenizer regex (PCRE2, UTF + UCP, JIT) splits it into pieces;
 *   4. each piece's bytes map to GPT-2's byte->unicode characters and BPE
 *      merges the adjacent pair of lowest rank until none applies.
 * Bytes that are not valid UTF-8 never reach NFC or the regex: each maximal
 * run of them is one piece of its own, BPE'd like any other (every byte has a
 * token), so decode(encode(s)) == s for any bytes s.
 *
 * Owns: loading (GGUF metadata, tokenizer.json), encoding, token bytes,
 * streaming decode, writing the tokenizer keys into a GGUF. Does not own chat
 * templates (chat.h) or the model.
 *
 * A struct tok is immutable after loading: every function here may be called
 * from several threads at once on one tok (tok_encode keeps its scratch,
 * regex match data and piece cache per call).
 */
#ifndef FM_TOKENIZER_H
#define FM_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flashmoe.h"

struct tok;
struct gguf_file;
struct gguf_writer;

/* Token types as GGUF's tokenizer.ggml.token_type stores them. */
enum tok_type {
	TOK_TYPE_UNDEFINED = 0,
	TOK_TYPE_NORMAL = 1,
	TOK_TYPE_UNKNOWN = 2,
	TOK_TYPE_CONTROL = 3,      /* special added token (<|im_end|>) */
	TOK_TYPE_USER_DEFINED = 4, /* non-special added token (<think>) */
	TOK_TYPE_UNUSED = 5,       /* padding rows */
	TOK_TYPE_BYTE = 6,         /* <0xAB> */
};

/* Load from a GGUF's tokenizer.* keys. tokenizer.ggml.model must be "gpt2";
 * tokenizer.ggml.pre selects the regex: "qwen2" (also Qwen3, Qwen3-Next),
 * "qwen35", "default"/"gpt2" or absent -> GPT-2's regex; any other value is
 * FM_EUNSUPPORTED (a wrong split would silently change every prompt). The
 * result copies what it needs: f may be closed afterwards. NULL on failure.
 * Both loaders refuse (FM_EFORMAT, err naming the file) an empty vocabulary,
 * a token string under two ids, one id given two strings, and a byte with
 * no token; tok_load_gguf also more tokens than the file's token_embd.weight
 * has rows (ids the model could not embed). */
struct tok *tok_load_gguf(const struct gguf_file *f, struct fm_error *err);

/* Load a Hugging Face tokenizer.json (model "BPE", byte-level; normalizer
 * null or NFC; pre_tokenizer Split(Regex, Isolated) + ByteLevel(use_regex
 * false), or ByteLevel(use_regex true)). eos = <|im_end|> if present, else
 * <|endoftext|>. A tokenizer_config.json beside it, if present, supplies
 * chat_template. Ids are integers below 2^24, at most 2 x tokens + 1024 of
 * them (unused ids cost a row each); added tokens may take ids past
 * model.vocab (Qwen's do). NULL on failure. */
struct tok *tok_load_json(const char *path, struct fm_error *err);

void tok_free(struct tok *t);

/* Encode len bytes of text (any bytes; NUL is a character). parse_special:
 * control tokens written in the text (<|im_end|>) become their ids; when
 * false they are tokenized as plain text. Non-special added tokens (<think>)
 * are always matched (as HF and llama.cpp do). Writes at most cap ids and
 * returns the number of ids the whole text needs (> cap: call again with a
 * bigger array; the count can exceed len, as NFC may lengthen the text up
 * to 3x), or a negative code (FM_ENOMEM, FM_ERANGE past INT_MAX).
 * No BOS is added (see tok_add_bos). Thread-safe. */
int tok_encode(const struct tok *t, const char *text, size_t len, bool parse_special,
	       int32_t *ids, int cap);

/* The bytes a token stands for (byte-level characters mapped back to bytes;
 * added tokens as written). Borrowed, valid until tok_free; *len set; not
 * NUL-terminated in general (it is, but may contain NUL). NULL for a bad id. */
const char *tok_piece(const struct tok *t, int32_t id, size_t *len);
/* The token's string as the vocabulary stores it ("Ġthe"); NULL if bad id. */
const char *tok_text(const struct tok *t, int32_t id, size_t *len);
enum tok_type tok_token_type(const struct tok *t, int32_t id);

int tok_n_vocab(const struct tok *t);
int tok_n_merges(const struct tok *t);
int32_t tok_bos(const struct tok *t); /* -1 if none */
int32_t tok_eos(const struct tok *t); /* -1 if none */
int32_t tok_pad(const struct tok *t); /* -1 if none */
bool tok_add_bos(const struct tok *t); /* whether prompts should start with bos */
/* End of generation: eos, <|im_end|>, <|endoftext|>, <|eot_id|>, ... */
bool tok_is_eog(const struct tok *t, int32_t id);
/* Control token (shown only when asked, skipped by skip_special decode). */
bool tok_is_control(const struct tok *t, int32_t id);
/* Id of the token whose vocabulary string is exactly text[0..len) (any token,
 * e.g. "<|im_start|>" or "<think>"), or -1. */
int32_t tok_find(const struct tok *t, const char *text, size_t len);
/* Pre-tokenizer name ("qwen2", "qwen35", "default", or "custom"). */
const char *tok_pre_name(const struct tok *t);
/* The Jinja chat template from the file (tokenizer.chat_template, or
 * tokenizer_config.json's), or NULL. */
const char *tok_chat_template(const struct tok *t);

/* Write tokenizer.ggml.{model,pre,tokens,token_type,merges,*_token_id,
 * add_bos_token} and tokenizer.chat_template into w. FM_EUNSUPPORTED when
 * the pre-tokenizer regex is not one of the named ones. */
int tok_write_gguf(const struct tok *t, struct gguf_writer *w);

/* ---- streaming decode ----
 * Fed one id at a time, emits only complete UTF-8 characters: bytes that
 * begin a character held back until it is complete. Bytes that cannot be
 * part of valid UTF-8 are emitted as they are, at once; tok_stream_flush
 * emits a trailing incomplete character as its raw bytes. The concatenated
 * output always equals the concatenated token bytes. No allocation. */
struct tok_stream {
	const struct tok *t;
	unsigned char pend[4]; /* an incomplete character's first bytes */
	int n_pend;
	bool skip_control;     /* drop control tokens (<|im_end|>) */
};
void tok_stream_init(struct tok_stream *s, const struct tok *t, bool skip_control);
/* Writes up to tok_stream_max_bytes(t) bytes to out; returns the count, or
 * FM_EINVAL for a bad id, FM_ERANGE when cap is too small (nothing changed). */
int tok_stream_feed(struct tok_stream *s, int32_t id, char *out, size_t cap);
int tok_stream_flush(struct tok_stream *s, char *out, size_t cap);
/* Longest output one feed can produce: longest token + 3 held bytes. */
size_t tok_stream_max_bytes(const struct tok *t);

#endif
