/* gguf_get.c: lookups in an open GGUF file (gguf.h): file facts, keys and
 * arrays by index, typed getters by key, tensors by index or name.
 *
 * Owns: reading values out of the tables gguf.c built (gguf_internal.h); the
 * integer conversions of the typed getters (a value converts to a wider or
 * narrower integer type only when it fits). Does not own parsing (gguf.c).
 * Values were bounds-checked at open, so nothing here re-checks the file.
 */
#include <string.h>

#include "gguf.h"
#include "gguf_internal.h"
#include "util.h"

/* ---- file-level getters ---- */

const char *gguf_path(const struct gguf_file *f) { return f->path; }
uint32_t gguf_version(const struct gguf_file *f) { return f->version; }
uint64_t gguf_file_size(const struct gguf_file *f) { return f->size; }
uint32_t gguf_alignment(const struct gguf_file *f) { return f->alignment; }
uint64_t gguf_data_offset(const struct gguf_file *f) { return f->data_offset; }
uint64_t gguf_n_kv(const struct gguf_file *f) { return f->n_kv; }
uint64_t gguf_n_tensors(const struct gguf_file *f) { return f->n_tensors; }

/* ---- metadata by index ---- */

int64_t gguf_find_key(const struct gguf_file *f, const char *key)
{
	return key ? gguf_hash_get(&f->kv_hash, key, strlen(key)) : -1;
}

const char *gguf_kv_key(const struct gguf_file *f, uint64_t i)
{
	return i < f->n_kv ? f->kv[i].key_z : NULL;
}

enum gguf_type gguf_kv_type(const struct gguf_file *f, uint64_t i)
{
	return i < f->n_kv ? (enum gguf_type)f->kv[i].type : GGUF_TYPE_COUNT;
}

static const struct gguf_kv *array_kv(const struct gguf_file *f, uint64_t i)
{
	return i < f->n_kv && f->kv[i].type == GGUF_TYPE_ARRAY ? &f->kv[i] : NULL;
}

enum gguf_type gguf_kv_arr_type(const struct gguf_file *f, uint64_t i)
{
	const struct gguf_kv *kv = array_kv(f, i);
	return kv ? (enum gguf_type)kv->arr_type : GGUF_TYPE_COUNT;
}

uint64_t gguf_kv_arr_n(const struct gguf_file *f, uint64_t i)
{
	const struct gguf_kv *kv = array_kv(f, i);
	return kv ? kv->arr_n : 0;
}

const void *gguf_kv_arr_data(const struct gguf_file *f, uint64_t i)
{
	const struct gguf_kv *kv = array_kv(f, i);
	return kv && kv->arr_type != GGUF_TYPE_STRING ? kv->val : NULL;
}

struct gguf_str gguf_kv_arr_str(const struct gguf_file *f, uint64_t i, uint64_t j)
{
	const struct gguf_kv *kv = array_kv(f, i);
	if (!kv || kv->arr_type != GGUF_TYPE_STRING || j >= kv->arr_n)
		return (struct gguf_str){ 0, "" };
	return kv->strs[j];
}

/* ---- typed getters ---- */

static const struct gguf_kv *get_kv(const struct gguf_file *f, const char *key,
				    struct fm_error *err)
{
	int64_t i = gguf_find_key(f, key);
	if (i < 0) {
		fm_err(err, FM_ENOTFOUND, f->path, FM_NO_OFFSET, "key '%.*s' not found",
		       key ? gguf_show_len(strlen(key)) : 0, key ? key : "");
		return NULL;
	}
	return &f->kv[i];
}

static int type_err(const struct gguf_file *f, const struct gguf_kv *kv, const char *want,
		    struct fm_error *err)
{
	return fm_err(err, FM_EFORMAT, f->path, kv->pos, "key '%.*s' has type %s, expected %s",
		      gguf_show_len(kv->key.len), kv->key.ptr, gguf_type_name(kv->type), want);
}

/* An integer value as sign and magnitude; false when kv is not an integer. */
static bool kv_int(const struct gguf_kv *kv, bool *neg, uint64_t *mag)
{
	int64_t s = 0;
	uint64_t u = 0;
	switch (kv->type) {
	case GGUF_TYPE_UINT8: { uint8_t v; memcpy(&v, kv->val, 1); u = v; break; }
	case GGUF_TYPE_UINT16: { uint16_t v; memcpy(&v, kv->val, 2); u = v; break; }
	case GGUF_TYPE_UINT32: { uint32_t v; memcpy(&v, kv->val, 4); u = v; break; }
	case GGUF_TYPE_UINT64: memcpy(&u, kv->val, 8); break;
	case GGUF_TYPE_INT8: { int8_t v; memcpy(&v, kv->val, 1); s = v; break; }
	case GGUF_TYPE_INT16: { int16_t v; memcpy(&v, kv->val, 2); s = v; break; }
	case GGUF_TYPE_INT32: { int32_t v; memcpy(&v, kv->val, 4); s = v; break; }
	case GGUF_TYPE_INT64: memcpy(&s, kv->val, 8); break;
	default: return false;
	}
	*neg = s < 0;
	*mag = s < 0 ? (uint64_t)(-(s + 1)) + 1 : u + (uint64_t)s;
	return true;
}

