/* test_gguf.c: the GGUF writer and reader agree (src/gguf.c, src/gguf_write.c).
 *
 * 1. Round trip, alignment 32 and 4096: a key of every scalar type, a string,
 *    arrays of every element type (strings and an empty one included) and
 *    tensors of f32/f16/q8_0/q4_K with 1..4 dims (one of size 0) come back
 *    identical: values, elements, infos, aligned offsets, data bytes.
 * 2. The typed getters convert integer widths only when the value fits.
 * 3. Writer misuse (order, sizes, duplicates, unfinished files) and write
 *    errors (RLIMIT_FSIZE makes write() fail with EFBIG) leave no file behind.
 * 4. Lookups in a 3000-tensor, 150k-string file; prints open and lookup times.
 * Malformed files are test_gguf_corrupt.c's job.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "gguf.h"
#include "testutil.h"
#include "util.h"

#define N_SCALARS 11
#define N_TENSORS 6

static const enum gguf_type scalar_types[N_SCALARS] = {
	GGUF_TYPE_UINT8, GGUF_TYPE_INT8, GGUF_TYPE_UINT16, GGUF_TYPE_INT16,
	GGUF_TYPE_UINT32, GGUF_TYPE_INT32, GGUF_TYPE_FLOAT32, GGUF_TYPE_BOOL,
	GGUF_TYPE_UINT64, GGUF_TYPE_INT64, GGUF_TYPE_FLOAT64,
};

/* One value per scalar type, as the bytes the file stores. */
struct scalars {
	uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32;
	float f32; uint8_t b; uint64_t u64; int64_t i64; double f64;
};
static const struct scalars sv = {
	200, -100, 60000, -30000, 4000000000u, -2000000000, 3.25f, 1,
	(UINT64_C(1) << 63) + 5, INT64_MIN + 1, -1.0 / 3.0,
};
static const void *const scalar_ptrs[N_SCALARS] = {
	&sv.u8, &sv.i8, &sv.u16, &sv.i16, &sv.u32, &sv.i32, &sv.f32, &sv.b,
	&sv.u64, &sv.i64, &sv.f64,
};

struct tdecl {
	const char *name;
	enum ggml_type type;
	uint32_t n_dims;
	uint64_t ne[4];
	uint64_t size_bytes; /* expected */
};
/* The last is small and odd-sized so the file ends in trailing padding. */
static const struct tdecl tensors[N_TENSORS] = {
	{ "blk.0.ffn_gate_exps.weight", GGML_TYPE_Q8_0, 3, { 64, 2, 3, 1 }, 2 * 34 * 6 },
	{ "blk.0.ffn_down_exps.weight", GGML_TYPE_Q4_K, 4, { 256, 2, 1, 2 }, 144 * 4 },
	{ "empty", GGML_TYPE_F16, 2, { 0, 5, 1, 1 }, 0 },
	{ "blk.0.attn_q.weight", GGML_TYPE_F16, 2, { 5, 3, 1, 1 }, 30 },
	{ "output.weight", GGML_TYPE_Q4_K, 2, { 512, 3, 1, 1 }, 2 * 144 * 3 },
	{ "token_embd.weight", GGML_TYPE_F32, 1, { 7, 1, 1, 1 }, 28 },
};

static const char *const strs[] = { "", "hello", "a\0b", "ünïcödé", "x" };
static const uint64_t str_lens[] = { 0, 5, 3, 11, 1 };

static char *path_in_tmp(const char *name)
{
	static char buf[4][512];
	static int k;
	char *p = buf[k++ % 4];
	snprintf(p, 512, "%s/%s", t_tmpdir(), name);
	return p;
}

static bool file_exists(const char *path)
{
	return access(path, F_OK) == 0;
}

static void fill_random(struct t_rng *r, uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)t_rand_u64(r);
}

