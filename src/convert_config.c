/* convert_config.c: config.json in, GGUF keys out, for convert.c (contract
 * in convert.h). config.json is read into struct hparams (the engine's: the
 * values the <arch>.* keys will hold), a VLM's text model from its
 * "text_config" as llama.cpp merges it, transformers 4's and 5's spellings
 * alike. Every key must be one convert knows: those it reads are checked
 * (the settings a Qwen model may not change: silu, no attention bias, no
 * sliding window, plain RoPE, ...); the others are listed as having no
 * effect on the forward pass; any other is refused, since it may. The keys
 * are written in llama.cpp's converter order, each from the architecture's
 * key table (its field offset into struct hparams).
 */
#include <json-c/json.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert_internal.h"
#include "json_file.h"
#include "quantize.h"
#include "util.h"

#define CONV_MAX_DIM (1u << 30)

static int cfg_err(struct conv *cv, int code, const char *fmt, const char *a, const char *b)
{
	return fm_err(cv->err, code, convert_path(cv, "config.json"), FM_NO_OFFSET, fmt, a, b);
}

/* ---- config.json ---- */

static json_object *jget(json_object *o, const char *key)
{
	json_object *v = NULL;
	return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

/* key of the text model: text_config's (a VLM's), else the top level's, as
 * llama.cpp merges them; NULL when absent or null */
static json_object *cfg_get(struct conv *cv, const char *key)
{
	json_object *v = jget(cv->text, key);
	if (!v && cv->text != cv->cfg)
		v = jget(cv->cfg, key);
	return v && !json_object_is_type(v, json_type_null) ? v : NULL;
}

/* The rope parameters: transformers 5's rope_parameters, 4's rope_scaling. */
static json_object *rope_params(struct conv *cv)
{
	json_object *r = cfg_get(cv, "rope_parameters");
	return r ? r : cfg_get(cv, "rope_scaling");
}

#define REQ LONG_MIN /* cfg_int's dflt of a required key */

/* Integer key in [lo, hi]; dflt when absent (REQ: required). */
static int cfg_int(struct conv *cv, const char *key, long lo, long hi, long dflt, int *out)
{
	json_object *v = cfg_get(cv, key);
	if (!v) {
		*out = dflt == REQ ? 0 : (int)dflt;
		return dflt == REQ ? cfg_err(cv, FM_EFORMAT, "missing \"%s\"%s", key, "") : 0;
	}
	int64_t x = json_object_get_int64(v);
	if (!json_object_is_type(v, json_type_int) || x < lo || x > hi)
		return fm_err(cv->err, FM_EFORMAT, convert_path(cv, "config.json"), FM_NO_OFFSET,
			      "\"%s\" = %s is not an integer in %ld..%ld", key,
			      json_object_to_json_string(v), lo, hi);
	*out = (int)x;
	return 0;
}

/* A number in [lo, hi] from v (named key); absent: dflt, or (dflt NaN) an error. */
static int num_in(struct conv *cv, json_object *v, const char *key, double lo, double hi,
		  double dflt, float *out)
{
	double x = v ? json_object_get_double(v) : dflt;
	if ((v && !json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int)) ||
	    !(x >= lo && x <= hi))
		return fm_err(cv->err, FM_EFORMAT, convert_path(cv, "config.json"), FM_NO_OFFSET,
			      "\"%s\" is missing or not a number in %g..%g", key, lo, hi);
	*out = (float)x;
	return 0;
}

static int cfg_bool(struct conv *cv, const char *key, bool dflt, bool *out)
{
	json_object *v = cfg_get(cv, key);
	*out = v ? json_object_get_boolean(v) : dflt;
	return v && !json_object_is_type(v, json_type_boolean)
		       ? cfg_err(cv, FM_EFORMAT, "\"%s\" is not true or false%s", key, "")
		       : 0;
}

static int unsupported(struct conv *cv, const char *what, const char *detail)
{
	return fm_err(cv->err, FM_EUNSUPPORTED, convert_path(cv, "config.json"), FM_NO_OFFSET,
		      "%s%s: the %s conversion does not support it", what, detail,
		      cv->c.arch ? cv->c.arch->name : "?");
}

