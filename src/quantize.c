/* quantize.c: requantizing a GGUF model file (the policy and contract are in
 * quantize.h). Three steps: copy the metadata into a gguf_writer, plan every
 * tensor's type (everything is checked before the first byte is written),
 * then convert and write one tensor at a time, rows split over a pool.
 *
 * The type policy follows llama.cpp's llama-quantize (src/llama-quant.cpp):
 * only tensors with 2+ dims (trailing 1s ignored, as ggml_n_dims does) are
 * quantized, the router stays F32, and rows that do not fit a type's block
 * fall back to a smaller block.
 */
#include "quantize.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arch/arch.h"
#include "gguf.h"
#include "io.h"
#include "kernels/kernels.h"
#include "pool.h"
#include "util.h"

#define QUANT_VERSION 2     /* ggml's GGML_QNT_VERSION, written as llama-quantize does */
#define MAX_ROW_TASKS 1024  /* pool tasks per tensor: enough to balance 2-64 threads */
#define PROGRESS_BYTES (64u << 20) /* output bytes between progress reports */

/* One tensor's plan. */
struct quant_plan {
	enum ggml_type to, wanted;
	uint64_t out_bytes;
};

/* The state of one quant_file call. */
struct quant_run {
	const struct quant_params *p;
	const struct kernels *k;     /* the reference table */
	const char *in_path, *out_path;
	struct gguf_file *in;
	struct gguf_writer *w;
	struct quant_plan *plan;     /* [n_tensors] */
	uint64_t n_tensors;
	uint8_t *buf;                /* [buf_bytes]: one converted tensor */
	size_t buf_bytes;
	float *rowbuf;               /* [n_threads][max_cols]: one f32 row per thread */
	uint64_t max_cols;
	struct pool *pool;
	uint64_t total_bytes, done_bytes; /* output tensor bytes, for progress */
	double t0;
};

void quant_params_default(struct quant_params *p, enum ggml_type t)
{
	*p = (struct quant_params){ .type = t, .expert_type = t, .embd_type = t,
				    .output_type = t, .n_threads = 2 };
}

bool quant_type_writable(enum ggml_type t)
{
	kernels_init();
	return (unsigned)t < GGML_TYPE_COUNT && ggml_type_get(t) &&
	       kernels_get(KERNEL_ISA_REF)->fmt[t].quantize;
}

/* Values of llama.h's enum llama_ftype. */
int quant_llama_ftype(enum ggml_type t)
{
	switch (t) {
	case GGML_TYPE_F32: return 0;   /* LLAMA_FTYPE_ALL_F32 */
	case GGML_TYPE_F16: return 1;   /* MOSTLY_F16 */
	case GGML_TYPE_Q4_0: return 2;  /* MOSTLY_Q4_0 */
	case GGML_TYPE_Q8_0: return 7;  /* MOSTLY_Q8_0 */
	case GGML_TYPE_Q2_K: return 10; /* MOSTLY_Q2_K */
	case GGML_TYPE_Q3_K: return 11; /* MOSTLY_Q3_K_S */
	case GGML_TYPE_Q4_K: return 14; /* MOSTLY_Q4_K_S */
	case GGML_TYPE_Q5_K: return 16; /* MOSTLY_Q5_K_S */
	case GGML_TYPE_Q6_K: return 18; /* MOSTLY_Q6_K */
	case GGML_TYPE_BF16: return 32; /* MOSTLY_BF16 */
	default: return -1;
	}
}

/* ---- progress ---- */

