/* tokenizer_bpe.c: tok_encode, text -> token ids (architectures.md §10.1).
 *
 * The pipeline of tokenizer.h: added tokens split out (leftmost, longest),
 * valid UTF-8 runs NFC-normalised (utf8proc) and split by the pre-tokenizer
 * regex (PCRE2 JIT), runs of invalid bytes kept as pieces of their own, and
 * each piece merged by BPE over token ids: a heap of candidate pairs ordered
 * by (merge rank, position), as HF tokenizers' word merge does, so a piece of
 * n bytes costs O(n log n) and long runs (a megabyte of spaces) stay cheap.
 *
 * Everything mutable lives in a struct enc on the caller's stack and in
 * memory it allocates, so concurrent calls on one tok are safe. A per-call
 * cache maps repeated pieces (words) to their ids.
 */
#include "tokenizer_int.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

struct bpe_sym {
	int32_t id, prev, next; /* id -1: merged into its left neighbour */
};

struct bpe_cand {
	uint32_t rank;
	int32_t pos;             /* index of the left symbol */
	int32_t left, right, result;
};

struct cache_slot { /* 16 bytes: the table is probed once per piece */
	uint32_t hash;
	uint32_t key_off, ids_off;
	uint16_t key_len, n_ids; /* key_len 0: empty */
};

struct enc {
	const struct tok *t;
	int32_t *ids;
	int cap;
	int64_t n;
	pcre2_match_data *md;
	pcre2_match_context *mctx;
	pcre2_jit_stack *jstack;
	struct bpe_sym *sym;
	struct bpe_cand *heap;
	int32_t *out;
	size_t sym_cap;
	struct cache_slot *slot;
	uint32_t slot_mask, n_cached, max_cached;
	char *keys;
	int32_t *cids;
	size_t keys_len, keys_cap, cids_len, cids_cap;
	size_t text_len;
};

static void emit(struct enc *e, int32_t id)
{
	if (e->n < e->cap)
		e->ids[e->n] = id;
	e->n++;
}

static int grow_scratch(struct enc *e, size_t n)
{
	if (n <= e->sym_cap)
		return 0;
	size_t cap = n < 256 ? 256 : n;
	if (cap > SIZE_MAX / (3 * sizeof(struct bpe_cand)))
		return FM_ERANGE;
	free(e->sym);
	free(e->heap);
	free(e->out);
	e->sym = malloc(cap * sizeof(*e->sym));
	e->heap = malloc(3 * cap * sizeof(*e->heap));
	e->out = malloc(cap * sizeof(*e->out));
	e->sym_cap = e->sym && e->heap && e->out ? cap : 0;
	return e->sym_cap ? 0 : FM_ENOMEM;
}

static bool cand_less(const struct bpe_cand *a, const struct bpe_cand *b)
{
	return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(struct bpe_cand *h, size_t *n, struct bpe_cand c)
{
	size_t i = (*n)++;
	while (i > 0 && cand_less(&c, &h[(i - 1) / 2])) {
		h[i] = h[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	h[i] = c;
}

static struct bpe_cand heap_pop(struct bpe_cand *h, size_t *n)
{
	struct bpe_cand top = h[0], last = h[--*n];
	size_t i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= *n)
			break;
		if (c + 1 < *n && cand_less(&h[c + 1], &h[c]))
			c++;
		if (!cand_less(&h[c], &last))
			break;
		h[i] = h[c];
		i = c;
	}
	if (*n)
		h[i] = last;
	return top;
}

/* Queue the merge of symbols i and j = next(i), if the pair has one. */
static void push_pair(struct enc *e, size_t *nh, int32_t i, int32_t j)
{
	const struct tok *t = e->t;
	uint64_t key = (uint64_t)(uint32_t)e->sym[i].id << 32 | (uint32_t)e->sym[j].id;
	for (uint32_t h = tok_hash_pair(key) & t->merge_mask;;
	     h = (h + 1) & t->merge_mask) {
		const struct tok_merge_slot *s = &t->merge_slot[h];
		if (s->key == UINT64_MAX)
			return;
		if (s->key == key) {
			heap_push(e->heap, nh, (struct bpe_cand){ s->rank, i, e->sym[i].id,
								  e->sym[j].id, s->result });
			return;
		}
	}
}

/* With ignore_merges, a piece that is a whole normal token is taken as it
 * is (HF looks in model.vocab only: an added token "Ġa" is not " a"). */
static int32_t whole_token(const struct tok *t, const unsigned char *p, size_t len)
{
	char buf[512];
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		uint16_t cp = t->byte_cp[p[i]];
		if (o + 2 > sizeof(buf))
			return -1;
		if (cp < 0x80) {
			buf[o++] = (char)cp;
		} else {
			buf[o++] = (char)(0xc0 | (cp >> 6));
			buf[o++] = (char)(0x80 | (cp & 0x3f));
		}
	}
	int32_t id = tok_find(t, buf, o);
	return id >= 0 && t->type[id] == TOK_TYPE_NORMAL ? id : -1;
}