/* The keys config.json may hold. Those convert reads are checked where it
 * reads them; the others are bookkeeping, training or generation settings
 * (or the vision tower's) that do not change the text model's forward pass.
 * Any other key is refused: it may. */
static const char *const known_keys[] = {
	/* read */
	"architectures", "model_type", "text_config", "num_hidden_layers", "hidden_size",
	"num_attention_heads", "num_key_value_heads", "head_dim", "intermediate_size",
	"moe_intermediate_size", "shared_expert_intermediate_size", "num_experts",
	"num_local_experts", "num_experts_per_tok", "vocab_size", "max_position_embeddings",
	"rms_norm_eps", "rope_theta", "rope_scaling", "rope_parameters", "partial_rotary_factor",
	"norm_topk_prob", "tie_word_embeddings", "layer_types", "full_attention_interval",
	"linear_conv_kernel_dim", "linear_key_head_dim", "linear_value_head_dim",
	"linear_num_key_heads", "linear_num_value_heads", "hidden_act", "attention_bias",
	"use_sliding_window", "decoder_sparse_step", "mlp_only_layers", "attn_output_gate",
	"mtp_num_hidden_layers", "mtp_use_dedicated_embeddings", "bos_token_id",
	/* no effect on the forward pass (sliding_window and max_window_layers act only
	 * with use_sliding_window; mamba_ssm_dtype: the DeltaNet state is f32 here) */
	"sliding_window", "max_window_layers", "mamba_ssm_dtype", "eos_token_id", "pad_token_id",
	"_name_or_path", "transformers_version", "torch_dtype", "dtype", "initializer_range",
	"use_cache", "attention_dropout", "output_router_logits", "router_aux_loss_coef",
	"output_attentions", "output_hidden_states", "return_dict", "torchscript",
	"chunk_size_feed_forward", "is_encoder_decoder", "id2label", "label2id", "problem_type",
	"tie_encoder_decoder", "pruned_heads", "tokenizer_class", "finetuning_task", "prefix",
	"task_specific_params", "use_return_dict",
	/* the vision tower of a VLM checkpoint, not converted */
	"vision_config", "image_token_id", "video_token_id", "vision_start_token_id",
	"vision_end_token_id",
};

static const char *const known_rope_keys[] = {
	"rope_type", "type", "rope_theta", "partial_rotary_factor", "mrope_section",
	"mrope_interleaved",
};

static bool in_list(const char *key, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(key, list[i]))
			return true;
	return false;
}

static int check_known(struct conv *cv, json_object *o, const char *where)
{
	if (!json_object_is_type(o, json_type_object))
		return cfg_err(cv, FM_EFORMAT, "%s%s is not an object", where, "");
	json_object_object_foreach(o, key, val) {
		(void)val;
		if (!in_list(key, known_keys, sizeof(known_keys) / sizeof(known_keys[0])))
			return fm_err(cv->err, FM_EUNSUPPORTED, convert_path(cv, "config.json"), FM_NO_OFFSET,
				      "unknown key \"%s%.96s\": it may change the model's math, and "
				      "convert does not know it", where, key);
	}
	return 0;
}

/* The architecture table whose HF classes hold architectures[0]. */
static const struct arch *arch_for_class(const char *cls)
{
	const char *names = arch_names();
	while (*names) {
		size_t len = strcspn(names, ", ");
		const struct arch *a = arch_find(names, len);
		for (int i = 0; a && a->hf_archs && a->hf_archs[i]; i++)
			if (!strcmp(a->hf_archs[i], cls))
				return a;
		names += len;
		names += strspn(names, ", ");
	}
	return NULL;
}

