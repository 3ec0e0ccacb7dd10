/* gguf.c: the GGUF reader (versions 3 and 2; the layout is in gguf.h).
 *
 * Owns: mapping a file read-only, parsing its header through one bounded
 * cursor, building the key and tensor tables.
 * Does not own: the getters (gguf_get.c), writing (gguf_write.c), the name
 * table (gguf_hash.c), or anything about models. Spec: ggml's docs/gguf.md (GGUF v3).
 *
 * Every length, count and offset read from the file is checked against the
 * bytes left before it is used, and every size computation is overflow-
 * checked, so no input can make the parser read outside the mapping.
 * Nested arrays (array of arrays) are rejected as FM_EUNSUPPORTED; tensors
 * whose data overlap, and keys or names holding a NUL byte, as FM_EFORMAT.
 */
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf_hash.h"
#include "gguf_internal.h"
#include "util.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the GGUF reader assumes a little-endian host"
#endif

#define GGUF_MAGIC 0x46554747u            /* "GGUF" read as a little-endian u32 */
#define KV_MIN_BYTES 13     /* u64 key length + u32 type + a 1-byte value */
#define TENSOR_MIN_BYTES 24 /* u64 name length + u32 n_dims + u32 type + u64 offset */

/* The bounded cursor: every read goes through cur_need first. */
struct cur {
	const uint8_t *base;
	uint64_t pos, end;
	const char *path;
	struct fm_error *err;
};

static const char *const type_names[GGUF_TYPE_COUNT] = {
	"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array",
	"u64", "i64", "f64",
};
static const uint8_t type_sizes[GGUF_TYPE_COUNT] = { 1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8 };

size_t gguf_type_size(enum gguf_type t)
{
	return (unsigned)t < GGUF_TYPE_COUNT ? type_sizes[t] : 0;
}

const char *gguf_type_name(enum gguf_type t)
{
	return (unsigned)t < GGUF_TYPE_COUNT ? type_names[t] : "?";
}

/* ---- the cursor ---- */

static int cur_need(struct cur *c, uint64_t n, const char *what)
{
	if (n <= c->end - c->pos)
		return 0;
	return fm_err(c->err, FM_EFORMAT, c->path, c->pos,
		      "truncated: %s needs %llu bytes, only %llu left (file size %llu)", what,
		      (unsigned long long)n, (unsigned long long)(c->end - c->pos),
		      (unsigned long long)c->end);
}

static int cur_u32(struct cur *c, uint32_t *v, const char *what)
{
	int rc = cur_need(c, 4, what);
	if (rc)
		return rc;
	memcpy(v, c->base + c->pos, 4);
	c->pos += 4;
	return 0;
}

static int cur_u64(struct cur *c, uint64_t *v, const char *what)
{
	int rc = cur_need(c, 8, what);
	if (rc)
		return rc;
	memcpy(v, c->base + c->pos, 8);
	c->pos += 8;
	return 0;
}

/* A GGUF string: u64 length + bytes. max_len 0 = only the bytes left bound it. */
static int cur_str(struct cur *c, struct gguf_str *s, const char *what, uint64_t max_len)
{
	uint64_t len;
	int rc = cur_u64(c, &len, what);
	if (rc)
		return rc;
	if (max_len && len > max_len)
		return fm_err(c->err, FM_EFORMAT, c->path, c->pos - 8,
			      "%s: string length %llu exceeds the limit of %llu bytes", what,
			      (unsigned long long)len, (unsigned long long)max_len);
	if (len > c->end - c->pos)
		return fm_err(c->err, FM_EFORMAT, c->path, c->pos - 8,
			      "%s: string length %llu exceeds the %llu bytes left: a corrupt "
			      "length or a file truncated at %llu bytes", what,
			      (unsigned long long)len, (unsigned long long)(c->end - c->pos),
			      (unsigned long long)c->end);
	s->len = len;
	s->ptr = (const char *)(c->base + c->pos);
	c->pos += len;
	return 0;
}

/* A key or tensor name: a string within max_len and without NUL bytes (a NUL
 * would cut the C-string copy the lookups and messages use). */
