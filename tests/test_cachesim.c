/* test_cachesim.c: the cache policies (src/cache_policy.*) and the simulator
 * (src/cachesim.*).
 *
 * Checked: the textbook reference string (Silberschatz's 7 0 1 2 0 3 0 4 2 3
 * 0 3 2 1 2 0 1 7 0 1, 3 frames: LRU 12 faults, OPT 9); hits before misses
 * within a line; ARC resisting a scan that flushes LRU; MIN >= every policy
 * on random and Zipf traces; only compulsory misses when everything fits;
 * the live expert cache (experts.c) hitting exactly as the simulator says
 * for the same trace, policy and size; the trace parser's errors and
 * leniencies; the generator's shape; pred's hits worked by hand with and
 * without router probabilities (v2 "#p" lines); cache-aware routing
 * (cache_route, experts_cache_route, cache-sim's replay) changing an expert
 * only when it is missing and weighs less than the threshold.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cachesim.h"
#include "experts.h"
#include "testutil.h"

static const char *write_text(const char *name, const char *text)
{
	static char path[4][600];
	static int next;
	char *p = path[next++ % 4];
	snprintf(p, 600, "%s/%s", t_tmpdir(), name);
	FILE *f = fopen(p, "w");
	if (!f)
		exit(1);
	fputs(text, f);
	fclose(f);
	return p;
}

static uint64_t sim_hits(const struct cachesim_trace *t, enum cache_policy_kind k, uint32_t slots)
{
	uint64_t hits = 0;
	struct fm_error err = {0};
	int rc = cachesim_run(t, k, slots, &hits, &err);
	CHECK(rc == 0, "run %s %u: %s", cache_policy_name(k), slots, err.msg);
	return hits;
}

static void test_textbook(void)
{
	static const int ref[20] = {7, 0, 1, 2, 0, 3, 0, 4, 2, 3, 0, 3, 2, 1, 2, 0, 1, 7, 0, 1};
	char text[512] = "# one layer, one expert per token\n";
	for (int i = 0; i < 20; i++)
		snprintf(text + strlen(text), sizeof(text) - strlen(text), "%d 0 %d\n", i, ref[i]);
	struct cachesim_trace t;
	struct fm_error err = {0};
	CHECK(cachesim_trace_load(write_text("book.txt", text), &t, &err) == 0, "load: %s", err.msg);
	CHECK(t.n_lines == 20 && t.n_lookups == 20 && t.n_distinct == 6 && t.max_per_line == 1,
	      "shape %llu %llu %llu", (unsigned long long)t.n_lines,
	      (unsigned long long)t.n_lookups, (unsigned long long)t.n_distinct);
	CHECK(sim_hits(&t, CACHE_POLICY_LRU, 3) == 8, "LRU: 12 faults");
	CHECK(sim_hits(&t, CACHE_POLICY_MIN, 3) == 11, "OPT: 9 faults");
	CHECK(sim_hits(&t, CACHE_POLICY_MIN, 4) == 12, "OPT with 4 frames: 8 faults");
	for (int k = 0; k < CACHE_POLICY_COUNT; k++)
		CHECK(sim_hits(&t, (enum cache_policy_kind)k, 6) == 14, "%s: only the 6 first uses miss",
		      cache_policy_name((enum cache_policy_kind)k));
	cachesim_trace_free(&t);
}

/* Line 2 hits A; the miss C must evict B (not the pinned A). */
static void test_hits_first(void)
{
	struct cachesim_trace t;
	struct fm_error err = {0};
	CHECK(cachesim_trace_load(write_text("pin.txt", "0 0 0 1\n1 0 2 0 0\n"), &t, &err) == 0,
	      "load: %s", err.msg);
	CHECK(t.max_per_line == 2 && t.n_lookups == 4, "duplicates merged");
	for (int k = 0; k < CACHE_POLICY_COUNT; k++)
		CHECK(sim_hits(&t, (enum cache_policy_kind)k, 2) == 1, "%s",
		      cache_policy_name((enum cache_policy_kind)k));
	uint64_t h;
	CHECK(cachesim_run(&t, CACHE_POLICY_LRU, 1, &h, &err) == FM_EINVAL, "1 slot < 2 per line");
	cachesim_trace_free(&t);
	/* A A B C A, 2 slots: LRU drops A for C; LFU drops B (count 1 < 2). */
	CHECK(cachesim_trace_load(write_text("lfu.txt", "0 0 0\n1 0 0\n2 0 1\n3 0 2\n4 0 0\n"), &t,
				  &err) == 0, "load: %s", err.msg);
	CHECK(sim_hits(&t, CACHE_POLICY_LRU, 2) == 1 && sim_hits(&t, CACHE_POLICY_LFU, 2) == 2 &&
		      sim_hits(&t, CACHE_POLICY_MIN, 2) == 2,
	      "LRU 1 hit, LFU 2");
	cachesim_trace_free(&t);
}

