/* convert.c: Hugging Face Qwen3-MoE checkpoint -> GGUF (contract in convert.h).
 *
 * Three passes: read config.json into struct hf_config (every value checked);
 * open the safetensors files and plan every output tensor (its GGUF name,
 * shape, type and HF sources, each source's shape checked), then refuse any
 * HF tensor the plan did not use; only then create the output and stream the
 * tensors, one at a time, row by row through the reference kernels
 * (source dtype -> f32 -> target type; a byte copy when they are equal).
 * Metadata keys follow gguf-py's constants for LLM_ARCH_QWEN3MOE.
 */
#include "convert.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gguf.h"
#include "io.h"
#include "json_file.h"
#include "kernels/kernels.h"
#include "pool.h"
#include "quantize.h"
#include "safetensors.h"
#include "tokenizer.h"
#include "util.h"

#define CONV_JSON_MAX_BYTES (64u << 20)
#define CONV_MAX_DIM (1u << 30)
#define CONV_MAX_ROW_TASKS 256

struct hf_config {
	int n_layer, n_embd, n_head, n_head_kv, head_dim, n_ff, n_ff_exp;
	int n_expert, n_expert_used, n_vocab, n_ctx;
	float rope_theta, rms_eps;
	bool tied, norm_topk;
	int bos_id; /* config.json's bos_token_id, -1 if absent */
};

struct src_ref {
	uint32_t file;
	uint64_t idx;
};

struct out_tensor {
	char name[64];
	uint32_t n_dims;
	uint64_t ne[3];          /* GGUF order: ne[0] contiguous */
	enum ggml_type from, to;
	uint32_t n_src;
	struct src_ref *src;     /* [n_src]; stacked sources are experts 0.. */
	uint64_t out_bytes;
};

struct conv {
	const char *dir;
	const struct convert_params *p;
	struct fm_error *err;
	char path[4096];         /* scratch for file names */
	struct hf_config c;
	struct st_file **files;  /* [n_files] */
	uint8_t **used;          /* [n_files][n_tensors of that file] */
	uint32_t n_files;
	struct out_tensor *t;    /* [n_t] */
	uint64_t n_t, cap_t;
	struct tok *tok;
	struct gguf_writer *w;
	const struct kernels *k;
	struct pool *pool;
	uint8_t *buf;            /* one output tensor */
	size_t buf_bytes;
	float *rows;             /* [n_threads][max_cols] */
	uint64_t max_cols;
};

/* ---- JSON ---- */

static json_object *jget(json_object *o, const char *key)
{
	json_object *v = NULL;
	return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static const char *in_dir(struct conv *cv, const char *name)
{
	snprintf(cv->path, sizeof(cv->path), "%s/%s", cv->dir, name);
	return cv->path;
}

/* ---- config.json ---- */

/* Integer key in [lo, hi]; dflt when absent (dflt < 0: required). */
static int cfg_int(struct conv *cv, json_object *cfg, const char *key, long lo, long hi,
		   long dflt, int *out)
{
	json_object *v = jget(cfg, key);
	if (!v || json_object_is_type(v, json_type_null)) {
		if (dflt < 0)
			return fm_err(cv->err, FM_EFORMAT, in_dir(cv, "config.json"), FM_NO_OFFSET,
				      "missing \"%s\"", key);
		*out = (int)dflt;
		return 0;
	}
	int64_t x = json_object_get_int64(v);
	if (!json_object_is_type(v, json_type_int) || x < lo || x > hi)
		return fm_err(cv->err, FM_EFORMAT, in_dir(cv, "config.json"), FM_NO_OFFSET,
			      "\"%s\" = %s is not an integer in %ld..%ld", key,
			      json_object_to_json_string(v), lo, hi);
	*out = (int)x;
	return 0;
}

static int cfg_float(struct conv *cv, json_object *cfg, const char *key, double lo, double hi,
		     float *out)
{
	json_object *v = jget(cfg, key);
	double x = v ? json_object_get_double(v) : 0;
	if (!v || !(json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int)) ||
	    !(x >= lo && x <= hi))
		return fm_err(cv->err, FM_EFORMAT, in_dir(cv, "config.json"), FM_NO_OFFSET,
			      "\"%s\" is missing or not a number in %g..%g", key, lo, hi);
	*out = (float)x;
	return 0;
}

