/* model.h: hyperparameters, the architecture table, and binding a GGUF file's
 * tensors to the weights of the forward pass.
 *
 * Owns: reading `<arch>.*` keys (architectures.md §9.2), checking every
 * dimension against the tensors' shapes (§9.3), and the weight structs. Does
 * not own the math (forward.c) or expert streaming (experts.c). */
#ifndef FM_MODEL_H
#define FM_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "gguf.h"
#include "matmul.h"
#include "util.h"

enum model_arch { ARCH_QWEN3MOE };

struct hparams {
	enum model_arch arch;
	char arch_name[32];
	int n_vocab, n_embd, n_layer;
	int n_head, n_head_kv, head_dim; /* key_length == value_length */
	int n_rot;                       /* rotary dims (<= head_dim) */
	int n_expert, n_expert_used, n_ff_exp;
	int n_ctx_train;
	float rms_eps, rope_theta;
	bool norm_topk;                  /* renormalise the top-k weights */
};

/* A 3-D expert tensor {n_cols, n_rows, n_expert}: expert e's matrix is the
 * contiguous byte range [e * expert_bytes, (e+1) * expert_bytes). */
struct qexps {
	enum ggml_type type;
	int n_cols, n_rows;
	size_t row_bytes, expert_bytes;
	const uint8_t *data;   /* [n_expert][n_rows][row_bytes] (mapping) */
	uint64_t file_offset;  /* absolute offset of expert 0 */
};

struct layer_weights {
	const float *attn_norm;       /* [n_embd] */
	struct qmat wq;               /* [n_head*head_dim][n_embd] */
	struct qmat wk, wv;           /* [n_head_kv*head_dim][n_embd] */
	struct qmat wo;               /* [n_embd][n_head*head_dim] */
	const float *q_norm, *k_norm; /* [head_dim] */
	const float *ffn_norm;        /* [n_embd] */
	struct qmat router;           /* [n_expert][n_embd] */
	struct qexps gate, up;        /* [n_expert][n_ff_exp][n_embd] */
	struct qexps down;            /* [n_expert][n_embd][n_ff_exp] */
};

struct model_weights {
	struct qmat tok_embd;         /* [n_vocab][n_embd] */
	const float *output_norm;     /* [n_embd] */
	struct qmat output;           /* [n_vocab][n_embd]; tok_embd when tied */
	struct layer_weights *layers; /* [n_layer] */
};

struct model {
	struct gguf_file *file;
	struct hparams hp;
	struct model_weights w;
	float *f32_copies;            /* norm vectors converted to f32 */
	size_t f32_copies_bytes;
	uint64_t bytes_expert, bytes_dense;
	struct fm_mem *mem;
	struct { uint8_t *p; size_t bytes; } *copies; /* dense tensors copied out */
	int n_copies;
	uint64_t dense_copied;
};

/* Read hyperparameters and bind tensors of an open GGUF file. n_expert_used
 * overrides the model's value when > 0. Returns 0 or a negative code. */
int model_load(struct model *m, struct gguf_file *f, int n_expert_used, struct fm_mem *mem,
	       struct fm_error *err);
void model_unload(struct model *m);
/* Streaming mode: copy the dense matrices out of the mapping into counted
 * memory (pread + POSIX_FADV_DONTNEED), so the page cache holds no second,
 * uncounted copy and the mapping is never touched again for them. */
int model_copy_dense(struct model *m, struct fm_error *err);

#endif