/* A hot set used twice between one-off scans: LRU loses it to each scan,
 * ARC keeps it in T2. */
static void test_scan(void)
{
	char text[8192] = "";
	int tok = 0, fresh = 100;
	for (int round = 0; round < 40; round++) {
		for (int rep = 0; rep < 2; rep++)
			for (int h = 0; h < 4; h++)
				snprintf(text + strlen(text), sizeof(text) - strlen(text), "%d 0 %d\n",
					 tok++, h);
		for (int s = 0; s < 4; s++)
			snprintf(text + strlen(text), sizeof(text) - strlen(text), "%d 0 %d\n", tok++,
				 fresh++);
	}
	struct cachesim_trace t;
	struct fm_error err = {0};
	CHECK(cachesim_trace_load(write_text("scan.txt", text), &t, &err) == 0, "load: %s", err.msg);
	uint64_t lru = sim_hits(&t, CACHE_POLICY_LRU, 6), arc = sim_hits(&t, CACHE_POLICY_ARC, 6);
	uint64_t lfu = sim_hits(&t, CACHE_POLICY_LFU, 6), opt = sim_hits(&t, CACHE_POLICY_MIN, 6);
	printf("  scan trace, 6 slots: lru %llu arc %llu lfu %llu min %llu of %llu\n",
	       (unsigned long long)lru, (unsigned long long)arc, (unsigned long long)lfu,
	       (unsigned long long)opt, (unsigned long long)t.n_lookups);
	CHECK(arc > lru && lfu > lru && opt >= arc && opt >= lfu, "scan resistance");
	cachesim_trace_free(&t);
}

static void test_random_traces(void)
{
	for (int i = 0; i < 12; i++) {
		struct cachesim_gen g = {i % 2 ? CACHESIM_GEN_ZIPF : CACHESIM_GEN_UNIFORM,
					 60, 1 + (uint32_t)i % 4, 8 + (uint32_t)i, 1 + (uint32_t)i % 3,
					 0.3 * (i % 4), 0.1 * (i % 5), (uint32_t)(i % 3) * 7,
					 (uint64_t)i + 1};
		struct fm_error err = {0};
		const char *path = write_text("rand.txt", "");
		CHECK(cachesim_gen_write(path, &g, &err) == 0, "gen: %s", err.msg);
		struct cachesim_trace t;
		if (cachesim_trace_load(path, &t, &err) < 0) {
			CHECK(0, "load: %s", err.msg);
			continue;
		}
		CHECK(t.n_lines == (uint64_t)g.n_tokens * g.n_layer && t.max_per_line == g.k &&
			      t.n_tokens == g.n_tokens,
		      "generated shape");
		uint32_t all = g.n_layer * g.n_expert;
		for (uint32_t slots = g.k; slots <= all; slots += 1 + all / 7) {
			uint64_t best = sim_hits(&t, CACHE_POLICY_MIN, slots);
			for (int k = 0; k < CACHE_POLICY_MIN; k++) {
				uint64_t h = sim_hits(&t, (enum cache_policy_kind)k, slots);
				CHECK(h <= best, "trace %d, %u slots: %s %llu > MIN %llu", i, slots,
				      cache_policy_name((enum cache_policy_kind)k), (unsigned long long)h,
				      (unsigned long long)best);
			}
		}
		for (int k = 0; k < CACHE_POLICY_COUNT; k++)
			CHECK(sim_hits(&t, (enum cache_policy_kind)k, all) == t.n_lookups - t.n_distinct,
			      "all fit: compulsory misses only");
		cachesim_trace_free(&t);
	}
}

