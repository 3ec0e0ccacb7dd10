/* gdn.c: the Gated DeltaNet core (gdn.h): the causal conv with its rolling
 * state, the gated delta rule token by token and in chunks, and the two
 * per-head norms. Follows architectures.md §6.3 (decode) and §7.2-7.3
 * (prompts). Owns no memory: states and scratch belong to the caller.
 *
 * The hot loops are written with GCC/Clang generic vectors of GDN_VW floats
 * (no ISA intrinsics; 4 = SSE2 at the base ISA, NEON on arm64): plain loops
 * left the 2x16 accumulator tile of mac_rows in memory at -O2 and ran
 * 6x slower (2.5-3.2 vs 18 GMAC/s for a 64x128 by 128x128 product).
 * Built with -DGDN_VW=16 -mavx512f -mfma -ffp-contract=fast the same code
 * ran the bench's chunk-32 case 1.35x faster (bench/bench_gdn.c).
 *
 * Speed (bench/bench_gdn.c, one thread, nv 32 heads of 128 x 128, T 512):
 * the chunked form does about the work of the recurrence on a CPU (3 dk dv
 * multiply-adds per token for W S, Q S and K^T V', plus ~2.5 C dk for the
 * C x C products, against ~3.5 dk dv), and the recurrence, run head by
 * head, keeps its 64 KiB state in cache over the prompt; so the two run
 * within ~15% of each other, chunk 32 the fastest chunk. */
#include "gdn.h"

#include <math.h>
#include <string.h>

#include "ops.h"

/* Floats per vector. */
#ifndef GDN_VW
#define GDN_VW 4
#endif
#define VW GDN_VW
typedef float fv __attribute__((vector_size(VW * sizeof(float))));

