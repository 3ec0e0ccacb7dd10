/* test_gguf_mutate.c: the mutation suite (issue 14). From a valid tiny
 * qwen3moe model (fm_gen_tiny) it writes malformed GGUFs class by class and
 * opens each through the public API (fm_model_open) in a child process, so a
 * crash, a sanitizer report, a leak or a stall is that case's failure and the
 * suite goes on. A refused file must give exactly one clear error: NULL, a
 * negative code, nothing printed, and a one-line message naming the file and
 * what and where (each case names the substring: the key, the tensor, or a
 * word of the diagnosis; parser messages also carry "at offset N").
 *
 * Classes (the prefix of each case name):
 *   header     magic, version, n_tensors/n_kv absurd, overflowing or off by one
 *   truncated  a cut at every structural boundary, then a sweep of cut offsets
 *   value      every metadata value type: cut, wrong or unknown type id, string
 *              and array lengths past the file, nested arrays, bad element types
 *   key        every key flashmoe reads: missing, wrong type, out of range,
 *              inconsistent with the others, duplicated
 *   tensor     tensor infos: names, n_dims, dims, types, offsets, overlaps
 *   shape      what the model binds: wrong shapes, missing, extra and unused
 *              tensors, overflowing hyperparameters, large head_dim (timed)
 * One line per case: `ok    name: message` or `FAIL  name [owner]: why`, where
 * owner is the part whose check is missing (gguf for the parser, model.c, ...).
 * A case that must load also runs two tokens (logits finite) and prints both
 * times. Cases run 48 to a child (LeakSanitizer's exit check costs ~20 ms a
 * child); a batch that crashes, stalls, leaks or prints is run again one case
 * per child to name the culprit. Files go to a temporary directory and are
 * removed (KEEP=1 keeps the failing ones). ~670 cases: 3 s in the ASan build.
 */
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "flashmoe.h"
#include "ggml_type.h"
#include "gguf.h"
#include "testutil.h"
#include "util.h"

#define MAX_KV 64
#define MAX_TI 96
#define MAX_MEM 64
#define MAX_MARKS 512
#define CASE_LIMIT_S 8          /* a case still running after this is a stall */
#define SLOW_MS 5000.0          /* a file that must load may take this long */
#define WRITE_LIMIT (1u << 28)  /* tensor data is written only below this */
#define ALL UINT64_MAX
#define BATCH 48               /* cases run by one child */

/* ---- an editable GGUF: the base file's parts, written again per case ---- */

struct mkv {
	const char *key;
	size_t key_len;
	uint64_t key_len_field; /* written instead of key_len when non-zero */
	uint32_t type;
	const uint8_t *val;     /* [val_len] the bytes after the type id */
	size_t val_len;
};

struct mti {
	const char *name;
	size_t name_len;
	uint64_t name_len_field; /* written instead of name_len when non-zero */
	uint32_t n_dims;
	uint64_t ne[8];
	uint32_t type;
	uint64_t off;           /* relative to the data section */
	bool fixed_off;         /* set by the case, not by layout() */
	const uint8_t *data;    /* [size] bytes at off; NULL: zeros */
	uint64_t size;
};

struct mfile {
	uint32_t magic, version;
	bool lie_counts;        /* write n_tensors and n_kv below, not the real counts */
	uint64_t n_tensors, n_kv;
	int nkv, nti;
	struct mkv kv[MAX_KV];
	struct mti ti[MAX_TI];
	uint32_t align;         /* layout alignment (general.alignment may say otherwise) */
	uint64_t cut;           /* keep only this many bytes; ALL keeps the file */
	void *mem[MAX_MEM];     /* what this case allocated */
	int n_mem;
};

struct buf {
	uint8_t *p;
	size_t n, cap;
};

struct marks {
	int n;
	uint64_t at[MAX_MARKS];
	char what[MAX_MARKS][96];
};

/* What a child reports through shared memory. */
struct result {
	int done, opened, code, eval_rc;
	double ms, eval_ms;
	char msg[512];
	uint64_t cur, n_refused, n_bad; /* the sweep */
	char bad[640];
};

static struct mfile base, work;
static struct result *R;
static int n_base_tokens;

