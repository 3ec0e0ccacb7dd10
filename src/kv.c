/* kv.c: the KV cache of the attention layers, its formats as a table (see
 * kv.h). Each format is four operations on rows of head_dim values: bytes
 * per row, store (convert) a row, score a group of queries against a span of
 * rows, and accumulate weighted rows into the group's outputs. Keys and
 * values have a format each (llama.cpp's --cache-type-k / --cache-type-v).
 * kv_attend runs the n_rep query heads of a KV head together (up to
 * KV_QGROUP) and the formats walk the span KV_CHUNK rows at a time, so each
 * chunk is read (and converted or decoded) once for the whole group.
 *
 *   f32   the rows themselves; the attention kernels of the kernel table
 *   f16   IEEE half: keys by the F16 weight kernel's multi-row vec_dot,
 *         values by attn_wsum_f16
 *   q8_0  blocks of 32: an f16 scale d and 32 int8 q, x = d * q (ggml's
 *         Q8_0 block), rounded to nearest as the weight format does; keys
 *         scored against queries rounded to Q8_0 (int8 vec_dot, as
 *         llama.cpp), values by attn_wsum_q8_0
 *   tqB   TurboQuant (src/kernels/tq.h) at B bits per value, norms included
 *         (tq4, tq3.5, tq3, tq2.5: TurboQuant_mse; tqBp: TurboQuant_prod, the
 *         unbiased inner-product variant, for keys): the queries rotated
 *         once, each chunk decoded once into rotated-domain floats
 *         (tq_decode) for the f32 kernels, the values accumulated in the
 *         rotated domain and rotated back once per query head
 *
 * Also here: --kv-compare's per-layer error of the attention outputs against
 * an f32 copy (a diagnostic), and kv_replicate for bench -d. */
#include "kv.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/tq.h"
#include "ops.h"

/* A format's parameters for one cache: the TurboQuant layout, if any. */
struct kv_fmt_state {
	struct tq_format tq;
};

/* Positions converted or scored at a time, and query heads scored together
 * (the n_rep heads of a KV head: 8 in Qwen3-30B-A3B): a chunk of rows is read
 * once from memory and then stays in L1/L2 for every query of the group. */
#define KV_CHUNK 64
#define KV_QGROUP KERNEL_MAX_NY

struct kv_format {
	const char *name;
	double tq_bits;                   /* TurboQuant: bits per value; 0: not TQ */
	enum tq_variant tq_variant;
	size_t (*row_bytes)(const struct kv_fmt_state *s, int hd); /* 0: hd not supported */
	void (*store)(const struct kv_fmt_state *s, const float *x, uint8_t *dst, int hd);
	/* out[r * ld + t] = scale * q_r . row_t for r < nq <= KV_QGROUP, t < n;
	 * q: nq rows of hd; work: kv_work_floats(hd) floats */
	void (*score)(const struct kv_fmt_state *s, const struct kernels *k, const float *q, int nq,
		      const uint8_t *rows, int n, int hd, float scale, float *out, size_t ld,
		      float *work);
	/* o_r = sum_t p[r * ld + t] row_t, r < nq (o: nq rows of hd, overwritten) */
	void (*accumulate)(const struct kv_fmt_state *s, const struct kernels *k, float *o, int nq,
			   const float *p, size_t ld, const uint8_t *rows, int n, int hd,
			   float *work);
};

struct kv_cache {
	int n_layer, n_head_kv, head_dim, n_ctx;
	const struct kv_format *fk, *fv;
	struct kv_fmt_state sk, sv;
	size_t kb, vb;       /* bytes per row of K, of V */
	size_t bytes_k, bytes_v;
	uint8_t *k, *v;      /* [n_layer][n_head_kv][n_ctx][kb or vb] */
	struct fm_mem *mem;
	float *ref_k, *ref_v; /* kv_compare_enable: f32 copies (outside the budget), else NULL */
};

/* Scratch of a format's score / accumulate: a chunk of rows as floats (2 hd
 * each for TQ prod), per query a rotated query and an accumulator (2 hd), a
 * row of partial sums. */
static size_t kv_work_floats(int hd)
{
	return (size_t)(2 * KV_CHUNK + 4 * KV_QGROUP + 2) * hd + KV_QGROUP;
}

/* o_r += tmp over a chunk's partial sums */
static void add_rows(float *o, const float *x, int hd)
{
	for (int i = 0; i < hd; i++)
		o[i] += x[i];
}

