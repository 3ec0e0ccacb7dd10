/* gguf_internal.h: the GGUF reader's tables, shared by gguf.c (which builds
 * them while parsing) and gguf_get.c (which answers lookups from them).
 * Internal to the gguf part; the public contract is gguf.h.
 */
#ifndef FM_GGUF_INTERNAL_H
#define FM_GGUF_INTERNAL_H

#include <stdint.h>

#include "gguf.h"
#include "gguf_hash.h"

#define GGUF_SHOW_BYTES 96 /* at most this many name bytes quoted in messages */

static inline int gguf_show_len(uint64_t len)
{
	return len > GGUF_SHOW_BYTES ? GGUF_SHOW_BYTES : (int)len;
}

struct gguf_kv {
	struct gguf_str key;
	char *key_z;           /* NUL-terminated copy, in f->names */
	uint64_t pos;          /* file offset of the kv, for messages */
	uint32_t type;
	uint32_t arr_type;     /* arrays only */
	uint64_t arr_n;        /* arrays only */
	const uint8_t *val;    /* scalar value, string bytes, or first array element */
	uint64_t str_len;      /* strings only */
	struct gguf_str *strs; /* string arrays: [arr_n], inside f->str_tab */
};

struct gguf_file {
	char *path;
	const uint8_t *map;           /* [size], read-only; NULL when size is 0 */
	uint64_t size;
	uint32_t version, alignment;
	uint64_t data_offset;
	uint64_t n_kv, n_tensors, n_strs;
	struct gguf_kv *kv;           /* [n_kv] */
	struct gguf_tensor_info *ti;  /* [n_tensors] */
	uint64_t *ti_pos;             /* [n_tensors] file offset of each tensor info */
	char *names;                  /* every key_z and name_z, NUL-terminated */
	struct gguf_str *str_tab;     /* [n_strs] elements of all string arrays */
	struct gguf_hash kv_hash, ti_hash;
};

#endif