static inline fv ldv(const float *p)
{
	fv v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static inline void stv(float *p, fv v)
{
	memcpy(p, &v, sizeof(v));
}

/* Lanes folded pairwise: (v0 + v2) + (v1 + v3) for 4. */
static inline float hsum(fv v)
{
#if VW == 4
	return (v[0] + v[2]) + (v[1] + v[3]);
#else
	float t[VW];
	memcpy(t, &v, sizeof(t));
#pragma GCC unroll 16
	for (int w = VW / 2; w >= 1; w /= 2)
#pragma GCC unroll 16
		for (int i = 0; i < w; i++)
			t[i] += t[i + w];
	return t[0];
#endif
}

/* Subnormal floats run ~100x slower on x86 (without FTZ/DAZ, which a
 * library may not set). Decay factors below e^-69 (1e-30) and coefficient
 * matrices of the chunked form with entries below 1e-30 are flushed to 0:
 * they multiply O(1) data into O(1) sums, so the error is < 1e-30 absolute,
 * and their products with such data stay normal. Without it the chunk of
 * 64 ran 2.8x slower than with FTZ/DAZ set: products of decays across a
 * chunk (e^(gamma_i - gamma_m) e^gamma_m, L T) reach e^-90 and below. */
#define TINY 1e-30f

static inline float flush(float x)
{
	return fabsf(x) < TINY ? 0.0f : x;
}

/* exp of a log-decay (<= 0), flushed to 0 below e^-69 (< TINY). */
static inline float decay_exp(float x)
{
	return x < -69.0f ? 0.0f : expf(x);
}

int gdn_conv_channels(const struct gdn_shape *s)
{
	return 2 * s->nk * s->dk + s->nv * s->dv;
}

int gdn_key_head(const struct gdn_shape *s, int j)
{
	return s->tiled ? j % s->nk : j / (s->nv / s->nk);
}

/* ---- conv (§6.3.2, §7.2) ---- */

/* Row r of the window X = [state (K-1 rows) | x (T rows)]. */
static const float *conv_row(const float *state, size_t C, const float *x, size_t x_stride,
			     int K, int r)
{
	return r < K - 1 ? state + (size_t)r * C : x + (size_t)(r - (K - 1)) * x_stride;
}

void gdn_conv(const struct gdn_shape *s, const float *x, size_t x_stride, int T,
	      const float *w, float *state, float *y, size_t y_stride, int c0, int c1)
{
	const int K = s->conv_k;
	const size_t C = (size_t)gdn_conv_channels(s);
	for (int t = 0; t < T; t++) {
		float *restrict yt = y + (size_t)t * y_stride;
		for (int c = c0; c < c1; c++)
			yt[c] = 0.0f;
		for (int j = 0; j < K; j++) {
			const float *restrict xr = conv_row(state, C, x, x_stride, K, t + j);
			for (int c = c0; c < c1; c++)
				yt[c] += w[(size_t)c * K + j] * xr[c];
		}
		for (int c = c0; c < c1; c++)
			yt[c] = ops_silu(yt[c]);
	}
	/* New state row r = X[T + r]. Ascending r reads state row T + r > r
	 * (when it still comes from the old state) before it is overwritten. */
	for (int r = 0; T > 0 && r < K - 1; r++) {
		const float *src = conv_row(state, C, x, x_stride, K, T + r);
		memmove(state + (size_t)r * C + c0, src + c0, (size_t)(c1 - c0) * sizeof(float));
	}
}

/* ---- the recurrence (§6.3.3) ---- */

/* One token of one head. S: [dv][dk]. With r = row v of S before the step
 * and a = exp(g): u = a (r.k), delta = beta (v - u), r' = a r + delta k,
 * o = r'.q = a (r.q) + delta (k.q): one read pass (two dots) and one
 * read-write pass per row, two rows at a time to share the k, q loads. */
static void rule_step(float *restrict S, const float *restrict q, const float *restrict k,
		      const float *restrict v, float a, float beta, float *restrict o, int dk,
		      int dv)
{
	const int dk_vec = dk & ~(VW - 1);
	float kq = 0.0f;
	{
		fv acc = { 0 };
		for (int p = 0; p < dk_vec; p += VW)
			acc += ldv(k + p) * ldv(q + p);
		kq = hsum(acc);
		for (int p = dk_vec; p < dk; p++)
			kq += k[p] * q[p];
	}
	int r = 0;
	for (; r + 2 <= dv; r += 2) {
		float *restrict s0 = S + (size_t)r * dk, *restrict s1 = s0 + dk;
		fv k0 = { 0 }, q0 = { 0 }, k1 = { 0 }, q1 = { 0 };
		for (int p = 0; p < dk_vec; p += VW) {
			fv kp = ldv(k + p), qp = ldv(q + p), a0 = ldv(s0 + p), a1 = ldv(s1 + p);
			k0 += a0 * kp;
			q0 += a0 * qp;
			k1 += a1 * kp;
			q1 += a1 * qp;
		}
		float sk0 = hsum(k0), sq0 = hsum(q0), sk1 = hsum(k1), sq1 = hsum(q1);
		for (int p = dk_vec; p < dk; p++) {
			sk0 += s0[p] * k[p];
			sq0 += s0[p] * q[p];
			sk1 += s1[p] * k[p];
			sq1 += s1[p] * q[p];
		}
		float e0 = beta * (v[r] - a * sk0), e1 = beta * (v[r + 1] - a * sk1);
		o[r] = a * sq0 + e0 * kq;
		o[r + 1] = a * sq1 + e1 * kq;
		for (int p = 0; p < dk_vec; p += VW) {
			fv kp = ldv(k + p);
			stv(s0 + p, a * ldv(s0 + p) + e0 * kp);
			stv(s1 + p, a * ldv(s1 + p) + e1 * kp);
		}
		for (int p = dk_vec; p < dk; p++) {
			s0[p] = a * s0[p] + e0 * k[p];
			s1[p] = a * s1[p] + e1 * k[p];
		}
	}
	for (; r < dv; r++) {
		float *restrict s0 = S + (size_t)r * dk;
		float sk = 0.0f, sq = 0.0f;
		for (int p = 0; p < dk; p++) {
			sk += s0[p] * k[p];
			sq += s0[p] * q[p];
		}
		float e = beta * (v[r] - a * sk);
		o[r] = a * sq + e * kq;
		for (int p = 0; p < dk; p++)
			s0[p] = a * s0[p] + e * k[p];
	}
}

/* ---- small dense products for the chunked form ---- */

/* A matrix operand: element (i, p) at a[i * rs + p * cs], so that a
 * transposed operand costs nothing (its elements are broadcast one by one). */
struct mat {
	const float *a;
	size_t rs, cs;
};

/* c[i][0..N) += sum_{p<P} A(i, p) * b[p][0..N) for rows i < M, in tiles of
 * 2 rows x 4 vectors held in registers over the p loop. */
static void mac_rows(float *restrict c, size_t ldc, struct mat A, const float *restrict b,
		     size_t ldb, int M, int N, int P)
{
	const int ntile = N & ~(4 * VW - 1); /* tiles of 4 vectors */
	const size_t cs = A.cs;
	int i = 0;
	for (; i + 2 <= M; i += 2) {
		float *c0 = c + (size_t)i * ldc, *c1 = c0 + ldc;
		const float *restrict a0 = A.a + (size_t)i * A.rs, *restrict a1 = a0 + A.rs;
		for (int n = 0; n < ntile; n += 4 * VW) {
			fv x0 = ldv(c0 + n), x1 = ldv(c0 + n + VW), x2 = ldv(c0 + n + 2 * VW),
			   x3 = ldv(c0 + n + 3 * VW);
			fv y0 = ldv(c1 + n), y1 = ldv(c1 + n + VW), y2 = ldv(c1 + n + 2 * VW),
			   y3 = ldv(c1 + n + 3 * VW);
			for (int p = 0; p < P; p++) {
				const float *bp = b + (size_t)p * ldb + n;
				fv b0 = ldv(bp), b1 = ldv(bp + VW), b2 = ldv(bp + 2 * VW),
				   b3 = ldv(bp + 3 * VW);
				float s0 = a0[p * cs], s1 = a1[p * cs];
				x0 += s0 * b0;
				x1 += s0 * b1;
				x2 += s0 * b2;
				x3 += s0 * b3;
				y0 += s1 * b0;
				y1 += s1 * b1;
				y2 += s1 * b2;
				y3 += s1 * b3;
			}
			stv(c0 + n, x0);
			stv(c0 + n + VW, x1);
			stv(c0 + n + 2 * VW, x2);
			stv(c0 + n + 3 * VW, x3);
			stv(c1 + n, y0);
			stv(c1 + n + VW, y1);
			stv(c1 + n + 2 * VW, y2);
			stv(c1 + n + 3 * VW, y3);
		}
		for (int n = ntile; n < N; n++) {
			float x = c0[n], y = c1[n];
			for (int p = 0; p < P; p++) {
				x += a0[p * cs] * b[(size_t)p * ldb + n];
				y += a1[p * cs] * b[(size_t)p * ldb + n];
			}
			c0[n] = x, c1[n] = y;
		}
	}
	for (; i < M; i++) {
		float *c0 = c + (size_t)i * ldc;
		const float *restrict a0 = A.a + (size_t)i * A.rs;
		for (int n = 0; n < ntile; n += 4 * VW) {
			fv x0 = ldv(c0 + n), x1 = ldv(c0 + n + VW), x2 = ldv(c0 + n + 2 * VW),
			   x3 = ldv(c0 + n + 3 * VW);
			for (int p = 0; p < P; p++) {
				const float *bp = b + (size_t)p * ldb + n;
				float s0 = a0[p * cs];
				x0 += s0 * ldv(bp);
				x1 += s0 * ldv(bp + VW);
				x2 += s0 * ldv(bp + 2 * VW);
				x3 += s0 * ldv(bp + 3 * VW);
			}
			stv(c0 + n, x0);
			stv(c0 + n + VW, x1);
			stv(c0 + n + 2 * VW, x2);
			stv(c0 + n + 3 * VW, x3);
		}
		for (int n = ntile; n < N; n++) {
			float x = c0[n];
			for (int p = 0; p < P; p++)
				x += a0[p * cs] * b[(size_t)p * ldb + n];
			c0[n] = x;
		}
	}
}

/* A row-major operand with row stride ld; its transpose. */
static struct mat rows_of(const float *a, size_t ld)
{
	return (struct mat){ a, ld, 1 };
}
static struct mat cols_of(const float *a, size_t ld)
{
	return (struct mat){ a, 1, ld };
}

/* mac_rows for a lower-triangular a (n x n, row stride lda, a[i][m] = 0 for
 * m > i): rows i, i+1 only read columns m <= i+1. */
static void mac_lower(float *c, size_t ldc, const float *a, size_t lda, const float *b,
		      size_t ldb, int n, int N)
{
	for (int i = 0; i < n; i += 2) {
		int rows = n - i < 2 ? n - i : 2;
		mac_rows(c + (size_t)i * ldc, ldc, rows_of(a + (size_t)i * lda, lda), b, ldb, rows,
			 N, i + rows);
	}
}

/* y[0..n) -= a * x[0..n) */
static void axmy(float *restrict y, float a, const float *restrict x, int n)
{
	const int n4 = n & ~(VW - 1);
	for (int i = 0; i < n4; i += VW)
		stv(y + i, ldv(y + i) - a * ldv(x + i));
	for (int i = n4; i < n; i++)
		y[i] -= a * x[i];
}

/* dst[c][r] = src[r][c], r < rows, c < cols, in 8 x 8 blocks. */
static void transpose(float *restrict dst, size_t ldd, const float *restrict src, size_t lds,
		      int rows, int cols)
{
	for (int r0 = 0; r0 < rows; r0 += 8)
		for (int c0 = 0; c0 < cols; c0 += 8) {
			int r1 = r0 + 8 < rows ? r0 + 8 : rows, c1 = c0 + 8 < cols ? c0 + 8 : cols;
			for (int c = c0; c < c1; c++)
				for (int r = r0; r < r1; r++)
					dst[(size_t)c * ldd + r] = src[(size_t)r * lds + c];
		}
}

static float dot(const float *restrict a, const float *restrict b, int n)
{
	const int n8 = n & ~(2 * VW - 1);
	fv s0 = { 0 }, s1 = { 0 };
	for (int p = 0; p < n8; p += 2 * VW) {
		s0 += ldv(a + p) * ldv(b + p);
		s1 += ldv(a + p + VW) * ldv(b + p + VW);
	}
	float s = hsum(s0 + s1);
	for (int p = n8; p < n; p++)
		s += a[p] * b[p];
	return s;
}

/* ---- the chunked form (§7.3) ---- */

/* Scratch of one call, each array rounded up to 16 floats (64 bytes). */
struct chunk_scratch {
	float *kk, *qk;       /* [C][C] k_i.k_m (m < i), q_i.k_m (m <= i): per key head */
	float *a1, *a2, *mm;  /* [C][C] T diag(beta), -T diag(beta e^gamma), (QK^T) o D */
	float *ghi, *glo;     /* [C] gamma = ghi + glo (a float pair: see chunk_decays) */
	float *eg, *dl;       /* [C] e^gamma_i, e^(gamma_last - gamma_i) */
	float *u;             /* [C][dv] U, then V' */
	float *w;             /* [C][dk] -W */
	float *st;            /* [dk][dv] the state in the math layout */
	float *kd;            /* [C][dk] diag(e^(gamma_last - gamma)) K */
	float *kc, *vc;       /* [C][dk], [C][dv] the chunk's k rows (per key head)
			       * and v rows, gathered: in the caller's buffers
			       * rows lie a whole token (32 KiB) apart, a stride
			       * whose rows share a few cache sets; read in place
			       * they made chunk 64 run 3.5x slower than chunk 32 */
};

static size_t round16(size_t n)
{
	return (n + 15) & ~(size_t)15;
}

/* Lays the arrays out from base (when not NULL); returns the floats used. */
static size_t chunk_layout(const struct gdn_shape *s, int C, float *base,
			   struct chunk_scratch *cs)
{
	size_t cc = round16((size_t)C * C), c1 = round16((size_t)C);
	const size_t sizes[] = { cc, cc, cc, cc, cc, c1, c1, c1, c1, round16((size_t)C * s->dv),
				 round16((size_t)C * s->dk), round16((size_t)s->dk * s->dv),
				 round16((size_t)C * s->dk), round16((size_t)C * s->dk),
				 round16((size_t)C * s->dv) };
	float **const ptrs[] = { &cs->kk, &cs->qk, &cs->a1, &cs->a2, &cs->mm, &cs->ghi, &cs->glo,
				 &cs->eg, &cs->dl, &cs->u, &cs->w, &cs->st, &cs->kd, &cs->kc,
				 &cs->vc };
	size_t off = 0;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		*ptrs[i] = base ? base + off : NULL;
		off += sizes[i];
	}
	return off;
}

