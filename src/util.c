/* util.c: error formatting, the counting allocator, the clock. */
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* Messages longer than the struct's buffer are cut short on purpose. */
#pragma GCC diagnostic ignored "-Wformat-truncation"

int fm_err(struct fm_error *err, int code, const char *file, uint64_t offset,
	   const char *fmt, ...)
{
	if (!err)
		return code;
	err->code = code;
	err->offset = offset;
	snprintf(err->file, sizeof(err->file), "%s", file ? file : "");
	char what[sizeof(err->msg)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (file && offset != FM_NO_OFFSET)
		snprintf(err->msg, sizeof(err->msg), "%s: at offset %llu: %s", file,
			 (unsigned long long)offset, what);
	else if (file)
		snprintf(err->msg, sizeof(err->msg), "%s: %s", file, what);
	else
		snprintf(err->msg, sizeof(err->msg), "%s", what);
	return code;
}

bool fm_mem_charge(struct fm_mem *m, size_t bytes)
{
	if (!m)
		return true;
	/* without --mem, a request beyond the machine's free RAM (a -c of 16M
	 * tokens, sizes from a hostile file) is refused here with the numbers
	 * rather than by the OOM killer once its pages are touched */
	size_t cap = m->budget_bytes ? m->budget_bytes : m->ram_bytes;
	size_t used = atomic_fetch_add(&m->used_bytes, bytes) + bytes;
	if (cap && (used > cap || used < bytes)) {
		atomic_fetch_sub(&m->used_bytes, bytes);
		return false;
	}
	size_t peak = atomic_load(&m->peak_bytes);
	while (used > peak && !atomic_compare_exchange_weak(&m->peak_bytes, &peak, used))
		;
	return true;
}

size_t fm_mem_left(const struct fm_mem *m)
{
	if (!m)
		return SIZE_MAX;
	size_t cap = m->budget_bytes ? m->budget_bytes : m->ram_bytes;
	size_t used = atomic_load(&m->used_bytes);
	return !cap ? SIZE_MAX : used < cap ? cap - used : 0;
}

size_t fm_ram_available_bytes(void)
{
	FILE *f = fopen("/proc/meminfo", "re");
	unsigned long long kib = 0;
	char line[128];
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %llu kB", &kib) == 1)
			break;
	if (f)
		fclose(f);
	if (kib)
		return kib > SIZE_MAX / 1024 ? SIZE_MAX : (size_t)kib * 1024;
	long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
	return pages > 0 && page > 0 ? (size_t)pages * (size_t)page : 0;
}

void fm_mem_release(struct fm_mem *m, size_t bytes)
{
	if (m)
		atomic_fetch_sub(&m->used_bytes, bytes);
}

void *fm_alloc(struct fm_mem *m, size_t bytes)
{
	if (bytes == 0)
		bytes = 1;
	size_t align = bytes >= (1u << 20) ? 4096 : 64;
	if (bytes > SIZE_MAX - align)
		return NULL;
	size_t rounded = (bytes + align - 1) / align * align;
	if (!fm_mem_charge(m, rounded))
		return NULL;
	void *p = aligned_alloc(align, rounded);
	if (!p) {
		fm_mem_release(m, rounded);
		return NULL;
	}
	memset(p, 0, rounded);
	return p;
}

void fm_free(struct fm_mem *m, void *p, size_t bytes)
{
	if (!p)
		return;
	if (bytes == 0)
		bytes = 1;
	size_t align = bytes >= (1u << 20) ? 4096 : 64;
	fm_mem_release(m, (bytes + align - 1) / align * align);
	free(p);
}

double fm_now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}
