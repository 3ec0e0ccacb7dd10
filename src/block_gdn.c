/* block_gdn.c: the Gated DeltaNet token mixer of Qwen3-Next / Qwen3.5
 * (architectures.md §6.3, §7; llama.cpp's qwen3next / qwen35moe graphs):
 *
 *   x = rmsnorm(h)
 *   X = W_qkv x = [q | k | v];  z = W_z x;  b, a = W_ba x (or W_beta x, W_alpha x)
 *   Y = silu(causal_conv(X))          (rolling state: the last conv_k-1 inputs)
 *   q = l2norm(Y_q) / sqrt(dk);  k = l2norm(Y_k);  v = Y_v
 *   beta = sigmoid(b);  g = ssm_a * softplus(a + dt_bias)    (ssm_a = -exp(A_log))
 *   o = delta_rule(q, k, v, g, beta; S)   token by token, or chunked for prompts
 *   h += W_out (rmsnorm(o) * w_norm * silu(z))   per value head
 *
 * The math is in gdn.c; this file feeds it the projections and splits the
 * work over the pool: conv by channel ranges, the rule by value heads, each
 * for every segment of the batch (a sequence: its own conv and recurrent
 * state, its tokens in order). */
#include <math.h>

#include "blocks.h"
#include "fwd_internal.h"
#include "ops.h"

struct gdn_task {
	struct fwd *f;
	const struct layer_weights *l;
	int slot;
	int per;                 /* channels per conv task */
	int n_conv;              /* conv tasks per segment */
};

/* Task = (segment, channel range). */
static void conv_run(void *arg, int task, int thread)
{
	struct gdn_task *gt = arg;
	struct fwd *f = gt->f;
	(void)thread;
	const struct fwd_seg *sg = &f->segs[task / gt->n_conv];
	size_t C = (size_t)f->gdn_ch, r0 = (size_t)sg->t0 * C;
	int c0 = task % gt->n_conv * gt->per, c1 = c0 + gt->per < f->gdn_ch ? c0 + gt->per : f->gdn_ch;
	gdn_conv(&f->gdn, f->gx + r0, C, sg->n, gt->l->ssm_conv, state_conv(sg->st, gt->slot),
		 f->gy + r0, C, c0, c1);
}

/* Task = (segment, value head). */
static void rule_run(void *arg, int task, int thread)
{
	struct gdn_task *gt = arg;
	struct fwd *f = gt->f;
	const struct gdn_shape *s = &f->gdn;
	const struct fwd_seg *sg = &f->segs[task / s->nv];
	int j = task % s->nv;
	size_t C = (size_t)f->gdn_ch, kd = (size_t)s->nk * s->dk, nv = (size_t)s->nv;
	size_t V = nv * s->dv, t0 = (size_t)sg->t0;
	const float *y = f->gy + t0 * C;
	gdn_rule(s, y, y + kd, C, y + 2 * kd, C, f->gg + t0 * nv, f->gbeta + t0 * nv, nv, sg->n,
		 state_rec(sg->st, gt->slot), f->go + t0 * V, V, j, j + 1,
		 sg->n > 1 ? FWD_GDN_CHUNK : 0, f->gdn_scratch + (size_t)thread * f->gdn_scratch_floats);
}

static float softplus(float x)
{
	return x > 20.0f ? x : log1pf(expf(x));
}

/* Per token: L2-normalised q (scaled) and k in place; decay and write
 * strength of every value head from its b and a. */
static void gates(struct fwd *f, const struct layer_weights *l, int n)
{
	const struct gdn_shape *s = &f->gdn;
	float eps = f->hp->rms_eps, qscale = 1.0f / sqrtf((float)s->dk);
	int r = s->nv / s->nk;
	bool interleaved = !(f->hp->arch->flags & ARCH_V_TILED); /* qwen3next's ssm_ba */
	for (int t = 0; t < n; t++) {
		float *y = f->gy + (size_t)t * f->gdn_ch;
		gdn_l2norm_heads(y, s->nk, s->dk, eps, qscale);
		gdn_l2norm_heads(y + (size_t)s->nk * s->dk, s->nk, s->dk, eps, 1.0f);
		const float *ba = f->gba + (size_t)t * 2 * s->nv;
		for (int j = 0; j < s->nv; j++) {
			/* qwen3next: per key group g, [b x r | a x r]; qwen35: [b | a] */
			int g = j / r, m = j % r;
			float b = interleaved ? ba[g * 2 * r + m] : ba[j];
			float a = interleaved ? ba[g * 2 * r + r + m] : ba[s->nv + j];
			f->gbeta[(size_t)t * s->nv + j] = 1.0f / (1.0f + expf(-b));
			f->gg[(size_t)t * s->nv + j] = l->ssm_a[j] * softplus(a + l->ssm_dt[j]);
		}
	}
}

void block_gdn(struct fwd *f, int il, int n)
{
	const struct hparams *hp = f->hp;
	const struct layer_weights *l = &f->m->w.layers[il];
	const struct gdn_shape *s = &f->gdn;
	size_t V = (size_t)s->nv * s->dv, nv2 = 2 * (size_t)s->nv;
	double t0 = fm_now_s();
	rmsnorm_rows(f->xn, f->h, l->attn_norm, hp->n_embd, n, hp->rms_eps);
	act_reset(&f->act, f->xn, hp->n_embd, n);
	mm_job_init(&f->job, f->k);
	fwd_add_product(f, &l->ssm_qkv, f->gx, (size_t)f->gdn_ch);
	fwd_add_product(f, &l->ssm_z, f->gz, V);
	if (l->ssm_ba.data) {
		fwd_add_product(f, &l->ssm_ba, f->gba, nv2);
	} else {
		fwd_add_product(f, &l->ssm_beta, f->gba, nv2);
		fwd_add_product(f, &l->ssm_alpha, f->gba + s->nv, nv2);
	}
	mm_run(&f->job, f->pool);
	int nth = pool_n_threads(f->pool);
	struct gdn_task gt = { f, l, hp->state_slot[il], 0, 0 };
	gt.per = (f->gdn_ch + 4 * nth - 1) / (4 * nth);
	gt.per = (gt.per + 15) & ~15;
	gt.n_conv = (f->gdn_ch + gt.per - 1) / gt.per;
	pool_run(f->pool, conv_run, &gt, f->n_segs * gt.n_conv);
	gates(f, l, n);
	pool_run(f->pool, rule_run, &gt, f->n_segs * s->nv);
	for (int t = 0; t < n; t++)
		gdn_norm_gated(f->go + (size_t)t * V, f->go + (size_t)t * V, f->gz + (size_t)t * V,
			       l->ssm_norm, s->nv, s->dv, hp->rms_eps);
	act_reset(&f->act, f->go, (int)V, n);
	mm_job_init(&f->job, f->k);
	fwd_add_product(f, &l->ssm_out, f->tmp, (size_t)hp->n_embd);
	mm_run(&f->job, f->pool);
	for (size_t i = 0; i < (size_t)n * hp->n_embd; i++)
		f->h[i] += f->tmp[i];
	f->times.gdn_s += fm_now_s() - t0;
}
