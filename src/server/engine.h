/* engine.h: the server's engine thread. It alone evaluates the model: the
 * requests wait in a bounded queue for one of N slots (a context each); every
 * step gathers the slots with work into one fm_eval_batch call (decoding
 * slots one token each, slots with a prompt a chunk of it), samples, and
 * appends the text to each request (req.h). It never touches a socket.
 * Uses only flashmoe.h. */
#ifndef FM_SERVER_ENGINE_H
#define FM_SERVER_ENGINE_H

#include <stdint.h>

#include "flashmoe.h"
#include "req.h"

struct engine_opts {
	int n_slots;      /* contexts (-np) */
	int n_ctx;        /* tokens per context (-c) */
	int max_queue;    /* requests that may wait for a slot */
	int chunk;        /* most prompt tokens evaluated per step, all slots together */
};

struct engine_metrics {
	uint64_t n_done, n_canceled, n_errors;  /* finished requests */
	uint64_t n_prompt_tokens, n_cached_tokens, n_gen_tokens;
	uint64_t n_steps, n_batched_tokens;     /* fm_eval_batch calls, tokens in them */
	double decode_s;                        /* wall time of steps that decoded */
	uint64_t n_decode_tokens;               /* tokens decoded in those steps */
	int queue_depth, slots_busy, n_slots, n_ctx;
};

struct engine;

/* Make the slots' contexts (all before the first evaluation, so that the
 * memory budget counts them) and start the thread. NULL on failure, err set. */
struct engine *engine_new(struct fm_model *m, const struct engine_opts *o, struct fm_error *err);
/* Stop the thread (queued and running requests finish as canceled), free all. */
void engine_free(struct engine *e);
/* Queue r (the engine takes its own reference). 0, or FM_ERANGE when the
 * queue is full, or FM_ECANCELED when the engine is stopping. */
int engine_submit(struct engine *e, struct srv_req *r);
int engine_n_ctx(const struct engine *e);
void engine_get_metrics(struct engine *e, struct engine_metrics *out);

#endif
