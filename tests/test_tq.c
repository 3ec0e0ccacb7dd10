/* test_tq.c: TurboQuant vectors (src/kernels/tq.h) against the paper
 * (Zandieh et al., arXiv 2504.19874) and against themselves:
 *   - the rotation is orthogonal (norms kept, inverse exact to rounding,
 *     Gram matrix = I);
 *   - the codebooks: symmetric, ascending, converged, each centroid the mean
 *     of its cell under f_d(x) ~ (1 - x^2)^((d-3)/2) integrated here
 *     independently (Simpson), the 1-bit centroid = E|x| in closed form,
 *     D_mse between the paper's lower bound 1/4^b and upper bound
 *     sqrt(3) pi / 2 / 4^b;
 *   - the bit layout of tq.h, byte for byte, on a vector built to have known
 *     codes;
 *   - distortion on random unit vectors, d = 128 and 256, b = 1..4: the mse
 *     variant's D_mse within the bounds and within 5% of the codebook's
 *     expected value; the prod variant's inner-product distortion d * D_prod
 *     within the paper's bound sqrt(3) pi^2 / 4^b and its bias 0 within 4
 *     standard errors (the mse variant's bias at 1-2 bits must be detected:
 *     the check has power);
 *   - tq_score and tq_accumulate(+finish) equal dequantize-then-dot to float
 *     rounding; every SIMD variant the CPU has equals the reference to float
 *     rounding, writes nothing past n, and is what the kernel table holds;
 *   - bytes per value: >= 4.5x smaller than F16 at 3.5 bits, >= 6x at 2.5.
 * Prints the distortion and compression tables of docs/TURBOQUANT.md; with
 * TQ_BENCH=1 it only prints the kernels' timings instead (no checks). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/tq.h"
#include "testutil.h"
#include "util.h"

#define N_MSE 2000   /* unit vectors per distortion row */
#define N_PROD 4000  /* (x, y) pairs per inner-product row */

static const int dims[] = { 64, 128, 256 };
/* the paper's values (Theorems 1 and 2): D_mse and d * D_prod for b = 1..4 */
static const double paper_mse[5] = { 0, 0.36, 0.117, 0.03, 0.009 };
static const double paper_prod[5] = { 0, 1.57, 0.56, 0.18, 0.047 };

/* the IEEE half at p (little-endian), e.g. a stored norm */
static float half_at(const uint8_t *p)
{
	return fm_fp16_to_fp32((uint16_t)(p[0] | p[1] << 8));
}

static void rand_unit(struct t_rng *r, float *x, int d)
{
	double ss = 0.0;
	for (int i = 0; i < d; i++) {
		x[i] = t_rand_normal(r);
		ss += (double)x[i] * x[i];
	}
	for (int i = 0; i < d; i++)
		x[i] = (float)(x[i] / sqrt(ss));
}

static double dot(const float *a, const float *b, int d)
{
	double s = 0.0;
	for (int i = 0; i < d; i++)
		s += (double)a[i] * b[i];
	return s;
}

static void fmt_init(struct tq_format *f, int d, enum tq_variant v, int bh, int nh, int bl)
{
	int rc = tq_format_init(f, d, v, bh, nh, bl);
	if (rc) {
		fprintf(stderr, "tq_format_init(%d, %d, %d, %d, %d) = %d\n", d, v, bh, nh, bl, rc);
		exit(1);
	}
}

/* ---- rotation ---- */

static void test_rotation(void)
{
	struct t_rng r = { 1 };
	for (size_t a = 0; a < sizeof(dims) / sizeof(dims[0]); a++) {
		int d = dims[a];
		struct tq_format f;
		fmt_init(&f, d, TQ_MSE, 2, 0, 2);
		float x[TQ_MAX_DIM], y[TQ_MAX_DIM], z[TQ_MAX_DIM];
		double worst_norm = 0, worst_inv = 0, worst_gram = 0;
		for (int k = 0; k < 200; k++) {
			for (int i = 0; i < d; i++)
				x[i] = t_rand_normal(&r) * 3.0f;
			tq_rotate(&f, x, y);
			tq_unrotate(&f, y, z);
			double nx = sqrt(dot(x, x, d));
			worst_norm = fmax(worst_norm, fabs(sqrt(dot(y, y, d)) - nx) / nx);
			for (int i = 0; i < d; i++)
				worst_inv = fmax(worst_inv, fabs(z[i] - x[i]) / nx);
		}
		/* columns P e_i: Gram matrix = I */
		static float cols[TQ_MAX_DIM][TQ_MAX_DIM];
		for (int i = 0; i < d; i++) {
			memset(x, 0, sizeof(x));
			x[i] = 1.0f;
			tq_rotate(&f, x, cols[i]);
		}
		for (int i = 0; i < d; i++)
			for (int j = 0; j < d; j++)
				worst_gram = fmax(worst_gram, fabs(dot(cols[i], cols[j], d) - (i == j)));
		CHECK(worst_norm < 1e-6, "d=%d: |Px| vs |x| off by %.3g relative", d, worst_norm);
		CHECK(worst_inv < 1e-6, "d=%d: P^T P x - x = %.3g |x|", d, worst_inv);
		CHECK(worst_gram < 1e-6, "d=%d: Gram matrix - I = %.3g", d, worst_gram);
		/* S: orthogonal rows of length rho = sqrt(2/pi) / E|u_1| */
		struct tq_format fp;
		fmt_init(&fp, d, TQ_PROD, 2, 0, 2);
		double rho2 = 2 / M_PI / pow(exp(lgamma(d / 2.0) - lgamma((d + 1) / 2.0)) / sqrt(M_PI), 2);
		double worst_s = 0.0;
		for (int i = 0; i < d; i++)
			for (int j = 0; j < d; j++)
				worst_s = fmax(worst_s, fabs(dot(fp.qjl + (size_t)i * d,
								 fp.qjl + (size_t)j * d, d) / rho2 -
							     (i == j)));
		CHECK(worst_s < 1e-5, "d=%d: S S^T / rho^2 - I = %.3g", d, worst_s);
		printf("rotation d=%3d: norm %.1e, inverse %.1e, gram %.1e; QJL S gram %.1e\n", d,
		       worst_norm, worst_inv, worst_gram, worst_s);
	}
}

