/* chat_session.h: one conversation of `flashmoe chat`: its messages, the
 * token ids the KV cache holds, and a turn (template -> tokens -> reuse of the
 * cached prefix -> streamed answer). Used by cmd_chat.c; uses only flashmoe.h.
 */
#ifndef FM_CLI_CHAT_SESSION_H
#define FM_CLI_CHAT_SESSION_H

#include <signal.h>
#include <stdbool.h>

#include "flashmoe.h"

struct chat_session_opts {
	const char *tmpl;   /* template name for fm_chat_render ("chatml", "qwen3", ...) */
	const char *system; /* system message, or NULL */
	bool think;         /* enable_thinking for Qwen3 templates */
	bool verbose;       /* one "[turn N: ...]" line per turn on stderr */
	int n_predict;      /* most tokens per answer */
	int n_ctx;          /* context size in tokens */
	struct fm_sampler_params sp;
};

struct chat_session;

/* A conversation on model m (borrowed; it must have a tokenizer). stop is set
 * by the caller's SIGINT handler: answers and prompt evaluation check it
 * between tokens. NULL on failure, message printed. */
struct chat_session *chat_session_new(struct fm_model *m, const struct chat_session_opts *o,
				      volatile sig_atomic_t *stop);
void chat_session_free(struct chat_session *s);
/* One user turn; the answer streams to stdout. 0 (also when the turn was
 * stopped or did not fit the context: said on stderr), or a negative code
 * after an engine error (printed). */
int chat_session_turn(struct chat_session *s, const char *user_text);
/* Forget the conversation (the system message stays) and empty the cache. */
int chat_session_reset(struct chat_session *s);

#endif
