/* server.c: the HTTP side of `flashmoe serve` (server.h).
 *
 * libmicrohttpd runs a thread per connection, so a connection's thread may
 * wait: a non-streamed request waits in the access handler until its
 * answer is complete, a streamed one in the content reader until the engine
 * has appended text (req.h). Waits last 100 ms at most; between them the
 * socket is polled for the client's hang-up (POLLRDHUP), which cancels the
 * request and frees its slot at the engine's next step. The engine thread
 * never writes to a socket, so a slow client only grows its own buffer.
 */
#include "server.h"

#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "metrics.h"
#include "page.h"

#define WAIT_MS 100

struct server {
	struct server_opts o;
	struct fm_model *m;
	struct engine *eng;
	const struct oai_env *env;
	struct MHD_Daemon *d;
	int port;
	atomic_bool stopping;
	double t_start;
	long long created;
	struct http_counts hc;
};

/* The state of one HTTP request, from its headers to its end. */
struct conn_state {
	struct sbuf body;
	bool too_big;
};

/* A streamed answer: what the content reader needs. */
struct stream {
	struct server *s;
	struct oai_call call;
	int fd;
	size_t n_seen;          /* events formatted so far */
	struct sbuf out;        /* formatted, not yet sent: out.p[pos..n) */
	size_t pos;
	bool ended;
};

/* ---- replies ---- */

static enum MHD_Result reply(struct server *s, struct MHD_Connection *conn, int status,
			     const char *ctype, struct sbuf *body)
{
	atomic_fetch_add(&s->hc.by_status[metrics_status_index(status)], 1);
	struct MHD_Response *resp = MHD_create_response_from_buffer(body->n, body->p,
								    MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		sbuf_free(body);
		return MHD_NO;
	}
	*body = (struct sbuf){ 0 };
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	if (status == 503 || status == 429)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
	if (status == 401)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
	enum MHD_Result rc = MHD_queue_response(conn, (unsigned)status, resp);
	MHD_destroy_response(resp);
	return rc;
}

static enum MHD_Result reply_json(struct server *s, struct MHD_Connection *conn, int status,
				  struct sbuf *body)
{
	return reply(s, conn, status, "application/json", body);
}

static enum MHD_Result reply_error(struct server *s, struct MHD_Connection *conn,
				   const struct oai_error *e)
{
	struct sbuf b = { 0 };
	if (oai_error_json(&b, e)) {
		sbuf_free(&b);
		return MHD_NO;
	}
	return reply_json(s, conn, e->status, &b);
}

static enum MHD_Result fail(struct server *s, struct MHD_Connection *conn, int status,
			    const char *type, const char *code, const char *msg)
{
	struct oai_error e;
	oai_fail(&e, status, type, NULL, code, "%s", msg);
	return reply_error(s, conn, &e);
}

/* ---- waiting on a request ---- */

/* The client closed its end (or the socket failed). */
static bool client_gone(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLRDHUP };
	return fd >= 0 && poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

/* r->mu held: wait for events past n_seen or the end. false when the client
 * left or the server stops (then the request is canceled). */
static bool wait_request(struct server *s, struct srv_req *r, int fd, size_t n_seen)
{
	while (r->n_ev <= n_seen && r->finish == REQ_GOING) {
		req_wait_locked(r, n_seen, WAIT_MS);
		if (r->n_ev > n_seen || r->finish != REQ_GOING)
			break;
		if (client_gone(fd) || atomic_load(&s->stopping)) {
			atomic_store(&r->cancel, true);
			atomic_fetch_add(&s->hc.disconnected, 1);
			return false;
		}
	}
	return true;
}

static int conn_fd(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	return ci ? ci->connect_fd : -1;
}

