/* io.c: the request side of the I/O engine (see io.h): open/close, the
 * aligned-span arithmetic, the per-request state machine (continue a short
 * read, reissue on EINTR/EAGAIN, retry an error once, then report), fault
 * injection, the completion queue, and the MMAP mode. The OS reads themselves
 * are done by io_uring.c or io_pread.c, which call io_attempt_done.
 */
#include "io_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#define IO_ALIGN 4096
#define IO_DEFAULT_QD 64
#define IO_MAX_QD 4096
#define IO_MAX_AGAIN 64          /* EINTR/EAGAIN in a row before it counts as an error */
#define IO_REG_CHUNK (1ull << 30) /* the kernel's limit per registered iovec */

static const char *const io_mode_names[IO_MODE_COUNT] = {
	[IO_MODE_URING] = "uring",
	[IO_MODE_PREAD] = "pread",
	[IO_MODE_BUFFERED] = "buffered",
	[IO_MODE_MMAP] = "mmap",
};

const char *io_mode_name(enum io_mode m)
{
	return (unsigned)m < IO_MODE_COUNT ? io_mode_names[m] : NULL;
}

int io_mode_from_name(const char *s)
{
	for (int i = 0; s && i < IO_MODE_COUNT; i++)
		if (!strcmp(s, io_mode_names[i]))
			return i;
	return -1;
}

void io_add_note(struct io_engine *e, const char *fmt, ...)
{
	size_t used = strlen(e->note);
	if (used + 2 >= sizeof(e->note))
		return;
	if (used) {
		e->note[used++] = ';';
		e->note[used++] = ' ';
		e->note[used] = '\0';
	}
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->note + used, sizeof(e->note) - used, fmt, ap);
	va_end(ap);
}

/* Open the fd, with O_DIRECT when the mode wants it and the file system
 * takes it (tmpfs does not: then the page cache is used, with a note). */
static int io_open_fd(struct io_engine *e, struct fm_error *err)
{
	bool want_direct = e->mode == IO_MODE_URING || e->mode == IO_MODE_PREAD;
	e->fd = open(e->path, O_RDONLY | O_CLOEXEC | (want_direct ? O_DIRECT : 0));
	if (e->fd < 0 && want_direct && errno == EINVAL) {
		io_add_note(e, "O_DIRECT not supported here: reads go through the page cache");
		want_direct = false;
		e->fd = open(e->path, O_RDONLY | O_CLOEXEC);
	}
	if (e->fd < 0)
		return fm_err(err, -errno, e->path, FM_NO_OFFSET, "open: %s", strerror(errno));
	e->direct = want_direct;
	struct stat st;
	if (fstat(e->fd, &st) < 0)
		return fm_err(err, -errno, e->path, FM_NO_OFFSET, "fstat: %s", strerror(errno));
	e->file_size = (uint64_t)st.st_size;
	e->dev = st.st_dev;
	e->ino = st.st_ino;
	e->mtime_s = (int64_t)st.st_mtim.tv_sec;
	e->mtime_ns = st.st_mtim.tv_nsec;
	return 0;
}

static int io_open_mmap(struct io_engine *e, struct fm_error *err)
{
	e->align = 1;
	if (e->file_size == 0)
		return 0;
	if (e->file_size > SIZE_MAX)
		return fm_err(err, FM_ERANGE, e->path, FM_NO_OFFSET, "file too large to map");
	void *p = mmap(NULL, (size_t)e->file_size, PROT_READ, MAP_SHARED, e->fd, 0);
	if (p == MAP_FAILED)
		return fm_err(err, -errno, e->path, FM_NO_OFFSET, "mmap: %s", strerror(errno));
	e->map = p;
	return 0;
}

static int io_open_backend(struct io_engine *e, const struct io_params *p,
			   struct fm_error *err)
{
	int rc;
	if (e->mode == IO_MODE_MMAP)
		return io_open_mmap(e, err);
	if (e->mode == IO_MODE_URING) {
		rc = io_ring_open(e);
		if (rc == 0)
			return 0;
		io_add_note(e, "io_uring unavailable (io_uring_queue_init: %s): using pread",
			    strerror(-rc));
		e->mode = IO_MODE_PREAD;
	}
	rc = io_pool_open(e, p->n_threads ? p->n_threads : 4);
	if (rc < 0)
		return fm_err(err, rc, e->path, FM_NO_OFFSET, "cannot start the pread threads: %s",
			      strerror(-rc));
	return 0;
}

