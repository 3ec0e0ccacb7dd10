/* test_attn.c: the attention kernels (src/kernels/attn.h) of every ISA the
 * CPU has against plain loops written here. Each variant is the same C source
 * compiled for its ISA with each lane's arithmetic spelled out, so all must
 * match bit for bit: the scores equal a 16-sum dot folded pairwise (and are
 * within rounding of a double-precision dot), the weighted sums equal zero
 * plus p[t] * row[t] added in row order. Also: the kernel table holds them,
 * nothing is written past the output, ops_dot gives the same scores, and the
 * weighted sums over f16 and q8_0 rows equal the f32 one over the converted
 * rows. ISAs the CPU lacks are skipped (printed). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/attn.h"
#include "ops.h"
#include "testutil.h"
#include "util.h"

typedef void (*dot_rows_fn)(float *, const float *, const float *, int, int, float);
typedef void (*wsum_fn)(float *, const float *, const float *, int, int);
typedef void (*wsum16_fn)(float *, const float *, const uint16_t *, int, int);
typedef void (*wsumq8_fn)(float *, const float *, const uint8_t *, int, int);

static const char *const isa_name[KERNEL_ISA_COUNT] = { "ref", "avx2", "avx512" };
#if defined(__x86_64__)
static const dot_rows_fn dot_rows[KERNEL_ISA_COUNT] = { attn_dot_rows_ref, attn_dot_rows_avx2,
							 attn_dot_rows_avx512 };
static const wsum_fn wsum[KERNEL_ISA_COUNT] = { attn_wsum_ref, attn_wsum_avx2, attn_wsum_avx512 };
static const wsum16_fn wsum16[KERNEL_ISA_COUNT] = { attn_wsum_f16_ref, attn_wsum_f16_avx2,
						     attn_wsum_f16_avx512 };
static const wsumq8_fn wsumq8[KERNEL_ISA_COUNT] = { attn_wsum_q8_0_ref, attn_wsum_q8_0_avx2,
						     attn_wsum_q8_0_avx512 };
#else
static const dot_rows_fn dot_rows[KERNEL_ISA_COUNT] = { attn_dot_rows_ref, NULL, NULL };
static const wsum_fn wsum[KERNEL_ISA_COUNT] = { attn_wsum_ref, NULL, NULL };
static const wsum16_fn wsum16[KERNEL_ISA_COUNT] = { attn_wsum_f16_ref, NULL, NULL };
static const wsumq8_fn wsumq8[KERNEL_ISA_COUNT] = { attn_wsum_q8_0_ref, NULL, NULL };
#endif

static float frand(unsigned *s)
{
	*s = *s * 1664525u + 1013904223u;
	return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

/* The plain-loop score: 16 sums, folded pairwise. */
static float plain_dot(const float *a, const float *b, int n)
{
	float s[16] = { 0 };
	int i = 0;
	for (; i + 16 <= n; i += 16)
		for (int j = 0; j < 16; j++)
			s[j] += a[i + j] * b[i + j];
	for (; i < n; i++)
		s[0] += a[i] * b[i];
	for (int w = 8; w >= 1; w /= 2)
		for (int j = 0; j < w; j++)
			s[j] += s[j + w];
	return s[0];
}

