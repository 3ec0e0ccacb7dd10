/* tq.c: TurboQuant vectors, the reference (see tq.h for the algorithms and the
 * byte layout). Owns: the tables (rotation signs, Lloyd-Max codebooks, the
 * QJL matrix S), formats, quantize / dequantize, the query rotation, and the
 * plain-C score and accumulate loops. Not here: the SIMD loops (tq_avx2.c,
 * tq_avx512.c), the KV cache that stores the vectors (src/kv.c).
 *
 * How the codebooks are made. One coordinate of a uniformly random unit
 * vector in d dimensions has density f_d(x) = C_d (1 - x^2)^((d-3)/2) on
 * [-1, 1] (paper Lemma 1); after the random rotation every stored vector's
 * coordinates follow it. The b-bit Lloyd-Max quantizer for f_d alternates
 *   boundaries t_k = (c_k + c_{k+1}) / 2,
 *   centroids  c_k = int_{t_{k-1}}^{t_k} x f / int_{t_{k-1}}^{t_k} f
 * until no centroid moves (f_d is log-concave, so the fixed point is unique
 * and is the optimum; Fleischer 1964). The integrals come from a grid of
 * TQ_GRID cells over [-L, L], L = min(1, 14 / sqrt(d)) (the mass beyond 14
 * standard deviations is below 1e-40): per cell, int f and int x f by 5-point
 * Gauss-Legendre on f itself, summed into running moments m0, m1 at the
 * nodes; an integral that ends inside a cell adds the part of the cell up to
 * the end by 3-point Gauss-Legendre on the cubic Hermite interpolant of f
 * (f and f' at the cell's nodes; error ~h^4/384 relative, h = 0.027 sigma at
 * d = 256). So an iteration costs O(2^b) arithmetic and no exp/log, and the
 * loop runs to a step below 1e-12 sigma. Starting point: centroids evenly
 * spaced over +-2 sigma (symmetric, so the result is symmetric).
 * Expected distortion of a unit vector (the paper's D_mse):
 *   D = d * E[(y - c(y))^2] = 1 - d * sum_k P_k c_k^2
 * since E[y^2] = 1/d exactly and each c_k is its cell's mean.
 *
 * The random signs of P and the entries of S come from splitmix64 seeded by
 * (d, use): the same on every run and machine, different per d and between P
 * and S. S is dense (d^2 multiply-adds per stored key and per query): random
 * orthogonal rows of a common length instead of the paper's i.i.d. Gaussian
 * rows, see qjl_build for why.
 */
#include "tq.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "../util.h"

#define TQ_N_DIMS 3
#define TQ_GRID 1024
#define TQ_F16_MAX 65504.0

enum tq_use { TQ_USE_ROTATION = 1, TQ_USE_QJL = 2 };

static const int tq_dims[TQ_N_DIMS] = { 64, 128, 256 };

/* Written once inside pthread_once (which publishes it to every thread), then
 * only read: the same pattern as the kernel table (dispatch.c). */
static struct {
	struct tq_codebook cb[TQ_N_DIMS][TQ_MAX_CODE_BITS + 1];
	float signs[TQ_N_DIMS][TQ_MAX_DIM];
	float qjl64[64 * 64], qjl128[128 * 128], qjl256[256 * 256]; /* [d][d] */
} g_tq;
static pthread_once_t g_tq_once = PTHREAD_ONCE_INIT;

static int dim_index(int d)
{
	for (int i = 0; i < TQ_N_DIMS; i++)
		if (tq_dims[i] == d)
			return i;
	return -1;
}

/* ---- deterministic random numbers ---- */

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t tq_seed(int d, enum tq_use use)
{
	return 0x5475726251756e74ull ^ ((uint64_t)d << 8) ^ (uint64_t)use; /* "TurbQunt" */
}

