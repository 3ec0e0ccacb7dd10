/* test_experts.c: the expert store (src/experts.*) on a fake model file whose
 * every byte is a known function of its offset.
 *
 * Random decode-like and prompt-batch request sequences run with the
 * smallest cache (n_expert_used slots), a middle one and one holding every
 * expert; with and without prefetch; with each live policy; through uring,
 * pread and buffered reads, and resident (mmap). Checked: every handed-out
 * expert's bytes are exactly its slices; experts held (pinned) are never
 * overwritten by their request's other misses or by prefetch; the stats add
 * up (hits + misses == lookups, bytes_read == misses * expert_bytes +
 * prefetch bytes). Also: a budget below the minimum is refused naming the
 * numbers, an I/O error names the layer and expert, short reads are
 * continued, misuse returns FM_EINVAL, and the trace writer's format.
 * Issue 14: slow reads give the right bytes; a model file rewritten in
 * place, resized or replaced under the store stops the pass at its end (the
 * last layer's experts_wait: -ESTALE naming the change), never earlier
 * layers, and never an unchanged file.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "experts.h"
#include "testutil.h"

#define N_LAYER 4
#define N_EXPERT 16
#define TOPK 4
#define MAX_IDS (N_EXPERT * 8)

struct fake {
	char path[512];
	struct experts_layer layers[N_LAYER];
	uint64_t expert_bytes;
};

static uint8_t content_byte(uint64_t i)
{
	uint64_t z = (i / 8 + 7) * 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 31)) * 0xbf58476d1ce4e5b9ull;
	z ^= z >> 29;
	return (uint8_t)(z >> (8 * (i % 8)));
}

/* Lay out N_LAYER x 3 expert tensors after a 1000-byte "header", each tensor
 * starting at a multiple of align, and write the file. */
static void make_fake(struct fake *f, const char *name, uint64_t align, const uint64_t size[3])
{
	snprintf(f->path, sizeof(f->path), "%s/%s", t_tmpdir(), name);
	uint64_t at = 1000;
	for (int l = 0; l < N_LAYER; l++)
		for (int p = 0; p < EXPERTS_N_PARTS; p++) {
			at = (at + align - 1) / align * align;
			f->layers[l].part[p] = (struct experts_tensor){at, size[p], size[p]};
			at += size[p] * N_EXPERT;
		}
	f->expert_bytes = size[0] + size[1] + size[2];
	FILE *fp = fopen(f->path, "wb");
	if (!fp)
		exit(1);
	for (uint64_t i = 0; i < at + 100; i++)
		fputc(content_byte(i), fp);
	fclose(fp);
}

static bool ref_ok(const struct fake *f, int layer, const struct experts_ref *r)
{
	for (int p = 0; p < EXPERTS_N_PARTS; p++) {
		const struct experts_tensor *t = &f->layers[layer].part[p];
		uint64_t off = t->offset + (uint64_t)r->expert * t->stride;
		const uint8_t *b = r->part[p];
		if (!b)
			return false;
		for (uint64_t i = 0; i < t->size; i++)
			if (b[i] != content_byte(off + i))
				return false;
	}
	return true;
}

static struct experts *new_store(const struct fake *f, struct io_engine *io, uint64_t budget,
				 enum cache_policy_kind pol, struct fm_mem *mem)
{
	struct experts_desc d = {N_LAYER, N_EXPERT, TOPK, f->layers};
	struct experts_params p = {.budget_bytes = budget, .policy = pol, .prefetch = true};
	struct fm_error err = {0};
	struct experts *x = experts_new(&d, io, &p, mem, &err);
	CHECK(x, "experts_new: %s", err.msg);
	return x;
}

/* Skewed routing: low ids are popular. n distinct ids. */
static void route(struct t_rng *rng, int32_t *ids, int n)
{
	for (int i = 0; i < n; i++) {
		int32_t e;
		bool dup;
		do {
			float u = t_rand_uniform(rng);
			e = (int32_t)(u * u * N_EXPERT);
			dup = false;
			for (int j = 0; j < i; j++)
				dup |= ids[j] == e;
		} while (dup);
		ids[i] = e;
	}
}

