/* cmd_info.c: flashmoe info, a model's architecture, sizes, tensor types and
 * the expert vs dense byte split. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cmd_info(int argc, char **argv)
{
	struct cli_model_opts o;
	cli_model_opts_init(&o);
	for (int i = 1; i < argc; i++) {
		if (cli_is_help(argv[i])) {
			fputs("usage: flashmoe info -m MODEL\n", stdout);
			return 0;
		}
		int r = cli_model_opt("info", &o, argc, argv, &i);
		if (r < 0)
			return 2;
		if (r == 0) {
			fprintf(stderr, "flashmoe info: unknown option '%s'\nusage: flashmoe info -m MODEL\n",
				argv[i]);
			return 2;
		}
	}
	o.mp.n_threads = 1;
	struct fm_model *m = cli_open_model("info", &o);
	if (!m)
		return 1;
	size_t need = fm_model_describe(m, NULL, 0) + 1;
	char *buf = malloc(need);
	if (buf) {
		fm_model_describe(m, buf, need);
		fputs(buf, stdout);
	}
	free(buf);
	fm_model_close(m);
	return buf ? 0 : 1;
}
