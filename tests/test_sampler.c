/* test_sampler.c: the sampler's contracts: greedy is argmax, top-k 1 is
 * argmax at any temperature, a seed reproduces a sequence, frequencies follow
 * softmax(logits / T), top-p and min-p drop the tail, the repeat penalty
 * lowers recent tokens. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "flashmoe.h"
#include "testutil.h"

#define NV 6

static int32_t draw(struct fm_sampler *s, const float *logits)
{
	float tmp[NV];
	memcpy(tmp, logits, sizeof(tmp));
	return fm_sampler_sample(s, tmp);
}

static struct fm_sampler *make(float temp, int top_k, float top_p, float min_p, uint64_t seed)
{
	struct fm_sampler_params p;
	fm_sampler_params_default(&p);
	p.temp = temp;
	p.top_k = top_k;
	p.top_p = top_p;
	p.min_p = min_p;
	p.seed = seed;
	p.repeat_penalty = 1.0f;
	return fm_sampler_new(&p, NV);
}

int main(void)
{
	const float logits[NV] = { 0.5f, 2.0f, -1.0f, 1.0f, 0.0f, 1.9f };
	struct fm_sampler *s = make(0.0f, 0, 1.0f, 0.0f, 1);
	CHECK(draw(s, logits) == 1, "greedy is not argmax");
	fm_sampler_free(s);
	s = make(5.0f, 1, 1.0f, 0.0f, 1);
	for (int i = 0; i < 50; i++)
		CHECK(draw(s, logits) == 1, "top-k 1 is not argmax");
	fm_sampler_free(s);

	/* same seed, same sequence; another seed, another sequence */
	struct fm_sampler *a = make(1.0f, 0, 1.0f, 0.0f, 42), *b = make(1.0f, 0, 1.0f, 0.0f, 42);
	struct fm_sampler *c = make(1.0f, 0, 1.0f, 0.0f, 43);
	int same = 1, diff = 0;
	for (int i = 0; i < 64; i++) {
		int32_t x = draw(a, logits), y = draw(b, logits), z = draw(c, logits);
		same &= x == y;
		diff |= x != z;
	}
	CHECK(same, "same seed gave different tokens");
	CHECK(diff, "different seeds gave identical 64-token sequences");
	fm_sampler_free(a);
	fm_sampler_free(b);
	fm_sampler_free(c);

	/* frequencies at T = 1 follow the softmax within 4 standard errors */
	s = make(1.0f, 0, 1.0f, 0.0f, 7);
	int counts[NV] = { 0 }, n = 20000;
	for (int i = 0; i < n; i++)
		counts[draw(s, logits)]++;
	double z = 0;
	for (int i = 0; i < NV; i++)
		z += exp(logits[i]);
	for (int i = 0; i < NV; i++) {
		double p = exp(logits[i]) / z, se = sqrt(p * (1 - p) / n);
		CHECK(fabs(counts[i] / (double)n - p) < 4 * se + 1e-9, "token %d: freq %.4f vs p %.4f", i,
		      counts[i] / (double)n, p);
	}
	fm_sampler_free(s);

	/* top-p 0.5 keeps only tokens 1 and 5 (p = .36 and .33) */
	s = make(1.0f, 0, 0.5f, 0.0f, 9);
	for (int i = 0; i < 500; i++) {
		int32_t t = draw(s, logits);
		CHECK(t == 1 || t == 5, "top-p kept token %d", t);
	}
	fm_sampler_free(s);
	/* min-p 0.5 keeps tokens within half the best probability: 1, 5, 3 (e^-1 = .37 < .5: no) */
	s = make(1.0f, 0, 1.0f, 0.5f, 9);
	for (int i = 0; i < 500; i++) {
		int32_t t = draw(s, logits);
		CHECK(t == 1 || t == 5, "min-p kept token %d", t);
	}
	fm_sampler_free(s);

	/* the repeat penalty turns greedy away from the token just chosen */
	struct fm_sampler_params p;
	fm_sampler_params_default(&p);
	p.temp = 0.0f;
	p.repeat_penalty = 2.0f;
	s = fm_sampler_new(&p, NV);
	CHECK(draw(s, logits) == 1, "first greedy pick");
	CHECK(draw(s, logits) == 5, "penalty did not move greedy off token 1");
	fm_sampler_free(s);
	return t_done("test_sampler");
}