static int cur_name(struct cur *c, struct gguf_str *s, const char *what)
{
	int rc = cur_str(c, s, what, GGUF_MAX_NAME_BYTES);
	if (rc)
		return rc;
	const char *nul = s->len ? memchr(s->ptr, 0, s->len) : NULL;
	if (nul)
		return fm_err(c->err, FM_EFORMAT, c->path, c->pos - s->len - 8,
			      "%s: name '%.*s' has a NUL byte at position %llu", what,
			      gguf_show_len(s->len), s->ptr, (unsigned long long)(nul - s->ptr));
	return 0;
}

/* ---- header ---- */

static int check_version(struct cur *c, uint32_t v)
{
	if (v == 1)
		return fm_err(c->err, FM_EFORMAT, c->path, 4,
			      "GGUF version 1 is not supported (it used 32-bit counts; "
			      "convert the model again)");
	if (v != 2 && v != 3 && v > 0xffff && (v & 0xffff) == 0)
		return fm_err(c->err, FM_EFORMAT, c->path, 4,
			      "version 0x%08x looks byte-swapped: big-endian GGUF is not supported",
			      v);
	if (v != 2 && v != 3)
		return fm_err(c->err, FM_EFORMAT, c->path, 4,
			      "unsupported GGUF version %u (expected 3 or 2)", v);
	return 0;
}

/* n_kv and n_tensors must fit in what is left, so tables sized by them are
 * bounded by the file size. */
static int check_counts(struct cur *c, uint64_t n_tensors, uint64_t n_kv)
{
	uint64_t left = c->end - c->pos;
	unsigned long long size = (unsigned long long)c->end;
	if (n_tensors > left / TENSOR_MIN_BYTES)
		return fm_err(c->err, FM_EFORMAT, c->path, 8,
			      "n_tensors %llu cannot fit in the %llu bytes left (a tensor info "
			      "takes >= %d bytes): a corrupt count or a file truncated at %llu "
			      "bytes", (unsigned long long)n_tensors, (unsigned long long)left,
			      TENSOR_MIN_BYTES, size);
	if (n_kv > left / KV_MIN_BYTES)
		return fm_err(c->err, FM_EFORMAT, c->path, 16,
			      "n_kv %llu cannot fit in the %llu bytes left (a key/value takes "
			      ">= %d bytes): a corrupt count or a file truncated at %llu bytes",
			      (unsigned long long)n_kv, (unsigned long long)left, KV_MIN_BYTES,
			      size);
	/* both products are <= left here: no overflow */
	if (n_tensors * TENSOR_MIN_BYTES + n_kv * KV_MIN_BYTES > left)
		return fm_err(c->err, FM_EFORMAT, c->path, 8,
			      "n_tensors %llu and n_kv %llu cannot both fit in the %llu bytes "
			      "left: corrupt counts or a file truncated at %llu bytes",
			      (unsigned long long)n_tensors, (unsigned long long)n_kv,
			      (unsigned long long)left, size);
	return 0;
}

static int parse_header(struct cur *c, struct gguf_file *f)
{
	uint32_t magic;
	int rc = cur_u32(c, &magic, "magic");
	if (rc)
		return rc;
	if (magic != GGUF_MAGIC)
		return fm_err(c->err, FM_EFORMAT, c->path, 0,
			      "bad magic 0x%08x (expected 0x%08x, \"GGUF\"): not a GGUF file",
			      magic, GGUF_MAGIC);
	if ((rc = cur_u32(c, &f->version, "version")) || (rc = check_version(c, f->version)))
		return rc;
	if ((rc = cur_u64(c, &f->n_tensors, "n_tensors")) || (rc = cur_u64(c, &f->n_kv, "n_kv")))
		return rc;
	return check_counts(c, f->n_tensors, f->n_kv);
}

/* ---- key/value pairs ---- */

static int parse_array(struct cur *c, struct gguf_file *f, struct gguf_kv *kv, const char *what)
{
	int rc;
	if ((rc = cur_u32(c, &kv->arr_type, what)) || (rc = cur_u64(c, &kv->arr_n, what)))
		return rc;
	uint64_t pos = c->pos - 12, left = c->end - c->pos, n = kv->arr_n;
	if (kv->arr_type == GGUF_TYPE_ARRAY)
		return fm_err(c->err, FM_EUNSUPPORTED, c->path, pos,
			      "%s: nested arrays (array of arrays) are not supported", what);
	size_t es = kv->arr_type == GGUF_TYPE_STRING ? 8 : gguf_type_size(kv->arr_type);
	if (!es)
		return fm_err(c->err, FM_EFORMAT, c->path, pos,
			      "%s: unknown array element type %u", what, kv->arr_type);
	if (n > left / es) /* for strings: each takes at least its u64 length */
		return fm_err(c->err, FM_EFORMAT, c->path, pos + 4,
			      "%s: array count %llu of %s exceeds the %llu bytes left: a corrupt "
			      "count or a file truncated at %llu bytes", what,
			      (unsigned long long)n, gguf_type_name(kv->arr_type),
			      (unsigned long long)left, (unsigned long long)c->end);
	kv->val = c->base + c->pos;
	if (kv->arr_type != GGUF_TYPE_STRING) {
		c->pos += n * es;
		return 0;
	}
	for (uint64_t j = 0; j < n; j++) {
		struct gguf_str s;
		if ((rc = cur_str(c, &s, what, 0)))
			return rc;
	}
	f->n_strs += n;
	return 0;
}

