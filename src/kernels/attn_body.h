/* attn_body.h: the bodies of attn.h's functions, included by attn.c,
 * attn_avx2.c and attn_avx512.c after they define ATTN_DOT_ROWS and ATTN_WSUM
 * as the names of their variants (attn_dot_rows_avx2 ...): one source,
 * compiled once per ISA. Not a header of its own. */
#include <string.h>

typedef float attn_v16 __attribute__((vector_size(64)));
/* attn_ld16 is always inlined: its vector return never crosses an ABI boundary */
#pragma GCC diagnostic ignored "-Wpsabi"

static inline __attribute__((always_inline)) attn_v16 attn_ld16(const float *p)
{
	attn_v16 v;
	memcpy(&v, p, sizeof(v));
	return v;
}

/* 16 running sums (one zmm, two ymm, four xmm), folded pairwise at the end. */
void ATTN_DOT_ROWS(float *out, const float *q, const float *rows, int n_rows, int n, float scale)
{
	for (int t = 0; t < n_rows; t++) {
		const float *k = rows + (size_t)t * n;
		float s[16] = { 0 };
		int i = 0;
		for (; i + 16 <= n; i += 16)
			for (int j = 0; j < 16; j++)
				s[j] += q[i + j] * k[i + j];
		for (; i < n; i++)
			s[0] += q[i] * k[i];
		for (int w = 8; w >= 1; w /= 2)
			for (int j = 0; j < w; j++)
				s[j] += s[j + w];
		out[t] = s[0] * scale;
	}
}

/* 64 columns at a time held in registers over all rows: one pass over the
 * rows per 64 columns, no load/store of o per row. Each column's sum runs over
 * t in order from zero, as repeated y += p[t] * row would. */
void ATTN_WSUM(float *o, const float *p, const float *rows, int n_rows, int n)
{
	int d0 = 0;
	for (; d0 + 64 <= n; d0 += 64) {
		attn_v16 a0 = { 0 }, a1 = { 0 }, a2 = { 0 }, a3 = { 0 };
		for (int t = 0; t < n_rows; t++) {
			const float *v = rows + (size_t)t * n + d0;
			const float pt = p[t];
			const attn_v16 a = { pt, pt, pt, pt, pt, pt, pt, pt,
					     pt, pt, pt, pt, pt, pt, pt, pt };
			a0 += a * attn_ld16(v);
			a1 += a * attn_ld16(v + 16);
			a2 += a * attn_ld16(v + 32);
			a3 += a * attn_ld16(v + 48);
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