struct io_engine *io_open(const char *path, const struct io_params *p, struct fm_error *err)
{
	struct io_engine *e = calloc(1, sizeof(*e));
	if (!e) {
		fm_err(err, FM_ENOMEM, path, FM_NO_OFFSET, "out of memory");
		return NULL;
	}
	e->fd = -1;
	e->mode = p->mode;
	e->qd = p->queue_depth ? p->queue_depth : IO_DEFAULT_QD;
	e->align = IO_ALIGN;
	e->path = strdup(path);
	e->reqs = calloc(e->qd, sizeof(*e->reqs));
	e->free_idx = calloc(e->qd, sizeof(*e->free_idx));
	e->ready = calloc(e->qd, sizeof(*e->ready));
	if ((unsigned)p->mode >= IO_MODE_COUNT || e->qd > IO_MAX_QD) {
		fm_err(err, FM_EINVAL, path, FM_NO_OFFSET, "bad io mode %d or queue depth %u (max %u)",
		       (int)p->mode, e->qd, IO_MAX_QD);
		goto fail;
	}
	if (!e->path || !e->reqs || !e->free_idx || !e->ready) {
		fm_err(err, FM_ENOMEM, path, FM_NO_OFFSET, "out of memory");
		goto fail;
	}
	for (unsigned i = 0; i < e->qd; i++)
		e->free_idx[i] = e->qd - 1 - i;
	e->n_free = e->qd;
	if (io_open_fd(e, err) < 0 || io_open_backend(e, p, err) < 0)
		goto fail;
	return e;
fail:
	io_close(e);
	return NULL;
}

void io_close(struct io_engine *e)
{
	if (!e)
		return;
	struct io_completion c[16];
	while (e->n_free < e->qd && (e->ring || e->pool || e->n_ready))
		if (io_reap(e, 1, c, 16) < 0)
			break;
	io_ring_close(e);
	io_pool_close(e);
	if (e->map)
		munmap(e->map, (size_t)e->file_size);
	if (e->fd >= 0)
		close(e->fd);
	free(e->ready);
	free(e->free_idx);
	free(e->reqs);
	free(e->path);
	free(e);
}

enum io_mode io_get_mode(const struct io_engine *e) { return e->mode; }
const char *io_path(const struct io_engine *e) { return e->path; }
const char *io_note(const struct io_engine *e) { return e->note; }
uint64_t io_file_size(const struct io_engine *e) { return e->file_size; }
bool io_is_direct(const struct io_engine *e) { return e->direct; }
size_t io_align(const struct io_engine *e) { return e->align; }
unsigned io_queue_depth(const struct io_engine *e) { return e->qd; }
unsigned io_in_flight(const struct io_engine *e) { return e->qd - e->n_free; }
const uint8_t *io_mapping(const struct io_engine *e) { return e->map; }

size_t io_span_bytes(const struct io_engine *e, uint64_t offset, size_t len)
{
	uint64_t a = e->align, skew = offset % a, end;
	if (!fm_add_ok(offset, len, &end) || !fm_add_ok(skew, len, &end) || !fm_add_ok(end, a - 1, &end))
		return 0;
	end = end / a * a;
	return end > SIZE_MAX ? 0 : (size_t)end;
}

int io_register_buffers(struct io_engine *e, void *base, size_t bytes)
{
	if (e->mode != IO_MODE_URING || bytes == 0)
		return 0;
	if ((uintptr_t)base % e->align || e->n_free != e->qd)
		return FM_EINVAL;
	io_unregister_buffers(e);
	struct iovec iov[IO_MAX_REGS];
	unsigned n = 0;
	for (size_t at = 0; at < bytes; at += IO_REG_CHUNK) {
		if (n == IO_MAX_REGS) {
			io_add_note(e, "slab of %zu bytes too large to register: plain reads", bytes);
			return FM_ERANGE;
		}
		iov[n].iov_base = (uint8_t *)base + at;
		iov[n].iov_len = bytes - at < IO_REG_CHUNK ? bytes - at : IO_REG_CHUNK;
		n++;
	}
	int rc = io_ring_register(e, iov, n);
	if (rc < 0) {
		io_add_note(e, "io_uring_register_buffers: %s: plain reads", strerror(-rc));
		return rc;
	}
	e->reg_base = base;
	e->reg_bytes = bytes;
	e->reg_chunk = IO_REG_CHUNK;
	e->n_regs = n;
	return 0;
}

void io_unregister_buffers(struct io_engine *e)
{
	if (!e->n_regs)
		return;
	io_ring_unregister(e);
	e->reg_base = NULL;
	e->reg_bytes = 0;
	e->n_regs = 0;
}

/* The registered iovec holding all of [buf, buf + len), or -1. */
static int io_fixed_index(const struct io_engine *e, const uint8_t *buf, size_t len)
{
	if (!e->n_regs || buf < e->reg_base || len > e->reg_bytes ||
	    (size_t)(buf - e->reg_base) > e->reg_bytes - len)
		return -1;
	size_t first = (size_t)(buf - e->reg_base) / e->reg_chunk;
	size_t last = ((size_t)(buf - e->reg_base) + len - 1) / e->reg_chunk;
	return first == last ? (int)first : -1;
}