/* ---- f32 ---- */

static size_t f32_bytes(const struct kv_fmt_state *st, int hd)
{
	(void)st;
	return (size_t)hd * sizeof(float);
}

static void f32_store(const struct kv_fmt_state *st, const float *x, uint8_t *dst, int hd)
{
	(void)st;
	memcpy(dst, x, (size_t)hd * sizeof(float));
}

static void f32_score(const struct kv_fmt_state *st, const struct kernels *k, const float *q,
		      int nq, const uint8_t *rows, int n, int hd, float scale, float *out,
		      size_t ld, float *work)
{
	(void)st, (void)work;
	for (int t0 = 0; t0 < n; t0 += KV_CHUNK) {
		int c = n - t0 < KV_CHUNK ? n - t0 : KV_CHUNK;
		const float *chunk = (const float *)rows + (size_t)t0 * hd;
		for (int r = 0; r < nq; r++)
			k->attn_dot_rows(out + r * ld + t0, q + (size_t)r * hd, chunk, c, hd, scale);
	}
}

static void f32_accumulate(const struct kv_fmt_state *st, const struct kernels *k, float *o,
			   int nq, const float *p, size_t ld, const uint8_t *rows, int n, int hd,
			   float *work)
{
	(void)st;
	memset(o, 0, (size_t)nq * hd * sizeof(float));
	for (int t0 = 0; t0 < n; t0 += KV_CHUNK) {
		int c = n - t0 < KV_CHUNK ? n - t0 : KV_CHUNK;
		const float *chunk = (const float *)rows + (size_t)t0 * hd;
		for (int r = 0; r < nq; r++) {
			k->attn_wsum(work, p + r * ld + t0, chunk, c, hd);
			add_rows(o + (size_t)r * hd, work, hd);
		}
	}
}

/* ---- f16 ---- */

static size_t f16_bytes(const struct kv_fmt_state *st, int hd)
{
	(void)st;
	return (size_t)hd * sizeof(uint16_t);
}

static void f16_store(const struct kv_fmt_state *st, const float *x, uint8_t *dst, int hd)
{
	(void)st;
	uint16_t *d = (uint16_t *)dst;
	for (int i = 0; i < hd; i++)
		d[i] = fm_fp32_to_fp16(x[i]);
}

/* Each row read once for all nq queries: the F16 weight kernel's vec_dot
 * (a half row against nq float rows). */
static void f16_score(const struct kv_fmt_state *st, const struct kernels *k, const float *q,
		      int nq, const uint8_t *rows, int n, int hd, float scale, float *out,
		      size_t ld, float *work)
{
	(void)st;
	vec_dot_fn dot = k->fmt[GGML_TYPE_F16].vec_dot;
	size_t rb = (size_t)hd * sizeof(uint16_t);
	for (int t = 0; t < n; t++) {
		dot((size_t)hd, rows + (size_t)t * rb, q, (size_t)hd * sizeof(float), nq, work);
		for (int r = 0; r < nq; r++)
			out[r * ld + t] = work[r] * scale;
	}
}

static void f16_accumulate(const struct kv_fmt_state *st, const struct kernels *k, float *o,
			   int nq, const float *p, size_t ld, const uint8_t *rows, int n, int hd,
			   float *work)
{
	(void)st;
	memset(o, 0, (size_t)nq * hd * sizeof(float));
	for (int t0 = 0; t0 < n; t0 += KV_CHUNK) {
		int c = n - t0 < KV_CHUNK ? n - t0 : KV_CHUNK;
		const uint16_t *chunk = (const uint16_t *)rows + (size_t)t0 * hd;
		for (int r = 0; r < nq; r++) {
			k->attn_wsum_f16(work, p + r * ld + t0, chunk, c, hd);
			add_rows(o + (size_t)r * hd, work, hd);
		}
	}
}

/* ---- q8_0: ggml's Q8_0 block, through the weight format's own kernels ---- */

static const struct kernel_fmt *q8_fmt(void)
{
	return &kernels_get(KERNEL_ISA_REF)->fmt[GGML_TYPE_Q8_0];
}

static size_t q8_bytes(const struct kv_fmt_state *st, int hd)
{
	(void)st;
	return ggml_row_bytes(GGML_TYPE_Q8_0, (uint64_t)hd);
}

