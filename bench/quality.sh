#!/bin/sh
# bench/quality.sh: what each speed trick costs in quality, as numbers
# (docs/QUALITY.md). For a base model at F16 (exported from the training
# checkpoint: tools/train/README.md), over the first CHUNKS windows of 512
# tokens of the held-out text:
#   - held-out perplexity, and the KL divergence of the next-token
#     distribution from the F16 model's (flashmoe perplexity --save-logits /
#     --kl-base, as llama.cpp's KL-divergence mode), and top-1 agreement;
#   - for the expert weights requantized to Q8_0, Q6_K, Q5_K, Q4_K, Q3_K, Q2_K (the rest
#     stays F16; flashmoe quantize --type f16 --expert-type T);
#   - for the token embedding (here also the output head) at Q8_0, Q4_0, Q4_K,
#     Q3_K, Q2_K, the rest F16;
#   - for fewer routed experts per token than trained (--experts-per-token K);
#   - for the shipped file as it is;
#   - the KV cache formats (docs/TURBOQUANT.md), on the shipped file against
#     itself with an F32 KV cache (first KV_CHUNKS=20 windows), keys and
#     values alone and together, with --kv-compare's attention-output error
#     (K and V / K only / V only, all layers).
# Usage: sh bench/quality.sh BASE_F16.gguf [SHIPPED.gguf] [CHUNKS=40] [TEXT]
# Writes build/quality/ (the base distributions take ~0.3 MB per scored token)
# and prints a Markdown table.
set -e
cd "$(dirname "$0")/.."
BASE=${1:?usage: sh bench/quality.sh BASE_F16.gguf [SHIPPED.gguf] [CHUNKS] [TEXT]}
SHIPPED=${2:-models/brown-moe.gguf}
CHUNKS=${3:-40}
TXT=${4:-models/brown-heldout.txt}
B=${FM_BIN:-build/release/flashmoe}
Q=${OUT:-build/quality}
[ -n "$FM_BIN" ] || make -s >/dev/null
mkdir -p $Q
K=$($B info -m "$BASE" | sed -n 's/^experts [0-9]* (\([0-9]*\) used.*/\1/p')
echo "base $BASE: $K experts per token; $CHUNKS windows of 512 tokens of $TXT" >&2

# label, model, extra flags...: one row of the table
row() {
	label=$1 model=$2
	shift 2
	out=$Q/$(echo "$label" | tr -c 'A-Za-z0-9_.=-' '_').txt
	$B perplexity -m "$model" -f "$TXT" -c 512 --chunks "${ROW_CHUNKS:-$CHUNKS}" -t 2 \
		--kl-base "${KLBASE:-$Q/base.kl}" "$@" >"$out" 2>&1 || { cat "$out" >&2; exit 1; }
	ppl=$(sed -n 's/^perplexity: \([0-9.]*\)$/\1/p' "$out")
	kl=$(sed -n 's/^kl divergence (base || current): mean \([0-9.e+-]*\) +\/- \([0-9.e+-]*\), max \([0-9.e+-]*\).*/\1 | \2 | \3/p' "$out")
	top=$(sed -n 's/^top-1 agreement: \([0-9.]*\) %.*/\1%/p' "$out")
	size=$(stat -c %s "$model")
	if [ -n "$KV_ROWS" ]; then
		err=$(sed -n 's/^| all | \([0-9.]*\) | \([0-9.]*\) | \([0-9.]*\) | .*/\1 \/ \2 \/ \3/p' "$out")
		echo "| $label | \`$(echo "$*" | sed 's/--kv-compare //')\` | $ppl | $kl | $top | $err |"
		return
	fi
	echo "| $label | $(awk "BEGIN { printf \"%.2f\", $size / 1e6 }") | $ppl | $kl | $top |"
}

$B perplexity -m "$BASE" -f "$TXT" -c 512 --chunks "$CHUNKS" -t 2 --save-logits $Q/base.kl \
	>$Q/base.txt 2>&1 || { cat $Q/base.txt >&2; exit 1; }
echo "| configuration | file MB | perplexity | KL mean (nats/token) | +/- | KL max | top-1 same as F16 |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
row "F16 (base), KV f32" "$BASE"
for t in q8_0 q6_k q5_k q4_k q3_k q2_k; do
	$B quantize -q -m "$BASE" --out $Q/experts-$t.gguf --type f16 --expert-type $t >$Q/quantize-$t.txt 2>&1
	fb=$(grep -c "using" $Q/quantize-$t.txt || true)
	row "experts $t, rest F16$([ "$fb" -gt 0 ] && echo " ($fb tensors fell back to another type)")" \
		$Q/experts-$t.gguf
done
# the token embedding (in a tied model also the output head)
tied=" (tied: also the output head)"
$B info -m "$BASE" | grep -q '^ *output\.weight' && tied=""
for t in q8_0 q4_0 q4_k q3_k q2_k; do
	$B quantize -q -m "$BASE" --out $Q/embd-$t.gguf --type f16 --embd-type $t >$Q/quantize-embd-$t.txt 2>&1
	row "token embedding $t$tied, rest F16" $Q/embd-$t.gguf
done
k=$((K - 1))
while [ $k -ge 1 ]; do
	row "F16, $k of $K experts per token" "$BASE" --experts-per-token $k
	k=$((k - 1))
done
row "F16, KV cache f16" "$BASE" --kv-type f16
[ -f "$SHIPPED" ] && row "shipped: $(basename "$SHIPPED")" "$SHIPPED"
echo "(scored tokens: $(sed -n 's/^scored tokens: \([0-9]*\).*/\1/p' $Q/base.txt))"

# KV cache formats on the shipped file, against itself with an F32 cache
[ -f "$SHIPPED" ] || exit 0
KVC=${KV_CHUNKS:-20}
$B perplexity -m "$SHIPPED" -f "$TXT" -c 512 --chunks "$KVC" -t 2 --save-logits $Q/kvbase.kl \
	>$Q/kvbase.txt 2>&1 || { cat $Q/kvbase.txt >&2; exit 1; }
echo
echo "| KV cache (K / V) | flags | perplexity | KL mean (nats/token) | +/- | KL max | top-1 | attention error K+V / K / V |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
export KV_ROWS=1 KLBASE=$Q/kvbase.kl ROW_CHUNKS=$KVC
for f in f16 q8_0 q8_0/f16 f16/q8_0 tq4 tq3.5 tq3 tq2.5 tq3.5p/tq3.5 q8_0/tq4 q8_0/tq3.5 \
	q8_0/tq2.5 tq4/tq3.5 tq3.5/tq4 tq4/tq3 tq4/tq2.5; do
	row "$f" "$SHIPPED" --kv-compare -ctk "${f%/*}" -ctv "${f#*/}"
done
echo "(scored tokens: $(sed -n 's/^scored tokens: \([0-9]*\).*/\1/p' $Q/kvbase.txt); base: the shipped file with an F32 KV cache)"
