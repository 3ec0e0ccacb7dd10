/* model.c: hyperparameters and tensor binding, driven by the architecture's
 * tables (src/arch/, architectures.md §9): every key of the table read into
 * struct hparams and range-checked, every tensor of the table looked up for
 * the layers that have it, its shape and type checked and bound to its slot,
 * and every tensor of the file accounted for. */
#include "model.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/kernels.h"

struct loader {
	struct model *m;
	struct gguf_file *f;
	struct fm_error *err;
	const char *path;
	size_t f32_used, f32_cap; /* into m->f32_copies */
	uint8_t *bound;           /* [n_tensors] 1 once a weight took the tensor */
};

static void clear_err(struct fm_error *err)
{
	if (err) {
		err->code = 0;
		err->msg[0] = 0;
	}
}

/* ---- hyperparameters ---- */

/* An int[4] key (llama.cpp's get_key_or_arr): an array of 4 integers, or
 * one integer for all four; absent and optional: all zero. */
static int read_i32x4(struct loader *ld, const struct arch_key *k, const char *key, int *out)
{
	int64_t i = gguf_find_key(ld->f, key);
	memset(out, 0, 4 * sizeof(int));
	if (i < 0)
		return k->required ? fm_err(ld->err, FM_EFORMAT, ld->path, FM_NO_OFFSET,
					    "missing metadata key '%s'", key)
				   : 0;
	enum gguf_type t = gguf_kv_type(ld->f, (uint64_t)i);
	if (t != GGUF_TYPE_ARRAY) {
		uint32_t v;
		int rc = gguf_get_u32(ld->f, key, &v, ld->err);
		if (rc)
			return rc;
		for (int j = 0; j < 4; j++)
			out[j] = (int)(v > (1u << 20) ? (1u << 20) : v);
		return 0;
	}
	enum gguf_type et = gguf_kv_arr_type(ld->f, (uint64_t)i);
	if ((et != GGUF_TYPE_INT32 && et != GGUF_TYPE_UINT32) || gguf_kv_arr_n(ld->f, (uint64_t)i) != 4)
		return fm_err(ld->err, FM_EFORMAT, ld->path, FM_NO_OFFSET,
			      "metadata '%s' must be 4 integers", key);
	const int32_t *v = gguf_kv_arr_data(ld->f, (uint64_t)i);
	for (int j = 0; j < 4; j++) {
		int32_t x;
		memcpy(&x, v + j, sizeof(x));
		if (x < 0 || x > (1 << 20))
			return fm_err(ld->err, FM_EFORMAT, ld->path, FM_NO_OFFSET,
				      "metadata '%s'[%d] = %d is out of range", key, j, (int)x);
		out[j] = x;
	}
	return 0;
}

/* Key k into its field: absent and optional gives its default; present, it
 * must have the table's type (a u32 where a bool is read is an error, not
 * ignored) and a plausible value. */
static int read_key(struct loader *ld, const struct arch_key *k)
{
	struct hparams *hp = &ld->m->hp;
	char key[128];
	snprintf(key, sizeof(key), "%s.%s", hp->arch_name, k->suffix);
	char *field = (char *)hp + k->off;
	if (k->type == AK_I32X4)
		return read_i32x4(ld, k, key, (int *)field);
	uint32_t u = 0;
	float x = 0;
	bool b = false;
	int rc = k->type == AK_U32 ? gguf_get_u32(ld->f, key, &u, ld->err)
		 : k->type == AK_F32 ? gguf_get_f32(ld->f, key, &x, ld->err)
				     : gguf_get_bool(ld->f, key, &b, ld->err);
	if (rc == FM_ENOTFOUND) {
		clear_err(ld->err);
		if (k->required)
			return fm_err(ld->err, FM_EFORMAT, ld->path, FM_NO_OFFSET,
				      "missing metadata key '%s'", key);
		if (k->type == AK_U32) {
			int d = (int)k->dflt;
			if (k->dflt_off >= 0)
				d = *(const int *)((const char *)hp + k->dflt_off);
			if (k->dflt_div_off >= 0) {
				int q = *(const int *)((const char *)hp + k->dflt_div_off);
				d = q ? d / q : 0;
			}
			*(int *)field = d;
		} else if (k->type == AK_F32) {
			*(float *)field = (float)k->dflt;
		} else {
			*(bool *)field = k->dflt != 0;
		}
		return 0;
	}
	if (rc)
		return rc;
	if (k->type == AK_U32) {
		if ((u == 0 && !k->zero_ok) || u > (1u << 30))
			return fm_err(ld->err, FM_EFORMAT, ld->path, FM_NO_OFFSET,
				      "metadata '%s' = %u is out of range", key, u);
		*(int *)field = (int)u;
	} else if (k->type == AK_F32) {
		*(float *)field = x;
	} else {
		*(bool *)field = b;
	}
	return 0;
}

