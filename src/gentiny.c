/* gentiny.c: fm_gen_tiny, random-weight GGUF models of any supported
 * architecture, in its real layout (tensor names, shapes and keys as
 * llama.cpp writes them; all from the tables of src/arch/), from a few
 * KB to many GB. Weights are drawn per row from a generator seeded by (seed,
 * tensor name, row), so a file does not depend on the thread count, and they
 * have realistic scales (std 1/sqrt(fan_in)) so activations stay finite
 * through many layers. Tensors are generated and written one at a time. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flashmoe.h"
#include "gentiny.h"
#include "gguf.h"
#include "kernels/kernels.h"
#include "model.h"
#include "pool.h"
#include "util.h"

void fm_tiny_params_default(struct fm_tiny_params *p)
{
	*p = (struct fm_tiny_params){ .arch = "qwen3moe", .seed = 1, .type = GGML_TYPE_F32,
				      .n_layer = 2, .n_embd = 64, .n_head = 4, .n_head_kv = 2,
				      .head_dim = 16, .n_expert = 8, .n_expert_used = 2,
				      .n_ff_expert = 32, .n_vocab = 320, .n_ctx = 512,
				      .tied_embeddings = false };
}

struct tensor_spec {
	char name[64];
	enum ggml_type type;
	uint32_t n_dims;
	uint64_t ne[3];
	enum arch_init init;
};

static uint64_t hash_name(uint64_t seed, const char *s)
{
	uint64_t h = seed * 0x9e3779b97f4a7c15ull + 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ull;
	return h;
}

/* An approximately normal deviate: the sum of four 16-bit uniforms (Irwin-Hall,
 * variance 4/12), rescaled to unit variance. Cheap enough for many GB. */
static float next_normal(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	uint64_t r = x * 0x2545f4914f6cdd1dull;
	float sum = (float)(r & 0xffff) + (float)((r >> 16) & 0xffff) +
		    (float)((r >> 32) & 0xffff) + (float)(r >> 48);
	return (sum / 65536.0f - 2.0f) * 1.7320508f;
}

/* The first type that fits rows of n_cols: the asked one, else q8_0, else f32. */
static enum ggml_type fit_type(enum ggml_type want, uint64_t n_cols)
{
	if (ggml_row_bytes(want, n_cols))
		return want;
	if (want != GGML_TYPE_F32 && ggml_row_bytes(GGML_TYPE_Q8_0, n_cols))
		return GGML_TYPE_Q8_0;
	return GGML_TYPE_F32;
}

/* The hyperparameters a tiny model of p's shape has (what the keys say). */
static void tiny_hparams(const struct fm_tiny_params *p, const struct arch *a, struct hparams *hp)
{
	memset(hp, 0, sizeof(*hp));
	hp->arch = a;
	snprintf(hp->arch_name, sizeof(hp->arch_name), "%s", a->name);
	hp->n_vocab = p->n_vocab;
	hp->n_embd = p->n_embd;
	hp->n_layer = hp->n_block = p->n_layer;
	hp->n_head = p->n_head;
	hp->n_head_kv = p->n_head_kv;
	hp->head_dim = hp->head_dim_v = p->head_dim;
	hp->n_rot = p->n_rot ? p->n_rot : p->head_dim / (a->tiny.rot_div ? a->tiny.rot_div : 1);
	hp->n_expert = p->n_expert;
	hp->n_expert_used = p->n_expert_used;
	hp->n_ff_exp = p->n_ff_expert;
	hp->n_ctx_train = p->n_ctx;
	hp->rms_eps = 1e-6f;
	hp->rope_theta = 1000000.0f;
	hp->norm_topk = true;
	if (a->flags & ARCH_SHARED_EXPERT)
		hp->n_ff_shexp = p->n_ff_shared ? p->n_ff_shared : a->tiny.n_ff_shexp;
	hp->ssm_conv_k = a->tiny.ssm_conv_k;
	hp->ssm_dk = hp->ssm_dv = p->ssm_state ? p->ssm_state : a->tiny.ssm_dk;
	hp->ssm_nk = p->ssm_groups ? p->ssm_groups : a->tiny.ssm_nk;
	hp->ssm_nv = p->ssm_heads ? p->ssm_heads : a->tiny.ssm_nv;
	hp->ssm_inner = hp->ssm_nv * hp->ssm_dv;
	hp->full_attn_interval = p->full_attn_interval ? p->full_attn_interval
						       : a->tiny.full_attn_interval;
	struct fm_error e = { 0 };
	a->layer_kinds(hp, NULL, NULL, &e);
	/* IMROPE sections as Qwen3.5's [11, 11, 10, 0] for 32 pairs: every
	 * rotary pair in stream t, h or w (the same position for text) */
	int half = hp->n_rot / 2, third = (half + 2) / 3;
	if (a->flags & ARCH_ROPE_SECTIONS) {
		hp->rope_sections[0] = hp->rope_sections[1] = third;
		hp->rope_sections[2] = half - 2 * third;
	}
	for (int il = 0; il < hp->n_layer; il++)
		hp->n_layer_kind[hp->layer_kind[il]]++;
}

