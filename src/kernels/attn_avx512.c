/* attn_avx512.c: attn_body.h compiled with the AVX-512 flags (see attn.h). */
#include "attn.h"

#define ATTN_SUFFIX avx512
#include "attn_body.h"
