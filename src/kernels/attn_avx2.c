/* attn_avx2.c: attn_body.h compiled with the AVX2 flags (see attn.h). */
#include "attn.h"

#define ATTN_SUFFIX avx2
#include "attn_body.h"
