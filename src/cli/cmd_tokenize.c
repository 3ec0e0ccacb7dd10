/* cmd_tokenize.c: flashmoe tokenize and flashmoe detokenize.
 *
 *   flashmoe tokenize (-m MODEL | --tokenizer FILE) (-p TEXT | -f FILE)
 *                     [--ids] [--add-special] [--no-parse-special]
 *     the token ids of the text exactly as given (a file's bytes as they are,
 *     trailing newline included): space-separated on one line with --ids,
 *     else "id<TAB>'piece'" per line (piece bytes escaped C-style when not
 *     printable UTF-8). --add-special prepends bos when the tokenizer asks
 *     for one (Qwen does not). Special tokens written in the text
 *     (<|im_end|>) are parsed unless --no-parse-special.
 *   flashmoe detokenize (-m MODEL | --tokenizer FILE) [--skip-special]
 *                       [-p IDS | -f FILE | IDS...]
 *     ids separated by spaces, commas or newlines (stdin when none given)
 *     back to bytes, written as they are, through the streaming decoder.
 * Uses only flashmoe.h; FILE may be a .gguf model or a tokenizer.json.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

struct tok_opts {
	const char *tokenizer, *text, *file;
	bool ids_only, add_special, parse_special, skip_special;
};

/* Read all of path ("-" = stdin) into a malloc'd buffer (NUL added). */
static char *slurp(const char *cmd, const char *path, size_t *len)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
	if (!f) {
		fprintf(stderr, "flashmoe %s: %s: %s\n", cmd, path, strerror(errno));
		return NULL;
	}
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);
	while (buf) {
		n += fread(buf + n, 1, cap - n, f);
		if (n < cap)
			break;
		char *nb = cap < ((size_t)1 << 40) ? realloc(buf, cap * 2) : NULL;
		if (!nb)
			free(buf);
		buf = nb;
		cap *= 2;
	}
	bool bad = ferror(f);
	if (buf)
		buf[n] = 0; /* n < cap: a NUL after the bytes, for text use */
	if (f != stdin)
		fclose(f);
	if (!buf || bad) {
		fprintf(stderr, "flashmoe %s: cannot read %s\n", cmd, path);
		free(buf);
		return NULL;
	}
	*len = n;
	return buf;
}

/* Parse the common options; 1 = consumed, 0 = not ours, -1 = error. */
static int tok_opt(const char *cmd, struct tok_opts *o, int argc, char **argv, int *i)
{
	const char *a = argv[*i];
	const char **dst = !strcmp(a, "-m") || !strcmp(a, "--model") || !strcmp(a, "--tokenizer")
				   ? &o->tokenizer
			   : !strcmp(a, "-p") || !strcmp(a, "--prompt") ? &o->text
			   : !strcmp(a, "-f") || !strcmp(a, "--file")   ? &o->file
									: NULL;
	if (dst)
		return (*dst = cli_next(cmd, argc, argv, i)) ? 1 : -1;
	bool *flag = !strcmp(a, "--ids")		? &o->ids_only
		     : !strcmp(a, "--add-special")	? &o->add_special
		     : !strcmp(a, "--skip-special")	? &o->skip_special
							: NULL;
	if (flag) {
		*flag = true;
		return 1;
	}
	if (!strcmp(a, "--no-parse-special")) {
		o->parse_special = false;
		return 1;
	}
	return 0;
}

static struct fm_tokenizer *open_tokenizer(const char *cmd, const char *path)
{
	struct fm_error err = { 0 };
	struct fm_tokenizer *t = fm_tokenizer_load(path, &err);
	if (!t)
		fprintf(stderr, "flashmoe %s: %s\n", cmd, err.msg);
	return t;
}

