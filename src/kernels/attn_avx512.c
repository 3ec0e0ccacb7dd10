/* attn_avx512.c: attn_body.h compiled with the AVX-512 flags (see attn.h). */
#include "attn.h"

#define ATTN_DOT_ROWS attn_dot_rows_avx512
#define ATTN_WSUM attn_wsum_avx512
#define ATTN_WSUM_F16 attn_wsum_f16_avx512
#define ATTN_WSUM_Q8_0 attn_wsum_q8_0_avx512
#include "attn_body.h"
