/* kquants.c: scalar references of the K-quants (Q4_K, Q5_K, Q6_K, Q3_K, Q2_K) and of
 * their activation format Q8_K; registration of every ISA's K-quant kernels.
 *
 * Owns: dequantize_row_*_ref (bit-exact with llama.cpp's ggml-quants.c, so
 * GGUF files made by llama.cpp load), quantize_row_*_ref (our own quantizers:
 * a per-sub-block search for scale and min, then the sub-block scales
 * quantized against the super-block factors), vec_dot_*_ref (integer dot
 * products against Q8_K, one float per super-block) and
 * kernels_register_kquants(). The SIMD variants live in kquants_avx2.c and
 * kquants_avx512.c; the block structs in kquants.h.
 *
 * Spec: llama.cpp ggml-common.h (block layouts) and ggml-quants.c
 * (dequantize_row_q{2,3,4,5,6}_K, quantize_row_q8_K_ref); the layouts are
 * restated beside each dequantizer below.
 */
#include "kquants.h"

#include <math.h>
#include <string.h>

#include "../util.h"

/* ---- rounding and small helpers ---------------------------------------- */

/* Clamp v to [lo, hi] (NaN -> lo), then round to nearest, ties to even, as
 * cvtps2dq does: adding 1.5*2^23 leaves the rounded integer in the low
 * mantissa bits (valid for |v| < 2^22, which the clamp guarantees). */
static inline float kq_maxf(float a, float b) { return a > b ? a : b; } /* NaN a -> b */
static inline float kq_minf(float a, float b) { return a < b ? a : b; }

static inline int kq_round_clamp(float v, float lo, float hi)
{
	v = kq_minf(kq_maxf(v, lo), hi);
	float t = v + 12582912.0f;
	int32_t bits;
	memcpy(&bits, &t, 4);
	return (bits & 0x007fffff) - 0x00400000;
}

/* fp16 of a factor, saturated at half's largest finite magnitude so that
 * huge inputs clip instead of turning into inf. */
static inline uint16_t kq_fp16_sat(float v)
{
	return fm_fp32_to_fp16(kq_maxf(kq_minf(v, 65504.0f), -65504.0f));
}

/* Spec form of the Q4_K/Q5_K scale unpacking, sub-block j in 0..7. */
static inline void k4_scale_min(int j, const uint8_t *s, uint8_t *sc, uint8_t *m)
{
	if (j < 4) {
		*sc = s[j] & 63;
		*m = s[j + 4] & 63;
	} else {
		*sc = (uint8_t)((s[j + 4] & 0xf) | ((s[j - 4] >> 6) << 4));
		*m = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
	}
}

