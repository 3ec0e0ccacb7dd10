/* tq.h: TurboQuant vectors (Zandieh, Daliri, Hadian, Mirrokni, "TurboQuant:
 * Online Vector Quantization with Near-optimal Distortion Rate", arXiv
 * 2504.19874): one key or value vector of d = 64, 128 or 256 floats stored in
 * a few bits per value, with no calibration, and scored without decoding.
 *
 *   TurboQuant_mse (paper Alg. 1): y = P x / |x| (P a fixed random rotation,
 *     so each y_i follows the density of one coordinate of a uniform unit
 *     vector, f_d(x) ~ (1 - x^2)^((d-3)/2)), code_i = the nearest centroid of
 *     the Lloyd-Max codebook for f_d at b bits; x^ = |x| P^T c[code].
 *   TurboQuant_prod (paper Alg. 2, for keys): (b-1)-bit mse codes, then the
 *     residual r = y - c[code], its norm g = |r| and a 1-bit QJL sketch
 *     sign(S r), S a fixed d x d random matrix (the paper's is i.i.d.
 *     N(0, 1); ours has orthogonal rows of equal length, unbiased the same
 *     way with 2.75x less variance, tq.c qjl_build); the estimator
 *     <q, x~> = |x| (<P q, c[code]> + sqrt(pi/2)/d g <S P q, sign(S r)>) is
 *     unbiased for <q, x>.
 *
 * P = H D / sqrt(d): D random signs (fixed seed per d), H the Walsh-Hadamard
 * matrix, applied with the fast transform in O(d log d) instead of the
 * paper's dense random rotation. Codebooks: computed once by Lloyd iterations
 * on f_d (tq.c explains how; docs/TURBOQUANT.md has the numbers).
 *
 * Two channel groups: rotated coordinates [0, n_hi) get bits_hi bits, [n_hi, d)
 * get bits_lo (e.g. 3.5 bits = some at 4, the rest at 3). After the rotation
 * every coordinate has the same distribution, so which ones get the extra bit
 * does not matter; n_hi is a multiple of TQ_BLOCK (16) so each group starts
 * on a byte and SIMD reads 16 codes at a time.
 *
 * Vector layout (bytes, no padding; tq_bytes_per_vector gives the total):
 *   mse:  [scale f16][codes hi: n_hi*b_hi/8][codes lo: (d-n_hi)*b_lo/8]
 *   prod: [norm f16][g f16][codes hi: n_hi*(b_hi-1)/8][codes lo ...][signs d/8]
 * codes: a little-endian bit stream, code i in bits [i*b, i*b+b) (byte
 * (i*b)/8, bit (i*b)%8 upward, continuing into the next byte); so 8 codes are
 * exactly b bytes. signs: bit i of the stream = 1 where (S r)_i >= 0.
 * mse stores, instead of |x|, the least-squares scale s = |x| <y, c> / <c, c>
 * of its centroid vector c (the x^ = s P^T c nearest x; zero bytes more):
 * measured on the built-in model's keys it cuts the attention-output error of
 * a 3.5-bit key cache by 29% (docs/TURBOQUANT.md, "Key quality"); on random
 * vectors it halves the variance of <q, x^> and leaves its mean.
 * Norms are IEEE half: the stored norm rounds to 2^-11 relative, which adds
 * ~1e-7 to a distortion of >= 0.009 (measured, docs/TURBOQUANT.md), and saves
 * 2 bytes per vector; norms above 65504 are stored as 65504; a vector whose
 * norm is 0, NaN or infinite is stored as the zero vector.
 *
 * Thread-safety: the tables (codebooks, signs, S) are built once, inside
 * pthread_once, by the first tq_format_init; everything else is a pure
 * function of its arguments. Nothing allocates.
 */
#ifndef FM_KERNELS_TQ_H
#define FM_KERNELS_TQ_H

#include <stddef.h>
#include <stdint.h>

#include "kernels.h"

#define TQ_MAX_DIM 256
#define TQ_MAX_CODE_BITS 4 /* codebook bits; prod adds one QJL bit */
#define TQ_BLOCK 16        /* d and n_hi are multiples of this */

enum tq_variant { TQ_MSE, TQ_PROD };

/* The Lloyd-Max quantizer of one coordinate of a uniform unit vector in d
 * dimensions at `bits` bits (0 bits: the single centroid 0, for 1-bit prod). */
struct tq_codebook {
	int d, bits, n_levels;          /* n_levels = 2^bits */
	float centroid[16];             /* ascending; [n_levels, 16) are 0 */
	float boundary[15];             /* boundary[k] = (centroid[k] + centroid[k+1]) / 2 */
	double mse_d;                   /* d * E[(y_i - c(y_i))^2]: the paper's D_mse */
	int iterations;                 /* Lloyd iterations run */
	double last_step;               /* largest centroid move of the last one */
};

/* What a KV cache stores per vector. Fill with tq_format_init or
 * tq_format_for_rate; the pointers are borrowed from static tables (valid for
 * the life of the process). */
