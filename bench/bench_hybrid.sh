#!/bin/sh
# bench/bench_hybrid.sh: the Qwen3.5 family at its real widths (issue 15).
#
# A synthetic Qwen3.5-397B-A17B-shaped qwen35moe file: hidden 4096, 512
# experts of width 1024 (10 routed + a shared expert of 1024), 32 query heads
# and 2 KV heads of 256 (rotary 64), DeltaNet 16 key heads / 64 value heads
# of 128, conv 4, three DeltaNet layers then one attention layer, but 4
# layers instead of 60 and a 32000-token vocabulary (the real 248320 would
# make the output head, read once per token, outweigh 4 layers' experts),
# Q4_K: 14.97 GB. gen-tiny --expert-pool 16 draws 16 distinct experts per
# tensor and repeats them (every byte is still on disk and read; routing
# still picks among 512 by each layer's own router).
#
#   1. resident: flashmoe vs llama.cpp (bench/vs_llamacpp.py speed, same file,
#      same threads), llama.cpp with and without its Q4_K repacking;
#   2. prefill: one batch (the DeltaNet's chunked form) vs token by token;
#   3. streamed under a cap of a third of the file (../shared/bin/memcap,
#      page cache dropped first): flashmoe with --mem a little under the cap,
#      temperature 1; fio's 1 MiB O_DIRECT random-read bandwidth on the same
#      file in the same run, for the I/O-bound ceiling.
# Usage: sh bench/bench_hybrid.sh [WHAT=all|resident|prefill|stream] [FILE]
set -e
cd "$(dirname "$0")/.."
WHAT=${1:-all}
M=${2:-build/models/q35-397b-shape.gguf}
SHARED=$(cd .. && pwd)/shared/bin
B=${FM_BIN:-build/release/flashmoe}
T=${THREADS:-2}
make -s >/dev/null
mkdir -p "$(dirname "$M")" build/bench
if [ ! -f "$M" ]; then
	echo "generating $M (~15 GB)"
	$B gen-tiny --arch qwen35moe --out "$M" --type q4_k --layers 4 --hidden 4096 --experts 512 \
		--experts-used 10 --expert-ff 1024 --shared-ff 1024 --heads 32 --kv-heads 2 --head-dim 256 \
		--rot 64 --ssm-state 128 --ssm-groups 16 --ssm-heads 64 --vocab 32000 --ctx 262144 \
		--expert-pool 16 --seed 397
fi
ls -l "$M"
P=$(sh tools/llamacpp_venv.sh)/bin/python

if [ "$WHAT" = all ] || [ "$WHAT" = resident ]; then
	echo "== resident, $T threads: flashmoe vs llama.cpp (repack on, then off)"
	FM_BIN=$B $P bench/vs_llamacpp.py speed "$M" --threads "$T" -p 64 -n 16 --reps 3 | tail -n 5
	FM_BIN=$B $P bench/vs_llamacpp.py speed "$M" --threads "$T" -p 64 -n 16 --reps 3 \
		--llama-repack off | tail -n 5
fi
if [ "$WHAT" = all ] || [ "$WHAT" = prefill ]; then
	echo "== prefill of 256 tokens, $T threads: one batch (chunked DeltaNet) vs token by token"
	$B bench -m "$M" -p 8 -n 0 -t "$T" >/dev/null # page cache
	for rep in 1 2 3; do
		for b in 256 1; do
			$B bench -m "$M" -p 256 -n 0 -b $b -t "$T" --json
		done
	done
fi
if [ "$WHAT" = all ] || [ "$WHAT" = stream ]; then
	size=$(stat -L -c %s "$M")
	cap=$((size / 3))
	mem=$((cap * 95 / 100))
	echo "== fio: 1 MiB O_DIRECT random reads, iodepth 16, io_uring"
	python3 "$SHARED/dropcache" "$M" >/dev/null
	fio --name=rr --filename="$M" --direct=1 --rw=randread --bs=1M --iodepth=16 --ioengine=io_uring \
		--runtime=20 --time_based --readonly --output-format=terse --terse-version=3 2>/dev/null |
		awk -F';' '{printf "fio: %.2f GB/s\n", $7 * 1024 / 1e9}'
	for extra in "" "--prefetch off"; do
		echo "== streamed: memcap $cap, --mem $mem $extra, temperature 1, 48 tokens"
		python3 "$SHARED/dropcache" "$M" >/dev/null
		# shellcheck disable=SC2086
		"$SHARED/memcap" "$cap" $B generate -m "$M" --mem "$mem" -p "The" -n 48 --temp 1 --seed 1 \
			-t "$T" --stats $extra 2>&1 | tail -n 9
	done
fi
