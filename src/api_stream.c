/* api_stream.c: deciding whether to stream experts, and wiring the expert
 * store (experts.c) over the I/O engine (io.c) into the forward pass.
 *
 * The budget (--mem) covers the whole process. Streaming is chosen when the
 * model would not fit in it (or when asked with --stream); the dense weights
 * are then copied into counted memory (model_copy_dense) and the experts are
 * read on demand into a cache sized, at the first evaluation (so that the
 * contexts made before it, e.g. a server's slots, are counted), from what is
 * left:
 *     cache = budget - resident set now (dense, KV, scratch, tokenizer, code)
 *             - a safety margin for what is allocated later (stacks, stdio).
 * `--io mmap` is the page-cache baseline: no cache of our own, no streaming. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api_internal.h"
#include "experts.h"
#include "io.h"

#define STREAM_MARGIN_BYTES (24u << 20)

static uint64_t rss_bytes(void)
{
	FILE *fp = fopen("/proc/self/statm", "r");
	unsigned long long size = 0, rss = 0;
	if (fp) {
		if (fscanf(fp, "%llu %llu", &size, &rss) != 2)
			rss = 0;
		fclose(fp);
	}
	return rss * (uint64_t)sysconf(_SC_PAGESIZE);
}

int api_stream_open(struct fm_model *fm, const char *path, struct fm_error *err)
{
	const struct fm_model_params *p = &fm->params;
	uint64_t mem = p->mem_bytes;
	const struct model *m = &fm->m;
	if (p->io && io_mode_from_name(p->io) < 0)
		return fm_err(err, FM_EINVAL, NULL, FM_NO_OFFSET,
			      "unknown --io '%s' (uring, pread, buffered, mmap)", p->io);
	if (p->io && !strcmp(p->io, "mmap"))
		return 0;
	/* token_embd stays on disk when streaming (model_copy_dense), unless tied */
	uint64_t dense = m->bytes_dense + m->f32_copies_bytes;
	if (m->w.output.data != m->w.tok_embd.data)
		dense -= m->w.tok_embd.row_bytes * (uint64_t)m->w.tok_embd.n_rows;
	/* what is resident already: the tokenizer (tens of MiB for a 150K
	 * vocabulary), code, libraries; the weights are only mapped so far */
	uint64_t base = rss_bytes();
	fm->streaming = p->stream ||
			(mem && base + m->bytes_dense + m->bytes_expert + STREAM_MARGIN_BYTES > mem);
	if (!fm->streaming)
		return 0;
	if (mem && base + dense + STREAM_MARGIN_BYTES > mem)
		return fm_err(err, FM_ENOMEM, path, FM_NO_OFFSET,
			      "--mem %.1f MiB (%llu bytes) cannot hold the dense weights (%.1f MiB) plus what is resident "
			      "already (%.1f MiB: tokenizer, code) plus a %.0f MiB margin; "
			      "the experts (%.1f MiB) would stream, but the dense part must be resident",
			      mem / 1048576.0, (unsigned long long)mem, dense / 1048576.0, base / 1048576.0,
			      STREAM_MARGIN_BYTES / 1048576.0, m->bytes_expert / 1048576.0);
	int rc = model_copy_dense(&fm->m, err);
	if (rc)
		return rc;
	struct io_params iop = { .mode = p->io ? (enum io_mode)io_mode_from_name(p->io) : IO_MODE_URING };
	fm->io = io_open(path, &iop, err);
	if (!fm->io)
		return err ? err->code : FM_EIO;
	if (p->trace_experts) {
		fm->trace = experts_trace_open(p->trace_experts, m->hp.n_layer, m->hp.n_expert,
					       m->hp.n_expert_used, err);
		if (!fm->trace)
			return err ? err->code : FM_EIO;
	}
	return 0;
}

