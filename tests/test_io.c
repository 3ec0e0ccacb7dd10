/* test_io.c: the I/O engine (src/io.*) against a temp file of known content.
 *
 * Every mode reads many random (offset, length) ranges with many in flight,
 * and the bytes must be exactly the file's. Also: the aligned-span arithmetic
 * for unaligned offsets, fault injection (EIO retried once, then reported
 * with file and offset; a short read continued), a file truncated under
 * outstanding requests (an error, never garbage), registered buffers, bad
 * arguments. io_uring missing only skips the uring part (pread still runs).
 * Issue 14: slow reads (IO_FAULT_SLOW) come late and right; io_check_file
 * names each way a file can change under a run (rewritten in place with the
 * same size, resized, replaced by rename, removed); io_output_check refuses
 * an output that is an input (same path, hard link, symlink) or not a
 * regular file (a character device, a FIFO, a directory).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "io.h"
#include "testutil.h"
#include "util.h"

#define FILE_BYTES ((4u << 20) + 1234u) /* not a multiple of the alignment */
#define MAX_LEN (192u * 1024)
#define QD 32

static uint8_t content_byte(uint64_t i)
{
	uint64_t z = (i / 8 + 1) * 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 31)) * 0xbf58476d1ce4e5b9ull;
	z ^= z >> 29;
	return (uint8_t)(z >> (8 * (i % 8)));
}

static void make_file(const char *path, uint64_t bytes)
{
	FILE *f = fopen(path, "wb");
	if (!f) {
		perror(path);
		exit(1);
	}
	for (uint64_t i = 0; i < bytes; i++)
		fputc(content_byte(i), f);
	fclose(f);
}

static bool bytes_ok(const uint8_t *p, uint64_t offset, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != content_byte(offset + i))
			return false;
	return true;
}

static struct io_engine *open_mode(const char *path, enum io_mode m, unsigned qd)
{
	struct fm_error err = {0};
	struct io_params p = {.mode = m, .queue_depth = qd, .n_threads = 3};
	struct io_engine *e = io_open(path, &p, &err);
	CHECK(e, "io_open(%s): %s", io_mode_name(m), err.msg);
	if (e && io_note(e)[0])
		printf("  %s: note: %s\n", io_mode_name(m), io_note(e));
	return e;
}

/* Buffers for QD requests, each able to hold the span of MAX_LEN bytes. */
struct bufs {
	uint8_t *mem;
	size_t each;
	bool used[QD];
};

static int bufs_get(struct bufs *b)
{
	for (int i = 0; i < QD; i++)
		if (!b->used[i]) {
			b->used[i] = true;
			return i;
		}
	return -1;
}

static void check_completion(const struct io_completion *c, int *n_ok)
{
	CHECK(c->res == 0, "read at %llu len %zu: res %d", (unsigned long long)c->offset, c->len,
	      c->res);
	if (c->res == 0) {
		CHECK(c->data && bytes_ok(c->data, c->offset, c->len),
		      "wrong bytes at offset %llu len %zu", (unsigned long long)c->offset, c->len);
		(*n_ok)++;
	}
}

static void random_range(struct t_rng *rng, uint64_t *off, size_t *len)
{
	uint64_t kind = t_rand_u64(rng) % 4;
	*len = 1 + t_rand_u64(rng) % MAX_LEN;
	if (kind == 0) /* whole pages */
		*len = (*len + 4095) / 4096 * 4096;
	*off = t_rand_u64(rng) % (FILE_BYTES - *len + 1);
	if (kind == 0)
		*off = *off / 4096 * 4096;
	if (kind == 1) /* ends exactly at the end of the file (span crosses EOF) */
		*off = FILE_BYTES - *len;
}

