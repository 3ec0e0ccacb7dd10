/* test_gguf_corrupt.c: the GGUF reader refuses malformed files cleanly
 * (src/gguf.c): NULL, FM_EFORMAT (FM_EUNSUPPORTED for nested arrays) and a
 * message that says what was wrong; never a crash (run it under ASan).
 *
 * 1. Truncation: every strict prefix of a hand-made file and of a writer-made
 *    file that cuts into the header or the tensor data fails (cutting only the
 *    writer's trailing padding must still open).
 * 2. Corruption: one field of a valid hand-made file patched per case (magic,
 *    versions, counts, lengths, types, dims, offsets, alignment, duplicates,
 *    NUL bytes in names, tensors whose data overlap).
 * 3. Random corruption: a few thousand random byte flips and u32/u64
 *    overwrites in the header of a writer-made file; each open either fails
 *    cleanly or yields a file whose every string and tensor lies inside it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "testutil.h"

/* ---- a byte builder for hand-made files ---- */

struct bb {
	uint8_t p[4096];
	size_t n;
};

static size_t bb_put(struct bb *b, const void *p, size_t n)
{
	size_t at = b->n;
	if (b->n + n <= sizeof(b->p)) {
		memcpy(b->p + b->n, p, n);
		b->n += n;
	}
	return at;
}

static size_t bb_u32(struct bb *b, uint32_t v) { return bb_put(b, &v, 4); }
static size_t bb_u64(struct bb *b, uint64_t v) { return bb_put(b, &v, 8); }

static size_t bb_str(struct bb *b, const char *s)
{
	size_t at = bb_u64(b, strlen(s));
	bb_put(b, s, strlen(s));
	return at;
}

/* Where each field of the base file lies, for the cases to patch. */
struct pos {
	size_t version, n_tensors, n_kv;
	size_t key0_len, name_type, name_len;       /* kv 0: general.name (string) */
	size_t align_type, align_val;               /* kv 1: general.alignment u32 */
	size_t cnt_type;                            /* kv 2: a.count1 u32 */
	size_t arr_type, arr_n, dup_key_last;       /* kv 3: a.count2 array of u32 */
	size_t t0_n_dims, t0_ne0, t0_ne1, t0_type, t0_off; /* tensor w1: f32 [8, 2] */
	size_t t1_name_last, t1_ne0, t1_off;        /* tensor w2: q8_0 [32] */
	size_t data_end;
};

/* A valid file: 4 keys, 2 tensors, alignment 32, no trailing padding. */
static void build_base(struct bb *b, struct pos *p)
{
	memset(b, 0, sizeof(*b));
	bb_put(b, "GGUF", 4);
	p->version = bb_u32(b, 3);
	p->n_tensors = bb_u64(b, 2);
	p->n_kv = bb_u64(b, 4);
	p->key0_len = bb_str(b, "general.name");
	p->name_type = bb_u32(b, GGUF_TYPE_STRING);
	p->name_len = bb_str(b, "tiny");
	bb_str(b, "general.alignment");
	p->align_type = bb_u32(b, GGUF_TYPE_UINT32);
	p->align_val = bb_u32(b, 32);
	bb_str(b, "a.count1");
	p->cnt_type = bb_u32(b, GGUF_TYPE_UINT32);
	bb_u32(b, 7);
	p->dup_key_last = bb_str(b, "a.count2") + 8 + 7;
	bb_u32(b, GGUF_TYPE_ARRAY);
	p->arr_type = bb_u32(b, GGUF_TYPE_UINT32);
	p->arr_n = bb_u64(b, 3);
	bb_put(b, "\1\0\0\0\2\0\0\0\3\0\0\0", 12);
	bb_str(b, "w1");
	p->t0_n_dims = bb_u32(b, 2);
	p->t0_ne0 = bb_u64(b, 8);
	p->t0_ne1 = bb_u64(b, 2);
	p->t0_type = bb_u32(b, GGML_TYPE_F32);
	p->t0_off = bb_u64(b, 0);
	p->t1_name_last = bb_str(b, "w2") + 8 + 1;
	bb_u32(b, 1);
	p->t1_ne0 = bb_u64(b, 32);
	bb_u32(b, GGML_TYPE_Q8_0);
	p->t1_off = bb_u64(b, 64);
	while (b->n % 32)
		b->p[b->n++] = 0;
	for (int i = 0; i < 64 + 34; i++)
		b->p[b->n++] = (uint8_t)i;
	p->data_end = b->n;
}

