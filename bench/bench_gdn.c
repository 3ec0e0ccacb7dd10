/* bench_gdn.c: single-thread speed of the gated delta rule (src/gdn.h), token
 * by token vs chunked, for one Qwen3-Next-80B GDN layer (nk 16, nv 32,
 * dk = dv = 128) over a prompt of T tokens (default 512), all heads in one
 * call as one thread's share would run. Prints, per form, the best time of
 * the runs in ~5 s (the forms take turns), ns per token per value head,
 * tokens/s for the layer, and how far its outputs are from the first form's.
 *
 * Usage: bench_gdn [T [chunk ...]]   (chunk 1 = token by token; default 1 16 32 64)
 * Build: make O=build/hF bench   or   make build/release/bench/bench_gdn
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gdn.h"

#define MIN_SECONDS 5.0

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float unif(void) /* [0, 1) */
{
	rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
	return (float)(rng_state >> 40) * (1.0f / 16777216.0f);
}
static float normal(void)
{
	float u = unif() + 1e-7f, w = unif();
	return sqrtf(-2.0f * logf(u)) * cosf(6.2831853f * w);
}

int main(int argc, char **argv)
{
	const struct gdn_shape s = { .nk = 16, .nv = 32, .dk = 128, .dv = 128, .conv_k = 4 };
	int T = argc > 1 ? atoi(argv[1]) : 512;
	int chunks[16] = { 1, 16, 32, 64 }, n_chunks = 4;
	if (argc > 2) {
		n_chunks = 0;
		for (int i = 2; i < argc && n_chunks < 16; i++)
			chunks[n_chunks++] = atoi(argv[i]);
	}
	if (T < 1)
		return 1;
	const size_t xs = (size_t)gdn_conv_channels(&s), ns = (size_t)s.nv * s.dv * s.dk;
	const size_t os = (size_t)s.nv * s.dv;
	float *x = malloc((size_t)T * xs * sizeof(float));
	float *g = malloc((size_t)T * s.nv * sizeof(float));
	float *beta = malloc((size_t)T * s.nv * sizeof(float));
	float *S0 = malloc(ns * sizeof(float)), *S = malloc(ns * sizeof(float));
	float *o = malloc((size_t)T * os * sizeof(float)), *o_ref = malloc((size_t)T * os * sizeof(float));
	/* q, k unit vectors (q / sqrt(dk)), g = -exp(A) softplus(N(0,1)), A ~ U(-2, 1) */
	for (int t = 0; t < T; t++) {
		float *xt = x + (size_t)t * xs;
		for (size_t c = 0; c < xs; c++)
			xt[c] = normal();
		gdn_l2norm_heads(xt, s.nk, s.dk, 1e-6f, 1.0f / sqrtf((float)s.dk));
		gdn_l2norm_heads(xt + (size_t)s.nk * s.dk, s.nk, s.dk, 1e-6f, 1.0f);
	}
	float A[32];
	for (int j = 0; j < s.nv; j++)
		A[j] = -2.0f + 3.0f * unif();
	for (int t = 0; t < T; t++)
		for (int j = 0; j < s.nv; j++) {
			g[(size_t)t * s.nv + j] = -expf(A[j]) * log1pf(expf(normal()));
			beta[(size_t)t * s.nv + j] = 1.0f / (1.0f + expf(-normal()));
		}
	for (size_t e = 0; e < ns; e++)
		S0[e] = 0.1f * normal();

	printf("gdn_rule: nk %d nv %d dk %d dv %d, T %d, one thread\n", s.nk, s.nv, s.dk, s.dv, T);
	/* Rounds that run every form once, in turn, until MIN_SECONDS: each
	 * form's best time then comes from the same spells of machine load. */
	float *sc[16];
	double best[16];
	for (int c = 0; c < n_chunks; c++) {
		size_t nsc = gdn_scratch_floats(&s, chunks[c]);
		sc[c] = nsc ? malloc(nsc * sizeof(float)) : NULL;
		best[c] = 1e30;
	}
	int rounds = 0;
	double t_end = now_s() + MIN_SECONDS;
	do {
		for (int c = 0; c < n_chunks; c++) {
			memcpy(S, S0, ns * sizeof(float));
			double t0 = now_s();
			gdn_rule(&s, x, x + (size_t)s.nk * s.dk, xs, x + (size_t)2 * s.nk * s.dk, xs, g,
				 beta, s.nv, T, S, o, os, 0, s.nv, chunks[c], sc[c]);
			double dt = now_s() - t0;
			best[c] = dt < best[c] ? dt : best[c];
			if (rounds > 0)
				continue;
			if (c == 0)
				memcpy(o_ref, o, (size_t)T * os * sizeof(float));
			double num = 0.0, den = 0.0;
			for (size_t e = 0; e < (size_t)T * os; e++) {
				num = fmax(num, fabs((double)o[e] - o_ref[e]));
				den = fmax(den, fabs((double)o_ref[e]));
			}
			printf("  chunk %3d: o differs from chunk %d's by %.2g (max abs / max abs)\n",
			       chunks[c], chunks[0], num / den);
		}
		rounds++;
	} while (now_s() < t_end || rounds < 3);
	for (int c = 0; c < n_chunks; c++) {
		printf("  %-14s chunk %3d: %8.3f ms  %7.1f ns/token/head  %8.0f tokens/s  (best of %d, "
		       "scratch %zu KiB)\n",
		       chunks[c] <= 1 ? "token by token" : "chunked", chunks[c], best[c] * 1e3,
		       best[c] * 1e9 / ((double)T * s.nv), T / best[c], rounds,
		       gdn_scratch_floats(&s, chunks[c]) * sizeof(float) / 1024);
		free(sc[c]);
	}
	free(x), free(g), free(beta), free(S0), free(S), free(o), free(o_ref);
	return 0;
}
