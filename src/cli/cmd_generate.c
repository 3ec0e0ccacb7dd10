/* cmd_generate.c: flashmoe generate, continue a prompt (with --chat, answer
 * it as one user turn of the model's chat template). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage_text[] =
	"usage: flashmoe generate -m MODEL (-p TEXT | --token-ids 1,2,3) [-n N] [--temp T] [--top-k K]\n"
	"       [--chat [--system TEXT] [--template chatml|qwen3|qwen35] [--think on|off]]\n"
	"       [--top-p P] [--min-p P] [--repeat-penalty R] [--seed S] [--ids] [--stats]\n"
	"       [-t N] [-c CTX] [--mem SIZE] [--isa ref|avx2|avx512] [--experts-per-token K] [--kv-type|-ctk|-ctv f32|f16|q8_0|tq3.5|...]\n"
	"       [--io uring|pread|buffered|mmap] [--prefetch auto|on|off] [--stream] [--cache-policy lru|lfu|arc|pred]\n"
	"       [--cache-routing T]\n"
	"       [--trace-experts FILE] [--verbose]\n";

struct gen_opts {
	struct cli_model_opts mo;
	struct fm_sampler_params sp;
	const char *prompt, *ids_s;
	const char *system, *tmpl; /* --chat: system message, template name */
	int n_predict;
	bool print_ids, stats, chat, think;
};

static int parse(struct gen_opts *g, int argc, char **argv)
{
	const char *v;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		int r = cli_model_opt("generate", &g->mo, argc, argv, &i);
		if (r < 0)
			return -1;
		if (r > 0)
			continue;
		if (!strcmp(a, "--ids")) {
			g->print_ids = true;
			continue;
		}
		if (!strcmp(a, "--stats")) {
			g->stats = true;
			continue;
		}
		if (!strcmp(a, "--chat")) {
			g->chat = true;
			continue;
		}
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			fputs(usage_text, stdout);
			exit(0);
		}
		static const char *const valued[] = { "-p", "--prompt", "--token-ids", "-n", "--n-predict",
						       "--temp", "--top-k", "--top-p", "--min-p",
						       "--repeat-penalty", "--seed", "--system", "--template",
						       "--think", NULL };
		bool known = false;
		for (int k = 0; valued[k] && !known; k++)
			known = !strcmp(a, valued[k]);
		if (!known) {
			fprintf(stderr, "flashmoe generate: unknown option '%s'\n%s", a, usage_text);
			return -1;
		}
		if (!(v = cli_next("generate", argc, argv, &i)))
			return -1;
		bool ok = true;
		if (!strcmp(a, "-p") || !strcmp(a, "--prompt"))
			g->prompt = v;
		else if (!strcmp(a, "--token-ids"))
			g->ids_s = v;
		else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict"))
			ok = cli_int("generate", a, v, 0, 1 << 24, &g->n_predict);
		else if (!strcmp(a, "--temp"))
			ok = cli_float("generate", a, v, 0, 100, &g->sp.temp);
		else if (!strcmp(a, "--top-k"))
			ok = cli_int("generate", a, v, 0, 1 << 24, &g->sp.top_k);
		else if (!strcmp(a, "--top-p"))
			ok = cli_float("generate", a, v, 0, 1, &g->sp.top_p);
		else if (!strcmp(a, "--min-p"))
			ok = cli_float("generate", a, v, 0, 1, &g->sp.min_p);
		else if (!strcmp(a, "--repeat-penalty"))
			ok = cli_float("generate", a, v, 0.01, 100, &g->sp.repeat_penalty);
		else if (!strcmp(a, "--seed"))
			ok = cli_u64("generate", a, v, &g->sp.seed);
		else if (!strcmp(a, "--system"))
			g->system = v;
		else if (!strcmp(a, "--template"))
			g->tmpl = v;
		else if (!strcmp(a, "--think")) {
			ok = !strcmp(v, "on") || !strcmp(v, "off");
			g->think = !strcmp(v, "on");
			if (!ok)
				fprintf(stderr, "flashmoe generate: --think expects on or off, got '%s'\n", v);
		} else {
			fprintf(stderr, "flashmoe generate: unknown option '%s'\n%s", a, usage_text);
			return -1;
		}
		if (!ok)
			return -1;
	}
	if (!g->prompt == !g->ids_s) {
		fprintf(stderr, "flashmoe generate: give exactly one of -p TEXT or --token-ids\n%s",
			usage_text);
		return -1;
	}
	if (!g->chat && (g->system || g->tmpl)) {
		fprintf(stderr, "flashmoe generate: --system and --template need --chat\n");
		return -1;
	}
	if (g->chat && !g->prompt) {
		fprintf(stderr, "flashmoe generate: --chat needs -p TEXT\n");
		return -1;
	}
	return 0;
}