static bool cfg_bool(json_object *cfg, const char *key, bool dflt)
{
	json_object *v = jget(cfg, key);
	return v && json_object_is_type(v, json_type_boolean) ? json_object_get_boolean(v) : dflt;
}

static int unsupported(struct conv *cv, const char *what)
{
	return fm_err(cv->err, FM_EUNSUPPORTED, in_dir(cv, "config.json"), FM_NO_OFFSET,
		      "%s (qwen3moe conversion supports Qwen3MoeForCausalLM as Qwen3-30B-A3B "
		      "and Qwen3-235B-A22B use it)", what);
}

/* The architecture and the features qwen3moe has no key for. */
static int check_arch(struct conv *cv, json_object *cfg)
{
	json_object *a = jget(cfg, "architectures"), *mt = jget(cfg, "model_type");
	const char *arch = a && json_object_is_type(a, json_type_array) &&
			   json_object_array_length(a) ?
			   json_object_get_string(json_object_array_get_idx(a, 0)) : NULL;
	char msg[256];
	if (!arch || strcmp(arch, "Qwen3MoeForCausalLM")) {
		snprintf(msg, sizeof(msg), "architecture '%.64s' is not supported",
			 arch ? arch : "(none)");
		return unsupported(cv, msg);
	}
	if (mt && strcmp(json_object_get_string(mt), "qwen3_moe")) {
		snprintf(msg, sizeof(msg), "model_type '%.64s' is not qwen3_moe",
			 json_object_get_string(mt));
		return unsupported(cv, msg);
	}
	json_object *act = jget(cfg, "hidden_act"), *rs = jget(cfg, "rope_scaling"),
		    *mlp_only = jget(cfg, "mlp_only_layers");
	if (act && strcmp(json_object_get_string(act), "silu"))
		return unsupported(cv, "hidden_act is not silu");
	if (rs && !json_object_is_type(rs, json_type_null))
		return unsupported(cv, "rope_scaling is set");
	if (mlp_only && json_object_is_type(mlp_only, json_type_array) &&
	    json_object_array_length(mlp_only))
		return unsupported(cv, "mlp_only_layers (dense layers) is not empty");
	if (cfg_bool(cfg, "attention_bias", false))
		return unsupported(cv, "attention_bias is true");
	if (cfg_bool(cfg, "use_sliding_window", false))
		return unsupported(cv, "use_sliding_window is true");
	int step = 1;
	int rc = cfg_int(cv, cfg, "decoder_sparse_step", 0, 1 << 20, 1, &step);
	if (!rc && step != 1)
		return unsupported(cv, "decoder_sparse_step is not 1 (dense layers)");
	return rc;
}

static int read_config(struct conv *cv)
{
	json_object *cfg = json_file_read(in_dir(cv, "config.json"), CONV_JSON_MAX_BYTES, true, cv->err);
	if (!cfg)
		return cv->err->code;
	struct hf_config *c = &cv->c;
	const long M = CONV_MAX_DIM;
	int rc = check_arch(cv, cfg);
	rc = rc ? rc : cfg_int(cv, cfg, "num_hidden_layers", 1, 4096, -1, &c->n_layer);
	rc = rc ? rc : cfg_int(cv, cfg, "hidden_size", 1, 1 << 20, -1, &c->n_embd);
	rc = rc ? rc : cfg_int(cv, cfg, "num_attention_heads", 1, 4096, -1, &c->n_head);
	rc = rc ? rc : cfg_int(cv, cfg, "num_key_value_heads", 1, 4096, c->n_head, &c->n_head_kv);
	rc = rc ? rc : cfg_int(cv, cfg, "head_dim", 2, 1 << 16, c->n_head ? c->n_embd / c->n_head : 0,
			       &c->head_dim);
	rc = rc ? rc : cfg_int(cv, cfg, "intermediate_size", 0, M, 0, &c->n_ff);
	rc = rc ? rc : cfg_int(cv, cfg, "moe_intermediate_size", 1, 1 << 20, -1, &c->n_ff_exp);
	rc = rc ? rc : cfg_int(cv, cfg, "num_experts", 1, 1 << 16, -1, &c->n_expert);
	rc = rc ? rc : cfg_int(cv, cfg, "num_experts_per_tok", 1, 1 << 16, -1, &c->n_expert_used);
	rc = rc ? rc : cfg_int(cv, cfg, "vocab_size", 1, 1 << 24, -1, &c->n_vocab);
	rc = rc ? rc : cfg_int(cv, cfg, "max_position_embeddings", 1, M, -1, &c->n_ctx);
	json_object *bos = jget(cfg, "bos_token_id");
	c->bos_id = -1;
	if (!rc && bos && !json_object_is_type(bos, json_type_null))
		rc = cfg_int(cv, cfg, "bos_token_id", 0, 1 << 24, -1, &c->bos_id);
	rc = rc ? rc : cfg_float(cv, cfg, "rope_theta", 1e-3, 1e12, &c->rope_theta);
	rc = rc ? rc : cfg_float(cv, cfg, "rms_norm_eps", 1e-12, 1, &c->rms_eps);
	if (!rc && (c->n_head % c->n_head_kv || c->n_expert_used > c->n_expert || c->head_dim % 2))
		rc = fm_err(cv->err, FM_EFORMAT, in_dir(cv, "config.json"), FM_NO_OFFSET,
			    "inconsistent: %d heads, %d KV heads, head_dim %d, %d experts, %d used",
			    c->n_head, c->n_head_kv, c->head_dim, c->n_expert, c->n_expert_used);
	c->tied = cfg_bool(cfg, "tie_word_embeddings", false);
	c->norm_topk = cfg_bool(cfg, "norm_topk_prob", false);
	json_object_put(cfg);
	return rc;
}

