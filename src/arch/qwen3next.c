/* qwen3next.c: Qwen3-Next (`qwen3next`) and Qwen3.5-MoE (`qwen35moe`),
 * architectures.md §2.2-2.3, §6, §9 and llama.cpp's loaders for them. Three
 * Gated DeltaNet layers then one gated attention layer, repeating; every
 * layer ends in routed experts plus a shared expert:
 *
 *   x = rmsnorm(h)
 *   h += (i + 1) % interval ? GatedDeltaNet(x) : Wo (attn(q, k, v) * sigmoid(gate))
 *   x = rmsnorm(h)                                   (post_attention_norm)
 *   h += sum_e w_e expert_e(x) + sigmoid(w_sg . x) shared(x)
 *
 * The two differ only in the DeltaNet's b/a projections (one interleaved
 * ssm_ba tensor vs ssm_beta + ssm_alpha) and in the order of its value heads
 * (grouped by key head vs tiled, §6.3.4). Norm weights in GGUF are plain
 * (the converter added the 1 of the zero-centred norms). An MTP block, when
 * present (nextn_predict_layers), is the last block and is not run. */
#include <stdio.h>

#include "arch/arch.h"
#include "arch/qwen_keys.h"
#include "blocks.h"
#include "forward.h"
#include "gguf.h"
#include "model.h"

#define ATTN LAYER_MASK(LAYER_ATTN)
#define GDN LAYER_MASK(LAYER_GDN)

#define HYBRID_KEYS                                                                            \
	QWEN_KEYS,                                                                             \
	{ "expert_shared_feed_forward_length", AK_U32, HP(n_ff_shexp), false, 0, -1, -1, false }, \
	{ "ssm.conv_kernel", AK_U32, HP(ssm_conv_k), true, 0, -1, -1, false }, \
	{ "ssm.state_size", AK_U32, HP(ssm_dk), true, 0, -1, -1, false }, \
	{ "ssm.group_count", AK_U32, HP(ssm_nk), true, 0, -1, -1, false }, \
	{ "ssm.time_step_rank", AK_U32, HP(ssm_nv), true, 0, -1, -1, false }, \
	{ "ssm.inner_size", AK_U32, HP(ssm_inner), true, 0, -1, -1, false }, \
	{ "full_attention_interval", AK_U32, HP(full_attn_interval), false, 4, -1, -1, false }, \
	{ "nextn_predict_layers", AK_U32, HP(n_nextn), false, 0, -1, -1, true }

static const struct arch_key next_keys[] = { HYBRID_KEYS };
static const struct arch_key q35_keys[] = {
	HYBRID_KEYS,
	{ "rope.dimension_sections", AK_I32X4, HP(rope_sections), false, 0, -1, -1, false },
};

/* One row of the table: GGUF name, slot, field, layer kinds, flags, dims,
 * init, then the Hugging Face name and transform convert uses (HF names
 * after convert's normalisation: "model.language_model." is "model.", the
 * MTP block's "mtp.layers.J." is "model.layers.<n_layer + J>."). */
#define T(name, slot, field, kinds, flags, nd, ne0, ne1, ne2, init, hf, xf)                    \
	{ name, slot, field, kinds, flags, nd, { ne0, ne1, ne2 }, init, hf, xf, NULL, XF_COPY }
/* A routed-expert row: per expert (stacked), or fused (one 3-D tensor). */
#define TX(name, field, ne0, ne1, hf, alt, xf_alt)                                              \
	{ name, SLOT_EXPS, field, LAYERS_ALL, AT_EXPERT, 3, { ne0, ne1, DIM_EXPERT }, INIT_LINEAR, \
	  hf, XF_STACK, alt, xf_alt }
#define L_ "model.layers.%d."

/* The two differ in the DeltaNet's input projections: qwen3next's fused
 * in_proj_qkvz, qwen3.5's in_proj_qkv + in_proj_z. */
