#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int t_failures;

uint64_t t_rand_u64(struct t_rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

float t_rand_uniform(struct t_rng *r)
{
	return (float)(t_rand_u64(r) >> 40) * (1.0f / 16777216.0f);
}

float t_rand_normal(struct t_rng *r)
{
	float u1 = t_rand_uniform(r), u2 = t_rand_uniform(r);
	if (u1 < 1e-7f)
		u1 = 1e-7f;
	return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
}

const char *t_tmpdir(void)
{
	static char dir[256];
	if (!dir[0]) {
		const char *base = getenv("TMPDIR");
		snprintf(dir, sizeof(dir), "%s/fmtest.XXXXXX", base ? base : "/tmp");
		if (!mkdtemp(dir)) {
			perror("mkdtemp");
			exit(1);
		}
	}
	return dir;
}

int t_done(const char *name)
{
	if (t_failures) {
		fprintf(stderr, "%s: FAIL (%d checks failed)\n", name, t_failures);
		return 1;
	}
	printf("%s: ok\n", name);
	return 0;
}
