/* fuzz_gguf.c: libFuzzer target for the GGUF reader (src/gguf.c).
 *
 * Each input is written to a memfd and opened by path (/proc/self/fd/N), so
 * the real open/mmap/parse path runs. When a file opens, every key is read
 * through every typed getter and every string and tensor is touched.
 *
 * Build and run (from the repository root; needs clang):
 *   clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
 *     -Iinclude -Isrc -o /tmp/fuzz_gguf tests/fuzz/fuzz_gguf.c \
 *     src/gguf.c src/gguf_get.c src/gguf_write.c src/gguf_hash.c src/util.c
 *   mkdir -p /tmp/gguf_corpus && cp some_small.gguf /tmp/gguf_corpus/
 *   /tmp/fuzz_gguf -max_total_time=60 -max_len=4096 /tmp/gguf_corpus
 * A seed corpus helps: any small GGUF file (e.g. the files test_gguf writes).
 */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gguf.h"

static void touch(const struct gguf_file *f)
{
	volatile uint8_t sink = 0;
	struct fm_error err;
	for (uint64_t i = 0; i < gguf_n_kv(f); i++) {
		const char *key = gguf_kv_key(f, i);
		uint32_t u32;
		uint64_t u64;
		int64_t i64;
		double f64;
		bool b;
		struct gguf_str s;
		gguf_get_u32(f, key, &u32, &err);
		gguf_get_u64(f, key, &u64, &err);
		gguf_get_i64(f, key, &i64, &err);
		gguf_get_f64(f, key, &f64, &err);
		gguf_get_bool(f, key, &b, &err);
		if (!gguf_get_str(f, key, &s, &err) && s.len)
			sink ^= (uint8_t)s.ptr[s.len - 1];
		uint64_t n = gguf_kv_arr_n(f, i);
		const uint8_t *d = gguf_kv_arr_data(f, i);
		if (d && n)
			sink ^= d[n * gguf_type_size(gguf_kv_arr_type(f, i)) - 1];
		for (uint64_t j = 0; !d && j < n; j++) {
			s = gguf_kv_arr_str(f, i, j);
			if (s.len)
				sink ^= (uint8_t)s.ptr[s.len - 1];
		}
	}
	for (uint64_t i = 0; i < gguf_n_tensors(f); i++) {
		const struct gguf_tensor_info *t = gguf_tensor(f, i);
		if (gguf_find_tensor(f, t->name_z) < 0 && !memchr(t->name.ptr, 0, t->name.len))
			__builtin_trap();
		if (t->size_bytes)
			sink ^= ((const uint8_t *)gguf_tensor_data(f, i))[t->size_bytes - 1];
	}
	(void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64];
	struct fm_error err;
	int fd = memfd_create("fuzz_gguf", MFD_CLOEXEC);
	if (fd < 0)
		return 0;
	if (write(fd, data, size) == (ssize_t)size) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		struct gguf_file *f = gguf_open(path, &err);
		if (f)
			touch(f);
		else if (!err.msg[0])
			__builtin_trap(); /* every failure must say why */
		gguf_close(f);
	}
	close(fd);
	return 0;
}