/* n random reads, up to QD in flight, every byte compared. */
static void random_reads(struct io_engine *e, struct bufs *b, int n, uint64_t seed)
{
	struct t_rng rng = {seed};
	struct io_completion c[QD];
	int submitted = 0, n_ok = 0;
	while (submitted < n || io_in_flight(e)) {
		while (submitted < n && io_in_flight(e) < QD) {
			uint64_t off;
			size_t len;
			random_range(&rng, &off, &len);
			int slot = bufs_get(b);
			CHECK(io_span_bytes(e, off, len) <= b->each, "span too big");
			int rc = io_submit_read(e, b->mem + (size_t)slot * b->each, len, off,
						(uint64_t)slot);
			CHECK(rc == 0, "submit: %d", rc);
			if (rc)
				return;
			submitted++;
		}
		int k = io_reap(e, 1, c, QD);
		CHECK(k >= 1, "reap returned %d", k);
		if (k < 1)
			return;
		for (int i = 0; i < k; i++) {
			check_completion(&c[i], &n_ok);
			if (io_get_mode(e) != IO_MODE_MMAP)
				CHECK(c[i].data == NULL ||
					      (const uint8_t *)c[i].data ==
						      b->mem + c[i].user_data * b->each + c[i].offset % 4096,
				      "data pointer not inside the buffer");
			b->used[c[i].user_data] = false;
		}
	}
	CHECK(n_ok == n, "%d of %d reads ok", n_ok, n);
}

static void test_span_arithmetic(struct io_engine *e)
{
	CHECK(io_align(e) == 4096, "align %zu", io_align(e));
	CHECK(io_span_bytes(e, 0, 4096) == 4096, "aligned span");
	CHECK(io_span_bytes(e, 32, 4096) == 8192, "32-skewed span");
	CHECK(io_span_bytes(e, 4095, 2) == 8192, "straddling span");
	CHECK(io_span_bytes(e, 8192 + 100, 100) == 4096, "inner span");
	CHECK(io_span_bytes(e, UINT64_MAX - 10, 100) == 0, "overflow gives 0");
}

/* One read of [off, off + len) with nothing else in flight. */
static struct io_completion read_one(struct io_engine *e, uint8_t *buf, uint64_t off, size_t len)
{
	struct io_completion c = {.res = 1};
	int rc = io_submit_read(e, buf, len, off, 7);
	CHECK(rc == 0, "submit %d", rc);
	if (rc == 0)
		CHECK(io_reap(e, 1, &c, 1) == 1, "reap one");
	CHECK(c.user_data == 7, "user_data %llu", (unsigned long long)c.user_data);
	return c;
}

static void test_faults(struct io_engine *e, uint8_t *buf)
{
	struct io_stats st;
	struct fm_error err = {0};
	/* EIO once on the 3rd request: retried, succeeds. */
	io_set_fault(e, &(struct io_fault){.kind = IO_FAULT_EIO, .nth = 2, .n_attempts = 1});
	io_reset_stats(e);
	for (int i = 0; i < 3; i++) {
		struct io_completion c = read_one(e, buf, 5000 + 100 * i, 70000);
		CHECK(c.res == 0 && bytes_ok(c.data, c.offset, c.len), "retried read %d", i);
	}
	io_get_stats(e, &st);
	CHECK(st.n_retries == 1 && st.n_errors == 0, "retries %llu errors %llu",
	      (unsigned long long)st.n_retries, (unsigned long long)st.n_errors);
	/* EIO twice: reported, with file and offset, no data. */
	io_set_fault(e, &(struct io_fault){.kind = IO_FAULT_EIO, .nth = 0, .n_attempts = 2});
	struct io_completion c = read_one(e, buf, 12345, 4000);
	CHECK(c.res == -EIO && c.data == NULL, "double EIO: res %d", c.res);
	CHECK(io_error(e, &c, &err) == -EIO && err.offset == 12345 &&
		      strstr(err.msg, io_path(e)) && strstr(err.msg, "12345"),
	      "error message: %s", err.msg);
	/* A short read (garbage written past the cut) is continued. */
	io_set_fault(e, &(struct io_fault){.kind = IO_FAULT_SHORT, .nth = 0, .n_attempts = 1});
	io_reset_stats(e);
	c = read_one(e, buf, 333, 150000);
	io_get_stats(e, &st);
	CHECK(c.res == 0 && bytes_ok(c.data, c.offset, c.len), "short read continued");
	CHECK(st.n_short >= 1, "n_short %llu", (unsigned long long)st.n_short);
	/* Short three times in a row still completes. */
	io_set_fault(e, &(struct io_fault){.kind = IO_FAULT_SHORT, .nth = 0, .n_attempts = 3});
	c = read_one(e, buf, 4096 * 3, 100000);
	CHECK(c.res == 0 && bytes_ok(c.data, c.offset, c.len), "short x3");
	/* Slow from the 2nd request on: late, and the bytes right. */
	io_set_fault(e, &(struct io_fault){.kind = IO_FAULT_SLOW, .nth = 1, .delay_us = 20000});
	double t0 = fm_now_s();
	for (int i = 0; i < 4; i++) {
		c = read_one(e, buf, 777 + 5000 * (uint64_t)i, 60000);
		CHECK(c.res == 0 && bytes_ok(c.data, c.offset, c.len), "slow read %d", i);
	}
	double dt = fm_now_s() - t0;
	CHECK(dt >= 0.055, "3 slow reads of 20 ms took only %.3f s", dt);
	io_set_fault(e, NULL);
}