static int range_err(struct loader *ld, const char *what, uint64_t v, uint64_t max)
{
	return fm_err(ld->err, FM_EFORMAT, ld->path, FM_NO_OFFSET,
		      "%s.%s = %llu is out of range (at most %llu)", ld->m->hp.arch_name, what,
		      (unsigned long long)v, (unsigned long long)max);
}

/* Every hyperparameter within bounds and every product computed in 64 bits
 * (n_head 65537 x head_dim 65536 wraps to 65536 in an int), before any size
 * is derived from them; floats finite and positive (a NaN rope base or
 * epsilon makes every logit NaN). */
static int check_ranges(struct loader *ld)
{
	const struct hparams *hp = &ld->m->hp;
	const struct { const char *key; int v; int max; } lim[] = {
		{ "block_count", hp->n_block, HP_MAX_LAYER },
		{ "embedding_length", hp->n_embd, HP_MAX_DIM },
		{ "attention.head_count", hp->n_head, HP_MAX_DIM },
		{ "attention.head_count_kv", hp->n_head_kv, HP_MAX_DIM },
		{ "attention.key_length", hp->head_dim, HP_MAX_DIM },
		{ "expert_count", hp->n_expert, HP_MAX_EXPERT },
		{ "expert_used_count", hp->n_expert_used, HP_MAX_EXPERT_USED },
		{ "expert_feed_forward_length", hp->n_ff_exp, HP_MAX_DIM },
		{ "expert_shared_feed_forward_length", hp->n_ff_shexp, HP_MAX_DIM },
		{ "ssm.conv_kernel", hp->ssm_conv_k, 64 },
		{ "ssm.state_size", hp->ssm_dk, HP_MAX_DIM },
		{ "ssm.group_count", hp->ssm_nk, HP_MAX_DIM },
		{ "ssm.time_step_rank", hp->ssm_nv, HP_MAX_DIM },
		{ "ssm.inner_size", hp->ssm_inner, HP_MAX_FEATURES },
	};
	for (size_t i = 0; i < sizeof(lim) / sizeof(lim[0]); i++)
		if (lim[i].v > lim[i].max)
			return range_err(ld, lim[i].key, (uint64_t)lim[i].v, (uint64_t)lim[i].max);
	if (hp->head_dim < 1)
		return range_err(ld, "attention.key_length", 0, HP_MAX_DIM);
	uint64_t q = (uint64_t)hp->n_head * (uint64_t)hp->head_dim;
	uint64_t kv = (uint64_t)hp->n_head_kv * (uint64_t)hp->head_dim;
	if (q > HP_MAX_FEATURES || kv > HP_MAX_FEATURES)
		return fm_err(ld->err, FM_EFORMAT, ld->path, FM_NO_OFFSET,
			      "%s: %d heads (%d for keys and values) of %d make %llu query features, "
			      "out of range (at most %d)", hp->arch_name, hp->n_head, hp->n_head_kv,
			      hp->head_dim, (unsigned long long)(q > kv ? q : kv), HP_MAX_FEATURES);
	uint64_t ch = 2 * (uint64_t)hp->ssm_nk * (uint64_t)hp->ssm_dk + (uint64_t)hp->ssm_inner;
	if (ch > HP_MAX_FEATURES)
		return fm_err(ld->err, FM_EFORMAT, ld->path, FM_NO_OFFSET,
			      "%s: DeltaNet of %d key heads of %d and inner size %d: %llu channels, "
			      "out of range (at most %d)", hp->arch_name, hp->ssm_nk, hp->ssm_dk,
			      hp->ssm_inner, (unsigned long long)ch, HP_MAX_FEATURES);
	if (!(isfinite(hp->rms_eps) && hp->rms_eps > 0.0f && hp->rms_eps < 1.0f))
		return fm_err(ld->err, FM_EFORMAT, ld->path, FM_NO_OFFSET,
			      "%s.attention.layer_norm_rms_epsilon = %g is out of range (0, 1)",
			      hp->arch_name, (double)hp->rms_eps);
	if (!(isfinite(hp->rope_theta) && hp->rope_theta > 0.0f))
		return fm_err(ld->err, FM_EFORMAT, ld->path, FM_NO_OFFSET,
			      "%s.rope.freq_base = %g must be finite and positive", hp->arch_name,
			      (double)hp->rope_theta);
	return 0;
}

