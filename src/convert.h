/* convert.h: a Hugging Face Qwen3-MoE checkpoint directory -> GGUF (arch
 * qwen3moe), as llama.cpp's convert_hf_to_gguf.py writes it (behind
 * `flashmoe convert`).
 *
 * Input: DIR/config.json (architectures ["Qwen3MoeForCausalLM"], model_type
 * "qwen3_moe"), DIR/model.safetensors or the shards that
 * DIR/model.safetensors.index.json names, DIR/tokenizer.json (+
 * tokenizer_config.json). Output: the qwen3moe.* hyperparameters, the
 * tokenizer.* keys (gpt2 / qwen2; the vocabulary padded to vocab_size with
 * [PAD<id>] unused tokens, as llama.cpp pads), and the tensors under their
 * GGUF names; the per-expert matrices mlp.experts.E.{gate,up,down}_proj of a
 * layer are stacked into one ffn_{gate,up,down}_exps tensor, GGUF ne
 * [in, out, n_expert]. q/k are not permuted (llama.cpp permutes only
 * llama-family checkpoints).
 *
 * Type policy: quantize.h's (quant_choose_type): 2-D+ weights in the asked
 * type, norms and the router F32, rows that are not whole blocks fall back.
 * Streams one output tensor at a time; written to path.tmp and renamed.
 * Anything unexpected (other architectures, features qwen3moe lacks, missing
 * or unused tensors, wrong shapes, other dtypes) is refused before the
 * output file is created, with an error naming the file and what is wrong.
 */
#ifndef FM_CONVERT_H
#define FM_CONVERT_H

#include <stdbool.h>
#include <stdint.h>

#include "flashmoe.h"
#include "ggml_type.h"

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
	convert_tensor_fn on_tensor;  /* may be NULL */
	void *user_data;
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