/* --chat: the prompt as one user turn (after the --system message) in the
 * chat template (--template, else the model's, else ChatML), ending with the
 * assistant's generation prompt. malloc'd; NULL after an error (printed). */
static char *chat_prompt(const struct gen_opts *g, struct fm_model *m)
{
	const char *tmpl = g->tmpl ? g->tmpl : fm_tokenizer_chat_template(fm_model_tokenizer(m));
	struct fm_chat_msg msgs[2];
	size_t n = 0, len = 0;
	if (g->system)
		msgs[n++] = (struct fm_chat_msg){ .role = "system", .content = g->system };
	msgs[n++] = (struct fm_chat_msg){ .role = "user", .content = g->prompt };
	if (!tmpl)
		fprintf(stderr, "flashmoe generate: no known chat template in the model; using chatml\n");
	tmpl = tmpl ? tmpl : "chatml";
	if (fm_chat_render(tmpl, msgs, n, true, g->think, NULL, 0, &len)) {
		fprintf(stderr, "flashmoe generate: unknown --template '%s' (chatml, qwen3, qwen35)\n",
			tmpl);
		return NULL;
	}
	char *text = malloc(len + 1);
	if (text && fm_chat_render(tmpl, msgs, n, true, g->think, text, len + 1, &len)) {
		free(text);
		text = NULL;
	}
	return text;
}

/* Text -> ids with the model's tokenizer (special tokens parsed), after its
 * BOS when the tokenizer adds one, as Hugging Face's does. */
static int tokenize_text(const struct fm_tokenizer *tk, const char *text, int32_t **ids, int *n)
{
	size_t len = strlen(text);
	int bos = fm_tokenizer_add_bos(tk) && fm_tokenizer_bos(tk) >= 0;
	if (len > INT_MAX / 2) {
		fprintf(stderr, "flashmoe generate: the prompt is too long\n");
		return -1;
	}
	int cap = (int)len + 8;
	*ids = malloc(((size_t)cap + 1) * sizeof(int32_t));
	if (!*ids)
		return -1;
	int k = fm_tokenizer_encode(tk, text, len, true, *ids + bos, cap);
	if (k < 0 || k > cap) {
		fprintf(stderr, "flashmoe generate: cannot tokenize the prompt (%d tokens, room for %d)\n",
			k, cap);
		return -1;
	}
	if (bos)
		(*ids)[0] = fm_tokenizer_bos(tk);
	*n = bos + k;
	if (*n == 0) {
		fprintf(stderr, "flashmoe generate: the prompt gives no tokens\n");
		return -1;
	}
	return 0;
}

/* The prompt's ids: --token-ids, or -p's text (through the chat template
 * with --chat). */
static int prompt_ids(const struct gen_opts *g, struct fm_model *m, int32_t **ids, int *n)
{
	if (g->ids_s)
		return cli_ids("generate", g->ids_s, ids, n) ? 0 : -1;
	const struct fm_tokenizer *tk = fm_model_tokenizer(m);
	char *chat = NULL;
	if (!tk) {
		fprintf(stderr, "flashmoe generate: the model has no tokenizer; use --token-ids\n");
		return -1;
	}
	if (g->chat && !(chat = chat_prompt(g, m)))
		return -1;
	int rc = tokenize_text(tk, chat ? chat : g->prompt, ids, n);
	free(chat);
	return rc;
}

