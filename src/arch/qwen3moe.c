/* qwen3moe.c: Qwen3-MoE (architectures.md §2.1, §5, §9): every layer is
 * attention then a mixture of experts.
 *
 *   h += Wo attn(RoPE(q_norm(Wq x)), RoPE(k_norm(Wk x)), Wv x),  x = rmsnorm(h)
 *   h += sum_{e in topk(softmax(Wr x))} w_e Wdown_e(silu(Wgate_e x) * Wup_e x),  x = rmsnorm(h) */
#include <stddef.h>

#include "arch/arch.h"
#include "blocks.h"
#include "arch/qwen_keys.h"
#include "model.h"

#define ATTN LAYER_MASK(LAYER_ATTN)

static const struct arch_key keys[] = { QWEN_KEYS };

static const struct arch_tensor tensors[] = {
	{ "token_embd.weight", SLOT_MAT, MW(tok_embd), 0, 0, 2, { DIM_EMBD, DIM_VOCAB }, INIT_EMBED,
	  "model.embed_tokens.weight", XF_COPY, NULL, XF_COPY },
	{ "output_norm.weight", SLOT_VEC, MW(output_norm), 0, AT_KEEP_F32, 1, { DIM_EMBD },
	  INIT_NORM, "model.norm.weight", XF_COPY, NULL, XF_COPY },
	{ "output.weight", SLOT_MAT, MW(output), 0, AT_OPTIONAL, 2, { DIM_EMBD, DIM_VOCAB },
	  INIT_LINEAR, "lm_head.weight", XF_COPY, NULL, XF_COPY },
	{ "blk.%d.attn_norm.weight", SLOT_VEC, LW(attn_norm), LAYERS_ALL, AT_KEEP_F32, 1,
	  { DIM_EMBD }, INIT_NORM, "model.layers.%d.input_layernorm.weight", XF_COPY, NULL,
	  XF_COPY },
	{ "blk.%d.attn_q.weight", SLOT_MAT, LW(wq), ATTN, 0, 2, { DIM_EMBD, DIM_Q }, INIT_LINEAR,
	  "model.layers.%d.self_attn.q_proj.weight", XF_COPY, NULL, XF_COPY },
	{ "blk.%d.attn_k.weight", SLOT_MAT, LW(wk), ATTN, 0, 2, { DIM_EMBD, DIM_KV }, INIT_LINEAR,
	  "model.layers.%d.self_attn.k_proj.weight", XF_COPY, NULL, XF_COPY },
	{ "blk.%d.attn_v.weight", SLOT_MAT, LW(wv), ATTN, 0, 2, { DIM_EMBD, DIM_KV }, INIT_LINEAR,
	  "model.layers.%d.self_attn.v_proj.weight", XF_COPY, NULL, XF_COPY },
	{ "blk.%d.attn_output.weight", SLOT_MAT, LW(wo), ATTN, 0, 2, { DIM_Q, DIM_EMBD },
	  INIT_LINEAR, "model.layers.%d.self_attn.o_proj.weight", XF_COPY, NULL, XF_COPY },
	{ "blk.%d.attn_q_norm.weight", SLOT_VEC, LW(q_norm), ATTN, AT_KEEP_F32, 1, { DIM_HEAD },
	  INIT_NORM, "model.layers.%d.self_attn.q_norm.weight", XF_COPY, NULL, XF_COPY },
	{ "blk.%d.attn_k_norm.weight", SLOT_VEC, LW(k_norm), ATTN, AT_KEEP_F32, 1, { DIM_HEAD },
	  INIT_NORM, "model.layers.%d.self_attn.k_norm.weight", XF_COPY, NULL, XF_COPY },
	{ "blk.%d.ffn_norm.weight", SLOT_VEC, LW(ffn_norm), LAYERS_ALL, AT_KEEP_F32, 1,
	  { DIM_EMBD }, INIT_NORM, "model.layers.%d.post_attention_layernorm.weight", XF_COPY,
	  NULL, XF_COPY },
	{ "blk.%d.ffn_gate_inp.weight", SLOT_MAT, LW(router), LAYERS_ALL, AT_KEEP_F32, 2,
	  { DIM_EMBD, DIM_EXPERT }, INIT_LINEAR, "model.layers.%d.mlp.gate.weight", XF_COPY, NULL,
	  XF_COPY },
	{ "blk.%d.ffn_gate_exps.weight", SLOT_EXPS, LW(gate), LAYERS_ALL, AT_EXPERT, 3,
	  { DIM_EMBD, DIM_FF_EXP, DIM_EXPERT }, INIT_LINEAR,
	  "model.layers.%d.mlp.experts.%d.gate_proj.weight", XF_STACK,
	  "model.layers.%d.mlp.experts.gate_up_proj", XF_SPLIT_GATE },
	{ "blk.%d.ffn_up_exps.weight", SLOT_EXPS, LW(up), LAYERS_ALL, AT_EXPERT, 3,
	  { DIM_EMBD, DIM_FF_EXP, DIM_EXPERT }, INIT_LINEAR,
	  "model.layers.%d.mlp.experts.%d.up_proj.weight", XF_STACK,
	  "model.layers.%d.mlp.experts.gate_up_proj", XF_SPLIT_UP },
	{ "blk.%d.ffn_down_exps.weight", SLOT_EXPS, LW(down), LAYERS_ALL, AT_EXPERT, 3,
	  { DIM_FF_EXP, DIM_EMBD, DIM_EXPERT }, INIT_LINEAR,
	  "model.layers.%d.mlp.experts.%d.down_proj.weight", XF_STACK,
	  "model.layers.%d.mlp.experts.down_proj", XF_COPY },
};

static int layer_kinds(struct hparams *hp, const struct gguf_file *f, const char *path,
		       struct fm_error *err)
{
	(void)f, (void)path, (void)err;
	for (int il = 0; il < hp->n_layer; il++)
		hp->layer_kind[il] = LAYER_ATTN;
	return 0;
}

static int layer(struct fwd *f, int il, int n, struct fm_error *err)
{
	block_attention(f, il, n);
	return block_moe(f, il, n, err);
}

const struct arch arch_qwen3moe = {
	.name = "qwen3moe",
	.hf_model_type = "qwen3_moe",
	.hf_archs = (const char *const[]){ "Qwen3MoeForCausalLM", NULL },
	.hf_rotary_factor = 1.0f,
	.hf_norm_topk = false, /* Qwen3MoeConfig's default */
	.flags = 0,
	.keys = keys,
	.n_keys = sizeof(keys) / sizeof(keys[0]),
	.tensors = tensors,
	.n_tensors = sizeof(tensors) / sizeof(tensors[0]),
	.layer_kinds = layer_kinds,
	.layer = layer,
	.tiny = { .rot_div = 1 },
};