bool quant_meter_line(struct quant_meter *m, const struct quant_progress *p, char *buf,
		      size_t size)
{
	bool last = p->done_bytes >= p->total_bytes && !p->name;
	if (!last && m->last_s > 0 && p->elapsed_s - m->last_s < 0.125)
		return false;
	m->last_s = p->elapsed_s > 0 ? p->elapsed_s : 1e-9;
	double mb = p->done_bytes / 1e6, rate = p->elapsed_s > 0 ? mb / p->elapsed_s : 0;
	double pct = p->total_bytes ? 100.0 * (double)p->done_bytes / (double)p->total_bytes : 100;
	char eta[32] = "--:--";
	if (rate > 0) {
		uint64_t s = (uint64_t)((double)(p->total_bytes - p->done_bytes) / 1e6 / rate + 0.5);
		if (s >= 3600)
			snprintf(eta, sizeof(eta), "%llu:%02llu:%02llu", (unsigned long long)(s / 3600),
				 (unsigned long long)(s / 60 % 60), (unsigned long long)(s % 60));
		else
			snprintf(eta, sizeof(eta), "%llu:%02llu", (unsigned long long)(s / 60),
				 (unsigned long long)(s % 60));
	}
	snprintf(buf, size, "[%4llu/%4llu] %-36.36s %5.1f%%  %7.1f MB/s  ETA %s",
		 (unsigned long long)(p->index + !last), (unsigned long long)p->n_tensors,
		 p->name ? p->name : "done", pct, rate, eta);
	return true;
}

/* ---- the type policy ---- */

static bool is_int_type(uint32_t t)
{
	return t == GGML_TYPE_I8 || t == GGML_TYPE_I16 || t == GGML_TYPE_I32 ||
	       t == GGML_TYPE_I64;
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && !strcmp(s + n - m, suffix);
}

/* Dims with trailing 1s dropped: a [4096, 1] tensor is 1-D (ggml_n_dims). */
static uint32_t real_dims(uint32_t n_dims, const uint64_t *ne)
{
	while (n_dims > 1 && ne[n_dims - 1] == 1)
		n_dims--;
	return n_dims;
}

/* want if rows of n_cols are whole blocks of it, else q8_0, else f16. */
static enum ggml_type fit_type(enum ggml_type want, uint64_t n_cols)
{
	if (ggml_row_bytes(want, n_cols))
		return want;
	if (ggml_row_bytes(GGML_TYPE_Q8_0, n_cols))
		return GGML_TYPE_Q8_0;
	return GGML_TYPE_F16;
}

/* The architecture's table keeps tensor name in f32 (the conv kernel, which
 * llama-quantize leaves as it is too). */
static bool keep_f32(const struct arch *a, const char *name)
{
	const struct arch_tensor *t = a ? arch_tensor_for(a, name, NULL) : NULL;
	return t && (t->flags & AT_KEEP_F32);
}

enum ggml_type quant_choose_type(const char *name, uint32_t n_dims, const uint64_t *ne,
				 enum ggml_type src, const struct quant_params *p,
				 enum ggml_type *wanted)
{
	enum ggml_type want = p->type;
	bool empty = false;
	for (uint32_t d = 0; d < n_dims; d++)
		empty = empty || ne[d] == 0;
	if (is_int_type(src) || empty)
		want = src; /* not weights; nothing to convert */
	else if (real_dims(n_dims, ne) < 2 || has_suffix(name, "ffn_gate_inp.weight") ||
		 keep_f32(p->arch, name))
		want = GGML_TYPE_F32;
	else if (strstr(name, "_exps."))
		want = p->expert_type;
	else if (!strcmp(name, "token_embd.weight"))
		want = p->embd_type;
	else if (!strcmp(name, "output.weight"))
		want = p->output_type;
	if (!is_int_type(src) && !empty && real_dims(n_dims, ne) >= 2) {
		for (int i = 0; i < p->n_overrides; i++) {
			if (regexec(&p->overrides[i].re, name, 0, NULL, 0) == 0) {
				want = p->overrides[i].type;
				break;
			}
		}
	}
	if (wanted)
		*wanted = want;
	return want == src ? src : fit_type(want, ne[0]);
}

/* ---- metadata ---- */

/* A scalar key, value bytes unchanged (little-endian host: the low bytes of a
 * widened integer are the narrow value). */