static void q8_store(const struct kv_fmt_state *st, const float *x, uint8_t *dst, int hd)
{
	(void)st;
	q8_fmt()->quantize(x, dst, (size_t)hd);
}

/* As llama.cpp scores a Q8_0 cache: the queries rounded to Q8_0 once, then
 * the weight kernel's int8 vec_dot, each row read once for all nq queries. */
static void q8_score(const struct kv_fmt_state *st, const struct kernels *k, const float *q,
		     int nq, const uint8_t *rows, int n, int hd, float scale, float *out,
		     size_t ld, float *work)
{
	size_t rb = q8_bytes(st, hd);
	uint8_t *qq = (uint8_t *)(work + KV_QGROUP);
	for (int r = 0; r < nq; r++)
		k->quantize_act[GGML_TYPE_Q8_0](q + (size_t)r * hd, qq + r * rb, (size_t)hd);
	vec_dot_fn dot = k->fmt[GGML_TYPE_Q8_0].vec_dot;
	for (int t = 0; t < n; t++) {
		dot((size_t)hd, rows + (size_t)t * rb, qq, rb, nq, work);
		for (int r = 0; r < nq; r++)
			out[r * ld + t] = work[r] * scale;
	}
}

static void q8_accumulate(const struct kv_fmt_state *st, const struct kernels *k, float *o,
			  int nq, const float *p, size_t ld, const uint8_t *rows, int n, int hd,
			  float *work)
{
	size_t rb = q8_bytes(st, hd);
	memset(o, 0, (size_t)nq * hd * sizeof(float));
	for (int t0 = 0; t0 < n; t0 += KV_CHUNK) {
		int c = n - t0 < KV_CHUNK ? n - t0 : KV_CHUNK;
		for (int r = 0; r < nq; r++) {
			k->attn_wsum_q8_0(work, p + r * ld + t0, rows + (size_t)t0 * rb, c, hd);
			add_rows(o + (size_t)r * hd, work, hd);
		}
	}
}

/* ---- TurboQuant ---- */

static size_t tq_bytes(const struct kv_fmt_state *st, int hd)
{
	return st->tq.d == hd ? tq_bytes_per_vector(&st->tq) : 0;
}

static void tq_store(const struct kv_fmt_state *st, const float *x, uint8_t *dst, int hd)
{
	(void)hd;
	tq_quantize(&st->tq, x, dst);
}

/* Each query rotated once; then chunk by chunk, the chunk's codes decoded once
 * into rotated-domain floats (k->tq_decode) and scored by every query of the
 * group with the f32 kernel: the decode, not the multiply-adds, is what costs,
 * so it is shared by the n_rep query heads (8 in Qwen3-30B-A3B). */
static void tq_kv_score(const struct kv_fmt_state *st, const struct kernels *k, const float *q,
			int nq, const uint8_t *rows, int n, int hd, float scale, float *out,
			size_t ld, float *work)
{
	size_t qf = tq_query_floats(&st->tq), rb = tq_bytes_per_vector(&st->tq);
	float *tmp = work + (size_t)nq * qf, *chunk = tmp + qf;
	vec_dot_fn dot = k->fmt[GGML_TYPE_F32].vec_dot; /* a row against nq queries */
	for (int r = 0; r < nq; r++)
		tq_rotate_query(&st->tq, q + (size_t)r * hd, work + r * qf);
	for (int t0 = 0; t0 < n; t0 += KV_CHUNK) {
		int c = n - t0 < KV_CHUNK ? n - t0 : KV_CHUNK;
		k->tq_decode(&st->tq, rows + (size_t)t0 * rb, c, rb, chunk);
		for (int t = 0; t < c; t++) {
			dot(qf, chunk + (size_t)t * qf, work, qf * sizeof(float), nq, tmp);
			for (int r = 0; r < nq; r++)
				out[r * ld + t0 + t] = tmp[r] * scale;
		}
	}
}

/* The values likewise: a chunk decoded once, summed by every query into its
 * rotated-domain accumulator, each accumulator rotated back once. */
