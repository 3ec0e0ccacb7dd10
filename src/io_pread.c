/* io_pread.c: the pread(2) thread-pool backend of the I/O engine, used for
 * IO_MODE_PREAD (O_DIRECT fd) and IO_MODE_BUFFERED (page cache), and when
 * io_uring is unavailable.
 *
 * The submitting thread pushes request indices to a work ring; each worker
 * pops one, does one pread for the request's current attempt, and pushes
 * (index, result) to a done ring. io_pool_poll moves finished attempts to
 * io_attempt_done on the submitting thread, so all request state other than
 * the attempt being read is touched by that thread only. Both rings hold
 * queue_depth entries: a request has at most one attempt in the pool.
 * The mutex orders a request's fields (written before the push) before the
 * worker's read of them, and the worker's bytes before the poll.
 */
#include "io_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

struct io_pool_done {
	uint32_t idx;
	ssize_t res;
};

struct io_pool {
	struct io_engine *e;
	pthread_mutex_t mu;
	pthread_cond_t work_cv, done_cv;
	uint32_t *work;                 /* [qd] ring */
	unsigned work_head, n_work;
	struct io_pool_done *done;      /* [qd] ring */
	unsigned done_head, n_done;
	struct io_pool_done *batch;     /* [qd] poll's private copy */
	pthread_t *threads;
	unsigned n_threads;             /* started */
	bool stop;
};

static ssize_t io_pool_read(const struct io_engine *e, const struct io_req *r)
{
	ssize_t n = pread(e->fd, r->buf + r->att_pos, r->att_len,
			  (off_t)(r->span_off + r->att_pos));
	return n < 0 ? -errno : n;
}

static void *io_pool_worker(void *arg)
{
	struct io_pool *p = arg;
	unsigned qd = p->e->qd;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->n_work && !p->stop)
			pthread_cond_wait(&p->work_cv, &p->mu);
		if (p->stop)
			break;
		uint32_t idx = p->work[p->work_head];
		p->work_head = (p->work_head + 1) % qd;
		p->n_work--;
		pthread_mutex_unlock(&p->mu);
		ssize_t res = io_pool_read(p->e, &p->e->reqs[idx]);
		pthread_mutex_lock(&p->mu);
		p->done[(p->done_head + p->n_done) % qd] = (struct io_pool_done){idx, res};
		p->n_done++;
		pthread_cond_signal(&p->done_cv);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

int io_pool_open(struct io_engine *e, unsigned n_threads)
{
	struct io_pool *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	e->pool = p;
	p->e = e;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->work_cv, NULL);
	pthread_cond_init(&p->done_cv, NULL);
	if (n_threads > e->qd)
		n_threads = e->qd;
	p->work = calloc(e->qd, sizeof(*p->work));
	p->done = calloc(e->qd, sizeof(*p->done));
	p->batch = calloc(e->qd, sizeof(*p->batch));
	p->threads = calloc(n_threads, sizeof(*p->threads));
	if (!p->work || !p->done || !p->batch || !p->threads)
		return -ENOMEM; /* io_close frees the pool */
	for (unsigned i = 0; i < n_threads; i++) {
		int rc = pthread_create(&p->threads[i], NULL, io_pool_worker, p);
		if (rc)
			return -rc;
		p->n_threads++;
	}
	return 0;
}

void io_pool_close(struct io_engine *e)
{
	struct io_pool *p = e->pool;
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_broadcast(&p->work_cv);
	pthread_mutex_unlock(&p->mu);
	for (unsigned i = 0; i < p->n_threads; i++)
		pthread_join(p->threads[i], NULL);
	pthread_cond_destroy(&p->done_cv);
	pthread_cond_destroy(&p->work_cv);
	pthread_mutex_destroy(&p->mu);
	free(p->threads);
	free(p->batch);
	free(p->done);
	free(p->work);
	free(p);
	e->pool = NULL;
}

int io_pool_start(struct io_engine *e, uint32_t idx)
{
	struct io_pool *p = e->pool;
	pthread_mutex_lock(&p->mu);
	p->work[(p->work_head + p->n_work) % e->qd] = idx;
	p->n_work++;
	pthread_cond_signal(&p->work_cv);
	pthread_mutex_unlock(&p->mu);
	return 0;
}

int io_pool_poll(struct io_engine *e, bool wait)
{
	struct io_pool *p = e->pool;
	unsigned n = 0;
	pthread_mutex_lock(&p->mu);
	while (wait && !p->n_done)
		pthread_cond_wait(&p->done_cv, &p->mu);
	while (p->n_done) {
		p->batch[n++] = p->done[p->done_head];
		p->done_head = (p->done_head + 1) % e->qd;
		p->n_done--;
	}
	pthread_mutex_unlock(&p->mu);
	for (unsigned i = 0; i < n; i++)
		io_attempt_done(e, p->batch[i].idx, p->batch[i].res);
	return 0;
}