/* BPE of one piece into e->out; returns the number of ids. */
static int64_t bpe(struct enc *e, const unsigned char *p, size_t len)
{
	const struct tok *t = e->t;
	if (t->ignore_merges) {
		int32_t id = whole_token(t, p, len);
		if (id >= 0) {
			e->out[0] = id;
			return 1;
		}
	}
	int32_t n = 0;
	for (size_t i = 0; i < len; i++) {
		int32_t id = t->byte_id[p[i]];
		if (id < 0)
			continue; /* no token for this byte: dropped, as HF does without unk */
		e->sym[n] = (struct bpe_sym){ id, n - 1, n + 1 };
		n++;
	}
	if (n == 0)
		return 0;
	e->sym[n - 1].next = -1;
	size_t nh = 0;
	for (int32_t i = 0; i + 1 < n; i++)
		push_pair(e, &nh, i, i + 1);
	while (nh) {
		struct bpe_cand c = heap_pop(e->heap, &nh);
		struct bpe_sym *l = &e->sym[c.pos];
		if (l->id != c.left || l->next < 0 || e->sym[l->next].id != c.right)
			continue; /* stale: one side was merged since */
		struct bpe_sym *r = &e->sym[l->next];
		l->id = c.result;
		l->next = r->next;
		if (r->next >= 0)
			e->sym[r->next].prev = c.pos;
		r->id = -1;
		if (l->prev >= 0)
			push_pair(e, &nh, l->prev, c.pos);
		if (l->next >= 0)
			push_pair(e, &nh, c.pos, l->next);
	}
	int64_t k = 0;
	for (int32_t i = 0; i >= 0; i = e->sym[i].next)
		e->out[k++] = e->sym[i].id;
	return k;
}

static int cache_init(struct enc *e)
{
	size_t want = e->text_len / 2;
	uint32_t slots = 256;
	while (slots < want && slots < (1u << 16))
		slots <<= 1;
	e->slot = calloc(slots, sizeof(*e->slot));
	if (!e->slot)
		return FM_ENOMEM;
	e->slot_mask = slots - 1;
	e->max_cached = slots / 2;
	return 0;
}

static struct cache_slot *cache_find(struct enc *e, const void *p, size_t len, uint64_t h)
{
	for (uint32_t i = (uint32_t)h & e->slot_mask;; i = (i + 1) & e->slot_mask) {
		struct cache_slot *s = &e->slot[i];
		if (s->key_len == 0 || (s->hash == (uint32_t)(h >> 32) && s->key_len == len &&
					!memcmp(e->keys + s->key_off, p, len)))
			return s;
	}
}

static bool reserve(void **buf, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return true;
	size_t nc = *cap ? *cap : 4096;
	while (nc < need)
		nc *= 2;
	void *nb = realloc(*buf, nc * elem);
	if (!nb)
		return false;
	*buf = nb;
	*cap = nc;
	return true;
}

