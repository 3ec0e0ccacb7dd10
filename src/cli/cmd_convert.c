/* cmd_convert.c: `flashmoe convert`, a Hugging Face checkpoint directory
 * (Qwen3-MoE, Qwen3-Next, Qwen3.5-MoE) -> GGUF, as llama.cpp's
 * convert_hf_to_gguf.py writes it: parses the flags, prints a line per
 * tensor, a progress line on a terminal and a summary. The conversion is
 * src/convert.c.
 *
 * An offline tool, not part of inference: it uses the internal header
 * src/convert.h rather than flashmoe.h (as quantize uses quantize.h).
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../convert.h"
#include "cli.h"

static const char convert_usage[] =
	"usage: flashmoe convert DIR --out OUT.gguf [--type f32|f16|bf16|q8_0] [--no-mtp] [-t N] [-q]\n"
	"  DIR: a Hugging Face checkpoint (config.json, model.safetensors or the shards of\n"
	"  model.safetensors.index.json, tokenizer.json, tokenizer_config.json) of\n"
	"  Qwen3MoeForCausalLM (arch qwen3moe), Qwen3NextForCausalLM (qwen3next) or\n"
	"  Qwen3_5MoeForConditionalGeneration / Qwen3_5MoeForCausalLM (qwen35moe), as\n"
	"  transformers 4.x or 5.x saves it. Writes what llama.cpp's convert_hf_to_gguf.py\n"
	"  writes; the vision tower is left out.\n"
	"  --type: weight matrices (default f16); norms, routers and conv kernels stay f32.\n"
	"  --no-mtp: leave out the multi-token-prediction block (kept by default, as\n"
	"  llama.cpp keeps it; flashmoe does not run it).\n"
	"  -t: threads (default 2); -q: no per-tensor lines. On a terminal, stderr shows\n"
	"  one progress line (tensor, percent, MB/s, ETA).\n"
	"  OUT is written beside itself as OUT.tmp.XXXXXX and renamed over OUT only when\n"
	"  complete and fsync'd: on any error an existing OUT is left as it was. OUT may\n"
	"  not be an input file (nor a link to one) or a device, FIFO or directory.\n";

struct convert_opts {
	const char *dir, *out, *type;
	int n_threads;
	bool quiet, no_mtp;
	bool tty;                  /* stderr is a terminal: a progress line */
	struct quant_meter meter;
};

/* 1 done (help printed), 0 parsed, -1 bad arguments (message printed). */
static int parse_args(int argc, char **argv, struct convert_opts *o)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v;
		if (!strcmp(a, "--out") || !strcmp(a, "-o")) {
			if (!(o->out = cli_next("convert", argc, argv, &i)))
				return -1;
		} else if (!strcmp(a, "--type")) {
			if (!(o->type = cli_next("convert", argc, argv, &i)))
				return -1;
		} else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
			if (!(v = cli_next("convert", argc, argv, &i)) ||
			    !cli_int("convert", a, v, 1, 1024, &o->n_threads))
				return -1;
		} else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
			o->quiet = true;
		} else if (!strcmp(a, "--no-mtp")) {
			o->no_mtp = true;
		} else if (cli_is_help(a)) {
			fputs(convert_usage, stdout);
			return 1;
		} else if (a[0] == '-' || o->dir) {
			fprintf(stderr, "flashmoe convert: unexpected argument '%s'\n%s", a,
				convert_usage);
			return -1;
		} else {
			o->dir = a;
		}
	}
	const char *missing = !o->dir ? "DIR" : !o->out ? "--out OUT.gguf" : NULL;
	if (missing) {
		fprintf(stderr, "flashmoe convert: %s is required\n%s", missing, convert_usage);
		return -1;
	}
	return 0;
}

static void print_tensor(void *user_data, const struct convert_tensor_report *r)
{
	const struct convert_opts *o = user_data;
	if (o->quiet)
		return;
	if (o->tty)
		fputs("\r\033[K", stderr); /* the progress line gives way */
	char shape[96] = "";
	cli_shape(shape, sizeof(shape), r->n_dims, r->ne);
	printf("[%4llu/%4llu] %-32s %-22s %5s -> %-5s%s\n", (unsigned long long)r->index + 1,
	       (unsigned long long)r->n_tensors, r->name, shape, fm_type_name(r->from),
	       fm_type_name(r->to), r->n_sources > 1 ? " (experts stacked)" : "");
}

static void show_progress(void *user_data, const struct quant_progress *p)
{
	struct convert_opts *o = user_data;
	char line[160];
	if (o->tty && quant_meter_line(&o->meter, p, line, sizeof(line)))
		fprintf(stderr, "\r%s\033[K%s", line, p->name ? "" : "\r\033[K");
}

int cmd_convert(int argc, char **argv)
{
	struct convert_opts o = { .type = "f16", .n_threads = 2 };
	int a = parse_args(argc, argv, &o);
	if (a)
		return a > 0 ? 0 : 2;
	int t = fm_type_from_name(o.type);
	if (t != GGML_TYPE_F32 && t != GGML_TYPE_F16 && t != GGML_TYPE_BF16 && t != GGML_TYPE_Q8_0) {
		fprintf(stderr, "flashmoe convert: unknown --type '%s' (f32, f16, bf16, q8_0)\n",
			o.type);
		return 2;
	}
	o.tty = isatty(STDERR_FILENO);
	struct convert_params p = { .type = (enum ggml_type)t, .n_threads = o.n_threads,
				    .no_mtp = o.no_mtp, .on_tensor = print_tensor,
				    .progress = show_progress, .user_data = &o };
	struct convert_summary s;
	struct fm_error err = { 0 };
	if (convert_hf(o.dir, o.out, &p, &s, &err)) {
		fprintf(stderr, "%sflashmoe convert: %s\n", o.tty ? "\r\033[K" : "", err.msg);
		return 1;
	}
	printf("converted %llu tensors from %llu safetensors file%s: %s, %llu bytes (%.2f MiB) "
	       "in %.2f s\n", (unsigned long long)s.n_tensors,
	       (unsigned long long)s.n_source_files, s.n_source_files == 1 ? "" : "s", o.out,
	       (unsigned long long)s.out_bytes, s.out_bytes / 1048576.0, s.seconds);
	return 0;
}
