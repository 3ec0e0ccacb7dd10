/* test_gdn.c: the Gated DeltaNet core (src/gdn.h) against formulas written
 * here: the delta rule in its explicit matrix form in double, token by token
 * vs chunked (several chunk sizes, partial last chunks, a strongly decaying
 * chunk), continuation over calls, head and channel ranges, the conv with its
 * rolling state, and the two norms.
 *
 * Errors are normwise: max |got - want| / max |want| over an array.
 * Tolerances, with the worst seen over these cases (gcc 12 -O2 x86-64 base
 * ISA, ASan -O1, clang -O2, and gdn.c built with -DGDN_VW=16 -mavx512f
 * -ffp-contract=fast): float recurrence (and chunked) vs the double matrix
 * form 2e-6 (seen 2.3e-7); chunked vs token by token 1e-5 (seen 1.3e-6,
 * chunk 16, g = -1e-4: a slowly decaying 128 x 128 state; the chunked form
 * sums the same terms in another order, through products over 128 and up
 * to 64 terms); norms 1e-6 (seen 1.3e-7). A 2e-5 relative error in one
 * decay factor of the chunked form fails them. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gdn.h"
#include "testutil.h"

#define TOL_NAIVE 2e-6
#define TOL_CHUNK 1e-5
#define TOL_NORM 1e-6

static double worst_naive, worst_chunk, worst_norm;

/* One layer's inputs for T tokens: rows of [q | k | v] (like the conv output,
 * qk_stride = v_stride = X_STRIDE), g and beta rows with a padding column,
 * an initial state. */
struct data {
	struct gdn_shape s;
	int T;
	size_t xs, gs, os; /* row strides of x, g/beta, o */
	float *x, *g, *beta, *S0;
};

static float softplus(float x)
{
	return x > 20.0f ? x : log1pf(expf(x));
}

static void normalise(float *x, int d, float scale)
{
	double ss = 0.0;
	for (int i = 0; i < d; i++)
		ss += (double)x[i] * x[i];
	for (int i = 0; i < d; i++)
		x[i] = (float)(x[i] / sqrt(ss) * scale);
}

/* g = -exp(A) softplus(a) with A ~ U(-2, 1) per head, a ~ N(0, 1); beta =
 * sigmoid(N(0, 1)); q, k unit vectors (q / sqrt(dk)); v ~ N(0, 1); the
 * state ~ N(0, 0.3). g_fixed != 0 replaces g. */
static void data_init(struct data *d, struct gdn_shape s, int T, uint64_t seed, float g_fixed)
{
	struct t_rng r = { seed };
	d->s = s;
	d->T = T;
	d->xs = (size_t)gdn_conv_channels(&s) + 5;
	d->gs = (size_t)s.nv + 1;
	d->os = (size_t)s.nv * s.dv + 3;
	d->x = malloc((size_t)T * d->xs * sizeof(float));
	d->g = malloc((size_t)T * d->gs * sizeof(float));
	d->beta = malloc((size_t)T * d->gs * sizeof(float));
	d->S0 = malloc((size_t)s.nv * s.dv * s.dk * sizeof(float));
	float A[64];
	for (int j = 0; j < s.nv; j++)
		A[j] = -2.0f + 3.0f * t_rand_uniform(&r);
	for (int t = 0; t < T; t++) {
		float *xt = d->x + (size_t)t * d->xs;
		for (size_t c = 0; c < d->xs; c++)
			xt[c] = t_rand_normal(&r);
		for (int i = 0; i < 2 * s.nk; i++)
			normalise(xt + (size_t)i * s.dk, s.dk, i < s.nk ? 1.0f / sqrtf((float)s.dk) : 1.0f);
		for (int j = 0; j < s.nv; j++) {
			size_t e = (size_t)t * d->gs + (size_t)j;
			d->g[e] = g_fixed != 0.0f ? g_fixed : -expf(A[j]) * softplus(t_rand_normal(&r));
			d->beta[e] = 1.0f / (1.0f + expf(-t_rand_normal(&r)));
		}
		d->g[(size_t)t * d->gs + s.nv] = NAN;
		d->beta[(size_t)t * d->gs + s.nv] = NAN;
	}
	for (size_t e = 0; e < (size_t)s.nv * s.dv * s.dk; e++)
		d->S0[e] = 0.3f * t_rand_normal(&r);
}