static void die(const char *what)
{
	fprintf(stderr, "test_gguf_mutate: %s\n", what);
	exit(1);
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static uint64_t align_up(uint64_t x, uint64_t a)
{
	return (x + a - 1) / a * a;
}

static void *mf_keep(struct mfile *m, void *p)
{
	if (!p || m->n_mem == MAX_MEM)
		die("out of memory (or MAX_MEM)");
	m->mem[m->n_mem++] = p;
	return p;
}

static void *mf_dup(struct mfile *m, const void *p, size_t n)
{
	void *q = mf_keep(m, malloc(n ? n : 1));
	if (n)
		memcpy(q, p, n);
	return q;
}

static void mf_release(struct mfile *m)
{
	for (int i = 0; i < m->n_mem; i++)
		free(m->mem[i]);
	m->n_mem = 0;
}

/* A fresh copy of the base file; it shares the base's bytes. */
static struct mfile *fresh(void)
{
	mf_release(&work);
	work = base;
	work.n_mem = 0;
	return &work;
}

/* Bytes of a tensor's data; UINT64_MAX when unknown, not whole blocks or overflowing. */
static uint64_t tsize(uint32_t type, uint32_t n_dims, const uint64_t *ne)
{
	const struct ggml_type_traits *tr = ggml_type_get(type);
	if (!tr || n_dims > 4 || ne[0] % tr->blck_elems)
		return UINT64_MAX;
	uint64_t s = ne[0] / tr->blck_elems;
	bool ok = fm_mul_ok(s, tr->blck_bytes, &s);
	for (uint32_t d = 1; d < n_dims; d++)
		ok = ok && fm_mul_ok(s, ne[d], &s);
	return ok ? s : UINT64_MAX;
}

/* ---- reading the base file (valid: written by fm_gen_tiny) ---- */

static size_t value_len(const uint8_t *p, uint32_t type)
{
	uint64_t n;
	if (type == GGUF_TYPE_STRING) {
		memcpy(&n, p, 8);
		return 8 + n;
	}
	if (type != GGUF_TYPE_ARRAY)
		return gguf_type_size(type);
	uint32_t et;
	memcpy(&et, p, 4);
	memcpy(&n, p + 4, 8);
	size_t len = 12;
	for (uint64_t i = 0; i < n; i++)
		len += et == GGUF_TYPE_STRING ? value_len(p + len, et) : gguf_type_size(et);
	return len;
}

static void mf_parse(struct mfile *m, const uint8_t *p, size_t n)
{
	size_t pos = 0;
	uint64_t nt, nk, len;
#define RD(x) (memcpy(&(x), p + pos, sizeof(x)), pos += sizeof(x))
	RD(m->magic);
	RD(m->version);
	RD(nt);
	RD(nk);
	if (nt > MAX_TI || nk > MAX_KV)
		die("base file too large");
	m->nti = (int)nt;
	m->nkv = (int)nk;
	m->align = GGUF_DEFAULT_ALIGNMENT;
	for (int i = 0; i < m->nkv && pos < n; i++) {
		struct mkv *kv = &m->kv[i];
		RD(len);
		kv->key = (const char *)p + pos;
		kv->key_len = len;
		pos += len;
		RD(kv->type);
		kv->val = p + pos;
		kv->val_len = value_len(p + pos, kv->type);
		if (len == 17 && !memcmp(kv->key, "general.alignment", 17))
			memcpy(&m->align, kv->val, 4);
		pos += kv->val_len;
	}
	for (int i = 0; i < m->nti && pos < n; i++) {
		struct mti *t = &m->ti[i];
		RD(len);
		t->name = (const char *)p + pos;
		t->name_len = len;
		pos += len;
		RD(t->n_dims);
		for (uint32_t d = 0; d < 4; d++) {
			t->ne[d] = 1;
			if (d < t->n_dims)
				RD(t->ne[d]);
		}
		RD(t->type);
		RD(t->off);
	}
#undef RD
	uint64_t data = align_up(pos, m->align);
	for (int i = 0; i < m->nti; i++) {
		struct mti *t = &m->ti[i];
		t->size = tsize(t->type, t->n_dims, t->ne);
		if (data + t->off + t->size > n)
			die("base file: tensor outside the file");
		t->data = p + data + t->off;
	}
	m->cut = ALL;
}

/* ---- editing ---- */

static int kv_find(const struct mfile *m, const char *key)
{
	for (int i = 0; i < m->nkv; i++)
		if (m->kv[i].key_len == strlen(key) && !memcmp(m->kv[i].key, key, m->kv[i].key_len))
			return i;
	return -1;
}

static struct mkv *kv_get(struct mfile *m, const char *key)
{
	int i = kv_find(m, key);
	if (i < 0) {
		fprintf(stderr, "no key %s in the base file\n", key);
		exit(1);
	}
	return &m->kv[i];
}

/* Set key to a value of type t (val: the bytes after the type id); added last if absent. */
static struct mkv *kv_put(struct mfile *m, const char *key, uint32_t t, const void *val, size_t n)
{
	int i = kv_find(m, key);
	if (i < 0) {
		if (m->nkv == MAX_KV)
			die("MAX_KV");
		i = m->nkv++;
		size_t n_key = strlen(key);
		m->kv[i] = (struct mkv){ .key = mf_dup(m, key, n_key), .key_len = n_key };
	}
	m->kv[i].type = t;
	m->kv[i].val = mf_dup(m, val, n);
	m->kv[i].val_len = n;
	return &m->kv[i];
}

#define KV_SCALAR(name, ctype, t)                                               \
	static void name(struct mfile *m, const char *key, ctype v)             \
	{                                                                       \
		kv_put(m, key, t, &v, sizeof(v));                               \
	}
KV_SCALAR(kv_u32, uint32_t, GGUF_TYPE_UINT32)
KV_SCALAR(kv_i32, int32_t, GGUF_TYPE_INT32)
KV_SCALAR(kv_u64, uint64_t, GGUF_TYPE_UINT64)
KV_SCALAR(kv_f32, float, GGUF_TYPE_FLOAT32)
KV_SCALAR(kv_f64, double, GGUF_TYPE_FLOAT64)
#undef KV_SCALAR

static void kv_str(struct mfile *m, const char *key, const char *s)
{
	uint8_t v[264];
	uint64_t n = strlen(s);
	if (n > 256)
		die("kv_str: too long");
	memcpy(v, &n, 8);
	memcpy(v + 8, s, n);
	kv_put(m, key, GGUF_TYPE_STRING, v, 8 + n);
}

/* An array of n zero elements of plain type et. */
static void kv_zeros(struct mfile *m, const char *key, uint32_t et, uint64_t n)
{
	size_t bytes = 12 + n * gguf_type_size(et);
	uint8_t *v = mf_keep(m, calloc(1, bytes));
	memcpy(v, &et, 4);
	memcpy(v + 4, &n, 8);
	kv_put(m, key, GGUF_TYPE_ARRAY, v, bytes);
}

/* A value of type t, re-encoded properly: 1, 1.0, true, "1" or [1u]. */
static void kv_as(struct mfile *m, const char *key, uint32_t t)
{
	uint8_t v[16] = { 0 };
	size_t n = gguf_type_size(t);
	float f = 1.0f;
	double d = 1.0;
	if (t == GGUF_TYPE_FLOAT32)
		memcpy(v, &f, 4);
	else if (t == GGUF_TYPE_FLOAT64)
		memcpy(v, &d, 8);
	else
		v[0] = 1;
	if (t == GGUF_TYPE_STRING) {
		n = 9;
		v[8] = '1';
	} else if (t == GGUF_TYPE_ARRAY) {
		v[0] = GGUF_TYPE_UINT32;
		v[4] = 1;
		v[12] = 1;
		n = 16;
	}
	kv_put(m, key, t, v, n);
}

static void kv_del(struct mfile *m, const char *key)
{
	int i = kv_find(m, key);
	if (i < 0)
		return;
	memmove(&m->kv[i], &m->kv[i + 1], (size_t)(m->nkv - i - 1) * sizeof(m->kv[0]));
	m->nkv--;
}

/* Overwrite bytes [at, at + n) of key's value (a private copy). */
static void kv_patch(struct mfile *m, const char *key, size_t at, const void *p, size_t n)
{
	struct mkv *kv = kv_get(m, key);
	if (at + n > kv->val_len)
		die("kv_patch: outside the value");
	uint8_t *v = mf_dup(m, kv->val, kv->val_len);
	memcpy(v + at, p, n);
	kv->val = v;
}

/* Offset inside a string array's value of element j's u64 length. */
static size_t strarr_elem(const struct mkv *kv, uint64_t j)
{
	size_t at = 12;
	for (uint64_t i = 0; i < j; i++)
		at += value_len(kv->val + at, GGUF_TYPE_STRING);
	return at;
}

static struct mti *ti_find(struct mfile *m, const char *name)
{
	size_t n = strlen(name);
	for (int i = 0; i < m->nti; i++)
		if (m->ti[i].name_len == n && !memcmp(m->ti[i].name, name, n))
			return &m->ti[i];
	return NULL;
}

static struct mti *ti_get(struct mfile *m, const char *name)
{
	struct mti *t = ti_find(m, name);
	if (!t) {
		fprintf(stderr, "no tensor %s in the base file\n", name);
		exit(1);
	}
	return t;
}

static void ti_del_at(struct mfile *m, int i)
{
	memmove(&m->ti[i], &m->ti[i + 1], (size_t)(m->nti - i - 1) * sizeof(m->ti[0]));
	m->nti--;
}

static void ti_del(struct mfile *m, const char *name)
{
	ti_del_at(m, (int)(ti_get(m, name) - m->ti));
}

/* New shape (and zero data); ne beyond n_dims are 1. */
static void ti_shape(struct mti *t, uint32_t n_dims, uint64_t ne0, uint64_t ne1, uint64_t ne2)
{
	uint64_t ne[8] = { ne0, ne1, ne2, 1, 1, 1, 1, 1 };
	t->n_dims = n_dims;
	memcpy(t->ne, ne, sizeof(ne));
	t->data = NULL;
	t->size = tsize(t->type, n_dims, t->ne);
}

static void ti_type(struct mti *t, uint32_t type)
{
	t->type = type;
	t->data = NULL;
	t->size = tsize(type, t->n_dims, t->ne);
}

static struct mti *ti_add(struct mfile *m, const char *name, uint32_t n_dims, uint64_t ne0,
			  uint64_t ne1, uint64_t ne2)
{
	if (m->nti == MAX_TI)
		die("MAX_TI");
	struct mti *t = &m->ti[m->nti++];
	*t = (struct mti){ .name = mf_dup(m, name, strlen(name)), .name_len = strlen(name),
			   .type = GGML_TYPE_F32 };
	ti_shape(t, n_dims, ne0, ne1, ne2);
	return t;
}

/* ---- writing ---- */

static void buf_reserve(struct buf *b, size_t n)
{
	if (n <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 1 << 16;
	while (cap < n)
		cap *= 2;
	uint8_t *p = realloc(b->p, cap);
	if (!p)
		die("out of memory");
	memset(p + b->cap, 0, cap - b->cap);
	b->p = p;
	b->cap = cap;
}

static void put(struct buf *b, const void *p, size_t n)
{
	buf_reserve(b, b->n + n);
	if (n)
		memcpy(b->p + b->n, p, n);
	b->n += n;
}

static void put_u32(struct buf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(struct buf *b, uint64_t v) { put(b, &v, 8); }

static void mark(struct marks *mk, uint64_t at, const char *what, const char *name, size_t len)
{
	if (!mk || mk->n == MAX_MARKS)
		return;
	mk->at[mk->n] = at;
	snprintf(mk->what[mk->n++], sizeof(mk->what[0]), "%s%s%.*s", what, name ? ":" : "",
		 (int)(len > 60 ? 60 : len), name ? name : "");
}

/* Tensors without a fixed offset are packed in order at the layout alignment. */
static void layout(struct mfile *m)
{
	uint64_t cur = 0;
	for (int i = 0; i < m->nti; i++) {
		struct mti *t = &m->ti[i];
		if (t->fixed_off)
			continue;
		t->off = align_up(cur, m->align);
		cur = t->off + (t->size <= WRITE_LIMIT ? t->size : 0);
	}
}

static void emit_kv(const struct mkv *kv, struct buf *b, struct marks *mk)
{
	mark(mk, b->n, "kv.key", kv->key, kv->key_len);
	put_u64(b, kv->key_len_field ? kv->key_len_field : kv->key_len);
	put(b, kv->key, kv->key_len);
	mark(mk, b->n, "kv.type", kv->key, kv->key_len);
	put_u32(b, kv->type);
	mark(mk, b->n, "kv.value", kv->key, kv->key_len);
	put(b, kv->val, kv->val_len);
}

static void emit_ti(const struct mti *t, struct buf *b, struct marks *mk)
{
	mark(mk, b->n, "tensor.name", t->name, t->name_len);
	put_u64(b, t->name_len_field ? t->name_len_field : t->name_len);
	put(b, t->name, t->name_len);
	mark(mk, b->n, "tensor.n_dims", t->name, t->name_len);
	put_u32(b, t->n_dims);
	mark(mk, b->n, "tensor.ne", t->name, t->name_len);
	for (uint32_t d = 0; d < t->n_dims && d < 8; d++)
		put_u64(b, t->ne[d]);
	mark(mk, b->n, "tensor.type", t->name, t->name_len);
	put_u32(b, t->type);
	mark(mk, b->n, "tensor.offset", t->name, t->name_len);
	put_u64(b, t->off);
}

/* The file's bytes into b (laid out already); marks at every structural boundary. */
static void emit(const struct mfile *m, struct buf *b, struct marks *mk)
{
	b->n = 0;
	put_u32(b, m->magic);
	mark(mk, b->n, "header.version", NULL, 0);
	put_u32(b, m->version);
	mark(mk, b->n, "header.n_tensors", NULL, 0);
	put_u64(b, m->lie_counts ? m->n_tensors : (uint64_t)m->nti);
	mark(mk, b->n, "header.n_kv", NULL, 0);
	put_u64(b, m->lie_counts ? m->n_kv : (uint64_t)m->nkv);
	for (int i = 0; i < m->nkv; i++)
		emit_kv(&m->kv[i], b, mk);
	for (int i = 0; i < m->nti; i++)
		emit_ti(&m->ti[i], b, mk);
	uint64_t data = align_up(b->n, m->align);
	if (data > b->n)
		mark(mk, b->n, "padding", NULL, 0);
	buf_reserve(b, data);
	b->n = data;
	for (int i = 0; i < m->nti; i++) {
		const struct mti *t = &m->ti[i];
		if (!t->size || t->off > WRITE_LIMIT || t->size > WRITE_LIMIT)
			continue;
		uint64_t end = data + t->off + t->size;
		mark(mk, data + t->off, "data", t->name, t->name_len);
		buf_reserve(b, end);
		if (t->data)
			memcpy(b->p + data + t->off, t->data, t->size);
		if (end > b->n)
			b->n = end;
	}
	if (m->cut < b->n)
		b->n = m->cut;
}

/* Where the structural boundary what lies in m's file. */
static uint64_t mark_of(struct mfile *m, const char *what)
{
	static struct marks mk;
	struct buf b = { 0 };
	mk.n = 0;
	layout(m);
	emit(m, &b, &mk);
	free(b.p);
	for (int i = 0; i < mk.n; i++)
		if (!strcmp(mk.what[i], what))
			return mk.at[i];
	fprintf(stderr, "no mark %s\n", what);
	exit(1);
}

static uint64_t file_size_of(struct mfile *m)
{
	struct buf b = { 0 };
	layout(m);
	emit(m, &b, NULL);
	free(b.p);
	return b.n;
}

static void write_file(const char *path, const void *p, size_t n)
{
	FILE *fp = fopen(path, "wb");
	if (!fp || (n && fwrite(p, 1, n, fp) != n) || fclose(fp))
		die(path);
}

/* ---- running a case ---- */

struct cls {
	char name[16];
	int n, n_ok;
};
static struct cls classes[16];
static int n_classes;
static char failed[8192];

static void tally(const char *name, bool ok, const char *owner)
{
	size_t len = strcspn(name, "-");
	int i = 0;
	while (i < n_classes && (strlen(classes[i].name) != len || memcmp(classes[i].name, name, len)))
		i++;
	if (i == n_classes && n_classes < 16)
		snprintf(classes[n_classes++].name, sizeof(classes[0].name), "%.*s", (int)len, name);
	if (i < 16) {
		classes[i].n++;
		classes[i].n_ok += ok;
	}
	if (!ok) {
		t_failures++;
		size_t n = strlen(failed);
		snprintf(failed + n, sizeof(failed) - n, "  %s [%s]\n", name, owner);
	}
}

static void case_path(char *path, size_t cap, const char *name)
{
	int n = snprintf(path, cap, "%s/", t_tmpdir());
	for (const char *s = name; *s && n < (int)cap - 8 && s - name < 120; s++)
		path[n++] = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
				    (*s >= '0' && *s <= '9') || *s == '.' || *s == '-' ? *s : '_';
	snprintf(path + n, cap - (size_t)n, ".gguf");
}

/* The cases written but not run yet: a batch runs in one child. */
struct pending {
	char name[160], path[700], needle[256], owner[48];
	bool want_ok;
};
static struct pending queue[BATCH];
static int n_queue;

/* A file that loads must also run: two tokens through a context of the
 * model's default size (its context_length, at most 4096), logits finite. */
static void eval_two(struct fm_model *fm, struct result *r)
{
	const int32_t toks[2] = { 1, 2 };
	int n_vocab = fm_model_get_info(fm)->n_vocab;
	float *logits = calloc((size_t)n_vocab, sizeof(float));
	struct fm_error err;
	memset(&err, 0, sizeof(err));
	double t0 = now_ms();
	struct fm_ctx *c = fm_ctx_new(fm, 0, &err);
	int rc = !logits ? FM_ENOMEM : c ? fm_eval(c, toks, 2, logits, false, &err) : err.code;
	r->eval_ms = now_ms() - t0;
	for (int j = 0; !rc && j < n_vocab; j++) {
		if (!isfinite(logits[j])) {
			snprintf(err.msg, sizeof(err.msg), "logit %d is %g", j, logits[j]);
			rc = -1;
		}
	}
	r->eval_rc = rc;
	if (rc)
		snprintf(r->msg, sizeof(r->msg), "%s", err.msg);
	fm_ctx_free(c);
	free(logits);
}

static void open_one(int i, struct result *r)
{
	struct fm_model_params p;
	fm_model_params_default(&p);
	p.n_threads = 1;
	struct fm_error err;
	memset(&err, 0, sizeof(err));
	alarm(CASE_LIMIT_S);
	double t0 = now_ms();
	struct fm_model *fm = fm_model_open(queue[i].path, &p, &err);
	r->ms = now_ms() - t0;
	r->opened = fm != NULL;
	r->code = err.code;
	snprintf(r->msg, sizeof(r->msg), "%s", err.msg);
	r->done = 1;
	if (fm && queue[i].want_ok)
		eval_two(fm, r);
	fm_model_close(fm);
}

/* Child bodies: arg >= 0 opens that case alone, -1 the whole queue. */
static void child_open(int arg)
{
	for (int i = arg < 0 ? 0 : arg; i < (arg < 0 ? n_queue : arg + 1); i++)
		open_one(i, &R[i]);
}

/* Run body(arg) in a child whose stdout and stderr go to out[cap]; its wait
 * status. The child ends with exit(), so LeakSanitizer checks it (once: that
 * check costs ~20 ms, hence the batches). */
static int in_child(void (*body)(int), int arg, char *out, size_t cap)
{
	char log[600];
	snprintf(log, sizeof(log), "%s/child.out", t_tmpdir());
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
			_exit(3);
		close(fd);
		body(arg);
		exit(0);
	}
	int st = 0;
	while (waitpid(pid, &st, 0) < 0)
		;
	out[0] = 0;
	FILE *fp = fopen(log, "r");
	if (fp) {
		size_t n = fread(out, 1, cap - 1, fp);
		out[n] = 0;
		fclose(fp);
	}
	unlink(log);
	return st;
}

/* Every '&'-separated group of needle has one of its '|'-separated words in msg. */
static bool has_words(const char *msg, const char *needle)
{
	char groups[256];
	snprintf(groups, sizeof(groups), "%s", needle);
	char *save_g = NULL;
	for (char *g = strtok_r(groups, "&", &save_g); g; g = strtok_r(NULL, "&", &save_g)) {
		bool any = false;
		char *save_w = NULL;
		for (char *w = strtok_r(g, "|", &save_w); w && !any; w = strtok_r(NULL, "|", &save_w))
			any = strstr(msg, w) != NULL;
		if (!any)
			return false;
	}
	return true;
}

/* msg without the file path (a case's path holds its name, and so its needle). */
static const char *strip(const char *msg, const char *path)
{
	static char buf[1024];
	const char *p = strstr(msg, path);
	if (!p)
		return msg;
	snprintf(buf, sizeof(buf), "%.*s%s", (int)(p - msg), msg, p + strlen(path));
	return buf;
}

static const char *first_line(char *s)
{
	char *rt = strstr(s, "runtime error");
	char *as = strstr(s, "ERROR:");
	char *p = rt ? rt : as ? as : s;
	p[strcspn(p, "\n")] = 0;
	if (strlen(p) > 240)
		p[240] = 0;
	return p;
}

/* Why case c's outcome r is wrong ("" when right); st and out: its child's. */
static void judge(const struct pending *c, const struct result *r, int st, char *out,
		  char *why, size_t cap)
{
	why[0] = 0;
	if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM)
		snprintf(why, cap, "stalled: killed after %d s", CASE_LIMIT_S);
	else if (WIFSIGNALED(st))
		snprintf(why, cap, "crashed (signal %d) %s", WTERMSIG(st), first_line(out));
	else if (WEXITSTATUS(st) || !r->done)
		snprintf(why, cap, "crashed (exit %d%s) %s", WEXITSTATUS(st),
			 r->done ? " after returning" : "", first_line(out));
	else if (out[0])
		snprintf(why, cap, "printed besides the error: %s", first_line(out));
	else if (c->want_ok && !r->opened)
		snprintf(why, cap, "refused: %s", r->msg);
	else if (c->want_ok && r->eval_rc)
		snprintf(why, cap, "loaded, but two tokens did not run: %s", r->msg);
	else if (c->want_ok && r->ms + r->eval_ms > SLOW_MS)
		snprintf(why, cap, "loaded, but took %.0f ms (and %.0f ms for two tokens)", r->ms,
			 r->eval_ms);
	else if (c->want_ok)
		return;
	else if (r->opened)
		snprintf(why, cap, "loaded (%.1f ms); expected an error naming %s", r->ms, c->needle);
	else if (r->code >= 0)
		snprintf(why, cap, "returned code %d: %s", r->code, r->msg);
	else if (!strstr(r->msg, c->path))
		snprintf(why, cap, "the message does not name the file: %s", r->msg);
	else if (!has_words(strip(r->msg, c->path), c->needle))
		snprintf(why, cap, "the message lacks %s: %s", c->needle, r->msg);
	else if (strchr(r->msg, '\n'))
		snprintf(why, cap, "the message spans lines: %s", r->msg);
}

/* Run the queued cases in one child; when it crashes, stalls, leaks or prints,
 * run each again in a child of its own to tell which did it. */
static void flush(void)
{
	char out[1024], why[1400];
	if (!n_queue)
		return;
	memset(R, 0, BATCH * sizeof(*R));
	int st = in_child(child_open, -1, out, sizeof(out));
	bool alone = !WIFEXITED(st) || WEXITSTATUS(st) || out[0];
	for (int i = 0; i < n_queue; i++) {
		const struct pending *c = &queue[i];
		int st_i = 0;
		out[0] = 0;
		if (alone) {
			memset(&R[i], 0, sizeof(R[i]));
			st_i = in_child(child_open, i, out, sizeof(out));
		}
		judge(c, &R[i], st_i, out, why, sizeof(why));
		if (why[0])
			printf("FAIL  %s [%s]: %s\n", c->name, c->owner, why);
		else if (c->want_ok)
			printf("ok    %s: loaded in %.1f ms, two tokens in %.1f ms\n", c->name,
			       R[i].ms, R[i].eval_ms);
		else
			printf("ok    %s: %s\n", c->name, R[i].msg);
		tally(c->name, !why[0], c->owner);
		if (!why[0] || !getenv("KEEP"))
			unlink(c->path);
	}
	n_queue = 0;
}

/* Write m as a case's file and queue it. needle NULL: the file must load. */
static void run(struct mfile *m, const char *needle, const char *owner, const char *fmt, ...)
{
	struct pending *c = &queue[n_queue++];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->name, sizeof(c->name), fmt, ap);
	va_end(ap);
	case_path(c->path, sizeof(c->path), c->name);
	snprintf(c->needle, sizeof(c->needle), "%s", needle ? needle : "");
	snprintf(c->owner, sizeof(c->owner), "%s", owner);
	c->want_ok = !needle;
	struct buf b = { 0 };
	layout(m);
	emit(m, &b, NULL);
	write_file(c->path, b.p, b.n);
	free(b.p);
	mf_release(m);
	if (n_queue == BATCH)
		flush();
}

