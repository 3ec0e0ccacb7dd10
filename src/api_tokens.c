/* api_tokens.c: the model's tokenizer through the public API. A model file
 * without tokenizer keys still opens (token ids work; text does not). */
#include "api_internal.h"
#include "tokenizer.h"

int api_tokenizer_open(struct fm_model *fm, struct fm_error *err)
{
	if (gguf_find_key(fm->file, "tokenizer.ggml.model") < 0)
		return 0;
	fm->tok = tok_load_gguf(fm->file, err);
	return fm->tok ? 0 : (err ? err->code : FM_EFORMAT);
}

void api_tokenizer_close(struct fm_model *fm)
{
	tok_free(fm->tok);
	fm->tok = NULL;
}

int fm_tokenize(const struct fm_model *m, const char *text, size_t len, int32_t *ids, int cap,
		bool parse_special)
{
	if (!m->tok)
		return FM_EUNSUPPORTED;
	return tok_encode(m->tok, text, len, parse_special, ids, cap);
}

const char *fm_token_bytes(const struct fm_model *m, int32_t id, size_t *len)
{
	return m->tok ? tok_piece(m->tok, id, len) : NULL;
}

int32_t fm_token_eos(const struct fm_model *m)
{
	return m->tok ? tok_eos(m->tok) : -1;
}

bool fm_token_is_eog(const struct fm_model *m, int32_t id)
{
	return m->tok && tok_is_eog(m->tok, id);
}
