/* util.h: errors, the counting allocator, clocks and fp16/bf16 conversion.
 *
 * Owns the small things every part needs. Errors travel in a caller-owned
 * struct fm_error (declared in flashmoe.h); allocations of model-sized memory go
 * through fm_alloc so they count against the --mem budget (struct fm_mem).
 */
#ifndef FM_UTIL_H
#define FM_UTIL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "flashmoe.h"

/* Fill err (if not NULL) and return code (a negative FM_E* or -errno).
 * file may be NULL; offset is where in the file, or FM_NO_OFFSET. */
int fm_err(struct fm_error *err, int code, const char *file, uint64_t offset,
	   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
#define FM_NO_OFFSET UINT64_MAX

/* The counting allocator: every large buffer is charged to one fm_mem. */
struct fm_mem {
	_Atomic size_t used_bytes;
	_Atomic size_t peak_bytes;
	size_t budget_bytes; /* 0 = no budget: then ram_bytes bounds it */
	size_t ram_bytes;    /* memory the machine had free at open; 0 = unknown */
};

/* What fm_alloc may still hand out: the budget (or, without one, the free
 * RAM at open) less what is charged; SIZE_MAX when neither is known. */
size_t fm_mem_left(const struct fm_mem *m);
/* MemAvailable of /proc/meminfo (free + reclaimable page cache), or the
 * free physical pages; 0 when neither can be read. */
size_t fm_ram_available_bytes(void);

/* 64-byte aligned (4096 when bytes >= 1 MiB), zeroed; NULL if the budget or
 * the OS refuses. fm_free(m, NULL, 0) is a no-op. */
void *fm_alloc(struct fm_mem *m, size_t bytes);
void fm_free(struct fm_mem *m, void *p, size_t bytes);
/* Charge or release bytes held elsewhere (mmap'd pages the engine pins). */
bool fm_mem_charge(struct fm_mem *m, size_t bytes);
void fm_mem_release(struct fm_mem *m, size_t bytes);

double fm_now_s(void); /* monotonic seconds */

/* Overflow-checked arithmetic: false on overflow. */
static inline bool fm_mul_ok(uint64_t a, uint64_t b, uint64_t *out)
{
	return !__builtin_mul_overflow(a, b, out);
}
static inline bool fm_add_ok(uint64_t a, uint64_t b, uint64_t *out)
{
	return !__builtin_add_overflow(a, b, out);
}

/* IEEE half and bfloat16, round to nearest even. */
static inline float fm_fp16_to_fp32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
	if (exp == 0) {
		if (man == 0) {
			bits = sign;
		} else { /* subnormal: normalise */
			int e = -1;
			do {
				man <<= 1;
				e++;
			} while (!(man & 0x400));
			bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
		}
	} else if (exp == 31) {
		bits = sign | 0x7f800000u | (man << 13);
	} else {
		bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
	}
	float f;
	memcpy(&f, &bits, 4);
	return f;
}

static inline uint16_t fm_fp32_to_fp16(float f)
{
	uint32_t x;
	memcpy(&x, &f, 4);
	uint32_t sign = (x >> 16) & 0x8000;
	uint32_t ax = x & 0x7fffffffu;
	if (ax > 0x7f800000u) /* NaN: keep it a quiet NaN */
		return (uint16_t)(sign | 0x7e00);
	if (ax >= 0x477ff000u) /* rounds to >= 65520: inf */
		return (uint16_t)(sign | 0x7c00);
	if (ax < 0x38800000u) { /* below half's smallest normal: subnormal or 0 */
		if (ax < 0x33000000u)
			return (uint16_t)sign;
		/* value = m * 2^(e-150) and the half subnormal unit is 2^-24 */
		uint32_t e = ax >> 23, m = (ax & 0x7fffff) | 0x800000;
		uint32_t shift = 126 - e;
		uint32_t rem = m & ((1u << shift) - 1), mid = 1u << (shift - 1);
		uint32_t half = m >> shift;
		if (rem > mid || (rem == mid && (half & 1)))
			half++;
		return (uint16_t)(sign | half);
	}
	uint32_t r = ax + 0xfff + ((ax >> 13) & 1); /* round to nearest even */
	return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
}

static inline float fm_bf16_to_fp32(uint16_t b)
{
	uint32_t bits = (uint32_t)b << 16;
	float f;
	memcpy(&f, &bits, 4);
	return f;
}

static inline uint16_t fm_fp32_to_bf16(float f)
{
	uint32_t x;
	memcpy(&x, &f, 4);
	if ((x & 0x7fffffffu) > 0x7f800000u)
		return (uint16_t)((x >> 16) | 0x40);
	return (uint16_t)((x + 0x7fff + ((x >> 16) & 1)) >> 16);
}

#endif