/* ---- codebooks ---- */

/* Simpson on [-1, 1] of x^p f over [a, b] with f unnormalised. */
static double integrate(int d, double a, double b, int p)
{
	const int n = 20000;
	double h = (b - a) / n, s = 0.0;
	for (int i = 0; i <= n; i++) {
		double x = a + i * h, w = (i == 0 || i == n) ? 1 : (i & 1) ? 4 : 2;
		double f = x * x >= 1 ? 0 : pow(1 - x * x, (d - 3) / 2.0);
		s += w * f * (p == 0 ? 1 : p == 1 ? x : x * x);
	}
	return s * h / 3;
}

static void test_codebook(int d, int bits)
{
	const struct tq_codebook *cb = tq_codebook_get(d, bits);
	double sigma = 1 / sqrt(d);
	int n = 1 << bits;
	CHECK(cb && cb->n_levels == n, "d=%d b=%d: no codebook", d, bits);
	if (!cb)
		return;
	CHECK(cb->iterations < 200000 && cb->last_step <= 1e-12 * sigma,
	      "d=%d b=%d: not converged: %d iterations, last step %.3g sigma", d, bits,
	      cb->iterations, cb->last_step / sigma);
	double z = integrate(d, -1, 1, 0), kept = 0.0;
	for (int k = 0; k < n; k++) {
		CHECK(fabs(cb->centroid[k] + cb->centroid[n - 1 - k]) <= 1e-6 * sigma,
		      "d=%d b=%d: c[%d] = %.9g, c[%d] = %.9g: not symmetric", d, bits, k,
		      cb->centroid[k], n - 1 - k, cb->centroid[n - 1 - k]);
		if (k + 1 < n)
			CHECK(cb->centroid[k] < cb->boundary[k] &&
				      cb->boundary[k] < cb->centroid[k + 1],
			      "d=%d b=%d: not ascending at %d", d, bits, k);
		double lo = k ? cb->boundary[k - 1] : -1, hi = k + 1 < n ? cb->boundary[k] : 1;
		double m0 = integrate(d, lo, hi, 0), m1 = integrate(d, lo, hi, 1);
		CHECK(fabs(m1 / m0 - cb->centroid[k]) <= 1e-5 * sigma,
		      "d=%d b=%d: c[%d] = %.9g but its cell's mean is %.9g", d, bits, k,
		      cb->centroid[k], m1 / m0);
		kept += m0 / z * cb->centroid[k] * cb->centroid[k];
	}
	double dist = 1 - d * kept;
	CHECK(fabs(dist - cb->mse_d) <= 1e-4 * cb->mse_d, "d=%d b=%d: D %.6g, Simpson %.6g", d,
	      bits, cb->mse_d, dist);
	double lower = pow(4, -bits), upper = sqrt(3) * M_PI / 2 * pow(4, -bits);
	CHECK(cb->mse_d >= lower && cb->mse_d <= upper, "d=%d b=%d: D %.4g outside [%.4g, %.4g]",
	      d, bits, cb->mse_d, lower, upper);
	if (bits == 1) { /* E|x| = Gamma(d/2) / (sqrt(pi) Gamma((d+1)/2)) */
		double e = exp(lgamma(d / 2.0) - lgamma((d + 1) / 2.0)) / sqrt(M_PI);
		CHECK(fabs(cb->centroid[1] - e) <= 1e-6 * e, "d=%d: 1-bit centroid %.9g, E|x| %.9g",
		      d, cb->centroid[1], e);
	}
	printf("codebook d=%3d b=%d: %6d iterations, D_mse %.5f, c[top] %.5f sigma\n", d, bits,
	       cb->iterations, cb->mse_d, cb->centroid[n - 1] / sigma);
}