static void tq_kv_accumulate(const struct kv_fmt_state *st, const struct kernels *k, float *o,
			     int nq, const float *p, size_t ld, const uint8_t *rows, int n, int hd,
			     float *work)
{
	size_t qf = tq_query_floats(&st->tq), rb = tq_bytes_per_vector(&st->tq);
	float *tmp = work + (size_t)nq * qf, *chunk = tmp + qf;
	memset(work, 0, (size_t)nq * qf * sizeof(float));
	for (int t0 = 0; t0 < n; t0 += KV_CHUNK) {
		int c = n - t0 < KV_CHUNK ? n - t0 : KV_CHUNK;
		k->tq_decode(&st->tq, rows + (size_t)t0 * rb, c, rb, chunk);
		for (int r = 0; r < nq; r++) {
			k->attn_wsum(tmp, p + r * ld + t0, chunk, c, (int)qf);
			add_rows(work + r * qf, tmp, (int)qf);
		}
	}
	for (int r = 0; r < nq; r++) /* rotated back once per query head */
		tq_accumulate_finish(&st->tq, work + r * qf, o + (size_t)r * hd);
}

#define TQ_FMT(name, bits, var) \
	{ name, bits, var, tq_bytes, tq_store, tq_kv_score, tq_kv_accumulate }

static const struct kv_format formats[] = {
	[KV_F32] = { "f32", 0, TQ_MSE, f32_bytes, f32_store, f32_score, f32_accumulate },
	[KV_F16] = { "f16", 0, TQ_MSE, f16_bytes, f16_store, f16_score, f16_accumulate },
	[KV_Q8_0] = { "q8_0", 0, TQ_MSE, q8_bytes, q8_store, q8_score, q8_accumulate },
	[KV_TQ4] = TQ_FMT("tq4", 4.125, TQ_MSE),
	[KV_TQ3_5] = TQ_FMT("tq3.5", 3.5, TQ_MSE),
	[KV_TQ3] = TQ_FMT("tq3", 3.125, TQ_MSE),
	[KV_TQ2_5] = TQ_FMT("tq2.5", 2.5, TQ_MSE),
	[KV_TQ4P] = TQ_FMT("tq4p", 4.125, TQ_PROD),
	[KV_TQ3_5P] = TQ_FMT("tq3.5p", 3.5, TQ_PROD),
	[KV_TQ3P] = TQ_FMT("tq3p", 3.125, TQ_PROD),
	[KV_TQ2_5P] = TQ_FMT("tq2.5p", 2.5, TQ_PROD),
};

/* The state a format needs for heads of hd values; 0 or FM_EUNSUPPORTED. */
static int fmt_state_init(const struct kv_format *f, int hd, struct kv_fmt_state *st)
{
	memset(st, 0, sizeof(*st));
	if (f->tq_bits == 0)
		return 0;
	/* whole bits (tq4, tq3) carry their norm in the remainder of the rate */
	return tq_format_for_rate(&st->tq, hd, f->tq_variant, f->tq_bits) ? FM_EUNSUPPORTED : 0;
}

/* ---- --kv-compare: the cache's attention outputs against f32, per layer ----
 * A diagnostic (flashmoe perplexity --kv-compare): every cache made while it
 * is on keeps an f32 copy of its rows (malloc, outside --mem), and every
 * kv_attend also computes attention on the copy and sums, per attention
 * layer, the squared errors of the output with the cache's K and V, with its
 * K only (f32 V), with its V only (f32 K), the squared error of the scaled
 * scores (the softmax's inputs) and the total variation of the softmax
 * weights. The output stays the cache's own, so perplexity and KL are the
 * format's. */

#define KV_CMP_MAX_LAYERS 512

struct kv_cmp_sums {
	double err_kv, err_k, err_v, ref; /* sum |o - o_ref|^2 ..., sum |o_ref|^2 */
	double score_err, n_scores;       /* sum (s - s_ref)^2 over scaled scores */
	double tv, n_rows;                /* sum 0.5 |p - p_ref|_1 over rows */
};

static struct {
	int enabled, n_layer;
	pthread_mutex_t mu;
	struct kv_cmp_sums layer[KV_CMP_MAX_LAYERS];
} g_cmp = { .mu = PTHREAD_MUTEX_INITIALIZER };

static size_t hd_bytes_f32(int hd)
{
	return (size_t)hd * sizeof(float);
}

void kv_compare_enable(void)
{
	pthread_mutex_lock(&g_cmp.mu);
	g_cmp.enabled = 1;
	pthread_mutex_unlock(&g_cmp.mu);
}

int kv_compare_enabled(void)
{
	pthread_mutex_lock(&g_cmp.mu);
	int e = g_cmp.enabled;
	pthread_mutex_unlock(&g_cmp.mu);
	return e;
}