/* Every tensor of the architecture's table for the layers that have it. */
static int build_specs(const struct fm_tiny_params *p, const struct hparams *hp,
		       struct tensor_spec *specs)
{
	const struct arch *a = hp->arch;
	int n = 0;
	for (int il = -1; il < hp->n_layer; il++) {
		for (int j = 0; j < a->n_tensors; j++) {
			const struct arch_tensor *t = &a->tensors[j];
			bool here = il < 0 ? t->kinds == 0 : (t->kinds & LAYER_MASK(hp->layer_kind[il]));
			if (!here || (t->flags & AT_OPTIONAL && p->tied_embeddings))
				continue;
			struct tensor_spec *s = &specs[n++];
			snprintf(s->name, sizeof(s->name), t->name, il);
			s->n_dims = t->n_dims;
			for (int d = 0; d < 3; d++)
				s->ne[d] = d < t->n_dims ? arch_dim_value(hp, t->ne[d]) : 1;
			s->type = t->n_dims == 1 || (t->flags & AT_KEEP_F32)
					  ? GGML_TYPE_F32
					  : fit_type((enum ggml_type)p->type, s->ne[0]);
			s->init = t->init;
		}
	}
	return n;
}

struct fill_job {
	const struct tensor_spec *s;
	const struct kernels *k;
	uint64_t seed;
	size_t row_bytes;
	uint64_t n_rows, rows_per_task;
	uint8_t *out;
	float *rowbuf;   /* [n_threads][ne0] */
};

static void fill_rows(void *arg, int task, int thread)
{
	struct fill_job *j = arg;
	const struct tensor_spec *s = j->s;
	uint64_t n_cols = s->ne[0];
	float *x = j->rowbuf + (size_t)thread * n_cols;
	float std = s->init == INIT_LINEAR ? 1.0f / sqrtf((float)n_cols)
		    : s->init == INIT_NORM || s->init == INIT_SSM_A ? 0.1f
		    : s->init == INIT_CONV || s->init == INIT_SSM_DT ? 0.5f
								      : 1.0f;
	uint64_t r1 = ((uint64_t)task + 1) * j->rows_per_task;
	for (uint64_t r = (uint64_t)task * j->rows_per_task; r < r1 && r < j->n_rows; r++) {
		uint64_t st = j->seed ^ (r * 0xd1b54a32d192ed03ull) ^ 0x94d049bb133111ebull;
		st = st ? st : 1;
		for (uint64_t c = 0; c < n_cols; c++)
			x[c] = (s->init == INIT_NORM ? 1.0f : 0.0f) + std * next_normal(&st);
		if (s->init == INIT_SSM_A) /* -exp(A_log), A_log around 0: decays near 1/e */
			for (uint64_t c = 0; c < n_cols; c++)
				x[c] = -expf(x[c] * 10.0f);
		uint8_t *dst = j->out + r * j->row_bytes;
		if (s->type == GGML_TYPE_F32)
			memcpy(dst, x, n_cols * sizeof(float));
		else
			j->k->fmt[s->type].quantize(x, dst, n_cols);
	}
}

/* expert_pool > 0 (benchmark files): only that many distinct experts per
 * 3-D tensor are drawn, the others repeat them; the bytes on disk are as
 * many as ever, the generation that much faster. */
