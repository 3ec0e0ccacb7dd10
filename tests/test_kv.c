/* test_kv.c: the KV cache formats (src/kv.c) through kv_store / kv_attend,
 * against an attention computed here in double from the f32 rows:
 *   - f32: equal to rounding (the kernels' float sums);
 *   - f16, q8_0: within what their rounding of K and V allows (f16 ~1e-3,
 *     q8_0 ~1e-2 of the output's scale), for keys and values in separate
 *     formats too (-ctk / -ctv), head dims 64, 128 and 256, one position and
 *     many;
 *   - TurboQuant (tq4 ... tq2.5, and tq3.5p keys): within the distortion of
 *     their bits (that the scores from the codes equal dequantize-then-dot is
 *     test_tq's);
 *   - bytes per token as the formats define them, and a head_dim q8_0 cannot
 *     hold refused with a message. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"
#include "kernels/kernels.h"
#include "testutil.h"

static float frand(unsigned *s)
{
	*s = *s * 1664525u + 1013904223u;
	return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

/* Max |attention(kv) - exact| / max |exact| over n_rep heads. */
static double run(enum kv_type tk, enum kv_type tv, int hd, int n_pos, const struct kernels *k)
{
	enum { N_HEAD_KV = 2, N_REP = 10 }; /* 10: a group of 8 query heads and one of 2 */
	unsigned seed = 7u + (unsigned)hd + (unsigned)n_pos;
	struct fm_error err = { 0 };
	struct kv_cache *kv = kv_new(1, N_HEAD_KV, hd, n_pos, tk, tv, NULL, &err);
	if (!kv) {
		CHECK(0, "kv_new %d/%d hd %d: %s", tk, tv, hd, err.msg);
		return 1e9;
	}
	float *K = malloc((size_t)n_pos * N_HEAD_KV * hd * sizeof(float));
	float *V = malloc((size_t)n_pos * N_HEAD_KV * hd * sizeof(float));
	float *q = malloc((size_t)N_REP * hd * sizeof(float)), *out = malloc((size_t)N_REP * hd * 4);
	float *scratch = malloc(kv_scratch_floats(kv) * sizeof(float));
	double *s = malloc((size_t)n_pos * sizeof(double)), worst = 0;
	for (size_t i = 0; i < (size_t)n_pos * N_HEAD_KV * hd; i++) {
		K[i] = frand(&seed);
		V[i] = frand(&seed) * 3.0f;
	}
	for (int t = 0; t < n_pos; t++)
		kv_store(kv, 0, t, K + (size_t)t * N_HEAD_KV * hd, V + (size_t)t * N_HEAD_KV * hd);
	for (int i = 0; i < N_REP * hd; i++)
		q[i] = frand(&seed) * 2.0f;
	float scale = 1.0f / sqrtf((float)hd);
	for (int h = 0; h < N_HEAD_KV; h++) {
		kv_attend(kv, k, 0, h, q, N_REP, n_pos, scale, out, scratch);
		for (int r = 0; r < N_REP; r++) {
			double mx = -1e300, sum = 0, omax = 0, emax = 0;
			for (int t = 0; t < n_pos; t++) {
				const float *kr = K + ((size_t)t * N_HEAD_KV + h) * hd;
				double d = 0;
				for (int i = 0; i < hd; i++)
					d += (double)q[r * hd + i] * kr[i];
				s[t] = d * scale;
				mx = s[t] > mx ? s[t] : mx;
			}
			for (int t = 0; t < n_pos; t++)
				sum += (s[t] = exp(s[t] - mx));
			for (int i = 0; i < hd; i++) {
				double o = 0;
				for (int t = 0; t < n_pos; t++)
					o += s[t] / sum * V[((size_t)t * N_HEAD_KV + h) * hd + i];
				omax = fabs(o) > omax ? fabs(o) : omax;
				double e = fabs(o - out[r * hd + i]);
				emax = e > emax ? e : emax;
			}
			double rel = emax / (omax > 1e-30 ? omax : 1e-30);
			worst = rel > worst ? rel : worst;
		}
	}
	free(K), free(V), free(q), free(out), free(scratch), free(s);
	kv_free(kv);
	return worst;
}

int main(void)
{
	kernels_init();
	const struct kernels *k = kernels_best();
	const struct { enum kv_type tk, tv; double tol; const char *name; } cases[] = {
		{ KV_F32, KV_F32, 1e-5, "f32" },        { KV_F16, KV_F16, 2e-3, "f16" },
		{ KV_Q8_0, KV_Q8_0, 2e-2, "q8_0" },     { KV_Q8_0, KV_F16, 2e-2, "k q8_0 / v f16" },
		{ KV_F16, KV_Q8_0, 2e-2, "k f16 / v q8_0" },
		/* TurboQuant: the distortion its bits allow (docs/TURBOQUANT.md) */
		{ KV_TQ4, KV_TQ4, 0.3, "tq4" },         { KV_TQ3_5, KV_TQ3_5, 0.45, "tq3.5" },
		{ KV_TQ2_5, KV_TQ2_5, 0.9, "tq2.5" },   { KV_TQ3_5P, KV_TQ3_5, 0.45, "k tq3.5p / v tq3.5" },
		{ KV_Q8_0, KV_TQ3_5, 0.45, "k q8_0 / v tq3.5" },
	};
	const int hds[] = { 64, 128, 256 }, npos[] = { 1, 77, 600 };
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		double worst = 0;
		for (int i = 0; i < 3; i++)
			for (int j = 0; j < 3; j++) {
				double e = run(cases[c].tk, cases[c].tv, hds[i], npos[j], k);
				CHECK(e <= cases[c].tol, "%s hd %d, %d positions: rel error %.3g > %g",
				      cases[c].name, hds[i], npos[j], e, cases[c].tol);
				worst = e > worst ? e : worst;
			}
		printf("  %-16s worst rel error %.3g (bound %g)\n", cases[c].name, worst, cases[c].tol);
	}
	/* bytes per token: 2 layers x 4 heads x (K + V rows) of 128 */
	CHECK(kv_bytes_per_token(2, 4, 128, KV_F32, KV_F32) == 2 * 4 * 2 * 512, "f32 bytes");
	CHECK(kv_bytes_per_token(2, 4, 128, KV_F16, KV_F16) == 2 * 4 * 2 * 256, "f16 bytes");
	CHECK(kv_bytes_per_token(2, 4, 128, KV_Q8_0, KV_F16) == 2 * 4 * (136 + 256), "q8_0 bytes");
	struct fm_error err = { 0 };
	CHECK(kv_new(1, 1, 48, 8, KV_Q8_0, KV_F32, NULL, &err) == NULL && strstr(err.msg, "48"),
	      "q8_0 with head_dim 48 accepted (%s)", err.msg);
	CHECK(kv_new(1, 1, 96, 8, KV_F32, KV_TQ3_5, NULL, &err) == NULL && strstr(err.msg, "96"),
	      "tq3.5 with head_dim 96 accepted (%s)", err.msg);
	/* tq3.5 at head_dim 128: 56 bytes per vector, 4.57x smaller than f16 */
	CHECK(kv_bytes_per_token(1, 1, 128, KV_TQ3_5, KV_TQ3_5) == 2 * 56, "tq3.5 bytes %zu",
	      kv_bytes_per_token(1, 1, 128, KV_TQ3_5, KV_TQ3_5));
	return t_done("test_kv");
}
