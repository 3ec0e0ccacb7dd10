/* args.c: argument parsing shared by the subcommands. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

bool cli_int(const char *cmd, const char *flag, const char *s, long lo, long hi, int *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi) {
		fprintf(stderr, "flashmoe %s: %s expects an integer in [%ld, %ld], got '%s'\n", cmd,
			flag, lo, hi, s);
		return false;
	}
	*out = (int)v;
	return true;
}

bool cli_u64(const char *cmd, const char *flag, const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-') {
		fprintf(stderr, "flashmoe %s: %s expects a non-negative integer, got '%s'\n", cmd,
			flag, s);
		return false;
	}
	*out = v;
	return true;
}

bool cli_float(const char *cmd, const char *flag, const char *s, double lo, double hi, float *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= lo && v <= hi)) {
		fprintf(stderr, "flashmoe %s: %s expects a number in [%g, %g], got '%s'\n", cmd, flag,
			lo, hi, s);
		return false;
	}
	*out = (float)v;
	return true;
}

bool cli_size(const char *cmd, const char *flag, const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	double mul = 1;
	if (end != s && *end) {
		switch (*end) {
		case 'k': case 'K': mul = 1024.0; break;
		case 'm': case 'M': mul = 1048576.0; break;
		case 'g': case 'G': mul = 1073741824.0; break;
		case 't': case 'T': mul = 1099511627776.0; break;
		default: mul = 0;
		}
		end++;
		if (*end == 'i')
			end++;
		if (*end == 'B' || *end == 'b')
			end++;
	}
	if (errno || end == s || *end || mul == 0 || !(v > 0) || v * mul > 1e18) {
		fprintf(stderr, "flashmoe %s: %s expects a size such as 3G or 512M, got '%s'\n", cmd,
			flag, s);
		return false;
	}
	*out = (uint64_t)(v * mul);
	return true;
}

bool cli_ids(const char *cmd, const char *s, int32_t **ids, int *n)
{
	size_t cap = 1;
	for (const char *p = s; *p; p++)
		cap += *p == ',';
	int32_t *v = malloc(cap * sizeof(int32_t));
	if (!v)
		return false;
	int k = 0;
	const char *p = s;
	while (*p) {
		char *end;
		errno = 0;
		long x = strtol(p, &end, 10);
		if (errno || end == p || x < 0 || x > INT32_MAX || (*end && *end != ',')) {
			fprintf(stderr, "flashmoe %s: --token-ids expects ids like 1,2,3, got '%s'\n",
				cmd, s);
			free(v);
			return false;
		}
		v[k++] = (int32_t)x;
		p = *end ? end + 1 : end;
	}
	if (k == 0) {
		fprintf(stderr, "flashmoe %s: --token-ids is empty\n", cmd);
		free(v);
		return false;
	}
	*ids = v;
	*n = k;
	return true;
}

const char *cli_shape(char *buf, size_t size, uint32_t n_dims, const uint64_t *ne)
{
	size_t len = 0;
	for (uint32_t d = 0; d < n_dims && len < size; d++)
		len += (size_t)snprintf(buf + len, size - len, "%s%llu", d ? ", " : "[",
					(unsigned long long)ne[d]);
	if (len + 1 < size)
		strcat(buf, "]");
	return buf;
}

bool cli_is_help(const char *arg)
{
	return !strcmp(arg, "-h") || !strcmp(arg, "--help");
}

const char *cli_next(const char *cmd, int argc, char **argv, int *i)
{
	if (*i + 1 >= argc) {
		fprintf(stderr, "flashmoe %s: %s needs a value\n", cmd, argv[*i]);
		return NULL;
	}
	return argv[++*i];
}

void cli_model_opts_init(struct cli_model_opts *o)
{
	memset(o, 0, sizeof(*o));
	fm_model_params_default(&o->mp);
}

int cli_model_opt(const char *cmd, struct cli_model_opts *o, int argc, char **argv, int *i)
{
	const char *a = argv[*i], *v;
	if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
		if (!(v = cli_next(cmd, argc, argv, i)))
			return -1;
		o->model = v;
	} else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
		if (!(v = cli_next(cmd, argc, argv, i)) || !cli_int(cmd, a, v, 1, 1024, &o->mp.n_threads))
			return -1;
	} else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
		if (!(v = cli_next(cmd, argc, argv, i)) || !cli_int(cmd, a, v, 1, 1 << 24, &o->n_ctx))
			return -1;
	} else if (!strcmp(a, "--mem")) {
		if (!(v = cli_next(cmd, argc, argv, i)) || !cli_size(cmd, a, v, &o->mp.mem_bytes))
			return -1;
	} else if (!strcmp(a, "--isa")) {
		if (!(v = cli_next(cmd, argc, argv, i)))
			return -1;
		o->mp.isa = v;
	} else if (!strcmp(a, "--experts-per-token")) {
		if (!(v = cli_next(cmd, argc, argv, i)) ||
		    !cli_int(cmd, a, v, 1, 4096, &o->mp.n_expert_used))
			return -1;
	} else if (!strcmp(a, "--io")) {
		if (!(v = cli_next(cmd, argc, argv, i)))
			return -1;
		o->mp.io = v;
	} else if (!strcmp(a, "--prefetch")) {
		if (!(v = cli_next(cmd, argc, argv, i)))
			return -1;
		if (strcmp(v, "auto") && strcmp(v, "on") && strcmp(v, "off")) {
			fprintf(stderr, "flashmoe %s: --prefetch expects auto, on or off, got '%s'\n",
				cmd, v);
			return -1;
		}
		o->mp.prefetch = strcmp(v, "off") != 0;
		o->mp.prefetch_always = !strcmp(v, "on");
	} else if (!strcmp(a, "--cache-size")) {
		if (!(v = cli_next(cmd, argc, argv, i)) || !cli_size(cmd, a, v, &o->mp.cache_bytes))
			return -1;
		o->mp.stream = true;
	} else if (!strcmp(a, "--stream")) {
		o->mp.stream = true;
	} else if (!strcmp(a, "--cache-policy")) {
		if (!(v = cli_next(cmd, argc, argv, i)))
			return -1;
		o->mp.cache_policy = v;
	} else if (!strcmp(a, "--cache-routing")) {
		if (!(v = cli_next(cmd, argc, argv, i)) ||
		    !cli_float(cmd, a, v, 0.0, 1.0, &o->mp.cache_routing))
			return -1;
	} else if (!strcmp(a, "--trace-experts")) {
		if (!(v = cli_next(cmd, argc, argv, i)))
			return -1;
		o->mp.trace_experts = v;
	} else if (!strcmp(a, "--kv-type") || !strcmp(a, "--cache-type") ||
		   !strcmp(a, "--cache-type-k") || !strcmp(a, "-ctk") ||
		   !strcmp(a, "--cache-type-v") || !strcmp(a, "-ctv")) {
		/* llama.cpp's names: -ctk / -ctv for keys / values, --kv-type both */
		if (!(v = cli_next(cmd, argc, argv, i)))
			return -1;
		if (strcmp(v, "f32") && strcmp(v, "f16") && strcmp(v, "q8_0") && strncmp(v, "tq", 2)) {
			fprintf(stderr, "flashmoe %s: %s expects f32, f16, q8_0 or a TurboQuant "
				"format (tq4, tq3.5, tq3, tq2.5; tq4p ... tq2.5p), got '%s'\n", cmd, a, v);
			return -1;
		}
		if (!strcmp(a, "--cache-type-k") || !strcmp(a, "-ctk"))
			o->mp.kv_type_k = v;
		else if (!strcmp(a, "--cache-type-v") || !strcmp(a, "-ctv"))
			o->mp.kv_type_v = v;
		else
			o->mp.kv_type = v;
	} else if (!strcmp(a, "--verbose") || !strcmp(a, "-v")) {
		o->mp.verbose = true;
	} else {
		return 0;
	}
	return 1;
}