/* The DeltaNet's shape: value heads share key heads evenly, dv = inner / nv
 * (llama.cpp uses state_size for both head sizes; a file where they differ
 * is refused rather than read two ways). */
static int check_ssm(struct loader *ld)
{
	struct hparams *hp = &ld->m->hp;
	if (!hp->n_layer_kind[LAYER_GDN])
		return 0;
	if (hp->ssm_nv % hp->ssm_nk || hp->ssm_inner != hp->ssm_nv * hp->ssm_dk)
		return fm_err(ld->err, FM_EFORMAT, ld->path, FM_NO_OFFSET,
			      "%s: inconsistent DeltaNet sizes: %d value heads over %d key heads, "
			      "state_size %d, inner_size %d (expected value heads x state_size)",
			      hp->arch_name, hp->ssm_nv, hp->ssm_nk, hp->ssm_dk, hp->ssm_inner);
	hp->ssm_dv = hp->ssm_inner / hp->ssm_nv;
	return 0;
}

/* Which layer is which kind, and each layer's index among its kind (its
 * KV rows or recurrent state). */
static int read_layer_kinds(struct loader *ld)
{
	struct hparams *hp = &ld->m->hp;
	int rc = hp->arch->layer_kinds(hp, ld->f, ld->path, ld->err);
	if (rc)
		return rc;
	memset(hp->n_layer_kind, 0, sizeof(hp->n_layer_kind));
	for (int il = 0; il < hp->n_layer; il++)
		hp->state_slot[il] = (int16_t)hp->n_layer_kind[hp->layer_kind[il]]++;
	return 0;
}

static int read_hparams(struct loader *ld, int n_expert_used)
{
	struct hparams *hp = &ld->m->hp;
	const struct arch *a = hp->arch;
	int rc = 0;
	for (int i = 0; !rc && i < a->n_keys; i++)
		rc = read_key(ld, &a->keys[i]);
	if (rc)
		return rc;
	if (hp->n_nextn >= hp->n_block)
		return fm_err(ld->err, FM_EFORMAT, ld->path, FM_NO_OFFSET,
			      "%s.nextn_predict_layers = %d leaves no decoder block of %d",
			      hp->arch_name, hp->n_nextn, hp->n_block);
	hp->n_layer = hp->n_block - hp->n_nextn;
	if (hp->head_dim_v != hp->head_dim)
		return fm_err(ld->err, FM_EUNSUPPORTED, ld->path, FM_NO_OFFSET,
			      "value_length %d != key_length %d is not supported", hp->head_dim_v,
			      hp->head_dim);
	rc = check_ranges(ld);
	rc = rc ? rc : read_layer_kinds(ld);
	rc = rc ? rc : check_ssm(ld);
	if (rc)
		return rc;
	if (hp->n_head % hp->n_head_kv || hp->n_rot > hp->head_dim || hp->n_rot % 2 ||
	    hp->n_expert_used > hp->n_expert)
		return fm_err(ld->err, FM_EFORMAT, ld->path, FM_NO_OFFSET,
			      "inconsistent hyperparameters: heads %d, kv heads %d, rot %d, head_dim %d, experts %d used %d",
			      hp->n_head, hp->n_head_kv, hp->n_rot, hp->head_dim, hp->n_expert,
			      hp->n_expert_used);
	if (n_expert_used > 0) {
		if (n_expert_used > hp->n_expert)
			return fm_err(ld->err, FM_EINVAL, NULL, FM_NO_OFFSET,
				      "--experts-per-token %d exceeds the model's %d experts",
				      n_expert_used, hp->n_expert);
		hp->n_expert_used = n_expert_used;
	}
	return 0;
}

/* ---- tensors ---- */

/* Look up a tensor and check its shape is ne[]. */
static const struct gguf_tensor_info *find_tensor(struct loader *ld, const char *name,
						  int n_dims, const int64_t *ne, bool required,
						  int64_t *index)
{
	int64_t i = gguf_find_tensor(ld->f, name);
	if (i < 0) {
		if (required)
			fm_err(ld->err, FM_EFORMAT, ld->path, FM_NO_OFFSET,
			       "missing tensor '%s'", name);
		else
			clear_err(ld->err);
		return NULL;
	}
	const struct gguf_tensor_info *t = gguf_tensor(ld->f, (uint64_t)i);
	for (int d = 0; d < GGUF_MAX_DIMS; d++) {
		int64_t want = d < n_dims ? ne[d] : 1;
		if ((int64_t)t->ne[d] != want) {
			fm_err(ld->err, FM_EFORMAT, ld->path, t->offset,
			       "tensor '%s': dim %d is %llu, expected %lld", name, d,
			       (unsigned long long)t->ne[d], (long long)want);
			return NULL;
		}
	}
	if (index)
		*index = i;
	ld->bound[i] = 1;
	return t;
}

