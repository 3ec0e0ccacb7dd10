/* state.h: what one sequence carries between evaluations, by layer kind
 * (DESIGN.md "state"): the KV rows of the attention layers (kv.c) and, for
 * Gated DeltaNet layers, the conv state (the last conv_k - 1 inputs) and the
 * recurrent state S (architectures.md §7.1). Allocated only for the layers
 * that need it, all of it counted against --mem.
 *
 * Going back: KV rows are per position, so forgetting the tail is free; a
 * recurrent state is not, so the state keeps snapshots of the recurrent
 * state where multi-token evaluations (prompts) began and ended (a turn's
 * start, and the start of the answer: where a chat's prefix reuse goes back
 * to when the template rewrote the last answer) and rewinds to one of them. */
#ifndef FM_STATE_H
#define FM_STATE_H

#include <stdbool.h>
#include <stddef.h>

#include "kv.h"
#include "model.h"
#include "util.h"

#define STATE_N_SNAP 3

struct seq_state {
	struct kv_cache *kv;    /* attention layers' rows; NULL without attention layers */
	int n_ctx;
	int n_gdn;              /* DeltaNet layers */
	size_t conv_floats;     /* per layer: (conv_k - 1) * channels */
	size_t rec_floats;      /* per layer: nv * dv * dk */
	float *gdn;             /* [n_gdn][conv_floats + rec_floats] */
	size_t gdn_bytes;
	float *snap[STATE_N_SNAP]; /* copies of gdn */
	int snap_pos[STATE_N_SNAP]; /* position of each snapshot, -1 none */
	struct fm_mem *mem;
};

struct seq_state *state_new(const struct hparams *hp, int n_ctx, enum kv_type tk,
			    enum kv_type tv, struct fm_mem *mem, struct fm_error *err);
void state_free(struct seq_state *st);
/* Bytes it holds (KV rows, states, snapshots). */
size_t state_bytes(const struct seq_state *st);
/* DeltaNet layer slot's conv state [conv_k-1][channels] and S [nv][dv][dk]. */
float *state_conv(struct seq_state *st, int slot);
float *state_rec(struct seq_state *st, int slot);
/* Remember the recurrent state as it is at position pos (no-op without
 * DeltaNet layers); the snapshot at position `replace` (>= 0), if any, is
 * superseded (a prompt evaluated in several calls keeps only its end). */
void state_snapshot(struct seq_state *st, int pos, int replace);
/* Go back to position n_keep (<= n_past): exactly when the recurrent state
 * allows it (no DeltaNet layers, n_keep == n_past, 0, or a snapshot at
 * n_keep); else, when !exact, to the latest snapshot before n_keep (or 0).
 * Returns the position kept, or FM_EUNSUPPORTED (exact and impossible). */
int state_rewind(struct seq_state *st, int n_past, int n_keep, bool exact);

#endif
