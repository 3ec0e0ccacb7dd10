/* cmd_serve.c: flashmoe serve, the OpenAI-compatible HTTP server.
 *
 * Owns the command line (flags as llama-server's where they overlap), the
 * model, and the order of start and stop: model -> engine (its slots'
 * contexts, then its thread) -> HTTP server; SIGINT or SIGTERM stops them in
 * the reverse order. The server itself is src/server/. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "server/server.h"

static const char usage_text[] =
	"usage: flashmoe serve -m MODEL [--host 127.0.0.1] [--port 8080] [-np N] [-c N]\n"
	"       [--api-key KEY | --api-key-file FILE] [--alias NAME] [--queue N] [--max-body SIZE]\n"
	"       [--batch-prompt N] [--template chatml|qwen3|qwen35]\n"
	"       [-t N] [--mem SIZE] [--isa ref|avx2|avx512] [--experts-per-token K] [--kv-type|-ctk|-ctv f32|f16|q8_0|tq3.5|...]\n"
	"       [--io uring|pread|buffered|mmap] [--prefetch auto|on|off] [--stream] [--cache-size SIZE]\n"
	"       [--cache-policy pred|lfu|lru|arc] [--cache-routing T] [--verbose]\n"
	"  --host H         address to listen on (default 127.0.0.1: this machine only)\n"
	"  --port P         TCP port (default 8080; 0: any free port)\n"
	"  -np N            slots: requests generated at once, batched together (default 4)\n"
	"  -c N             context of each slot in tokens (default: the model's, at most 4096);\n"
	"                   the KV cache of all slots (-np x -c) counts against --mem\n"
	"  --api-key KEY    clients must send 'Authorization: Bearer KEY' (also --api-key-file)\n"
	"  --alias NAME     the model's id in /v1/models (default: the file's name)\n"
	"  --queue N        requests that may wait for a slot; more get 503 (default 256)\n"
	"  --max-body SIZE  largest request body; larger get 413 (default 8M)\n"
	"  --batch-prompt N prompt tokens per step, all slots together (default 256)\n"
	"Endpoints: POST /v1/chat/completions, POST /v1/completions, GET /v1/models,\n"
	"GET /health, GET /metrics, GET / (chat page).\n";

struct serve_opts {
	struct cli_model_opts mo;
	struct server_opts so;
	struct engine_opts eo;
	const char *api_key_file, *alias, *tmpl;
};

/* A flag with a value; 1 consumed, 0 not ours, -1 bad value. */
static int parse_valued(struct serve_opts *o, const char *a, const char *v)
{
	uint64_t size;
	bool ok = true;
	if (!strcmp(a, "--host"))
		o->so.host = v;
	else if (!strcmp(a, "--port"))
		ok = cli_int("serve", a, v, 0, 65535, &o->so.port);
	else if (!strcmp(a, "-np") || !strcmp(a, "--parallel"))
		ok = cli_int("serve", a, v, 1, 256, &o->eo.n_slots);
	else if (!strcmp(a, "--api-key"))
		o->so.api_key = v;
	else if (!strcmp(a, "--api-key-file"))
		o->api_key_file = v;
	else if (!strcmp(a, "--alias"))
		o->alias = v;
	else if (!strcmp(a, "--template"))
		o->tmpl = v;
	else if (!strcmp(a, "--queue"))
		ok = cli_int("serve", a, v, 1, 1 << 16, &o->eo.max_queue);
	else if (!strcmp(a, "--batch-prompt"))
		ok = cli_int("serve", a, v, 1, 1 << 16, &o->eo.chunk);
	else if (!strcmp(a, "--max-body")) {
		ok = cli_size("serve", a, v, &size);
		o->so.max_body_bytes = (size_t)size;
	} else
		return 0;
	return ok ? 1 : -1;
}

/* 0 to run, 1 after --help, -1 on bad arguments (message printed). */
static int parse(struct serve_opts *o, int argc, char **argv)
{
	static const char *const valued[] = { "--host", "--port", "-np", "--parallel", "--api-key",
					       "--api-key-file", "--alias", "--template", "--queue",
					       "--batch-prompt", "--max-body", NULL };
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v;
		int r = cli_model_opt("serve", &o->mo, argc, argv, &i);
		if (r < 0)
			return -1;
		if (r > 0)
			continue;
		if (cli_is_help(a)) {
			fputs(usage_text, stdout);
			return 1;
		}
		for (int k = 0; valued[k]; k++)
			if (!strcmp(a, valued[k]))
				r = 1;
		if (!r) {
			fprintf(stderr, "flashmoe serve: unknown option '%s'\n%s", a, usage_text);
			return -1;
		}
		if (!(v = cli_next("serve", argc, argv, &i)) || parse_valued(o, a, v) < 0)
			return -1;
	}
	if (o->so.api_key && o->api_key_file) {
		fprintf(stderr, "flashmoe serve: give --api-key or --api-key-file, not both\n");
		return -1;
	}
	return 0;
}

