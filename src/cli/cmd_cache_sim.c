/* cmd_cache_sim.c: `flashmoe cache-sim`: replay an expert routing trace
 * (written by --trace-experts, format in src/experts.h) under each eviction
 * policy and cache size and print the hit rates, with Belady's MIN as the
 * upper bound; or write a synthetic trace (--gen) to compare policies on.
 *
 * An offline tool, not part of inference: it uses the simulator's internal
 * header (src/cachesim.h) rather than flashmoe.h, so that it replays with
 * exactly the policy code of the live cache.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../cachesim.h"
#include "cli.h"

#define SIM_MAX_SIZES 32

static const char sim_usage[] =
	"usage: flashmoe cache-sim TRACE --slots N[,N...] [--policy all|lru,lfu,arc,pred,min]\n"
	"                [--route T[,T...]] [--pred D,WU,WS,WN,QMIN,WDIST]\n"
	"       flashmoe cache-sim --gen zipf|uniform --out FILE [--tokens N] [--layers N]\n"
	"                [--experts N] [--k N] [--zipf S] [--repeat P] [--shift N] [--seed N]\n"
	"  --slots: total cache slots (one expert each, all layers share them); N% = that\n"
	"  share of all layers' experts. Prints the hit rate per policy and size; the\n"
	"  'min' row (Belady, knows the future) is the best any policy can do.\n"
	"  --route: also replay cache-aware routing at each threshold (needs a v2 trace\n"
	"  with router probabilities): hit rate and the share of experts replaced.\n"
	"  --pred: the pred policy's settings (cache_policy.h), for tuning.\n";

struct sim_opts {
	const char *trace, *gen, *out, *slots, *policy, *route, *pred;
	struct cachesim_gen g;
};

static bool sim_opt_u32(const char *flag, const char *v, uint32_t *out)
{
	uint64_t x;
	if (!v || !cli_u64("cache-sim", flag, v, &x))
		return false;
	if (x > UINT32_MAX) {
		fprintf(stderr, "flashmoe cache-sim: %s %s is too large\n", flag, v);
		return false;
	}
	*out = (uint32_t)x;
	return true;
}

static bool sim_opt_double(const char *flag, const char *v, double lo, double hi, double *out)
{
	float f;
	if (!v || !cli_float("cache-sim", flag, v, lo, hi, &f))
		return false;
	*out = f;
	return true;
}

/* One option at argv[*i]; false on an error (already printed). */
static bool sim_parse_opt(struct sim_opts *o, int argc, char **argv, int *i)
{
	const char *a = argv[*i];
	struct cachesim_gen *g = &o->g;
	const char **str = !strcmp(a, "--slots") ? &o->slots : !strcmp(a, "--policy") ? &o->policy
			   : !strcmp(a, "--gen") ? &o->gen : !strcmp(a, "--out") ? &o->out
			   : !strcmp(a, "--route") ? &o->route : !strcmp(a, "--pred") ? &o->pred : NULL;
	if (str)
		return (*str = cli_next("cache-sim", argc, argv, i)) != NULL;
	static const char *const numeric[] = {"--tokens", "--layers", "--experts", "--k",
					      "--shift", "--zipf", "--repeat", "--seed"};
	bool known = false;
	for (size_t j = 0; j < sizeof(numeric) / sizeof(numeric[0]); j++)
		known |= !strcmp(a, numeric[j]);
	if (!known) {
		if (cli_is_help(a)) {
			fputs(sim_usage, stdout);
			exit(0);
		}
		fprintf(stderr, "flashmoe cache-sim: unknown option '%s'\n%s", a, sim_usage);
		return false;
	}
	const char *v = cli_next("cache-sim", argc, argv, i);
	if (!strcmp(a, "--tokens"))
		return sim_opt_u32(a, v, &g->n_tokens);
	if (!strcmp(a, "--layers"))
		return sim_opt_u32(a, v, &g->n_layer);
	if (!strcmp(a, "--experts"))
		return sim_opt_u32(a, v, &g->n_expert);
	if (!strcmp(a, "--k"))
		return sim_opt_u32(a, v, &g->k);
	if (!strcmp(a, "--shift"))
		return sim_opt_u32(a, v, &g->shift_every);
	if (!strcmp(a, "--zipf"))
		return sim_opt_double(a, v, 0, 10, &g->zipf_s);
	if (!strcmp(a, "--repeat"))
		return sim_opt_double(a, v, 0, 1, &g->p_repeat);
	return v && cli_u64("cache-sim", a, v, &g->seed); /* --seed */
}