static void data_free(struct data *d)
{
	free(d->x), free(d->g), free(d->beta), free(d->S0);
}

static const float *dq(const struct data *d, int t0)
{
	return d->x + (size_t)t0 * d->xs;
}
static const float *dk_(const struct data *d, int t0)
{
	return dq(d, t0) + (size_t)d->s.nk * d->s.dk;
}
static const float *dv_(const struct data *d, int t0)
{
	return dq(d, t0) + (size_t)2 * d->s.nk * d->s.dk;
}

static size_t state_floats(const struct gdn_shape *s)
{
	return (size_t)s->nv * s->dv * s->dk;
}

/* gdn_rule over tokens [t0, t0 + n) and heads [j0, j1), with scratch sized
 * exactly (ASan sees any overrun) and o poisoned with NaN beforehand. */
static void run(const struct data *d, int t0, int n, float *S, float *o, int j0, int j1,
		int chunk)
{
	size_t nsc = gdn_scratch_floats(&d->s, chunk);
	float *sc = nsc ? malloc(nsc * sizeof(float)) : NULL;
	for (size_t e = 0; e < nsc; e++)
		sc[e] = NAN;
	for (int t = 0; t < n; t++)
		for (int j = j0; j < j1; j++)
			for (int r = 0; r < d->s.dv; r++)
				o[(size_t)(t0 + t) * d->os + (size_t)j * d->s.dv + r] = NAN;
	size_t gt = (size_t)t0 * d->gs;
	gdn_rule(&d->s, dq(d, t0), dk_(d, t0), d->xs, dv_(d, t0), d->xs, d->g + gt,
		 d->beta + gt, d->gs, n, S, o + (size_t)t0 * d->os, d->os, j0, j1, chunk, sc);
	free(sc);
}

static double rel_err(const float *got, const double *want, size_t n)
{
	double num = 0.0, den = 0.0;
	for (size_t i = 0; i < n; i++) {
		double e = fabs((double)got[i] - want[i]);
		if (isnan(e))
			return INFINITY;
		num = fmax(num, e);
		den = fmax(den, fabs(want[i]));
	}
	return den > 0.0 ? num / den : num;
}

static double rel_errf(const float *got, const float *want, size_t n)
{
	double *w = malloc(n * sizeof(double));
	for (size_t i = 0; i < n; i++)
		w[i] = want[i];
	double e = rel_err(got, w, n);
	free(w);
	return e;
}

/* The o values of the data's layout, packed [T][nv*dv]. */
static void pack_o(const struct data *d, const float *o, float *out)
{
	size_t w = (size_t)d->s.nv * d->s.dv;
	for (int t = 0; t < d->T; t++)
		memcpy(out + (size_t)t * w, o + (size_t)t * d->os, w * sizeof(float));
}

/* ---- 1. the explicit matrix form in double ---- */

/* S_t = e^g (I - beta k k^T) S_{t-1} + beta k v^T, o_t = S_t^T q, with
 * S as dk x dv (math layout); returns o [T][nv*dv] and the final state in
 * the library's [nv][dv][dk] layout. */