/* Array data for element type t: 7 elements (bools 0/1). */
static void arr_data(struct t_rng *r, enum gguf_type t, uint8_t *out)
{
	fill_random(r, out, 7 * gguf_type_size(t));
	if (t == GGUF_TYPE_BOOL)
		for (int i = 0; i < 7; i++)
			out[i] &= 1;
}

static void set_keys(struct gguf_writer *w, uint8_t arrs[N_SCALARS][56])
{
	char key[64];
	for (int i = 0; i < N_SCALARS; i++) {
		snprintf(key, sizeof(key), "test.scalar.%s", gguf_type_name(scalar_types[i]));
		CHECK(gguf_writer_set_scalar(w, key, scalar_types[i], scalar_ptrs[i]) == 0, "%s", key);
		snprintf(key, sizeof(key), "test.array.%s", gguf_type_name(scalar_types[i]));
		CHECK(gguf_writer_set_arr(w, key, scalar_types[i], arrs[i], 7) == 0, "%s", key);
	}
	CHECK(gguf_writer_set_str(w, "general.name", "flashmoe test") == 0, "str");
	CHECK(gguf_writer_set_arr(w, "test.array.empty", GGUF_TYPE_UINT32, NULL, 0) == 0, "empty");
	CHECK(gguf_writer_set_arr_str(w, "test.array.str", strs, str_lens, 5) == 0, "arr str");
	const char *z[] = { "one", "two" };
	CHECK(gguf_writer_set_arr_str(w, "test.array.strz", z, NULL, 2) == 0, "arr strz");
	CHECK(gguf_writer_set_arr_str(w, "test.array.str0", NULL, NULL, 0) == 0, "arr str0");
	/* set twice: the last value wins, the key stays once */
	CHECK(gguf_writer_set_u32(w, "test.twice", 1) == 0, "twice");
	CHECK(gguf_writer_set_str(w, "test.twice", "second") == 0, "twice");
}

static int write_sample(const char *path, uint32_t align, uint8_t arrs[N_SCALARS][56],
			uint8_t *data[N_TENSORS])
{
	struct fm_error err = { 0 };
	struct gguf_writer *w = gguf_writer_new(align);
	CHECK(w != NULL, "writer_new(%u)", align);
	if (!w)
		return -1;
	set_keys(w, arrs);
	for (int i = 0; i < N_TENSORS; i++) {
		const struct tdecl *d = &tensors[i];
		CHECK(gguf_writer_add_tensor(w, d->name, d->type, d->n_dims, d->ne) == i, "add %s",
		      d->name);
	}
	int rc = gguf_writer_open(w, path, &err);
	CHECK(rc == 0, "writer_open: %s", err.msg);
	for (int i = 0; i < N_TENSORS && !rc; i++) {
		rc = gguf_writer_write_tensor(w, i, data[i], tensors[i].size_bytes, &err);
		CHECK(rc == 0, "write_tensor %d: %s", i, err.msg);
	}
	CHECK(!file_exists(path), "%s exists before finish", path);
	if (!rc)
		rc = gguf_writer_finish(w, &err);
	CHECK(rc == 0, "finish: %s", err.msg);
	gguf_writer_free(w);
	return rc;
}

