/* model.c: hyperparameters and tensor binding for qwen3moe GGUF files
 * (architectures.md §5, §9). Every shape is read from the file and checked. */
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

/* Bounds on the hyperparameters, far above any released model (Qwen3.5-397B:
 * 60 layers, 512 experts of which 10 used, hidden 4096, 32 heads of 256) and
 * low enough that every size derived from them (a batch's query rows, the
 * (token, expert) pairs of a batch) stays far inside an int. */
#define HP_MAX_LAYER 4096
#define HP_MAX_EXPERT 65536
#define HP_MAX_EXPERT_USED 1024
#define HP_MAX_DIM (1 << 20)       /* n_embd, head_dim, n_ff_exp, head counts */
#define HP_MAX_FEATURES (1 << 22)  /* n_head * head_dim, n_head_kv * head_dim */


static int get_u32_req(struct loader *ld, const char *suffix, int *out)
{
	char key[128];
	snprintf(key, sizeof(key), "%s.%s", ld->m->hp.arch_name, suffix);
	uint32_t v;
	int rc = gguf_get_u32(ld->f, key, &v, ld->err);
	if (rc == FM_ENOTFOUND)
		return fm_err(ld->err, FM_EFORMAT, ld->path, FM_NO_OFFSET,
			      "missing metadata key '%s'", key);
	if (rc)
		return rc;
	if (v == 0 || v > (1u << 30))
		return fm_err(ld->err, FM_EFORMAT, ld->path, FM_NO_OFFSET,
			      "metadata '%s' = %u is out of range", key, v);
	*out = (int)v;
	return 0;
}

static int get_u32_opt(struct loader *ld, const char *suffix, int *out, int dflt)
{
	int rc = get_u32_req(ld, suffix, out);
	if (rc == FM_EFORMAT) {
		char key[128];
		snprintf(key, sizeof(key), "%s.%s", ld->m->hp.arch_name, suffix);
		if (gguf_find_key(ld->f, key) < 0) {
			*out = dflt;
			return 0;
		}
	}
	return rc;
}