static int check_arch(struct conv *cv)
{
	json_object *a = jget(cv->cfg, "architectures");
	json_object *a0 = a && json_object_is_type(a, json_type_array) &&
			  json_object_array_length(a) ? json_object_array_get_idx(a, 0) : NULL;
	const char *cls = a0 && json_object_is_type(a0, json_type_string)
				  ? json_object_get_string(a0) : "(none)";
	struct hf_config *c = &cv->c;
	if (!(c->arch = arch_for_class(cls)))
		return fm_err(cv->err, FM_EUNSUPPORTED, convert_path(cv, "config.json"), FM_NO_OFFSET,
			      "architecture '%.64s' is not supported (convert reads "
			      "Qwen3MoeForCausalLM, Qwen3NextForCausalLM and "
			      "Qwen3_5MoeForConditionalGeneration / Qwen3_5MoeForCausalLM)", cls);
	json_object *text = jget(cv->cfg, "text_config");
	cv->text = text && !json_object_is_type(text, json_type_null) ? text : cv->cfg;
	int rc = check_known(cv, cv->cfg, "");
	rc = rc ? rc : cv->text != cv->cfg ? check_known(cv, cv->text, "text_config.") : 0;
	if (rc)
		return rc;
	const char *want = c->arch->hf_model_type;
	json_object *mt = jget(cv->text, "model_type");
	if (!mt && cv->text != cv->cfg)
		mt = jget(cv->cfg, "model_type");
	const char *got = mt ? json_object_get_string(mt) : want;
	size_t n = strlen(want);
	if (strncmp(got, want, n) || (got[n] && strcmp(got + n, "_text")))
		return fm_err(cv->err, FM_EUNSUPPORTED, convert_path(cv, "config.json"), FM_NO_OFFSET,
			      "model_type '%.64s' is not %s", got, want);
	return 0;
}

/* Settings of the family a converter must not drop: each must have the value
 * the architecture computes with. */
static int check_math(struct conv *cv)
{
	const struct arch *a = cv->c.arch;
	json_object *act = cfg_get(cv, "hidden_act"), *mlp_only = cfg_get(cv, "mlp_only_layers");
	bool b = false;
	int step = 1, rc = 0;
	if (act && (!json_object_is_type(act, json_type_string) ||
		    strcmp(json_object_get_string(act), "silu")))
		return unsupported(cv, "hidden_act is not silu", "");
	if (mlp_only && (!json_object_is_type(mlp_only, json_type_array) ||
			 json_object_array_length(mlp_only)))
		return unsupported(cv, "mlp_only_layers (dense layers) is not empty", "");
	if ((rc = cfg_bool(cv, "attention_bias", false, &b)) || b)
		return rc ? rc : unsupported(cv, "attention_bias is true", "");
	if ((rc = cfg_bool(cv, "use_sliding_window", false, &b)) || b)
		return rc ? rc : unsupported(cv, "use_sliding_window is true", "");
	if ((rc = cfg_bool(cv, "attn_output_gate", (a->flags & ARCH_GATED_ATTN) != 0, &b)))
		return rc;
	if (b != ((a->flags & ARCH_GATED_ATTN) != 0))
		return unsupported(cv, "attn_output_gate is ", b ? "true" : "false");
	if ((rc = cfg_bool(cv, "mtp_use_dedicated_embeddings", false, &b)) || b)
		return rc ? rc : unsupported(cv, "mtp_use_dedicated_embeddings is true", "");
	if ((rc = cfg_int(cv, "decoder_sparse_step", 0, 1 << 20, 1, &step)) || step != 1)
		return rc ? rc : unsupported(cv, "decoder_sparse_step is not 1 (dense layers)", "");
	return 0;
}

/* rope_parameters' keys: plain RoPE only (no scaling of any kind). */
static int check_rope_keys(struct conv *cv, json_object *r)
{
	json_object_object_foreach(r, key, val) {
		if (!in_list(key, known_rope_keys, sizeof(known_rope_keys) / sizeof(known_rope_keys[0])))
			return unsupported(cv, "rope scaling parameter rope_parameters.", key);
		if ((!strcmp(key, "rope_type") || !strcmp(key, "type")) &&
		    (!json_object_is_type(val, json_type_string) ||
		     strcmp(json_object_get_string(val), "default")))
			return unsupported(cv, "rope_type ", json_object_to_json_string(val));
		if (!strcmp(key, "mrope_section") && !(cv->c.arch->flags & ARCH_ROPE_SECTIONS))
			return unsupported(cv, "multimodal RoPE (rope_parameters.mrope_section)", "");
	}
	return 0;
}

