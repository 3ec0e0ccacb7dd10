/* io.h: asynchronous reads of one file (the model), for the expert cache.
 *
 * Owns: the file descriptor(s), the per-request state machine (short reads
 * continued, EINTR/EAGAIN reissued, a failed read retried once, then reported
 * with file, offset and errno), the O_DIRECT alignment arithmetic, the
 * registered buffers, fault injection, and four backends:
 *
 *   IO_MODE_URING     io_uring (liburing), O_DIRECT, registered buffers when
 *                     the kernel and RLIMIT_MEMLOCK allow; many reads in flight.
 *                     Falls back to IO_MODE_PREAD (with a note) when
 *                     io_uring_queue_init fails (ENOSYS, EPERM in containers).
 *   IO_MODE_PREAD     a small pthread pool doing pread(2) on an O_DIRECT fd,
 *                     with a completion queue.
 *   IO_MODE_BUFFERED  the same pool on a normal fd (reads go through the page
 *                     cache): a baseline.
 *   IO_MODE_MMAP      the file is mapped; a "read" completes at once with a
 *                     pointer into the mapping (no copy, no buffer): a baseline.
 *
 * Does not own: what the bytes mean, the buffers (the caller's slot slab).
 *
 * Alignment contract (all modes but MMAP). io_align(e) is 4096. A read of
 * [offset, offset + len) fetches the enclosing aligned span
 * [floor(offset), ceil(offset + len)) into buf, which must be aligned to
 * io_align(e) and hold io_span_bytes(e, offset, len) bytes; the completion's
 * data pointer is buf + (offset - floor(offset)). So GGUF files with 32-byte
 * alignment work through O_DIRECT by reading a slightly larger range, and
 * files with 4096-byte alignment read exactly their bytes. The span past the
 * end of the file is not read (its bytes in buf are left as they were).
 *
 * The file under us: io_check_file says whether the path still names the
 * file that was opened, with the size and modification time it had then
 * (the expert store calls it once per forward pass, so that a model
 * overwritten, replaced or truncated during a run stops it with an error
 * instead of feeding it other bytes).
 *
 * Completion contract: a request completes exactly once, with res == 0 and
 * all len bytes at data, or with res < 0 and data == NULL (never partial data):
 *   -errno    the OS refused a read twice (the first failure is retried);
 *   FM_EIO    the file ended before offset + len (truncated under us).
 *
 * Threads: one thread (the compute thread that routes) submits and reaps;
 * the engine is not thread-safe. The pread pool's workers are internal.
 *
 * Follows: liburing's split of submission and completion, per-request state
 * carried in the request; SQLite's I/O fault injection (the Nth request).
 */
#ifndef FM_IO_H
#define FM_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flashmoe.h"

enum io_mode { IO_MODE_URING, IO_MODE_PREAD, IO_MODE_BUFFERED, IO_MODE_MMAP, IO_MODE_COUNT };

struct io_params {
	enum io_mode mode;
	unsigned queue_depth; /* requests in flight at most; 0 = 64 */
	unsigned n_threads;   /* pread pool threads; 0 = 4 */
};

/* One finished request, as returned by io_reap. */
struct io_completion {
	uint64_t user_data;  /* as submitted */
	int res;             /* 0, -errno or FM_EIO (see the file comment) */
	const void *data;    /* the len requested bytes; NULL when res < 0 */
	uint64_t offset;     /* as submitted */
	size_t len;          /* as submitted */
};

/* Fault injection (tests): request number nth (0-based, counted from the
 * io_set_fault call) gets its first n_attempts read attempts failed with
 * EIO, or cut short (half the bytes arrive, the rest of the attempt's buffer
 * is overwritten with 0xA5). IO_FAULT_SLOW instead delays the completion of
 * every attempt of request nth and of all later ones by delay_us (a slow
 * disk: the bytes are right, they come late). Not applied in MMAP mode. */
enum io_fault_kind { IO_FAULT_NONE, IO_FAULT_EIO, IO_FAULT_SHORT, IO_FAULT_SLOW };
struct io_fault {
	enum io_fault_kind kind;
	uint64_t nth;
	unsigned n_attempts;
	unsigned delay_us;   /* IO_FAULT_SLOW only */
};

/* Counters since open (or io_reset_stats). */
struct io_stats {
	uint64_t n_requests;   /* io_submit_read calls accepted */
	uint64_t n_attempts;   /* OS reads issued */
	uint64_t n_short;      /* attempts continued after a short read */
	uint64_t n_retries;    /* attempts reissued after an error */
	uint64_t n_errors;     /* requests completed with res < 0 */
	uint64_t bytes_read;   /* bytes the OS returned (aligned spans) */
	double busy_s;         /* wall time with >= 1 request outstanding (an
				* upper bound: a completion is seen when reaped) */
};

