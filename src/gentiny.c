/* gentiny.c: fm_gen_tiny, random-weight GGUF models of the real qwen3moe
 * layout (tensor names, shapes and keys as llama.cpp writes them), from a few
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

enum init_kind { INIT_LINEAR, INIT_EMBED, INIT_NORM };

struct tensor_spec {
	char name[64];
	enum ggml_type type;
	uint32_t n_dims;
	uint64_t ne[3];
	enum init_kind init;
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

static int add_spec(struct tensor_spec *specs, int n, const char *name, enum ggml_type want,
		    uint32_t n_dims, uint64_t ne0, uint64_t ne1, uint64_t ne2, enum init_kind init)
{
	struct tensor_spec *s = &specs[n];
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->type = n_dims == 1 ? GGML_TYPE_F32 : fit_type(want, ne0);
	s->n_dims = n_dims;
	s->ne[0] = ne0;
	s->ne[1] = ne1;
	s->ne[2] = ne2;
	s->init = init;
	return n + 1;
}

static int build_specs(const struct fm_tiny_params *p, struct tensor_spec *specs)
{
	enum ggml_type T = (enum ggml_type)p->type;
	uint64_t H = (uint64_t)p->n_embd, V = (uint64_t)p->n_vocab, E = (uint64_t)p->n_expert;
	uint64_t I = (uint64_t)p->n_ff_expert, Q = (uint64_t)p->n_head * p->head_dim;
	uint64_t KV = (uint64_t)p->n_head_kv * p->head_dim, D = (uint64_t)p->head_dim;
	int n = 0;
	char nm[64];
	n = add_spec(specs, n, "token_embd.weight", T, 2, H, V, 1, INIT_EMBED);
	n = add_spec(specs, n, "output_norm.weight", T, 1, H, 1, 1, INIT_NORM);
	if (!p->tied_embeddings)
		n = add_spec(specs, n, "output.weight", T, 2, H, V, 1, INIT_LINEAR);
	for (int l = 0; l < p->n_layer; l++) {
#define L(s) (snprintf(nm, sizeof(nm), "blk.%d." s, l), nm)
		n = add_spec(specs, n, L("attn_norm.weight"), T, 1, H, 1, 1, INIT_NORM);
		n = add_spec(specs, n, L("attn_q.weight"), T, 2, H, Q, 1, INIT_LINEAR);
		n = add_spec(specs, n, L("attn_k.weight"), T, 2, H, KV, 1, INIT_LINEAR);
		n = add_spec(specs, n, L("attn_v.weight"), T, 2, H, KV, 1, INIT_LINEAR);
		n = add_spec(specs, n, L("attn_output.weight"), T, 2, Q, H, 1, INIT_LINEAR);
		n = add_spec(specs, n, L("attn_q_norm.weight"), T, 1, D, 1, 1, INIT_NORM);
		n = add_spec(specs, n, L("attn_k_norm.weight"), T, 1, D, 1, 1, INIT_NORM);
		n = add_spec(specs, n, L("ffn_norm.weight"), T, 1, H, 1, 1, INIT_NORM);
		n = add_spec(specs, n, L("ffn_gate_inp.weight"), GGML_TYPE_F32, 2, H, E, 1, INIT_LINEAR);
		n = add_spec(specs, n, L("ffn_gate_exps.weight"), T, 3, H, I, E, INIT_LINEAR);
		n = add_spec(specs, n, L("ffn_up_exps.weight"), T, 3, H, I, E, INIT_LINEAR);
		n = add_spec(specs, n, L("ffn_down_exps.weight"), T, 3, I, H, E, INIT_LINEAR);
#undef L
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
	float std = s->init == INIT_LINEAR ? 1.0f / sqrtf((float)n_cols) : s->init == INIT_NORM ? 0.1f : 1.0f;
	uint64_t r1 = ((uint64_t)task + 1) * j->rows_per_task;
	for (uint64_t r = (uint64_t)task * j->rows_per_task; r < r1 && r < j->n_rows; r++) {
		uint64_t st = j->seed ^ (r * 0xd1b54a32d192ed03ull) ^ 0x94d049bb133111ebull;
		st = st ? st : 1;
		for (uint64_t c = 0; c < n_cols; c++)
			x[c] = (s->init == INIT_NORM ? 1.0f : 0.0f) + std * next_normal(&st);
		uint8_t *dst = j->out + r * j->row_bytes;
		if (s->type == GGML_TYPE_F32)
			memcpy(dst, x, n_cols * sizeof(float));
		else
			j->k->fmt[s->type].quantize(x, dst, n_cols);
	}
}

static int write_tensor(struct gguf_writer *w, uint64_t idx, const struct tensor_spec *s,
			uint64_t seed, struct pool *pool, const char *path, struct fm_error *err)
{
	struct fill_job j = { .s = s, .k = kernels_get(KERNEL_ISA_REF),
			      .seed = hash_name(seed, s->name) };
	j.row_bytes = ggml_row_bytes(s->type, s->ne[0]);
	j.n_rows = s->ne[1] * s->ne[2];
	size_t bytes = j.row_bytes * j.n_rows;
	int nth = pool_n_threads(pool);
	j.out = malloc(bytes);
	j.rowbuf = malloc((size_t)nth * s->ne[0] * sizeof(float));
	if (!j.out || !j.rowbuf) {
		free(j.out);
		free(j.rowbuf);
		return fm_err(err, FM_ENOMEM, path, FM_NO_OFFSET, "no memory for tensor '%s' (%zu bytes)",
			      s->name, bytes);
	}
	int n_tasks = (int)(j.n_rows < 4096 ? j.n_rows : 4096);
	j.rows_per_task = (j.n_rows + (uint64_t)n_tasks - 1) / (uint64_t)n_tasks;
	pool_run(pool, fill_rows, &j, n_tasks);
	int rc = gguf_writer_write_tensor(w, idx, j.out, bytes, err);
	free(j.out);
	free(j.rowbuf);
	return rc;
}

static const char chatml_template[] =
	"{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
	"message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
	"{{ '<|im_start|>assistant\\n' }}{% endif %}";

static int write_keys(struct gguf_writer *w, const struct fm_tiny_params *p,
		      const struct tiny_vocab *v)
{
	int rc = 0;
	rc |= gguf_writer_set_str(w, "general.architecture", "qwen3moe");
	rc |= gguf_writer_set_str(w, "general.name", "flashmoe random qwen3moe");
	rc |= gguf_writer_set_u32(w, "qwen3moe.block_count", (uint32_t)p->n_layer);
	rc |= gguf_writer_set_u32(w, "qwen3moe.context_length", (uint32_t)p->n_ctx);
	rc |= gguf_writer_set_u32(w, "qwen3moe.embedding_length", (uint32_t)p->n_embd);
	rc |= gguf_writer_set_u32(w, "qwen3moe.feed_forward_length", (uint32_t)p->n_ff_expert * 8);
	rc |= gguf_writer_set_u32(w, "qwen3moe.attention.head_count", (uint32_t)p->n_head);
	rc |= gguf_writer_set_u32(w, "qwen3moe.attention.head_count_kv", (uint32_t)p->n_head_kv);
	rc |= gguf_writer_set_u32(w, "qwen3moe.attention.key_length", (uint32_t)p->head_dim);
	rc |= gguf_writer_set_u32(w, "qwen3moe.attention.value_length", (uint32_t)p->head_dim);
	rc |= gguf_writer_set_f32(w, "qwen3moe.attention.layer_norm_rms_epsilon", 1e-6f);
	rc |= gguf_writer_set_f32(w, "qwen3moe.rope.freq_base", 1000000.0f);
	rc |= gguf_writer_set_u32(w, "qwen3moe.expert_count", (uint32_t)p->n_expert);
	rc |= gguf_writer_set_u32(w, "qwen3moe.expert_used_count", (uint32_t)p->n_expert_used);
	rc |= gguf_writer_set_u32(w, "qwen3moe.expert_feed_forward_length", (uint32_t)p->n_ff_expert);
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
	if (!p->arch || strcmp(p->arch, "qwen3moe"))
		return fm_err(err, FM_EUNSUPPORTED, NULL, FM_NO_OFFSET,
			      "gen-tiny: architecture '%s' is not supported (qwen3moe)",
			      p->arch ? p->arch : "");
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
	size_t max_specs = 3 + 12 * (size_t)p->n_layer;
	struct tensor_spec *specs = calloc(max_specs, sizeof(*specs));
	struct tiny_vocab *v = tiny_vocab_new(p->n_vocab, p->seed);
	struct gguf_writer *w = gguf_writer_new(4096);
	struct pool *pool = pool_new(2);
	if (!specs || !v || !w || !pool) {
		rc = fm_err(err, FM_ENOMEM, path, FM_NO_OFFSET, "gen-tiny: out of memory");
		goto out;
	}
	int n = build_specs(p, specs);
	rc = write_keys(w, p, v);
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
		rc = write_tensor(w, (uint64_t)i, &specs[i], p->seed, pool, path, err);
	if (!rc)
		rc = gguf_writer_finish(w, err);
out:
	pool_free(pool);
	gguf_writer_free(w);
	tiny_vocab_free(v);
	free(specs);
	return rc;
}
