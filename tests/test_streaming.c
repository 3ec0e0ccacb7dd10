/* test_streaming.c: streaming experts changes where the bytes come from, never
 * the numbers. The logits of every position must be bit-identical when the
 * experts are resident (read from the mapping), streamed through a cache of
 * the minimum size (n_expert_used slots: constant eviction), of two layers'
 * worth, or of every expert; with and without prefetch; through io_uring,
 * the pread pool and buffered reads; evaluated as one batch or token by
 * token; and under --io mmap. Also: a budget too small for the dense
 * weights is refused with the numbers. */
#include <stdlib.h>
#include <string.h>

#include "flashmoe.h"
#include "testutil.h"

#define N_TOK 12

static char path[512];
static int n_vocab;

struct variant {
	const char *name;
	bool stream;
	uint64_t cache_bytes; /* multiples of the slot size, set in main */
	bool prefetch;
	const char *io;
	int chunk;            /* tokens per fm_eval */
};

static float *run(const struct variant *v, struct fm_stats *st)
{
	struct fm_model_params mp;
	fm_model_params_default(&mp);
	mp.n_threads = 2;
	mp.stream = v->stream;
	mp.cache_bytes = v->cache_bytes;
	mp.prefetch = v->prefetch;
	mp.io = v->io;
	struct fm_error err = { 0 };
	struct fm_model *m = fm_model_open(path, &mp, &err);
	if (!m) {
		CHECK(0, "%s: open: %s", v->name, err.msg);
		return NULL;
	}
	n_vocab = fm_model_get_info(m)->n_vocab;
	struct fm_ctx *c = fm_ctx_new(m, 64, &err);
	float *out = calloc((size_t)N_TOK * n_vocab, sizeof(float));
	int32_t ids[N_TOK] = { 3, 14, 15, 92, 65, 35, 89, 79, 32, 38, 46, 26 };
	CHECK(c && out, "%s: ctx: %s", v->name, err.msg);
	for (int i = 0; c && out && i < N_TOK; i += v->chunk) {
		int nb = N_TOK - i < v->chunk ? N_TOK - i : v->chunk;
		int rc = fm_eval(c, ids + i, nb, out + (size_t)i * n_vocab, true, &err);
		CHECK(rc == 0, "%s: eval: %s", v->name, err.msg);
	}
	fm_get_stats(m, st);
	fm_ctx_free(c);
	fm_model_close(m);
	return out;
}

int main(void)
{
	struct fm_tiny_params p;
	fm_tiny_params_default(&p);
	p.type = 12; /* q4_K */
	p.n_layer = 3;
	p.n_embd = 256;
	p.n_ff_expert = 512; /* != n_embd: expert inputs and outputs differ in size */
	p.head_dim = 64;
	p.n_expert = 16;
	p.n_expert_used = 4;
	snprintf(path, sizeof(path), "%s/stream.gguf", t_tmpdir());
	struct fm_error err = { 0 };
	if (fm_gen_tiny(path, &p, &err)) {
		CHECK(0, "gen_tiny: %s", err.msg);
		return t_done("test_streaming");
	}
	/* one expert: gate + up (512 rows of 256) + down (256 rows of 512), Q4_K */
	uint64_t slot = 3ull * 512 * 144, all = slot * 16 * 3;
	struct variant vs[] = {
		{ "resident", false, 0, false, NULL, N_TOK },
		{ "min cache, uring, prefetch", true, 4 * slot, true, "uring", N_TOK },
		{ "min cache, token by token", true, 4 * slot, true, "uring", 1 },
		{ "min cache, pread, no prefetch", true, 4 * slot, false, "pread", 1 },
		{ "two layers, buffered", true, 32 * slot, true, "buffered", 5 },
		{ "every expert, uring", true, all, true, "uring", 3 },
		{ "mmap baseline", false, 0, false, "mmap", 4 },
	};
	/* the same tokens in other batch sizes are other float sums (rows of 8
	 * tokens share a weight block): compare with the resident run of the
	 * same batching */
	struct fm_stats st;
	float *base = NULL;
	for (size_t i = 1; i < sizeof(vs) / sizeof(vs[0]); i++) {
		struct variant r = vs[0];
		r.chunk = vs[i].chunk;
		free(base);
		base = run(&r, &st);
		float *x = run(&vs[i], &st);
		if (!x || !base) {
			free(x);
			continue;
		}
		CHECK(memcmp(x, base, (size_t)N_TOK * n_vocab * sizeof(float)) == 0,
		      "%s: logits differ from resident", vs[i].name);
		if (vs[i].stream) {
			CHECK(st.expert_hits + st.expert_misses == st.expert_lookups,
			      "%s: hits %llu + misses %llu != lookups %llu", vs[i].name,
			      (unsigned long long)st.expert_hits, (unsigned long long)st.expert_misses,
			      (unsigned long long)st.expert_lookups);
			CHECK(st.expert_misses > 0 && st.bytes_read > 0, "%s: nothing was read", vs[i].name);
			printf("%-32s slots %3llu  lookups %4llu  hits %4llu  read %.2f MiB  prefetch %llu/%llu\n",
			       vs[i].name, (unsigned long long)st.cache_slots,
			       (unsigned long long)st.expert_lookups, (unsigned long long)st.expert_hits,
			       st.bytes_read / 1048576.0, (unsigned long long)st.prefetch_used,
			       (unsigned long long)st.prefetch_issued);
		}
		free(x);
	}
	free(base);

	/* a budget below the dense weights is refused, naming the numbers */
	struct fm_model_params mp;
	fm_model_params_default(&mp);
	mp.mem_bytes = 1 << 20;
	struct fm_model *m = fm_model_open(path, &mp, &err);
	CHECK(m == NULL && err.code == FM_ENOMEM, "1 MiB budget accepted");
	CHECK(strstr(err.msg, "dense") != NULL, "message: %s", err.msg);
	fm_model_close(m);
	return t_done("test_streaming");
}