size_t gdn_scratch_floats(const struct gdn_shape *s, int chunk)
{
	struct chunk_scratch cs;
	return chunk <= 1 ? 0 : chunk_layout(s, chunk, NULL, &cs);
}

/* The cumulative log-decay gamma_i = g_0 + ... + g_i of a chunk, summed in
 * double and kept as a float pair so that gamma_i - gamma_m stays exact to
 * float rounding even where gamma itself is large (-300 has an ulp of
 * 3e-5, which would be the relative error of e^(gamma_i - gamma_m)).
 * Only differences gamma_i - gamma_m with m <= i (<= 0) are exponentiated,
 * and gamma_i itself (= gamma_i - gamma_{-1}): never e^(-gamma). */
static void chunk_decays(const struct chunk_scratch *cs, const float *g, size_t g_stride, int n)
{
	double acc = 0.0;
	for (int i = 0; i < n; i++) {
		acc += g[(size_t)i * g_stride];
		cs->ghi[i] = (float)acc;
		cs->glo[i] = (float)(acc - cs->ghi[i]);
	}
	const double last = acc;
	for (int i = 0; i < n; i++) {
		double gi = (double)cs->ghi[i] + cs->glo[i];
		cs->eg[i] = decay_exp((float)gi);
		cs->dl[i] = decay_exp((float)(last - gi));
	}
}

