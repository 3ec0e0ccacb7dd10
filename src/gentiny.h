/* gentiny.h: random-weight models of the real architectures, for tests and
 * benchmarks (fm_gen_tiny in the public API). */
#ifndef FM_GENTINY_H
#define FM_GENTINY_H

#include <stdbool.h>
#include <stdint.h>

struct tiny_vocab {
	char **tokens;      /* [n_tokens] GPT-2 byte-level strings, NUL-terminated */
	int32_t *types;     /* [n_tokens] 1 normal, 3 control */
	char **merges;      /* [n_merges] "left right" */
	int n_tokens, n_merges;
	int32_t eos_id, bos_id;
};

/* A vocabulary of exactly n_vocab tokens (>= 259); NULL on failure. */
struct tiny_vocab *tiny_vocab_new(int n_vocab, uint64_t seed);
void tiny_vocab_free(struct tiny_vocab *v);

#endif
