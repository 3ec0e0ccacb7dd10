/* pool.h: the compute thread pool. n threads (the caller is one of them) run
 * the tasks [0, n_tasks) of one job at a time; pool_run returns when all are
 * done. Workers spin briefly between jobs (decode runs hundreds of short jobs
 * per token), then sleep on a condition variable. */
#ifndef FM_POOL_H
#define FM_POOL_H

typedef void (*pool_task_fn)(void *arg, int task, int thread);

struct pool;

/* n_threads >= 1 (the caller counts as one). NULL on failure. */
struct pool *pool_new(int n_threads);
void pool_free(struct pool *p);
int pool_n_threads(const struct pool *p);
/* Run fn(arg, t, thread) for t in [0, n_tasks) on all threads; blocking.
 * Only one thread may call pool_run on a pool at a time. */
void pool_run(struct pool *p, pool_task_fn fn, void *arg, int n_tasks);

#endif