static void check_scalars(const struct gguf_file *f)
{
	char key[64];
	for (int i = 0; i < N_SCALARS; i++) {
		snprintf(key, sizeof(key), "test.scalar.%s", gguf_type_name(scalar_types[i]));
		int64_t k = gguf_find_key(f, key);
		CHECK(k >= 0 && gguf_kv_type(f, k) == scalar_types[i], "%s type", key);
	}
	struct fm_error err = { 0 };
	uint32_t u32 = 0;
	uint64_t u64 = 0;
	int64_t i64 = 0;
	double f64 = 0;
	float f32 = 0;
	bool b = false;
	CHECK(!gguf_get_u32(f, "test.scalar.u8", &u32, &err) && u32 == 200, "u8");
	CHECK(!gguf_get_i64(f, "test.scalar.i8", &i64, &err) && i64 == -100, "i8");
	CHECK(!gguf_get_u32(f, "test.scalar.u16", &u32, &err) && u32 == 60000, "u16");
	CHECK(!gguf_get_i64(f, "test.scalar.i16", &i64, &err) && i64 == -30000, "i16");
	CHECK(!gguf_get_u32(f, "test.scalar.u32", &u32, &err) && u32 == 4000000000u, "u32");
	CHECK(!gguf_get_i64(f, "test.scalar.i32", &i64, &err) && i64 == -2000000000, "i32");
	CHECK(!gguf_get_f32(f, "test.scalar.f32", &f32, &err) && f32 == 3.25f, "f32");
	CHECK(!gguf_get_bool(f, "test.scalar.bool", &b, &err) && b, "bool");
	CHECK(!gguf_get_u64(f, "test.scalar.u64", &u64, &err) && u64 == sv.u64, "u64");
	CHECK(!gguf_get_i64(f, "test.scalar.i64", &i64, &err) && i64 == sv.i64, "i64");
	CHECK(!gguf_get_f64(f, "test.scalar.f64", &f64, &err) && f64 == sv.f64, "f64");
	struct gguf_str s;
	CHECK(!gguf_get_str(f, "general.name", &s, &err) && s.len == 13 &&
	      !memcmp(s.ptr, "flashmoe test", 13), "general.name");
	CHECK(!gguf_get_str(f, "test.twice", &s, &err) && s.len == 6 && !memcmp(s.ptr, "second", 6),
	      "key set twice keeps the last value");
}

static void check_str_array(const struct gguf_file *f)
{
	int64_t k = gguf_find_key(f, "test.array.str");
	CHECK(k >= 0 && gguf_kv_arr_type(f, k) == GGUF_TYPE_STRING && gguf_kv_arr_n(f, k) == 5,
	      "string array");
	for (uint64_t j = 0; k >= 0 && j < 5; j++) {
		struct gguf_str s = gguf_kv_arr_str(f, k, j);
		CHECK(s.len == str_lens[j] && !memcmp(s.ptr, strs[j], s.len), "string %llu",
		      (unsigned long long)j);
	}
	CHECK(gguf_kv_arr_str(f, k, 5).len == 0, "string out of range");
	k = gguf_find_key(f, "test.array.strz");
	CHECK(k >= 0 && gguf_kv_arr_n(f, k) == 2 && gguf_kv_arr_str(f, k, 1).len == 3 &&
	      !memcmp(gguf_kv_arr_str(f, k, 1).ptr, "two", 3), "NUL-terminated strings");
	k = gguf_find_key(f, "test.array.str0");
	CHECK(k >= 0 && gguf_kv_arr_n(f, k) == 0 && gguf_kv_arr_type(f, k) == GGUF_TYPE_STRING,
	      "empty string array");
	k = gguf_find_key(f, "test.array.empty");
	CHECK(k >= 0 && gguf_kv_arr_n(f, k) == 0 && gguf_kv_arr_type(f, k) == GGUF_TYPE_UINT32,
	      "empty array");
}

static void check_arrays(const struct gguf_file *f, uint8_t arrs[N_SCALARS][56])
{
	char key[64];
	for (int i = 0; i < N_SCALARS; i++) {
		snprintf(key, sizeof(key), "test.array.%s", gguf_type_name(scalar_types[i]));
		int64_t k = gguf_find_key(f, key);
		CHECK(k >= 0, "%s missing", key);
		if (k < 0)
			continue;
		CHECK(gguf_kv_type(f, k) == GGUF_TYPE_ARRAY && gguf_kv_arr_n(f, k) == 7 &&
		      gguf_kv_arr_type(f, k) == scalar_types[i], "%s header", key);
		const void *d = gguf_kv_arr_data(f, k);
		CHECK(d && !memcmp(d, arrs[i], 7 * gguf_type_size(scalar_types[i])), "%s data", key);
	}
	check_str_array(f);
}

