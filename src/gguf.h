/* gguf.h: reading and writing GGUF v3 files (the llama.cpp model format).
 *
 * Layout of a GGUF file (all little-endian):
 *   u32 magic "GGUF" | u32 version (3; 2 also read) | u64 n_tensors | u64 n_kv
 *   n_kv x { string key | u32 value type | value }
 *   n_tensors x { string name | u32 n_dims | n_dims x u64 ne | u32 ggml type | u64 offset }
 *   padding to general.alignment (default 32)
 *   tensor data; each tensor's offset is relative to the start of this section
 *   and a multiple of the alignment.
 *   string = u64 length + bytes (no NUL); array = u32 elem type + u64 count + elems.
 *
 * Owns: parsing (every count, length and offset checked against the file size
 * before use) and writing. Knows nothing about models or math.
 */
#ifndef FM_GGUF_H
#define FM_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flashmoe.h"
#include "ggml_type.h"

enum gguf_type {
	GGUF_TYPE_UINT8 = 0,
	GGUF_TYPE_INT8 = 1,
	GGUF_TYPE_UINT16 = 2,
	GGUF_TYPE_INT16 = 3,
	GGUF_TYPE_UINT32 = 4,
	GGUF_TYPE_INT32 = 5,
	GGUF_TYPE_FLOAT32 = 6,
	GGUF_TYPE_BOOL = 7,
	GGUF_TYPE_STRING = 8,
	GGUF_TYPE_ARRAY = 9,
	GGUF_TYPE_UINT64 = 10,
	GGUF_TYPE_INT64 = 11,
	GGUF_TYPE_FLOAT64 = 12,
	GGUF_TYPE_COUNT
};

#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_DIMS 4
#define GGUF_MAX_NAME_BYTES (64u * 1024) /* longest key or tensor name read or written */

struct gguf_str {
	uint64_t len;
	const char *ptr; /* not NUL-terminated; points into the mapping */
};

struct gguf_tensor_info {
	struct gguf_str name;
	char *name_z;            /* NUL-terminated copy of name */
	uint32_t n_dims;
	uint64_t ne[GGUF_MAX_DIMS]; /* ne[0] contiguous; unused dims are 1 */
	uint32_t type;           /* enum ggml_type */
	uint64_t offset;         /* absolute offset in the file */
	uint64_t size_bytes;
};

struct gguf_file;

/* Bytes of one element of plain type t; 0 for STRING, ARRAY or an unknown t. */
size_t gguf_type_size(enum gguf_type t);
/* "u32", "string", ...; "?" for an unknown t. */
const char *gguf_type_name(enum gguf_type t);

/* Open and parse path (mmap'd read-only; only the header pages are touched).
 * NULL on failure, with err naming the file, what and where: FM_EFORMAT for a
 * malformed or truncated file (version 1 included), FM_EUNSUPPORTED for a
 * nested array (array of arrays), -errno when open/mmap fail. Every tensor's
 * data must lie inside the file and share no byte with another tensor's;
 * trailing padding after the last is optional. Keys and tensor names must be
 * unique and hold no NUL byte. */
struct gguf_file *gguf_open(const char *path, struct fm_error *err);
void gguf_close(struct gguf_file *f);

const char *gguf_path(const struct gguf_file *f);
uint32_t gguf_version(const struct gguf_file *f);
uint64_t gguf_file_size(const struct gguf_file *f);
uint32_t gguf_alignment(const struct gguf_file *f);
uint64_t gguf_data_offset(const struct gguf_file *f); /* start of tensor data */

/* ---- metadata ---- */
uint64_t gguf_n_kv(const struct gguf_file *f);
int64_t gguf_find_key(const struct gguf_file *f, const char *key); /* -1 if absent */
const char *gguf_kv_key(const struct gguf_file *f, uint64_t i);    /* NUL-terminated */
enum gguf_type gguf_kv_type(const struct gguf_file *f, uint64_t i);
/* For arrays: element type and count (type GGUF_TYPE_ARRAY only). */
enum gguf_type gguf_kv_arr_type(const struct gguf_file *f, uint64_t i);
uint64_t gguf_kv_arr_n(const struct gguf_file *f, uint64_t i);
/* Raw element data of a non-string array (little-endian, packed). */
const void *gguf_kv_arr_data(const struct gguf_file *f, uint64_t i);
/* Element j of a string array. */
struct gguf_str gguf_kv_arr_str(const struct gguf_file *f, uint64_t i, uint64_t j);