/* The live cache must hit exactly where the simulator says it does. */
static void live_vs_sim(const struct cachesim_trace *t, const char *file,
			const struct experts_layer *layers, enum cache_policy_kind k, uint32_t slots)
{
	struct fm_error err = {0};
	struct io_params ip = {.mode = IO_MODE_PREAD, .queue_depth = 64};
	struct io_engine *io = io_open(file, &ip, &err);
	struct experts_desc d = {(int)t->n_layer, (int)t->n_expert, (int)t->max_per_line, layers};
	struct experts_params p = {.budget_bytes = (uint64_t)slots * 3 * 4096, .policy = k};
	struct experts *x = io ? experts_new(&d, io, &p, NULL, &err) : NULL;
	CHECK(x && experts_n_slots(x) == slots, "store: %s", err.msg);
	struct experts_ref refs[64], r;
	int32_t ids[64];
	for (uint64_t i = 0; x && i < t->n_lines; i++) {
		int n = 0;
		for (uint64_t j = t->line_start[i]; j < t->line_start[i + 1]; j++)
			ids[n++] = (int32_t)(t->keys[j] % t->n_expert);
		int layer = (int)(t->keys[t->line_start[i]] / t->n_expert);
		experts_observe(x, layer, NULL, ids, n);
		CHECK(experts_request(x, layer, ids, n, refs, &err) == n, "request: %s", err.msg);
		while (experts_wait(x, &r, &err) > 0)
			;
		experts_release(x);
	}
	struct experts_stats s = {0};
	if (x)
		experts_get_stats(x, &s);
	uint64_t want = sim_hits(t, k, slots);
	CHECK(s.hits == want && s.lookups == t->n_lookups, "%s, %u slots: live %llu hits, sim %llu",
	      cache_policy_name(k), slots, (unsigned long long)s.hits, (unsigned long long)want);
	experts_free(x);
	io_close(io);
}

static void test_live_matches_sim(void)
{
	struct cachesim_gen g = {CACHESIM_GEN_ZIPF, 40, 3, 12, 3, 0.8, 0.3, 0, 5};
	struct fm_error err = {0};
	const char *path = write_text("live.txt", "");
	CHECK(cachesim_gen_write(path, &g, &err) == 0, "gen: %s", err.msg);
	struct cachesim_trace t;
	if (cachesim_trace_load(path, &t, &err) < 0) {
		CHECK(0, "load: %s", err.msg);
		return;
	}
	/* A model file: every part of every expert one page. */
	struct experts_layer layers[3];
	uint64_t at = 4096, part = 4096;
	for (int l = 0; l < 3; l++)
		for (int p = 0; p < EXPERTS_N_PARTS; p++) {
			layers[l].part[p] = (struct experts_tensor){at, part, part};
			at += part * g.n_expert;
		}
	char file[600];
	snprintf(file, sizeof(file), "%s/model.bin", t_tmpdir());
	FILE *f = fopen(file, "wb");
	CHECK(f && fseek(f, (long)at - 1, SEEK_SET) == 0 && fputc(0, f) == 0, "model file");
	if (f)
		fclose(f);
	for (int k = 0; k < CACHE_POLICY_MIN; k++)
		for (uint32_t slots = 3; slots <= 36; slots += 11)
			live_vs_sim(&t, file, layers, (enum cache_policy_kind)k, slots);
	remove(file);
	cachesim_trace_free(&t);
}

