#!/bin/sh
# tools/demo.sh: the README's demo. Generates English-like text from the
# built-in model (models/brown-moe.gguf, a small MoE trained on the Brown
# corpus by tools/train/), then runs it again under a deliberately small
# --mem with its experts streamed from the file, and prints the statistics.
# Falls back to a tiny random-weight model when the built-in one is missing.
set -e
cd "$(dirname "$0")/.."
BIN=build/release/flashmoe
M=models/brown-moe.gguf
if [ -f "$M" ]; then
	$BIN info -m "$M" | head -n 6
	echo "--- flashmoe generate -p 'The jury said' -n 60 (no -m: the built-in model)"
	$BIN generate -p "The jury said" -n 60 --temp 0.8 --seed 1
	echo
	echo "--- the same model within --mem 80M, its experts streamed from the file into a"
	echo "    2 MiB cache (38% of them; --cache-size streams even where all would fit)"
	$BIN generate -p "In the spring of that year" -n 60 --temp 0.8 --seed 2 \
		--mem 80M --cache-size 2M --verbose --stats
	exit 0
fi
mkdir -p build/models
M=build/models/demo-tiny.gguf
[ -f "$M" ] || $BIN gen-tiny --out "$M" --seed 42 --type q8_0 --layers 4 --hidden 256 \
	--heads 8 --kv-heads 2 --head-dim 32 --experts 16 --experts-used 4 --expert-ff 256 --vocab 2048
$BIN info -m "$M" | head -n 6
echo "--- generate (random weights: the text is noise, the machinery is real)"
$BIN generate -m "$M" -p "Once upon a time" -n 32 --temp 0.8 --seed 1 --stats
