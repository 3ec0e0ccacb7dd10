/* gguf_hash.h: a small open-addressing hash table from names to indices,
 * shared by the GGUF reader (key and tensor lookups, duplicate detection) and
 * the GGUF writer (duplicate tensor names). Internal to the gguf part.
 *
 * Owns only the table; the names it indexes are borrowed and must stay valid
 * (and unmoved) while the table is in use. Hash: 64-bit FNV-1a.
 */
#ifndef FM_GGUF_HASH_H
#define FM_GGUF_HASH_H

#include <stdint.h>

struct gguf_hash_slot {
	const char *ptr; /* borrowed name bytes (not NUL-terminated) */
	uint64_t len;
	uint64_t hash;
	uint64_t idx1;   /* index + 1; 0 = empty slot */
};

struct gguf_hash {
	struct gguf_hash_slot *slots; /* [cap] */
	uint64_t cap;                 /* a power of two, or 0 */
	uint64_t n;
};

/* Size the table for n_expected names (it grows past that). 0 or -ENOMEM. */
int gguf_hash_init(struct gguf_hash *h, uint64_t n_expected);
void gguf_hash_free(struct gguf_hash *h);
/* Insert name -> idx. 0 when inserted; 1 when the name is already there
 * (*dup_idx set to its index, nothing changed); -ENOMEM. */
int gguf_hash_put(struct gguf_hash *h, const char *ptr, uint64_t len, uint64_t idx,
		  uint64_t *dup_idx);
/* Index of name, or -1 when absent. */
int64_t gguf_hash_get(const struct gguf_hash *h, const char *ptr, uint64_t len);

#endif
