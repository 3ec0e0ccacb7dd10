/* cmd_quantize.c: `flashmoe quantize`, requantize a model file (like
 * llama.cpp's llama-quantize): parses the flags, prints a line per tensor and
 * a summary, and on a terminal a progress line on stderr (tensor, percent,
 * MB/s, ETA). The conversion is src/quantize.c.
 *
 * An offline tool, not part of inference: it uses the internal header
 * src/quantize.h rather than flashmoe.h (as cache-sim uses cachesim.h).
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../quantize.h"
#include "cli.h"

static const char quant_usage[] =
	"usage: flashmoe quantize -m IN.gguf --out OUT.gguf --type T [--expert-type T]\n"
	"       [--embd-type T] [--output-type T] [--tensor-type REGEX=T ...] [-t N] [-q]\n"
	"  T: f32 f16 bf16 q8_0 q4_0 q4_k q5_k q6_k q3_k q2_k (any case).\n"
	"  --type: every weight matrix (2-D or more); --expert-type, --embd-type and\n"
	"  --output-type override it for ffn_*_exps, token_embd.weight and output.weight.\n"
	"  --tensor-type (repeatable; the first match wins over the flags above): weight\n"
	"  matrices whose name matches REGEX (POSIX extended, anywhere in the name), e.g.\n"
	"  --tensor-type ffn_down_exps=q4_k --tensor-type 'blk\\.[0-3]\\.attn_v=q8_0'.\n"
	"  Norms, routers (ffn_gate_inp) and DeltaNet conv kernels stay f32 unless a REGEX\n"
	"  matches them.\n"
	"  Rows that are not whole blocks fall back: k-quants -> q8_0 -> f16.\n"
	"  -t: threads (default 2); -q: no per-tensor lines.\n"
	"  OUT is written beside itself as OUT.tmp.XXXXXX and renamed over OUT only when\n"
	"  complete and fsync'd: on any error an existing OUT is left as it was. OUT may\n"
	"  not be an input file (nor a link to one) or a device, FIFO or directory.\n";

#define QUANT_MAX_OVERRIDES 64

struct quant_opts {
	const char *in, *out;
	const char *type, *expert_type, *embd_type, *output_type; /* names as given */
	const char *tensor_type[QUANT_MAX_OVERRIDES];              /* REGEX=T as given */
	int n_tensor_type;
	int n_threads;
	bool quiet;
	bool tty;                  /* stderr is a terminal: a progress line */
	struct quant_meter meter;
};

/* name -> a type quantize can write; false (with a message) otherwise. */
static bool parse_type(const char *flag, const char *name, enum ggml_type *out)
{
	int t = fm_type_from_name(name);
	if (t < 0 || !quant_type_writable((enum ggml_type)t)) {
		fprintf(stderr,
			"flashmoe quantize: unknown %s '%s' (f32, f16, bf16, q8_0, q4_0, q6_k, q5_k, "
			"q4_k, q3_k, q2_k)\n", flag, name);
		return false;
	}
	*out = (enum ggml_type)t;
	return true;
}

/* 1 done (help printed), 0 parsed, -1 bad arguments (message printed). */
static int parse_args(int argc, char **argv, struct quant_opts *o)
{
	struct { const char *flag; const char **dst; } str_flags[] = {
		{ "-m", &o->in }, { "--model", &o->in }, { "--out", &o->out }, { "-o", &o->out },
		{ "--type", &o->type }, { "--expert-type", &o->expert_type },
		{ "--embd-type", &o->embd_type }, { "--output-type", &o->output_type },
	};
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v;
		size_t f = 0, n_flags = sizeof(str_flags) / sizeof(str_flags[0]);
		while (f < n_flags && strcmp(a, str_flags[f].flag))
			f++;
		if (f < n_flags) {
			if (!(*str_flags[f].dst = cli_next("quantize", argc, argv, &i)))
				return -1;
		} else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
			if (!(v = cli_next("quantize", argc, argv, &i)) ||
			    !cli_int("quantize", a, v, 1, 1024, &o->n_threads))
				return -1;
		} else if (!strcmp(a, "--tensor-type")) {
			if (!(v = cli_next("quantize", argc, argv, &i)))
				return -1;
			if (o->n_tensor_type == QUANT_MAX_OVERRIDES) {
				fprintf(stderr, "flashmoe quantize: more than %d --tensor-type rules\n",
					QUANT_MAX_OVERRIDES);
				return -1;
			}
			o->tensor_type[o->n_tensor_type++] = v;
		} else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
			o->quiet = true;
		} else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			fputs(quant_usage, stdout);
			return 1;
		} else {
			fprintf(stderr, "flashmoe quantize: unknown option '%s'\n%s", a, quant_usage);
			return -1;
		}
	}
	const char *missing = !o->in ? "-m IN.gguf" : !o->out ? "--out OUT.gguf" :
			      !o->type ? "--type T" : NULL;
	if (missing) {
		fprintf(stderr, "flashmoe quantize: %s is required\n%s", missing, quant_usage);
		return -1;
	}
	return 0;
}