static int make_store(struct fm_model *fm, struct fm_error *err)
{
	const struct fm_model_params *p = &fm->params;
	const struct hparams *hp = &fm->m.hp;
	struct experts_layer *layers = calloc((size_t)hp->n_layer, sizeof(*layers));
	if (!layers)
		return fm_err(err, FM_ENOMEM, NULL, FM_NO_OFFSET, "out of memory");
	for (int il = 0; il < hp->n_layer; il++) {
		const struct layer_weights *l = &fm->m.w.layers[il];
		const struct qexps *x[3] = { &l->gate, &l->up, &l->down };
		for (int i = 0; i < 3; i++)
			layers[il].part[i] = (struct experts_tensor){ x[i]->file_offset, x[i]->expert_bytes,
								      x[i]->expert_bytes };
	}
	struct experts_desc d = { hp->n_layer, hp->n_expert, hp->n_expert_used, layers };
	uint64_t used = rss_bytes(), budget;
	if (p->cache_bytes)
		budget = p->cache_bytes;
	else if (p->mem_bytes) {
		budget = p->mem_bytes > used + STREAM_MARGIN_BYTES ? p->mem_bytes - used - STREAM_MARGIN_BYTES : 0;
		/* and within what the budget's count leaves: contexts' KV rows are
		 * counted when made but resident only once written */
		uint64_t left = fm_mem_left(&fm->mem);
		left = left > STREAM_MARGIN_BYTES ? left - STREAM_MARGIN_BYTES : 0;
		budget = budget < left ? budget : left;
	} else
		budget = fm->m.bytes_expert / 4;
	struct experts_params ep = { .budget_bytes = budget, .policy = CACHE_POLICY_DEFAULT,
				     .prefetch = p->prefetch, .prefetch_auto = !p->prefetch_always };
	if (p->cache_policy) {
		int k = cache_policy_from_name(p->cache_policy);
		if (k < 0 || k == CACHE_POLICY_MIN) {
			free(layers);
			return fm_err(err, FM_EINVAL, NULL, FM_NO_OFFSET,
				      "unknown --cache-policy '%s' (lru, lfu, arc, pred)", p->cache_policy);
		}
		ep.policy = (enum cache_policy_kind)k;
	}
	if (!(p->cache_routing >= 0.0f && p->cache_routing <= 1.0f)) {
		free(layers);
		return fm_err(err, FM_EINVAL, NULL, FM_NO_OFFSET,
			      "--cache-routing %g: expected a router weight in [0, 1]",
			      (double)p->cache_routing);
	}
	ep.route_thresh = p->cache_routing;
	fm->experts = experts_new(&d, fm->io, &ep, &fm->mem, err);
	free(layers);
	if (!fm->experts)
		return err ? err->code : FM_ENOMEM;
	experts_get_stats(fm->experts, &fm->xs_seen);
	pthread_mutex_lock(&fm->stats_mu);
	api_stream_stats(fm, &fm->stats);
	pthread_mutex_unlock(&fm->stats_mu);
	if (p->verbose)
		fprintf(stderr,
			"flashmoe: streaming experts (%s%s%s): budget %.1f MiB; resident now %.1f MiB "
			"(dense %.1f MiB); expert cache %u slots x %.2f MiB = %.1f MiB (%.1f%% of %.1f MiB of experts)\n",
			io_mode_name(io_get_mode(fm->io)), io_note(fm->io)[0] ? ", " : "", io_note(fm->io),
			p->mem_bytes / 1048576.0, used / 1048576.0, fm->m.dense_copied / 1048576.0,
			experts_n_slots(fm->experts), experts_slot_bytes(fm->experts) / 1048576.0,
			experts_n_slots(fm->experts) * (double)experts_slot_bytes(fm->experts) / 1048576.0,
			100.0 * experts_n_slots(fm->experts) * (double)experts_slot_bytes(fm->experts) /
				(double)fm->m.bytes_expert,
			fm->m.bytes_expert / 1048576.0);
	return 0;
}

int api_stream_attach(struct fm_model *fm, struct fwd *f, struct fm_error *err)
{
	if (!fm->streaming) {
		if (fm->params.trace_experts && !fm->trace) {
			const struct hparams *hp = &fm->m.hp;
			fm->trace = experts_trace_open(fm->params.trace_experts, hp->n_layer, hp->n_expert,
						       hp->n_expert_used, err);
			if (!fm->trace)
				return err ? err->code : FM_EIO;
		}
		fwd_set_experts(f, NULL, fm->trace, false);
		return 0;
	}
	/* the store comes with the first evaluation (api_stream_ready) */
	fwd_set_experts(f, fm->experts, fm->trace, fm->experts && fm->params.prefetch);
	return 0;
}

int api_stream_ready(struct fm_model *fm, struct fm_error *err)
{
	if (!fm->streaming || fm->experts)
		return 0;
	int rc = make_store(fm, err);
	if (!rc && fm->fwd)
		fwd_set_experts(fm->fwd, fm->experts, fm->trace, fm->params.prefetch);
	return rc;
}

void api_stream_close(struct fm_model *fm)
{
	experts_free(fm->experts);
	fm->experts = NULL;
	experts_trace_close(fm->trace, NULL);
	fm->trace = NULL;
	io_close(fm->io);
	fm->io = NULL;
}

void api_stream_stats(const struct fm_model *fm, struct fm_stats *out)
{
	if (!fm->experts) { /* resident, or streaming before the first evaluation */
		out->io_mode = fm->io ? io_mode_name(io_get_mode(fm->io))
			       : fm->params.io && !strcmp(fm->params.io, "mmap") ? "mmap" : "resident";
		return;
	}
	out->cache_slots = experts_n_slots(fm->experts);
	out->cache_bytes = out->cache_slots * experts_slot_bytes(fm->experts);
	out->io_mode = io_mode_name(io_get_mode(fm->io));
}