struct io_engine;

/* "uring", "pread", "buffered", "mmap"; NULL for a bad value. */
const char *io_mode_name(enum io_mode m);
/* The mode named s, or -1. */
int io_mode_from_name(const char *s);

/* Open path for reading in mode p->mode. NULL on failure, err filled. A
 * fallback taken (no io_uring, no O_DIRECT) is described by io_note. */
struct io_engine *io_open(const char *path, const struct io_params *p, struct fm_error *err);
/* Waits for reads still in flight, then closes. NULL is a no-op. */
void io_close(struct io_engine *e);

enum io_mode io_get_mode(const struct io_engine *e);   /* after any fallback */
const char *io_path(const struct io_engine *e);
const char *io_note(const struct io_engine *e);        /* fallbacks taken, or "" */
uint64_t io_file_size(const struct io_engine *e);      /* at open */
bool io_is_direct(const struct io_engine *e);          /* O_DIRECT in use */
size_t io_align(const struct io_engine *e);            /* 4096; 1 for MMAP */
unsigned io_queue_depth(const struct io_engine *e);
unsigned io_in_flight(const struct io_engine *e);      /* submitted, not reaped */
/* MMAP mode: the whole file's mapping (valid until io_close); else NULL. */
const uint8_t *io_mapping(const struct io_engine *e);

/* Bytes of buffer a read of [offset, offset + len) needs (the aligned span);
 * 0 if it overflows. */
size_t io_span_bytes(const struct io_engine *e, uint64_t offset, size_t len);

/* Register [base, base + bytes) (the slot slab; base aligned) with io_uring
 * so reads inside it use fixed buffers (the kernel pins those pages). 0, or a
 * negative code with io_note saying why (reads then use plain buffers;
 * nothing else changes). One region: it replaces an earlier one. Call with
 * no reads in flight. A no-op returning 0 in other modes. */
int io_register_buffers(struct io_engine *e, void *base, size_t bytes);
/* Forget the registered region; call before freeing it (the kernel would
 * keep writing to the old pages). With no reads in flight. */
void io_unregister_buffers(struct io_engine *e);

/* Start reading [offset, offset + len) into buf (see the alignment contract).
 * 0; -EBUSY when queue_depth requests are outstanding (reap first); FM_EINVAL
 * for a misaligned buf or len == 0; FM_ERANGE in MMAP mode for a range past
 * the end of the file. The read may only start at io_flush or io_reap. */
int io_submit_read(struct io_engine *e, void *buf, size_t len, uint64_t offset,
		   uint64_t user_data);
/* Hand queued reads to the kernel / pool now. 0 or -errno. */
int io_flush(struct io_engine *e);
/* Flush, then wait until at least min_complete requests (capped at those
 * outstanding) have completed; copy up to max of them to out. Returns the
 * number copied (>= 0) or a negative code on a failure of the engine itself
 * (not of a read: those come back in out[i].res). */
int io_reap(struct io_engine *e, unsigned min_complete, struct io_completion *out,
	    unsigned max);

/* Fill err for a failed completion: file, offset, what (errno text or "end of
 * file"); returns c->res. */
int io_error(const struct io_engine *e, const struct io_completion *c, struct fm_error *err);

/* 0 when the path still names the file opened (same device and inode) and
 * the open file still has the size and modification time it had at
 * io_open; otherwise -ESTALE with err naming the file and what changed
 * (size from A to B, modified, replaced by another file, removed), or the
 * -errno of fstat. Two system calls (fstat, stat); any mode. */
int io_check_file(const struct io_engine *e, struct fm_error *err);

void io_set_fault(struct io_engine *e, const struct io_fault *f);
void io_get_stats(const struct io_engine *e, struct io_stats *out);
void io_reset_stats(struct io_engine *e);

/* ---- output files (convert, quantize): io_output.c ----
 *
 * The writers (gguf_writer) write a temporary file beside the output and
 * rename it into place only once it is complete and fsync'd. Before any of
 * that, io_output_check refuses an output that would destroy data: one that
 * exists and is not a regular file (a device such as /dev/full, a FIFO, a
 * directory, a socket: rename would replace the node, writing would go
 * through it), or one that is the same file as any input (same st_dev and
 * st_ino, so hard links and symlinks count): renaming over it would replace
 * the checkpoint or model being read. Inputs that do not exist are skipped
 * (nothing was read from them). 0, or FM_EINVAL with err naming the output
 * (and the input it is). */
int io_output_check(const char *out_path, const char *const *inputs, size_t n_inputs,
		    struct fm_error *err);

#endif
