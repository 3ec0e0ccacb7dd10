/* attn.c: the baseline (reference) build of the attention loops, and their
 * registration (see attn.h). */
#include "attn.h"

#define ATTN_DOT_ROWS attn_dot_rows_ref
#define ATTN_WSUM attn_wsum_ref
#define ATTN_WSUM_F16 attn_wsum_f16_ref
#define ATTN_WSUM_Q8_0 attn_wsum_q8_0_ref
#include "attn_body.h"

void kernels_register_attn(struct kernels *k, enum kernel_isa isa)
{
	switch (isa) {
	case KERNEL_ISA_REF:
		k->attn_dot_rows = attn_dot_rows_ref;
		k->attn_wsum = attn_wsum_ref;
		k->attn_wsum_f16 = attn_wsum_f16_ref;
		k->attn_wsum_q8_0 = attn_wsum_q8_0_ref;
		break;
#if defined(__x86_64__)
	case KERNEL_ISA_AVX2:
		k->attn_dot_rows = attn_dot_rows_avx2;
		k->attn_wsum = attn_wsum_avx2;
		k->attn_wsum_f16 = attn_wsum_f16_avx2;
		k->attn_wsum_q8_0 = attn_wsum_q8_0_avx2;
		break;
	case KERNEL_ISA_AVX512:
		k->attn_dot_rows = attn_dot_rows_avx512;
		k->attn_wsum = attn_wsum_avx512;
		k->attn_wsum_f16 = attn_wsum_f16_avx512;
		k->attn_wsum_q8_0 = attn_wsum_q8_0_avx512;
		break;
#endif
	default:
		break;
	}
}
