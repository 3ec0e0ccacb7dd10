/* kernels.h: the kernel table. One entry per weight type: the activation format
 * its dot product consumes, and the dot product itself, per instruction set.
 *
 * Owns: the signatures every variant shares, the ISA enum, the table lookup.
 * The block structs and scalar references live in src/kernels/<fmt>.c; the SIMD
 * variants in <fmt>_avx2.c / <fmt>_avx512.c (each compiled with its own -m
 * flags). dispatch.c fills one table per ISA once, from CPUID, before threads
 * start; a variant missing for an ISA falls back to the next lower ISA.
 *
 * Activation formats (what a weight row is multiplied with):
 *   F32, F16, BF16 weights      x  F32 activations
 *   Q8_0, Q4_0 weights          x  Q8_0 activations (32-blocks, fp16 scale)
 *   Q2_K..Q6_K weights          x  Q8_K activations (256-blocks, f32 scale, bsums)
 */
#ifndef FM_KERNELS_H
#define FM_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../ggml_type.h"

enum kernel_isa { KERNEL_ISA_REF, KERNEL_ISA_AVX2, KERNEL_ISA_AVX512, KERNEL_ISA_COUNT };

/* out[j] = dot(w_row, act_j) for j in [0, ny), 1 <= ny <= KERNEL_MAX_NY.
 * n: elements in the row (a multiple of the weight's block size);
 * w_row: one row of the weight type; act: ny activation rows in the weight
 * type's activation format, act_stride bytes apart. The weight row is read once
 * for all ny activation rows (prefill unpacks a block once for several tokens). */
#define KERNEL_MAX_NY 8
typedef void (*vec_dot_fn)(size_t n, const void *w_row, const void *act,
			   size_t act_stride, int ny, float *out);
/* out[r] = dot(w + r * row_bytes, act) for r in [0, nr): several rows of one
 * weight matrix times ONE activation row (decode). Independent accumulators
 * for KERNEL_MAX_NR rows at a time keep more memory reads in flight than one
 * row per call. Optional: NULL means vec_dot row by row. */
#define KERNEL_MAX_NR 4
typedef void (*gemv_fn)(size_t n, const void *w, size_t row_bytes, int nr,
			const void *act, float *out);
/* Convert n floats to a row of a block format (n a multiple of its block). */
typedef void (*quantize_row_fn)(const float *x, void *y, size_t n);
/* Convert a row of a block format back to n floats. */
typedef void (*dequantize_row_fn)(const void *x, float *y, size_t n);
/* TurboQuant KV vectors: score a rotated query against n stored vectors, and
 * add n weighted vectors into a rotated-domain accumulator (tq.h). */
struct tq_format;
typedef void (*tq_score_fn)(const struct tq_format *f, const float *q_rot,
			    const uint8_t *codes, int n, size_t stride, float *scores);
typedef void (*tq_accumulate_fn)(const struct tq_format *f, const float *w,
				 const uint8_t *codes, int n, size_t stride, float *acc);
typedef void (*tq_decode_fn)(const struct tq_format *f, const uint8_t *codes, int n,
			     size_t stride, float *rows);

struct kernel_fmt {
	enum ggml_type act_type;        /* activation format of vec_dot */
	vec_dot_fn vec_dot;             /* NULL: type not usable as a weight */
	quantize_row_fn quantize;       /* f32 -> this type (reference quality) */
	dequantize_row_fn dequantize;   /* this type -> f32 */
	gemv_fn gemv;                   /* NULL: vec_dot per row */
};

struct kernels {
	enum kernel_isa isa;
	const char *name;               /* "ref", "avx2", "avx512" */
	struct kernel_fmt fmt[GGML_TYPE_COUNT];
	/* f32 -> activation format, indexed by act type (Q8_0, Q8_K); F32 is a copy */
	quantize_row_fn quantize_act[GGML_TYPE_COUNT];
	/* attention over f32 KV rows (attn.h) */
	void (*attn_dot_rows)(float *out, const float *q, const float *rows, int n_rows, int n,
			      float scale);
	void (*attn_wsum)(float *o, const float *p, const float *rows, int n_rows, int n);
	void (*attn_wsum_f16)(float *o, const float *p, const uint16_t *rows, int n_rows, int n);
	void (*attn_wsum_q8_0)(float *o, const float *p, const uint8_t *rows, int n_rows, int n);
	tq_score_fn tq_score;
	tq_accumulate_fn tq_accumulate;
	tq_decode_fn tq_decode;
};

/* Whether this CPU can run isa (CPUID + OS XSAVE support). */
bool kernels_isa_supported(enum kernel_isa isa);
/* The table for isa, or NULL when the CPU lacks it. Thread-safe after
 * kernels_init(). */
const struct kernels *kernels_get(enum kernel_isa isa);
/* The best table this CPU supports. */
const struct kernels *kernels_best(void);
/* Fill the tables; idempotent; call once before starting threads. */
void kernels_init(void);
/* "ref" -> KERNEL_ISA_REF ...; -1 if unknown. */
int kernels_isa_from_name(const char *name);

#endif
