/* experts.h: the expert store: where each (layer, expert) slice of the routed
 * experts' gate/up/down tensors lives in the model file, a RAM cache of
 * expert slots filled by asynchronous reads (io.h), the eviction policy
 * (cache_policy.h), prefetch, statistics and the routing trace.
 *
 * Owns: the slot slab (one allocation, charged to the caller's fm_mem), the
 * table (layer, expert) -> slot and slot -> (layer, expert), pins, the
 * current request. Does not own: the file (the io engine, borrowed), the math.
 *
 * Layout. Each expert's gate, up and down bytes are contiguous slices of the
 * layer's 3D tensors (llama.cpp's blk.N.ffn_{gate,up,down}_exps): expert e's
 * part p is [offset + e * stride, offset + e * stride + size) of the file.
 * A slot holds one expert: the aligned spans of its three parts, one after
 * the other, each starting page-aligned (io.h's alignment contract), so a
 * file with 32-byte tensor alignment costs up to 8 KiB of slack per part.
 *
 * Use, per MoE layer (one request at a time):
 *
 *   n = experts_request(x, L, ids, n_ids, refs, &err);  // hits ready, misses read
 *   ... compute the shared expert and every refs[i] with refs[i].ready,
 *       experts_done(x, refs[i].expert) after each; experts_prefetch(x, L + 1, guess, k) ...
 *   while ((rc = experts_wait(x, &ref, &err)) > 0)      // misses, in completion order
 *       compute ref; experts_done(x, ref.expert);
 *   experts_release(x);                                  // rc < 0: an I/O error (err)
 *
 * Requests take any list of ids (a prompt batch passes every token's top-k:
 * the union is looked up, each expert read once). Pins: every expert of the
 * current request is pinned from experts_request until experts_done or
 * experts_release, so neither its own misses nor prefetch evict it; a slot
 * being read is never evicted, and a slot is handed out only when all its
 * bytes arrived (never a partially read slot). When the request's misses
 * find no evictable slot (a batch needing more experts than slots), they wait
 * ("deferred") and start in experts_wait as experts_done frees slots; if
 * every slot is pinned and nothing is in flight, experts_wait fails with
 * FM_EINVAL (the caller held on to pins). The cache must hold at least
 * n_expert_used slots: experts_new refuses a smaller budget, naming the numbers.
 *
 * Prefetch: experts_prefetch(L + 1, guess) queues the guessed experts that
 * are not cached. A guess is a speculative read, and speculation only uses
 * what demand leaves idle:
 *   - a guess starts only while no demand read is in flight or waiting for a
 *     slot (the layer's "idle window" opens when its demand reads are all
 *     in), at most spec_depth (2) guessed experts are in flight, and only if
 *     it is expected in before the next layer's request: the window's mean
 *     length (from earlier layers) and the disk's seconds per byte while
 *     busy (from the io counters) say so. So on a disk too slow for the
 *     compute between layers nothing is guessed, and a demand read queues
 *     behind a guess only when the estimates were wrong; guesses not started
 *     when their layer is requested are dropped;
 *   - a guessed expert's slot stays outside the eviction policy until it is
 *     requested (then it enters the policy as a miss would), and the oldest
 *     unrequested one is the first slot any read takes, so wrong guesses
 *     recycle each other's slots instead of evicting what the policy keeps;
 *     speculation holds at most 2 * n_expert_used slots (and a quarter of
 *     the cache), and never evicts a pinned or in-flight slot.
 * A request that finds a guessed expert counts it used; one evicted first
 * counts wasted.
 *
 * Whether to prefetch at all (params.prefetch_auto) is measured, not assumed:
 * a guess costs bandwidth and slots, and pays only where the disk has idle
 * time and the guesses are right (next-layer prediction did not pay on the
 * hardware of several published engines). Forward passes of one token are
 * timed (from layer 0's request to the last layer's release, so time between
 * calls does not count). Once the cache is full (before, guesses evict
 * nothing and those passes are not like the later ones: prefetch runs), a
 * probe of 32 passes runs 16 with and 16 without prefetch in the order
 * ABBA BAAB ABBA BAAB twice (balanced against drift during the probe), and
 * prefetch runs the next 224 passes if its mean pass time was at least 3%
 * lower (ties go to no prefetch, which reads fewer bytes); then the next
 * probe. Passes of several tokens (a prompt) use the current mode and are
 * not timed.
 *
 * Resident mode (params.resident_base, or an io engine in IO_MODE_MMAP): all
 * experts are addressable in memory; requests return pointers at once (no
 * slots, no table, no reads); stats count lookups as hits.
 *
 * Threads: one thread (the compute thread that routes) calls everything here;
 * the store takes no locks. The io engine's workers never touch it.
 *
 * Trace format (experts_trace_*, read by cache-sim): plain text, one line per
 * (token, layer) routing decision, "token layer e1 e2 ... ek\n", decimal,
 * single spaces; lines starting with '#' are comments, and the first line is
 * "# flashmoe expert trace v2 n_layer=L n_expert=E n_expert_used=K".
 * Tokens count from 0 over the whole run (prompt and generated).
 * v2 adds, before each routing line, the router's whole probability vector
 * of that (token, layer) as a comment line a v1 reader skips:
 * "#p token layer q0 q1 ... q(E-1)\n", q_e = round(1e6 * softmax probability
 * of expert e) (millionths, summing to about 1e6); v1 traces (no "#p" lines)
 * stay valid. The experts listed are the ones the layer ran (after
 * cache-aware routing, when that is on).
 */