/* Remember piece -> e->out[0..k) (best effort: a full cache stops growing). */
static void cache_put(struct enc *e, struct cache_slot *s, const void *p, size_t len,
		      uint64_t h, int64_t k)
{
	if (e->n_cached >= e->max_cached || k > UINT16_MAX ||
	    !reserve((void **)&e->keys, &e->keys_cap, e->keys_len + len, 1) ||
	    !reserve((void **)&e->cids, &e->cids_cap, e->cids_len + (size_t)k, sizeof(int32_t)))
		return;
	memcpy(e->keys + e->keys_len, p, len);
	if (k) /* e->cids is still NULL before the first non-empty entry */
		memcpy(e->cids + e->cids_len, e->out, (size_t)k * sizeof(int32_t));
	*s = (struct cache_slot){ (uint32_t)(h >> 32), (uint32_t)e->keys_len, (uint32_t)e->cids_len,
				  (uint16_t)len, (uint16_t)k };
	e->keys_len += len;
	e->cids_len += (size_t)k;
	e->n_cached++;
}

static int encode_piece(struct enc *e, const char *p, size_t len)
{
	const unsigned char *u = (const unsigned char *)p;
	if (len == 1) {
		if (e->t->byte_id[u[0]] >= 0)
			emit(e, e->t->byte_id[u[0]]);
		return 0;
	}
	bool cacheable = len < 256 && e->keys_len + len < UINT32_MAX;
	struct cache_slot *s = NULL;
	uint64_t h = 0;
	if (cacheable) {
		if (!e->slot && cache_init(e))
			return FM_ENOMEM;
		h = tok_hash_bytes(p, len);
		s = cache_find(e, p, len, h);
		if (s->key_len) {
			for (uint32_t i = 0; i < s->n_ids; i++)
				emit(e, e->cids[s->ids_off + i]);
			return 0;
		}
	}
	int rc = grow_scratch(e, len);
	if (rc)
		return rc;
	int64_t k = bpe(e, u, len);
	for (int64_t i = 0; i < k; i++)
		emit(e, e->out[i]);
	if (cacheable)
		cache_put(e, s, p, len, h, k);
	return 0;
}

static int regex_match(struct enc *e, const char *s, size_t len, size_t off)
{
	const struct tok *t = e->t;
	for (;;) {
		int rc = t->re_jit
			? pcre2_jit_match(t->re, (PCRE2_SPTR)s, len, off, 0, e->md, e->mctx)
			: pcre2_match(t->re, (PCRE2_SPTR)s, len, off, PCRE2_NO_UTF_CHECK, e->md,
				      e->mctx);
		if (rc != PCRE2_ERROR_JIT_STACKLIMIT || e->jstack)
			return rc;
		/* The default 32 KiB JIT stack is too small for this text. */
		e->mctx = pcre2_match_context_create(NULL);
		e->jstack = pcre2_jit_stack_create(64 * 1024, 256 * 1024 * 1024, NULL);
		if (!e->mctx || !e->jstack)
			return PCRE2_ERROR_NOMEMORY;
		pcre2_jit_stack_assign(e->mctx, NULL, e->jstack);
	}
}

/* Split valid UTF-8 s[0..len) with the regex; every match is a piece, and
 * so is any text between matches (HF's "Isolated" split). */
static int split_regex(struct enc *e, const char *s, size_t len)
{
	size_t pos = 0, off = 0;
	while (off < len) {
		int rc = regex_match(e, s, len, off);
		if (rc == PCRE2_ERROR_NOMATCH)
			break;
		if (rc < 0)
			return rc == PCRE2_ERROR_NOMEMORY ? FM_ENOMEM : FM_EINVAL;
		PCRE2_SIZE *ov = pcre2_get_ovector_pointer(e->md);
		size_t ms = ov[0], me = ov[1];
		if (me == ms) { /* empty match: step over one character */
			size_t cl = tok_utf8_char_len((const unsigned char *)s + ms, len - ms);
			off = ms + (cl ? cl : 1);
			continue;
		}
		if (ms > pos && (rc = encode_piece(e, s + pos, ms - pos)))
			return rc;
		if ((rc = encode_piece(e, s + ms, me - ms)))
			return rc;
		pos = off = me;
	}
	return pos < len ? encode_piece(e, s + pos, len - pos) : 0;
}

