/* fuzz_config.c: libFuzzer target for the Hugging Face config.json reader of
 * `flashmoe convert` (src/convert_config.c, through convert_read_config_json,
 * and json_file.c).
 *
 * Each input is written as config.json into a private directory (in
 * /dev/shm when there is one) and read and checked as convert_hf reads it.
 * A refusal must say why (err.msg), or the target aborts.
 *
 * Build and run: `make fuzz` (Makefile), or by hand from the repository root
 * (convert needs most of the library; build/fuzz/libflashmoe.a is it):
 *   make build/fuzz/fuzz_config
 *   build/fuzz/fuzz_config -max_len=4096 -dict=tests/fuzz/fuzz_config.dict CORPUS
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "convert.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64], path[128];

static void remove_dir(void)
{
	unlink(path);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	snprintf(dir, sizeof(dir), "%s/fuzz_config.XXXXXX",
		 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	if (!mkdtemp(dir)) {
		perror("fuzz_config: mkdtemp");
		exit(1);
	}
	snprintf(path, sizeof(path), "%s/config.json", dir);
	atexit(remove_dir);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(data, 1, size, f) != size || fclose(f))
		abort(); /* the harness's own failure */
	struct fm_error err = { 0 };
	int rc = convert_read_config_json(dir, &err);
	if (rc > 0 || (rc < 0 && (!err.msg[0] || err.code != rc)))
		abort(); /* a refusal must say why, with the code it returns */
	return 0;
}