/* One layer as the forward pass runs it. hold: keep every expert pinned
 * until the end and re-check all of them then (pins must protect them from
 * this request's misses and from the prefetch). */
static void run_layer(struct experts *x, const struct fake *f, int layer, const int32_t *ids,
		      int n, const int32_t *guess, int n_guess, bool hold)
{
	struct experts_ref refs[MAX_IDS], r;
	struct experts_ref held[MAX_IDS];
	struct fm_error err = {0};
	int n_held = 0, rc;
	int u = experts_request(x, layer, ids, n, refs, &err);
	CHECK(u > 0 && u <= n, "request: %d %s", u, err.msg);
	for (int i = 0; i < u; i++) {
		if (!refs[i].ready)
			continue;
		CHECK(ref_ok(f, layer, &refs[i]), "layer %d expert %d: wrong bytes (hit)", layer,
		      refs[i].expert);
		held[n_held++] = refs[i];
		if (!hold)
			CHECK(experts_done(x, refs[i].expert) == 0, "done");
	}
	if (n_guess && layer + 1 < N_LAYER)
		CHECK(experts_prefetch(x, layer + 1, guess, n_guess) >= 0, "prefetch");
	while ((rc = experts_wait(x, &r, &err)) > 0) {
		CHECK(r.ready && ref_ok(f, layer, &r), "layer %d expert %d: wrong bytes (miss)",
		      layer, r.expert);
		held[n_held++] = r;
		if (!hold)
			CHECK(experts_done(x, r.expert) == 0, "done");
	}
	CHECK(rc == 0, "wait: %d %s", rc, err.msg);
	CHECK(n_held == u, "handed out %d of %d", n_held, u);
	if (hold) {
		CHECK(experts_drain(x) == 0, "drain");
		for (int i = 0; i < n_held; i++)
			CHECK(ref_ok(f, layer, &held[i]), "pinned expert %d overwritten", held[i].expert);
	}
	experts_release(x);
}

static void check_stats(struct experts *x, const struct fake *f, const char *what)
{
	struct experts_stats s;
	experts_get_stats(x, &s);
	CHECK(s.hits + s.misses == s.lookups, "%s: hits %llu + misses %llu != lookups %llu", what,
	      (unsigned long long)s.hits, (unsigned long long)s.misses,
	      (unsigned long long)s.lookups);
	if (!experts_is_resident(x))
		CHECK(s.bytes_read == s.misses * f->expert_bytes + s.prefetch_bytes &&
			      s.prefetch_bytes == s.prefetch_issued * f->expert_bytes,
		      "%s: bytes_read %llu != %llu misses * %llu + %llu", what,
		      (unsigned long long)s.bytes_read, (unsigned long long)s.misses,
		      (unsigned long long)f->expert_bytes, (unsigned long long)s.prefetch_bytes);
	CHECK(s.prefetch_used + s.prefetch_wasted <= s.prefetch_issued, "%s: prefetch counts", what);
	CHECK(s.prefetch_guess_hits <= s.prefetch_guesses, "%s: guess counts", what);
	CHECK(s.hits_in_flight <= s.hits, "%s: in-flight hits", what);
	CHECK(s.io_bytes >= s.bytes_read || experts_is_resident(x), "%s: io bytes %llu < %llu",
	      what, (unsigned long long)s.io_bytes, (unsigned long long)s.bytes_read);
}

/* Decode-like tokens (each layer: top-k, optional prefetch of a guess that
 * is right about half the time), then a few prompt batches. */