#ifndef FM_EXPERTS_H
#define FM_EXPERTS_H

#include <stdbool.h>
#include <stdint.h>

#include "cache_policy.h"
#include "flashmoe.h"
#include "io.h"
#include "util.h"

enum experts_part { EXPERTS_GATE, EXPERTS_UP, EXPERTS_DOWN, EXPERTS_N_PARTS };

/* One 3D expert tensor of a layer: expert e is [offset + e*stride, + size). */
struct experts_tensor {
	uint64_t offset; /* absolute file offset of expert 0's slice */
	uint64_t stride; /* bytes between experts (= size for llama.cpp files) */
	uint64_t size;   /* bytes of one expert's slice, > 0 */
};

struct experts_layer {
	struct experts_tensor part[EXPERTS_N_PARTS];
};

struct experts_desc {
	int n_layer;                        /* MoE layers (the caller's index 0..n_layer-1) */
	int n_expert;                       /* experts per layer */
	int n_expert_used;                  /* top-k per token */
	const struct experts_layer *layers; /* [n_layer], copied by experts_new */
};

struct experts_params {
	uint64_t budget_bytes;         /* slot slab size (whole slots); ignored if resident */
	enum cache_policy_kind policy; /* not CACHE_POLICY_MIN */
	float route_thresh;            /* cache-aware routing (experts_cache_route); 0 = off */
	const void *resident_base;     /* non-NULL: file byte X is at resident_base + X */
	bool prefetch;                 /* guess the next layer's experts (below) */
	bool prefetch_auto;            /* with prefetch: only while it measures faster */
};

/* One expert of a request. part[] is valid when ready, until experts_done /
 * experts_release for it; part p holds desc.layers[L].part[p].size bytes. */
struct experts_ref {
	int32_t expert;
	bool ready;
	const void *part[EXPERTS_N_PARTS];
};

struct experts_stats {
	uint64_t lookups, hits, misses; /* per unique expert of a request; hits include in-flight */
	uint64_t hits_in_flight;        /* hits still being read (mostly prefetches) */
	uint64_t bytes_read;            /* expert bytes of the reads started, demand + prefetch
					 * (a deferred miss released unread reads nothing) */
	uint64_t io_bytes;              /* bytes the OS returned (aligned spans) */
	uint64_t reads_failed;          /* experts whose read failed */
	uint64_t evictions;
	uint64_t routed_away;           /* experts replaced by cache-aware routing */
	double wait_s;                  /* blocked in experts_wait */
	double read_s;                  /* the io engine's busy time (io_stats.busy_s) */
	uint64_t prefetch_guesses;      /* ids given to experts_prefetch */
	uint64_t prefetch_guess_hits;   /* of those, in the layer's next request */
	uint64_t prefetch_issued;       /* reads started by prefetch */
	uint64_t prefetch_used;         /* of those, requested before eviction */
	uint64_t prefetch_wasted;       /* of those, evicted (or failed) unrequested */
	uint64_t prefetch_bytes, prefetch_wasted_bytes;
	uint64_t n_slots, slot_bytes, cache_bytes;
	uint64_t pf_passes_on, pf_passes_off; /* one-token passes run with / without prefetch */
	double pf_probe_on_s, pf_probe_off_s; /* the last probe's mean pass time of each */
};

