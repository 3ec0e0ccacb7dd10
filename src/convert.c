/* convert.c: a Hugging Face checkpoint -> GGUF, driven by the architecture
 * tables of src/arch/ (contract in convert.h; config.json and the keys are
 * convert_config.c's).
 *
 * After config.json, the safetensors files are indexed under normalised
 * names (as llama.cpp's filter_tensors renames them: "language_model."
 * dropped, the MTP block's "mtp.layers.J." as layer n_layer + J) and every
 * output tensor is planned from the table rows of its layer's kind: its HF
 * sources (per-expert or fused layout), each source's shape checked, its
 * type; an HF tensor no row used is refused. Only then is the output created
 * and written, one tensor at a time: each output row is one source row
 * (source_row), read as f32, its columns permuted and its values mapped as
 * the transform says (arch.h enum arch_xform), then written in the target
 * type through the reference kernels; a row none of that touches is copied
 * as bytes when the type stays.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "convert_internal.h"
#include "io.h"
#include "json_file.h"
#include "kernels/kernels.h"
#include "pool.h"
#include "quantize.h"
#include "util.h"

#define CONV_MAX_ROW_TASKS 256
#define CONV_CHUNK_BYTES (64u << 20) /* output bytes between progress reports */

const char *convert_path(struct conv *cv, const char *name)
{
	snprintf(cv->path, sizeof(cv->path), "%s/%s", cv->dir, name);
	return cv->path;
}

/* ---- the safetensors files ---- */

static int add_file(struct conv *cv, const char *name)
{
	if (!*name || strchr(name, '/') || !strcmp(name, "..") || !strcmp(name, "."))
		return fm_err(cv->err, FM_EFORMAT, convert_path(cv, "model.safetensors.index.json"),
			      FM_NO_OFFSET, "shard name '%.128s' is not a file in the directory", name);
	for (uint32_t i = 0; i < cv->n_files; i++)
		if (!strcmp(name, strrchr(st_path(cv->files[i]), '/') + 1))
			return 0;
	struct st_file **nf = realloc(cv->files, (cv->n_files + 1) * sizeof(*nf));
	if (!nf)
		return fm_err(cv->err, FM_ENOMEM, NULL, FM_NO_OFFSET, "out of memory");
	cv->files = nf;
	struct st_file *f = st_open(convert_path(cv, name), cv->err);
	if (!f)
		return cv->err->code;
	cv->files[cv->n_files++] = f;
	return 0;
}

/* model.safetensors.index.json's weight_map (each tensor must be where it
 * says), or model.safetensors alone. */
static int open_files(struct conv *cv)
{
	if (access(convert_path(cv, "model.safetensors.index.json"), F_OK) != 0)
		return add_file(cv, "model.safetensors");
	json_object *idx = json_file_read(cv->path, CONV_JSON_MAX_BYTES, true, cv->err);
	if (!idx)
		return cv->err->code;
	json_object *wm = NULL;
	json_object_object_get_ex(idx, "weight_map", &wm);
	int rc = 0;
	if (!wm || !json_object_is_type(wm, json_type_object) || !json_object_object_length(wm))
		rc = fm_err(cv->err, FM_EFORMAT, convert_path(cv, "model.safetensors.index.json"),
			    FM_NO_OFFSET, "no \"weight_map\" object");
	json_object_object_foreach(wm, name, file) {
		if (rc)
			break;
		if (!json_object_is_type(file, json_type_string)) {
			rc = fm_err(cv->err, FM_EFORMAT, convert_path(cv, "model.safetensors.index.json"),
				    FM_NO_OFFSET, "weight_map['%.96s'] is not a file name", name);
			break;
		}
		const char *fname = json_object_get_string(file);
		if ((rc = add_file(cv, fname)))
			break;
		uint32_t fi = 0;
		while (strcmp(fname, strrchr(st_path(cv->files[fi]), '/') + 1))
			fi++;
		if (st_find(cv->files[fi], name) < 0)
			rc = fm_err(cv->err, FM_EFORMAT, st_path(cv->files[fi]), FM_NO_OFFSET,
				    "tensor '%.96s' listed by the index is not in this file", name);
	}
	json_object_put(idx);
	return rc;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && !strcmp(s + n - m, suffix);
}

