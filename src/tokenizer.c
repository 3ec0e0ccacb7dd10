/* tokenizer.c: the tables of a byte-level BPE tokenizer, lookups, token
 * bytes and streaming decode (architectures.md §10.1 step 4 and 6, §10.3).
 *
 * Owns: building a struct tok from a vocabulary + merges + regex (the loaders
 * in tokenizer_load.c / tokenizer_json.c call tok_build_*), the GPT-2
 * byte<->unicode map, the string->id and pair->merge hash tables, and the
 * UTF-8-aware stream decoder. Encoding lives in tokenizer_bpe.c.
 */
#include "tokenizer_int.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char tok_re_qwen2[] =
	"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|"
	" ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char tok_re_qwen35[] =
	"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}|"
	" ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char tok_re_gpt2[] =
	"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* Texts that end a generation when they are control/added tokens. */
static const char *const eog_texts[] = {
	"<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end|>", "<end_of_turn>",
	"<|return|>", "<|end_of_text|>",
};

/* Eight bytes at a time (a multiply-xorshift mix per word); the strings
 * hashed here are words and tokens, so short inputs matter most. */
uint64_t tok_hash_bytes(const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t h = 0x9e3779b97f4a7c15ull ^ (n * 0xff51afd7ed558ccdull), w;
	for (; n >= 8; n -= 8, s += 8) {
		memcpy(&w, s, 8);
		h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
		h ^= h >> 31;
	}
	w = 0;
	memcpy(&w, s, n);
	h = (h ^ w) * 0x94d049bb133111ebull;
	return h ^ (h >> 29);
}

