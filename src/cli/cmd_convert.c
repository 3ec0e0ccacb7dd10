/* cmd_convert.c: `flashmoe convert`, a Hugging Face Qwen3-MoE checkpoint
 * directory -> GGUF (as llama.cpp's convert_hf_to_gguf.py writes it): parses
 * the flags, prints a line per tensor and a summary. The conversion is
 * src/convert.c.
 *
 * An offline tool, not part of inference: it uses the internal header
 * src/convert.h rather than flashmoe.h (as quantize uses quantize.h).
 */
#include <stdio.h>
#include <string.h>

#include "../convert.h"
#include "cli.h"

static const char convert_usage[] =
	"usage: flashmoe convert DIR --out OUT.gguf [--type f32|f16|bf16|q8_0] [-t N] [-q]\n"
	"  DIR: a Hugging Face Qwen3MoeForCausalLM checkpoint (config.json, model.safetensors\n"
	"  or the shards of model.safetensors.index.json, tokenizer.json,\n"
	"  tokenizer_config.json). Writes arch qwen3moe, as llama.cpp's convert_hf_to_gguf.py.\n"
	"  --type: weight matrices (default f16); norms and the router stay f32.\n"
	"  -t: threads (default 2); -q: no per-tensor lines.\n"
	"  OUT is written beside itself as OUT.tmp.XXXXXX and renamed over OUT only when\n"
	"  complete and fsync'd: on any error an existing OUT is left as it was. OUT may\n"
	"  not be an input file (nor a link to one) or a device, FIFO or directory.\n";

struct convert_opts {
	const char *dir, *out, *type;
	int n_threads;
	bool quiet;
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
	const bool *quiet = user_data;
	if (*quiet)
		return;
	char shape[96] = "";
	cli_shape(shape, sizeof(shape), r->n_dims, r->ne);
	printf("[%4llu/%4llu] %-32s %-22s %5s -> %-5s%s\n", (unsigned long long)r->index + 1,
	       (unsigned long long)r->n_tensors, r->name, shape, fm_type_name(r->from),
	       fm_type_name(r->to), r->n_sources > 1 ? " (experts stacked)" : "");
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
	struct convert_params p = { .type = (enum ggml_type)t, .n_threads = o.n_threads,
				    .on_tensor = print_tensor, .user_data = &o.quiet };
	struct convert_summary s;
	struct fm_error err = { 0 };
	if (convert_hf(o.dir, o.out, &p, &s, &err)) {
		fprintf(stderr, "flashmoe convert: %s\n", err.msg);
		return 1;
	}
	printf("converted %llu tensors from %llu safetensors file%s: %s, %llu bytes (%.2f MiB) "
	       "in %.2f s\n", (unsigned long long)s.n_tensors,
	       (unsigned long long)s.n_source_files, s.n_source_files == 1 ? "" : "s", o.out,
	       (unsigned long long)s.out_bytes, s.out_bytes / 1048576.0, s.seconds);
	return 0;
}
