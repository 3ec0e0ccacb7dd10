/* quantize.h: requantizing a GGUF model file, as llama.cpp's llama-quantize
 * does (behind `flashmoe quantize`).
 *
 * Owns: the per-tensor type policy and the conversion. Every 2-D+ weight
 * matrix gets the asked type (expert tensors, token_embd and output may each
 * get their own, and name-matching rules override all of these); 1-D tensors
 * (norms, biases), the MoE router (ffn_gate_inp.weight) and the tensors the
 * architecture's table keeps in f32 (AT_KEEP_F32: the DeltaNet's conv
 * kernel) are F32, as llama.cpp keeps them; integer tensors are
 * copied as they are. A row length that is not a whole number of the target's
 * blocks falls back: K-quants (256) -> q8_0 (32) -> f16. A tensor whose type
 * does not change is copied byte for byte; any other goes row by row through
 * the reference kernels: source -> f32 (dequantize) -> target (quantize).
 *
 * Streams one tensor at a time: the input is mmap'd, the output written
 * through gguf_writer (path.tmp, renamed when complete), and the only large
 * buffer is one output tensor. Metadata is copied key by key, in order, with
 * general.file_type (llama.cpp's LLAMA_FTYPE of the main type) and
 * general.quantization_version (2) set as llama-quantize sets them.
 * Does not own: printing (the caller gets a report per tensor).
 */
#ifndef FM_QUANTIZE_H
#define FM_QUANTIZE_H

#include <regex.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include "flashmoe.h"
#include "ggml_type.h"
#include "kernels/kernels.h"

struct arch;

/* What happened to one tensor, passed to quant_tensor_fn after it is written. */
struct quant_tensor_report {
	uint64_t index, n_tensors;  /* this is tensor index of n_tensors */
	const char *name;
	uint32_t n_dims;
	const uint64_t *ne;         /* [n_dims] */
	enum ggml_type from, to;
	enum ggml_type wanted;      /* the policy's type; != to when rows did not fit */
	uint64_t in_bytes, out_bytes;
	bool copied;                /* bytes copied unchanged (from == to) */
};
typedef void (*quant_tensor_fn)(void *user_data, const struct quant_tensor_report *r);

/* Where a long write is, for a progress line: passed before each tensor and
 * each 64 MiB of its output, and once at the end (name NULL, done == total). */
struct quant_progress {
	const char *name;           /* the tensor being written */
	uint64_t index, n_tensors;
	uint64_t done_bytes, total_bytes; /* output tensor bytes */
	double elapsed_s;           /* since the first tensor */
};
typedef void (*quant_progress_fn)(void *user_data, const struct quant_progress *p);

/* A progress line's throttle: zero-initialise one per write. */
struct quant_meter {
	double last_s;
};
/* Whether a line is due (at most 8 a second, always the last) and its text
 * ("[ 12/403] blk.3.ffn_up_exps.weight  45.2%  312.4 MB/s  ETA 0:42") in buf. */
bool quant_meter_line(struct quant_meter *m, const struct quant_progress *p, char *buf,
		      size_t size);

/* A per-tensor rule (llama-quantize's --tensor-type): weight matrices whose
 * name matches re (POSIX extended, searched anywhere in the name) get type. */
struct quant_override {
	regex_t re;
	enum ggml_type type;
};

struct quant_params {
	enum ggml_type type;        /* 2-D+ weight matrices */
	enum ggml_type expert_type; /* ffn_*_exps tensors */
	enum ggml_type embd_type;   /* token_embd.weight */
	enum ggml_type output_type; /* output.weight */
	const struct quant_override *overrides; /* the first match wins over all of the above */
	int n_overrides;
	const struct arch *arch;    /* the file's architecture table, or NULL: its AT_KEEP_F32
				     * tensors (the conv kernel) stay f32 as the router does;
				     * quant_file sets it from general.architecture */
	int n_threads;              /* >= 1 */
	quant_tensor_fn on_tensor;  /* may be NULL; called from the calling thread */
	quant_progress_fn progress; /* may be NULL; likewise */
	void *user_data;            /* passed to both */
};

struct quant_summary {
	uint64_t n_tensors, n_converted, n_fallback;
	uint64_t in_bytes, out_bytes; /* file sizes */
	double seconds;
};

/* All four types = t, n_threads = 2, no callback. */
void quant_params_default(struct quant_params *p, enum ggml_type t);
/* Whether t can be written (the reference kernels can quantize to it). */
bool quant_type_writable(enum ggml_type t);
/* llama.cpp's LLAMA_FTYPE for a file mostly of type t (uniform K-quants are
 * the _S mixes), or -1. */
int quant_llama_ftype(enum ggml_type t);
/* The type tensor (name, ne[n_dims]) of type src gets; *wanted (may be NULL)
 * is set to the policy's type before the row-length fallback. */
enum ggml_type quant_choose_type(const char *name, uint32_t n_dims, const uint64_t *ne,
				 enum ggml_type src, const struct quant_params *p,
				 enum ggml_type *wanted);
/* Rows [task * rows_per_task, ...) of src converted into dst through one f32
 * row (rowbuf + thread * rowbuf_stride): a pool_run task, shared with convert. */
struct quant_rows_job {
	dequantize_row_fn dequantize;
	quantize_row_fn quantize;
	const uint8_t *src;      /* [n_rows][src_row_bytes] */
	uint8_t *dst;            /* [n_rows][dst_row_bytes] */
	size_t src_row_bytes, dst_row_bytes;
	uint64_t n_cols, n_rows, rows_per_task;
	float *rowbuf;           /* [n_threads][rowbuf_stride >= n_cols] */
	size_t rowbuf_stride;
};
void quant_rows_task(void *arg, int task, int thread);
/* madvise over the pages under [p, p + n) of a read-only file mapping (dropped
 * pages read back the same); errors are ignored. */
void quant_advise(const void *p, uint64_t n, int advice);

/* Requantize in_path into out_path (written atomically). 0, or a negative
 * code with err naming the file and tensor: FM_EINVAL for a bad type or
 * out_path naming the input, FM_EUNSUPPORTED for a source type the kernels
 * cannot read, -errno / FM_EFORMAT from reading or writing. sum may be NULL. */
int quant_file(const char *in_path, const char *out_path, const struct quant_params *p,
	       struct quant_summary *sum, struct fm_error *err);

#endif
