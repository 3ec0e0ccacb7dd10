/* ggml_type.h: the tensor element types of the GGUF format, as ggml numbers them.
 *
 * Owns: the type ids (they are part of the file format) and each type's block
 * geometry (elements per block, bytes per block). It does not own any math: the
 * block structs and kernels live in src/kernels/, which _Static_assert against
 * these sizes. Source of the numbers: ggml's ggml-common.h / gguf-py constants.py.
 */
#ifndef FM_GGML_TYPE_H
#define FM_GGML_TYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ggml_type {
	GGML_TYPE_F32 = 0,
	GGML_TYPE_F16 = 1,
	GGML_TYPE_Q4_0 = 2,
	GGML_TYPE_Q4_1 = 3,
	GGML_TYPE_Q5_0 = 6,
	GGML_TYPE_Q5_1 = 7,
	GGML_TYPE_Q8_0 = 8,
	GGML_TYPE_Q8_1 = 9,
	GGML_TYPE_Q2_K = 10,
	GGML_TYPE_Q3_K = 11,
	GGML_TYPE_Q4_K = 12,
	GGML_TYPE_Q5_K = 13,
	GGML_TYPE_Q6_K = 14,
	GGML_TYPE_Q8_K = 15,
	GGML_TYPE_I8 = 24,
	GGML_TYPE_I16 = 25,
	GGML_TYPE_I32 = 26,
	GGML_TYPE_I64 = 27,
	GGML_TYPE_F64 = 28,
	GGML_TYPE_BF16 = 30,
	GGML_TYPE_COUNT = 40, /* upper bound for tables indexed by type */
};

struct ggml_type_traits {
	const char *name;    /* "q4_K"; NULL for an id flashmoe does not know */
	uint32_t blck_elems; /* elements per block (1 for plain types) */
	uint32_t blck_bytes; /* bytes per block */
};

/* Traits of type t, or NULL when t is not a known type id. */
static inline const struct ggml_type_traits *ggml_type_get(uint32_t t)
{
	static const struct ggml_type_traits tbl[GGML_TYPE_COUNT] = {
		[GGML_TYPE_F32] = { "f32", 1, 4 },
		[GGML_TYPE_F16] = { "f16", 1, 2 },
		[GGML_TYPE_Q4_0] = { "q4_0", 32, 18 },
		[GGML_TYPE_Q4_1] = { "q4_1", 32, 20 },
		[GGML_TYPE_Q5_0] = { "q5_0", 32, 22 },
		[GGML_TYPE_Q5_1] = { "q5_1", 32, 24 },
		[GGML_TYPE_Q8_0] = { "q8_0", 32, 34 },
		[GGML_TYPE_Q8_1] = { "q8_1", 32, 36 },
		[GGML_TYPE_Q2_K] = { "q2_K", 256, 84 },
		[GGML_TYPE_Q3_K] = { "q3_K", 256, 110 },
		[GGML_TYPE_Q4_K] = { "q4_K", 256, 144 },
		[GGML_TYPE_Q5_K] = { "q5_K", 256, 176 },
		[GGML_TYPE_Q6_K] = { "q6_K", 256, 210 },
		[GGML_TYPE_Q8_K] = { "q8_K", 256, 292 },
		[GGML_TYPE_I8] = { "i8", 1, 1 },
		[GGML_TYPE_I16] = { "i16", 1, 2 },
		[GGML_TYPE_I32] = { "i32", 1, 4 },
		[GGML_TYPE_I64] = { "i64", 1, 8 },
		[GGML_TYPE_F64] = { "f64", 1, 8 },
		[GGML_TYPE_BF16] = { "bf16", 1, 2 },
	};
	if (t >= GGML_TYPE_COUNT || !tbl[t].name)
		return NULL;
	return &tbl[t];
}

/* Bytes of a row of n elements of type t; 0 when t is unknown or n is not a
 * whole number of blocks. */
static inline size_t ggml_row_bytes(uint32_t t, uint64_t n)
{
	const struct ggml_type_traits *tr = ggml_type_get(t);
	if (!tr || n % tr->blck_elems)
		return 0;
	return (size_t)(n / tr->blck_elems) * tr->blck_bytes;
}

#endif
