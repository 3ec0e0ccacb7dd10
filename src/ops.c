/* ops.c: norms, RoPE, softmax, SwiGLU, top-k (architectures.md §5, §5.1). */
#include "ops.h"

#include <math.h>
#include <string.h>

void ops_rmsnorm(float *y, const float *x, const float *w, int n, float eps)
{
	double ss = 0.0;
	for (int i = 0; i < n; i++)
		ss += (double)x[i] * x[i];
	float scale = (float)(1.0 / sqrt(ss / n + eps));
	for (int i = 0; i < n; i++)
		y[i] = x[i] * scale * (w ? w[i] : 1.0f);
}

void ops_rope_table(float *cs, int n_rot, int pos, float theta)
{
	int half = n_rot / 2;
	for (int i = 0; i < half; i++) {
		double phi = pos * pow((double)theta, -2.0 * i / n_rot);
		cs[i] = (float)cos(phi);
		cs[half + i] = (float)sin(phi);
	}
}

void ops_rope_neox(float *x, int n_rot, const float *cs)
{
	int half = n_rot / 2;
	for (int i = 0; i < half; i++) {
		float c = cs[i], s = cs[half + i];
		float a = x[i], b = x[i + half];
		x[i] = a * c - b * s;
		x[i + half] = b * c + a * s;
	}
}

void ops_softmax(float *x, int n)
{
	float mx = x[0];
	for (int i = 1; i < n; i++)
		mx = x[i] > mx ? x[i] : mx;
	double sum = 0.0;
	for (int i = 0; i < n; i++) {
		x[i] = expf(x[i] - mx);
		sum += x[i];
	}
	float inv = (float)(1.0 / sum);
	for (int i = 0; i < n; i++)
		x[i] *= inv;
}

float ops_silu(float x)
{
	return x / (1.0f + expf(-x));
}

void ops_swiglu(float *y, const float *g, const float *u, int n)
{
	for (int i = 0; i < n; i++)
		y[i] = ops_silu(g[i]) * u[i];
}

/* The attention inner loops: compiled for AVX-512, AVX2 and the baseline,
 * chosen at load time (ifunc). Each lane's arithmetic is written out in the
 * source (no -ffast-math, no contraction in ISO C), so every clone returns the
 * same bits. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define OPS_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define OPS_CLONES
#endif

OPS_CLONES void ops_axpy(float *y, float a, const float *x, int n)
{
	for (int i = 0; i < n; i++)
		y[i] += a * x[i];
}

/* 16 running sums (one zmm, two ymm), folded pairwise at the end. */
static inline __attribute__((always_inline)) float dot16(const float *a, const float *b, int n)
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

OPS_CLONES float ops_dot(const float *a, const float *b, int n)
{
	return dot16(a, b, n);
}

OPS_CLONES void ops_dot_rows(float *out, const float *q, const float *rows, int n_rows, int n,
			     float scale)
{
	for (int t = 0; t < n_rows; t++)
		out[t] = dot16(q, rows + (size_t)t * n, n) * scale;
}

/* 64 columns at a time held in registers (4 zmm / 8 ymm) across all rows:
 * one pass over the rows per 64 columns, no load/store of o per row. The sums
 * run over t in order from zero, exactly as repeated ops_axpy would. */
typedef float ops_v16 __attribute__((vector_size(64)));
/* ld16 is always inlined: its vector return never crosses an ABI boundary */
#pragma GCC diagnostic ignored "-Wpsabi"

static inline __attribute__((always_inline)) ops_v16 ld16(const float *p)
{
	ops_v16 v;
	memcpy(&v, p, sizeof(v));
	return v;
}

OPS_CLONES void ops_wsum(float *o, const float *p, const float *rows, int n_rows, int n)
{
	int d0 = 0;
	for (; d0 + 64 <= n; d0 += 64) {
		ops_v16 a0 = { 0 }, a1 = { 0 }, a2 = { 0 }, a3 = { 0 };
		for (int t = 0; t < n_rows; t++) {
			const float *v = rows + (size_t)t * n + d0;
			const ops_v16 a = { p[t], p[t], p[t], p[t], p[t], p[t], p[t], p[t],
					    p[t], p[t], p[t], p[t], p[t], p[t], p[t], p[t] };
			a0 += a * ld16(v);
			a1 += a * ld16(v + 16);
			a2 += a * ld16(v + 32);
			a3 += a * ld16(v + 48);
		}
		memcpy(o + d0, &a0, sizeof(a0));
		memcpy(o + d0 + 16, &a1, sizeof(a1));
		memcpy(o + d0 + 32, &a2, sizeof(a2));
		memcpy(o + d0 + 48, &a3, sizeof(a3));
	}
	for (; d0 < n; d0++) {
		float acc = 0;
		for (int t = 0; t < n_rows; t++)
			acc += p[t] * rows[(size_t)t * n + d0];
		o[d0] = acc;
	}
}

void ops_topk(const float *x, int n, int k, int *idx)
{
	for (int j = 0; j < k; j++)
		idx[j] = -1;
	for (int i = 0; i < n; i++) {
		/* insert i into the sorted list if it beats the last entry */
		int j = k - 1;
		if (idx[j] >= 0 && !(x[i] > x[idx[j]]))
			continue;
		while (j > 0 && (idx[j - 1] < 0 || x[i] > x[idx[j - 1]])) {
			idx[j] = idx[j - 1];
			j--;
		}
		idx[j] = i;
	}
}
