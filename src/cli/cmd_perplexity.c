/* cmd_perplexity.c: flashmoe perplexity, the perplexity of a model over a text
 * file, computed by the method tools/train/README.md defines ("Perplexity";
 * llama.cpp's perplexity tool does the same), and the KL divergence from a
 * base model's saved distributions (llama.cpp's --kl-divergence mode).
 *
 * Method: tokenize the file (no BOS, special strings not parsed); cut the ids
 * into n_chunk = n_tokens / CTX non-overlapping windows (the tail is dropped);
 * evaluate each window from an empty cache; in each window, the logits at
 * positions j = CTX/2 .. CTX-2 score the token at j+1:
 *   nll_j = log sum_i exp(logit_j[i]) - logit_j[token_{j+1}]
 * (fp32 logits, exp in float, sums in double); perplexity = exp(mean nll).
 *
 * --save-logits FILE writes, and --kl-base FILE reads (little-endian):
 *   char magic[8] = "FMKLLOG1"; uint32 version = 1, n_ctx, n_vocab, n_chunk;
 *   int32 tokens[n_chunk * n_ctx];
 *   then per window, per scored position j = n_ctx/2 .. n_ctx-2, one row:
 *   float32 scale, float32 base, float32 nll, uint16 q[n_vocab] (in host order;
 *   flashmoe's hosts, x86-64 and arm64, are little-endian)
 * where the row's log-probabilities are log p[i] = base + scale * q[i], with
 * floor = max(min logit, max logit - 16), scale = (max - floor) / 65535,
 * q[i] = round((logit[i] - floor) / scale) (0 at or below the floor) and
 * base = floor - log sum exp(logits). KL(base || current) of a row is
 * sum over i with q[i] > 0 of p[i] (log p[i] - log p_current[i]): entries
 * 16 nats or more below the top logit are left out (llama.cpp does the same).
 * nll is the base model's exact -log p of the row's target token (the
 * quantized q cannot hold targets below the floor). A row is 12 + 2 n_vocab
 * bytes: 304 KB at Qwen3's vocabulary, so 77 MB per window of 512; --chunks N
 * limits the windows (with --kl-base: the first N windows of the file).
 *
 * Uses flashmoe.h, and kv.h for --kv-compare (the per-layer attention error
 * of the KV cache's format against f32, a diagnostic of the cache). Owns no
 * model code; the softmax per row is plain C.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../kv.h"
#include "cli.h"

#define PPL_DEFAULT_CTX 512
#define PPL_ROW_BATCH 64 /* scored positions per fm_eval call */
#define PPL_FLOOR_NATS 16.0f
#define KL_MAGIC "FMKLLOG1"
#define KL_VERSION 1u
#define KL_HEADER_BYTES 24u

static const char usage_text[] =
	"usage: flashmoe perplexity -m MODEL -f TEXT [-c CTX] [-t N] [--chunks N]\n"
	"       [--save-logits FILE] [--kl-base FILE] [--mem SIZE] [--isa ref|avx2|avx512]\n"
	"       [--experts-per-token K] [--kv-type|-ctk|-ctv f32|f16|q8_0|tq3.5|...]\n"
	"  -c CTX            window length in tokens (default 512); the second half is scored\n"
	"  --chunks N        score only the first N windows\n"
	"  -b, --batch N     at most N tokens per evaluation (1: token by token, as a\n"
	"                    generation sees the expert cache; default: half a window, then 64)\n"
	"  --save-logits F   also write the scored distributions to F (for --kl-base)\n"
	"  --kl-base F       KL divergence from the distributions in F (made with\n"
	"                    --save-logits by a base model); windows and tokens come from F\n"
	"  --kv-compare      also attend over an f32 copy of the KV cache and print, per\n"
	"                    attention layer, the relative error of the attention outputs\n"
	"                    (K and V, K only, V only), the scores' RMS error and the\n"
	"                    softmax weights' total variation (slower; the copy is outside --mem)\n";

struct ppl_args {
	struct cli_model_opts mo;
	const char *text_path, *save_path, *base_path;
	int max_chunks;
	int batch;       /* --batch; 0 = the default split */
	int kv_compare;
};

struct ppl_run {
	struct fm_model *m;
	struct fm_ctx *c;
	int n_vocab, n_ctx, n_chunk, first;
	int batch;       /* most tokens per fm_eval call */
	int32_t *tokens; /* n_chunk * n_ctx ids used */
	int n_tokens;    /* ids in the text (or in the base file) */
	float *logits;   /* [PPL_ROW_BATCH][n_vocab] */
	FILE *save, *base;
	uint16_t *q;     /* one row of the logits file */
	/* sums over scored rows */
	double nll, nll2, kl, kl2, kl_max, base_nll;
	long n_scored, n_top1;
};

