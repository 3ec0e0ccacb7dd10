/* experts.c: the expert store of experts.h: layout of a slot, the slab, the
 * (layer, expert) <-> slot tables, requests with pins, deferred misses,
 * completion handling, prefetch, statistics and the trace writer.
 *
 * A slot's life: FREE -> LOADING (three reads in flight, user_data =
 * slot * 4 + part) -> READY, or -> FAILED when a part's read failed after the
 * io engine's retry. Only READY, unpinned slots are evictable. A FAILED slot
 * that nobody waits for is emptied at once; one the current request waits for
 * is reported by experts_wait, then emptied.
 *
 * Follows flash-moe's pipeline (route, start reads, compute what is ready,
 * wait for the rest), without its skip-on-error: a failed read is an error.
 * Nor does it go on over a model file that changed: the last layer's
 * experts_wait checks the file once per pass (experts_pass_end).
 */
#include "experts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPERTS_REAP_BATCH 32
#define EXPERTS_NO_SLOT (-1)

enum { SLOT_FREE, SLOT_LOADING, SLOT_READY, SLOT_FAILED };
enum { ENT_PENDING, ENT_HANDED, ENT_DONE };

struct experts_slot {
	int32_t layer, expert;      /* -1 when FREE */
	uint8_t state;
	uint8_t parts_left;         /* reads still in flight */
	bool prefetched;            /* read by prefetch, not requested since: a
				     * speculative slot, outside the policy */
	bool spec_io;               /* a prefetch read of it is in flight */
	bool in_ring;               /* listed in spec_ring */
	uint16_t pins;
	int res;                    /* first failure, or 0 */
	uint64_t err_offset;
	const void *part[EXPERTS_N_PARTS];
};

/* One unique expert of the current request. */
struct experts_entry {
	int32_t expert;
	int32_t slot;               /* EXPERTS_NO_SLOT: deferred (no slot yet) */
	uint8_t state;
};

struct experts {
	struct experts_desc desc;
	struct experts_layer *layers;   /* [n_layer] copy */
	struct io_engine *io;
	struct fm_mem *mem;
	const uint8_t *resident;        /* file byte X at resident[X], or NULL */
	float route_thresh;             /* cache-aware routing; 0 = off */
	uint64_t part_off[EXPERTS_N_PARTS]; /* where each part's span starts in a slot */
	uint64_t slot_bytes;
	uint32_t n_slots;
	uint8_t *slab_raw, *slab;       /* slab: slab_raw aligned up */
	size_t slab_raw_bytes;
	bool registered;                /* the slab is the io engine's fixed buffer */
	struct experts_slot *slots;     /* [n_slots] */
	int32_t *table;                 /* [n_layer * n_expert]: slot or -1 */
	uint32_t *free_slots, n_free;
	struct cache_policy *policy;
	uint8_t *guessed;               /* [n_layer * n_expert]: prefetch guesses */
	/* speculation (see "Prefetch" in experts.h) */
	uint32_t *spec_ring, ring_head, ring_len; /* speculative slots, oldest first */
	uint32_t n_spec, spec_max;      /* speculative slots now / at most */
	int spec_parts;                 /* prefetch part reads in flight */
	int spec_depth;                 /* prefetch experts in flight at most */
	int32_t *spec_q;                /* guesses not yet started, in order */
	int spec_q_layer, spec_q_n, spec_q_at;
	/* whether to prefetch (experts.h: "Whether to prefetch at all") */
	bool pf_auto, pf_on;            /* measuring / this pass prefetches */
	/* the idle window (experts.h): when this layer's demand reads were all
	 * in (0: not yet), the mean time from then to the next request, and the
	 * disk's seconds per byte while busy (both moving averages; 0: unknown) */
	double spec_open_t, gap_s, s_per_byte;
	struct io_stats io_seen;
	bool pf_timed;                  /* this pass has one token */
	int pf_layer;                   /* the last layer requested in this pass */
	uint32_t pf_pass;               /* passes since the last decision began */
	double pf_t0, pf_t1;            /* this pass's first request, last release */
	double pf_sum[2];               /* pass seconds of the probe, by mode */
	int pf_cnt[2];
	bool active;                    /* a request is current */
	int cur_layer, n_cur, n_pending;
	int last_layer;                 /* highest layer requested so far (experts_pass_end) */
	struct experts_entry *cur;      /* [n_expert] */
	int32_t *entry_of;              /* [n_expert] sparse index into cur */
	struct experts_stats stats;
	struct io_stats io_base;        /* io counters at the last reset */
};

static uint32_t experts_key(const struct experts *x, int layer, int expert)
{
	return (uint32_t)layer * (uint32_t)x->desc.n_expert + (uint32_t)expert;
}

uint64_t experts_expert_bytes(const struct experts *x, int layer)
{
	const struct experts_layer *l = &x->layers[layer];
	return l->part[0].size + l->part[1].size + l->part[2].size;
}

static uint64_t experts_part_offset(const struct experts *x, int layer, int expert, int part)
{
	const struct experts_tensor *t = &x->layers[layer].part[part];
	return t->offset + (uint64_t)expert * t->stride;
}

