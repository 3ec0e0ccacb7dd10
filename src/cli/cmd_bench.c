/* cmd_bench.c: flashmoe bench, prompt-processing and generation speed
 * (like llama-bench's pp/tg). Prompt tokens are random ids; generation samples
 * at temperature 1 with a fixed seed (random weights decoded greedily repeat
 * one token, which flatters any expert cache: DESIGN.md "Testing").
 * -d N (depth, as llama-bench's -d) times generation after N positions of
 * context: the prompt's KV rows are copied over and over up to N
 * (fm_ctx_bench_fill_kv) instead of evaluating N tokens, which on 2 cores
 * takes hours at 32k; generation's attention then costs what it would after
 * a real N-token prompt. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../api_bench.h"
#include "cli.h"

static const char usage_text[] =
	"usage: flashmoe bench -m MODEL [-p 512] [-n 128] [-d DEPTH] [-b N] [-t N] [--json] [--seed S]\n"
	"       [--mem SIZE] [--isa ref|avx2|avx512] [--experts-per-token K] [--kv-type|-ctk|-ctv f32|f16|q8_0|tq3.5|...] [--stats]\n";

struct bench_opts {
	struct cli_model_opts mo;
	int n_prompt, n_gen;
	int depth;             /* -d: generation after this many positions (KV copied) */
	int n_batch;           /* prompt tokens per fm_eval; 0 = all at once */
	uint64_t seed;
	bool json, stats;
};

/* 0: run; 1: --help printed; -1: bad arguments (message printed). */
static int parse(struct bench_opts *b, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v;
		int r = cli_model_opt("bench", &b->mo, argc, argv, &i);
		if (r < 0)
			return -1;
		if (r > 0)
			continue;
		if (!strcmp(a, "--json")) {
			b->json = true;
		} else if (!strcmp(a, "--stats")) {
			b->stats = true;
		} else if (!strcmp(a, "-p") || !strcmp(a, "--n-prompt")) {
			if (!(v = cli_next("bench", argc, argv, &i)) || !cli_int("bench", a, v, 0, 1 << 20, &b->n_prompt))
				return -1;
		} else if (!strcmp(a, "-n") || !strcmp(a, "--n-gen")) {
			if (!(v = cli_next("bench", argc, argv, &i)) || !cli_int("bench", a, v, 0, 1 << 20, &b->n_gen))
				return -1;
		} else if (!strcmp(a, "-d") || !strcmp(a, "--depth")) {
			if (!(v = cli_next("bench", argc, argv, &i)) || !cli_int("bench", a, v, 0, 1 << 24, &b->depth))
				return -1;
		} else if (!strcmp(a, "-b") || !strcmp(a, "--batch-size")) {
			/* as llama-bench's -b; 1 = the prompt token by token */
			if (!(v = cli_next("bench", argc, argv, &i)) || !cli_int("bench", a, v, 1, 1 << 20, &b->n_batch))
				return -1;
		} else if (!strcmp(a, "--seed")) {
			if (!(v = cli_next("bench", argc, argv, &i)) || !cli_u64("bench", a, v, &b->seed))
				return -1;
		} else if (cli_is_help(a)) {
			fputs(usage_text, stdout);
			return 1;
		} else {
			fprintf(stderr, "flashmoe bench: unknown option '%s'\n%s", a, usage_text);
			return -1;
		}
	}
	if (!b->mo.model) {
		fprintf(stderr, "flashmoe bench: -m MODEL is required\n%s", usage_text);
		return -1;
	}
	return 0;
}

