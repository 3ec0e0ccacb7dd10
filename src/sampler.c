/* sampler.c: greedy, temperature, top-k, top-p, min-p, repetition penalty,
 * with a seeded generator (the same seed gives the same tokens). Order, as in
 * llama.cpp's default chain: penalties -> top-k -> temperature -> softmax ->
 * top-p -> min-p -> draw. */
#include <math.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>

#include "flashmoe.h"

struct fm_sampler {
	struct fm_sampler_params p;
	int n_vocab;
	uint64_t rng;
	int32_t *recent;    /* ring of the last repeat_last_n tokens */
	int n_recent, recent_at;
	int *idx;           /* [n_vocab] candidate ids */
	float *prob;        /* [n_vocab] */
};

void fm_sampler_params_default(struct fm_sampler_params *p)
{
	*p = (struct fm_sampler_params){ .temp = 0.8f, .top_k = 40, .top_p = 0.95f,
					 .min_p = 0.05f, .repeat_penalty = 1.0f,
					 .repeat_last_n = 64, .seed = 0x5eed };
}

struct fm_sampler *fm_sampler_new(const struct fm_sampler_params *p, int n_vocab)
{
	struct fm_sampler *s = calloc(1, sizeof(*s));
	if (!s || n_vocab < 1)
		goto fail;
	s->p = *p;
	s->n_vocab = n_vocab;
	s->rng = p->seed ? p->seed : 0x9e3779b97f4a7c15ull;
	if (s->p.repeat_last_n < 0)
		s->p.repeat_last_n = 0;
	s->recent = calloc((size_t)s->p.repeat_last_n + 1, sizeof(int32_t));
	s->idx = malloc((size_t)n_vocab * sizeof(int));
	s->prob = malloc((size_t)n_vocab * sizeof(float));
	if (!s->recent || !s->idx || !s->prob)
		goto fail;
	return s;
fail:
	fm_sampler_free(s);
	return NULL;
}

void fm_sampler_free(struct fm_sampler *s)
{
	if (!s)
		return;
	free(s->recent);
	free(s->idx);
	free(s->prob);
	free(s);
}

static double next_uniform(struct fm_sampler *s)
{
	uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

static void remember(struct fm_sampler *s, int32_t tok)
{
	if (s->p.repeat_last_n == 0)
		return;
	s->recent[s->recent_at] = tok;
	s->recent_at = (s->recent_at + 1) % s->p.repeat_last_n;
	if (s->n_recent < s->p.repeat_last_n)
		s->n_recent++;
}

/* Each distinct recent token is penalised once (llama.cpp's repeat penalty). */
static void apply_penalty(struct fm_sampler *s, float *logits)
{
	float pen = s->p.repeat_penalty;
	if (pen == 1.0f)
		return;
	for (int i = 0; i < s->n_recent; i++) {
		int32_t t = s->recent[i];
		bool seen = false;
		for (int j = 0; j < i && !seen; j++)
			seen = s->recent[j] == t;
		if (seen)
			continue;
		logits[t] = logits[t] > 0 ? logits[t] / pen : logits[t] * pen;
	}
}

static int argmax(const float *x, int n)
{
	int best = 0;
	for (int i = 1; i < n; i++)
		if (x[i] > x[best])
			best = i;
	return best;
}

static int cmp_desc(const void *a, const void *b, void *ctx)
{
	const float *base = ctx;
	int i = *(const int *)a, j = *(const int *)b;
	float x = base[i], y = base[j];
	return x < y ? 1 : x > y ? -1 : (i - j);
}

/* The n best candidates in s->idx, sorted by decreasing logit; returns n. */
static int candidates(struct fm_sampler *s, const float *logits)
{
	int n = s->n_vocab, k = s->p.top_k;
	for (int i = 0; i < n; i++)
		s->idx[i] = i;
	if (k > 0 && k < n) {
		/* keep a sorted prefix of k; insert the rest when they beat its last */
		qsort_r(s->idx, (size_t)k, sizeof(int), cmp_desc, (void *)logits);
		for (int i = k; i < n; i++) {
			float v = logits[i];
			if (!(v > logits[s->idx[k - 1]]))
				continue;
			int j = k - 1;
			while (j > 0 && v > logits[s->idx[j - 1]]) {
				s->idx[j] = s->idx[j - 1];
				j--;
			}
			s->idx[j] = i;
		}
		return k;
	}
	qsort_r(s->idx, (size_t)n, sizeof(int), cmp_desc, (void *)logits);
	return n;
}

/* No top-k and no top-p: draw from the whole (min-p filtered) distribution
 * in one pass, without sorting 150k logits per token. */
static int32_t sample_full(struct fm_sampler *s, const float *logits)
{
	int n = s->n_vocab;
	float mx = logits[argmax(logits, n)];
	/* min-p: p_i >= min_p * p_max  <=>  logit_i >= max + T ln(min_p) */
	float floor_logit = s->p.min_p > 0.0f ? mx + s->p.temp * logf(s->p.min_p) : -INFINITY;
	double sum = 0.0;
	for (int i = 0; i < n; i++) {
		s->prob[i] = logits[i] >= floor_logit ? expf((logits[i] - mx) / s->p.temp) : 0.0f;
		sum += s->prob[i];
	}
	double r = next_uniform(s) * sum, acc = 0.0;
	int32_t tok = argmax(logits, n);
	for (int i = 0; i < n; i++) {
		acc += s->prob[i];
		if (s->prob[i] > 0.0f && r < acc) {
			tok = i;
			break;
		}
	}
	return tok;
}

int32_t fm_sampler_sample(struct fm_sampler *s, float *logits)
{
	apply_penalty(s, logits);
	int32_t tok;
	if (s->p.temp <= 0.0f) {
		tok = argmax(logits, s->n_vocab);
		remember(s, tok);
		return tok;
	}
	if ((s->p.top_k <= 0 || s->p.top_k >= s->n_vocab) && s->p.top_p >= 1.0f) {
		tok = sample_full(s, logits);
		remember(s, tok);
		return tok;
	}
	int n = candidates(s, logits);
	float mx = logits[s->idx[0]];
	double sum = 0.0;
	for (int i = 0; i < n; i++) {
		s->prob[i] = expf((logits[s->idx[i]] - mx) / s->p.temp);
		sum += s->prob[i];
	}
	/* top-p: the smallest prefix whose mass reaches p; min-p: drop tokens
	 * below min_p times the best one */
	double cum = 0.0, kept = 0.0;
	int m = 0;
	for (; m < n; m++) {
		if (s->p.min_p > 0.0f && s->prob[m] < s->p.min_p * s->prob[0])
			break;
		cum += s->prob[m] / sum;
		kept += s->prob[m];
		if (cum >= s->p.top_p) {
			m++;
			break;
		}
	}
	if (m == 0)
		m = 1, kept = s->prob[0];
	double r = next_uniform(s) * kept, acc = 0.0;
	tok = s->idx[m - 1];
	for (int i = 0; i < m; i++) {
		acc += s->prob[i];
		if (r < acc) {
			tok = s->idx[i];
			break;
		}
	}
	remember(s, tok);
	return tok;
}