/* ---- the byte layout of tq.h ---- */

/* A vector whose rotated unit form is made of centroids (renormalised), so
 * its codes are known away from any boundary; the bytes must be the bit
 * stream tq.h describes. */
static void test_layout(int d, int bits_hi, int n_hi, int bits_lo)
{
	struct tq_format f;
	fmt_init(&f, d, TQ_MSE, bits_hi, n_hi, bits_lo);
	struct t_rng r = { 99 };
	unsigned code[TQ_MAX_DIM];
	float y[TQ_MAX_DIM], x[TQ_MAX_DIM];
	uint8_t got[512], want[512];
	for (int i = 0; i < d; i++) {
		const struct tq_codebook *cb = i < n_hi ? f.cb_hi : f.cb_lo;
		code[i] = (unsigned)(t_rand_u64(&r) % (uint64_t)cb->n_levels);
		y[i] = cb->centroid[code[i]];
	}
	/* the quantizer sees the unit vector y / |y|: its nearest centroids */
	double ny = sqrt(dot(y, y, d)), uc = 0.0, cc = 0.0;
	for (int i = 0; i < d; i++) {
		const struct tq_codebook *cb = i < n_hi ? f.cb_hi : f.cb_lo;
		double u = y[i] / ny, best = INFINITY;
		for (int k = 0; k < cb->n_levels; k++)
			if (fabs(u - cb->centroid[k]) < best) {
				best = fabs(u - cb->centroid[k]);
				code[i] = (unsigned)k;
			}
		uc += u * cb->centroid[code[i]];
		cc += (double)cb->centroid[code[i]] * cb->centroid[code[i]];
		y[i] = (float)(u * 2.5); /* norm 2.5 */
	}
	tq_unrotate(&f, y, x);
	tq_quantize(&f, x, got);
	/* the stored scale: the least-squares 2.5 <u, c> / <c, c> (tq.h), in half */
	double scale = 2.5 * uc / cc, got_scale = fm_fp16_to_fp32((uint16_t)(got[0] | got[1] << 8));
	CHECK(fabs(got_scale - scale) <= 1e-3 * scale, "d=%d %d@%d+%d: scale %.6f, want %.6f", d,
	      n_hi, bits_hi, bits_lo, got_scale, scale);
	memset(want, 0, sizeof(want));
	want[0] = got[0], want[1] = got[1];
	size_t bit = 16;
	for (int i = 0; i < d; i++) {
		int b = i < n_hi ? bits_hi : bits_lo;
		for (int k = 0; k < b; k++, bit++)
			want[bit / 8] |= (uint8_t)(((code[i] >> k) & 1) << (bit % 8));
	}
	CHECK(bit / 8 == f.bytes, "d=%d %d@%d+%d: %zu bytes, the stream has %zu", d, n_hi,
	      bits_hi, bits_lo, f.bytes, bit / 8);
	CHECK(memcmp(got, want, f.bytes) == 0, "d=%d %d@%d+%d: bytes differ from the layout", d,
	      n_hi, bits_hi, bits_lo);
}

/* ---- distortion against the paper ---- */

/* D_mse of f on N_MSE random vectors; for a split format the expected value
 * is the channel-weighted mean of the two codebooks' (coordinates after the
 * rotation are exchangeable). label: "b" for uniform formats. */
static void test_mse_distortion(const struct tq_format *f, const char *label)
{
	int d = f->d, bits = f->bits_lo, uniform = f->n_hi == 0;
	struct t_rng r = { 1000 + (uint64_t)d * 10 + (uint64_t)bits + 7 * (uint64_t)f->n_hi };
	float x[TQ_MAX_DIM], xh[TQ_MAX_DIM];
	uint8_t buf[512];
	double sum = 0.0, sum_f32 = 0.0;
	for (int k = 0; k < N_MSE; k++) {
		rand_unit(&r, x, d);
		for (int i = 0; i < d; i++)
			x[i] *= 7.3f; /* a norm that f16 rounds */
		tq_quantize(f, x, buf);
		tq_dequantize(f, buf, xh);
		double e = 0.0, e32 = 0.0, scale = 7.3 / (double)half_at(buf);
		for (int i = 0; i < d; i++) {
			e += ((double)xh[i] - x[i]) * (xh[i] - x[i]);
			e32 += (xh[i] * scale - x[i]) * (xh[i] * scale - x[i]);
		}
		sum += e / (7.3 * 7.3);
		sum_f32 += e32 / (7.3 * 7.3);
	}
	double dm = sum / N_MSE, dm32 = sum_f32 / N_MSE;
	double want = (f->n_hi * f->cb_hi->mse_d + (d - f->n_hi) * f->cb_lo->mse_d) / d;
	CHECK(fabs(dm - want) <= 0.05 * want, "d=%d %s: D_mse %.5f, codebooks say %.5f", d, label,
	      dm, want);
	char paper[16] = "-", upper[16] = "-", lower[16] = "-";
	if (uniform) {
		double lo = pow(4, -bits), up = sqrt(3) * M_PI / 2 * pow(4, -bits);
		CHECK(dm <= up && dm >= 0.95 * lo, "d=%d b=%d: D_mse %.5f outside [%.4f, %.4f]", d,
		      bits, dm, lo, up);
		snprintf(paper, sizeof(paper), "%.3f", paper_mse[bits]);
		snprintf(upper, sizeof(upper), "%.4f", up);
		snprintf(lower, sizeof(lower), "%.4f", lo);
	}
	printf("| mse | %3d | %-13s | %.4f | %.4f | %s | %s | %s | %.4f | %+.1e |\n", d, label, dm,
	       want, paper, upper, lower, dm32, dm - dm32);
}