/* Give path a modification time other than now (so a write within the same
 * timestamp tick still shows). */
static void set_old_mtime(const char *path)
{
	struct timespec ts[2] = {{1000000000, 0}, {1000000000, 0}};
	CHECK(utimensat(AT_FDCWD, path, ts, 0) == 0, "utimensat %s", path);
}

/* io_check_file: unchanged passes; each change is named. */
static void test_file_changed(enum io_mode m)
{
	char path[512], other[512];
	snprintf(path, sizeof(path), "%s/changing.bin", t_tmpdir());
	snprintf(other, sizeof(other), "%s/changing.new", t_tmpdir());
	struct { const char *what, *want; } cases[] = {
		{"in place", "modified in place"}, {"grown", "size went from"},
		{"truncated", "size went from 4195538 to 1000"}, {"renamed over", "names another file"},
		{"removed", "no longer names it"}, {"touched", "modified in place"},
	};
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		make_file(path, FILE_BYTES);
		set_old_mtime(path);
		struct io_engine *e = open_mode(path, m, QD);
		if (!e)
			return;
		struct fm_error err = {0};
		CHECK(io_check_file(e, &err) == 0, "%s: unchanged file flagged: %s",
		      io_mode_name(m), err.msg);
		int fd = -1;
		switch (k) {
		case 0: /* other bytes, same size, as `dd conv=notrunc` does */
			fd = open(path, O_WRONLY);
			CHECK(fd >= 0 && pwrite(fd, "XXXX", 4, 4096) == 4, "pwrite");
			break;
		case 1:
			fd = open(path, O_WRONLY | O_APPEND);
			CHECK(fd >= 0 && write(fd, "X", 1) == 1, "append");
			break;
		case 2:
			CHECK(truncate(path, 1000) == 0, "truncate");
			break;
		case 3:
			make_file(other, FILE_BYTES);
			CHECK(rename(other, path) == 0, "rename");
			break;
		case 4:
			CHECK(unlink(path) == 0, "unlink");
			break;
		case 5:
			CHECK(utimensat(AT_FDCWD, path, NULL, 0) == 0, "touch");
			break;
		}
		if (fd >= 0)
			close(fd);
		int rc = io_check_file(e, &err);
		CHECK(rc == -ESTALE && strstr(err.msg, path) && strstr(err.msg, cases[k].want) &&
			      strstr(err.msg, "changed during the run"),
		      "%s: %s: rc %d msg '%s'", io_mode_name(m), cases[k].what, rc, err.msg);
		io_close(e);
	}
	unlink(path);
}

