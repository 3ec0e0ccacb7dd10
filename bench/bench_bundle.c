/* bench_bundle.c: does bundling an expert's gate, up and down slices into one
 * contiguous blob pay? ("row-column bundling", LLM in a Flash.)
 *
 * Reads random experts of a model file through the engine's io layer
 * (io_uring, O_DIRECT, as the expert cache does) two ways, the same bytes per
 * expert either way:
 *   split    three reads per expert: its gate, up and down slices, which lie
 *            in three different tensors (llama.cpp's layout);
 *   bundled  one read per expert of the same total length, from one place
 *            (what a bundled file would give).
 * with Q experts in flight, and prints GB/s for each. Drop the file from the
 * page cache first (../shared/bin/dropcache FILE); O_DIRECT bypasses it anyway.
 *
 * Usage: bench_bundle MODEL.gguf [EXPERTS=400] [INFLIGHT=8]
 * Build: make bench  (build/release/bench/bench_bundle) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "io.h"
#include "util.h"

struct part {
	uint64_t off, size;
};

static int find_exps(struct gguf_file *f, int layer, const char *which, struct part *out,
		     uint64_t *n_expert)
{
	char name[96];
	snprintf(name, sizeof(name), "blk.%d.ffn_%s_exps.weight", layer, which);
	int64_t i = gguf_find_tensor(f, name);
	if (i < 0)
		return -1;
	const struct gguf_tensor_info *t = gguf_tensor(f, (uint64_t)i);
	*n_expert = t->ne[2];
	out->off = t->offset;
	out->size = t->size_bytes / t->ne[2];
	return 0;
}

/* Read n_exp random experts, Q in flight; parts_per_expert 3 (split) or 1. */
static double run(struct io_engine *io, uint8_t *slab, size_t slot, int Q,
		  const struct part (*parts)[3], int n_layer, uint64_t n_expert, int n_exp,
		  bool bundled, uint64_t seed)
{
	struct io_completion comp[64];
	int issued = 0, done = 0, inflight = 0, per = bundled ? 1 : 3;
	int total = n_exp * per;
	double t0 = fm_now_s();
	while (done < total) {
		while (issued < total && inflight < Q * per) {
			int e_i = issued / per, p = issued % per;
			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			uint64_t r = seed >> 20;
			int layer = (int)(r % (uint64_t)n_layer);
			uint64_t e = (r / (uint64_t)n_layer) % n_expert;
			const struct part *pp = parts[layer];
			uint64_t off, len;
			if (bundled) { /* the same bytes as one run, from the gate tensor */
				len = pp[0].size + pp[1].size + pp[2].size;
				off = pp[0].off + (e * pp[0].size) % (n_expert * pp[0].size - len);
			} else {
				len = pp[p].size;
				off = pp[p].off + e * pp[p].size;
			}
			uint8_t *buf = slab + (size_t)(e_i % (Q * 2)) * slot + (size_t)p * (slot / 3);
			if (io_submit_read(io, buf, (size_t)len, off, (uint64_t)issued))
				break;
			issued++;
			inflight++;
		}
		int k = io_reap(io, 1, comp, 64);
		if (k < 0)
			return -1;
		for (int i = 0; i < k; i++)
			if (comp[i].res < 0)
				return -1;
		done += k;
		inflight -= k;
	}
	return fm_now_s() - t0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: bench_bundle MODEL.gguf [EXPERTS] [INFLIGHT]\n");
		return 2;
	}
	int n_exp = argc > 2 ? atoi(argv[2]) : 400, Q = argc > 3 ? atoi(argv[3]) : 8;
	struct fm_error err = { 0 };
	struct gguf_file *f = gguf_open(argv[1], &err);
	if (!f) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	int n_layer = 0;
	uint64_t n_expert = 0;
	struct part (*parts)[3] = calloc(4096, sizeof(*parts));
	while (n_layer < 4096 && !find_exps(f, n_layer, "gate", &parts[n_layer][0], &n_expert) &&
	       !find_exps(f, n_layer, "up", &parts[n_layer][1], &n_expert) &&
	       !find_exps(f, n_layer, "down", &parts[n_layer][2], &n_expert))
		n_layer++;
	if (!n_layer || Q < 1 || Q > 16) {
		fprintf(stderr, "no expert tensors, or INFLIGHT not in 1..16\n");
		return 1;
	}
	uint64_t bytes = parts[0][0].size + parts[0][1].size + parts[0][2].size;
	struct io_params iop = { .mode = IO_MODE_URING, .queue_depth = 64 };
	struct io_engine *io = io_open(argv[1], &iop, &err);
	if (!io) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	size_t slot = (size_t)(bytes + 3 * 8192 + 4095) / 4096 * 4096;
	slot = (slot + 3 * 4096 - 1) / (3 * 4096) * (3 * 4096);
	uint8_t *slab = aligned_alloc(4096, slot * (size_t)Q * 2);
	printf("%s: %d layers, %llu experts, %.2f MiB per expert, io %s%s%s\n", argv[1], n_layer,
	       (unsigned long long)n_expert, bytes / 1048576.0, io_mode_name(io_get_mode(io)),
	       io_note(io)[0] ? " " : "", io_note(io));
	for (int rep = 0; rep < 2; rep++) {
		for (int b = 0; b < 2; b++) {
			double s = run(io, slab, slot, Q, (const struct part(*)[3])parts, n_layer, n_expert,
				       n_exp, b, 1234 + rep);
			printf("%-8s %d experts, %d in flight: %.3f s, %.2f GB/s\n", b ? "bundled" : "split",
			       n_exp, Q, s, s > 0 ? n_exp * (double)bytes / s / 1e9 : 0.0);
		}
	}
	io_close(io);
	free(slab);
	free(parts);
	gguf_close(f);
	return 0;
}