/* The first line of the key file, without surrounding blanks (malloc'd). */
static char *read_key_file(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "flashmoe serve: cannot open --api-key-file %s\n", path);
		return NULL;
	}
	char line[1024];
	char *key = NULL;
	if (fgets(line, sizeof(line), f)) {
		char *p = line, *end;
		while (*p == ' ' || *p == '\t')
			p++;
		end = p + strlen(p);
		while (end > p && strchr(" \t\r\n", end[-1]))
			*--end = 0;
		if (*p)
			key = strdup(p);
	}
	fclose(f);
	if (!key)
		fprintf(stderr, "flashmoe serve: --api-key-file %s holds no key\n", path);
	return key;
}


/* The model's id: --alias, else the file's name. */
static const char *model_id(const struct serve_opts *o, const char *path)
{
	if (o->alias)
		return o->alias;
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

/* Block the stop signals in every thread (the threads started later inherit
 * the mask); the main thread takes them with sigwait. */
static void block_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, set, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static int serve(struct serve_opts *o, struct fm_model *m, const char *path)
{
	struct fm_error err = { 0 };
	char msg[512];
	int sig;
	const char *tmpl = cli_chat_template("serve", m, o->tmpl);
	if (!tmpl)
		return 1;
	int train = fm_model_get_info(m)->n_ctx_train;
	o->eo.n_ctx = o->mo.n_ctx ? o->mo.n_ctx : train > 0 && train < 4096 ? train : 4096;
	struct engine *eng = engine_new(m, &o->eo, &err);
	if (!eng) {
		fprintf(stderr, "flashmoe serve: %d slots of %d tokens: %s\n", o->eo.n_slots,
			o->eo.n_ctx, err.msg);
		return 1;
	}
	struct oai_env env = { .tk = fm_model_tokenizer(m), .tmpl = tmpl,
			       .model_id = model_id(o, path), .n_ctx = o->eo.n_ctx,
			       .seed_base = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ull };
	struct server *srv = server_new(m, eng, &env, &o->so, msg, sizeof(msg));
	if (!srv) {
		fprintf(stderr, "flashmoe serve: %s\n", msg);
		engine_free(eng);
		return 1;
	}
	bool v6 = strchr(o->so.host, ':') != NULL;
	fprintf(stderr, "flashmoe serve: model %s, template %s, %d slots x %d tokens%s\n",
		env.model_id, tmpl, o->eo.n_slots, o->eo.n_ctx,
		o->so.api_key ? ", API key required" : "");
	printf("listening on http://%s%s%s:%d\n", v6 ? "[" : "", o->so.host, v6 ? "]" : "",
	       server_port(srv));
	fflush(stdout);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigwait(&set, &sig);
	fprintf(stderr, "flashmoe serve: %s, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
	server_free(srv);
	engine_free(eng);
	return 0;
}

int cmd_serve(int argc, char **argv)
{
	struct serve_opts o = { .so = { .host = "127.0.0.1", .port = 8080, .max_body_bytes = 8u << 20 },
				.eo = { .n_slots = 4, .max_queue = 256, .chunk = 256 } };
	cli_model_opts_init(&o.mo);
	o.mo.default_model = true;
	int r = parse(&o, argc, argv);
	if (r)
		return r > 0 ? 0 : 2;
	char *key = NULL;
	if (o.api_key_file && !(o.so.api_key = key = read_key_file(o.api_key_file)))
		return 2;
	o.so.max_conn = 2 * (o.eo.max_queue + o.eo.n_slots) + 64;
	o.so.verbose = o.mo.mp.verbose;
	sigset_t set;
	block_signals(&set);
	int rc = 1;
	struct fm_model *m = cli_open_model("serve", &o.mo);
	if (m && !fm_model_tokenizer(m))
		fprintf(stderr, "flashmoe serve: the model has no tokenizer\n");
	else if (m)
		rc = serve(&o, m, o.mo.model ? o.mo.model : cli_default_model());
	fm_model_close(m);
	free(key);
	return rc;
}