/* Every slice inside the file, no overflow. */
static int experts_check_desc(const struct experts_desc *d, uint64_t file_size,
			      const char *path, struct fm_error *err)
{
	if (d->n_layer <= 0 || d->n_expert <= 0 || d->n_expert_used <= 0 ||
	    d->n_expert_used > d->n_expert || !d->layers ||
	    (uint64_t)d->n_layer * (uint64_t)d->n_expert >= INT32_MAX)
		return fm_err(err, FM_EINVAL, path, FM_NO_OFFSET,
			      "bad expert layout: %d layers, %d experts, %d used", d->n_layer,
			      d->n_expert, d->n_expert_used);
	for (int l = 0; l < d->n_layer; l++) {
		for (int p = 0; p < EXPERTS_N_PARTS; p++) {
			const struct experts_tensor *t = &d->layers[l].part[p];
			uint64_t end;
			bool ok = t->size > 0 && fm_mul_ok(t->stride, (uint64_t)d->n_expert - 1, &end) &&
				  fm_add_ok(end, t->offset, &end) && fm_add_ok(end, t->size, &end);
			if (!ok || end > file_size)
				return fm_err(err, FM_EFORMAT, path, t->offset,
					      "layer %d expert part %d: %d slices of %llu bytes, "
					      "stride %llu, end beyond the file (%llu bytes)",
					      l, p, d->n_expert, (unsigned long long)t->size,
					      (unsigned long long)t->stride,
					      (unsigned long long)file_size);
		}
	}
	return 0;
}

/* Slot layout: each part's largest aligned span over all experts, each
 * rounded up to the alignment so the next part starts aligned. */
static int experts_layout(struct experts *x, struct fm_error *err)
{
	uint64_t align = io_align(x->io), at = 0;
	for (int p = 0; p < EXPERTS_N_PARTS; p++) {
		uint64_t span = 0;
		for (int l = 0; l < x->desc.n_layer; l++)
			for (int e = 0; e < x->desc.n_expert; e++) {
				uint64_t s = io_span_bytes(x->io, experts_part_offset(x, l, e, p),
							   x->layers[l].part[p].size);
				if (s == 0)
					return fm_err(err, FM_ERANGE, io_path(x->io), FM_NO_OFFSET,
						      "expert slice size overflows");
				span = s > span ? s : span;
			}
		x->part_off[p] = at;
		at += (span + align - 1) / align * align;
	}
	x->slot_bytes = at;
	return 0;
}

static int experts_alloc_cache(struct experts *x, uint64_t budget, struct fm_error *err)
{
	uint64_t n = budget / x->slot_bytes, n_keys = (uint64_t)x->desc.n_layer * x->desc.n_expert;
	if (n < (uint64_t)x->desc.n_expert_used)
		return fm_err(err, FM_ENOMEM, io_path(x->io), FM_NO_OFFSET,
			      "expert cache budget of %llu bytes holds %llu slots of %llu bytes; "
			      "at least %d slots (n_expert_used) = %llu bytes are needed",
			      (unsigned long long)budget, (unsigned long long)n,
			      (unsigned long long)x->slot_bytes, x->desc.n_expert_used,
			      (unsigned long long)(x->slot_bytes * (uint64_t)x->desc.n_expert_used));
	if (n > n_keys)
		n = n_keys; /* more slots than experts would never be used */
	size_t align = io_align(x->io);
	if (n * x->slot_bytes > SIZE_MAX - align)
		return fm_err(err, FM_ERANGE, NULL, FM_NO_OFFSET, "expert cache too large");
	x->n_slots = (uint32_t)n;
	x->slab_raw_bytes = (size_t)(n * x->slot_bytes) + align;
	x->slab_raw = fm_alloc(x->mem, x->slab_raw_bytes);
	x->slots = calloc(n, sizeof(*x->slots));
	x->free_slots = calloc(n, sizeof(*x->free_slots));
	if (!x->slab_raw || !x->slots || !x->free_slots)
		return fm_err(err, FM_ENOMEM, NULL, FM_NO_OFFSET,
			      "cannot allocate the expert cache (%u slots of %llu bytes)",
			      x->n_slots, (unsigned long long)x->slot_bytes);
	x->slab = (uint8_t *)(((uintptr_t)x->slab_raw + align - 1) / align * align);
	for (uint32_t i = 0; i < x->n_slots; i++) {
		x->slots[i] = (struct experts_slot){.layer = -1, .expert = -1};
		x->free_slots[i] = x->n_slots - 1 - i;
	}
	x->n_free = x->n_slots;
	return 0;
}