static void naive_rule(const struct data *d, double *o, double *S_out)
{
	const struct gdn_shape *s = &d->s;
	int dk = s->dk, dv = s->dv;
	double *S = malloc((size_t)dk * dv * sizeof(double));
	double *P = malloc((size_t)dk * dk * sizeof(double));
	double *N = malloc((size_t)dk * dv * sizeof(double));
	for (int j = 0; j < s->nv; j++) {
		/* §6.3.4: tiled (qwen35 GGUF) or grouped (HF, qwen3next GGUF) */
		int i = s->tiled ? j % s->nk : j / (s->nv / s->nk);
		for (int a = 0; a < dk; a++)
			for (int b = 0; b < dv; b++)
				S[a * dv + b] = d->S0[((size_t)j * dv + b) * dk + a];
		for (int t = 0; t < d->T; t++) {
			const float *q = dq(d, t) + (size_t)i * dk, *k = dk_(d, t) + (size_t)i * dk;
			const float *v = dv_(d, t) + (size_t)j * dv;
			double g = d->g[(size_t)t * d->gs + j], beta = d->beta[(size_t)t * d->gs + j];
			double al = exp(g);
			for (int a = 0; a < dk; a++)
				for (int b = 0; b < dk; b++)
					P[a * dk + b] = al * ((a == b) - beta * k[a] * k[b]);
			for (int a = 0; a < dk; a++)
				for (int b = 0; b < dv; b++) {
					double acc = beta * k[a] * v[b];
					for (int m = 0; m < dk; m++)
						acc += P[a * dk + m] * S[m * dv + b];
					N[a * dv + b] = acc;
				}
			memcpy(S, N, (size_t)dk * dv * sizeof(double));
			for (int b = 0; b < dv; b++) {
				double acc = 0.0;
				for (int a = 0; a < dk; a++)
					acc += S[a * dv + b] * q[a];
				o[(size_t)t * s->nv * dv + (size_t)j * dv + b] = acc;
			}
		}
		for (int a = 0; a < dk; a++)
			for (int b = 0; b < dv; b++)
				S_out[((size_t)j * dv + b) * dk + a] = S[a * dv + b];
	}
	free(S), free(P), free(N);
}

static void test_naive(bool tiled)
{
	struct gdn_shape s = { .nk = 2, .nv = 4, .dk = 8, .dv = 6, .conv_k = 4, .tiled = tiled };
	struct data d;
	data_init(&d, s, 13, tiled ? 11 : 12, 0.0f);
	size_t ns = state_floats(&s), no = (size_t)d.T * s.nv * s.dv;
	double *wo = malloc(no * sizeof(double)), *wS = malloc(ns * sizeof(double));
	naive_rule(&d, wo, wS);
	float *S = malloc(ns * sizeof(float)), *o = malloc((size_t)d.T * d.os * sizeof(float));
	float *po = malloc(no * sizeof(float));
	memcpy(S, d.S0, ns * sizeof(float));
	run(&d, 0, d.T, S, o, 0, s.nv, 1);
	pack_o(&d, o, po);
	double eo = rel_err(po, wo, no), es = rel_err(S, wS, ns);
	CHECK(eo < TOL_NAIVE && es < TOL_NAIVE, "tiled %d: o %.3g state %.3g", tiled, eo, es);
	worst_naive = fmax(worst_naive, fmax(eo, es));
	/* the same through the chunked form */
	memcpy(S, d.S0, ns * sizeof(float));
	run(&d, 0, d.T, S, o, 0, s.nv, 4);
	pack_o(&d, o, po);
	eo = rel_err(po, wo, no), es = rel_err(S, wS, ns);
	CHECK(eo < TOL_NAIVE && es < TOL_NAIVE, "chunked, tiled %d: o %.3g state %.3g", tiled, eo, es);
	worst_naive = fmax(worst_naive, fmax(eo, es));
	free(wo), free(wS), free(S), free(o), free(po);
	data_free(&d);
}

/* ---- 2. chunked vs token by token; 3. continuation; 5. head ranges ---- */

/* Runs d in pieces (lens[], summing to T) with the given chunk; returns the
 * packed o and the final state. */
static void run_pieces(const struct data *d, const int *lens, int n_lens, int chunk, float *po,
		       float *S)
{
	float *o = malloc((size_t)d->T * d->os * sizeof(float));
	memcpy(S, d->S0, state_floats(&d->s) * sizeof(float));
	int t0 = 0;
	for (int i = 0; i < n_lens; i++) {
		run(d, t0, lens[i], S, o, 0, d->s.nv, chunk);
		t0 += lens[i];
	}
	pack_o(d, o, po);
	free(o);
}

