/* gguf_hash.c: the name -> index table of the gguf part (see gguf_hash.h).
 * Linear probing at load factor <= 1/2; 64-bit FNV-1a over the name bytes. */
#include "gguf_hash.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static uint64_t name_hash(const char *ptr, uint64_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (uint64_t i = 0; i < len; i++) {
		h ^= (unsigned char)ptr[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static int table_alloc(struct gguf_hash *h, uint64_t cap)
{
	struct gguf_hash_slot *s = calloc(cap, sizeof(*s));
	if (!s)
		return -ENOMEM;
	h->slots = s;
	h->cap = cap;
	h->n = 0;
	return 0;
}

int gguf_hash_init(struct gguf_hash *h, uint64_t n_expected)
{
	uint64_t cap = 16;
	/* cap >= 2 * n_expected; n_expected is bounded by a file size, and
	 * calloc refuses what does not fit. */
	while (cap / 2 < n_expected && cap < (UINT64_C(1) << 62))
		cap *= 2;
	return table_alloc(h, cap);
}

void gguf_hash_free(struct gguf_hash *h)
{
	if (!h)
		return;
	free(h->slots);
	h->slots = NULL;
	h->cap = h->n = 0;
}

/* Slot holding name, or the empty slot where it would go. */
static struct gguf_hash_slot *probe(const struct gguf_hash *h, const char *ptr,
				    uint64_t len, uint64_t hash)
{
	uint64_t mask = h->cap - 1;
	for (uint64_t i = hash & mask;; i = (i + 1) & mask) {
		struct gguf_hash_slot *s = &h->slots[i];
		if (!s->idx1)
			return s;
		if (s->hash == hash && s->len == len && (len == 0 || !memcmp(s->ptr, ptr, len)))
			return s;
	}
}

static int grow(struct gguf_hash *h)
{
	struct gguf_hash old = *h;
	if (table_alloc(h, old.cap ? old.cap * 2 : 16) < 0) {
		*h = old;
		return -ENOMEM;
	}
	for (uint64_t i = 0; i < old.cap; i++) {
		if (old.slots[i].idx1) {
			*probe(h, old.slots[i].ptr, old.slots[i].len, old.slots[i].hash) =
				old.slots[i];
			h->n++;
		}
	}
	free(old.slots);
	return 0;
}

int gguf_hash_put(struct gguf_hash *h, const char *ptr, uint64_t len, uint64_t idx,
		  uint64_t *dup_idx)
{
	if ((h->n + 1) * 2 > h->cap && grow(h) < 0)
		return -ENOMEM;
	uint64_t hash = name_hash(ptr, len);
	struct gguf_hash_slot *s = probe(h, ptr, len, hash);
	if (s->idx1) {
		*dup_idx = s->idx1 - 1;
		return 1;
	}
	*s = (struct gguf_hash_slot){ ptr, len, hash, idx + 1 };
	h->n++;
	return 0;
}

int64_t gguf_hash_get(const struct gguf_hash *h, const char *ptr, uint64_t len)
{
	if (!h->cap)
		return -1;
	const struct gguf_hash_slot *s = probe(h, ptr, len, name_hash(ptr, len));
	return s->idx1 ? (int64_t)(s->idx1 - 1) : -1;
}
