/* bench/bench_kvattn.c: one token's attention over a KV cache of each format
 * (docs/TURBOQUANT.md "Speed"), apart from the rest of the model: the
 * Qwen3-30B-A3B shape per layer (4 KV heads of 128, 8 query heads each) over
 * LAYERS layers, kv_store'd with random rows, then kv_attend for every
 * (layer, KV head) at depth N, single-threaded. Prints the best of REPS in
 * wall and CPU time, and per position per query head. The cache is
 * LAYERS x 4 x N rows of each format (f16 at N = 32768 and 12 layers:
 * 768 MiB), so the memory reads of a long context are in the timing.
 * Usage: bench_kvattn [N=8192] [LAYERS=12] [REPS=3] [FORMATS=f16,q8_0,tq4,tq3.5,q8_0/tq4]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/kernels.h"
#include "kv.h"

static double clk(clockid_t c)
{
	struct timespec t;
	clock_gettime(c, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

static float frand(unsigned *s)
{
	*s = *s * 1664525u + 1013904223u;
	return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 8192, layers = argc > 2 ? atoi(argv[2]) : 12;
	int reps = argc > 3 ? atoi(argv[3]) : 3;
	char fmts[256];
	snprintf(fmts, sizeof(fmts), "%s", argc > 4 ? argv[4] : "f16,q8_0,tq4,tq3.5,q8_0/tq4");
	enum { HKV = 4, HD = 128, REP = 8 };
	if (n < 1 || layers < 1 || reps < 1) {
		fprintf(stderr, "usage: bench_kvattn [N] [LAYERS] [REPS] [FORMATS]\n");
		return 2;
	}
	kernels_init();
	const struct kernels *k = kernels_best();
	printf("depth %d, %d layers x %d KV heads of %d, %d query heads each, isa %s, 1 thread\n", n,
	       layers, HKV, HD, REP, k->name);
	printf("| K/V | KV MiB | wall ms per token | CPU ms per token | ns per position per query head (CPU) |\n");
	printf("| --- | --- | --- | --- | --- |\n");
	for (char *save = NULL, *f = strtok_r(fmts, ",", &save); f; f = strtok_r(NULL, ",", &save)) {
		char kname[32], vname[32];
		const char *slash = strchr(f, '/');
		snprintf(kname, sizeof(kname), "%.*s", slash ? (int)(slash - f) : (int)strlen(f), f);
		snprintf(vname, sizeof(vname), "%s", slash ? slash + 1 : f);
		int tk = kv_type_from_name(kname), tv = kv_type_from_name(vname);
		struct fm_error err = { 0 };
		struct kv_cache *kv = tk < 0 || tv < 0 ? NULL :
			kv_new(layers, HKV, HD, n, (enum kv_type)tk, (enum kv_type)tv, NULL, &err);
		if (!kv) {
			fprintf(stderr, "%s: %s\n", f, tk < 0 || tv < 0 ? "unknown format" : err.msg);
			return 1;
		}
		unsigned s = 1;
		float *x = malloc(sizeof(float) * 2 * HKV * HD), *q = malloc(sizeof(float) * REP * HD);
		float *o = malloc(sizeof(float) * REP * HD);
		float *scratch = malloc(sizeof(float) * kv_scratch_floats(kv));
		for (int l = 0; l < layers; l++)
			for (int p = 0; p < n; p++) {
				for (int i = 0; i < 2 * HKV * HD; i++)
					x[i] = frand(&s);
				kv_store(kv, l, p, x, x + HKV * HD);
			}
		for (int i = 0; i < REP * HD; i++)
			q[i] = frand(&s);
		double best_w = 1e30, best_c = 1e30;
		for (int r = 0; r < reps; r++) {
			double w0 = clk(CLOCK_MONOTONIC), c0 = clk(CLOCK_THREAD_CPUTIME_ID);
			for (int l = 0; l < layers; l++)
				for (int h = 0; h < HKV; h++)
					kv_attend(kv, k, l, h, q, REP, n, 0.0884f, o, scratch);
			double w = clk(CLOCK_MONOTONIC) - w0, c = clk(CLOCK_THREAD_CPUTIME_ID) - c0;
			best_w = w < best_w ? w : best_w;
			best_c = c < best_c ? c : best_c;
		}
		printf("| %s | %.0f | %.1f | %.1f | %.2f |\n", f, kv_bytes(kv) / 1048576.0, best_w * 1e3,
		       best_c * 1e3, best_c * 1e9 / ((double)n * layers * HKV * REP));
		fflush(stdout);
		free(x), free(q), free(o), free(scratch);
		kv_free(kv);
	}
	return 0;
}