#define GG "gguf"
#define MODEL "model.c"
#define TOK "tokenizer_load.c"
#define AT "at offset" /* any parser message: it names the byte offset */
#define TRUNC "truncated|past file size"

/* ---- header ---- */

static void test_header(void)
{
	struct mfile *m;
	const uint32_t magics[] = { 0x4c4d4747 /* GGML */, 0, 0x47475546 /* "FUGG" */ };
	for (int i = 0; i < 3; i++) {
		m = fresh();
		m->magic = magics[i];
		run(m, "magic", GG, "header-magic-0x%08x", magics[i]);
	}
	const struct { uint32_t v; const char *word; } versions[] = {
		{ 0, "version 0" }, { 1, "version 1" }, { 4, "version 4" },
		{ 0x03000000, "big-endian" }, { UINT32_MAX, "version 4294967295" },
	};
	for (int i = 0; i < 5; i++) {
		m = fresh();
		m->version = versions[i].v;
		run(m, versions[i].word, GG, "header-version-%u", versions[i].v);
	}
	m = fresh();
	m->version = 2;
	run(m, NULL, GG, "header-version-2-loads");
	const uint64_t nt = (uint64_t)base.nti, nk = (uint64_t)base.nkv;
	const struct { const char *what; uint64_t n_tensors, n_kv; const char *word; } counts[] = {
		{ "n_tensors-2^63", UINT64_C(1) << 63, nk, "n_tensors" },
		{ "n_tensors-2^64-1", UINT64_MAX, nk, "n_tensors" },
		{ "n_tensors-x24-overflows", UINT64_MAX / 24 + 1, nk, "n_tensors" },
		{ "n_tensors-x8-overflows", UINT64_C(1) << 61, nk, "n_tensors" },
		{ "n_kv-2^63", nt, UINT64_C(1) << 63, "n_kv" },
		{ "n_kv-2^64-1", nt, UINT64_MAX, "n_kv" },
		{ "n_kv-x13-overflows", nt, UINT64_MAX / 13 + 1, "n_kv" },
		{ "n_kv-x8-overflows", nt, UINT64_C(1) << 61, "n_kv" },
		{ "both-2^62", UINT64_C(1) << 62, UINT64_C(1) << 62, "n_tensors" },
		{ "n_tensors+1", nt + 1, nk, AT },
		{ "n_tensors-1", nt - 1, nk, "missing tensor" },
		{ "n_tensors-0", 0, nk, "missing tensor 'token_embd.weight'" },
		{ "n_kv+1", nt, nk + 1, AT },
		{ "n_kv-1", nt, nk - 1, AT },
		{ "n_kv-0", nt, 0, AT },
	};
	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		m = fresh();
		m->lie_counts = true;
		m->n_tensors = counts[i].n_tensors;
		m->n_kv = counts[i].n_kv;
		run(m, counts[i].word, strstr(counts[i].word, "missing") ? MODEL : GG, "header-%s",
		    counts[i].what);
	}
	m = fresh();
	m->cut = 0;
	run(m, "truncated", GG, "header-empty-file");
}

