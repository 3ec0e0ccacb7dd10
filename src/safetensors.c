/* safetensors.c: the safetensors reader (format in safetensors.h).
 *
 * The file is mmap'd; the JSON header is parsed with json-c (bounded by the
 * header length, which is checked against the file size and
 * ST_MAX_HEADER_BYTES before anything is read). Every entry is checked
 * before use: dtype, shape (each dim and the product against overflow),
 * data_offsets against the data section, and, after sorting by offset, that
 * no two tensors overlap. Tensors are then sorted by name for st_find.
 */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

struct st_file {
	char *path;
	const uint8_t *map;       /* [size] */
	uint64_t size;
	void *mapping;            /* owned mmap, or NULL for st_open_mem */
	uint64_t data_start;      /* 8 + header length */
	uint64_t n;
	struct st_tensor *t;      /* [n], sorted by name */
};

static const struct {
	const char *name;
	enum ggml_type type;
	uint32_t bytes;
} st_dtypes[] = {
	{ "F32", GGML_TYPE_F32, 4 },
	{ "F16", GGML_TYPE_F16, 2 },
	{ "BF16", GGML_TYPE_BF16, 2 },
};

static json_object *get(json_object *o, const char *key)
{
	json_object *v = NULL;
	return json_object_object_get_ex(o, key, &v) ? v : NULL;
}

/* A non-negative JSON integer; false otherwise (json-c saturates past
 * INT64_MAX, which no real file reaches: it is then out of range anyway). */
static bool get_u64(json_object *v, uint64_t *out)
{
	if (!v || !json_object_is_type(v, json_type_int))
		return false;
	int64_t x = json_object_get_int64(v);
	if (x < 0 || x == INT64_MAX)
		return false;
	*out = (uint64_t)x;
	return true;
}

static int bad(struct st_file *f, const char *name, struct fm_error *err, const char *what)
{
	return fm_err(err, FM_EFORMAT, f->path, FM_NO_OFFSET, "tensor '%.96s': %s", name, what);
}

static int parse_dtype(struct st_file *f, struct st_tensor *t, json_object *e,
		       uint32_t *elem_bytes, struct fm_error *err)
{
	json_object *d = get(e, "dtype");
	if (!d || !json_object_is_type(d, json_type_string))
		return bad(f, t->name, err, "no \"dtype\" string");
	const char *s = json_object_get_string(d);
	for (size_t i = 0; i < sizeof(st_dtypes) / sizeof(st_dtypes[0]); i++) {
		if (!strcmp(s, st_dtypes[i].name)) {
			t->type = st_dtypes[i].type;
			*elem_bytes = st_dtypes[i].bytes;
			return 0;
		}
	}
	return fm_err(err, FM_EUNSUPPORTED, f->path, FM_NO_OFFSET,
		      "tensor '%.96s': dtype '%.32s' is not supported (F32, F16, BF16)", t->name, s);
}

/* shape and data_offsets of entry e into t; sizes checked. */
static int parse_extent(struct st_file *f, struct st_tensor *t, json_object *e,
			uint32_t elem_bytes, struct fm_error *err)
{
	json_object *sh = get(e, "shape"), *off = get(e, "data_offsets");
	if (!sh || !json_object_is_type(sh, json_type_array))
		return bad(f, t->name, err, "no \"shape\" array");
	size_t nd = json_object_array_length(sh);
	if (nd > ST_MAX_DIMS)
		return bad(f, t->name, err, "more than 8 dimensions");
	uint64_t elems = 1;
	t->n_dims = (uint32_t)nd;
	for (size_t d = 0; d < nd; d++) {
		if (!get_u64(json_object_array_get_idx(sh, d), &t->shape[d]))
			return bad(f, t->name, err, "a shape entry is not a non-negative integer");
		if (!fm_mul_ok(elems, t->shape[d], &elems))
			return bad(f, t->name, err, "the shape's element count overflows");
	}
	uint64_t begin, end, want;
	if (!off || !json_object_is_type(off, json_type_array) ||
	    json_object_array_length(off) != 2 ||
	    !get_u64(json_object_array_get_idx(off, 0), &begin) ||
	    !get_u64(json_object_array_get_idx(off, 1), &end))
		return bad(f, t->name, err, "\"data_offsets\" is not [begin, end]");
	uint64_t data_bytes = f->size - f->data_start;
	if (!fm_mul_ok(elems, elem_bytes, &want))
		return bad(f, t->name, err, "the byte size overflows");
	if (begin > end || end > data_bytes)
		return fm_err(err, FM_EFORMAT, f->path, FM_NO_OFFSET,
			      "tensor '%.96s': data_offsets [%llu, %llu] outside the %llu data bytes "
			      "of the file (truncated?)", t->name, (unsigned long long)begin,
			      (unsigned long long)end, (unsigned long long)data_bytes);
	if (end - begin != want)
		return fm_err(err, FM_EFORMAT, f->path, FM_NO_OFFSET,
			      "tensor '%.96s': shape needs %llu bytes, data_offsets give %llu",
			      t->name, (unsigned long long)want, (unsigned long long)(end - begin));
	t->offset = f->data_start + begin;
	t->size_bytes = want;
	return 0;
}