/* io_output_check: what may and may not be written over. */
static void test_output_check(void)
{
	char in[512], other[512], hard[512], sym[512], fifo[512], dir[512], absent[512];
	const char *d = t_tmpdir();
	snprintf(in, sizeof(in), "%s/in.gguf", d);
	snprintf(other, sizeof(other), "%s/other.gguf", d);
	snprintf(hard, sizeof(hard), "%s/hard.gguf", d);
	snprintf(sym, sizeof(sym), "%s/sym.gguf", d);
	snprintf(fifo, sizeof(fifo), "%s/fifo.gguf", d);
	snprintf(dir, sizeof(dir), "%s/dir.gguf", d);
	snprintf(absent, sizeof(absent), "%s/absent.gguf", d);
	make_file(in, 100);
	make_file(other, 100);
	CHECK(link(in, hard) == 0 && symlink(in, sym) == 0 && mkfifo(fifo, 0644) == 0 &&
		      mkdir(dir, 0755) == 0, "setup");
	const char *inputs[3] = {"/nonexistent/config.json", in, NULL};
	struct fm_error err = {0};
	CHECK(io_output_check(absent, inputs, 3, &err) == 0, "absent output: %s", err.msg);
	CHECK(io_output_check(other, inputs, 3, &err) == 0, "other regular file: %s", err.msg);
	const char *same[] = {in, hard, sym};
	for (int i = 0; i < 3; i++) {
		int rc = io_output_check(same[i], inputs, 3, &err);
		CHECK(rc == FM_EINVAL && strstr(err.msg, "is the input file") && strstr(err.msg, in),
		      "%s: rc %d msg '%s'", same[i], rc, err.msg);
	}
	struct { const char *path, *kind; } nodes[] = {
		{"/dev/null", "character device"}, {fifo, "FIFO"}, {dir, "directory"}};
	for (int i = 0; i < 3; i++) {
		int rc = io_output_check(nodes[i].path, inputs, 3, &err);
		CHECK(rc == FM_EINVAL && strstr(err.msg, "not a regular file") &&
			      strstr(err.msg, nodes[i].kind),
		      "%s: rc %d msg '%s'", nodes[i].path, rc, err.msg);
	}
	CHECK(io_output_check("", inputs, 3, &err) == FM_EINVAL, "empty path");
	unlink(in);
	unlink(other);
	unlink(hard);
	unlink(sym);
	unlink(fifo);
	rmdir(dir);
}

static void test_bad_args(struct io_engine *e, uint8_t *buf)
{
	if (io_get_mode(e) != IO_MODE_MMAP)
		CHECK(io_submit_read(e, buf + 1, 10, 0, 0) == FM_EINVAL, "misaligned buf");
	CHECK(io_submit_read(e, buf, 0, 0, 0) == FM_EINVAL, "len 0");
	if (io_get_mode(e) == IO_MODE_MMAP)
		CHECK(io_submit_read(e, buf, 10, FILE_BYTES - 5, 0) == FM_ERANGE, "mmap past end");
	CHECK(io_in_flight(e) == 0, "nothing left in flight");
}

/* Reads past a truncation come back as errors; those before it are right. */
static void test_truncated(enum io_mode m, struct bufs *b)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/trunc.bin", t_tmpdir());
	make_file(path, FILE_BYTES);
	struct io_engine *e = open_mode(path, m, QD);
	if (!e)
		return;
	const uint64_t cut = 1000000 + 77; /* unaligned */
	struct { uint64_t off; size_t len; } r[6] = {
		{0, 4096}, {cut - 5000, 4000}, {cut - 100, 200}, {cut + 10, 100},
		{cut - 4096 * 3, 4096 * 5}, {2000000, 50000}};
	for (int i = 0; i < 6; i++)
		CHECK(io_submit_read(e, b->mem + (size_t)i * b->each, r[i].len, r[i].off, i) == 0,
		      "submit %d", i);
	CHECK(truncate(path, (off_t)cut) == 0, "truncate");
	struct io_completion c[6];
	int got = 0;
	while (got < 6) {
		int k = io_reap(e, 1, c, 6);
		CHECK(k > 0, "reap %d", k);
		if (k <= 0)
			break;
		for (int i = 0; i < k; i++) {
			bool past = c[i].offset + c[i].len > cut;
			if (c[i].res == 0)
				CHECK(bytes_ok(c[i].data, c[i].offset, c[i].len), "garbage at %llu",
				      (unsigned long long)c[i].offset);
			else
				CHECK(c[i].data == NULL && past, "error %d before the cut", c[i].res);
		}
		got += k;
	}
	/* After the truncation every read that crosses it must fail. */
	for (int i = 0; i < 6; i++) {
		struct io_completion one = read_one(e, b->mem, r[i].off, r[i].len);
		bool past = r[i].off + r[i].len > cut;
		CHECK(past ? one.res == FM_EIO && !one.data
			   : one.res == 0 && bytes_ok(one.data, one.offset, one.len),
		      "after truncate: read %d res %d", i, one.res);
	}
	io_close(e);
}