static int io_start_attempt(struct io_engine *e, uint32_t idx)
{
	struct io_req *r = &e->reqs[idx];
	r->n_att++;
	e->stats.n_attempts++;
	return e->ring ? io_ring_start(e, idx) : io_pool_start(e, idx);
}

static void io_finish(struct io_engine *e, uint32_t idx, int res)
{
	e->reqs[idx].res = res;
	if (res < 0)
		e->stats.n_errors++;
	e->ready[(e->ready_head + e->n_ready) % e->qd] = idx;
	e->n_ready++;
}

static int io_submit_mmap(struct io_engine *e, uint32_t idx)
{
	struct io_req *r = &e->reqs[idx];
	uint64_t end;
	if (!fm_add_ok(r->offset, r->len, &end) || end > e->file_size)
		return FM_ERANGE;
	/* Start the page-ins now so that they overlap like a real read. */
	uint64_t lo = r->offset / 4096 * 4096;
	madvise(e->map + lo, (size_t)(end - lo), MADV_WILLNEED);
	r->span_off = r->offset;
	r->buf = e->map + r->offset;
	io_finish(e, idx, 0);
	return 0;
}

int io_submit_read(struct io_engine *e, void *buf, size_t len, uint64_t offset,
		   uint64_t user_data)
{
	size_t span = io_span_bytes(e, offset, len);
	if (len == 0 || span == 0 || (e->mode != IO_MODE_MMAP && (uintptr_t)buf % e->align))
		return FM_EINVAL;
	if (e->n_free == 0)
		return -EBUSY;
	uint32_t idx = e->free_idx[--e->n_free];
	if (e->n_free == e->qd - 1)
		e->busy_since = fm_now_s();
	struct io_req *r = &e->reqs[idx];
	*r = (struct io_req){.user_data = user_data, .buf = buf, .offset = offset, .len = len,
			     .busy = true, .req_no = e->req_seq};
	e->req_seq++;
	e->stats.n_requests++;
	int rc;
	if (e->mode == IO_MODE_MMAP) {
		rc = io_submit_mmap(e, idx);
	} else {
		r->span_off = offset - offset % e->align;
		r->need = (size_t)(offset - r->span_off) + len;
		r->span_len = span;
		r->att_len = span;
		r->fixed_index = io_fixed_index(e, buf, span);
		rc = io_start_attempt(e, idx);
	}
	if (rc < 0) {
		r->busy = false;
		e->free_idx[e->n_free++] = idx;
		e->req_seq--;
		e->stats.n_requests--;
	}
	return rc;
}

/* Fault injection: what the attempt that just finished should look like. */
static ssize_t io_apply_fault(struct io_engine *e, struct io_req *r, ssize_t res)
{
	const struct io_fault *f = &e->fault;
	if (f->kind == IO_FAULT_SLOW) {
		if (r->req_no >= e->fault_base + f->nth && f->delay_us)
			nanosleep(&(struct timespec){ f->delay_us / 1000000,
						      (long)(f->delay_us % 1000000) * 1000 }, NULL);
		return res;
	}
	if (f->kind == IO_FAULT_NONE || r->req_no != e->fault_base + f->nth ||
	    r->n_att > f->n_attempts)
		return res;
	if (f->kind == IO_FAULT_EIO)
		return -EIO;
	if (res < 2)
		return res;
	ssize_t cut = res / 2;
	memset(r->buf + r->att_pos + cut, 0xA5, (size_t)(res - cut));
	return cut;
}

/* An error (or an end of file before the need): retry once, then report. */
static void io_attempt_failed(struct io_engine *e, uint32_t idx, int code)
{
	struct io_req *r = &e->reqs[idx];
	if (++r->failures < 2) {
		e->stats.n_retries++;
		int rc = io_start_attempt(e, idx);
		if (rc < 0)
			io_finish(e, idx, rc);
		return;
	}
	io_finish(e, idx, code);
}

void io_attempt_done(struct io_engine *e, uint32_t idx, ssize_t res)
{
	struct io_req *r = &e->reqs[idx];
	int rc;
	res = io_apply_fault(e, r, res);
	if ((res == -EINTR || res == -EAGAIN) && ++r->n_again <= IO_MAX_AGAIN) {
		rc = io_start_attempt(e, idx);
		if (rc < 0)
			io_finish(e, idx, rc);
		return;
	}
	r->n_again = 0;
	if (res < 0) {
		io_attempt_failed(e, idx, (int)res);
		return;
	}
	e->stats.bytes_read += (uint64_t)res;
	size_t end = r->att_pos + (size_t)res;
	if (end >= r->need) {
		r->done = end;
		io_finish(e, idx, 0);
		return;
	}
	if (end <= r->done) { /* no progress: the file ends before the need */
		io_attempt_failed(e, idx, FM_EIO);
		return;
	}
	/* A short read: continue from the last aligned byte that arrived (an
	 * O_DIRECT read must start aligned; buf + att_pos stays aligned). */
	r->done = end;
	r->att_pos = end / e->align * e->align;
	r->att_len = r->span_len - r->att_pos;
	e->stats.n_short++;
	rc = io_start_attempt(e, idx);
	if (rc < 0)
		io_finish(e, idx, rc);
}

