/* cache_policy.c: LRU, LFU-DA, ARC and Belady's MIN behind the interface of
 * cache_policy.h. LRU keeps one list of slots; ARC four lists of keys
 * (T1, T2 hold cached keys, B1, B2 ghosts); LFU and MIN a binary min-heap of
 * slots ordered by (priority, last access tick).
 *
 * Pinned slots: eviction walks a list from its LRU end, or pops the heap,
 * skipping what the caller's callback refuses (popped entries are pushed back),
 * so the cost grows with the number of pinned slots only.
 */
#include "cache_policy.h"

#include <stdlib.h>
#include <string.h>

#define CP_NONE UINT32_MAX

enum { ARC_NONE, ARC_T1, ARC_T2, ARC_B1, ARC_B2 };

struct cp_list {
	uint32_t head, tail, n; /* head = most recent */
};

struct cache_policy {
	enum cache_policy_kind kind;
	uint32_t n_slots, n_keys;
	uint32_t *key_of_slot;      /* [n_slots], CP_NONE when empty */
	uint64_t tick;
	/* lists: LRU links slots, ARC links keys; lists[0] for LRU, [ARC_T1..B2] for ARC */
	uint32_t *prev, *next;
	struct cp_list lists[5];
	/* heap (LFU, MIN), over slots */
	uint32_t *heap, *pos, *stash, n_heap;
	uint64_t *prio, *stamp;
	uint32_t *count;            /* LFU: [n_keys] accesses per key, kept across evictions */
	uint64_t age_l;             /* LFU-DA's L: priority of the last victim */
	/* ARC, over keys */
	uint8_t *where;
	uint32_t *slot_of_key;
	uint32_t arc_p;             /* target size of T1 */
	uint32_t adapted_key;       /* p already adapted for this incoming key */
	/* PRED, over keys */
	uint32_t n_layer, n_expert, cur_layer;
	float *use, *soft, *now;    /* [n_keys] */
	float *cost;                /* [n_layer]: relative read cost of an expert */
	float pd, pwu, pws, pwn, pqmin, pdist;
};

static const char *const cp_names[CACHE_POLICY_COUNT] = {"lru", "lfu", "arc", "pred", "min"};

const char *cache_policy_name(enum cache_policy_kind k)
{
	return (unsigned)k < CACHE_POLICY_COUNT ? cp_names[k] : NULL;
}

int cache_policy_from_name(const char *s)
{
	for (int i = 0; s && i < CACHE_POLICY_COUNT; i++)
		if (!strcmp(s, cp_names[i]))
			return i;
	return -1;
}

/* ---- doubly linked lists over p->prev / p->next ---- */

static void list_push(struct cache_policy *p, struct cp_list *l, uint32_t x)
{
	p->prev[x] = CP_NONE;
	p->next[x] = l->head;
	if (l->head != CP_NONE)
		p->prev[l->head] = x;
	else
		l->tail = x;
	l->head = x;
	l->n++;
}

static void list_unlink(struct cache_policy *p, struct cp_list *l, uint32_t x)
{
	if (p->prev[x] != CP_NONE)
		p->next[p->prev[x]] = p->next[x];
	else
		l->head = p->next[x];
	if (p->next[x] != CP_NONE)
		p->prev[p->next[x]] = p->prev[x];
	else
		l->tail = p->prev[x];
	l->n--;
}

static void list_init(struct cp_list *l)
{
	*l = (struct cp_list){CP_NONE, CP_NONE, 0};
}

/* ---- binary min-heap of slots on (prio, stamp) ---- */

static bool heap_less(const struct cache_policy *p, uint32_t a, uint32_t b)
{
	return p->prio[a] < p->prio[b] || (p->prio[a] == p->prio[b] && p->stamp[a] < p->stamp[b]);
}

static void heap_set(struct cache_policy *p, uint32_t i, uint32_t s)
{
	p->heap[i] = s;
	p->pos[s] = i;
}