/* ---- truncation ---- */

/* A cut at every structural boundary: the start of every header field, key,
 * type, value, tensor info field, the padding and each tensor's data. */
static void test_boundaries(void)
{
	static struct marks mk;
	struct mfile *m = fresh();
	struct buf b = { 0 };
	mk.n = 0;
	layout(m);
	emit(m, &b, &mk);
	free(b.p);
	for (int i = 0; i < mk.n; i++) {
		m = fresh();
		m->cut = mk.at[i];
		run(m, TRUNC, GG, "truncated-at-%s", mk.what[i]);
	}
	m = fresh();
	m->cut = file_size_of(m) - 1;
	run(m, "past file size", GG, "truncated-last-byte");
}

static const uint64_t *sweep_cuts;
static int sweep_n;
static char sweep_path[700];

static void child_sweep(int arg)
{
	const char *path = sweep_path;
	int fd = open(path, O_RDWR);
	struct fm_model_params p;
	fm_model_params_default(&p);
	p.n_threads = 1;
	for (int i = 0; fd >= 0 && i < sweep_n; i++) {
		struct fm_error err;
		memset(&err, 0, sizeof(err));
		R->cur = sweep_cuts[i];
		alarm(CASE_LIMIT_S);
		if (ftruncate(fd, (off_t)sweep_cuts[i]) < 0)
			break;
		struct fm_model *fm = fm_model_open(path, &p, &err);
		bool clean = !fm && err.code < 0 && strstr(err.msg, path) && !strchr(err.msg, '\n') &&
			     has_words(strip(err.msg, path), TRUNC);
		if (clean) {
			R->n_refused++;
		} else if (R->n_bad++ == 0) {
			snprintf(R->bad, sizeof(R->bad), "cut at %llu: %s",
				 (unsigned long long)sweep_cuts[i], fm ? "loaded" : err.msg);
		}
		fm_model_close(fm);
	}
	if (fd >= 0)
		close(fd);
	R->done = 1;
}

/* Cuts at every offset of the header (every byte up to 4 KiB past the data
 * section's start) and at 400 offsets spread over the tensor data. */
