/* tokenizer_int.h: the struct behind struct tok, shared by tokenizer.c (tables,
 * lookups, decode), tokenizer_bpe.c (encode), tokenizer_load.c (GGUF) and
 * tokenizer_json.c (tokenizer.json) only.
 *
 * Building a tok: tok_build_begin() with the vocabulary strings in id order,
 * tok_build_merge() for each merge in rank order, tok_build_finish() with the
 * regex; the loaders fill bos/eos/pad/add_bos/chat_template in between. */
#ifndef FM_TOKENIZER_INT_H
#define FM_TOKENIZER_INT_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "tokenizer.h"
#include "util.h"

#define TOK_MAX_EOG 8

/* (left id, right id) -> (rank, merged id); key UINT64_MAX = empty slot. */
struct tok_merge_slot {
	uint64_t key;
	uint32_t rank;
	int32_t result;
};

struct tok {
	int n_vocab;
	char *text;                 /* vocabulary strings, each NUL-terminated */
	uint32_t *text_off;         /* [n_vocab + 1] offsets into text */
	char *bytes;                /* decoded bytes of each token */
	uint32_t *bytes_off;        /* [n_vocab + 1] */
	uint8_t *type;              /* [n_vocab] enum tok_type */
	size_t max_piece_bytes;

	uint32_t *vocab_slot;       /* text -> id + 1 (0 empty) */
	uint32_t vocab_mask;
	struct tok_merge_slot *merge_slot;
	uint32_t merge_mask;
	int32_t (*merges)[2];       /* [n_merges] left, right in rank order */
	uint32_t n_merges, cap_merges;

	int32_t byte_id[256];       /* initial symbol of each byte, -1 none */
	uint16_t byte_cp[256];      /* GPT-2 byte -> code point */
	int16_t cp_byte[324];       /* code point -> byte, -1 if none */

	int32_t *added;             /* added token ids by first byte, longest first */
	int n_added;
	uint32_t added_first[257];  /* added[added_first[b] .. added_first[b+1]) */

	int32_t bos, eos, pad;
	int32_t eog[TOK_MAX_EOG];
	int n_eog;
	bool add_bos;
	bool nfc;
	bool ignore_merges;
	char pre_name[16];
	char *pattern;              /* the regex as the file gave it */
	pcre2_code *re;
	bool re_jit;
	char *chat_template;
};

/* Start a tok from n vocabulary strings (strs[i] of lens[i] bytes, types[i]
 * enum tok_type; NULL strs[i] = an unused id). Returns NULL on failure, with
 * err naming path: a string twice ("duplicate token 'x' (ids 5 and 9)"), a
 * byte with no token (byte character or <0xAB>), out of memory. */
struct tok *tok_build_begin(int n, const char *const *strs, const uint32_t *lens,
			    const uint8_t *types, const char *path, struct fm_error *err);
/* Add the merge of rank n_merges: left + right. A merge whose parts or result
 * are missing from the vocabulary, or are not normal tokens (an added token's
 * bytes are its text as written: "Ġa" would decode to "Ġa", not " a"), is
 * ignored (it can never apply). */
int tok_build_merge(struct tok *t, const char *l, size_t l_len, const char *r, size_t r_len);
/* Compile pattern (NULL = GPT-2's), set pre_name, index the added tokens,
 * fill eog. Errors name path. */
int tok_build_finish(struct tok *t, const char *pattern, const char *pre_name, const char *path,
		     struct fm_error *err);

/* The regexes of architectures.md §10.2 (HF / Onig syntax). */
extern const char tok_re_qwen2[];
extern const char tok_re_qwen35[];
extern const char tok_re_gpt2[];

/* Token id's vocabulary string, id known to be valid. */
static inline const char *tok_text_at(const struct tok *t, int32_t id, size_t *len)
{
	*len = t->text_off[id + 1] - t->text_off[id] - 1;
	return t->text + t->text_off[id];
}

uint64_t tok_hash_bytes(const void *p, size_t n);

/* Hash of a (left id, right id) merge key: one multiply, top bits used. */
static inline uint32_t tok_hash_pair(uint64_t key)
{
	key ^= key >> 29;
	return (uint32_t)((key * 0x9e3779b97f4a7c15ull) >> 32);
}
/* Length of the valid UTF-8 character at s[0..n), 0 if invalid/incomplete. */
size_t tok_utf8_char_len(const unsigned char *s, size_t n);

#endif