int convert_read_config_json(const char *dir, struct fm_error *err)
{
	struct fm_error scratch;
	struct conv cv = { .dir = dir, .err = err ? err : &scratch };
	return read_config(&cv);
}

/* ---- the safetensors files ---- */

static int add_file(struct conv *cv, const char *name)
{
	if (!*name || strchr(name, '/') || !strcmp(name, "..") || !strcmp(name, "."))
		return fm_err(cv->err, FM_EFORMAT, in_dir(cv, "model.safetensors.index.json"),
			      FM_NO_OFFSET, "shard name '%.128s' is not a file in the directory", name);
	for (uint32_t i = 0; i < cv->n_files; i++)
		if (!strcmp(name, strrchr(st_path(cv->files[i]), '/') + 1))
			return 0;
	struct st_file **nf = realloc(cv->files, (cv->n_files + 1) * sizeof(*nf));
	uint8_t **nu = realloc(cv->used, (cv->n_files + 1) * sizeof(*nu));
	if (nf)
		cv->files = nf;
	if (nu)
		cv->used = nu;
	if (!nf || !nu)
		return fm_err(cv->err, FM_ENOMEM, NULL, FM_NO_OFFSET, "out of memory");
	struct st_file *f = st_open(in_dir(cv, name), cv->err);
	if (!f)
		return cv->err->code;
	cv->files[cv->n_files] = f;
	cv->used[cv->n_files++] = NULL;
	if (!(cv->used[cv->n_files - 1] = calloc(st_n_tensors(f) + 1, 1)))
		return fm_err(cv->err, FM_ENOMEM, NULL, FM_NO_OFFSET, "out of memory");
	return 0;
}

/* model.safetensors.index.json's weight_map (each tensor must be where it
 * says), or model.safetensors alone. */
static int open_files(struct conv *cv)
{
	if (access(in_dir(cv, "model.safetensors.index.json"), F_OK) != 0)
		return add_file(cv, "model.safetensors");
	json_object *idx = json_file_read(cv->path, CONV_JSON_MAX_BYTES, true, cv->err);
	if (!idx)
		return cv->err->code;
	json_object *wm = jget(idx, "weight_map");
	int rc = 0;
	if (!wm || !json_object_is_type(wm, json_type_object) || !json_object_object_length(wm))
		rc = fm_err(cv->err, FM_EFORMAT, in_dir(cv, "model.safetensors.index.json"),
			    FM_NO_OFFSET, "no \"weight_map\" object");
	json_object_object_foreach(wm, name, file) {
		if (rc)
			break;
		if (!json_object_is_type(file, json_type_string)) {
			rc = fm_err(cv->err, FM_EFORMAT, in_dir(cv, "model.safetensors.index.json"),
				    FM_NO_OFFSET, "weight_map['%.96s'] is not a file name", name);
			break;
		}
		const char *fname = json_object_get_string(file);
		if ((rc = add_file(cv, fname)))
			break;
		uint32_t fi = 0;
		while (strcmp(fname, strrchr(st_path(cv->files[fi]), '/') + 1))
			fi++;
		if (st_find(cv->files[fi], name) < 0)
			rc = fm_err(cv->err, FM_EFORMAT, st_path(cv->files[fi]), FM_NO_OFFSET,
				    "tensor '%.96s' listed by the index is not in this file", name);
	}
	json_object_put(idx);
	return rc;
}