static void run_sequence(struct experts *x, const struct fake *f, uint64_t seed, bool prefetch,
			 int n_tokens)
{
	struct t_rng rng = {seed};
	int32_t ids[N_LAYER][TOPK], guess[TOPK];
	for (int t = 0; t < n_tokens; t++) {
		for (int l = 0; l < N_LAYER; l++)
			route(&rng, ids[l], TOPK);
		for (int l = 0; l < N_LAYER; l++) {
			int n_guess = 0;
			if (prefetch && l + 1 < N_LAYER) {
				memcpy(guess, ids[l + 1], sizeof(guess));
				guess[0] = (int32_t)(t_rand_u64(&rng) % N_EXPERT);
				n_guess = TOPK;
			}
			run_layer(x, f, l, ids[l], TOPK, guess, n_guess, true);
		}
	}
	int32_t batch[MAX_IDS];
	for (int b = 0; b < 3; b++)
		for (int l = 0; l < N_LAYER; l++) {
			int n_tok = 1 + (int)(t_rand_u64(&rng) % 8);
			for (int t = 0; t < n_tok; t++)
				route(&rng, batch + t * TOPK, TOPK);
			run_layer(x, f, l, batch, n_tok * TOPK, batch, prefetch ? 2 * TOPK : 0, false);
		}
}

static struct io_engine *open_io(const struct fake *f, enum io_mode m)
{
	struct fm_error err = {0};
	struct io_params p = {.mode = m, .queue_depth = 16, .n_threads = 2};
	struct io_engine *io = io_open(f->path, &p, &err);
	CHECK(io, "io_open: %s", err.msg);
	return io;
}

static uint64_t slot_bytes_of(const struct fake *f, struct io_engine *io)
{
	struct experts *x = new_store(f, io, UINT64_MAX / 2, CACHE_POLICY_LRU, NULL);
	uint64_t b = x ? experts_slot_bytes(x) : 1;
	experts_free(x);
	return b;
}

/* Every mode x cache size x policy x prefetch. */
static void test_matrix(const struct fake *f, const char *name, bool *no_uring)
{
	for (int m = 0; m < IO_MODE_COUNT; m++) {
		struct io_engine *io = open_io(f, (enum io_mode)m);
		if (!io)
			continue;
		if (m == IO_MODE_URING && io_get_mode(io) != IO_MODE_URING) {
			printf("  io_uring unavailable (%s): uring runs use pread\n", io_note(io));
			*no_uring = true;
		}
		uint64_t sb = slot_bytes_of(f, io);
		uint64_t budgets[3] = {TOPK * sb, 3 * TOPK * sb + sb / 2, 1ull << 40};
		for (int b = 0; b < 3; b++)
			for (int pol = 0; pol < CACHE_POLICY_MIN; pol++)
				for (int pf = 0; pf < 2; pf++) {
					struct fm_mem mem = {0};
					struct experts *x = new_store(f, io, budgets[b],
								      (enum cache_policy_kind)pol, &mem);
					if (!x)
						continue;
					if (m != IO_MODE_MMAP)
						CHECK(experts_n_slots(x) ==
							      (b == 0 ? TOPK : b == 1 ? 3 * TOPK : N_LAYER * N_EXPERT),
						      "slots %u", experts_n_slots(x));
					run_sequence(x, f, 1000 * (uint64_t)b + 10 * (uint64_t)pol + (uint64_t)pf,
						     pf, 12);
					check_stats(x, f, name);
					experts_free(x);
					CHECK(mem.used_bytes == 0, "slab not given back");
				}
		printf("  %s: %s (as %s), slot %llu bytes for %llu expert bytes: ok\n", name,
		       io_mode_name((enum io_mode)m), io_mode_name(io_get_mode(io)),
		       (unsigned long long)sb, (unsigned long long)f->expert_bytes);
		io_close(io);
	}
}