static void expect_bad(const char *text, const char *what)
{
	struct cachesim_trace t;
	struct fm_error err = {0};
	int rc = cachesim_trace_load(write_text("bad.txt", text), &t, &err);
	CHECK(rc == FM_EFORMAT && strstr(err.msg, what), "'%s': rc %d msg '%s' (want '%s')", text,
	      rc, err.msg, what);
}

static void test_parser(void)
{
	expect_bad("0 0\n", "line 1: expected expert ids");
	expect_bad("# c\n0 0 1\nx 0 1\n", "line 3: expected \"token layer");
	expect_bad("0 5000 1\n", "line 1");
	expect_bad("0 0 70000\n", "bad expert id");
	expect_bad("0 0 1 -2\n", "bad expert id");
	expect_bad("0 0 99999999999999999999999\n", "bad expert id");
	expect_bad("# flashmoe expert trace v1 n_layer=2 n_expert=4 n_expert_used=2\n0 0 7\n",
		   "beyond the header");
	expect_bad("", "no routing lines");
	char *big = malloc(70000);
	if (big) {
		memset(big, '1', 69998);
		memcpy(big, "0 0 ", 4);
		big[69998] = '\n';
		big[69999] = '\0';
		expect_bad(big, "longer than");
		free(big);
	}
	struct cachesim_trace t;
	struct fm_error err = {0};
	const char *ok = "# flashmoe expert trace v1 n_layer=3 n_expert=10 n_expert_used=2\n"
			 "\n0 0 1 2 \r\n0 2 3 4\n# comment\n1 0 1 1\n";
	CHECK(cachesim_trace_load(write_text("ok.txt", ok), &t, &err) == 0, "lenient: %s", err.msg);
	CHECK(t.n_layer == 3 && t.n_expert == 10 && t.n_expert_used == 2 && t.n_lines == 3 &&
		      t.n_tokens == 2 && t.n_lookups == 5 && t.n_distinct == 4,
	      "header and counts: %u %u %u %llu", t.n_layer, t.n_expert, t.n_expert_used,
	      (unsigned long long)t.n_lookups);
	cachesim_trace_free(&t);
}

/* Zipf routing is skewed; uniform is not. */
static void test_generator_skew(void)
{
	for (int kind = 0; kind < 2; kind++) {
		struct cachesim_gen g = {(enum cachesim_gen_kind)kind, 400, 1, 64, 4, 1.0, 0, 0, 9};
		struct fm_error err = {0};
		const char *path = write_text("skew.txt", "");
		struct cachesim_trace t;
		CHECK(cachesim_gen_write(path, &g, &err) == 0 && cachesim_trace_load(path, &t, &err) == 0,
		      "gen/load: %s", err.msg);
		uint64_t count[64] = {0}, top = 0;
		for (uint64_t j = 0; j < t.n_lookups; j++)
			count[t.keys[j]]++;
		for (int e = 0; e < 64; e++)
			top = count[e] > top ? count[e] : top;
		double share = (double)top / (double)t.n_lookups;
		CHECK(kind == CACHESIM_GEN_ZIPF ? share > 0.08 : share < 0.04, "%s: top share %.3f",
		      kind ? "zipf" : "uniform", share);
		cachesim_trace_free(&t);
	}
	struct cachesim_gen bad = {CACHESIM_GEN_ZIPF, 10, 1, 4, 5, 1.0, 0, 0, 1};
	struct fm_error err = {0};
	CHECK(cachesim_gen_write(write_text("x.txt", ""), &bad, &err) == FM_EINVAL, "k > n_expert");
}

/* pred, by hand (the defaults: decay 0.995, q = 0.005 * use + now; one
 * layer, so every distance is the same). Frequency alone: 0 0 0 1 2 0 keeps the hot 0 (LRU drops it). */
