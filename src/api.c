/* api.c: the public API (flashmoe.h) over the internal parts: open a model,
 * contexts, evaluation, statistics. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api_internal.h"
#include "kv.h"
#include "kernels/kernels.h"

void fm_model_params_default(struct fm_model_params *p)
{
	*p = (struct fm_model_params){ .n_threads = 0, .mem_bytes = 0, .isa = NULL,
				       .n_expert_used = 0, .io = NULL, .prefetch = true,
				       .verbose = false, .cache_policy = NULL,
				       .trace_experts = NULL, .stream = false };
}

/* Physical cores: distinct (package, core) pairs in sysfs; else online CPUs. */
static int physical_cores(void)
{
	long n_cpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (n_cpu < 1)
		return 1;
	int seen = 0;
	long keys[1024];
	for (long c = 0; c < n_cpu && c < 1024; c++) {
		char path[128];
		long pkg = 0, core = c;
		snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%ld/topology/core_id", c);
		FILE *fp = fopen(path, "r");
		if (fp) {
			if (fscanf(fp, "%ld", &core) != 1)
				core = c;
			fclose(fp);
		}
		snprintf(path, sizeof(path),
			 "/sys/devices/system/cpu/cpu%ld/topology/physical_package_id", c);
		fp = fopen(path, "r");
		if (fp) {
			if (fscanf(fp, "%ld", &pkg) != 1)
				pkg = 0;
			fclose(fp);
		}
		long key = pkg * 100000 + core;
		int dup = 0;
		for (int i = 0; i < seen && !dup; i++)
			dup = keys[i] == key;
		if (!dup)
			keys[seen++] = key;
	}
	return seen > 0 ? seen : (int)n_cpu;
}

static const struct kernels *pick_kernels(const char *isa, struct fm_error *err)
{
	kernels_init();
	if (!isa)
		return kernels_best();
	int i = kernels_isa_from_name(isa);
	if (i < 0) {
		fm_err(err, FM_EINVAL, NULL, FM_NO_OFFSET, "unknown ISA '%s' (ref, avx2, avx512)", isa);
		return NULL;
	}
	const struct kernels *k = kernels_get((enum kernel_isa)i);
	if (!k)
		fm_err(err, FM_EUNSUPPORTED, NULL, FM_NO_OFFSET, "this CPU cannot run '%s' kernels",
		       isa);
	return k;
}

static void fill_info(struct fm_model *fm)
{
	const struct hparams *hp = &fm->m.hp;
	struct fm_model_info *in = &fm->info;
	struct gguf_str name = { 0, "" };
	gguf_get_str(fm->file, "general.name", &name, NULL);
	snprintf(fm->name, sizeof(fm->name), "%.*s", (int)(name.len > 200 ? 200 : name.len),
		 name.ptr);
	*in = (struct fm_model_info){
		.arch = hp->arch_name, .name = fm->name, .n_vocab = hp->n_vocab,
		.n_embd = hp->n_embd, .n_layer = hp->n_layer, .n_head = hp->n_head,
		.n_head_kv = hp->n_head_kv, .head_dim = hp->head_dim, .n_expert = hp->n_expert,
		.n_expert_used = hp->n_expert_used, .n_ff_expert = hp->n_ff_exp,
		.n_ctx_train = hp->n_ctx_train, .isa = fm->k->name,
		.n_threads = pool_n_threads(fm->pool),
	};
	for (uint64_t i = 0; i < gguf_n_tensors(fm->file); i++) {
		const struct gguf_tensor_info *t = gguf_tensor(fm->file, i);
		in->n_params += t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
		in->bytes_total += t->size_bytes;
	}
	in->bytes_expert = fm->m.bytes_expert;
	in->bytes_dense = in->bytes_total - in->bytes_expert;
}

struct fm_model *fm_model_open(const char *path, const struct fm_model_params *p,
			       struct fm_error *err)
{
	struct fm_model_params dflt;
	if (!p) {
		fm_model_params_default(&dflt);
		p = &dflt;
	}
	struct fm_model *fm = calloc(1, sizeof(*fm));
	if (!fm) {
		fm_err(err, FM_ENOMEM, path, FM_NO_OFFSET, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&fm->eval_mu, NULL);
	pthread_mutex_init(&fm->stats_mu, NULL);
	fm->params = *p;
	fm->mem.budget_bytes = p->mem_bytes;
	fm->mem.ram_bytes = fm_ram_available_bytes();
	fm->k = pick_kernels(p->isa, err);
	if (!fm->k)
		goto fail;
	const char *tk = p->kv_type_k ? p->kv_type_k : p->kv_type;
	const char *tv = p->kv_type_v ? p->kv_type_v : p->kv_type;
	fm->kv_type_k = tk ? kv_type_from_name(tk) : KV_F32;
	fm->kv_type_v = tv ? kv_type_from_name(tv) : KV_F32;
	if (fm->kv_type_k < 0 || fm->kv_type_v < 0) {
		fm_err(err, FM_EINVAL, NULL, FM_NO_OFFSET, "unknown KV cache type '%s' (%s)",
		       fm->kv_type_k < 0 ? tk : tv, kv_type_names());
		goto fail;
	}
	fm->file = gguf_open(path, err);
	if (!fm->file)
		goto fail;
	if (model_load(&fm->m, fm->file, p->n_expert_used, &fm->mem, err))
		goto fail;
	fm->loaded = true;
	if (api_tokenizer_open(fm, err))
		goto fail;
	if (api_stream_open(fm, path, err))
		goto fail;
	int nth = p->n_threads > 0 ? p->n_threads : physical_cores();
	fm->pool = pool_new(nth);
	if (!fm->pool) {
		fm_err(err, FM_ENOMEM, path, FM_NO_OFFSET, "cannot start %d threads", nth);
		goto fail;
	}
	fill_info(fm);
	api_stream_stats(fm, &fm->stats);
	return fm;
fail:
	fm_model_close(fm);
	return NULL;
}

void fm_model_close(struct fm_model *fm)
{
	if (!fm)
		return;
	fwd_free(fm->fwd);
	free(fm->batch_fi), free(fm->batch_map), free(fm->batch_done), free(fm->batch_ctxs);
	api_stream_close(fm);
	pool_free(fm->pool);
	api_tokenizer_close(fm);
	if (fm->loaded)
		model_unload(&fm->m);
	gguf_close(fm->file);
	pthread_mutex_destroy(&fm->eval_mu);
	pthread_mutex_destroy(&fm->stats_mu);
	free(fm);
}

const struct fm_model_info *fm_model_get_info(const struct fm_model *fm)
{
	return &fm->info;
}