static void check_tensors(const struct gguf_file *f, uint32_t align, uint8_t *data[N_TENSORS])
{
	CHECK(gguf_n_tensors(f) == N_TENSORS, "n_tensors %llu", (unsigned long long)gguf_n_tensors(f));
	CHECK(gguf_data_offset(f) % align == 0, "data offset %llu",
	      (unsigned long long)gguf_data_offset(f));
	for (int i = 0; i < N_TENSORS && gguf_n_tensors(f) == N_TENSORS; i++) {
		const struct tdecl *d = &tensors[i];
		const struct gguf_tensor_info *t = gguf_tensor(f, i);
		CHECK(gguf_find_tensor(f, d->name) == i, "find %s", d->name);
		CHECK(!strcmp(t->name_z, d->name) && t->name.len == strlen(d->name), "name %d", i);
		CHECK(t->type == (uint32_t)d->type && t->n_dims == d->n_dims, "%s type/dims", d->name);
		CHECK(!memcmp(t->ne, d->ne, sizeof(t->ne)), "%s ne", d->name);
		CHECK(t->size_bytes == d->size_bytes, "%s size %llu", d->name,
		      (unsigned long long)t->size_bytes);
		CHECK(t->offset % align == 0 && t->offset >= gguf_data_offset(f), "%s offset %llu",
		      d->name, (unsigned long long)t->offset);
		CHECK(!d->size_bytes || !memcmp(gguf_tensor_data(f, i), data[i], d->size_bytes),
		      "%s data", d->name);
	}
	CHECK(gguf_find_tensor(f, "absent") == -1 && gguf_tensor(f, N_TENSORS) == NULL, "absent");
	CHECK(gguf_file_size(f) % align == 0, "file not padded to %u: %llu", align,
	      (unsigned long long)gguf_file_size(f));
}

static void test_round_trip(uint32_t align)
{
	struct t_rng r = { align };
	uint8_t arrs[N_SCALARS][56];
	uint8_t *data[N_TENSORS];
	for (int i = 0; i < N_SCALARS; i++)
		arr_data(&r, scalar_types[i], arrs[i]);
	for (int i = 0; i < N_TENSORS; i++) {
		data[i] = malloc(tensors[i].size_bytes + 1);
		fill_random(&r, data[i], tensors[i].size_bytes);
	}
	char name[64];
	snprintf(name, sizeof(name), "rt%u.gguf", align);
	const char *path = path_in_tmp(name);
	if (write_sample(path, align, arrs, data) == 0) {
		char tmp[600];
		snprintf(tmp, sizeof(tmp), "%s.tmp", path);
		CHECK(!file_exists(tmp), "%s left behind", tmp);
		struct fm_error err = { 0 };
		struct gguf_file *f = gguf_open(path, &err);
		CHECK(f != NULL, "open: %s", err.msg);
		if (f) {
			uint32_t a = 0;
			CHECK(gguf_version(f) == 3 && gguf_alignment(f) == align, "version/alignment");
			int rc = gguf_get_u32(f, "general.alignment", &a, &err);
			CHECK(align == 32 ? rc == FM_ENOTFOUND : (rc == 0 && a == align),
			      "general.alignment key (rc %d)", rc);
			check_scalars(f);
			check_arrays(f, arrs);
			check_tensors(f, align, data);
		}
		gguf_close(f);
	}
	for (int i = 0; i < N_TENSORS; i++)
		free(data[i]);
}

/* Expect a getter to fail with FM_EFORMAT and a message containing word. */
static void expect_getter_err(int rc, const struct fm_error *err, const char *word,
			      const char *what)
{
	CHECK(rc == FM_EFORMAT && strstr(err->msg, word), "%s: rc %d msg '%s'", what, rc, err->msg);
}