static bool sim_parse_args(int argc, char **argv, struct sim_opts *o)
{
	*o = (struct sim_opts){.g = {CACHESIM_GEN_ZIPF, 1000, 48, 128, 8, 0.9, 0.3, 0, 1}};
	for (int i = 1; i < argc; i++) {
		if (argv[i][0] != '-') {
			if (o->trace) {
				fprintf(stderr, "flashmoe cache-sim: one trace only\n%s", sim_usage);
				return false;
			}
			o->trace = argv[i];
		} else if (!sim_parse_opt(o, argc, argv, &i)) {
			return false;
		}
	}
	if (o->gen ? !o->out || o->trace : !o->trace || !o->slots) {
		fputs(sim_usage, stderr);
		return false;
	}
	return true;
}

/* "64,128,10%" -> slot counts (N% of all layers' experts, at least 1). */
static int sim_parse_slots(const char *s, const struct cachesim_trace *t, uint32_t *out)
{
	int n = 0;
	while (*s && n < SIM_MAX_SIZES) {
		char *end;
		double v = strtod(s, &end);
		if (end == s || !(v > 0 && v <= 1e9))
			return -1;
		if (*end == '%') {
			v = v / 100.0 * t->n_layer * t->n_expert;
			end++;
		}
		out[n++] = v < 1 ? 1 : (uint32_t)(v + 0.5);
		if (*end != ',' && *end != '\0')
			return -1;
		s = *end ? end + 1 : end;
	}
	return *s ? -1 : n;
}

static bool sim_parse_policies(const char *s, bool use[CACHE_POLICY_COUNT])
{
	bool all = !s || !strcmp(s, "all");
	for (int k = 0; k < CACHE_POLICY_COUNT; k++)
		use[k] = all || k == CACHE_POLICY_MIN;
	char name[16];
	while (!all && *s) {
		size_t n = strcspn(s, ",");
		snprintf(name, sizeof(name), "%.*s", (int)(n < 15 ? n : 15), s);
		int k = cache_policy_from_name(name);
		if (k < 0 || n >= sizeof(name)) {
			fprintf(stderr, "flashmoe cache-sim: unknown policy '%.*s' (lru, lfu, arc, pred, "
				"min)\n",
				(int)n, s);
			return false;
		}
		use[k] = true;
		s += n + (s[n] == ',');
	}
	return true;
}

static void sim_print_header(const char *path, const struct cachesim_trace *t,
			     const uint32_t *slots, int n)
{
	printf("trace %s: %llu tokens, %u layers x %u experts, top-%u, %llu lookups of %llu "
	       "distinct experts\n",
	       path, (unsigned long long)t->n_tokens, t->n_layer, t->n_expert, t->n_expert_used,
	       (unsigned long long)t->n_lookups, (unsigned long long)t->n_distinct);
	printf("%-12s", "slots");
	for (int j = 0; j < n; j++)
		printf(" %9u", slots[j]);
	printf("\n%-12s", "% of experts");
	for (int j = 0; j < n; j++)
		printf(" %8.1f%%", 100.0 * slots[j] / ((double)t->n_layer * t->n_expert));
	printf("\n");
}

/* One row: policy k at every size (with cache routing at thresh if > 0). */
static int sim_print_row(const struct cachesim_trace *t, const uint32_t *slots, int n,
			 enum cache_policy_kind k, float thresh, const struct cache_pred_params *pred)
{
	if (thresh > 0)
		printf("%-5s <%-5g", cache_policy_name(k), thresh);
	else
		printf("%-12s", k == CACHE_POLICY_MIN ? "min (best)" : cache_policy_name(k));
	for (int j = 0; j < n; j++) {
		struct cachesim_opts o = {k, slots[j], thresh, pred};
		struct cachesim_result r;
		struct fm_error err = {0};
		if (cachesim_replay(t, &o, &r, &err) < 0) {
			if (slots[j] < t->max_per_line) {
				printf(" %9s", "-");
				continue;
			}
			fprintf(stderr, "\nflashmoe cache-sim: %s\n", err.msg);
			return 1;
		}
		printf(" %8.2f%%", r.lookups ? 100.0 * r.hits / r.lookups : 0.0);
		if (thresh > 0)
			printf(" (%4.1f%% routed away)", r.lookups ? 100.0 * r.substituted / r.lookups : 0.0);
	}
	printf("\n");
	return 0;
}