/* rope_theta and partial_rotary_factor from rope_parameters (transformers 5)
 * or the top level (4); the M-RoPE sections of an ARCH_ROPE_SECTIONS one. */
static int read_rope(struct conv *cv, float *theta, float *factor)
{
	struct hf_config *c = &cv->c;
	json_object *r = rope_params(cv), *v;
	if (r && !json_object_is_type(r, json_type_object))
		return cfg_err(cv, FM_EFORMAT, "rope_parameters is not an object%s%s", "", "");
	if (r && check_rope_keys(cv, r))
		return cv->err->code;
	int rc = num_in(cv, (v = jget(r, "rope_theta")) ? v : cfg_get(cv, "rope_theta"),
			"rope_theta", 1e-3, 1e12, NAN, theta);
	rc = rc ? rc : num_in(cv, (v = jget(r, "partial_rotary_factor")) ? v
				  : cfg_get(cv, "partial_rotary_factor"),
			      "partial_rotary_factor", 1e-6, 1, c->arch->hf_rotary_factor, factor);
	static const int dflt[4] = { 11, 11, 10, 0 }; /* llama.cpp's when absent */
	memcpy(c->hp.rope_sections, dflt, sizeof(dflt));
	json_object *s = jget(r, "mrope_section");
	size_t n = s && json_object_is_type(s, json_type_array) ? json_object_array_length(s) : 9;
	for (size_t i = 0; !rc && s && i < 4; i++) { /* padded with 0s, as llama.cpp pads */
		json_object *x = i < n ? json_object_array_get_idx(s, i) : NULL;
		int64_t sec = x ? json_object_get_int64(x) : 0;
		if (n > 4 || (x && !json_object_is_type(x, json_type_int)) || sec < 0 || sec > 1 << 16)
			return cfg_err(cv, FM_EFORMAT, "rope_parameters.mrope_section is not a list of "
				       "at most 4 integers%s%s", "", "");
		c->hp.rope_sections[i] = (int)sec;
	}
	return rc;
}

static bool arch_has_key(const struct arch *a, const char *suffix)
{
	for (int i = 0; i < a->n_keys; i++)
		if (!strcmp(a->keys[i].suffix, suffix))
			return true;
	return false;
}

/* Whether the architecture has rows for layers of kind k. */
static bool arch_has_kind(const struct arch *a, enum layer_kind k)
{
	for (int i = 0; i < a->n_tensors; i++)
		if (a->tensors[i].kinds & LAYER_MASK(k))
			return true;
	return false;
}

/* Which layer is which: layer_types when listed, else the table's rule. */
static int read_layer_kinds(struct conv *cv)
{
	struct hparams *hp = &cv->c.hp;
	json_object *lt = cfg_get(cv, "layer_types");
	cv->c.layer_types = lt != NULL;
	if (!lt) {
		struct fm_error e = { 0 };
		int rc = cv->c.arch->layer_kinds(hp, NULL, NULL, &e);
		return rc ? cfg_err(cv, rc, "%s%s", e.msg, "") : 0;
	}
	if (!json_object_is_type(lt, json_type_array) ||
	    json_object_array_length(lt) != (size_t)hp->n_layer)
		return cfg_err(cv, FM_EFORMAT, "layer_types is not a list of num_hidden_layers "
			       "entries%s%s", "", "");
	for (int il = 0; il < hp->n_layer; il++) {
		const char *s = json_object_get_string(json_object_array_get_idx(lt, il));
		int k = !s ? -1 : !strcmp(s, "full_attention") ? LAYER_ATTN
			: !strcmp(s, "linear_attention") ? LAYER_GDN : -1;
		if (k < 0 || !arch_has_kind(cv->c.arch, (enum layer_kind)k))
			return unsupported(cv, "layer type ", s ? s : "(not a string)");
		hp->layer_kind[il] = (uint8_t)k;
	}
	return 0;
}

/* The Gated DeltaNet's shape (architectures.md §2.2): nv value heads over nk
 * key heads, head sizes equal (GGUF has one state_size for both). */
