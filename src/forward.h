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

/* Scratch for batches of up to n_batch tokens of the sequence whose state
 * (KV rows, recurrent state) is st. */
struct fwd *fwd_new(const struct model *m, const struct kernels *k, struct pool *pool,
		    struct seq_state *st, int n_batch, struct fm_mem *mem, struct fm_error *err);
/* Seconds spent per phase (block boundaries: STYLE "telemetry"). */
struct fwd_times {
	double attn_s, gdn_s, route_s, experts_s, shared_s, head_s;
};
/* The times summed since the last call, and zero them. */
void fwd_take_times(struct fwd *f, struct fwd_times *out);
/* The model's hyperparameters (for the architectures' layer functions). */
const struct hparams *fwd_hparams(const struct fwd *f);
void fwd_free(struct fwd *f);
struct experts;
struct experts_trace;
/* Read routed experts through the store x (NULL: from the mapping), write
 * routing decisions to trace (may be NULL), prefetch the next layer's guess. */
void fwd_set_experts(struct fwd *f, struct experts *x, struct experts_trace *trace, bool prefetch);

/* Run tokens[0..n) at positions pos0.. (n <= n_batch, pos0 + n <= n_ctx).
 * logits: NULL, the last token's n_vocab logits, or all n x n_vocab. */
int fwd_batch(struct fwd *f, const int32_t *tokens, int n, int pos0, float *logits,
	      bool all_logits, struct fm_error *err);

#endif