static int write_tensor(struct gguf_writer *w, uint64_t idx, const struct tensor_spec *s,
			uint64_t seed, int expert_pool, struct pool *pool, const char *path,
			struct fm_error *err)
{
	struct fill_job j = { .s = s, .k = kernels_get(KERNEL_ISA_REF),
			      .seed = hash_name(seed, s->name) };
	j.row_bytes = ggml_row_bytes(s->type, s->ne[0]);
	j.n_rows = s->ne[1] * s->ne[2];
	size_t bytes = j.row_bytes * j.n_rows;
	uint64_t distinct = j.n_rows;
	if (s->n_dims == 3 && expert_pool > 0 && (uint64_t)expert_pool < s->ne[2])
		distinct = s->ne[1] * (uint64_t)expert_pool;
	int nth = pool_n_threads(pool);
	j.out = malloc(bytes);
	j.rowbuf = malloc((size_t)nth * s->ne[0] * sizeof(float));
	if (!j.out || !j.rowbuf) {
		free(j.out);
		free(j.rowbuf);
		return fm_err(err, FM_ENOMEM, path, FM_NO_OFFSET, "no memory for tensor '%s' (%zu bytes)",
			      s->name, bytes);
	}
	uint64_t all_rows = j.n_rows;
	j.n_rows = distinct;
	int n_tasks = (int)(j.n_rows < 4096 ? j.n_rows : 4096);
	j.rows_per_task = (j.n_rows + (uint64_t)n_tasks - 1) / (uint64_t)n_tasks;
	pool_run(pool, fill_rows, &j, n_tasks);
	for (uint64_t r = distinct; r < all_rows; r += distinct) {
		uint64_t n = all_rows - r < distinct ? all_rows - r : distinct;
		memcpy(j.out + r * j.row_bytes, j.out, n * j.row_bytes);
	}
	int rc = gguf_writer_write_tensor(w, idx, j.out, bytes, err);
	free(j.out);
	free(j.rowbuf);
	return rc;
}

static const char chatml_template[] =
	"{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
	"message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
	"{{ '<|im_start|>assistant\\n' }}{% endif %}";

/* The architecture's keys with the values of hp (from its own table). */
static int write_arch_keys(struct gguf_writer *w, const struct hparams *hp)
{
	const struct arch *a = hp->arch;
	char key[128];
	int rc = 0;
	for (int i = 0; i < a->n_keys; i++) {
		const struct arch_key *k = &a->keys[i];
		const char *field = (const char *)hp + k->off;
		snprintf(key, sizeof(key), "%s.%s", a->name, k->suffix);
		if (k->type == AK_I32X4) {
			int32_t v[4];
			for (int j = 0; j < 4; j++)
				v[j] = ((const int *)field)[j];
			rc |= gguf_writer_set_arr(w, key, GGUF_TYPE_INT32, v, 4);
		} else if (k->type == AK_U32)
			rc |= gguf_writer_set_u32(w, key, (uint32_t)*(const int *)field);
		else if (k->type == AK_F32)
			rc |= gguf_writer_set_f32(w, key, *(const float *)field);
		else
			rc |= gguf_writer_set_bool(w, key, *(const bool *)field);
	}
	/* read by llama.cpp, not by flashmoe: the dense FFN width (unused by
	 * these MoE models) */
	snprintf(key, sizeof(key), "%s.feed_forward_length", a->name);
	rc |= gguf_writer_set_u32(w, key, (uint32_t)hp->n_ff_exp * 8);
	return rc;
}

static int write_keys(struct gguf_writer *w, const struct hparams *hp,
		      const struct tiny_vocab *v)
{
	char name[64];
	snprintf(name, sizeof(name), "flashmoe random %s", hp->arch->name);
	int rc = 0;
	rc |= gguf_writer_set_str(w, "general.architecture", hp->arch->name);
	rc |= gguf_writer_set_str(w, "general.name", name);
	rc |= write_arch_keys(w, hp);
	rc |= gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
	rc |= gguf_writer_set_str(w, "tokenizer.ggml.pre", "qwen2");
	rc |= gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v->tokens,
				      NULL, (uint64_t)v->n_tokens);
	rc |= gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, v->types,
				  (uint64_t)v->n_tokens);
	rc |= gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)v->merges,
				      NULL, (uint64_t)v->n_merges);
	rc |= gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)v->eos_id);
	rc |= gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)v->bos_id);
	rc |= gguf_writer_set_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)v->bos_id);
	rc |= gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", false);
	rc |= gguf_writer_set_str(w, "tokenizer.chat_template", chatml_template);
	return rc ? FM_ENOMEM : 0;
}