static void test_sweep(void)
{
	struct mfile *m = fresh();
	char out[1024], why[1400] = "";
	struct buf b = { 0 };
	layout(m);
	emit(m, &b, NULL);
	uint64_t n = b.n, data = mark_of(m, "data:token_embd.weight");
	uint64_t *cuts = malloc((size_t)(data + 4096 + 512) * sizeof(*cuts));
	int k = 0;
	for (uint64_t c = n - 1, step = (n - data) / 400 + 1; c > data + 4096; c -= c > step ? step : c)
		cuts[k++] = c;
	for (uint64_t c = data + 4096 < n ? data + 4096 : n; c-- > 0;)
		cuts[k++] = c;
	sweep_cuts = cuts;
	sweep_n = k;
	case_path(sweep_path, sizeof(sweep_path), "truncated-sweep");
	write_file(sweep_path, b.p, b.n);
	free(b.p);
	flush();
	memset(R, 0, sizeof(*R));
	double t0 = now_ms();
	int st = in_child(child_sweep, 0, out, sizeof(out));
	if (!WIFEXITED(st) || WEXITSTATUS(st) || !R->done)
		snprintf(why, sizeof(why), "crashed at cut %llu (status 0x%x) %s",
			 (unsigned long long)R->cur, st, first_line(out));
	else if (out[0])
		snprintf(why, sizeof(why), "printed besides the errors: %s", first_line(out));
	else if (R->n_bad)
		snprintf(why, sizeof(why), "%llu of %d cuts wrong; first %s",
			 (unsigned long long)R->n_bad, k, R->bad);
	if (why[0])
		printf("FAIL  truncated-sweep [%s]: %s\n", GG, why);
	else
		printf("ok    truncated-sweep: %d cuts of a %llu-byte file (every byte below %llu), "
		       "each refused as truncated, %.0f ms\n", k,
		       (unsigned long long)n, (unsigned long long)(data + 4096), now_ms() - t0);
	tally("truncated-sweep", !why[0], GG);
	unlink(sweep_path);
	free(cuts);
}

/* ---- metadata values ---- */

static void test_values(void)
{
	struct mfile *m;
	/* a value of every type, cut by the end of the file */
	for (uint32_t t = 0; t < GGUF_TYPE_COUNT; t++) {
		m = fresh();
		kv_as(m, "zz.value", t);
		m->cut = mark_of(m, "kv.value:zz.value") + (gguf_type_size(t) == 1 ? 0 : 1);
		run(m, "zz.value&truncated|bytes left", GG, "value-cut-%s",
		    gguf_type_name((enum gguf_type)t));
	}
	/* block_count's type id replaced in place: the value's bytes are misread */
	const uint32_t ids[] = { 0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 255, UINT32_MAX };
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		m = fresh();
		kv_get(m, "qwen3moe.block_count")->type = ids[i];
		bool known = ids[i] < GGUF_TYPE_COUNT;
		char id[16];
		snprintf(id, sizeof(id), "%u", ids[i]);
		run(m, ids[i] == GGUF_TYPE_INT32 ? NULL : known ? AT : "unknown value type&block_count",
		    GG, "value-type-id-block_count-as-%s", known ? gguf_type_name(ids[i]) : id);
	}
	/* string and key lengths past the end of the file */
	uint64_t size = file_size_of(fresh());
	const uint64_t lens[] = { size, UINT64_C(1) << 63, UINT64_MAX };
	for (int i = 0; i < 3; i++) {
		m = fresh();
		kv_patch(m, "general.name", 0, &lens[i], 8);
		run(m, "general.name&string length", GG, "value-string-length-%llu",
		    (unsigned long long)lens[i]);
	}
	m = fresh();
	kv_get(m, "general.name")->key_len_field = UINT64_C(1) << 63;
	run(m, "string length", GG, "value-key-length-2^63");
	m = fresh();
	char *key = mf_keep(m, malloc(70000));
	memset(key, 'k', 70000);
	m->kv[m->nkv++] = (struct mkv){ .key = key, .key_len = 70000, .type = GGUF_TYPE_UINT8,
					.val = (const uint8_t *)"", .val_len = 1 };
	run(m, "limit", GG, "value-key-length-70000");
	m = fresh();
	m->kv[m->nkv++] = (struct mkv){ .key = "general.name\0x", .key_len = 14,
					.type = GGUF_TYPE_UINT8, .val = (const uint8_t *)"", .val_len = 1 };
	run(m, "NUL", GG, "value-key-with-NUL");
	/* string array elements */
	const uint64_t big = UINT64_C(1) << 40;
	m = fresh();
	size_t elem5 = strarr_elem(kv_get(m, "tokenizer.ggml.tokens"), 5);
	kv_patch(m, "tokenizer.ggml.tokens", elem5, &big, 8);
	run(m, "tokenizer.ggml.tokens&string length", GG, "value-string-array-element-length-2^40");
	/* nested arrays */
	m = fresh();
	uint32_t arr = GGUF_TYPE_ARRAY;
	kv_patch(m, "tokenizer.ggml.tokens", 0, &arr, 4);
	run(m, "nested&tokenizer.ggml.tokens", GG, "value-array-of-arrays-in-place");
	m = fresh();
	const uint8_t nested[] = { GGUF_TYPE_ARRAY, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
				   GGUF_TYPE_UINT8, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 7, 7 };
	kv_put(m, "zz.nested", GGUF_TYPE_ARRAY, nested, sizeof(nested));
	run(m, "nested&zz.nested", GG, "value-array-of-arrays");
	/* array counts */
	const struct { const char *key; uint64_t n; const char *word; } counts[] = {
		{ "tokenizer.ggml.tokens", UINT64_C(1) << 61, "tokenizer.ggml.tokens&array count" },
		{ "tokenizer.ggml.tokens", UINT64_C(1) << 63, "tokenizer.ggml.tokens&array count" },
		{ "tokenizer.ggml.tokens", UINT64_MAX, "tokenizer.ggml.tokens&array count" },
		{ "tokenizer.ggml.tokens", (uint64_t)n_base_tokens + 1, AT },
		{ "tokenizer.ggml.token_type", UINT64_C(1) << 62,
		  "tokenizer.ggml.token_type&array count" },
		{ "tokenizer.ggml.token_type", UINT64_MAX, "tokenizer.ggml.token_type&array count" },
		{ "tokenizer.ggml.token_type", (uint64_t)n_base_tokens + 1, AT },
		{ "tokenizer.ggml.token_type", (uint64_t)n_base_tokens - 1, AT },
	};
	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		m = fresh();
		kv_patch(m, counts[i].key, 4, &counts[i].n, 8);
		run(m, counts[i].word, GG, "value-array-count-%s-%llu", counts[i].key + 15,
		    (unsigned long long)counts[i].n);
	}
	/* array element types */
	const uint32_t ets[] = { 13, 256, UINT32_MAX };
	for (int i = 0; i < 3; i++) {
		m = fresh();
		kv_patch(m, "tokenizer.ggml.token_type", 0, &ets[i], 4);
		run(m, "unknown array element type&tokenizer.ggml.token_type", GG,
		    "value-array-element-type-%u", ets[i]);
	}
	uint32_t et = GGUF_TYPE_STRING;
	m = fresh();
	kv_patch(m, "tokenizer.ggml.token_type", 0, &et, 4);
	run(m, AT, GG, "value-array-element-type-i32-as-string");
	et = GGUF_TYPE_UINT8;
	m = fresh();
	kv_patch(m, "tokenizer.ggml.tokens", 0, &et, 4);
	run(m, AT, GG, "value-array-element-type-string-as-u8");
}

/* ---- keys ---- */

enum kind { K_U32, K_F32, K_STR, K_BOOL, K_ID, K_STRARR, K_I32ARR, K_ALIGN };

static const struct keyspec {
	const char *key;
	enum kind kind;
	const char *missing; /* what the error names when the key is absent; NULL: loads */
	const char *owner;
} keys[] = {
	{ "general.architecture", K_STR, "general.architecture", MODEL },
	{ "general.alignment", K_ALIGN, NULL, GG },
	{ "qwen3moe.block_count", K_U32, "qwen3moe.block_count", MODEL },
	{ "qwen3moe.embedding_length", K_U32, "qwen3moe.embedding_length", MODEL },
	{ "qwen3moe.attention.head_count", K_U32, "qwen3moe.attention.head_count", MODEL },
	/* absent, it defaults to head_count: attn_k's shape disagrees */
	{ "qwen3moe.attention.head_count_kv", K_U32, "blk.0.attn_k.weight|head_count_kv", MODEL },
	{ "qwen3moe.attention.key_length", K_U32, NULL, MODEL },
	{ "qwen3moe.attention.value_length", K_U32, NULL, MODEL },
	{ "qwen3moe.rope.dimension_count", K_U32, NULL, MODEL },
	{ "qwen3moe.expert_count", K_U32, "qwen3moe.expert_count", MODEL },
	{ "qwen3moe.expert_used_count", K_U32, "qwen3moe.expert_used_count", MODEL },
	{ "qwen3moe.expert_feed_forward_length", K_U32, NULL, MODEL },
	{ "qwen3moe.context_length", K_U32, NULL, MODEL },
	{ "qwen3moe.attention.layer_norm_rms_epsilon", K_F32, NULL, MODEL },
	{ "qwen3moe.rope.freq_base", K_F32, NULL, MODEL },
	{ "qwen3moe.expert_weights_norm", K_BOOL, NULL, MODEL },
	{ "tokenizer.ggml.model", K_STR, NULL, TOK }, /* absent: no tokenizer */
	{ "tokenizer.ggml.pre", K_STR, NULL, TOK },
	{ "tokenizer.ggml.tokens", K_STRARR, "tokenizer.ggml.tokens", TOK },
	{ "tokenizer.ggml.token_type", K_I32ARR, NULL, TOK },
	{ "tokenizer.ggml.merges", K_STRARR, NULL, TOK },
	{ "tokenizer.ggml.bos_token_id", K_ID, NULL, TOK },
	{ "tokenizer.ggml.eos_token_id", K_ID, NULL, TOK },
	{ "tokenizer.ggml.padding_token_id", K_ID, NULL, TOK },
	{ "tokenizer.ggml.add_bos_token", K_BOOL, NULL, TOK },
	{ "tokenizer.chat_template", K_STR, NULL, TOK },
};