static void test_getters(void)
{
	struct fm_error err = { 0 };
	struct gguf_file *f = gguf_open(path_in_tmp("rt32.gguf"), &err);
	CHECK(f != NULL, "open: %s", err.msg);
	if (!f)
		return;
	uint32_t u32;
	uint64_t u64;
	int64_t i64;
	float f32;
	bool b;
	struct gguf_str s;
	expect_getter_err(gguf_get_u32(f, "test.scalar.i8", &u32, &err), &err, "does not fit", "i8->u32");
	expect_getter_err(gguf_get_u32(f, "test.scalar.u64", &u32, &err), &err, "does not fit", "u64->u32");
	expect_getter_err(gguf_get_u64(f, "test.scalar.i64", &u64, &err), &err, "does not fit", "i64->u64");
	expect_getter_err(gguf_get_i64(f, "test.scalar.u64", &i64, &err), &err, "does not fit", "u64->i64");
	expect_getter_err(gguf_get_f32(f, "test.scalar.u32", &f32, &err), &err, "has type u32", "u32->f32");
	expect_getter_err(gguf_get_bool(f, "test.scalar.u8", &b, &err), &err, "expected bool", "u8->bool");
	expect_getter_err(gguf_get_str(f, "test.array.str", &s, &err), &err, "has type array", "arr->str");
	expect_getter_err(gguf_get_u32(f, "general.name", &u32, &err), &err, "has type string", "str->u32");
	CHECK(gguf_get_u32(f, "absent.key", &u32, &err) == FM_ENOTFOUND && strstr(err.msg, "absent.key"),
	      "absent key: %s", err.msg);
	CHECK(!gguf_get_i64(f, "test.scalar.u32", &i64, &err) && i64 == 4000000000, "u32->i64");
	CHECK(!gguf_get_u64(f, "test.scalar.u8", &u64, &err) && u64 == 200, "u8->u64");
	CHECK(!gguf_get_f32(f, "test.scalar.f64", &f32, &err) && f32 == (float)sv.f64, "f64->f32");
	CHECK(gguf_find_key(f, NULL) == -1 && gguf_kv_key(f, gguf_n_kv(f)) == NULL, "bad index");
	CHECK(gguf_kv_arr_data(f, gguf_find_key(f, "general.name")) == NULL, "not an array");
	gguf_close(f);
}

/* A writer with two f32 tensors "a" [8] and "b" [4, 2]. */
static struct gguf_writer *small_writer(void)
{
	struct gguf_writer *w = gguf_writer_new(32);
	const uint64_t ne_a[1] = { 8 }, ne_b[2] = { 4, 2 };
	if (w && (gguf_writer_add_tensor(w, "a", GGML_TYPE_F32, 1, ne_a) != 0 ||
		  gguf_writer_add_tensor(w, "b", GGML_TYPE_F32, 2, ne_b) != 1)) {
		gguf_writer_free(w);
		return NULL;
	}
	return w;
}