static void test_chunked(struct gdn_shape s, int T, int chunk, float g_fixed)
{
	struct data d;
	data_init(&d, s, T, 100 + T * 7 + chunk, g_fixed);
	size_t ns = state_floats(&s), no = (size_t)T * s.nv * s.dv;
	float *o1 = malloc(no * sizeof(float)), *S1 = malloc(ns * sizeof(float));
	float *oc = malloc(no * sizeof(float)), *Sc = malloc(ns * sizeof(float));
	int whole[] = { T };
	run_pieces(&d, whole, 1, 1, o1, S1);
	run_pieces(&d, whole, 1, chunk, oc, Sc);
	double eo = rel_errf(oc, o1, no), es = rel_errf(Sc, S1, ns);
	bool all_finite = true;
	for (size_t e = 0; e < no; e++)
		all_finite = all_finite && isfinite(oc[e]);
	for (size_t e = 0; e < ns; e++)
		all_finite = all_finite && isfinite(Sc[e]);
	CHECK(all_finite && eo < TOL_CHUNK && es < TOL_CHUNK,
	      "dk %d dv %d tiled %d T %d chunk %d g %g: o %.3g state %.3g all_finite %d", s.dk, s.dv,
	      s.tiled, T, chunk, g_fixed, eo, es, all_finite);
	worst_chunk = fmax(worst_chunk, fmax(eo, es));
	free(o1), free(S1), free(oc), free(Sc);
	data_free(&d);
}

static bool same(const float *a, const float *b, size_t n)
{
	return memcmp(a, b, n * sizeof(float)) == 0;
}

/* Token by token: any split is bit-identical. Chunked: splits at multiples
 * of the chunk are bit-identical, other splits agree within TOL_CHUNK. */
static void test_continuation(struct gdn_shape s)
{
	enum { T = 150 };
	struct data d;
	data_init(&d, s, T, 77, 0.0f);
	size_t ns = state_floats(&s), no = (size_t)T * s.nv * s.dv;
	float *oa = malloc(no * sizeof(float)), *Sa = malloc(ns * sizeof(float));
	float *ob = malloc(no * sizeof(float)), *Sb = malloc(ns * sizeof(float));
	int whole[] = { T }, odd[] = { 1, 2, 61, 17, 69 }, aligned[] = { 32, 96, 22 };
	run_pieces(&d, whole, 1, 1, oa, Sa);
	run_pieces(&d, odd, 5, 1, ob, Sb);
	CHECK(same(oa, ob, no) && same(Sa, Sb, ns), "token by token, split: not bit-identical");
	run_pieces(&d, whole, 1, 32, oa, Sa);
	run_pieces(&d, aligned, 3, 32, ob, Sb);
	CHECK(same(oa, ob, no) && same(Sa, Sb, ns), "chunked, split at chunk multiples: differs");
	run_pieces(&d, odd, 5, 32, ob, Sb);
	double eo = rel_errf(ob, oa, no), es = rel_errf(Sb, Sa, ns);
	CHECK(eo < TOL_CHUNK && es < TOL_CHUNK, "chunked, odd split: o %.3g state %.3g", eo, es);
	worst_chunk = fmax(worst_chunk, fmax(eo, es));
	free(oa), free(Sa), free(ob), free(Sb);
	data_free(&d);
}

static void test_head_ranges(struct gdn_shape s, int chunk)
{
	enum { T = 70 };
	struct data d;
	data_init(&d, s, T, 5, 0.0f);
	size_t ns = state_floats(&s), no = (size_t)T * d.os;
	float *oa = malloc(no * sizeof(float)), *Sa = malloc(ns * sizeof(float));
	float *ob = malloc(no * sizeof(float)), *Sb = malloc(ns * sizeof(float));
	memcpy(Sa, d.S0, ns * sizeof(float));
	run(&d, 0, T, Sa, oa, 0, s.nv, chunk);
	for (int a = 1; a < s.nv; a++) {
		memcpy(Sb, d.S0, ns * sizeof(float));
		run(&d, 0, T, Sb, ob, a, s.nv, chunk);
		run(&d, 0, T, Sb, ob, 0, a, chunk);
		bool ok = same(Sa, Sb, ns);
		for (int t = 0; t < T; t++)
			ok = ok && same(oa + (size_t)t * d.os, ob + (size_t)t * d.os,
					(size_t)s.nv * s.dv);
		CHECK(ok, "tiled %d chunk %d: heads [0,%d)+[%d,%d) != [0,%d)", s.tiled, chunk, a, a,
		      s.nv, s.nv);
	}
	free(oa), free(Sa), free(ob), free(Sb);
	data_free(&d);
}

/* ---- 4. conv ---- */

