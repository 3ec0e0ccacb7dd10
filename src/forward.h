/* forward.h: tokens through the layers (architectures.md §5): a batch of
 * prompt tokens (matrix-matrix) or one generated token, the same code. */
#ifndef FM_FORWARD_H
#define FM_FORWARD_H

#include <stdbool.h>
#include <stdint.h>

#include "matmul.h"
#include "model.h"
#include "pool.h"

struct fwd;
struct seq_state;

/* Scratch for batches of up to n_batch tokens of sequences of up to n_ctx
 * positions whose attention needs att_floats of scratch per thread
 * (kv_scratch_floats of their KV cache; 0 without attention layers). One
 * fwd may serve any number of sequences, one batch at a time. */
struct fwd *fwd_new(const struct model *m, const struct kernels *k, struct pool *pool,
		    int n_batch, int n_ctx, size_t att_floats, struct fm_mem *mem,
		    struct fm_error *err);
/* Seconds spent per phase (block boundaries: STYLE "telemetry"). */
struct fwd_times {
	double attn_s, gdn_s, route_s, experts_s, shared_s, head_s;
};
/* The times summed since the last call, and zero them. */
void fwd_take_times(struct fwd *f, struct fwd_times *out);
/* Tokens run so far (the routing trace's token numbers); a fwd made to
 * replace another continues its count. */
uint64_t fwd_tokens_seen(const struct fwd *f);
void fwd_set_tokens_seen(struct fwd *f, uint64_t n);
/* The model's hyperparameters (for the architectures' layer functions). */
const struct hparams *fwd_hparams(const struct fwd *f);
void fwd_free(struct fwd *f);
struct experts;
struct experts_trace;
/* Read routed experts through the store x (NULL: from the mapping), write
 * routing decisions to trace (may be NULL), prefetch the next layer's guess. */
void fwd_set_experts(struct fwd *f, struct experts *x, struct experts_trace *trace, bool prefetch);

/* Run tokens[0..n) of the sequence whose state is st at positions pos0..
 * (n <= n_batch, pos0 + n <= its n_ctx). logits: NULL, the last token's
 * n_vocab logits, or all n x n_vocab. */
int fwd_batch(struct fwd *f, struct seq_state *st, const int32_t *tokens, int n, int pos0,
	      float *logits, bool all_logits, struct fm_error *err);

/* One sequence's part of a step: n tokens at positions pos0.. of the
 * sequence whose state is st; logits: NULL or n_vocab floats for the last. */
struct fwd_item {
	struct seq_state *st;
	const int32_t *tokens;
	int n, pos0;
	float *logits;
};
/* Run the items (distinct sequences, together at most n_batch tokens) as one
 * batch: attention and the DeltaNet per item on its own state, the MoE over
 * all tokens at once (each routed expert read and multiplied once). Any
 * sequence of the model may be given whose context fits the fwd (n_ctx,
 * att_floats). 0 or a negative code
 * (nothing checked fails after a state was touched, except an I/O error of
 * the expert store). */
int fwd_step(struct fwd *f, const struct fwd_item *items, int n_items, struct fm_error *err);

#endif
