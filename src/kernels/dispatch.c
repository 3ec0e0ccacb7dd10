/* dispatch.c: which instruction sets this CPU can run, and the kernel tables.
 *
 * Owns: the one write-once table per ISA (the only file-scope state the
 * library keeps; written inside pthread_once, read-only afterwards), CPUID /
 * XGETBV feature detection, and lookup by ISA or name. It does not own any
 * kernel: each format's file registers its variants (kernels_register_basic,
 * kernels_register_kquants, kernels_register_attn).
 *
 * Filling order (tinyBLAS-style fallback): ref is filled from scratch; avx2
 * starts as a copy of ref and avx512 as a copy of avx2, then each ISA's
 * register functions override the entries they have, so a missing variant
 * falls back to the next lower ISA.
 *
 * Spec: Intel SDM vol. 2A (CPUID leaves 1 and 7, XGETBV) and vol. 1 ch. 13
 * (XCR0: bit 1 SSE, 2 AVX, 5 opmask, 6 ZMM_Hi256, 7 Hi16_ZMM state).
 * An ISA counts as supported only when the CPU has every extension its files
 * are compiled with (the Makefile's ISA_AVX2 / ISA_AVX512 flags), since the
 * compiler may use any of them, and the OS saves the register state.
 */
#include "kernels.h"

#include <pthread.h>
#include <string.h>

#include "attn.h"
#include "formats.h"
#include "kquants.h"
#include "tq.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static uint64_t read_xcr0(void)
{
	uint32_t lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return (uint64_t)hi << 32 | lo;
}

static bool cpu_has_avx2(void)
{
	unsigned a, b, c, d;
	if (!__get_cpuid_count(1, 0, &a, &b, &c, &d))
		return false;
	/* ECX: 12 FMA, 27 OSXSAVE, 28 AVX, 29 F16C */
	const unsigned need1 = 1u << 12 | 1u << 27 | 1u << 28 | 1u << 29;
	if ((c & need1) != need1)
		return false;
	if ((read_xcr0() & 0x6) != 0x6) /* OS saves XMM and YMM */
		return false;
	if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
		return false;
	return (b & 1u << 5) != 0; /* EBX 5: AVX2 */
}

static bool cpu_has_avx512(void)
{
	unsigned a, b, c, d;
	if (!cpu_has_avx2())
		return false;
	if ((read_xcr0() & 0xe6) != 0xe6) /* + opmask, ZMM_Hi256, Hi16_ZMM */
		return false;
	if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
		return false;
	/* EBX: 16 F, 17 DQ, 30 BW, 31 VL; ECX 11: VNNI */
	const unsigned need_b = 1u << 16 | 1u << 17 | 1u << 30 | 1u << 31;
	/* BF16 is not required: no kernel uses it, so Ice Lake and Cascade
	 * Lake-class CPUs (VNNI without BF16) get the AVX-512 kernels too. */
	return (b & need_b) == need_b && (c & 1u << 11);
}
#else
static bool cpu_has_avx2(void)
{
	return false;
}

static bool cpu_has_avx512(void)
{
	return false;
}
#endif

bool kernels_isa_supported(enum kernel_isa isa)
{
	switch (isa) {
	case KERNEL_ISA_REF:
		return true;
	case KERNEL_ISA_AVX2:
		return cpu_has_avx2();
	case KERNEL_ISA_AVX512:
		return cpu_has_avx512();
	default:
		return false;
	}
}

static const char *const isa_names[KERNEL_ISA_COUNT] = { "ref", "avx2", "avx512" };

/* The library's one piece of file-scope state: written once inside
 * pthread_once (which also publishes it to every thread), then only read. */
static struct {
	struct kernels table[KERNEL_ISA_COUNT];
	bool supported[KERNEL_ISA_COUNT];
} g_kernels;
static pthread_once_t g_kernels_once = PTHREAD_ONCE_INIT;

static void fill_tables(void)
{
	for (int i = 0; i < KERNEL_ISA_COUNT; i++) {
		enum kernel_isa isa = (enum kernel_isa)i;
		struct kernels *k = &g_kernels.table[i];
		if (i == 0)
			memset(k, 0, sizeof(*k));
		else
			*k = g_kernels.table[i - 1];
		k->isa = isa;
		k->name = isa_names[i];
		kernels_register_basic(k, isa);
		kernels_register_kquants(k, isa);
		kernels_register_attn(k, isa);
		kernels_register_tq(k, isa);
		g_kernels.supported[i] = kernels_isa_supported(isa);
	}
}

void kernels_init(void)
{
	pthread_once(&g_kernels_once, fill_tables);
}

const struct kernels *kernels_get(enum kernel_isa isa)
{
	if ((unsigned)isa >= KERNEL_ISA_COUNT)
		return NULL;
	kernels_init();
	return g_kernels.supported[isa] ? &g_kernels.table[isa] : NULL;
}

const struct kernels *kernels_best(void)
{
	kernels_init();
	for (int i = KERNEL_ISA_COUNT - 1; i > 0; i--)
		if (g_kernels.supported[i])
			return &g_kernels.table[i];
	return &g_kernels.table[KERNEL_ISA_REF];
}

int kernels_isa_from_name(const char *name)
{
	if (!name)
		return -1;
	for (int i = 0; i < KERNEL_ISA_COUNT; i++)
		if (strcmp(name, isa_names[i]) == 0)
			return i;
	return -1;
}
