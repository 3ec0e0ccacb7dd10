/* api_internal.h: the structs behind the public handles, shared by the
 * api*.c files only. */
#ifndef FM_API_INTERNAL_H
#define FM_API_INTERNAL_H

#include <pthread.h>

#include "experts.h"
#include "flashmoe.h"
#include "forward.h"
#include "gguf.h"
#include "kv.h"
#include "model.h"
#include "state.h"
#include "pool.h"
#include "util.h"

struct io_engine;
struct experts;
struct experts_trace;

struct tok;

struct fm_model {
	struct fm_model_params params;
	struct fm_mem mem;
	const struct kernels *k;
	struct gguf_file *file;
	struct model m;
	bool loaded;
	struct tok *tok;
	struct pool *pool;
	struct fm_model_info info;
	char name[256];
	/* Threads: evaluations (and making or freeing contexts) hold eval_mu,
	 * so the pool, the expert store and the forward scratch have one user
	 * at a time; stats (the model-wide sums) are read and written under
	 * stats_mu only, so fm_get_stats never waits for an evaluation. */
	pthread_mutex_t eval_mu, stats_mu;
	struct fm_stats stats;         /* under stats_mu */
	struct experts_stats xs_seen;  /* the store's counters after the last step (eval_mu) */
	/* the forward pass's scratch, shared by the contexts (eval_mu): made
	 * for the largest batch, context and attention scratch asked so far */
	struct fwd *fwd;
	int fwd_n_batch, fwd_n_ctx;
	size_t fwd_att;
	/* fm_eval_batch's per-item arrays, grown to the largest call (eval_mu) */
	struct fwd_item *batch_fi;
	int *batch_map, *batch_done;
	struct fm_ctx **batch_ctxs;
	int batch_cap;
	int kv_type_k, kv_type_v;      /* enum kv_type of new contexts' K and V */
	/* expert streaming */
	bool streaming;
	struct io_engine *io;
	struct experts *experts;       /* made at the first evaluation */
	struct experts_trace *trace;
};

/* Streaming setup (api_stream.c). */
int api_stream_open(struct fm_model *fm, const char *path, struct fm_error *err);
int api_stream_attach(struct fm_model *fm, struct fwd *f, struct fm_error *err);
/* Before an evaluation (eval_mu held): make the expert store if streaming
 * and not yet made (its cache sized from what the budget leaves now). */
int api_stream_ready(struct fm_model *fm, struct fm_error *err);
void api_stream_close(struct fm_model *fm);
/* The store's gauges (cache size, I/O mode) into out. */
void api_stream_stats(const struct fm_model *fm, struct fm_stats *out);

struct fm_ctx {
	struct fm_model *fm;
	struct seq_state *st;       /* KV rows, recurrent state */
	int n_ctx, n_batch, n_past; /* n_batch: tokens per forward batch of fm_eval */
	int multi_end;              /* where the last multi-token fm_eval ended, -1 */
	struct fm_stats stats;      /* this context's share of the steps it took part in */
};

/* Load / free the model's tokenizer (api_tokens.c). */
int api_tokenizer_open(struct fm_model *fm, struct fm_error *err);
void api_tokenizer_close(struct fm_model *fm);

#endif