static float chunk_d(const struct chunk_scratch *cs, int i, int m)
{
	double d = ((double)cs->ghi[i] - cs->ghi[m]) + ((double)cs->glo[i] - cs->glo[m]);
	return decay_exp((float)d);
}

/* For the key head rows qc, kc of a chunk of n tokens: kc gathered into
 * cs->kc, and the products kk, qk (ld C). */
static void chunk_key_products(const struct chunk_scratch *cs, const float *qc,
			       const float *kc, size_t qk_stride, int n, int C, int dk)
{
	for (int i = 0; i < n; i++)
		memcpy(cs->kc + (size_t)i * dk, kc + (size_t)i * qk_stride, (size_t)dk * sizeof(float));
	for (int i = 0; i < n; i++) {
		const float *qi = qc + (size_t)i * qk_stride, *ki = cs->kc + (size_t)i * dk;
		for (int m = 0; m <= i; m++) {
			const float *km = cs->kc + (size_t)m * dk;
			cs->kk[(size_t)i * C + m] = m < i ? dot(ki, km, dk) : 0.0f;
			cs->qk[(size_t)i * C + m] = dot(qi, km, dk);
		}
	}
}

/* L_im = beta_i (k_i.k_m) D_im (m < i) into a2, M = (QK^T) o D into mm,
 * T = (I + L)^-1 by forward substitution (row i = e_i - sum_{m<i} L_im T_m)
 * into a1; then a1 = T diag(beta), a2 = -T diag(beta e^gamma). All n x n
 * with zeros above the diagonal (mac_lower reads them). */
