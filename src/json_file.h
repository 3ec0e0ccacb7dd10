/* json_file.h: a whole JSON file, read and parsed with json-c (Debian
 * libjson-c-dev), for the readers of Hugging Face files (tokenizer.json,
 * config.json, model.safetensors.index.json). */
#ifndef FM_JSON_FILE_H
#define FM_JSON_FILE_H

#include <json-c/json.h>
#include <stdbool.h>

#include "util.h"

/* The parsed file (the caller json_object_put()s it), or NULL with err filled:
 * cannot open, larger than max_bytes, truncated or malformed JSON (with the
 * byte offset), or, when want_object, a top level that is not an object. */
json_object *json_file_read(const char *path, unsigned max_bytes, bool want_object,
			    struct fm_error *err);

#endif
