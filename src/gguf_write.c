/* gguf_write.c: the GGUF writer (always version 3; the layout is in gguf.h).
 *
 * Owns: collecting keys and tensor declarations, writing the header, then
 * streaming tensor data one tensor at a time into a new temporary file
 * "<path>.tmp.XXXXXX" beside the output (padding each tensor to the
 * alignment, as llama.cpp does, the last one included), and renaming it to
 * path only once everything was written and fsync'd (then the directory is
 * fsync'd too). On any failure (ENOSPC, EIO, a fsync error) the temporary
 * file is removed and an existing file at path is left as it was. An output
 * that exists and is not a regular file (a device, FIFO, directory) is
 * refused at open and again before the rename: nothing is ever written
 * through it or renamed over it. Whether the output is one of the caller's
 * inputs is the caller's check (io_output_check). Does not own reading
 * (gguf.c). Spec: ggml's docs/gguf.md (GGUF v3).
 *
 * Only the header is held in memory; tensor data goes from the caller's buffer
 * to the file (through a 1 MiB buffer only when it is small).
 */
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gguf_hash.h"
#include "util.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the GGUF writer assumes a little-endian host"
#endif

#define WBUF_BYTES (1u << 20)
#define SHOW 96

struct gguf_wkv {
	char *key;
	uint32_t type;
	uint8_t *val;     /* the value exactly as the file stores it */
	size_t val_bytes;
};

struct gguf_wtensor {
	char *name;
	uint32_t type, n_dims;
	uint64_t ne[GGUF_MAX_DIMS];
	uint64_t size_bytes;
	uint64_t rel_offset; /* from the start of the data section */
};

struct gguf_writer {
	uint32_t alignment;
	struct gguf_wkv *kv;       /* [cap_kv] */
	uint64_t n_kv, cap_kv;
	struct gguf_wtensor *t;    /* [cap_t] */
	uint64_t n_t, cap_t;
	struct gguf_hash t_hash;   /* tensor name -> index */
	char *path, *tmp_path;     /* set by gguf_writer_open */
	int fd;                    /* -1 when no file is open */
	int failed;                /* the first write error's code, or 0 */
	bool created, finished;    /* tmp_path exists; it was renamed to path */
	uint64_t pos;              /* bytes written so far, buffered ones included */
	uint64_t written;          /* bytes the file has taken (for error offsets) */
	uint64_t data_offset;
	uint64_t next;             /* index of the next tensor to write */
	uint8_t *buf;              /* [WBUF_BYTES] */
	size_t buf_n;
};

struct gguf_writer *gguf_writer_new(uint32_t alignment)
{
	if (alignment == 0 || (alignment & (alignment - 1)))
		return NULL;
	struct gguf_writer *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->alignment = alignment;
	w->fd = -1;
	if (gguf_hash_init(&w->t_hash, 16) < 0) {
		free(w);
		return NULL;
	}
	return w;
}

void gguf_writer_free(struct gguf_writer *w)
{
	if (!w)
		return;
	if (w->fd >= 0)
		close(w->fd);
	if (w->created && !w->finished)
		unlink(w->tmp_path); /* never leave a partial file behind */
	for (uint64_t i = 0; i < w->n_kv; i++) {
		free(w->kv[i].key);
		free(w->kv[i].val);
	}
	for (uint64_t i = 0; i < w->n_t; i++)
		free(w->t[i].name);
	gguf_hash_free(&w->t_hash);
	free(w->kv);
	free(w->t);
	free(w->buf);
	free(w->tmp_path);
	free(w->path);
	free(w);
}

/* ---- keys ---- */

static int check_name(const struct gguf_writer *w, const char *name)
{
	if (!w || !name || w->tmp_path) /* declarations end at gguf_writer_open */
		return FM_EINVAL;
	return strlen(name) > GGUF_MAX_NAME_BYTES ? FM_EINVAL : 0;
}

/* Set key to a value (val, n bytes, malloc'd; owned from here on). */
static int set_owned(struct gguf_writer *w, const char *key, uint32_t type, uint8_t *val,
		     size_t n)
{
	struct gguf_wkv *kv = NULL;
	for (uint64_t i = 0; i < w->n_kv && !kv; i++)
		if (!strcmp(w->kv[i].key, key))
			kv = &w->kv[i];
	if (!kv) {
		if (w->n_kv == w->cap_kv) {
			uint64_t cap = w->cap_kv ? w->cap_kv * 2 : 16;
			struct gguf_wkv *p = realloc(w->kv, cap * sizeof(*p));
			if (!p)
				goto fail;
			w->kv = p;
			w->cap_kv = cap;
		}
		kv = &w->kv[w->n_kv];
		*kv = (struct gguf_wkv){ strdup(key), 0, NULL, 0 };
		if (!kv->key)
			goto fail;
		w->n_kv++;
	}
	free(kv->val); /* a key set twice keeps the last value */
	kv->type = type;
	kv->val = val;
	kv->val_bytes = n;
	return 0;
fail:
	free(val);
	return -ENOMEM;
}