static int bind_qmat(struct loader *ld, struct qmat *q, const char *name, int64_t n_cols,
		     int64_t n_rows, bool required)
{
	int64_t ne[2] = { n_cols, n_rows }, idx;
	const struct gguf_tensor_info *t = find_tensor(ld, name, 2, ne, required, &idx);
	if (!t && !required && gguf_find_tensor(ld->f, name) >= 0) {
		/* present with the wrong shape: an error, not an absent tensor */
		find_tensor(ld, name, 2, ne, true, &idx);
		return FM_EFORMAT;
	}
	if (!t)
		return required ? ld->err->code : FM_ENOTFOUND;
	const struct kernels *k = kernels_get(KERNEL_ISA_REF);
	if (!k->fmt[t->type].vec_dot)
		return fm_err(ld->err, FM_EUNSUPPORTED, ld->path, t->offset,
			      "tensor '%s': type %s is not supported for matrices", name,
			      ggml_type_get(t->type) ? ggml_type_get(t->type)->name : "?");
	q->type = (enum ggml_type)t->type;
	q->n_cols = (int)n_cols;
	q->n_rows = (int)n_rows;
	q->row_bytes = ggml_row_bytes(t->type, (uint64_t)n_cols);
	q->data = gguf_tensor_data(ld->f, (uint64_t)idx);
	ld->m->bytes_dense += t->size_bytes;
	return 0;
}

static int bind_exps(struct loader *ld, struct qexps *q, const char *name, int64_t n_cols,
		     int64_t n_rows, int64_t n_expert)
{
	int64_t ne[3] = { n_cols, n_rows, n_expert }, idx;
	const struct gguf_tensor_info *t = find_tensor(ld, name, 3, ne, true, &idx);
	if (!t)
		return ld->err->code;
	if (!kernels_get(KERNEL_ISA_REF)->fmt[t->type].vec_dot)
		return fm_err(ld->err, FM_EUNSUPPORTED, ld->path, t->offset,
			      "tensor '%s': type %u is not supported for experts", name, t->type);
	q->type = (enum ggml_type)t->type;
	q->n_cols = (int)n_cols;
	q->n_rows = (int)n_rows;
	q->row_bytes = ggml_row_bytes(t->type, (uint64_t)n_cols);
	q->expert_bytes = q->row_bytes * (size_t)n_rows;
	q->data = gguf_tensor_data(ld->f, (uint64_t)idx);
	q->file_offset = t->offset;
	ld->m->bytes_expert += t->size_bytes;
	return 0;
}

/* A vector (or small f32 table) as f32: a pointer into the file when it is
 * f32, else a copy. */
