/* chat_json.c: json-c values written as Python's json.dumps(ensure_ascii=False)
 * and str() write them (chat_json.h), for the chat templates' tojson and
 * `| string` filters under transformers. Python's rules, from its json
 * encoder and float repr:
 *   strings   " \ and \n \r \t \b \f escaped by name, other bytes < 0x20 as
 *             \u00xx (lowercase hex), everything else as is
 *   floats    the shortest digits that read back to the same double; fixed
 *             notation for decimal exponents -4..15 (with ".0" when whole),
 *             else d.ddde+XX; NaN, Infinity, -Infinity in JSON
 *   objects   {"k": v, "k2": v2}, arrays [a, b], in the parsed order
 */
#include "chat_json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Nesting the parser accepts (the server reads request bodies as deep); the
 * writers recurse at most this deep. */
#define CHAT_JSON_DEPTH 64

json_object *chat_json_parse(const char *text, size_t len)
{
	if (len > (size_t)INT32_MAX)
		return NULL;
	json_tokener *tok = json_tokener_new_ex(CHAT_JSON_DEPTH);
	if (!tok)
		return NULL;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	json_object *v = json_tokener_parse_ex(tok, text, (int)len);
	size_t end = json_tokener_get_parse_end(tok);
	if (!v && json_tokener_get_error(tok) == json_tokener_continue) {
		/* a bare number ("3") ends only where something follows it */
		v = json_tokener_parse_ex(tok, " ", 1);
		end = len;
	}
	bool ok = v && json_tokener_get_error(tok) == json_tokener_success;
	/* json-c stops at the end of the value; only whitespace may follow */
	for (size_t i = end; ok && i < len; i++)
		ok = text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r';
	json_tokener_free(tok);
	if (!ok) {
		json_object_put(v);
		return NULL;
	}
	return v;
}

static void dump_string(struct chat_out *o, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	chat_put_n(o, "\"", 1);
	size_t run = 0; /* bytes copied as they are, written in one go */
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		const char *esc = NULL;
		char u[7];
		switch (c) {
		case '"': esc = "\\\""; break;
		case '\\': esc = "\\\\"; break;
		case '\n': esc = "\\n"; break;
		case '\r': esc = "\\r"; break;
		case '\t': esc = "\\t"; break;
		case '\b': esc = "\\b"; break;
		case '\f': esc = "\\f"; break;
		default:
			if (c < 0x20) {
				memcpy(u, "\\u00", 4);
				u[4] = hex[c >> 4], u[5] = hex[c & 15], u[6] = 0;
				esc = u;
			}
		}
		if (!esc) {
			run++;
			continue;
		}
		chat_put_n(o, s + i - run, run);
		run = 0;
		chat_put(o, esc);
	}
	chat_put_n(o, s + n - run, run);
	chat_put_n(o, "\"", 1);
}

/* Python's repr(float) of a finite v into buf (>= 32 bytes). */
static void float_repr(double v, char *buf)
{
	char e[40];
	int prec = 1;
	for (; prec <= 17; prec++) { /* the shortest that reads back the same */
		snprintf(e, sizeof(e), "%.*e", prec - 1, v);
		if (strtod(e, NULL) == v)
			break;
	}
	/* e is [-]d[.ddd]e(+|-)XX: collect the digits and the exponent */
	const char *p = e;
	char digits[20];
	int nd = 0;
	char *w = buf;
	if (*p == '-')
		*w++ = '-', p++;
	for (; *p && *p != 'e'; p++)
		if (*p != '.')
			digits[nd++] = *p;
	int exp10 = atoi(p + 1);
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	if (exp10 < -4 || exp10 >= 16) {
		*w++ = digits[0];
		if (nd > 1) {
			*w++ = '.';
			memcpy(w, digits + 1, (size_t)nd - 1);
			w += nd - 1;
		}
		sprintf(w, "e%c%02d", exp10 < 0 ? '-' : '+', abs(exp10));
		return;
	}
	if (exp10 < 0) {
		*w++ = '0', *w++ = '.';
		for (int i = 0; i < -exp10 - 1; i++)
			*w++ = '0';
		memcpy(w, digits, (size_t)nd);
		w[nd] = 0;
		return;
	}
	for (int i = 0; i <= exp10; i++) /* the whole part, zero-padded */
		*w++ = i < nd ? digits[i] : '0';
	*w++ = '.';
	if (nd > exp10 + 1) {
		memcpy(w, digits + exp10 + 1, (size_t)(nd - exp10 - 1));
		w += nd - exp10 - 1;
	} else {
		*w++ = '0';
	}
	*w = 0;
}

static void dump_double(struct chat_out *o, double v, bool json)
{
	char buf[40];
	if (isnan(v))
		chat_put(o, json ? "NaN" : "nan");
	else if (isinf(v))
		chat_put(o, v < 0 ? (json ? "-Infinity" : "-inf") : (json ? "Infinity" : "inf"));
	else
		float_repr(v, buf), chat_put(o, buf);
}

static void dump_value(struct chat_out *o, const json_object *v, bool json)
{
	json_object *mv = (json_object *)v; /* json-c's getters take non-const */
	switch (json_object_get_type(v)) {
	case json_type_null:
		chat_put(o, json ? "null" : "None");
		break;
	case json_type_boolean:
		chat_put(o, json_object_get_boolean(v) ? (json ? "true" : "True")
						       : (json ? "false" : "False"));
		break;
	case json_type_int: /* json-c prints int64 and uint64 exactly, as Python's int */
		chat_put(o, json_object_to_json_string_ext(mv, JSON_C_TO_STRING_PLAIN));
		break;
	case json_type_double:
		dump_double(o, json_object_get_double(v), json);
		break;
	case json_type_string:
		if (json)
			dump_string(o, json_object_get_string(mv),
				    (size_t)json_object_get_string_len(v));
		else
			chat_put_n(o, json_object_get_string(mv),
				   (size_t)json_object_get_string_len(v));
		break;
	case json_type_array: {
		size_t n = json_object_array_length(v);
		chat_put(o, "[");
		for (size_t i = 0; i < n; i++) {
			if (i)
				chat_put(o, ", ");
			dump_value(o, json_object_array_get_idx(v, i), true);
		}
		chat_put(o, "]");
		break;
	}
	case json_type_object: {
		bool first = true;
		chat_put(o, "{");
		json_object_object_foreach(mv, key, val) {
			if (!first)
				chat_put(o, ", ");
			first = false;
			dump_string(o, key, strlen(key));
			chat_put(o, ": ");
			dump_value(o, val, true);
		}
		chat_put(o, "}");
		break;
	}
	}
}

void chat_json_dump(struct chat_out *o, const json_object *v)
{
	dump_value(o, v, true);
}

void chat_json_str(struct chat_out *o, const json_object *v)
{
	dump_value(o, v, false);
}
