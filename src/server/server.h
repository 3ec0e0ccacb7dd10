/* server.h: the HTTP side of `flashmoe serve`: libmicrohttpd with a thread per
 * connection, the routes, the API key, the body limit, waiting on requests
 * (and noticing clients that leave), /metrics. The engine (engine.h) does
 * the generation; the OpenAI JSON is oai.h's. Uses only flashmoe.h of the
 * engine library. */
#ifndef FM_SERVER_SERVER_H
#define FM_SERVER_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "engine.h"
#include "oai.h"

struct server_opts {
	const char *host;       /* numeric or a name; "127.0.0.1" by default */
	int port;               /* 0: any free port (server_port says which) */
	const char *api_key;    /* NULL: no key needed */
	size_t max_body_bytes;  /* larger request bodies get 413 */
	int max_conn;           /* simultaneous connections */
	bool verbose;           /* libmicrohttpd's messages to stderr */
};

struct server;

/* Listen and serve (threads of its own) until server_free. NULL on failure
 * with the reason in errbuf. env and eng are borrowed. */
struct server *server_new(struct fm_model *m, struct engine *eng, const struct oai_env *env,
			  const struct server_opts *o, char *errbuf, size_t cap);
int server_port(const struct server *s);
/* Stop accepting, end every connection, free. */
void server_free(struct server *s);

#endif
