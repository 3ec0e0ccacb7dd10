/* arch.c: the architecture registry and the dimensions of the tables. */
#include "arch/arch.h"

#include <stdio.h>
#include <string.h>

#include "model.h"

static const struct arch *const arch_all[] = { &arch_qwen3moe, &arch_qwen3next, &arch_qwen35moe };
#define N_ARCH (sizeof(arch_all) / sizeof(arch_all[0]))

const struct arch *arch_find(const char *name, size_t len)
{
	for (size_t i = 0; i < N_ARCH; i++)
		if (strlen(arch_all[i]->name) == len && !memcmp(arch_all[i]->name, name, len))
			return arch_all[i];
	return NULL;
}

const char *arch_names(void)
{
	return "qwen3moe, qwen3next, qwen35moe";
}

uint64_t arch_dim_value(const struct hparams *hp, enum arch_dim d)
{
	uint64_t nk = (uint64_t)hp->ssm_nk, dk = (uint64_t)hp->ssm_dk;
	uint64_t nv = (uint64_t)hp->ssm_nv, dv = (uint64_t)hp->ssm_dv;
	switch (d) {
	case DIM_NONE: return 0;
	case DIM_1: return 1;
	case DIM_EMBD: return (uint64_t)hp->n_embd;
	case DIM_VOCAB: return (uint64_t)hp->n_vocab;
	case DIM_HEAD: return (uint64_t)hp->head_dim;
	case DIM_Q: return (uint64_t)hp->n_head * (uint64_t)hp->head_dim;
	case DIM_QG: return 2 * (uint64_t)hp->n_head * (uint64_t)hp->head_dim;
	case DIM_KV: return (uint64_t)hp->n_head_kv * (uint64_t)hp->head_dim;
	case DIM_EXPERT: return (uint64_t)hp->n_expert;
	case DIM_FF_EXP: return (uint64_t)hp->n_ff_exp;
	case DIM_FF_SHEXP: return (uint64_t)hp->n_ff_shexp;
	case DIM_SSM_CONV_K: return (uint64_t)hp->ssm_conv_k;
	case DIM_SSM_CHANNELS: return 2 * nk * dk + nv * dv;
	case DIM_SSM_V: return nv * dv;
	case DIM_SSM_NV: return nv;
	case DIM_SSM_2NV: return 2 * nv;
	case DIM_SSM_DV: return dv;
	case DIM_EMBD_X2: return 2 * (uint64_t)hp->n_embd;
	}
	return 0;
}

const struct arch_tensor *arch_tensor_for(const struct arch *a, const char *name, int *layer)
{
	int il = -1, n = 0;
	const char *rest = name;
	if (sscanf(name, "blk.%d.%n", &il, &n) == 1 && n > 0)
		rest = name + n;
	for (int i = 0; i < a->n_tensors; i++) {
		const char *t = a->tensors[i].name;
		bool per_layer = strncmp(t, "blk.%d.", 7) == 0;
		if (per_layer != (il >= 0))
			continue;
		if (!strcmp(per_layer ? t + 7 : t, rest)) {
			if (layer)
				*layer = il;
			return &a->tensors[i];
		}
	}
	return NULL;
}