/* name as llama.cpp's filter_tensors sees it, into out; false: not converted
 * (the vision tower, rotary tables, the MTP block with no_mtp) */
static bool normalise(const struct conv *cv, const char *name, char *out, size_t size,
		      bool *mtp)
{
	char tmp[512];
	size_t n = 0;
	if (strstr(name, "visual.") || ends_with(name, ".rotary_emb.inv_freq"))
		return false;
	for (const char *s = name; *s && n + 1 < sizeof(tmp);) { /* "language_model." dropped */
		if (!strncmp(s, "language_model.", 15))
			s += 15;
		else
			tmp[n++] = *s++;
	}
	tmp[n] = 0;
	const char *t = strncmp(tmp, "model.mtp.", 10) ? tmp : tmp + 6;
	int j = -1, len = 0;
	*mtp = !strncmp(t, "mtp.", 4);
	if (*mtp && cv->p->no_mtp)
		return false;
	if (sscanf(t, "mtp.layers.%d.%n", &j, &len) == 1 && len > 0 && j >= 0 && j < 64)
		snprintf(out, size, "model.layers.%d.%s", cv->c.hp.n_layer + j, t + len);
	else
		snprintf(out, size, "%s", t);
	/* transformers 5's fused experts are parameters; some files add ".weight" */
	size_t m = strlen(out);
	if (ends_with(out, "experts.gate_up_proj.weight") || ends_with(out, "experts.down_proj.weight"))
		out[m - 7] = 0;
	return true;
}

static int cmp_hf(const void *a, const void *b)
{
	return strcmp(((const struct hf_tensor *)a)->name, ((const struct hf_tensor *)b)->name);
}

static int index_tensors(struct conv *cv)
{
	uint64_t n = 0;
	for (uint32_t i = 0; i < cv->n_files; i++)
		n += st_n_tensors(cv->files[i]);
	if (!(cv->hf = calloc(n + 1, sizeof(*cv->hf))))
		return fm_err(cv->err, FM_ENOMEM, NULL, FM_NO_OFFSET, "out of memory");
	char name[512];
	bool mtp;
	for (uint32_t i = 0; i < cv->n_files; i++) {
		for (uint64_t j = 0; j < st_n_tensors(cv->files[i]); j++) {
			if (!normalise(cv, st_tensor(cv->files[i], j)->name, name, sizeof(name), &mtp))
				continue;
			struct hf_tensor *h = &cv->hf[cv->n_hf++];
			*h = (struct hf_tensor){ .name = strdup(name), .file = i, .idx = j, .mtp = mtp };
			if (!h->name)
				return fm_err(cv->err, FM_ENOMEM, NULL, FM_NO_OFFSET, "out of memory");
		}
	}
	qsort(cv->hf, cv->n_hf, sizeof(*cv->hf), cmp_hf);
	for (uint64_t i = 1; i < cv->n_hf; i++)
		if (!strcmp(cv->hf[i].name, cv->hf[i - 1].name))
			return fm_err(cv->err, FM_EFORMAT, cv->dir, FM_NO_OFFSET,
				      "tensor '%.128s' is there twice (under two names or in two files)",
				      cv->hf[i].name);
	return 0;
}

static struct hf_tensor *find_hf(const struct conv *cv, const char *name)
{
	struct hf_tensor key = { .name = (char *)name };
	return bsearch(&key, cv->hf, cv->n_hf, sizeof(*cv->hf), cmp_hf);
}

static const struct st_tensor *hf_st(const struct conv *cv, const struct src_ref *s)
{
	return st_tensor(cv->files[s->file], s->idx);
}

/* The MTP blocks kept: as many as the checkpoint has (config.json's count
 * when it gives one must agree; none in the file: none kept, as a
 * transformers save_pretrained leaves them out). */