/* Keys the base file lacks get a valid value first. */
static void ensure(struct mfile *m, const char *key)
{
	if (kv_find(m, key) >= 0)
		return;
	if (!strcmp(key, "qwen3moe.rope.dimension_count"))
		kv_u32(m, key, 8);
	else if (!strcmp(key, "qwen3moe.expert_weights_norm"))
		kv_put(m, key, GGUF_TYPE_BOOL, "\1", 1);
	else
		die(key);
}

static void wrong_types(const struct keyspec *k)
{
	static const uint32_t wrong[][2] = {
		[K_U32] = { GGUF_TYPE_STRING, GGUF_TYPE_FLOAT32 },
		[K_F32] = { GGUF_TYPE_UINT32, GGUF_TYPE_STRING },
		[K_STR] = { GGUF_TYPE_UINT32, GGUF_TYPE_ARRAY },
		[K_BOOL] = { GGUF_TYPE_UINT32, GGUF_TYPE_STRING },
		[K_ID] = { GGUF_TYPE_STRING, GGUF_TYPE_FLOAT32 },
		[K_STRARR] = { GGUF_TYPE_STRING, GGUF_TYPE_ARRAY },
		[K_I32ARR] = { GGUF_TYPE_UINT32, GGUF_TYPE_ARRAY },
		[K_ALIGN] = { GGUF_TYPE_FLOAT32, GGUF_TYPE_STRING },
	};
	for (int i = 0; i < 2; i++) {
		struct mfile *m = fresh();
		kv_as(m, k->key, wrong[k->kind][i]);
		run(m, k->key, k->owner, "key-%s-as-%s%s", k->key,
		    gguf_type_name((enum gguf_type)wrong[k->kind][i]),
		    wrong[k->kind][i] == GGUF_TYPE_ARRAY ? "-of-u32" : "");
	}
	if (k->kind == K_I32ARR) {
		struct mfile *m = fresh();
		kv_zeros(m, k->key, GGUF_TYPE_FLOAT32, (uint64_t)n_base_tokens);
		run(m, k->key, k->owner, "key-%s-as-array-of-f32", k->key);
	}
}

static void out_of_range(const struct keyspec *k)
{
	struct mfile *m;
	if (k->kind == K_U32 || k->kind == K_ID) {
		const uint32_t vals[] = { 0, UINT32_C(1) << 31 };
		for (int i = 0; i < 2; i++) {
			if (k->kind == K_ID && !vals[i])
				continue; /* token 0 is a valid id */
			m = fresh();
			kv_u32(m, k->key, vals[i]);
			run(m, k->key, k->owner, "key-%s-%u", k->key, vals[i]);
		}
		m = fresh();
		kv_u64(m, k->key, UINT64_C(1) << 32);
		run(m, k->key, k->owner, "key-%s-u64-2^32", k->key);
		m = fresh();
		kv_i32(m, k->key, -1);
		run(m, k->key, k->owner, "key-%s-i32--1", k->key);
	}
	if (k->kind == K_ID) {
		m = fresh();
		kv_u32(m, k->key, (uint32_t)n_base_tokens);
		run(m, k->key, k->owner, "key-%s-n_vocab", k->key);
	}
	if (k->kind == K_F32) {
		const float vals[] = { NAN, INFINITY, -INFINITY, -1.0f, 0.0f };
		const char *names[] = { "nan", "inf", "-inf", "-1", "0" };
		for (int i = 0; i < 5; i++) {
			m = fresh();
			kv_f32(m, k->key, vals[i]);
			run(m, k->key, k->owner, "key-%s-%s", k->key, names[i]);
		}
		m = fresh();
		kv_f64(m, k->key, 1e300); /* finite as f64, infinite as f32 */
		run(m, k->key, k->owner, "key-%s-f64-1e300", k->key);
		m = fresh();
		kv_f64(m, k->key, 1e-5);
		run(m, NULL, k->owner, "key-%s-f64-loads", k->key);
	}
}

static void duplicate(const struct keyspec *k)
{
	struct mfile *m = fresh();
	ensure(m, k->key);
	if (m->nkv == MAX_KV)
		die("MAX_KV");
	m->kv[m->nkv++] = *kv_get(m, k->key);
	char word[128];
	snprintf(word, sizeof(word), "duplicate key '%s'", k->key);
	run(m, word, GG, "key-%s-duplicated", k->key);
}

/* Values each key may hold alone that contradict the rest of the file. */
static void inconsistent(void)
{
	struct mfile *m;
	const struct { const char *key; uint32_t v; const char *word; const char *owner; } rel[] = {
		{ "qwen3moe.block_count", 3, "blk.2", MODEL },
		{ "qwen3moe.block_count", 1, "blk.1|block_count", MODEL }, /* layer 1 unused */
		{ "qwen3moe.embedding_length", 64, "token_embd.weight|embedding_length", MODEL },
		{ "qwen3moe.attention.head_count", 3, "head", MODEL },
		{ "qwen3moe.attention.head_count_kv", 3, "head", MODEL },
		{ "qwen3moe.attention.key_length", 16, "key_length|value_length", MODEL },
		{ "qwen3moe.attention.value_length", 16, "key_length|value_length", MODEL },
		{ "qwen3moe.rope.dimension_count", 7, "rope.dimension_count|rot", MODEL },
		{ "qwen3moe.rope.dimension_count", 16, "rope.dimension_count|rot", MODEL },
		{ "qwen3moe.expert_count", 8, "ffn_gate_inp|expert_count", MODEL },
		{ "qwen3moe.expert_used_count", 5, "expert_used_count|used", MODEL },
		{ "qwen3moe.expert_feed_forward_length", 32, "ffn_gate_exps|feed_forward", MODEL },
		{ "qwen3moe.rope.dimension_count", 4, NULL, MODEL }, /* partial rotary: fine */
		{ "qwen3moe.context_length", 1u << 30, NULL, MODEL },
	};
	for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
		m = fresh();
		kv_u32(m, rel[i].key, rel[i].v);
		run(m, rel[i].word, rel[i].owner, "key-%s-%u", rel[i].key, rel[i].v);
	}
	const struct { const char *key, *v, *word; } strs[] = {
		{ "general.architecture", "llama", "llama" },
		{ "general.architecture", "", "architecture" },
		{ "tokenizer.ggml.model", "llama", "tokenizer.ggml.model" },
		{ "tokenizer.ggml.pre", "nope", "tokenizer.ggml.pre" },
	};
	for (int i = 0; i < 4; i++) {
		m = fresh();
		kv_str(m, strs[i].key, strs[i].v);
		run(m, strs[i].word, strs[i].key[0] == 'g' ? MODEL : TOK, "key-%s-'%s'", strs[i].key,
		    strs[i].v);
	}
	const struct { uint32_t a, layout; const char *word; } al[] = {
		{ 0, 32, "general.alignment" }, { 3, 32, "general.alignment" },
		{ UINT32_C(1) << 31, 32, AT }, { 4096, 32, "not aligned" }, { 64, 64, NULL },
	};
	for (int i = 0; i < 5; i++) {
		m = fresh();
		kv_u32(m, "general.alignment", al[i].a);
		m->align = al[i].layout;
		run(m, al[i].word, GG, "key-general.alignment-%u%s", al[i].a,
		    al[i].word ? "" : "-loads");
	}
	/* tokenizer arrays */
	m = fresh();
	const char *merge = "ab";
	uint8_t v[12 + 8 + 2];
	uint32_t st = GGUF_TYPE_STRING;
	uint64_t one = 1, two = 2;
	memcpy(v, &st, 4);
	memcpy(v + 4, &one, 8);
	memcpy(v + 12, &two, 8);
	memcpy(v + 20, merge, 2);
	kv_put(m, "tokenizer.ggml.merges", GGUF_TYPE_ARRAY, v, sizeof(v));
	run(m, "tokenizer.ggml.merges", TOK, "key-tokenizer.ggml.merges-without-space");
	m = fresh(); /* token_type one short, re-encoded: the tokenizer's count check */
	kv_zeros(m, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, (uint64_t)n_base_tokens - 1);
	run(m, "tokenizer.ggml.token_type", TOK, "key-tokenizer.ggml.token_type-one-short");
	m = fresh();
	memcpy(v + 4, &(uint64_t){ 0 }, 8);
	kv_put(m, "tokenizer.ggml.tokens", GGUF_TYPE_ARRAY, v, 12);
	kv_del(m, "tokenizer.ggml.token_type");
	kv_del(m, "tokenizer.ggml.merges");
	run(m, "tokenizer.ggml.tokens", TOK, "key-tokenizer.ggml.tokens-empty");
	/* more tokens than token_embd has rows: their ids would index past it */
	m = fresh();
	const struct mkv *tk = kv_get(m, "tokenizer.ggml.tokens");
	size_t extra = 41, len = tk->val_len;
	uint8_t *nv = mf_keep(m, malloc(len + extra * 16));
	memcpy(nv, tk->val, len);
	for (size_t i = 0; i < extra; i++) {
		char s[8];
		uint64_t sl = (uint64_t)snprintf(s, sizeof(s), "<x%zu>", i);
		memcpy(nv + len, &sl, 8);
		memcpy(nv + len + 8, s, sl);
		len += 8 + sl;
	}
	uint64_t n_tok = (uint64_t)n_base_tokens + extra;
	memcpy(nv + 4, &n_tok, 8);
	kv_put(m, "tokenizer.ggml.tokens", GGUF_TYPE_ARRAY, nv, len);
	kv_del(m, "tokenizer.ggml.token_type");
	run(m, "tokenizer.ggml.tokens&token_embd|n_vocab", MODEL,
	    "key-tokenizer.ggml.tokens-more-than-token_embd-rows");
}

