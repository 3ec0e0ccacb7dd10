/* api_bench.c: benchmark-only access to a context (see api_bench.h). */
#include "api_bench.h"

#include "api_internal.h"

int fm_ctx_bench_fill_kv(struct fm_ctx *c, int depth, struct fm_error *err)
{
	if (c->n_past < 1 || depth < c->n_past || depth > c->n_ctx) {
		fm_err(err, FM_EINVAL, NULL, FM_NO_OFFSET,
		       "cannot fill the KV cache to %d positions: %d evaluated, context size %d",
		       depth, c->n_past, c->n_ctx);
		return FM_EINVAL;
	}
	pthread_mutex_lock(&c->fm->eval_mu);
	if (c->st->kv)
		kv_replicate(c->st->kv, c->n_past, depth);
	c->n_past = depth;
	c->multi_end = -1;
	pthread_mutex_unlock(&c->fm->eval_mu);
	return 0;
}