static void heap_up(struct cache_policy *p, uint32_t i)
{
	uint32_t s = p->heap[i];
	while (i > 0 && heap_less(p, s, p->heap[(i - 1) / 2])) {
		heap_set(p, i, p->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	heap_set(p, i, s);
}

static void heap_down(struct cache_policy *p, uint32_t i)
{
	uint32_t s = p->heap[i];
	for (;;) {
		uint32_t c = 2 * i + 1;
		if (c >= p->n_heap)
			break;
		if (c + 1 < p->n_heap && heap_less(p, p->heap[c + 1], p->heap[c]))
			c++;
		if (!heap_less(p, p->heap[c], s))
			break;
		heap_set(p, i, p->heap[c]);
		i = c;
	}
	heap_set(p, i, s);
}

static void heap_push(struct cache_policy *p, uint32_t s)
{
	heap_set(p, p->n_heap++, s);
	heap_up(p, p->n_heap - 1);
}

static void heap_remove(struct cache_policy *p, uint32_t s)
{
	uint32_t i = p->pos[s], last = p->heap[--p->n_heap];
	if (i == p->n_heap)
		return;
	heap_set(p, i, last);
	heap_up(p, i);
	heap_down(p, p->pos[last]);
}

static void heap_update(struct cache_policy *p, uint32_t s)
{
	heap_up(p, p->pos[s]);
	heap_down(p, p->pos[s]);
}

/* Pop until the callback takes one; push the refused back. */
static int64_t heap_evict(struct cache_policy *p, cache_evictable_fn ok, void *ctx)
{
	uint32_t n_stash = 0;
	int64_t victim = -1;
	while (p->n_heap) {
		uint32_t s = p->heap[0];
		heap_remove(p, s);
		if (ok(ctx, s)) {
			victim = s;
			break;
		}
		p->stash[n_stash++] = s;
	}
	while (n_stash)
		heap_push(p, p->stash[--n_stash]);
	return victim;
}

static void lfu_count(struct cache_policy *p, uint32_t key)
{
	if (p->count[key] < UINT32_MAX)
		p->count[key]++;
}

/* Priority of a slot just accessed (LFU: L + count; MIN: the farthest next
 * use is the smallest value). */
static void heap_access(struct cache_policy *p, uint32_t slot, uint64_t next_use)
{
	if (p->kind == CACHE_POLICY_LFU)
		p->prio[slot] = p->age_l + p->count[p->key_of_slot[slot]];
	else
		p->prio[slot] = UINT64_MAX - next_use;
	p->stamp[slot] = p->tick;
}

/* ---- ARC (lists of keys) ---- */

static void arc_move(struct cache_policy *p, uint32_t key, int to)
{
	if (p->where[key] != ARC_NONE)
		list_unlink(p, &p->lists[p->where[key]], key);
	p->where[key] = (uint8_t)to;
	if (to != ARC_NONE)
		list_push(p, &p->lists[to], key);
}

/* A ghost hit moves the target size of T1 towards the list that hit
 * (ARC's delta: 1, or the other ghost list's size over this one's). */
static void arc_adapt(struct cache_policy *p, uint32_t key)
{
	if (p->adapted_key == key)
		return;
	p->adapted_key = key;
	uint32_t b1 = p->lists[ARC_B1].n, b2 = p->lists[ARC_B2].n, c = p->n_slots;
	if (p->where[key] == ARC_B1) {
		uint32_t d = b1 >= b2 ? 1 : b2 / b1;
		p->arc_p = p->arc_p + d > c ? c : p->arc_p + d;
	} else if (p->where[key] == ARC_B2) {
		uint32_t d = b2 >= b1 ? 1 : b1 / b2;
		p->arc_p = p->arc_p > d ? p->arc_p - d : 0;
	}
}

/* The least recent evictable key of list `from` goes to list `ghost`. */
static int64_t arc_take(struct cache_policy *p, int from, int ghost, cache_evictable_fn ok,
			void *ctx)
{
	uint32_t key = p->lists[from].tail;
	while (key != CP_NONE && !ok(ctx, p->slot_of_key[key]))
		key = p->prev[key];
	if (key == CP_NONE)
		return -1;
	uint32_t slot = p->slot_of_key[key];
	arc_move(p, key, ghost);
	p->slot_of_key[key] = CP_NONE;
	p->key_of_slot[slot] = CP_NONE;
	return slot;
}

/* ARC's REPLACE, plus case IV-A's "T1 holds the whole cache: drop its LRU". */
static int64_t arc_evict(struct cache_policy *p, uint32_t key_in, cache_evictable_fn ok,
			 void *ctx)
{
	arc_adapt(p, key_in);
	uint32_t t1 = p->lists[ARC_T1].n;
	int w = p->where[key_in];
	int64_t v;
	if (w != ARC_B1 && w != ARC_B2 && t1 >= p->n_slots)
		return arc_take(p, ARC_T1, ARC_NONE, ok, ctx);
	if (t1 >= 1 && ((w == ARC_B2 && t1 == p->arc_p) || t1 > p->arc_p)) {
		v = arc_take(p, ARC_T1, ARC_B1, ok, ctx);
		return v >= 0 ? v : arc_take(p, ARC_T2, ARC_B2, ok, ctx);
	}
	v = arc_take(p, ARC_T2, ARC_B2, ok, ctx);
	return v >= 0 ? v : arc_take(p, ARC_T1, ARC_B1, ok, ctx);
}

static void arc_insert(struct cache_policy *p, uint32_t slot, uint32_t key)
{
	arc_adapt(p, key);
	p->adapted_key = CP_NONE;
	int w = p->where[key];
	if (w == ARC_B1 || w == ARC_B2) {
		arc_move(p, key, ARC_T2);
	} else {
		/* Keep |T1| + |B1| <= c and the four lists <= 2c (case IV). */
		uint32_t c = p->n_slots, l1 = p->lists[ARC_T1].n + p->lists[ARC_B1].n;
		uint32_t all = l1 + p->lists[ARC_T2].n + p->lists[ARC_B2].n;
		if (l1 >= c && p->lists[ARC_B1].n)
			arc_move(p, p->lists[ARC_B1].tail, ARC_NONE);
		else if (l1 < c && all >= 2 * c && p->lists[ARC_B2].n)
			arc_move(p, p->lists[ARC_B2].tail, ARC_NONE);
		arc_move(p, key, ARC_T1);
	}
	p->slot_of_key[key] = slot;
}

/* ---- PRED ---- */

static void pred_route(struct cache_policy *p, uint32_t layer, const float *probs,
		       const int32_t *sel, int n_sel)
{
	if (layer >= p->n_layer)
		return;
	p->cur_layer = layer;
	float *use = p->use + (size_t)layer * p->n_expert, *soft = p->soft + (size_t)layer * p->n_expert;
	float *now = p->now + (size_t)layer * p->n_expert, d = p->pd;
	for (uint32_t e = 0; e < p->n_expert; e++) {
		use[e] *= d;
		soft[e] *= d;
		now[e] = probs ? probs[e] : 0.0f;
	}
	for (int i = 0; i < n_sel; i++) {
		if (sel[i] < 0 || (uint32_t)sel[i] >= p->n_expert)
			continue;
		use[sel[i]] += 1.0f;
		if (!probs)
			now[sel[i]] = 1.0f / (float)n_sel;
	}
	for (uint32_t e = 0; e < p->n_expert; e++)
		soft[e] += now[e];
}

/* Expected lines until key's next use: its layer's next request, plus a
 * whole pass per token it is expected to skip. */
static float pred_next(const struct cache_policy *p, uint32_t key)
{
	uint32_t layer = key / p->n_expert;
	float d1 = 1.0f - p->pd;
	float q = p->pwu * d1 * p->use[key] + p->pws * d1 * p->soft[key] + p->pwn * p->now[key];
	q = q < p->pqmin ? p->pqmin : q > 1.0f ? 1.0f : q;
	float dist = (float)(layer > p->cur_layer ? layer - p->cur_layer
						  : layer + p->n_layer - p->cur_layer);
	return (p->pdist * dist + (float)p->n_layer * (1.0f - q) / q) / p->cost[layer];
}

static int64_t pred_evict(struct cache_policy *p, cache_evictable_fn ok, void *ctx)
{
	int64_t v = -1;
	float best = 0.0f;
	for (uint32_t s = 0; s < p->n_slots; s++) {
		if (p->key_of_slot[s] == CP_NONE || !ok(ctx, s))
			continue;
		float f = pred_next(p, p->key_of_slot[s]);
		if (v < 0 || f > best || (f == best && p->stamp[s] < p->stamp[v])) {
			v = s;
			best = f;
		}
	}
	return v;
}

void cache_policy_set_pred(struct cache_policy *p, const struct cache_pred_params *q)
{
	static const struct cache_pred_params def = CACHE_PRED_DEFAULT;
	if (!q)
		q = &def;
	p->pd = q->decay, p->pwu = q->w_use, p->pws = q->w_soft, p->pwn = q->w_now;
	p->pqmin = q->q_min, p->pdist = q->w_dist;
}

/* ---- the interface ---- */

struct cache_policy *cache_policy_new(enum cache_policy_kind k, uint32_t n_slots, uint32_t n_keys)
{
	return cache_policy_new_layers(k, n_slots, 1, n_keys);
}

struct cache_policy *cache_policy_new_layers(enum cache_policy_kind k, uint32_t n_slots,
					     uint32_t n_layer, uint32_t n_expert)
{
	uint32_t n_keys = n_layer && n_expert <= CP_NONE / n_layer ? n_layer * n_expert : 0;
	if ((unsigned)k >= CACHE_POLICY_COUNT || !n_slots || !n_keys || n_keys == CP_NONE ||
	    n_slots == CP_NONE)
		return NULL;
	struct cache_policy *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->kind = k;
	p->n_slots = n_slots;
	p->n_keys = n_keys;
	p->adapted_key = CP_NONE;
	p->n_layer = n_layer;
	p->n_expert = n_expert;
	cache_policy_set_pred(p, NULL);
	for (int i = 0; i < 5; i++)
		list_init(&p->lists[i]);
	bool ok = (p->key_of_slot = malloc(n_slots * sizeof(uint32_t))) != NULL;
	if (k == CACHE_POLICY_LRU || k == CACHE_POLICY_ARC) {
		size_t n = k == CACHE_POLICY_LRU ? n_slots : n_keys;
		ok = ok && (p->prev = malloc(n * sizeof(uint32_t))) && (p->next = malloc(n * sizeof(uint32_t)));
	}
	if (k == CACHE_POLICY_LFU || k == CACHE_POLICY_MIN)
		ok = ok && (p->heap = malloc(n_slots * sizeof(uint32_t))) &&
		     (p->pos = malloc(n_slots * sizeof(uint32_t))) &&
		     (p->stash = malloc(n_slots * sizeof(uint32_t))) &&
		     (p->prio = malloc(n_slots * sizeof(uint64_t))) &&
		     (p->stamp = malloc(n_slots * sizeof(uint64_t))) &&
		     (k != CACHE_POLICY_LFU || (p->count = calloc(n_keys, sizeof(uint32_t))));
	if (k == CACHE_POLICY_PRED)
		ok = ok && (p->stamp = malloc(n_slots * sizeof(uint64_t))) &&
		     (p->use = calloc(n_keys, sizeof(float))) && (p->soft = calloc(n_keys, sizeof(float))) &&
		     (p->now = calloc(n_keys, sizeof(float))) &&
		     (p->cost = malloc(n_layer * sizeof(float)));
	if (k == CACHE_POLICY_ARC)
		ok = ok && (p->where = calloc(n_keys, 1)) &&
		     (p->slot_of_key = malloc(n_keys * sizeof(uint32_t)));
	if (!ok)
		goto fail;
	memset(p->key_of_slot, 0xff, n_slots * sizeof(uint32_t));
	for (uint32_t l = 0; p->cost && l < n_layer; l++)
		p->cost[l] = 1.0f;
	if (p->slot_of_key)
		memset(p->slot_of_key, 0xff, n_keys * sizeof(uint32_t));
	return p;
fail:
	cache_policy_free(p);
	return NULL;
}

void cache_policy_free(struct cache_policy *p)
{
	if (!p)
		return;
	free(p->cost);
	free(p->now);
	free(p->soft);
	free(p->use);
	free(p->slot_of_key);
	free(p->where);
	free(p->count);
	free(p->stamp);
	free(p->prio);
	free(p->stash);
	free(p->pos);
	free(p->heap);
	free(p->next);
	free(p->prev);
	free(p->key_of_slot);
	free(p);
}

void cache_policy_insert(struct cache_policy *p, uint32_t slot, uint32_t key, uint64_t next_use)
{
	p->key_of_slot[slot] = key;
	p->tick++;
	switch (p->kind) {
	case CACHE_POLICY_LRU:
		list_push(p, &p->lists[0], slot);
		break;
	case CACHE_POLICY_ARC:
		arc_insert(p, slot, key);
		break;
	case CACHE_POLICY_PRED:
		p->stamp[slot] = p->tick;
		break;
	default:
		if (p->count)
			lfu_count(p, key);
		heap_access(p, slot, next_use);
		heap_push(p, slot);
		break;
	}
}

void cache_policy_hit(struct cache_policy *p, uint32_t slot, uint64_t next_use)
{
	p->tick++;
	switch (p->kind) {
	case CACHE_POLICY_LRU:
		list_unlink(p, &p->lists[0], slot);
		list_push(p, &p->lists[0], slot);
		break;
	case CACHE_POLICY_ARC:
		arc_move(p, p->key_of_slot[slot], ARC_T2);
		break;
	case CACHE_POLICY_PRED:
		p->stamp[slot] = p->tick;
		break;
	default:
		if (p->count)
			lfu_count(p, p->key_of_slot[slot]);
		heap_access(p, slot, next_use);
		heap_update(p, slot);
		break;
	}
}

int64_t cache_policy_evict(struct cache_policy *p, uint32_t key_in, cache_evictable_fn ok,
			   void *ctx)
{
	int64_t v;
	switch (p->kind) {
	case CACHE_POLICY_LRU:
		v = p->lists[0].tail;
		while (v != CP_NONE && !ok(ctx, (uint32_t)v))
			v = p->prev[v];
		if (v == CP_NONE)
			return -1;
		list_unlink(p, &p->lists[0], (uint32_t)v);
		break;
	case CACHE_POLICY_ARC:
		return arc_evict(p, key_in, ok, ctx);
	case CACHE_POLICY_PRED:
		v = pred_evict(p, ok, ctx);
		if (v < 0)
			return -1;
		break;
	default:
		v = heap_evict(p, ok, ctx);
		if (v < 0)
			return -1;
		if (p->kind == CACHE_POLICY_LFU)
			p->age_l = p->prio[v];
		break;
	}
	p->key_of_slot[v] = CP_NONE;
	return v;
}

void cache_policy_drop(struct cache_policy *p, uint32_t slot)
{
	uint32_t key = p->key_of_slot[slot];
	if (key == CP_NONE)
		return;
	switch (p->kind) {
	case CACHE_POLICY_LRU:
		list_unlink(p, &p->lists[0], slot);
		break;
	case CACHE_POLICY_ARC:
		arc_move(p, key, ARC_NONE);
		p->slot_of_key[key] = CP_NONE;
		break;
	case CACHE_POLICY_PRED:
		break;
	default:
		heap_remove(p, slot);
		break;
	}
	p->key_of_slot[slot] = CP_NONE;
}

void cache_policy_set_cost(struct cache_policy *p, uint32_t layer, float cost)
{
	if (p->cost && layer < p->n_layer && cost > 0.0f)
		p->cost[layer] = cost;
}

void cache_policy_route(struct cache_policy *p, uint32_t layer, const float *probs,
			const int32_t *sel, int n_sel)
{
	if (p->kind == CACHE_POLICY_PRED)
		pred_route(p, layer, probs, sel, n_sel);
}

/* ---- cache-aware routing ---- */

int cache_route(const float *probs, int n_expert, int32_t *sel, float *w, int k, float thresh,
		bool norm, cache_cached_fn cached, void *ctx)
{
	if (!(thresh > 0.0f) || k <= 0 || k > 64)
		return 0;
	float sum = 0.0f;
	for (int j = 0; j < k; j++)
		sum += probs[sel[j]];
	int n_sub = 0;
	uint64_t done = 0; /* bit i: sel[i] visited */
	for (int visit = 0; visit < k; visit++) {
		int j = -1; /* the lowest-weight selected expert not yet visited */
		for (int i = 0; i < k; i++)
			if (!(done >> i & 1) && (j < 0 || probs[sel[i]] < probs[sel[j]]))
				j = i;
		done |= 1ull << j;
		if (!(probs[sel[j]] < thresh * sum) || cached(ctx, sel[j]))
			continue;
		int32_t best = -1;
		for (int32_t e = 0; e < n_expert; e++) {
			if (best >= 0 && !(probs[e] > probs[best]))
				continue;
			bool in_sel = false;
			for (int i = 0; i < k; i++)
				in_sel |= sel[i] == e;
			if (!in_sel && cached(ctx, e))
				best = e;
		}
		if (best >= 0) {
			sel[j] = best;
			n_sub++;
		}
	}
	float nsum = 0.0f;
	for (int j = 0; j < k; j++)
		nsum += probs[sel[j]];
	for (int j = 0; j < k; j++)
		w[j] = norm && nsum > 0.0f ? probs[sel[j]] / nsum : probs[sel[j]];
	return n_sub;
}
