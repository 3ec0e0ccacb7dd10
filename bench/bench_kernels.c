/* bench_kernels.c: single-thread speed of every vec_dot, per format and ISA.
 *
 * For each weight format in the kernel table (the K-quants appear once they
 * are registered) and each ISA this CPU has: a 4096 x 4096 mat-vec (ny = 1,
 * decode) and the same with ny = 8 activation rows (prefill), over all rows.
 * Prints the time per product (the fastest of the runs in ~0.3 s), the weight
 * bytes read per second and GFLOP/s (2 * rows * cols * ny per product). First it measures the bound: memory read
 * bandwidth as a plain sum over a 1 GiB buffer.
 *
 * The matrices are tiled through that same 1 GiB buffer (as many copies as
 * fit, visited in turn), so every product streams its weights from DRAM, as
 * decode does, instead of from the last-level cache.
 *
 * Usage: bench_kernels [name ...]  -- only formats / ISAs named (q4_0 avx2 ...)
 *
 * Build with the Makefile's library:
 *   make && gcc -std=c11 -D_GNU_SOURCE -O2 -Iinclude -Isrc -o build/bench_kernels \
 *     bench/bench_kernels.c build/release/libflashmoe.a -lm -pthread
 * or without make (each SIMD file needs its own -m flags):
 *   mkdir -p /tmp/bk && for f in src/kernels/[a-z]*.c src/util.c; do case $f in
 *     *_avx2.c) x="-mavx2 -mfma -mf16c";; *_avx512.c) x="-mavx2 -mfma -mf16c
 *     -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni";;
 *     *) x="";; esac; gcc -std=c11 -D_GNU_SOURCE -O2 -Iinclude -Isrc $x -c $f
 *     -o /tmp/bk/$(basename $f .c).o || break; done && gcc -std=c11
 *     -D_GNU_SOURCE -O2 -Iinclude -Isrc -o /tmp/bench_kernels
 *     bench/bench_kernels.c /tmp/bk/[a-z]*.o -lm -pthread
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "util.h"

#define ROWS 4096
#define COLS 4096
#define BUF_BYTES ((size_t)1 << 30)
#define DISTINCT_ROWS 64 /* random rows quantized, then tiled over the matrix */
#define MIN_SECONDS 0.3

struct bench {
	uint8_t *buf;                 /* BUF_BYTES, holds the matrix copies */
	float *out;                   /* [ROWS][KERNEL_MAX_NY] */
	int argc;
	char **argv;
};

static bool named(const struct bench *b, const char *name)
{
	for (int i = 1; i < b->argc; i++)
		if (strcmp(b->argv[i], name) == 0)
			return true;
	return false;
}

/* A case runs unless the command line names formats (ISAs) and not this one. */
static bool wanted(const struct bench *b, enum ggml_type t, const char *isa)
{
	bool any_type = false, any_isa = false;
	for (int i = 1; i < b->argc; i++) {
		any_isa |= kernels_isa_from_name(b->argv[i]) >= 0;
		any_type |= kernels_isa_from_name(b->argv[i]) < 0;
	}
	return (!any_type || named(b, ggml_type_get(t)->name)) && (!any_isa || named(b, isa));
}

static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void fill_random(float *x, size_t n, uint64_t *s)
{
	for (size_t i = 0; i < n; i++)
		x[i] = (float)((int64_t)(rng_next(s) >> 40) - (1 << 23)) / (float)(1 << 23);
}

/* Sum of the buffer as 16-byte words (SSE2, so any x86-64 runs it) with four
 * independent accumulators: 64 bytes per step keeps it far below the load
 * ports' limit, so DRAM is what it measures. */
typedef uint64_t u64x2 __attribute__((vector_size(16)));

static uint64_t sum_words(const void *buf, size_t bytes)
{
	const u64x2 *p = buf;
	u64x2 s0 = { 0, 0 }, s1 = s0, s2 = s0, s3 = s0;
	for (size_t i = 0; i + 4 <= bytes / 16; i += 4) {
		s0 += p[i], s1 += p[i + 1], s2 += p[i + 2], s3 += p[i + 3];
	}
	u64x2 s = s0 + s1 + s2 + s3;
	return s[0] + s[1];
}

/* Measured like the kernels: the fastest pass over a 64 MiB slice, the
 * slices visited in turn so each pass reads from DRAM. */
