/* blocks.h: the blocks an architecture's layer function composes. Each
 * reads the residual stream h of the batch (struct fwd), normalises it with
 * the layer's norm and adds its output back. A batch may hold tokens of
 * several sequences (fwd's segments): the token mixers run each segment on
 * its own state and positions, the MoE sees every token at once:
 *   block_attention: causal GQA attention over the sequence's KV rows;
 *     plain (qwen3moe) or gated (ARCH_GATED_ATTN), rotary over n_rot dims
 *   block_gdn: Gated DeltaNet over the sequence's conv and recurrent state
 *   block_moe: routed experts (resident or streamed), plus the shared
 *     expert when the architecture has one (ARCH_SHARED_EXPERT) */
#ifndef FM_BLOCKS_H
#define FM_BLOCKS_H

#include "util.h"

struct fwd;

void block_attention(struct fwd *f, int il, int n);
void block_gdn(struct fwd *f, int il, int n);
int block_moe(struct fwd *f, int il, int n, struct fm_error *err);

#endif