/* Every code point below U+0300 is NFC-stable (NFC_Quick_Check = Yes, ccc 0),
 * and those are exactly the UTF-8 sequences whose lead byte is below 0xCC. */
static bool may_need_nfc(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] >= 0xcc)
			return true;
	return false;
}

static int encode_valid(struct enc *e, const char *s, size_t len)
{
	if (!e->t->nfc || !may_need_nfc(s, len))
		return split_regex(e, s, len);
	utf8proc_uint8_t *nfc = NULL;
	utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)len,
					  &nfc, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
	if (n < 0) /* cannot happen for valid UTF-8 but for memory */
		return n == UTF8PROC_ERROR_NOMEM ? FM_ENOMEM : FM_EINVAL;
	int rc = split_regex(e, (const char *)nfc, (size_t)n);
	free(nfc);
	return rc;
}

/* A segment between added tokens: valid runs and invalid-byte runs. */
static int encode_text(struct enc *e, const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;
	while (i < len) {
		size_t j = i;
		while (j < len) {
			size_t cl = u[j] < 0x80 ? 1 : tok_utf8_char_len(u + j, len - j);
			if (!cl)
				break;
			j += cl;
		}
		int rc = j > i ? encode_valid(e, s + i, j - i) : 0;
		if (rc)
			return rc;
		size_t k = j;
		while (k < len && u[k] >= 0x80 && !tok_utf8_char_len(u + k, len - k))
			k++;
		if (k > j && (rc = encode_piece(e, s + j, k - j)))
			return rc;
		i = k;
	}
	return 0;
}

/* The added token starting at s[0..len), longest first, or -1. */
static int32_t match_added(const struct tok *t, const char *s, size_t len, bool parse_special,
			   size_t *mlen)
{
	unsigned b = (unsigned char)s[0];
	for (uint32_t k = t->added_first[b]; k < t->added_first[b + 1]; k++) {
		int32_t id = t->added[k];
		size_t n;
		const char *a = tok_text_at(t, id, &n);
		if (n <= len && !memcmp(a, s, n) &&
		    (parse_special || t->type[id] != TOK_TYPE_CONTROL)) {
			*mlen = n;
			return id;
		}
	}
	return -1;
}

static int encode_all(struct enc *e, const char *text, size_t len, bool parse_special)
{
	const struct tok *t = e->t;
	size_t pos = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned b = (unsigned char)text[i];
		if (t->added_first[b] == t->added_first[b + 1])
			continue;
		size_t n;
		int32_t id = match_added(t, text + i, len - i, parse_special, &n);
		if (id < 0)
			continue;
		int rc = encode_text(e, text + pos, i - pos);
		if (rc)
			return rc;
		emit(e, id);
		pos = i + n;
		i = pos - 1;
	}
	return encode_text(e, text + pos, len - pos);
}

int tok_encode(const struct tok *t, const char *text, size_t len, bool parse_special,
	       int32_t *ids, int cap)
{
	struct enc e = { .t = t, .ids = ids, .cap = cap < 0 ? 0 : cap, .text_len = len };
	e.md = pcre2_match_data_create_from_pattern(t->re, NULL);
	int rc = e.md ? encode_all(&e, text, len, parse_special) : FM_ENOMEM;
	pcre2_match_data_free(e.md);
	pcre2_match_context_free(e.mctx);
	pcre2_jit_stack_free(e.jstack);
	free(e.sym);
	free(e.heap);
	free(e.out);
	free(e.slot);
	free(e.keys);
	free(e.cids);
	if (rc)
		return rc;
	return e.n > INT_MAX ? FM_ERANGE : (int)e.n;
}