/* Set key to the bytes a (na) followed by b (nb). */
static int set_concat(struct gguf_writer *w, const char *key, uint32_t type, const void *a,
		      size_t na, const void *b, size_t nb)
{
	int rc = check_name(w, key);
	if (rc)
		return rc;
	if (nb > SIZE_MAX - na)
		return FM_ERANGE;
	uint8_t *val = malloc(na + nb ? na + nb : 1);
	if (!val)
		return -ENOMEM;
	memcpy(val, a, na);
	if (nb)
		memcpy(val + na, b, nb);
	return set_owned(w, key, type, val, na + nb);
}

int gguf_writer_set_scalar(struct gguf_writer *w, const char *key, enum gguf_type t,
			   const void *v)
{
	size_t es = gguf_type_size(t);
	if (!es || !v)
		return FM_EINVAL;
	return set_concat(w, key, t, v, es, NULL, 0);
}

int gguf_writer_set_u32(struct gguf_writer *w, const char *key, uint32_t v)
{
	return gguf_writer_set_scalar(w, key, GGUF_TYPE_UINT32, &v);
}

int gguf_writer_set_i32(struct gguf_writer *w, const char *key, int32_t v)
{
	return gguf_writer_set_scalar(w, key, GGUF_TYPE_INT32, &v);
}

int gguf_writer_set_u64(struct gguf_writer *w, const char *key, uint64_t v)
{
	return gguf_writer_set_scalar(w, key, GGUF_TYPE_UINT64, &v);
}

int gguf_writer_set_f32(struct gguf_writer *w, const char *key, float v)
{
	return gguf_writer_set_scalar(w, key, GGUF_TYPE_FLOAT32, &v);
}

int gguf_writer_set_bool(struct gguf_writer *w, const char *key, bool v)
{
	uint8_t b = v ? 1 : 0;
	return gguf_writer_set_scalar(w, key, GGUF_TYPE_BOOL, &b);
}

int gguf_writer_set_str(struct gguf_writer *w, const char *key, const char *v)
{
	if (!v)
		return FM_EINVAL;
	uint64_t len = strlen(v);
	return set_concat(w, key, GGUF_TYPE_STRING, &len, 8, v, len);
}

int gguf_writer_set_arr(struct gguf_writer *w, const char *key, enum gguf_type t,
			const void *data, uint64_t n)
{
	size_t es = gguf_type_size(t);
	if (!es || (n && !data))
		return FM_EINVAL;
	if (n > (SIZE_MAX - 12) / es)
		return FM_ERANGE;
	uint8_t head[12];
	uint32_t t32 = (uint32_t)t;
	memcpy(head, &t32, 4);
	memcpy(head + 4, &n, 8);
	return set_concat(w, key, GGUF_TYPE_ARRAY, head, 12, data, (size_t)n * es);
}

int gguf_writer_set_arr_str(struct gguf_writer *w, const char *key,
			    const char *const *strs, const uint64_t *lens, uint64_t n)
{
	int rc = check_name(w, key);
	if (rc || (n && !strs))
		return rc ? rc : FM_EINVAL;
	uint64_t total = 12, len;
	for (uint64_t i = 0; i < n; i++) {
		if (!strs[i])
			return FM_EINVAL;
		len = lens ? lens[i] : strlen(strs[i]);
		if (!fm_add_ok(total, len, &total) || !fm_add_ok(total, 8, &total))
			return FM_ERANGE;
	}
	if (total > SIZE_MAX)
		return FM_ERANGE;
	uint8_t *val = malloc(total), *p = val + 12;
	if (!val)
		return -ENOMEM;
	uint32_t t32 = GGUF_TYPE_STRING;
	memcpy(val, &t32, 4);
	memcpy(val + 4, &n, 8);
	for (uint64_t i = 0; i < n; i++) {
		len = lens ? lens[i] : strlen(strs[i]);
		memcpy(p, &len, 8);
		if (len)
			memcpy(p + 8, strs[i], len);
		p += 8 + len;
	}
	return set_owned(w, key, GGUF_TYPE_ARRAY, val, total);
}

/* ---- tensors ---- */

