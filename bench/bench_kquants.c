/* bench_kquants.c: single-thread speed of the K-quant mat-vec kernels.
 *
 * For each format (Q4_K, Q5_K, Q6_K, Q2_K) and each ISA this CPU has, times a
 * 4096 x 4096 weight matrix times ny = 1 and ny = 8 Q8_K activation rows and
 * prints GB/s of weights read (weight bytes / time; for ny = 8 the weights are
 * read once for the 8 rows), the fastest of repeated runs. Q4_K also gets the Qwen3-30B-A3B expert shapes
 * (768 x 2048 gate/up, 2048 x 768 down). Two cases:
 *   hot     the same matrix again and again (9.4 MB for Q4_K: stays in L3)
 *   stream  consecutive matrices from a 512 MiB buffer (from DRAM)
 * and, for comparison, the read bandwidth of a summing loop over 1 GiB, as
 * plain C and with AVX2 loads.
 * Build: gcc -std=c11 -D_GNU_SOURCE -O2 -Iinclude -Isrc bench/bench_kquants.c
 *        build/release/libflashmoe.a -lm -pthread -o /tmp/bench_kquants
 * Usage: bench_kquants [q4_K|q5_K|q6_K|q2_K ...]   (default: all four)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <immintrin.h>

#include "kernels/kquants.h"

#define MAX_COLS 4096

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static float rng_float(uint64_t *s) /* roughly N(0,1): sum of 4 uniforms */
{
	float v = 0;
	for (int i = 0; i < 4; i++)
		v += (float)(rng_next(s) >> 40) * (1.0f / 16777216.0f);
	return (v - 2.0f) * 1.7f;
}

/* Read bandwidth of a summing loop over 1 GiB (best of 3): plain C (as
 * compiled for the base ISA) or with 4 AVX2 accumulators. */
static float sum_plain(const float *buf, size_t n)
{
	float acc[16] = { 0 }, s = 0;
	for (size_t i = 0; i < n; i += 16)
		for (int j = 0; j < 16; j++)
			acc[j] += buf[i + j];
	for (int j = 0; j < 16; j++)
		s += acc[j];
	return s;
}

