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
	CACHE_POLICY_MIN,
	CACHE_POLICY_COUNT
};

/* The default for the live cache (measured on synthetic traces; see the
 * comment at the top of cachesim.c). */
#define CACHE_POLICY_DEFAULT CACHE_POLICY_LFU

/* May slot be evicted now? */
typedef bool (*cache_evictable_fn)(void *ctx, uint32_t slot);

struct cache_policy;

/* "lru", "lfu", "arc", "min"; NULL for a bad kind. */
const char *cache_policy_name(enum cache_policy_kind k);
/* The kind named s, or -1. */
int cache_policy_from_name(const char *s);

/* NULL on bad sizes (0, or n_keys >= UINT32_MAX) or no memory. */
struct cache_policy *cache_policy_new(enum cache_policy_kind k, uint32_t n_slots, uint32_t n_keys);
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

#endif
