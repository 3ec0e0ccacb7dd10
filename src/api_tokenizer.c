/* api_tokenizer.c: the standalone tokenizer, streaming decode and chat
 * templates of flashmoe.h ("standalone tokenizer" block), over tokenizer.h
 * and chat.h. An fm_tokenizer is a struct tok (the pointer is converted,
 * never dereferenced as anything else), so fm_model_tokenizer can hand out
 * the model's own. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "chat.h"
#include "tokenizer.h"

#define SAME_FIELD(a, b, f) (offsetof(struct a, f) == offsetof(struct b, f))
_Static_assert(sizeof(struct fm_chat_msg) == sizeof(struct chat_msg) &&
		       SAME_FIELD(fm_chat_msg, chat_msg, content) &&
		       SAME_FIELD(fm_chat_msg, chat_msg, reasoning_content) &&
		       SAME_FIELD(fm_chat_msg, chat_msg, tool_calls) &&
		       SAME_FIELD(fm_chat_msg, chat_msg, n_tool_calls),
	       "fm_chat_msg and chat_msg must have one layout");
_Static_assert(sizeof(struct fm_chat_tool_call) == sizeof(struct chat_tool_call) &&
		       SAME_FIELD(fm_chat_tool_call, chat_tool_call, name) &&
		       SAME_FIELD(fm_chat_tool_call, chat_tool_call, arguments),
	       "fm_chat_tool_call and chat_tool_call must have one layout");

struct fm_detok {
	struct tok_stream s;
};

static const struct tok *T(const struct fm_tokenizer *t)
{
	return (const struct tok *)t;
}

static bool has_suffix(const char *s, const char *suf)
{
	size_t n = strlen(s), k = strlen(suf);
	return n >= k && !strcmp(s + n - k, suf);
}

struct fm_tokenizer *fm_tokenizer_load(const char *path, struct fm_error *err)
{
	if (!has_suffix(path, ".gguf"))
		return (struct fm_tokenizer *)tok_load_json(path, err);
	struct gguf_file *f = gguf_open(path, err);
	struct tok *t = f ? tok_load_gguf(f, err) : NULL;
	gguf_close(f);
	return (struct fm_tokenizer *)t;
}

void fm_tokenizer_free(struct fm_tokenizer *t)
{
	tok_free((struct tok *)t);
}

const struct fm_tokenizer *fm_model_tokenizer(const struct fm_model *m)
{
	return (const struct fm_tokenizer *)m->tok;
}

int fm_tokenizer_encode(const struct fm_tokenizer *t, const char *text, size_t len,
			bool parse_special, int32_t *ids, int cap)
{
	return tok_encode(T(t), text, len, parse_special, ids, cap);
}

const char *fm_tokenizer_piece(const struct fm_tokenizer *t, int32_t id, size_t *len)
{
	return tok_piece(T(t), id, len);
}

int fm_tokenizer_n_vocab(const struct fm_tokenizer *t) { return tok_n_vocab(T(t)); }
int32_t fm_tokenizer_bos(const struct fm_tokenizer *t) { return tok_bos(T(t)); }
bool fm_tokenizer_add_bos(const struct fm_tokenizer *t) { return tok_add_bos(T(t)); }
int32_t fm_tokenizer_eos(const struct fm_tokenizer *t) { return tok_eos(T(t)); }

bool fm_tokenizer_is_eog(const struct fm_tokenizer *t, int32_t id)
{
	return tok_is_eog(T(t), id);
}

bool fm_tokenizer_is_control(const struct fm_tokenizer *t, int32_t id)
{
	return tok_is_control(T(t), id);
}

int32_t fm_tokenizer_find(const struct fm_tokenizer *t, const char *text)
{
	return tok_find(T(t), text, strlen(text));
}

struct fm_detok *fm_detok_new(const struct fm_tokenizer *t, bool skip_control)
{
	struct fm_detok *d = malloc(sizeof(*d));
	if (d)
		tok_stream_init(&d->s, T(t), skip_control);
	return d;
}

void fm_detok_free(struct fm_detok *d)
{
	free(d);
}

size_t fm_detok_max_bytes(const struct fm_tokenizer *t)
{
	return tok_stream_max_bytes(T(t));
}

int fm_detok_feed(struct fm_detok *d, int32_t id, char *out, size_t cap)
{
	return tok_stream_feed(&d->s, id, out, cap);
}

int fm_detok_flush(struct fm_detok *d, char *out, size_t cap)
{
	return tok_stream_flush(&d->s, out, cap);
}

const char *fm_tokenizer_chat_template(const struct fm_tokenizer *t)
{
	enum chat_tmpl c = chat_tmpl_detect(tok_chat_template(T(t)));
	if (c == CHAT_TMPL_NONE && tok_find(T(t), "<|im_start|>", 12) >= 0)
		c = CHAT_TMPL_CHATML; /* no template in the file, but ChatML tokens */
	return c == CHAT_TMPL_NONE ? NULL : chat_tmpl_name(c);
}

int fm_chat_render(const char *tmpl, const struct fm_chat_msg *msgs, size_t n,
		   bool add_generation_prompt, bool enable_thinking, char *buf, size_t cap,
		   size_t *len)
{
	return chat_render(chat_tmpl_from_name(tmpl), (const struct chat_msg *)msgs, n, NULL,
			   add_generation_prompt, enable_thinking, buf, cap, len);
}

int fm_chat_render_tools(const char *tmpl, const struct fm_chat_msg *msgs, size_t n,
			 const char *tools_json, bool add_generation_prompt, bool enable_thinking,
			 char *buf, size_t cap, size_t *len)
{
	return chat_render(chat_tmpl_from_name(tmpl), (const struct chat_msg *)msgs, n, tools_json,
			   add_generation_prompt, enable_thinking, buf, cap, len);
}
