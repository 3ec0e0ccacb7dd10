/* test_hybrid.c: the hybrid architectures (qwen3next, qwen35moe: Gated
 * DeltaNet + gated attention + shared expert) through the public API, on
 * tiny random models from fm_gen_tiny:
 *   - a prompt evaluated in one batch (chunked delta rule, chunks of 64 and
 *     a partial one) agrees with token by token (the recurrence) to float
 *     rounding, and with batches of other sizes (state carried across calls);
 *   - streamed experts (tiny cache, prefetch on/off) give bit-identical
 *     logits to resident ones, batched and token by token;
 *   - going back: fm_ctx_truncate to where a prompt began or ended restores
 *     the recurrent state exactly (the same logits again, bit for bit); to
 *     another position it is refused with FM_EUNSUPPORTED and nothing
 *     changes; fm_ctx_rewind goes to the nearest earlier snapshot.
 * The logits themselves are checked against the NumPy reference
 * (tests/reference) and llama.cpp (tests/llamacpp) elsewhere. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "flashmoe.h"
#include "testutil.h"

#define N_TOK 150

static char path[512];
static int n_vocab;
static int32_t ids[N_TOK];

static struct fm_model *open_model(bool stream, uint64_t cache, bool prefetch)
{
	struct fm_model_params mp;
	fm_model_params_default(&mp);
	mp.n_threads = 2;
	mp.stream = stream;
	mp.cache_bytes = cache;
	mp.prefetch = prefetch;
	struct fm_error err = { 0 };
	struct fm_model *m = fm_model_open(path, &mp, &err);
	CHECK(m != NULL, "open %s: %s", path, err.msg);
	if (m)
		n_vocab = fm_model_get_info(m)->n_vocab;
	return m;
}

/* Logits of every position, evaluated chunk tokens at a time. */
static float *run(bool stream, uint64_t cache, bool prefetch, int chunk)
{
	struct fm_model *m = open_model(stream, cache, prefetch);
	if (!m)
		return NULL;
	struct fm_error err = { 0 };
	struct fm_ctx *c = fm_ctx_new(m, N_TOK + 8, &err);
	float *out = calloc((size_t)N_TOK * n_vocab, sizeof(float));
	CHECK(c && out, "ctx: %s", err.msg);
	for (int i = 0; c && out && i < N_TOK; i += chunk) {
		int nb = N_TOK - i < chunk ? N_TOK - i : chunk;
		int rc = fm_eval(c, ids + i, nb, out + (size_t)i * n_vocab, true, &err);
		CHECK(rc == 0, "eval: %s", err.msg);
	}
	fm_ctx_free(c);
	fm_model_close(m);
	return out;
}

static double max_rel(const float *a, const float *b, size_t n)
{
	double d = 0, mx = 1e-30;
	for (size_t i = 0; i < n; i++) {
		double e = fabs((double)a[i] - b[i]);
		d = e > d ? e : d;
		mx = fabs((double)a[i]) > mx ? fabs((double)a[i]) : mx;
	}
	return d / mx;
}

static void check_forms(const char *arch)
{
	float *batch = run(false, 0, false, N_TOK), *tok = run(false, 0, false, 1);
	float *mixed = run(false, 0, false, 37);
	if (batch && tok && mixed) {
		double e1 = max_rel(batch, tok, (size_t)N_TOK * n_vocab);
		double e2 = max_rel(batch, mixed, (size_t)N_TOK * n_vocab);
		/* measured ~1e-5: the chunked form sums in another order */
		CHECK(e1 < 2e-4 && e2 < 2e-4, "%s: batch vs token by token %.3g, vs 37 %.3g", arch, e1,
		      e2);
		printf("  %s: one batch vs token by token max rel %.2g, vs batches of 37 %.2g\n", arch,
		       e1, e2);
	}
	/* one expert slot = gate + up + down of one expert, F32: 3 * 32 * 64 * 4 */
	uint64_t slot = 3ull * 32 * 64 * 4;
	const struct { uint64_t cache; bool prefetch; int chunk; float *base; } sv[] = {
		{ 2 * slot, true, N_TOK, batch }, { 2 * slot, false, 1, tok },
		{ 12 * slot, true, 37, mixed }, { 64 * slot, false, 1, tok },
	};
	for (size_t i = 0; i < sizeof(sv) / sizeof(sv[0]); i++) {
		float *x = run(true, sv[i].cache, sv[i].prefetch, sv[i].chunk);
		if (x && sv[i].base)
			CHECK(memcmp(x, sv[i].base, (size_t)N_TOK * n_vocab * sizeof(float)) == 0,
			      "%s: streamed (%llu slots, prefetch %d, chunk %d) differs from resident",
			      arch, (unsigned long long)(sv[i].cache / slot), sv[i].prefetch, sv[i].chunk);
		free(x);
	}
	free(batch);
	free(tok);
	free(mixed);
}

