/* cachesim.c: the trace reader, the replay and the synthetic trace generator
 * of cachesim.h. The trace format is documented in experts.h (the writer).
 *
 * Replay mirrors experts_request: for each line, every unique expert already
 * cached is a hit and is pinned (touched in line order), then the misses are
 * filled, each into a free slot or the policy's victim among slots not pinned
 * by this line. MIN is told each access's next use (the next line holding the
 * key); with a line's keys forced to be resident together, evicting the
 * farthest-next-use key among the others is still optimal (exchange
 * argument), so MIN bounds every policy from above on the same trace.
 *
 * The default is now PRED (cache_policy.h): on the traces of trained
 * routers (brown-moe, r128; docs/BENCHMARKS.md) and the synthetic one below
 * it beats LFU by 1-12 points at 10-33% of the experts. Before it, why LFU
 * was the default: on six synthetic traces (48
 * layers x 128 experts, top-8, 1000 tokens; uniform, Zipf 0.6 and 1.2, with
 * and without 50% repeats of the previous token's experts, and a topic shift
 * every 200 tokens; made with `flashmoe cache-sim --gen ...`) at 5/10/25/50%
 * of the experts cached, LFU had the best hit rate of the live policies in
 * 18 of 24 cells and the best mean; LRU won at 10% where repeats dominate
 * (by up to 5 points), and only LFU hits at all below one token's
 * n_layer * k experts (5%: LFU 5-38%, LRU and ARC 0%). Real traces decide.
 */
#include "cachesim.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "experts.h"
#include "util.h"

#define SIM_MAX_LINE 65536         /* bytes of one trace line */
#define SIM_MAX_LAYER 4096
#define SIM_MAX_EXPERT 65536
#define SIM_MAX_PER_LINE 4096
#define SIM_MAX_KEYS (1u << 24)    /* n_layer * n_expert */
#define SIM_NONE UINT32_MAX

/* ---- growing arrays ---- */

static int sim_reserve(void **p, uint64_t *cap, uint64_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	uint64_t n = *cap ? *cap : 1024;
	while (n < need)
		n *= 2;
	if (n > SIZE_MAX / elem)
		return FM_ENOMEM;
	void *q = realloc(*p, (size_t)(n * elem));
	if (!q)
		return FM_ENOMEM;
	*p = q;
	*cap = n;
	return 0;
}

/* ---- the reader ---- */

struct sim_reader {
	const char *path;
	uint64_t line_no;
	uint32_t hdr_layer, hdr_expert, hdr_used; /* 0 = absent */
	uint32_t *layer_of_line;   /* raw: per line */
	uint32_t *experts;         /* raw: every id as read */
	uint64_t cap_lines, cap_experts, cap_start, cap_probs;
	uint32_t max_layer, max_expert;
	float *probs;              /* [n_prob_lines][hdr_expert] */
	float *pending;            /* [hdr_expert]: a "#p" line not yet matched */
	uint64_t pending_token, n_prob_lines;
	uint32_t pending_layer;
	bool have_pending;
};