/* ---- files ---- */

static const char *tmp_path(const char *name)
{
	static char buf[512];
	snprintf(buf, sizeof(buf), "%s/%s", t_tmpdir(), name);
	return buf;
}

static void write_file(const char *path, const void *p, size_t n)
{
	FILE *fp = fopen(path, "wb");
	if (!fp || (n && fwrite(p, 1, n, fp) != n) || fclose(fp)) {
		perror(path);
		exit(1);
	}
}

/* Open bytes as a file; expect failure with code and a message with word. */
static void expect_fail(const char *what, const void *p, size_t n, int code, const char *word)
{
	const char *path = tmp_path("case.gguf");
	struct fm_error err = { 0 };
	write_file(path, p, n);
	struct gguf_file *f = gguf_open(path, &err);
	CHECK(f == NULL, "%s: opened", what);
	CHECK(err.code == code, "%s: code %d, expected %d (%s)", what, err.code, code, err.msg);
	CHECK(strstr(err.msg, word) != NULL, "%s: message lacks '%s': %s", what, word, err.msg);
	if (getenv("V"))
		printf("  %-22s %s\n", what, err.msg);
	gguf_close(f);
}

static void expect_ok(const char *what, const void *p, size_t n)
{
	const char *path = tmp_path("case.gguf");
	struct fm_error err = { 0 };
	write_file(path, p, n);
	struct gguf_file *f = gguf_open(path, &err);
	CHECK(f != NULL, "%s: %s", what, err.msg);
	gguf_close(f);
}

/* ---- 2. corruption cases ---- */

struct patch {
	const char *what;
	size_t pos_off;  /* offsetof(struct pos, field) */
	int width;       /* 1, 4 or 8 bytes */
	uint64_t value;
	int code;
	const char *word;
};

#define AT(field) offsetof(struct pos, field)
static const struct patch patches[] = {
	{ "wrong magic", (size_t)-1, 4, 0x4c4d4747, FM_EFORMAT, "magic" },
	{ "version 0", AT(version), 4, 0, FM_EFORMAT, "unsupported GGUF version 0" },
	{ "version 1", AT(version), 4, 1, FM_EFORMAT, "version 1" },
	{ "version 99", AT(version), 4, 99, FM_EFORMAT, "version 99" },
	{ "version big-endian", AT(version), 4, 0x03000000, FM_EFORMAT, "big-endian" },
	{ "n_tensors 2^63", AT(n_tensors), 8, UINT64_C(1) << 63, FM_EFORMAT, "n_tensors" },
	{ "n_kv 2^62", AT(n_kv), 8, UINT64_C(1) << 62, FM_EFORMAT, "n_kv" },
	{ "n_tensors+n_kv", AT(n_tensors), 8, 13, FM_EFORMAT, "both fit" },
	{ "n_kv too small", AT(n_kv), 8, 3, FM_EFORMAT, "n_dims 9" },
	{ "key length 2^64-1", AT(key0_len), 8, UINT64_MAX, FM_EFORMAT, "string length" },
	{ "key length 70000", AT(key0_len), 8, 70000, FM_EFORMAT, "limit" },
	{ "value length 2^64-1", AT(name_len), 8, UINT64_MAX, FM_EFORMAT, "string length" },
	{ "array count huge", AT(arr_n), 8, UINT64_C(1) << 61, FM_EFORMAT, "array count" },
	{ "array count +1", AT(arr_n), 8, 300, FM_EFORMAT, "array count" },
	{ "array type unknown", AT(arr_type), 4, 13, FM_EFORMAT, "unknown array element type" },
	{ "nested array", AT(arr_type), 4, GGUF_TYPE_ARRAY, FM_EUNSUPPORTED, "nested" },
	{ "string array short", AT(arr_type), 4, GGUF_TYPE_STRING, FM_EFORMAT, "string length" },
	{ "kv type unknown", AT(cnt_type), 4, 77, FM_EFORMAT, "unknown value type 77" },
	{ "n_dims 5", AT(t0_n_dims), 4, 5, FM_EFORMAT, "n_dims 5" },
	{ "ne product overflow", AT(t0_ne0), 8, UINT64_C(1) << 62, FM_EFORMAT, "overflow" },
	{ "ne[1] 2^64-1", AT(t0_ne1), 8, UINT64_MAX, FM_EFORMAT, "overflow" },
	{ "tensor type unknown", AT(t0_type), 4, 4, FM_EFORMAT, "unknown ggml type 4" },
	{ "tensor type 2^32-1", AT(t0_type), 4, UINT32_MAX, FM_EFORMAT, "unknown ggml type" },
	{ "not a block multiple", AT(t1_ne0), 8, 33, FM_EFORMAT, "multiple" },
	{ "offset not aligned", AT(t0_off), 8, 4, FM_EFORMAT, "not aligned" },
	{ "data past EOF", AT(t0_off), 8, 64, FM_EFORMAT, "past file size" },
	{ "offset 2^64-32", AT(t0_off), 8, UINT64_MAX - 31, FM_EFORMAT, "overflows" },
	{ "ne0 past EOF", AT(t0_ne0), 8, 800, FM_EFORMAT, "past file size" },
	{ "alignment 0", AT(align_val), 4, 0, FM_EFORMAT, "power of two" },
	{ "alignment 3", AT(align_val), 4, 3, FM_EFORMAT, "alignment" },
	{ "alignment 128", AT(align_val), 4, 128, FM_EFORMAT, "not aligned" },
	{ "alignment as f32", AT(align_type), 4, GGUF_TYPE_FLOAT32, FM_EFORMAT, "general.alignment" },
	{ "duplicate key", AT(dup_key_last), 1, '1', FM_EFORMAT, "duplicate key" },
	{ "duplicate tensor", AT(t1_name_last), 1, '1', FM_EFORMAT, "duplicate tensor" },
	{ "NUL in a key", AT(dup_key_last), 1, 0, FM_EFORMAT, "NUL byte at position 7" },
	{ "NUL in a tensor name", AT(t1_name_last), 1, 0, FM_EFORMAT, "NUL byte at position 1" },
	{ "data overlap", AT(t1_off), 8, 32, FM_EFORMAT, "overlaps tensor 'w1'" },
	{ "data at the same offset", AT(t1_off), 8, 0, FM_EFORMAT, "overlaps" },
};