/* Inverse of k4_scale_min: pack 8 six-bit scales and mins into 12 bytes. */
static void k4_pack_scales(const uint8_t sc[8], const uint8_t m[8], uint8_t s[K_SCALE_BYTES])
{
	for (int j = 0; j < 4; j++) {
		s[j] = (uint8_t)((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
		s[j + 4] = (uint8_t)((m[j] & 63) | ((m[j + 4] >> 4) << 6));
		s[j + 8] = (uint8_t)((sc[j + 4] & 0xf) | ((m[j + 4] & 0xf) << 4));
	}
}

/* Spec form of the Q3_K scale unpacking, sub-block j in 0..15: 0..63, the
 * value is this - 32 (kq_unpack_scales_q3 is the word-wise form). */
static inline int q3_scale(int j, const uint8_t *s)
{
	int lo = (s[j % 8] >> (4 * (j / 8))) & 0xf;
	int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
	return lo | (hi << 4);
}

/* Inverse of q3_scale: pack 16 six-bit scales (0..63) into 12 bytes. */
static void q3_pack_scales(const uint8_t sc[16], uint8_t s[K_SCALE_BYTES])
{
	memset(s, 0, K_SCALE_BYTES);
	for (int j = 0; j < 16; j++) {
		s[j % 8] |= (uint8_t)((sc[j] & 0xf) << (4 * (j / 8)));
		s[8 + j % 4] |= (uint8_t)((sc[j] >> 4) << (2 * (j / 4)));
	}
}

/* ---- dequantization (bit-exact with llama.cpp) -------------------------- */

/* Q4_K: 4 chunks of 64 elements; chunk c uses qs[32c..32c+31]: low nibbles
 * are elements 64c..64c+31 (sub-block 2c), high nibbles 64c+32.. (2c+1). */
void dequantize_row_q4_K_ref(const void *x, float *y, size_t n)
{
	const struct block_q4_K *b = x;
	for (size_t i = 0; i < n / QK_K; i++, b++) {
		const float d = fm_fp16_to_fp32(b->d), dmin = fm_fp16_to_fp32(b->dmin);
		const uint8_t *q = b->qs;
		for (int c = 0; c < 4; c++, q += 32) {
			uint8_t sc, m;
			k4_scale_min(2 * c, b->scales, &sc, &m);
			const float d1 = d * sc, m1 = dmin * m;
			k4_scale_min(2 * c + 1, b->scales, &sc, &m);
			const float d2 = d * sc, m2 = dmin * m;
			for (int l = 0; l < 32; l++)
				*y++ = d1 * (q[l] & 0xf) - m1;
			for (int l = 0; l < 32; l++)
				*y++ = d2 * (q[l] >> 4) - m2;
		}
	}
}

/* Q5_K: as Q4_K, plus qh[l] bit 2c (bit 2c+1) = 16s of element 64c+l (64c+32+l). */
void dequantize_row_q5_K_ref(const void *x, float *y, size_t n)
{
	const struct block_q5_K *b = x;
	for (size_t i = 0; i < n / QK_K; i++, b++) {
		const float d = fm_fp16_to_fp32(b->d), dmin = fm_fp16_to_fp32(b->dmin);
		const uint8_t *ql = b->qs, *qh = b->qh;
		for (int c = 0; c < 4; c++, ql += 32) {
			const uint8_t u1 = (uint8_t)(1u << (2 * c)), u2 = (uint8_t)(2u << (2 * c));
			uint8_t sc, m;
			k4_scale_min(2 * c, b->scales, &sc, &m);
			const float d1 = d * sc, m1 = dmin * m;
			k4_scale_min(2 * c + 1, b->scales, &sc, &m);
			const float d2 = d * sc, m2 = dmin * m;
			for (int l = 0; l < 32; l++)
				*y++ = d1 * ((ql[l] & 0xf) + (qh[l] & u1 ? 16 : 0)) - m1;
			for (int l = 0; l < 32; l++)
				*y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
		}
	}
}

/* Q6_K: two halves of 128; half h uses ql[64h..], qh[32h..], scales[8h..].
 * For l in 0..31 (q = 4 low bits | 2 high bits << 4, value q - 32):
 *   element l      ql[l] low,     qh[l] bits 0-1, scale is+0 (is = l/16)
 *   element l+32   ql[l+32] low,  qh[l] bits 2-3, scale is+2
 *   element l+64   ql[l] high,    qh[l] bits 4-5, scale is+4
 *   element l+96   ql[l+32] high, qh[l] bits 6-7, scale is+6 */
void dequantize_row_q6_K_ref(const void *x, float *y, size_t n)
{
	const struct block_q6_K *b = x;
	for (size_t i = 0; i < n / QK_K; i++, b++) {
		const float d = fm_fp16_to_fp32(b->d);
		const uint8_t *ql = b->ql, *qh = b->qh;
		const int8_t *sc = b->scales;
		for (int h = 0; h < 2; h++, y += 128, ql += 64, qh += 32, sc += 8) {
			for (int l = 0; l < 32; l++) {
				int is = l / 16;
				int q1 = ((ql[l] & 0xf) | (((qh[l] >> 0) & 3) << 4)) - 32;
				int q2 = ((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32;
				int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
				int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
				y[l + 0] = d * sc[is + 0] * q1;
				y[l + 32] = d * sc[is + 2] * q2;
				y[l + 64] = d * sc[is + 4] * q3;
				y[l + 96] = d * sc[is + 6] * q4;
			}
		}
	}
}

/* Q2_K: two halves of 128, half h uses qs[32h..32h+31]; within it the 2-bit
 * field at shift 2k holds elements 32k..32k+31 of the half (qs[l] for the
 * first 16, qs[l+16] for the next 16). scales[s] of sub-block s (16 elements
 * in order): low nibble scale, high nibble min. */
void dequantize_row_q2_K_ref(const void *x, float *y, size_t n)
{
	const struct block_q2_K *b = x;
	for (size_t i = 0; i < n / QK_K; i++, b++) {
		const float d = fm_fp16_to_fp32(b->d), dmin = fm_fp16_to_fp32(b->dmin);
		const uint8_t *q = b->qs;
		int is = 0;
		for (int h = 0; h < 2; h++, q += 32) {
			for (int shift = 0; shift < 8; shift += 2) {
				for (int part = 0; part < 2; part++) {
					uint8_t sc = b->scales[is++];
					const float dl = d * (sc & 0xf), ml = dmin * (sc >> 4);
					for (int l = 0; l < 16; l++)
						*y++ = dl * ((q[16 * part + l] >> shift) & 3) - ml;
				}
			}
		}
	}
}

/* Q3_K: the element order of Q2_K (half h uses qs[32h..32h+31], the 2-bit
 * field at shift 2k holds elements 32k..32k+31 of the half, qs[l] the first
 * 16 and qs[l+16] the next 16) plus a third bit: element 128h+32k+l has it
 * in bit 4h+k of hmask[l] (l in 0..31). The level is q - 4 (-4..3): the 2
 * low bits, minus 4 when the hmask bit is clear. Sub-block s (16 elements
 * in order) has scale d * (q3_scale(s) - 32). */
void dequantize_row_q3_K_ref(const void *x, float *y, size_t n)
{
	const struct block_q3_K *b = x;
	for (size_t i = 0; i < n / QK_K; i++, b++) {
		const float d = fm_fp16_to_fp32(b->d);
		const uint8_t *q = b->qs;
		int is = 0;
		for (int h = 0; h < 2; h++, q += 32) {
			for (int k = 0; k < 4; k++) {
				const uint8_t m = (uint8_t)(1u << (4 * h + k));
				for (int part = 0; part < 2; part++) {
					const float dl = d * (q3_scale(is++, b->scales) - 32);
					const uint8_t *hm = b->hmask + 16 * part;
					for (int l = 0; l < 16; l++)
						*y++ = dl * (((q[16 * part + l] >> (2 * k)) & 3) -
							     (hm[l] & m ? 0 : 4));
				}
			}
		}
	}
}

void dequantize_row_q8_K_ref(const void *x, float *y, size_t n)
{
	const struct block_q8_K *b = x;
	for (size_t i = 0; i < n / QK_K; i++, b++)
		for (int j = 0; j < QK_K; j++)
			*y++ = b->d * b->qs[j];
}

/* ---- Q8_K activations ---------------------------------------------------- */

/* llama.cpp's convention: the element of largest magnitude (the first, on
 * ties) maps to -127, so d = -max/127 carries the opposite sign of it;
 * q = min(127, round(x/d)), ties to even. An all-zero block is all zeros. */
void quantize_row_q8_K_ref(const float *x, void *y, size_t n)
{
	struct block_q8_K *b = y;
	for (size_t i = 0; i < n / QK_K; i++, b++, x += QK_K) {
		float amax = 0, max = 0;
		for (int j = 0; j < QK_K; j++) {
			if (fabsf(x[j]) > amax) {
				amax = fabsf(x[j]);
				max = x[j];
			}
		}
		memset(b, 0, sizeof(*b));
		if (amax == 0)
			continue;
		const float iscale = -127.0f / max;
		for (int j = 0; j < QK_K; j++)
			b->qs[j] = (int8_t)kq_round_clamp(iscale * x[j], -128.0f, 127.0f);
		for (int g = 0; g < QK_K / 16; g++) {
			int sum = 0;
			for (int l = 0; l < 16; l++)
				sum += b->qs[16 * g + l];
			b->bsums[g] = (int16_t)sum;
		}
		b->d = 1 / iscale;
	}
}

/* ---- sub-block fitting (shared by the quantizers) ------------------------ */

/* Levels of x against (scale, offset): L = round((x - off) / scale), clamped. */
static void fit_levels(int n, int nmax, const float *x, float off, float iscale, uint8_t *L)
{
	for (int i = 0; i < n; i++)
		L[i] = (uint8_t)kq_round_clamp(iscale * (x[i] - off), 0.0f, (float)nmax);
}

static float fit_error(int n, const float *x, const float *w, const uint8_t *L,
		       float scale, float off)
{
	float err = 0;
	for (int i = 0; i < n; i++) {
		float diff = scale * L[i] + off - x[i];
		err += w[i] * diff * diff;
	}
	return err;
}

/* Weighted least squares of x ~ scale*L + off with off <= 0 (the min is
 * stored unsigned); false if L is degenerate. */
static bool fit_lsq(int n, const float *x, const float *w, const uint8_t *L,
		    float *scale, float *off)
{
	float sw = 0, sl = 0, sll = 0, sx = 0, sxl = 0;
	for (int i = 0; i < n; i++) {
		sw += w[i];
		sl += w[i] * L[i];
		sll += w[i] * L[i] * L[i];
		sx += w[i] * x[i];
		sxl += w[i] * x[i] * L[i];
	}
	float det = sw * sll - sl * sl;
	if (!(det > 0))
		return false;
	*scale = (sw * sxl - sx * sl) / det;
	*off = (sll * sx - sl * sxl) / det;
	if (*off > 0) {
		*off = 0;
		*scale = sxl / sll;
	}
	return *scale > 0;
}

struct fit_search {
	int nmax;      /* levels 0..nmax */
	int nstep;     /* trial step sizes */
	float rstart;  /* first trial: (nmax + rstart) levels over the range */
	float rdelta;  /* trial increment, in levels */
};

/* Fit x[i] ~ scale*L[i] - min (L in 0..nmax, min >= 0) minimising the
 * w-weighted squared error: trial step sizes around range/nmax, each refit by
 * least squares, then two rounds of re-levelling against the best fit.
 * Returns scale >= 0 and stores min. */
static float fit_scale_min(int n, const struct fit_search *fs, const float *x, const float *w,
			   uint8_t *L, float *min_out)
{
	float lo = x[0], hi = x[0];
	for (int i = 1; i < n; i++) {
		lo = kq_minf(lo, x[i]);
		hi = kq_maxf(hi, x[i]);
	}
	lo = kq_minf(lo, 0.0f);
	if (!(hi > lo)) {
		memset(L, 0, (size_t)n);
		*min_out = -lo;
		return 0;
	}
	float best_scale = (hi - lo) / fs->nmax, best_off = lo;
	fit_levels(n, fs->nmax, x, lo, 1 / best_scale, L);
	float best_err = fit_error(n, x, w, L, best_scale, best_off);
	uint8_t aux[32];
	for (int k = 0; k <= fs->nstep + 2; k++) {
		float scale, off;
		if (k <= fs->nstep)
			fit_levels(n, fs->nmax, x, lo,
				   (fs->nmax + fs->rstart + fs->rdelta * k) / (hi - lo), aux);
		else /* re-level against the best fit so far */
			fit_levels(n, fs->nmax, x, best_off, 1 / best_scale, aux);
		if (!fit_lsq(n, x, w, aux, &scale, &off))
			continue;
		float err = fit_error(n, x, w, aux, scale, off);
		if (err < best_err) {
			memcpy(L, aux, (size_t)n);
			best_err = err;
			best_scale = scale;
			best_off = off;
		}
	}
	*min_out = -best_off;
	return best_scale;
}

/* Symmetric fit x[i] ~ scale*L[i], L in -nmax..nmax-1: trial scales around
 * -max/nmax (the largest magnitude goes to -nmax, the wider side), each refit
 * by least squares; keeps the one of largest sxl^2/sll (least error). */
static float fit_scale_sym(int n, int nmax, const float *x, const float *w)
{
	float amax = 0, max = 0;
	for (int i = 0; i < n; i++) {
		if (fabsf(x[i]) > amax) {
			amax = fabsf(x[i]);
			max = x[i];
		}
	}
	if (amax == 0)
		return 0;
	float best_score = -1, best_scale = -max / nmax;
	for (int k = -9; k <= 11; k++) {
		/* k <= 9: trial grids; 10, 11: re-level against the best so far */
		float iscale = k <= 9 ? -(nmax + 0.1f * k) / max : 1 / best_scale;
		float sxl = 0, sll = 0;
		for (int i = 0; i < n; i++) {
			int l = kq_round_clamp(iscale * x[i], (float)-nmax, (float)(nmax - 1));
			sxl += w[i] * x[i] * l;
			sll += w[i] * l * l;
		}
		if (sll > 0 && sxl * sxl / sll > best_score) {
			best_score = sxl * sxl / sll;
			best_scale = sxl / sll;
		}
	}
	return best_scale;
}

/* Weights of the fit: the sub-block's rms plus |x|, so large weights (which
 * matter most in a dot product) are kept a little more precisely. */
static void fit_weights(int n, const float *x, float *w)
{
	float sum2 = 0;
	for (int i = 0; i < n; i++)
		sum2 += x[i] * x[i];
	float rms = sqrtf(sum2 / n);
	for (int i = 0; i < n; i++)
		w[i] = rms + fabsf(x[i]);
}

/* ---- quantization --------------------------------------------------------- */

/* One Q4_K / Q5_K super-block (levels 0..nmax): fit each 32-element
 * sub-block, quantize its scale and min to 6 bits against the fp16 factors
 * d = max scale / 63 and dmin = max min / 63, then re-level every element
 * against the scale and min it will really be decoded with. */
static void k4_quantize_block(const float *x, int nmax, uint16_t *d_out, uint16_t *dmin_out,
			      uint8_t s[K_SCALE_BYTES], uint8_t L[QK_K])
{
	const struct fit_search fs = { nmax, nmax == 15 ? 20 : 15, nmax == 15 ? -1.0f : -0.5f, 0.1f };
	float scales[8], mins[8], w[32], max_scale = 0, max_min = 0;
	for (int j = 0; j < 8; j++) {
		fit_weights(32, x + 32 * j, w);
		scales[j] = fit_scale_min(32, &fs, x + 32 * j, w, L + 32 * j, &mins[j]);
		max_scale = kq_maxf(max_scale, scales[j]);
		max_min = kq_maxf(max_min, mins[j]);
	}
	*d_out = kq_fp16_sat(max_scale / 63);
	*dmin_out = kq_fp16_sat(max_min / 63);
	const float d = fm_fp16_to_fp32(*d_out), dmin = fm_fp16_to_fp32(*dmin_out);
	uint8_t ls[8], lm[8];
	for (int j = 0; j < 8; j++) {
		ls[j] = d > 0 ? (uint8_t)kq_round_clamp(scales[j] / d, 0, 63) : 0;
		lm[j] = dmin > 0 ? (uint8_t)kq_round_clamp(mins[j] / dmin, 0, 63) : 0;
	}
	k4_pack_scales(ls, lm, s);
	for (int j = 0; j < 8; j++) {
		const float dl = d * ls[j], ml = dmin * lm[j];
		for (int i = 32 * j; i < 32 * j + 32; i++)
			L[i] = dl > 0 ? (uint8_t)kq_round_clamp((x[i] + ml) / dl, 0, (float)nmax) : 0;
	}
}

void quantize_row_q4_K_ref(const float *x, void *y, size_t n)
{
	struct block_q4_K *b = y;
	uint8_t L[QK_K];
	for (size_t i = 0; i < n / QK_K; i++, b++, x += QK_K) {
		k4_quantize_block(x, 15, &b->d, &b->dmin, b->scales, L);
		for (int c = 0; c < 4; c++)
			for (int l = 0; l < 32; l++)
				b->qs[32 * c + l] = (uint8_t)(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
	}
}

void quantize_row_q5_K_ref(const float *x, void *y, size_t n)
{
	struct block_q5_K *b = y;
	uint8_t L[QK_K];
	for (size_t i = 0; i < n / QK_K; i++, b++, x += QK_K) {
		k4_quantize_block(x, 31, &b->d, &b->dmin, b->scales, L);
		memset(b->qh, 0, sizeof(b->qh));
		for (int c = 0; c < 4; c++) {
			for (int l = 0; l < 32; l++) {
				uint8_t lo = L[64 * c + l], hi = L[64 * c + 32 + l];
				b->qs[32 * c + l] = (uint8_t)((lo & 0xf) | ((hi & 0xf) << 4));
				b->qh[l] |= (uint8_t)(((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
			}
		}
	}
}

/* Q6_K levels L (0..63, value L - 32) into ql/qh, the layout of
 * dequantize_row_q6_K_ref. */
static void q6_K_pack(const uint8_t L[QK_K], struct block_q6_K *b)
{
	for (int h = 0; h < 2; h++) {
		const uint8_t *e = L + 128 * h;
		for (int l = 0; l < 32; l++) {
			b->ql[64 * h + l] = (uint8_t)((e[l] & 0xf) | ((e[l + 64] & 0xf) << 4));
			b->ql[64 * h + l + 32] = (uint8_t)((e[l + 32] & 0xf) | ((e[l + 96] & 0xf) << 4));
			b->qh[32 * h + l] = (uint8_t)((e[l] >> 4) | ((e[l + 32] >> 4) << 2) |
						      ((e[l + 64] >> 4) << 4) | ((e[l + 96] >> 4) << 6));
		}
	}
}

/* The symmetric K-quants (Q6_K, Q3_K): per 16-element sub-block a weighted
 * fit with levels -nlev..nlev-1, the 16 scales quantized to -nsc..nsc-1
 * against d = -max scale / nsc (the largest scale goes to -nsc, the wider
 * side), then every element re-levelled against its quantized scale.
 * Returns d as fp16; sc[] the integer scales, L[] the levels + nlev. */
static uint16_t k_sym_fit(const float *x, int nlev, int nsc, int sc[16], uint8_t L[QK_K])
{
	float scales[16], w[16], amax = 0, max = 0;
	for (int j = 0; j < 16; j++) {
		fit_weights(16, x + 16 * j, w);
		scales[j] = fit_scale_sym(16, nlev, x + 16 * j, w);
		if (fabsf(scales[j]) > amax) {
			amax = fabsf(scales[j]);
			max = scales[j];
		}
	}
	const uint16_t d16 = kq_fp16_sat(-max / (float)nsc);
	const float d = fm_fp16_to_fp32(d16);
	for (int j = 0; j < 16; j++) {
		sc[j] = d != 0 ? kq_round_clamp(scales[j] / d, (float)-nsc, (float)(nsc - 1)) : 0;
		const float dl = d * sc[j];
		for (int l = 16 * j; l < 16 * j + 16; l++)
			L[l] = (uint8_t)(dl != 0 ? kq_round_clamp(x[l] / dl, (float)-nlev,
								   (float)(nlev - 1)) + nlev
						 : nlev);
	}
	return d16;
}

/* Q6_K: the symmetric fit with levels -32..31 and int8 scales. */
void quantize_row_q6_K_ref(const float *x, void *y, size_t n)
{
	struct block_q6_K *b = y;
	uint8_t L[QK_K];
	int sc[16];
	for (size_t i = 0; i < n / QK_K; i++, b++, x += QK_K) {
		b->d = k_sym_fit(x, 32, 128, sc, L);
		for (int j = 0; j < 16; j++)
			b->scales[j] = (int8_t)sc[j];
		q6_K_pack(L, b);
	}
}

/* Q2_K: asymmetric fit per 16-element sub-block (levels 0..3), 4-bit scales
 * and mins against d = max scale / 15, dmin = max min / 15, re-level. */
void quantize_row_q2_K_ref(const float *x, void *y, size_t n)
{
	const struct fit_search fs = { 3, 15, -0.5f, 0.1f };
	struct block_q2_K *b = y;
	uint8_t L[QK_K];
	for (size_t i = 0; i < n / QK_K; i++, b++, x += QK_K) {
		float scales[16], mins[16], w[16], max_scale = 0, max_min = 0;
		for (int j = 0; j < 16; j++) {
			fit_weights(16, x + 16 * j, w);
			scales[j] = fit_scale_min(16, &fs, x + 16 * j, w, L + 16 * j, &mins[j]);
			max_scale = kq_maxf(max_scale, scales[j]);
			max_min = kq_maxf(max_min, mins[j]);
		}
		b->d = kq_fp16_sat(max_scale / 15);
		b->dmin = kq_fp16_sat(max_min / 15);
		const float d = fm_fp16_to_fp32(b->d), dmin = fm_fp16_to_fp32(b->dmin);
		for (int j = 0; j < 16; j++) {
			int ls = d > 0 ? kq_round_clamp(scales[j] / d, 0, 15) : 0;
			int lm = dmin > 0 ? kq_round_clamp(mins[j] / dmin, 0, 15) : 0;
			const float dl = d * ls, ml = dmin * lm;
			b->scales[j] = (uint8_t)(ls | (lm << 4));
			for (int l = 16 * j; l < 16 * j + 16; l++)
				L[l] = dl > 0 ? (uint8_t)kq_round_clamp((x[l] + ml) / dl, 0, 3) : 0;
		}
		for (int h = 0; h < 2; h++)
			for (int l = 0; l < 32; l++)
				b->qs[32 * h + l] = (uint8_t)(L[128 * h + l] | (L[128 * h + l + 32] << 2) |
							      (L[128 * h + l + 64] << 4) |
							      (L[128 * h + l + 96] << 6));
	}
}

/* Q3_K: the symmetric fit with levels -4..3 and 6-bit signed scales
 * (-32..31, stored + 32). Levels are stored + 4: 2 low bits in qs, the third
 * in hmask. */
void quantize_row_q3_K_ref(const float *x, void *y, size_t n)
{
	struct block_q3_K *b = y;
	uint8_t L[QK_K], ls[16];
	int sc[16];
	for (size_t i = 0; i < n / QK_K; i++, b++, x += QK_K) {
		b->d = k_sym_fit(x, 4, 32, sc, L);
		for (int j = 0; j < 16; j++)
			ls[j] = (uint8_t)(sc[j] + 32);
		q3_pack_scales(ls, b->scales);
		memset(b->hmask, 0, sizeof(b->hmask));
		for (int h = 0; h < 2; h++) {
			for (int l = 0; l < 32; l++) {
				const uint8_t *e = L + 128 * h + l;
				b->qs[32 * h + l] = (uint8_t)((e[0] & 3) | ((e[32] & 3) << 2) |
							      ((e[64] & 3) << 4) | ((e[96] & 3) << 6));
				for (int k = 0; k < 4; k++)
					b->hmask[l] |= (uint8_t)((e[32 * k] >> 2) << (4 * h + k));
			}
		}
	}
}

/* ---- dot products against Q8_K ----------------------------------------- */

/* Each block dot is exact in integers (sum over a sub-block of level times
 * activation quant, times the sub-block scale), then one float expression. */
static float dot_block_q4_K(const void *wb, const struct block_q8_K *a)
{
	const struct block_q4_K *b = wb;
	int32_t sumi = 0, summ = 0;
	for (int j = 0; j < 8; j++) {
		uint8_t sc, m;
		k4_scale_min(j, b->scales, &sc, &m);
		const uint8_t *q = b->qs + 32 * (j / 2);
		const int8_t *av = a->qs + 32 * j;
		int shift = 4 * (j % 2), sq = 0, sa = 0;
		for (int l = 0; l < 32; l++) {
			sq += ((q[l] >> shift) & 0xf) * av[l];
			sa += av[l];
		}
		sumi += sc * sq;
		summ += m * sa;
	}
	return a->d * (fm_fp16_to_fp32(b->d) * (float)sumi - fm_fp16_to_fp32(b->dmin) * (float)summ);
}

static float dot_block_q5_K(const void *wb, const struct block_q8_K *a)
{
	const struct block_q5_K *b = wb;
	int32_t sumi = 0, summ = 0;
	for (int j = 0; j < 8; j++) {
		uint8_t sc, m;
		k4_scale_min(j, b->scales, &sc, &m);
		const uint8_t *q = b->qs + 32 * (j / 2);
		const int8_t *av = a->qs + 32 * j;
		int shift = 4 * (j % 2), sq = 0, sa = 0;
		for (int l = 0; l < 32; l++) {
			int v = ((q[l] >> shift) & 0xf) | (((b->qh[l] >> j) & 1) << 4);
			sq += v * av[l];
			sa += av[l];
		}
		sumi += sc * sq;
		summ += m * sa;
	}
	return a->d * (fm_fp16_to_fp32(b->d) * (float)sumi - fm_fp16_to_fp32(b->dmin) * (float)summ);
}

static float dot_block_q6_K(const void *wb, const struct block_q8_K *a)
{
	const struct block_q6_K *b = wb;
	int32_t sumi = 0;
	for (int h = 0; h < 2; h++) {
		const uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
		const int8_t *av = a->qs + 128 * h, *sc = b->scales + 8 * h;
		for (int l = 0; l < 32; l++) {
			int is = l / 16;
			int q1 = ((ql[l] & 0xf) | (((qh[l] >> 0) & 3) << 4)) - 32;
			int q2 = ((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32;
			int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
			int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
			sumi += sc[is + 0] * q1 * av[l] + sc[is + 2] * q2 * av[l + 32] +
				sc[is + 4] * q3 * av[l + 64] + sc[is + 6] * q4 * av[l + 96];
		}
	}
	return a->d * fm_fp16_to_fp32(b->d) * (float)sumi;
}

static float dot_block_q2_K(const void *wb, const struct block_q8_K *a)
{
	const struct block_q2_K *b = wb;
	int32_t sumi = 0, summ = 0;
	for (int s = 0; s < 16; s++) {
		/* sub-block s: half s/8, shift 2*((s%8)/2), first or second 16 bytes */
		const uint8_t *q = b->qs + 32 * (s / 8) + 16 * (s % 2);
		const int8_t *av = a->qs + 16 * s;
		int shift = 2 * ((s % 8) / 2), sq = 0, sa = 0;
		for (int l = 0; l < 16; l++) {
			sq += ((q[l] >> shift) & 3) * av[l];
			sa += av[l];
		}
		sumi += (b->scales[s] & 0xf) * sq;
		summ += (b->scales[s] >> 4) * sa;
	}
	return a->d * (fm_fp16_to_fp32(b->d) * (float)sumi - fm_fp16_to_fp32(b->dmin) * (float)summ);
}

static float dot_block_q3_K(const void *wb, const struct block_q8_K *a)
{
	const struct block_q3_K *b = wb;
	int32_t sumi = 0;
	for (int s = 0; s < 16; s++) {
		/* sub-block s: as Q2_K, plus hmask bit s/2 of bytes 16*(s%2).. */
		const uint8_t *q = b->qs + 32 * (s / 8) + 16 * (s % 2);
		const uint8_t *hm = b->hmask + 16 * (s % 2);
		const int8_t *av = a->qs + 16 * s;
		int shift = 2 * ((s % 8) / 2), hbit = s / 2, sq = 0;
		for (int l = 0; l < 16; l++) {
			int v = ((q[l] >> shift) & 3) - (((hm[l] >> hbit) & 1) ? 0 : 4);
			sq += v * av[l];
		}
		sumi += (q3_scale(s, b->scales) - 32) * sq;
	}
	return a->d * fm_fp16_to_fp32(b->d) * (float)sumi;
}

typedef float (*block_dot_fn)(const void *w_block, const struct block_q8_K *a);

static void vec_dot_rows(size_t n, const uint8_t *w, size_t block_bytes, block_dot_fn dot,
			 const void *act, size_t act_stride, int ny, float *out)
{
	for (int y = 0; y < ny; y++) {
		const struct block_q8_K *a = (const void *)((const uint8_t *)act + (size_t)y * act_stride);
		float sum = 0;
		for (size_t i = 0; i < n / QK_K; i++)
			sum += dot(w + i * block_bytes, a + i);
		out[y] = sum;
	}
}

void vec_dot_q4_K_ref(size_t n, const void *w_row, const void *act, size_t act_stride,
		      int ny, float *out)
{
	vec_dot_rows(n, w_row, sizeof(struct block_q4_K), dot_block_q4_K, act, act_stride, ny, out);
}

void vec_dot_q5_K_ref(size_t n, const void *w_row, const void *act, size_t act_stride,
		      int ny, float *out)
{
	vec_dot_rows(n, w_row, sizeof(struct block_q5_K), dot_block_q5_K, act, act_stride, ny, out);
}

void vec_dot_q6_K_ref(size_t n, const void *w_row, const void *act, size_t act_stride,
		      int ny, float *out)
{
	vec_dot_rows(n, w_row, sizeof(struct block_q6_K), dot_block_q6_K, act, act_stride, ny, out);
}

void vec_dot_q2_K_ref(size_t n, const void *w_row, const void *act, size_t act_stride,
		      int ny, float *out)
{
	vec_dot_rows(n, w_row, sizeof(struct block_q2_K), dot_block_q2_K, act, act_stride, ny, out);
}

void vec_dot_q3_K_ref(size_t n, const void *w_row, const void *act, size_t act_stride,
		      int ny, float *out)
{
	vec_dot_rows(n, w_row, sizeof(struct block_q3_K), dot_block_q3_K, act, act_stride, ny, out);
}

/* ---- registration ---------------------------------------------------------- */

#if defined(__x86_64__)
#define KQ_AVX2(f) f##_avx2
#define KQ_AVX512(f) f##_avx512
#else
#define KQ_AVX2(f) NULL
#define KQ_AVX512(f) NULL
#endif

struct kq_entry {
	enum ggml_type type;
	quantize_row_fn quantize;
	dequantize_row_fn dequantize;
	vec_dot_fn vec_dot[KERNEL_ISA_COUNT]; /* indexed by enum kernel_isa */
	gemv_fn gemv[KERNEL_ISA_COUNT];       /* NULL: vec_dot row by row */
};

void kernels_register_kquants(struct kernels *k, enum kernel_isa isa)
{
	static const struct kq_entry tbl[] = {
		{ GGML_TYPE_Q4_K, quantize_row_q4_K_ref, dequantize_row_q4_K_ref,
		  { vec_dot_q4_K_ref, KQ_AVX2(vec_dot_q4_K), KQ_AVX512(vec_dot_q4_K) },
		  { NULL, KQ_AVX2(gemv_q4_K), KQ_AVX512(gemv_q4_K) } },
		{ GGML_TYPE_Q5_K, quantize_row_q5_K_ref, dequantize_row_q5_K_ref,
		  { vec_dot_q5_K_ref, KQ_AVX2(vec_dot_q5_K), KQ_AVX512(vec_dot_q5_K) },
		  { NULL, KQ_AVX2(gemv_q5_K), KQ_AVX512(gemv_q5_K) } },
		{ GGML_TYPE_Q6_K, quantize_row_q6_K_ref, dequantize_row_q6_K_ref,
		  { vec_dot_q6_K_ref, KQ_AVX2(vec_dot_q6_K), KQ_AVX512(vec_dot_q6_K) },
		  { NULL, KQ_AVX2(gemv_q6_K), KQ_AVX512(gemv_q6_K) } },
		{ GGML_TYPE_Q2_K, quantize_row_q2_K_ref, dequantize_row_q2_K_ref,
		  { vec_dot_q2_K_ref, KQ_AVX2(vec_dot_q2_K), KQ_AVX512(vec_dot_q2_K) },
		  { NULL, KQ_AVX2(gemv_q2_K), KQ_AVX512(gemv_q2_K) } },
		{ GGML_TYPE_Q3_K, quantize_row_q3_K_ref, dequantize_row_q3_K_ref,
		  { vec_dot_q3_K_ref, KQ_AVX2(vec_dot_q3_K), KQ_AVX512(vec_dot_q3_K) },
		  { NULL, KQ_AVX2(gemv_q3_K), KQ_AVX512(gemv_q3_K) } },
	};
	static const quantize_row_fn q8_K[KERNEL_ISA_COUNT] = {
		quantize_row_q8_K_ref, KQ_AVX2(quantize_row_q8_K), KQ_AVX512(quantize_row_q8_K)
	};
	if ((unsigned)isa >= KERNEL_ISA_COUNT)
		return;
	for (size_t i = 0; i < sizeof(tbl) / sizeof(tbl[0]); i++) {
		if (!tbl[i].vec_dot[isa])
			continue;
		k->fmt[tbl[i].type] = (struct kernel_fmt){
			.act_type = GGML_TYPE_Q8_K,
			.vec_dot = tbl[i].vec_dot[isa],
			.quantize = tbl[i].quantize,
			.dequantize = tbl[i].dequantize,
			.gemv = tbl[i].gemv[isa],
		};
	}
	if (q8_K[isa])
		k->quantize_act[GGML_TYPE_Q8_K] = q8_K[isa];
}
