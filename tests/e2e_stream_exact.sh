#!/bin/sh
# tests/e2e_stream_exact.sh: where the experts live never changes a bit of
# the logits (issue 14.6). On main 9be80f2 a model with experts wide enough
# that the row split of a product depends on how many experts share one job
# (resident: all of a layer's experts; streamed: the cached ones, then each
# miss alone) gave other logits when streamed: the decode kernel reduced a
# 4-row group's sums in another order than a lone row's.
#
# One 57 MB Q4_K model (2 layers, hidden 1024, 32 experts, 8 used), 37 token
# ids, every position's logits: resident, then streamed under several cache
# sizes, policies, prefetch settings and I/O modes, each evaluated token by
# token (decode kernels) and as one batch (prefill kernels). Within a batch
# size every run must give the same bytes.
# Exit 0 pass, 1 fail.
cd "$(dirname "$0")/.." || exit 1
BIN=${FM_BIN:-build/release/flashmoe}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0

$BIN gen-tiny --out "$T/m.gguf" --type q4_k --layers 2 --hidden 1024 --experts 32 \
	--experts-used 8 --expert-ff 512 --seed 11 >/dev/null || { echo "FAIL gen-tiny"; exit 1; }
IDS=$(seq -s, 11 47)

for b in 1 37; do
	base=""
	while read -r name args; do
		# shellcheck disable=SC2086
		if ! $BIN logits -m "$T/m.gguf" --token-ids "$IDS" --out "$T/l.f32" --batch $b -t 2 \
			$args >"$T/out" 2>&1; then
			echo "FAIL batch $b, $name: $(tail -n 1 "$T/out")"
			fails=$((fails + 1))
			continue
		fi
		h=$(sha1sum <"$T/l.f32" | cut -c1-16)
		[ -z "$base" ] && base=$h
		if [ "$h" = "$base" ]; then
			echo "ok   batch $b, $name: $h"
		else
			echo "FAIL batch $b, $name: $h, resident $base"
			fails=$((fails + 1))
		fi
	done <<EOF
resident
mmap --io mmap
min-cache-lfu --cache-size 7M
min-cache-lru-noprefetch --cache-size 7M --cache-policy lru --prefetch off
third-arc-pread --cache-size 16M --cache-policy arc --io pread
half-lru-buffered --cache-size 24M --cache-policy lru --io buffered
all-uring --cache-size 64M
EOF
done
[ $fails -eq 0 ] && echo "all streamed runs bit-identical to resident" && exit 0
exit 1