static void bench_memory(const struct bench *b)
{
	const size_t slice = (size_t)64 << 20;
	double start = fm_now_s(), best = 1e30;
	uint64_t sink = 0;
	for (size_t i = 0; i < 3 || fm_now_s() - start < MIN_SECONDS; i++) {
		double t0 = fm_now_s();
		sink += sum_words(b->buf + (i % (BUF_BYTES / slice)) * slice, slice);
		double t = fm_now_s() - t0;
		best = t < best ? t : best;
	}
	printf("bench_kernels: memory read (sum over 1 GiB, 1 thread): %.1f GB/s (sink %llu)\n",
	       (double)slice / best / 1e9, (unsigned long long)(sink & 0xff));
}

/* Quantize DISTINCT_ROWS random rows of type t and tile them over every
 * matrix copy in the buffer; returns the number of copies. */
static size_t make_matrices(const struct bench *b, const struct kernels *ref,
			    enum ggml_type t, size_t row_bytes, uint64_t *seed)
{
	float *x = malloc(COLS * sizeof(float));
	size_t mat_bytes = (size_t)ROWS * row_bytes;
	size_t copies = BUF_BYTES / mat_bytes;
	if (!x)
		return 0;
	for (int r = 0; r < DISTINCT_ROWS; r++) {
		fill_random(x, COLS, seed);
		ref->fmt[t].quantize(x, b->buf + (size_t)r * row_bytes, COLS);
	}
	for (size_t r = DISTINCT_ROWS; r < ROWS; r++)
		memcpy(b->buf + r * row_bytes, b->buf + (r % DISTINCT_ROWS) * row_bytes, row_bytes);
	for (size_t c = 1; c < copies; c++)
		memcpy(b->buf + c * mat_bytes, b->buf, mat_bytes);
	free(x);
	return copies;
}

/* KERNEL_MAX_NY activation rows in act_type (free()), *stride apart; NULL on OOM. */
static uint8_t *make_acts(const struct kernels *ref, enum ggml_type act_type,
			  size_t *stride, uint64_t *seed)
{
	size_t rb = ggml_row_bytes(act_type, COLS);
	float *x = malloc(COLS * sizeof(float));
	uint8_t *a = aligned_alloc(64, KERNEL_MAX_NY * ((rb + 63) & ~(size_t)63));
	if (!x || !a) {
		free(x), free(a);
		return NULL;
	}
	*stride = (rb + 63) & ~(size_t)63;
	for (int j = 0; j < KERNEL_MAX_NY; j++) {
		fill_random(x, COLS, seed);
		if (ref->quantize_act[act_type])
			ref->quantize_act[act_type](x, a + (size_t)j * *stride, COLS);
		else
			memcpy(a + (size_t)j * *stride, x, rb);
	}
	free(x);
	return a;
}

struct bench_case {
	const struct kernels *k;
	enum ggml_type type;
	size_t row_bytes, copies;
	const uint8_t *act;
	size_t act_stride;
};

/* One mat-vec over all rows of matrix copy c. */
static void matvec(const struct bench *b, const struct bench_case *c, size_t copy, int ny)
{
	vec_dot_fn dot = c->k->fmt[c->type].vec_dot;
	const uint8_t *w = b->buf + copy * (size_t)ROWS * c->row_bytes;
	for (size_t r = 0; r < ROWS; r++)
		dot(COLS, w + r * c->row_bytes, c->act, c->act_stride, ny,
		    b->out + r * KERNEL_MAX_NY);
}

static void bench_case_run(const struct bench *b, const struct bench_case *c, int ny)
{
	/* The fastest of the runs: the machine is shared, and the minimum is
	 * what the kernel can do (each run still streams a cold copy). */
	size_t iters = 0;
	double start = fm_now_s(), per = 1e30;
	matvec(b, c, 0, ny); /* warm-up: page tables, branch predictors */
	do {
		double t0 = fm_now_s();
		matvec(b, c, (iters + 1) % c->copies, ny);
		double t = fm_now_s() - t0;
		per = t < per ? t : per;
		iters++;
	} while (fm_now_s() - start < MIN_SECONDS || iters < 3);
	double bytes = (double)ROWS * (double)c->row_bytes;
	double flops = 2.0 * ROWS * COLS * ny;
	printf("bench_kernels: %-5s %-6s ny=%d: %8.3f ms  %6.1f GB/s weights  %7.1f GFLOP/s\n",
	       ggml_type_get(c->type)->name, c->k->name, ny, per * 1e3, bytes / per / 1e9,
	       flops / per / 1e9);
	fflush(stdout);
}