static void apply(struct bb *b, const struct pos *p, const struct patch *c)
{
	size_t at = 0;
	if (c->pos_off != (size_t)-1)
		memcpy(&at, (const char *)p + c->pos_off, sizeof(at));
	memcpy(b->p + at, &c->value, (size_t)c->width); /* little-endian host */
}

static void test_corruption(void)
{
	struct bb b;
	struct pos p;
	build_base(&b, &p);
	expect_ok("base", b.p, b.n);
	for (size_t i = 0; i < sizeof(patches) / sizeof(patches[0]); i++) {
		build_base(&b, &p);
		apply(&b, &p, &patches[i]);
		expect_fail(patches[i].what, b.p, b.n, patches[i].code, patches[i].word);
	}
	build_base(&b, &p); /* alignment stored as i32 32: converted, accepted */
	b.p[p.align_type] = GGUF_TYPE_INT32;
	expect_ok("alignment as i32", b.p, b.n);
	build_base(&b, &p); /* a zero-sized tensor: ne = [8, 0] */
	memset(b.p + p.t0_ne1, 0, 8);
	expect_ok("zero-sized tensor", b.p, b.n);
	memset(b.p + p.t1_off, 0, 8); /* and w2 at its offset: an empty tensor holds no byte */
	expect_ok("zero-sized tensor sharing an offset", b.p, b.n);
	expect_fail("empty file", b.p, 0, FM_EFORMAT, "truncated");
}

/* ---- 1. truncation ---- */

/* Every prefix of bytes shorter than need must fail; longer ones must open. */
static void truncations(const char *what, const uint8_t *bytes, size_t n, size_t need)
{
	const char *path = tmp_path("trunc.gguf");
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, bytes, n) != (ssize_t)n) {
		perror(path);
		exit(1);
	}
	int bad = 0;
	for (size_t len = n; len-- > 0;) {
		struct fm_error err = { 0 };
		if (ftruncate(fd, (off_t)len) < 0) {
			perror("ftruncate");
			exit(1);
		}
		struct gguf_file *f = gguf_open(path, &err);
		bool ok = len >= need ? f != NULL
				      : !f && err.code == FM_EFORMAT && err.msg[0];
		if (!ok && bad++ < 5)
			CHECK(0, "%s cut at %zu of %zu (data ends at %zu): %s", what, len, n, need,
			      f ? "opened" : err.msg);
		gguf_close(f);
	}
	close(fd);
	printf("truncation: %s, %zu prefixes, %d wrong\n", what, n, bad);
}

