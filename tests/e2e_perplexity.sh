#!/bin/sh
# tests/e2e_perplexity.sh: `flashmoe perplexity` against PyTorch's figure.
#
# models/brown-moe.ppl.json holds the perplexity that tools/train/eval_ppl.py
# (PyTorch, fp32) computed from the shipped model's own weights (dequantized)
# over models/brown-heldout.txt, by the method flashmoe implements (windows of
# 512 tokens, the second half of each scored); "first_chunks" is the figure of
# the first few windows. This test converts the shipped model to F32 and F16
# with `flashmoe quantize` (the F32 copy holds exactly the weights PyTorch
# used), runs `flashmoe perplexity` over the same windows, and requires the
# same token ids (count and FNV-1a hash) and a perplexity within 0.5% of
# PyTorch's. The shipped Q8_0 file itself (8-bit activations) gets a looser
# 2% and is printed for the record. Also: the default model (no -m) is found,
# and bad input to perplexity fails with a message.
# Exit 0 pass, 1 fail, 77 skip (no built-in model in this checkout).
cd "$(dirname "$0")/.." || exit 1
BIN=${FM_BIN:-build/release/flashmoe}
case $BIN in /*) ;; *) BIN=$PWD/$BIN ;; esac
M=models/brown-moe.gguf
J=models/brown-moe.ppl.json
TXT=models/brown-heldout.txt
PY=/usr/bin/python3
if [ ! -f "$M" ] || [ ! -f "$J" ] || [ ! -f "$TXT" ]; then
	echo "skip: $M, $J or $TXT missing"
	exit 77
fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fails=$((fails + 1)); }

jget() { # key path in the JSON, e.g. first_chunks.ppl
	$PY -c "
import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2].split('.'):
    v = v[k]
print(v)" "$J" "$1"
}
chunks=$(jget first_chunks.n_chunk)
want=$(jget first_chunks.ppl)
want_scored=$(jget first_chunks.n_scored)
want_hash=$(jget fnv1a64)
want_tokens=$(jget n_tokens)
echo "PyTorch: perplexity $want over the first $chunks windows ($want_scored tokens scored)"

# $1 label, $2 model, $3 tolerance (relative)
check() {
	out=$($BIN perplexity -m "$2" -f "$TXT" -c 512 --chunks "$chunks" -t 2 2>&1) || {
		bad "$1: perplexity failed: $out"
		return
	}
	got=$(echo "$out" | sed -n 's/^perplexity: \([0-9.]*\)$/\1/p')
	toks=$(echo "$out" | sed -n 's/^tokens: \([0-9]*\) (fnv1a64 \([0-9a-f]*\)).*/\1 \2/p')
	scored=$(echo "$out" | sed -n 's/^scored tokens: \([0-9]*\).*/\1/p')
	[ "$toks" = "$want_tokens $want_hash" ] && ok "$1: same $want_tokens token ids as PyTorch" ||
		bad "$1: token ids '$toks', PyTorch '$want_tokens $want_hash'"
	[ "$scored" = "$want_scored" ] || bad "$1: $scored tokens scored, PyTorch $want_scored"
	if awk "BEGIN { d = ($got - $want) / $want; if (d < 0) d = -d; exit !(d <= $3) }"; then
		ok "$1: perplexity $got vs PyTorch $want (within $3)"
	else
		bad "$1: perplexity '$got' vs PyTorch $want (tolerance $3)"
	fi
}
$BIN quantize -q -m "$M" --out "$T/f32.gguf" --type f32 && check F32 "$T/f32.gguf" 0.005 ||
	bad "quantize to f32"
$BIN quantize -q -m "$M" --out "$T/f16.gguf" --type f16 && check F16 "$T/f16.gguf" 0.005 ||
	bad "quantize to f16"
check "shipped $(basename "$M")" "$M" 0.02

# the built-in model is what generate uses without -m
out=$(cd /tmp && "$BIN" generate -p "The" -n 4 --seed 1 2>&1) &&
	echo "$out" | grep -q "built-in model .*brown-moe.gguf" && ok "generate without -m uses the built-in model" ||
	bad "generate without -m: $out"

# bad input
for args in "-m $M" "-m $M -f $T/none.txt" "-m $M -f $TXT -c 3" "-m $M -f $TXT --kl-base $T/none.bin"; do
	$BIN perplexity $args >"$T/out" 2>&1
	rc=$?
	if [ $rc -ne 0 ] && [ $rc -lt 128 ] && [ -s "$T/out" ]; then
		ok "perplexity $args: exit $rc, '$(head -n 1 "$T/out")'"
	else
		bad "perplexity $args: exit $rc"
	fi
done
[ $fails -eq 0 ] && echo "all passed" && exit 0
echo "$fails failed"
exit 1