struct experts;

/* Build the store. io is borrowed and must serve this store only (the store
 * reaps every completion of it); it may be NULL when resident_base is set.
 * The slab is charged to mem and registered with io_uring when possible. NULL on failure, err filled (a budget too
 * small for n_expert_used slots names the budget, slot size and minimum). */
struct experts *experts_new(const struct experts_desc *d, struct io_engine *io,
			    const struct experts_params *p, struct fm_mem *mem,
			    struct fm_error *err);
/* Waits for reads in flight. NULL is a no-op. */
void experts_free(struct experts *x);

bool experts_is_resident(const struct experts *x);
uint32_t experts_n_slots(const struct experts *x);
uint64_t experts_slot_bytes(const struct experts *x);
/* Gate + up + down bytes of one expert of layer. */
uint64_t experts_expert_bytes(const struct experts *x, int layer);

/* Look up the experts ids[0..n) of layer (duplicates merged, first-seen
 * order) and pin them; start reads for the misses. Writes one ref per unique
 * expert to out (room for min(n, n_expert)); returns their number, or a
 * negative code (bad layer or id, or the previous request not released). */
int experts_request(struct experts *x, int layer, const int32_t *ids, int n,
		    struct experts_ref *out, struct fm_error *err);
/* Block until one more expert of the current request is ready; fill *out.
 * 1: got one; 0: every expert was handed out; < 0: its read failed (err names
 * the layer, expert, file, offset and errno; the expert is dropped) or all
 * slots are pinned (FM_EINVAL). For the highest layer requested so far (the
 * end of a forward pass), "every expert handed out" also checks the model
 * file (io_check_file): -ESTALE, err saying what changed, if it was
 * modified, resized or replaced since io_open. */
int experts_wait(struct experts *x, struct experts_ref *out, struct fm_error *err);
/* The caller is done with expert (of the current request): unpin it. 0 or
 * FM_EINVAL if it is not a handed-out expert of the current request. */
int experts_done(struct experts *x, int32_t expert);
/* End the current request: unpin what is still pinned, forget what was not
 * handed out (reads in flight finish into the cache). No-op without one. */
void experts_release(struct experts *x);
/* Queue the guessed experts of layer that are not cached for speculative
 * reads and start what may start now; returns how many started, or a
 * negative code. Nothing while experts_prefetching is false. */
int experts_prefetch(struct experts *x, int layer, const int32_t *ids, int n);
/* Does this forward pass prefetch? (false: do not compute guesses) */
bool experts_prefetching(const struct experts *x);

/* One token's routing at layer, for the eviction policy (cache_policy_route:
 * PRED learns from it): the router's probabilities over the layer's experts
 * (NULL if unknown) and the n chosen ids. Call once per token before the
 * layer's experts_request. No-op when resident. */
void experts_observe(struct experts *x, int layer, const float *probs, const int32_t *sel, int n);
/* Cache-aware routing (cache_route of cache_policy.h) of one token at layer
 * with the store's route_thresh: a selected expert that is not in the cache
 * (a slot being read counts as cached) and weighs less than the threshold
 * is replaced by the cached unselected one with the highest probability;
 * sel[0..k) and w[0..k) rewritten (w renormalised when norm). Returns the
 * number replaced; 0 when resident or the threshold is 0. */
int experts_cache_route(struct experts *x, int layer, const float *probs, int32_t *sel, float *w,
			int k, bool norm);

/* Wait until no read is in flight (prefetches included). 0 or a negative
 * code of the io engine. */
int experts_drain(struct experts *x);

void experts_get_stats(const struct experts *x, struct experts_stats *out);
void experts_reset_stats(struct experts *x);

/* ---- the routing trace (format above) ---- */
struct experts_trace;
struct experts_trace *experts_trace_open(const char *path, int n_layer, int n_expert,
					 int n_expert_used, struct fm_error *err);
int experts_trace_write(struct experts_trace *t, uint64_t token, int layer,
			const int32_t *ids, int n);
/* The "#p" line of (token, layer): probs[0..n_expert) as millionths. */
int experts_trace_write_probs(struct experts_trace *t, uint64_t token, int layer,
			      const float *probs, int n_expert);
/* Flush and close; 0, or -errno if any write failed. NULL is a no-op. */
int experts_trace_close(struct experts_trace *t, struct fm_error *err);

#endif