static void conv_naive(const float *x, int T, int C, int K, const float *w, const float *state0,
		       double *y, float *state_out)
{
	int n = K - 1 + T;
	float *X = malloc((size_t)n * C * sizeof(float));
	memcpy(X, state0, (size_t)(K - 1) * C * sizeof(float));
	memcpy(X + (size_t)(K - 1) * C, x, (size_t)T * C * sizeof(float));
	for (int t = 0; t < T; t++)
		for (int c = 0; c < C; c++) {
			double acc = 0.0;
			for (int j = 0; j < K; j++)
				acc += (double)w[c * K + j] * X[(size_t)(t + j) * C + c];
			y[(size_t)t * C + c] = acc / (1.0 + exp(-acc));
		}
	memcpy(state_out, X + (size_t)T * C, (size_t)(K - 1) * C * sizeof(float));
	free(X);
}

static void test_conv(void)
{
	struct gdn_shape s = { .nk = 2, .nv = 4, .dk = 8, .dv = 6, .conv_k = 4, .tiled = false };
	enum { T = 11 };
	const int C = gdn_conv_channels(&s), K = s.conv_k;
	struct t_rng r = { 3 };
	float *x = malloc((size_t)T * C * sizeof(float)), *w = malloc((size_t)C * K * sizeof(float));
	float *st0 = malloc((size_t)(K - 1) * C * sizeof(float));
	for (int i = 0; i < T * C; i++)
		x[i] = t_rand_normal(&r);
	for (int i = 0; i < C * K; i++)
		w[i] = 0.5f * t_rand_normal(&r);
	for (int i = 0; i < (K - 1) * C; i++)
		st0[i] = t_rand_normal(&r);
	double *yw = malloc((size_t)T * C * sizeof(double));
	float *stw = malloc((size_t)(K - 1) * C * sizeof(float));
	float *ya = malloc((size_t)T * C * sizeof(float)), *yb = malloc((size_t)T * C * sizeof(float));
	float *sa = malloc((size_t)(K - 1) * C * sizeof(float));
	float *sb = malloc((size_t)(K - 1) * C * sizeof(float));
	size_t sbytes = (size_t)(K - 1) * C * sizeof(float);
	conv_naive(x, T, C, K, w, st0, yw, stw);
	memcpy(sa, st0, sbytes);
	gdn_conv(&s, x, C, T, w, sa, ya, C, 0, C);
	double e = rel_err(ya, yw, (size_t)T * C);
	CHECK(e < 1e-6, "conv vs naive: %.3g", e);
	CHECK(same(sa, stw, (size_t)(K - 1) * C), "conv state vs naive");
	/* split over calls (1 and 2 tokens: fewer than K - 1) and channel ranges */
	static const int lens[] = { 1, 2, 1, 5, 2 };
	memcpy(sb, st0, sbytes);
	int t0 = 0;
	for (int i = 0; i < 5; i++) {
		int c1 = C / 3 + i;
		gdn_conv(&s, x + (size_t)t0 * C, C, lens[i], w, sb, yb + (size_t)t0 * C, C, 0, c1);
		gdn_conv(&s, x + (size_t)t0 * C, C, lens[i], w, sb, yb + (size_t)t0 * C, C, c1, C);
		t0 += lens[i];
	}
	CHECK(same(ya, yb, (size_t)T * C) && same(sa, sb, (size_t)(K - 1) * C),
	      "conv split over calls and channels: not bit-identical");
	/* T = 0 leaves the state alone */
	gdn_conv(&s, x, C, 0, w, sb, yb, C, 0, C);
	CHECK(same(sa, sb, (size_t)(K - 1) * C), "conv T = 0 changed the state");
	free(x), free(w), free(st0), free(yw), free(stw), free(ya), free(yb), free(sa), free(sb);
}

/* ---- 6. norms ---- */