/* est / true inner products of N_PROD pairs: unit x, y uniform (variance) and
 * y = 0.8 x + 0.6 u, u a unit vector orthogonal to x (bias). */
static void test_inner_product(int d, enum tq_variant v, int bits)
{
	struct tq_format f;
	fmt_init(&f, d, v, bits, 0, bits);
	struct t_rng r = { 5000 + (uint64_t)d * 10 + (uint64_t)bits + 100 * (uint64_t)v };
	float x[TQ_MAX_DIM], y[TQ_MAX_DIM], u[TQ_MAX_DIM], qr[2 * TQ_MAX_DIM], s;
	uint8_t buf[512];
	double se2 = 0.0, b1 = 0.0, b2 = 0.0;
	for (int k = 0; k < N_PROD; k++) {
		rand_unit(&r, x, d);
		rand_unit(&r, y, d);
		tq_quantize(&f, x, buf);
		tq_rotate_query(&f, y, qr);
		tq_score_ref(&f, qr, buf, 1, f.bytes, &s);
		se2 += (s - dot(x, y, d)) * (s - dot(x, y, d));
		/* correlated query: <x, y> = 0.8 */
		double xu = dot(x, y, d);
		for (int i = 0; i < d; i++)
			u[i] = (float)(y[i] - xu * x[i]);
		double nu = sqrt(dot(u, u, d));
		for (int i = 0; i < d; i++)
			y[i] = (float)(0.8 * x[i] + 0.6 * u[i] / nu);
		tq_rotate_query(&f, y, qr);
		tq_score_ref(&f, qr, buf, 1, f.bytes, &s);
		double e = s - dot(x, y, d);
		b1 += e;
		b2 += e * e;
	}
	double dp = d * se2 / N_PROD, bias = b1 / N_PROD;
	double sem = sqrt((b2 / N_PROD - bias * bias) / N_PROD);
	double bound = sqrt(3) * M_PI * M_PI * pow(4, -bits);
	/* orthogonal S: |S^T sign(S r) a - r|^2 = (pi/2 - 1) |r|^2, E|r|^2 = D_mse(b-1);
	 * mse: E<y, x^ - x>^2 = |x^ - x|^2 / d */
	double expect = v == TQ_PROD ? (M_PI / 2 - 1) * tq_codebook_get(d, bits - 1)->mse_d
				     : f.cb_lo->mse_d;
	CHECK(fabs(dp - expect) <= 0.1 * expect, "d=%d %s b=%d: d*D %.4f, expected %.4f", d,
	      v == TQ_PROD ? "prod" : "mse", bits, dp, expect);
	if (v == TQ_PROD) {
		CHECK(dp <= bound && dp <= paper_prod[bits],
		      "d=%d b=%d: d*D_prod %.4f > bound %.4f or the paper's %.3f", d, bits, dp,
		      bound, paper_prod[bits]);
		CHECK(fabs(bias) <= 4 * sem, "d=%d b=%d: prod bias %.5f, standard error %.5f", d,
		      bits, bias, sem);
	} else if (bits <= 2) {
		CHECK(bias < -4 * sem, "d=%d b=%d: mse bias %.5f not detected (se %.5f)", d, bits,
		      bias, sem);
	}
	char paper[16] = "-", upper[16] = "-";
	if (v == TQ_PROD) {
		snprintf(paper, sizeof(paper), "%.3f", paper_prod[bits]);
		snprintf(upper, sizeof(upper), "%.3f", bound);
	}
	printf("| %s | %3d | %d | %.4f | %.4f | %s | %s | %+.5f | %.5f | %+.1f |\n",
	       v == TQ_PROD ? "prod" : "mse ", d, bits, dp, expect, paper, upper, bias / 0.8,
	       sem / 0.8, bias / sem);
}