/* ---- streamed answers ---- */

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct stream *st = cls;
	struct srv_req *r = st->call.r;
	(void)pos;
	while (st->pos == st->out.n) {
		if (st->ended)
			return MHD_CONTENT_READER_END_OF_STREAM;
		st->out.n = st->pos = 0;
		pthread_mutex_lock(&r->mu);
		bool ok = wait_request(st->s, r, st->fd, st->n_seen);
		int rc = 0;
		if (ok && r->n_ev > st->n_seen)
			rc = oai_stream_events(&st->out, &st->call, st->n_seen, r->n_ev);
		st->n_seen = r->n_ev;
		if (ok && !rc && r->finish != REQ_GOING) {
			rc = oai_stream_end(&st->out, &st->call);
			st->ended = true;
		}
		pthread_mutex_unlock(&r->mu);
		if (!ok || rc) {
			atomic_store(&r->cancel, true);
			st->ended = true; /* counted as gone by wait_request */
			return MHD_CONTENT_READER_END_WITH_ERROR;
		}
	}
	size_t n = st->out.n - st->pos < max ? st->out.n - st->pos : max;
	memcpy(buf, st->out.p + st->pos, n);
	st->pos += n;
	return (ssize_t)n;
}

static void stream_free(void *cls)
{
	struct stream *st = cls;
	/* the response is gone (sent, or the connection failed): a request still
	 * running has nobody to answer */
	if (!st->ended)
		atomic_fetch_add(&st->s->hc.disconnected, 1);
	atomic_store(&st->call.r->cancel, true);
	oai_call_release(&st->call);
	sbuf_free(&st->out);
	free(st);
}

static enum MHD_Result answer_stream(struct server *s, struct MHD_Connection *conn,
				     struct oai_call *c)
{
	struct stream *st = calloc(1, sizeof(*st));
	if (!st) {
		atomic_store(&c->r->cancel, true);
		oai_call_release(c);
		return MHD_NO;
	}
	st->s = s;
	st->call = *c;
	st->fd = conn_fd(conn);
	struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384,
								      stream_read, st, stream_free);
	if (!resp) {
		stream_free(st);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	atomic_fetch_add(&s->hc.by_status[metrics_status_index(200)], 1);
	enum MHD_Result rc = MHD_queue_response(conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return rc;
}

/* ---- generation routes ---- */

static enum MHD_Result answer_whole(struct server *s, struct MHD_Connection *conn,
				    struct oai_call *c)
{
	struct srv_req *r = c->r;
	pthread_mutex_lock(&r->mu);
	bool ok = wait_request(s, r, conn_fd(conn), SIZE_MAX - 1);
	enum req_finish fin = r->finish;
	char msg[sizeof(r->err)];
	memcpy(msg, r->err, sizeof(msg));
	pthread_mutex_unlock(&r->mu);
	if (!ok) {
		oai_call_release(c);
		return MHD_NO; /* the client is gone: close */
	}
	if (fin == REQ_FINISH_ERROR || fin == REQ_FINISH_CANCELED) {
		oai_call_release(c);
		return fin == REQ_FINISH_ERROR ? fail(s, conn, 500, "server_error", NULL, msg)
					       : fail(s, conn, 503, "unavailable_error", NULL,
						      "the server is stopping");
	}
	struct sbuf b = { 0 };
	int rc = oai_response(&b, c);
	oai_call_release(c);
	if (rc) {
		sbuf_free(&b);
		return fail(s, conn, 500, "server_error", NULL, "out of memory");
	}
	return reply_json(s, conn, 200, &b);
}

static enum MHD_Result generate(struct server *s, struct MHD_Connection *conn,
				enum oai_kind kind, const struct sbuf *body)
{
	struct oai_call c;
	struct oai_error e;
	if (oai_parse(s->env, kind, body->p ? body->p : "", body->n, &c, &e))
		return reply_error(s, conn, &e);
	int rc = engine_submit(s->eng, c.r);
	if (rc) {
		oai_call_release(&c);
		if (rc == FM_ERANGE) {
			atomic_fetch_add(&s->hc.rejected, 1);
			return fail(s, conn, 503, "unavailable_error", NULL,
				    "the server is busy: every slot is generating and the queue is full; "
				    "try again later");
		}
		return fail(s, conn, 503, "unavailable_error", NULL, "the server is stopping");
	}
	return c.stream ? answer_stream(s, conn, &c) : answer_whole(s, conn, &c);
}

/* ---- the other routes ---- */

static enum MHD_Result simple_json(struct server *s, struct MHD_Connection *conn, const char *json)
{
	struct sbuf b = { 0 };
	if (sbuf_adds(&b, json))
		return MHD_NO;
	return reply_json(s, conn, 200, &b);
}

static enum MHD_Result get_models(struct server *s, struct MHD_Connection *conn)
{
	struct sbuf b = { 0 };
	if (oai_models_json(&b, s->env->model_id, s->created)) {
		sbuf_free(&b);
		return MHD_NO;
	}
	return reply_json(s, conn, 200, &b);
}

static enum MHD_Result apply_template(struct server *s, struct MHD_Connection *conn,
				      const struct sbuf *body)
{
	struct sbuf b = { 0 };
	struct oai_error e;
	if (oai_apply_template(s->env, body->p ? body->p : "", body->n, &b, &e)) {
		sbuf_free(&b);
		return reply_error(s, conn, &e);
	}
	return reply_json(s, conn, 200, &b);
}

static enum MHD_Result get_metrics(struct server *s, struct MHD_Connection *conn)
{
	struct sbuf b = { 0 };
	if (metrics_text(&b, s->m, s->eng, &s->hc, req_now_s() - s->t_start)) {
		sbuf_free(&b);
		return MHD_NO;
	}
	return reply(s, conn, 200, "text/plain; version=0.0.4", &b);
}

/* ---- dispatch ---- */

struct route {
	const char *method, *path;
	enum metrics_route id;
};

static const struct route routes[] = {
	{ "POST", "/v1/chat/completions", ROUTE_CHAT },
	{ "POST", "/chat/completions", ROUTE_CHAT },
	{ "POST", "/v1/completions", ROUTE_COMPLETIONS },
	{ "POST", "/completions", ROUTE_COMPLETIONS },
	{ "GET", "/v1/models", ROUTE_MODELS },
	{ "GET", "/models", ROUTE_MODELS },
	{ "GET", "/health", ROUTE_HEALTH },
	{ "GET", "/v1/health", ROUTE_HEALTH },
	{ "GET", "/metrics", ROUTE_METRICS },
	{ "GET", "/", ROUTE_PAGE },
	{ "POST", "/apply-template", ROUTE_APPLY_TEMPLATE },
};

/* The route of (method, url); ROUTE_OTHER with *known_path when only the
 * method is wrong. HEAD is GET without a body (libmicrohttpd drops it). */
static enum metrics_route find_route(const char *method, const char *url, bool *known_path)
{
	*known_path = false;
	if (!strcmp(method, "HEAD"))
		method = "GET";
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		if (strcmp(url, routes[i].path))
			continue;
		*known_path = true;
		if (!strcmp(method, routes[i].method))
			return routes[i].id;
	}
	return ROUTE_OTHER;
}