/* A writer-made file with strings, arrays and three tensors; *need set to
 * where its last tensor's data ends (the file's trailing padding follows),
 * *header to where its data section starts. */
static uint8_t *writer_file(size_t *n, size_t *need, size_t *header)
{
	const char *path = tmp_path("w.gguf");
	struct gguf_writer *w = gguf_writer_new(32);
	const char *toks[] = { "a", "bb", "", "dddd" };
	const uint32_t arr[3] = { 1, 2, 3 };
	const uint64_t ne_a[2] = { 32, 3 }, ne_b[1] = { 5 }, ne_c[3] = { 3, 1, 1 };
	uint8_t data[3 * 34] = { 0 };
	struct fm_error err = { 0 };
	gguf_writer_set_str(w, "general.architecture", "qwen3moe");
	gguf_writer_set_u32(w, "qwen3moe.block_count", 2);
	gguf_writer_set_f32(w, "qwen3moe.rope.freq_base", 1e6f);
	gguf_writer_set_arr(w, "x.arr", GGUF_TYPE_UINT32, arr, 3);
	gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, 4);
	gguf_writer_add_tensor(w, "blk.0.ffn_up_exps.weight", GGML_TYPE_Q8_0, 2, ne_a);
	gguf_writer_add_tensor(w, "blk.0.attn_norm.weight", GGML_TYPE_F32, 1, ne_b);
	gguf_writer_add_tensor(w, "output_norm.weight", GGML_TYPE_F16, 3, ne_c);
	int rc = gguf_writer_open(w, path, &err);
	rc = rc ? rc : gguf_writer_write_tensor(w, 0, data, 3 * 34, &err);
	rc = rc ? rc : gguf_writer_write_tensor(w, 1, data, 20, &err);
	rc = rc ? rc : gguf_writer_write_tensor(w, 2, data, 6, &err);
	rc = rc ? rc : gguf_writer_finish(w, &err);
	gguf_writer_free(w);
	struct gguf_file *f = rc ? NULL : gguf_open(path, &err);
	if (!f) {
		fprintf(stderr, "writer_file: %s\n", err.msg);
		exit(1);
	}
	*need = gguf_tensor(f, 2)->offset + gguf_tensor(f, 2)->size_bytes;
	*n = gguf_file_size(f);
	*header = gguf_data_offset(f);
	uint8_t *bytes = malloc(*n);
	memcpy(bytes, (const uint8_t *)gguf_tensor_data(f, 0) - gguf_tensor(f, 0)->offset, *n);
	gguf_close(f);
	return bytes;
}

static void test_truncation(void)
{
	struct bb b;
	struct pos p;
	build_base(&b, &p);
	truncations("hand-made", b.p, b.n, b.n);
	size_t n, need, header;
	uint8_t *bytes = writer_file(&n, &need, &header);
	CHECK(need < n, "writer file has no trailing padding (%zu of %zu)", need, n);
	truncations("writer-made", bytes, n, need);
	free(bytes);
}

/* ---- 3. random corruption ---- */

/* An opened file must be internally consistent: touch everything it points to. */
static void walk(const struct gguf_file *f, const uint8_t *lo, const uint8_t *hi)
{
	for (uint64_t i = 0; i < gguf_n_kv(f); i++) {
		CHECK(gguf_kv_key(f, i) != NULL, "kv %llu has no key", (unsigned long long)i);
		if (gguf_kv_type(f, i) != GGUF_TYPE_ARRAY || gguf_kv_arr_type(f, i) != GGUF_TYPE_STRING)
			continue;
		for (uint64_t j = 0; j < gguf_kv_arr_n(f, i); j++) {
			struct gguf_str s = gguf_kv_arr_str(f, i, j);
			bool inside = (const uint8_t *)s.ptr >= lo && s.len <= (uint64_t)(hi - (const uint8_t *)s.ptr);
			CHECK(inside, "string %llu.%llu outside the file", (unsigned long long)i,
			      (unsigned long long)j);
		}
	}
	for (uint64_t i = 0; i < gguf_n_tensors(f); i++) {
		const struct gguf_tensor_info *t = gguf_tensor(f, i);
		CHECK(t->offset % gguf_alignment(f) == 0 && t->offset <= gguf_file_size(f) &&
		      t->size_bytes <= gguf_file_size(f) - t->offset, "tensor %llu outside",
		      (unsigned long long)i);
	}
}