static void test_writer_misuse(void)
{
	const uint64_t ne[4] = { 33, 1, 1, 1 };
	CHECK(gguf_writer_new(0) == NULL && gguf_writer_new(3) == NULL, "bad alignment accepted");
	struct gguf_writer *w = small_writer();
	CHECK(w != NULL, "small writer");
	if (!w)
		return;
	char *long_key = calloc(70000, 1);
	memset(long_key, 'k', 69999);
	CHECK(gguf_writer_set_u32(w, long_key, 1) == FM_EINVAL, "65 KiB key accepted");
	free(long_key);
	CHECK(gguf_writer_add_tensor(w, "a", GGML_TYPE_F32, 1, ne) < 0, "duplicate tensor name");
	CHECK(gguf_writer_add_tensor(w, "q", GGML_TYPE_Q8_0, 1, ne) < 0, "33 not a block multiple");
	CHECK(gguf_writer_add_tensor(w, "u", (enum ggml_type)4, 1, ne) < 0, "unknown type");
	CHECK(gguf_writer_add_tensor(w, "d", GGML_TYPE_F32, 5, ne) < 0, "5 dims");
	CHECK(gguf_writer_set_arr(w, "s", GGUF_TYPE_STRING, "x", 1) == FM_EINVAL, "string via set_arr");
	CHECK(gguf_writer_set_scalar(w, "s", GGUF_TYPE_ARRAY, "x") == FM_EINVAL, "array scalar");

	struct fm_error err = { 0 };
	const char *path = path_in_tmp("misuse.gguf");
	float buf[8] = { 0 };
	CHECK(gguf_writer_open(w, path, &err) == 0, "open: %s", err.msg);
	CHECK(gguf_writer_set_u32(w, "late", 1) == FM_EINVAL, "key set after open");
	int rc = gguf_writer_write_tensor(w, 1, buf, 32, &err);
	CHECK(rc == FM_EINVAL && strstr(err.msg, "out of order"), "order: %d %s", rc, err.msg);
	rc = gguf_writer_write_tensor(w, 0, buf, 31, &err);
	CHECK(rc == FM_EINVAL && strstr(err.msg, "declared"), "size: %d %s", rc, err.msg);
	CHECK(gguf_writer_write_tensor(w, 0, buf, 32, &err) == 0, "write a: %s", err.msg);
	rc = gguf_writer_finish(w, &err);
	CHECK(rc == FM_EINVAL && strstr(err.msg, "1 of 2"), "early finish: %d %s", rc, err.msg);
	gguf_writer_free(w);
	char tmp[600];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	CHECK(!file_exists(path) && !file_exists(tmp), "unfinished file left behind");

	w = gguf_writer_new(32);
	CHECK(w && gguf_writer_set_u32(w, "general.alignment", 64) == 0, "set alignment");
	rc = gguf_writer_open(w, path, &err);
	CHECK(rc == FM_EINVAL && strstr(err.msg, "alignment"), "alignment clash: %d %s", rc, err.msg);
	gguf_writer_free(w);
	w = small_writer();
	rc = gguf_writer_open(w, path_in_tmp("no/such/dir.gguf"), &err);
	CHECK(rc == -ENOENT && strstr(err.msg, "cannot create"), "bad dir: %d %s", rc, err.msg);
	gguf_writer_free(w);
}

/* With RLIMIT_FSIZE below the file size, write() fails with EFBIG, as it would
 * with ENOSPC: the error must say so and no file may be left behind. */
static void test_write_error(void)
{
	struct rlimit old, lim;
	if (getrlimit(RLIMIT_FSIZE, &old) < 0) {
		printf("write-error test skipped: getrlimit failed\n");
		return;
	}
	lim = old;
	lim.rlim_cur = 64 * 1024;
	signal(SIGXFSZ, SIG_IGN);
	if (setrlimit(RLIMIT_FSIZE, &lim) < 0) {
		printf("write-error test skipped: setrlimit failed\n");
		return;
	}
	struct gguf_writer *w = gguf_writer_new(32);
	const uint64_t ne[1] = { 1 << 18 }; /* 1 MiB of f32 */
	float *big = calloc(1 << 18, sizeof(float));
	struct fm_error err = { 0 };
	const char *path = path_in_tmp("full.gguf");
	CHECK(w && big && gguf_writer_add_tensor(w, "big", GGML_TYPE_F32, 1, ne) == 0, "setup");
	CHECK(gguf_writer_open(w, path, &err) == 0, "open: %s", err.msg);
	int rc = gguf_writer_write_tensor(w, 0, big, 1 << 20, &err);
	CHECK(rc == -EFBIG && strstr(err.msg, "write failed") && strstr(err.msg, "full.gguf.tmp"),
	      "EFBIG: rc %d msg '%s'", rc, err.msg);
	rc = gguf_writer_finish(w, &err);
	CHECK(rc == -EFBIG && strstr(err.msg, "earlier write failed"), "finish: %d %s", rc, err.msg);
	gguf_writer_free(w);
	free(big);
	setrlimit(RLIMIT_FSIZE, &old);
	char tmp[600];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	CHECK(!file_exists(path) && !file_exists(tmp), "failed file left behind");
}

