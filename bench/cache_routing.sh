#!/bin/sh
# bench/cache_routing.sh [MODEL] [CACHE] [CHUNKS] [POLICY:T ...]: what cache-aware routing
# (--cache-routing T) costs and gains on a streamed model (issue 16 item 3).
# Quality: KL from the same model run resident (no routing) over the first
# CHUNKS windows of 512 tokens of the held-out text, evaluated token by token
# (-b 1, so the cache sees what a generation shows it) with the expert cache
# at CACHE bytes; speed and hit rate: 128 generated tokens (temperature 0)
# with the same cache (prefetch off). Rows for docs/QUALITY.md and
# docs/BENCHMARKS.md. Default rows: pred at 0 (off), 0.05, 0.1, 0.2, 0.3, and
# lfu at 0 and 0.1.
set -eu
FM_BIN=${FM_BIN:-build/release/flashmoe}
M=${1:-models/brown-moe.gguf}
C=${2:-1300K}
N=${3:-4}
shift $(($# < 3 ? $# : 3))
[ $# -gt 0 ] || set -- pred:0 pred:0.05 pred:0.1 pred:0.2 pred:0.3 lfu:0 lfu:0.1
T=${FM_HELDOUT:-models/brown-heldout.txt}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
$FM_BIN perplexity -m "$M" -f "$T" -c 512 --chunks "$N" -t 1 -b 1 --save-logits "$W/base.kl" \
    >/dev/null 2>&1
echo "| policy | --cache-routing | perplexity | KL mean | KL max | top-1 | generation tok/s | hit rate |"
for row in "$@"; do
    pol=${row%%:*} th=${row#*:}
    kl=$($FM_BIN perplexity -m "$M" --kl-base "$W/base.kl" -t 1 -b 1 --cache-size "$C" \
        --cache-policy "$pol" --cache-routing "$th" 2>&1 |
        awk '/^perplexity:/ {p = $2} /^kl divergence/ {k = $7; m = $11} /^top-1/ {t = $3}
             END {sub(/,$/, "", k); sub(/,$/, "", m); print p " | " k " | " m " | " t "%"}')
    gen=$($FM_BIN generate -m "$M" -p "The jury said" -n 128 --temp 0 -t 1 --cache-size "$C" \
        --cache-policy "$pol" --cache-routing "$th" --prefetch off --stats 2>&1 |
        awk '/generation:/ {for (i = 2; i <= NF; i++) if ($i ~ /^tok\/s/) g = $(i - 1)}
             /experts: io/ {for (i = 1; i < NF; i++) if ($i == "hits") h = $(i + 2)}
             END {gsub(/[(),]/, "", g); gsub(/[(),]/, "", h); print g " | " h}')
    echo "| $pol | $th | $kl | $gen |"
done