static uint64_t fnv1a64(const int32_t *ids, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++)
		for (int b = 0; b < 4; b++) {
			h ^= ((uint32_t)ids[i] >> (8 * b)) & 0xff;
			h *= 0x100000001b3ull;
		}
	return h;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int parse_args(int argc, char **argv, struct ppl_args *a)
{
	memset(a, 0, sizeof(*a));
	cli_model_opts_init(&a->mo);
	for (int i = 1; i < argc; i++) {
		int r = cli_model_opt("perplexity", &a->mo, argc, argv, &i);
		if (r < 0)
			return -1;
		if (r > 0)
			continue;
		const char *s = argv[i];
		if (!strcmp(s, "-f") || !strcmp(s, "--file")) {
			if (!(a->text_path = cli_next("perplexity", argc, argv, &i)))
				return -1;
		} else if (!strcmp(s, "--save-logits")) {
			if (!(a->save_path = cli_next("perplexity", argc, argv, &i)))
				return -1;
		} else if (!strcmp(s, "--kl-base")) {
			if (!(a->base_path = cli_next("perplexity", argc, argv, &i)))
				return -1;
		} else if (!strcmp(s, "--kv-compare")) {
			a->kv_compare = 1;
		} else if (!strcmp(s, "-b") || !strcmp(s, "--batch")) {
			const char *v = cli_next("perplexity", argc, argv, &i);
			if (!v || !cli_int("perplexity", s, v, 1, 1 << 24, &a->batch))
				return -1;
		} else if (!strcmp(s, "--chunks")) {
			const char *v = cli_next("perplexity", argc, argv, &i);
			if (!v || !cli_int("perplexity", s, v, 1, 1 << 24, &a->max_chunks))
				return -1;
		} else if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
			fputs(usage_text, stdout);
			return 1;
		} else {
			fprintf(stderr, "flashmoe perplexity: unknown option '%s'\n%s", s, usage_text);
			return -1;
		}
	}
	if (!a->mo.model || (!a->text_path && !a->base_path)) {
		fprintf(stderr, "flashmoe perplexity: -m and -f (or --kl-base) are required\n%s",
			usage_text);
		return -1;
	}
	return 0;
}

/* The whole file, NUL-terminated; *len set. NULL (message printed) on error. */
static char *read_text(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	if (!fp) {
		perror(path);
		return NULL;
	}
	struct stat st;
	char *buf = NULL;
	if (fstat(fileno(fp), &st) || st.st_size < 0 || (uint64_t)st.st_size >= INT32_MAX) {
		fprintf(stderr, "flashmoe perplexity: %s: not a readable file under 2 GiB\n", path);
		goto out;
	}
	*len = (size_t)st.st_size;
	buf = malloc(*len + 1);
	if (!buf || fread(buf, 1, *len, fp) != *len) {
		fprintf(stderr, "flashmoe perplexity: %s: read failed\n", path);
		free(buf);
		buf = NULL;
		goto out;
	}
	buf[*len] = 0;
out:
	fclose(fp);
	return buf;
}

static int tokenize_file(struct ppl_run *r, const char *path)
{
	size_t len;
	char *text = read_text(path, &len);
	if (!text)
		return -1;
	/* byte-level BPE: never more ids than bytes */
	r->tokens = malloc((len + 1) * sizeof(int32_t));
	int n = r->tokens ? fm_tokenize(r->m, text, len, r->tokens, (int)len + 1, false) : FM_ENOMEM;
	free(text);
	if (n < 0) {
		fprintf(stderr, "flashmoe perplexity: tokenizing %s failed (%d)\n", path, n);
		return -1;
	}
	r->n_tokens = n;
	return 0;
}