/* Byte size of a tensor, with the reader's rules (whole blocks, no overflow). */
static int tensor_size(uint32_t type, const uint64_t ne[GGUF_MAX_DIMS], uint64_t *size)
{
	const struct ggml_type_traits *tr = ggml_type_get(type);
	uint64_t n = 1;
	if (!tr || ne[0] % tr->blck_elems)
		return FM_EINVAL;
	for (int d = 0; d < GGUF_MAX_DIMS; d++)
		if (!fm_mul_ok(n, ne[d], &n) || n > INT64_MAX)
			return FM_ERANGE;
	uint64_t s = ne[0] / tr->blck_elems;
	bool ok = fm_mul_ok(s, tr->blck_bytes, &s);
	for (int d = 1; d < GGUF_MAX_DIMS; d++)
		ok = ok && fm_mul_ok(s, ne[d], &s);
	*size = s;
	return ok ? 0 : FM_ERANGE;
}

int64_t gguf_writer_add_tensor(struct gguf_writer *w, const char *name, enum ggml_type type,
			       uint32_t n_dims, const uint64_t *ne)
{
	struct gguf_wtensor t = { .type = (uint32_t)type, .n_dims = n_dims };
	int rc = check_name(w, name);
	if (rc || n_dims > GGUF_MAX_DIMS || (n_dims && !ne))
		return rc ? rc : FM_EINVAL;
	for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++)
		t.ne[d] = d < n_dims ? ne[d] : 1;
	if ((rc = tensor_size(t.type, t.ne, &t.size_bytes)))
		return rc;
	if (gguf_hash_get(&w->t_hash, name, strlen(name)) >= 0)
		return FM_EINVAL; /* duplicate name */
	if (w->n_t == w->cap_t) {
		uint64_t cap = w->cap_t ? w->cap_t * 2 : 64;
		struct gguf_wtensor *p = realloc(w->t, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		w->t = p;
		w->cap_t = cap;
	}
	uint64_t dup;
	if (!(t.name = strdup(name)))
		return -ENOMEM;
	if (gguf_hash_put(&w->t_hash, t.name, strlen(t.name), w->n_t, &dup) != 0) {
		free(t.name);
		return -ENOMEM;
	}
	w->t[w->n_t] = t;
	return (int64_t)w->n_t++;
}

/* ---- the file ---- */

/* Record the first failure (e: an errno) and describe it; offset: where in
 * the file a write failed, or FM_NO_OFFSET. */
static int write_fail(struct gguf_writer *w, struct fm_error *err, int e, uint64_t offset,
		      const char *what)
{
	char buf[128];
	w->failed = -e;
	if (!w->created)
		return fm_err(err, -e, w->tmp_path, FM_NO_OFFSET, "%s: %s", what,
			      strerror_r(e, buf, sizeof(buf)));
	return fm_err(err, -e, w->tmp_path, offset,
		      "%s: %s (this temporary file is removed; '%s' is left as it was)", what,
		      strerror_r(e, buf, sizeof(buf)), w->path);
}