/* ---- compressed paths vs dequantize-then-dot, SIMD vs reference ---- */

struct case_fmt {
	int d, v, bh, nh, bl;
};

static const struct case_fmt cases[] = {
	{ 64, TQ_MSE, 1, 0, 1 },    { 64, TQ_MSE, 4, 16, 3 },   { 128, TQ_MSE, 2, 0, 2 },
	{ 128, TQ_MSE, 3, 0, 3 },   { 128, TQ_MSE, 4, 0, 4 },   { 128, TQ_MSE, 4, 48, 3 },
	{ 128, TQ_MSE, 3, 32, 2 },  { 128, TQ_MSE, 4, 128, 1 }, { 256, TQ_MSE, 4, 112, 3 },
	{ 256, TQ_MSE, 2, 16, 1 },  { 64, TQ_PROD, 1, 0, 1 },   { 128, TQ_PROD, 1, 0, 1 },
	{ 128, TQ_PROD, 3, 0, 3 },  { 128, TQ_PROD, 4, 32, 3 }, { 128, TQ_PROD, 5, 0, 5 },
	{ 256, TQ_PROD, 4, 96, 3 }, { 256, TQ_PROD, 2, 64, 1 },
};
#define N_CASES (sizeof(cases) / sizeof(cases[0]))
#define N_VEC 37

/* n vectors of random norms, stride bytes + 3, one zero vector */
static void make_vectors(const struct tq_format *f, struct t_rng *r, uint8_t *buf, size_t stride,
			 float (*deq)[TQ_MAX_DIM])
{
	float x[TQ_MAX_DIM];
	memset(buf, 0xa5, stride * N_VEC);
	for (int t = 0; t < N_VEC; t++) {
		float scale = t == 5 ? 0.0f : 0.1f + 10.0f * t_rand_uniform(r);
		for (int i = 0; i < f->d; i++)
			x[i] = t_rand_normal(r) * scale + (i % 7 == 0 ? scale : 0.0f);
		tq_quantize(f, x, buf + (size_t)t * stride);
		tq_dequantize(f, buf + (size_t)t * stride, deq[t]);
	}
}

