/* io_uring.c: the io_uring read backend of the I/O engine (liburing).
 *
 * One ring of queue_depth entries, one SQE per read attempt; the SQE's user
 * data is the request index. SQEs are queued by io_ring_start and handed to
 * the kernel in one io_uring_submit by io_ring_flush (io_flush / io_reap), so
 * a layer's misses go down in one system call. Reads inside the registered
 * slab use IORING_OP_READ_FIXED (no per-read page pinning). Completions are
 * passed to io_attempt_done, which may queue a continuation or a retry;
 * those are flushed before io_ring_poll returns.
 *
 * Symbols use the io_ring_ prefix: io_uring_* belongs to liburing.
 */
#include "io_internal.h"

#include <errno.h>
#include <liburing.h>
#include <stdlib.h>

#define IO_RING_BATCH 32
#define IO_RING_MAX_READ (1u << 30)

struct io_ring {
	struct io_uring ring;
	unsigned n_queued;  /* SQEs prepared, not yet submitted */
	bool registered;
};

int io_ring_open(struct io_engine *e)
{
	struct io_ring *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	int rc = io_uring_queue_init(e->qd, &r->ring, 0);
	if (rc < 0) {
		free(r);
		return rc;
	}
	e->ring = r;
	return 0;
}

void io_ring_close(struct io_engine *e)
{
	struct io_ring *r = e->ring;
	if (!r)
		return;
	if (r->registered)
		io_uring_unregister_buffers(&r->ring);
	io_uring_queue_exit(&r->ring);
	free(r);
	e->ring = NULL;
}

int io_ring_register(struct io_engine *e, const struct iovec *iov, unsigned n)
{
	if (!e->ring)
		return -ENOSYS;
	int rc = io_uring_register_buffers(&e->ring->ring, iov, n);
	if (rc == 0)
		e->ring->registered = true;
	return rc;
}

void io_ring_unregister(struct io_engine *e)
{
	if (e->ring && e->ring->registered) {
		io_uring_unregister_buffers(&e->ring->ring);
		e->ring->registered = false;
	}
}

int io_ring_start(struct io_engine *e, uint32_t idx)
{
	struct io_ring *r = e->ring;
	struct io_req *q = &e->reqs[idx];
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
	if (!sqe) { /* the SQ is full of queued attempts: hand them over */
		int rc = io_ring_flush(e);
		if (rc < 0)
			return rc;
		sqe = io_uring_get_sqe(&r->ring);
		if (!sqe)
			return -EBUSY;
	}
	uint8_t *buf = q->buf + q->att_pos;
	uint64_t off = q->span_off + q->att_pos;
	/* The SQE length is 32 bits (and Linux reads < 2 GiB at once): a longer
	 * span arrives as short reads, which io.c continues. */
	unsigned len = q->att_len > IO_RING_MAX_READ ? IO_RING_MAX_READ : (unsigned)q->att_len;
	if (q->fixed_index >= 0)
		io_uring_prep_read_fixed(sqe, e->fd, buf, len, off, q->fixed_index);
	else
		io_uring_prep_read(sqe, e->fd, buf, len, off);
	io_uring_sqe_set_data64(sqe, idx);
	r->n_queued++;
	return 0;
}

int io_ring_flush(struct io_engine *e)
{
	struct io_ring *r = e->ring;
	while (r->n_queued) {
		int rc = io_uring_submit(&r->ring);
		if (rc == -EINTR || rc == -EAGAIN || rc == -EBUSY)
			return 0; /* the next flush or wait retries */
		if (rc < 0)
			return rc;
		r->n_queued = (unsigned)rc >= r->n_queued ? 0 : r->n_queued - (unsigned)rc;
		if (rc == 0)
			break;
	}
	return 0;
}

int io_ring_poll(struct io_engine *e, bool wait)
{
	struct io_ring *r = e->ring;
	struct io_uring_cqe *cqe[IO_RING_BATCH];
	uint32_t idx[IO_RING_BATCH];
	int res[IO_RING_BATCH];
	unsigned n = io_uring_peek_batch_cqe(&r->ring, cqe, IO_RING_BATCH);
	while (n == 0 && wait) {
		int rc = io_uring_submit_and_wait(&r->ring, 1);
		if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
			return rc;
		if (rc >= 0)
			r->n_queued = 0;
		n = io_uring_peek_batch_cqe(&r->ring, cqe, IO_RING_BATCH);
	}
	for (unsigned i = 0; i < n; i++) {
		idx[i] = (uint32_t)io_uring_cqe_get_data64(cqe[i]);
		res[i] = cqe[i]->res;
	}
	io_uring_cq_advance(&r->ring, n);
	for (unsigned i = 0; i < n; i++)
		io_attempt_done(e, idx[i], res[i]);
	return io_ring_flush(e);
}