static void bench_type(struct bench *b, enum ggml_type t, uint64_t *seed)
{
	const struct kernels *ref = kernels_get(KERNEL_ISA_REF);
	struct bench_case c = { .type = t, .row_bytes = ggml_row_bytes(t, COLS) };
	enum ggml_type at = ref->fmt[t].act_type;
	uint8_t *act;
	if (!c.row_bytes || !ggml_row_bytes(at, COLS) || !ref->fmt[t].quantize)
		return;
	c.copies = make_matrices(b, ref, t, c.row_bytes, seed);
	act = make_acts(ref, at, &c.act_stride, seed);
	if (!c.copies || !act) {
		fprintf(stderr, "bench_kernels: out of memory\n");
		free(act);
		return;
	}
	c.act = act;
	for (int i = 0; i < KERNEL_ISA_COUNT; i++) {
		c.k = kernels_get((enum kernel_isa)i);
		if (!c.k || !wanted(b, t, c.k->name))
			continue;
		bench_case_run(b, &c, 1);
		bench_case_run(b, &c, KERNEL_MAX_NY);
	}
	free(act);
}

/* Attention over the F32 KV cache of one KV head: 576 positions (a 512-token
 * prompt plus generation) of head_dim 128, which stay in L2 as they do in
 * decode. ns per position for the scores (attn_dot_rows) and the weighted sum
 * of V rows (attn_wsum), the fastest of the runs. Named "attn" on the command
 * line to run alone. */
#define ATTN_POS 576
#define ATTN_DIM 128

static double attn_time(const struct kernels *k, bool dot, const float *q, const float *rows,
			float *out)
{
	size_t iters = 0;
	double start = fm_now_s(), per = 1e30;
	do {
		double t0 = fm_now_s();
		for (int r = 0; r < 16; r++) {
			if (dot)
				k->attn_dot_rows(out, q, rows, ATTN_POS, ATTN_DIM, 0.088f);
			else
				k->attn_wsum(out, q, rows, ATTN_POS, ATTN_DIM);
		}
		double t = (fm_now_s() - t0) / 16;
		per = t < per ? t : per;
		iters++;
	} while (fm_now_s() - start < MIN_SECONDS / 3 || iters < 3);
	return per / ATTN_POS * 1e9;
}

static void bench_attn(const struct bench *b, uint64_t *seed)
{
	float *rows = malloc((size_t)ATTN_POS * ATTN_DIM * sizeof(float));
	float *q = malloc(ATTN_POS * sizeof(float)), *out = malloc(ATTN_POS * sizeof(float));
	if (!rows || !q || !out) {
		free(rows), free(q), free(out);
		return;
	}
	fill_random(rows, (size_t)ATTN_POS * ATTN_DIM, seed);
	fill_random(q, ATTN_POS, seed); /* a query (first ATTN_DIM) or weights */
	for (int i = 0; i < KERNEL_ISA_COUNT; i++) {
		const struct kernels *k = kernels_get((enum kernel_isa)i);
		bool any_isa = false;
		for (int a = 1; a < b->argc; a++)
			any_isa |= kernels_isa_from_name(b->argv[a]) >= 0;
		if (!k || (any_isa && !named(b, k->name)))
			continue;
		printf("bench_kernels: attn  %-6s %d positions x %d: scores %.2f ns/position, "
		       "weighted sum %.2f ns/position\n", k->name, ATTN_POS, ATTN_DIM,
		       attn_time(k, true, q, rows, out), attn_time(k, false, q, rows, out));
		fflush(stdout);
	}
	free(rows), free(q), free(out);
}

int main(int argc, char **argv)
{
	struct bench b = { .argc = argc, .argv = argv };
	uint64_t seed = 1;
	kernels_init();
	b.buf = aligned_alloc(4096, BUF_BYTES);
	b.out = malloc(ROWS * KERNEL_MAX_NY * sizeof(float));
	if (!b.buf || !b.out) {
		fprintf(stderr, "bench_kernels: cannot allocate 1 GiB\n");
		return 1;
	}
	memset(b.buf, 1, BUF_BYTES); /* fault the pages in before timing */
	printf("bench_kernels: %dx%d mat-vec, 1 thread, best ISA %s\n", ROWS, COLS,
	       kernels_best()->name);
	bench_memory(&b);
	const struct kernels *ref = kernels_get(KERNEL_ISA_REF);
	for (int t = 0; t < GGML_TYPE_COUNT; t++)
		if (ref->fmt[t].vec_dot)
			bench_type(&b, (enum ggml_type)t, &seed);
	bench_attn(&b, &seed);
	free(b.out);
	free(b.buf);
	return 0;
}