static void chunk_solve(const struct chunk_scratch *cs, const float *beta, size_t g_stride,
			int n, int C)
{
	for (int i = 0; i < n; i++) {
		float bi = beta[(size_t)i * g_stride];
		float *L = cs->a2 + (size_t)i * C, *M = cs->mm + (size_t)i * C;
		for (int m = 0; m < n; m++) {
			float d = m <= i ? chunk_d(cs, i, m) : 0.0f;
			L[m] = m < i ? flush(bi * cs->kk[(size_t)i * C + m] * d) : 0.0f;
			M[m] = m <= i ? flush(cs->qk[(size_t)i * C + m] * d) : 0.0f;
		}
	}
	for (int i = 0; i < n; i++) {
		float *restrict Ti = cs->a1 + (size_t)i * C;
		const float *restrict L = cs->a2 + (size_t)i * C;
		for (int c = 0; c < n; c++)
			Ti[c] = c == i ? 1.0f : 0.0f;
		for (int m = 0; m < i; m++) {
			const float *restrict Tm = cs->a1 + (size_t)m * C;
			axmy(Ti, L[m], Tm, m + 1);
		}
		for (int c = 0; c < i; c++)
			Ti[c] = flush(Ti[c]);
	}
	for (int i = 0; i < n; i++) {
		float *restrict A1 = cs->a1 + (size_t)i * C, *restrict A2 = cs->a2 + (size_t)i * C;
		for (int m = 0; m < n; m++) {
			float bm = beta[(size_t)m * g_stride];
			A2[m] = flush(-A1[m] * bm * cs->eg[m]);
			A1[m] = flush(A1[m] * bm);
		}
	}
}