/* A chat's pattern: prompt, a generated answer, a second prompt; then back. */
static void check_rewind(const char *arch)
{
	struct fm_model *m = open_model(false, 0, false);
	if (!m)
		return;
	struct fm_error err = { 0 };
	struct fm_ctx *c = fm_ctx_new(m, N_TOK + 8, &err);
	float *a = calloc((size_t)n_vocab, sizeof(float)), *b = calloc((size_t)n_vocab, sizeof(float));
	int rc = fm_eval(c, ids, 40, NULL, false, &err);            /* prompt: 0..40 */
	for (int i = 40; !rc && i < 50; i++)                         /* answer: 40..50 */
		rc = fm_eval(c, ids + i, 1, NULL, false, &err);
	rc = rc ? rc : fm_eval(c, ids + 50, 30, NULL, false, &err); /* prompt 2: 50..80 */
	rc = rc ? rc : fm_eval(c, ids + 80, 1, a, false, &err);
	CHECK(rc == 0, "%s: eval: %s", arch, err.msg);
	/* back to where the second prompt began: exact */
	CHECK(fm_ctx_truncate(c, 50) == 0 && fm_ctx_n_past(c) == 50, "%s: truncate to 50", arch);
	rc = fm_eval(c, ids + 50, 30, NULL, false, &err);
	rc = rc ? rc : fm_eval(c, ids + 80, 1, b, false, &err);
	CHECK(rc == 0 && memcmp(a, b, (size_t)n_vocab * sizeof(float)) == 0,
	      "%s: logits after going back to 50 differ", arch);
	/* to the middle of the answer: refused, nothing changes */
	CHECK(fm_ctx_truncate(c, 45) == FM_EUNSUPPORTED && fm_ctx_n_past(c) == 81,
	      "%s: truncate to 45 was not refused (n_past %d)", arch, fm_ctx_n_past(c));
	/* rewind goes to the nearest snapshot before: 40 (end of prompt 1) */
	CHECK(fm_ctx_rewind(c, 45) == 40 && fm_ctx_n_past(c) == 40, "%s: rewind to 45 -> %d", arch,
	      fm_ctx_n_past(c));
	rc = fm_eval(c, ids + 40, 10, NULL, false, &err);
	rc = rc ? rc : fm_eval(c, ids + 50, 30, NULL, false, &err);
	memset(b, 0, (size_t)n_vocab * sizeof(float));
	rc = rc ? rc : fm_eval(c, ids + 80, 1, b, false, &err);
	/* 40..50 now one batch instead of token by token: equal to rounding */
	CHECK(rc == 0 && max_rel(a, b, (size_t)n_vocab) < 2e-4, "%s: after rewind to 40: %.3g",
	      arch, max_rel(a, b, (size_t)n_vocab));
	CHECK(fm_ctx_truncate(c, 0) == 0 && fm_ctx_n_past(c) == 0, "%s: truncate to 0", arch);
	free(a);
	free(b);
	fm_ctx_free(c);
	fm_model_close(m);
}

int main(void)
{
	for (int i = 0; i < N_TOK; i++)
		ids[i] = (int32_t)((i * 37 + 11) % 290);
	const char *archs[] = { "qwen3next", "qwen35moe" };
	for (int a = 0; a < 2; a++) {
		struct fm_tiny_params p;
		fm_tiny_params_default(&p);
		p.arch = archs[a];
		p.n_layer = 4;      /* 3 DeltaNet layers and one attention layer */
		p.n_embd = 64;
		p.n_head = 2;
		p.n_head_kv = 1;
		p.head_dim = 32;
		p.n_expert = 8;
		p.n_expert_used = 2;
		p.n_ff_expert = 32;
		p.n_vocab = 300;
		p.seed = 7 + (uint64_t)a;
		snprintf(path, sizeof(path), "%s/%s.gguf", t_tmpdir(), archs[a]);
		struct fm_error err = { 0 };
		if (fm_gen_tiny(path, &p, &err)) {
			CHECK(0, "gen_tiny %s: %s", archs[a], err.msg);
			continue;
		}
		check_forms(archs[a]);
		check_rewind(archs[a]);
	}
	return t_done("test_hybrid");
}