static int run(struct bench_opts *b, struct fm_model *m, struct fm_ctx *c, float *logits,
	       double *pp_s, double *tg_s)
{
	const struct fm_model_info *in = fm_model_get_info(m);
	struct fm_error err = { 0 };
	uint64_t x = b->seed * 2654435761u + 12345;
	int np = b->n_prompt > 0 ? b->n_prompt : 1;
	int32_t *ids = malloc((size_t)np * sizeof(int32_t));
	struct fm_sampler_params sp = { .temp = 1.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f,
					.repeat_penalty = 1.0f, .repeat_last_n = 0, .seed = b->seed + 1 };
	struct fm_sampler *s = fm_sampler_new(&sp, in->n_vocab);
	int rc = -1;
	if (!ids || !s)
		goto out;
	for (int i = 0; i < np; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		ids[i] = (int32_t)((x >> 33) % (uint64_t)in->n_vocab);
	}
	/* warm-up: fault in the dense weights, then start over */
	if (fm_eval(c, ids, np < 8 ? np : 8, logits, false, &err) || fm_ctx_truncate(c, 0))
		goto fail;
	fm_reset_stats(m);
	int step = b->n_batch > 0 ? b->n_batch : np;
	for (int i = 0; i < np; i += step)
		if (fm_eval(c, ids + i, np - i < step ? np - i : step, logits, false, &err))
			goto fail;
	struct fm_stats st;
	fm_get_stats(m, &st);
	*pp_s = st.prompt_s + st.gen_s;
	if (b->depth > np && fm_ctx_bench_fill_kv(c, b->depth, &err))
		goto fail;
	fm_reset_stats(m);
	for (int i = 0; i < b->n_gen; i++) {
		int32_t tok = fm_sampler_sample(s, logits);
		if (fm_eval(c, &tok, 1, logits, false, &err))
			goto fail;
	}
	fm_get_stats(m, &st);
	*tg_s = st.gen_s;
	rc = 0;
	goto out;
fail:
	fprintf(stderr, "flashmoe bench: %s\n", err.msg);
out:
	fm_sampler_free(s);
	free(ids);
	return rc;
}

int cmd_bench(int argc, char **argv)
{
	struct bench_opts b = { .n_prompt = 512, .n_gen = 128, .seed = 1 };
	cli_model_opts_init(&b.mo);
	int pr = parse(&b, argc, argv);
	if (pr)
		return pr > 0 ? 0 : 2;
	struct fm_model *m = cli_open_model("bench", &b.mo);
	if (!m)
		return 1;
	const struct fm_model_info *in = fm_model_get_info(m);
	struct fm_error err = { 0 };
	int n_ctx = (b.n_prompt > 0 ? b.n_prompt : 1) + b.n_gen + 8;
	if (b.depth + b.n_gen + 8 > n_ctx)
		n_ctx = b.depth + b.n_gen + 8;
	struct fm_ctx *c = fm_ctx_new(m, n_ctx, &err);
	float *logits = malloc((size_t)in->n_vocab * sizeof(float));
	double pp_s = 0, tg_s = 0;
	int rc = 1;
	if (!c || !logits) {
		fprintf(stderr, "flashmoe bench: %s\n", c ? "out of memory" : err.msg);
		goto out;
	}
	if (run(&b, m, c, logits, &pp_s, &tg_s))
		goto out;
	double pp = pp_s > 0 ? b.n_prompt / pp_s : 0, tg = tg_s > 0 ? b.n_gen / tg_s : 0;
	if (b.json)
		printf("{\"model\":\"%s\",\"isa\":\"%s\",\"threads\":%d,\"n_prompt\":%d,\"n_gen\":%d,"
		       "\"n_batch\":%d,\"depth\":%d,\"pp_tok_s\":%.3f,\"tg_tok_s\":%.3f,\"bytes_expert\":%llu,\"bytes_dense\":%llu}\n",
		       b.mo.model, in->isa, in->n_threads, b.n_prompt, b.n_gen, b.n_batch, b.depth, pp, tg,
		       (unsigned long long)in->bytes_expert, (unsigned long long)in->bytes_dense);
	else
		printf("model %s  isa %s  threads %d\n  pp%d: %.2f tok/s\n  tg%d: %.2f tok/s\n", b.mo.model,
		       in->isa, in->n_threads, b.n_prompt, pp, b.n_gen, tg);
	if (b.stats)
		cli_print_stats(m);
	rc = 0;
out:
	free(logits);
	fm_ctx_free(c);
	fm_model_close(m);
	return rc;
}
