/* fuzz_tokenizer_json.c: libFuzzer target for the tokenizer.json loader
 * (src/tokenizer_json.c, the tok_build_* of src/tokenizer.c, json_file.c).
 *
 * Input: a tokenizer.json; if it holds a NUL byte (never valid JSON), what
 * follows the first NUL is the tokenizer_config.json beside it. Both are
 * written to a private directory (in /dev/shm when there is one) and
 * tok_load_json reads them as it reads a checkpoint's. A refusal must say
 * why (err.msg). A tokenizer that loads must keep tokenizer.h's contracts,
 * checked by tok_check.h: ids, one id per string, encode and decode of a
 * few fixed texts, tok_write_gguf.
 *
 * Build and run: `make fuzz` (Makefile), or by hand from the repository root:
 *   clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
 *     -Iinclude -Isrc -o /tmp/fuzz_tokenizer_json tests/fuzz/fuzz_tokenizer_json.c \
 *     src/tokenizer*.c src/json_file.c src/gguf*.c src/util.c \
 *     -lpcre2-8 -ljson-c -lutf8proc -lm
 *   /tmp/fuzz_tokenizer_json -max_len=8192 -dict=tests/fuzz/fuzz_tokenizer_json.dict CORPUS
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tok_check.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64], json_path[128], cfg_path[128];

static void remove_dir(void)
{
	unlink(json_path);
	unlink(cfg_path);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	snprintf(dir, sizeof(dir), "%s/fuzz_tokjson.XXXXXX",
		 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	if (!mkdtemp(dir)) {
		perror("fuzz_tokenizer_json: mkdtemp");
		exit(1);
	}
	snprintf(json_path, sizeof(json_path), "%s/tokenizer.json", dir);
	snprintf(cfg_path, sizeof(cfg_path), "%s/tokenizer_config.json", dir);
	atexit(remove_dir);
	return 0;
}

static void write_file(const char *path, const uint8_t *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(p, 1, n, f) != n || fclose(f))
		abort(); /* the harness's own failure, not the loader's */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	size_t n_json = nul ? (size_t)(nul - data) : size;
	write_file(json_path, data, n_json);
	if (nul)
		write_file(cfg_path, nul + 1, size - n_json - 1);
	else
		unlink(cfg_path);
	struct fm_error err = { 0 };
	struct tok *t = tok_load_json(json_path, &err);
	if (!t && !err.msg[0])
		abort(); /* every refusal must say why */
	if (t)
		tok_check(t);
	tok_free(t);
	return 0;
}