static int copy_scalar(struct gguf_writer *w, const struct gguf_file *f, const char *key,
		       enum gguf_type t, struct fm_error *err)
{
	uint8_t val[8] = { 0 };
	uint64_t u;
	int64_t s;
	float x;
	double d;
	bool b;
	int rc;
	switch (t) {
	case GGUF_TYPE_UINT8: case GGUF_TYPE_UINT16: case GGUF_TYPE_UINT32: case GGUF_TYPE_UINT64:
		if (!(rc = gguf_get_u64(f, key, &u, err)))
			memcpy(val, &u, 8);
		break;
	case GGUF_TYPE_INT8: case GGUF_TYPE_INT16: case GGUF_TYPE_INT32: case GGUF_TYPE_INT64:
		if (!(rc = gguf_get_i64(f, key, &s, err)))
			memcpy(val, &s, 8);
		break;
	case GGUF_TYPE_FLOAT32:
		if (!(rc = gguf_get_f32(f, key, &x, err)))
			memcpy(val, &x, 4);
		break;
	case GGUF_TYPE_FLOAT64:
		if (!(rc = gguf_get_f64(f, key, &d, err)))
			memcpy(val, &d, 8);
		break;
	case GGUF_TYPE_BOOL:
		if (!(rc = gguf_get_bool(f, key, &b, err)))
			val[0] = b;
		break;
	default:
		rc = FM_EUNSUPPORTED;
	}
	return rc ? rc : gguf_writer_set_scalar(w, key, t, val);
}

static int copy_string(struct gguf_writer *w, const struct gguf_file *f, const char *key,
		       struct fm_error *err)
{
	struct gguf_str s;
	int rc = gguf_get_str(f, key, &s, err);
	if (rc)
		return rc;
	/* gguf_writer_set_str takes a C string */
	if (memchr(s.ptr, 0, s.len))
		return fm_err(err, FM_EUNSUPPORTED, gguf_path(f), FM_NO_OFFSET,
			      "key '%s': a string with a NUL byte cannot be copied", key);
	char *z = strndup(s.ptr, s.len);
	if (!z)
		return -ENOMEM;
	rc = gguf_writer_set_str(w, key, z);
	free(z);
	return rc;
}

static int copy_array(struct gguf_writer *w, const struct gguf_file *f, uint64_t i)
{
	const char *key = gguf_kv_key(f, i);
	enum gguf_type at = gguf_kv_arr_type(f, i);
	uint64_t n = gguf_kv_arr_n(f, i);
	if (at != GGUF_TYPE_STRING)
		return gguf_writer_set_arr(w, key, at, gguf_kv_arr_data(f, i), n);
	if (n > SIZE_MAX / sizeof(uint64_t))
		return FM_ERANGE;
	const char **strs = malloc(n ? n * sizeof(*strs) : 1);
	uint64_t *lens = malloc(n ? n * sizeof(*lens) : 1);
	int rc = -ENOMEM;
	if (strs && lens) {
		for (uint64_t j = 0; j < n; j++) {
			struct gguf_str s = gguf_kv_arr_str(f, i, j);
			strs[j] = s.len ? s.ptr : "";
			lens[j] = s.len;
		}
		rc = gguf_writer_set_arr_str(w, key, strs, lens, n);
	}
	free(lens);
	free(strs);
	return rc;
}

/* Every key in order, then general.file_type and general.quantization_version. */
static int copy_metadata(struct quant_run *r, struct fm_error *err)
{
	const struct gguf_file *f = r->in;
	int rc = 0;
	for (uint64_t i = 0; i < gguf_n_kv(f) && !rc; i++) {
		const char *key = gguf_kv_key(f, i);
		enum gguf_type t = gguf_kv_type(f, i);
		if (!strcmp(key, "general.alignment") && t != GGUF_TYPE_UINT32)
			continue; /* the writer writes it (as u32) from its alignment */
		if (t == GGUF_TYPE_ARRAY)
			rc = copy_array(r->w, f, i);
		else if (t == GGUF_TYPE_STRING)
			rc = copy_string(r->w, f, key, err);
		else
			rc = copy_scalar(r->w, f, key, t, err);
		if (rc && !err->msg[0])
			fm_err(err, rc, r->in_path, FM_NO_OFFSET, "cannot copy key '%s' (type %s)", key,
			       gguf_type_name(t));
	}
	int ftype = quant_llama_ftype(r->p->type);
	if (!rc && ftype >= 0)
		rc = gguf_writer_set_u32(r->w, "general.file_type", (uint32_t)ftype);
	if (!rc)
		rc = gguf_writer_set_u32(r->w, "general.quantization_version", QUANT_VERSION);
	if (rc && !err->msg[0])
		fm_err(err, rc, r->out_path, FM_NO_OFFSET, "cannot set the output's metadata");
	return rc;
}

