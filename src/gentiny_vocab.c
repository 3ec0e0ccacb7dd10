/* gentiny_vocab.c: a byte-level BPE vocabulary for random-weight test models.
 *
 * 256 byte tokens in GPT-2's byte->unicode form (printable bytes map to
 * themselves, the other 68 to U+0100 + n in byte order), merges learned by
 * plain BPE training on a short English sample (so `-p "the cat"` gives
 * multi-byte tokens), then, when a large vocabulary is asked for, merges of
 * random existing token pairs (valid rules that real text rarely triggers),
 * then three control tokens: <|endoftext|>, <|im_start|>, <|im_end|>. */
#include "gentiny.h"

#include <stdlib.h>
#include <string.h>

static const char sample_text[] =
	"The quick brown fox jumps over the lazy dog. Once upon a time there was a little "
	"girl who lived in a village near the forest. Whenever she went out, the little girl "
	"wore a red riding cloak, so everyone in the village called her Little Red Riding "
	"Hood. One morning, she asked her mother if she could go to visit her grandmother as "
	"it had been a while since they had seen each other. That is a good idea, her mother "
	"said. So they packed a nice basket for her to take to her grandmother. In the "
	"beginning the universe was created. This has made a lot of people very angry and "
	"been widely regarded as a bad move. It was the best of times, it was the worst of "
	"times, it was the age of wisdom, it was the age of foolishness. The model reads the "
	"experts from the disk when they are needed, and keeps the dense weights in memory. "
	"def main():\n    print(\"hello, world\")\n    return 0\n";

/* Append the UTF-8 of the GPT-2 character for byte b. */
static size_t byte_char(uint8_t b, char *out)
{
	unsigned cp;
	if ((b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae) {
		cp = b;
	} else {
		unsigned n = 0;
		for (unsigned x = 0; x < b; x++)
			if (!((x >= 0x21 && x <= 0x7e) || (x >= 0xa1 && x <= 0xac) || x >= 0xae))
				n++;
		cp = 256 + n;
	}
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	out[0] = (char)(0xc0 | (cp >> 6));
	out[1] = (char)(0x80 | (cp & 0x3f));
	return 2;
}

/* A string set (open addressing) for the uniqueness of token strings. */
struct strset {
	char **slot;
	size_t cap;
};

static uint64_t str_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ull;
	return h;
}

/* true if s was added, false if present (or on allocation failure). */
static bool strset_add(struct strset *set, char *s)
{
	size_t i = str_hash(s) & (set->cap - 1);
	while (set->slot[i]) {
		if (!strcmp(set->slot[i], s))
			return false;
		i = (i + 1) & (set->cap - 1);
	}
	set->slot[i] = s;
	return true;
}

struct vocab_build {
	struct tiny_vocab *v;
	struct strset set;
	int *word_tok;   /* the sample's words as token ids, -1 separated */
	int n_word_tok;
};

static int add_token(struct vocab_build *b, const char *a, const char *c)
{
	struct tiny_vocab *v = b->v;
	size_t la = strlen(a), lc = c ? strlen(c) : 0;
	char *s = malloc(la + lc + 1);
	if (!s)
		return -1;
	memcpy(s, a, la);
	if (c)
		memcpy(s + la, c, lc);
	s[la + lc] = 0;
	if (!strset_add(&b->set, s)) {
		free(s);
		return -2;
	}
	v->tokens[v->n_tokens] = s;
	v->types[v->n_tokens] = 1;
	if (c) {
		char *m = malloc(la + lc + 2);
		if (!m)
			return -1;
		memcpy(m, a, la);
		m[la] = ' ';
		memcpy(m + la + 1, c, lc + 1);
		v->merges[v->n_merges++] = m;
	}
	return v->n_tokens++;
}

static void sample_words(struct vocab_build *b)
{
	size_t n = sizeof(sample_text) - 1;
	b->n_word_tok = 0;
	for (size_t i = 0; i < n; i++) {
		if (sample_text[i] == ' ' && i > 0)
			b->word_tok[b->n_word_tok++] = -1; /* words start with their space */
		b->word_tok[b->n_word_tok++] = (uint8_t)sample_text[i];
	}
}

static int cmp_u64(const void *x, const void *y)
{
	uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
	return a < b ? -1 : a > b;
}

/* One BPE training step: merge the most frequent adjacent pair (ties: the
 * smallest ids); false when no pair occurs twice. keys: scratch of
 * n_word_tok entries. */
