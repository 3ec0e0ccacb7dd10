/* api_bench.h: benchmark-only access to a context (flashmoe bench -d). */
#ifndef FM_API_BENCH_H
#define FM_API_BENCH_H

#include "flashmoe.h"

/* Fill a context's KV cache to `depth` positions without evaluating them:
 * the rows of the n_past positions already evaluated are copied over and over
 * into [n_past, depth), and n_past becomes depth. The next fm_eval then
 * attends over `depth` positions exactly as it would after a real prompt of
 * that length (its cost does not depend on the rows' values; its output does,
 * so this is for timing only). DeltaNet state is left as it is. 0, or
 * FM_EINVAL (no position evaluated yet, depth past the context). */
int fm_ctx_bench_fill_kv(struct fm_ctx *c, int depth, struct fm_error *err);

#endif