static int read_ssm(struct conv *cv)
{
	struct hparams *hp = &cv->c.hp;
	int rc = cfg_int(cv, "linear_conv_kernel_dim", 1, 64, REQ, &hp->ssm_conv_k);
	rc = rc ? rc : cfg_int(cv, "linear_key_head_dim", 1, 1 << 16, REQ, &hp->ssm_dk);
	rc = rc ? rc : cfg_int(cv, "linear_value_head_dim", 1, 1 << 16, REQ, &hp->ssm_dv);
	rc = rc ? rc : cfg_int(cv, "linear_num_key_heads", 1, 1 << 16, REQ, &hp->ssm_nk);
	rc = rc ? rc : cfg_int(cv, "linear_num_value_heads", 1, 1 << 16, REQ, &hp->ssm_nv);
	if (rc)
		return rc;
	char msg[96];
	snprintf(msg, sizeof(msg), "linear_num_value_heads %d over linear_num_key_heads %d",
		 hp->ssm_nv, hp->ssm_nk);
	if (hp->ssm_nv % hp->ssm_nk)
		return unsupported(cv, msg, " (not a multiple)");
	snprintf(msg, sizeof(msg), "linear_value_head_dim %d != linear_key_head_dim %d", hp->ssm_dv,
		 hp->ssm_dk);
	if (hp->ssm_dv != hp->ssm_dk) /* GGUF has one DeltaNet head size (ssm.state_size) */
		return unsupported(cv, msg, "");
	hp->ssm_inner = hp->ssm_nv * hp->ssm_dv;
	return 0;
}

static int read_sizes(struct conv *cv)
{
	struct hf_config *c = &cv->c;
	struct hparams *hp = &c->hp;
	const long M = CONV_MAX_DIM;
	json_object *ne = cfg_get(cv, "num_experts"), *nle = cfg_get(cv, "num_local_experts");
	int rc = cfg_int(cv, "num_hidden_layers", 1, HP_MAX_LAYER / 2, REQ, &hp->n_layer);
	rc = rc ? rc : cfg_int(cv, "hidden_size", 1, 1 << 20, REQ, &hp->n_embd);
	rc = rc ? rc : cfg_int(cv, "num_attention_heads", 1, 4096, REQ, &hp->n_head);
	rc = rc ? rc : cfg_int(cv, "num_key_value_heads", 1, 4096, hp->n_head, &hp->n_head_kv);
	rc = rc ? rc : cfg_int(cv, "head_dim", 2, 1 << 16, hp->n_head ? hp->n_embd / hp->n_head : 0,
			       &hp->head_dim);
	rc = rc ? rc : cfg_int(cv, "intermediate_size", 0, M, -1, &c->n_ff);
	rc = rc ? rc : cfg_int(cv, "moe_intermediate_size", 1, 1 << 20, REQ, &hp->n_ff_exp);
	rc = rc ? rc : cfg_int(cv, ne || !nle ? "num_experts" : "num_local_experts", 1, 1 << 16, REQ,
			       &hp->n_expert);
	if (!rc && ne && nle && !json_object_equal(ne, nle))
		rc = cfg_err(cv, FM_EFORMAT, "num_experts and num_local_experts differ%s%s", "", "");
	rc = rc ? rc : cfg_int(cv, "num_experts_per_tok", 1, 1 << 16, REQ, &hp->n_expert_used);
	rc = rc ? rc : cfg_int(cv, "vocab_size", 1, 1 << 24, REQ, &hp->n_vocab);
	rc = rc ? rc : cfg_int(cv, "max_position_embeddings", 1, M, REQ, &hp->n_ctx_train);
	if (!rc && arch_has_key(c->arch, "expert_shared_feed_forward_length"))
		rc = cfg_int(cv, "shared_expert_intermediate_size", 1, 1 << 20, REQ, &hp->n_ff_shexp);
	if (!rc && arch_has_key(c->arch, "ssm.conv_kernel"))
		rc = read_ssm(cv);
	if (!rc && arch_has_key(c->arch, "full_attention_interval"))
		rc = cfg_int(cv, "full_attention_interval", 1, HP_MAX_LAYER, 4, &hp->full_attn_interval);
	rc = rc ? rc : cfg_int(cv, "mtp_num_hidden_layers", 0, 64, -1, &c->n_mtp_cfg);
	c->bos_id = -1;
	if (!rc && cfg_get(cv, "bos_token_id"))
		rc = cfg_int(cv, "bos_token_id", 0, 1 << 24, REQ, &c->bos_id);
	return rc;
}

