#!/bin/sh
# tools/demo.sh: the README's demo. Writes a tiny random-weight model (until a
# trained default model ships) and generates from it with statistics.
set -e
cd "$(dirname "$0")/.."
BIN=build/release/flashmoe
mkdir -p build/models
M=build/models/demo-tiny.gguf
[ -f "$M" ] || $BIN gen-tiny --out "$M" --seed 42 --type q8_0 --layers 4 --hidden 256 \
	--heads 8 --kv-heads 2 --head-dim 32 --experts 16 --experts-used 4 --expert-ff 256 --vocab 2048
$BIN info -m "$M" | head -n 6
echo "--- generate (random weights: the text is noise, the machinery is real)"
$BIN generate -m "$M" -p "Once upon a time" -n 32 --temp 0.8 --seed 1 --stats
