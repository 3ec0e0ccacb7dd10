/* test_safetensors.c: the safetensors reader on hand-made byte buffers: a
 * valid file (lookups, shapes, offsets, padding, __metadata__), then one
 * corruption at a time, each refused with the expected code and message,
 * and every truncation of the valid file refused without a crash. */
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"
#include "testutil.h"

/* 8-byte length + header + data bytes into buf; returns the total size. */
static size_t build(uint8_t *buf, const char *header, uint64_t hdr_len_override,
		    size_t data_bytes)
{
	size_t n = strlen(header);
	uint64_t len = hdr_len_override ? hdr_len_override : n;
	for (int i = 0; i < 8; i++)
		buf[i] = (uint8_t)(len >> (8 * i));
	memcpy(buf + 8, header, n);
	for (size_t i = 0; i < data_bytes; i++)
		buf[8 + n + i] = (uint8_t)i;
	return 8 + n + data_bytes;
}

static uint8_t buf[4096];

static const char good[] =
	"{\"__metadata__\":{\"format\":\"pt\"},"
	"\"b\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[8,32]},"
	"\"a\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[0,8]},"
	"\"c\":{\"dtype\":\"F16\",\"shape\":[],\"data_offsets\":[32,34]}}    ";

static void test_good(void)
{
	size_t size = build(buf, good, 0, 34);
	struct fm_error err = { 0 };
	struct st_file *f = st_open_mem(buf, size, "good", &err);
	CHECK(f, "good file refused: %s", err.msg);
	if (!f)
		return;
	CHECK(st_n_tensors(f) == 3, "%llu tensors", (unsigned long long)st_n_tensors(f));
	int64_t a = st_find(f, "a"), b = st_find(f, "b"), c = st_find(f, "c");
	CHECK(a >= 0 && b >= 0 && c >= 0 && st_find(f, "d") < 0 && st_find(f, "__metadata__") < 0,
	      "lookups %lld %lld %lld", (long long)a, (long long)b, (long long)c);
	if (a >= 0 && b >= 0 && c >= 0) {
		const struct st_tensor *tb = st_tensor(f, (uint64_t)b);
		CHECK(tb->type == GGML_TYPE_F32 && tb->n_dims == 2 && tb->shape[0] == 2 &&
		      tb->shape[1] == 3 && tb->size_bytes == 24, "b parsed wrong");
		size_t hdr = strlen(good);
		CHECK(tb->offset == 8 + hdr + 8, "b offset %llu", (unsigned long long)tb->offset);
		CHECK(((const uint8_t *)st_data(f, (uint64_t)b))[0] == 8, "b data");
		CHECK(st_tensor(f, (uint64_t)a)->type == GGML_TYPE_BF16, "a dtype");
		CHECK(st_tensor(f, (uint64_t)c)->n_dims == 0 &&
		      st_tensor(f, (uint64_t)c)->size_bytes == 2, "scalar c");
	}
	st_close(f);
}

struct bad_case {
	const char *what, *header;
	uint64_t hdr_len;   /* 0: the header's length */
	size_t data_bytes;
	int code;
	const char *msg;    /* expected in err.msg */
};

static const struct bad_case bad_cases[] = {
	{ "length past end", "{}", 1000, 0, FM_EFORMAT, "header length 1000" },
	{ "length absurd", "{}", UINT64_MAX, 0, FM_EFORMAT, "header length" },
	{ "length 1", "{}", 1, 0, FM_EFORMAT, "header length 1" },
	{ "not JSON", "[1,2]", 0, 0, FM_EFORMAT, "start with '{'" },
	{ "truncated JSON", "{\"a\":{\"dtype\"", 0, 0, FM_EFORMAT, "JSON" },
	{ "trailing bytes", "{} x", 0, 0, FM_EFORMAT, "after the JSON" },
	{ "entry not object", "{\"a\":3}", 0, 0, FM_EFORMAT, "not an object" },
	{ "no dtype", "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 0, 4, FM_EFORMAT, "dtype" },
	{ "unknown dtype", "{\"a\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 0, 8,
	  FM_EUNSUPPORTED, "dtype 'I64'" },
	{ "negative dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 0, 4,
	  FM_EFORMAT, "shape entry" },
	{ "dim overflow",
	  "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", 0,
	  4, FM_EFORMAT, "overflows" },
	{ "bytes overflow",
	  "{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,2],\"data_offsets\":[0,4]}}",
	  0, 4, FM_EFORMAT, "overflows" },
	{ "size mismatch", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 0, 4,
	  FM_EFORMAT, "needs 8 bytes" },
	{ "end past file", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 0, 4,
	  FM_EFORMAT, "outside" },
	{ "begin > end", "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,0]}}", 0, 4,
	  FM_EFORMAT, "outside" },
	{ "bad offsets", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 0, 4,
	  FM_EFORMAT, "data_offsets" },
	{ "overlap",
	  "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
	  "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 0, 12,
	  FM_EFORMAT, "overlap" },
	{ "too many dims",
	  "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 0, 4,
	  FM_EFORMAT, "dimensions" },
	{ "metadata not object", "{\"__metadata__\":3}", 0, 0, FM_EFORMAT, "__metadata__" },
};

static void test_bad(void)
{
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *c = &bad_cases[i];
		size_t size = build(buf, c->header, c->hdr_len, c->data_bytes);
		struct fm_error err = { 0 };
		struct st_file *f = st_open_mem(buf, size, "bad", &err);
		CHECK(!f, "%s: accepted", c->what);
		CHECK(err.code == c->code, "%s: code %d, expected %d (%s)", c->what, err.code, c->code,
		      err.msg);
		CHECK(strstr(err.msg, c->msg), "%s: message '%s' lacks '%s'", c->what, err.msg, c->msg);
		st_close(f);
	}
}

/* Every prefix of the good file: refused (never a crash), except the whole. */
static void test_truncations(void)
{
	size_t size = build(buf, good, 0, 34);
	for (size_t n = 0; n < size; n++) {
		uint8_t *copy = malloc(n ? n : 1); /* exact size, so ASan sees overreads */
		memcpy(copy, buf, n);
		struct fm_error err = { 0 };
		struct st_file *f = st_open_mem(copy, n, "prefix", &err);
		CHECK(!f && err.code == FM_EFORMAT, "prefix of %zu bytes: %s", n,
		      f ? "accepted" : err.msg);
		st_close(f);
		free(copy);
	}
}

int main(void)
{
	test_good();
	test_bad();
	test_truncations();
	struct fm_error err = { 0 };
	CHECK(!st_open("/nonexistent/x.safetensors", &err) && err.code < 0 &&
	      strstr(err.msg, "cannot open"), "missing file: %s", err.msg);
	return t_done("test_safetensors");
}