static int find_src(struct conv *cv, const char *name, struct src_ref *r)
{
	for (uint32_t i = 0; i < cv->n_files; i++) {
		int64_t j = st_find(cv->files[i], name);
		if (j >= 0) {
			*r = (struct src_ref){ i, (uint64_t)j };
			cv->used[i][j] = 1;
			return 0;
		}
	}
	return fm_err(cv->err, FM_EFORMAT, cv->n_files == 1 ? st_path(cv->files[0]) : cv->dir,
		      FM_NO_OFFSET, "missing tensor '%.128s'", name);
}

/* ---- the plan ---- */

/* Output tensor gname from HF tensors (hf_fmt with %d = expert 0.., or one
 * tensor when n_src is 1); HF shape [rows, cols] or [cols] (rows 0). */
static int plan(struct conv *cv, const char *gname, const char *hf_name, uint32_t n_src,
		uint64_t rows, uint64_t cols)
{
	if (cv->n_t == cv->cap_t) {
		uint64_t cap = cv->cap_t ? 2 * cv->cap_t : 64;
		struct out_tensor *nt = realloc(cv->t, cap * sizeof(*nt));
		if (!nt)
			return fm_err(cv->err, FM_ENOMEM, NULL, FM_NO_OFFSET, "out of memory");
		cv->t = nt;
		cv->cap_t = cap;
	}
	struct out_tensor *o = &cv->t[cv->n_t++];
	*o = (struct out_tensor){ .n_src = n_src, .n_dims = rows ? 2 : 1, .ne = { cols, rows ? rows : 1, 1 } };
	snprintf(o->name, sizeof(o->name), "%s", gname);
	if (n_src > 1)
		o->n_dims = 3, o->ne[2] = n_src;
	if (!(o->src = calloc(n_src, sizeof(*o->src))))
		return fm_err(cv->err, FM_ENOMEM, NULL, FM_NO_OFFSET, "out of memory");
	char name[256];
	for (uint32_t e = 0; e < n_src; e++) {
		snprintf(name, sizeof(name), hf_name, (int)e);
		int rc = find_src(cv, name, &o->src[e]);
		if (rc)
			return rc;
		const struct st_tensor *t = st_tensor(cv->files[o->src[e].file], o->src[e].idx);
		bool ok = rows ? t->n_dims == 2 && t->shape[0] == rows && t->shape[1] == cols
			       : t->n_dims == 1 && t->shape[0] == cols;
		if (!ok) {
			char got[128] = "";
			size_t len = 0;
			for (uint32_t d = 0; d < t->n_dims && len < sizeof(got); d++)
				len += (size_t)snprintf(got + len, sizeof(got) - len, "%s%llu",
							d ? ", " : "", (unsigned long long)t->shape[d]);
			char want[64];
			if (rows)
				snprintf(want, sizeof(want), "%llu, %llu", (unsigned long long)rows,
					 (unsigned long long)cols);
			else
				snprintf(want, sizeof(want), "%llu", (unsigned long long)cols);
			return fm_err(cv->err, FM_EFORMAT, st_path(cv->files[o->src[e].file]),
				      FM_NO_OFFSET, "tensor '%.96s': shape [%s], expected [%s] from config.json",
				      name, got, want);
		}
		if (e == 0)
			o->from = t->type;
	}
	return 0;
}