#define HYBRID_TENSORS(qkv_hf, qkv_xf, z_hf, z_xf)                                             \
	T("token_embd.weight", SLOT_MAT, MW(tok_embd), 0, 0, 2, DIM_EMBD, DIM_VOCAB, 0,          \
	  INIT_EMBED, "model.embed_tokens.weight", XF_COPY),                                   \
	T("output_norm.weight", SLOT_VEC, MW(output_norm), 0, AT_KEEP_F32, 1, DIM_EMBD, 0, 0,    \
	  INIT_NORM, "model.norm.weight", XF_NORM_PLUS1),                                      \
	T("output.weight", SLOT_MAT, MW(output), 0, AT_OPTIONAL, 2, DIM_EMBD, DIM_VOCAB, 0,      \
	  INIT_LINEAR, "lm_head.weight", XF_COPY),                                             \
	T("blk.%d.attn_norm.weight", SLOT_VEC, LW(attn_norm), LAYERS_ALL, AT_KEEP_F32, 1,       \
	  DIM_EMBD, 0, 0, INIT_NORM, L_ "input_layernorm.weight", XF_NORM_PLUS1),              \
	T("blk.%d.attn_q.weight", SLOT_MAT, LW(wq), ATTN, 0, 2, DIM_EMBD, DIM_QG, 0,             \
	  INIT_LINEAR, L_ "self_attn.q_proj.weight", XF_COPY),                                 \
	T("blk.%d.attn_k.weight", SLOT_MAT, LW(wk), ATTN, 0, 2, DIM_EMBD, DIM_KV, 0,             \
	  INIT_LINEAR, L_ "self_attn.k_proj.weight", XF_COPY),                                 \
	T("blk.%d.attn_v.weight", SLOT_MAT, LW(wv), ATTN, 0, 2, DIM_EMBD, DIM_KV, 0,             \
	  INIT_LINEAR, L_ "self_attn.v_proj.weight", XF_COPY),                                 \
	T("blk.%d.attn_output.weight", SLOT_MAT, LW(wo), ATTN, 0, 2, DIM_Q, DIM_EMBD, 0,         \
	  INIT_LINEAR, L_ "self_attn.o_proj.weight", XF_COPY),                                 \
	T("blk.%d.attn_q_norm.weight", SLOT_VEC, LW(q_norm), ATTN, AT_KEEP_F32, 1, DIM_HEAD, 0,  \
	  0, INIT_NORM, L_ "self_attn.q_norm.weight", XF_NORM_PLUS1),                          \
	T("blk.%d.attn_k_norm.weight", SLOT_VEC, LW(k_norm), ATTN, AT_KEEP_F32, 1, DIM_HEAD, 0,  \
	  0, INIT_NORM, L_ "self_attn.k_norm.weight", XF_NORM_PLUS1),                          \
	T("blk.%d.attn_qkv.weight", SLOT_MAT, LW(ssm_qkv), GDN, 0, 2, DIM_EMBD,                  \
	  DIM_SSM_CHANNELS, 0, INIT_LINEAR, qkv_hf, qkv_xf),                                   \
	T("blk.%d.attn_gate.weight", SLOT_MAT, LW(ssm_z), GDN, 0, 2, DIM_EMBD, DIM_SSM_V, 0,     \
	  INIT_LINEAR, z_hf, z_xf),                                                            \
	T("blk.%d.ssm_conv1d.weight", SLOT_VEC, LW(ssm_conv), GDN, AT_KEEP_F32, 2,               \
	  DIM_SSM_CONV_K, DIM_SSM_CHANNELS, 0, INIT_CONV, L_ "linear_attn.conv1d.weight",      \
	  XF_CONV),                                                                            \
	T("blk.%d.ssm_dt.bias", SLOT_VEC, LW(ssm_dt), GDN, AT_KEEP_F32, 1, DIM_SSM_NV, 0, 0,     \
	  INIT_SSM_DT, L_ "linear_attn.dt_bias", XF_VROWS),                                    \
	T("blk.%d.ssm_a", SLOT_VEC, LW(ssm_a), GDN, AT_KEEP_F32, 1, DIM_SSM_NV, 0, 0,            \
	  INIT_SSM_A, L_ "linear_attn.A_log", XF_NEG_EXP),                                     \
	T("blk.%d.ssm_norm.weight", SLOT_VEC, LW(ssm_norm), GDN, AT_KEEP_F32, 1, DIM_SSM_DV, 0,  \
	  0, INIT_NORM, L_ "linear_attn.norm.weight", XF_COPY),                                \
	T("blk.%d.ssm_out.weight", SLOT_MAT, LW(ssm_out), GDN, 0, 2, DIM_SSM_V, DIM_EMBD, 0,     \
	  INIT_LINEAR, L_ "linear_attn.out_proj.weight", XF_VCOLS),                            \
	T("blk.%d.post_attention_norm.weight", SLOT_VEC, LW(ffn_norm), LAYERS_ALL, AT_KEEP_F32, \
	  1, DIM_EMBD, 0, 0, INIT_NORM, L_ "post_attention_layernorm.weight", XF_NORM_PLUS1),  \
	T("blk.%d.ffn_gate_inp.weight", SLOT_MAT, LW(router), LAYERS_ALL, AT_KEEP_F32, 2,       \
	  DIM_EMBD, DIM_EXPERT, 0, INIT_LINEAR, L_ "mlp.gate.weight", XF_COPY),                \
	TX("blk.%d.ffn_gate_exps.weight", LW(gate), DIM_EMBD, DIM_FF_EXP,                       \
	   L_ "mlp.experts.%d.gate_proj.weight", L_ "mlp.experts.gate_up_proj", XF_SPLIT_GATE), \
	TX("blk.%d.ffn_up_exps.weight", LW(up), DIM_EMBD, DIM_FF_EXP,                           \
	   L_ "mlp.experts.%d.up_proj.weight", L_ "mlp.experts.gate_up_proj", XF_SPLIT_UP),     \
	TX("blk.%d.ffn_down_exps.weight", LW(down), DIM_FF_EXP, DIM_EMBD,                       \
	   L_ "mlp.experts.%d.down_proj.weight", L_ "mlp.experts.down_proj", XF_COPY),          \
	T("blk.%d.ffn_gate_inp_shexp.weight", SLOT_VEC, LW(sh_gate_inp), LAYERS_ALL,            \
	  AT_KEEP_F32, 1, DIM_EMBD, 0, 0, INIT_LINEAR, L_ "mlp.shared_expert_gate.weight",     \
	  XF_COPY),                                                                            \
	T("blk.%d.ffn_gate_shexp.weight", SLOT_MAT, LW(sh_gate), LAYERS_ALL, 0, 2, DIM_EMBD,     \
	  DIM_FF_SHEXP, 0, INIT_LINEAR, L_ "mlp.shared_expert.gate_proj.weight", XF_COPY),     \
	T("blk.%d.ffn_up_shexp.weight", SLOT_MAT, LW(sh_up), LAYERS_ALL, 0, 2, DIM_EMBD,         \
	  DIM_FF_SHEXP, 0, INIT_LINEAR, L_ "mlp.shared_expert.up_proj.weight", XF_COPY),       \
	T("blk.%d.ffn_down_shexp.weight", SLOT_MAT, LW(sh_down), LAYERS_ALL, 0, 2, DIM_FF_SHEXP, \
	  DIM_EMBD, 0, INIT_LINEAR, L_ "mlp.shared_expert.down_proj.weight", XF_COPY)