static int parse_kv(struct cur *c, struct gguf_file *f, uint64_t i)
{
	struct gguf_kv *kv = &f->kv[i];
	char what[GGUF_SHOW_BYTES + 64];
	kv->pos = c->pos;
	snprintf(what, sizeof(what), "key %llu", (unsigned long long)i);
	int rc = cur_name(c, &kv->key, what);
	if (rc)
		return rc;
	snprintf(what, sizeof(what), "key '%.*s'", gguf_show_len(kv->key.len), kv->key.ptr);
	if ((rc = cur_u32(c, &kv->type, what)))
		return rc;
	if (kv->type == GGUF_TYPE_ARRAY)
		return parse_array(c, f, kv, what);
	if (kv->type == GGUF_TYPE_STRING) {
		struct gguf_str s;
		if ((rc = cur_str(c, &s, what, 0)))
			return rc;
		kv->val = (const uint8_t *)s.ptr;
		kv->str_len = s.len;
		return 0;
	}
	size_t es = gguf_type_size(kv->type);
	if (!es)
		return fm_err(c->err, FM_EFORMAT, c->path, c->pos - 4,
			      "%s: unknown value type %u", what, kv->type);
	if ((rc = cur_need(c, es, what)))
		return rc;
	kv->val = c->base + c->pos;
	c->pos += es;
	return 0;
}

static int index_keys(struct gguf_file *f, struct fm_error *err)
{
	if (gguf_hash_init(&f->kv_hash, f->n_kv) < 0)
		return fm_err(err, -ENOMEM, f->path, FM_NO_OFFSET, "out of memory for the key table");
	for (uint64_t i = 0; i < f->n_kv; i++) {
		const struct gguf_kv *kv = &f->kv[i];
		uint64_t dup = 0;
		int rc = gguf_hash_put(&f->kv_hash, kv->key.ptr, kv->key.len, i, &dup);
		if (rc < 0)
			return fm_err(err, rc, f->path, FM_NO_OFFSET, "out of memory for the key table");
		if (rc > 0)
			return fm_err(err, FM_EFORMAT, f->path, kv->pos,
				      "duplicate key '%.*s' (key/values %llu and %llu)",
				      gguf_show_len(kv->key.len), kv->key.ptr,
				      (unsigned long long)dup, (unsigned long long)i);
	}
	return 0;
}

static int read_alignment(struct gguf_file *f, struct fm_error *err)
{
	uint32_t a = GGUF_DEFAULT_ALIGNMENT;
	int64_t i = gguf_find_key(f, "general.alignment");
	if (i >= 0) {
		int rc = gguf_get_u32(f, "general.alignment", &a, err);
		if (rc)
			return rc;
		if (a == 0 || (a & (a - 1)))
			return fm_err(err, FM_EFORMAT, f->path, f->kv[i].pos,
				      "general.alignment %u is not a non-zero power of two", a);
	}
	f->alignment = a;
	return 0;
}

/* ---- tensor infos ---- */

