/* kv.c: f32 and f16 KV caches (see kv.h). */
#include "kv.h"

#include <stdlib.h>
#include <string.h>

#include "ops.h"

struct kv_cache {
	int n_layer, n_head_kv, head_dim, n_ctx;
	enum kv_type type;
	size_t elem_bytes;
	size_t bytes;        /* k and v together */
	uint8_t *k, *v;      /* [n_layer][n_head_kv][n_ctx][head_dim] */
	struct fm_mem *mem;
};

struct kv_cache *kv_new(int n_layer, int n_head_kv, int head_dim, int n_ctx, enum kv_type type,
			struct fm_mem *mem, struct fm_error *err)
{
	struct kv_cache *kv = calloc(1, sizeof(*kv));
	if (!kv) {
		fm_err(err, FM_ENOMEM, NULL, FM_NO_OFFSET, "out of memory");
		return NULL;
	}
	*kv = (struct kv_cache){ n_layer, n_head_kv, head_dim, n_ctx, type,
				 type == KV_F16 ? 2 : 4, 0, NULL, NULL, mem };
	uint64_t half;
	if (!fm_mul_ok((uint64_t)n_layer * n_head_kv, (uint64_t)n_ctx * head_dim, &half) ||
	    !fm_mul_ok(half, kv->elem_bytes, &half) || half > SIZE_MAX / 2) {
		fm_err(err, FM_ERANGE, NULL, FM_NO_OFFSET, "KV cache for %d tokens is too large",
		       n_ctx);
		goto fail;
	}
	kv->bytes = (size_t)half * 2;
	size_t left = fm_mem_left(mem);
	kv->k = fm_alloc(mem, (size_t)half);
	kv->v = kv->k ? fm_alloc(mem, (size_t)half) : NULL;
	if (!kv->v) {
		size_t per_tok = kv->bytes / (size_t)n_ctx;
		fm_err(err, FM_ENOMEM, NULL, FM_NO_OFFSET,
		       "a KV cache of %d tokens needs %.1f MiB (%.1f KiB per token), more than the "
		       "%.1f MiB left of %s; a context of at most %zu tokens fits", n_ctx,
		       kv->bytes / 1048576.0, per_tok / 1024.0, left / 1048576.0,
		       mem && mem->budget_bytes ? "the --mem budget" : "free RAM",
		       per_tok ? left / per_tok : 0);
		goto fail;
	}
	return kv;
fail:
	kv_free(kv);
	return NULL;
}

void kv_free(struct kv_cache *kv)
{
	if (!kv)
		return;
	size_t half = kv->bytes / 2;
	fm_free(kv->mem, kv->k, half);
	fm_free(kv->mem, kv->v, half);
	free(kv);
}

size_t kv_bytes(const struct kv_cache *kv)
{
	return kv->bytes;
}

int kv_n_ctx(const struct kv_cache *kv)
{
	return kv->n_ctx;
}

size_t kv_scratch_floats(const struct kv_cache *kv)
{
	return (size_t)kv->n_ctx + (size_t)kv->head_dim;
}

int kv_type_from_name(const char *name)
{
	if (!strcmp(name, "f32"))
		return KV_F32;
	if (!strcmp(name, "f16"))
		return KV_F16;
	return -1;
}

static size_t kv_index(const struct kv_cache *kv, int layer, int h, int pos)
{
	return (((size_t)layer * kv->n_head_kv + h) * kv->n_ctx + pos) * kv->head_dim;
}

void kv_store(struct kv_cache *kv, int layer, int pos, const float *k, const float *v)
{
	int hd = kv->head_dim;
	for (int h = 0; h < kv->n_head_kv; h++) {
		size_t i = kv_index(kv, layer, h, pos);
		if (kv->type == KV_F32) {
			memcpy((float *)kv->k + i, k + (size_t)h * hd, (size_t)hd * 4);
			memcpy((float *)kv->v + i, v + (size_t)h * hd, (size_t)hd * 4);
			continue;
		}
		uint16_t *kd = (uint16_t *)kv->k + i, *vd = (uint16_t *)kv->v + i;
		for (int d = 0; d < hd; d++) {
			kd[d] = fm_fp32_to_fp16(k[(size_t)h * hd + d]);
			vd[d] = fm_fp32_to_fp16(v[(size_t)h * hd + d]);
		}
	}
}

/* Row t of K or V as f32 (a pointer into the cache, or converted into buf). */
static const float *kv_row(const struct kv_cache *kv, const uint8_t *base, size_t i, float *buf)
{
	if (kv->type == KV_F32)
		return (const float *)base + i;
	const uint16_t *src = (const uint16_t *)base + i;
	for (int d = 0; d < kv->head_dim; d++)
		buf[d] = fm_fp16_to_fp32(src[d]);
	return buf;
}

void kv_attend(const struct kv_cache *kv, const struct kernels *k, int layer, int h,
	       const float *q, int n_rep, int n_pos, float scale, float *out, float *scratch)
{
	int hd = kv->head_dim;
	float *rowbuf = scratch + kv->n_ctx; /* one converted row, any head_dim */
	size_t i0 = kv_index(kv, layer, h, 0);
	for (int r = 0; r < n_rep; r++) {
		const float *qr = q + (size_t)r * hd;
		float *o = out + (size_t)r * hd;
		if (kv->type == KV_F32) { /* rows straight from the cache */
			k->attn_dot_rows(scratch, qr, (const float *)kv->k + i0, n_pos, hd, scale);
			ops_softmax(scratch, n_pos);
			k->attn_wsum(o, scratch, (const float *)kv->v + i0, n_pos, hd);
			continue;
		}
		for (int t = 0; t < n_pos; t++)
			scratch[t] = ops_dot(qr, kv_row(kv, kv->k, i0 + (size_t)t * hd, rowbuf), hd) * scale;
		ops_softmax(scratch, n_pos);
		memset(o, 0, (size_t)hd * sizeof(float));
		for (int t = 0; t < n_pos; t++)
			ops_axpy(o, scratch[t], kv_row(kv, kv->v, i0 + (size_t)t * hd, rowbuf), hd);
	}
}