size_t tok_utf8_char_len(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	if (c < 0x80)
		return 1;
	size_t need;
	unsigned lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
	if (c >= 0xc2 && c <= 0xdf) {
		need = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		need = 3;
		if (c == 0xe0)
			lo = 0xa0; /* no overlongs */
		if (c == 0xed)
			hi = 0x9f; /* no surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 4;
		if (c == 0xf0)
			lo = 0x90;
		if (c == 0xf4)
			hi = 0x8f; /* <= U+10FFFF */
	} else {
		return 0;
	}
	if (n < need || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < need; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return need;
}

static bool byte_printable(unsigned b)
{
	return (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
}

/* GPT-2's table: printable bytes map to themselves, the other 68 to
 * U+0100 + n in byte order (§10.1 step 4). */
static void init_byte_map(struct tok *t)
{
	unsigned n = 0;
	for (int i = 0; i < 324; i++)
		t->cp_byte[i] = -1;
	for (unsigned b = 0; b < 256; b++) {
		t->byte_cp[b] = (uint16_t)(byte_printable(b) ? b : 256 + n++);
		t->cp_byte[t->byte_cp[b]] = (int16_t)b;
	}
}

static size_t put_utf8(uint32_t cp, char *out)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	out[0] = (char)(0xe0 | (cp >> 12));
	out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
	out[2] = (char)(0x80 | (cp & 0x3f));
	return 3;
}

/* "<0xAB>" -> 0xAB, else -1. */
static int byte_token_value(const char *s, size_t n)
{
	if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>')
		return -1;
	int v = 0;
	for (int i = 3; i < 5; i++) {
		char c = s[i];
		int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10
			: c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
		if (d < 0)
			return -1;
		v = v * 16 + d;
	}
	return v;
}

/* Decode a normal token's byte-level string into bytes; a character outside
 * the byte map is kept as its own UTF-8. Returns the byte count (<= n). */
static size_t decode_text(const struct tok *t, const char *s, size_t n, char *out)
{
	size_t o = 0;
	for (size_t i = 0; i < n;) {
		const unsigned char *u = (const unsigned char *)s + i;
		size_t cl = tok_utf8_char_len(u, n - i);
		uint32_t cp = 0x7fffffff;
		if (cl == 1)
			cp = u[0];
		else if (cl == 2)
			cp = ((uint32_t)(u[0] & 0x1f) << 6) | (u[1] & 0x3f);
		if (cl == 0)
			cl = 1;
		if (cp < 324 && t->cp_byte[cp] >= 0) {
			out[o++] = (char)t->cp_byte[cp];
		} else {
			memcpy(out + o, u, cl);
			o += cl;
		}
		i += cl;
	}
	return o;
}

/* Index token id by its string; -1, or the id that already has the string. */
static int32_t vocab_insert(struct tok *t, int32_t id)
{
	size_t n;
	const char *s = tok_text_at(t, id, &n);
	for (uint32_t h = (uint32_t)tok_hash_bytes(s, n) & t->vocab_mask;;
	     h = (h + 1) & t->vocab_mask) {
		uint32_t v = t->vocab_slot[h];
		if (v == 0) {
			t->vocab_slot[h] = (uint32_t)id + 1;
			return -1;
		}
		size_t m;
		const char *o = tok_text_at(t, (int32_t)v - 1, &m);
		if (m == n && !memcmp(o, s, n))
			return (int32_t)v - 1;
	}
}

static uint32_t pow2_at_least(uint64_t n)
{
	uint32_t p = 64;
	while (p < n && p < (1u << 30))
		p <<= 1;
	return p;
}

/* Copy the strings into one blob, decode their bytes. */
static int copy_strings(struct tok *t, const char *const *strs, const uint32_t *lens)
{
	size_t total = 0;
	for (int i = 0; i < t->n_vocab; i++)
		total += (strs[i] ? lens[i] : 0) + 1;
	if (total > UINT32_MAX)
		return FM_ERANGE;
	t->text = malloc(total);
	t->bytes = malloc(total);
	if (!t->text || !t->bytes)
		return FM_ENOMEM;
	size_t to = 0, bo = 0;
	for (int i = 0; i < t->n_vocab; i++) {
		size_t n = strs[i] ? lens[i] : 0;
		t->text_off[i] = (uint32_t)to;
		t->bytes_off[i] = (uint32_t)bo;
		if (n)
			memcpy(t->text + to, strs[i], n);
		t->text[to + n] = 0;
		int bv = byte_token_value(t->text + to, n);
		if (t->type[i] == TOK_TYPE_BYTE && bv >= 0) {
			t->bytes[bo] = (char)bv;
			n = 1;
		} else if (t->type[i] == TOK_TYPE_CONTROL || t->type[i] == TOK_TYPE_USER_DEFINED) {
			memcpy(t->bytes + bo, t->text + to, n);
		} else {
			n = decode_text(t, t->text + to, n, t->bytes + bo);
		}
		t->bytes[bo + n] = 0;
		if (n > t->max_piece_bytes)
			t->max_piece_bytes = n;
		to += (strs[i] ? lens[i] : 0) + 1;
		bo += n + 1;
	}
	t->text_off[t->n_vocab] = (uint32_t)to;
	t->bytes_off[t->n_vocab] = (uint32_t)bo;
	return 0;
}

/* Each byte's first symbol: its byte-level character's token, else <0xAB>. */
static void init_byte_ids(struct tok *t)
{
	for (int b = 0; b < 256; b++) {
		char c[4];
		size_t n = put_utf8(t->byte_cp[b], c);
		t->byte_id[b] = tok_find(t, c, n);
		if (t->byte_id[b] >= 0 && t->type[t->byte_id[b]] != TOK_TYPE_NORMAL)
			t->byte_id[b] = -1;
	}
	for (int i = 0; i < t->n_vocab; i++) {
		size_t n;
		const char *s = tok_text_at(t, i, &n);
		int bv = byte_token_value(s, n);
		if (t->type[i] == TOK_TYPE_BYTE && bv >= 0 && t->byte_id[bv] < 0)
			t->byte_id[bv] = i;
	}
}

/* Every token string once (two ids for one string would leave one of them
 * unreachable, and which one the text maps to would be an accident), and a
 * first symbol for every byte (else bytes would vanish from the text). */
static int check_vocab(struct tok *t, const char *const *strs, const char *path,
		       struct fm_error *err)
{
	for (int32_t i = 0; i < t->n_vocab; i++) {
		if (!strs[i])
			continue; /* a hole: no string */
		int32_t prev = vocab_insert(t, i);
		size_t n;
		const char *s = tok_text_at(t, i, &n);
		if (prev >= 0)
			return fm_err(err, FM_EFORMAT, path, FM_NO_OFFSET,
				      "duplicate token '%.*s' (ids %d and %d)", (int)(n > 64 ? 64 : n),
				      s, prev, i);
	}
	init_byte_ids(t);
	for (int b = 0; b < 256; b++)
		if (t->byte_id[b] < 0)
			return fm_err(err, FM_EFORMAT, path, FM_NO_OFFSET,
				      "no token for byte 0x%02x (byte-level BPE needs one for each "
				      "of the 256 bytes: its character or <0x%02X>)", b, b);
	return 0;
}

struct tok *tok_build_begin(int n, const char *const *strs, const uint32_t *lens,
			    const uint8_t *types, const char *path, struct fm_error *err)
{
	if (n <= 0 || n > (1 << 28)) {
		fm_err(err, FM_ERANGE, path, FM_NO_OFFSET, "tokenizer: %d tokens", n);
		return NULL;
	}
	struct tok *t = calloc(1, sizeof(*t));
	if (!t)
		goto nomem;
	t->n_vocab = n;
	t->bos = t->eos = t->pad = -1;
	init_byte_map(t);
	t->text_off = malloc(((size_t)n + 1) * sizeof(uint32_t));
	t->bytes_off = malloc(((size_t)n + 1) * sizeof(uint32_t));
	t->type = malloc((size_t)n);
	t->vocab_mask = pow2_at_least(2 * (uint64_t)n) - 1;
	t->vocab_slot = calloc((size_t)t->vocab_mask + 1, sizeof(uint32_t));
	if (!t->text_off || !t->bytes_off || !t->type || !t->vocab_slot)
		goto nomem;
	for (int i = 0; i < n; i++)
		t->type[i] = strs[i] ? (types ? types[i] : TOK_TYPE_NORMAL) : TOK_TYPE_UNUSED;
	int rc = copy_strings(t, strs, lens);
	if (rc)
		fm_err(err, rc, path, FM_NO_OFFSET, "tokenizer: vocabulary too large");
	if (rc || check_vocab(t, strs, path, err)) {
		tok_free(t);
		return NULL;
	}
	return t;
nomem:
	fm_err(err, FM_ENOMEM, path, FM_NO_OFFSET, "tokenizer: out of memory for %d tokens", n);
	tok_free(t);
	return NULL;
}

static int merge_table_grow(struct tok *t)
{
	uint32_t cap = t->merge_slot ? (t->merge_mask + 1) * 2 : 1024;
	struct tok_merge_slot *ns = malloc((size_t)cap * sizeof(*ns));
	int32_t(*nm)[2] = realloc(t->merges, (size_t)cap / 2 * sizeof(*nm));
	if (!ns || !nm) {
		free(ns);
		if (nm)
			t->merges = nm;
		return FM_ENOMEM;
	}
	t->merges = nm;
	t->cap_merges = cap / 2;
	for (uint32_t i = 0; i < cap; i++)
		ns[i].key = UINT64_MAX;
	for (uint32_t i = 0; t->merge_slot && i <= t->merge_mask; i++) {
		struct tok_merge_slot e = t->merge_slot[i];
		if (e.key == UINT64_MAX)
			continue;
		uint32_t h = tok_hash_pair(e.key) & (cap - 1);
		while (ns[h].key != UINT64_MAX)
			h = (h + 1) & (cap - 1);
		ns[h] = e;
	}
	free(t->merge_slot);
	t->merge_slot = ns;
	t->merge_mask = cap - 1;
	return 0;
}

int tok_build_merge(struct tok *t, const char *l, size_t l_len, const char *r, size_t r_len)
{
	if (t->n_merges >= t->cap_merges && merge_table_grow(t))
		return FM_ENOMEM;
	int32_t a = tok_find(t, l, l_len), b = tok_find(t, r, r_len);
	if (a < 0 || b < 0 || t->type[a] != TOK_TYPE_NORMAL || t->type[b] != TOK_TYPE_NORMAL ||
	    l_len + r_len > 4096)
		return 0;
	char buf[4096];
	memcpy(buf, l, l_len);
	memcpy(buf + l_len, r, r_len);
	int32_t c = tok_find(t, buf, l_len + r_len);
	if (c < 0 || t->type[c] != TOK_TYPE_NORMAL)
		return 0; /* an added token stands for its text as written, not as bytes */
	uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
	uint32_t h = tok_hash_pair(key) & t->merge_mask;
	for (; t->merge_slot[h].key != UINT64_MAX; h = (h + 1) & t->merge_mask)
		if (t->merge_slot[h].key == key)
			return 0; /* a repeated pair keeps its first (lowest) rank */
	t->merge_slot[h] = (struct tok_merge_slot){ key, t->n_merges, c };
	t->merges[t->n_merges][0] = a;
	t->merges[t->n_merges][1] = b;
	t->n_merges++;
	return 0;
}

/* Onig's (and so HF's) \s is Unicode White_Space; PCRE2's UCP \s is \p{Z} plus
 * \h and \v, which adds U+180E. Spell the property out to match HF. */
static char *rewrite_pattern(const char *p)
{
	size_t n = strlen(p);
	char *out = malloc(n * 8 + 1);
	if (!out)
		return NULL;
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] != '\\' || i + 1 >= n) {
			out[o++] = p[i];
			continue;
		}
		char c = p[++i];
		if (c == 's' || c == 'S') {
			memcpy(out + o, c == 's' ? "\\p{White_Space}" : "\\P{White_Space}", 15);
			o += 15;
		} else {
			out[o++] = '\\';
			out[o++] = c;
		}
	}
	out[o] = 0;
	return out;
}