static void test_min_budget(const struct fake *f)
{
	struct io_engine *io = open_io(f, IO_MODE_PREAD);
	if (!io)
		return;
	uint64_t sb = slot_bytes_of(f, io);
	struct experts_desc d = {N_LAYER, N_EXPERT, TOPK, f->layers};
	struct experts_params p = {.budget_bytes = TOPK * sb - 1, .policy = CACHE_POLICY_LRU};
	struct fm_error err = {0};
	char want[64];
	snprintf(want, sizeof(want), "%llu bytes", (unsigned long long)(TOPK * sb - 1));
	CHECK(!experts_new(&d, io, &p, NULL, &err), "budget below the minimum accepted");
	CHECK(err.code == FM_ENOMEM && strstr(err.msg, want) && strstr(err.msg, "at least 4 slots"),
	      "message: %s", err.msg);
	p.budget_bytes = 1 << 30;
	p.policy = CACHE_POLICY_MIN;
	CHECK(!experts_new(&d, io, &p, NULL, &err), "MIN accepted live");
	struct experts_tensor saved = f->layers[2].part[1];
	struct fake bad = *f;
	bad.layers[2].part[1].offset = io_file_size(io) - 10;
	d.layers = bad.layers;
	p.policy = CACHE_POLICY_LRU;
	CHECK(!experts_new(&d, io, &p, NULL, &err) && err.code == FM_EFORMAT,
	      "slices past the end accepted");
	(void)saved;
	io_close(io);
}

/* A read failing twice is reported with layer, expert and offset; the
 * expert reads fine on the next request. A failed prefetch is dropped. */
static void test_io_error(const struct fake *f, enum io_mode m)
{
	struct io_engine *io = open_io(f, m);
	struct experts *x = io ? new_store(f, io, 1 << 30, CACHE_POLICY_LFU, NULL) : NULL;
	if (!x)
		goto out;
	int32_t ids[TOPK] = {3, 5, 7, 9};
	struct experts_ref refs[TOPK], r;
	struct fm_error err = {0};
	/* expert 3's up part */
	io_set_fault(io, &(struct io_fault){.kind = IO_FAULT_EIO, .nth = 1, .n_attempts = 2});
	CHECK(experts_request(x, 2, ids, TOPK, refs, &err) == TOPK, "request");
	int rc, n_ok = 0, n_err = 0;
	while ((rc = experts_wait(x, &r, &err)) != 0) {
		if (rc > 0) {
			n_ok++;
			CHECK(ref_ok(f, 2, &r), "bytes");
			continue;
		}
		n_err++;
		uint64_t off = f->layers[2].part[1].offset + 3 * f->layers[2].part[1].stride;
		CHECK(rc == -EIO && err.offset == off && strstr(err.msg, "layer 2 expert 3") &&
			      strstr(err.msg, f->path),
		      "error %d: %s", rc, err.msg);
	}
	CHECK(n_ok == 3 && n_err == 1, "ok %d err %d", n_ok, n_err);
	experts_release(x);
	run_layer(x, f, 2, ids, TOPK, NULL, 0, true);
	/* A prefetch whose read fails is forgotten; the demand read works. */
	int32_t g[2] = {11, 12};
	io_set_fault(io, &(struct io_fault){.kind = IO_FAULT_EIO, .nth = 0, .n_attempts = 2});
	CHECK(experts_prefetch(x, 3, g, 2) == 2, "prefetch");
	CHECK(experts_drain(x) == 0, "drain");
	run_layer(x, f, 3, g, 2, NULL, 0, true);
	struct experts_stats s;
	experts_get_stats(x, &s);
	CHECK(s.reads_failed == 2 && s.prefetch_wasted == 1 && s.prefetch_used == 1,
	      "failed %llu wasted %llu used %llu", (unsigned long long)s.reads_failed,
	      (unsigned long long)s.prefetch_wasted, (unsigned long long)s.prefetch_used);
	/* Short reads (with garbage past the cut) are continued. */
	for (int i = 0; i < 6; i++) {
		int32_t one = 13 + i % 3;
		io_set_fault(io, &(struct io_fault){.kind = IO_FAULT_SHORT, .nth = (uint64_t)i % 3,
						    .n_attempts = 2});
		run_layer(x, f, i % N_LAYER, &one, 1, NULL, 0, true);
	}
out:
	experts_free(x);
	io_close(io);
}