/* Type, element count and byte size of a tensor whose info is at pos. */
static int check_shape(struct cur *c, struct gguf_tensor_info *t, uint64_t pos)
{
	const struct ggml_type_traits *tr = ggml_type_get(t->type);
	int nl = gguf_show_len(t->name.len);
	if (!tr)
		return fm_err(c->err, FM_EFORMAT, c->path, pos,
			      "tensor '%.*s': unknown ggml type %u", nl, t->name.ptr, t->type);
	uint64_t n = 1;
	for (int d = 0; d < GGUF_MAX_DIMS; d++)
		if (!fm_mul_ok(n, t->ne[d], &n) || n > INT64_MAX)
			return fm_err(c->err, FM_EFORMAT, c->path, pos,
				      "tensor '%.*s': element count overflows (ne = [%llu, %llu, "
				      "%llu, %llu])", nl, t->name.ptr,
				      (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
				      (unsigned long long)t->ne[2], (unsigned long long)t->ne[3]);
	if (t->ne[0] % tr->blck_elems)
		return fm_err(c->err, FM_EFORMAT, c->path, pos,
			      "tensor '%.*s': ne[0] = %llu is not a multiple of the %s block "
			      "size %u", nl, t->name.ptr, (unsigned long long)t->ne[0], tr->name,
			      tr->blck_elems);
	uint64_t size = t->ne[0] / tr->blck_elems;
	bool ok = fm_mul_ok(size, tr->blck_bytes, &size);
	for (int d = 1; d < GGUF_MAX_DIMS; d++)
		ok = ok && fm_mul_ok(size, t->ne[d], &size);
	if (!ok)
		return fm_err(c->err, FM_EFORMAT, c->path, pos,
			      "tensor '%.*s': byte size overflows", nl, t->name.ptr);
	t->size_bytes = size;
	return 0;
}

static int parse_tensor_info(struct cur *c, struct gguf_file *f, uint64_t i)
{
	struct gguf_tensor_info *t = &f->ti[i];
	char what[GGUF_SHOW_BYTES + 64];
	f->ti_pos[i] = c->pos;
	snprintf(what, sizeof(what), "tensor %llu name", (unsigned long long)i);
	int rc = cur_name(c, &t->name, what);
	if (rc)
		return rc;
	snprintf(what, sizeof(what), "tensor '%.*s'", gguf_show_len(t->name.len), t->name.ptr);
	if ((rc = cur_u32(c, &t->n_dims, what)))
		return rc;
	if (t->n_dims > GGUF_MAX_DIMS)
		return fm_err(c->err, FM_EFORMAT, c->path, c->pos - 4,
			      "%s: n_dims %u exceeds the maximum of %d", what, t->n_dims,
			      GGUF_MAX_DIMS);
	for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
		t->ne[d] = 1;
		if (d < t->n_dims && (rc = cur_u64(c, &t->ne[d], what)))
			return rc;
	}
	if ((rc = cur_u32(c, &t->type, what)) || (rc = cur_u64(c, &t->offset, what)))
		return rc;
	return check_shape(c, t, f->ti_pos[i]);
}

/* Turn each relative offset into an absolute one, checking alignment and
 * that the data lies inside the file. header_end: end of the tensor infos. */
static int place_tensors(struct gguf_file *f, uint64_t header_end, struct fm_error *err)
{
	uint64_t a = f->alignment;
	f->data_offset = header_end + (a - header_end % a) % a; /* header_end <= size */
	for (uint64_t i = 0; i < f->n_tensors; i++) {
		struct gguf_tensor_info *t = &f->ti[i];
		int nl = gguf_show_len(t->name.len);
		uint64_t rel = t->offset, abs, end;
		if (rel % a)
			return fm_err(err, FM_EFORMAT, f->path, f->ti_pos[i],
				      "tensor '%.*s': offset %llu is not aligned to %llu", nl,
				      t->name.ptr, (unsigned long long)rel, (unsigned long long)a);
		if (!fm_add_ok(f->data_offset, rel, &abs) || !fm_add_ok(abs, t->size_bytes, &end))
			return fm_err(err, FM_EFORMAT, f->path, f->ti_pos[i],
				      "tensor '%.*s': offset %llu + size %llu overflows", nl,
				      t->name.ptr, (unsigned long long)rel,
				      (unsigned long long)t->size_bytes);
		if (end > f->size)
			return fm_err(err, FM_EFORMAT, f->path, f->ti_pos[i],
				      "tensor '%.*s': data [%llu, %llu) ends past file size %llu "
				      "(offset %llu in the data section at %llu)", nl, t->name.ptr,
				      (unsigned long long)abs, (unsigned long long)end,
				      (unsigned long long)f->size, (unsigned long long)rel,
				      (unsigned long long)f->data_offset);
		t->offset = abs;
	}
	return 0;
}

/* A tensor's data bytes [begin, end) in the file, for the overlap check. */
struct span {
	uint64_t begin, end, i;
};

