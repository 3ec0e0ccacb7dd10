/* attn_avx2.c: attn_body.h compiled with the AVX2 flags (see attn.h). */
#include "attn.h"

#define ATTN_DOT_ROWS attn_dot_rows_avx2
#define ATTN_WSUM attn_wsum_avx2
#define ATTN_WSUM_F16 attn_wsum_f16_avx2
#define ATTN_WSUM_Q8_0 attn_wsum_q8_0_avx2
#include "attn_body.h"