/* Slow reads (every attempt 100 us late, as from a loaded disk): the same
 * sequences, the same bytes. */
static void test_slow(const struct fake *f, enum io_mode m)
{
	struct io_engine *io = open_io(f, m);
	struct experts *x = io ? new_store(f, io, 3 * TOPK * slot_bytes_of(f, io), CACHE_POLICY_LRU,
					   NULL) : NULL;
	if (x) {
		io_set_fault(io, &(struct io_fault){.kind = IO_FAULT_SLOW, .delay_us = 100});
		run_sequence(x, f, 77, true, 4);
		check_stats(x, f, "slow");
	}
	experts_free(x);
	io_close(io);
}

/* Request every expert of ids in layer, compute nothing; the final code of
 * experts_wait (0, or the error it returned first). */
static int pass_layer(struct experts *x, int layer, const int32_t *ids, struct fm_error *err)
{
	struct experts_ref refs[TOPK], r;
	int u = experts_request(x, layer, ids, TOPK, refs, err), rc;
	if (u < 0)
		return u;
	for (int i = 0; i < u; i++)
		if (refs[i].ready)
			experts_done(x, refs[i].expert);
	while ((rc = experts_wait(x, &r, err)) > 0)
		experts_done(x, r.expert);
	experts_release(x);
	return rc;
}

/* The file under the store changes between two passes: the second pass's
 * last layer reports it, its earlier layers do not. */
static void test_file_changed(const struct fake *f, enum io_mode m)
{
	static const char *const want[] = {"modified in place", "size went from",
					   "names another file", "no longer names it"};
	for (int k = 0; k < 4; k++) {
		struct fake g;
		make_fake(&g, "changing.bin", 32, (uint64_t[3]){4800, 4800, 6432});
		struct timespec old[2] = {{1000000000, 0}, {1000000000, 0}};
		CHECK(utimensat(AT_FDCWD, g.path, old, 0) == 0, "utimensat");
		struct io_engine *io = open_io(&g, m);
		struct experts *x = io ? new_store(&g, io, 1 << 30, CACHE_POLICY_LRU, NULL) : NULL;
		if (!x) {
			io_close(io);
			return;
		}
		int32_t ids[TOPK] = {1, 4, 6, 15};
		struct fm_error err = {0};
		for (int l = 0; l < N_LAYER; l++)
			CHECK(pass_layer(x, l, ids, &err) == 0, "unchanged file, layer %d: %s", l, err.msg);
		char other[600];
		snprintf(other, sizeof(other), "%s.new", g.path);
		int fd = -1;
		if (k == 0) { /* other bytes in the header, same size */
			fd = open(g.path, O_WRONLY);
			CHECK(fd >= 0 && pwrite(fd, "GGUF", 4, 0) == 4, "pwrite");
		} else if (k == 1) {
			CHECK(truncate(g.path, (off_t)(io_file_size(io) - 50)) == 0, "truncate");
		} else if (k == 2) {
			struct fake h;
			make_fake(&h, "changing.bin.new", 32, (uint64_t[3]){4800, 4800, 6432});
			CHECK(rename(h.path, g.path) == 0, "rename");
		} else {
			CHECK(unlink(g.path) == 0, "unlink");
		}
		if (fd >= 0)
			close(fd);
		int32_t ids2[TOPK] = {2, 4, 9, 15};
		for (int l = 0; l + 1 < N_LAYER; l++)
			CHECK(pass_layer(x, l, ids2, &err) == 0, "layer %d: %s", l, err.msg);
		int rc = pass_layer(x, N_LAYER - 1, ids2, &err);
		CHECK(rc == -ESTALE && strstr(err.msg, g.path) && strstr(err.msg, want[k]),
		      "%s, change %d: rc %d '%s'", io_mode_name(m), k, rc, err.msg);
		experts_free(x);
		io_close(io);
		unlink(g.path);
	}
}

