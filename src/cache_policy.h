/* cache_policy.h: eviction policies for a cache of n_slots equal slots holding
 * keys in [0, n_keys) (key = layer * n_expert + expert), shared by the live
 * expert cache (experts.c) and the offline simulator (cachesim.c), so that
 * what the simulator measures is what the engine does.
 *
 *   LRU  least recently used.
 *   LFU  LFU with dynamic ageing (LFU-DA, Arlitt et al. 2000, uniform sizes)
 *        and a key history: a key's priority, set when it is accessed, is
 *        L + the key's access count (kept across evictions: a hot expert that
 *        was pushed out comes back ranked as hot), where L is the priority of
 *        the last victim; the lowest priority goes (ties: least recent). L
 *        rising ages out keys that are no longer used. Counting only while
 *        cached (textbook LFU-DA) degenerates to LRU whenever the cache is
 *        smaller than one token's n_layer * k experts (nothing ever hits, so
 *        nothing gains a count); with the history it keeps the hot experts:
 *        on a Zipf(0.6) trace with 5% of experts cached, 0% -> 10% hits.
 *   ARC  Adaptive Replacement Cache (Megiddo & Modha, FAST 2003): recency list
 *        T1 and frequency list T2, ghost lists B1/B2 of recently evicted keys
 *        steer the target size of T1.
 *   PRED evicts the expert whose next use it expects latest (Belady's rule
 *        with a forecast): expected lines until the next use = w_dist * the
 *        lines until its layer's next request + n_layer * (1 - q) / q, where
 *        q, its chance of being chosen by the next token, is a decayed
 *        selection frequency (per token of its layer) plus the router's
 *        latest probability for it. Needs each token's routing
 *        (cache_policy_route); knows what LRU/LFU do not: the full score
 *        vector, the layer order of the requests, and (set_cost) what
 *        each layer's experts cost to read: the expected time is divided
 *        by that relative cost.
 *   MIN  Belady's optimal policy (evict the key used farthest in the future);
 *        needs each access's next-use time, so the simulator only.
 *
 * The policy only ranks; the caller owns the slots and says which may go
 * (a pinned or in-flight slot may not) through an evictable callback.
 * Protocol: a free slot is filled with cache_policy_insert; when none is free
 * the caller asks cache_policy_evict for a victim (already forgotten by the
 * policy when it returns), empties it, and fills it with cache_policy_insert.
 * A hit is cache_policy_hit. An emptied slot that was not chosen by the
 * policy (a failed read) is cache_policy_drop'ed.
 *
 * next_use (MIN only; others ignore it): the time of the key's next access,
 * on any increasing scale; UINT64_MAX when never.
 *
 * Not thread-safe (one thread owns the cache). Follows the papers named above.
 */
#ifndef FM_CACHE_POLICY_H
#define FM_CACHE_POLICY_H

#include <stdbool.h>
#include <stdint.h>

enum cache_policy_kind {
	CACHE_POLICY_LRU,
	CACHE_POLICY_LFU,
	CACHE_POLICY_ARC,
	CACHE_POLICY_PRED,
	CACHE_POLICY_MIN,
	CACHE_POLICY_COUNT
};

/* The default for the live cache: PRED, the best online policy of
 * cache-sim on the synthetic, brown-moe and r128 traces at 10, 20 and 33% of
 * the experts (docs/BENCHMARKS.md; LFU before it, see cachesim.c). */
#define CACHE_POLICY_DEFAULT CACHE_POLICY_PRED

/* May slot be evicted now? */
typedef bool (*cache_evictable_fn)(void *ctx, uint32_t slot);

struct cache_policy;

/* "lru", "lfu", "arc", "min"; NULL for a bad kind. */
const char *cache_policy_name(enum cache_policy_kind k);
/* The kind named s, or -1. */
int cache_policy_from_name(const char *s);

/* NULL on bad sizes (0, or n_keys >= UINT32_MAX) or no memory. */
struct cache_policy *cache_policy_new(enum cache_policy_kind k, uint32_t n_slots, uint32_t n_keys);
/* The same for keys layer * n_expert + expert (PRED needs the layers). */
struct cache_policy *cache_policy_new_layers(enum cache_policy_kind k, uint32_t n_slots,
					     uint32_t n_layer, uint32_t n_expert);
void cache_policy_free(struct cache_policy *p);

/* key (not cached) now fills the empty slot. */
void cache_policy_insert(struct cache_policy *p, uint32_t slot, uint32_t key, uint64_t next_use);
/* The key in slot was accessed. */
void cache_policy_hit(struct cache_policy *p, uint32_t slot, uint64_t next_use);
/* Choose a full slot to empty for incoming key key_in (ARC needs to know
 * it) among those ok(ctx, slot) allows; the policy forgets it. -1 if none. */
int64_t cache_policy_evict(struct cache_policy *p, uint32_t key_in, cache_evictable_fn ok,
			   void *ctx);
/* The slot was emptied for another reason; forget it. */
void cache_policy_drop(struct cache_policy *p, uint32_t slot);
/* PRED's settings (cache-sim --pred tunes them; the engine uses the
 * defaults). */
struct cache_pred_params {
	float decay;   /* per token of a layer, of the frequency averages */
	float w_use;   /* weight of the decayed selection frequency */
	float w_soft;  /* weight of the decayed router probability */
	float w_now;   /* weight of the latest router probability */
	float q_min;   /* floor of the predicted use probability */
	float w_dist;  /* weight of the lines until the layer's next request */
};
/* Tuned with cache-sim on the brown-moe, r128 and synthetic traces
 * (docs/BENCHMARKS.md): the decay matters most (0.95 -> 0.995: +1 point),
 * the layer distance and the latest probability a few tenths each. */
#define CACHE_PRED_DEFAULT {0.995f, 1.0f, 0.0f, 1.0f, 0.01f, 2.0f}
/* NULL: the defaults. */
void cache_policy_set_pred(struct cache_policy *p, const struct cache_pred_params *q);

/* What reading an expert of layer costs, relative to the other layers (1 =
 * the default for all): PRED divides an expert's expected time to its next
 * use by it, so an expensive expert stays longer. No-op for the others. */
void cache_policy_set_cost(struct cache_policy *p, uint32_t layer, float cost);

/* One token's routing at layer: the router's probabilities over the layer's
 * n_expert experts (NULL when unknown) and the sel[0..n_sel) it chose. Call
 * once per token and layer before that layer's request (its hits and
 * misses); PRED learns from it, the other policies ignore it. */
void cache_policy_route(struct cache_policy *p, uint32_t layer, const float *probs,
			const int32_t *sel, int n_sel);

/* Cache-aware routing (the idea of arXiv 2412.00099, "Mixture of
 * Cache-Conditional Experts"): one token's top-k sel[0..k) of probabilities
 * probs[0..n_expert). Every selected expert that is not cached (cached(ctx, e)
 * false) and whose renormalised weight p_e / sum_sel p is below thresh is
 * replaced by the cached, not selected expert of highest probability (the
 * closest score below it), if there is one; selected experts are visited from
 * the lowest weight up. w[0..k) is then recomputed for the final set:
 * p_e / sum over the set when norm, else p_e. thresh <= 0 changes nothing.
 * Deterministic given the cache; returns the number of experts replaced
 * (0 when k > 64: not supported). */
typedef bool (*cache_cached_fn)(void *ctx, int32_t expert);
int cache_route(const float *probs, int n_expert, int32_t *sel, float *w, int k, float thresh,
		bool norm, cache_cached_fn cached, void *ctx);

#endif