static int bind_vec(struct loader *ld, const float **out, const char *name, int n_dims,
		    const int64_t *ne)
{
	int64_t idx;
	const struct gguf_tensor_info *t = find_tensor(ld, name, n_dims, ne, true, &idx);
	if (!t)
		return ld->err->code;
	size_t n = (size_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
	const void *src = gguf_tensor_data(ld->f, (uint64_t)idx);
	ld->m->bytes_dense += t->size_bytes;
	if (t->type == GGML_TYPE_F32) {
		*out = src;
		return 0;
	}
	const struct kernels *k = kernels_get(KERNEL_ISA_REF);
	if (!k->fmt[t->type].dequantize || ld->f32_used + n > ld->f32_cap)
		return fm_err(ld->err, FM_EUNSUPPORTED, ld->path, t->offset,
			      "tensor '%s': type %u is not supported for vectors", name, t->type);
	float *dst = ld->m->f32_copies + ld->f32_used;
	k->fmt[t->type].dequantize(src, dst, n);
	ld->f32_used += n;
	*out = dst;
	return 0;
}

/* Whether table entry t belongs to layer il (il < 0: the globals). */
static bool entry_applies(const struct hparams *hp, const struct arch_tensor *t, int il)
{
	if (il < 0)
		return t->kinds == 0;
	return (t->kinds & LAYER_MASK(hp->layer_kind[il])) != 0;
}

static void entry_shape(const struct hparams *hp, const struct arch_tensor *t, int64_t ne[3])
{
	for (int d = 0; d < 3; d++)
		ne[d] = d < t->n_dims ? (int64_t)arch_dim_value(hp, t->ne[d]) : 1;
}

static void *entry_slot(struct model *m, const struct arch_tensor *t, int il)
{
	char *base = il < 0 ? (char *)&m->w : (char *)&m->w.layers[il];
	return base + t->off;
}

static int bind_entry(struct loader *ld, const struct arch_tensor *t, int il)
{
	char name[96];
	int64_t ne[3];
	snprintf(name, sizeof(name), t->name, il);
	entry_shape(&ld->m->hp, t, ne);
	void *slot = entry_slot(ld->m, t, il);
	switch (t->slot) {
	case SLOT_MAT:
		return bind_qmat(ld, slot, name, ne[0], ne[1], !(t->flags & AT_OPTIONAL));
	case SLOT_VEC:
		return bind_vec(ld, slot, name, t->n_dims, ne);
	case SLOT_EXPS:
		return bind_exps(ld, slot, name, ne[0], ne[1], ne[2]);
	}
	return FM_EINVAL;
}

/* n_ff_exp (and n_ff_shexp) may be absent from a file: take them from the
 * first layer's tensor whose rows the table measures in that dim, as
 * llama.cpp does. */
static int infer_width(struct loader *ld, int *field, enum arch_dim dim)
{
	const struct hparams *hp = &ld->m->hp;
	const struct arch_tensor *t = NULL;
	for (int j = 0; !t && j < hp->arch->n_tensors; j++)
		if (hp->arch->tensors[j].ne[1] == dim && hp->arch->tensors[j].kinds)
			t = &hp->arch->tensors[j];
	if (*field || !t)
		return 0;
	int il = 0;
	while (il < hp->n_layer && !(t->kinds & LAYER_MASK(hp->layer_kind[il])))
		il++;
	char name[96];
	snprintf(name, sizeof(name), t->name, il);
	int64_t i = gguf_find_tensor(ld->f, name);
	if (i < 0)
		return fm_err(ld->err, FM_EFORMAT, ld->path, FM_NO_OFFSET, "missing tensor '%s'",
			      name);
	uint64_t ff = gguf_tensor(ld->f, (uint64_t)i)->ne[1];
	if (ff == 0 || ff > HP_MAX_DIM)
		return fm_err(ld->err, FM_EFORMAT, ld->path, FM_NO_OFFSET, "%s: bad width %llu",
			      name, (unsigned long long)ff);
	*field = (int)ff;
	return 0;
}

/* Every tensor of the file must be one the architecture binds: a tensor of
 * a layer >= block_count, a misspelt name or another architecture's tensor
 * means the file is not what its metadata says (llama.cpp refuses it too).
 * The MTP blocks (after the decoder's) are kept in the file, not run. */
static int check_all_bound(struct loader *ld)
{
	const struct hparams *hp = &ld->m->hp;
	for (uint64_t i = 0; i < gguf_n_tensors(ld->f); i++) {
		if (ld->bound[i])
			continue;
		const struct gguf_tensor_info *t = gguf_tensor(ld->f, i);
		int blk = -1;
		if (sscanf(t->name_z, "blk.%d.", &blk) == 1 && blk >= hp->n_layer &&
		    blk < hp->n_block)
			continue;
		return fm_err(ld->err, FM_EFORMAT, ld->path, t->offset,
			      "tensor '%.*s' is not used by %s with %d layers (a tensor of another "
			      "layer count or architecture?)", (int)t->name.len, t->name.ptr,
			      hp->arch_name, hp->n_layer);
	}
	return 0;
}

/* Floats needed for f32 copies of the vectors stored in another type:
 * counted from the file (only tensors of the expected size count; a wrong
 * one is refused when bound), so a huge head_dim in the metadata allocates
 * nothing before the shapes are checked. */
static size_t f32_copies_needed(struct loader *ld)
{
	const struct hparams *hp = &ld->m->hp;
	const struct arch *a = hp->arch;
	size_t need = 0;
	char name[96];
	for (int il = -1; il < hp->n_layer; il++) {
		for (int j = 0; j < a->n_tensors; j++) {
			const struct arch_tensor *t = &a->tensors[j];
			if (t->slot != SLOT_VEC || !entry_applies(hp, t, il))
				continue;
			snprintf(name, sizeof(name), t->name, il);
			int64_t i = gguf_find_tensor(ld->f, name), ne[3];
			if (i < 0)
				continue;
			const struct gguf_tensor_info *ti = gguf_tensor(ld->f, (uint64_t)i);
			entry_shape(hp, t, ne);
			uint64_t want = (uint64_t)ne[0] * (uint64_t)ne[1] * (uint64_t)ne[2];
			if (ti->type != GGML_TYPE_F32 && ti->ne[0] * ti->ne[1] * ti->ne[2] == want)
				need += (size_t)want;
		}
	}
	return need;
}

static int bind_all(struct loader *ld)
{
	struct model *m = ld->m;
	struct hparams *hp = &m->hp;
	const struct arch *a = hp->arch;
	int64_t i = gguf_find_tensor(ld->f, "token_embd.weight");
	if (i < 0)
		return fm_err(ld->err, FM_EFORMAT, ld->path, FM_NO_OFFSET,
			      "missing tensor 'token_embd.weight'");
	uint64_t n_vocab = gguf_tensor(ld->f, (uint64_t)i)->ne[1];
	if (n_vocab == 0 || n_vocab > (1u << 26))
		return fm_err(ld->err, FM_EFORMAT, ld->path, FM_NO_OFFSET,
			      "token_embd.weight: vocabulary of %llu rows is out of range",
			      (unsigned long long)n_vocab);
	hp->n_vocab = (int)n_vocab;
	int rc = 0;
	for (int il = -1; !rc && il < hp->n_layer; il++) {
		for (int j = 0; !rc && j < a->n_tensors; j++) {
			if (!entry_applies(hp, &a->tensors[j], il))
				continue;
			rc = bind_entry(ld, &a->tensors[j], il);
			if (rc == FM_ENOTFOUND && il < 0 && a->tensors[j].off ==
						  offsetof(struct model_weights, output)) {
				m->w.output = m->w.tok_embd; /* tied embeddings */
				rc = 0;
			}
		}
	}
	return rc ? rc : check_all_bound(ld);
}

/* The tensor bytes outside the 3-D expert tensors, for messages. */
static double dense_estimate_mib(const struct gguf_file *f)
{
	uint64_t b = 0;
	for (uint64_t i = 0; i < gguf_n_tensors(f); i++) {
		const struct gguf_tensor_info *t = gguf_tensor(f, i);
		if (t->ne[2] <= 1)
			b += t->size_bytes;
	}
	return b / 1048576.0;
}

static int read_arch(struct loader *ld)
{
	struct hparams *hp = &ld->m->hp;
	struct gguf_str arch;
	int rc = gguf_get_str(ld->f, "general.architecture", &arch, ld->err);
	if (rc == FM_ENOTFOUND)
		return fm_err(ld->err, FM_EFORMAT, ld->path, FM_NO_OFFSET,
			      "missing metadata key 'general.architecture'");
	if (rc)
		return rc;
	hp->arch = arch_find(arch.ptr, arch.len);
	if (!hp->arch)
		return fm_err(ld->err, FM_EUNSUPPORTED, ld->path, FM_NO_OFFSET,
			      "architecture '%.*s' is not supported (supported: %s)",
			      (int)(arch.len > 64 ? 64 : arch.len), arch.ptr, arch_names());
	snprintf(hp->arch_name, sizeof(hp->arch_name), "%s", hp->arch->name);
	return 0;
}

int model_load(struct model *m, struct gguf_file *f, int n_expert_used, struct fm_mem *mem,
	       struct fm_error *err)
{
	memset(m, 0, sizeof(*m));
	m->file = f;
	m->mem = mem;
	struct loader ld = { .m = m, .f = f, .err = err, .path = gguf_path(f) };
	int rc = read_arch(&ld);
	rc = rc ? rc : read_hparams(&ld, n_expert_used);
	rc = rc ? rc : infer_width(&ld, &m->hp.n_ff_exp, DIM_FF_EXP);
	rc = rc ? rc : infer_width(&ld, &m->hp.n_ff_shexp, DIM_FF_SHEXP);
	if (rc)
		return rc;
	m->w.layers = calloc((size_t)m->hp.n_layer, sizeof(*m->w.layers));
	ld.bound = calloc(gguf_n_tensors(f) + 1, 1);
	if (m->w.layers && ld.bound) {
		/* vectors that are not f32 need f32 copies */
		ld.f32_cap = f32_copies_needed(&ld);
		m->f32_copies_bytes = ld.f32_cap * sizeof(float);
		m->f32_copies = fm_alloc(mem, m->f32_copies_bytes);
	}
	if (!m->f32_copies || !m->w.layers || !ld.bound) {
		rc = mem && mem->budget_bytes
			? fm_err(err, FM_ENOMEM, ld.path, FM_NO_OFFSET,
				 "--mem budget of %llu bytes is too small to load the model "
				 "(its dense weights alone are %.1f MiB)",
				 (unsigned long long)mem->budget_bytes, dense_estimate_mib(f))
			: fm_err(err, FM_ENOMEM, ld.path, FM_NO_OFFSET, "out of memory binding tensors");
		goto fail;
	}
	rc = bind_all(&ld);
	if (rc)
		goto fail;
	free(ld.bound);
	return 0;
fail:
	free(ld.bound);
	model_unload(m);
	return rc;
}

void model_unload(struct model *m)
{
	if (!m)
		return;
	fm_free(m->mem, m->f32_copies, m->f32_copies_bytes);
	if (m->embd_raw) {
		close(m->embd_fd);
		fm_free(m->mem, m->embd_raw, m->embd_raw_bytes);
		m->embd_raw = m->embd_buf = NULL;
		m->embd_fd = -1;
	}
	for (int i = 0; m->copies && i < m->n_copies; i++)
		fm_free(m->mem, m->copies[i].p, m->copies[i].bytes);
	free(m->copies);
	m->copies = NULL;
	free(m->w.layers);
	m->f32_copies = NULL;
	m->w.layers = NULL;
}

/* Reading the dense weights without filling the page cache: O_DIRECT reads of
 * aligned spans into a bounce buffer, copied out; when the file system refuses
 * O_DIRECT, plain reads dropped from the cache chunk by chunk. */
#define DENSE_CHUNK (8u << 20)

struct dense_reader {
	int fd;
	bool direct;
	uint8_t *bounce;       /* DENSE_CHUNK + 4096, 4096-aligned */
	const char *path;
};

static int read_span(struct dense_reader *r, uint8_t *dst, uint64_t off, size_t len,
		     struct fm_error *err)
{
	while (len) {
		uint64_t a0 = r->direct ? off & ~(uint64_t)4095 : off;
		size_t lead = (size_t)(off - a0);
		size_t want = len + lead < DENSE_CHUNK ? len + lead : DENSE_CHUNK;
		size_t req = r->direct ? (want + 4095) & ~(size_t)4095 : want;
		ssize_t got = pread(r->fd, r->bounce, req, (off_t)a0);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= (ssize_t)lead)
			return fm_err(err, got < 0 ? -errno : FM_EIO, r->path, off,
				      "reading dense weights: %s",
				      got < 0 ? strerror(errno) : "unexpected end of file");
		size_t n = (size_t)got - lead < len ? (size_t)got - lead : len;
		if (n > want - lead)
			n = want - lead;
		memcpy(dst, r->bounce + lead, n);
		if (!r->direct)
			posix_fadvise(r->fd, (off_t)a0, got, POSIX_FADV_DONTNEED);
		dst += n;
		off += n;
		len -= n;
	}
	return 0;
}

