/* cli.h: the flashmoe command's subcommands and shared argument helpers.
 * Each subcommand is int cmd_X(int argc, char **argv) with argv[0] = "X";
 * returns the process exit status. The CLI uses only flashmoe.h. */
#ifndef FM_CLI_H
#define FM_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "flashmoe.h"

int cmd_generate(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_gen_tiny(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_detokenize(int argc, char **argv);
int cmd_cache_sim(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_convert(int argc, char **argv);

/* Argument helpers: print "flashmoe CMD: ..." and return false on bad input. */
bool cli_int(const char *cmd, const char *flag, const char *s, long lo, long hi, int *out);
bool cli_u64(const char *cmd, const char *flag, const char *s, uint64_t *out);
bool cli_float(const char *cmd, const char *flag, const char *s, double lo, double hi, float *out);
/* "3G", "512M", "1.5G", "100000" -> bytes. */
bool cli_size(const char *cmd, const char *flag, const char *s, uint64_t *out);
/* "1,2,3" -> ids (malloc'd, *n set). */
bool cli_ids(const char *cmd, const char *s, int32_t **ids, int *n);
/* "[4096, 128, 8]": a tensor shape into buf (truncated to fit). */
const char *cli_shape(char *buf, size_t size, uint32_t n_dims, const uint64_t *ne);
/* "-h" or "--help": the command prints its usage to stdout and exits 0. */
bool cli_is_help(const char *arg);
/* The value after a flag, or an error when argv ends. */
const char *cli_next(const char *cmd, int argc, char **argv, int *i);

/* Common model options (-m, -t, --mem, --isa, --experts-per-token, --io,
 * --prefetch, --verbose, -c); returns 1 if argv[*i] was one of them (consumed),
 * 0 if not, -1 on error. */
struct cli_model_opts {
	const char *model;
	bool default_model;   /* no -m: use the built-in model (generate, chat) */
	int n_ctx;
	struct fm_model_params mp;
};
void cli_model_opts_init(struct cli_model_opts *o);
int cli_model_opt(const char *cmd, struct cli_model_opts *o, int argc, char **argv, int *i);
/* The built-in demo model's path: $FLASHMOE_MODEL, else models/brown-moe.gguf
 * of the source tree the binary was built in (build/<kind>/flashmoe ->
 * ../../models), else <prefix>/share/flashmoe/ beside an installed bin/,
 * else ./models/; NULL when none exists. The path is static. */
const char *cli_default_model(void);
/* The chat template to render with: name (--template), else the model's own,
 * else ChatML (with a warning). NULL after an error (printed, as "flashmoe
 * CMD: ..."). */
const char *cli_chat_template(const char *cmd, const struct fm_model *m, const char *name);
/* Open the model (with o->default_model, the built-in one when o->model is
 * NULL); prints errors. */
struct fm_model *cli_open_model(const char *cmd, const struct cli_model_opts *o);
/* --stats: speed, memory and expert-cache statistics to stderr. */
void cli_print_stats(struct fm_model *m);

#endif
