/* state.c: per-sequence state by layer kind (see state.h). */
#include "state.h"

#include <stdlib.h>
#include <string.h>

struct seq_state *state_new(const struct hparams *hp, int n_ctx, enum kv_type tk,
			    enum kv_type tv, struct fm_mem *mem, struct fm_error *err)
{
	struct seq_state *st = calloc(1, sizeof(*st));
	if (!st) {
		fm_err(err, FM_ENOMEM, NULL, FM_NO_OFFSET, "out of memory");
		return NULL;
	}
	st->mem = mem;
	st->n_ctx = n_ctx;
	for (int i = 0; i < STATE_N_SNAP; i++)
		st->snap_pos[i] = -1;
	if (hp->n_layer_kind[LAYER_ATTN]) {
		st->kv = kv_new(hp->n_layer_kind[LAYER_ATTN], hp->n_head_kv, hp->head_dim, n_ctx,
				tk, tv, mem, err);
		if (!st->kv)
			goto fail;
	}
	st->n_gdn = hp->n_layer_kind[LAYER_GDN];
	if (st->n_gdn) {
		size_t ch = 2 * (size_t)hp->ssm_nk * hp->ssm_dk + (size_t)hp->ssm_nv * hp->ssm_dv;
		st->conv_floats = (size_t)(hp->ssm_conv_k - 1) * ch;
		st->rec_floats = (size_t)hp->ssm_nv * hp->ssm_dv * hp->ssm_dk;
		st->gdn_bytes = (size_t)st->n_gdn * (st->conv_floats + st->rec_floats) * sizeof(float);
		st->gdn = fm_alloc(mem, st->gdn_bytes);
		for (int i = 0; st->gdn && i < STATE_N_SNAP; i++)
			if (!(st->snap[i] = fm_alloc(mem, st->gdn_bytes)))
				break;
		if (!st->gdn || !st->snap[STATE_N_SNAP - 1]) {
			fm_err(err, FM_ENOMEM, NULL, FM_NO_OFFSET,
			       "no memory for the recurrent state of %d DeltaNet layers "
			       "(%.1f MiB, and %d snapshots of it)", st->n_gdn,
			       st->gdn_bytes / 1048576.0, STATE_N_SNAP);
			goto fail;
		}
	}
	return st;
fail:
	state_free(st);
	return NULL;
}

void state_free(struct seq_state *st)
{
	if (!st)
		return;
	kv_free(st->kv);
	fm_free(st->mem, st->gdn, st->gdn_bytes);
	for (int i = 0; i < STATE_N_SNAP; i++)
		fm_free(st->mem, st->snap[i], st->gdn_bytes);
	free(st);
}

size_t state_bytes(const struct seq_state *st)
{
	return (st->kv ? kv_bytes(st->kv) : 0) + (1 + STATE_N_SNAP) * st->gdn_bytes;
}

float *state_conv(struct seq_state *st, int slot)
{
	return st->gdn + (size_t)slot * (st->conv_floats + st->rec_floats);
}

float *state_rec(struct seq_state *st, int slot)
{
	return state_conv(st, slot) + st->conv_floats;
}

void state_snapshot(struct seq_state *st, int pos, int replace)
{
	if (!st->n_gdn)
		return;
	/* the superseded one, else a free slot, else the earliest position
	 * (going back is to the latest turns) */
	int slot = -1;
	for (int i = 0; i < STATE_N_SNAP; i++) {
		if (st->snap_pos[i] == pos)
			return; /* already there */
		if (replace >= 0 && st->snap_pos[i] == replace)
			slot = i;
	}
	if (slot < 0) { /* the smallest position: a free slot holds -1 */
		slot = 0;
		for (int j = 1; j < STATE_N_SNAP; j++)
			slot = st->snap_pos[j] < st->snap_pos[slot] ? j : slot;
	}
	memcpy(st->snap[slot], st->gdn, st->gdn_bytes);
	st->snap_pos[slot] = pos;
}

int state_rewind(struct seq_state *st, int n_past, int n_keep, bool exact)
{
	if (!st->n_gdn || n_keep == n_past)
		return n_keep;
	int best = -1;
	for (int i = 0; i < STATE_N_SNAP; i++)
		if (st->snap_pos[i] >= 0 && st->snap_pos[i] <= n_keep &&
		    (best < 0 || st->snap_pos[i] > st->snap_pos[best]))
			best = i;
	if (best >= 0 && (st->snap_pos[best] == n_keep || !exact)) {
		memcpy(st->gdn, st->snap[best], st->gdn_bytes);
		int pos = st->snap_pos[best];
		/* snapshots after the position kept describe a future that is gone */
		for (int i = 0; i < STATE_N_SNAP; i++)
			if (st->snap_pos[i] > pos)
				st->snap_pos[i] = -1;
		return pos;
	}
	if (n_keep == 0 || !exact) {
		memset(st->gdn, 0, st->gdn_bytes);
		for (int i = 0; i < STATE_N_SNAP; i++)
			st->snap_pos[i] = -1;
		return 0;
	}
	return FM_EUNSUPPORTED;
}