/* N(0, 1) by Box-Muller in double. */
static double normal(uint64_t *s)
{
	double u1 = ((double)(splitmix64(s) >> 11) + 0.5) * 0x1.0p-53;
	double u2 = (double)(splitmix64(s) >> 11) * 0x1.0p-53;
	return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

/* ---- the coordinate density and its Lloyd-Max codebooks ---- */

struct tq_grid {
	double lo, h, k;                 /* grid [lo, -lo], cell width, (d - 3) / 2 */
	double f[TQ_GRID + 1];           /* f(x_j), unnormalised: f(0) = 1 */
	double fp[TQ_GRID + 1];          /* f'(x_j) */
	double m0[TQ_GRID + 1];          /* int_lo^x_j f */
	double m1[TQ_GRID + 1];          /* int_lo^x_j x f */
};

static double density(double x, double k)
{
	return x * x >= 1.0 ? 0.0 : exp(k * log1p(-x * x));
}

static void grid_build(struct tq_grid *g, int d)
{
	static const double gx[5] = { 0.0, -0.5384693101056831, 0.5384693101056831,
				      -0.9061798459386640, 0.9061798459386640 };
	static const double gw[5] = { 0.5688888888888889, 0.4786286704993665,
				      0.4786286704993665, 0.2369268850561891,
				      0.2369268850561891 };
	double half = fmin(1.0, 14.0 / sqrt(d));
	g->lo = -half;
	g->h = 2.0 * half / TQ_GRID;
	g->k = (d - 3) / 2.0;
	g->m0[0] = g->m1[0] = 0.0;
	for (int j = 0; j <= TQ_GRID; j++) {
		double x = g->lo + j * g->h;
		g->f[j] = density(x, g->k);
		g->fp[j] = x * x >= 1.0 ? 0.0 : g->f[j] * (-2.0 * g->k * x / (1.0 - x * x));
		if (j == TQ_GRID)
			break;
		double s0 = 0.0, s1 = 0.0, mid = x + g->h / 2;
		for (int i = 0; i < 5; i++) {
			double xi = mid + gx[i] * g->h / 2, fi = density(xi, g->k);
			s0 += gw[i] * fi;
			s1 += gw[i] * xi * fi;
		}
		g->m0[j + 1] = g->m0[j] + s0 * g->h / 2;
		g->m1[j + 1] = g->m1[j] + s1 * g->h / 2;
	}
}

/* int_lo^t f and int_lo^t x f: the running moments at the node below t plus
 * the rest of the cell by Gauss-Legendre on the Hermite cubic of f. */
static void grid_moments(const struct tq_grid *g, double t, double *m0, double *m1)
{
	static const double gx[3] = { 0.0, -0.7745966692414834, 0.7745966692414834 };
	static const double gw[3] = { 8.0 / 9.0, 5.0 / 9.0, 5.0 / 9.0 };
	if (t <= g->lo) {
		*m0 = *m1 = 0.0;
		return;
	}
	int j = (int)((t - g->lo) / g->h);
	if (j >= TQ_GRID) {
		*m0 = g->m0[TQ_GRID];
		*m1 = g->m1[TQ_GRID];
		return;
	}
	double xj = g->lo + j * g->h, u = t - xj, s0 = 0.0, s1 = 0.0;
	for (int i = 0; i < 3; i++) {
		double x = xj + u * (1.0 + gx[i]) / 2, s = (x - xj) / g->h;
		double s2 = s * s, s3 = s2 * s;
		double p = (2 * s3 - 3 * s2 + 1) * g->f[j] + (s3 - 2 * s2 + s) * g->h * g->fp[j] +
			   (-2 * s3 + 3 * s2) * g->f[j + 1] + (s3 - s2) * g->h * g->fp[j + 1];
		s0 += gw[i] * p;
		s1 += gw[i] * x * p;
	}
	*m0 = g->m0[j] + s0 * u / 2;
	*m1 = g->m1[j] + s1 * u / 2;
}

/* One Lloyd step: new centroids from c (K levels); returns the largest move.
 * P[k] gets each cell's probability. */
static double lloyd_step(const struct tq_grid *g, int n_levels, double *c, double *p)
{
	double m0[17], m1[17], step = 0.0, total = g->m0[TQ_GRID];
	m0[0] = m1[0] = 0.0;
	m0[n_levels] = total;
	m1[n_levels] = g->m1[TQ_GRID];
	for (int k = 1; k < n_levels; k++)
		grid_moments(g, (c[k - 1] + c[k]) / 2, &m0[k], &m1[k]);
	for (int k = 0; k < n_levels; k++) {
		double mass = m0[k + 1] - m0[k];
		double next = mass > 0.0 ? (m1[k + 1] - m1[k]) / mass : c[k];
		step = fmax(step, fabs(next - c[k]));
		c[k] = next;
		p[k] = mass / total;
	}
	return step;
}

static void codebook_build(const struct tq_grid *g, int d, int bits, struct tq_codebook *cb)
{
	int n = 1 << bits;
	double c[16], p[16], sigma = 1.0 / sqrt(d), step = 0.0;
	memset(cb, 0, sizeof(*cb));
	cb->d = d;
	cb->bits = bits;
	cb->n_levels = n;
	for (int k = 0; k < n; k++)
		c[k] = sigma * 2.0 * (2 * k + 1 - n) / n;
	int it = 0;
	if (n > 1) {
		do
			step = lloyd_step(g, n, c, p);
		while (++it < 200000 && step > 1e-12 * sigma);
	} else {
		p[0] = 1.0;
	}
	double kept = 0.0;
	for (int k = 0; k < n; k++) {
		kept += p[k] * c[k] * c[k];
		cb->centroid[k] = (float)c[k];
		if (k + 1 < n)
			cb->boundary[k] = (float)((c[k] + c[k + 1]) / 2);
	}
	cb->mse_d = 1.0 - d * kept;
	cb->iterations = it;
	cb->last_step = step;
}

/* S = rho U: U a random orthogonal matrix (Gram-Schmidt, twice for
 * rounding, on N(0, 1) rows: Haar-distributed, so each row is a uniformly
 * random direction as a normalised Gaussian row is), rho = sqrt(2/pi) / E|u_1|
 * (u uniform on the sphere) so that E[sign(<s, r>) s] = sqrt(2/pi) r / |r|
 * as for the paper's Gaussian row: the estimator and its constant are the
 * paper's and it stays unbiased. Measured against the paper's i.i.d. S
 * (docs/TURBOQUANT.md): the same bias (none), 2.75x less variance
 * ((pi/2 - 1) against pi/2 times |r|^2 / d), since the rows share no direction. */
static void qjl_build(float *S, int d)
{
	double row[TQ_MAX_DIM];
	uint64_t s = tq_seed(d, TQ_USE_QJL);
	double rho = sqrt(2.0 / M_PI) / (exp(lgamma(d / 2.0) - lgamma((d + 1) / 2.0)) / sqrt(M_PI));
	for (int i = 0; i < d; i++) {
		for (int j = 0; j < d; j++)
			row[j] = normal(&s);
		for (int pass = 0; pass < 2; pass++)
			for (int k = 0; k < i; k++) {
				const float *u = S + (size_t)k * d;
				double p = 0.0;
				for (int j = 0; j < d; j++)
					p += row[j] * u[j];
				for (int j = 0; j < d; j++)
					row[j] -= p * u[j];
			}
		double nn = 0.0;
		for (int j = 0; j < d; j++)
			nn += row[j] * row[j];
		for (int j = 0; j < d; j++)
			S[(size_t)i * d + j] = (float)(row[j] / sqrt(nn));
	}
	for (int j = 0; j < d * d; j++)
		S[j] = (float)(S[j] * rho);
}

static void tables_build(void)
{
	struct tq_grid g; /* 33 KiB, only while the tables are built */
	float *qjl[TQ_N_DIMS] = { g_tq.qjl64, g_tq.qjl128, g_tq.qjl256 };
	for (int i = 0; i < TQ_N_DIMS; i++) {
		int d = tq_dims[i];
		grid_build(&g, d);
		for (int b = 0; b <= TQ_MAX_CODE_BITS; b++)
			codebook_build(&g, d, b, &g_tq.cb[i][b]);
		uint64_t s = tq_seed(d, TQ_USE_ROTATION);
		for (int j = 0; j < d; j++)
			g_tq.signs[i][j] = (splitmix64(&s) >> 63) ? -1.0f : 1.0f;
		qjl_build(qjl[i], d);
	}
}

const struct tq_codebook *tq_codebook_get(int d, int bits)
{
	int i = dim_index(d);
	if (i < 0 || bits < 0 || bits > TQ_MAX_CODE_BITS)
		return NULL;
	pthread_once(&g_tq_once, tables_build);
	return &g_tq.cb[i][bits];
}

/* ---- formats ---- */

int tq_format_init(struct tq_format *f, int d, enum tq_variant variant, int bits_hi, int n_hi,
		   int bits_lo)
{
	int i = dim_index(d);
	int extra = variant == TQ_PROD ? 1 : 0;
	if (i < 0 || (variant != TQ_MSE && variant != TQ_PROD))
		return -EINVAL;
	if (bits_hi < 1 || bits_hi > TQ_MAX_CODE_BITS + extra || bits_lo < 1 ||
	    bits_lo > TQ_MAX_CODE_BITS + extra)
		return -EINVAL;
	if (n_hi < 0 || n_hi > d || n_hi % TQ_BLOCK)
		return -EINVAL;
	pthread_once(&g_tq_once, tables_build);
	memset(f, 0, sizeof(*f));
	f->d = d;
	f->variant = variant;
	f->bits_hi = bits_hi;
	f->n_hi = n_hi;
	f->bits_lo = bits_lo;
	f->code_bits_hi = bits_hi - extra;
	f->code_bits_lo = bits_lo - extra;
	f->off_hi = variant == TQ_PROD ? 4 : 2;
	f->off_lo = f->off_hi + (size_t)n_hi * f->code_bits_hi / 8;
	f->off_signs = f->off_lo + (size_t)(d - n_hi) * f->code_bits_lo / 8;
	f->bytes = f->off_signs + (variant == TQ_PROD ? (size_t)d / 8 : 0);
	f->cb_hi = &g_tq.cb[i][f->code_bits_hi];
	f->cb_lo = &g_tq.cb[i][f->code_bits_lo];
	f->signs = g_tq.signs[i];
	f->qjl = variant != TQ_PROD ? NULL : d == 64 ? g_tq.qjl64 : d == 128 ? g_tq.qjl128
									     : g_tq.qjl256;
	return 0;
}

int tq_format_for_rate(struct tq_format *f, int d, enum tq_variant variant,
		       double bits_per_value)
{
	int extra = variant == TQ_PROD ? 1 : 0;
	if (dim_index(d) < 0 || !(bits_per_value > 0.0) || bits_per_value > 16.0)
		return -EINVAL;
	/* bits left for codebook codes after the norms (and the QJL signs) */
	long budget = (long)floor(bits_per_value * d + 1e-9) - (extra ? 32 + d : 16);
	if (budget < (extra ? 0 : d))
		return -EINVAL;
	long lo = budget / d;
	if (lo >= TQ_MAX_CODE_BITS)
		return tq_format_init(f, d, variant, TQ_MAX_CODE_BITS + extra, 0,
				      TQ_MAX_CODE_BITS + extra);
	long n_hi = (budget - lo * d) / TQ_BLOCK * TQ_BLOCK;
	return tq_format_init(f, d, variant, (int)lo + 1 + extra, (int)n_hi, (int)lo + extra);
}

size_t tq_bytes_per_vector(const struct tq_format *f)
{
	return f->bytes;
}

size_t tq_query_floats(const struct tq_format *f)
{
	return f->variant == TQ_PROD ? 2 * (size_t)f->d : (size_t)f->d;
}

/* ---- the rotation P = H D / sqrt(d) ---- */

/* In-place unnormalised Walsh-Hadamard transform (H H = d I), d a power of 2. */
static void fwht(float *v, int d)
{
	for (int len = 1; len < d; len <<= 1)
		for (int i = 0; i < d; i += len << 1)
			for (int j = i; j < i + len; j++) {
				float a = v[j], b = v[j + len];
				v[j] = a + b;
				v[j + len] = a - b;
			}
}

void tq_rotate(const struct tq_format *f, const float *x, float *y)
{
	float scale = 1.0f / sqrtf((float)f->d);
	for (int i = 0; i < f->d; i++)
		y[i] = x[i] * f->signs[i];
	fwht(y, f->d);
	for (int i = 0; i < f->d; i++)
		y[i] *= scale;
}

void tq_unrotate(const struct tq_format *f, const float *y, float *x)
{
	float scale = 1.0f / sqrtf((float)f->d);
	if (x != y)
		memcpy(x, y, (size_t)f->d * sizeof(float));
	fwht(x, f->d);
	for (int i = 0; i < f->d; i++)
		x[i] *= scale * f->signs[i];
}

/* ---- codes ---- */

static inline unsigned code_get(const uint8_t *p, int i, int bits)
{
	unsigned bit = (unsigned)(i * bits), sh = bit & 7;
	unsigned v = p[bit >> 3];
	if (sh + (unsigned)bits > 8)
		v |= (unsigned)p[(bit >> 3) + 1] << 8;
	return (v >> sh) & ((1u << bits) - 1);
}

/* p must be zeroed where the code goes. */
static inline void code_put(uint8_t *p, int i, int bits, unsigned code)
{
	unsigned bit = (unsigned)(i * bits), sh = bit & 7;
	p[bit >> 3] |= (uint8_t)(code << sh);
	if (sh + (unsigned)bits > 8)
		p[(bit >> 3) + 1] |= (uint8_t)(code >> (8 - sh));
}

static inline unsigned nearest(const struct tq_codebook *cb, float y)
{
	unsigned c = 0;
	for (int k = 0; k + 1 < cb->n_levels; k++)
		c += y > cb->boundary[k];
	return c;
}

static inline float half_get(const uint8_t *p)
{
	return fm_fp16_to_fp32((uint16_t)(p[0] | p[1] << 8));
}

static inline void half_put(uint8_t *p, double v)
{
	uint16_t h = fm_fp32_to_fp16((float)fmin(v, TQ_F16_MAX));
	p[0] = (uint8_t)h;
	p[1] = (uint8_t)(h >> 8);
}

/* Codes of y[0, n) at group (cb, bits) into p; returns the residual y - c in
 * r when r is not NULL; adds <y, c> to *yc and <c, c> to *cc. */
static void quantize_group(const struct tq_codebook *cb, const float *y, int n, uint8_t *p,
			   float *r, double *yc, double *cc)
{
	for (int i = 0; i < n; i++) {
		unsigned c = nearest(cb, y[i]);
		float ci = cb->centroid[c];
		if (cb->bits)
			code_put(p, i, cb->bits, c);
		if (r)
			r[i] = y[i] - ci;
		*yc += (double)y[i] * ci;
		*cc += (double)ci * ci;
	}
}

/* dot(a, b), n a multiple of 16: 16 running sums folded pairwise, which the
 * compiler turns into vector code (one sum would be a serial chain: 4x slower
 * for the d^2 products with S, measured). */
static float dot16(const float *a, const float *b, int n)
{
	float s[16] = { 0 };
	for (int i = 0; i < n; i += 16)
		for (int j = 0; j < 16; j++)
			s[j] += a[i + j] * b[i + j];
	for (int w = 8; w >= 1; w /= 2)
		for (int j = 0; j < w; j++)
			s[j] += s[j + w];
	return s[0];
}

/* The QJL sketch of r: bit i = (S r)_i >= 0. */
static void qjl_signs(const struct tq_format *f, const float *r, uint8_t *p)
{
	for (int i = 0; i < f->d; i++)
		if (dot16(f->qjl + (size_t)i * f->d, r, f->d) >= 0.0f)
			p[i >> 3] |= (uint8_t)(1u << (i & 7));
}

void tq_quantize(const struct tq_format *f, const float *x, uint8_t *out)
{
	float y[TQ_MAX_DIM], r[TQ_MAX_DIM];
	double ss = 0.0;
	int d = f->d, prod = f->variant == TQ_PROD;
	for (int i = 0; i < d; i++)
		ss += (double)x[i] * x[i];
	double norm = sqrt(ss);
	memset(out, 0, f->bytes);
	if (!(norm > 0.0) || !isfinite(norm))
		return; /* stored as the zero vector */
	for (int i = 0; i < d; i++)
		y[i] = (float)(x[i] / norm);
	tq_rotate(f, y, y);
	double yc = 0.0, cc = 0.0;
	quantize_group(f->cb_hi, y, f->n_hi, out + f->off_hi, prod ? r : NULL, &yc, &cc);
	quantize_group(f->cb_lo, y + f->n_hi, d - f->n_hi, out + f->off_lo,
		       prod ? r + f->n_hi : NULL, &yc, &cc);
	if (!prod) {
		/* the least-squares scale of the centroid vector c: the x^ = s P^T c
		 * nearest x (s = |x| <y, c> / <c, c>), rather than |x| itself */
		half_put(out, cc > 0.0 && yc > 0.0 ? norm * yc / cc : 0.0);
		return;
	}
	half_put(out, norm);
	double rr = 0.0;
	for (int i = 0; i < d; i++)
		rr += (double)r[i] * r[i];
	half_put(out + 2, sqrt(rr));
	qjl_signs(f, r, out + f->off_signs);
}

static void centroids_get(const struct tq_codebook *cb, const uint8_t *p, int n, float *y)
{
	for (int i = 0; i < n; i++)
		y[i] = cb->bits ? cb->centroid[code_get(p, i, cb->bits)] : 0.0f;
}

/* y[j] += a * sum_i S[i][j] s[i]: S^T times a sign vector (bits) or floats. */
static void qjl_transpose_add(const struct tq_format *f, const uint8_t *bits, const float *s,
			      float a, float *y)
{
	float t[TQ_MAX_DIM] = { 0 };
	for (int i = 0; i < f->d; i++) {
		const float *row = f->qjl + (size_t)i * f->d;
		float si = bits ? ((bits[i >> 3] >> (i & 7)) & 1 ? 1.0f : -1.0f) : s[i];
		for (int j = 0; j < f->d; j++)
			t[j] += si * row[j];
	}
	for (int j = 0; j < f->d; j++)
		y[j] += a * t[j];
}

void tq_dequantize(const struct tq_format *f, const uint8_t *in, float *y)
{
	int d = f->d;
	float norm = half_get(in);
	centroids_get(f->cb_hi, in + f->off_hi, f->n_hi, y);
	centroids_get(f->cb_lo, in + f->off_lo, d - f->n_hi, y + f->n_hi);
	if (f->variant == TQ_PROD) {
		float a = sqrtf((float)M_PI / 2.0f) / (float)d * half_get(in + 2);
		qjl_transpose_add(f, in + f->off_signs, NULL, a, y);
	}
	tq_unrotate(f, y, y);
	for (int i = 0; i < d; i++)
		y[i] *= norm;
}

void tq_rotate_query(const struct tq_format *f, const float *q, float *q_rot)
{
	int d = f->d;
	tq_rotate(f, q, q_rot);
	if (f->variant != TQ_PROD)
		return;
	float a = sqrtf((float)M_PI / 2.0f) / (float)d;
	for (int i = 0; i < d; i++)
		q_rot[d + i] = a * dot16(f->qjl + (size_t)i * d, q_rot, d);
}

/* ---- scoring and accumulating in the rotated domain ---- */

static float dot_codes(const struct tq_codebook *cb, const float *q, const uint8_t *p, int n)
{
	float s = 0.0f;
	if (!cb->bits)
		return 0.0f;
	for (int i = 0; i < n; i++)
		s += q[i] * cb->centroid[code_get(p, i, cb->bits)];
	return s;
}

static float dot_signs(const float *q, const uint8_t *p, int n)
{
	float s = 0.0f;
	for (int i = 0; i < n; i++)
		s += (p[i >> 3] >> (i & 7)) & 1 ? q[i] : -q[i];
	return s;
}

void tq_score_ref(const struct tq_format *f, const float *q_rot, const uint8_t *codes, int n,
		  size_t stride, float *scores)
{
	int d = f->d;
	for (int t = 0; t < n; t++) {
		const uint8_t *v = codes + (size_t)t * stride;
		float s = dot_codes(f->cb_hi, q_rot, v + f->off_hi, f->n_hi) +
			  dot_codes(f->cb_lo, q_rot + f->n_hi, v + f->off_lo, d - f->n_hi);
		if (f->variant == TQ_PROD)
			s += half_get(v + 2) * dot_signs(q_rot + d, v + f->off_signs, d);
		scores[t] = half_get(v) * s;
	}
}

static void add_codes(const struct tq_codebook *cb, float w, const uint8_t *p, int n,
		      float *acc)
{
	if (!cb->bits)
		return;
	for (int i = 0; i < n; i++)
		acc[i] += w * cb->centroid[code_get(p, i, cb->bits)];
}

void tq_accumulate_ref(const struct tq_format *f, const float *w, const uint8_t *codes, int n,
		       size_t stride, float *acc)
{
	int d = f->d;
	for (int t = 0; t < n; t++) {
		const uint8_t *v = codes + (size_t)t * stride;
		float wn = w[t] * half_get(v);
		add_codes(f->cb_hi, wn, v + f->off_hi, f->n_hi, acc);
		add_codes(f->cb_lo, wn, v + f->off_lo, d - f->n_hi, acc + f->n_hi);
		if (f->variant != TQ_PROD)
			continue;
		float wg = wn * half_get(v + 2);
		const uint8_t *p = v + f->off_signs;
		for (int i = 0; i < d; i++)
			acc[d + i] += (p[i >> 3] >> (i & 7)) & 1 ? wg : -wg;
	}
}

void tq_accumulate_finish(const struct tq_format *f, const float *acc, float *out)
{
	float y[TQ_MAX_DIM];
	memcpy(y, acc, (size_t)f->d * sizeof(float));
	if (f->variant == TQ_PROD)
		qjl_transpose_add(f, NULL, acc + f->d, sqrtf((float)M_PI / 2.0f) / (float)f->d, y);
	tq_unrotate(f, y, out);
}

void tq_decode_ref(const struct tq_format *f, const uint8_t *codes, int n, size_t stride,
		   float *rows)
{
	int d = f->d;
	size_t qf = tq_query_floats(f);
	for (int t = 0; t < n; t++, rows += qf) {
		const uint8_t *v = codes + (size_t)t * stride;
		float s = half_get(v);
		for (int i = 0; i < d; i++) {
			const struct tq_codebook *cb = i < f->n_hi ? f->cb_hi : f->cb_lo;
			const uint8_t *p = v + (i < f->n_hi ? f->off_hi : f->off_lo);
			int j = i < f->n_hi ? i : i - f->n_hi;
			rows[i] = cb->bits ? s * cb->centroid[code_get(p, j, cb->bits)] : 0.0f;
		}
		if (f->variant != TQ_PROD)
			continue;
		float sg = s * half_get(v + 2);
		const uint8_t *p = v + f->off_signs;
		for (int i = 0; i < d; i++)
			rows[d + i] = (p[i >> 3] >> (i & 7)) & 1 ? sg : -sg;
	}
}

void tq_score(const struct tq_format *f, const float *q_rot, const uint8_t *codes, int n,
	      size_t stride, float *scores)
{
	kernels_best()->tq_score(f, q_rot, codes, n, stride, scores);
}

void tq_accumulate(const struct tq_format *f, const float *w, const uint8_t *codes, int n,
		   size_t stride, float *acc)
{
	kernels_best()->tq_accumulate(f, w, codes, n, stride, acc);
}

void kernels_register_tq(struct kernels *k, enum kernel_isa isa)
{
	switch (isa) {
	case KERNEL_ISA_REF:
		k->tq_score = tq_score_ref;
		k->tq_accumulate = tq_accumulate_ref;
		k->tq_decode = tq_decode_ref;
		break;
#if defined(__x86_64__)
	case KERNEL_ISA_AVX2:
		k->tq_score = tq_score_avx2;
		k->tq_accumulate = tq_accumulate_avx2;
		k->tq_decode = tq_decode_avx2;
		break;
	case KERNEL_ISA_AVX512:
		k->tq_score = tq_score_avx512;
		k->tq_accumulate = tq_accumulate_avx512;
		k->tq_decode = tq_decode_avx512;
		break;
#endif
	default:
		break;
	}
}
