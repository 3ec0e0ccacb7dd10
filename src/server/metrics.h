/* metrics.h: GET /metrics, the Prometheus text format: HTTP requests by
 * route and status, the engine's requests, tokens, tok/s, queue and slots,
 * and the model's expert cache (hit rate, bytes read) and memory. */
#ifndef FM_SERVER_METRICS_H
#define FM_SERVER_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "buf.h"
#include "engine.h"

enum metrics_route {
	ROUTE_CHAT, ROUTE_COMPLETIONS, ROUTE_MODELS, ROUTE_HEALTH, ROUTE_METRICS, ROUTE_PAGE,
	ROUTE_APPLY_TEMPLATE, ROUTE_OTHER, ROUTE_COUNT
};
enum { METRICS_N_STATUS = 10 };

/* Counted by the HTTP threads. */
struct http_counts {
	atomic_uint_fast64_t by_route[ROUTE_COUNT];
	atomic_uint_fast64_t by_status[METRICS_N_STATUS]; /* metrics_status_index() */
	atomic_uint_fast64_t rejected;                    /* queue full */
	atomic_uint_fast64_t disconnected;                /* clients that left mid-request */
};

/* Index of an HTTP status in http_counts.by_status (the last: any other). */
int metrics_status_index(int status);
int metrics_text(struct sbuf *out, const struct fm_model *m, struct engine *e,
		 const struct http_counts *hc, double uptime_s);

#endif
