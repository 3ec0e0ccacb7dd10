/* tokenizer_load.c: a tokenizer from and into GGUF metadata.
 *
 * Keys as llama.cpp writes them (architectures.md §10.5): tokenizer.ggml.model
 * ("gpt2" = byte-level BPE), .pre (selects the §10.2 regex), .tokens (string
 * array, byte-level form "Ġthe"), .token_type (i32 array: 1 normal, 3 control,
 * 4 user-defined, 5 unused, 6 byte), .merges (string array "left right" in
 * rank order), .bos/.eos/.padding_token_id, .add_bos_token, and
 * tokenizer.chat_template. Owns nothing else; tokenizer.json is in
 * tokenizer_json.c.
 */
#include "tokenizer_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"

struct pre_entry {
	const char *name;
	const char *pattern;
	bool nfc;
};

/* Qwen's tokenizer.json normalises to NFC (qwen2 via the slow tokenizer's
 * prepare_for_tokenization, qwen35 via normalizers.NFC); GPT-2's does not. */
static const struct pre_entry pre_table[] = {
	{ "qwen2", tok_re_qwen2, true },
	{ "qwen35", tok_re_qwen35, true },
	{ "default", tok_re_gpt2, false },
	{ "gpt2", tok_re_gpt2, false },
};

static const struct pre_entry *pre_by_name(const char *name, size_t n)
{
	for (size_t i = 0; i < sizeof(pre_table) / sizeof(pre_table[0]); i++)
		if (strlen(pre_table[i].name) == n && !memcmp(pre_table[i].name, name, n))
			return &pre_table[i];
	return NULL;
}

static int get_str_eq(const struct gguf_file *f, const char *key, const char *want,
		      struct fm_error *err)
{
	struct gguf_str s;
	int rc = gguf_get_str(f, key, &s, err);
	if (rc == FM_ENOTFOUND)
		return fm_err(err, FM_ENOTFOUND, gguf_path(f), FM_NO_OFFSET, "no key %s", key);
	if (rc)
		return rc;
	if (s.len != strlen(want) || memcmp(s.ptr, want, s.len))
		return fm_err(err, FM_EUNSUPPORTED, gguf_path(f), FM_NO_OFFSET,
			      "%s is '%.*s', only '%s' (byte-level BPE) is supported", key,
			      (int)(s.len > 64 ? 64 : s.len), s.ptr, want);
	return 0;
}

/* An optional token id key; -1 if absent. */
static int get_id(const struct gguf_file *f, const char *key, int n_vocab, int32_t *out,
		  struct fm_error *err)
{
	uint32_t v;
	int rc = gguf_get_u32(f, key, &v, err);
	*out = -1;
	if (rc == FM_ENOTFOUND)
		return 0;
	if (rc)
		return rc;
	if (v >= (uint32_t)n_vocab)
		return fm_err(err, FM_EFORMAT, gguf_path(f), FM_NO_OFFSET,
			      "%s = %u, expected < n_vocab %d", key, v, n_vocab);
	*out = (int32_t)v;
	return 0;
}

/* The string array at key: count in *n, element pointers/lengths malloc'd. */
static int get_str_arr(const struct gguf_file *f, const char *key, bool required,
		       const char ***strs, uint32_t **lens, uint64_t *n, struct fm_error *err)
{
	int64_t k = gguf_find_key(f, key);
	*n = 0;
	if (k < 0)
		return required ? fm_err(err, FM_ENOTFOUND, gguf_path(f), FM_NO_OFFSET,
					 "no key %s", key) : 0;
	if (gguf_kv_type(f, (uint64_t)k) != GGUF_TYPE_ARRAY ||
	    gguf_kv_arr_type(f, (uint64_t)k) != GGUF_TYPE_STRING)
		return fm_err(err, FM_EFORMAT, gguf_path(f), FM_NO_OFFSET,
			      "%s: expected an array of strings", key);
	*n = gguf_kv_arr_n(f, (uint64_t)k);
	if (*n > (1u << 28))
		return fm_err(err, FM_ERANGE, gguf_path(f), FM_NO_OFFSET, "%s: %llu entries",
			      key, (unsigned long long)*n);
	*strs = malloc((*n + 1) * sizeof(**strs));
	*lens = malloc((*n + 1) * sizeof(**lens));
	if (!*strs || !*lens)
		return fm_err(err, FM_ENOMEM, gguf_path(f), FM_NO_OFFSET, "out of memory");
	for (uint64_t i = 0; i < *n; i++) {
		struct gguf_str s = gguf_kv_arr_str(f, (uint64_t)k, i);
		if (s.len > 65536)
			return fm_err(err, FM_EFORMAT, gguf_path(f), FM_NO_OFFSET,
				      "%s[%llu]: %llu bytes long", key, (unsigned long long)i,
				      (unsigned long long)s.len);
		(*strs)[i] = s.ptr ? s.ptr : "";
		(*lens)[i] = (uint32_t)s.len;
	}
	return 0;
}