static int experts_alloc_tables(struct experts *x, const struct experts_params *p,
				struct fm_error *err)
{
	size_t n_keys = (size_t)x->desc.n_layer * (size_t)x->desc.n_expert;
	x->cur = calloc((size_t)x->desc.n_expert, sizeof(*x->cur));
	x->entry_of = calloc((size_t)x->desc.n_expert, sizeof(*x->entry_of));
	if (!x->cur || !x->entry_of)
		return fm_err(err, FM_ENOMEM, NULL, FM_NO_OFFSET, "out of memory");
	if (x->resident)
		return 0;
	x->table = malloc(n_keys * sizeof(*x->table));
	x->guessed = calloc(n_keys, 1);
	x->spec_ring = calloc(x->n_slots, sizeof(*x->spec_ring));
	x->spec_q = calloc((size_t)x->desc.n_expert, sizeof(*x->spec_q));
	/* speculation's slots and reads in flight (see experts.h) */
	x->spec_max = (uint32_t)x->desc.n_expert_used * 2;
	if (x->spec_max > x->n_slots / 4)
		x->spec_max = x->n_slots / 4;
	x->spec_depth = 2;
	x->pf_auto = p->prefetch && p->prefetch_auto;
	x->pf_on = p->prefetch;
	x->pf_layer = -1;
	x->policy = cache_policy_new_layers(p->policy, x->n_slots, (uint32_t)x->desc.n_layer,
					    (uint32_t)x->desc.n_expert);
	double mean = 0; /* read cost: each layer's expert bytes over the mean */
	for (int l = 0; x->policy && l < x->desc.n_layer; l++)
		mean += (double)experts_expert_bytes(x, l) / x->desc.n_layer;
	for (int l = 0; x->policy && l < x->desc.n_layer; l++)
		cache_policy_set_cost(x->policy, (uint32_t)l, (float)(experts_expert_bytes(x, l) / mean));
	if (!x->table || !x->guessed || !x->policy || !x->spec_ring || !x->spec_q)
		return fm_err(err, FM_ENOMEM, NULL, FM_NO_OFFSET, "out of memory");
	memset(x->table, 0xff, n_keys * sizeof(*x->table));
	return 0;
}

struct experts *experts_new(const struct experts_desc *d, struct io_engine *io,
			    const struct experts_params *p, struct fm_mem *mem,
			    struct fm_error *err)
{
	const void *resident = p->resident_base;
	if (!resident && io && io_get_mode(io) == IO_MODE_MMAP)
		resident = io_mapping(io);
	if (!resident && !io) {
		fm_err(err, FM_EINVAL, NULL, FM_NO_OFFSET, "expert store needs an io engine");
		return NULL;
	}
	if (!resident && (p->policy == CACHE_POLICY_MIN || (unsigned)p->policy >= CACHE_POLICY_COUNT)) {
		fm_err(err, FM_EINVAL, NULL, FM_NO_OFFSET,
		       "cache policy %d cannot run live (MIN needs the future)", (int)p->policy);
		return NULL;
	}
	struct experts *x = calloc(1, sizeof(*x));
	if (!x) {
		fm_err(err, FM_ENOMEM, NULL, FM_NO_OFFSET, "out of memory");
		return NULL;
	}
	x->io = io;
	x->mem = mem;
	x->resident = resident;
	x->route_thresh = p->route_thresh;
	x->desc = *d;
	if (experts_check_desc(d, io ? io_file_size(io) : UINT64_MAX, io ? io_path(io) : NULL,
			       err) < 0)
		goto fail;
	x->layers = malloc((size_t)d->n_layer * sizeof(*x->layers));
	if (!x->layers) {
		fm_err(err, FM_ENOMEM, NULL, FM_NO_OFFSET, "out of memory");
		goto fail;
	}
	memcpy(x->layers, d->layers, (size_t)d->n_layer * sizeof(*x->layers));
	x->desc.layers = x->layers;
	if (!resident && (experts_layout(x, err) < 0 ||
			  experts_alloc_cache(x, p->budget_bytes, err) < 0))
		goto fail;
	if (experts_alloc_tables(x, p, err) < 0)
		goto fail;
	/* On failure io_note says why; plain reads work the same. */
	if (!resident && io_register_buffers(io, x->slab, (size_t)x->n_slots * x->slot_bytes) == 0)
		x->registered = true;
	experts_reset_stats(x);
	return x;
fail:
	experts_free(x);
	return NULL;
}

void experts_free(struct experts *x)
{
	if (!x)
		return;
	struct io_completion c[EXPERTS_REAP_BATCH];
	/* Reads land in the slab: let them finish before it goes. */
	while (x->slots && io_in_flight(x->io))
		if (io_reap(x->io, 1, c, EXPERTS_REAP_BATCH) < 0)
			break;
	if (x->registered)
		io_unregister_buffers(x->io);
	cache_policy_free(x->policy);
	free(x->guessed);
	free(x->spec_ring);
	free(x->spec_q);
	free(x->table);
	free(x->entry_of);
	free(x->cur);
	free(x->free_slots);
	free(x->slots);
	fm_free(x->mem, x->slab_raw, x->slab_raw_bytes);
	free(x->layers);
	free(x);
}

bool experts_is_resident(const struct experts *x) { return x->resident != NULL; }
uint32_t experts_n_slots(const struct experts *x) { return x->n_slots; }
uint64_t experts_slot_bytes(const struct experts *x) { return x->slot_bytes; }

static int experts_spec_pump(struct experts *x);

/* ---- slots ---- */

static bool experts_slot_evictable(void *ctx, uint32_t slot)
{
	const struct experts_slot *s = &((struct experts *)ctx)->slots[slot];
	return s->pins == 0 && s->state == SLOT_READY;
}

/* Forget what slot holds (the policy already has, or is told by the caller). */
static void experts_clear_slot(struct experts *x, uint32_t slot)
{
	struct experts_slot *s = &x->slots[slot];
	if (s->prefetched) {
		x->stats.prefetch_wasted++;
		x->stats.prefetch_wasted_bytes += experts_expert_bytes(x, s->layer);
		x->n_spec--;
	}
	bool in_ring = s->in_ring;
	x->table[experts_key(x, s->layer, s->expert)] = EXPERTS_NO_SLOT;
	*s = (struct experts_slot){.layer = -1, .expert = -1, .in_ring = in_ring};
}