struct tq_format {
	int d;                          /* 64, 128 or 256 */
	enum tq_variant variant;
	int bits_hi, n_hi, bits_lo;     /* bits per value, the QJL bit included for prod */
	int code_bits_hi, code_bits_lo; /* codebook bits: bits, or bits - 1 for prod */
	size_t off_hi, off_lo, off_signs; /* byte offsets in a vector (off_signs: prod) */
	size_t bytes;                   /* bytes per vector, norms included */
	const struct tq_codebook *cb_hi, *cb_lo;
	const float *signs;             /* [d] the rotation's +-1 */
	const float *qjl;               /* [d][d] S, row-major; prod only, else NULL */
};

/* Describe d, variant and the two groups; 0, or -EINVAL (d not 64/128/256,
 * bits outside 1..4 for mse or 1..5 for prod, n_hi not a multiple of 16 in
 * [0, d]). Builds the tables on first use (thread-safe). */
int tq_format_init(struct tq_format *f, int d, enum tq_variant variant, int bits_hi, int n_hi,
		   int bits_lo);
/* The format of at most bits_per_value * d bits per vector, norms included,
 * with the most high-width channels that fit (e.g. 3.5 at d = 128, mse: 48
 * channels at 4 bits, 80 at 3, 2 bytes of norm = 56 bytes); 0 or -EINVAL. */
int tq_format_for_rate(struct tq_format *f, int d, enum tq_variant variant,
		       double bits_per_value);
/* Bytes one stored vector takes, norms included. */
size_t tq_bytes_per_vector(const struct tq_format *f);
/* Floats of a rotated query and of an accumulator: d (mse) or 2d (prod). */
size_t tq_query_floats(const struct tq_format *f);

/* x[d] -> out[tq_bytes_per_vector(f)]. O(d log d) (mse), + d^2 (prod). */
void tq_quantize(const struct tq_format *f, const float *x, uint8_t *out);
/* in -> y[d], the vector the codes stand for. */
void tq_dequantize(const struct tq_format *f, const uint8_t *in, float *y);
/* q[d] -> q_rot[tq_query_floats(f)]: P q, and for prod sqrt(pi/2)/d S P q after
 * it. Once per query; then tq_score against any number of stored vectors. */
void tq_rotate_query(const struct tq_format *f, const float *q, float *q_rot);
/* The rotation alone: y = P x and its inverse x = P^T y (in place allowed). */
void tq_rotate(const struct tq_format *f, const float *x, float *y);
void tq_unrotate(const struct tq_format *f, const float *y, float *x);

/* scores[t] = <q, x_t> estimated from the codes, t < n, vector t at
 * codes + t * stride; q_rot from tq_rotate_query. Equals
 * dot(q, tq_dequantize(x_t)) up to float rounding. */
void tq_score_ref(const struct tq_format *f, const float *q_rot, const uint8_t *codes, int n,
		  size_t stride, float *scores);
/* acc[tq_query_floats(f)] += sum over t < n of w[t] * x_t in the rotated
 * domain (acc zeroed by the caller before the first call); then
 * tq_accumulate_finish(acc) -> out[d] = sum_t w[t] * tq_dequantize(x_t). */
void tq_accumulate_ref(const struct tq_format *f, const float *w, const uint8_t *codes, int n,
		       size_t stride, float *acc);
void tq_accumulate_finish(const struct tq_format *f, const float *acc, float *out);
/* Vectors t < n (at codes + t * stride) as rotated-domain floats, each
 * tq_query_floats(f) long, into rows[t * tq_query_floats(f) ...]:
 * s_t c[code_t] (mse), and for prod also s_t g_t sign_t in [d, 2d). Then
 * dot(q_rot, row_t) is tq_score's score and sum_t w[t] row_t is what
 * tq_accumulate adds: attention decodes a chunk of rows once and runs the f32
 * attention kernels for every query head sharing it (src/kv.c). Every ISA
 * returns the same bits (one product per value). */
void tq_decode_ref(const struct tq_format *f, const uint8_t *codes, int n, size_t stride,
		   float *rows);

#if defined(__x86_64__)
void tq_score_avx2(const struct tq_format *f, const float *q_rot, const uint8_t *codes, int n,
		   size_t stride, float *scores);
void tq_accumulate_avx2(const struct tq_format *f, const float *w, const uint8_t *codes, int n,
			size_t stride, float *acc);
void tq_score_avx512(const struct tq_format *f, const float *q_rot, const uint8_t *codes,
		     int n, size_t stride, float *scores);
void tq_accumulate_avx512(const struct tq_format *f, const float *w, const uint8_t *codes,
			  int n, size_t stride, float *acc);
void tq_decode_avx2(const struct tq_format *f, const uint8_t *codes, int n, size_t stride,
		    float *rows);
void tq_decode_avx512(const struct tq_format *f, const uint8_t *codes, int n, size_t stride,
		      float *rows);
#endif

/* tq_score / tq_accumulate of the best kernel table (kernels_best()). A
 * caller holding a table (--isa) calls k->tq_score / k->tq_accumulate. */
void tq_score(const struct tq_format *f, const float *q_rot, const uint8_t *codes, int n,
	      size_t stride, float *scores);
void tq_accumulate(const struct tq_format *f, const float *w, const uint8_t *codes, int n,
		   size_t stride, float *acc);

/* The codebook for d (64/128/256) at bits 0..4, or NULL. Builds the tables. */
const struct tq_codebook *tq_codebook_get(int d, int bits);

/* Set k->tq_score / k->tq_accumulate / k->tq_decode to isa's variants. */
void kernels_register_tq(struct kernels *k, enum kernel_isa isa);

#endif
