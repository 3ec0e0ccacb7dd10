/* fuzz_tokenizer_gguf.c: libFuzzer target for the tokenizer read from GGUF
 * metadata (src/tokenizer_load.c and the tok_build_* of src/tokenizer.c).
 *
 * Each input is written to a memfd and opened by path (/proc/self/fd/N) with
 * gguf_open; when it opens, tok_load_gguf reads its tokenizer.* keys (and
 * token_embd.weight's row count). A refusal must say why (err.msg). A
 * tokenizer that loads is checked by tok_check.h: ids, one id per string,
 * encode and decode of a few fixed texts, tok_write_gguf.
 *
 * Build and run: `make fuzz` (Makefile), or by hand from the repository root:
 *   clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
 *     -Iinclude -Isrc -o /tmp/fuzz_tokenizer_gguf tests/fuzz/fuzz_tokenizer_gguf.c \
 *     src/tokenizer*.c src/json_file.c src/gguf*.c src/util.c \
 *     -lpcre2-8 -ljson-c -lutf8proc -lm
 *   /tmp/fuzz_tokenizer_gguf -max_len=8192 CORPUS
 * Seeds: a GGUF with tokenizer keys (gen_seeds writes the gen-tiny one).
 */
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tok_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64];
	struct fm_error err = { 0 };
	int fd = memfd_create("fuzz_tokenizer_gguf", MFD_CLOEXEC);
	if (fd < 0)
		return 0;
	if (write(fd, data, size) == (ssize_t)size) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		struct gguf_file *f = gguf_open(path, &err);
		struct tok *t = f ? tok_load_gguf(f, &err) : NULL;
		if (f && !t && !err.msg[0])
			abort(); /* every refusal must say why */
		if (t)
			tok_check(t);
		tok_free(t);
		gguf_close(f);
	}
	close(fd);
	return 0;
}