static int count_mtp(struct conv *cv)
{
	struct hf_config *c = &cv->c;
	int n = 0;
	bool any = false;
	for (uint64_t i = 0; i < cv->n_hf; i++) {
		int il = -1;
		any = any || cv->hf[i].mtp;
		if (cv->hf[i].mtp && sscanf(cv->hf[i].name, "model.layers.%d.", &il) == 1 &&
		    il - c->hp.n_layer + 1 > n)
			n = il - c->hp.n_layer + 1;
	}
	bool has_rows = false;
	for (int i = 0; i < c->arch->n_tensors; i++)
		has_rows = has_rows || (c->arch->tensors[i].kinds & LAYERS_MTP);
	if (!has_rows || !(n || any))
		return 0; /* stray layers are refused as unused tensors */
	if (c->n_mtp_cfg >= 0 && n != c->n_mtp_cfg)
		return fm_err(cv->err, FM_EFORMAT, cv->dir, FM_NO_OFFSET,
			      "config.json's mtp_num_hidden_layers is %d, but the checkpoint has %d "
			      "MTP layers (mtp.layers.*)", c->n_mtp_cfg, n);
	c->hp.n_nextn = n;
	c->hp.n_block = c->hp.n_layer + n;
	for (int il = c->hp.n_layer; il < c->hp.n_block; il++)
		c->hp.layer_kind[il] = LAYER_ATTN; /* attention + MoE (architectures.md §8) */
	return 0;
}

/* ---- the plan ---- */

static uint64_t dim_value(const struct hparams *hp, enum arch_dim d)
{
	return arch_dim_value(hp, d);
}

static void shape_str(char *buf, size_t size, uint32_t n, const uint64_t *d)
{
	size_t len = 0;
	buf[0] = 0;
	for (uint32_t i = 0; i < n && len < size; i++)
		len += (size_t)snprintf(buf + len, size - len, "%s%llu", i ? ", " : "",
					(unsigned long long)d[i]);
}

/* Whether HF shape got is want (torch order): leading 1s aside ([1, n] is a
 * vector), and for a conv kernel every 1 aside ([C, 1, k] is [C, k]). */
static bool shape_ok(const struct st_tensor *t, const uint64_t *want, uint32_t n_want, bool squeeze)
{
	uint64_t a[ST_MAX_DIMS], b[3];
	uint32_t na = 0, nb = 0;
	for (uint32_t d = 0; d < t->n_dims; d++)
		if (t->shape[d] != 1 || (!squeeze && na))
			a[na++] = t->shape[d];
	for (uint32_t d = 0; d < n_want; d++)
		if (want[d] != 1 || (!squeeze && nb))
			b[nb++] = want[d];
	return na == nb && !memcmp(a, b, na * sizeof(*a));
}

/* The name a message shows: an MTP layer's under its own "mtp.layers.J." */
static const char *shown(const struct conv *cv, const char *name, char *buf, size_t size)
{
	int il = -1, len = 0;
	if (sscanf(name, "model.layers.%d.%n", &il, &len) == 1 && len > 0 && il >= cv->c.hp.n_layer)
		snprintf(buf, size, "mtp.layers.%d.%s", il - cv->c.hp.n_layer, name + len);
	else
		snprintf(buf, size, "%s", name);
	return buf;
}

/* Source e of o: HF tensor name, of shape want[n_want]. */
static int add_source(struct conv *cv, struct out_tensor *o, uint32_t e, const char *name,
		      const uint64_t *want, uint32_t n_want)
{
	char buf[256], got[128], exp[128];
	struct hf_tensor *h = find_hf(cv, name);
	if (!h)
		return fm_err(cv->err, FM_EFORMAT, cv->n_files == 1 ? st_path(cv->files[0]) : cv->dir,
			      FM_NO_OFFSET, "missing tensor '%.128s'", shown(cv, name, buf, sizeof(buf)));
	h->used = true;
	o->src[e] = (struct src_ref){ h->file, h->idx };
	const struct st_tensor *t = hf_st(cv, &o->src[e]);
	if (!shape_ok(t, want, n_want, o->xf == XF_CONV)) {
		shape_str(got, sizeof(got), t->n_dims, t->shape);
		shape_str(exp, sizeof(exp), n_want, want);
		return fm_err(cv->err, FM_EFORMAT, st_path(cv->files[h->file]), FM_NO_OFFSET,
			      "tensor '%.96s': shape [%s], expected [%s] from config.json", t->name,
			      got, exp);
	}
	if (e == 0)
		o->from = t->type;
	if (o->xf != XF_STACK && o->xf != XF_CONV && t->n_dims > o->n_dims && t->n_dims <= 3)
		o->n_dims = t->n_dims; /* [1, n] stays 2-D {n, 1}, as llama.cpp writes it */
	return 0;
}