static int get_f32_opt(struct loader *ld, const char *suffix, float *out, float dflt)
{
	char key[128];
	snprintf(key, sizeof(key), "%s.%s", ld->m->hp.arch_name, suffix);
	int rc = gguf_get_f32(ld->f, key, out, ld->err);
	if (rc == FM_ENOTFOUND) {
		*out = dflt;
		return 0;
	}
	return rc;
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
		{ "block_count", hp->n_layer, HP_MAX_LAYER },
		{ "embedding_length", hp->n_embd, HP_MAX_DIM },
		{ "attention.head_count", hp->n_head, HP_MAX_DIM },
		{ "attention.head_count_kv", hp->n_head_kv, HP_MAX_DIM },
		{ "attention.key_length", hp->head_dim, HP_MAX_DIM },
		{ "expert_count", hp->n_expert, HP_MAX_EXPERT },
		{ "expert_used_count", hp->n_expert_used, HP_MAX_EXPERT_USED },
		{ "expert_feed_forward_length", hp->n_ff_exp, HP_MAX_DIM },
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

static int read_hparams(struct loader *ld, int n_expert_used)
{
	struct hparams *hp = &ld->m->hp;
	int rc = 0;
	rc = rc ? rc : get_u32_req(ld, "block_count", &hp->n_layer);
	rc = rc ? rc : get_u32_req(ld, "embedding_length", &hp->n_embd);
	rc = rc ? rc : get_u32_req(ld, "attention.head_count", &hp->n_head);
	rc = rc ? rc : get_u32_opt(ld, "attention.head_count_kv", &hp->n_head_kv, hp->n_head);
	rc = rc ? rc : get_u32_opt(ld, "attention.key_length", &hp->head_dim,
				   hp->n_head ? hp->n_embd / hp->n_head : 0);
	rc = rc ? rc : get_u32_opt(ld, "rope.dimension_count", &hp->n_rot, hp->head_dim);
	rc = rc ? rc : get_u32_req(ld, "expert_count", &hp->n_expert);
	rc = rc ? rc : get_u32_req(ld, "expert_used_count", &hp->n_expert_used);
	rc = rc ? rc : get_u32_opt(ld, "expert_feed_forward_length", &hp->n_ff_exp, 0);
	rc = rc ? rc : get_u32_opt(ld, "context_length", &hp->n_ctx_train, 4096);
	rc = rc ? rc : get_f32_opt(ld, "attention.layer_norm_rms_epsilon", &hp->rms_eps, 1e-6f);
	rc = rc ? rc : get_f32_opt(ld, "rope.freq_base", &hp->rope_theta, 10000.0f);
	if (rc)
		return rc;
	int v_len;
	rc = get_u32_opt(ld, "attention.value_length", &v_len, hp->head_dim);
	if (rc)
		return rc;
	if (v_len != hp->head_dim)
		return fm_err(ld->err, FM_EUNSUPPORTED, ld->path, FM_NO_OFFSET,
			      "value_length %d != key_length %d is not supported", v_len,
			      hp->head_dim);
	rc = check_ranges(ld);
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
	hp->norm_topk = true;
	bool b;
	char key[128];
	snprintf(key, sizeof(key), "%s.expert_weights_norm", hp->arch_name);
	rc = gguf_get_bool(ld->f, key, &b, ld->err); /* a wrong type is an error */
	if (rc == 0)
		hp->norm_topk = b;
	else if (rc != FM_ENOTFOUND)
		return rc;
	if (ld->err)
		ld->err->code = 0;
	return 0;
}

/* Look up a tensor and check its type is usable and its shape is ne[]. */
static const struct gguf_tensor_info *find_tensor(struct loader *ld, const char *name,
						  int n_dims, const int64_t *ne, bool required,
						  int64_t *index)
{
	int64_t i = gguf_find_tensor(ld->f, name);
	if (i < 0) {
		if (required)
			fm_err(ld->err, FM_EFORMAT, ld->path, FM_NO_OFFSET,
			       "missing tensor '%s'", name);
		else if (ld->err)
			ld->err->code = 0;
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

static int bind_qmat(struct loader *ld, struct qmat *q, const char *name, int n_cols, int n_rows,
		     bool required)
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
	q->n_cols = n_cols;
	q->n_rows = n_rows;
	q->row_bytes = ggml_row_bytes(t->type, (uint64_t)n_cols);
	q->data = gguf_tensor_data(ld->f, (uint64_t)idx);
	ld->m->bytes_dense += t->size_bytes;
	return 0;
}

static int bind_exps(struct loader *ld, struct qexps *q, const char *name, int n_cols,
		     int n_rows, int n_expert)
{
	int64_t ne[3] = { n_cols, n_rows, n_expert }, idx;
	const struct gguf_tensor_info *t = find_tensor(ld, name, 3, ne, true, &idx);
	if (!t)
		return ld->err->code;
	if (!kernels_get(KERNEL_ISA_REF)->fmt[t->type].vec_dot)
		return fm_err(ld->err, FM_EUNSUPPORTED, ld->path, t->offset,
			      "tensor '%s': type %u is not supported for experts", name, t->type);
	q->type = (enum ggml_type)t->type;
	q->n_cols = n_cols;
	q->n_rows = n_rows;
	q->row_bytes = ggml_row_bytes(t->type, (uint64_t)n_cols);
	q->expert_bytes = q->row_bytes * (size_t)n_rows;
	q->data = gguf_tensor_data(ld->f, (uint64_t)idx);
	q->file_offset = t->offset;
	ld->m->bytes_expert += t->size_bytes;
	return 0;
}

/* A 1-D vector as f32: a pointer into the file when it is f32, else a copy. */
static int bind_vec(struct loader *ld, const float **out, const char *name, int n)
{
	int64_t ne[1] = { n }, idx;
	const struct gguf_tensor_info *t = find_tensor(ld, name, 1, ne, true, &idx);
	if (!t)
		return ld->err->code;
	const void *src = gguf_tensor_data(ld->f, (uint64_t)idx);
	ld->m->bytes_dense += t->size_bytes;
	if (t->type == GGML_TYPE_F32) {
		*out = src;
		return 0;
	}
	const struct kernels *k = kernels_get(KERNEL_ISA_REF);
	if (!k->fmt[t->type].dequantize || ld->f32_used + (size_t)n > ld->f32_cap)
		return fm_err(ld->err, FM_EUNSUPPORTED, ld->path, t->offset,
			      "tensor '%s': type %u is not supported for norms", name, t->type);
	float *dst = ld->m->f32_copies + ld->f32_used;
	k->fmt[t->type].dequantize(src, dst, (size_t)n);
	ld->f32_used += (size_t)n;
	*out = dst;
	return 0;
}

static int bind_layer(struct loader *ld, int il)
{
	const struct hparams *hp = &ld->m->hp;
	struct layer_weights *l = &ld->m->w.layers[il];
	int q_dim = hp->n_head * hp->head_dim, kv_dim = hp->n_head_kv * hp->head_dim;
	char name[96];
	int rc = 0;
#define NAME(s) (snprintf(name, sizeof(name), "blk.%d." s, il), name)
	rc = rc ? rc : bind_vec(ld, &l->attn_norm, NAME("attn_norm.weight"), hp->n_embd);
	rc = rc ? rc : bind_qmat(ld, &l->wq, NAME("attn_q.weight"), hp->n_embd, q_dim, true);
	rc = rc ? rc : bind_qmat(ld, &l->wk, NAME("attn_k.weight"), hp->n_embd, kv_dim, true);
	rc = rc ? rc : bind_qmat(ld, &l->wv, NAME("attn_v.weight"), hp->n_embd, kv_dim, true);
	rc = rc ? rc : bind_qmat(ld, &l->wo, NAME("attn_output.weight"), q_dim, hp->n_embd, true);
	rc = rc ? rc : bind_vec(ld, &l->q_norm, NAME("attn_q_norm.weight"), hp->head_dim);
	rc = rc ? rc : bind_vec(ld, &l->k_norm, NAME("attn_k_norm.weight"), hp->head_dim);
	rc = rc ? rc : bind_vec(ld, &l->ffn_norm, NAME("ffn_norm.weight"), hp->n_embd);
	rc = rc ? rc : bind_qmat(ld, &l->router, NAME("ffn_gate_inp.weight"), hp->n_embd,
				 hp->n_expert, true);
	rc = rc ? rc : bind_exps(ld, &l->gate, NAME("ffn_gate_exps.weight"), hp->n_embd,
				 hp->n_ff_exp, hp->n_expert);
	rc = rc ? rc : bind_exps(ld, &l->up, NAME("ffn_up_exps.weight"), hp->n_embd,
				 hp->n_ff_exp, hp->n_expert);
	rc = rc ? rc : bind_exps(ld, &l->down, NAME("ffn_down_exps.weight"), hp->n_ff_exp,
				 hp->n_embd, hp->n_expert);
#undef NAME
	return rc;
}

/* n_ff_exp may be absent from old files: take it from the gate tensor. */
static int infer_ff_exp(struct loader *ld)
{
	struct hparams *hp = &ld->m->hp;
	if (hp->n_ff_exp)
		return 0;
	int64_t i = gguf_find_tensor(ld->f, "blk.0.ffn_gate_exps.weight");
	if (i < 0)
		return fm_err(ld->err, FM_EFORMAT, ld->path, FM_NO_OFFSET,
			      "missing tensor 'blk.0.ffn_gate_exps.weight'");
	uint64_t ff = gguf_tensor(ld->f, (uint64_t)i)->ne[1];
	if (ff == 0 || ff > (1u << 30))
		return fm_err(ld->err, FM_EFORMAT, ld->path, FM_NO_OFFSET, "bad expert width %llu",
			      (unsigned long long)ff);
	hp->n_ff_exp = (int)ff;
	return 0;
}

/* Every tensor of the file must be one the architecture binds: a tensor of
 * a layer >= block_count, a misspelt name or another architecture's tensor
 * means the file is not what its metadata says (llama.cpp refuses it too). */
static int check_all_bound(struct loader *ld)
{
	for (uint64_t i = 0; i < gguf_n_tensors(ld->f); i++) {
		if (ld->bound[i])
			continue;
		const struct gguf_tensor_info *t = gguf_tensor(ld->f, i);
		return fm_err(ld->err, FM_EFORMAT, ld->path, t->offset,
			      "tensor '%.*s' is not used by %s with %d layers (a tensor of another "
			      "layer count or architecture?)", (int)t->name.len, t->name.ptr,
			      ld->m->hp.arch_name, ld->m->hp.n_layer);
	}
	return 0;
}

/* Floats needed for f32 copies of the norm vectors stored in another type:
 * counted from the file (only tensors of the expected length count; a wrong
 * one is refused when bound), so a huge head_dim in the metadata allocates
 * nothing before the shapes are checked. */
static size_t f32_copies_needed(struct loader *ld)
{
	const struct hparams *hp = &ld->m->hp;
	static const char *const per_layer[] = { "attn_norm", "ffn_norm", "attn_q_norm",
						 "attn_k_norm" };
	size_t need = 0;
	char name[96];
	for (int il = -1; il < hp->n_layer; il++) {
		for (int j = 0; j < (il < 0 ? 1 : 4); j++) {
			if (il < 0)
				snprintf(name, sizeof(name), "output_norm.weight");
			else
				snprintf(name, sizeof(name), "blk.%d.%s.weight", il, per_layer[j]);
			int64_t i = gguf_find_tensor(ld->f, name);
			if (i < 0)
				continue;
			const struct gguf_tensor_info *t = gguf_tensor(ld->f, (uint64_t)i);
			uint64_t want = j < 2 ? (uint64_t)hp->n_embd : (uint64_t)hp->head_dim;
			if (t->type != GGML_TYPE_F32 && t->ne[0] == want)
				need += (size_t)want;
		}
	}
	return need;
}

static int bind_globals(struct loader *ld)
{
	struct model *m = ld->m;
	struct hparams *hp = &m->hp;
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
	int rc = bind_qmat(ld, &m->w.tok_embd, "token_embd.weight", hp->n_embd, hp->n_vocab, true);
	if (!rc)
		rc = bind_vec(ld, &m->w.output_norm, "output_norm.weight", hp->n_embd);
	if (rc)
		return rc;
	rc = bind_qmat(ld, &m->w.output, "output.weight", hp->n_embd, hp->n_vocab, false);
	if (rc == FM_ENOTFOUND) { /* tied embeddings */
		m->w.output = m->w.tok_embd;
		rc = 0;
	}
	return rc;
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

int model_load(struct model *m, struct gguf_file *f, int n_expert_used, struct fm_mem *mem,
	       struct fm_error *err)
{
	memset(m, 0, sizeof(*m));
	m->file = f;
	m->mem = mem;
	struct loader ld = { .m = m, .f = f, .err = err, .path = gguf_path(f) };
	struct gguf_str arch;
	int rc = gguf_get_str(f, "general.architecture", &arch, err);
	if (rc == FM_ENOTFOUND)
		return fm_err(err, FM_EFORMAT, ld.path, FM_NO_OFFSET,
			      "missing metadata key 'general.architecture'");
	if (rc)
		return rc;
	if (arch.len != 8 || memcmp(arch.ptr, "qwen3moe", 8))
		return fm_err(err, FM_EUNSUPPORTED, ld.path, FM_NO_OFFSET,
			      "architecture '%.*s' is not supported (supported: qwen3moe)",
			      (int)(arch.len > 64 ? 64 : arch.len), arch.ptr);
	m->hp.arch = ARCH_QWEN3MOE;
	snprintf(m->hp.arch_name, sizeof(m->hp.arch_name), "qwen3moe");
	rc = read_hparams(&ld, n_expert_used);
	if (!rc)
		rc = infer_ff_exp(&ld);
	if (rc)
		return rc;
	/* norm vectors that are not f32 need f32 copies */
	ld.f32_cap = f32_copies_needed(&ld);
	m->f32_copies_bytes = ld.f32_cap * sizeof(float);
	m->f32_copies = fm_alloc(mem, m->f32_copies_bytes);
	m->w.layers = calloc((size_t)m->hp.n_layer, sizeof(*m->w.layers));
	ld.bound = calloc(gguf_n_tensors(f) + 1, 1);
	if (!m->f32_copies || !m->w.layers || !ld.bound) {
		rc = mem && mem->budget_bytes
			? fm_err(err, FM_ENOMEM, ld.path, FM_NO_OFFSET,
				 "--mem budget of %llu bytes is too small to load the model "
				 "(its dense weights alone are %.1f MiB)",
				 (unsigned long long)mem->budget_bytes, dense_estimate_mib(f))
			: fm_err(err, FM_ENOMEM, ld.path, FM_NO_OFFSET, "out of memory binding tensors");
		goto fail;
	}
	rc = bind_globals(&ld);
	for (int il = 0; !rc && il < m->hp.n_layer; il++)
		rc = bind_layer(&ld, il);
	if (!rc)
		rc = check_all_bound(&ld);
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
	m->copies = calloc(8 + 12u * (size_t)m->hp.n_layer, sizeof(*m->copies));
	int rc = m->copies && r.bounce ? 0 : FM_ENOMEM;
	struct model_weights *w = &m->w;
	bool tied = w->output.data == w->tok_embd.data;
	rc = rc ? rc : copy_one(m, &r, base, &w->tok_embd.data, qmat_bytes(&w->tok_embd), err);
	if (tied)
		w->output.data = w->tok_embd.data;
	else
		rc = rc ? rc : copy_one(m, &r, base, &w->output.data, qmat_bytes(&w->output), err);
	for (int il = 0; !rc && il < m->hp.n_layer; il++) {
		struct layer_weights *l = &w->layers[il];
		struct qmat *mats[5] = { &l->wq, &l->wk, &l->wv, &l->wo, &l->router };
		for (int i = 0; !rc && i < 5; i++)
			rc = copy_one(m, &r, base, &mats[i]->data, qmat_bytes(mats[i]), err);
	}
	/* the f32 norm vectors still point into the mapping: copy them too, so
	 * no page of the file is ever faulted in (and read around) again */
	size_t H = (size_t)m->hp.n_embd * sizeof(float), D = (size_t)m->hp.head_dim * sizeof(float);
	if (!rc && in_mapping(m, w->output_norm))
		rc = copy_one(m, &r, base, (const uint8_t **)&w->output_norm, H, err);
	for (int il = 0; !rc && il < m->hp.n_layer; il++) {
		struct layer_weights *l = &w->layers[il];
		const float **v[4] = { &l->attn_norm, &l->ffn_norm, &l->q_norm, &l->k_norm };
		size_t sz[4] = { H, H, D, D };
		for (int i = 0; !rc && i < 4; i++)
			if (in_mapping(m, *v[i]))
				rc = copy_one(m, &r, base, (const uint8_t **)v[i], sz[i], err);
	}
	fm_free(m->mem, r.bounce, DENSE_CHUNK + 4096);
	close(r.fd);
	if (rc == FM_ENOMEM && err && !err->msg[0])
		fm_err(err, FM_ENOMEM, NULL, FM_NO_OFFSET, "out of memory");
	return rc;
}