static int plan_layer(struct conv *cv, int il)
{
	const struct hf_config *c = &cv->c;
	uint64_t E = (uint64_t)c->n_embd, q = (uint64_t)c->n_head * c->head_dim,
		 kv = (uint64_t)c->n_head_kv * c->head_dim, ff = (uint64_t)c->n_ff_exp;
	static const struct {
		const char *gguf, *hf;
		int rows, cols; /* 0 none, 1 n_embd, 2 q, 3 kv, 4 head_dim, 5 n_ff_exp, 6 n_expert */
		bool experts;
	} L[] = {
		{ "attn_norm", "input_layernorm", 0, 1, false },
		{ "attn_q", "self_attn.q_proj", 2, 1, false },
		{ "attn_k", "self_attn.k_proj", 3, 1, false },
		{ "attn_v", "self_attn.v_proj", 3, 1, false },
		{ "attn_output", "self_attn.o_proj", 1, 2, false },
		{ "attn_q_norm", "self_attn.q_norm", 0, 4, false },
		{ "attn_k_norm", "self_attn.k_norm", 0, 4, false },
		{ "ffn_norm", "post_attention_layernorm", 0, 1, false },
		{ "ffn_gate_inp", "mlp.gate", 6, 1, false },
		{ "ffn_gate_exps", "mlp.experts.%%d.gate_proj", 5, 1, true },
		{ "ffn_down_exps", "mlp.experts.%%d.down_proj", 1, 5, true },
		{ "ffn_up_exps", "mlp.experts.%%d.up_proj", 5, 1, true },
	};
	const uint64_t dim[] = { 0, E, q, kv, (uint64_t)c->head_dim, ff, (uint64_t)c->n_expert };
	for (size_t i = 0; i < sizeof(L) / sizeof(L[0]); i++) {
		char g[64], hf_fmt[128], hf[128];
		snprintf(g, sizeof(g), "blk.%d.%s.weight", il, L[i].gguf);
		snprintf(hf_fmt, sizeof(hf_fmt), "model.layers.%d.%s.weight", il, L[i].hf);
		snprintf(hf, sizeof(hf), hf_fmt, 0); /* %%d -> %d for the experts */
		int rc = plan(cv, g, L[i].experts ? hf : hf_fmt, L[i].experts ? (uint32_t)c->n_expert : 1,
			      dim[L[i].rows], dim[L[i].cols]);
		if (rc)
			return rc;
	}
	return 0;
}

/* Every HF tensor must have been used (as llama.cpp refuses unmapped ones). */
static int check_unused(struct conv *cv)
{
	for (uint32_t i = 0; i < cv->n_files; i++) {
		for (uint64_t j = 0; j < st_n_tensors(cv->files[i]); j++) {
			const char *n = st_tensor(cv->files[i], j)->name;
			size_t len = strlen(n);
			bool skip = (len >= 19 && !strcmp(n + len - 19, "rotary_emb.inv_freq")) ||
				    (cv->c.tied && !strcmp(n, "lm_head.weight"));
			if (!cv->used[i][j] && !skip)
				return fm_err(cv->err, FM_EFORMAT, st_path(cv->files[i]), FM_NO_OFFSET,
					      "tensor '%.128s' has no place in a qwen3moe model "
					      "(unexpected layer, expert or module)", n);
		}
	}
	return 0;
}

static int plan_all(struct conv *cv)
{
	const struct hf_config *c = &cv->c;
	int rc = plan(cv, "token_embd.weight", "model.embed_tokens.weight", 1, (uint64_t)c->n_vocab,
		      (uint64_t)c->n_embd);
	for (int il = 0; !rc && il < c->n_layer; il++)
		rc = plan_layer(cv, il);
	rc = rc ? rc : plan(cv, "output_norm.weight", "model.norm.weight", 1, 0, (uint64_t)c->n_embd);
	if (!rc && !c->tied)
		rc = plan(cv, "output.weight", "lm_head.weight", 1, (uint64_t)c->n_vocab,
			  (uint64_t)c->n_embd);
	rc = rc ? rc : check_unused(cv);
	struct quant_params qp;
	quant_params_default(&qp, cv->p->type);
	for (uint64_t i = 0; !rc && i < cv->n_t; i++) {
		struct out_tensor *o = &cv->t[i];
		o->to = quant_choose_type(o->name, o->n_dims, o->ne, o->from, &qp, NULL);
		uint64_t rows = o->ne[1] * o->ne[2];
		size_t rb = ggml_row_bytes(o->to, o->ne[0]);
		if (!rb || !fm_mul_ok(rows, rb, &o->out_bytes) || o->out_bytes > SIZE_MAX / 2)
			return fm_err(cv->err, FM_ERANGE, NULL, FM_NO_OFFSET,
				      "tensor '%s': %llu rows of %llu cannot be written as %s", o->name,
				      (unsigned long long)rows, (unsigned long long)o->ne[0],
				      fm_type_name(o->to));
		if (o->out_bytes > cv->buf_bytes)
			cv->buf_bytes = (size_t)o->out_bytes;
		if (o->ne[0] > cv->max_cols)
			cv->max_cols = o->ne[0];
	}
	return rc;
}

