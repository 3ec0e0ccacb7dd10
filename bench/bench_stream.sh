#!/bin/sh
# bench/bench_stream.sh: expert streaming under a memory cap (issue "Stream
# experts from SSD under a fixed memory budget").
#
# A synthetic Qwen3-30B-A3B-shaped Q4_K model of LAYERS layers (default 28:
# ~9.9 GB) runs inside ../shared/bin/memcap LIMIT (a memory cgroup that counts
# the page cache, like a machine with LIMIT of RAM), after its pages are
# dropped from the page cache:
#   1. flashmoe (default: io_uring + O_DIRECT, expert cache, prefetch) with
#      --mem a little below LIMIT;
#   2. the same with --prefetch off;
#   3. --io mmap with no budget: what a page-cache engine does.
# Generation samples at temperature 1 with a fixed seed (random weights decoded
# greedily repeat one token and flatter any cache). Also: fio's 1 MiB
# O_DIRECT random-read bandwidth on the same file (the physical limit).
# Usage: sh bench/bench_stream.sh [LAYERS] [LIMIT] [MEM] [N_GEN]
set -e
cd "$(dirname "$0")/.."
LAYERS=${1:-28}
LIMIT=${2:-3.2G}
MEM=${3:-3G}
NGEN=${4:-64}
SHARED=$(cd .. && pwd)/shared/bin
B=build/release/flashmoe
M=build/models/q3-30b-shape-L$LAYERS.gguf
make -s >/dev/null
mkdir -p build/models build/bench
if [ ! -f "$M" ]; then
	echo "generating $M"
	$B gen-tiny --out "$M" --type q4_k --layers "$LAYERS" --hidden 2048 --heads 32 --kv-heads 4 \
		--head-dim 128 --experts 128 --experts-used 8 --expert-ff 768 --vocab 151936 --ctx 4096 --seed 1
fi
ls -l "$M"
echo "== fio: 1 MiB O_DIRECT random reads, iodepth 16, io_uring"
python3 "$SHARED/dropcache" "$M" >/dev/null
fio --name=rr --filename="$M" --direct=1 --rw=randread --bs=1M --iodepth=16 --ioengine=io_uring \
	--runtime=20 --time_based --readonly --output-format=terse --terse-version=3 2>/dev/null |
	awk -F';' '{printf "fio: %.2f GB/s\n", $7 * 1024 / 1e9}' | tee build/bench/fio.txt
run() { # label, flashmoe args...
	label=$1
	shift
	python3 "$SHARED/dropcache" "$M" >/dev/null
	echo "== $label"
	"$SHARED/memcap" "$LIMIT" $B generate -m "$M" --token-ids 1,2,3,4,5,6,7,8 -n "$NGEN" --temp 1 \
		--top-k 0 --top-p 1 --min-p 0 --seed 7 --ids --stats "$@" 2>&1 >/dev/null |
		grep -E "prompt|memory|experts|read|prefetch|memcap|flashmoe" | tee -a "build/bench/stream-$label.txt"
}
rm -f build/bench/stream-*.txt
run default --mem "$MEM" --verbose
run no-prefetch --mem "$MEM" --prefetch off
run mmap --io mmap