static int cmp_offset(const void *a, const void *b)
{
	const struct st_tensor *x = a, *y = b;
	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(((const struct st_tensor *)a)->name, ((const struct st_tensor *)b)->name);
}

/* After the entries are read: no overlap (by offset), then sort by name. */
static int check_overlap(struct st_file *f, struct fm_error *err)
{
	qsort(f->t, f->n, sizeof(*f->t), cmp_offset);
	for (uint64_t i = 1; i < f->n; i++) {
		const struct st_tensor *p = &f->t[i - 1], *q = &f->t[i];
		if (q->size_bytes && p->offset + p->size_bytes > q->offset)
			return fm_err(err, FM_EFORMAT, f->path, q->offset,
				      "tensors '%.96s' and '%.96s' overlap", p->name, q->name);
	}
	qsort(f->t, f->n, sizeof(*f->t), cmp_name);
	return 0;
}

static int parse_entries(struct st_file *f, json_object *root, struct fm_error *err)
{
	uint64_t n = 0;
	json_object_object_foreach(root, k0, v0) {
		(void)v0;
		n += strcmp(k0, "__metadata__") != 0;
	}
	f->t = calloc(n ? n : 1, sizeof(*f->t));
	if (!f->t)
		return fm_err(err, FM_ENOMEM, f->path, FM_NO_OFFSET, "out of memory");
	json_object_object_foreach(root, key, e) {
		if (!strcmp(key, "__metadata__")) {
			if (!json_object_is_type(e, json_type_object))
				return fm_err(err, FM_EFORMAT, f->path, FM_NO_OFFSET,
					      "\"__metadata__\" is not an object");
			continue;
		}
		struct st_tensor *t = &f->t[f->n];
		if (!(t->name = strdup(key)))
			return fm_err(err, FM_ENOMEM, f->path, FM_NO_OFFSET, "out of memory");
		f->n++;
		uint32_t eb = 0;
		if (!json_object_is_type(e, json_type_object))
			return bad(f, key, err, "entry is not an object");
		int rc = parse_dtype(f, t, e, &eb, err);
		if (rc || (rc = parse_extent(f, t, e, eb, err)))
			return rc;
	}
	return check_overlap(f, err);
}