/* ---- metadata ---- */

static int write_hparams(struct conv *cv)
{
	const struct hf_config *c = &cv->c;
	struct gguf_writer *w = cv->w;
	char name[256]; /* the directory's last component, as llama.cpp names a model */
	snprintf(name, sizeof(name), "%s", cv->dir);
	for (size_t n = strlen(name); n > 1 && name[n - 1] == '/'; n--)
		name[n - 1] = 0;
	const char *base = strrchr(name, '/');
	if (base && base[1])
		memmove(name, base + 1, strlen(base + 1) + 1);
	int rc = gguf_writer_set_str(w, "general.architecture", "qwen3moe");
	rc = rc ? rc : gguf_writer_set_str(w, "general.name", name);
	rc = rc ? rc : gguf_writer_set_u32(w, "qwen3moe.block_count", (uint32_t)c->n_layer);
	rc = rc ? rc : gguf_writer_set_u32(w, "qwen3moe.context_length", (uint32_t)c->n_ctx);
	rc = rc ? rc : gguf_writer_set_u32(w, "qwen3moe.embedding_length", (uint32_t)c->n_embd);
	rc = rc ? rc : gguf_writer_set_u32(w, "qwen3moe.feed_forward_length", (uint32_t)c->n_ff);
	rc = rc ? rc : gguf_writer_set_u32(w, "qwen3moe.attention.head_count", (uint32_t)c->n_head);
	rc = rc ? rc : gguf_writer_set_u32(w, "qwen3moe.attention.head_count_kv",
					   (uint32_t)c->n_head_kv);
	rc = rc ? rc : gguf_writer_set_f32(w, "qwen3moe.rope.freq_base", c->rope_theta);
	rc = rc ? rc : gguf_writer_set_f32(w, "qwen3moe.attention.layer_norm_rms_epsilon",
					   c->rms_eps);
	rc = rc ? rc : gguf_writer_set_u32(w, "qwen3moe.expert_count", (uint32_t)c->n_expert);
	rc = rc ? rc : gguf_writer_set_u32(w, "qwen3moe.expert_used_count",
					   (uint32_t)c->n_expert_used);
	rc = rc ? rc : gguf_writer_set_u32(w, "qwen3moe.attention.key_length", (uint32_t)c->head_dim);
	rc = rc ? rc : gguf_writer_set_u32(w, "qwen3moe.attention.value_length",
					   (uint32_t)c->head_dim);
	rc = rc ? rc : gguf_writer_set_u32(w, "qwen3moe.expert_feed_forward_length",
					   (uint32_t)c->n_ff_exp);
	/* llama.cpp's qwen3moe always renormalises the top-k weights; flashmoe
	 * reads this key, so a checkpoint that does not still runs right here */
	if (!rc && !c->norm_topk)
		rc = gguf_writer_set_bool(w, "qwen3moe.expert_weights_norm", false);
	rc = rc ? rc : gguf_writer_set_u32(w, "general.file_type",
					   (uint32_t)quant_llama_ftype(cv->p->type));
	rc = rc ? rc : gguf_writer_set_u32(w, "general.quantization_version", 2);
	return rc;
}

/* tokenizer.* from tokenizer.json (+ tokenizer_config.json); the vocabulary
 * padded to vocab_size with [PAD<id>] UNUSED tokens as llama.cpp pads. */
