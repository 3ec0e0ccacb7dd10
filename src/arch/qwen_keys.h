/* qwen_keys.h: the GGUF keys the Qwen3 MoE family shares (architectures.md
 * §9.2), one table row each, read in this order (a default may refer to a
 * field read before it). One-level macro for the tables of src/arch/. */
#ifndef FM_ARCH_QWEN_KEYS_H
#define FM_ARCH_QWEN_KEYS_H

#include <stddef.h>

#include "model.h"

#define HP(f) offsetof(struct hparams, f)
#define LW(f) offsetof(struct layer_weights, f)
#define MW(f) offsetof(struct model_weights, f)

#define QWEN_KEYS                                                                              \
	{ "block_count", AK_U32, HP(n_block), true, 0, -1, -1, false },                               \
	{ "embedding_length", AK_U32, HP(n_embd), true, 0, -1, -1, false },                           \
	{ "attention.head_count", AK_U32, HP(n_head), true, 0, -1, -1, false },                       \
	{ "attention.head_count_kv", AK_U32, HP(n_head_kv), false, 0, HP(n_head), -1, false },        \
	{ "attention.key_length", AK_U32, HP(head_dim), false, 0, HP(n_embd), HP(n_head), false },    \
	{ "attention.value_length", AK_U32, HP(head_dim_v), false, 0, HP(head_dim), -1, false },      \
	{ "rope.dimension_count", AK_U32, HP(n_rot), false, 0, HP(head_dim), -1, false },             \
	{ "expert_count", AK_U32, HP(n_expert), true, 0, -1, -1, false },                             \
	{ "expert_used_count", AK_U32, HP(n_expert_used), true, 0, -1, -1, false },                   \
	{ "expert_feed_forward_length", AK_U32, HP(n_ff_exp), false, 0, -1, -1, false },              \
	{ "context_length", AK_U32, HP(n_ctx_train), false, 4096, -1, -1, false },                    \
	{ "attention.layer_norm_rms_epsilon", AK_F32, HP(rms_eps), false, 1e-6, -1, -1, false },      \
	{ "rope.freq_base", AK_F32, HP(rope_theta), false, 10000.0, -1, -1, false },                  \
	{ "expert_weights_norm", AK_BOOL, HP(norm_topk), false, 1, -1, -1, false }

#endif