static void test_register(const char *path, struct bufs *b)
{
	struct io_engine *e = open_mode(path, IO_MODE_URING, QD);
	if (!e)
		return;
	int rc = io_register_buffers(e, b->mem, b->each * QD);
	printf("  uring: register %zu bytes: %s\n", b->each * QD, rc ? io_note(e) : "ok");
	random_reads(e, b, 300, 99);
	io_close(e);
}

static void test_close_in_flight(const char *path, enum io_mode m, struct bufs *b)
{
	struct io_engine *e = open_mode(path, m, QD);
	for (int i = 0; e && i < QD; i++)
		CHECK(io_submit_read(e, b->mem + (size_t)i * b->each, 65536, (uint64_t)i * 8192, i) == 0,
		      "submit");
	io_close(e); /* must wait, not leak or crash */
}

/* As in a container whose seccomp profile refuses io_uring: in a child,
 * make io_uring_setup fail with ENOSYS; URING must fall back to PREAD with a
 * note and still read right. */
static void test_uring_refused(const char *path, struct bufs *b)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		struct sock_filter f[] = {
			BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
			BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		};
		struct sock_fprog prog = {sizeof(f) / sizeof(f[0]), f};
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
			_exit(77);
		struct io_engine *e = open_mode(path, IO_MODE_URING, QD);
		CHECK(e && io_get_mode(e) == IO_MODE_PREAD && strstr(io_note(e), "io_uring"),
		      "no fallback to pread");
		if (e)
			random_reads(e, b, 200, 5);
		io_close(e);
		fflush(stdout);
		_exit(t_failures ? 1 : 0);
	}
	int st = 0;
	CHECK(pid > 0 && waitpid(pid, &st, 0) == pid, "fork");
	if (WIFEXITED(st) && WEXITSTATUS(st) == 77)
		printf("  seccomp unavailable: fallback check skipped\n");
	else
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fallback child failed (%d)", st);
}

int main(void)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/data.bin", t_tmpdir());
	make_file(path, FILE_BYTES);
	struct bufs b = {.each = MAX_LEN + 8192};
	b.mem = aligned_alloc(4096, b.each * QD);
	if (!b.mem)
		return 1;
	bool have_uring = false;
	for (int m = 0; m < IO_MODE_COUNT; m++) {
		struct io_engine *e = open_mode(path, (enum io_mode)m, QD);
		if (!e)
			continue;
		if (m == IO_MODE_URING)
			have_uring = io_get_mode(e) == IO_MODE_URING;
		printf("  %s: actual mode %s, direct %d\n", io_mode_name((enum io_mode)m),
		       io_mode_name(io_get_mode(e)), io_is_direct(e));
		if (m != IO_MODE_MMAP)
			test_span_arithmetic(e);
		double t0 = fm_now_s();
		random_reads(e, &b, 2000, 1234 + (uint64_t)m);
		struct io_stats st;
		io_get_stats(e, &st);
		printf("  %s: 2000 random reads, %.1f MB in %.3f s\n", io_mode_name((enum io_mode)m),
		       st.bytes_read / 1e6, fm_now_s() - t0);
		if (m != IO_MODE_MMAP)
			test_faults(e, b.mem);
		test_bad_args(e, b.mem);
		io_close(e);
		test_file_changed((enum io_mode)m);
		if (m != IO_MODE_MMAP) {
			test_truncated((enum io_mode)m, &b);
			test_close_in_flight(path, (enum io_mode)m, &b);
		}
	}
	if (have_uring)
		test_register(path, &b);
	test_uring_refused(path, &b);
	test_output_check();
	free(b.mem);
	unlink(path);
	snprintf(path, sizeof(path), "%s/trunc.bin", t_tmpdir());
	unlink(path);
	if (!have_uring && t_failures == 0) {
		printf("skip: io_uring unavailable here; pread, buffered and mmap passed\n");
		return 77;
	}
	return t_done("test_io");
}
