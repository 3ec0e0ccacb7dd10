/* arch.h: an architecture as data (DESIGN.md "arch/"). Each supported
 * architecture is one `struct arch` in src/arch/<family>.c: its GGUF keys, its
 * tensors per layer kind (GGUF name, shape in terms of the hyperparameters,
 * where the weight goes, how gen-tiny fills it, the Hugging Face name and
 * the transform convert applies), which layer is which kind, and a short
 * layer function composing blocks (block_attn.c, block_gdn.c, block_moe.c).
 * The loader (model.c), gen-tiny, convert, quantize and info read these
 * tables; nothing else in the engine names a tensor.
 *
 * Adding an architecture: a new src/arch/<family>.c with its tables and layer
 * function, its entry in arch_all (arch.c), a reference in tests/reference,
 * and tests. */
#ifndef FM_ARCH_H
#define FM_ARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

struct hparams;
struct gguf_file;
struct fwd;

/* What a layer's token mixer is; its state follows (KV rows or recurrent). */
enum layer_kind { LAYER_ATTN, LAYER_GDN, LAYER_KIND_COUNT };
#define LAYER_MASK(k) (1u << (k))
#define LAYERS_ALL (LAYER_MASK(LAYER_ATTN) | LAYER_MASK(LAYER_GDN))

/* A hyperparameter key, "<arch>.<suffix>", read into the field at off of
 * struct hparams (int for U32, float for F32, bool for BOOL). Absent and not
 * required: dflt, or (dflt_off >= 0) the value of another field read before,
 * or (dflt_div_off >= 0 too) that field divided by the one at dflt_div_off.
 * A u32 of 0 is out of range unless zero_ok (a count that may be none). */
enum arch_key_type {
	AK_U32, AK_F32, AK_BOOL,
	AK_I32X4,  /* int[4] from an array of 4 integers, or one integer for all 4 */
};
struct arch_key {
	const char *suffix;
	enum arch_key_type type;
	size_t off;
	bool required;
	double dflt;
	ptrdiff_t dflt_off, dflt_div_off;
	bool zero_ok;
};

/* Dimensions, in terms of the hyperparameters. */
enum arch_dim {
	DIM_NONE, DIM_1, DIM_EMBD, DIM_VOCAB, DIM_HEAD, DIM_Q, DIM_QG, DIM_KV, DIM_EXPERT,
	DIM_FF_EXP, DIM_FF_SHEXP, DIM_SSM_CONV_K, DIM_SSM_CHANNELS, DIM_SSM_V, DIM_SSM_NV,
	DIM_SSM_2NV, DIM_SSM_DV,
	DIM_EMBD_X2,   /* 2 x n_embd: the MTP block's eh_proj input (convert only) */
};


/* Where a tensor's weight goes. */
enum arch_slot { SLOT_MAT, SLOT_VEC, SLOT_EXPS };

/* How gen-tiny fills a tensor (std 1/sqrt(ne0) for linear maps). */
enum arch_init { INIT_LINEAR, INIT_EMBED, INIT_NORM, INIT_SSM_A, INIT_SSM_DT, INIT_CONV };

/* What convert does to the Hugging Face tensor(s) to make the GGUF one, as
 * llama.cpp's convert_hf_to_gguf.py does (conversion/qwen.py). Every one
 * keeps the row length: an output row is one source row, its columns
 * permuted or each element mapped. "V heads" are the DeltaNet's value heads:
 * HF stores them grouped by key head (head j reads key head j / (nv/nk)); in
 * an ARCH_V_TILED architecture the GGUF holds them tiled (j reads j % nk), so
 * the tensors marked V are reordered there and kept in the other. */