static int sim_print_table(const char *path, const struct cachesim_trace *t,
			   const uint32_t *slots, int n, const bool use[CACHE_POLICY_COUNT],
			   const float *route, int n_route, const struct cache_pred_params *pred)
{
	sim_print_header(path, t, slots, n);
	for (int k = 0; k < CACHE_POLICY_COUNT; k++)
		if (use[k] && sim_print_row(t, slots, n, (enum cache_policy_kind)k, 0, pred))
			return 1;
	for (int i = 0; i < n_route; i++)
		for (int k = 0; k < CACHE_POLICY_MIN; k++)
			if (use[k] && sim_print_row(t, slots, n, (enum cache_policy_kind)k, route[i], pred))
				return 1;
	printf("(hit rate; '-': fewer slots than the %u experts of one line)\n", t->max_per_line);
	return 0;
}

/* "0.1,0.2" -> floats in (0, 1]; the count, or -1. */
static int sim_parse_floats(const char *s, float *out, int max, float lo, float hi)
{
	int n = 0;
	while (s && *s && n < max) {
		char *end;
		double v = strtod(s, &end);
		if (end == s || !(v >= lo && v <= hi) || (*end != ',' && *end != '\0'))
			return -1;
		out[n++] = (float)v;
		s = *end ? end + 1 : end;
	}
	return s && *s ? -1 : n;
}

static int sim_gen(const struct sim_opts *o)
{
	struct cachesim_gen g = o->g;
	struct fm_error err = {0};
	if (!strcmp(o->gen, "uniform")) {
		g.kind = CACHESIM_GEN_UNIFORM;
	} else if (strcmp(o->gen, "zipf")) {
		fprintf(stderr, "flashmoe cache-sim: --gen zipf or uniform, not '%s'\n", o->gen);
		return 2;
	}
	if (cachesim_gen_write(o->out, &g, &err) < 0) {
		fprintf(stderr, "flashmoe cache-sim: %s\n", err.msg);
		return 1;
	}
	printf("wrote %s: %u tokens x %u layers, %u experts, top-%u\n", o->out, g.n_tokens,
	       g.n_layer, g.n_expert, g.k);
	return 0;
}

int cmd_cache_sim(int argc, char **argv)
{
	struct sim_opts o;
	if (!sim_parse_args(argc, argv, &o))
		return 2;
	if (o.gen)
		return sim_gen(&o);
	bool use[CACHE_POLICY_COUNT];
	if (!sim_parse_policies(o.policy, use))
		return 2;
	struct cachesim_trace t;
	struct fm_error err = {0};
	if (cachesim_trace_load(o.trace, &t, &err) < 0) {
		fprintf(stderr, "flashmoe cache-sim: %s\n", err.msg);
		return 1;
	}
	uint32_t slots[SIM_MAX_SIZES];
	float route[SIM_MAX_SIZES], pv[6];
	int n = sim_parse_slots(o.slots, &t, slots), rc = 2;
	int n_route = o.route ? sim_parse_floats(o.route, route, SIM_MAX_SIZES, 1e-6f, 1.0f) : 0;
	int n_pred = o.pred ? sim_parse_floats(o.pred, pv, 6, 0.0f, 1e6f) : 6;
	struct cache_pred_params pred = {pv[0], pv[1], pv[2], pv[3], pv[4], pv[5]};
	if (n <= 0)
		fprintf(stderr, "flashmoe cache-sim: --slots expects N[,N...] (N > 0, or N%%; at most "
				"%d sizes), got '%s'\n", SIM_MAX_SIZES, o.slots);
	else if (n_route < 0 || (n_route > 0 && !t.probs))
		fprintf(stderr, "flashmoe cache-sim: --route expects thresholds in (0, 1] and a trace "
				"with router probabilities (v2)\n");
	else if (o.pred && (n_pred != 6 || !(pv[0] < 1) || !(pv[4] > 0)))
		fprintf(stderr, "flashmoe cache-sim: --pred expects six numbers D,WU,WS,WN,QMIN,WDIST "
				"(D < 1, QMIN > 0)\n");
	else
		rc = sim_print_table(o.trace, &t, slots, n, use, route, n_route, o.pred ? &pred : NULL);
	cachesim_trace_free(&t);
	return rc;
}
