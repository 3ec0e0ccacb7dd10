/* util.c: error formatting, the counting allocator, the clock. */
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

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
	size_t used = atomic_fetch_add(&m->used_bytes, bytes) + bytes;
	if (m->budget_bytes && used > m->budget_bytes) {
		atomic_fetch_sub(&m->used_bytes, bytes);
		return false;
	}
	size_t peak = atomic_load(&m->peak_bytes);
	while (used > peak && !atomic_compare_exchange_weak(&m->peak_bytes, &peak, used))
		;
	return true;
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
