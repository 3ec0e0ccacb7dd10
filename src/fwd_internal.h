/* fwd_internal.h: the forward pass's scratch and the helpers its blocks
 * share (forward.c, block_attn.c, block_gdn.c, block_moe.c only). */
#ifndef FM_FWD_INTERNAL_H
#define FM_FWD_INTERNAL_H

#include "forward.h"
#include "gdn.h"
#include "state.h"

/* Activation formats a product may need; F32 rows are the floats themselves. */
enum { ACT_Q8_0, ACT_Q8_K, ACT_N };

struct act_buf {
	void *data[ACT_N];
	size_t cap_bytes[ACT_N];
	const float *src;    /* what the quantized rows hold */
	int n, n_tok;
	bool valid[ACT_N];
};

/* Where one expert's three matrices are for this layer's computation. */
struct expert_src {
	int e;
	const uint8_t *part[3];      /* gate, up, down */
};

struct experts_ref;

/* The batch's tokens [t0, t0 + n) belong to the sequence whose state is st,
 * at positions pos0.. (one segment for fm_eval, one per item for
 * fm_eval_batch). */
struct fwd_seg {
	struct seq_state *st;
	int t0, n, pos0;
};

struct fwd {
	const struct model *m;
	const struct hparams *hp;
	const struct kernels *k;
	struct pool *pool;
	struct fm_mem *mem;
	struct fwd_seg *segs;   /* [B] the current batch's segments */
	int n_segs;
	int *tok_seg;           /* [B] segment of each token */
	size_t att_floats;      /* per thread in att_scratch */
	float *head_stage;      /* a step's logits rows when g cannot hold them (grown) */
	size_t head_stage_bytes;
	int n_batch, n_ctx, q_dim, kv_dim, n_pair, wide; /* n_ctx: the longest sequence */
	size_t scratch_bytes;
	uint8_t *scratch;
	float *h, *xn;          /* [B][n_embd], [B][wide] */
	float *q, *kb, *vb;     /* [B][q_dim (x2 gated)], [B][kv_dim], [B][kv_dim] */
	float *gate;            /* [B][q_dim] attention output gate (gated archs) */
	float *attn;            /* [B][q_dim] */
	float *tmp;             /* [B][n_embd] */
	float *router;          /* [B][n_expert] */
	float *rope_cs;         /* [B][n_rot] */
	float *att_scratch;     /* [n_threads][kv_scratch_floats] */
	int *sel;               /* [B][K] expert ids */
	float *selw;            /* [B][K] weights */
	int *cnt, *first;       /* [n_expert] */
	int *pair_tok;          /* [B*K] token of each pair, grouped by expert */
	float *pair_w;          /* [B*K] */
	float *g, *u;           /* [B*K][n_ff] */
	float *down;            /* [B*K][n_embd] */
	float *xg;              /* [B*K][n_embd] gathered f32 rows (f32 act formats) */
	struct qmat *emats;     /* [3][n_expert] per-expert views */
	struct act_buf act;     /* x rows in activation formats */
	struct act_buf act_pair; /* gathered expert inputs, pair order */
	void *act_ff[ACT_N];    /* SwiGLU outputs (down inputs), pair order */
	struct mm_job job;
	/* shared expert (ARCH_SHARED_EXPERT) */
	float *sh_g, *sh_u;     /* [B][n_ff_shexp] */
	float *sh_gate;         /* [B] its sigmoid gate */
	/* Gated DeltaNet layers */
	struct gdn_shape gdn;
	int gdn_ch;             /* conv channels */
	float *gx, *gy;         /* [B][channels] conv input / output */
	float *gz;              /* [B][nv*dv] output gate z */
	float *gba;             /* [B][2*nv] b and a projections */
	float *gg, *gbeta;      /* [B][nv] log decay, write strength */
	float *go;              /* [B][nv*dv] rule output */
	float *gdn_scratch;     /* [n_threads][gdn_scratch_floats] */
	size_t gdn_scratch_floats;
	/* expert streaming (NULL: experts are read from the mapping) */
	struct experts *x;
	struct experts_trace *trace;
	bool prefetch;
	uint64_t n_tokens_seen;      /* token numbers of the trace */
	struct experts_ref *refs;    /* [n_expert] */
	struct expert_src *srcs;     /* [n_expert] */
	float *router_next;          /* [B][n_expert] the next layer's router */
	int32_t *guess;              /* [B*K] */
	struct fwd_times times;      /* summed since fwd_new / the last fwd_take_times */
};

/* Tokens per chunk of the DeltaNet's chunked prefill (HF and FLA use 64;
 * gdn.c measured 32 the fastest here: bench/bench_gdn.c) */
#define FWD_GDN_CHUNK GDN_CHUNK

void act_reset(struct act_buf *a, const float *src, int n, int n_tok);
/* y[t] = W x[t] for the rows held in f->act, added to the job in f->job. */
void fwd_add_product(struct fwd *f, const struct qmat *w, float *out, size_t out_stride);
/* Rows of a->src in the activation format of weight type wt; *stride set. */
const void *act_get(struct fwd *f, struct act_buf *a, enum ggml_type wt, size_t *stride);
int act_slot(enum ggml_type t);
void rmsnorm_rows(float *y, const float *x, const float *w, int n, int n_tok, float eps);

#endif
