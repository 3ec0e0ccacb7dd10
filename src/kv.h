/* kv.h: the KV cache of the attention layers, behind one interface so that
 * formats (f32, f16, q8_0, TurboQuant) are interchangeable.
 *
 * Layout: per layer and KV head, positions [0, n_ctx) of head_dim values each.
 * K is stored after k_norm and RoPE (architectures.md §11.12). Attention reads
 * the cache only through kv_attend, so a compressed format can score queries
 * against its own representation. */
#ifndef FM_KV_H
#define FM_KV_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "kernels/kernels.h"
#include "util.h"

enum kv_type {
	KV_F32, KV_F16, KV_Q8_0,
	KV_TQ4, KV_TQ3_5, KV_TQ3, KV_TQ2_5,      /* TurboQuant_mse */
	KV_TQ4P, KV_TQ3_5P, KV_TQ3P, KV_TQ2_5P,  /* TurboQuant_prod (keys) */
};

struct kv_cache;

/* NULL when the budget or the OS refuses (err filled). */
struct kv_cache *kv_new(int n_layer, int n_head_kv, int head_dim, int n_ctx, enum kv_type tk,
			enum kv_type tv, struct fm_mem *mem, struct fm_error *err);
void kv_free(struct kv_cache *kv);
size_t kv_bytes(const struct kv_cache *kv);
int kv_n_ctx(const struct kv_cache *kv);
/* -1 if name is unknown. */
int kv_type_from_name(const char *name);
/* "f32, f16, q8_0", for messages. */
const char *kv_type_names(void);
/* Bytes of K and V rows one token adds over n_layer layers of n_head_kv heads. */
size_t kv_bytes_per_token(int n_layer, int n_head_kv, int head_dim, enum kv_type tk,
			  enum kv_type tv);

/* Store one position's K and V for all KV heads of a layer:
 * k, v are [n_head_kv][head_dim]. */
void kv_store(struct kv_cache *kv, int layer, int pos, const float *k, const float *v);

/* Benchmarks only (flashmoe bench -d): positions [n_src, n_dst) of every
 * layer and head become copies of positions [0, n_src), cyclically. */
void kv_replicate(struct kv_cache *kv, int n_src, int n_dst);

/* Causal attention of n_rep query heads that share KV head h, over positions
 * [0, n_pos): out[r] = sum_t softmax_t(q[r] . K[t] * scale) V[t].
 * q, out: [n_rep][head_dim]; scratch: kv_scratch_floats() floats. Thread-safe for distinct
 * (out, scratch). k: the kernel table (its attention loops). */
/* Floats of scratch kv_attend needs: a score per position for each query head
 * of a group of 8, and the formats' work space (more with --kv-compare). */
size_t kv_scratch_floats(const struct kv_cache *kv);
void kv_attend(const struct kv_cache *kv, const struct kernels *k, int layer, int h,
	       const float *q, int n_rep, int n_pos, float scale, float *out, float *scratch);

/* Diagnostics (flashmoe perplexity --kv-compare): caches made after
 * kv_compare_enable keep an f32 copy of their rows outside the budget, and
 * kv_attend sums, per attention layer, the error of its outputs against
 * attention on the copy (K and V, K only, V only), the scores' RMS error and
 * the softmax weights' total variation; kv_compare_report prints the table. */
void kv_compare_enable(void);
int kv_compare_enabled(void);
void kv_compare_report(FILE *fp);

#endif
