#!/bin/sh
# e2e_budget.sh: a streamed model under a memory cgroup the size of --mem, at
# several --mem values and in every --io mode (issue 14). DESIGN.md: "a run
# inside a memory cgroup of the budget's size must not be killed and must not
# thrash". Exit 0 pass, 1 fail, 77 skip (no memory cgroup we may create).
#
# The model (gen-tiny, 107 MiB, 102 MiB of it experts) is larger than every
# cap, so the budget modes stream. Each run gets a fresh cgroup whose limit
# (memory.max, or memory.limit_in_bytes + memsw on cgroup v1) is the --mem
# value, no swap, and the model's pages evicted from the page cache first (so
# that the cgroup is charged for what the run reads). Expected, per mode:
#
#   uring, pread  O_DIRECT reads into the budgeted cache: exit 0, no OOM kill,
#                 the logits hash of an unconstrained run, and the cgroup
#                 never reached its limit: peak < cap, page cache included
#                 (and memory.events "max" / failcnt 0 where the kernel
#                 counts them).
#   buffered      the same reads through the page cache, which the cgroup
#                 counts: exit 0, no OOM kill, the same hash; the page cache
#                 may fill up to the cap and be reclaimed (peak <= cap).
#   mmap          no cache of its own (the page-cache baseline): the mapping
#                 is clean file pages, reclaimable, so again exit 0, no OOM
#                 kill, the same hash, peak <= cap; it may reclaim (thrash) at
#                 small caps: that is the baseline's cost, not a failure (the
#                 secs column shows it: 10-20x the uring run's time at 48M in
#                 docs/RELIABILITY.md).
#
# The cgroup is made here (cgroup v2 at /sys/fs/cgroup with the memory
# controller, else v1 at /sys/fs/cgroup/memory), as root; without either the
# test is skipped with the reason. Prints one row per run:
#   mode --mem cap peak limit-hits oom-kills exit.
set -u
BIN=${FM_BIN:-build/release/flashmoe}
T=$(mktemp -d "${TMPDIR:-/tmp}/e2e_budget.XXXXXX")
CG=
cleanup() {
	[ -n "$CG" ] && [ -d "$CG" ] && rmdir "$CG" 2>/dev/null
	[ -n "${FM_KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
fails=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fails=$((fails + 1)); }

# ---- the cgroup flavour ----
V= ROOT=
if [ "$(id -u)" -ne 0 ]; then
	echo "skip: not root (a memory cgroup cannot be made)"; exit 77
fi
if [ -f /sys/fs/cgroup/cgroup.controllers ] &&
   grep -qw memory /sys/fs/cgroup/cgroup.controllers; then
	ROOT=/sys/fs/cgroup
	if grep -qw memory "$ROOT/cgroup.subtree_control" ||
	   echo +memory >"$ROOT/cgroup.subtree_control" 2>/dev/null; then
		V=2
	fi
fi
if [ -z "$V" ] && [ -f /sys/fs/cgroup/memory/memory.limit_in_bytes ] &&
   [ -w /sys/fs/cgroup/memory ]; then
	V=1 ROOT=/sys/fs/cgroup/memory
fi
if [ -z "$V" ] || ! mkdir "$ROOT/fm_budget.$$.probe" 2>/dev/null; then
	echo "skip: no memory cgroup can be made here (cgroup v2 at /sys/fs/cgroup without the" \
	     "memory controller in cgroup.subtree_control, and no writable v1 /sys/fs/cgroup/memory)"
	exit 77
fi
rmdir "$ROOT/fm_budget.$$.probe"
echo "cgroup v$V at $ROOT"

M=$T/big.gguf
$BIN gen-tiny --out "$M" --type q8_0 --layers 4 --hidden 512 --experts 32 --expert-ff 512 \
	--vocab 4096 --ctx 4096 --seed 1 >/dev/null || { echo "FAIL gen-tiny"; exit 1; }
echo "model: $(stat -c %s "$M") bytes"
ARGS="--token-ids 1,2,3 -n 120 --temp 1 --seed 1 --isa ref --ids --stats -t 1"
# shellcheck disable=SC2086
$BIN generate -m "$M" $ARGS >"$T/ref.ids" 2>"$T/ref.err" || { cat "$T/ref.err"; exit 1; }
hash=$(grep "final logits hash" "$T/ref.err")
echo "reference (no cap, resident): $(wc -w <"$T/ref.ids") tokens, $hash"

evict() {
	python3 -c 'import os,sys; fd=os.open(sys.argv[1],os.O_RDONLY); os.posix_fadvise(fd,0,0,os.POSIX_FADV_DONTNEED)' \
		"$1" 2>/dev/null || dd if="$1" iflag=nocache count=0 status=none 2>/dev/null
}

# capped IO MEM: one run in a fresh cgroup limited to MEM; sets peak hits ooms rc
capped() {
	io=$1 mem=$2
	cap=$(numfmt --from=iec "$mem")
	CG=$ROOT/fm_budget.$$.$io.$mem
	mkdir "$CG" || { bad "mkdir $CG"; return 1; }
	if [ "$V" = 2 ]; then
		echo "$cap" >"$CG/memory.max"
		[ -f "$CG/memory.swap.max" ] && echo 0 >"$CG/memory.swap.max"
	else
		echo "$cap" >"$CG/memory.limit_in_bytes"
		[ -f "$CG/memory.memsw.limit_in_bytes" ] &&
			echo "$cap" >"$CG/memory.memsw.limit_in_bytes" 2>/dev/null
	fi
	evict "$M"
	t0=$(date +%s%N)
	# shellcheck disable=SC2086
	sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CG" \
		$BIN generate -m "$M" --mem "$mem" --io "$io" $ARGS >"$T/out.ids" 2>"$T/out.err"
	rc=$?
	secs=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
	if [ "$V" = 2 ]; then
		peak=$(cat "$CG/memory.peak" 2>/dev/null || echo 0) # 0: a kernel before 5.19
		hits=$(awk '$1 == "max" { print $2 }' "$CG/memory.events")
		ooms=$(awk '$1 == "oom_kill" { print $2 }' "$CG/memory.events")
	else
		peak=$(cat "$CG/memory.max_usage_in_bytes")
		# with memsw limited too, a charge over the limit may fail on either counter
		hits=$(cat "$CG/memory.failcnt" "$CG/memory.memsw.failcnt" 2>/dev/null |
			awk '{ s += $1 } END { print s + 0 }')
		ooms=$(awk '$1 == "oom_kill" { print $2 }' "$CG/memory.oom_control")
	fi
	ooms=${ooms:-0}
	rmdir "$CG" 2>/dev/null
	CG=
	return 0
}

printf '%-9s %6s %11s %11s %6s %10s %5s %4s %6s\n' mode --mem cap peak peak% limit-hits ooms exit secs
for mem in 48M 64M 128M; do
	for io in uring pread buffered mmap; do
		capped "$io" "$mem" || continue
		pct=$(awk -v p="$peak" -v c="$cap" 'BEGIN { printf "%.0f", 100 * p / c }')
		printf '%-9s %6s %11s %11s %5s%% %10s %5s %4s %6s\n' "$io" "$mem" "$cap" "$peak" "$pct" \
			"$hits" "$ooms" "$rc" "$secs"
		what="$io --mem $mem"
		if [ "$rc" -ne 0 ] || [ "$ooms" -ne 0 ]; then
			bad "$what: exit $rc, $ooms OOM kills"; tail -n 3 "$T/out.err"; continue
		fi
		if [ "$(grep "final logits hash" "$T/out.err")" != "$hash" ] ||
		   ! cmp -s "$T/out.ids" "$T/ref.ids"; then
			bad "$what: other tokens or logits than the unconstrained run"; continue
		fi
		if [ "$peak" -gt "$cap" ]; then
			bad "$what: peak $peak above the cap $cap"; continue
		fi
		case $io in
		uring|pread)
			if [ "$hits" -ne 0 ] || [ "$peak" -ge "$cap" ]; then
				bad "$what: the cgroup reached its limit (peak $peak, $hits limit hits):" \
				    "O_DIRECT reads into the budgeted cache should keep it below"; continue
			fi ;;
		esac
		case $io in
		mmap) want="experts: mmap" ;;
		*) want="experts: io $io, cache [0-9]* slots" ;;
		esac
		grep -q "$want" "$T/out.err" || { bad "$what: no '$want' in its stats"; continue; }
	done
done
[ $fails -eq 0 ] && echo "e2e_budget: ok" && exit 0
echo "e2e_budget: $fails failed"
exit 1
