/* main.c: the flashmoe command: dispatches to the subcommands. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

struct subcommand {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
};

static const struct subcommand subcommands[] = {
	{ "generate", cmd_generate, "continue a prompt (-p TEXT | --token-ids 1,2,3)" },
	{ "logits", cmd_logits, "write the logits of every position (float32)" },
	{ "info", cmd_info, "describe a model file" },
	{ "bench", cmd_bench, "prompt and generation speed" },
	{ "gen-tiny", cmd_gen_tiny, "write a random-weight model" },
	{ "tokenize", cmd_tokenize, "text to token ids" },
	{ "detokenize", cmd_detokenize, "token ids to text" },
	{ "cache-sim", cmd_cache_sim, "replay an expert trace under cache policies" },
	{ "chat", cmd_chat, "talk to the model in the terminal" },
	{ "serve", cmd_serve, "an OpenAI-compatible HTTP server (many clients, batched)" },
	{ "perplexity", cmd_perplexity, "perplexity over a text file; KL divergence with --kl-base" },
	{ "quantize", cmd_quantize, "requantize a model file (like llama-quantize)" },
	{ "convert", cmd_convert, "a Hugging Face Qwen3-MoE checkpoint to GGUF" },
};

static void usage(FILE *out)
{
	fprintf(out, "usage: flashmoe COMMAND [options]   (flashmoe COMMAND --help)\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++)
		fprintf(out, "  %-11s %s\n", subcommands[i].name, subcommands[i].help);
}

int main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++)
		if (!strcmp(argv[1], subcommands[i].name))
			return subcommands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "flashmoe: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
