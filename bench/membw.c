/* membw.c: memory read bandwidth, the bound a decode step is compared with.
 * Sums a 1 GiB buffer (AVX2 loads where available via auto-vectorisation of
 * 8 independent accumulators) with 1..N threads; prints GB/s (1e9 bytes/s).
 * Build: make bench   (or: cc -O2 -march=native -pthread bench/membw.c -o membw) */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct part {
	const float *p;
	size_t n;
	float sum;
};

static void *sum_part(void *arg)
{
	struct part *pt = arg;
	float acc[16] = { 0 };
	for (size_t i = 0; i + 16 <= pt->n; i += 16)
		for (int j = 0; j < 16; j++)
			acc[j] += pt->p[i + j];
	float s = 0;
	for (int j = 0; j < 16; j++)
		s += acc[j];
	pt->sum = s;
	return NULL;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
	int max_threads = argc > 1 ? atoi(argv[1]) : 2;
	size_t bytes = (size_t)1 << 30, n = bytes / sizeof(float);
	float *buf = aligned_alloc(4096, bytes);
	if (!buf || max_threads < 1 || max_threads > 64)
		return 1;
	memset(buf, 1, bytes);
	for (int nt = 1; nt <= max_threads; nt++) {
		double best = 1e30;
		float total = 0;
		for (int rep = 0; rep < 5; rep++) {
			pthread_t th[64];
			struct part pt[64];
			double t0 = now();
			for (int t = 0; t < nt; t++) {
				pt[t] = (struct part){ buf + n / nt * t, n / nt, 0 };
				pthread_create(&th[t], NULL, sum_part, &pt[t]);
			}
			for (int t = 0; t < nt; t++) {
				pthread_join(th[t], NULL);
				total += pt[t].sum;
			}
			double dt = now() - t0;
			best = dt < best ? dt : best;
		}
		printf("{\"threads\":%d,\"read_GBps\":%.2f,\"checksum\":%g}\n", nt, bytes / best / 1e9,
		       (double)total);
	}
	free(buf);
	return 0;
}
