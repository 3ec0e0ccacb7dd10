/* gdn.h: the core of the Gated DeltaNet token mixer of Qwen3-Next and
 * Qwen3.5 (architectures.md §6.3, §7): the causal depthwise convolution with
 * its rolling state, and the gated delta rule, token by token (decode) and
 * in chunks (prompts, §7.3). Plain C over a range of channels or value
 * heads, so the caller splits the work over its threads; no allocation, no
 * threads, no I/O (STYLE 15).
 *
 * One layer: nk key heads of dk, nv value heads of dv (nv a multiple of
 * nk), conv channels C = 2*nk*dk + nv*dv in the order [q | k | v], conv
 * kernel conv_k (4). */
#ifndef FM_GDN_H
#define FM_GDN_H

#include <stdbool.h>
#include <stddef.h>

struct gdn_shape {
	int nk, nv, dk, dv;
	int conv_k;
	bool tiled; /* value head j reads key head j % nk (qwen35 GGUF);
		     * else j / (nv / nk) (qwen3next GGUF, Hugging Face) */
};

/* Channels of the conv input/output: 2*nk*dk + nv*dv. */
int gdn_conv_channels(const struct gdn_shape *s);
/* The key head value head j reads. */
int gdn_key_head(const struct gdn_shape *s, int j);

/* Causal depthwise conv + SiLU of T tokens, channels [c0, c1):
 *   y[t][c] = silu(sum_{j<K} w[c][j] * X[t+j][c])
 * where X is the K-1 rows of state (oldest first) followed by the T rows of
 * x; afterwards state holds the last K-1 rows of X (also when T < K-1).
 * x: [T][x_stride], y: [T][y_stride] (y may not alias x), state: [K-1][C],
 * w: [C][K] (ggml ne {K, C}; tap K-1 multiplies the newest input). */
void gdn_conv(const struct gdn_shape *s, const float *x, size_t x_stride, int T,
	      const float *w, float *state, float *y, size_t y_stride, int c0, int c1);

/* Floats of scratch one gdn_rule call needs for chunks of `chunk` tokens
 * (0 for chunk <= 1; 42k floats for chunk 32 and dk = dv = 128). */
size_t gdn_scratch_floats(const struct gdn_shape *s, int chunk);

/* The chunk length for prompts. bench/bench_gdn.c, one thread, x86-64 base
 * ISA, 32 heads of 128 x 128, T = 512: token by token 4.2 us/token/head,
 * chunks of 16/32/64 4.6/4.4/4.9 us; at T = 1 a chunk costs 6x a step.
 * On a CPU both forms do about the same arithmetic (gdn.c), so decode and
 * short prompts should run token by token (chunk 1). */
#define GDN_CHUNK 32

/* The gated delta rule for value heads [j0, j1) over T tokens:
 *   S_j <- exp(g_j) S_j;  u = S_j k;  S_j <- S_j + beta_j k (v_j - u)^T;  o_j = S_j^T q
 * q, k: [T][qk_stride], key head i at i*dk, already L2-normalised (q also
 * scaled by 1/sqrt(dk)); v: [T][v_stride], value head j at j*dv; g (log
 * decay, < 0) and beta: [T][g_stride], head j at j; S: [nv][dv][dk] float
 * state (row v of head j is S + (j*dv + v)*dk), updated in place;
 * o: [T][o_stride], value head j at j*dv.
 * chunk <= 1: token by token. chunk > 1: the chunked form (§7.3) in chunks
 * of `chunk` tokens (the last may be shorter); same result to rounding
 * (1e-5 relative, tests/test_gdn.c). Decay factors below e^-69 count as 0.
 * scratch: gdn_scratch_floats(s, chunk) floats, private to the caller. */
void gdn_rule(const struct gdn_shape *s, const float *q, const float *k, size_t qk_stride,
	      const float *v, size_t v_stride, const float *g, const float *beta,
	      size_t g_stride, int T, float *S, float *o, size_t o_stride, int j0, int j1,
	      int chunk, float *scratch);

/* x / sqrt(sum x^2 + eps) over each of n_head heads of dim d, times scale. */
void gdn_l2norm_heads(float *x, int n_head, int d, float eps, float scale);

/* y = w * x / sqrt(mean(x^2) + eps) * silu(z) over each of n_head heads of
 * dim d (w: [d], shared by the heads); y may alias x. */
void gdn_norm_gated(float *y, const float *x, const float *z, const float *w, int n_head,
		    int d, float eps);

#endif