/* ---- the plan ---- */

static const char *type_name(uint32_t t)
{
	const struct ggml_type_traits *tr = ggml_type_get(t);
	return tr ? tr->name : "?";
}

/* Choose tensor i's type, declare it to the writer, and size the buffers. */
static int plan_tensor(struct quant_run *r, uint64_t i, struct fm_error *err)
{
	const struct gguf_tensor_info *t = gguf_tensor(r->in, i);
	struct quant_plan *pl = &r->plan[i];
	pl->to = quant_choose_type(t->name_z, t->n_dims, t->ne, (enum ggml_type)t->type, r->p,
				   &pl->wanted);
	int64_t id = gguf_writer_add_tensor(r->w, t->name_z, pl->to, t->n_dims, t->ne);
	if (id < 0)
		return fm_err(err, (int)id, r->out_path, FM_NO_OFFSET,
			      "tensor '%s': cannot declare it as %s [%llu, %llu, %llu, %llu]",
			      t->name_z, type_name(pl->to), (unsigned long long)t->ne[0],
			      (unsigned long long)t->ne[1], (unsigned long long)t->ne[2],
			      (unsigned long long)t->ne[3]);
	uint64_t n_rows = t->ne[1] * t->ne[2] * t->ne[3]; /* the reader checked the product */
	if (pl->to == t->type) {
		pl->out_bytes = t->size_bytes;
		r->total_bytes += pl->out_bytes;
		return 0;
	}
	if (!r->k->fmt[t->type].dequantize)
		return fm_err(err, FM_EUNSUPPORTED, r->in_path, t->offset,
			      "tensor '%s': cannot read type %s (no dequantize kernel)", t->name_z,
			      type_name(t->type));
	if (!fm_mul_ok(ggml_row_bytes(pl->to, t->ne[0]), n_rows, &pl->out_bytes) ||
	    pl->out_bytes > SIZE_MAX)
		return fm_err(err, FM_ERANGE, r->in_path, t->offset, "tensor '%s': too large",
			      t->name_z);
	r->total_bytes += pl->out_bytes;
	if (pl->out_bytes > r->buf_bytes)
		r->buf_bytes = (size_t)pl->out_bytes;
	if (t->ne[0] > r->max_cols)
		r->max_cols = t->ne[0];
	return 0;
}

static int plan_all(struct quant_run *r, struct fm_error *err)
{
	r->n_tensors = gguf_n_tensors(r->in);
	r->plan = calloc(r->n_tensors ? r->n_tensors : 1, sizeof(*r->plan));
	if (!r->plan)
		return fm_err(err, FM_ENOMEM, r->out_path, FM_NO_OFFSET, "out of memory");
	int rc = 0;
	for (uint64_t i = 0; i < r->n_tensors && !rc; i++)
		rc = plan_tensor(r, i, err);
	if (rc)
		return rc;
	int nth = pool_n_threads(r->pool);
	if (r->max_cols > SIZE_MAX / sizeof(float) / (size_t)nth)
		return fm_err(err, FM_ERANGE, r->in_path, FM_NO_OFFSET, "rows too long");
	r->buf = malloc(r->buf_bytes ? r->buf_bytes : 1);
	r->rowbuf = malloc(r->max_cols ? (size_t)nth * r->max_cols * sizeof(float) : 1);
	if (!r->buf || !r->rowbuf)
		return fm_err(err, FM_ENOMEM, r->out_path, FM_NO_OFFSET,
			      "no memory for a %zu-byte tensor buffer", r->buf_bytes);
	return 0;
}

/* ---- conversion ---- */

