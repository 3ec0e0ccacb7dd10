/* test_threads.c: the thread-safety statement of flashmoe.h. Several threads
 * share one model, each making, using and freeing its own context (one of
 * them stepping two contexts with fm_eval_batch), while another thread polls
 * fm_get_stats. On tiny models: qwen3moe resident and
 * streamed (a small expert cache, prefetch on), qwen35moe streamed.
 * Checks: every thread's logits are those of its sequence run alone
 * (evaluations are serialized, so bit for bit), the polled counters never go
 * down, and at the end the model counts every token. Run under TSan by
 * `make tsan-check`, where it must report nothing. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "flashmoe.h"
#include "testutil.h"

#define N_THREADS 4   /* thread N_THREADS - 1 steps two contexts in a batch */
#define N_PROMPT 6
#define N_GEN 10

static char path[512];
static struct fm_model *model;
static int n_vocab;
static atomic_int running;

static int32_t argmax(const float *l)
{
	int32_t b = 0;
	for (int i = 1; i < n_vocab; i++)
		b = l[i] > l[b] ? i : b;
	return b;
}

/* Sequence s: a prompt, then N_GEN greedy tokens; the last logits to out. */
struct seq {
	struct fm_ctx *c;
	int32_t next;
	float *logits;
};

static int seq_start(struct seq *q, int s)
{
	struct fm_error err = { 0 };
	q->c = fm_ctx_new(model, 64, &err);
	q->logits = calloc((size_t)n_vocab, sizeof(float));
	if (!q->c || !q->logits) {
		CHECK(0, "ctx %d: %s", s, err.msg);
		return -1;
	}
	int32_t p[N_PROMPT];
	for (int i = 0; i < N_PROMPT; i++)
		p[i] = (int32_t)((s * 31 + i * 7 + 1) % 300);
	int rc = fm_eval(q->c, p, N_PROMPT, q->logits, false, &err);
	CHECK(rc == 0, "prompt %d: %s", s, err.msg);
	q->next = argmax(q->logits);
	return rc;
}

static void run_alone(int s, float *out)
{
	struct seq q;
	if (seq_start(&q, s) == 0)
		for (int g = 0; g < N_GEN; g++) {
			struct fm_error err = { 0 };
			CHECK(fm_eval(q.c, &q.next, 1, q.logits, false, &err) == 0, "eval: %s", err.msg);
			q.next = argmax(q.logits);
		}
	memcpy(out, q.logits, (size_t)n_vocab * sizeof(float));
	fm_ctx_free(q.c);
	free(q.logits);
}

struct job {
	int t;
	float *out[2];
};

static void *worker(void *arg)
{
	struct job *j = arg;
	struct fm_error err = { 0 };
	if (j->t < N_THREADS - 1) {
		run_alone(j->t, j->out[0]);
	} else { /* two sequences stepped together */
		struct seq q[2];
		if (seq_start(&q[0], j->t) == 0 && seq_start(&q[1], j->t + 1) == 0) {
			for (int g = 0; g < N_GEN; g++) {
				struct fm_batch_item it[2] = { { q[0].c, &q[0].next, 1, q[0].logits, 0 },
							       { q[1].c, &q[1].next, 1, q[1].logits, 0 } };
				CHECK(fm_eval_batch(it, 2, &err) == 0, "batch: %s", err.msg);
				q[0].next = argmax(q[0].logits);
				q[1].next = argmax(q[1].logits);
			}
			struct fm_stats cs;
			fm_ctx_get_stats(q[1].c, &cs);
			CHECK(cs.n_gen_tokens == N_GEN && cs.n_prompt_tokens == N_PROMPT,
			      "ctx counted %llu + %llu tokens", (unsigned long long)cs.n_prompt_tokens,
			      (unsigned long long)cs.n_gen_tokens);
		}
		for (int i = 0; i < 2; i++) {
			memcpy(j->out[i], q[i].logits, (size_t)n_vocab * sizeof(float));
			fm_ctx_free(q[i].c);
			free(q[i].logits);
		}
	}
	atomic_fetch_sub(&running, 1);
	return NULL;
}