static int get_types(const struct gguf_file *f, uint64_t n, uint8_t **types,
		     struct fm_error *err)
{
	int64_t k = gguf_find_key(f, "tokenizer.ggml.token_type");
	*types = NULL;
	if (k < 0)
		return 0;
	if (gguf_kv_type(f, (uint64_t)k) != GGUF_TYPE_ARRAY ||
	    gguf_kv_arr_type(f, (uint64_t)k) != GGUF_TYPE_INT32 ||
	    gguf_kv_arr_n(f, (uint64_t)k) != n)
		return fm_err(err, FM_EFORMAT, gguf_path(f), FM_NO_OFFSET,
			      "tokenizer.ggml.token_type: expected %llu int32",
			      (unsigned long long)n);
	const uint8_t *raw = gguf_kv_arr_data(f, (uint64_t)k);
	*types = malloc(n ? n : 1);
	if (!*types)
		return fm_err(err, FM_ENOMEM, gguf_path(f), FM_NO_OFFSET, "out of memory");
	for (uint64_t i = 0; i < n; i++) {
		int32_t v;
		memcpy(&v, raw + 4 * i, 4);
		(*types)[i] = (uint8_t)(v >= 0 && v <= TOK_TYPE_BYTE ? v : TOK_TYPE_NORMAL);
	}
	return 0;
}

static int add_gguf_merges(struct tok *t, const struct gguf_file *f, struct fm_error *err)
{
	const char **m = NULL;
	uint32_t *ml = NULL;
	uint64_t n;
	int rc = get_str_arr(f, "tokenizer.ggml.merges", false, &m, &ml, &n, err);
	for (uint64_t i = 0; !rc && i < n; i++) {
		const char *sp = ml[i] > 1 ? memchr(m[i] + 1, ' ', ml[i] - 1) : NULL;
		if (!sp) {
			rc = fm_err(err, FM_EFORMAT, gguf_path(f), FM_NO_OFFSET,
				    "tokenizer.ggml.merges[%llu]: no space in '%.*s'",
				    (unsigned long long)i, (int)(ml[i] > 64 ? 64 : ml[i]), m[i]);
			break;
		}
		size_t ll = (size_t)(sp - m[i]);
		if (tok_build_merge(t, m[i], ll, sp + 1, ml[i] - ll - 1))
			rc = fm_err(err, FM_ENOMEM, gguf_path(f), FM_NO_OFFSET, "out of memory");
	}
	free(m);
	free(ml);
	return rc;
}

static int gguf_specials(struct tok *t, const struct gguf_file *f, struct fm_error *err)
{
	int rc = get_id(f, "tokenizer.ggml.bos_token_id", t->n_vocab, &t->bos, err);
	if (!rc)
		rc = get_id(f, "tokenizer.ggml.eos_token_id", t->n_vocab, &t->eos, err);
	if (!rc)
		rc = get_id(f, "tokenizer.ggml.padding_token_id", t->n_vocab, &t->pad, err);
	if (rc)
		return rc;
	rc = gguf_get_bool(f, "tokenizer.ggml.add_bos_token", &t->add_bos, err);
	if (rc && rc != FM_ENOTFOUND)
		return rc;
	struct gguf_str s;
	rc = gguf_get_str(f, "tokenizer.chat_template", &s, err);
	if (rc == FM_ENOTFOUND)
		return 0;
	if (rc)
		return rc;
	t->chat_template = strndup(s.ptr ? s.ptr : "", s.len);
	return t->chat_template ? 0 : fm_err(err, FM_ENOMEM, NULL, FM_NO_OFFSET, "out of memory");
}

static const struct pre_entry *gguf_pre(const struct gguf_file *f, struct fm_error *err)
{
	struct gguf_str s = { 7, "default" };
	int rc = gguf_get_str(f, "tokenizer.ggml.pre", &s, err);
	if (rc && rc != FM_ENOTFOUND)
		return NULL;
	if (rc == FM_ENOTFOUND)
		s = (struct gguf_str){ 7, "default" };
	const struct pre_entry *pre = pre_by_name(s.ptr, s.len);
	if (!pre)
		fm_err(err, FM_EUNSUPPORTED, gguf_path(f), FM_NO_OFFSET,
		       "tokenizer.ggml.pre '%.*s' is not supported (qwen2, qwen35, default)",
		       (int)(s.len > 64 ? 64 : s.len), s.ptr);
	return pre;
}

/* A model's token_embd.weight has a row per id the tokenizer can produce:
 * more tokens than rows would hand the forward pass ids it cannot embed
 * (llama.cpp refuses any mismatch; fewer tokens than rows is padding). */