static double sq_diff(const float *a, const float *b, int n)
{
	double s = 0.0;
	for (int i = 0; i < n; i++)
		s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
	return s;
}

static void compare_attend(const struct kv_cache *kv, const struct kernels *k, int layer,
			   const float *q, int n_rep, int n_pos, float scale, float *out,
			   float *scratch, const uint8_t *krows, const uint8_t *vrows,
			   const float *ref_k, const float *ref_v)
{
	int hd = kv->head_dim;
	size_t ld = (size_t)kv->n_ctx;
	float *p = scratch, *work = p + KV_QGROUP * ld, *p_ref = work + kv_work_floats(hd);
	float *o_ref = p_ref + ld, *o_k = o_ref + hd, *o_v = o_k + hd;
	struct kv_cmp_sums sum = { 0 };
	for (int r = 0; r < n_rep; r++) {
		const float *qr = q + (size_t)r * hd;
		float *o = out + (size_t)r * hd;
		kv->fk->score(&kv->sk, k, qr, 1, krows, n_pos, hd, scale, p, ld, work);
		k->attn_dot_rows(p_ref, qr, ref_k, n_pos, hd, scale);
		sum.score_err += sq_diff(p, p_ref, n_pos);
		sum.n_scores += n_pos;
		ops_softmax(p, n_pos);
		ops_softmax(p_ref, n_pos);
		double tv = 0.0;
		for (int t = 0; t < n_pos; t++)
			tv += fabs((double)p[t] - p_ref[t]);
		sum.tv += tv / 2;
		sum.n_rows += 1;
		kv->fv->accumulate(&kv->sv, k, o, 1, p, ld, vrows, n_pos, hd, work);
		k->attn_wsum(o_ref, p_ref, ref_v, n_pos, hd);
		k->attn_wsum(o_k, p, ref_v, n_pos, hd);
		kv->fv->accumulate(&kv->sv, k, o_v, 1, p_ref, ld, vrows, n_pos, hd, work);
		sum.err_kv += sq_diff(o, o_ref, hd);
		sum.err_k += sq_diff(o_k, o_ref, hd);
		sum.err_v += sq_diff(o_v, o_ref, hd);
		for (int i = 0; i < hd; i++)
			sum.ref += (double)o_ref[i] * o_ref[i];
	}
	if (layer >= KV_CMP_MAX_LAYERS)
		return;
	pthread_mutex_lock(&g_cmp.mu);
	struct kv_cmp_sums *l = &g_cmp.layer[layer];
	l->err_kv += sum.err_kv, l->err_k += sum.err_k, l->err_v += sum.err_v, l->ref += sum.ref;
	l->score_err += sum.score_err, l->n_scores += sum.n_scores;
	l->tv += sum.tv, l->n_rows += sum.n_rows;
	if (layer + 1 > g_cmp.n_layer)
		g_cmp.n_layer = layer + 1;
	pthread_mutex_unlock(&g_cmp.mu);
}

void kv_compare_report(FILE *fp)
{
	pthread_mutex_lock(&g_cmp.mu);
	fprintf(fp, "attention output against an f32 cache, per attention layer "
		"(relative error = sqrt(sum |o - o_f32|^2 / sum |o_f32|^2)):\n");
	fprintf(fp, "| layer | rel. error K+V | K only | V only | score RMS error | softmax TV |\n");
	fprintf(fp, "| --- | --- | --- | --- | --- | --- |\n");
	struct kv_cmp_sums all = { 0 };
	for (int i = 0; i < g_cmp.n_layer; i++) {
		const struct kv_cmp_sums *l = &g_cmp.layer[i];
		if (!(l->ref > 0) || !(l->n_rows > 0))
			continue;
		fprintf(fp, "| %d | %.5f | %.5f | %.5f | %.5f | %.5f |\n", i, sqrt(l->err_kv / l->ref),
			sqrt(l->err_k / l->ref), sqrt(l->err_v / l->ref),
			sqrt(l->score_err / l->n_scores), l->tv / l->n_rows);
		all.err_kv += l->err_kv, all.err_k += l->err_k, all.err_v += l->err_v;
		all.ref += l->ref, all.score_err += l->score_err, all.n_scores += l->n_scores;
		all.tv += l->tv, all.n_rows += l->n_rows;
	}
	if (all.ref > 0 && all.n_rows > 0)
		fprintf(fp, "| all | %.5f | %.5f | %.5f | %.5f | %.5f |\n", sqrt(all.err_kv / all.ref),
			sqrt(all.err_k / all.ref), sqrt(all.err_v / all.ref),
			sqrt(all.score_err / all.n_scores), all.tv / all.n_rows);
	pthread_mutex_unlock(&g_cmp.mu);
}