static void test_compressed(const struct case_fmt *c, struct t_rng *r)
{
	struct tq_format f;
	fmt_init(&f, c->d, (enum tq_variant)c->v, c->bh, c->nh, c->bl);
	int d = f.d;
	size_t stride = f.bytes + 3, nq = tq_query_floats(&f);
	static uint8_t buf[N_VEC * 512];
	static float deq[N_VEC][TQ_MAX_DIM];
	float q[TQ_MAX_DIM], qr[2 * TQ_MAX_DIM], w[N_VEC], s_ref[N_VEC + 1], s[N_VEC + 1];
	float acc_ref[2 * TQ_MAX_DIM], acc[2 * TQ_MAX_DIM + 1], out[TQ_MAX_DIM];
	make_vectors(&f, r, buf, stride, deq);
	for (int i = 0; i < d; i++)
		q[i] = t_rand_normal(r);
	tq_rotate_query(&f, q, qr);
	tq_score_ref(&f, qr, buf, N_VEC, stride, s_ref);
	double qn = sqrt(dot(q, q, d)), qjl_abs = 0.0;
	for (size_t i = (size_t)d; i < nq; i++)
		qjl_abs += fabs(qr[i]);
	const char *name = c->v == TQ_PROD ? "prod" : "mse";
	for (int t = 0; t < N_VEC; t++) {
		double want = dot(q, deq[t], d), dn = sqrt(dot(deq[t], deq[t], d));
		double tol = 2e-5 * (qn * dn + qjl_abs * half_at(buf + t * stride));
		CHECK(fabs(s_ref[t] - want) <= tol + 1e-30,
		      "d=%d %s %d@%d+%d t=%d: score %.7g, dequantize-then-dot %.7g", d, name, c->nh,
		      c->bh, c->bl, t, s_ref[t], want);
	}
	/* accumulate in two calls, then rotate back once */
	double wsum = 0.0;
	for (int t = 0; t < N_VEC; t++)
		w[t] = t_rand_uniform(r);
	memset(acc_ref, 0, sizeof(acc_ref));
	tq_accumulate_ref(&f, w, buf, 20, stride, acc_ref);
	tq_accumulate_ref(&f, w + 20, buf + 20 * stride, N_VEC - 20, stride, acc_ref);
	tq_accumulate_finish(&f, acc_ref, out);
	for (int t = 0; t < N_VEC; t++)
		wsum += w[t] * sqrt(dot(deq[t], deq[t], d));
	double worst = 0.0;
	for (int i = 0; i < d; i++) {
		double want = 0.0;
		for (int t = 0; t < N_VEC; t++)
			want += (double)w[t] * deq[t][i];
		worst = fmax(worst, fabs(out[i] - want));
	}
	CHECK(worst <= 2e-5 * wsum, "d=%d %s %d@%d+%d: accumulate off by %.3g (scale %.3g)", d,
	      name, c->nh, c->bh, c->bl, worst, wsum);
	/* decode: rows whose dot with q_rot is the score, whose sum is the
	 * accumulator; every ISA the same bits, nothing written past n rows */
	static float rows_ref[(N_VEC + 1) * 2 * TQ_MAX_DIM], rows[(N_VEC + 1) * 2 * TQ_MAX_DIM];
	tq_decode_ref(&f, buf, N_VEC, stride, rows_ref);
	double dw = 0.0;
	for (int t = 0; t < N_VEC; t++) {
		double sc = 0.0;
		for (size_t i = 0; i < nq; i++)
			sc += (double)qr[i] * rows_ref[t * nq + i];
		CHECK(fabs(sc - s_ref[t]) <= 2e-6 * (fabs(s_ref[t]) + qn * 10.0 + qjl_abs * 10.0),
		      "d=%d %s %d@%d+%d t=%d: decoded row . q_rot %.7g, score %.7g", d, name, c->nh,
		      c->bh, c->bl, t, sc, s_ref[t]);
	}
	for (size_t i = 0; i < nq; i++) {
		double a = 0.0;
		for (int t = 0; t < N_VEC; t++)
			a += (double)w[t] * rows_ref[t * nq + i];
		dw = fmax(dw, fabs(a - acc_ref[i]));
	}
	CHECK(dw <= 2e-6 * wsum * 10, "d=%d %s %d@%d+%d: decoded rows' sum off by %.3g", d, name,
	      c->nh, c->bh, c->bl, dw);
	for (int isa = 1; isa < KERNEL_ISA_COUNT; isa++) {
		const struct kernels *k = kernels_get((enum kernel_isa)isa);
		if (!k)
			continue;
		for (int n = 1; n <= N_VEC; n += 9) {
			for (size_t i = 0; i < (size_t)(n + 1) * nq; i++)
				rows[i] = NAN;
			k->tq_decode(&f, buf, n, stride, rows);
			CHECK(!memcmp(rows, rows_ref, (size_t)n * nq * sizeof(float)),
			      "%s d=%d %s %d@%d+%d n=%d: decode differs from the reference", k->name, d,
			      name, c->nh, c->bh, c->bl, n);
			CHECK(isnan(rows[(size_t)n * nq]), "%s: decode wrote past n=%d", k->name, n);
		}
	}
	/* every ISA the CPU has, through the kernel table */
	for (int isa = 1; isa < KERNEL_ISA_COUNT; isa++) {
		const struct kernels *k = kernels_get((enum kernel_isa)isa);
		if (!k)
			continue;
		for (int n = 1; n <= N_VEC; n += 9) {
			for (int t = 0; t <= N_VEC; t++)
				s[t] = NAN;
			k->tq_score(&f, qr, buf, n, stride, s);
			for (int t = 0; t < n; t++)
				CHECK(fabs(s[t] - s_ref[t]) <= 2e-6 * (fabs(s_ref[t]) + qn * 10.0 +
									qjl_abs * 10.0),
				      "%s d=%d %s %d@%d+%d n=%d t=%d: %.7g, ref %.7g", k->name, d, name,
				      c->nh, c->bh, c->bl, n, t, s[t], s_ref[t]);
			CHECK(isnan(s[n]), "%s: wrote past n=%d", k->name, n);
		}
		memset(acc, 0, sizeof(acc));
		k->tq_accumulate(&f, w, buf, 20, stride, acc);
		k->tq_accumulate(&f, w + 20, buf + 20 * stride, N_VEC - 20, stride, acc);
		double aw = 0.0;
		for (size_t i = 0; i < nq; i++)
			aw = fmax(aw, fabs(acc[i] - acc_ref[i]));
		CHECK(aw <= 2e-6 * wsum * 10, "%s d=%d %s %d@%d+%d: accumulate off by %.3g", k->name,
		      d, name, c->nh, c->bh, c->bl, aw);
		CHECK(acc[nq] == 0.0f, "%s: accumulate wrote past %zu", k->name, nq);
	}
}

static void test_isa_table(void)
{
#if defined(__x86_64__)
	static const tq_score_fn score[KERNEL_ISA_COUNT] = { tq_score_ref, tq_score_avx2,
							      tq_score_avx512 };
	static const tq_accumulate_fn accum[KERNEL_ISA_COUNT] = {
		tq_accumulate_ref, tq_accumulate_avx2, tq_accumulate_avx512
	};
	static const tq_decode_fn decode[KERNEL_ISA_COUNT] = { tq_decode_ref, tq_decode_avx2,
								tq_decode_avx512 };
	for (int isa = 0; isa < KERNEL_ISA_COUNT; isa++) {
		const struct kernels *k = kernels_get((enum kernel_isa)isa);
		if (!k) {
			printf("isa %d: not on this CPU, skipped\n", isa);
			continue;
		}
		CHECK(k->tq_score == score[isa] && k->tq_accumulate == accum[isa] &&
			      k->tq_decode == decode[isa],
		      "%s: the kernel table does not hold tq_*_%s", k->name, k->name);
		printf("isa %s: tested\n", k->name);
	}
#endif
}