static int check_embd_rows(const struct tok *t, const struct gguf_file *f, struct fm_error *err)
{
	int64_t i = gguf_find_tensor(f, "token_embd.weight");
	if (i < 0)
		return 0;
	const struct gguf_tensor_info *ti = gguf_tensor(f, (uint64_t)i);
	uint64_t rows = ti->ne[1]; /* unused dims are 1 */
	if ((uint64_t)t->n_vocab <= rows)
		return 0;
	return fm_err(err, FM_EFORMAT, gguf_path(f), FM_NO_OFFSET,
		      "tokenizer.ggml.tokens has %d tokens but token_embd.weight has %llu rows "
		      "(ids %llu..%d have no embedding)", t->n_vocab, (unsigned long long)rows,
		      (unsigned long long)rows, t->n_vocab - 1);
}

struct tok *tok_load_gguf(const struct gguf_file *f, struct fm_error *err)
{
	const char **strs = NULL;
	uint32_t *lens = NULL;
	uint8_t *types = NULL;
	uint64_t n = 0;
	struct tok *t = NULL;
	const struct pre_entry *pre;
	if (get_str_eq(f, "tokenizer.ggml.model", "gpt2", err) || !(pre = gguf_pre(f, err)))
		goto fail;
	if (get_str_arr(f, "tokenizer.ggml.tokens", true, &strs, &lens, &n, err) ||
	    get_types(f, n, &types, err))
		goto fail;
	if (n == 0) {
		fm_err(err, FM_EFORMAT, gguf_path(f), FM_NO_OFFSET, "tokenizer.ggml.tokens is empty");
		goto fail;
	}
	t = tok_build_begin((int)n, strs, lens, types, gguf_path(f), err);
	if (!t || check_embd_rows(t, f, err) || add_gguf_merges(t, f, err) ||
	    gguf_specials(t, f, err))
		goto fail;
	t->nfc = pre->nfc;
	if (tok_build_finish(t, pre->pattern, pre->name, gguf_path(f), err))
		goto fail;
	free(strs);
	free(lens);
	free(types);
	return t;
fail:
	if (err && !err->file[0])
		snprintf(err->file, sizeof(err->file), "%s", gguf_path(f));
	tok_free(t);
	free(strs);
	free(lens);
	free(types);
	return NULL;
}

/* "left right" strings of every merge, in rank order, in one blob. */
static int merge_strings(const struct tok *t, char **blob, const char ***strs)
{
	size_t total = 0, n;
	for (uint32_t i = 0; i < t->n_merges; i++) {
		tok_text_at(t, t->merges[i][0], &n);
		total += n + 2;
		tok_text_at(t, t->merges[i][1], &n);
		total += n;
	}
	*blob = malloc(total + 1);
	*strs = malloc(((size_t)t->n_merges + 1) * sizeof(**strs));
	if (!*blob || !*strs)
		return FM_ENOMEM;
	char *p = *blob;
	for (uint32_t i = 0; i < t->n_merges; i++) {
		(*strs)[i] = p;
		const char *s = tok_text_at(t, t->merges[i][0], &n);
		memcpy(p, s, n);
		p += n;
		*p++ = ' ';
		s = tok_text_at(t, t->merges[i][1], &n);
		memcpy(p, s, n);
		p += n;
		*p++ = 0;
	}
	return 0;
}

static int write_vocab(const struct tok *t, struct gguf_writer *w)
{
	const char **strs = malloc((size_t)t->n_vocab * sizeof(*strs));
	uint64_t *lens = malloc((size_t)t->n_vocab * sizeof(*lens));
	int32_t *types = malloc((size_t)t->n_vocab * sizeof(*types));
	int rc = FM_ENOMEM;
	if (!strs || !lens || !types)
		goto out;
	for (int i = 0; i < t->n_vocab; i++) {
		size_t n;
		strs[i] = tok_text_at(t, i, &n);
		lens[i] = n;
		types[i] = t->type[i];
	}
	rc = gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", strs, lens,
				     (uint64_t)t->n_vocab);
	if (!rc)
		rc = gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types,
					 (uint64_t)t->n_vocab);
out:
	free(strs);
	free(lens);
	free(types);
	return rc;
}

int tok_write_gguf(const struct tok *t, struct gguf_writer *w)
{
	if (!pre_by_name(t->pre_name, strlen(t->pre_name)))
		return FM_EUNSUPPORTED; /* a custom regex has no GGUF name */
	char *blob = NULL;
	const char **ms = NULL;
	int rc = gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
	rc = rc ? rc : gguf_writer_set_str(w, "tokenizer.ggml.pre", t->pre_name);
	rc = rc ? rc : write_vocab(t, w);
	rc = rc ? rc : merge_strings(t, &blob, &ms);
	rc = rc ? rc : gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", ms, NULL, t->n_merges);
	if (!rc && t->bos >= 0)
		rc = gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)t->bos);
	if (!rc && t->eos >= 0)
		rc = gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)t->eos);
	if (!rc && t->pad >= 0)
		rc = gguf_writer_set_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)t->pad);
	rc = rc ? rc : gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", t->add_bos);
	if (!rc && t->chat_template)
		rc = gguf_writer_set_str(w, "tokenizer.chat_template", t->chat_template);
	free(blob);
	free(ms);
	return rc;
}