static int cmp_span(const void *a, const void *b)
{
	const struct span *x = a, *y = b;
	return x->begin != y->begin ? (x->begin < y->begin ? -1 : 1)
				    : (x->end != y->end ? (x->end < y->end ? -1 : 1) : 0);
}

/* No two tensors may share data bytes (a writer bug or a crafted file: one
 * tensor's weights would be read as another's). Empty tensors hold no bytes. */
static int check_overlap(struct gguf_file *f, struct fm_error *err)
{
	if (f->n_tensors < 2)
		return 0;
	struct span *s = malloc(f->n_tensors * sizeof(*s)); /* n_tensors <= size / 24 */
	if (!s)
		return fm_err(err, -ENOMEM, f->path, FM_NO_OFFSET,
			      "out of memory for the tensor table");
	uint64_t n = 0;
	for (uint64_t i = 0; i < f->n_tensors; i++) {
		const struct gguf_tensor_info *t = &f->ti[i];
		if (t->size_bytes) /* offset + size was checked against the file size */
			s[n++] = (struct span){ t->offset, t->offset + t->size_bytes, i };
	}
	qsort(s, n, sizeof(*s), cmp_span);
	int rc = 0;
	for (uint64_t j = 1, last = 0; j < n && !rc; j++) {
		if (s[j].begin < s[last].end) {
			const struct gguf_tensor_info *a = &f->ti[s[last].i], *b = &f->ti[s[j].i];
			rc = fm_err(err, FM_EFORMAT, f->path, f->ti_pos[s[j].i],
				    "tensor '%.*s': data [%llu, %llu) overlaps tensor '%.*s' "
				    "[%llu, %llu)", gguf_show_len(b->name.len), b->name.ptr,
				    (unsigned long long)s[j].begin, (unsigned long long)s[j].end,
				    gguf_show_len(a->name.len), a->name.ptr,
				    (unsigned long long)s[last].begin, (unsigned long long)s[last].end);
		}
		if (s[j].end > s[last].end)
			last = j;
	}
	free(s);
	return rc;
}

static int index_tensors(struct gguf_file *f, struct fm_error *err)
{
	if (gguf_hash_init(&f->ti_hash, f->n_tensors) < 0)
		return fm_err(err, -ENOMEM, f->path, FM_NO_OFFSET, "out of memory for the tensor table");
	for (uint64_t i = 0; i < f->n_tensors; i++) {
		const struct gguf_tensor_info *t = &f->ti[i];
		uint64_t dup = 0;
		int rc = gguf_hash_put(&f->ti_hash, t->name.ptr, t->name.len, i, &dup);
		if (rc < 0)
			return fm_err(err, rc, f->path, FM_NO_OFFSET,
				      "out of memory for the tensor table");
		if (rc > 0)
			return fm_err(err, FM_EFORMAT, f->path, f->ti_pos[i],
				      "duplicate tensor name '%.*s' (tensors %llu and %llu)",
				      gguf_show_len(t->name.len), t->name.ptr,
				      (unsigned long long)dup, (unsigned long long)i);
	}
	return 0;
}

/* ---- tables built after parsing ---- */

static char *copy_z(char *dst, struct gguf_str s)
{
	if (s.len)
		memcpy(dst, s.ptr, s.len);
	dst[s.len] = '\0';
	return dst + s.len + 1;
}

/* One block holds every NUL-terminated key and tensor name; one table holds
 * the elements of every string array (already validated by parse_array). */
static int build_names(struct gguf_file *f, struct fm_error *err)
{
	uint64_t total = 1;
	for (uint64_t i = 0; i < f->n_kv; i++)
		total += f->kv[i].key.len + 1;
	for (uint64_t i = 0; i < f->n_tensors; i++)
		total += f->ti[i].name.len + 1; /* names lie in the file: no overflow */
	f->names = malloc(total);
	f->str_tab = calloc(f->n_strs ? f->n_strs : 1, sizeof(*f->str_tab));
	if (!f->names || !f->str_tab)
		return fm_err(err, -ENOMEM, f->path, FM_NO_OFFSET, "out of memory for the names");
	char *p = f->names;
	struct gguf_str *s = f->str_tab;
	for (uint64_t i = 0; i < f->n_kv; i++) {
		struct gguf_kv *kv = &f->kv[i];
		kv->key_z = p;
		p = copy_z(p, kv->key);
		if (kv->type != GGUF_TYPE_ARRAY || kv->arr_type != GGUF_TYPE_STRING)
			continue;
		kv->strs = s;
		for (const uint8_t *q = kv->val; s < kv->strs + kv->arr_n; s++) {
			memcpy(&s->len, q, 8);
			s->ptr = (const char *)q + 8;
			q += 8 + s->len;
		}
	}
	for (uint64_t i = 0; i < f->n_tensors; i++) {
		f->ti[i].name_z = p;
		p = copy_z(p, f->ti[i].name);
	}
	return 0;
}