/* One value head over one chunk of n tokens: qc, vc, gc, bc, oc point at
 * the chunk's first token of this head, its k rows are in cs->kc; Sj is the
 * head's [dv][dk] state. */
static void chunk_head(const struct gdn_shape *s, const struct chunk_scratch *cs,
		       const float *qc, size_t qk_stride, const float *vc, size_t v_stride,
		       const float *gc, const float *bc, size_t g_stride, float *Sj, float *oc,
		       size_t o_stride, int n, int C)
{
	const int dk = s->dk, dv = s->dv;
	const float *kc = cs->kc;
	for (int i = 0; i < n; i++)
		memcpy(cs->vc + (size_t)i * dv, vc + (size_t)i * v_stride, (size_t)dv * sizeof(float));
	chunk_decays(cs, gc, g_stride, n);
	chunk_solve(cs, bc, g_stride, n, C);
	/* U = T diag(beta) V, -W = -T diag(beta e^gamma) K */
	memset(cs->u, 0, (size_t)n * dv * sizeof(float));
	memset(cs->w, 0, (size_t)n * dk * sizeof(float));
	mac_lower(cs->u, dv, cs->a1, C, cs->vc, dv, n, dv);
	mac_lower(cs->w, dk, cs->a2, C, kc, dk, n, dk);
	transpose(cs->st, dv, Sj, dk, dv, dk);
	/* V' = U - W S */
	mac_rows(cs->u, dv, rows_of(cs->w, dk), cs->st, dv, n, dv, dk);
	/* O = diag(e^gamma) Q S + ((Q K^T) o D) V' */
	for (int i = 0; i < n; i++)
		memset(oc + (size_t)i * o_stride, 0, (size_t)dv * sizeof(float));
	mac_rows(oc, o_stride, rows_of(qc, qk_stride), cs->st, dv, n, dv, dk);
	for (int i = 0; i < n; i++) {
		float *oi = oc + (size_t)i * o_stride;
		for (int r = 0; r < dv; r++)
			oi[r] *= cs->eg[i];
	}
	mac_lower(oc, o_stride, cs->mm, C, cs->u, dv, n, dv);
	/* S <- e^gamma_last S + (diag(e^(gamma_last - gamma)) K)^T V' */
	for (int i = 0; i < n; i++)
		for (int p = 0; p < dk; p++)
			cs->kd[(size_t)i * dk + p] = flush(cs->dl[i] * kc[(size_t)i * dk + p]);
	const float last = cs->eg[n - 1];
	for (size_t e = 0; e < (size_t)dk * dv; e++)
		cs->st[e] *= last;
	mac_rows(cs->st, dv, cols_of(cs->kd, dk), cs->u, dv, dk, dv, n);
	transpose(Sj, dk, cs->st, dv, dk, dv);
}