static uint64_t interesting(struct t_rng *r, uint64_t file_size)
{
	static const uint64_t vals[] = { 0, 1, 2, 3, 4, 5, 8, 9, 12, 13, 31, 32, 33, 255, 4096,
					 UINT32_MAX, (uint64_t)1 << 32, (uint64_t)1 << 63,
					 UINT64_MAX, UINT64_MAX - 1, INT64_MAX };
	uint64_t k = t_rand_u64(r) % (sizeof(vals) / sizeof(vals[0]) + 2);
	if (k == sizeof(vals) / sizeof(vals[0]))
		return file_size - t_rand_u64(r) % 64;
	if (k > sizeof(vals) / sizeof(vals[0]))
		return t_rand_u64(r);
	return vals[k];
}

static void mutate(struct t_rng *r, uint8_t *p, size_t n, size_t header)
{
	int mode = (int)(t_rand_u64(r) % 3), n_mut = 1 + (int)(t_rand_u64(r) % 3);
	for (int m = 0; m < n_mut; m++) {
		size_t at = (size_t)(t_rand_u64(r) % header);
		uint64_t v = interesting(r, n);
		if (mode == 0)
			p[at] ^= (uint8_t)(1u << (t_rand_u64(r) % 8));
		else if (mode == 1 && at + 4 <= n)
			memcpy(p + at, &v, 4);
		else if (at + 8 <= n)
			memcpy(p + at, &v, 8);
	}
}

static void test_random(int iters)
{
	size_t n, need, header;
	uint8_t *base = writer_file(&n, &need, &header), *p = malloc(n);
	struct t_rng r = { 12345 };
	const char *path = tmp_path("rand.gguf");
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644), n_ok = 0, n_unsup = 0;
	for (int it = 0; it < iters && fd >= 0; it++) {
		memcpy(p, base, n);
		mutate(&r, p, n, header);
		if (pwrite(fd, p, n, 0) != (ssize_t)n)
			break;
		struct fm_error err = { 0 };
		struct gguf_file *f = gguf_open(path, &err);
		if (f) {
			n_ok++;
			const uint8_t *lo = gguf_n_tensors(f) ?
				(const uint8_t *)gguf_tensor_data(f, 0) - gguf_tensor(f, 0)->offset : NULL;
			if (lo)
				walk(f, lo, lo + n);
		} else {
			n_unsup += err.code == FM_EUNSUPPORTED;
			CHECK((err.code == FM_EFORMAT || err.code == FM_EUNSUPPORTED) && err.msg[0] &&
			      (err.offset == UINT64_MAX || err.offset <= n),
			      "iteration %d: code %d offset %llu msg '%s'", it, err.code,
			      (unsigned long long)err.offset, err.msg);
		}
		gguf_close(f);
	}
	printf("random corruption: %d files, %d opened, %d unsupported, %d malformed\n", iters,
	       n_ok, n_unsup, iters - n_ok - n_unsup);
	if (fd >= 0)
		close(fd);
	free(p);
	free(base);
}

/* Remove what the tests wrote (KEEP=1 keeps it, e.g. as a fuzz corpus). */
static void cleanup(void)
{
	static const char *const names[] = { "case.gguf", "trunc.gguf", "w.gguf", "rand.gguf" };
	if (getenv("KEEP")) {
		printf("files kept in %s\n", t_tmpdir());
		return;
	}
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		unlink(tmp_path(names[i]));
	rmdir(t_tmpdir());
}

int main(int argc, char **argv)
{
	int iters = argc > 1 ? atoi(argv[1]) : 10000;
	test_corruption();
	test_truncation();
	test_random(iters);
	cleanup();
	return t_done("test_gguf_corrupt");
}