int convert_config_read(struct conv *cv)
{
	cv->cfg = json_file_read(convert_path(cv, "config.json"), CONV_JSON_MAX_BYTES, true, cv->err);
	if (!cv->cfg)
		return cv->err->code;
	struct hf_config *c = &cv->c;
	struct hparams *hp = &c->hp;
	float factor = 1;
	int rc = check_arch(cv);
	rc = rc ? rc : check_math(cv);
	rc = rc ? rc : read_sizes(cv);
	rc = rc ? rc : read_rope(cv, &hp->rope_theta, &factor);
	rc = rc ? rc : num_in(cv, cfg_get(cv, "rms_norm_eps"), "rms_norm_eps", 1e-12, 1, NAN,
			      &hp->rms_eps);
	rc = rc ? rc : cfg_bool(cv, "tie_word_embeddings", false, &c->tied);
	rc = rc ? rc : cfg_bool(cv, "norm_topk_prob", c->arch->hf_norm_topk, &hp->norm_topk);
	if (rc)
		return rc;
	hp->arch = c->arch;
	snprintf(hp->arch_name, sizeof(hp->arch_name), "%s", c->arch->name);
	hp->head_dim_v = hp->head_dim;
	hp->n_rot = (int)((float)hp->head_dim * factor); /* llama.cpp: int(head_dim * factor) */
	hp->n_block = hp->n_layer;
	if (hp->n_head % hp->n_head_kv || hp->n_expert_used > hp->n_expert || hp->head_dim % 2 ||
	    hp->n_rot < 2 || hp->n_rot % 2)
		return fm_err(cv->err, FM_EFORMAT, convert_path(cv, "config.json"), FM_NO_OFFSET,
			      "inconsistent: %d heads, %d KV heads, head_dim %d (%d rotary), %d experts, "
			      "%d used", hp->n_head, hp->n_head_kv, hp->head_dim, hp->n_rot,
			      hp->n_expert, hp->n_expert_used);
	return read_layer_kinds(cv);
}

int convert_read_config_json(const char *dir, struct fm_error *err)
{
	struct fm_error scratch;
	struct conv *cv = calloc(1, sizeof(*cv));
	if (!cv)
		return fm_err(err, FM_ENOMEM, NULL, FM_NO_OFFSET, "out of memory");
	cv->dir = dir;
	cv->err = err ? err : &scratch;
	int rc = convert_config_read(cv);
	json_object_put(cv->cfg);
	free(cv);
	return rc;
}

/* ---- the GGUF keys ---- */

/* llama.cpp's converter order (TextModel, Qwen2MoeModel, the MTP mixin,
 * Qwen3NextModel). A key is written when the architecture's table has it,
 * its value from struct hparams through the table's field offset; the
 * two marked * are not in the tables (the engine does not read them). */
static const char *const key_order[] = {
	"block_count", "context_length", "embedding_length", "*feed_forward_length",
	"attention.head_count", "attention.head_count_kv", "rope.dimension_sections",
	"rope.freq_base", "attention.layer_norm_rms_epsilon", "expert_count", "expert_used_count",
	"attention.key_length", "attention.value_length", "expert_feed_forward_length",
	"expert_shared_feed_forward_length", "nextn_predict_layers", "ssm.conv_kernel",
	"ssm.state_size", "ssm.group_count", "ssm.time_step_rank", "ssm.inner_size",
	"*attention.recurrent_layers", "full_attention_interval", "rope.dimension_count",
	"expert_weights_norm",
};

/* Table key k, unless at a value llama.cpp leaves out: rotary dims = the
 * head size, no MTP block, a flag at its default (renormalise). */