/* Integer value of key if it lies in [-neg_max, pos_max]. */
static int get_int(const struct gguf_file *f, const char *key, uint64_t neg_max,
		   uint64_t pos_max, const char *want, bool *neg, uint64_t *mag,
		   struct fm_error *err)
{
	const struct gguf_kv *kv = get_kv(f, key, err);
	if (!kv)
		return FM_ENOTFOUND;
	if (!kv_int(kv, neg, mag))
		return type_err(f, kv, want, err);
	if (*mag > (*neg ? neg_max : pos_max))
		return fm_err(err, FM_EFORMAT, f->path, kv->pos,
			      "key '%.*s': %s value %s%llu does not fit %s",
			      gguf_show_len(kv->key.len), kv->key.ptr, gguf_type_name(kv->type),
			      *neg ? "-" : "", (unsigned long long)*mag, want);
	return 0;
}

int gguf_get_u32(const struct gguf_file *f, const char *key, uint32_t *out, struct fm_error *err)
{
	bool neg;
	uint64_t mag;
	int rc = get_int(f, key, 0, UINT32_MAX, "u32", &neg, &mag, err);
	if (!rc)
		*out = (uint32_t)mag;
	return rc;
}

int gguf_get_u64(const struct gguf_file *f, const char *key, uint64_t *out, struct fm_error *err)
{
	bool neg;
	uint64_t mag;
	int rc = get_int(f, key, 0, UINT64_MAX, "u64", &neg, &mag, err);
	if (!rc)
		*out = mag;
	return rc;
}

int gguf_get_i64(const struct gguf_file *f, const char *key, int64_t *out, struct fm_error *err)
{
	bool neg;
	uint64_t mag;
	int rc = get_int(f, key, UINT64_C(1) << 63, INT64_MAX, "i64", &neg, &mag, err);
	if (!rc) /* -(mag - 1) - 1 stays in range for mag = 2^63 */
		*out = neg ? -(int64_t)(mag - 1) - 1 : (int64_t)mag;
	return rc;
}

int gguf_get_f64(const struct gguf_file *f, const char *key, double *out, struct fm_error *err)
{
	const struct gguf_kv *kv = get_kv(f, key, err);
	if (!kv)
		return FM_ENOTFOUND;
	if (kv->type == GGUF_TYPE_FLOAT32) {
		float v;
		memcpy(&v, kv->val, 4);
		*out = v;
	} else if (kv->type == GGUF_TYPE_FLOAT64) {
		memcpy(out, kv->val, 8);
	} else {
		return type_err(f, kv, "f32 or f64", err);
	}
	return 0;
}

int gguf_get_f32(const struct gguf_file *f, const char *key, float *out, struct fm_error *err)
{
	double d;
	int rc = gguf_get_f64(f, key, &d, err);
	if (!rc)
		*out = (float)d;
	return rc;
}

int gguf_get_bool(const struct gguf_file *f, const char *key, bool *out, struct fm_error *err)
{
	const struct gguf_kv *kv = get_kv(f, key, err);
	if (!kv)
		return FM_ENOTFOUND;
	if (kv->type != GGUF_TYPE_BOOL)
		return type_err(f, kv, "bool", err);
	*out = kv->val[0] != 0;
	return 0;
}

int gguf_get_str(const struct gguf_file *f, const char *key, struct gguf_str *out,
		 struct fm_error *err)
{
	const struct gguf_kv *kv = get_kv(f, key, err);
	if (!kv)
		return FM_ENOTFOUND;
	if (kv->type != GGUF_TYPE_STRING)
		return type_err(f, kv, "string", err);
	out->len = kv->str_len;
	out->ptr = (const char *)kv->val;
	return 0;
}

/* ---- tensors ---- */

int64_t gguf_find_tensor(const struct gguf_file *f, const char *name)
{
	return name ? gguf_hash_get(&f->ti_hash, name, strlen(name)) : -1;
}

const struct gguf_tensor_info *gguf_tensor(const struct gguf_file *f, uint64_t i)
{
	return i < f->n_tensors ? &f->ti[i] : NULL;
}

const void *gguf_tensor_data(const struct gguf_file *f, uint64_t i)
{
	if (i >= f->n_tensors || !f->map)
		return NULL;
	return f->map + f->ti[i].offset;
}