/* The key of "Authorization: Bearer KEY" (or an x-api-key header) matches. */
static bool authorized(struct server *s, struct MHD_Connection *conn, enum metrics_route id)
{
	if (!s->o.api_key || id == ROUTE_HEALTH || id == ROUTE_PAGE)
		return true;
	const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						    MHD_HTTP_HEADER_AUTHORIZATION);
	const char *key = NULL;
	if (h && !strncasecmp(h, "Bearer ", 7))
		key = h + 7;
	else
		key = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "x-api-key");
	return str_equal_ct(key ? key : "", s->o.api_key);
}

/* GET /: the chat page, from the binary's own bytes. The policy keeps it
 * to itself: inline script and style, requests only to this server. */
static enum MHD_Result get_page(struct server *s, struct MHD_Connection *conn)
{
	atomic_fetch_add(&s->hc.by_status[metrics_status_index(200)], 1);
	struct MHD_Response *resp = MHD_create_response_from_buffer(
		fm_page_html_len, (void *)fm_page_html, MHD_RESPMEM_PERSISTENT);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/html; charset=utf-8");
	MHD_add_response_header(resp, "Content-Security-Policy",
				"default-src 'none'; script-src 'unsafe-inline'; "
				"style-src 'unsafe-inline'; connect-src 'self'");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	enum MHD_Result rc = MHD_queue_response(conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return rc;
}

static enum MHD_Result route(struct server *s, struct MHD_Connection *conn, const char *method,
			     const char *url, const struct sbuf *body)
{
	bool known;
	enum metrics_route id = find_route(method, url, &known);
	atomic_fetch_add(&s->hc.by_route[id], 1);
	if (!authorized(s, conn, id))
		return fail(s, conn, 401, "authentication_error", "invalid_api_key",
			    "Invalid API key: send 'Authorization: Bearer KEY' with the server's --api-key");
	switch (id) {
	case ROUTE_CHAT: return generate(s, conn, OAI_CHAT, body);
	case ROUTE_COMPLETIONS: return generate(s, conn, OAI_COMPLETION, body);
	case ROUTE_MODELS: return get_models(s, conn);
	case ROUTE_HEALTH: return simple_json(s, conn, "{\"status\":\"ok\"}");
	case ROUTE_METRICS: return get_metrics(s, conn);
	case ROUTE_PAGE: return get_page(s, conn);
	case ROUTE_APPLY_TEMPLATE: return apply_template(s, conn, body);
	default:
		break;
	}
	char msg[300];
	snprintf(msg, sizeof(msg), known ? "method %.16s is not allowed on %.200s"
					 : "unknown route %.16s %.200s", method, url);
	return fail(s, conn, known ? 405 : 404, known ? "invalid_request_error" : "not_found_error",
		    NULL, msg);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct server *s = cls;
	struct conn_state *cs = *con_cls;
	(void)version;
	if (!cs) {
		if (!(cs = calloc(1, sizeof(*cs))))
			return MHD_NO;
		*con_cls = cs;
		/* a body announced too large is refused before it is read */
		const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
							     MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl && strtoull(cl, NULL, 10) > s->o.max_body_bytes)
			return fail(s, conn, 413, "invalid_request_error", "request_too_large",
				    "the request body is larger than the server's limit");
		return MHD_YES;
	}
	if (*upload_size) {
		if (cs->body.n + *upload_size > s->o.max_body_bytes || cs->too_big) {
			cs->too_big = true;
			sbuf_free(&cs->body);
		} else if (sbuf_add(&cs->body, upload, *upload_size)) {
			return MHD_NO;
		}
		*upload_size = 0;
		return MHD_YES;
	}
	if (cs->too_big)
		return fail(s, conn, 413, "invalid_request_error", "request_too_large",
			    "the request body is larger than the server's limit");
	return route(s, conn, method, url, &cs->body);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct conn_state *cs = *con_cls;
	(void)cls, (void)conn, (void)toe;
	if (cs) {
		sbuf_free(&cs->body);
		free(cs);
		*con_cls = NULL;
	}
}