static void check_isa(int isa)
{
	static const int dims[] = { 1, 15, 16, 17, 32, 64, 96, 100, 128, 129, 256 };
	static const int n_rows[] = { 1, 2, 7, 64, 300 };
	unsigned seed = 7;
	for (size_t a = 0; a < sizeof(dims) / sizeof(dims[0]); a++) {
		int n = dims[a];
		for (size_t b = 0; b < sizeof(n_rows) / sizeof(n_rows[0]); b++) {
			int nr = n_rows[b], big = nr > n ? nr : n;
			float *rows = malloc(sizeof(float) * (size_t)n * nr);
			float *q = malloc(sizeof(float) * (size_t)n), *p = malloc(sizeof(float) * (size_t)nr);
			float *got = malloc(sizeof(float) * ((size_t)big + 1));
			float *want = malloc(sizeof(float) * (size_t)n);
			for (int i = 0; i < n * nr; i++)
				rows[i] = frand(&seed);
			for (int i = 0; i < n; i++)
				q[i] = frand(&seed);
			for (int t = 0; t < nr; t++)
				p[t] = frand(&seed) * 0.5f + 0.5f;
			got[nr] = 12345.0f;
			dot_rows[isa](got, q, rows, nr, n, 0.125f);
			for (int t = 0; t < nr; t++) {
				const float *k = rows + (size_t)t * n;
				double d = 0, mag = 0;
				for (int i = 0; i < n; i++) {
					d += (double)q[i] * k[i];
					mag += fabs((double)q[i] * k[i]);
				}
				float exact = plain_dot(q, k, n) * 0.125f;
				CHECK(got[t] == exact, "%s dot_rows n=%d rows=%d t=%d: %.9g, plain loop %.9g",
				      isa_name[isa], n, nr, t, (double)got[t], (double)exact);
				CHECK(fabs(got[t] - 0.125 * d) <= 1e-6 * mag + 1e-30,
				      "%s dot_rows n=%d t=%d: %.9g vs double %.9g", isa_name[isa], n, t,
				      (double)got[t], 0.125 * d);
				CHECK(ops_dot(q, k, n) * 0.125f == exact, "ops_dot n=%d differs", n);
			}
			CHECK(got[nr] == 12345.0f, "%s dot_rows wrote past n_rows", isa_name[isa]);
			memset(want, 0, sizeof(float) * (size_t)n);
			for (int t = 0; t < nr; t++)
				for (int i = 0; i < n; i++)
					want[i] += p[t] * rows[(size_t)t * n + i];
			got[n] = 12345.0f;
			wsum[isa](got, p, rows, nr, n);
			CHECK(!memcmp(got, want, sizeof(float) * (size_t)n),
			      "%s wsum n=%d rows=%d differs from the plain loop", isa_name[isa], n, nr);
			CHECK(got[n] == 12345.0f, "%s wsum wrote past n", isa_name[isa]);
			/* the f16 rows (the f16 KV cache): the same bits as the f32 loop
			 * on the rows converted (exactly) to float; Inf and NaN pass */
			uint16_t *h = malloc(sizeof(uint16_t) * (size_t)n * nr);
			for (int i = 0; i < n * nr; i++) {
				h[i] = fm_fp32_to_fp16(rows[i] * 300.0f);
				rows[i] = fm_fp16_to_fp32(h[i]);
			}
			memset(want, 0, sizeof(float) * (size_t)n);
			for (int t = 0; t < nr; t++)
				for (int i = 0; i < n; i++)
					want[i] += p[t] * rows[(size_t)t * n + i];
			got[n] = 12345.0f;
			wsum16[isa](got, p, h, nr, n);
			CHECK(!memcmp(got, want, sizeof(float) * (size_t)n),
			      "%s wsum_f16 n=%d rows=%d differs from the plain loop", isa_name[isa], n, nr);
			CHECK(got[n] == 12345.0f, "%s wsum_f16 wrote past n", isa_name[isa]);
			free(h);
			/* Q8_0 rows (n a multiple of 32): the same bits as the f32 loop on
			 * the rows dequantized by the weight format's reference */
			if (n % 32 == 0) {
				const struct kernels *kr = kernels_get(KERNEL_ISA_REF);
				size_t rb = (size_t)n / 32 * 34;
				uint8_t *q8 = malloc(rb * (size_t)nr);
				for (int t = 0; t < nr; t++) {
					kr->fmt[GGML_TYPE_Q8_0].quantize(rows + (size_t)t * n, q8 + t * rb, (size_t)n);
					kr->fmt[GGML_TYPE_Q8_0].dequantize(q8 + t * rb, rows + (size_t)t * n, (size_t)n);
				}
				memset(want, 0, sizeof(float) * (size_t)n);
				for (int t = 0; t < nr; t++)
					for (int i = 0; i < n; i++)
						want[i] += p[t] * rows[(size_t)t * n + i];
				got[n] = 12345.0f;
				wsumq8[isa](got, p, q8, nr, n);
				CHECK(!memcmp(got, want, sizeof(float) * (size_t)n),
				      "%s wsum_q8_0 n=%d rows=%d differs from the plain loop", isa_name[isa], n, nr);
				CHECK(got[n] == 12345.0f, "%s wsum_q8_0 wrote past n", isa_name[isa]);
				free(q8);
			}
			free(rows), free(q), free(p), free(got), free(want);
		}
	}
}

int main(void)
{
	kernels_init();
	for (int isa = 0; isa < KERNEL_ISA_COUNT; isa++) {
		const struct kernels *k = kernels_get((enum kernel_isa)isa);
		if (!k || !dot_rows[isa]) {
			printf("  %s: skipped (this CPU lacks it)\n", isa_name[isa]);
			continue;
		}
		CHECK(k->attn_dot_rows == dot_rows[isa] && k->attn_wsum == wsum[isa] &&
			      k->attn_wsum_f16 == wsum16[isa] && k->attn_wsum_q8_0 == wsumq8[isa],
		      "%s: the kernel table does not hold the %s attention loops", isa_name[isa],
		      isa_name[isa]);
		int before = t_failures;
		check_isa(isa);
		printf("  %s: scores and weighted sums (f32, f16 and q8_0 rows), 11 sizes x 5 row counts %s\n", isa_name[isa],
		       t_failures == before ? "bit-identical to the plain loops" : "FAIL");
	}
	return t_done("test_attn");
}