/* Empty a slot the policy did not choose (a failed read) and free it. */
static void experts_drop_slot(struct experts *x, uint32_t slot)
{
	cache_policy_drop(x->policy, slot);
	experts_clear_slot(x, slot);
	x->free_slots[x->n_free++] = slot;
}

static void experts_unpin(struct experts *x, uint32_t slot)
{
	struct experts_slot *s = &x->slots[slot];
	if (s->pins && --s->pins == 0 && s->state == SLOT_FAILED)
		experts_drop_slot(x, slot);
}

/* The oldest speculative slot that may go now (read, unpinned), emptied; -1
 * if none. Slots no longer speculative leave the ring as they are met. */
static int64_t experts_take_spec(struct experts *x)
{
	for (uint32_t n = x->ring_len; n > 0; n--) {
		uint32_t v = x->spec_ring[x->ring_head];
		x->ring_head = (x->ring_head + 1) % x->n_slots;
		x->ring_len--;
		struct experts_slot *s = &x->slots[v];
		if (!s->prefetched) {
			s->in_ring = false;
			continue;
		}
		if (s->state != SLOT_READY || s->pins) { /* still loading: keep its place */
			x->spec_ring[(x->ring_head + x->ring_len) % x->n_slots] = v;
			x->ring_len++;
			continue;
		}
		s->in_ring = false;
		experts_clear_slot(x, v);
		return v;
	}
	return -1;
}

/* A slot for key: a free one, else the oldest speculative one, else (for a
 * demand read, or a prefetch while speculation holds fewer than spec_max
 * slots) the policy's victim among evictable ones; -1 if none. */
static int64_t experts_take_slot(struct experts *x, uint32_t key, bool prefetch)
{
	if (x->n_free)
		return x->free_slots[--x->n_free];
	int64_t v = experts_take_spec(x);
	if (v >= 0 || (prefetch && x->n_spec >= x->spec_max))
		return v;
	v = cache_policy_evict(x->policy, key, experts_slot_evictable, x);
	if (v >= 0) {
		x->stats.evictions++;
		experts_clear_slot(x, (uint32_t)v);
	}
	return v;
}

/* Start reading expert (layer, e) into a slot: pinned for a demand read,
 * unpinned (prefetched) otherwise. The slot, or -1 when no slot is evictable
 * or the io queue lacks room for the three reads. */
static int64_t experts_start_read(struct experts *x, int layer, int e, bool prefetch)
{
	if (io_queue_depth(x->io) - io_in_flight(x->io) < EXPERTS_N_PARTS)
		return -1;
	uint32_t key = experts_key(x, layer, e);
	int64_t v = experts_take_slot(x, key, prefetch);
	if (v < 0)
		return -1;
	struct experts_slot *s = &x->slots[v];
	*s = (struct experts_slot){.layer = layer, .expert = e, .state = SLOT_LOADING,
				   .parts_left = EXPERTS_N_PARTS, .prefetched = prefetch,
				   .spec_io = prefetch, .in_ring = s->in_ring,
				   .pins = prefetch ? 0 : 1};
	x->table[key] = (int32_t)v;
	if (prefetch) { /* the policy meets it when it is first requested */
		x->n_spec++;
		x->spec_parts += EXPERTS_N_PARTS;
		if (!s->in_ring) {
			x->spec_ring[(x->ring_head + x->ring_len) % x->n_slots] = (uint32_t)v;
			x->ring_len++;
			s->in_ring = true;
		}
	} else {
		cache_policy_insert(x->policy, (uint32_t)v, key, 0);
	}
	for (int p = 0; p < EXPERTS_N_PARTS; p++) {
		uint64_t off = experts_part_offset(x, layer, e, p);
		uint8_t *buf = x->slab + (uint64_t)v * x->slot_bytes + x->part_off[p];
		int rc = io_submit_read(x->io, buf, x->layers[layer].part[p].size, off,
					(uint64_t)v * 4 + (uint64_t)p);
		if (rc < 0) { /* cannot happen with room checked; fail the slot, not the process */
			s->parts_left--;
			x->spec_parts -= prefetch;
			s->res = s->res ? s->res : rc;
			s->err_offset = off;
		}
	}
	x->stats.bytes_read += experts_expert_bytes(x, layer);
	if (s->parts_left == 0) {
		s->state = SLOT_FAILED;
		x->stats.reads_failed++;
		if (prefetch) {
			experts_drop_slot(x, (uint32_t)v);
			return -1;
		}
	}
	return v;
}

static void experts_on_completion(struct experts *x, const struct io_completion *c)
{
	uint32_t slot = (uint32_t)(c->user_data / 4), part = (uint32_t)(c->user_data % 4);
	struct experts_slot *s = &x->slots[slot];
	if (c->res < 0 && s->res == 0) {
		s->res = c->res;
		s->err_offset = c->offset;
	}
	s->part[part] = c->data;
	if (s->spec_io)
		x->spec_parts--;
	if (--s->parts_left)
		return;
	s->spec_io = false;
	if (s->res == 0) {
		s->state = SLOT_READY;
		return;
	}
	s->state = SLOT_FAILED;
	x->stats.reads_failed++;
	if (s->pins == 0) /* nobody waits for it (a prefetch): forget it */
		experts_drop_slot(x, slot);
}

