#!/bin/sh
# bench/bench_capped.sh: generation under a memory cap a third of the file
# (issue 16's headline run), every prefetch mode and cache policy of interest,
# with the disk's bandwidth measured in the same run and the I/O-bound
# ceiling of each run worked out from the bytes it read.
#
# The 12-layer Qwen3-30B-A3B-shaped Q4_K file of bench_core.sh (made with
# gen-tiny --expert-pool 64 when missing: 64 distinct experts per tensor,
# repeated, so it is written in minutes; the bytes read per expert are the
# same) runs inside ../shared/bin/memcap CAP with --mem 95% of CAP, after
# dropcache, 8 prompt ids then 48 generated tokens at temperature 1 (seed 1),
# 2 threads. The runs alternate, REPS times.
#
#   ceiling tok/s = fio GB/s / (MB read per generated token)
#   (reads of the prompt count toward the run's bytes; they are 8 of 56 tokens)
#
# IOCAP=BYTES_PER_S throttles the disk (bench/iocap.sh) for fio and every run:
# a slower disk on the same machine, to see where prefetch pays and where not.
# A run is "label:flags", or "label:@BINARY flags" to run another build (the
# baseline: main before a change, built elsewhere).
# Usage: [IOCAP=B/s] sh bench/bench_capped.sh [REPS=2] [MODEL] ["label:flags" ...]
set -e
cd "$(dirname "$0")/.."
REPS=${1:-2}
M=${2:-build/models/q3-30b-shape-L12.gguf}
if [ $# -ge 2 ]; then shift 2; else shift $#; fi
SHARED=$(cd .. && pwd)/shared/bin
B=build/release/flashmoe
CAPIO=""
[ -n "${IOCAP:-}" ] && CAPIO="sh bench/iocap.sh $IOCAP"
make -s >/dev/null
if [ ! -f "$M" ]; then
	mkdir -p "$(dirname "$M")"
	echo "generating $M"
	$B gen-tiny --out "$M" --type q4_k --layers 12 --hidden 2048 --heads 32 --kv-heads 4 \
		--head-dim 128 --experts 128 --experts-used 8 --expert-ff 768 --vocab 151936 \
		--ctx 40960 --seed 1 --expert-pool 64
fi
size=$(stat -L -c %s "$M")
cap=$((size / 3))
mem=$((cap / 100 * 95))
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"
echo "model: $M ($size bytes); memcap $cap bytes, --mem $mem"
python3 "$SHARED/dropcache" "$M" >/dev/null
echo "disk throttle: ${IOCAP:-none} bytes/s"
fio_gbs=$($CAPIO fio --name=rr --filename="$M" --direct=1 --rw=randread --bs=1M --iodepth=16 \
	--ioengine=io_uring --runtime=15 --time_based --readonly --output-format=terse \
	--terse-version=3 2>/dev/null | awk -F';' '{printf "%.3f", $7 * 1024 / 1e9}')
echo "fio 1 MiB O_DIRECT random reads, QD 16: $fio_gbs GB/s"
if [ $# -eq 0 ]; then
	set -- "default:" "prefetch-on:--prefetch on" "prefetch-off:--prefetch off"
fi
printf '%-16s %8s %7s %9s %8s %7s %9s %7s %s\n' run tok/s hits MiB MB/tok wait ceiling "%ceil" "prefetch / memcap peak"
for rep in $(seq "$REPS"); do
	for spec in "$@"; do
		label=${spec%%:*}
		flags=${spec#*:}
		bin=$B
		case $flags in @*) # "@BINARY flags": another build (e.g. main before a change)
			bin=${flags%% *}
			bin=${bin#@}
			case $flags in *" "*) flags=${flags#* } ;; *) flags="" ;; esac ;;
		esac
		python3 "$SHARED/dropcache" "$M" >/dev/null
		# shellcheck disable=SC2086
		$CAPIO "$SHARED/memcap" "$cap" "$bin" generate -m "$M" --token-ids 1,2,3,4,5,6,7,8 -n 48 --temp 1 \
			--top-k 0 --top-p 1 --min-p 0 --seed 1 --ids --stats --mem "$mem" $flags \
			2>&1 >/dev/null | tee "build/bench-capped-$label.txt" |
			awk -v l="$label" -v fio="$fio_gbs" '
			/generation:/ { g = $0; sub(/.*generation: /, "", g); ng = g + 0
				sub(/.*\(/, "", g); tok = g + 0 }
			/prompt:/ { p = $0; sub(/prompt: /, "", p); np = p + 0 }
			/lookups/ { h = $0; sub(/.*hits [0-9]+ \(/, "", h); sub(/\).*/, "", h) }
			/ read .* MiB in/ { mib = $2; w = $0; sub(/.*\(/, "", w); sub(/\).*/, "", w) }
			/prefetch on for/ { pf = $0; sub(/.*prefetch on for /, "", pf); sub(/ one-token.*/, "", pf) }
			/memcap:/ { pk = $0; sub(/.*peak=/, "", pk); sub(/ .*/, "", pk)
				oom = $0; sub(/.*oom_kills=/, "", oom); sub(/ .*/, "", oom) }
			END {
				mbt = mib * 1.048576 / (np + ng)
				ceil = mbt > 0 ? fio * 1000 / mbt : 0
				printf "%-16s %8.2f %7s %9.0f %8.1f %7s %9.2f %6.0f%% on %s; peak %s oom %s\n",
					l, tok, h, mib, mbt, w, ceil, (ceil > 0 ? 100 * tok / ceil : 0), pf, pk, oom
			}'
	done
done