/* Where the V heads of o are, when the GGUF holds them tiled. */
static void plan_v_heads(struct conv *cv, struct out_tensor *o)
{
	const struct hparams *hp = &cv->c.hp;
	uint64_t qk2 = 2 * (uint64_t)hp->ssm_nk * (uint64_t)hp->ssm_dk, nv = (uint64_t)hp->ssm_nv;
	bool rows = o->ne[1] * o->ne[2] > 1;
	if (!(cv->c.arch->flags & ARCH_V_TILED) || hp->ssm_nv == hp->ssm_nk)
		return; /* llama.cpp reorders nothing when there is one V head per K head */
	switch (o->xf) {
	case XF_QKV: case XF_QKVZ_QKV: case XF_CONV:
		o->v_axis = 1, o->v_off = qk2, o->v_hs = (uint64_t)hp->ssm_dv;
		break;
	case XF_QKVZ_Z:
		o->v_axis = 1, o->v_hs = (uint64_t)hp->ssm_dv;
		break;
	case XF_VROWS: case XF_NEG_EXP:
		o->v_axis = rows ? 1 : 2, o->v_hs = (rows ? o->ne[1] * o->ne[2] : o->ne[0]) / nv;
		break;
	case XF_VCOLS:
		o->v_axis = 2, o->v_hs = o->ne[0] / nv;
		break;
	default:
		break;
	}
}

/* The HF shape (torch order) each source of o must have; the count of dims. */
static uint32_t source_shape(const struct conv *cv, const struct out_tensor *o, uint64_t *want)
{
	const struct hparams *hp = &cv->c.hp;
	switch (o->xf) {
	case XF_STACK:
		want[0] = o->ne[1], want[1] = o->ne[0];
		return 2;
	case XF_SPLIT_GATE: case XF_SPLIT_UP:
		want[0] = o->ne[2], want[1] = 2 * o->ne[1], want[2] = o->ne[0];
		return 3;
	case XF_QKVZ_QKV: case XF_QKVZ_Z:
		want[0] = 2 * (uint64_t)hp->ssm_nk * (uint64_t)hp->ssm_dk + 2 * (uint64_t)hp->ssm_inner;
		want[1] = o->ne[0];
		return 2;
	case XF_CONV:
		want[0] = o->ne[1], want[1] = 1, want[2] = o->ne[0];
		return 3;
	default:
		for (uint32_t d = 0; d < o->n_dims; d++)
			want[d] = o->ne[o->n_dims - 1 - d];
		return o->n_dims;
	}
}

static struct out_tensor *new_out(struct conv *cv)
{
	if (cv->n_t == cv->cap_t) {
		uint64_t cap = cv->cap_t ? 2 * cv->cap_t : 64;
		struct out_tensor *nt = realloc(cv->t, cap * sizeof(*nt));
		if (!nt)
			return NULL;
		cv->t = nt;
		cv->cap_t = cap;
	}
	struct out_tensor *o = &cv->t[cv->n_t++];
	*o = (struct out_tensor){ .ne = { 1, 1, 1 } };
	return o;
}

/* Table row t for layer il (-1: a global): its layout (hf_name, or hf_alt
 * when hf_name's first tensor is absent), its sources, their shapes. */
static int plan_entry(struct conv *cv, const struct arch_tensor *t, int il)
{
	const struct hparams *hp = &cv->c.hp;
	char name[256], alt[256];
	const char *fmt = t->hf_name;
	enum arch_xform xf = t->xform;
	snprintf(name, sizeof(name), fmt, il, 0);
	if (!find_hf(cv, name) && t->hf_alt) {
		snprintf(alt, sizeof(alt), t->hf_alt, il, 0);
		if (find_hf(cv, alt))
			fmt = t->hf_alt, xf = t->xform_alt;
	}
	struct out_tensor *o = new_out(cv);
	if (!o)
		return fm_err(cv->err, FM_ENOMEM, NULL, FM_NO_OFFSET, "out of memory");
	snprintf(o->name, sizeof(o->name), t->name, il);
	o->n_dims = t->n_dims;
	o->xf = xf;
	for (int d = 0; d < t->n_dims; d++)
		o->ne[d] = dim_value(hp, t->ne[d]);
	o->n_src = xf == XF_STACK ? (uint32_t)o->ne[2] : 1;
	if (!(o->src = calloc(o->n_src, sizeof(*o->src))))
		return fm_err(cv->err, FM_ENOMEM, NULL, FM_NO_OFFSET, "out of memory");
	uint64_t want[3];
	uint32_t n_want = source_shape(cv, o, want);
	for (uint32_t e = 0; e < o->n_src; e++) {
		snprintf(name, sizeof(name), fmt, il, (int)e);
		int rc = add_source(cv, o, e, name, want, n_want);
		if (rc)
			return rc;
	}
	plan_v_heads(cv, o);
	return 0;
}

