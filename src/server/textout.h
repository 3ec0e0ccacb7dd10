/* textout.h: the text of one generation on its way into its request (req.h):
 * stop strings (text that may begin one is held back until it cannot), then,
 * for a chat, the output parser (fm_chat_parser: content, reasoning, tool
 * calls), then the request's events. The engine feeds it the decoded text
 * of each token; no model, no threads. */
#ifndef FM_SERVER_TEXTOUT_H
#define FM_SERVER_TEXTOUT_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "req.h"

struct textout {
	struct srv_req *r;             /* borrowed */
	struct fm_chat_parser *parser; /* r->chat: its template, in_think and tools */
	struct sbuf held;              /* text that may be the start of a stop string */
	bool stopped;                  /* a stop string ended the text */
};

/* Start on request r (t zeroed or ended before). 0 or FM_ENOMEM. */
int textout_start(struct textout *t, struct srv_req *r);
/* The next text; true when a stop string ended the generation (the text
 * from the stop string on is dropped). */
bool textout_feed(struct textout *t, const char *text, size_t len);
/* The generation ended (why: REQ_FINISH_STOP or _LENGTH) after the final
 * bytes tail (an incomplete character held by the decoder, or NULL): send
 * what was held, finish the parser; returns why, or REQ_FINISH_TOOL_CALLS
 * when the model called tools. */
enum req_finish textout_end(struct textout *t, enum req_finish why, const char *tail, size_t n_tail);
/* Drop the parser (any time; after textout_end or for a canceled request). */
void textout_release(struct textout *t);
void textout_free(struct textout *t);

#endif