void cli_print_stats(struct fm_model *m)
{
	struct fm_stats st;
	fm_get_stats(m, &st);
	fprintf(stderr, "prompt: %llu tokens in %.3f s (%.2f tok/s); generation: %llu tokens in %.3f s (%.2f tok/s)\n",
		(unsigned long long)st.n_prompt_tokens, st.prompt_s,
		st.prompt_s > 0 ? st.n_prompt_tokens / st.prompt_s : 0.0,
		(unsigned long long)st.n_gen_tokens, st.gen_s,
		st.gen_s > 0 ? st.n_gen_tokens / st.gen_s : 0.0);
	fprintf(stderr, "memory: %.1f MiB peak counted, budget %s%.0f MiB\n", st.mem_peak_bytes / 1048576.0,
		st.mem_budget_bytes ? "" : "none ", st.mem_budget_bytes / 1048576.0);
	uint64_t n_tok = st.n_prompt_tokens + st.n_gen_tokens;
	if (n_tok) {
		double ms = 1000.0 / (double)n_tok;
		fprintf(stderr, "time per token (ms): attention %.2f, deltanet %.2f, routing %.2f, "
			"experts %.2f (waiting on reads %.2f), shared expert %.2f, head %.2f\n",
			st.attn_s * ms, st.gdn_s * ms, st.route_s * ms, st.experts_s * ms,
			st.io_wait_s * ms, st.shared_s * ms, st.head_s * ms);
	}
	if (!st.cache_slots) {
		fprintf(stderr, "experts: %s (no streaming)\n", st.io_mode ? st.io_mode : "resident");
		return;
	}
	double t = st.prompt_s + st.gen_s;
	fprintf(stderr,
		"experts: io %s, cache %llu slots (%.1f MiB); lookups %llu, hits %llu (%.1f%%), misses %llu\n"
		"         read %.1f MiB in %.3f s busy (%.2f GB/s); waited %.3f s of %.3f s (%.0f%%)\n"
		"         prefetch: guesses right %.1f%%, reads %llu, used %llu, wasted %.1f MiB\n"
		"         prefetch on for %llu of %llu one-token steps (last probe: %.1f ms with, "
		"%.1f ms without)\n",
		st.io_mode, (unsigned long long)st.cache_slots, st.cache_bytes / 1048576.0,
		(unsigned long long)st.expert_lookups, (unsigned long long)st.expert_hits,
		st.expert_lookups ? 100.0 * st.expert_hits / st.expert_lookups : 0.0,
		(unsigned long long)st.expert_misses, st.bytes_read / 1048576.0, st.read_s,
		st.read_s > 0 ? st.bytes_read / st.read_s / 1e9 : 0.0, st.io_wait_s, t,
		t > 0 ? 100.0 * st.io_wait_s / t : 0.0,
		st.prefetch_guesses ? 100.0 * st.prefetch_guess_hits / st.prefetch_guesses : 0.0,
		(unsigned long long)st.prefetch_issued, (unsigned long long)st.prefetch_used,
		st.prefetch_wasted_bytes / 1048576.0, (unsigned long long)st.prefetch_tokens_on,
		(unsigned long long)(st.prefetch_tokens_on + st.prefetch_tokens_off),
		st.prefetch_probe_on_s * 1e3, st.prefetch_probe_off_s * 1e3);
}

