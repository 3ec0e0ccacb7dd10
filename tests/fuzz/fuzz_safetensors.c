/* fuzz_safetensors.c: libFuzzer target for the safetensors reader
 * (src/safetensors.c).
 *
 * Each input is opened from memory (st_open_mem: the same validation as a
 * file). When it opens, every tensor is looked up by name (the lookup must
 * find that very tensor) and every byte of its data is read, so an entry the
 * validation let through with bad offsets shows up under ASan.
 *
 * Build and run (from the repository root; needs clang):
 *   clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
 *     -Iinclude -Isrc -o /tmp/fuzz_safetensors tests/fuzz/fuzz_safetensors.c \
 *     src/safetensors.c src/util.c -ljson-c
 *   mkdir -p /tmp/st_corpus && cp some_small.safetensors /tmp/st_corpus/
 *   /tmp/fuzz_safetensors -max_total_time=60 -max_len=4096 /tmp/st_corpus
 * A seed corpus helps: tests/test_safetensors.c's buffers, or a tiny file
 * written by the safetensors Python package.
 */
#include <stdio.h>
#include <stdlib.h>

#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fm_error err;
	struct st_file *f = st_open_mem(data, size, "fuzz", &err);
	if (!f)
		return 0;
	volatile uint8_t sink = 0;
	for (uint64_t i = 0; i < st_n_tensors(f); i++) {
		const struct st_tensor *t = st_tensor(f, i);
		if (st_find(f, t->name) != (int64_t)i)
			abort();
		const uint8_t *p = st_data(f, i);
		for (uint64_t b = 0; b < t->size_bytes; b++)
			sink ^= p[b];
	}
	(void)sink;
	st_close(f);
	return 0;
}