/* Copy one tensor's bytes into counted memory and repoint *ptr at the copy. */
static int copy_one(struct model *m, struct dense_reader *r, const uint8_t *map_base,
		    const uint8_t **ptr, size_t bytes, struct fm_error *err)
{
	if (!*ptr || !bytes)
		return 0;
	uint64_t off = (uint64_t)(*ptr - map_base);
	uint8_t *dst = fm_alloc(m->mem, bytes);
	if (!dst)
		return fm_err(err, FM_ENOMEM, gguf_path(m->file), off,
			      "--mem budget too small for the dense weights (%.1f MiB needed so far, budget %.1f MiB)",
			      (m->dense_copied + bytes) / 1048576.0,
			      m->mem->budget_bytes / 1048576.0);
	int rc = read_span(r, dst, off, bytes, err);
	if (rc) {
		fm_free(m->mem, dst, bytes);
		return rc;
	}
	m->copies[m->n_copies].p = dst;
	m->copies[m->n_copies++].bytes = bytes;
	m->dense_copied += bytes;
	*ptr = dst;
	return 0;
}

/* Leave token_embd in the file: a descriptor of its own (r's kind) and a
 * buffer for one row's aligned span (model_embd_row). */
static int embd_on_disk(struct model *m, const struct dense_reader *r, const uint8_t *map_base,
			struct fm_error *err)
{
	const struct qmat *e = &m->w.tok_embd;
	m->embd_fd = open(r->path, O_RDONLY | O_CLOEXEC | (r->direct ? O_DIRECT : 0));
	if (m->embd_fd < 0)
		return fm_err(err, -errno, r->path, FM_NO_OFFSET, "%s", strerror(errno));
	m->embd_direct = r->direct;
	m->embd_off = (uint64_t)(e->data - map_base);
	m->embd_raw_bytes = (e->row_bytes + 4095) / 4096 * 4096 + 2 * 4096;
	m->embd_raw = fm_alloc(m->mem, m->embd_raw_bytes);
	if (!m->embd_raw) {
		close(m->embd_fd);
		m->embd_fd = -1;
		return fm_err(err, FM_ENOMEM, r->path, m->embd_off,
			      "--mem budget too small for one embedding row");
	}
	m->embd_buf = (uint8_t *)(((uintptr_t)m->embd_raw + 4095) & ~(uintptr_t)4095);
	return 0;
}