#define N_MANY 3000
#define N_VOCAB 150000

static void write_many(const char *path)
{
	struct gguf_writer *w = gguf_writer_new(32);
	char name[64];
	const uint64_t ne[2] = { 1, 1 };
	char (*tok)[16] = malloc(N_VOCAB * sizeof(*tok));
	const char **toks = malloc(N_VOCAB * sizeof(*toks));
	for (int i = 0; i < N_VOCAB; i++) {
		snprintf(tok[i], sizeof(tok[i]), "tok%d", i);
		toks[i] = tok[i];
	}
	CHECK(gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, NULL, N_VOCAB) == 0, "vocab");
	for (int i = 0; i < N_MANY; i++) {
		snprintf(name, sizeof(name), "blk.%d.ffn_up_exps.weight", i);
		CHECK(gguf_writer_add_tensor(w, name, GGML_TYPE_F32, 2, ne) == i, "add %d", i);
	}
	struct fm_error err = { 0 };
	float v = 0;
	int rc = gguf_writer_open(w, path, &err);
	for (int i = 0; i < N_MANY && !rc; i++, v += 1)
		rc = gguf_writer_write_tensor(w, i, &v, 4, &err);
	CHECK(!rc && !gguf_writer_finish(w, &err), "many: %s", err.msg);
	gguf_writer_free(w);
	free(toks);
	free(tok);
}

static void test_many(void)
{
	const char *path = path_in_tmp("many.gguf");
	write_many(path);
	struct fm_error err = { 0 };
	double t0 = fm_now_s();
	struct gguf_file *f = gguf_open(path, &err);
	double t1 = fm_now_s();
	CHECK(f != NULL, "open many: %s", err.msg);
	if (!f)
		return;
	char name[64];
	int reps = 20, bad = 0;
	for (int r = 0; r < reps; r++) {
		for (int i = 0; i < N_MANY; i++) {
			snprintf(name, sizeof(name), "blk.%d.ffn_up_exps.weight", i);
			int64_t k = gguf_find_tensor(f, name);
			float v = -1;
			if (k == i)
				memcpy(&v, gguf_tensor_data(f, k), 4);
			bad += v != (float)i;
		}
	}
	double t2 = fm_now_s();
	CHECK(bad == 0, "%d lookups wrong", bad);
	int64_t k = gguf_find_key(f, "tokenizer.ggml.tokens");
	struct gguf_str s = gguf_kv_arr_str(f, k, N_VOCAB - 1);
	CHECK(gguf_kv_arr_n(f, k) == N_VOCAB && s.len == 9 && !memcmp(s.ptr, "tok149999", 9), "vocab");
	printf("open: %d tensors + %d-string array (%.1f MB) in %.2f ms; "
	       "find_tensor: %.0f ns per lookup (incl. snprintf)\n", N_MANY, N_VOCAB,
	       gguf_file_size(f) / 1e6, (t1 - t0) * 1e3, (t2 - t1) * 1e9 / (reps * N_MANY));
	gguf_close(f);
}

/* Remove what the tests wrote (KEEP=1 keeps it, e.g. as a fuzz corpus). */
static void cleanup(void)
{
	static const char *const names[] = { "rt32.gguf", "rt4096.gguf", "many.gguf" };
	if (getenv("KEEP")) {
		printf("files kept in %s\n", t_tmpdir());
		return;
	}
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		unlink(path_in_tmp(names[i]));
	rmdir(t_tmpdir());
}

int main(void)
{
	test_round_trip(32);
	test_round_trip(4096);
	test_getters();
	test_writer_misuse();
	test_write_error();
	test_many();
	cleanup();
	return t_done("test_gguf");
}