/* A decimal number at *p (no sign), at most max; advances *p. */
static bool sim_parse_num(const char **p, uint64_t max, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;
	if (*s < '0' || *s > '9')
		return false;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (v > (max - (uint64_t)(*s - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*p = s;
	*out = v;
	return true;
}

static void sim_parse_header(struct sim_reader *r, const char *line)
{
	static const char *const keys[3] = {"n_layer=", "n_expert=", "n_expert_used="};
	uint32_t *dst[3] = {&r->hdr_layer, &r->hdr_expert, &r->hdr_used};
	if (strncmp(line, "# flashmoe expert trace", 23) != 0)
		return;
	for (int i = 0; i < 3; i++) {
		const char *at = strstr(line, keys[i]);
		/* "n_expert=" also matches inside "n_expert_used=": take a match
		 * that starts a word. */
		while (at && at > line && at[-1] != ' ')
			at = strstr(at + 1, keys[i]);
		uint64_t v;
		if (at && (at += strlen(keys[i]), sim_parse_num(&at, UINT32_MAX, &v)))
			*dst[i] = (uint32_t)v;
	}
}

static int sim_line_error(const struct sim_reader *r, struct fm_error *err, const char *what)
{
	return fm_err(err, FM_EFORMAT, r->path, FM_NO_OFFSET, "line %llu: %s",
		      (unsigned long long)r->line_no, what);
}

/* "#p token layer q0 ... q(E-1)": held until the routing line it precedes. */
static int sim_parse_probs(struct sim_reader *r, const char *s, struct fm_error *err)
{
	uint64_t layer, v;
	if (!r->hdr_expert)
		return sim_line_error(r, err, "\"#p\" line before the header's n_expert");
	if (r->have_pending)
		return sim_line_error(r, err, "two \"#p\" lines without a routing line between");
	if (!r->pending && !(r->pending = malloc((size_t)r->hdr_expert * sizeof(float))))
		return fm_err(err, FM_ENOMEM, r->path, FM_NO_OFFSET, "out of memory");
	s += 2;
	if (*s++ != ' ' || !sim_parse_num(&s, UINT64_MAX, &r->pending_token) || *s++ != ' ' ||
	    !sim_parse_num(&s, SIM_MAX_LAYER - 1, &layer))
		return sim_line_error(r, err, "expected \"#p token layer q0 q1 ...\"");
	for (uint32_t e = 0; e < r->hdr_expert; e++) {
		if (*s++ != ' ' || !sim_parse_num(&s, 1000000, &v))
			return sim_line_error(r, err, "expected n_expert probabilities in millionths "
						      "(0..1000000)");
		r->pending[e] = (float)v * 1e-6f;
	}
	if (*s != '\0')
		return sim_line_error(r, err, "more probabilities than the header's n_expert");
	r->pending_layer = (uint32_t)layer;
	r->have_pending = true;
	return 0;
}

/* The routing line just read takes the pending "#p" line, if any. */
static int sim_take_probs(struct sim_reader *r, const struct cachesim_trace *t, uint64_t token,
			  struct fm_error *err)
{
	if (!r->have_pending)
		return 0;
	r->have_pending = false;
	if (r->pending_token != token || r->pending_layer != r->layer_of_line[t->n_lines - 1])
		return sim_line_error(r, err, "the \"#p\" line before it is for another token or layer");
	if (sim_reserve((void **)&r->probs, &r->cap_probs, (r->n_prob_lines + 1) * r->hdr_expert,
			sizeof(float)) < 0)
		return fm_err(err, FM_ENOMEM, r->path, FM_NO_OFFSET, "out of memory");
	memcpy(r->probs + r->n_prob_lines++ * r->hdr_expert, r->pending,
	       r->hdr_expert * sizeof(float));
	return 0;
}

/* "token layer e1 e2 ..." appended to the reader's raw arrays. */
static int sim_parse_line(struct sim_reader *r, struct cachesim_trace *t, const char *s,
			  uint64_t *token, struct fm_error *err)
{
	uint64_t layer, e;
	if (!sim_parse_num(&s, UINT64_MAX, token) || *s++ != ' ' ||
	    !sim_parse_num(&s, SIM_MAX_LAYER - 1, &layer))
		return sim_line_error(r, err, "expected \"token layer e1 e2 ...\"");
	uint64_t first = t->n_lookups;
	while (*s == ' ') {
		if (*++s == '\0')
			break; /* a trailing space */
		if (!sim_parse_num(&s, SIM_MAX_EXPERT - 1, &e))
			return sim_line_error(r, err, "bad expert id (0..65535)");
		if (t->n_lookups - first >= SIM_MAX_PER_LINE)
			return sim_line_error(r, err, "more than 4096 experts");
		if (sim_reserve((void **)&r->experts, &r->cap_experts, t->n_lookups + 1, 4) < 0)
			return fm_err(err, FM_ENOMEM, r->path, FM_NO_OFFSET, "out of memory");
		r->experts[t->n_lookups++] = (uint32_t)e;
		r->max_expert = (uint32_t)e > r->max_expert ? (uint32_t)e : r->max_expert;
	}
	if (*s != '\0' || t->n_lookups == first)
		return sim_line_error(r, err, "expected expert ids after the layer");
	if (sim_reserve((void **)&r->layer_of_line, &r->cap_lines, t->n_lines + 1, 4) < 0 ||
	    sim_reserve((void **)&t->line_start, &r->cap_start, t->n_lines + 2, 8) < 0)
		return fm_err(err, FM_ENOMEM, r->path, FM_NO_OFFSET, "out of memory");
	r->layer_of_line[t->n_lines] = (uint32_t)layer;
	r->max_layer = (uint32_t)layer > r->max_layer ? (uint32_t)layer : r->max_layer;
	t->line_start[t->n_lines++] = first;
	t->line_start[t->n_lines] = t->n_lookups;
	return 0;
}

static int sim_read_lines(struct sim_reader *r, struct cachesim_trace *t, FILE *f,
			  struct fm_error *err)
{
	char *buf = malloc(SIM_MAX_LINE + 2);
	uint64_t token = 0;
	int rc = buf ? 0 : fm_err(err, FM_ENOMEM, r->path, FM_NO_OFFSET, "out of memory");
	while (rc == 0 && fgets(buf, SIM_MAX_LINE + 2, f)) {
		r->line_no++;
		size_t n = strlen(buf);
		if (n && buf[n - 1] == '\n')
			buf[--n] = '\0';
		else if (!feof(f))
			rc = sim_line_error(r, err, "longer than 65536 bytes");
		if (n && buf[n - 1] == '\r')
			buf[--n] = '\0';
		if (rc || n == 0)
			continue;
		if (buf[0] == '#' && buf[1] == 'p' && (buf[2] == ' ' || buf[2] == '\0')) {
			rc = sim_parse_probs(r, buf, err);
			continue;
		}
		if (buf[0] == '#') {
			sim_parse_header(r, buf);
			continue;
		}
		rc = sim_parse_line(r, t, buf, &token, err);
		if (rc == 0)
			rc = sim_take_probs(r, t, token, err);
		/* one line per layer per evaluated token: count layer 0's lines
		 * (a prompt batch writes tokens 0..n-1 for layer 0, then for layer 1,
		 * so counting changes of the token id would count each n times) */
		if (rc == 0 && r->layer_of_line[t->n_lines - 1] == 0)
			t->n_tokens++;
	}
	if (rc == 0 && ferror(f))
		rc = fm_err(err, -EIO, r->path, FM_NO_OFFSET, "read error");
	free(buf);
	return rc;
}

/* Keys from the raw (layer, expert) lines, duplicates in a line merged. */
static int sim_make_keys(struct sim_reader *r, struct cachesim_trace *t, struct fm_error *err)
{
	uint64_t *seen = malloc((size_t)t->n_expert * sizeof(uint64_t));
	if (!seen)
		return fm_err(err, FM_ENOMEM, r->path, FM_NO_OFFSET, "out of memory");
	memset(seen, 0xff, (size_t)t->n_expert * sizeof(uint64_t));
	uint64_t w = 0, old_start = 0;
	for (uint64_t i = 0; i < t->n_lines; i++) {
		uint64_t old_end = t->line_start[i + 1];
		t->line_start[i] = w;
		for (uint64_t j = old_start; j < old_end; j++) {
			uint32_t e = r->experts[j];
			if (seen[e] == i)
				continue;
			seen[e] = i;
			r->experts[w++] = r->layer_of_line[i] * t->n_expert + e;
		}
		if (w - t->line_start[i] > t->max_per_line)
			t->max_per_line = (uint32_t)(w - t->line_start[i]);
		old_start = old_end;
	}
	t->line_start[t->n_lines] = w;
	t->n_lookups = w;
	t->keys = r->experts;
	r->experts = NULL;
	free(seen);
	return 0;
}

/* next_line[j]: the next line after j's that uses j's key; n_distinct. */
static int sim_next_use(struct cachesim_trace *t, const char *path, struct fm_error *err)
{
	uint64_t n_keys = (uint64_t)t->n_layer * t->n_expert;
	uint64_t *last = malloc((size_t)n_keys * sizeof(uint64_t));
	t->next_line = malloc((size_t)(t->n_lookups ? t->n_lookups : 1) * sizeof(uint64_t));
	if (!last || !t->next_line) {
		free(last);
		return fm_err(err, FM_ENOMEM, path, FM_NO_OFFSET, "out of memory");
	}
	memset(last, 0xff, (size_t)n_keys * sizeof(uint64_t));
	for (uint64_t i = t->n_lines; i-- > 0;)
		for (uint64_t j = t->line_start[i]; j < t->line_start[i + 1]; j++) {
			t->next_line[j] = last[t->keys[j]];
			last[t->keys[j]] = i;
		}
	for (uint64_t k = 0; k < n_keys; k++)
		t->n_distinct += last[k] != UINT64_MAX;
	free(last);
	return 0;
}

static int sim_finish(struct sim_reader *r, struct cachesim_trace *t, struct fm_error *err)
{
	if (t->n_lines == 0)
		return fm_err(err, FM_EFORMAT, r->path, FM_NO_OFFSET, "no routing lines");
	t->n_layer = r->hdr_layer ? r->hdr_layer : r->max_layer + 1;
	t->n_expert = r->hdr_expert ? r->hdr_expert : r->max_expert + 1;
	if (r->max_layer >= t->n_layer || r->max_expert >= t->n_expert)
		return fm_err(err, FM_EFORMAT, r->path, FM_NO_OFFSET,
			      "layer %u or expert %u beyond the header's n_layer=%u n_expert=%u",
			      r->max_layer, r->max_expert, t->n_layer, t->n_expert);
	if ((uint64_t)t->n_layer * t->n_expert > SIM_MAX_KEYS)
		return fm_err(err, FM_ERANGE, r->path, FM_NO_OFFSET,
			      "%u layers x %u experts: more than %u keys", t->n_layer, t->n_expert,
			      SIM_MAX_KEYS);
	int rc = sim_make_keys(r, t, err);
	if (rc == 0)
		rc = sim_next_use(t, r->path, err);
	t->n_expert_used = r->hdr_used ? r->hdr_used : t->max_per_line;
	if (rc == 0 && r->n_prob_lines && r->n_prob_lines != t->n_lines)
		rc = fm_err(err, FM_EFORMAT, r->path, FM_NO_OFFSET,
			    "router probabilities (\"#p\") on %llu of the %llu routing lines",
			    (unsigned long long)r->n_prob_lines, (unsigned long long)t->n_lines);
	if (rc == 0 && r->n_prob_lines) {
		t->probs = r->probs;
		r->probs = NULL;
	}
	t->layer_of_line = r->layer_of_line;
	r->layer_of_line = NULL;
	return rc;
}

int cachesim_trace_load(const char *path, struct cachesim_trace *t, struct fm_error *err)
{
	struct sim_reader r = {.path = path};
	*t = (struct cachesim_trace){0};
	FILE *f = fopen(path, "r");
	if (!f)
		return fm_err(err, -errno, path, FM_NO_OFFSET, "cannot open the trace: %s",
			      strerror(errno));
	int rc = sim_read_lines(&r, t, f, err);
	fclose(f);
	if (rc == 0)
		rc = sim_finish(&r, t, err);
	free(r.layer_of_line);
	free(r.experts);
	free(r.probs);
	free(r.pending);
	if (rc < 0)
		cachesim_trace_free(t);
	return rc;
}

void cachesim_trace_free(struct cachesim_trace *t)
{
	free(t->probs);
	free(t->layer_of_line);
	free(t->next_line);
	free(t->keys);
	free(t->line_start);
	*t = (struct cachesim_trace){0};
}

/* ---- the replay ---- */

struct sim_state {
	uint32_t *slot_of_key;  /* [n_keys] */
	uint32_t *key_of_slot;  /* [n_slots] */
	uint64_t *pinned_by;    /* [n_slots]: line + 1 that pins the slot */
	uint64_t tag;           /* current line + 1 */
	int32_t *sel;           /* [max_per_line]: the line's experts */
	float *w;               /* [max_per_line]: their weights (cache routing) */
	uint32_t layer;         /* the current line's */
	uint32_t n_expert;
	uint32_t n_used;
};

static bool sim_evictable(void *ctx, uint32_t slot)
{
	const struct sim_state *s = ctx;
	return s->pinned_by[slot] != s->tag;
}

/* Is expert e of the current line's layer cached? (cache routing) */
static bool sim_cached(void *ctx, int32_t e)
{
	const struct sim_state *s = ctx;
	return s->slot_of_key[s->layer * s->n_expert + (uint32_t)e] != SIM_NONE;
}

/* One line: cache routing (if on), the policy told the routing, then the
 * hits (pinned), then the misses. */
static int sim_line(const struct cachesim_trace *t, struct cache_policy *pol, struct sim_state *s,
		    const struct cachesim_opts *o, uint64_t i, struct cachesim_result *r)
{
	s->tag = i + 1;
	s->layer = t->layer_of_line[i];
	uint64_t j0 = t->line_start[i];
	uint32_t n = (uint32_t)(t->line_start[i + 1] - j0), base = s->layer * t->n_expert;
	const float *probs = t->probs ? t->probs + i * t->n_expert : NULL;
	for (uint32_t x = 0; x < n; x++)
		s->sel[x] = (int32_t)(t->keys[j0 + x] - base);
	if (probs && o->route_thresh > 0)
		r->substituted += (uint64_t)cache_route(probs, (int)t->n_expert, s->sel, s->w, (int)n,
							o->route_thresh, true, sim_cached, s);
	cache_policy_route(pol, s->layer, probs, s->sel, (int)n);
	r->lookups += n;
	for (uint32_t x = 0; x < n; x++) {
		uint32_t slot = s->slot_of_key[base + (uint32_t)s->sel[x]];
		if (slot == SIM_NONE)
			continue;
		r->hits++;
		cache_policy_hit(pol, slot, t->next_line[j0 + x]);
		s->pinned_by[slot] = s->tag;
	}
	for (uint32_t x = 0; x < n; x++) {
		uint32_t key = base + (uint32_t)s->sel[x];
		if (s->slot_of_key[key] != SIM_NONE)
			continue;
		int64_t v = s->n_used < o->n_slots ? s->n_used++
						   : cache_policy_evict(pol, key, sim_evictable, s);
		if (v < 0)
			return FM_EINVAL;
		if (s->key_of_slot[v] != SIM_NONE)
			s->slot_of_key[s->key_of_slot[v]] = SIM_NONE;
		s->key_of_slot[v] = key;
		s->slot_of_key[key] = (uint32_t)v;
		s->pinned_by[v] = s->tag;
		cache_policy_insert(pol, (uint32_t)v, key, t->next_line[j0 + x]);
	}
	return 0;
}

int cachesim_replay(const struct cachesim_trace *t, const struct cachesim_opts *o,
		    struct cachesim_result *r, struct fm_error *err)
{
	uint32_t n_keys = t->n_layer * t->n_expert, n_slots = o->n_slots;
	*r = (struct cachesim_result){0};
	if (n_slots < t->max_per_line || n_slots == 0)
		return fm_err(err, FM_EINVAL, NULL, FM_NO_OFFSET,
			      "%u slots cannot hold one line's %u experts", n_slots, t->max_per_line);
	if (o->route_thresh > 0 && (o->policy == CACHE_POLICY_MIN || !t->probs))
		return fm_err(err, FM_EINVAL, NULL, FM_NO_OFFSET, "cache routing needs a trace with "
			      "router probabilities (v2) and an online policy (not min)");
	struct sim_state s = {.n_expert = t->n_expert};
	struct cache_policy *pol = cache_policy_new_layers(o->policy, n_slots, t->n_layer, t->n_expert);
	if (pol && o->pred)
		cache_policy_set_pred(pol, o->pred);
	s.sel = malloc((size_t)t->max_per_line * sizeof(int32_t));
	s.w = malloc((size_t)t->max_per_line * sizeof(float));
	s.slot_of_key = malloc((size_t)n_keys * sizeof(uint32_t));
	s.key_of_slot = malloc((size_t)n_slots * sizeof(uint32_t));
	s.pinned_by = calloc(n_slots, sizeof(uint64_t));
	int rc = 0;
	if (!pol || !s.sel || !s.w || !s.slot_of_key || !s.key_of_slot || !s.pinned_by) {
		rc = fm_err(err, FM_ENOMEM, NULL, FM_NO_OFFSET, "out of memory (%u slots)", n_slots);
		goto fail;
	}
	memset(s.slot_of_key, 0xff, (size_t)n_keys * sizeof(uint32_t));
	memset(s.key_of_slot, 0xff, (size_t)n_slots * sizeof(uint32_t));
	for (uint64_t i = 0; i < t->n_lines && rc == 0; i++)
		rc = sim_line(t, pol, &s, o, i, r);
	if (rc < 0)
		fm_err(err, rc, NULL, FM_NO_OFFSET, "policy %s found no slot to evict",
		       cache_policy_name(o->policy));
fail:
	free(s.w);
	free(s.sel);
	free(s.pinned_by);
	free(s.key_of_slot);
	free(s.slot_of_key);
	cache_policy_free(pol);
	return rc;
}

int cachesim_run(const struct cachesim_trace *t, enum cache_policy_kind k, uint32_t n_slots,
		 uint64_t *hits, struct fm_error *err)
{
	struct cachesim_opts o = {.policy = k, .n_slots = n_slots};
	struct cachesim_result r;
	int rc = cachesim_replay(t, &o, &r, err);
	*hits = r.hits;
	return rc;
}

/* ---- synthetic traces ---- */

struct sim_gen_state {
	const struct cachesim_gen *g;
	uint64_t rng;
	double *cdf;        /* [n_expert] Zipf cumulative probabilities */
	uint32_t *rank;     /* [n_layer][n_expert]: rank -> expert */
	int32_t *prev;      /* [n_layer][k]: the previous token's picks */
};

static uint64_t sim_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static double sim_uniform(uint64_t *s)
{
	return (double)(sim_rand(s) >> 11) * (1.0 / 9007199254740992.0);
}

static void sim_shuffle(struct sim_gen_state *st, uint32_t layer)
{
	uint32_t n = st->g->n_expert, *r = st->rank + (size_t)layer * n;
	for (uint32_t i = n - 1; i > 0; i--) {
		uint32_t j = (uint32_t)(sim_rand(&st->rng) % (i + 1)), tmp = r[i];
		r[i] = r[j];
		r[j] = tmp;
	}
}

static uint32_t sim_pick(struct sim_gen_state *st, uint32_t layer, bool have_prev)
{
	const struct cachesim_gen *g = st->g;
	if (have_prev && g->p_repeat > 0 && sim_uniform(&st->rng) < g->p_repeat)
		return (uint32_t)st->prev[(size_t)layer * g->k + sim_rand(&st->rng) % g->k];
	if (g->kind == CACHESIM_GEN_UNIFORM)
		return (uint32_t)(sim_rand(&st->rng) % g->n_expert);
	double u = sim_uniform(&st->rng);
	uint32_t lo = 0, hi = g->n_expert - 1; /* first rank with cdf > u */
	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;
		if (st->cdf[mid] > u)
			hi = mid;
		else
			lo = mid + 1;
	}
	return st->rank[(size_t)layer * g->n_expert + lo];
}

/* k distinct experts for (token t, layer), written to the trace. */
static int sim_gen_line(struct sim_gen_state *st, struct experts_trace *tr, uint32_t t,
			uint32_t layer, int32_t *picks)
{
	const struct cachesim_gen *g = st->g;
	for (uint32_t n = 0; n < g->k;) {
		int32_t e = (int32_t)sim_pick(st, layer, t > 0);
		bool dup = false;
		for (uint32_t j = 0; j < n; j++)
			dup |= picks[j] == e;
		if (!dup)
			picks[n++] = e;
	}
	memcpy(st->prev + (size_t)layer * g->k, picks, g->k * sizeof(int32_t));
	return experts_trace_write(tr, t, (int)layer, picks, (int)g->k);
}

static int sim_gen_init(struct sim_gen_state *st, struct fm_error *err)
{
	const struct cachesim_gen *g = st->g;
	st->cdf = malloc(g->n_expert * sizeof(double));
	st->rank = malloc((size_t)g->n_layer * g->n_expert * sizeof(uint32_t));
	st->prev = malloc((size_t)g->n_layer * g->k * sizeof(int32_t));
	if (!st->cdf || !st->rank || !st->prev)
		return fm_err(err, FM_ENOMEM, NULL, FM_NO_OFFSET, "out of memory");
	double sum = 0;
	for (uint32_t r = 0; r < g->n_expert; r++)
		sum += pow(r + 1.0, -g->zipf_s);
	double acc = 0;
	for (uint32_t r = 0; r < g->n_expert; r++) {
		acc += pow(r + 1.0, -g->zipf_s) / sum;
		st->cdf[r] = acc;
	}
	st->cdf[g->n_expert - 1] = 2.0; /* rounding: the last rank always catches u */
	for (uint32_t l = 0; l < g->n_layer; l++) {
		for (uint32_t e = 0; e < g->n_expert; e++)
			st->rank[(size_t)l * g->n_expert + e] = e;
		sim_shuffle(st, l);
	}
	return 0;
}

int cachesim_gen_write(const char *path, const struct cachesim_gen *g, struct fm_error *err)
{
	if (!g->n_tokens || !g->n_layer || g->n_layer > SIM_MAX_LAYER || !g->n_expert ||
	    g->n_expert > SIM_MAX_EXPERT || !g->k || g->k > g->n_expert || g->k > SIM_MAX_PER_LINE ||
	    !(g->p_repeat >= 0 && g->p_repeat <= 1) || !(g->zipf_s >= 0 && g->zipf_s <= 10))
		return fm_err(err, FM_EINVAL, path, FM_NO_OFFSET,
			      "bad generator settings (tokens %u, layers %u, experts %u, k %u, "
			      "zipf %g, repeat %g)", g->n_tokens, g->n_layer, g->n_expert, g->k,
			      g->zipf_s, g->p_repeat);
	struct sim_gen_state st = {.g = g, .rng = g->seed};
	struct experts_trace *tr = NULL;
	int32_t *picks = malloc(g->k * sizeof(int32_t));
	int rc = picks ? sim_gen_init(&st, err)
		       : fm_err(err, FM_ENOMEM, NULL, FM_NO_OFFSET, "out of memory");
	if (rc < 0)
		goto fail;
	tr = experts_trace_open(path, (int)g->n_layer, (int)g->n_expert, (int)g->k, err);
	if (!tr) {
		rc = err ? err->code : FM_EIO;
		goto fail;
	}
	for (uint32_t t = 0; t < g->n_tokens && rc == 0; t++) {
		if (g->shift_every && t && t % g->shift_every == 0)
			for (uint32_t l = 0; l < g->n_layer; l++)
				sim_shuffle(&st, l);
		for (uint32_t l = 0; l < g->n_layer && rc == 0; l++)
			rc = sim_gen_line(&st, tr, t, l, picks);
	}
fail:
	if (tr) {
		int rc2 = experts_trace_close(tr, err);
		rc = rc ? rc : rc2;
	}
	free(picks);
	free(st.prev);
	free(st.rank);
	free(st.cdf);
	return rc;
}