static int compile_regex(struct tok *t, const char *pattern, const char *path,
			 struct fm_error *err)
{
	t->pattern = strdup(pattern);
	char *rw = rewrite_pattern(pattern);
	if (!t->pattern || !rw) {
		free(rw);
		return fm_err(err, FM_ENOMEM, path, FM_NO_OFFSET, "tokenizer: out of memory");
	}
	int ec;
	PCRE2_SIZE eo;
	t->re = pcre2_compile((PCRE2_SPTR)rw, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP,
			      &ec, &eo, NULL);
	free(rw);
	if (!t->re) {
		PCRE2_UCHAR msg[128];
		pcre2_get_error_message(ec, msg, sizeof(msg));
		return fm_err(err, FM_EFORMAT, path, FM_NO_OFFSET,
			      "tokenizer: pre-tokenizer regex: %s at %zu", (char *)msg, (size_t)eo);
	}
	t->re_jit = pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE) == 0;
	return 0;
}

static int cmp_added(const void *a, const void *b, void *arg)
{
	const struct tok *t = arg;
	size_t na, nb;
	const unsigned char *sa = (const unsigned char *)tok_text_at(t, *(const int32_t *)a, &na);
	const unsigned char *sb = (const unsigned char *)tok_text_at(t, *(const int32_t *)b, &nb);
	if (sa[0] != sb[0])
		return sa[0] < sb[0] ? -1 : 1;
	if (na != nb)
		return na > nb ? -1 : 1; /* longest first */
	return *(const int32_t *)a < *(const int32_t *)b ? -1 : 1;
}