/* Handle finished reads; block for at least one when wait. */
static int experts_poll(struct experts *x, bool wait)
{
	struct io_completion c[EXPERTS_REAP_BATCH];
	int k;
	unsigned min = wait ? 1 : 0;
	do {
		k = io_reap(x->io, min, c, EXPERTS_REAP_BATCH);
		if (k < 0)
			return k;
		for (int i = 0; i < k; i++)
			experts_on_completion(x, &c[i]);
		min = 0;
	} while (k == EXPERTS_REAP_BATCH);
	return 0;
}

/* ---- requests ---- */

static void experts_ref_of(const struct experts *x, int layer, int32_t e, int64_t slot,
			   struct experts_ref *r)
{
	*r = (struct experts_ref){.expert = e};
	if (x->resident) {
		r->ready = true;
		for (int p = 0; p < EXPERTS_N_PARTS; p++)
			r->part[p] = x->resident + experts_part_offset(x, layer, e, p);
	} else if (slot >= 0 && x->slots[slot].state == SLOT_READY) {
		r->ready = true;
		memcpy(r->part, x->slots[slot].part, sizeof(r->part));
	}
}

static int experts_check_ids(const struct experts *x, int layer, const int32_t *ids, int n,
			     struct fm_error *err)
{
	if (layer < 0 || layer >= x->desc.n_layer || n < 0 || (n > 0 && !ids))
		return fm_err(err, FM_EINVAL, NULL, FM_NO_OFFSET,
			      "expert request: layer %d of %d, %d ids", layer, x->desc.n_layer, n);
	for (int i = 0; i < n; i++)
		if (ids[i] < 0 || ids[i] >= x->desc.n_expert)
			return fm_err(err, FM_EINVAL, NULL, FM_NO_OFFSET,
				      "layer %d: expert id %d out of range [0, %d)", layer, ids[i],
				      x->desc.n_expert);
	return 0;
}

/* x->cur = the unique ids, first-seen order (entry_of is a sparse set:
 * entry_of[e] is trusted only when cur[entry_of[e]] names e). */
static void experts_unique(struct experts *x, const int32_t *ids, int n)
{
	x->n_cur = 0;
	for (int i = 0; i < n; i++) {
		int32_t e = ids[i], j = x->entry_of[e];
		if (j < x->n_cur && x->cur[j].expert == e)
			continue;
		x->entry_of[e] = x->n_cur;
		x->cur[x->n_cur++] = (struct experts_entry){e, EXPERTS_NO_SLOT, ENT_PENDING};
	}
}

/* Pass 1: look every unique expert up and pin the hits (before any miss
 * may evict one); score the layer's prefetch guesses. */
static void experts_lookup(struct experts *x, int layer)
{
	for (int i = 0; i < x->n_cur; i++) {
		uint32_t key = experts_key(x, layer, x->cur[i].expert);
		x->stats.lookups++;
		x->stats.prefetch_guess_hits += x->guessed[key];
		int32_t slot = x->table[key];
		if (slot < 0) {
			x->stats.misses++;
			continue;
		}
		struct experts_slot *s = &x->slots[slot];
		x->stats.hits++;
		x->stats.hits_in_flight += s->state == SLOT_LOADING;
		s->pins++;
		if (s->prefetched) { /* speculation paid: the policy takes it over */
			x->stats.prefetch_used++;
			s->prefetched = false;
			x->n_spec--;
			cache_policy_insert(x->policy, (uint32_t)slot, key, 0);
		} else {
			cache_policy_hit(x->policy, (uint32_t)slot, 0);
		}
		x->cur[i].slot = slot;
	}
	memset(x->guessed + (size_t)layer * (size_t)x->desc.n_expert, 0, (size_t)x->desc.n_expert);
}

/* Start the reads of deferred entries while slots and queue room last;
 * true if any started. */
static bool experts_start_deferred(struct experts *x)
{
	bool started = false;
	for (int i = 0; i < x->n_cur; i++) {
		struct experts_entry *en = &x->cur[i];
		if (en->state != ENT_PENDING || en->slot != EXPERTS_NO_SLOT)
			continue;
		int64_t v = experts_start_read(x, x->cur_layer, en->expert, false);
		if (v < 0)
			break;
		en->slot = (int32_t)v;
		started = true;
	}
	return started;
}

/* One probe is PF_PROBE passes in this on/off order, then PF_EXPLOIT passes
 * of the faster mode. */
#define PF_PROBE 32
#define PF_EXPLOIT 224
static const uint8_t pf_probe_order[16] = {1, 0, 0, 1, 0, 1, 1, 0, 1, 0, 0, 1, 0, 1, 1, 0};

/* Learn the idle window at a request: the gap since the previous layer's
 * demand reads were all in, and the disk's speed from the io counters. */
static void experts_learn_window(struct experts *x, double now)
{
	if (x->spec_open_t > 0) {
		double gap = now - x->spec_open_t;
		x->gap_s = x->gap_s > 0 ? 0.8 * x->gap_s + 0.2 * gap : gap;
		x->spec_open_t = 0;
	}
	struct io_stats st;
	io_get_stats(x->io, &st);
	uint64_t bytes = st.bytes_read - x->io_seen.bytes_read;
	if (bytes >= 4u << 20) { /* enough to time */
		double spb = (st.busy_s - x->io_seen.busy_s) / (double)bytes;
		x->s_per_byte = x->s_per_byte > 0 ? 0.8 * x->s_per_byte + 0.2 * spb : spb;
		x->io_seen = st;
	}
}

