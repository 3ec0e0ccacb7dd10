/* test_ops.c: the attention inner loops of ops.c (ops_dot, ops_dot_rows,
 * ops_wsum) against plain loops written here. The library builds them for
 * AVX-512, AVX2 and the baseline and picks one at load time; each lane's
 * arithmetic is fixed by the source, so the clone this CPU runs must match
 * the plain loops bit for bit (ops_wsum: the same sums as repeated ops_axpy),
 * and ops_dot within rounding of a double-precision dot. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "testutil.h"

static float frand(unsigned *s)
{
	*s = *s * 1664525u + 1013904223u;
	return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

int main(void)
{
	static const int dims[] = { 1, 15, 16, 17, 64, 100, 128, 129, 256 };
	static const int n_rows[] = { 1, 2, 7, 64, 300 };
	unsigned seed = 7;
	for (size_t a = 0; a < sizeof(dims) / sizeof(dims[0]); a++) {
		int n = dims[a];
		for (size_t b = 0; b < sizeof(n_rows) / sizeof(n_rows[0]); b++) {
			int nr = n_rows[b];
			float *rows = malloc(sizeof(float) * (size_t)n * nr);
			float *q = malloc(sizeof(float) * (size_t)n), *p = malloc(sizeof(float) * (size_t)nr);
			float *got = malloc(sizeof(float) * (size_t)(nr > n ? nr : n) + sizeof(float));
			float *want = malloc(sizeof(float) * (size_t)n);
			for (int i = 0; i < n * nr; i++)
				rows[i] = frand(&seed);
			for (int i = 0; i < n; i++)
				q[i] = frand(&seed);
			for (int t = 0; t < nr; t++)
				p[t] = frand(&seed) * 0.5f + 0.5f;
			/* dot_rows: each row within rounding of the double dot, and
			 * equal to ops_dot(...) * scale */
			got[nr] = 12345.0f;
			ops_dot_rows(got, q, rows, nr, n, 0.125f);
			for (int t = 0; t < nr; t++) {
				double d = 0, mag = 0;
				for (int i = 0; i < n; i++) {
					d += (double)q[i] * rows[(size_t)t * n + i];
					mag += fabs((double)q[i] * rows[(size_t)t * n + i]);
				}
				CHECK(fabs(got[t] - 0.125 * d) <= 1e-6 * mag + 1e-30,
				      "dot_rows n=%d rows=%d t=%d: %.9g vs %.9g", n, nr, t,
				      (double)got[t], 0.125 * d);
				CHECK(got[t] == ops_dot(q, rows + (size_t)t * n, n) * 0.125f,
				      "dot_rows n=%d t=%d differs from ops_dot", n, t);
			}
			CHECK(got[nr] == 12345.0f, "dot_rows wrote past n_rows");
			/* wsum: bit-identical to zero + repeated axpy in row order */
			memset(want, 0, sizeof(float) * (size_t)n);
			for (int t = 0; t < nr; t++)
				for (int i = 0; i < n; i++)
					want[i] += p[t] * rows[(size_t)t * n + i];
			got[n] = 12345.0f;
			ops_wsum(got, p, rows, nr, n);
			CHECK(!memcmp(got, want, sizeof(float) * (size_t)n),
			      "wsum n=%d rows=%d differs from the plain loop", n, nr);
			CHECK(got[n] == 12345.0f, "wsum wrote past n");
			memset(got, 0, sizeof(float) * (size_t)n);
			for (int t = 0; t < nr; t++)
				ops_axpy(got, p[t], rows + (size_t)t * n, n);
			CHECK(!memcmp(got, want, sizeof(float) * (size_t)n),
			      "axpy n=%d rows=%d differs from the plain loop", n, nr);
			free(rows), free(q), free(p), free(got), free(want);
		}
	}
	printf("  ops_dot_rows / ops_wsum / ops_axpy: %zu sizes x %zu row counts\n",
	       sizeof(dims) / sizeof(dims[0]), sizeof(n_rows) / sizeof(n_rows[0]));
	return t_done("test_ops");
}