static bool is_added(const struct tok *t, int32_t i)
{
	return (t->type[i] == TOK_TYPE_CONTROL || t->type[i] == TOK_TYPE_USER_DEFINED) &&
	       t->text_off[i + 1] - t->text_off[i] > 1;
}

static int index_added(struct tok *t)
{
	int n = 0;
	for (int i = 0; i < t->n_vocab; i++)
		n += is_added(t, i);
	t->added = malloc(((size_t)n + 1) * sizeof(int32_t));
	if (!t->added)
		return FM_ENOMEM;
	for (int i = 0; i < t->n_vocab; i++)
		if (is_added(t, i))
			t->added[t->n_added++] = i;
	qsort_r(t->added, (size_t)n, sizeof(int32_t), cmp_added, t);
	memset(t->added_first, 0, sizeof(t->added_first));
	for (int i = 0; i < n; i++)
		t->added_first[(unsigned char)t->text[t->text_off[t->added[i]]] + 1]++;
	for (int b = 0; b < 256; b++)
		t->added_first[b + 1] += t->added_first[b];
	return 0;
}

static void fill_eog(struct tok *t)
{
	t->n_eog = 0;
	if (t->eos >= 0)
		t->eog[t->n_eog++] = t->eos;
	for (size_t i = 0; i < sizeof(eog_texts) / sizeof(eog_texts[0]); i++) {
		int32_t id = tok_find(t, eog_texts[i], strlen(eog_texts[i]));
		if (id < 0 || !is_added(t, id) || id == t->eos || t->n_eog >= TOK_MAX_EOG)
			continue;
		t->eog[t->n_eog++] = id;
	}
}

