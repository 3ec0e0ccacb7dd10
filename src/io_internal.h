/* io_internal.h: the engine struct shared by io.c (requests, completions,
 * faults, mmap) and its two read backends, io_uring.c and io_pread.c.
 * Not for use outside src/io*.c. */
#ifndef FM_IO_INTERNAL_H
#define FM_IO_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "io.h"

/* One outstanding request; it owns index i of e->reqs until reaped. The
 * aligned span is [span_off, span_off + span_len); bytes [0, need) of it
 * must arrive (need = skew + len). The current attempt reads span bytes
 * [att_pos, att_pos + att_len) into buf + att_pos. */
struct io_req {
	uint64_t user_data;
	uint8_t *buf;
	uint64_t offset;
	size_t len;
	uint64_t span_off;
	size_t need, span_len;
	size_t done;         /* span bytes known to be in buf, from 0 */
	size_t att_pos, att_len;
	uint64_t req_no;     /* for fault injection */
	unsigned n_att;      /* attempts issued so far */
	unsigned failures;   /* errors seen (one is retried) */
	unsigned n_again;    /* EINTR/EAGAIN in a row */
	int fixed_index;     /* registered buffer index, or -1 */
	int res;             /* final result once finished */
	bool busy;
};

struct io_ring;  /* io_uring.c */
struct io_pool;  /* io_pread.c */

#define IO_MAX_REGS 64 /* registered iovecs of <= 1 GiB each */

struct io_engine {
	enum io_mode mode;
	char *path;
	int fd;
	bool direct;
	uint64_t file_size;
	dev_t dev;                  /* identity and content stamp at open, for */
	ino_t ino;                  /* io_check_file */
	int64_t mtime_s;
	long mtime_ns;
	size_t align;
	unsigned qd;
	struct io_req *reqs;        /* [qd] */
	uint32_t *free_idx;         /* [qd] stack of free request indices */
	unsigned n_free;
	uint32_t *ready;            /* [qd] ring of finished, unreaped requests */
	unsigned ready_head, n_ready;
	struct io_fault fault;
	uint64_t req_seq;           /* requests ever accepted (numbers them) */
	uint64_t fault_base;        /* req_seq when the fault was set */
	struct io_stats stats;
	double busy_since;
	struct io_ring *ring;
	struct io_pool *pool;
	uint8_t *map;
	uint8_t *reg_base;
	size_t reg_bytes, reg_chunk;
	unsigned n_regs;
	char note[256];
};

/* Called by a backend for every finished OS read of request idx: res is the
 * byte count or -errno. Continues, retries or finishes the request. */
void io_attempt_done(struct io_engine *e, uint32_t idx, ssize_t res);
/* Append to e->note. */
void io_add_note(struct io_engine *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* io_uring backend. io_ring_open returns 0 or -errno (then no ring). */
int io_ring_open(struct io_engine *e);
void io_ring_close(struct io_engine *e);
int io_ring_register(struct io_engine *e, const struct iovec *iov, unsigned n);
void io_ring_unregister(struct io_engine *e);
int io_ring_start(struct io_engine *e, uint32_t idx);  /* queue an attempt */
int io_ring_flush(struct io_engine *e);
/* Handle every completion available; if wait and none, block for one. */
int io_ring_poll(struct io_engine *e, bool wait);

/* pread thread pool backend. */
int io_pool_open(struct io_engine *e, unsigned n_threads);
void io_pool_close(struct io_engine *e);
int io_pool_start(struct io_engine *e, uint32_t idx);
int io_pool_poll(struct io_engine *e, bool wait);

#endif