static int check_params(const struct fm_tiny_params *p, struct fm_error *err)
{
	const int lim = 1 << 20;
	const struct arch *a = p->arch ? arch_find(p->arch, strlen(p->arch)) : NULL;
	if (!a)
		return fm_err(err, FM_EUNSUPPORTED, NULL, FM_NO_OFFSET,
			      "gen-tiny: architecture '%s' is not supported (%s)",
			      p->arch ? p->arch : "", arch_names());
	struct hparams hp;
	tiny_hparams(p, a, &hp);
	if ((a->flags & ARCH_SHARED_EXPERT) && (hp.n_ff_shexp < 1 || hp.n_ff_shexp > lim))
		return fm_err(err, FM_EINVAL, NULL, FM_NO_OFFSET, "gen-tiny: bad shared expert width %d",
			      hp.n_ff_shexp);
	if (hp.n_layer_kind[LAYER_GDN] &&
	    (hp.ssm_nk < 1 || hp.ssm_nv < 1 || hp.ssm_nv % hp.ssm_nk || hp.ssm_dk < 2 ||
	     hp.ssm_dk > 4096 || hp.ssm_nv > 4096))
		return fm_err(err, FM_EINVAL, NULL, FM_NO_OFFSET,
			      "gen-tiny: bad DeltaNet shape (%d key heads, %d value heads of %d)",
			      hp.ssm_nk, hp.ssm_nv, hp.ssm_dk);
	if (hp.n_rot < 2 || hp.n_rot % 2 || hp.n_rot > hp.head_dim)
		return fm_err(err, FM_EINVAL, NULL, FM_NO_OFFSET, "gen-tiny: bad rotary dims %d",
			      hp.n_rot);
	if (p->n_layer < 1 || p->n_layer > 4096 || p->n_embd < 2 || p->n_embd > lim ||
	    p->n_head < 1 || p->n_head > 4096 || p->n_head_kv < 1 || p->n_head % p->n_head_kv ||
	    p->head_dim < 2 || p->head_dim % 2 || p->head_dim > 65536 || p->n_expert < 1 ||
	    p->n_expert > 4096 || p->n_expert_used < 1 || p->n_expert_used > p->n_expert ||
	    p->n_ff_expert < 1 || p->n_ff_expert > lim || p->n_vocab < 259 ||
	    p->n_vocab > (1 << 22) || p->n_ctx < 1)
		return fm_err(err, FM_EINVAL, NULL, FM_NO_OFFSET,
			      "gen-tiny: bad dimensions (layers %d, hidden %d, heads %d/%d, head_dim %d, "
			      "experts %d/%d, expert_ff %d, vocab %d >= 259, ctx %d)",
			      p->n_layer, p->n_embd, p->n_head, p->n_head_kv, p->head_dim, p->n_expert,
			      p->n_expert_used, p->n_ff_expert, p->n_vocab, p->n_ctx);
	const struct kernels *k = kernels_get(KERNEL_ISA_REF);
	if (p->type < 0 || p->type >= GGML_TYPE_COUNT ||
	    (p->type != GGML_TYPE_F32 && !k->fmt[p->type].quantize))
		return fm_err(err, FM_EUNSUPPORTED, NULL, FM_NO_OFFSET,
			      "gen-tiny: cannot write weights of type %d", p->type);
	return 0;
}

int fm_gen_tiny(const char *path, const struct fm_tiny_params *p, struct fm_error *err)
{
	kernels_init();
	int rc = check_params(p, err);
	if (rc)
		return rc;
	struct hparams *hp = malloc(sizeof(*hp));
	if (hp)
		tiny_hparams(p, arch_find(p->arch, strlen(p->arch)), hp);
	size_t max_specs = hp ? (size_t)hp->arch->n_tensors * ((size_t)p->n_layer + 1) : 0;
	struct tensor_spec *specs = calloc(max_specs + 1, sizeof(*specs));
	struct tiny_vocab *v = tiny_vocab_new(p->n_vocab, p->seed);
	struct gguf_writer *w = gguf_writer_new(4096);
	struct pool *pool = pool_new(2);
	if (!hp || !specs || !v || !w || !pool) {
		rc = fm_err(err, FM_ENOMEM, path, FM_NO_OFFSET, "gen-tiny: out of memory");
		goto out;
	}
	int n = build_specs(p, hp, specs);
	rc = write_keys(w, hp, v);
	for (int i = 0; !rc && i < n; i++) {
		int64_t id = gguf_writer_add_tensor(w, specs[i].name, specs[i].type, specs[i].n_dims,
						    specs[i].ne);
		rc = id < 0 ? (int)id : 0;
	}
	if (rc) {
		fm_err(err, rc, path, FM_NO_OFFSET, "gen-tiny: cannot describe the model");
		goto out;
	}
	rc = gguf_writer_open(w, path, err);
	for (int i = 0; !rc && i < n; i++)
		rc = write_tensor(w, (uint64_t)i, &specs[i], p->seed, p->expert_pool, pool, path, err);
	if (!rc)
		rc = gguf_writer_finish(w, err);
out:
	pool_free(pool);
	gguf_writer_free(w);
	tiny_vocab_free(v);
	free(specs);
	free(hp);
	return rc;
}