int tok_build_finish(struct tok *t, const char *pattern, const char *pre_name, const char *path,
		     struct fm_error *err)
{
	int rc = compile_regex(t, pattern ? pattern : tok_re_gpt2, path, err);
	if (rc)
		return rc;
	snprintf(t->pre_name, sizeof(t->pre_name), "%s", pre_name ? pre_name : "default");
	/* a tokenizer without merges still has a (empty) merge table to probe */
	if (index_added(t) || (!t->merge_slot && merge_table_grow(t)))
		return fm_err(err, FM_ENOMEM, path, FM_NO_OFFSET, "tokenizer: out of memory");
	fill_eog(t);
	return 0;
}

void tok_free(struct tok *t)
{
	if (!t)
		return;
	pcre2_code_free(t->re);
	free(t->pattern);
	free(t->chat_template);
	free(t->added);
	free(t->merges);
	free(t->merge_slot);
	free(t->vocab_slot);
	free(t->type);
	free(t->bytes_off);
	free(t->bytes);
	free(t->text_off);
	free(t->text);
	free(t);
}

static bool id_ok(const struct tok *t, int32_t id)
{
	return id >= 0 && id < t->n_vocab;
}

const char *tok_piece(const struct tok *t, int32_t id, size_t *len)
{
	if (!id_ok(t, id))
		return NULL;
	*len = t->bytes_off[id + 1] - t->bytes_off[id] - 1;
	return t->bytes + t->bytes_off[id];
}

const char *tok_text(const struct tok *t, int32_t id, size_t *len)
{
	if (!id_ok(t, id))
		return NULL;
	*len = t->text_off[id + 1] - t->text_off[id] - 1;
	return t->text + t->text_off[id];
}

enum tok_type tok_token_type(const struct tok *t, int32_t id)
{
	return id_ok(t, id) ? (enum tok_type)t->type[id] : TOK_TYPE_UNDEFINED;
}

int tok_n_vocab(const struct tok *t) { return t->n_vocab; }
int tok_n_merges(const struct tok *t) { return (int)t->n_merges; }
int32_t tok_bos(const struct tok *t) { return t->bos; }
int32_t tok_eos(const struct tok *t) { return t->eos; }
int32_t tok_pad(const struct tok *t) { return t->pad; }
bool tok_add_bos(const struct tok *t) { return t->add_bos && t->bos >= 0; }
const char *tok_pre_name(const struct tok *t) { return t->pre_name; }
const char *tok_chat_template(const struct tok *t) { return t->chat_template; }

bool tok_is_eog(const struct tok *t, int32_t id)
{
	for (int i = 0; i < t->n_eog; i++)
		if (t->eog[i] == id)
			return true;
	return false;
}

bool tok_is_control(const struct tok *t, int32_t id)
{
	return id_ok(t, id) && t->type[id] == TOK_TYPE_CONTROL;
}