/* The globals (kinds 0): token_embd before the layers, the others after. */
static int plan_globals(struct conv *cv, bool embd)
{
	const struct arch *a = cv->c.arch;
	int rc = 0;
	for (int j = 0; !rc && j < a->n_tensors; j++) {
		const struct arch_tensor *t = &a->tensors[j];
		if (t->kinds || (t->off == offsetof(struct model_weights, tok_embd)) != embd ||
		    ((t->flags & AT_OPTIONAL) && cv->c.tied))
			continue;
		rc = plan_entry(cv, t, -1);
	}
	return rc;
}

static int plan_layers(struct conv *cv)
{
	const struct arch *a = cv->c.arch;
	const struct hparams *hp = &cv->c.hp;
	int rc = 0;
	for (int il = 0; !rc && il < hp->n_block; il++) {
		for (int j = 0; !rc && j < a->n_tensors; j++) {
			const struct arch_tensor *t = &a->tensors[j];
			if ((t->kinds & LAYER_MASK(hp->layer_kind[il])) ||
			    (il == hp->n_layer && (t->kinds & LAYERS_MTP)))
				rc = plan_entry(cv, t, il);
		}
	}
	return rc;
}

/* Every HF tensor must have been used (as llama.cpp refuses unmapped ones). */
static int check_unused(struct conv *cv)
{
	for (uint64_t i = 0; i < cv->n_hf; i++) {
		const struct hf_tensor *h = &cv->hf[i];
		if (!h->used && !(cv->c.tied && !strcmp(h->name, "lm_head.weight")))
			return fm_err(cv->err, FM_EFORMAT, st_path(cv->files[h->file]), FM_NO_OFFSET,
				      "tensor '%.128s' has no place in a %s model (unexpected layer, "
				      "expert or module)", st_tensor(cv->files[h->file], h->idx)->name,
				      cv->c.arch->name);
	}
	return 0;
}

/* Each tensor's type: quantize.h's policy (the table's AT_KEEP_F32 ones f32). */
static int plan_types(struct conv *cv)
{
	struct quant_params qp;
	quant_params_default(&qp, cv->p->type);
	qp.arch = cv->c.arch;
	for (uint64_t i = 0; i < cv->n_t; i++) {
		struct out_tensor *o = &cv->t[i];
		o->to = quant_choose_type(o->name, o->n_dims, o->ne, o->from, &qp, NULL);
		uint64_t rows = o->ne[1] * o->ne[2];
		size_t rb = ggml_row_bytes(o->to, o->ne[0]);
		if (!rb || !fm_mul_ok(rows, rb, &o->out_bytes) || o->out_bytes > SIZE_MAX / 2)
			return fm_err(cv->err, FM_ERANGE, NULL, FM_NO_OFFSET,
				      "tensor '%s': %llu rows of %llu cannot be written as %s", o->name,
				      (unsigned long long)rows, (unsigned long long)o->ne[0],
				      fm_type_name(o->to));
		if (o->out_bytes > cv->buf_bytes)
			cv->buf_bytes = (size_t)o->out_bytes;
		if (o->ne[0] > cv->max_cols)
			cv->max_cols = o->ne[0];
		cv->total_bytes += o->out_bytes;
	}
	return 0;
}

static int plan_all(struct conv *cv)
{
	int rc = plan_globals(cv, true);
	rc = rc ? rc : plan_layers(cv);
	rc = rc ? rc : plan_globals(cv, false);
	rc = rc ? rc : check_unused(cv);
	return rc ? rc : plan_types(cv);
}

/* ---- tensor data ---- */

/* Grouped position of tiled V position x on o's V axis (architectures.md
 * §6.3.4): tiled head t = i * nk + g is grouped head g * (nv / nk) + i. */
