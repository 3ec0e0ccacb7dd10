/* cmd_logits.c: flashmoe logits, the logits of every position as
 * little-endian float32, n_tokens x n_vocab (for comparisons with references). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage_text[] =
	"usage: flashmoe logits -m MODEL --token-ids 1,2,3 --out FILE [-t N] [--isa ref|avx2|avx512]\n"
	"       [--experts-per-token K] [--kv-type|-ctk|-ctv f32|f16|q8_0|tq3.5|...] [--mem SIZE] [--batch N]\n";

static int write_all(const char *path, const float *x, size_t n)
{
	FILE *fp = fopen(path, "wb");
	if (!fp) {
		perror(path);
		return -1;
	}
	size_t w = fwrite(x, sizeof(float), n, fp);
	int rc = (w == n && fclose(fp) == 0) ? 0 : -1;
	if (w != n)
		fclose(fp);
	if (rc)
		fprintf(stderr, "flashmoe logits: writing %s failed\n", path);
	return rc;
}

int cmd_logits(int argc, char **argv)
{
	struct cli_model_opts o;
	cli_model_opts_init(&o);
	const char *out = NULL, *ids_s = NULL;
	int batch = 0;
	for (int i = 1; i < argc; i++) {
		int r = cli_model_opt("logits", &o, argc, argv, &i);
		if (r < 0)
			return 2;
		if (r > 0)
			continue;
		if (!strcmp(argv[i], "--out") || !strcmp(argv[i], "-o")) {
			if (!(out = cli_next("logits", argc, argv, &i)))
				return 2;
		} else if (!strcmp(argv[i], "--token-ids")) {
			if (!(ids_s = cli_next("logits", argc, argv, &i)))
				return 2;
		} else if (!strcmp(argv[i], "--batch")) {
			const char *v = cli_next("logits", argc, argv, &i);
			if (!v || !cli_int("logits", "--batch", v, 1, 1 << 20, &batch))
				return 2;
		} else if (cli_is_help(argv[i])) {
			fputs(usage_text, stdout);
			return 0;
		} else {
			fprintf(stderr, "flashmoe logits: unknown option '%s'\n%s", argv[i], usage_text);
			return 2;
		}
	}
	if (!out || !ids_s || !o.model) {
		fprintf(stderr, "flashmoe logits: -m, --token-ids and --out are required\n%s", usage_text);
		return 2;
	}
	int32_t *ids;
	int n;
	if (!cli_ids("logits", ids_s, &ids, &n))
		return 2;
	int rc = 1;
	float *logits = NULL;
	struct fm_ctx *c = NULL;
	struct fm_error err = { 0 };
	struct fm_model *m = cli_open_model("logits", &o);
	if (!m)
		goto out;
	int n_vocab = fm_model_get_info(m)->n_vocab;
	c = fm_ctx_new(m, o.n_ctx > n ? o.n_ctx : n, &err);
	logits = malloc((size_t)n * n_vocab * sizeof(float));
	if (!c || !logits) {
		fprintf(stderr, "flashmoe logits: %s\n", c ? "out of memory" : err.msg);
		goto out;
	}
	/* --batch N evaluates N tokens at a time (1 = token by token) */
	int step = batch > 0 ? batch : n;
	for (int i = 0; i < n; i += step) {
		int nb = n - i < step ? n - i : step;
		if (fm_eval(c, ids + i, nb, logits + (size_t)i * n_vocab, true, &err)) {
			fprintf(stderr, "flashmoe logits: %s\n", err.msg);
			goto out;
		}
	}
	rc = write_all(out, logits, (size_t)n * n_vocab) ? 1 : 0;
out:
	free(logits);
	fm_ctx_free(c);
	fm_model_close(m);
	free(ids);
	return rc;
}