/* ---- edge cases ---- */

static void test_edges(void)
{
	struct tq_format f;
	CHECK(tq_format_init(&f, 96, TQ_MSE, 3, 0, 3) == -EINVAL, "d=96 accepted");
	CHECK(tq_format_init(&f, 128, TQ_MSE, 5, 0, 3) == -EINVAL, "mse 5 bits accepted");
	CHECK(tq_format_init(&f, 128, TQ_MSE, 0, 0, 3) == -EINVAL, "0 bits accepted");
	CHECK(tq_format_init(&f, 128, TQ_MSE, 4, 40, 3) == -EINVAL, "n_hi 40 accepted");
	CHECK(tq_format_init(&f, 128, TQ_MSE, 4, 144, 3) == -EINVAL, "n_hi > d accepted");
	CHECK(tq_format_init(&f, 128, TQ_PROD, 6, 0, 3) == -EINVAL, "prod 6 bits accepted");
	CHECK(tq_format_for_rate(&f, 128, TQ_MSE, 1.0) == -EINVAL, "mse 1.0 all-in accepted");
	CHECK(tq_format_for_rate(&f, 128, TQ_PROD, 1.0) == -EINVAL, "prod 1.0 all-in accepted");
	fmt_init(&f, 128, TQ_PROD, 3, 0, 3);
	float x[TQ_MAX_DIM], y[TQ_MAX_DIM];
	uint8_t buf[512];
	for (int k = 0; k < 3; k++) {
		for (int i = 0; i < 128; i++)
			x[i] = k == 0 ? 0.0f : (i == 3 ? (k == 1 ? NAN : INFINITY) : 1.0f);
		tq_quantize(&f, x, buf);
		tq_dequantize(&f, buf, y);
		double e = dot(y, y, 128);
		CHECK(e == 0.0, "case %d: zero/NaN/inf vector not stored as zero (|y|^2 %.3g)", k, e);
	}
	for (int i = 0; i < 128; i++)
		x[i] = i == 0 ? 1e6f : 0.0f;
	tq_quantize(&f, x, buf);
	CHECK(half_at(buf) == 65504.0f, "norm 1e6 not clamped to 65504");
}

/* ---- bytes ---- */

static void compression_row(const char *name, const struct tq_format *f, double need)
{
	double per_value = 8.0 * f->bytes / f->d, ratio = 2.0 * f->d / f->bytes;
	printf("| %-14s | %3d | %-4s | %3d@%d + %3d@%d | %3zu | %.3f | %.2fx |\n", name, f->d,
	       f->variant == TQ_PROD ? "prod" : "mse", f->n_hi, f->bits_hi, f->d - f->n_hi,
	       f->bits_lo, f->bytes, per_value, ratio);
	CHECK(ratio >= need, "%s d=%d: %.2fx vs F16, need %.1fx", name, f->d, ratio, need);
}

static void test_compression(void)
{
	printf("\n| format | d | variant | channels | bytes/vector | bits/value | vs F16 |\n");
	printf("|---|---|---|---|---|---|---|\n");
	for (int a = 1; a < 3; a++) {
		int d = dims[a];
		struct tq_format f;
		for (int b = 4; b >= 1; b--) {
			char name[32];
			snprintf(name, sizeof(name), "tq%d codes", b);
			fmt_init(&f, d, TQ_MSE, b, 0, b);
			compression_row(name, &f, 0);
		}
		fmt_init(&f, d, TQ_MSE, 4, d / 2, 3);
		compression_row("3.5 half/half", &f, 0);
		fmt_init(&f, d, TQ_MSE, 3, d / 2, 2);
		compression_row("2.5 half/half", &f, 6.0);
		static const double rates[] = { 4.0, 3.5, 3.0, 2.5, 2.0 };
		for (int v = 0; v < 2; v++)
			for (int i = 0; i < 5; i++) {
				char name[32];
				snprintf(name, sizeof(name), "tq%g all-in", rates[i]);
				int rc = tq_format_for_rate(&f, d, (enum tq_variant)v, rates[i]);
				CHECK(rc == 0, "for_rate(%d, %d, %g) = %d", d, v, rates[i], rc);
				if (rc)
					continue;
				CHECK(8.0 * f.bytes <= rates[i] * d, "%s d=%d: %zu bytes", name, d,
				      f.bytes);
				compression_row(name, &f,
						rates[i] == 3.5 ? 4.5 : rates[i] == 2.5 ? 6.0 : 0);
			}
	}
}