static void test_keys(void)
{
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const struct keyspec *k = &keys[i];
		struct mfile *m = fresh();
		kv_del(m, k->key);
		run(m, k->missing, k->owner, "key-%s-missing%s", k->key, k->missing ? "" : "-loads");
		wrong_types(k);
		out_of_range(k);
		duplicate(k);
	}
	inconsistent();
}

/* ---- tensor infos ---- */

static void test_tensor_infos(void)
{
	struct mfile *m;
	struct mti *t;
	m = fresh();
	t = ti_get(m, "blk.0.attn_q.weight");
	char *name = mf_keep(m, malloc(70000));
	memset(name, 'n', 70000);
	t->name = name;
	t->name_len = 70000;
	run(m, "limit", GG, "tensor-name-length-70000");
	m = fresh();
	ti_get(m, "blk.0.attn_q.weight")->name_len_field = UINT64_C(1) << 63;
	run(m, "string length", GG, "tensor-name-length-2^63");
	m = fresh();
	t = ti_get(m, "token_embd.weight");
	t->name = "token_embd.weight\0x";
	t->name_len = 19;
	run(m, "NUL", GG, "tensor-name-with-NUL");
	m = fresh();
	t = ti_get(m, "token_embd.weight");
	t->name_len = 0;
	run(m, "missing tensor 'token_embd.weight'", MODEL, "tensor-name-empty");
	m = fresh();
	t = ti_get(m, "blk.0.attn_k.weight");
	t->name = "blk.0.attn_q.weight";
	run(m, "duplicate tensor name 'blk.0.attn_q.weight'", GG, "tensor-name-duplicated");
	/* n_dims */
	const uint32_t nd[] = { 0, 5, 8, UINT32_MAX };
	for (int i = 0; i < 4; i++) {
		m = fresh();
		ti_get(m, "token_embd.weight")->n_dims = nd[i];
		run(m, nd[i] ? "n_dims" : "token_embd.weight", nd[i] ? GG : MODEL,
		    "tensor-n_dims-%u", nd[i]);
	}
	/* dims: the error names the tensor and, from the parser, the word */
	const char *q = "blk.0.attn_q.weight", *on = "output_norm.weight";
	const uint64_t G = UINT64_C(1) << 30;
	const struct { const char *what, *tensor; uint64_t ne0, ne1; const char *word; } dims[] = {
		{ "ne1-0", q, 32, 0, NULL },           /* the model's shape check */
		{ "ne0-0", on, 0, 1, NULL },
		{ "ne1-2^62", q, 32, G << 32, "overflow" },
		{ "ne0-2^62", on, G << 32, 1, "overflow" },
		{ "2^32x2^32", q, G << 2, G << 2, "overflow" },
		{ "ne1-2^63", q, 32, G << 33, "overflow" },
		{ "ne1-2^64-1", q, 32, UINT64_MAX, "overflow" },
		{ "ne1-2^40", q, 32, G << 10, "past file size" },
	};
	for (size_t i = 0; i < sizeof(dims) / sizeof(dims[0]); i++) {
		char needle[128];
		snprintf(needle, sizeof(needle), "%s%s%s", dims[i].tensor, dims[i].word ? "&" : "",
			 dims[i].word ? dims[i].word : "");
		m = fresh();
		t = ti_get(m, dims[i].tensor);
		ti_shape(t, t->n_dims, dims[i].ne0, dims[i].ne1, 1);
		run(m, needle, dims[i].word ? GG : MODEL, "tensor-%s-%s", dims[i].tensor, dims[i].what);
	}
	/* types */
	const uint32_t types[] = { 4, 5, 16, 39, 40, 1000, UINT32_MAX };
	for (int i = 0; i < 7; i++) {
		m = fresh();
		ti_get(m, "blk.0.attn_q.weight")->type = types[i];
		run(m, "unknown ggml type&blk.0.attn_q.weight", GG, "tensor-type-%u", types[i]);
	}
	m = fresh();
	ti_type(ti_get(m, "output_norm.weight"), GGML_TYPE_Q4_K);
	run(m, "multiple&output_norm.weight", GG, "tensor-type-q4_K-row-of-32");
	m = fresh();
	ti_type(ti_get(m, "blk.0.attn_q_norm.weight"), GGML_TYPE_Q8_0);
	run(m, "multiple&blk.0.attn_q_norm.weight", GG, "tensor-type-q8_0-row-of-8");
	m = fresh();
	ti_type(ti_get(m, "blk.0.attn_q.weight"), GGML_TYPE_I32);
	run(m, "blk.0.attn_q.weight", MODEL, "tensor-type-i32-matrix");
	m = fresh();
	ti_type(ti_get(m, "blk.0.ffn_up_exps.weight"), GGML_TYPE_I8);
	run(m, "blk.0.ffn_up_exps.weight", MODEL, "tensor-type-i8-experts");
	m = fresh();
	ti_type(ti_get(m, "blk.0.ffn_norm.weight"), GGML_TYPE_I16);
	run(m, "blk.0.ffn_norm.weight", MODEL, "tensor-type-i16-norm");
	/* offsets: relative to the data section, or to another tensor's (other);
	 * the error names the word, the tensor and, for overlaps, the other */
	const char *last = "blk.1.ffn_down_exps.weight";
	const struct { const char *what, *tensor, *other; int64_t off; const char *word; } offs[] = {
		{ "unaligned", "token_embd.weight", "token_embd.weight", 4, "not aligned" },
		{ "past-eof", last, NULL, INT64_C(1) << 40, "past file size" },
		{ "2^64-32", last, NULL, -32, "overflow" },
		{ "same-as-attn_q", "blk.0.attn_k.weight", q, 0, "overlap" },
		{ "inside-token_embd", "output.weight", "token_embd.weight", 1024, "overlap" },
		/* 128 bytes ending 32 bytes into attn_q */
		{ "across-next", "blk.0.attn_norm.weight", q, 32 - 128, "overlap" },
	};
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		char needle[160];
		bool overlap = !strcmp(offs[i].word, "overlap");
		snprintf(needle, sizeof(needle), "%s&%s%s%s", offs[i].word, offs[i].tensor,
			 overlap ? "&" : "", overlap ? offs[i].other : "");
		m = fresh();
		layout(m);
		for (int j = 0; j < m->nti; j++)
			m->ti[j].fixed_off = true; /* the others stay where they were */
		t = ti_get(m, offs[i].tensor);
		t->off = (offs[i].other ? ti_get(m, offs[i].other)->off : 0) + (uint64_t)offs[i].off;
		run(m, needle, GG, "tensor-offset-%s-%s", offs[i].tensor, offs[i].what);
	}
	m = fresh();
	m->cut = file_size_of(m) - 4096;
	run(m, "past file size", GG, "tensor-data-past-eof");
}

/* ---- shapes the model binds ---- */