/* Would one more guessed expert of layer, started now behind those in
 * flight, be in before the next request is expected? (Unknown: yes.) */
static bool experts_spec_fits(const struct experts *x, int layer, double now)
{
	if (x->gap_s <= 0 || x->s_per_byte <= 0)
		return true;
	double t_read = x->s_per_byte * (double)experts_expert_bytes(x, layer);
	double in_flight = (double)x->spec_parts / EXPERTS_N_PARTS;
	return now + (in_flight + 1) * t_read <= x->spec_open_t + x->gap_s;
}

/* A request of layer at or below the pass's last one begins a forward pass:
 * account the one that ended, and choose this one's mode. */
static void experts_pass_begin(struct experts *x, int layer, int n_ids)
{
	if (layer > x->pf_layer && x->pf_layer >= 0) {
		x->pf_layer = layer;
		return;
	}
	double now = fm_now_s();
	if (x->pf_layer >= 0 && x->pf_timed) {
		x->stats.pf_passes_on += x->pf_on;
		x->stats.pf_passes_off += !x->pf_on;
		if (x->pf_auto && x->pf_pass < PF_PROBE) {
			x->pf_sum[x->pf_on] += x->pf_t1 - x->pf_t0;
			x->pf_cnt[x->pf_on]++;
		}
		/* passes count from when the cache is full: while slots are free,
		 * a guess evicts nothing and the passes are not like later ones */
		x->pf_pass += x->n_free == 0;
	}
	x->pf_layer = layer;
	x->pf_t0 = now;
	x->pf_timed = n_ids == x->desc.n_expert_used;
	if (!x->pf_auto)
		return;
	if (x->pf_pass == PF_PROBE && x->pf_cnt[0] && x->pf_cnt[1]) {
		x->stats.pf_probe_on_s = x->pf_sum[1] / x->pf_cnt[1];
		x->stats.pf_probe_off_s = x->pf_sum[0] / x->pf_cnt[0];
		/* ties go to no prefetch: it reads fewer bytes */
		x->pf_on = x->stats.pf_probe_on_s < 0.97 * x->stats.pf_probe_off_s;
	} else if (x->pf_pass >= PF_PROBE + PF_EXPLOIT) {
		x->pf_pass = 0;
		x->pf_sum[0] = x->pf_sum[1] = 0;
		x->pf_cnt[0] = x->pf_cnt[1] = 0;
	}
	if (x->pf_pass < PF_PROBE)
		x->pf_on = x->n_free > 0 || pf_probe_order[x->pf_pass % 16];
}

bool experts_prefetching(const struct experts *x)
{
	return !x->resident && x->pf_on;
}

int experts_request(struct experts *x, int layer, const int32_t *ids, int n,
		    struct experts_ref *out, struct fm_error *err)
{
	int rc = experts_check_ids(x, layer, ids, n, err);
	if (rc < 0)
		return rc;
	if (x->active)
		return fm_err(err, FM_EINVAL, NULL, FM_NO_OFFSET,
			      "expert request for layer %d while layer %d's is not released", layer,
			      x->cur_layer);
	if (!x->resident && (rc = experts_poll(x, false)) < 0)
		return fm_err(err, rc, io_path(x->io), FM_NO_OFFSET, "io_reap: %s", strerror(-rc));
	experts_unique(x, ids, n);
	experts_pass_begin(x, layer, n);
	if (!x->resident)
		experts_learn_window(x, fm_now_s());
	x->spec_q_n = x->spec_q_at = 0; /* guesses not started are moot now */
	x->active = true;
	x->cur_layer = layer;
	x->n_pending = 0;
	if (x->resident) {
		x->stats.lookups += (uint64_t)x->n_cur;
		x->stats.hits += (uint64_t)x->n_cur;
	} else {
		experts_lookup(x, layer);
		if (experts_start_deferred(x) && (rc = io_flush(x->io)) < 0) {
			experts_release(x);
			return fm_err(err, rc, io_path(x->io), FM_NO_OFFSET, "io submit: %s",
				      strerror(-rc));
		}
	}
	for (int i = 0; i < x->n_cur; i++) {
		experts_ref_of(x, layer, x->cur[i].expert, x->cur[i].slot, &out[i]);
		x->cur[i].state = out[i].ready ? ENT_HANDED : ENT_PENDING;
		x->n_pending += !out[i].ready;
	}
	return x->n_cur;
}

static int experts_read_error(struct experts *x, const struct experts_slot *s,
			      struct fm_error *err)
{
	const char *what = s->res == FM_EIO ? "the file ends before it (truncated?)"
					    : strerror(-s->res);
	if (s->res == FM_EIO)
		return fm_err(err, s->res, io_path(x->io), s->err_offset,
			      "layer %d expert %d: read failed after a retry: %s", s->layer,
			      s->expert, what);
	return fm_err(err, s->res, io_path(x->io), s->err_offset,
		      "layer %d expert %d: read failed after a retry: %s (errno %d)", s->layer,
		      s->expert, what, -s->res);
}