int kv_type_from_name(const char *name)
{
	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++)
		if (!strcmp(name, formats[i].name))
			return (int)i;
	return -1;
}

const char *kv_type_names(void)
{
	return "f32, f16, q8_0, tq4, tq3.5, tq3, tq2.5 (and tq4p ... tq2.5p, the inner-product variant)";
}

size_t kv_bytes_per_token(int n_layer, int n_head_kv, int head_dim, enum kv_type tk,
			  enum kv_type tv)
{
	struct kv_fmt_state sk, sv;
	if (fmt_state_init(&formats[tk], head_dim, &sk) || fmt_state_init(&formats[tv], head_dim, &sv))
		return 0;
	return (size_t)n_layer * n_head_kv *
	       (formats[tk].row_bytes(&sk, head_dim) + formats[tv].row_bytes(&sv, head_dim));
}

struct kv_cache *kv_new(int n_layer, int n_head_kv, int head_dim, int n_ctx, enum kv_type tk,
			enum kv_type tv, struct fm_mem *mem, struct fm_error *err)
{
	struct kv_cache *kv = calloc(1, sizeof(*kv));
	if (!kv) {
		fm_err(err, FM_ENOMEM, NULL, FM_NO_OFFSET, "out of memory");
		return NULL;
	}
	*kv = (struct kv_cache){ .n_layer = n_layer, .n_head_kv = n_head_kv, .head_dim = head_dim,
				 .n_ctx = n_ctx, .fk = &formats[tk], .fv = &formats[tv], .mem = mem };
	if (!fmt_state_init(kv->fk, head_dim, &kv->sk) && !fmt_state_init(kv->fv, head_dim, &kv->sv)) {
		kv->kb = kv->fk->row_bytes(&kv->sk, head_dim);
		kv->vb = kv->fv->row_bytes(&kv->sv, head_dim);
	}
	if (!kv->kb || !kv->vb) {
		fm_err(err, FM_EUNSUPPORTED, NULL, FM_NO_OFFSET,
		       "KV cache type %s/%s cannot hold heads of %d values (q8_0: a multiple of "
		       "32; tq*: 64, 128 or 256)", kv->fk->name, kv->fv->name, head_dim);
		goto fail;
	}
	uint64_t rows;
	if (!fm_mul_ok((uint64_t)n_layer * n_head_kv, (uint64_t)n_ctx, &rows) ||
	    !fm_mul_ok(rows, kv->kb, &kv->bytes_k) || !fm_mul_ok(rows, kv->vb, &kv->bytes_v) ||
	    kv->bytes_k > SIZE_MAX / 2 || kv->bytes_v > SIZE_MAX / 2) {
		fm_err(err, FM_ERANGE, NULL, FM_NO_OFFSET, "KV cache for %d tokens is too large",
		       n_ctx);
		goto fail;
	}
	size_t left = fm_mem_left(mem);
	kv->k = fm_alloc(mem, kv->bytes_k);
	kv->v = kv->k ? fm_alloc(mem, kv->bytes_v) : NULL;
	if (!kv->v) {
		size_t all = kv->bytes_k + kv->bytes_v, per_tok = all / (size_t)n_ctx;
		fm_err(err, FM_ENOMEM, NULL, FM_NO_OFFSET,
		       "a KV cache of %d tokens (%s/%s) needs %.1f MiB (%.1f KiB per token), more than "
		       "the %.1f MiB left of %s; a context of at most %zu tokens fits", n_ctx,
		       kv->fk->name, kv->fv->name, all / 1048576.0, per_tok / 1024.0,
		       left / 1048576.0, mem && mem->budget_bytes ? "the --mem budget" : "free RAM",
		       per_tok ? left / per_tok : 0);
		goto fail;
	}
	if (kv_compare_enabled()) {
		kv->ref_k = malloc(rows * hd_bytes_f32(head_dim));
		kv->ref_v = malloc(rows * hd_bytes_f32(head_dim));
		if (!kv->ref_k || !kv->ref_v) {
			fm_err(err, FM_ENOMEM, NULL, FM_NO_OFFSET,
			       "no memory for the f32 copy of the KV cache that --kv-compare needs");
			goto fail;
		}
	}
	return kv;
fail:
	kv_free(kv);
	return NULL;
}

