/* cmd_chat.c: flashmoe chat, a conversation with the model in the terminal.
 *
 * Owns the command line, the input loop and Ctrl-C; the turns (template,
 * reuse of the KV cache, streaming) are chat_session.c's.
 *   - On a terminal, lines come from libedit's readline interface (line
 *     editing; history kept in memory for the session, never written to
 *     disk). From a pipe, plain lines come from getline, with no prompt or
 *     banner, so scripts can drive it.
 *   - Ctrl-C during an answer stops it; the partial answer stays in the
 *     conversation and the cache. Ctrl-C at the prompt clears the line (a
 *     hint says how to leave); Ctrl-D, end of input or /exit leaves.
 *   - /reset /stats /help /exit (/quit).
 */
#include <locale.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <editline/readline.h>

#include "chat_session.h"
#include "cli.h"

#define PROMPT ">>> "

static const char usage_text[] =
	"usage: flashmoe chat -m MODEL [--system TEXT] [--template chatml|qwen3|qwen35] [--think on|off]\n"
	"       [-n N] [--temp T] [--top-k K] [--top-p P] [--min-p P] [--repeat-penalty R] [--seed S]\n"
	"       [-t N] [-c CTX] [--mem SIZE] [--isa ref|avx2|avx512] [--experts-per-token K] [--kv-type|-ctk|-ctv f32|f16|q8_0|tq3.5|...]\n"
	"       [--io uring|pread|buffered|mmap] [--prefetch auto|on|off] [--stream] [--cache-size SIZE]\n"
	"       [--cache-policy lru|lfu|arc|pred] [--cache-routing T] [--trace-experts FILE] [--verbose]\n"
	"  -n N      most tokens per answer (default 512)\n"
	"  -c CTX    context in tokens for the whole conversation (default: the model's, at most 4096)\n"
	"  --verbose also one line per turn: the tokens evaluated and those reused from the cache\n"
	"Reads lines from a pipe when stdin is not a terminal.\n";

static const char help_text[] =
	"/reset  forget the conversation (the system message stays)\n"
	"/stats  speed, memory and expert-cache statistics\n"
	"/exit   leave (also /quit, Ctrl-D)\n"
	"Ctrl-C stops an answer; at the prompt it clears the line.\n";

/* Set by SIGINT, read between tokens. The CLI's one file-scope variable: a
 * signal handler can safely touch nothing else. */
static volatile sig_atomic_t chat_stop;

static void on_sigint(int sig)
{
	(void)sig;
	chat_stop = 1;
}

enum sigint_mode {
	SIGINT_EXIT,      /* the default action (reading from a pipe) */
	SIGINT_STOP,      /* set chat_stop; interrupted calls restart (the engine's reads) */
	SIGINT_STOP_READ, /* set chat_stop and make the terminal read fail: readline returns */
};

static void set_sigint(enum sigint_mode mode)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = mode == SIGINT_EXIT ? SIG_DFL : on_sigint;
	sa.sa_flags = mode == SIGINT_STOP ? SA_RESTART : 0;
	sigaction(SIGINT, &sa, NULL);
}

/* Block (or restore, with block false) the signals libedit and we handle in
 * the calling thread. Blocked while the model and context start their
 * threads, which inherit the mask: the handlers then run on the main thread
 * only. libedit's (SIGCONT redraws the line after Ctrl-Z and fg) crash when
 * run on a worker thread while the main thread is in readline. */
static void mask_signals(bool block, sigset_t *saved)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGTSTP, SIGCONT, SIGWINCH };
	sigset_t set;
	sigemptyset(&set);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaddset(&set, sigs[i]);
	if (block)
		pthread_sigmask(SIG_BLOCK, &set, saved);
	else
		pthread_sigmask(SIG_SETMASK, saved, NULL);
}

struct chat_opts {
	struct cli_model_opts mo;
	struct chat_session_opts so;
};

/* A flag with a value; 1 consumed, 0 not ours, -1 bad value. */
static int parse_valued(struct chat_opts *o, const char *a, const char *v)
{
	struct fm_sampler_params *sp = &o->so.sp;
	bool ok = true;
	if (!strcmp(a, "--system"))
		o->so.system = v;
	else if (!strcmp(a, "--template"))
		o->so.tmpl = v;
	else if (!strcmp(a, "--think")) {
		ok = !strcmp(v, "on") || !strcmp(v, "off");
		o->so.think = !strcmp(v, "on");
		if (!ok)
			fprintf(stderr, "flashmoe chat: --think expects on or off, got '%s'\n", v);
	} else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict"))
		ok = cli_int("chat", a, v, 1, 1 << 24, &o->so.n_predict);
	else if (!strcmp(a, "--temp"))
		ok = cli_float("chat", a, v, 0, 100, &sp->temp);
	else if (!strcmp(a, "--top-k"))
		ok = cli_int("chat", a, v, 0, 1 << 24, &sp->top_k);
	else if (!strcmp(a, "--top-p"))
		ok = cli_float("chat", a, v, 0, 1, &sp->top_p);
	else if (!strcmp(a, "--min-p"))
		ok = cli_float("chat", a, v, 0, 1, &sp->min_p);
	else if (!strcmp(a, "--repeat-penalty"))
		ok = cli_float("chat", a, v, 0.01, 100, &sp->repeat_penalty);
	else if (!strcmp(a, "--seed"))
		ok = cli_u64("chat", a, v, &sp->seed);
	else
		return 0;
	return ok ? 1 : -1;
}

