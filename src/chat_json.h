/* chat_json.h: JSON as the chat templates see it. The Jinja templates run
 * under transformers, whose tojson filter is Python's
 * json.dumps(x, ensure_ascii=False): keys in their order, ", " and ": "
 * separators, non-ASCII as is, floats as Python's repr. chat_json.c writes
 * json-c values the same way, so a tools block or a tool call's arguments
 * render byte for byte as the real template renders them.
 */
#ifndef FM_CHAT_JSON_H
#define FM_CHAT_JSON_H

#include <json-c/json.h>

#include "chat.h"

/* Strict parse of exactly len bytes (trailing whitespace allowed); NULL if
 * not one JSON value or out of memory. The caller json_object_put()s it. */
json_object *chat_json_parse(const char *text, size_t len);
/* Python's json.dumps(v, ensure_ascii=False). */
void chat_json_dump(struct chat_out *o, const json_object *v);
/* Python's str(v) for the scalars (strings raw, True/False/None, float repr);
 * objects and arrays as chat_json_dump. */
void chat_json_str(struct chat_out *o, const json_object *v);

#endif