static uint32_t get_u32le(const unsigned char *p)
{
	return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_u32le(unsigned char *p, uint32_t v)
{
	for (int b = 0; b < 4; b++)
		p[b] = (unsigned char)(v >> (8 * b));
}

static uint64_t kl_row_bytes(int n_vocab)
{
	return 12 + 2 * (uint64_t)n_vocab;
}

/* Open --kl-base: check the header against the file size and the model, read
 * its tokens; sets n_ctx, n_chunk, tokens. Fields are little-endian. */
static int open_base(struct ppl_run *r, const char *path, int want_ctx)
{
	unsigned char h[KL_HEADER_BYTES];
	struct stat st;
	if (!(r->base = fopen(path, "rb")) || fstat(fileno(r->base), &st) ||
	    fread(h, 1, sizeof(h), r->base) != sizeof(h)) {
		fprintf(stderr, "flashmoe perplexity: %s: cannot read the header\n", path);
		return -1;
	}
	uint32_t ver = get_u32le(h + 8), ctx = get_u32le(h + 12), nv = get_u32le(h + 16),
		 nch = get_u32le(h + 20);
	if (memcmp(h, KL_MAGIC, 8) || ver != KL_VERSION || ctx < 4 || ctx > (1u << 24) ||
	    nch < 1 || (uint64_t)ctx * nch > INT32_MAX) {
		fprintf(stderr, "flashmoe perplexity: %s: not a version-%u logits file of "
			"sane size (ctx %u, windows %u)\n", path, KL_VERSION, ctx, nch);
		return -1;
	}
	if ((int)nv != r->n_vocab) {
		fprintf(stderr, "flashmoe perplexity: %s: written for a vocabulary of %u tokens; "
			"the model has %d\n", path, nv, r->n_vocab);
		return -1;
	}
	if (want_ctx && (uint32_t)want_ctx != ctx) {
		fprintf(stderr, "flashmoe perplexity: %s: windows of %u tokens; -c asks for %d "
			"(leave -c out to use the file's)\n", path, ctx, want_ctx);
		return -1;
	}
	uint64_t rows = (uint64_t)nch * (ctx - 1 - ctx / 2);
	uint64_t want = KL_HEADER_BYTES + 4ull * ctx * nch + rows * kl_row_bytes(r->n_vocab);
	if ((uint64_t)st.st_size != want) {
		fprintf(stderr, "flashmoe perplexity: %s: %lld bytes, expected %" PRIu64 "\n", path,
			(long long)st.st_size, want);
		return -1;
	}
	r->n_ctx = (int)ctx;
	r->n_chunk = (int)nch;
	r->n_tokens = (int)(ctx * nch);
	r->tokens = malloc((size_t)r->n_tokens * sizeof(int32_t));
	unsigned char *raw = malloc((size_t)r->n_tokens * 4);
	int rc = -1;
	if (!r->tokens || !raw || fread(raw, 4, (size_t)r->n_tokens, r->base) != (size_t)r->n_tokens)
		fprintf(stderr, "flashmoe perplexity: %s: cannot read the tokens\n", path);
	else
		rc = 0;
	for (int i = 0; rc == 0 && i < r->n_tokens; i++) {
		r->tokens[i] = (int32_t)get_u32le(raw + 4 * (size_t)i);
		if (r->tokens[i] < 0 || r->tokens[i] >= r->n_vocab) {
			fprintf(stderr, "flashmoe perplexity: %s: token %d of %d is out of range\n",
				path, i, r->n_tokens);
			rc = -1;
		}
	}
	free(raw);
	return rc;
}

static int open_save(struct ppl_run *r, const char *path)
{
	unsigned char h[KL_HEADER_BYTES];
	memcpy(h, KL_MAGIC, 8);
	put_u32le(h + 8, KL_VERSION);
	put_u32le(h + 12, (uint32_t)r->n_ctx);
	put_u32le(h + 16, (uint32_t)r->n_vocab);
	put_u32le(h + 20, (uint32_t)r->n_chunk);
	size_t n = (size_t)r->n_chunk * r->n_ctx;
	unsigned char *raw = malloc(n * 4);
	if (!(r->save = fopen(path, "wb")) || !raw) {
		perror(path);
		free(raw);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		put_u32le(raw + 4 * i, (uint32_t)r->tokens[i]);
	int ok = fwrite(h, 1, sizeof(h), r->save) == sizeof(h) && fwrite(raw, 4, n, r->save) == n;
	free(raw);
	if (!ok)
		fprintf(stderr, "flashmoe perplexity: writing %s failed\n", path);
	return ok ? 0 : -1;
}

/* log sum exp of a row: max + log sum exp(l - max), exp in float, sum in double */
static double row_lse(const float *l, int n)
{
	float mx = l[0];
	for (int i = 1; i < n; i++)
		mx = l[i] > mx ? l[i] : mx;
	double s = 0;
	for (int i = 0; i < n; i++)
		s += expf(l[i] - mx);
	return mx + log(s);
}

static int save_row(struct ppl_run *r, const float *l, double lse, double nll)
{
	float mx = l[0], mn = l[0];
	for (int i = 1; i < r->n_vocab; i++) {
		mx = l[i] > mx ? l[i] : mx;
		mn = l[i] < mn ? l[i] : mn;
	}
	float floor_l = mn > mx - PPL_FLOOR_NATS ? mn : mx - PPL_FLOOR_NATS;
	float scale = (mx - floor_l) / 65535.0f;
	float inv = scale > 0 ? 1.0f / scale : 0.0f;
	for (int i = 0; i < r->n_vocab; i++) {
		float v = l[i] > floor_l ? nearbyintf((l[i] - floor_l) * inv) : 0.0f;
		r->q[i] = v > 65535.0f ? 65535 : (uint16_t)v;
	}
	float hdr[3] = { scale, (float)(floor_l - lse), (float)nll };
	/* rows in host order: flashmoe's hosts (x86-64, arm64) are little-endian */
	if (fwrite(hdr, sizeof(float), 3, r->save) != 3 ||
	    fwrite(r->q, 2, (size_t)r->n_vocab, r->save) != (size_t)r->n_vocab) {
		fprintf(stderr, "flashmoe perplexity: writing the logits file failed\n");
		return -1;
	}
	return 0;
}

/* KL(base || current) of one row, top-1 agreement and the base's nll. */
static int kl_row(struct ppl_run *r, const float *l, double lse)
{
	float hdr[3];
	if (fread(hdr, sizeof(float), 3, r->base) != 3 ||
	    fread(r->q, 2, (size_t)r->n_vocab, r->base) != (size_t)r->n_vocab) {
		fprintf(stderr, "flashmoe perplexity: reading the base logits failed\n");
		return -1;
	}
	double kl = 0;
	int top_b = 0, top_c = 0;
	for (int i = 0; i < r->n_vocab; i++) {
		unsigned q = r->q[i];
		top_b = q > r->q[top_b] ? i : top_b;
		top_c = l[i] > l[top_c] ? i : top_c;
		if (!q)
			continue;
		double lpb = hdr[1] + (double)hdr[0] * q;
		kl += exp(lpb) * (lpb - (l[i] - lse));
	}
	r->kl += kl;
	r->kl2 += kl * kl;
	r->kl_max = kl > r->kl_max ? kl : r->kl_max;
	r->n_top1 += top_b == top_c;
	r->base_nll += hdr[2];
	return 0;
}

static int score_row(struct ppl_run *r, const float *l, int32_t tgt)
{
	double lse = row_lse(l, r->n_vocab);
	double nll = lse - l[tgt];
	r->nll += nll;
	r->nll2 += nll * nll;
	r->n_scored++;
	if (r->save && save_row(r, l, lse, nll))
		return -1;
	if (r->base && kl_row(r, l, lse))
		return -1;
	return 0;
}

/* One window from an empty cache: the first half without logits, then the
 * scored positions first .. n_ctx-2 in batches. */
static int eval_window(struct ppl_run *r, const int32_t *w)
{
	struct fm_error err = { 0 };
	int rc = fm_ctx_truncate(r->c, 0);
	int step = r->batch < PPL_ROW_BATCH ? r->batch : r->first; /* unscored half */
	for (int j = 0; !rc && j < r->first; j += step)
		rc = fm_eval(r->c, w + j, r->first - j < step ? r->first - j : step, NULL, false, &err);
	for (int j = r->first; !rc && j < r->n_ctx - 1; j += r->batch) {
		int nb = r->n_ctx - 1 - j < r->batch ? r->n_ctx - 1 - j : r->batch;
		rc = fm_eval(r->c, w + j, nb, r->logits, true, &err);
		for (int k = 0; !rc && k < nb; k++) {
			int32_t tgt = w[j + k + 1];
			if (tgt < 0 || tgt >= r->n_vocab) {
				fprintf(stderr, "flashmoe perplexity: token id %d is out of range\n", tgt);
				return -1;
			}
			rc = score_row(r, r->logits + (size_t)k * r->n_vocab, tgt);
		}
	}
	if (rc && err.msg[0])
		fprintf(stderr, "flashmoe perplexity: %s\n", err.msg);
	return rc ? -1 : 0;
}

static int run_windows(struct ppl_run *r)
{
	double t0 = now_s();
	for (int k = 0; k < r->n_chunk; k++) {
		if (eval_window(r, r->tokens + (size_t)k * r->n_ctx))
			return -1;
		if (k == 0)
			fprintf(stderr, "perplexity: %.2f s per window of %d tokens, ~%.1f min for %d\n",
				now_s() - t0, r->n_ctx, (now_s() - t0) * r->n_chunk / 60, r->n_chunk);
		fprintf(stderr, "[%d]%.4f%s", k + 1, exp(r->nll / r->n_scored),
			k + 1 == r->n_chunk ? "\n" : ",");
	}
	double dt = now_s() - t0;
	fprintf(stderr, "perplexity: %d windows in %.1f s (%.1f tokens/s)\n", r->n_chunk, dt,
		(double)r->n_chunk * (r->n_ctx - 1) / dt);
	return 0;
}

static void report(const struct ppl_run *r, const char *base_path)
{
	double n = (double)r->n_scored, mean = r->nll / n;
	double var = r->nll2 / n - mean * mean;
	double ppl = exp(mean);
	printf("perplexity: %.4f\n", ppl);
	printf("scored tokens: %ld (%d windows of %d tokens, positions %d..%d of each)\n",
	       r->n_scored, r->n_chunk, r->n_ctx, r->first, r->n_ctx - 2);
	printf("mean nll: %.6f nats/token; perplexity stderr: %.4f\n", mean,
	       ppl * sqrt((var > 0 ? var : 0) / (n > 1 ? n - 1 : 1)));
	if (!base_path)
		return;
	double kl = r->kl / n, kl_var = r->kl2 / n - kl * kl;
	printf("kl divergence (base || current): mean %.6f +/- %.6f, max %.6f nats/token\n", kl,
	       sqrt((kl_var > 0 ? kl_var : 0) / (n > 1 ? n - 1 : 1)), r->kl_max);
	printf("top-1 agreement: %.3f %% (%ld of %ld rows)\n", 100.0 * r->n_top1 / n, r->n_top1,
	       r->n_scored);
	printf("base perplexity (from %s): %.4f\n", base_path, exp(r->base_nll / n));
}

static int setup(struct ppl_run *r, const struct ppl_args *a)
{
	const struct fm_model_info *info = fm_model_get_info(r->m);
	struct fm_error err = { 0 };
	r->n_vocab = info->n_vocab;
	if (a->base_path ? open_base(r, a->base_path, a->mo.n_ctx) : tokenize_file(r, a->text_path))
		return -1;
	if (!a->base_path) {
		r->n_ctx = a->mo.n_ctx ? a->mo.n_ctx : PPL_DEFAULT_CTX;
		r->n_chunk = r->n_tokens / r->n_ctx;
	}
	if (r->n_ctx < 4) {
		fprintf(stderr, "flashmoe perplexity: -c %d is too small: a window needs at least 4 "
			"tokens (half of it is context, half is scored)\n", r->n_ctx);
		return -1;
	}
	if (r->n_chunk < 1) {
		fprintf(stderr, "flashmoe perplexity: the text has %d tokens, fewer than one window "
			"of -c %d\n", r->n_tokens, r->n_ctx);
		return -1;
	}
	if (a->max_chunks && a->max_chunks < r->n_chunk)
		r->n_chunk = a->max_chunks; /* a base file's rows are in window order */
	r->first = r->n_ctx / 2;
	r->batch = a->batch && a->batch < PPL_ROW_BATCH ? a->batch : PPL_ROW_BATCH;
	printf("tokens: %d (fnv1a64 %016" PRIx64 ")\n", r->n_tokens,
	       fnv1a64(r->tokens, (size_t)r->n_tokens));
	r->c = fm_ctx_new(r->m, r->n_ctx, &err);
	r->logits = malloc((size_t)PPL_ROW_BATCH * r->n_vocab * sizeof(float));
	r->q = malloc((size_t)r->n_vocab * sizeof(uint16_t));
	if (!r->c || !r->logits || !r->q) {
		fprintf(stderr, "flashmoe perplexity: %s\n", r->c ? "out of memory" : err.msg);
		return -1;
	}
	return a->save_path ? open_save(r, a->save_path) : 0;
}

int cmd_perplexity(int argc, char **argv)
{
	struct ppl_args a;
	int pr = parse_args(argc, argv, &a);
	if (pr)
		return pr > 0 ? 0 : 2;
	struct ppl_run r = { 0 };
	int rc = 1;
	if (a.kv_compare)
		kv_compare_enable();
	if (!(r.m = cli_open_model("perplexity", &a.mo)))
		goto out;
	if (setup(&r, &a) || run_windows(&r))
		goto out;
	if (r.save && fclose(r.save)) {
		r.save = NULL;
		fprintf(stderr, "flashmoe perplexity: closing %s failed\n", a.save_path);
		goto out;
	}
	r.save = NULL;
	report(&r, a.base_path);
	if (a.kv_compare)
		kv_compare_report(stdout);
	rc = 0;
out:
	if (r.save)
		fclose(r.save);
	if (r.base)
		fclose(r.base);
	free(r.q);
	free(r.logits);
	free(r.tokens);
	fm_ctx_free(r.c);
	fm_model_close(r.m);
	return rc;
}