/* The MTP block's own tensors (architectures.md §8), beside its attention
 * and MoE rows (those of an attention layer); kept in the file, never run. */
#define MTP_TENSORS                                                                            \
	T("blk.%d.nextn.eh_proj.weight", SLOT_MAT, 0, LAYERS_MTP, 0, 2, DIM_EMBD_X2, DIM_EMBD, \
	  0, INIT_LINEAR, "mtp.fc.weight", XF_COPY),                                           \
	T("blk.%d.nextn.enorm.weight", SLOT_VEC, 0, LAYERS_MTP, AT_KEEP_F32, 1, DIM_EMBD, 0, 0,  \
	  INIT_NORM, "mtp.pre_fc_norm_embedding.weight", XF_NORM_PLUS1),                       \
	T("blk.%d.nextn.hnorm.weight", SLOT_VEC, 0, LAYERS_MTP, AT_KEEP_F32, 1, DIM_EMBD, 0, 0,  \
	  INIT_NORM, "mtp.pre_fc_norm_hidden.weight", XF_NORM_PLUS1),                          \
	T("blk.%d.nextn.shared_head_norm.weight", SLOT_VEC, 0, LAYERS_MTP, AT_KEEP_F32, 1,      \
	  DIM_EMBD, 0, 0, INIT_NORM, "mtp.norm.weight", XF_NORM_PLUS1)

static const struct arch_tensor next_tensors[] = {
	HYBRID_TENSORS(L_ "linear_attn.in_proj_qkvz.weight", XF_QKVZ_QKV,
		       L_ "linear_attn.in_proj_qkvz.weight", XF_QKVZ_Z),
	T("blk.%d.ssm_ba.weight", SLOT_MAT, LW(ssm_ba), GDN, 0, 2, DIM_EMBD, DIM_SSM_2NV, 0,
	  INIT_LINEAR, L_ "linear_attn.in_proj_ba.weight", XF_COPY),
	MTP_TENSORS,
};

