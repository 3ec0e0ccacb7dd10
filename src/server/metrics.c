/* metrics.c: the Prometheus text of GET /metrics (metrics.h). */
#include "metrics.h"

#include <stdio.h>

static const int statuses[METRICS_N_STATUS] = { 200, 400, 401, 404, 405, 413, 429, 500, 503, 0 };
static const char *const route_names[ROUTE_COUNT] = { "chat_completions", "completions", "models",
						      "health", "metrics", "page", "apply_template",
						      "other" };

int metrics_status_index(int status)
{
	for (int i = 0; i < METRICS_N_STATUS - 1; i++)
		if (statuses[i] == status)
			return i;
	return METRICS_N_STATUS - 1;
}

/* "# HELP" and "# TYPE" lines, then the sample. */
static int metric(struct sbuf *out, const char *name, const char *type, const char *help,
		  double v)
{
	return sbuf_addf(out, "# HELP flashmoe_%s %s\n# TYPE flashmoe_%s %s\nflashmoe_%s %.17g\n",
			 name, help, name, type, name, v);
}

static int http_part(struct sbuf *out, const struct http_counts *hc)
{
	int rc = sbuf_adds(out, "# HELP flashmoe_http_requests_total HTTP requests by route\n"
				"# TYPE flashmoe_http_requests_total counter\n");
	for (int i = 0; !rc && i < ROUTE_COUNT; i++)
		rc = sbuf_addf(out, "flashmoe_http_requests_total{route=\"%s\"} %llu\n", route_names[i],
			       (unsigned long long)atomic_load(&hc->by_route[i]));
	if (!rc)
		rc = sbuf_adds(out, "# HELP flashmoe_http_responses_total HTTP responses by status\n"
				    "# TYPE flashmoe_http_responses_total counter\n");
	for (int i = 0; !rc && i < METRICS_N_STATUS; i++) {
		char code[16];
		snprintf(code, sizeof(code), "%d", statuses[i]);
		rc = sbuf_addf(out, "flashmoe_http_responses_total{status=\"%s\"} %llu\n",
			       statuses[i] ? code : "other",
			       (unsigned long long)atomic_load(&hc->by_status[i]));
	}
	if (!rc)
		rc = metric(out, "requests_rejected_total", "counter",
			    "requests refused because the queue was full",
			    (double)atomic_load(&hc->rejected));
	if (!rc)
		rc = metric(out, "clients_disconnected_total", "counter",
			    "clients that left before their answer was complete",
			    (double)atomic_load(&hc->disconnected));
	return rc;
}

static int engine_part(struct sbuf *out, struct engine *e)
{
	struct engine_metrics em;
	engine_get_metrics(e, &em);
	int rc = metric(out, "requests_finished_total", "counter", "generation requests finished",
			(double)em.n_done);
	if (!rc)
		rc = metric(out, "requests_canceled_total", "counter",
			    "generation requests canceled (client gone)", (double)em.n_canceled);
	if (!rc)
		rc = metric(out, "requests_failed_total", "counter", "generation requests failed",
			    (double)em.n_errors);
	if (!rc)
		rc = metric(out, "prompt_tokens_total", "counter", "prompt tokens of started requests",
			    (double)em.n_prompt_tokens);
	if (!rc)
		rc = metric(out, "prompt_tokens_cached_total", "counter",
			    "prompt tokens reused from a slot's cache", (double)em.n_cached_tokens);
	if (!rc)
		rc = metric(out, "tokens_generated_total", "counter", "tokens generated",
			    (double)em.n_gen_tokens);
	if (!rc)
		rc = metric(out, "generation_tokens_per_second", "gauge",
			    "tokens decoded per second of decoding steps (all slots together)",
			    em.decode_s > 0 ? (double)em.n_decode_tokens / em.decode_s : 0.0);
	if (!rc)
		rc = metric(out, "batch_steps_total", "counter", "fm_eval_batch calls",
			    (double)em.n_steps);
	if (!rc)
		rc = metric(out, "batch_tokens_total", "counter", "tokens evaluated in batched steps",
			    (double)em.n_batched_tokens);
	if (!rc)
		rc = metric(out, "queue_depth", "gauge", "requests waiting for a slot",
			    (double)em.queue_depth);
	if (!rc)
		rc = metric(out, "slots_busy", "gauge", "slots generating", (double)em.slots_busy);
	if (!rc)
		rc = metric(out, "slots", "gauge", "slots (-np)", (double)em.n_slots);
	if (!rc)
		rc = metric(out, "slot_context_tokens", "gauge", "tokens per slot (-c)",
			    (double)em.n_ctx);
	return rc;
}

static int model_part(struct sbuf *out, const struct fm_model *m)
{
	struct fm_stats st;
	fm_get_stats(m, &st);
	int rc = metric(out, "expert_lookups_total", "counter", "routed expert lookups",
			(double)st.expert_lookups);
	if (!rc)
		rc = metric(out, "expert_cache_hits_total", "counter", "lookups found in the expert cache",
			    (double)st.expert_hits);
	if (!rc)
		rc = metric(out, "expert_cache_hit_ratio", "gauge",
			    "expert cache hits / lookups (1 when resident)",
			    st.expert_lookups ? (double)st.expert_hits / (double)st.expert_lookups
					      : 1.0);
	if (!rc)
		rc = metric(out, "expert_bytes_read_total", "counter", "expert bytes read from disk",
			    (double)st.bytes_read);
	if (!rc)
		rc = metric(out, "memory_peak_bytes", "gauge", "peak counted memory",
			    (double)st.mem_peak_bytes);
	if (!rc)
		rc = metric(out, "memory_budget_bytes", "gauge", "--mem (0: none)",
			    (double)st.mem_budget_bytes);
	return rc;
}

int metrics_text(struct sbuf *out, const struct fm_model *m, struct engine *e,
		 const struct http_counts *hc, double uptime_s)
{
	int rc = http_part(out, hc);
	if (!rc)
		rc = engine_part(out, e);
	if (!rc)
		rc = model_part(out, m);
	if (!rc)
		rc = metric(out, "uptime_seconds", "gauge", "seconds since the server started", uptime_s);
	return rc;
}
