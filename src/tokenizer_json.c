/* tokenizer_json.c: a tokenizer from a Hugging Face tokenizer.json.
 *
 * Follows the tokenizers library's serialisation (version "1.0"):
 *   model: {type "BPE", vocab {string: id}, merges ["a b"] or [["a","b"]],
 *           ignore_merges, continuing_subword_prefix, end_of_word_suffix}
 *   added_tokens: [{id, content, special, ...}]
 *   normalizer: null | {type "NFC"} | {type "Sequence", normalizers [NFC]}
 *   pre_tokenizer: {type "Sequence", pretokenizers [Split{pattern {Regex},
 *                  behavior "Isolated"}, ByteLevel{use_regex false}]}
 *                  | {type "ByteLevel", use_regex true}
 * Anything else is FM_EUNSUPPORTED, named in the error. The optional
 * tokenizer_config.json beside it gives eos/bos/pad, add_bos_token and
 * chat_template. Parsing uses json-c (Debian libjson-c-dev).
 */
#include "tokenizer_int.h"

#include "json_file.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_BYTES (1u << 30)

static json_object *get(json_object *o, const char *key)
{
	json_object *v = NULL;
	return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

/* The string value of o.key, or NULL. */
static const char *get_str(json_object *o, const char *key)
{
	json_object *v = get(o, key);
	return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static bool str_is(json_object *o, const char *key, const char *want)
{
	const char *s = get_str(o, key);
	return s && !strcmp(s, want);
}

struct jvocab {
	int n;
	const char **strs;
	uint32_t *lens;
	uint8_t *types;
};

/* Ids go up to 2^24, config.json's largest vocab_size (convert.c): a token
 * past it could never have an embedding row. */
#define JSON_MAX_ID ((1 << 24) - 1)

/* o as an id in 0..JSON_MAX_ID, or -1. */
static int json_id(json_object *o)
{
	int64_t id = json_object_get_int64(o);
	return json_object_is_type(o, json_type_int) && id >= 0 && id <= JSON_MAX_ID ? (int)id
										      : -1;
}

/* Highest id in vocab and added_tokens + 1, each id and content checked. */
static int vocab_size(json_object *vocab, json_object *added, const char *path,
		      struct fm_error *err)
{
	int max = -1;
	if (!json_object_object_length(vocab))
		return fm_err(err, FM_EFORMAT, path, FM_NO_OFFSET, "model.vocab is empty");
	for (struct lh_entry *e = lh_table_head(json_object_get_object(vocab)); e; e = e->next) {
		json_object *v = (json_object *)lh_entry_v(e);
		int id = json_id(v);
		if (id < 0)
			return fm_err(err, FM_EFORMAT, path, FM_NO_OFFSET,
				      "model.vocab: token '%.64s' has id %s (expected an integer "
				      "in 0..%d)", (const char *)lh_entry_k(e),
				      json_object_to_json_string(v), JSON_MAX_ID);
		max = id > max ? id : max;
	}
	size_t na = added ? json_object_array_length(added) : 0;
	for (size_t i = 0; i < na; i++) {
		json_object *a = json_object_array_get_idx(added, i);
		int id = json_id(get(a, "id"));
		if (id < 0 || !get_str(a, "content"))
			return fm_err(err, FM_EFORMAT, path, FM_NO_OFFSET,
				      "added_tokens[%zu]: id %s, content %s (expected an integer id "
				      "in 0..%d and a string)", i,
				      json_object_to_json_string(get(a, "id")),
				      get_str(a, "content") ? "a string" : "missing", JSON_MAX_ID);
		max = id > max ? id : max;
	}
	/* Unused ids cost a table row each: a file may leave some (padding,
	 * removed tokens), not millions (a 2 KB file asking for 2^24 rows). */
	size_t n_tok = (size_t)json_object_object_length(vocab) + na;
	if ((size_t)max >= 2 * n_tok + 1024)
		return fm_err(err, FM_EFORMAT, path, FM_NO_OFFSET,
			      "ids go up to %d but there are %zu tokens (at most 2 x tokens + "
			      "1024 ids)", max, n_tok);
	return max + 1;
}

/* The vocabulary by id. An id names one token: model.vocab's, or an added
 * token's, which may repeat the vocab entry of its id (GPT-2's
 * <|endoftext|>) or take an id past model.vocab (Qwen's). */
static int collect_vocab(json_object *vocab, json_object *added, struct jvocab *v,
			 const char *path, struct fm_error *err)
{
	v->n = vocab_size(vocab, added, path, err);
	if (v->n < 0)
		return v->n;
	v->strs = calloc((size_t)v->n, sizeof(*v->strs));
	v->lens = calloc((size_t)v->n, sizeof(*v->lens));
	v->types = calloc((size_t)v->n, 1);
	if (!v->strs || !v->lens || !v->types)
		return fm_err(err, FM_ENOMEM, path, FM_NO_OFFSET, "out of memory");
	for (struct lh_entry *e = lh_table_head(json_object_get_object(vocab)); e; e = e->next) {
		int id = json_id((json_object *)lh_entry_v(e));
		const char *s = (const char *)lh_entry_k(e);
		if (v->strs[id])
			return fm_err(err, FM_EFORMAT, path, FM_NO_OFFSET,
				      "model.vocab: '%.64s' and '%.64s' both have id %d", v->strs[id],
				      s, id);
		v->strs[id] = s;
		v->lens[id] = (uint32_t)strlen(s);
		v->types[id] = TOK_TYPE_NORMAL;
	}
	size_t na = added ? json_object_array_length(added) : 0;
	for (size_t i = 0; i < na; i++) {
		json_object *a = json_object_array_get_idx(added, i), *c = get(a, "content");
		int id = json_id(get(a, "id"));
		const char *s = json_object_get_string(c);
		uint32_t len = (uint32_t)json_object_get_string_len(c);
		if (v->strs[id] && (v->lens[id] != len || memcmp(v->strs[id], s, len)))
			return fm_err(err, FM_EFORMAT, path, FM_NO_OFFSET,
				      v->types[id] == TOK_TYPE_NORMAL
				      ? "added_tokens[%zu]: id %d is '%.64s' in model.vocab, not '%.64s'"
				      : "added_tokens[%zu]: id %d is also '%.64s', not '%.64s'",
				      i, id, v->strs[id], s);
		v->strs[id] = s;
		v->lens[id] = len;
		v->types[id] = json_object_get_boolean(get(a, "special")) ? TOK_TYPE_CONTROL
									  : TOK_TYPE_USER_DEFINED;
	}
	return 0;
}

/* One merge: "a b" (split at the first space, as HF does) or ["a", "b"]. */
static int add_json_merge(struct tok *t, json_object *m, size_t i, const char *path,
			  struct fm_error *err)
{
	const char *l = NULL, *r = NULL;
	size_t ll = 0, rl = 0;
	if (json_object_is_type(m, json_type_string)) {
		l = json_object_get_string(m);
		size_t n = (size_t)json_object_get_string_len(m);
		const char *sp = memchr(l, ' ', n);
		if (sp) {
			ll = (size_t)(sp - l);
			r = sp + 1;
			rl = n - ll - 1;
		}
	} else if (json_object_is_type(m, json_type_array) && json_object_array_length(m) == 2) {
		json_object *a = json_object_array_get_idx(m, 0), *b = json_object_array_get_idx(m, 1);
		if (json_object_is_type(a, json_type_string) && json_object_is_type(b, json_type_string)) {
			l = json_object_get_string(a);
			ll = (size_t)json_object_get_string_len(a);
			r = json_object_get_string(b);
			rl = (size_t)json_object_get_string_len(b);
		}
	}
	if (!r)
		return fm_err(err, FM_EFORMAT, path, FM_NO_OFFSET,
			      "model.merges[%zu]: expected \"a b\" or [\"a\", \"b\"]", i);
	if (tok_build_merge(t, l, ll, r, rl))
		return fm_err(err, FM_ENOMEM, path, FM_NO_OFFSET, "out of memory");
	return 0;
}

static bool normalizer_is_nfc(json_object *n, bool *nfc)
{
	*nfc = false;
	if (!n)
		return true;
	if (str_is(n, "type", "NFC"))
		return (*nfc = true);
	json_object *seq = get(n, "normalizers");
	if (!str_is(n, "type", "Sequence") || !json_object_is_type(seq, json_type_array))
		return false; /* (json-c asserts on the length of a non-array) */
	for (size_t i = 0; i < json_object_array_length(seq); i++)
		if (!normalizer_is_nfc(json_object_array_get_idx(seq, i), nfc) || !*nfc)
			return false;
	return true;
}

/* The pre-tokenizer's regex (HF syntax), or NULL if unsupported. */
static const char *pre_pattern(json_object *p)
{
	if (str_is(p, "type", "ByteLevel"))
		return json_object_get_boolean(get(p, "use_regex")) &&
		       !json_object_get_boolean(get(p, "add_prefix_space")) ? tok_re_gpt2 : NULL;
	json_object *seq = get(p, "pretokenizers");
	if (!str_is(p, "type", "Sequence") || !json_object_is_type(seq, json_type_array) ||
	    json_object_array_length(seq) != 2)
		return NULL;
	json_object *split = json_object_array_get_idx(seq, 0);
	json_object *bl = json_object_array_get_idx(seq, 1);
	if (!str_is(split, "type", "Split") || !str_is(split, "behavior", "Isolated") ||
	    json_object_get_boolean(get(split, "invert")) || !str_is(bl, "type", "ByteLevel") ||
	    json_object_get_boolean(get(bl, "use_regex")) ||
	    json_object_get_boolean(get(bl, "add_prefix_space")))
		return NULL;
	return get_str(get(split, "pattern"), "Regex");
}

static const char *pre_name_of(const char *pattern)
{
	return !strcmp(pattern, tok_re_qwen2)    ? "qwen2"
	       : !strcmp(pattern, tok_re_qwen35) ? "qwen35"
	       : !strcmp(pattern, tok_re_gpt2)   ? "default"
						 : "custom";
}

static int check_model(json_object *root, const char *path, struct fm_error *err)
{
	json_object *model = get(root, "model");
	const char *type = get_str(model, "type");
	if (!model || (type && strcmp(type, "BPE")))
		return fm_err(err, FM_EUNSUPPORTED, path, FM_NO_OFFSET,
			      "model type '%s': only BPE is supported", type ? type : "(none)");
	const char *cp = get_str(model, "continuing_subword_prefix");
	const char *ew = get_str(model, "end_of_word_suffix");
	if ((cp && *cp) || (ew && *ew))
		return fm_err(err, FM_EUNSUPPORTED, path, FM_NO_OFFSET,
			      "BPE with subword prefix/suffix is not supported");
	if (!json_object_is_type(get(model, "vocab"), json_type_object) ||
	    !json_object_is_type(get(model, "merges"), json_type_array))
		return fm_err(err, FM_EFORMAT, path, FM_NO_OFFSET, "model.vocab or merges missing");
	json_object *added = get(root, "added_tokens");
	if (added && !json_object_is_type(added, json_type_array))
		return fm_err(err, FM_EFORMAT, path, FM_NO_OFFSET, "added_tokens: not an array");
	return 0;
}

/* A special token named in tokenizer_config.json: "text" or {"content": ..}. */
static int32_t config_token(const struct tok *t, json_object *cfg, const char *key)
{
	json_object *v = get(cfg, key);
	const char *s = json_object_is_type(v, json_type_string) ? json_object_get_string(v)
								 : get_str(v, "content");
	return s ? tok_find(t, s, strlen(s)) : -1;
}

/* Defaults from the vocabulary, then tokenizer_config.json if present. */
static int read_config(struct tok *t, const char *path, struct fm_error *err)
{
	t->eos = tok_find(t, "<|im_end|>", 10);
	if (t->eos < 0)
		t->eos = tok_find(t, "<|endoftext|>", 13);
	t->pad = tok_find(t, "<|endoftext|>", 13);
	const char *slash = strrchr(path, '/');
	char cpath[4096];
	snprintf(cpath, sizeof(cpath), "%.*stokenizer_config.json",
		 slash ? (int)(slash - path + 1) : 0, path);
	FILE *fp = fopen(cpath, "rb");
	if (!fp)
		return 0;
	fclose(fp);
	json_object *cfg = json_file_read(cpath, JSON_MAX_BYTES, false, err);
	if (!cfg)
		return err ? err->code : FM_EFORMAT;
	int32_t id;
	if ((id = config_token(t, cfg, "eos_token")) >= 0)
		t->eos = id;
	if ((id = config_token(t, cfg, "pad_token")) >= 0)
		t->pad = id;
	t->bos = config_token(t, cfg, "bos_token");
	t->add_bos = json_object_get_boolean(get(cfg, "add_bos_token"));
	const char *tmpl = get_str(cfg, "chat_template");
	if (tmpl && !(t->chat_template = strdup(tmpl))) {
		json_object_put(cfg);
		return fm_err(err, FM_ENOMEM, cpath, FM_NO_OFFSET, "out of memory");
	}
	json_object_put(cfg);
	return 0;
}

static struct tok *build(json_object *root, const char *path, struct fm_error *err)
{
	struct jvocab v = { 0 };
	struct tok *t = NULL;
	bool nfc;
	json_object *model = get(root, "model"), *merges = get(model, "merges");
	const char *pattern = pre_pattern(get(root, "pre_tokenizer"));
	if (!pattern || !normalizer_is_nfc(get(root, "normalizer"), &nfc)) {
		fm_err(err, FM_EUNSUPPORTED, path, FM_NO_OFFSET, "%s not supported",
		       pattern ? "normalizer" : "pre_tokenizer");
		goto fail;
	}
	if (collect_vocab(get(model, "vocab"), get(root, "added_tokens"), &v, path, err))
		goto fail;
	t = tok_build_begin(v.n, v.strs, v.lens, v.types, path, err);
	if (!t)
		goto fail;
	for (size_t i = 0; i < json_object_array_length(merges); i++)
		if (add_json_merge(t, json_object_array_get_idx(merges, i), i, path, err))
			goto fail;
	t->nfc = nfc;
	t->ignore_merges = json_object_get_boolean(get(model, "ignore_merges"));
	if (read_config(t, path, err) || tok_build_finish(t, pattern, pre_name_of(pattern), path, err))
		goto fail;
	free(v.strs);
	free(v.lens);
	free(v.types);
	return t;
fail:
	tok_free(t);
	free(v.strs);
	free(v.lens);
	free(v.types);
	return NULL;
}

struct tok *tok_load_json(const char *path, struct fm_error *err)
{
	json_object *root = json_file_read(path, JSON_MAX_BYTES, false, err);
	if (!root)
		return NULL;
	struct tok *t = check_model(root, path, err) ? NULL : build(root, path, err);
	json_object_put(root);
	if (!t && err && !err->file[0])
		snprintf(err->file, sizeof(err->file), "%s", path);
	return t;
}
