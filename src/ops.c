/* ops.c: norms, RoPE, softmax, SwiGLU, top-k (architectures.md §5, §5.1). */
#include "ops.h"

#include <math.h>

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

void ops_rope_imrope_text(float *cs, int n_rot, const int sections[4])
{
	int half = n_rot / 2;
	for (int s = 0; s < half; s++) {
		int r = s % 3;
		if (s < 3 * sections[r])
			continue; /* stream t, h or w: the token's position */
		cs[s] = 1.0f;  /* stream e: position 0, no rotation */
		cs[half + s] = 0.0f;
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

void ops_axpy(float *y, float a, const float *x, int n)
{
	for (int i = 0; i < n; i++)
		y[i] += a * x[i];
}

/* 16 running sums, folded pairwise at the end (the same order as the
 * attention kernels' scores, src/kernels/attn_body.h). */
float ops_dot(const float *a, const float *b, int n)
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