static void test_misuse(const struct fake *f)
{
	struct io_engine *io = open_io(f, IO_MODE_PREAD);
	struct experts *x = io ? new_store(f, io, 1 << 30, CACHE_POLICY_LRU, NULL) : NULL;
	if (!x)
		goto out;
	int32_t ids[TOPK] = {0, 1, 2, 3}, bad = N_EXPERT;
	struct experts_ref refs[MAX_IDS], r;
	struct fm_error err = {0};
	CHECK(experts_request(x, 0, &bad, 1, refs, &err) == FM_EINVAL, "bad id");
	CHECK(experts_request(x, N_LAYER, ids, 1, refs, &err) == FM_EINVAL, "bad layer");
	CHECK(experts_request(x, 0, ids, TOPK, refs, &err) == TOPK, "request");
	CHECK(experts_request(x, 1, ids, TOPK, refs, &err) == FM_EINVAL, "second request");
	CHECK(experts_done(x, 9) == FM_EINVAL, "done on an expert not requested");
	experts_release(x);
	CHECK(experts_wait(x, &r, &err) == 0, "wait without a request");
	CHECK(experts_prefetch(x, 0, &bad, 1) == FM_EINVAL, "prefetch bad id");
	/* A prompt batch reads each expert once. */
	int32_t batch[8] = {9, 10, 9, 10, 11, 9, 11, 10};
	experts_reset_stats(x);
	run_layer(x, f, 3, batch, 8, NULL, 0, true);
	struct experts_stats st;
	experts_get_stats(x, &st);
	CHECK(st.lookups == 3 && st.misses == 3 && st.bytes_read == 3 * f->expert_bytes,
	      "batch: %llu lookups %llu misses", (unsigned long long)st.lookups,
	      (unsigned long long)st.misses);
	experts_free(x);
	/* The smallest cache, a batch of twice its size, nothing ever done:
	 * wait must say so, not hang. */
	x = new_store(f, io, TOPK * slot_bytes_of(f, io), CACHE_POLICY_LRU, NULL);
	int32_t many[2 * TOPK] = {0, 1, 2, 3, 4, 5, 6, 7};
	int rc = 0;
	CHECK(experts_request(x, 1, many, 2 * TOPK, refs, &err) == 2 * TOPK, "batch");
	CHECK(experts_prefetch(x, 2, ids, TOPK) == 0, "prefetch while misses are deferred");
	while ((rc = experts_wait(x, &r, &err)) > 0)
		;
	CHECK(rc == FM_EINVAL && strstr(err.msg, "pinned"), "all pinned: %d %s", rc, err.msg);
	experts_release(x);
	run_layer(x, f, 1, many, 2 * TOPK, NULL, 0, false); /* usable afterwards */
out:
	experts_free(x);
	io_close(io);
}

static void test_resident_base(const struct fake *f)
{
	FILE *fp = fopen(f->path, "rb");
	if (!fp)
		return;
	fseek(fp, 0, SEEK_END);
	long n = ftell(fp);
	uint8_t *buf = malloc((size_t)n);
	fseek(fp, 0, SEEK_SET);
	CHECK(buf && fread(buf, 1, (size_t)n, fp) == (size_t)n, "read file");
	fclose(fp);
	struct experts_desc d = {N_LAYER, N_EXPERT, TOPK, f->layers};
	struct experts_params p = {.resident_base = buf};
	struct fm_error err = {0};
	struct experts *x = experts_new(&d, NULL, &p, NULL, &err);
	CHECK(x && experts_is_resident(x), "resident: %s", err.msg);
	if (x) {
		run_sequence(x, f, 77, true, 5);
		check_stats(x, f, "resident");
	}
	experts_free(x);
	free(buf);
}

