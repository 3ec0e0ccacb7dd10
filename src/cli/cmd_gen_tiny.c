/* cmd_gen_tiny.c: flashmoe gen-tiny, random-weight models of any size. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char usage_text[] =
	"usage: flashmoe gen-tiny --out FILE [--arch qwen3moe|qwen3next|qwen35moe] [--seed N]\n"
	"       [--type f32|f16|bf16|q8_0|q4_0|q4_k|q5_k|q6_k|q3_k|q2_k]\n"
	"       [--layers N] [--hidden N] [--heads N] [--kv-heads N] [--head-dim N] [--rot N] [--experts N]\n"
	"       [--experts-used N] [--expert-ff N] [--vocab N] [--ctx N] [--tied]\n"
	"       hybrids: [--shared-ff N] [--ssm-state N] [--ssm-groups N] [--ssm-heads N] [--full-attn-interval N]\n"
	"       [--expert-pool N] (benchmark files: N distinct experts per tensor, repeated)\n";

struct dim_flag {
	const char *flag;
	size_t offset;
};

int cmd_gen_tiny(int argc, char **argv)
{
	static const struct dim_flag dims[] = {
		{ "--layers", offsetof(struct fm_tiny_params, n_layer) },
		{ "--hidden", offsetof(struct fm_tiny_params, n_embd) },
		{ "--heads", offsetof(struct fm_tiny_params, n_head) },
		{ "--kv-heads", offsetof(struct fm_tiny_params, n_head_kv) },
		{ "--head-dim", offsetof(struct fm_tiny_params, head_dim) },
		{ "--experts", offsetof(struct fm_tiny_params, n_expert) },
		{ "--experts-used", offsetof(struct fm_tiny_params, n_expert_used) },
		{ "--expert-ff", offsetof(struct fm_tiny_params, n_ff_expert) },
		{ "--vocab", offsetof(struct fm_tiny_params, n_vocab) },
		{ "--ctx", offsetof(struct fm_tiny_params, n_ctx) },
		{ "--rot", offsetof(struct fm_tiny_params, n_rot) },
		{ "--shared-ff", offsetof(struct fm_tiny_params, n_ff_shared) },
		{ "--ssm-state", offsetof(struct fm_tiny_params, ssm_state) },
		{ "--ssm-groups", offsetof(struct fm_tiny_params, ssm_groups) },
		{ "--ssm-heads", offsetof(struct fm_tiny_params, ssm_heads) },
		{ "--full-attn-interval", offsetof(struct fm_tiny_params, full_attn_interval) },
		{ "--expert-pool", offsetof(struct fm_tiny_params, expert_pool) },
	};
	struct fm_tiny_params p;
	fm_tiny_params_default(&p);
	const char *out = NULL, *v;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		bool done = false;
		for (size_t d = 0; d < sizeof(dims) / sizeof(dims[0]) && !done; d++) {
			if (strcmp(a, dims[d].flag))
				continue;
			if (!(v = cli_next("gen-tiny", argc, argv, &i)) ||
			    !cli_int("gen-tiny", a, v, 1, 1 << 24, (int *)((char *)&p + dims[d].offset)))
				return 2;
			done = true;
		}
		if (done)
			continue;
		if (!strcmp(a, "--out") || !strcmp(a, "-o")) {
			if (!(out = cli_next("gen-tiny", argc, argv, &i)))
				return 2;
		} else if (!strcmp(a, "--arch")) {
			if (!(p.arch = cli_next("gen-tiny", argc, argv, &i)))
				return 2;
		} else if (!strcmp(a, "--seed")) {
			if (!(v = cli_next("gen-tiny", argc, argv, &i)) || !cli_u64("gen-tiny", a, v, &p.seed))
				return 2;
		} else if (!strcmp(a, "--type")) {
			if (!(v = cli_next("gen-tiny", argc, argv, &i)))
				return 2;
			p.type = fm_type_from_name(v);
			if (p.type < 0) {
				fprintf(stderr, "flashmoe gen-tiny: unknown --type '%s'\n", v);
				return 2;
			}
		} else if (!strcmp(a, "--tied")) {
			p.tied_embeddings = true;
		} else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			fputs(usage_text, stdout);
			return 0;
		} else {
			fprintf(stderr, "flashmoe gen-tiny: unknown option '%s'\n%s", a, usage_text);
			return 2;
		}
	}
	if (!out) {
		fprintf(stderr, "flashmoe gen-tiny: --out FILE is required\n%s", usage_text);
		return 2;
	}
	struct fm_error err = { 0 };
	if (fm_gen_tiny(out, &p, &err)) {
		fprintf(stderr, "flashmoe gen-tiny: %s\n", err.msg);
		return 1;
	}
	return 0;
}
