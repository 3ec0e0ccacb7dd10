/* pool.c: a small fork-join pool. Tasks are claimed with an atomic counter, so
 * uneven tasks balance themselves, and the caller waits for the tasks, not for
 * the workers: on a busy machine a worker that is descheduled (or asleep)
 * when a job starts simply claims nothing, instead of stalling the job until
 * the scheduler runs it again. The counter carries the job number in its high
 * half, so a late worker can never claim a task of a later job by mistake. */
#include "pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#define POOL_SPIN 20000

struct pool_worker {
	struct pool *pool;
	int index;
	pthread_t th;
};

struct pool {
	int n_threads;
	struct pool_worker *workers; /* n_threads - 1 */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int n_sleeping;
	bool stop;
	_Atomic unsigned gen;      /* bumped for every job */
	_Atomic uint64_t next;     /* job number << 32 | next task index */
	_Atomic int done;          /* tasks of the current job finished */
	_Atomic int n_tasks;
	pool_task_fn fn;
	void *arg;
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* Claim and run tasks of job number job until none is left. */
static void run_tasks(struct pool *p, unsigned job, int thread)
{
	for (;;) {
		uint64_t v = atomic_load_explicit(&p->next, memory_order_acquire);
		uint32_t idx = (uint32_t)v;
		if ((uint32_t)(v >> 32) != job ||
		    idx >= (uint32_t)atomic_load_explicit(&p->n_tasks, memory_order_relaxed))
			return;
		if (!atomic_compare_exchange_weak_explicit(&p->next, &v, v + 1, memory_order_acq_rel,
							   memory_order_relaxed))
			continue;
		p->fn(p->arg, (int)idx, thread);
		atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
	}
}

/* Wait until gen differs from seen; false when the pool is stopping. */
static bool wait_job(struct pool *p, unsigned seen)
{
	for (int i = 0; i < POOL_SPIN; i++) {
		if (atomic_load_explicit(&p->gen, memory_order_acquire) != seen)
			return true;
		cpu_relax();
	}
	pthread_mutex_lock(&p->mu);
	p->n_sleeping++;
	while (atomic_load_explicit(&p->gen, memory_order_acquire) == seen && !p->stop)
		pthread_cond_wait(&p->cv, &p->mu);
	p->n_sleeping--;
	bool stop = p->stop;
	pthread_mutex_unlock(&p->mu);
	return !stop;
}

static void *worker_main(void *arg)
{
	struct pool_worker *w = arg;
	struct pool *p = w->pool;
	unsigned seen = 0;
	while (wait_job(p, seen)) {
		seen = atomic_load_explicit(&p->gen, memory_order_acquire);
		run_tasks(p, seen, w->index);
	}
	return NULL;
}

struct pool *pool_new(int n_threads)
{
	if (n_threads < 1)
		n_threads = 1;
	struct pool *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->n_threads = n_threads;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	if (n_threads > 1) {
		p->workers = calloc((size_t)n_threads - 1, sizeof(*p->workers));
		if (!p->workers)
			goto fail;
	}
	for (int i = 0; i < n_threads - 1; i++) {
		p->workers[i].pool = p;
		p->workers[i].index = i + 1;
		if (pthread_create(&p->workers[i].th, NULL, worker_main, &p->workers[i])) {
			p->n_threads = i + 1;
			goto fail;
		}
	}
	return p;
fail:
	pool_free(p);
	return NULL;
}

void pool_free(struct pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	for (int i = 0; i < p->n_threads - 1 && p->workers; i++)
		pthread_join(p->workers[i].th, NULL);
	free(p->workers);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p);
}

int pool_n_threads(const struct pool *p)
{
	return p->n_threads;
}

void pool_run(struct pool *p, pool_task_fn fn, void *arg, int n_tasks)
{
	if (p->n_threads == 1 || n_tasks <= 1) {
		for (int t = 0; t < n_tasks; t++)
			fn(arg, t, 0);
		return;
	}
	unsigned job = atomic_load_explicit(&p->gen, memory_order_relaxed) + 1;
	/* Close the previous job first: a late worker of it that read its last
	 * index before n_tasks grows below would otherwise claim that index of
	 * this job, with this job's fn, and be counted in its done (TSan saw the
	 * read of fn race with the write here). Its compare-and-swap now fails. */
	atomic_store_explicit(&p->next, (uint64_t)job << 32 | UINT32_MAX, memory_order_release);
	p->fn = fn;
	p->arg = arg;
	atomic_store_explicit(&p->n_tasks, n_tasks, memory_order_relaxed);
	atomic_store_explicit(&p->done, 0, memory_order_relaxed);
	atomic_store_explicit(&p->next, (uint64_t)job << 32, memory_order_release);
	pthread_mutex_lock(&p->mu);
	atomic_store_explicit(&p->gen, job, memory_order_release);
	if (p->n_sleeping)
		pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	run_tasks(p, job, 0);
	for (int i = 0; atomic_load_explicit(&p->done, memory_order_acquire) < n_tasks; i++) {
		if (i < POOL_SPIN)
			cpu_relax();
		else
			sched_yield();
	}
}
