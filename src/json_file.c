/* json_file.c: see json_file.h. */
#include "json_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

json_object *json_file_read(const char *path, unsigned max_bytes, bool want_object,
			    struct fm_error *err)
{
	FILE *fp = fopen(path, "rb");
	if (!fp) {
		int e = errno;
		fm_err(err, -e, path, FM_NO_OFFSET, "cannot open: %s", strerror(e));
		return NULL;
	}
	char *buf = NULL;
	json_object *root = NULL;
	long size = fseek(fp, 0, SEEK_END) == 0 ? ftell(fp) : -1;
	if (size < 0 || (unsigned long)size > max_bytes || fseek(fp, 0, SEEK_SET)) {
		fm_err(err, FM_ERANGE, path, FM_NO_OFFSET, "size %ld not in 0..%u", size, max_bytes);
		goto out;
	}
	buf = malloc((size_t)size + 1);
	if (!buf || fread(buf, 1, (size_t)size, fp) != (size_t)size) {
		fm_err(err, buf ? FM_EIO : FM_ENOMEM, path, FM_NO_OFFSET, "cannot read %ld bytes",
		       size);
		goto out;
	}
	json_tokener *tk = json_tokener_new();
	if (!tk) {
		fm_err(err, FM_ENOMEM, path, FM_NO_OFFSET, "out of memory");
		goto out;
	}
	root = json_tokener_parse_ex(tk, buf, (int)size);
	enum json_tokener_error je = json_tokener_get_error(tk);
	bool not_object = root && want_object && !json_object_is_type(root, json_type_object);
	if (!root || je != json_tokener_success || not_object) {
		fm_err(err, FM_EFORMAT, path, json_tokener_get_parse_end(tk), "JSON: %s",
		       je == json_tokener_continue ? "truncated" :
		       je != json_tokener_success ? json_tokener_error_desc(je) : "not an object");
		json_object_put(root);
		root = NULL;
	}
	json_tokener_free(tk);
out:
	free(buf);
	fclose(fp);
	return root;
}