static bool train_step(struct vocab_build *b, uint64_t *keys)
{
	int n = 0;
	for (int i = 0; i + 1 < b->n_word_tok; i++)
		if (b->word_tok[i] >= 0 && b->word_tok[i + 1] >= 0)
			keys[n++] = (uint64_t)b->word_tok[i] << 32 | (uint32_t)b->word_tok[i + 1];
	qsort(keys, (size_t)n, sizeof(*keys), cmp_u64);
	uint64_t best = 0;
	int best_n = 1;
	for (int i = 0, j; i < n; i = j) {
		for (j = i; j < n && keys[j] == keys[i]; j++)
			;
		if (j - i > best_n)
			best_n = j - i, best = keys[i];
	}
	if (best_n < 2)
		return false;
	int best_a = (int)(best >> 32), best_c = (int)(uint32_t)best;
	int id = add_token(b, b->v->tokens[best_a], b->v->tokens[best_c]);
	if (id < 0)
		return false;
	int w = 0;
	for (int i = 0; i < b->n_word_tok; i++) {
		if (i + 1 < b->n_word_tok && b->word_tok[i] == best_a && b->word_tok[i + 1] == best_c) {
			b->word_tok[w++] = id;
			i++;
		} else {
			b->word_tok[w++] = b->word_tok[i];
		}
	}
	b->n_word_tok = w;
	return true;
}

static void random_merges(struct vocab_build *b, int n_target, uint64_t seed)
{
	struct tiny_vocab *v = b->v;
	int tries = 0;
	while (v->n_tokens < n_target && tries < n_target * 50) {
		tries++;
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		int a = (int)((seed >> 33) % (uint64_t)v->n_tokens);
		int c = (int)((seed >> 13) % (uint64_t)v->n_tokens);
		if (strlen(v->tokens[a]) + strlen(v->tokens[c]) > 24)
			continue;
		add_token(b, v->tokens[a], v->tokens[c]);
	}
}

void tiny_vocab_free(struct tiny_vocab *v)
{
	if (!v)
		return;
	for (int i = 0; i < v->n_tokens; i++)
		free(v->tokens[i]);
	for (int i = 0; i < v->n_merges; i++)
		free(v->merges[i]);
	free(v->tokens);
	free(v->types);
	free(v->merges);
	free(v);
}

struct tiny_vocab *tiny_vocab_new(int n_vocab, uint64_t seed)
{
	if (n_vocab < 256 + 3)
		return NULL;
	struct tiny_vocab *v = calloc(1, sizeof(*v));
	struct vocab_build b = { .v = v };
	uint64_t *keys = NULL;
	if (!v)
		return NULL;
	v->tokens = calloc((size_t)n_vocab, sizeof(char *));
	v->types = calloc((size_t)n_vocab, sizeof(int32_t));
	v->merges = calloc((size_t)n_vocab, sizeof(char *));
	b.set.cap = 1;
	while (b.set.cap < (size_t)n_vocab * 2)
		b.set.cap <<= 1;
	b.set.slot = calloc(b.set.cap, sizeof(char *));
	b.word_tok = malloc(sizeof(sample_text) * 2 * sizeof(int));
	keys = malloc(sizeof(sample_text) * 2 * sizeof(uint64_t));
	if (!keys || !v->tokens || !v->types || !v->merges || !b.set.slot || !b.word_tok)
		goto fail;
	for (int i = 0; i < 256; i++) {
		char s[3] = { 0 };
		byte_char((uint8_t)i, s);
		if (add_token(&b, s, NULL) != i)
			goto fail;
	}
	int n_normal = n_vocab - 3;
	sample_words(&b);
	while (v->n_tokens < n_normal && train_step(&b, keys))
		;
	random_merges(&b, n_normal, seed ^ 0x7ab1e5);
	if (v->n_tokens < n_normal)
		goto fail;
	static const char *const special[3] = { "<|endoftext|>", "<|im_start|>", "<|im_end|>" };
	for (int i = 0; i < 3; i++) {
		int id = add_token(&b, special[i], NULL);
		if (id < 0)
			goto fail;
		v->types[id] = 3;
	}
	v->eos_id = n_normal + 2;
	v->bos_id = n_normal;
	free(b.set.slot);
	free(b.word_tok);
	free(keys);
	return v;
fail:
	free(b.set.slot);
	free(b.word_tok);
	free(keys);
	tiny_vocab_free(v);
	return NULL;
}