void quant_rows_task(void *arg, int task, int thread)
{
	const struct quant_rows_job *j = arg;
	float *x = j->rowbuf + (size_t)thread * j->rowbuf_stride;
	uint64_t r0 = (uint64_t)task * j->rows_per_task;
	uint64_t r1 = r0 + j->rows_per_task < j->n_rows ? r0 + j->rows_per_task : j->n_rows;
	for (uint64_t r = r0; r < r1; r++) {
		j->dequantize(j->src + r * j->src_row_bytes, x, j->n_cols);
		j->quantize(x, j->dst + r * j->dst_row_bytes, j->n_cols);
	}
}

void quant_advise(const void *p, uint64_t n, int advice)
{
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t a = (uintptr_t)p / page * page;
	if (n)
		madvise((void *)a, (size_t)((uintptr_t)p - a + n), advice);
}

static void progress(struct quant_run *r, const char *name, uint64_t i, uint64_t done)
{
	if (!r->p->progress)
		return;
	struct quant_progress pr = { .name = name, .index = i, .n_tensors = r->n_tensors,
				     .done_bytes = done, .total_bytes = r->total_bytes,
				     .elapsed_s = fm_now_s() - r->t0 };
	r->p->progress(r->p->user_data, &pr);
}

/* Tensor i converted row by row into r->buf, PROGRESS_BYTES of output at a
 * time (each row alone: the split does not change a byte), then written. */
static int convert_tensor(struct quant_run *r, uint64_t i, const uint8_t *src,
			  struct fm_error *err)
{
	const struct gguf_tensor_info *t = gguf_tensor(r->in, i);
	const struct quant_plan *pl = &r->plan[i];
	struct quant_rows_job j = {
		.dequantize = r->k->fmt[t->type].dequantize,
		.quantize = r->k->fmt[pl->to].quantize,
		.src_row_bytes = ggml_row_bytes(t->type, t->ne[0]),
		.dst_row_bytes = ggml_row_bytes(pl->to, t->ne[0]),
		.n_cols = t->ne[0],
		.rowbuf = r->rowbuf,
		.rowbuf_stride = t->ne[0],
	};
	uint64_t n_rows = t->ne[1] * t->ne[2] * t->ne[3];
	uint64_t chunk = PROGRESS_BYTES / j.dst_row_bytes ? PROGRESS_BYTES / j.dst_row_bytes : 1;
	for (uint64_t r0 = 0; r0 < n_rows; r0 += chunk) {
		progress(r, t->name_z, i, r->done_bytes + r0 * j.dst_row_bytes);
		j.src = src + r0 * j.src_row_bytes;
		j.dst = r->buf + r0 * j.dst_row_bytes;
		j.n_rows = n_rows - r0 < chunk ? n_rows - r0 : chunk;
		uint64_t n_tasks = j.n_rows < MAX_ROW_TASKS ? j.n_rows : MAX_ROW_TASKS;
		j.rows_per_task = (j.n_rows + n_tasks - 1) / n_tasks;
		pool_run(r->pool, quant_rows_task, &j, (int)n_tasks);
	}
	return gguf_writer_write_tensor(r->w, i, r->buf, (size_t)pl->out_bytes, err);
}

/* Tensor i: its bytes as they are, or converted into r->buf; then written. */
static int write_tensor(struct quant_run *r, uint64_t i, struct fm_error *err)
{
	const struct gguf_tensor_info *t = gguf_tensor(r->in, i);
	const struct quant_plan *pl = &r->plan[i];
	const uint8_t *src = gguf_tensor_data(r->in, i);
	quant_advise(src, t->size_bytes, MADV_SEQUENTIAL);
	if (pl->to == t->type)
		progress(r, t->name_z, i, r->done_bytes);
	int rc = pl->to == t->type ? gguf_writer_write_tensor(r->w, i, src, (size_t)t->size_bytes, err)
				   : convert_tensor(r, i, src, err);
	r->done_bytes += pl->out_bytes;
	/* done with these pages: a many-GB input need not stay resident */
	quant_advise(src, t->size_bytes, MADV_DONTNEED);
	return rc;
}