/* Token output: ids, or text through the streaming decoder (a character
 * split over two tokens is printed when it is complete). */
struct emitter {
	bool as_id;
	int n;
	struct fm_detok *detok;
	char *buf;
	size_t cap;
};

static void emit(struct emitter *e, int32_t tok)
{
	if (e->as_id) {
		printf(e->n++ ? " %d" : "%d", tok);
	} else if (e->detok) {
		int k = fm_detok_feed(e->detok, tok, e->buf, e->cap);
		if (k > 0)
			fwrite(e->buf, 1, (size_t)k, stdout);
	}
	fflush(stdout);
}

static void emit_end(struct emitter *e)
{
	if (e->detok) {
		int k = fm_detok_flush(e->detok, e->buf, e->cap);
		if (k > 0)
			fwrite(e->buf, 1, (size_t)k, stdout);
	}
	printf("\n");
}

/* FNV-1a over the logits' bits: a fingerprint for golden comparisons. */
static uint64_t logits_hash(const float *x, int n)
{
	uint64_t h = 1469598103934665603ull;
	const unsigned char *p = (const unsigned char *)x;
	for (size_t i = 0; i < (size_t)n * sizeof(float); i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

static void print_stats(struct fm_model *m, const float *logits, int n_vocab)
{
	fputc('\n', stderr);
	cli_print_stats(m);
	fprintf(stderr, "final logits hash %016llx\n", (unsigned long long)logits_hash(logits, n_vocab));
}

int cmd_generate(int argc, char **argv)
{
	struct gen_opts g = { .n_predict = 64, .think = true };
	cli_model_opts_init(&g.mo);
	g.mo.default_model = true;
	fm_sampler_params_default(&g.sp);
	if (parse(&g, argc, argv))
		return 2;
	int32_t *ids = NULL;
	int n = 0, rc = 1;
	float *logits = NULL;
	struct fm_ctx *c = NULL;
	struct fm_sampler *s = NULL;
	struct fm_error err = { 0 };
	struct emitter em = { 0 };
	struct fm_model *m = cli_open_model("generate", &g.mo);
	if (!m || prompt_ids(&g, m, &ids, &n))
		goto out;
	int n_vocab = fm_model_get_info(m)->n_vocab;
	int n_ctx = g.mo.n_ctx ? g.mo.n_ctx : n + g.n_predict;
	c = fm_ctx_new(m, n_ctx, &err);
	logits = malloc((size_t)n_vocab * sizeof(float));
	s = fm_sampler_new(&g.sp, n_vocab);
	if (!c || !logits || !s) {
		fprintf(stderr, "flashmoe generate: %s\n", c ? "out of memory" : err.msg);
		goto out;
	}
	const struct fm_tokenizer *tk = fm_model_tokenizer(m);
	em.as_id = g.print_ids || !tk;
	if (!em.as_id) {
		em.cap = fm_detok_max_bytes(tk);
		em.buf = malloc(em.cap);
		em.detok = fm_detok_new(tk, true);
		if (!em.buf || !em.detok)
			goto out;
	}
	if (fm_eval(c, ids, n, logits, false, &err))
		goto eval_fail;
	for (int i = 0; i < g.n_predict; i++) {
		int32_t tok = fm_sampler_sample(s, logits);
		if (fm_token_is_eog(m, tok))
			break;
		emit(&em, tok);
		if (i + 1 == g.n_predict || fm_ctx_n_past(c) >= n_ctx)
			break;
		if (fm_eval(c, &tok, 1, logits, false, &err))
			goto eval_fail;
	}
	emit_end(&em);
	if (g.stats)
		print_stats(m, logits, n_vocab);
	rc = 0;
	goto out;
eval_fail:
	fprintf(stderr, "flashmoe generate: %s\n", err.msg);
out:
	fm_detok_free(em.detok);
	free(em.buf);
	fm_sampler_free(s);
	free(logits);
	fm_ctx_free(c);
	fm_model_close(m);
	free(ids);
	return rc;
}
