/* convert_internal.h: the state of one conversion, shared by convert.c (the
 * safetensors files, the plan, the tensor data) and convert_config.c
 * (config.json in, the GGUF keys out). Not a public interface. */
#ifndef FM_CONVERT_INTERNAL_H
#define FM_CONVERT_INTERNAL_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include "convert.h"
#include "gguf.h"
#include "model.h"
#include "safetensors.h"
#include "tokenizer.h"

#define CONV_JSON_MAX_BYTES (64u << 20) /* config.json, the shard index */

/* What config.json says beyond the GGUF keys' values (in hp). */
struct hf_config {
	const struct arch *arch;
	struct hparams hp;       /* n_layer: decoder layers; n_block: + the MTP blocks kept */
	int n_ff;                /* intermediate_size, -1 when absent */
	int n_mtp_cfg;           /* mtp_num_hidden_layers, -1 when absent */
	bool tied, layer_types;  /* layer_types listed: attention.recurrent_layers written */
	int bos_id;              /* bos_token_id, -1 if absent */
};

/* One HF tensor under its normalised name. */
struct hf_tensor {
	char *name;
	uint32_t file;
	uint64_t idx;
	bool used, mtp;          /* mtp: of the MTP block (mtp.*) */
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
	enum arch_xform xf;
	uint32_t n_src;
	struct src_ref *src;     /* [n_src]; stacked sources are experts 0.. */
	uint64_t out_bytes;
	/* the V heads grouped -> tiled (ARCH_V_TILED): 0 none, 1 rows, 2 columns;
	 * the axis from v_off on holds nv heads of v_hs */
	int v_axis;
	uint64_t v_off, v_hs;
};

struct pool;
struct kernels;

struct conv {
	const char *dir;
	const struct convert_params *p;
	struct fm_error *err;
	char path[4096];         /* scratch for file names */
	json_object *cfg, *text; /* config.json, and its text_config (or cfg) */
	struct hf_config c;
	struct st_file **files;  /* [n_files] */
	uint32_t n_files;
	struct hf_tensor *hf;    /* [n_hf] sorted by name */
	uint64_t n_hf;
	struct out_tensor *t;    /* [n_t] */
	uint64_t n_t, cap_t, total_bytes;
	struct tok *tok;
	struct gguf_writer *w;
	const struct kernels *k;
	struct pool *pool;
	uint8_t *buf;            /* one output tensor */
	size_t buf_bytes;
	float *rows;             /* [n_threads][2][max_cols] */
	uint64_t max_cols;
};

/* DIR/name, in cv->path (valid until the next call). */
const char *convert_path(struct conv *cv, const char *name);
/* config.json into cv->c, every key checked (convert_config.c). */
int convert_config_read(struct conv *cv);
/* The GGUF keys: general.*, <arch>.* and tokenizer.* (convert_config.c). */
int convert_config_write(struct conv *cv, const char *out_path);

#endif