static void test_pred_by_hand(void)
{
	struct cachesim_trace t;
	struct fm_error err = {0};
	CHECK(cachesim_trace_load(write_text("pf.txt", "0 0 0\n1 0 0\n2 0 0\n3 0 1\n4 0 2\n5 0 0\n"),
				  &t, &err) == 0, "load: %s", err.msg);
	CHECK(sim_hits(&t, CACHE_POLICY_PRED, 2) == 3, "pred keeps the hot expert");
	CHECK(sim_hits(&t, CACHE_POLICY_LRU, 2) == 2, "LRU drops it");
	cachesim_trace_free(&t);
	/* With probabilities: at line 2, q0 = 0.005 * 0.995 + 0.05 = 0.055 and
	 * q1 = 0.005 * 0.990 + 0.15 = 0.155, so pred evicts 0 (the later used)
	 * and line 3 hits 1; without them q0 > q1 and it evicts 1, as LRU does. */
	const char *hdr = "# flashmoe expert trace v2 n_layer=1 n_expert=3 n_expert_used=1\n";
	const char *lines[4] = {"0 0 1\n", "1 0 0\n", "2 0 2\n", "3 0 1\n"};
	const char *probs[4] = {"#p 0 0 200000 700000 100000\n", "#p 1 0 700000 200000 100000\n",
				"#p 2 0 50000 150000 800000\n", "#p 3 0 200000 700000 100000\n"};
	char v2[512], v1[512];
	snprintf(v2, sizeof(v2), "%s", hdr);
	snprintf(v1, sizeof(v1), "%s", hdr);
	for (int i = 0; i < 4; i++) {
		strcat(strcat(v2, probs[i]), lines[i]);
		strcat(v1, lines[i]);
	}
	CHECK(cachesim_trace_load(write_text("pv2.txt", v2), &t, &err) == 0 && t.probs &&
	      fabsf(t.probs[8] - 0.8f) < 1e-6f, "load v2: %s", err.msg);
	CHECK(sim_hits(&t, CACHE_POLICY_PRED, 2) == 1, "pred with probabilities");
	CHECK(sim_hits(&t, CACHE_POLICY_LRU, 2) == 0, "LRU");
	CHECK(sim_hits(&t, CACHE_POLICY_MIN, 2) == 1, "MIN");
	cachesim_trace_free(&t);
	CHECK(cachesim_trace_load(write_text("pv1.txt", v1), &t, &err) == 0 && !t.probs, "load v1");
	CHECK(sim_hits(&t, CACHE_POLICY_PRED, 2) == 0, "pred without probabilities");
	cachesim_trace_free(&t);
	/* "#p" lines that do not match, or cover only some lines */
	char bad[512];
	snprintf(bad, sizeof(bad), "%s#p 0 0 1 2 3\n0 0 1\n1 0 0\n", hdr);
	CHECK(cachesim_trace_load(write_text("pb1.txt", bad), &t, &err) == FM_EFORMAT &&
	      strstr(err.msg, "1 of the 2"), "partial probabilities: %s", err.msg);
	snprintf(bad, sizeof(bad), "%s#p 1 0 1 2 3\n0 0 1\n", hdr);
	CHECK(cachesim_trace_load(write_text("pb2.txt", bad), &t, &err) == FM_EFORMAT,
	      "probabilities of another token");
	snprintf(bad, sizeof(bad), "%s#p 0 0 1 2\n0 0 1\n", hdr);
	CHECK(cachesim_trace_load(write_text("pb3.txt", bad), &t, &err) == FM_EFORMAT,
	      "too few probabilities");
	snprintf(bad, sizeof(bad), "%s#p 0 0 1 2 1000001\n0 0 1\n", hdr);
	CHECK(cachesim_trace_load(write_text("pb4.txt", bad), &t, &err) == FM_EFORMAT,
	      "a probability above 1e6");
}

static bool any_slot(void *ctx, uint32_t slot)
{
	(void)ctx;
	(void)slot;
	return true;
}