int32_t tok_find(const struct tok *t, const char *text, size_t len)
{
	for (uint32_t h = (uint32_t)tok_hash_bytes(text, len) & t->vocab_mask;;
	     h = (h + 1) & t->vocab_mask) {
		uint32_t v = t->vocab_slot[h];
		if (v == 0)
			return -1;
		size_t m;
		const char *s = tok_text_at(t, (int32_t)v - 1, &m);
		if (m == len && !memcmp(s, text, len))
			return (int32_t)v - 1;
	}
}

/* ---- streaming decode ---- */

void tok_stream_init(struct tok_stream *s, const struct tok *t, bool skip_control)
{
	memset(s, 0, sizeof(*s));
	s->t = t;
	s->skip_control = skip_control;
}

size_t tok_stream_max_bytes(const struct tok *t)
{
	return t->max_piece_bytes + 4;
}

/* Could s[0..n) (n < its full length) still grow into a valid character? */
static bool utf8_prefix_ok(const unsigned char *s, size_t n)
{
	unsigned char buf[4] = { 0 };
	memcpy(buf, s, n);
	/* complete it with the smallest continuation bytes the lead allows */
	static const unsigned char fill_lo[4] = { 0, 0x80, 0x80, 0x80 };
	for (size_t i = n; i < 4; i++)
		buf[i] = fill_lo[i];
	if (n == 1 && s[0] == 0xe0)
		buf[1] = 0xa0;
	if (n == 1 && s[0] == 0xf0)
		buf[1] = 0x90;
	return tok_utf8_char_len(buf, 4) > n;
}

/* Emit the complete characters and invalid bytes of in[0..n); keep a valid
 * incomplete tail in s->pend (it is always shorter than 4 bytes). */
static size_t stream_emit(struct tok_stream *s, const unsigned char *in, size_t n, char *out)
{
	size_t o = 0, i = 0;
	while (i < n) {
		size_t cl = tok_utf8_char_len(in + i, n - i);
		if (cl) {
			memcpy(out + o, in + i, cl);
			o += cl;
			i += cl;
		} else if (n - i < 4 && utf8_prefix_ok(in + i, n - i)) {
			memcpy(s->pend, in + i, n - i);
			s->n_pend = (int)(n - i);
			return o;
		} else {
			out[o++] = (char)in[i++]; /* can never be valid: as is */
		}
	}
	return o;
}

int tok_stream_feed(struct tok_stream *s, int32_t id, char *out, size_t cap)
{
	size_t len;
	const char *p = tok_piece(s->t, id, &len);
	if (!p)
		return FM_EINVAL;
	if (s->skip_control && s->t->type[id] == TOK_TYPE_CONTROL)
		return 0;
	if (len + (size_t)s->n_pend > cap)
		return FM_ERANGE;
	size_t o = 0, skip = 0;
	if (s->n_pend) {
		/* finish the held character with the piece's first bytes */
		unsigned char tmp[8];
		size_t np = (size_t)s->n_pend, take = len < 4 - np ? len : 4 - np;
		memcpy(tmp, s->pend, np);
		memcpy(tmp + np, p, take);
		size_t m = np + take, cl = tok_utf8_char_len(tmp, m);
		s->n_pend = 0;
		if (cl) {
			memcpy(out, tmp, cl);
			o = cl;
			skip = cl - np;
		} else if (m < 4 && utf8_prefix_ok(tmp, m)) {
			memcpy(s->pend, tmp, m); /* still incomplete: all of p held */
			s->n_pend = (int)m;
			return 0;
		} else {
			/* it broke: the held lead and continuations are invalid bytes */
			memcpy(out, tmp, np);
			o = np;
		}
	}
	o += stream_emit(s, (const unsigned char *)p + skip, len - skip, out + o);
	return (int)o;
}

int tok_stream_flush(struct tok_stream *s, char *out, size_t cap)
{
	if ((size_t)s->n_pend > cap)
		return FM_ERANGE;
	int n = s->n_pend;
	memcpy(out, s->pend, (size_t)n);
	s->n_pend = 0;
	return n;
}