enum arch_xform {
	XF_COPY,        /* as is (ggml ne = the reversed torch shape) */
	XF_STACK,       /* per-expert tensors "...experts.%d..." stacked on a new outer dim */
	XF_NORM_PLUS1,  /* zero-centred RMSNorm weight: w + 1 */
	XF_SPLIT_GATE,  /* fused experts.gate_up_proj [E][2 ff][n] -> rows [0, ff) of each */
	XF_SPLIT_UP,    /* ... rows [ff, 2 ff) of each */
	XF_NEG_EXP,     /* A_log [nv] -> -exp(A_log) (V) */
	XF_CONV,        /* conv1d [C][1][k] squeezed to [C][k] (V: the channels after q, k) */
	XF_VROWS,       /* rows are V heads (in_proj_z/b/a; a 1-D [nv] vector: its elements) */
	XF_VCOLS,       /* columns are V heads (out_proj) */
	XF_QKV,         /* in_proj_qkv rows [q | k | v] (V: the v rows) */
	XF_QKVZ_QKV,    /* qwen3next in_proj_qkvz, per key head [q k v z]: -> [all q | all k | all v] */
	XF_QKVZ_Z,      /* ... -> [all z] */
};

#define AT_OPTIONAL 1u   /* may be absent (output.weight: tied embeddings) */
#define AT_KEEP_F32 2u   /* never quantized (routers, conv kernels, 1-D vectors) */
#define AT_EXPERT 4u     /* a routed-expert tensor: streamed, --expert-type */

/* kinds of a row only the multi-token-prediction block has (convert only:
 * the loader and gen-tiny bind no MTP block, so they never match it) */
#define LAYERS_MTP 0x80u

struct arch_tensor {
	const char *name;        /* GGUF name; "%d" is the layer (absent: global) */
	enum arch_slot slot;
	size_t off;              /* offsetof the field in struct layer_weights (or
				  * struct model_weights for globals) */
	uint8_t kinds;           /* LAYER_MASK()s of the layers that have it */
	uint8_t flags;           /* AT_* */
	uint8_t n_dims;
	enum arch_dim ne[3];     /* ggml order: ne[0] contiguous */
	enum arch_init init;
	const char *hf_name;     /* Hugging Face name(s), "%d" layer (then expert) */
	enum arch_xform xform;
	const char *hf_alt;      /* the same weights in another layout (fused experts), */
	enum arch_xform xform_alt; /* read when hf_name's first tensor is absent */
};

#define ARCH_GATED_ATTN 1u   /* attn_q holds [q | gate] per head; out *= sigmoid(gate) */
#define ARCH_SHARED_EXPERT 2u /* a dense shared expert with a sigmoid gate */
#define ARCH_V_TILED 4u      /* DeltaNet value head j reads key head j % nk */
#define ARCH_ROPE_SECTIONS 8u /* llama.cpp requires rope.dimension_sections (IMROPE) */

/* gen-tiny's defaults for the hyperparameters an architecture adds. */
struct arch_tiny {
	int n_ff_shexp, ssm_conv_k, ssm_dk, ssm_nk, ssm_nv, ssm_dv, full_attn_interval;
	int rot_div;             /* rotary dims = head_dim / rot_div */
};

struct arch {
	const char *name;        /* general.architecture */
	const char *hf_model_type; /* config.json "model_type" convert accepts (+ "_text") */
	const char *const *hf_archs; /* its "architectures" classes, NULL-terminated */
	float hf_rotary_factor;  /* partial_rotary_factor when config.json has none */
	bool hf_norm_topk;       /* norm_topk_prob when config.json has none */
	unsigned flags;          /* ARCH_* */
	const struct arch_key *keys;
	int n_keys;
	const struct arch_tensor *tensors;
	int n_tensors;
	/* Fill hp->layer_kind[] (and anything derived) once the keys are read. */
	int (*layer_kinds)(struct hparams *hp, const struct gguf_file *f, const char *path,
			   struct fm_error *err);
	/* One layer over a batch of n tokens (of one or several sequences):
	 * h += mixer(norm(h)); h += ffn(norm(h)). */
	int (*layer)(struct fwd *f, int il, int n, struct fm_error *err);
	struct arch_tiny tiny;
};

/* The architecture named `name` (len bytes), or NULL. */
const struct arch *arch_find(const char *name, size_t len);
/* "qwen3moe, qwen3next, qwen35moe", for messages. */
const char *arch_names(void);
/* The value of dim d for the hyperparameters hp. */
uint64_t arch_dim_value(const struct hparams *hp, enum arch_dim d);
/* The table entry whose GGUF name matches `name` (any layer), or NULL. */
const struct arch_tensor *arch_tensor_for(const struct arch *a, const char *name, int *layer);

extern const struct arch arch_qwen3moe, arch_qwen3next, arch_qwen35moe;

#endif