static uint64_t v_grouped(const struct conv *cv, const struct out_tensor *o, uint64_t x)
{
	if (x < o->v_off)
		return x;
	uint64_t nk = (uint64_t)cv->c.hp.ssm_nk, r = (uint64_t)(cv->c.hp.ssm_nv / cv->c.hp.ssm_nk);
	uint64_t h = (x - o->v_off) / o->v_hs, d = (x - o->v_off) % o->v_hs;
	return o->v_off + (h % nk * r + h / nk) * o->v_hs + d;
}

/* The source (*s) and its row that make output row r of o. */
static uint64_t source_row(const struct conv *cv, const struct out_tensor *o, uint64_t r,
			   uint32_t *s)
{
	const struct hparams *hp = &cv->c.hp;
	uint64_t dk = (uint64_t)hp->ssm_dk, qk = (uint64_t)hp->ssm_nk * dk;
	uint64_t vg = (uint64_t)(hp->ssm_nv / (hp->ssm_nk ? hp->ssm_nk : 1)) * (uint64_t)hp->ssm_dv;
	uint64_t grp = 2 * dk + 2 * vg, ff = o->ne[1]; /* in_proj_qkvz: per key head [q k v z] */
	*s = 0;
	if (o->v_axis == 1)
		r = v_grouped(cv, o, r);
	switch (o->xf) {
	case XF_STACK:
		*s = (uint32_t)(r / ff);
		return r % ff;
	case XF_SPLIT_GATE:
		return r / ff * 2 * ff + r % ff;
	case XF_SPLIT_UP:
		return r / ff * 2 * ff + ff + r % ff;
	case XF_QKVZ_QKV:
		if (r < 2 * qk)
			return r % qk / dk * grp + (r < qk ? 0 : dk) + r % dk;
		return (r - 2 * qk) / vg * grp + 2 * dk + (r - 2 * qk) % vg;
	case XF_QKVZ_Z:
		return r / vg * grp + 2 * dk + vg + r % vg;
	default:
		return r;
	}
}

struct xf_job {
	struct conv *cv;
	const struct out_tensor *o;
	uint64_t r0, n_rows, rows_per_task;
	size_t dst_row_bytes;
};

/* Output rows of one task: copied when nothing changes them, else read as
 * f32, columns permuted, values mapped, written in the target type. */
static void xf_rows(void *arg, int task, int thread)
{
	const struct xf_job *j = arg;
	const struct conv *cv = j->cv;
	const struct out_tensor *o = j->o;
	const uint64_t n = o->ne[0];
	float *x = cv->rows + (size_t)thread * 2 * cv->max_cols, *y = x + cv->max_cols;
	bool plain = o->v_axis != 2 && o->xf != XF_NORM_PLUS1 && o->xf != XF_NEG_EXP;
	uint64_t r1 = ((uint64_t)task + 1) * j->rows_per_task;
	for (uint64_t r = (uint64_t)task * j->rows_per_task; r < r1 && r < j->n_rows; r++) {
		uint32_t s;
		uint64_t sr = source_row(cv, o, j->r0 + r, &s);
		const struct st_tensor *t = hf_st(cv, &o->src[s]);
		size_t srb = ggml_row_bytes(t->type, n);
		const uint8_t *src = (const uint8_t *)st_data(cv->files[o->src[s].file], o->src[s].idx) +
				     sr * srb;
		uint8_t *dst = cv->buf + (j->r0 + r) * j->dst_row_bytes;
		if (plain && t->type == o->to) {
			memcpy(dst, src, srb);
			continue;
		}
		cv->k->fmt[t->type].dequantize(src, x, n);
		if (o->v_axis == 2) {
			for (uint64_t c = 0; c < n; c++)
				y[c] = x[v_grouped(cv, o, c)];
			memcpy(x, y, n * sizeof(float));
		}
		if (o->xf == XF_NORM_PLUS1)
			for (uint64_t c = 0; c < n; c++)
				x[c] += 1.0f;
		else if (o->xf == XF_NEG_EXP)
			for (uint64_t c = 0; c < n; c++)
				x[c] = -expf(x[c]);
		cv->k->fmt[o->to].quantize(x, dst, n);
	}
}

static void advise_sources(const struct conv *cv, const struct out_tensor *o, int advice)
{
	for (uint32_t e = 0; e < o->n_src; e++) {
		const struct st_tensor *t = hf_st(cv, &o->src[e]);
		quant_advise(st_data(cv->files[o->src[e].file], o->src[e].idx), t->size_bytes, advice);
	}
}

