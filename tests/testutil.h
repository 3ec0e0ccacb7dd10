/* testutil.h: tiny helpers shared by the test programs. Each test is a program
 * that exits 0 (pass), 1 (fail) or 77 (skip), like liburing's tests. */
#ifndef FM_TESTUTIL_H
#define FM_TESTUTIL_H

#include <stdint.h>
#include <stdio.h>

extern int t_failures;

#define CHECK(cond, ...)                                                        \
	do {                                                                    \
		if (!(cond)) {                                                  \
			fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__,  \
				__LINE__, #cond);                               \
			fprintf(stderr, __VA_ARGS__);                           \
			fputc('\n', stderr);                                    \
			t_failures++;                                           \
		}                                                               \
	} while (0)

/* Deterministic random numbers (splitmix64 / xorshift). */
struct t_rng { uint64_t s; };
uint64_t t_rand_u64(struct t_rng *r);
float t_rand_uniform(struct t_rng *r);           /* [0, 1) */
float t_rand_normal(struct t_rng *r);            /* N(0, 1) */

/* Make a temporary directory for this test; returns its path (static). */
const char *t_tmpdir(void);
/* Exit with 0 or 1 according to t_failures, printing a summary line. */
int t_done(const char *name);

#endif