/* Hand out one finished entry: 1, or the error of a failed one, or 0. */
static int experts_deliver(struct experts *x, struct experts_ref *out, struct fm_error *err)
{
	for (int i = 0; i < x->n_cur; i++) {
		struct experts_entry *en = &x->cur[i];
		if (en->state != ENT_PENDING || en->slot == EXPERTS_NO_SLOT)
			continue;
		const struct experts_slot *s = &x->slots[en->slot];
		if (s->state == SLOT_LOADING)
			continue;
		x->n_pending--;
		if (s->state == SLOT_FAILED) {
			int rc = experts_read_error(x, s, err);
			en->state = ENT_DONE;
			experts_unpin(x, (uint32_t)en->slot); /* drops the slot */
			return rc;
		}
		en->state = ENT_HANDED;
		experts_ref_of(x, x->cur_layer, en->expert, en->slot, out);
		return 1;
	}
	return 0;
}

/* Every expert of the last layer's request handed out: the end of a forward
 * pass, when every byte the pass used has been read. Check that the file did
 * not change under it (io_check_file: two system calls per pass), so that a
 * model rewritten, replaced or truncated during a run stops it before its
 * output is used, instead of mixing the old and the new bytes. "The last
 * layer" is the highest one requested so far (a model whose last layers
 * have no experts never requests n_layer - 1): the first pass checks at each
 * of its layers, later ones at their last. */
static int experts_pass_end(struct experts *x, struct fm_error *err)
{
	if (!x->active || !x->io || x->cur_layer < x->last_layer)
		return 0;
	x->last_layer = x->cur_layer;
	return io_check_file(x->io, err);
}

int experts_wait(struct experts *x, struct experts_ref *out, struct fm_error *err)
{
	if (!x->active || x->n_pending == 0)
		return experts_pass_end(x, err);
	for (;;) {
		int rc = experts_deliver(x, out, err);
		if (rc != 0)
			return rc;
		bool started = experts_start_deferred(x);
		if (started && (rc = io_flush(x->io)) < 0)
			return fm_err(err, rc, io_path(x->io), FM_NO_OFFSET, "io submit: %s", strerror(-rc));
		if (!started && io_in_flight(x->io) == 0)
			return fm_err(err, FM_EINVAL, NULL, FM_NO_OFFSET,
				      "layer %d: %d experts wait for a slot but all %u slots are "
				      "pinned (call experts_done after computing each expert)",
				      x->cur_layer, x->n_pending, x->n_slots);
		double t0 = fm_now_s();
		rc = experts_poll(x, true);
		x->stats.wait_s += fm_now_s() - t0;
		if (rc < 0)
			return fm_err(err, rc, io_path(x->io), FM_NO_OFFSET, "io_reap: %s", strerror(-rc));
	}
}

int experts_done(struct experts *x, int32_t expert)
{
	if (!x->active || expert < 0 || expert >= x->desc.n_expert)
		return FM_EINVAL;
	int32_t j = x->entry_of[expert];
	if (j >= x->n_cur || x->cur[j].expert != expert || x->cur[j].state != ENT_HANDED)
		return FM_EINVAL;
	x->cur[j].state = ENT_DONE;
	if (!x->resident) {
		experts_unpin(x, (uint32_t)x->cur[j].slot);
		if (x->spec_q_at < x->spec_q_n && experts_poll(x, false) == 0)
			experts_spec_pump(x); /* a failure shows at the next request */
	}
	return 0;
}

void experts_release(struct experts *x)
{
	if (!x->active)
		return;
	x->pf_t1 = fm_now_s();
	for (int i = 0; !x->resident && i < x->n_cur; i++)
		if (x->cur[i].state != ENT_DONE && x->cur[i].slot != EXPERTS_NO_SLOT)
			experts_unpin(x, (uint32_t)x->cur[i].slot);
	x->active = false;
	x->n_cur = 0;
	x->n_pending = 0;
	if (!x->resident && x->spec_q_at < x->spec_q_n && experts_poll(x, false) == 0)
		experts_spec_pump(x);
}

/* Start queued guesses while speculation may: fewer than spec_depth of its
 * experts in flight and no demand read in flight or waiting for a slot (a
 * demand read never queues behind a guess started after it was needed).
 * Returns how many started, or a negative code of io_flush. */
static int experts_spec_pump(struct experts *x)
{
	int started = 0;
	if (x->active)
		for (int i = 0; i < x->n_cur; i++)
			if (x->cur[i].state == ENT_PENDING)
				goto flush; /* its read is in flight or waits for a slot */
	double now = fm_now_s();
	if (x->spec_open_t == 0)
		x->spec_open_t = now; /* the idle window opens */
	while (x->spec_q_at < x->spec_q_n &&
	       x->spec_parts < x->spec_depth * EXPERTS_N_PARTS &&
	       io_in_flight(x->io) == (unsigned)x->spec_parts &&
	       experts_spec_fits(x, x->spec_q_layer, now)) {
		int e = x->spec_q[x->spec_q_at];
		if (x->table[experts_key(x, x->spec_q_layer, e)] >= 0) {
			x->spec_q_at++;
			continue;
		}
		if (experts_start_read(x, x->spec_q_layer, e, true) < 0)
			break;
		x->spec_q_at++;
		x->stats.prefetch_issued++;
		x->stats.prefetch_bytes += experts_expert_bytes(x, x->spec_q_layer);
		started++;
	}
flush:
	if (started) {
		int rc = io_flush(x->io);
		if (rc < 0)
			return rc;
	}
	return started;
}