static int write_tokenizer(struct conv *cv)
{
	const char *tj = in_dir(cv, "tokenizer.json");
	if (!(cv->tok = tok_load_json(tj, cv->err)))
		return cv->err->code;
	int n_tok = tok_n_vocab(cv->tok), n = cv->c.n_vocab;
	if (n_tok > n)
		return fm_err(cv->err, FM_EFORMAT, tj, FM_NO_OFFSET,
			      "%d tokens, but config.json's vocab_size is %d", n_tok, n);
	int rc = tok_write_gguf(cv->tok, cv->w);
	if (rc)
		return fm_err(cv->err, rc, tj, FM_NO_OFFSET, rc == FM_EUNSUPPORTED ?
			      "pre-tokenizer '%s' has no GGUF name" : "cannot write the tokenizer ('%s')",
			      tok_pre_name(cv->tok));
	if (tok_bos(cv->tok) < 0 && cv->c.bos_id >= 0 && cv->c.bos_id < n)
		rc = gguf_writer_set_u32(cv->w, "tokenizer.ggml.bos_token_id", (uint32_t)cv->c.bos_id);
	if (rc || n_tok == n)
		return rc;
	char *pads = malloc((size_t)(n - n_tok) * 20);
	const char **strs = malloc((size_t)n * sizeof(*strs));
	int32_t *types = malloc((size_t)n * sizeof(*types));
	rc = FM_ENOMEM;
	if (pads && strs && types) {
		for (int i = 0; i < n; i++) {
			size_t len;
			if (i < n_tok) {
				strs[i] = tok_text(cv->tok, i, &len);
				types[i] = (int32_t)tok_token_type(cv->tok, i);
			} else {
				strs[i] = pads + (size_t)(i - n_tok) * 20;
				snprintf(pads + (size_t)(i - n_tok) * 20, 20, "[PAD%d]", i);
				types[i] = TOK_TYPE_UNUSED;
			}
		}
		rc = gguf_writer_set_arr_str(cv->w, "tokenizer.ggml.tokens", strs, NULL, (uint64_t)n);
		rc = rc ? rc : gguf_writer_set_arr(cv->w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32,
						   types, (uint64_t)n);
	}
	free(pads);
	free(strs);
	free(types);
	return rc;
}

/* ---- tensor data ---- */

/* Source s of o into dst (its rows ne[0] x ne[1]). */
static void convert_source(struct conv *cv, const struct out_tensor *o, const struct src_ref *s,
			   uint8_t *dst)
{
	const struct st_tensor *t = st_tensor(cv->files[s->file], s->idx);
	const uint8_t *src = st_data(cv->files[s->file], s->idx);
	quant_advise(src, t->size_bytes, MADV_SEQUENTIAL);
	if (t->type == o->to) {
		memcpy(dst, src, (size_t)t->size_bytes);
	} else {
		struct quant_rows_job j = {
			.src = src, .dst = dst,
			.dequantize = cv->k->fmt[t->type].dequantize,
			.quantize = cv->k->fmt[o->to].quantize,
			.src_row_bytes = ggml_row_bytes(t->type, o->ne[0]),
			.dst_row_bytes = ggml_row_bytes(o->to, o->ne[0]),
			.n_cols = o->ne[0], .n_rows = o->ne[1],
			.rowbuf = cv->rows, .rowbuf_stride = cv->max_cols,
		};
		uint64_t n_tasks = j.n_rows < CONV_MAX_ROW_TASKS ? j.n_rows : CONV_MAX_ROW_TASKS;
		j.rows_per_task = (j.n_rows + n_tasks - 1) / n_tasks;
		pool_run(cv->pool, quant_rows_task, &j, (int)n_tasks);
	}
	quant_advise(src, t->size_bytes, MADV_DONTNEED); /* a many-GB input need not stay resident */
}

static int write_tensors(struct conv *cv, struct convert_summary *sum)
{
	for (uint64_t i = 0; i < cv->n_t; i++) {
		const struct out_tensor *o = &cv->t[i];
		uint64_t per_src = o->out_bytes / o->n_src;
		for (uint32_t e = 0; e < o->n_src; e++)
			convert_source(cv, o, &o->src[e], cv->buf + (size_t)per_src * e);
		int rc = gguf_writer_write_tensor(cv->w, i, cv->buf, (size_t)o->out_bytes, cv->err);
		if (rc)
			return rc;
		if (sum)
			sum->out_bytes += o->out_bytes;
		if (cv->p->on_tensor) {
			struct convert_tensor_report r = {
				.index = i, .n_tensors = cv->n_t, .name = o->name, .n_dims = o->n_dims,
				.ne = o->ne, .from = o->from, .to = o->to, .n_sources = o->n_src,
			};
			cv->p->on_tensor(cv->p->user_data, &r);
		}
	}
	return 0;
}

/* ---- driver ---- */

static int check_params(struct conv *cv)
{
	enum ggml_type t = cv->p->type;
	if ((t != GGML_TYPE_F32 && t != GGML_TYPE_F16 && t != GGML_TYPE_BF16 &&
	     t != GGML_TYPE_Q8_0) || cv->p->n_threads < 1)
		return fm_err(cv->err, FM_EINVAL, NULL, FM_NO_OFFSET,
			      "type must be f32, f16, bf16 or q8_0 and threads >= 1");
	return 0;
}