/* ---- the daemon ---- */

/* libmicrohttpd's messages (mostly clients that left: expected here) only
 * with --verbose. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	const struct server *s = cls;
	if (s->o.verbose) {
		fputs("flashmoe serve: http: ", stderr);
		vfprintf(stderr, fmt, ap);
	}
}

static int resolve(const char *host, int port, struct sockaddr_storage *ss, char *errbuf,
		   size_t cap)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE }, *ai = NULL;
	char ports[16];
	snprintf(ports, sizeof(ports), "%d", port);
	int rc = getaddrinfo(host, ports, &hints, &ai);
	if (rc || !ai) {
		snprintf(errbuf, cap, "cannot resolve --host '%s': %s", host, gai_strerror(rc));
		return -1;
	}
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(ai);
	return 0;
}

struct server *server_new(struct fm_model *m, struct engine *eng, const struct oai_env *env,
			  const struct server_opts *o, char *errbuf, size_t cap)
{
	struct sockaddr_storage ss;
	if (resolve(o->host, o->port, &ss, errbuf, cap))
		return NULL;
	struct server *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(errbuf, cap, "out of memory");
		return NULL;
	}
	s->o = *o;
	s->m = m;
	s->eng = eng;
	s->env = env;
	s->t_start = req_now_s();
	s->created = (long long)time(NULL);
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
			 MHD_USE_ERROR_LOG | (ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0);
	s->d = MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, on_request, s,
				MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
				MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
				MHD_OPTION_CONNECTION_LIMIT, (unsigned)o->max_conn,
				MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
				MHD_OPTION_THREAD_STACK_SIZE, (size_t)(512 << 10),
				MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
				MHD_OPTION_END);
	if (!s->d) {
		snprintf(errbuf, cap, "cannot listen on %s port %d (in use, or not an address of "
				      "this machine?)", o->host, o->port);
		free(s);
		return NULL;
	}
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
	s->port = di ? di->port : o->port;
	return s;
}

int server_port(const struct server *s)
{
	return s->port;
}

void server_free(struct server *s)
{
	if (!s)
		return;
	atomic_store(&s->stopping, true);
	MHD_stop_daemon(s->d);
	free(s);
}