/* pred's layer distance and read cost: two layers, one expert each cached
 * after routing layer 0 then layer 1 (both certain: q = 1). Layer 0's is
 * needed first (1 line away, weighted 2 -> 2; layer 1's: 2 lines -> 4), so
 * layer 1's goes, unless reading it costs 3x (4 / 3 < 2). */
static void test_pred_cost(void)
{
	for (int costly = 0; costly < 2; costly++) {
		struct cache_policy *p = cache_policy_new_layers(CACHE_POLICY_PRED, 2, 2, 2);
		CHECK(p, "new");
		if (!p)
			return;
		if (costly)
			cache_policy_set_cost(p, 1, 3.0f);
		int32_t e0 = 0;
		cache_policy_route(p, 0, NULL, &e0, 1);
		cache_policy_insert(p, 0, 0, 0);
		cache_policy_route(p, 1, NULL, &e0, 1);
		cache_policy_insert(p, 1, 2, 0);
		int64_t v = cache_policy_evict(p, 3, any_slot, NULL);
		CHECK(v == (costly ? 0 : 1), "cost %d: evicted slot %lld", costly, (long long)v);
		cache_policy_free(p);
	}
}

static const float route_p[8] = {0.30f, 0.25f, 0.15f, 0.10f, 0.08f, 0.06f, 0.04f, 0.02f};

static bool route_cached(void *ctx, int32_t e)
{
	return (*(const unsigned *)ctx >> e) & 1;
}

/* top-4 {0,1,2,3} (weights .375 .3125 .1875 .125), cached {1,3,5,6}: at 0.2
 * only 2 goes (missing and light), to 5 (the best cached unselected); 0 is
 * missing but heavy, 3 light but cached. */
static void test_cache_route(void)
{
	unsigned cached = 1u << 1 | 1u << 3 | 1u << 5 | 1u << 6, few = 1u << 1 | 1u << 3;
	int32_t sel[4] = {0, 1, 2, 3};
	float w[4];
	CHECK(cache_route(route_p, 8, sel, w, 4, 0.2f, true, route_cached, &cached) == 1, "one");
	CHECK(sel[0] == 0 && sel[1] == 1 && sel[2] == 5 && sel[3] == 3, "2 -> 5: %d %d %d %d",
	      sel[0], sel[1], sel[2], sel[3]);
	CHECK(fabsf(w[2] - 0.06f / 0.71f) < 1e-6f && fabsf(w[0] - 0.30f / 0.71f) < 1e-6f, "renorm");
	int32_t keep[4] = {0, 1, 2, 3};
	CHECK(cache_route(route_p, 8, keep, w, 4, 0.1f, true, route_cached, &cached) == 0 &&
	      keep[2] == 2 && fabsf(w[3] - 0.125f) < 1e-6f, "0.1: nothing below it");
	CHECK(cache_route(route_p, 8, keep, w, 4, 0.2f, true, route_cached, &few) == 0 &&
	      keep[2] == 2, "no cached expert to take its place");
	CHECK(cache_route(route_p, 8, keep, w, 4, 0.0f, true, route_cached, &cached) == 0 &&
	      keep[2] == 2, "off");
	CHECK(cache_route(route_p, 8, keep, w, 4, 0.2f, false, route_cached, &cached) == 1 &&
	      keep[2] == 5 && fabsf(w[2] - 0.06f) < 1e-6f, "unnormalised weights");
}

/* The same through the live store: experts 1, 3, 5, 6 of layer 0 read,
 * then the routing of route_p at thresholds 0.2 and 0. */