static void progress(struct conv *cv, const char *name, uint64_t i, uint64_t done, double t0)
{
	if (!cv->p->progress)
		return;
	struct quant_progress pr = { .name = name, .index = i, .n_tensors = cv->n_t,
				     .done_bytes = done, .total_bytes = cv->total_bytes,
				     .elapsed_s = fm_now_s() - t0 };
	cv->p->progress(cv->p->user_data, &pr);
}

/* Output tensor i into cv->buf, CONV_CHUNK_BYTES of rows at a time. */
static void convert_tensor(struct conv *cv, uint64_t i, uint64_t done, double t0)
{
	const struct out_tensor *o = &cv->t[i];
	struct xf_job j = { .cv = cv, .o = o, .dst_row_bytes = ggml_row_bytes(o->to, o->ne[0]) };
	uint64_t n_rows = o->ne[1] * o->ne[2];
	uint64_t chunk = CONV_CHUNK_BYTES / j.dst_row_bytes ? CONV_CHUNK_BYTES / j.dst_row_bytes : 1;
	for (j.r0 = 0; j.r0 < n_rows; j.r0 += chunk) {
		progress(cv, o->name, i, done + j.r0 * j.dst_row_bytes, t0);
		j.n_rows = n_rows - j.r0 < chunk ? n_rows - j.r0 : chunk;
		uint64_t n_tasks = j.n_rows < CONV_MAX_ROW_TASKS ? j.n_rows : CONV_MAX_ROW_TASKS;
		j.rows_per_task = (j.n_rows + n_tasks - 1) / n_tasks;
		pool_run(cv->pool, xf_rows, &j, (int)n_tasks);
	}
}

static int write_tensors(struct conv *cv, struct convert_summary *sum)
{
	double t0 = fm_now_s();
	uint64_t done = 0;
	for (uint64_t i = 0; i < cv->n_t; i++) {
		const struct out_tensor *o = &cv->t[i];
		advise_sources(cv, o, MADV_SEQUENTIAL);
		convert_tensor(cv, i, done, t0);
		int rc = gguf_writer_write_tensor(cv->w, i, cv->buf, (size_t)o->out_bytes, cv->err);
		if (rc)
			return rc;
		done += o->out_bytes;
		/* a many-GB input need not stay resident, unless the next reads it too
		 * (gate and up from one fused gate_up_proj) */
		const struct src_ref *next = i + 1 < cv->n_t ? &cv->t[i + 1].src[0] : NULL;
		if (!next || next->file != o->src[0].file || next->idx != o->src[0].idx)
			advise_sources(cv, o, MADV_DONTNEED);
		if (sum)
			sum->out_bytes += o->out_bytes;
		if (cv->p->on_tensor) {
			struct convert_tensor_report r = {
				.index = i, .n_tensors = cv->n_t, .name = o->name, .n_dims = o->n_dims,
				.ne = o->ne, .from = o->from, .to = o->to, .n_sources = o->n_src,
			};
			cv->p->on_tensor(cv->p->user_data, &r);
		}
	}
	progress(cv, NULL, cv->n_t, done, t0);
	return 0;
}

/* ---- driver ---- */

static int check_params(struct conv *cv)
{
	enum ggml_type t = cv->p->type;
	if ((t != GGML_TYPE_F32 && t != GGML_TYPE_F16 && t != GGML_TYPE_BF16 &&
	     t != GGML_TYPE_Q8_0) || cv->p->n_threads < 1)
		return fm_err(cv->err, FM_EINVAL, NULL, FM_NO_OFFSET,
			      "type must be f32, f16, bf16 or q8_0 and threads >= 1");
	return 0;
}

/* The output may be none of the files read: every shard, the index, the
 * config and the tokenizer files (io_output_check: by device and inode). */