/* Chunk by chunk; within a chunk, key head by key head (its q.k and k.k
 * products are shared by the value heads that read it), then those value
 * heads in [j0, j1). Each head's state is read and written once a chunk. */
static void rule_chunked(const struct gdn_shape *s, const float *q, const float *k,
			 size_t qk_stride, const float *v, size_t v_stride, const float *g,
			 const float *beta, size_t g_stride, int T, float *S, float *o,
			 size_t o_stride, int j0, int j1, int C, float *scratch)
{
	struct chunk_scratch cs;
	chunk_layout(s, C, scratch, &cs);
	for (int t0 = 0; t0 < T; t0 += C) {
		int n = T - t0 < C ? T - t0 : C;
		for (int i = 0; i < s->nk; i++) {
			const float *qc = q + (size_t)t0 * qk_stride + (size_t)i * s->dk;
			const float *kc = k + (size_t)t0 * qk_stride + (size_t)i * s->dk;
			bool have = false;
			for (int j = j0; j < j1; j++) {
				if (gdn_key_head(s, j) != i)
					continue;
				if (!have)
					chunk_key_products(&cs, qc, kc, qk_stride, n, C, s->dk);
				have = true;
				size_t gt = (size_t)t0 * g_stride + j, vo = (size_t)j * s->dv;
				chunk_head(s, &cs, qc, qk_stride, v + (size_t)t0 * v_stride + vo,
					   v_stride, g + gt, beta + gt, g_stride, S + vo * s->dk,
					   o + (size_t)t0 * o_stride + vo, o_stride, n, C);
			}
		}
	}
}

void gdn_rule(const struct gdn_shape *s, const float *q, const float *k, size_t qk_stride,
	      const float *v, size_t v_stride, const float *g, const float *beta,
	      size_t g_stride, int T, float *S, float *o, size_t o_stride, int j0, int j1,
	      int chunk, float *scratch)
{
	if (chunk > 1) {
		rule_chunked(s, q, k, qk_stride, v, v_stride, g, beta, g_stride, T, S, o, o_stride,
			     j0, j1, chunk, scratch);
		return;
	}
	/* Head by head, so that the head's state stays in cache over the T tokens. */
	for (int j = j0; j < j1; j++) {
		size_t ko = (size_t)gdn_key_head(s, j) * s->dk, vo = (size_t)j * s->dv;
		float *Sj = S + vo * s->dk;
		for (int t = 0; t < T; t++) {
			size_t gt = (size_t)t * g_stride + j;
			rule_step(Sj, q + (size_t)t * qk_stride + ko, k + (size_t)t * qk_stride + ko,
				  v + (size_t)t * v_stride + vo, decay_exp(g[gt]), beta[gt],
				  o + (size_t)t * o_stride + vo, s->dk, s->dv);
		}
	}
}

/* ---- norms (§6.3.3, §6.3.5) ---- */

void gdn_l2norm_heads(float *x, int n_head, int d, float eps, float scale)
{
	for (int h = 0; h < n_head; h++) {
		float *xh = x + (size_t)h * d;
		double ss = 0.0;
		for (int i = 0; i < d; i++)
			ss += (double)xh[i] * xh[i];
		float f = (float)(scale / sqrt(ss + eps));
		for (int i = 0; i < d; i++)
			xh[i] *= f;
	}
}

void gdn_norm_gated(float *y, const float *x, const float *z, const float *w, int n_head,
		    int d, float eps)
{
	for (int h = 0; h < n_head; h++) {
		float *yh = y + (size_t)h * d;
		const float *zh = z + (size_t)h * d;
		ops_rmsnorm(yh, x + (size_t)h * d, w, d, eps);
		for (int i = 0; i < d; i++)
			yh[i] *= ops_silu(zh[i]);
	}
}
