/* cachesim.h: the expert-cache simulator behind `flashmoe cache-sim`.
 *
 * Replays a routing trace (format in experts.h) under each eviction policy of
 * cache_policy.h and each cache size, the way the live cache (experts.c)
 * runs it: one request per trace line, its experts pinned together, hits
 * looked up before misses evict; a key is (layer, expert); all slots are
 * shared by all layers. MIN (Belady) gives the best hit count any policy
 * could reach on the trace. Also writes synthetic traces for comparisons.
 *
 * Owns: the trace reader (bounded: every number, line length and count
 * checked) and the replay. Single-threaded; no globals.
 */
#ifndef FM_CACHESIM_H
#define FM_CACHESIM_H

#include <stdint.h>

#include "cache_policy.h"
#include "flashmoe.h"

struct cachesim_trace {
	uint32_t n_layer, n_expert;  /* header values, or the largest seen + 1 */
	uint32_t n_expert_used;      /* header value, or the longest line */
	uint32_t max_per_line;       /* unique experts on the longest line */
	uint64_t n_lines;            /* (token, layer) lines */
	uint64_t n_tokens;           /* distinct token numbers */
	uint64_t n_lookups;          /* unique experts summed over lines */
	uint64_t n_distinct;         /* distinct (layer, expert) keys */
	uint64_t *line_start;        /* [n_lines + 1]: index into keys */
	uint32_t *keys;              /* [n_lookups]: layer * n_expert + expert */
	uint64_t *next_line;         /* [n_lookups]: the next line using the key, or UINT64_MAX */
	uint32_t *layer_of_line;     /* [n_lines] */
	float *probs;                /* [n_lines][n_expert] router probabilities (the "#p"
				      * lines of a v2 trace), or NULL when the trace has none */
};

/* Read a trace. 0, or FM_EFORMAT / -errno with err naming file, line, what. */
int cachesim_trace_load(const char *path, struct cachesim_trace *t, struct fm_error *err);
void cachesim_trace_free(struct cachesim_trace *t);

/* Replay t under policy k with n_slots slots; *hits = lookups that hit.
 * FM_EINVAL if n_slots < t->max_per_line (a line's experts must fit). */
int cachesim_run(const struct cachesim_trace *t, enum cache_policy_kind k, uint32_t n_slots,
		 uint64_t *hits, struct fm_error *err);

/* The same with options: cache-aware routing (cache_route of cache_policy.h
 * at route_thresh, on a trace with probabilities; not with MIN) replayed
 * before each line's lookups; lookups and substitutions counted. */
struct cachesim_opts {
	enum cache_policy_kind policy;
	uint32_t n_slots;
	float route_thresh;          /* 0 = off */
	const struct cache_pred_params *pred; /* PRED's settings; NULL = defaults */
};
struct cachesim_result {
	uint64_t hits, lookups;
	uint64_t substituted;        /* experts replaced by cache routing */
};
int cachesim_replay(const struct cachesim_trace *t, const struct cachesim_opts *o,
		    struct cachesim_result *r, struct fm_error *err);

/* Synthetic routing. ZIPF: per layer, expert popularity ~ 1/rank^zipf_s over
 * a random ranking; with probability p_repeat a pick repeats one of the
 * previous token's experts of that layer (temporal locality); every
 * shift_every tokens (0 = never) each layer's ranking is reshuffled (a topic
 * change). UNIFORM: k distinct experts uniformly at random. */
enum cachesim_gen_kind { CACHESIM_GEN_UNIFORM, CACHESIM_GEN_ZIPF };
struct cachesim_gen {
	enum cachesim_gen_kind kind;
	uint32_t n_tokens, n_layer, n_expert, k;
	double zipf_s, p_repeat;
	uint32_t shift_every;
	uint64_t seed;
};
/* Write a synthetic trace to path. 0 or a negative code (err filled). */
int cachesim_gen_write(const char *path, const struct cachesim_gen *g, struct fm_error *err);

#endif