/* 0 to run, 1 after --help, -1 on bad arguments (message printed). */
static int parse(struct chat_opts *o, int argc, char **argv)
{
	static const char *const valued[] = { "--system", "--template", "--think", "-n",
					       "--n-predict", "--temp", "--top-k", "--top-p",
					       "--min-p", "--repeat-penalty", "--seed", NULL };
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v;
		int r = cli_model_opt("chat", &o->mo, argc, argv, &i);
		if (r < 0)
			return -1;
		if (r > 0)
			continue;
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			fputs(usage_text, stdout);
			return 1;
		}
		for (int k = 0; valued[k]; k++)
			if (!strcmp(a, valued[k]))
				r = 1;
		if (!r) {
			fprintf(stderr, "flashmoe chat: unknown option '%s'\n%s", a, usage_text);
			return -1;
		}
		if (!(v = cli_next("chat", argc, argv, &i)))
			return -1;
		if (parse_valued(o, a, v) < 0)
			return -1;
	}
	return 0;
}


/* The next line without its newline (malloc'd); NULL at the end of input,
 * or on a terminal when Ctrl-C cleared the line (then chat_stop is set). */
static char *read_line(bool tty)
{
	if (tty) {
		chat_stop = 0;
		fflush(stdout);
		set_sigint(SIGINT_STOP_READ);
		char *line = readline(PROMPT);
		set_sigint(SIGINT_STOP);
		if (line && *line)
			add_history(line);
		return line;
	}
	char *line = NULL;
	size_t cap = 0;
	set_sigint(SIGINT_EXIT);
	ssize_t n = getline(&line, &cap, stdin);
	set_sigint(SIGINT_STOP);
	if (n < 0) {
		free(line);
		return NULL;
	}
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = 0;
	return line;
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = 0;
	return s;
}

/* A message or a /command: 1 to leave, 0 to go on, negative on an error. */
static int run_line(struct chat_session *s, struct fm_model *m, char *line)
{
	line = trim(line);
	if (!*line)
		return 0;
	if (*line != '/') {
		chat_stop = 0;
		return chat_session_turn(s, line);
	}
	if (!strcmp(line, "/exit") || !strcmp(line, "/quit"))
		return 1;
	if (!strcmp(line, "/reset")) {
		int rc = chat_session_reset(s);
		if (!rc)
			puts("[conversation reset]");
		return rc;
	}
	if (!strcmp(line, "/stats"))
		cli_print_stats(m);
	else if (!strcmp(line, "/help"))
		fputs(help_text, stdout);
	else
		fprintf(stderr, "unknown command '%s' (/help lists them)\n", line);
	return 0;
}

static int chat_loop(struct chat_session *s, struct fm_model *m, bool tty)
{
	bool hinted = false;
	for (;;) {
		char *line = read_line(tty);
		if (!line && tty && chat_stop) {
			fputs(hinted ? "\n" : "\n(Ctrl-D or /exit to leave)\n", stdout);
			hinted = true;
			continue;
		}
		if (!line) {
			if (tty)
				fputc('\n', stdout);
			return 0;
		}
		int rc = run_line(s, m, line);
		free(line);
		if (rc)
			return rc > 0 ? 0 : rc;
	}
}

static int context_size(const struct fm_model *m, int asked)
{
	int train = fm_model_get_info(m)->n_ctx_train;
	if (asked)
		return asked;
	return train > 0 && train < 4096 ? train : 4096;
}

int cmd_chat(int argc, char **argv)
{
	struct chat_opts o = { .so = { .n_predict = 512, .think = true } };
	cli_model_opts_init(&o.mo);
	o.mo.default_model = true;
	fm_sampler_params_default(&o.so.sp);
	int r = parse(&o, argc, argv);
	if (r)
		return r > 0 ? 0 : 2;
	int rc = 1;
	struct chat_session *s = NULL;
	struct fm_model *m = NULL;
	bool tty = isatty(STDIN_FILENO);
	sigset_t saved;
	if (tty)
		setlocale(LC_CTYPE, ""); /* libedit reads UTF-8 input only in a UTF-8 locale */
	mask_signals(true, &saved);
	m = cli_open_model("chat", &o.mo);
	if (m && (o.so.tmpl = cli_chat_template("chat", m, o.so.tmpl))) {
		o.so.n_ctx = context_size(m, o.mo.n_ctx);
		o.so.verbose = o.mo.mp.verbose;
		s = chat_session_new(m, &o.so, &chat_stop);
	}
	mask_signals(false, &saved);
	if (!s)
		goto out;
	if (tty) {
		printf("flashmoe chat: template %s, context %d tokens. /help for commands; "
		       "Ctrl-C stops an answer, Ctrl-D leaves.\n", o.so.tmpl, o.so.n_ctx);
	}
	set_sigint(SIGINT_STOP);
	rc = chat_loop(s, m, tty) ? 1 : 0;
	set_sigint(SIGINT_EXIT);
	if (tty)
		clear_history();
out:
	chat_session_free(s);
	fm_model_close(m);
	return rc;
}