static void report(const struct quant_run *r, uint64_t i, struct quant_summary *sum)
{
	const struct gguf_tensor_info *t = gguf_tensor(r->in, i);
	const struct quant_plan *pl = &r->plan[i];
	bool copied = pl->to == t->type;
	sum->n_converted += !copied;
	sum->n_fallback += pl->to != pl->wanted;
	if (!r->p->on_tensor)
		return;
	struct quant_tensor_report rep = {
		.index = i, .n_tensors = r->n_tensors, .name = t->name_z, .n_dims = t->n_dims,
		.ne = t->ne, .from = (enum ggml_type)t->type, .to = pl->to, .wanted = pl->wanted,
		.in_bytes = t->size_bytes, .out_bytes = pl->out_bytes, .copied = copied,
	};
	r->p->on_tensor(r->p->user_data, &rep);
}

/* ---- the file ---- */

static int check_params(const struct quant_params *p, const char *in_path, const char *out_path,
			struct fm_error *err)
{
	const enum ggml_type ts[] = { p->type, p->expert_type, p->embd_type, p->output_type };
	if (!in_path || !out_path || p->n_threads < 1)
		return fm_err(err, FM_EINVAL, NULL, FM_NO_OFFSET,
			      "quantize: an input, an output and >= 1 thread are needed");
	for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++)
		if (!quant_type_writable(ts[i]))
			return fm_err(err, FM_EINVAL, NULL, FM_NO_OFFSET,
				      "quantize: cannot write tensors of type %d (%s)", (int)ts[i],
				      type_name(ts[i]));
	return 0;
}

static int run_all(struct quant_run *r, struct quant_summary *sum, struct fm_error *err)
{
	int rc = copy_metadata(r, err);
	if (!rc)
		rc = plan_all(r, err);
	if (!rc)
		rc = gguf_writer_open(r->w, r->out_path, err);
	r->t0 = fm_now_s();
	for (uint64_t i = 0; !rc && i < r->n_tensors; i++) {
		rc = write_tensor(r, i, err);
		if (!rc)
			report(r, i, sum);
	}
	if (!rc)
		progress(r, NULL, r->n_tensors, r->done_bytes);
	if (!rc)
		rc = gguf_writer_finish(r->w, err);
	return rc;
}

int quant_file(const char *in_path, const char *out_path, const struct quant_params *p,
	       struct quant_summary *sum, struct fm_error *err)
{
	struct fm_error local = { 0 };
	struct quant_summary local_sum;
	struct quant_run r = { .p = p, .in_path = in_path, .out_path = out_path };
	double t0 = fm_now_s();
	err = err ? err : &local;
	err->msg[0] = 0; /* copy_metadata adds a message only where a callee gave none */
	sum = sum ? sum : &local_sum;
	*sum = (struct quant_summary){ 0 };
	int rc = check_params(p, in_path, out_path, err);
	if (!rc)
		rc = io_output_check(out_path, &in_path, 1, err);
	if (rc)
		return rc;
	r.k = kernels_get(KERNEL_ISA_REF);
	if (!(r.in = gguf_open(in_path, err)))
		return err->code ? err->code : FM_EIO;
	struct quant_params with_arch = *p; /* the table of general.architecture, if known */
	struct gguf_str an;
	struct fm_error ignored;
	if (!with_arch.arch && !gguf_get_str(r.in, "general.architecture", &an, &ignored))
		with_arch.arch = arch_find(an.ptr, an.len);
	r.p = &with_arch;
	r.w = gguf_writer_new(gguf_alignment(r.in));
	r.pool = pool_new(p->n_threads);
	if (!r.w || !r.pool) {
		rc = fm_err(err, FM_ENOMEM, out_path, FM_NO_OFFSET, "out of memory");
		goto out;
	}
	rc = run_all(&r, sum, err);
	struct stat so;
	sum->n_tensors = r.n_tensors;
	sum->in_bytes = gguf_file_size(r.in);
	sum->out_bytes = !rc && !stat(out_path, &so) ? (uint64_t)so.st_size : 0;
out:
	sum->seconds = fm_now_s() - t0;
	pool_free(r.pool);
	free(r.rowbuf);
	free(r.buf);
	free(r.plan);
	gguf_writer_free(r.w);
	gguf_close(r.in);
	return rc;
}