static int write_table_key(struct conv *cv, const struct arch_key *k)
{
	const struct hparams *hp = &cv->c.hp;
	const char *field = (const char *)hp + k->off;
	char key[128];
	snprintf(key, sizeof(key), "%s.%s", hp->arch_name, k->suffix);
	if ((!strcmp(k->suffix, "rope.dimension_count") && hp->n_rot == hp->head_dim) ||
	    (k->type == AK_U32 && k->zero_ok && !*(const int *)field) ||
	    (k->type == AK_BOOL && *(const bool *)field == (k->dflt != 0)))
		return 0;
	if (k->type == AK_I32X4) {
		int32_t v[4];
		for (int i = 0; i < 4; i++)
			v[i] = (int32_t)((const int *)field)[i];
		return gguf_writer_set_arr(cv->w, key, GGUF_TYPE_INT32, v, 4);
	}
	if (k->type == AK_U32)
		return gguf_writer_set_u32(cv->w, key, (uint32_t)*(const int *)field);
	if (k->type == AK_F32)
		return gguf_writer_set_f32(cv->w, key, *(const float *)field);
	return gguf_writer_set_bool(cv->w, key, *(const bool *)field);
}

static int write_special_key(struct conv *cv, const char *suffix)
{
	const struct hf_config *c = &cv->c;
	char key[128];
	snprintf(key, sizeof(key), "%s.%s", c->arch->name, suffix);
	if (!strcmp(suffix, "feed_forward_length") && c->n_ff >= 0)
		return gguf_writer_set_u32(cv->w, key, (uint32_t)c->n_ff);
	if (!strcmp(suffix, "attention.recurrent_layers") && c->layer_types) {
		uint8_t rec[HP_MAX_LAYER];
		for (int il = 0; il < c->hp.n_block; il++)
			rec[il] = il < c->hp.n_layer && c->hp.layer_kind[il] == LAYER_GDN;
		return gguf_writer_set_arr(cv->w, key, GGUF_TYPE_BOOL, rec, (uint64_t)c->hp.n_block);
	}
	return 0;
}

static int write_hparams(struct conv *cv)
{
	const struct arch *a = cv->c.arch;
	struct gguf_writer *w = cv->w;
	char name[256]; /* the directory's last component, as llama.cpp names a model */
	snprintf(name, sizeof(name), "%s", cv->dir);
	for (size_t n = strlen(name); n > 1 && name[n - 1] == '/'; n--)
		name[n - 1] = 0;
	const char *base = strrchr(name, '/');
	if (base && base[1])
		memmove(name, base + 1, strlen(base + 1) + 1);
	int rc = gguf_writer_set_str(w, "general.architecture", a->name);
	rc = rc ? rc : gguf_writer_set_str(w, "general.name", name);
	const size_t n_order = sizeof(key_order) / sizeof(key_order[0]);
	for (size_t i = 0; !rc && i < n_order; i++) {
		if (key_order[i][0] == '*') {
			rc = write_special_key(cv, key_order[i] + 1);
			continue;
		}
		for (int j = 0; !rc && j < a->n_keys; j++)
			if (!strcmp(a->keys[j].suffix, key_order[i]))
				rc = write_table_key(cv, &a->keys[j]);
	}
	for (int j = 0; !rc && j < a->n_keys; j++) /* a table key llama.cpp's order lacks */
		if (!in_list(a->keys[j].suffix, key_order, n_order))
			rc = write_table_key(cv, &a->keys[j]);
	rc = rc ? rc : gguf_writer_set_u32(w, "general.file_type",
					   (uint32_t)quant_llama_ftype(cv->p->type));
	rc = rc ? rc : gguf_writer_set_u32(w, "general.quantization_version", 2);
	return rc;
}

/* tokenizer.* from tokenizer.json (+ tokenizer_config.json); the vocabulary
 * padded to vocab_size with [PAD<id>] UNUSED tokens as llama.cpp pads. */
static int write_tokenizer(struct conv *cv)
{
	const char *tj = convert_path(cv, "tokenizer.json");
	if (!(cv->tok = tok_load_json(tj, cv->err)))
		return cv->err->code;
	int n_tok = tok_n_vocab(cv->tok), n = cv->c.hp.n_vocab;
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

int convert_config_write(struct conv *cv, const char *out_path)
{
	int rc = write_hparams(cv);
	if (rc)
		return fm_err(cv->err, rc, out_path, FM_NO_OFFSET, "cannot set the metadata");
	return write_tokenizer(cv);
}