static void test_store_route(void)
{
	struct experts_layer layers[1];
	uint64_t at = 4096, part = 4096;
	for (int p = 0; p < EXPERTS_N_PARTS; p++) {
		layers[0].part[p] = (struct experts_tensor){at, part, part};
		at += part * 8;
	}
	char file[600];
	snprintf(file, sizeof(file), "%s/route.bin", t_tmpdir());
	FILE *f = fopen(file, "wb");
	CHECK(f && fseek(f, (long)at - 1, SEEK_SET) == 0 && fputc(0, f) == 0, "model file");
	if (f)
		fclose(f);
	for (int on = 0; on < 2; on++) {
		struct fm_error err = {0};
		struct io_params ip = {.mode = IO_MODE_PREAD, .queue_depth = 64};
		struct io_engine *io = io_open(file, &ip, &err);
		struct experts_desc d = {1, 8, 4, layers};
		struct experts_params p = {.budget_bytes = 6 * 3 * 4096, .policy = CACHE_POLICY_LFU,
					   .route_thresh = on ? 0.2f : 0.0f};
		struct experts *x = io ? experts_new(&d, io, &p, NULL, &err) : NULL;
		CHECK(x, "store: %s", err.msg);
		if (!x) {
			io_close(io);
			continue;
		}
		struct experts_ref refs[8], r;
		int32_t ids[4] = {1, 3, 5, 6}, sel[4] = {0, 1, 2, 3};
		float w[4] = {0};
		CHECK(experts_request(x, 0, ids, 4, refs, &err) == 4, "request: %s", err.msg);
		while (experts_wait(x, &r, &err) > 0)
			;
		experts_release(x);
		CHECK(experts_cache_route(x, 0, route_p, sel, w, 4, true) == on, "replaced");
		CHECK(sel[2] == (on ? 5 : 2) && sel[0] == 0 && sel[1] == 1 && sel[3] == 3,
		      "threshold %s: %d %d %d %d", on ? "0.2" : "off", sel[0], sel[1], sel[2], sel[3]);
		struct experts_stats st;
		experts_get_stats(x, &st);
		CHECK(st.routed_away == (uint64_t)on, "counted");
		experts_free(x);
		io_close(io);
	}
	remove(file);
}

/* cache-sim's replay of cache routing: a v2 trace where line 1's light
 * expert 2 (weight 0.1) is missing while 1 is cached. */
static void test_sim_route(void)
{
	const char *text = "# flashmoe expert trace v2 n_layer=1 n_expert=4 n_expert_used=2\n"
			   "#p 0 0 500000 400000 50000 50000\n0 0 0 1\n"
			   "#p 1 0 100000 50000 10000 840000\n1 0 3 0\n"
			   "#p 2 0 540000 400000 60000 0\n2 0 0 2\n";
	struct cachesim_trace t;
	struct fm_error err = {0};
	CHECK(cachesim_trace_load(write_text("sr.txt", text), &t, &err) == 0, "load: %s", err.msg);
	struct cachesim_opts o = {CACHE_POLICY_LRU, 3, 0.0f, NULL};
	struct cachesim_result r;
	CHECK(cachesim_replay(&t, &o, &r, &err) == 0 && r.hits == 2 && r.substituted == 0,
	      "off: %llu hits", (unsigned long long)r.hits);
	o.route_thresh = 0.2f; /* line 2: 2 (0.1, missing) -> 1 (cached: 1 0 3 in the cache) */
	CHECK(cachesim_replay(&t, &o, &r, &err) == 0 && r.hits == 3 && r.substituted == 1,
	      "0.2: %llu hits, %llu replaced", (unsigned long long)r.hits,
	      (unsigned long long)r.substituted);
	o.route_thresh = 0.05f;
	CHECK(cachesim_replay(&t, &o, &r, &err) == 0 && r.substituted == 0, "0.05: above it");
	o.policy = CACHE_POLICY_MIN;
	CHECK(cachesim_replay(&t, &o, &r, &err) == FM_EINVAL, "not with MIN");
	cachesim_trace_free(&t);
}

int main(void)
{
	test_textbook();
	test_hits_first();
	test_scan();
	test_random_traces();
	test_live_matches_sim();
	test_parser();
	test_generator_skew();
	test_pred_by_hand();
	test_pred_cost();
	test_cache_route();
	test_store_route();
	test_sim_route();
	return t_done("test_cachesim");
}
