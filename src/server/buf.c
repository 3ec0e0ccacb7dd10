/* buf.c: growable byte strings and UTF-8 helpers for the server (buf.h). */
#include "buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flashmoe.h"

int sbuf_reserve(struct sbuf *b, size_t n)
{
	if (n >= SIZE_MAX / 2 - b->n)
		return FM_ENOMEM;
	if (b->n + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->n + n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p)
			return FM_ENOMEM;
		b->p = p;
		b->cap = cap;
	}
	return 0;
}

int sbuf_add(struct sbuf *b, const char *s, size_t n)
{
	int rc = sbuf_reserve(b, n);
	if (rc)
		return rc;
	if (n)
		memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = 0;
	return 0;
}

int sbuf_adds(struct sbuf *b, const char *s)
{
	return sbuf_add(b, s, strlen(s));
}

int sbuf_addf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int k = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (k < 0)
		return FM_EINVAL;
	int rc = sbuf_reserve(b, (size_t)k);
	if (rc)
		return rc;
	va_start(ap, fmt);
	vsnprintf(b->p + b->n, (size_t)k + 1, fmt, ap);
	va_end(ap);
	b->n += (size_t)k;
	return 0;
}

void sbuf_consume(struct sbuf *b, size_t n)
{
	if (n >= b->n) {
		b->n = 0;
	} else {
		memmove(b->p, b->p + n, b->n - n);
		b->n -= n;
	}
	if (b->p)
		b->p[b->n] = 0;
}

void sbuf_free(struct sbuf *b)
{
	free(b->p);
	*b = (struct sbuf){ 0 };
}

/* Length of the valid UTF-8 character at s[0..n), or 0 if it is not one
 * (overlong forms, surrogates and values past U+10FFFF are invalid), or -1
 * if it is a valid but incomplete start. */
static int utf8_char_len(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	int len;
	uint32_t cp, min;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2, cp = c & 0x1f, min = 0x80;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3, cp = c & 0x0f, min = 0x800;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4, cp = c & 0x07, min = 0x10000;
	else
		return 0;
	for (int i = 1; i < len; i++) {
		if ((size_t)i >= n)
			return -1;
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
		/* reject early what can no longer become valid */
		if (i == 1 && len == 3 && ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f)))
			return 0;
		if (i == 1 && len == 4 && ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] > 0x8f)))
			return 0;
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

int sbuf_add_utf8(struct sbuf *b, const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, run = 0; /* valid bytes [i - run, i) not yet copied */
	int rc = 0;
	while (i < n && !rc) {
		int k = utf8_char_len(u + i, n - i);
		if (k > 0) {
			i += (size_t)k;
			run += (size_t)k;
			continue;
		}
		rc = sbuf_add(b, s + i - run, run);
		if (!rc)
			rc = sbuf_add(b, "\xef\xbf\xbd", 3);
		run = 0;
		i++;
	}
	return rc ? rc : sbuf_add(b, s + i - run, run);
}

size_t utf8_complete_len(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	/* step back over at most 3 continuation bytes to the last lead byte */
	size_t i = n;
	for (int k = 0; k < 4 && i > 0; k++) {
		i--;
		if ((u[i] & 0xc0) != 0x80)
			break;
	}
	if (i < n && u[i] >= 0xc0 && utf8_char_len(u + i, n - i) < 0)
		return i;
	return n;
}

bool str_equal_ct(const char *a, const char *b)
{
	size_t na = strlen(a), nb = strlen(b);
	unsigned diff = na != nb;
	for (size_t i = 0; i < nb; i++)
		diff |= (unsigned char)(b[i] ^ (i < na ? a[i] : 0));
	return diff == 0;
}