static int check_output(struct conv *cv, const char *out_path)
{
	static const char *const json[] = { "config.json", "model.safetensors.index.json",
					    "tokenizer.json", "tokenizer_config.json" };
	const size_t n_json = sizeof(json) / sizeof(json[0]), n = cv->n_files + n_json;
	char **paths = calloc(n, sizeof(*paths));
	int rc = paths ? 0 : fm_err(cv->err, FM_ENOMEM, NULL, FM_NO_OFFSET, "out of memory");
	for (size_t i = 0; !rc && i < n; i++) {
		paths[i] = strdup(i < n_json ? convert_path(cv, json[i]) : st_path(cv->files[i - n_json]));
		if (!paths[i])
			rc = fm_err(cv->err, FM_ENOMEM, NULL, FM_NO_OFFSET, "out of memory");
	}
	if (!rc)
		rc = io_output_check(out_path, (const char *const *)paths, n, cv->err);
	for (size_t i = 0; paths && i < n; i++)
		free(paths[i]);
	free(paths);
	return rc;
}

static int prepare_output(struct conv *cv, const char *out_path)
{
	int rc = check_output(cv, out_path);
	if (rc)
		return rc;
	if (!(cv->w = gguf_writer_new(GGUF_DEFAULT_ALIGNMENT)))
		return fm_err(cv->err, FM_ENOMEM, NULL, FM_NO_OFFSET, "out of memory");
	if ((rc = convert_config_write(cv, out_path)))
		return rc;
	for (uint64_t i = 0; i < cv->n_t; i++) {
		const struct out_tensor *o = &cv->t[i];
		int64_t r = gguf_writer_add_tensor(cv->w, o->name, o->to, o->n_dims, o->ne);
		if (r < 0)
			return fm_err(cv->err, (int)r, out_path, FM_NO_OFFSET,
				      "cannot declare tensor '%s'", o->name);
	}
	if (cv->max_cols > SIZE_MAX / 2 / sizeof(float) / (size_t)cv->p->n_threads)
		return fm_err(cv->err, FM_ERANGE, NULL, FM_NO_OFFSET, "rows too long");
	cv->buf = malloc(cv->buf_bytes ? cv->buf_bytes : 1);
	cv->rows = malloc((size_t)cv->p->n_threads * 2 * cv->max_cols * sizeof(float) + 1);
	cv->pool = pool_new(cv->p->n_threads);
	if (!cv->buf || !cv->rows || !cv->pool)
		return fm_err(cv->err, FM_ENOMEM, NULL, FM_NO_OFFSET,
			      "cannot allocate the %zu-byte tensor buffer", cv->buf_bytes);
	return gguf_writer_open(cv->w, out_path, cv->err);
}

static void conv_free(struct conv *cv)
{
	gguf_writer_free(cv->w); /* removes path.tmp unless finished */
	pool_free(cv->pool);
	free(cv->rows);
	free(cv->buf);
	tok_free(cv->tok);
	for (uint64_t i = 0; i < cv->n_t; i++)
		free(cv->t[i].src);
	free(cv->t);
	for (uint64_t i = 0; i < cv->n_hf; i++)
		free(cv->hf[i].name);
	free(cv->hf);
	for (uint32_t i = 0; i < cv->n_files; i++)
		st_close(cv->files[i]);
	free(cv->files);
	json_object_put(cv->cfg);
	free(cv);
}

int convert_hf(const char *dir, const char *out_path, const struct convert_params *p,
	       struct convert_summary *sum, struct fm_error *err)
{
	struct fm_error local = { 0 };
	struct conv *cv = calloc(1, sizeof(*cv)); /* struct hparams is ~12 KB */
	double t0 = fm_now_s();
	if (sum)
		*sum = (struct convert_summary){ 0 };
	if (!cv)
		return fm_err(err, FM_ENOMEM, NULL, FM_NO_OFFSET, "out of memory");
	*cv = (struct conv){ .dir = dir, .p = p, .err = err ? err : &local };
	kernels_init();
	cv->k = kernels_get(KERNEL_ISA_REF);
	int rc = check_params(cv);
	rc = rc ? rc : convert_config_read(cv);
	rc = rc ? rc : open_files(cv);
	rc = rc ? rc : index_tensors(cv);
	rc = rc ? rc : count_mtp(cv);
	rc = rc ? rc : plan_all(cv);
	rc = rc ? rc : prepare_output(cv, out_path);
	rc = rc ? rc : write_tensors(cv, sum);
	rc = rc ? rc : gguf_writer_finish(cv->w, cv->err);
	if (sum) {
		sum->n_tensors = cv->n_t;
		sum->n_source_files = cv->n_files;
		sum->seconds = fm_now_s() - t0;
	}
	conv_free(cv);
	return rc;
}