/* The output may be none of the files read: every shard, the index, the
 * config and the tokenizer files (io_output_check: by device and inode). */
static int check_output(struct conv *cv, const char *out_path)
{
	static const char *const json[] = { "config.json", "model.safetensors.index.json",
					    "tokenizer.json", "tokenizer_config.json" };
	const size_t n_json = sizeof(json) / sizeof(json[0]), n = cv->n_files + n_json;
	char **paths = calloc(n, sizeof(*paths));
	int rc = paths ? 0 : fm_err(cv->err, FM_ENOMEM, NULL, FM_NO_OFFSET, "out of memory");
	for (size_t i = 0; !rc && i < n; i++) {
		paths[i] = strdup(i < n_json ? in_dir(cv, json[i]) : st_path(cv->files[i - n_json]));
		if (!paths[i])
			rc = fm_err(cv->err, FM_ENOMEM, NULL, FM_NO_OFFSET, "out of memory");
	}
	if (!rc)
		rc = io_output_check(out_path, (const char *const *)paths, n, cv->err);
	for (size_t i = 0; paths && i < n; i++)
		free(paths[i]);
	free(paths);
	return rc;
}

static int prepare_output(struct conv *cv, const char *out_path)
{
	int rc = check_output(cv, out_path);
	if (rc)
		return rc;
	if (!(cv->w = gguf_writer_new(GGUF_DEFAULT_ALIGNMENT)))
		return fm_err(cv->err, FM_ENOMEM, NULL, FM_NO_OFFSET, "out of memory");
	if ((rc = write_hparams(cv)))
		return fm_err(cv->err, rc, out_path, FM_NO_OFFSET, "cannot set the metadata");
	if ((rc = write_tokenizer(cv)))
		return rc;
	for (uint64_t i = 0; i < cv->n_t; i++) {
		const struct out_tensor *o = &cv->t[i];
		int64_t r = gguf_writer_add_tensor(cv->w, o->name, o->to, o->n_dims, o->ne);
		if (r < 0)
			return fm_err(cv->err, (int)r, out_path, FM_NO_OFFSET,
				      "cannot declare tensor '%s'", o->name);
	}
	cv->buf = malloc(cv->buf_bytes ? cv->buf_bytes : 1);
	cv->rows = malloc((size_t)cv->p->n_threads * cv->max_cols * sizeof(float) + 1);
	cv->pool = pool_new(cv->p->n_threads);
	if (!cv->buf || !cv->rows || !cv->pool)
		return fm_err(cv->err, FM_ENOMEM, NULL, FM_NO_OFFSET,
			      "cannot allocate the %zu-byte tensor buffer", cv->buf_bytes);
	return gguf_writer_open(cv->w, out_path, cv->err);
}

int convert_hf(const char *dir, const char *out_path, const struct convert_params *p,
	       struct convert_summary *sum, struct fm_error *err)
{
	struct fm_error local = { 0 };
	struct conv cv = { .dir = dir, .p = p, .err = err ? err : &local };
	double t0 = fm_now_s();
	if (sum)
		*sum = (struct convert_summary){ 0 };
	kernels_init();
	cv.k = kernels_get(KERNEL_ISA_REF);
	int rc = check_params(&cv);
	rc = rc ? rc : read_config(&cv);
	rc = rc ? rc : open_files(&cv);
	rc = rc ? rc : plan_all(&cv);
	rc = rc ? rc : prepare_output(&cv, out_path);
	rc = rc ? rc : write_tensors(&cv, sum);
	rc = rc ? rc : gguf_writer_finish(cv.w, cv.err);
	if (sum) {
		sum->n_tensors = cv.n_t;
		sum->n_source_files = cv.n_files;
		sum->seconds = fm_now_s() - t0;
	}
	gguf_writer_free(cv.w); /* removes path.tmp unless finished */
	pool_free(cv.pool);
	free(cv.rows);
	free(cv.buf);
	tok_free(cv.tok);
	for (uint64_t i = 0; i < cv.n_t; i++)
		free(cv.t[i].src);
	free(cv.t);
	for (uint32_t i = 0; i < cv.n_files; i++) {
		st_close(cv.files[i]);
		free(cv.used[i]);
	}
	free(cv.files);
	free(cv.used);
	return rc;
}
