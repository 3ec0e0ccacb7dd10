/* convert.h: a Hugging Face checkpoint directory -> GGUF, as llama.cpp's
 * convert_hf_to_gguf.py (0.3.36) writes it, behind `flashmoe convert`.
 *
 * Which checkpoints: those an architecture table of src/arch/ names
 * (struct arch's hf_archs, hf_name and xform): Qwen3MoeForCausalLM (arch
 * qwen3moe), Qwen3NextForCausalLM (qwen3next), Qwen3_5MoeForConditionalGeneration
 * and Qwen3_5MoeForCausalLM (qwen35moe), as transformers 4.x and 5.x save
 * them. Input: DIR/config.json (a VLM's text model under "text_config";
 * transformers 5's rope_parameters and num_local_experts as well as 4's
 * rope_theta and num_experts), DIR/model.safetensors or the shards that
 * DIR/model.safetensors.index.json names (F32, F16 or BF16), DIR/tokenizer.json
 * (+ tokenizer_config.json).
 *
 * Output: the <arch>.* keys llama.cpp writes (in its order), the tokenizer.*
 * keys (gpt2 with the pre-tokenizer's name; the vocabulary padded to
 * vocab_size with [PAD<id>] unused tokens, as llama.cpp pads), and the
 * tensors under their GGUF names, transformed as llama.cpp does (arch.h enum
 * arch_xform): per-expert experts stacked, fused gate_up_proj split; the
 * zero-centred norms of the hybrids + 1 (not linear_attn.norm); A_log ->
 * -exp(A_log); dt_bias -> ssm_dt.bias; conv1d squeezed; Qwen3-Next's
 * in_proj_qkvz regrouped into attn_qkv + attn_gate; Qwen3.5's value heads
 * reordered grouped -> tiled. The vision tower (*visual.*) is not converted;
 * the MTP block (mtp.*) is kept as llama.cpp keeps it (block n_layer,
 * nextn_predict_layers), or dropped with no_mtp or when the checkpoint has
 * none. q/k are not permuted (llama.cpp permutes only llama-family models).
 *
 * Type policy: quantize.h's (quant_choose_type), with the table's AT_KEEP_F32
 * tensors (norms, routers, the conv kernel) f32. Streams one output tensor at
 * a time; written to a temporary file and renamed. Anything unexpected (an
 * unknown config.json key, which may change the math; rope scaling, attention
 * bias, sliding windows, dense layers; missing or unused tensors, wrong
 * shapes, other dtypes) is refused before the output file is created, with an
 * error naming the file and what is wrong.
 */
#ifndef FM_CONVERT_H
#define FM_CONVERT_H

#include <stdbool.h>
#include <stdint.h>

#include "flashmoe.h"
#include "ggml_type.h"
#include "quantize.h"

/* What happened to one output tensor, passed after it is written. */
struct convert_tensor_report {
	uint64_t index, n_tensors;
	const char *name;          /* GGUF name */
	uint32_t n_dims;
	const uint64_t *ne;        /* [n_dims], GGUF order */
	enum ggml_type from, to;
	uint32_t n_sources;        /* HF tensors it was made of (n_expert when stacked) */
};
typedef void (*convert_tensor_fn)(void *user_data, const struct convert_tensor_report *r);

struct convert_params {
	enum ggml_type type;          /* F32, F16, BF16 or Q8_0 */
	int n_threads;                /* >= 1 */
	bool no_mtp;                  /* leave the MTP block out (llama.cpp's --no-mtp) */
	convert_tensor_fn on_tensor;  /* may be NULL */
	quant_progress_fn progress;   /* may be NULL; before each 64 MiB written, and at the end */
	void *user_data;              /* passed to both */
};

struct convert_summary {
	uint64_t n_tensors, n_source_files, out_bytes;
	double seconds;
};

/* Convert the checkpoint in dir into out_path. 0, or a negative code with err
 * naming the file and what is wrong: FM_EUNSUPPORTED (architecture, dtype,
 * features), FM_EFORMAT (malformed JSON/safetensors, missing tensors, wrong
 * shapes), FM_EINVAL (bad type), -errno. No output file on failure. sum may
 * be NULL. */
int convert_hf(const char *dir, const char *out_path, const struct convert_params *p,
	       struct convert_summary *sum, struct fm_error *err);

/* Read and check DIR/config.json only, as convert_hf does first (for
 * tests/fuzz/fuzz_config.c). 0, or a negative code with err naming it. */
int convert_read_config_json(const char *dir, struct fm_error *err);

#endif
