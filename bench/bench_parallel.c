/* bench_parallel.c: N contexts decoding together with fm_eval_batch, the
 * engine side of a server with N busy slots. For each N of the list: open
 * the model, give N contexts a short prompt each (different tokens; one
 * fm_eval_batch, not timed), then decode STEPS steps of N tokens (greedy),
 * and print the aggregate generated tok/s and the expert bytes read per
 * generated token (streamed models). A fresh model per N: the cache starts
 * from the same state (cold, after the prompts). Drop the file from the page
 * cache first when measuring streaming (../shared/bin/dropcache FILE; reads
 * use O_DIRECT anyway).
 *
 * Usage: bench_parallel -m MODEL [-np 1,2,4,8] [-n STEPS=8] [-p PROMPT=8]
 *                       [--mem SIZE] [--cache SIZE] [--cache-policy lru|lfu|arc] [--stream]
 *                       [-t THREADS] [--no-prefetch]
 * Build: make O=build/release build/release/bench/bench_parallel */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flashmoe.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t parse_size(const char *s)
{
	char *end;
	double v = strtod(s, &end);
	switch (*end) {
	case 'k': case 'K': v *= 1024.0; break;
	case 'm': case 'M': v *= 1048576.0; break;
	case 'g': case 'G': v *= 1073741824.0; break;
	default: break;
	}
	return (uint64_t)v;
}

static int32_t argmax(const float *l, int n)
{
	int32_t b = 0;
	for (int i = 1; i < n; i++)
		b = l[i] > l[b] ? i : b;
	return b;
}

struct opts {
	const char *model;
	int np[16], n_np, steps, prompt, threads;
	uint64_t mem, cache;
	const char *policy;
	bool stream, prefetch;
};

/* One N: 0 or a negative code. */
static int run(const struct opts *o, int N)
{
	struct fm_model_params mp;
	fm_model_params_default(&mp);
	mp.mem_bytes = o->mem;
	mp.cache_bytes = o->cache;
	mp.cache_policy = o->policy;
	mp.stream = o->stream;
	mp.prefetch = o->prefetch;
	mp.n_threads = o->threads;
	struct fm_error err = { 0 };
	struct fm_model *m = fm_model_open(o->model, &mp, &err);
	if (!m) {
		fprintf(stderr, "bench_parallel: %s\n", err.msg);
		return err.code;
	}
	int n_vocab = fm_model_get_info(m)->n_vocab, rc = 0;
	int n_ctx = o->prompt + o->steps + 8;
	struct fm_ctx **c = calloc((size_t)N, sizeof(*c));
	struct fm_batch_item *it = calloc((size_t)N, sizeof(*it));
	int32_t *prompt = calloc((size_t)N * o->prompt, sizeof(int32_t));
	int32_t *next = calloc((size_t)N, sizeof(int32_t));
	float *logits = calloc((size_t)N * n_vocab, sizeof(float));
	if (!c || !it || !prompt || !next || !logits) {
		fprintf(stderr, "bench_parallel: out of memory\n");
		rc = -1;
		goto out;
	}
	for (int i = 0; i < N; i++) {
		c[i] = fm_ctx_new(m, n_ctx, &err);
		if (!c[i]) {
			fprintf(stderr, "bench_parallel: context %d: %s\n", i, err.msg);
			rc = err.code;
			goto out;
		}
		for (int j = 0; j < o->prompt; j++)
			prompt[(size_t)i * o->prompt + j] = (int32_t)((1000 + 7919 * i + 104729 * j) % n_vocab);
		it[i] = (struct fm_batch_item){ c[i], prompt + (size_t)i * o->prompt, o->prompt,
						logits + (size_t)i * n_vocab, 0 };
	}
	if ((rc = fm_eval_batch(it, N, &err))) {
		fprintf(stderr, "bench_parallel: prompts: %s\n", err.msg);
		goto out;
	}
	fm_reset_stats(m);
	double t0 = now_s();
	for (int s = 0; s < o->steps; s++) {
		for (int i = 0; i < N; i++) {
			next[i] = argmax(logits + (size_t)i * n_vocab, n_vocab);
			it[i].tokens = &next[i];
			it[i].n_tokens = 1;
		}
		if ((rc = fm_eval_batch(it, N, &err))) {
			fprintf(stderr, "bench_parallel: step %d: %s\n", s, err.msg);
			goto out;
		}
	}
	double dt = now_s() - t0;
	struct fm_stats st;
	fm_get_stats(m, &st);
	uint64_t gen = (uint64_t)N * o->steps;
	double hit = st.expert_lookups ? 100.0 * st.expert_hits / st.expert_lookups : 100.0;
	printf("%3d  %8.2f  %8.2f  %10.1f  %6.1f%%  %8.0f  %s", N, gen / dt, o->steps / dt,
	       st.bytes_read / 1048576.0 / gen, hit, st.mem_peak_bytes / 1048576.0, st.io_mode);
	if (st.cache_slots)
		printf(", cache %llu slots", (unsigned long long)st.cache_slots);
	printf("\n");
	fflush(stdout);
out:
	for (int i = 0; c && i < N; i++)
		fm_ctx_free(c[i]);
	free(c), free(it), free(prompt), free(next), free(logits);
	fm_model_close(m);
	return rc;
}

int main(int argc, char **argv)
{
	struct opts o = { .np = { 1, 2, 4, 8 }, .n_np = 4, .steps = 8, .prompt = 8, .prefetch = true };
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--stream")) {
			o.stream = true;
			continue;
		}
		if (!strcmp(a, "--no-prefetch")) {
			o.prefetch = false;
			continue;
		}
		if (!v)
			goto usage;
		i++;
		if (!strcmp(a, "-m"))
			o.model = v;
		else if (!strcmp(a, "-n"))
			o.steps = atoi(v);
		else if (!strcmp(a, "-p"))
			o.prompt = atoi(v);
		else if (!strcmp(a, "-t"))
			o.threads = atoi(v);
		else if (!strcmp(a, "--mem"))
			o.mem = parse_size(v);
		else if (!strcmp(a, "--cache"))
			o.cache = parse_size(v);
		else if (!strcmp(a, "--cache-policy"))
			o.policy = v;
		else if (!strcmp(a, "-np")) {
			o.n_np = 0;
			for (char *s = (char *)v; *s && o.n_np < 16;) {
				o.np[o.n_np++] = (int)strtol(s, &s, 10);
				if (*s == ',')
					s++;
				else if (*s)
					goto usage;
			}
		} else
			goto usage;
	}
	if (!o.model || o.steps < 1 || o.prompt < 1)
		goto usage;
	for (int k = 0; k < o.n_np; k++)
		if (o.np[k] < 1 || o.np[k] > 256)
			goto usage;
	printf("  N  gen tok/s  steps/s  MiB read/tok  hits    peak MiB  io\n");
	for (int k = 0; k < o.n_np; k++)
		if (run(&o, o.np[k]))
			return 1;
	return 0;
usage:
	fprintf(stderr, "usage: bench_parallel -m MODEL [-np 1,2,4,8] [-n STEPS] [-p PROMPT] "
			"[--mem SIZE] [--cache SIZE] [--cache-policy P] [--stream] [-t THREADS] "
			"[--no-prefetch]\n");
	return 2;
}