static int alloc_tables(struct gguf_file *f, struct fm_error *err)
{
	/* n_kv and n_tensors were checked against the file size. */
	f->kv = calloc(f->n_kv ? f->n_kv : 1, sizeof(*f->kv));
	f->ti = calloc(f->n_tensors ? f->n_tensors : 1, sizeof(*f->ti));
	f->ti_pos = calloc(f->n_tensors ? f->n_tensors : 1, sizeof(*f->ti_pos));
	if (!f->kv || !f->ti || !f->ti_pos)
		return fm_err(err, -ENOMEM, f->path, FM_NO_OFFSET,
			      "out of memory for %llu keys and %llu tensors",
			      (unsigned long long)f->n_kv, (unsigned long long)f->n_tensors);
	return 0;
}

static int parse(struct gguf_file *f, struct fm_error *err)
{
	struct cur c = { f->map, 0, f->size, f->path, err };
	int rc;
	if ((rc = parse_header(&c, f)) || (rc = alloc_tables(f, err)))
		return rc;
	for (uint64_t i = 0; i < f->n_kv; i++)
		if ((rc = parse_kv(&c, f, i)))
			return rc;
	if ((rc = index_keys(f, err)) || (rc = read_alignment(f, err)))
		return rc;
	for (uint64_t i = 0; i < f->n_tensors; i++)
		if ((rc = parse_tensor_info(&c, f, i)))
			return rc;
	if ((rc = place_tensors(f, c.pos, err)) || (rc = build_names(f, err)))
		return rc;
	if ((rc = index_tensors(f, err)))
		return rc;
	return check_overlap(f, err);
}

/* ---- open and close ---- */

static int os_err(struct fm_error *err, const char *path, const char *what, int e)
{
	char buf[128];
	return fm_err(err, -e, path, FM_NO_OFFSET, "%s: %s", what, strerror_r(e, buf, sizeof(buf)));
}

static int map_file(struct gguf_file *f, struct fm_error *err)
{
	struct stat st;
	int rc = 0, fd = open(f->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return os_err(err, f->path, "cannot open", errno);
	if (fstat(fd, &st) < 0) {
		rc = os_err(err, f->path, "cannot stat", errno);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = fm_err(err, FM_EINVAL, f->path, FM_NO_OFFSET, "not a regular file");
		goto out;
	}
	if ((uint64_t)st.st_size > SIZE_MAX) {
		rc = fm_err(err, FM_ERANGE, f->path, FM_NO_OFFSET, "file too large to map");
		goto out;
	}
	f->size = (uint64_t)st.st_size;
	if (f->size) {
		void *p = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (p == MAP_FAILED) {
			rc = os_err(err, f->path, "cannot mmap", errno);
			goto out;
		}
		f->map = p;
	}
out:
	close(fd);
	return rc;
}

struct gguf_file *gguf_open(const char *path, struct fm_error *err)
{
	if (!path) {
		fm_err(err, FM_EINVAL, NULL, FM_NO_OFFSET, "gguf_open: path is NULL");
		return NULL;
	}
	struct gguf_file *f = calloc(1, sizeof(*f));
	if (!f || !(f->path = strdup(path))) {
		fm_err(err, -ENOMEM, path, FM_NO_OFFSET, "out of memory");
		goto fail;
	}
	if (map_file(f, err) < 0 || parse(f, err) < 0)
		goto fail;
	return f;
fail:
	gguf_close(f);
	return NULL;
}

void gguf_close(struct gguf_file *f)
{
	if (!f)
		return;
	gguf_hash_free(&f->ti_hash);
	gguf_hash_free(&f->kv_hash);
	free(f->str_tab);
	free(f->names);
	free(f->ti_pos);
	free(f->ti);
	free(f->kv);
	if (f->map)
		munmap((void *)f->map, f->size);
	free(f->path);
	free(f);
}
