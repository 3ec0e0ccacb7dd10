/* buf.h: the server's growable byte string and UTF-8 helpers.
 * Owns nothing but bytes; no HTTP, no JSON. */
#ifndef FM_SERVER_BUF_H
#define FM_SERVER_BUF_H

#include <stdbool.h>
#include <stddef.h>

/* A growable byte string, always NUL-terminated once reserved. */
struct sbuf {
	char *p;
	size_t n, cap;
};

/* Room for n more bytes and the NUL; 0 or FM_ENOMEM. */
int sbuf_reserve(struct sbuf *b, size_t n);
int sbuf_add(struct sbuf *b, const char *s, size_t n);
int sbuf_adds(struct sbuf *b, const char *s);
int sbuf_addf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drop the first n bytes (a consumed head). */
void sbuf_consume(struct sbuf *b, size_t n);
void sbuf_free(struct sbuf *b);

/* Append s[0..n) to b with every byte sequence that is not valid UTF-8
 * replaced by U+FFFD (JSON text must be UTF-8). */
int sbuf_add_utf8(struct sbuf *b, const char *s, size_t n);
/* Length of the longest prefix of s[0..n) that ends on a character boundary
 * (an incomplete trailing UTF-8 sequence is left out). */
size_t utf8_complete_len(const char *s, size_t n);

/* Constant-time equality of two strings (time depends only on b's length). */
bool str_equal_ct(const char *a, const char *b);

#endif