static void test_trace(void)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/trace.txt", t_tmpdir());
	struct fm_error err = {0};
	struct experts_trace *t = experts_trace_open(path, 2, 8, 2, &err);
	CHECK(t, "trace open: %s", err.msg);
	if (!t)
		return;
	int32_t a[2] = {3, 7}, b[2] = {0, 5};
	CHECK(experts_trace_write(t, 0, 0, a, 2) == 0 && experts_trace_write(t, 0, 1, b, 2) == 0,
	      "write");
	CHECK(experts_trace_close(t, &err) == 0, "close");
	char text[256] = {0};
	FILE *fp = fopen(path, "r");
	size_t n = fp ? fread(text, 1, sizeof(text) - 1, fp) : 0;
	if (fp)
		fclose(fp);
	const char *want = "# flashmoe expert trace v2 n_layer=2 n_expert=8 n_expert_used=2\n"
			   "0 0 3 7\n0 1 0 5\n";
	CHECK(n == strlen(want) && !strcmp(text, want), "trace text:\n%s", text);
}


/* Speculation (experts.h "Prefetch"): guesses never start while a demand
 * read is in flight, at most 2 guessed experts are in flight, and wrong
 * guesses take at most spec_max slots from the policy (then recycle their
 * own). */
static void test_speculation(const struct fake *f)
{
	struct io_engine *io = open_io(f, IO_MODE_PREAD);
	struct fm_mem mem = {0};
	struct experts *x = new_store(f, io, 12 * slot_bytes_of(f, io), CACHE_POLICY_LRU, &mem);
	int32_t ids[TOPK] = {0, 1, 2, 3}, guess[8] = {4, 5, 6, 7, 8, 9, 10, 11};
	for (int l = 0; l < 3; l++)
		run_layer(x, f, l, ids, TOPK, NULL, 0, false);
	struct experts_stats s;
	experts_get_stats(x, &s);
	CHECK(s.evictions == 0 && s.misses == 12, "filled: %llu evictions",
	      (unsigned long long)s.evictions);
	/* 12 slots: speculation may hold min(2 * TOPK, 12 / 4) = 3 of them */
	for (int round = 0; round < 8; round++) {
		int n = experts_prefetch(x, 3, guess, 8);
		CHECK(n >= 0 && n <= 2, "round %d: %d guesses started (at most 2 in flight)", round,
		      n);
		CHECK(experts_drain(x) == 0, "drain");
		experts_get_stats(x, &s);
		CHECK(s.evictions <= 3, "round %d: guesses evicted %llu kept experts (at most 3)",
		      round, (unsigned long long)s.evictions);
		/* forget the guesses (as a new pass does) so they are asked again */
		int32_t g0 = guess[0];
		memmove(guess, guess + 1, 7 * sizeof(*guess));
		guess[7] = g0;
	}
	CHECK(s.prefetch_issued > 3, "%llu guesses read", (unsigned long long)s.prefetch_issued);
	uint64_t hits = s.hits;
	for (int l = 0; l < 3; l++)
		run_layer(x, f, l, ids, TOPK, NULL, 0, false);
	experts_get_stats(x, &s);
	CHECK(s.hits - hits >= 9, "%llu of the 12 kept experts still cached (at least 9)",
	      (unsigned long long)(s.hits - hits));
	/* a demand read in flight: no guess starts until it is done */
	struct experts_ref refs[MAX_IDS], r;
	struct fm_error err = {0};
	int32_t miss[TOPK] = {12, 13, 14, 15};
	int u = experts_request(x, 1, miss, TOPK, refs, &err);
	CHECK(u == TOPK, "request: %s", err.msg);
	uint64_t before = s.prefetch_issued;
	int32_t g2[2] = {14, 15};
	CHECK(experts_prefetch(x, 2, g2, 2) == 0, "a guess started beside demand reads");
	int rc;
	while ((rc = experts_wait(x, &r, &err)) > 0)
		experts_done(x, r.expert);
	CHECK(rc == 0, "wait: %s", err.msg);
	experts_release(x);
	CHECK(experts_drain(x) == 0, "drain");
	experts_get_stats(x, &s);
	CHECK(s.prefetch_issued == before + 2, "queued guesses started after the demand: %llu",
	      (unsigned long long)(s.prefetch_issued - before));
	experts_free(x);
	io_close(io);
}