int experts_prefetch(struct experts *x, int layer, const int32_t *ids, int n)
{
	if (experts_check_ids(x, layer, ids, n, NULL) < 0)
		return FM_EINVAL;
	if (x->resident || !x->pf_on)
		return 0;
	int rc = experts_poll(x, false);
	if (rc < 0)
		return rc;
	x->spec_q_layer = layer;
	x->spec_q_n = x->spec_q_at = 0;
	for (int i = 0; i < n; i++) {
		uint32_t key = experts_key(x, layer, ids[i]);
		if (!x->guessed[key]) {
			x->guessed[key] = 1;
			x->stats.prefetch_guesses++;
		}
		if (x->table[key] < 0 && !(x->guessed[key] & 2)) { /* 2: queued by this call */
			x->guessed[key] |= 2;
			x->spec_q[x->spec_q_n++] = ids[i];
		}
	}
	for (int i = 0; i < x->spec_q_n; i++)
		x->guessed[experts_key(x, layer, x->spec_q[i])] = 1;
	return experts_spec_pump(x);
}

int experts_drain(struct experts *x)
{
	while (!x->resident && io_in_flight(x->io)) {
		int rc = experts_poll(x, true);
		if (rc < 0)
			return rc;
	}
	return 0;
}

void experts_get_stats(const struct experts *x, struct experts_stats *out)
{
	*out = x->stats;
	if (x->io && !x->resident) {
		struct io_stats st;
		io_get_stats(x->io, &st);
		out->io_bytes = st.bytes_read - x->io_base.bytes_read;
		out->read_s = st.busy_s - x->io_base.busy_s;
	}
	out->n_slots = x->n_slots;
	out->slot_bytes = x->slot_bytes;
	out->cache_bytes = (uint64_t)x->n_slots * x->slot_bytes;
}

void experts_reset_stats(struct experts *x)
{
	x->stats = (struct experts_stats){0};
	if (x->io)
		io_get_stats(x->io, &x->io_base);
}

/* ---- what routing tells the cache, and cache-aware routing ---- */

void experts_observe(struct experts *x, int layer, const float *probs, const int32_t *sel, int n)
{
	if (!x->resident && layer >= 0 && layer < x->desc.n_layer)
		cache_policy_route(x->policy, (uint32_t)layer, probs, sel, n);
}

struct experts_route_ctx {
	const struct experts *x;
	int layer;
};

static bool experts_is_cached(void *ctx, int32_t e)
{
	const struct experts_route_ctx *c = ctx;
	return c->x->table[experts_key(c->x, c->layer, e)] >= 0;
}

int experts_cache_route(struct experts *x, int layer, const float *probs, int32_t *sel, float *w,
			int k, bool norm)
{
	if (x->resident || !(x->route_thresh > 0.0f) || layer < 0 || layer >= x->desc.n_layer)
		return 0;
	struct experts_route_ctx c = {x, layer};
	int n = cache_route(probs, x->desc.n_expert, sel, w, k, x->route_thresh, norm,
			    experts_is_cached, &c);
	x->stats.routed_away += (uint64_t)n;
	return n;
}

/* ---- the trace ---- */

struct experts_trace {
	FILE *f;
	int err; /* first failed write's -errno */
};

struct experts_trace *experts_trace_open(const char *path, int n_layer, int n_expert,
					 int n_expert_used, struct fm_error *err)
{
	struct experts_trace *t = calloc(1, sizeof(*t));
	if (!t) {
		fm_err(err, FM_ENOMEM, path, FM_NO_OFFSET, "out of memory");
		return NULL;
	}
	t->f = fopen(path, "w");
	if (!t->f) {
		fm_err(err, -errno, path, FM_NO_OFFSET, "cannot create the trace: %s", strerror(errno));
		free(t);
		return NULL;
	}
	if (fprintf(t->f, "# flashmoe expert trace v2 n_layer=%d n_expert=%d n_expert_used=%d\n",
		    n_layer, n_expert, n_expert_used) < 0)
		t->err = -errno;
	return t;
}

int experts_trace_write(struct experts_trace *t, uint64_t token, int layer,
			const int32_t *ids, int n)
{
	int rc = fprintf(t->f, "%llu %d", (unsigned long long)token, layer);
	for (int i = 0; i < n && rc >= 0; i++)
		rc = fprintf(t->f, " %d", ids[i]);
	if (rc >= 0)
		rc = fputc('\n', t->f);
	if (rc < 0 && !t->err)
		t->err = errno ? -errno : -EIO;
	return rc < 0 ? t->err : 0;
}

int experts_trace_write_probs(struct experts_trace *t, uint64_t token, int layer,
			      const float *probs, int n_expert)
{
	int rc = fprintf(t->f, "#p %llu %d", (unsigned long long)token, layer);
	for (int i = 0; i < n_expert && rc >= 0; i++) {
		float q = probs[i] > 0.0f ? probs[i] * 1e6f + 0.5f : 0.0f;
		rc = fprintf(t->f, " %u", q < 1e6f ? (unsigned)q : 1000000u);
	}
	if (rc >= 0)
		rc = fputc('\n', t->f);
	if (rc < 0 && !t->err)
		t->err = errno ? -errno : -EIO;
	return rc < 0 ? t->err : 0;
}

int experts_trace_close(struct experts_trace *t, struct fm_error *err)
{
	if (!t)
		return 0;
	int rc = t->err;
	if (fclose(t->f) != 0 && !rc)
		rc = errno ? -errno : -EIO;
	free(t);
	if (rc < 0)
		fm_err(err, rc, NULL, FM_NO_OFFSET, "writing the expert trace: %s", strerror(-rc));
	return rc;
}
