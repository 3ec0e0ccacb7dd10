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

#include "arch/arch.h"

/* Bounds on the hyperparameters, far above any released model (Qwen3.5-397B:
 * 60 layers, 512 experts of which 10 used, hidden 4096, 32 heads of 256) and
 * low enough that every size derived from them (a batch's query rows, the
 * (token, expert) pairs of a batch) stays far inside an int. */
#define HP_MAX_LAYER 4096
#define HP_MAX_EXPERT 65536
#define HP_MAX_EXPERT_USED 1024
#define HP_MAX_DIM (1 << 20)       /* n_embd, head_dim, n_ff_exp, head counts */
#define HP_MAX_FEATURES (1 << 22)  /* n_head * head_dim, DeltaNet channels */

struct hparams {
	const struct arch *arch;
	char arch_name[32];
	int n_vocab, n_embd, n_layer;    /* n_layer: decoder blocks (block_count less MTP) */
	int n_block;                     /* block_count as written (MTP blocks included) */
	int n_head, n_head_kv, head_dim; /* key_length */
	int head_dim_v;                  /* value_length: == head_dim */
	int n_rot;                       /* rotary dims (<= head_dim) */
	int n_expert, n_expert_used, n_ff_exp, n_ff_shexp;
	int n_ctx_train;
	float rms_eps, rope_theta;
	bool norm_topk;                  /* renormalise the top-k weights */
	/* Gated DeltaNet (architectures.md §6.3): nk key heads of dk, nv value
	 * heads of dv = ssm_inner / nv, conv kernel ssm_conv_k */
	int ssm_conv_k, ssm_dk, ssm_nk, ssm_nv, ssm_inner, ssm_dv;
	int full_attn_interval, n_nextn;
	/* interleaved M-RoPE (qwen35moe, llama.cpp's IMROPE): rotary pair s
	 * belongs to stream t, h or w when s % 3 is 0, 1 or 2 and s < 3 x that
	 * stream's section, else to stream e, whose position is 0 for text */
	int rope_sections[4];
	uint8_t layer_kind[HP_MAX_LAYER];   /* enum layer_kind of each layer */
	int16_t state_slot[HP_MAX_LAYER];   /* index among the layers of its kind */
	int n_layer_kind[LAYER_KIND_COUNT];
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

/* One layer's weights; which are bound depends on its kind (arch tables). */
struct layer_weights {
	const float *attn_norm;       /* [n_embd] */
	/* attention layers */
	struct qmat wq;               /* [n_head*head_dim (x2 gated: q | gate per head)][n_embd] */
	struct qmat wk, wv;           /* [n_head_kv*head_dim][n_embd] */
	struct qmat wo;               /* [n_embd][n_head*head_dim] */
	const float *q_norm, *k_norm; /* [head_dim] */
	/* Gated DeltaNet layers */
	struct qmat ssm_qkv;          /* [2*nk*dk + nv*dv][n_embd]: q | k | v */
	struct qmat ssm_z;            /* [nv*dv][n_embd] the output gate */
	struct qmat ssm_ba;           /* [2*nv][n_embd] per key group [b x r | a x r] (qwen3next) */
	struct qmat ssm_beta, ssm_alpha; /* [nv][n_embd] (qwen35moe) */
	const float *ssm_conv;        /* [channels][conv_k] */
	const float *ssm_dt;          /* [nv] dt bias */
	const float *ssm_a;           /* [nv] -exp(A_log) */
	const float *ssm_norm;        /* [dv] */
	struct qmat ssm_out;          /* [n_embd][nv*dv] */
	/* every layer: the MoE */
	const float *ffn_norm;        /* [n_embd] (post_attention_norm in the hybrids) */
	struct qmat router;           /* [n_expert][n_embd] */
	struct qexps gate, up;        /* [n_expert][n_ff_exp][n_embd] */
	struct qexps down;            /* [n_expert][n_embd][n_ff_exp] */
	struct qmat sh_gate, sh_up;   /* [n_ff_shexp][n_embd] shared expert */
	struct qmat sh_down;          /* [n_embd][n_ff_shexp] */
	const float *sh_gate_inp;     /* [n_embd] its sigmoid gate */
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
	/* streaming mode, untied embeddings: token_embd stays on disk and each
	 * token's row is read when embedded (one row per token is all a forward
	 * pass uses; its megabytes go to the expert cache instead) */
	int embd_fd;                  /* -1 when the rows are in memory */
	bool embd_direct;             /* embd_fd is O_DIRECT */
	uint64_t embd_off;            /* file offset of row 0 */
	uint8_t *embd_raw, *embd_buf; /* the read buffer, and it 4096-aligned */
	size_t embd_raw_bytes;
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
/* *row = the bytes of token tok's embedding row (valid until the next call;
 * one caller at a time); 0 or a negative code (a failed read names the file
 * and offset). */
int model_embd_row(struct model *m, int32_t tok, const uint8_t **row, struct fm_error *err);

#endif