/* "REGEX=T" (split at the last '=') -> a compiled rule; false with a message. */
static bool parse_override(const char *rule, struct quant_override *ov)
{
	const char *eq = strrchr(rule, '=');
	char pattern[512], msg[256];
	if (!eq || eq == rule || !eq[1]) {
		fprintf(stderr, "flashmoe quantize: --tensor-type '%s': expected REGEX=TYPE\n", rule);
		return false;
	}
	if ((size_t)(eq - rule) >= sizeof(pattern)) {
		fprintf(stderr, "flashmoe quantize: --tensor-type: the pattern is longer than %zu "
			"bytes\n", sizeof(pattern) - 1);
		return false;
	}
	memcpy(pattern, rule, (size_t)(eq - rule));
	pattern[eq - rule] = 0;
	if (!parse_type("--tensor-type", eq + 1, &ov->type))
		return false;
	int rc = regcomp(&ov->re, pattern, REG_EXTENDED | REG_NOSUB);
	if (rc) {
		regerror(rc, &ov->re, msg, sizeof(msg));
		fprintf(stderr, "flashmoe quantize: --tensor-type '%s': bad regular expression: %s\n",
			rule, msg);
		return false;
	}
	return true;
}

static bool resolve_types(const struct quant_opts *o, struct quant_params *p,
			  struct quant_override *ov)
{
	enum ggml_type t;
	if (!parse_type("--type", o->type, &t))
		return false;
	quant_params_default(p, t);
	p->n_threads = o->n_threads;
	for (int i = 0; i < o->n_tensor_type; i++) {
		if (!parse_override(o->tensor_type[i], &ov[i]))
			return false;
		p->overrides = ov;
		p->n_overrides = i + 1;
	}
	return (!o->expert_type || parse_type("--expert-type", o->expert_type, &p->expert_type)) &&
	       (!o->embd_type || parse_type("--embd-type", o->embd_type, &p->embd_type)) &&
	       (!o->output_type || parse_type("--output-type", o->output_type, &p->output_type));
}

static void print_tensor(void *user_data, const struct quant_tensor_report *r)
{
	const struct quant_opts *o = user_data;
	if (o->tty && (r->to != r->wanted || !o->quiet))
		fputs("\r\033[K", stderr); /* the progress line gives way */
	if (r->to != r->wanted)
		fprintf(stderr,
			"flashmoe quantize: tensor '%s': rows of %llu are not whole %s blocks; "
			"using %s\n", r->name, (unsigned long long)r->ne[0], fm_type_name(r->wanted),
			fm_type_name(r->to));
	if (o->quiet)
		return;
	char shape[128] = "";
	cli_shape(shape, sizeof(shape), r->n_dims, r->ne);
	printf("[%4llu/%4llu] %-32s %-22s %5s -> %-5s %12llu -> %12llu bytes%s\n",
	       (unsigned long long)r->index + 1, (unsigned long long)r->n_tensors, r->name, shape,
	       fm_type_name(r->from), fm_type_name(r->to), (unsigned long long)r->in_bytes,
	       (unsigned long long)r->out_bytes, r->copied ? " (copied)" : "");
}

static void show_progress(void *user_data, const struct quant_progress *p)
{
	struct quant_opts *o = user_data;
	char line[160];
	if (o->tty && quant_meter_line(&o->meter, p, line, sizeof(line)))
		fprintf(stderr, "\r%s\033[K%s", line, p->name ? "" : "\r\033[K");
}

int cmd_quantize(int argc, char **argv)
{
	struct quant_opts o = { .n_threads = 2 };
	int a = parse_args(argc, argv, &o);
	if (a)
		return a > 0 ? 0 : 2;
	struct quant_params p = { 0 };
	struct quant_override ov[QUANT_MAX_OVERRIDES];
	int rc = 0;
	if (!resolve_types(&o, &p, ov)) {
		rc = 2;
		goto out;
	}
	o.tty = isatty(STDERR_FILENO);
	p.on_tensor = print_tensor;
	p.progress = show_progress;
	p.user_data = &o;
	struct quant_summary s;
	struct fm_error err = { 0 };
	if (quant_file(o.in, o.out, &p, &s, &err)) {
		fprintf(stderr, "%sflashmoe quantize: %s\n", o.tty ? "\r\033[K" : "", err.msg);
		rc = 1;
		goto out;
	}
	printf("quantized %llu tensors (%llu converted, %llu copied, %llu fell back): "
	       "%llu -> %llu bytes (%.2f -> %.2f MiB) in %.2f s\n",
	       (unsigned long long)s.n_tensors, (unsigned long long)s.n_converted,
	       (unsigned long long)(s.n_tensors - s.n_converted),
	       (unsigned long long)s.n_fallback, (unsigned long long)s.in_bytes,
	       (unsigned long long)s.out_bytes, s.in_bytes / 1048576.0, s.out_bytes / 1048576.0,
	       s.seconds);
out:
	for (int i = 0; i < p.n_overrides; i++)
		regfree(&ov[i].re);
	return rc;
}
