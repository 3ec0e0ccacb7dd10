/* safetensors.h: reading Hugging Face .safetensors files.
 *
 * Layout of a safetensors file:
 *   u64 N (little-endian) | N bytes of JSON header | tensor data
 *   header = { "NAME": { "dtype": "BF16", "shape": [d0, d1, ...],
 *                        "data_offsets": [begin, end] }, ...,
 *              "__metadata__": { "key": "string", ... } (optional) }
 *   shape is row-major (the last dim contiguous); begin/end are relative to
 *   the first byte after the header; the JSON may be padded with spaces.
 *
 * Owns: mapping and validating the file (header length against the file,
 * every entry's dtype, shape product * dtype size == end - begin, data
 * inside the file, no two tensors overlapping), lookups by name. Knows
 * nothing about models. Only F32, F16 and BF16 tensors are accepted; any
 * other dtype is FM_EUNSUPPORTED, named in the error.
 */
#ifndef FM_SAFETENSORS_H
#define FM_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "flashmoe.h"
#include "ggml_type.h"

#define ST_MAX_DIMS 8
#define ST_MAX_HEADER_BYTES (100u << 20) /* as the safetensors library limits it */

struct st_tensor {
	char *name;                 /* NUL-terminated */
	enum ggml_type type;        /* F32, F16 or BF16 */
	uint32_t n_dims;
	uint64_t shape[ST_MAX_DIMS]; /* as the file lists it: shape[n_dims - 1] contiguous */
	uint64_t offset;            /* absolute offset in the file */
	uint64_t size_bytes;
};

struct st_file;

/* Open and validate path (mmap'd read-only). NULL on failure, err naming the
 * file, the tensor and what is wrong: FM_EFORMAT for a malformed, truncated
 * or inconsistent file, FM_EUNSUPPORTED for another dtype, -errno when
 * open/mmap fail. */
struct st_file *st_open(const char *path, struct fm_error *err);
/* The same over size bytes at buf (borrowed: must outlive the result); label
 * names it in messages. For tests and fuzzing. */
struct st_file *st_open_mem(const void *buf, uint64_t size, const char *label,
			    struct fm_error *err);
void st_close(struct st_file *f);

const char *st_path(const struct st_file *f);
uint64_t st_n_tensors(const struct st_file *f);
/* Tensors sorted by name; i < st_n_tensors. Borrowed until st_close. */
const struct st_tensor *st_tensor(const struct st_file *f, uint64_t i);
int64_t st_find(const struct st_file *f, const char *name); /* -1 if absent */
/* Tensor i's bytes inside the mapping (little-endian). */
const void *st_data(const struct st_file *f, uint64_t i);

#endif