int model_embd_row(struct model *m, int32_t tok, const uint8_t **row, struct fm_error *err)
{
	const struct qmat *e = &m->w.tok_embd;
	if (!m->embd_raw) {
		*row = e->data + (size_t)tok * e->row_bytes;
		return 0;
	}
	uint64_t off = m->embd_off + (uint64_t)tok * e->row_bytes;
	uint64_t a0 = m->embd_direct ? off & ~(uint64_t)4095 : off;
	size_t lead = (size_t)(off - a0), want = lead + e->row_bytes;
	size_t req = m->embd_direct ? (want + 4095) & ~(size_t)4095 : want;
	for (int attempt = 0;; attempt++) {
		ssize_t got = pread(m->embd_fd, m->embd_buf, req, (off_t)a0);
		if (got >= (ssize_t)want)
			break;
		if ((got < 0 && errno == EINTR) || attempt == 0)
			continue; /* retried once, as the expert reads are */
		return fm_err(err, got < 0 ? -errno : FM_EIO, gguf_path(m->file), off,
			      "reading the embedding row of token %d: %s", tok,
			      got < 0 ? strerror(errno) : "unexpected end of file");
	}
	if (!m->embd_direct)
		posix_fadvise(m->embd_fd, (off_t)a0, (off_t)req, POSIX_FADV_DONTNEED);
	*row = m->embd_buf + lead;
	return 0;
}