static void test_shapes(void)
{
	struct mfile *m;
	for (int i = 0; i < base.nti; i++) {
		char name[96];
		snprintf(name, sizeof(name), "%.*s", (int)base.ti[i].name_len, base.ti[i].name);
		const char *owner = strcmp(name, "output.weight") ? MODEL : MODEL " (tied instead)";
		m = fresh();
		struct mti *t = ti_get(m, name);
		ti_shape(t, t->n_dims, t->ne[0] * 2, t->ne[1], t->ne[2]);
		run(m, name, owner, "shape-%s-ne0x2", name);
		if (t->n_dims >= 2) {
			m = fresh();
			t = ti_get(m, name);
			uint32_t d = t->n_dims - 1;
			uint64_t ne[3] = { t->ne[0], t->ne[1], t->ne[2] };
			ne[d]++;
			ti_shape(t, t->n_dims, ne[0], ne[1], ne[2]);
			bool embd = !strcmp(name, "token_embd.weight"); /* n_vocab: output disagrees */
			run(m, embd ? "output.weight|token_embd.weight" : name, owner,
			    "shape-%s-ne%u+1", name, d);
		}
		m = fresh();
		t = ti_get(m, name);
		ti_shape(t, t->n_dims + 1, t->ne[0], t->ne[1], t->ne[2]);
		t->ne[t->n_dims - 1] = 2;
		t->size = tsize(t->type, t->n_dims, t->ne);
		run(m, name, owner, "shape-%s-extra-dim", name);
		m = fresh();
		ti_del(m, name);
		bool tied = !strcmp(name, "output.weight");
		char word[128];
		snprintf(word, sizeof(word), "missing tensor '%s'", name);
		run(m, tied ? NULL : word, MODEL, "shape-%s-missing%s", name, tied ? "-tied-loads" : "");
	}
	m = fresh();
	struct mti *t = ti_get(m, "blk.0.attn_k.weight");
	ti_shape(t, 2, t->ne[1], t->ne[0], 1);
	run(m, "blk.0.attn_k.weight", MODEL, "shape-blk.0.attn_k.weight-transposed");
	/* tensors the architecture does not use */
	const struct { const char *name; uint32_t n_dims; uint64_t ne0, ne1; } extra[] = {
		{ "blk.0.ffn_gate_shexp.weight", 2, 32, 16 },
		{ "rope_freqs.weight", 1, 4, 1 },
		{ "token_embd_norm.weight", 1, 32, 1 },
		{ "blk.2.attn_norm.weight", 1, 32, 1 },      /* a layer >= block_count */
		{ "blk.99999.attn_norm.weight", 1, 32, 1 },
	};
	for (int i = 0; i < 5; i++) {
		m = fresh();
		ti_add(m, extra[i].name, extra[i].n_dims, extra[i].ne0, extra[i].ne1, 1);
		run(m, extra[i].name, MODEL, "shape-extra-%s", extra[i].name);
	}
}

/* n_head 65537 x head_dim 65536 = 2^32 + 65536, 65536 when wrapped in an int. */
static void test_overflow(void)
{
	struct mfile *m = fresh();
	kv_u32(m, "qwen3moe.attention.head_count", 65537);
	kv_u32(m, "qwen3moe.attention.head_count_kv", 65537);
	kv_u32(m, "qwen3moe.attention.key_length", 65536);
	kv_u32(m, "qwen3moe.attention.value_length", 65536);
	run(m, "heads|head_count|key_length", MODEL, "shape-n_head-65537-x-head_dim-65536");
	/* the same with tensors shaped as the wrapped products: only layer 0 */
	m = fresh();
	kv_u32(m, "qwen3moe.attention.head_count", 65537);
	kv_u32(m, "qwen3moe.attention.head_count_kv", 65537);
	kv_u32(m, "qwen3moe.attention.key_length", 65536);
	kv_u32(m, "qwen3moe.attention.value_length", 65536);
	kv_u32(m, "qwen3moe.block_count", 1);
	for (int i = m->nti - 1; i >= 0; i--)
		if (m->ti[i].name_len > 6 && !memcmp(m->ti[i].name, "blk.1.", 6))
			ti_del_at(m, i);
	static const char *const qk[] = { "blk.0.attn_q.weight", "blk.0.attn_k.weight",
					  "blk.0.attn_v.weight" };
	for (int i = 0; i < 3; i++) {
		struct mti *t = ti_get(m, qk[i]);
		t->type = GGML_TYPE_Q8_0;
		ti_shape(t, 2, 32, 65536, 1);
	}
	struct mti *t = ti_get(m, "blk.0.attn_output.weight");
	t->type = GGML_TYPE_Q8_0;
	ti_shape(t, 2, 65536, 32, 1);
	ti_shape(ti_get(m, "blk.0.attn_q_norm.weight"), 1, 65536, 1, 1);
	ti_shape(ti_get(m, "blk.0.attn_k_norm.weight"), 1, 65536, 1, 1);
	run(m, "heads|head_count|key_length", MODEL,
	    "shape-n_head-65537-x-head_dim-65536-wrapped-shapes");
}

/* head_dim 2048 and 4096 with a 1024-token context: must load and run two
 * tokens quickly (the ASan build once stalled for more than 30 s). */
static void test_big_head(void)
{
	const struct { uint32_t head_dim, n_head, n_head_kv; } cases[] = {
		{ 2048, 4, 2 }, { 4096, 1, 1 },
	};
	for (int c = 0; c < 2; c++) {
		struct mfile *m = fresh();
		uint64_t D = cases[c].head_dim, q = D * cases[c].n_head, kv = D * cases[c].n_head_kv;
		kv_u32(m, "qwen3moe.attention.head_count", cases[c].n_head);
		kv_u32(m, "qwen3moe.attention.head_count_kv", cases[c].n_head_kv);
		kv_u32(m, "qwen3moe.attention.key_length", (uint32_t)D);
		kv_u32(m, "qwen3moe.attention.value_length", (uint32_t)D);
		kv_u32(m, "qwen3moe.context_length", 1024); /* a 1024-token cache */
		for (int l = 0; l < 2; l++) {
			char nm[64];
#define T(s) (snprintf(nm, sizeof(nm), "blk.%d." s, l), ti_get(m, nm))
			ti_shape(T("attn_q.weight"), 2, 32, q, 1);
			ti_shape(T("attn_k.weight"), 2, 32, kv, 1);
			ti_shape(T("attn_v.weight"), 2, 32, kv, 1);
			ti_shape(T("attn_output.weight"), 2, q, 32, 1);
			ti_shape(T("attn_q_norm.weight"), 1, D, 1, 1);
			ti_shape(T("attn_k_norm.weight"), 1, D, 1, 1);
#undef T
		}
		run(m, NULL, MODEL, "shape-head_dim-%u-x-%u-heads-loads-quickly", (unsigned)D,
		    cases[c].n_head);
	}
}

/* ---- main ---- */

static void make_base(void)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/base-gen.gguf", t_tmpdir());
	struct fm_tiny_params p;
	fm_tiny_params_default(&p);
	p.n_layer = 2;
	p.n_embd = 32;
	p.n_head = 4;
	p.n_head_kv = 2;
	p.head_dim = 8;
	p.n_expert = 4;
	p.n_expert_used = 2;
	p.n_ff_expert = 16;
	p.n_vocab = 259;
	p.n_ctx = 64;
	struct fm_error err = { 0 };
	if (fm_gen_tiny(path, &p, &err))
		die(err.msg);
	FILE *fp = fopen(path, "rb");
	if (!fp || fseek(fp, 0, SEEK_END))
		die(path);
	long n = ftell(fp);
	uint8_t *bytes = mf_keep(&base, malloc((size_t)n));
	rewind(fp);
	if (fread(bytes, 1, (size_t)n, fp) != (size_t)n)
		die(path);
	fclose(fp);
	unlink(path);
	mf_parse(&base, bytes, (size_t)n);
	kv_u32(&base, "general.alignment", 32); /* smaller files: 32-byte layout */
	base.align = 32;
	n_base_tokens = p.n_vocab;
}

int main(void)
{
	R = mmap(NULL, BATCH * sizeof(*R), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		 -1, 0);
	if (R == MAP_FAILED)
		die("mmap");
	double t0 = now_ms();
	make_base();
	run(fresh(), NULL, GG, "base-loads");
	test_header();
	test_boundaries();
	test_sweep();
	test_values();
	test_keys();
	test_tensor_infos();
	test_shapes();
	test_overflow();
	test_big_head();
	flush();
	mf_release(&work);
	mf_release(&base);
	printf("\nclass        cases  ok  failing\n");
	for (int i = 0; i < n_classes; i++)
		printf("%-12s %5d %3d %8d\n", classes[i].name, classes[i].n, classes[i].n_ok,
		       classes[i].n - classes[i].n_ok);
	if (failed[0])
		printf("failing cases [owner]:\n%s", failed);
	printf("%.1f s\n", (now_ms() - t0) / 1e3);
	if (!getenv("KEEP"))
		rmdir(t_tmpdir());
	return t_done("test_gguf_mutate");
}