#define CLI_DEFAULT_MODEL "brown-moe.gguf"

static bool is_file(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

const char *cli_default_model(void)
{
	static char path[PATH_MAX + 64];
	const char *env = getenv("FLASHMOE_MODEL");
	if (env && *env) {
		snprintf(path, sizeof(path), "%s", env);
		return path;
	}
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash)
			*slash = '\0';
		static const char *const rel[] = { "/../../models/", "/../share/flashmoe/" };
		for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
			snprintf(path, sizeof(path), "%s%s%s", exe, rel[i], CLI_DEFAULT_MODEL);
			static char real[PATH_MAX];
			if (is_file(path))
				return realpath(path, real) ? real : path;
		}
	}
	snprintf(path, sizeof(path), "models/%s", CLI_DEFAULT_MODEL);
	return is_file(path) ? path : NULL;
}

struct fm_model *cli_open_model(const char *cmd, const struct cli_model_opts *o)
{
	const char *path = o->model;
	if (!path && o->default_model) {
		path = cli_default_model();
		if (!path) {
			fprintf(stderr, "flashmoe %s: no -m MODEL given and the built-in model "
				"(%s) was not found beside the binary, in ./models or in $FLASHMOE_MODEL\n",
				cmd, CLI_DEFAULT_MODEL);
			return NULL;
		}
		fprintf(stderr, "flashmoe %s: the built-in model %s (-m MODEL for another)\n", cmd,
			path);
	}
	if (!path) {
		fprintf(stderr, "flashmoe %s: no model given (-m FILE)\n", cmd);
		return NULL;
	}
	struct fm_error err = { 0 };
	struct fm_model *m = fm_model_open(path, &o->mp, &err);
	if (!m) {
		fprintf(stderr, "flashmoe %s: %s\n", cmd, err.msg);
		return NULL;
	}
	/* as llama.cpp: allowed, but the user should know */
	int train = fm_model_get_info(m)->n_ctx_train;
	if (o->n_ctx > train && train > 0)
		fprintf(stderr, "flashmoe %s: warning: -c %d is beyond the %d tokens the model was "
			"trained with; positions past it may give poor text\n", cmd, o->n_ctx, train);
	return m;
}

const char *cli_chat_template(const char *cmd, const struct fm_model *m, const char *name)
{
	const struct fm_tokenizer *tk = fm_model_tokenizer(m);
	size_t len;
	if (!tk) {
		fprintf(stderr, "flashmoe %s: the model has no tokenizer\n", cmd);
		return NULL;
	}
	if (!name && !(name = fm_tokenizer_chat_template(tk))) {
		fprintf(stderr, "flashmoe %s: the model's chat template is not one flashmoe knows; "
				"using chatml (--template to choose)\n", cmd);
		name = "chatml";
	}
	if (fm_chat_render(name, NULL, 0, true, true, NULL, 0, &len)) {
		fprintf(stderr, "flashmoe %s: unknown --template '%s' (chatml, qwen3, qwen35)\n",
			cmd, name);
		return NULL;
	}
	return name;
}