/* ---- timings, only with TQ_BENCH=1 (docs/TURBOQUANT.md; not a check) ---- */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void bench_format(const struct tq_format *f, const char *name)
{
	enum { N = 4096, REPS = 50 };
	static uint8_t buf[N * 512];
	static float s[N], w[N];
	static float x[64][TQ_MAX_DIM];
	float qr[2 * TQ_MAX_DIM], acc[2 * TQ_MAX_DIM];
	struct t_rng r = { 7 };
	for (int t = 0; t < 64; t++)
		for (int i = 0; i < f->d; i++)
			x[t][i] = t_rand_normal(&r);
	double t0 = now_s();
	for (int t = 0; t < N; t++) {
		tq_quantize(f, x[t % 64], buf + (size_t)t * f->bytes);
		w[t] = 1.0f / N;
	}
	double quant_us = (now_s() - t0) / N * 1e6;
	tq_rotate_query(f, x[0], qr);
	printf("| %-12s | %3d | %3zu | %.2f |", name, f->d, f->bytes, quant_us);
	for (int isa = 0; isa < KERNEL_ISA_COUNT; isa++) {
		const struct kernels *k = kernels_get((enum kernel_isa)isa);
		if (!k) {
			printf(" - | - |");
			continue;
		}
		t0 = now_s();
		for (int rep = 0; rep < REPS; rep++)
			k->tq_score(f, qr, buf, N, f->bytes, s);
		double score_ns = (now_s() - t0) / REPS / N * 1e9;
		memset(acc, 0, sizeof(acc));
		t0 = now_s();
		for (int rep = 0; rep < REPS; rep++)
			k->tq_accumulate(f, w, buf, N, f->bytes, acc);
		printf(" %.1f | %.1f |", score_ns, (now_s() - t0) / REPS / N * 1e9);
	}
	printf("\n");
}

static void bench(void)
{
	printf("\n| format | d | bytes | quantize us | ref score ns | ref accumulate ns | avx2 "
	       "score ns | avx2 accumulate ns | avx512 score ns | avx512 accumulate ns |\n");
	printf("|---|---|---|---|---|---|---|---|---|---|\n");
	for (int a = 1; a < 3; a++)
		for (int v = 0; v < 2; v++) {
			static const double rates[] = { 4.0, 3.5, 2.5 };
			for (int i = 0; i < 3; i++) {
				struct tq_format f;
				char name[32];
				if (tq_format_for_rate(&f, dims[a], (enum tq_variant)v, rates[i]))
					continue;
				snprintf(name, sizeof(name), "tq%g %s", rates[i], v ? "prod" : "mse");
				bench_format(&f, name);
			}
		}
}

int main(void)
{
	if (getenv("TQ_BENCH")) {
		bench();
		return 0;
	}
	test_rotation();
	for (size_t a = 0; a < sizeof(dims) / sizeof(dims[0]); a++)
		for (int b = 0; b <= 4; b++)
			if (b)
				test_codebook(dims[a], b);
	test_layout(64, 3, 16, 1);
	test_layout(128, 4, 48, 3);
	test_layout(256, 2, 32, 1);
	test_layout(128, 3, 0, 3);

	printf("\n| variant | d | bits | D_mse measured | codebook D_mse | paper | upper bound | "
	       "lower bound | with f32 norm | f16 norm cost |\n");
	printf("|---|---|---|---|---|---|---|---|---|---|\n");
	for (int a = 1; a < 3; a++) {
		struct tq_format f;
		for (int b = 1; b <= 4; b++) {
			char label[16];
			snprintf(label, sizeof(label), "%d", b);
			fmt_init(&f, dims[a], TQ_MSE, b, 0, b);
			test_mse_distortion(&f, label);
		}
		static const double rates[] = { 3.5, 3.0, 2.5 };
		for (int i = 0; i < 3; i++) {
			char label[32];
			CHECK(tq_format_for_rate(&f, dims[a], TQ_MSE, rates[i]) == 0, "for_rate %g",
			      rates[i]);
			snprintf(label, sizeof(label), "tq%g: %d@%d", rates[i], f.n_hi, f.bits_hi);
			test_mse_distortion(&f, label);
		}
	}

	printf("\n| variant | d | b | d*D_prod measured | expected | paper (i.i.d. S) | "
	       "upper bound | bias (rel.) | std. error (rel.) | bias / s.e. |\n");
	printf("|---|---|---|---|---|---|---|---|---|---|\n");
	for (int a = 1; a < 3; a++)
		for (int v = 0; v < 2; v++)
			for (int b = 1; b <= 4; b++)
				test_inner_product(dims[a], (enum tq_variant)v, b);

	struct t_rng r = { 4242 };
	for (size_t i = 0; i < N_CASES; i++)
		test_compressed(&cases[i], &r);
	test_isa_table();
	test_edges();
	test_compression();
	return t_done("test_tq");
}