void kv_free(struct kv_cache *kv)
{
	if (!kv)
		return;
	fm_free(kv->mem, kv->k, kv->bytes_k);
	fm_free(kv->mem, kv->v, kv->bytes_v);
	free(kv->ref_k);
	free(kv->ref_v);
	free(kv);
}

size_t kv_bytes(const struct kv_cache *kv)
{
	return kv->bytes_k + kv->bytes_v;
}

int kv_n_ctx(const struct kv_cache *kv)
{
	return kv->n_ctx;
}

size_t kv_scratch_floats(const struct kv_cache *kv)
{
	/* scores of a group of query heads, the formats' work; --kv-compare: a
	 * second score row, three outputs */
	size_t n = KV_QGROUP * (size_t)kv->n_ctx + kv_work_floats(kv->head_dim);
	if (kv->ref_k)
		n += (size_t)kv->n_ctx + 3 * (size_t)kv->head_dim;
	return n;
}

/* Row index of (layer, head, pos). */
static size_t kv_row(const struct kv_cache *kv, int layer, int h, int pos)
{
	return ((size_t)layer * kv->n_head_kv + h) * kv->n_ctx + pos;
}

void kv_store(struct kv_cache *kv, int layer, int pos, const float *k, const float *v)
{
	int hd = kv->head_dim;
	for (int h = 0; h < kv->n_head_kv; h++) {
		size_t r = kv_row(kv, layer, h, pos);
		kv->fk->store(&kv->sk, k + (size_t)h * hd, kv->k + r * kv->kb, hd);
		kv->fv->store(&kv->sv, v + (size_t)h * hd, kv->v + r * kv->vb, hd);
		if (kv->ref_k) {
			memcpy(kv->ref_k + r * hd, k + (size_t)h * hd, hd_bytes_f32(hd));
			memcpy(kv->ref_v + r * hd, v + (size_t)h * hd, hd_bytes_f32(hd));
		}
	}
}

void kv_replicate(struct kv_cache *kv, int n_src, int n_dst)
{
	if (n_src < 1 || n_dst > kv->n_ctx)
		return;
	int hd = kv->head_dim;
	for (int l = 0; l < kv->n_layer; l++)
		for (int h = 0; h < kv->n_head_kv; h++)
			for (int t = n_src; t < n_dst; t++) {
				size_t r = kv_row(kv, l, h, t), s = kv_row(kv, l, h, t % n_src);
				memcpy(kv->k + r * kv->kb, kv->k + s * kv->kb, kv->kb);
				memcpy(kv->v + r * kv->vb, kv->v + s * kv->vb, kv->vb);
				if (kv->ref_k) {
					memcpy(kv->ref_k + r * hd, kv->ref_k + s * hd, hd_bytes_f32(hd));
					memcpy(kv->ref_v + r * hd, kv->ref_v + s * hd, hd_bytes_f32(hd));
				}
			}
}

void kv_attend(const struct kv_cache *kv, const struct kernels *k, int layer, int h,
	       const float *q, int n_rep, int n_pos, float scale, float *out, float *scratch)
{
	int hd = kv->head_dim;
	size_t ld = (size_t)kv->n_ctx;
	float *work = scratch + KV_QGROUP * ld;
	size_t r0 = kv_row(kv, layer, h, 0);
	const uint8_t *krows = kv->k + r0 * kv->kb, *vrows = kv->v + r0 * kv->vb;
	if (kv->ref_k) {
		compare_attend(kv, k, layer, q, n_rep, n_pos, scale, out, scratch, krows, vrows,
			       kv->ref_k + r0 * hd, kv->ref_v + r0 * hd);
		return;
	}
	for (int r0q = 0; r0q < n_rep; r0q += KV_QGROUP) {
		int nq = n_rep - r0q < KV_QGROUP ? n_rep - r0q : KV_QGROUP;
		kv->fk->score(&kv->sk, k, q + (size_t)r0q * hd, nq, krows, n_pos, hd, scale, scratch,
			      ld, work);
		for (int r = 0; r < nq; r++)
			ops_softmax(scratch + r * ld, n_pos);
		kv->fv->accumulate(&kv->sv, k, out + (size_t)r0q * hd, nq, scratch, ld, vrows, n_pos,
				   hd, work);
	}
}