/* prefetch_auto: once the cache is full, a probe of 32 one-token passes, 16
 * with and 16 without prefetch; then the mode with the lower mean pass time
 * (here: without, as passes that prefetch are made 3 ms slower). */
static void test_prefetch_auto(const struct fake *f)
{
	struct io_engine *io = open_io(f, IO_MODE_PREAD);
	struct fm_mem mem = {0};
	struct experts_desc d = {N_LAYER, N_EXPERT, TOPK, f->layers};
	struct experts_params p = {.budget_bytes = 8 * slot_bytes_of(f, io),
				   .policy = CACHE_POLICY_LRU, .prefetch = true,
				   .prefetch_auto = true};
	struct fm_error err = {0};
	struct experts *x = experts_new(&d, io, &p, &mem, &err);
	CHECK(x, "experts_new: %s", err.msg);
	struct t_rng rng = {7};
	int on = 0, n_pass = 48;
	for (int pass = 0; pass < n_pass; pass++) {
		bool pf = false;
		for (int l = 0; l < N_LAYER; l++) {
			int32_t ids[TOPK], g[TOPK];
			route(&rng, ids, TOPK);
			route(&rng, g, TOPK);
			struct experts_ref refs[MAX_IDS], r;
			int u = experts_request(x, l, ids, TOPK, refs, &err);
			CHECK(u > 0, "request: %s", err.msg);
			pf = experts_prefetching(x);
			for (int i = 0; i < u; i++)
				if (refs[i].ready)
					experts_done(x, refs[i].expert);
			if (pf && l + 1 < N_LAYER)
				experts_prefetch(x, l + 1, g, TOPK);
			while (experts_wait(x, &r, &err) > 0)
				experts_done(x, r.expert);
			if (pf)
				usleep(3000);
			experts_release(x);
		}
		on += pf;
		/* 8 slots fill in the first pass: the probe is passes 1..32 */
		if (pass > 33)
			CHECK(!pf, "pass %d prefetches after a probe that measured it slower", pass);
	}
	CHECK(on >= 16 && on <= 18, "%d of %d passes prefetched (16 of the probe)", on, n_pass);
	struct experts_stats s;
	experts_get_stats(x, &s);
	CHECK(s.pf_probe_on_s > s.pf_probe_off_s + 0.002, "probe %.4f s with, %.4f s without",
	      s.pf_probe_on_s, s.pf_probe_off_s);
	experts_free(x);
	io_close(io);
}

int main(void)
{
	struct fake aligned, odd;
	make_fake(&aligned, "aligned.bin", 4096, (uint64_t[3]){8192, 8192, 12288});
	make_fake(&odd, "align32.bin", 32, (uint64_t[3]){4800, 4800, 6432});
	bool no_uring = false;
	test_matrix(&aligned, "4096-aligned", &no_uring);
	test_matrix(&odd, "32-aligned", &no_uring);
	test_min_budget(&odd);
	test_io_error(&odd, IO_MODE_URING);
	test_io_error(&odd, IO_MODE_PREAD);
	test_io_error(&aligned, IO_MODE_BUFFERED);
	for (int m = 0; m < IO_MODE_COUNT; m++) {
		if (m != IO_MODE_MMAP)
			test_slow(&odd, (enum io_mode)m);
		test_file_changed(&odd, (enum io_mode)m);
	}
	test_misuse(&aligned);
	test_resident_base(&odd);
	test_speculation(&aligned);
	test_prefetch_auto(&aligned);
	test_trace();
	remove(aligned.path);
	remove(odd.path);
	if (no_uring && t_failures == 0) {
		printf("skip: io_uring unavailable here; the pread, buffered and mmap runs passed\n");
		return 77;
	}
	return t_done("test_experts");
}