/* Typed getters by key. Integers convert between widths when the value fits;
 * floats accept f32 or f64. Return 0, FM_ENOTFOUND if the key is absent, or
 * FM_EFORMAT (err filled) if the type is wrong or the value does not fit. */
int gguf_get_u32(const struct gguf_file *f, const char *key, uint32_t *out, struct fm_error *err);
int gguf_get_u64(const struct gguf_file *f, const char *key, uint64_t *out, struct fm_error *err);
int gguf_get_i64(const struct gguf_file *f, const char *key, int64_t *out, struct fm_error *err);
int gguf_get_f32(const struct gguf_file *f, const char *key, float *out, struct fm_error *err);
int gguf_get_f64(const struct gguf_file *f, const char *key, double *out, struct fm_error *err);
int gguf_get_bool(const struct gguf_file *f, const char *key, bool *out, struct fm_error *err);
int gguf_get_str(const struct gguf_file *f, const char *key, struct gguf_str *out, struct fm_error *err);

/* ---- tensors ---- */
uint64_t gguf_n_tensors(const struct gguf_file *f);
int64_t gguf_find_tensor(const struct gguf_file *f, const char *name); /* -1 if absent */
const struct gguf_tensor_info *gguf_tensor(const struct gguf_file *f, uint64_t i);
/* Pointer to tensor i's bytes inside the read-only mapping. Touching it
 * faults the pages in (page cache). */
const void *gguf_tensor_data(const struct gguf_file *f, uint64_t i);

/* ---- writing ----
 * Usage: w = gguf_writer_new(align); gguf_writer_set_*(...); gguf_writer_add_tensor(...)
 * for every tensor; gguf_writer_open(w, path) writes the header; then
 * gguf_writer_write_tensor() for each tensor in the order added (data may be
 * produced one tensor at a time, so multi-GB files need no big buffer);
 * gguf_writer_finish(); gguf_writer_free(). Keys set twice keep the last value. */
struct gguf_writer;
struct gguf_writer *gguf_writer_new(uint32_t alignment);
void gguf_writer_free(struct gguf_writer *w);
int gguf_writer_set_u32(struct gguf_writer *w, const char *key, uint32_t v);
int gguf_writer_set_i32(struct gguf_writer *w, const char *key, int32_t v);
int gguf_writer_set_u64(struct gguf_writer *w, const char *key, uint64_t v);
int gguf_writer_set_f32(struct gguf_writer *w, const char *key, float v);
int gguf_writer_set_bool(struct gguf_writer *w, const char *key, bool v);
int gguf_writer_set_str(struct gguf_writer *w, const char *key, const char *v);
/* One scalar of any plain type t (not STRING/ARRAY); v points to its value. */
int gguf_writer_set_scalar(struct gguf_writer *w, const char *key, enum gguf_type t,
			   const void *v);
/* Array of n plain elements (not STRING/ARRAY) of type t, copied. */
int gguf_writer_set_arr(struct gguf_writer *w, const char *key, enum gguf_type t,
			const void *data, uint64_t n);
/* Array of n strings: strs[i] of length lens[i] (lens NULL = NUL-terminated). */
int gguf_writer_set_arr_str(struct gguf_writer *w, const char *key,
			    const char *const *strs, const uint64_t *lens, uint64_t n);
/* Declare a tensor; returns its index (>= 0) or a negative code. */
int64_t gguf_writer_add_tensor(struct gguf_writer *w, const char *name, enum ggml_type type,
			       uint32_t n_dims, const uint64_t *ne);
int gguf_writer_open(struct gguf_writer *w, const char *path, struct fm_error *err);
/* Write tensor idx's data (size must equal its declared size). */
int gguf_writer_write_tensor(struct gguf_writer *w, uint64_t idx, const void *data,
			     size_t size, struct fm_error *err);
/* Check all tensors were written, flush and close; the file is complete only
 * after this returns 0 (written to path.tmp, then renamed). */
int gguf_writer_finish(struct gguf_writer *w, struct fm_error *err);

#endif