static void test_norms(void)
{
	enum { H = 3, D = 37 };
	struct t_rng r = { 9 };
	float x[H * D], z[H * D], w[D], y[H * D];
	double want[H * D];
	for (int i = 0; i < H * D; i++)
		x[i] = 2.0f * t_rand_normal(&r), z[i] = 2.0f * t_rand_normal(&r);
	for (int i = 0; i < D; i++)
		w[i] = 1.0f + 0.2f * t_rand_normal(&r);
	const float eps = 1e-6f, scale = 0.25f;
	for (int h = 0; h < H; h++) {
		double ss = 0.0;
		for (int i = 0; i < D; i++)
			ss += (double)x[h * D + i] * x[h * D + i];
		for (int i = 0; i < D; i++)
			want[h * D + i] = x[h * D + i] / sqrt(ss + eps) * scale;
	}
	memcpy(y, x, sizeof(x));
	gdn_l2norm_heads(y, H, D, eps, scale);
	double e = rel_err(y, want, H * D);
	CHECK(e < TOL_NORM, "l2norm: %.3g", e);
	worst_norm = fmax(worst_norm, e);
	for (int h = 0; h < H; h++) {
		double ss = 0.0;
		for (int i = 0; i < D; i++)
			ss += (double)x[h * D + i] * x[h * D + i];
		for (int i = 0; i < D; i++) {
			double zz = z[h * D + i];
			want[h * D + i] = w[i] * x[h * D + i] / sqrt(ss / D + eps) * zz / (1.0 + exp(-zz));
		}
	}
	gdn_norm_gated(y, x, z, w, H, D, eps);
	e = rel_err(y, want, H * D);
	CHECK(e < TOL_NORM, "norm_gated: %.3g", e);
	memcpy(y, x, sizeof(x));
	gdn_norm_gated(y, y, z, w, H, D, eps); /* in place */
	double e2 = rel_err(y, want, H * D);
	CHECK(e2 < TOL_NORM, "norm_gated in place: %.3g", e2);
	worst_norm = fmax(worst_norm, fmax(e, e2));
}

int main(void)
{
	const struct gdn_shape sh = { .nk = 2, .nv = 6, .dk = 8, .dv = 5, .conv_k = 4 };
	struct gdn_shape st = sh;
	st.tiled = true;
	static const int grouped[] = { 0, 0, 0, 1, 1, 1 }, tiled[] = { 0, 1, 0, 1, 0, 1 };
	for (int j = 0; j < 6; j++)
		CHECK(gdn_key_head(&sh, j) == grouped[j] && gdn_key_head(&st, j) == tiled[j],
		      "key head of value head %d", j);
	CHECK(gdn_conv_channels(&sh) == 2 * 2 * 8 + 6 * 5, "conv channels %d", gdn_conv_channels(&sh));

	test_naive(true);
	test_naive(false);

	/* the small shape (scalar paths) and one with 16-wide tiles plus tails */
	const struct gdn_shape shapes[] = {
		{ .nk = 2, .nv = 4, .dk = 8, .dv = 6, .conv_k = 4, .tiled = true },
		{ .nk = 2, .nv = 4, .dk = 8, .dv = 6, .conv_k = 4, .tiled = false },
		{ .nk = 1, .nv = 3, .dk = 40, .dv = 36, .conv_k = 4, .tiled = false },
		{ .nk = 2, .nv = 2, .dk = 128, .dv = 128, .conv_k = 4, .tiled = true },
	};
	static const int Ts[] = { 1, 3, 64, 65, 130, 200 };
	static const int chunks[] = { 2, 4, 64 };
	for (int a = 0; a < 4; a++)
		for (int b = 0; b < 6; b++)
			for (int c = 0; c < 3; c++)
				test_chunked(shapes[a], Ts[b], chunks[c], 0.0f);
	/* strongly decaying chunks: e^gamma underflows within the chunk */
	for (int a = 0; a < 4; a++) {
		test_chunked(shapes[a], 130, 64, -20.0f);
		test_chunked(shapes[a], 70, 64, -90.0f);
		test_chunked(shapes[a], 70, 16, -1e-4f);
	}
	for (int a = 0; a < 3; a++)
		test_continuation(shapes[a]);
	for (int a = 0; a < 3; a++) {
		test_head_ranges(shapes[a], 1);
		test_head_ranges(shapes[a], 64);
	}
	test_conv();
	test_norms();
	printf("worst errors: recurrence vs double %.3g, chunked vs token by token %.3g, "
	       "norms %.3g\n",
	       worst_naive, worst_chunk, worst_norm);
	return t_done("test_gdn");
}