static const struct arch_tensor q35_tensors[] = {
	HYBRID_TENSORS(L_ "linear_attn.in_proj_qkv.weight", XF_QKV,
		       L_ "linear_attn.in_proj_z.weight", XF_VROWS),
	T("blk.%d.ssm_beta.weight", SLOT_MAT, LW(ssm_beta), GDN, 0, 2, DIM_EMBD, DIM_SSM_NV, 0,
	  INIT_LINEAR, L_ "linear_attn.in_proj_b.weight", XF_VROWS),
	T("blk.%d.ssm_alpha.weight", SLOT_MAT, LW(ssm_alpha), GDN, 0, 2, DIM_EMBD, DIM_SSM_NV, 0,
	  INIT_LINEAR, L_ "linear_attn.in_proj_a.weight", XF_VROWS),
	MTP_TENSORS,
};

/* Layer i is full attention iff (i + 1) % full_attention_interval == 0, or
 * as `attention.recurrent_layers` (one bool per block) says when present. */
static int layer_kinds(struct hparams *hp, const struct gguf_file *f, const char *path,
		       struct fm_error *err)
{
	char key[96];
	snprintf(key, sizeof(key), "%s.attention.recurrent_layers", hp->arch_name);
	int64_t ki = f ? gguf_find_key(f, key) : -1; /* f NULL: gen-tiny */
	if (ki >= 0) {
		uint64_t n = gguf_kv_arr_n(f, (uint64_t)ki);
		enum gguf_type t = gguf_kv_arr_type(f, (uint64_t)ki);
		if (gguf_kv_type(f, (uint64_t)ki) != GGUF_TYPE_ARRAY ||
		    (t != GGUF_TYPE_BOOL && t != GGUF_TYPE_UINT8 && t != GGUF_TYPE_INT8) ||
		    n < (uint64_t)hp->n_layer)
			return fm_err(err, FM_EFORMAT, path, FM_NO_OFFSET,
				      "'%s' must be an array of %d bools", key, hp->n_block);
		const uint8_t *v = gguf_kv_arr_data(f, (uint64_t)ki);
		for (int il = 0; il < hp->n_layer; il++)
			hp->layer_kind[il] = v[il] ? LAYER_GDN : LAYER_ATTN;
		return 0;
	}
	if (hp->full_attn_interval < 1)
		return fm_err(err, FM_EFORMAT, path, FM_NO_OFFSET,
			      "%s.full_attention_interval must be at least 1", hp->arch_name);
	for (int il = 0; il < hp->n_layer; il++)
		hp->layer_kind[il] = (il + 1) % hp->full_attn_interval ? LAYER_GDN : LAYER_ATTN;
	return 0;
}

static int layer(struct fwd *f, int il, int n, struct fm_error *err)
{
	const struct hparams *hp = fwd_hparams(f);
	if (hp->layer_kind[il] == LAYER_GDN)
		block_gdn(f, il, n);
	else
		block_attention(f, il, n);
	return block_moe(f, il, n, err);
}

#define HYBRID_TINY                                                                            \
	{ .n_ff_shexp = 48, .ssm_conv_k = 4, .ssm_dk = 16, .ssm_nk = 2, .ssm_nv = 4,            \
	  .ssm_dv = 16, .full_attn_interval = 4, .rot_div = 4 }

const struct arch arch_qwen3next = {
	.name = "qwen3next",
	.hf_model_type = "qwen3_next",
	.hf_archs = (const char *const[]){ "Qwen3NextForCausalLM", NULL },
	.hf_rotary_factor = 0.25f, /* Qwen3NextConfig's default, as llama.cpp assumes */
	.hf_norm_topk = true,
	.flags = ARCH_GATED_ATTN | ARCH_SHARED_EXPERT,
	.keys = next_keys,
	.n_keys = sizeof(next_keys) / sizeof(next_keys[0]),
	.tensors = next_tensors,
	.n_tensors = sizeof(next_tensors) / sizeof(next_tensors[0]),
	.layer_kinds = layer_kinds,
	.layer = layer,
	.tiny = HYBRID_TINY,
};

const struct arch arch_qwen35moe = {
	.name = "qwen35moe",
	.hf_model_type = "qwen3_5_moe",
	.hf_archs = (const char *const[]){ "Qwen3_5MoeForConditionalGeneration",
					   "Qwen3_5MoeForCausalLM", NULL },
	.hf_rotary_factor = 0.25f,
	.hf_norm_topk = true, /* its router always renormalises */
	.flags = ARCH_GATED_ATTN | ARCH_SHARED_EXPERT | ARCH_V_TILED | ARCH_ROPE_SECTIONS,
	.keys = q35_keys,
	.n_keys = sizeof(q35_keys) / sizeof(q35_keys[0]),
	.tensors = q35_tensors,
	.n_tensors = sizeof(q35_tensors) / sizeof(q35_tensors[0]),
	.layer_kinds = layer_kinds,
	.layer = layer,
	.tiny = HYBRID_TINY,
};