/* Polls the statistics while the workers run; the counters only grow. */
static void *poller(void *arg)
{
	(void)arg;
	uint64_t last = 0, polls = 0;
	while (atomic_load(&running) > 0) {
		struct fm_stats st;
		fm_get_stats(model, &st);
		uint64_t n = st.n_prompt_tokens + st.n_gen_tokens;
		CHECK(n >= last, "the token count went down: %llu after %llu", (unsigned long long)n,
		      (unsigned long long)last);
		last = n;
		polls++;
		(void)st.io_mode;
		sched_yield();
	}
	return (void *)(uintptr_t)polls;
}

static void run(const char *name, bool stream)
{
	struct fm_model_params mp;
	fm_model_params_default(&mp);
	mp.n_threads = 2;
	mp.stream = stream;
	mp.prefetch = true;
	mp.isa = "ref"; /* a batch's rows bit-identical to alone (test_batch.c) */
	struct fm_error err = { 0 };
	model = fm_model_open(path, &mp, &err);
	if (!model) {
		CHECK(0, "open: %s", err.msg);
		return;
	}
	n_vocab = fm_model_get_info(model)->n_vocab;
	int n_seq = N_THREADS + 1;
	float *ref = calloc((size_t)n_seq * n_vocab, sizeof(float));
	float *got = calloc((size_t)n_seq * n_vocab, sizeof(float));
	for (int s = 0; s < n_seq; s++)
		run_alone(s, ref + (size_t)s * n_vocab);
	fm_reset_stats(model);
	pthread_t th[N_THREADS], pt;
	struct job jobs[N_THREADS];
	atomic_store(&running, N_THREADS);
	for (int t = 0; t < N_THREADS; t++) {
		jobs[t] = (struct job){ t, { got + (size_t)t * n_vocab, got + (size_t)(t + 1) * n_vocab } };
		pthread_create(&th[t], NULL, worker, &jobs[t]);
	}
	pthread_create(&pt, NULL, poller, NULL);
	for (int t = 0; t < N_THREADS; t++)
		pthread_join(th[t], NULL);
	void *polls;
	pthread_join(pt, &polls);
	CHECK(memcmp(ref, got, (size_t)n_seq * n_vocab * sizeof(float)) == 0,
	      "%s: logits from threads differ from each sequence alone", name);
	struct fm_stats st;
	fm_get_stats(model, &st);
	CHECK(st.n_prompt_tokens == (uint64_t)n_seq * N_PROMPT && st.n_gen_tokens == (uint64_t)n_seq * N_GEN,
	      "%s: counted %llu + %llu tokens", name, (unsigned long long)st.n_prompt_tokens,
	      (unsigned long long)st.n_gen_tokens);
	printf("  %s: %d threads, %d sequences, %llu polls of the statistics, io %s, %llu expert "
	       "bytes read\n", name, N_THREADS, n_seq, (unsigned long long)(uintptr_t)polls,
	       st.io_mode, (unsigned long long)st.bytes_read);
	free(ref), free(got);
	fm_model_close(model);
}

static int gen(const char *arch)
{
	struct fm_tiny_params p;
	fm_tiny_params_default(&p);
	p.arch = arch;
	p.n_expert = 16;
	p.n_expert_used = 2;
	if (strcmp(arch, "qwen3moe"))
		p.n_layer = 4;
	snprintf(path, sizeof(path), "%s/threads-%s.gguf", t_tmpdir(), arch);
	struct fm_error err = { 0 };
	int rc = fm_gen_tiny(path, &p, &err);
	CHECK(rc == 0, "gen_tiny: %s", err.msg);
	return rc;
}

int main(void)
{
	if (!gen("qwen3moe")) {
		run("qwen3moe resident", false);
		run("qwen3moe streamed", true);
	}
	if (!gen("qwen35moe"))
		run("qwen35moe streamed", true);
	return t_done("test_threads");
}