/* Length of the valid UTF-8 character at s[0..n), 0 if none. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	size_t need = s[0] < 0x80 ? 1 : s[0] >= 0xc2 && s[0] <= 0xdf ? 2
		    : s[0] >= 0xe0 && s[0] <= 0xef ? 3 : s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : 0;
	if (!need || n < need)
		return 0;
	unsigned lo = s[0] == 0xe0 ? 0xa0 : s[0] == 0xf0 ? 0x90 : 0x80;
	unsigned hi = s[0] == 0xed ? 0x9f : s[0] == 0xf4 ? 0x8f : 0xbf;
	if (need > 1 && (s[1] < lo || s[1] > hi))
		return 0;
	for (size_t i = 2; i < need; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return need;
}

/* Print a piece in quotes: printable UTF-8 as is, the rest escaped. */
static void print_piece(const char *p, size_t n)
{
	putchar('\'');
	const unsigned char *u = (const unsigned char *)p;
	for (size_t i = 0; i < n;) {
		unsigned char c = u[i];
		size_t cl = c >= 0x80 ? utf8_len(u + i, n - i) : 1;
		if (c == '\n')
			fputs("\\n", stdout);
		else if (c == '\t')
			fputs("\\t", stdout);
		else if (c == '\\' || c == '\'')
			printf("\\%c", c);
		else if (c < 0x20 || c == 0x7f || !cl)
			printf("\\x%02x", c);
		else
			fwrite(u + i, 1, cl, stdout);
		i += cl ? cl : 1;
	}
	fputs("'\n", stdout);
}

static int print_ids(const struct fm_tokenizer *t, const int32_t *ids, int n, bool ids_only)
{
	for (int i = 0; i < n; i++) {
		if (ids_only) {
			printf(i ? " %d" : "%d", ids[i]);
			continue;
		}
		size_t len = 0;
		const char *p = fm_tokenizer_piece(t, ids[i], &len);
		printf("%d\t", ids[i]);
		print_piece(p ? p : "", len);
	}
	if (ids_only)
		putchar('\n');
	return fflush(stdout) ? 1 : 0;
}

/* Encode into *ids (grown when NFC made the text need more ids than bytes);
 * returns the count after off leading slots, or a negative code. */
static int encode_all(const struct fm_tokenizer *t, const char *text, size_t len, bool special,
		      int32_t **ids, int off)
{
	int cap = len < (1u << 30) ? (int)len + 2 : 1 << 30;
	for (int tries = 0; tries < 2; tries++) {
		free(*ids);
		*ids = malloc(((size_t)cap + (size_t)off) * sizeof(int32_t));
		if (!*ids)
			return FM_ENOMEM;
		int n = fm_tokenizer_encode(t, text, len, special, *ids + off, cap);
		if (n <= cap || n < 0)
			return n;
		cap = n;
	}
	return FM_ERANGE;
}

static int tokenize(const struct tok_opts *o, const char *text, size_t len)
{
	struct fm_tokenizer *t = open_tokenizer("tokenize", o->tokenizer);
	if (!t)
		return 1;
	int32_t *ids = NULL;
	int off = o->add_special && fm_tokenizer_add_bos(t) ? 1 : 0, rc = 1;
	int n = encode_all(t, text, len, o->parse_special, &ids, off);
	if (n < 0) {
		fprintf(stderr, "flashmoe tokenize: encoding failed (%d)\n", n);
	} else {
		if (off)
			ids[0] = fm_tokenizer_bos(t);
		rc = print_ids(t, ids, n + off, o->ids_only);
	}
	free(ids);
	fm_tokenizer_free(t);
	return rc;
}

static const char tokenize_usage[] =
	"usage: flashmoe tokenize (-m MODEL | --tokenizer FILE) (-p TEXT | -f FILE)\n"
	"                         [--ids] [--add-special] [--no-parse-special]\n";