__attribute__((target("avx2"))) static float sum_avx2(const float *buf, size_t n)
{
	__m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
	for (size_t i = 0; i < n; i += 32) {
		a0 = _mm256_add_ps(a0, _mm256_load_ps(buf + i));
		a1 = _mm256_add_ps(a1, _mm256_load_ps(buf + i + 8));
		a2 = _mm256_add_ps(a2, _mm256_load_ps(buf + i + 16));
		a3 = _mm256_add_ps(a3, _mm256_load_ps(buf + i + 24));
	}
	float t[8];
	_mm256_storeu_ps(t, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
	return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}

static void membw(void)
{
	size_t bytes = (size_t)1 << 30, n = bytes / sizeof(float);
	float *buf = aligned_alloc(4096, bytes);
	if (!buf)
		return;
	memset(buf, 0, bytes);
	volatile float sink = 0;
	for (int kind = 0; kind < 2; kind++) {
		if (kind == 1 && !__builtin_cpu_supports("avx2"))
			break;
		double best = 1e30;
		for (int rep = 0; rep < 3; rep++) {
			double t0 = now_s();
			sink += kind ? sum_avx2(buf, n) : sum_plain(buf, n);
			double dt = now_s() - t0;
			best = dt < best ? dt : best;
		}
		printf("{\"membw_1thread\":\"%s\",\"GBps\":%.2f}\n", kind ? "avx2" : "plain",
		       (double)bytes / best / 1e9);
	}
	free(buf);
}

struct fmt {
	const char *name;
	enum ggml_type type;
	size_t block_bytes;
	quantize_row_fn quantize;
	vec_dot_fn dot[KERNEL_ISA_COUNT];
};

static const struct fmt fmts[] = {
	{ "q4_K", GGML_TYPE_Q4_K, sizeof(struct block_q4_K), quantize_row_q4_K_ref,
	  { vec_dot_q4_K_ref, vec_dot_q4_K_avx2, vec_dot_q4_K_avx512 } },
	{ "q5_K", GGML_TYPE_Q5_K, sizeof(struct block_q5_K), quantize_row_q5_K_ref,
	  { vec_dot_q5_K_ref, vec_dot_q5_K_avx2, vec_dot_q5_K_avx512 } },
	{ "q6_K", GGML_TYPE_Q6_K, sizeof(struct block_q6_K), quantize_row_q6_K_ref,
	  { vec_dot_q6_K_ref, vec_dot_q6_K_avx2, vec_dot_q6_K_avx512 } },
	{ "q2_K", GGML_TYPE_Q2_K, sizeof(struct block_q2_K), quantize_row_q2_K_ref,
	  { vec_dot_q2_K_ref, vec_dot_q2_K_avx2, vec_dot_q2_K_avx512 } },
};

static bool isa_ok(int isa)
{
	__builtin_cpu_init();
	if (isa == KERNEL_ISA_AVX2)
		return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
	if (isa == KERNEL_ISA_AVX512)
		return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
		       __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
	return true;
}

/* Seconds per matrix, the fastest of the mat-vecs run in min_s (the machine
 * is shared: the minimum is the least disturbed run), over matrices at
 * w + k*mat_bytes, k cycling through n_mat (1 = hot). */
static double time_matvec(vec_dot_fn dot, int rows, int cols, const uint8_t *w, size_t mat_bytes,
			  int n_mat, const void *act, int ny, double min_s)
{
	size_t row_bytes = mat_bytes / (size_t)rows;
	float out[KERNEL_MAX_NY];
	volatile float sink = 0;
	double start = now_s(), best = 1e30;
	for (int done = 0; done < 3 || now_s() - start < min_s; done++) {
		const uint8_t *m = w + (size_t)(done % n_mat) * mat_bytes;
		double t0 = now_s();
		for (int r = 0; r < rows; r++) {
			dot((size_t)cols, m + (size_t)r * row_bytes, act,
			    (MAX_COLS / QK_K) * sizeof(struct block_q8_K), ny, out);
			sink += out[0];
		}
		double dt = now_s() - t0;
		best = dt < best ? dt : best;
	}
	return best;
}

static void bench_fmt(const struct fmt *f, int rows, int cols, uint8_t *big, size_t big_bytes,
		      const void *act)
{
	size_t row_bytes = (size_t)(cols / QK_K) * f->block_bytes, mat_bytes = row_bytes * (size_t)rows;
	int n_mat = (int)(big_bytes / mat_bytes);
	/* quantize one matrix, copy it through the stream buffer */
	uint64_t s = 1;
	float row[MAX_COLS];
	for (int r = 0; r < rows; r++) {
		for (int c = 0; c < cols; c++)
			row[c] = rng_float(&s);
		f->quantize(row, big + (size_t)r * row_bytes, (size_t)cols);
	}
	for (int k = 1; k < n_mat; k++)
		memcpy(big + (size_t)k * mat_bytes, big, mat_bytes);
	static const char *isa_names[] = { "ref", "avx2", "avx512" };
	for (int isa = 0; isa < KERNEL_ISA_COUNT; isa++) {
		if (!isa_ok(isa)) {
			printf("%s %s: skipped (CPU lacks it)\n", f->name, isa_names[isa]);
			continue;
		}
		for (int ny = 1; ny <= KERNEL_MAX_NY; ny += 7) {
			double hot = time_matvec(f->dot[isa], rows, cols, big, mat_bytes, 1, act, ny, 0.2);
			double stream = time_matvec(f->dot[isa], rows, cols, big, mat_bytes, n_mat, act, ny, 0.4);
			printf("{\"fmt\":\"%s\",\"shape\":\"%dx%d\",\"isa\":\"%s\",\"ny\":%d,"
			       "\"hot_GBps\":%.2f,\"stream_GBps\":%.2f,\"hot_ms\":%.3f}\n",
			       f->name, rows, cols, isa_names[isa], ny, mat_bytes / hot / 1e9,
			       mat_bytes / stream / 1e9, hot * 1e3);
			fflush(stdout);
		}
	}
}

int main(int argc, char **argv)
{
	size_t big_bytes = (size_t)512 << 20;
	uint8_t *big = aligned_alloc(4096, big_bytes);
	size_t act_bytes = (size_t)KERNEL_MAX_NY * (MAX_COLS / QK_K) * sizeof(struct block_q8_K);
	void *act = aligned_alloc(64, (act_bytes + 63) / 64 * 64);
	float *xa = malloc(sizeof(float) * MAX_COLS * KERNEL_MAX_NY);
	if (!big || !act || !xa)
		return 1;
	uint64_t s = 2;
	for (int i = 0; i < MAX_COLS * KERNEL_MAX_NY; i++)
		xa[i] = rng_float(&s);
	/* rows of any width <= MAX_COLS: the first cols/256 blocks of each */
	quantize_row_q8_K_ref(xa, act, (size_t)MAX_COLS * KERNEL_MAX_NY);
	__builtin_cpu_init();
	membw();
	for (size_t i = 0; i < sizeof(fmts) / sizeof(fmts[0]); i++) {
		bool want = argc < 2;
		for (int a = 1; a < argc; a++)
			want |= strcmp(argv[a], fmts[i].name) == 0;
		if (!want)
			continue;
		bench_fmt(&fmts[i], 4096, 4096, big, big_bytes, act);
		if (fmts[i].type == GGML_TYPE_Q4_K) { /* Qwen3-30B-A3B expert shapes */
			bench_fmt(&fmts[i], 768, 2048, big, big_bytes, act);
			bench_fmt(&fmts[i], 2048, 768, big, big_bytes, act);
		}
	}
	free(xa);
	free(act);
	free(big);
	return 0;
}