/* Whether a norm vector points into the file mapping (not an f32 copy). */
static bool in_mapping(const struct model *m, const float *v)
{
	return v && !(v >= m->f32_copies && v < m->f32_copies + m->f32_copies_bytes / sizeof(float));
}

static size_t qmat_bytes(const struct qmat *q)
{
	return q->row_bytes * (size_t)q->n_rows;
}

int model_copy_dense(struct model *m, struct fm_error *err)
{
	const struct gguf_tensor_info *t0 = gguf_tensor(m->file, 0);
	const uint8_t *base = (const uint8_t *)gguf_tensor_data(m->file, 0) - t0->offset;
	struct dense_reader r = { .path = gguf_path(m->file), .direct = true };
	r.fd = open(r.path, O_RDONLY | O_CLOEXEC | O_DIRECT);
	if (r.fd < 0) {
		r.direct = false;
		r.fd = open(r.path, O_RDONLY | O_CLOEXEC);
	}
	if (r.fd < 0)
		return fm_err(err, -errno, r.path, FM_NO_OFFSET, "%s", strerror(errno));
	posix_fadvise(r.fd, 0, 0, POSIX_FADV_RANDOM);
	r.bounce = fm_alloc(m->mem, DENSE_CHUNK + 4096);
	const struct arch *a = m->hp.arch;
	m->copies = calloc(4 + (size_t)a->n_tensors * ((size_t)m->hp.n_layer + 1),
			   sizeof(*m->copies));
	int rc = m->copies && r.bounce ? 0 : FM_ENOMEM;
	struct model_weights *w = &m->w;
	bool tied = w->output.data == w->tok_embd.data;
	/* every dense matrix of the table; the f32 vectors that still point into
	 * the mapping too, so no page of the file is ever faulted in (and read
	 * around) again */
	for (int il = -1; !rc && il < m->hp.n_layer; il++) {
		for (int j = 0; !rc && j < a->n_tensors; j++) {
			const struct arch_tensor *t = &a->tensors[j];
			if (!entry_applies(&m->hp, t, il) || t->slot == SLOT_EXPS)
				continue;
			void *slot = entry_slot(m, t, il);
			if (t->slot == SLOT_MAT) {
				struct qmat *q = slot;
				if (tied && q == &w->output)
					continue;
				if (!tied && q == &w->tok_embd) {
					rc = embd_on_disk(m, &r, base, err);
					continue;
				}
				rc = copy_one(m, &r, base, &q->data, qmat_bytes(q), err);
				continue;
			}
			const float **v = slot;
			int64_t ne[3];
			entry_shape(&m->hp, t, ne);
			if (in_mapping(m, *v))
				rc = copy_one(m, &r, base, (const uint8_t **)v,
					      (size_t)(ne[0] * ne[1] * ne[2]) * sizeof(float), err);
		}
	}
	if (tied)
		w->output.data = w->tok_embd.data;
	fm_free(m->mem, r.bounce, DENSE_CHUNK + 4096);
	close(r.fd);
	if (rc == FM_ENOMEM && err && !err->msg[0])
		fm_err(err, FM_ENOMEM, NULL, FM_NO_OFFSET, "out of memory");
	return rc;
}