static int write_all(struct gguf_writer *w, const void *p, size_t n, struct fm_error *err)
{
	const uint8_t *q = p;
	while (n) {
		ssize_t r = write(w->fd, q, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return write_fail(w, err, r < 0 ? errno : EIO, w->written, "write failed");
		q += r;
		n -= (size_t)r;
		w->written += (uint64_t)r;
	}
	return 0;
}

static int w_flush(struct gguf_writer *w, struct fm_error *err)
{
	int rc = write_all(w, w->buf, w->buf_n, err);
	w->buf_n = 0;
	return rc;
}

/* Append n bytes: small pieces gather in the buffer, large ones go straight
 * out (after what is buffered). */
static int w_put(struct gguf_writer *w, const void *p, size_t n, struct fm_error *err)
{
	int rc = 0;
	if (n >= WBUF_BYTES / 2) {
		if (!(rc = w_flush(w, err)))
			rc = write_all(w, p, n, err);
	} else {
		if (n > WBUF_BYTES - w->buf_n)
			rc = w_flush(w, err);
		if (!rc && n) {
			memcpy(w->buf + w->buf_n, p, n);
			w->buf_n += n;
		}
	}
	if (!rc)
		w->pos += n;
	return rc;
}

static int w_u32(struct gguf_writer *w, uint32_t v, struct fm_error *err)
{
	return w_put(w, &v, 4, err);
}

static int w_u64(struct gguf_writer *w, uint64_t v, struct fm_error *err)
{
	return w_put(w, &v, 8, err);
}

static int w_pad(struct gguf_writer *w, struct fm_error *err)
{
	static const uint8_t zeros[4096];
	uint64_t n = (w->alignment - w->pos % w->alignment) % w->alignment;
	int rc = 0;
	while (n && !rc) {
		size_t k = n < sizeof(zeros) ? (size_t)n : sizeof(zeros);
		rc = w_put(w, zeros, k, err);
		n -= k;
	}
	return rc;
}

/* general.alignment is written (as u32) exactly when alignment != 32. */
static int alignment_key(struct gguf_writer *w, const char *path, struct fm_error *err)
{
	for (uint64_t i = 0; i < w->n_kv; i++) {
		const struct gguf_wkv *kv = &w->kv[i];
		uint32_t v;
		if (strcmp(kv->key, "general.alignment"))
			continue;
		if (kv->type == GGUF_TYPE_UINT32) {
			memcpy(&v, kv->val, 4);
			if (v == w->alignment)
				return 0;
		}
		return fm_err(err, FM_EINVAL, path, FM_NO_OFFSET,
			      "general.alignment was set by hand (type %s) and disagrees with "
			      "the writer's alignment %u", gguf_type_name(kv->type), w->alignment);
	}
	if (w->alignment == GGUF_DEFAULT_ALIGNMENT)
		return 0;
	int rc = gguf_writer_set_u32(w, "general.alignment", w->alignment);
	return rc ? fm_err(err, rc, path, FM_NO_OFFSET, "out of memory") : 0;
}

/* Relative offsets: each tensor starts at the next multiple of the alignment. */
static int plan_offsets(struct gguf_writer *w, const char *path, struct fm_error *err)
{
	uint64_t rel = 0, a = w->alignment;
	for (uint64_t i = 0; i < w->n_t; i++) {
		w->t[i].rel_offset = rel;
		if (!fm_add_ok(rel, w->t[i].size_bytes, &rel) || !fm_add_ok(rel, a - 1, &rel))
			return fm_err(err, FM_ERANGE, path, FM_NO_OFFSET,
				      "tensor '%.*s': data section size overflows",
				      SHOW, w->t[i].name);
		rel -= rel % a;
	}
	return 0;
}

static int write_header(struct gguf_writer *w, struct fm_error *err)
{
	int rc = 0;
	rc = rc ? rc : w_put(w, "GGUF", 4, err);
	rc = rc ? rc : w_u32(w, 3, err);
	rc = rc ? rc : w_u64(w, w->n_t, err);
	rc = rc ? rc : w_u64(w, w->n_kv, err);
	for (uint64_t i = 0; i < w->n_kv && !rc; i++) {
		const struct gguf_wkv *kv = &w->kv[i];
		size_t len = strlen(kv->key);
		rc = rc ? rc : w_u64(w, len, err);
		rc = rc ? rc : w_put(w, kv->key, len, err);
		rc = rc ? rc : w_u32(w, kv->type, err);
		rc = rc ? rc : w_put(w, kv->val, kv->val_bytes, err);
	}
	for (uint64_t i = 0; i < w->n_t && !rc; i++) {
		const struct gguf_wtensor *t = &w->t[i];
		size_t len = strlen(t->name);
		rc = rc ? rc : w_u64(w, len, err);
		rc = rc ? rc : w_put(w, t->name, len, err);
		rc = rc ? rc : w_u32(w, t->n_dims, err);
		for (uint32_t d = 0; d < t->n_dims && !rc; d++)
			rc = w_u64(w, t->ne[d], err);
		rc = rc ? rc : w_u32(w, t->type, err);
		rc = rc ? rc : w_u64(w, t->rel_offset, err);
	}
	rc = rc ? rc : w_pad(w, err);
	return rc ? rc : w_flush(w, err);
}

/* An existing path must be a regular file (or a symlink to one, which the
 * rename replaces): never write through or rename over a device, FIFO,
 * directory or socket. */
static int check_target(const char *path, struct fm_error *err)
{
	struct stat st;
	if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
		return fm_err(err, FM_EINVAL, path, FM_NO_OFFSET,
			      "the output exists and is not a regular file (mode %o); refusing to "
			      "replace it", (unsigned)(st.st_mode & S_IFMT));
	return 0;
}

/* Create "<path>.tmp.XXXXXX" (a new file: O_EXCL, and O_NOFOLLOW so a planted
 * symlink is not followed), mode 0644 less the umask. 0 or -errno. */
static int create_tmp(struct gguf_writer *w, size_t n)
{
	static const char digits[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t x = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid() << 20 ^
		     (uint64_t)(uintptr_t)w;
	for (int attempt = 0; attempt < 100; attempt++) {
		memcpy(w->tmp_path, w->path, n);
		memcpy(w->tmp_path + n, ".tmp.", 5);
		for (int i = 0; i < 6; i++) {
			x = x * 6364136223846793005ull + 1442695040888963407ull;
			w->tmp_path[n + 5 + i] = digits[(x >> 33) % (sizeof(digits) - 1)];
		}
		w->tmp_path[n + 11] = 0;
		w->fd = open(w->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
		if (w->fd >= 0 || errno != EEXIST)
			return w->fd >= 0 ? 0 : -errno;
	}
	return -EEXIST;
}

/* After the rename: make the new directory entry durable. Best effort (some
 * file systems refuse fsync on a directory); the data itself was fsync'd. */
static void sync_dir(const char *path)
{
	char *copy = strdup(path);
	if (!copy)
		return;
	int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
	free(copy);
}

int gguf_writer_open(struct gguf_writer *w, const char *path, struct fm_error *err)
{
	if (!w || !path || w->tmp_path)
		return fm_err(err, FM_EINVAL, path, FM_NO_OFFSET,
			      "gguf_writer_open: no writer or path, or opened twice");
	int rc = alignment_key(w, path, err); /* before tmp_path ends the declarations */
	if (rc || (rc = plan_offsets(w, path, err)))
		return rc;
	if ((rc = check_target(path, err)))
		return rc;
	size_t n = strlen(path);
	if (!(w->path = strdup(path)) || !(w->tmp_path = malloc(n + 12)) ||
	    !(w->buf = malloc(WBUF_BYTES)))
		return fm_err(err, -ENOMEM, path, FM_NO_OFFSET, "out of memory");
	if ((rc = create_tmp(w, n)))
		return write_fail(w, err, -rc, FM_NO_OFFSET, "cannot create");
	w->created = true;
	if ((rc = write_header(w, err)))
		return rc;
	w->data_offset = w->pos;
	return 0;
}

/* Why the writer cannot take more data now, or 0. */
static int check_state(struct gguf_writer *w, struct fm_error *err)
{
	if (!w || w->fd < 0)
		return fm_err(err, FM_EINVAL, w ? w->path : NULL, FM_NO_OFFSET,
			      "writer not open (call gguf_writer_open first) or already finished");
	if (w->failed)
		return fm_err(err, w->failed, w->tmp_path, FM_NO_OFFSET,
			      "an earlier write failed; the file is incomplete");
	return 0;
}

int gguf_writer_write_tensor(struct gguf_writer *w, uint64_t idx, const void *data,
			     size_t size, struct fm_error *err)
{
	int rc = check_state(w, err);
	if (rc)
		return rc;
	if (idx != w->next || idx >= w->n_t)
		return fm_err(err, FM_EINVAL, w->path, FM_NO_OFFSET,
			      "tensor %llu written out of order: expected tensor %llu of %llu",
			      (unsigned long long)idx, (unsigned long long)w->next,
			      (unsigned long long)w->n_t);
	const struct gguf_wtensor *t = &w->t[idx];
	if (size != t->size_bytes || (size && !data))
		return fm_err(err, FM_EINVAL, w->path, FM_NO_OFFSET,
			      "tensor '%.*s': %zu bytes given, %llu declared", SHOW, t->name, size,
			      (unsigned long long)t->size_bytes);
	if ((rc = w_put(w, data, size, err)) || (rc = w_pad(w, err)))
		return rc;
	w->next++;
	return 0;
}

int gguf_writer_finish(struct gguf_writer *w, struct fm_error *err)
{
	int rc = check_state(w, err);
	if (rc)
		return rc;
	if (w->next != w->n_t)
		return fm_err(err, FM_EINVAL, w->path, FM_NO_OFFSET,
			      "only %llu of %llu tensors written", (unsigned long long)w->next,
			      (unsigned long long)w->n_t);
	if ((rc = w_flush(w, err)))
		return rc;
	if (fsync(w->fd) < 0)
		return write_fail(w, err, errno, FM_NO_OFFSET, "fsync failed");
	rc = close(w->fd);
	w->fd = -1;
	if (rc < 0)
		return write_fail(w, err, errno, FM_NO_OFFSET, "close failed");
	if ((rc = check_target(w->path, err))) {
		w->failed = rc;
		return rc;
	}
	if (rename(w->tmp_path, w->path) < 0)
		return write_fail(w, err, errno, FM_NO_OFFSET, "cannot rename to the final name");
	w->finished = true;
	sync_dir(w->path);
	return 0;
}