int io_flush(struct io_engine *e)
{
	return e->ring ? io_ring_flush(e) : 0;
}

static int io_poll(struct io_engine *e, bool wait)
{
	if (e->ring)
		return io_ring_poll(e, wait);
	if (e->pool)
		return io_pool_poll(e, wait);
	return 0;
}

static void io_take(struct io_engine *e, struct io_completion *c)
{
	uint32_t idx = e->ready[e->ready_head];
	struct io_req *r = &e->reqs[idx];
	e->ready_head = (e->ready_head + 1) % e->qd;
	e->n_ready--;
	*c = (struct io_completion){.user_data = r->user_data, .res = r->res,
				    .offset = r->offset, .len = r->len};
	if (r->res == 0)
		c->data = r->buf + (r->offset - r->span_off);
	r->busy = false;
	e->free_idx[e->n_free++] = idx;
	if (e->n_free == e->qd)
		e->stats.busy_s += fm_now_s() - e->busy_since;
}

int io_reap(struct io_engine *e, unsigned min_complete, struct io_completion *out,
	    unsigned max)
{
	int rc = io_flush(e);
	if (rc < 0)
		return rc;
	unsigned outstanding = e->qd - e->n_free;
	if (min_complete > outstanding)
		min_complete = outstanding;
	if (min_complete > max)
		min_complete = max;
	if (e->n_ready < max && (rc = io_poll(e, false)) < 0)
		return rc;
	while (e->n_ready < min_complete)
		if ((rc = io_poll(e, true)) < 0)
			return rc;
	unsigned n = 0;
	while (n < max && e->n_ready)
		io_take(e, &out[n++]);
	return (int)n;
}

int io_error(const struct io_engine *e, const struct io_completion *c, struct fm_error *err)
{
	if (c->res == FM_EIO)
		return fm_err(err, c->res, e->path, c->offset,
			      "read of %zu bytes: the file ends before them (truncated?)", c->len);
	return fm_err(err, c->res, e->path, c->offset, "read of %zu bytes failed twice: %s",
		      c->len, strerror(-c->res));
}

/* The model file must not change under a run: the expert reads would mix
 * its old and new bytes (a file rewritten in place gives NaN logits and
 * token 0 with exit 0), and a replaced file would leave the run on the old
 * one while the user thinks it uses the new. mtime is the cheap witness of
 * an in-place write (write(2) updates it before copying the data), so a
 * check after a pass's reads catches any write that pass could have seen. */
int io_check_file(const struct io_engine *e, struct fm_error *err)
{
	struct stat st;
	char what[160];
	if (fstat(e->fd, &st) < 0)
		return fm_err(err, -errno, e->path, FM_NO_OFFSET, "fstat: %s", strerror(errno));
	if ((uint64_t)st.st_size != e->file_size)
		snprintf(what, sizeof(what), "its size went from %llu to %llu bytes",
			 (unsigned long long)e->file_size, (unsigned long long)st.st_size);
	else if ((int64_t)st.st_mtim.tv_sec != e->mtime_s || st.st_mtim.tv_nsec != e->mtime_ns)
		snprintf(what, sizeof(what), "it was modified in place: same size, new mtime");
	else if (stat(e->path, &st) < 0)
		snprintf(what, sizeof(what), "the path no longer names it: %s (removed or renamed)",
			 strerror(errno));
	else if (st.st_dev != e->dev || st.st_ino != e->ino)
		snprintf(what, sizeof(what), "the path now names another file: inode %llu, was %llu "
			 "(replaced)", (unsigned long long)st.st_ino, (unsigned long long)e->ino);
	else
		return 0;
	return fm_err(err, -ESTALE, e->path, FM_NO_OFFSET,
		      "the model file changed during the run (%s); stopping, since the experts "
		      "read from now on would not belong to the model that was loaded", what);
}

void io_set_fault(struct io_engine *e, const struct io_fault *f)
{
	e->fault = f ? *f : (struct io_fault){.kind = IO_FAULT_NONE};
	e->fault_base = e->req_seq;
}

void io_get_stats(const struct io_engine *e, struct io_stats *out)
{
	*out = e->stats;
}

void io_reset_stats(struct io_engine *e)
{
	e->stats = (struct io_stats){0};
	e->busy_since = fm_now_s();
}