/* The u64 header length, then the JSON object it bounds. */
static int parse_header(struct st_file *f, struct fm_error *err)
{
	if (f->size < 8)
		return fm_err(err, FM_EFORMAT, f->path, 0,
			      "%llu bytes: too short for a safetensors header length",
			      (unsigned long long)f->size);
	uint64_t n = 0;
	for (int i = 7; i >= 0; i--)
		n = n << 8 | f->map[i];
	if (n < 2 || n > ST_MAX_HEADER_BYTES || n > f->size - 8)
		return fm_err(err, FM_EFORMAT, f->path, 0,
			      "header length %llu is not in 2..min(%u, file size %llu - 8) "
			      "(truncated, or not a safetensors file)",
			      (unsigned long long)n, ST_MAX_HEADER_BYTES,
			      (unsigned long long)f->size);
	f->data_start = 8 + n;
	const char *js = (const char *)f->map + 8;
	if (js[0] != '{')
		return fm_err(err, FM_EFORMAT, f->path, 8, "header does not start with '{'");
	json_tokener *tk = json_tokener_new();
	if (!tk)
		return fm_err(err, FM_ENOMEM, f->path, FM_NO_OFFSET, "out of memory");
	json_object *root = json_tokener_parse_ex(tk, js, (int)n);
	enum json_tokener_error je = json_tokener_get_error(tk);
	size_t end = json_tokener_get_parse_end(tk);
	json_tokener_free(tk);
	int rc = 0;
	if (!root || je != json_tokener_success || !json_object_is_type(root, json_type_object)) {
		rc = fm_err(err, FM_EFORMAT, f->path, 8 + end, "header JSON: %s",
			    je == json_tokener_continue ? "truncated" :
			    je != json_tokener_success ? json_tokener_error_desc(je) : "not an object");
		goto out;
	}
	for (size_t i = end; i < n; i++) {
		if (js[i] != ' ' && js[i] != '\t' && js[i] != '\n' && js[i] != '\r') {
			rc = fm_err(err, FM_EFORMAT, f->path, 8 + i,
				    "header: bytes after the JSON object");
			goto out;
		}
	}
	rc = parse_entries(f, root, err);
out:
	json_object_put(root);
	return rc;
}

static struct st_file *st_new(const char *label, struct fm_error *err)
{
	struct st_file *f = calloc(1, sizeof(*f));
	if (f && !(f->path = strdup(label ? label : "(memory)"))) {
		free(f);
		f = NULL;
	}
	if (!f)
		fm_err(err, FM_ENOMEM, label, FM_NO_OFFSET, "out of memory");
	return f;
}

struct st_file *st_open_mem(const void *buf, uint64_t size, const char *label,
			    struct fm_error *err)
{
	struct st_file *f = st_new(label, err);
	if (!f)
		return NULL;
	f->map = buf;
	f->size = size;
	if (parse_header(f, err)) {
		st_close(f);
		return NULL;
	}
	return f;
}

struct st_file *st_open(const char *path, struct fm_error *err)
{
	struct st_file *f = st_new(path, err);
	int fd = -1;
	struct stat sb;
	if (!f)
		return NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &sb)) {
		int e = errno;
		fm_err(err, -e, path, FM_NO_OFFSET, "cannot open: %s", strerror(e));
		goto fail;
	}
	if (!S_ISREG(sb.st_mode)) {
		fm_err(err, FM_EFORMAT, path, FM_NO_OFFSET, "not a regular file");
		goto fail;
	}
	f->size = (uint64_t)sb.st_size;
	if (f->size) {
		void *m = mmap(NULL, (size_t)f->size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (m == MAP_FAILED) {
			int e = errno;
			fm_err(err, -e, path, FM_NO_OFFSET, "mmap: %s", strerror(e));
			goto fail;
		}
		f->mapping = m;
		f->map = m;
	}
	close(fd);
	fd = -1;
	if (parse_header(f, err))
		goto fail;
	return f;
fail:
	if (fd >= 0)
		close(fd);
	st_close(f);
	return NULL;
}

void st_close(struct st_file *f)
{
	if (!f)
		return;
	for (uint64_t i = 0; i < f->n; i++)
		free(f->t[i].name);
	free(f->t);
	if (f->mapping)
		munmap(f->mapping, (size_t)f->size);
	free(f->path);
	free(f);
}

const char *st_path(const struct st_file *f)
{
	return f->path;
}

uint64_t st_n_tensors(const struct st_file *f)
{
	return f->n;
}

const struct st_tensor *st_tensor(const struct st_file *f, uint64_t i)
{
	return i < f->n ? &f->t[i] : NULL;
}

int64_t st_find(const struct st_file *f, const char *name)
{
	uint64_t lo = 0, hi = f->n;
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		int c = strcmp(f->t[mid].name, name);
		if (!c)
			return (int64_t)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

const void *st_data(const struct st_file *f, uint64_t i)
{
	return i < f->n ? f->map + f->t[i].offset : NULL;
}