int cmd_tokenize(int argc, char **argv)
{
	struct tok_opts o = { .parse_special = true };
	for (int i = 1; i < argc; i++) {
		if (cli_is_help(argv[i])) {
			fputs(tokenize_usage, stdout);
			return 0;
		}
		int r = tok_opt("tokenize", &o, argc, argv, &i);
		if (r < 0)
			return 2;
		if (r == 0 || o.skip_special) {
			fprintf(stderr, "flashmoe tokenize: unknown option '%s'\n", argv[i]);
			goto usage;
		}
	}
	if (!o.tokenizer || !o.text == !o.file)
		goto usage;
	size_t len = o.text ? strlen(o.text) : 0;
	char *buf = o.file ? slurp("tokenize", o.file, &len) : NULL;
	if (o.file && !buf)
		return 1;
	int rc = tokenize(&o, o.text ? o.text : buf, len);
	free(buf);
	return rc;
usage:
	fputs(tokenize_usage, stderr);
	return 2;
}

/* Decode the ids written in s (separated by spaces, commas, newlines). */
static int detokenize(const struct fm_tokenizer *t, const char *s, bool skip)
{
	struct fm_detok *d = fm_detok_new(t, skip);
	size_t cap = fm_detok_max_bytes(t);
	char *out = malloc(cap);
	int rc = d && out ? 0 : 1;
	while (!rc && *s) {
		s += strspn(s, " \t\r\n,");
		if (!*s)
			break;
		char *end;
		errno = 0;
		long v = strtol(s, &end, 10);
		int n = end == s || errno || v < 0 || v > INT32_MAX ? FM_EINVAL
			: fm_detok_feed(d, (int32_t)v, out, cap);
		if (n < 0) {
			fprintf(stderr, "flashmoe detokenize: bad token id '%.*s'\n",
				(int)strcspn(s, " \t\r\n,"), s);
			rc = 1;
		} else {
			fwrite(out, 1, (size_t)n, stdout);
			s = end;
		}
	}
	int n = rc ? 0 : fm_detok_flush(d, out, cap);
	fwrite(out, 1, n > 0 ? (size_t)n : 0, stdout);
	free(out);
	fm_detok_free(d);
	return rc || fflush(stdout) ? 1 : 0;
}

static const char detokenize_usage[] =
	"usage: flashmoe detokenize (-m MODEL | --tokenizer FILE) [--skip-special]\n"
	"                           [-p IDS | -f FILE | IDS...]  (stdin if none)\n";

int cmd_detokenize(int argc, char **argv)
{
	struct tok_opts o = { .parse_special = true };
	size_t cap = 1, len;
	for (int i = 1; i < argc; i++) {
		if (cli_is_help(argv[i])) {
			fputs(detokenize_usage, stdout);
			return 0;
		}
		cap += strlen(argv[i]) + 1;
	}
	char *args = calloc(1, cap), *ids = NULL; /* the ids given as arguments */
	int rc = 2;
	for (int i = 1; args && i < argc; i++) {
		int r = tok_opt("detokenize", &o, argc, argv, &i);
		if (r < 0)
			goto out;
		if (r == 0 && argv[i][0] == '-') {
			fprintf(stderr, "flashmoe detokenize: unknown option '%s'\n", argv[i]);
			goto usage;
		}
		if (r == 0)
			strcat(strcat(args, argv[i]), " ");
	}
	if (!args || !o.tokenizer || (o.text && o.file) || ((o.text || o.file) && *args))
		goto usage;
	ids = o.file ? slurp("detokenize", o.file, &len)
	      : o.text ? strdup(o.text) : *args ? strdup(args) : slurp("detokenize", "-", &len);
	rc = 1;
	if (!ids)
		goto out;
	struct fm_tokenizer *t = open_tokenizer("detokenize", o.tokenizer);
	rc = t ? detokenize(t, ids, o.skip_special) : 1;
	fm_tokenizer_free(t);
	goto out;
usage:
	fputs(detokenize_usage, stderr);
	rc = 2;
out:
	free(args);
	free(ids);
	return rc;
}
