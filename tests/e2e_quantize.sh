#!/bin/sh
# e2e_quantize.sh: `flashmoe quantize` end to end on tiny random models.
#   - f32 -> f32 copies every tensor: logits byte-identical to the input's
#   - f32 -> q8_0 / q4_k gives the same file as requantizing (copying) what
#     gen-tiny --type q8_0 / q4_k writes for the same seed: both quantize
#     with the reference kernels, so the tensor bytes must agree exactly
#   - every output type: the types `info` shows, logits within a named
#     relative error of the f32 model's (max |a - b| / max |a|)
#   - overrides, row-length fallbacks, thread-count independence
#   - bad flags and files: one message, non-zero exit, no output left behind
set -u
BIN=${FM_BIN:-build/release/flashmoe}
T=$(mktemp -d "${TMPDIR:-/tmp}/e2e_quantize.XXXXXX")
trap 'rm -rf "$T"' EXIT
fails=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fails=$((fails + 1)); }

# expect_error NAME PATTERN CMD...: non-zero (< 128) exit and PATTERN in stderr
expect_error() {
	name=$1 pat=$2
	shift 2
	"$@" >"$T/out" 2>"$T/err"
	rc=$?
	if [ $rc -eq 0 ] || [ $rc -ge 128 ]; then
		bad "$name: exit $rc"; cat "$T/err"; return
	fi
	if ! grep -qi -- "$pat" "$T/err"; then
		bad "$name: message lacks '$pat':"; cat "$T/err"; return
	fi
	ok "$name: $(head -n 1 "$T/err")"
}

# type_of MODEL TENSOR: the type `info` lists for the tensor
type_of() { $BIN info -m "$1" | awk -v n="$2" '$1 == n { print $2 }'; }

# relerr A B: max |a - b| / max |a| over two float32 files ("nan" if any is not finite)
relerr() {
	od -An -v -f -w4 "$1" | tr -d ' ' >"$T/va"
	od -An -v -f -w4 "$2" | tr -d ' ' >"$T/vb"
	if grep -qiv '^[-+0-9.e]*$' "$T/va" "$T/vb" || [ "$(wc -l <"$T/va")" -ne "$(wc -l <"$T/vb")" ]; then
		echo nan; return
	fi
	paste "$T/va" "$T/vb" | awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > md) md = d;
		a = $1 < 0 ? -$1 : $1; if (a > ma) ma = a } END { printf "%.4g\n", (ma > 0 ? md / ma : 0) }'
}

# below X BOUND: X is a number < BOUND ("nan" or "" fail)
below() { awk -v x="$1" -v b="$2" 'BEGIN { exit !(x ~ /^[0-9.e+-]+$/ && x + 0 < b + 0) }'; }

logits() { $BIN logits -m "$1" --token-ids 1,2,3,4,5 --out "$2"; }

# ---- small model (hidden 64): f32 copy, q8_0, fallbacks ----
$BIN gen-tiny --out "$T/m32.gguf" --seed 1 || { bad "gen-tiny"; exit 1; }
logits "$T/m32.gguf" "$T/l32" || { bad "logits f32"; exit 1; }

$BIN quantize -m "$T/m32.gguf" --out "$T/c32.gguf" --type f32 >"$T/out" 2>"$T/err" &&
	ok "quantize f32 -> f32" || { bad "quantize f32 -> f32"; cat "$T/err"; }
[ "$(grep -c 'bytes (copied)$' "$T/out")" -eq 27 ] && ok "27 tensor lines, all copied" ||
	bad "expected 27 copied tensor lines: $(cat "$T/out")"
grep -q "^quantized 27 tensors" "$T/out" && ok "summary: $(tail -n 1 "$T/out")" || bad "no summary line"
logits "$T/c32.gguf" "$T/lc32" && cmp -s "$T/l32" "$T/lc32" &&
	ok "f32 -> f32 logits byte-identical" || bad "f32 -> f32 logits differ"
t1=$($BIN tokenize -m "$T/m32.gguf" -p "the cat sat" --ids)
t2=$($BIN tokenize -m "$T/c32.gguf" -p "the cat sat" --ids)
[ -n "$t1" ] && [ "$t1" = "$t2" ] && ok "tokenizer metadata copied ($t1)" || bad "tokenize '$t1' vs '$t2'"

$BIN quantize -m "$T/m32.gguf" --out "$T/q8.gguf" --type q8_0 -q >"$T/out" 2>"$T/err" ||
	{ bad "quantize q8_0"; cat "$T/err"; }
[ "$(wc -l <"$T/out")" -eq 1 ] && ok "-q prints only the summary" || bad "-q printed: $(cat "$T/out")"
for n in token_embd.weight output.weight blk.0.attn_q.weight blk.1.ffn_down_exps.weight; do
	[ "$(type_of "$T/q8.gguf" $n)" = q8_0 ] || bad "q8_0: $n is $(type_of "$T/q8.gguf" $n)"
done
for n in output_norm.weight blk.0.attn_norm.weight blk.1.attn_k_norm.weight blk.0.ffn_gate_inp.weight; do
	[ "$(type_of "$T/q8.gguf" $n)" = f32 ] || bad "q8_0: $n is $(type_of "$T/q8.gguf" $n), not f32"
done
ok "q8_0: matrices q8_0, norms and router f32"
logits "$T/q8.gguf" "$T/l8" || bad "logits q8_0"
# measured 0.0197 (weights and activations both 8-bit on this random model)
e=$(relerr "$T/l32" "$T/l8")
below "$e" 0.05 && ok "q8_0 logits: relative error $e < 0.05" || bad "q8_0 logits: relative error $e"

$BIN gen-tiny --out "$T/g8.gguf" --seed 1 --type q8_0 &&
	$BIN quantize -m "$T/g8.gguf" --out "$T/g8c.gguf" --type q8_0 -q >/dev/null &&
	cmp -s "$T/q8.gguf" "$T/g8c.gguf" && ok "f32 -> q8_0 equals gen-tiny --type q8_0 byte for byte" ||
	bad "f32 -> q8_0 differs from gen-tiny --type q8_0"

$BIN quantize -m "$T/m32.gguf" --out "$T/q8t1.gguf" --type q8_0 -t 1 -q >/dev/null &&
	$BIN quantize -m "$T/m32.gguf" --out "$T/q8t3.gguf" --type q8_0 -t 3 -q >/dev/null &&
	cmp -s "$T/q8t1.gguf" "$T/q8.gguf" && cmp -s "$T/q8t3.gguf" "$T/q8.gguf" &&
	ok "-t 1, 2, 3 write the same file" || bad "output depends on -t"

$BIN quantize -m "$T/q8.gguf" --out "$T/d32.gguf" --type f32 -q >/dev/null &&
	[ "$(type_of "$T/d32.gguf" blk.0.ffn_up_exps.weight)" = f32 ] && logits "$T/d32.gguf" "$T/ld" ||
	bad "q8_0 -> f32"
# measured 0.014: the weights' rounding alone (activations stay f32 here)
e=$(relerr "$T/l32" "$T/ld")
below "$e" 0.05 && ok "q8_0 -> f32 (dequantize): relative error $e < 0.05" || bad "q8_0 -> f32: $e"

# hidden 64: no row is a whole 256-block, so q4_k falls back to q8_0 and says so
$BIN quantize -m "$T/m32.gguf" --out "$T/fb.gguf" --type q4_k -q >/dev/null 2>"$T/err" ||
	{ bad "quantize q4_k (fallback)"; cat "$T/err"; }
grep -q "token_embd.weight.*not whole q4_K blocks; using q8_0" "$T/err" &&
	[ "$(type_of "$T/fb.gguf" blk.0.attn_q.weight)" = q8_0 ] &&
	ok "q4_k -> q8_0 fallback: $(head -n 1 "$T/err")" || { bad "q4_k fallback"; cat "$T/err"; }
# hidden 48: rows of 48 are not whole 32-blocks either: f16
$BIN gen-tiny --out "$T/h48.gguf" --seed 1 --hidden 48 &&
	$BIN quantize -m "$T/h48.gguf" --out "$T/h48q.gguf" --type q4_k -q >/dev/null 2>"$T/err" &&
	[ "$(type_of "$T/h48q.gguf" blk.0.attn_q.weight)" = f16 ] &&
	[ "$(type_of "$T/h48q.gguf" blk.0.attn_output.weight)" = q8_0 ] &&
	grep -q "attn_q.weight.*using f16" "$T/err" && ok "q4_k -> f16 fallback for rows of 48" ||
	{ bad "f16 fallback"; cat "$T/err"; }

# ---- K-quant-sized model (hidden and expert width 256) ----
$BIN gen-tiny --out "$T/k32.gguf" --seed 2 --hidden 256 --expert-ff 256 --head-dim 64 ||
	{ bad "gen-tiny 256"; exit 1; }
logits "$T/k32.gguf" "$T/lk32" || bad "logits 256"
# bound per type: 2-10x what was measured (f16 5.1e-4, bf16 4.6e-3, q8_0 0.018,
# q6_k 0.044, q5_k 0.17, q4_0 0.32, q4_k 0.20, q3_k 0.36, q2_k 0.74); random weights
# amplify rounding far more than a trained model's do
for tb in f16:0.005 bf16:0.02 q8_0:0.05 q6_k:0.2 q5_k:0.4 q4_0:0.7 q4_k:0.6 q3_k:1.2 q2_k:2; do
	t=${tb%%:*} bound=${tb#*:}
	if ! $BIN quantize -m "$T/k32.gguf" --out "$T/k_$t.gguf" --type "$(echo $t | tr a-z A-Z)" -q \
		>/dev/null 2>"$T/err"; then
		bad "quantize --type $t"; cat "$T/err"; continue
	fi
	got=$(type_of "$T/k_$t.gguf" blk.1.ffn_gate_exps.weight)
	[ "$got" = "$(echo $t | sed 's/_k$/_K/')" ] ||
		{ bad "$t: experts are $got"; continue; }
	[ "$(type_of "$T/k_$t.gguf" blk.0.ffn_gate_inp.weight)" = f32 ] || bad "$t: router not f32"
	logits "$T/k_$t.gguf" "$T/lk_$t" || { bad "logits $t"; continue; }
	e=$(relerr "$T/lk32" "$T/lk_$t")
	below "$e" "$bound" && ok "$t: relative error $e < $bound" || bad "$t: relative error $e >= $bound"
done
# --tensor-type: the first matching rule wins over --expert-type and --type
if $BIN quantize -m "$T/k32.gguf" --out "$T/k_tt.gguf" --type q8_0 --expert-type q4_k -q \
	--tensor-type 'ffn_down_exps=q6_k' --tensor-type 'blk\.0\.attn_[qk]\.=f16' \
	--tensor-type 'attn=q4_k' >/dev/null 2>"$T/err"; then
	got="$(type_of "$T/k_tt.gguf" blk.1.ffn_down_exps.weight) $(type_of "$T/k_tt.gguf" blk.1.ffn_up_exps.weight)"
	got="$got $(type_of "$T/k_tt.gguf" blk.0.attn_q.weight) $(type_of "$T/k_tt.gguf" blk.0.attn_v.weight)"
	got="$got $(type_of "$T/k_tt.gguf" blk.1.attn_k.weight) $(type_of "$T/k_tt.gguf" blk.0.ffn_gate_inp.weight)"
	[ "$got" = "q6_K q4_K f16 q4_K q4_K f32" ] && ok "--tensor-type rules: $got" ||
		bad "--tensor-type rules: got '$got', want 'q6_K q4_K f16 q4_K q4_K f32'"
else
	bad "quantize --tensor-type"; cat "$T/err"
fi

# independent check with the NumPy reference reader (tests/reference/): every
# key and value type copied, general.file_type set, and each tensor read back
# by NumPy's own dequantize within a per-type relative RMS error of the f32
# original (measured: f16 2.1e-4, bf16 1.7e-3, q8_0 5.1e-3, q6_k 0.017,
# q5_k 0.035, q4_k 0.069, q4_0 0.082, q3_k 0.14, q2_k 0.27)
PY=/usr/bin/python3
if $PY -c 'import numpy' 2>/dev/null; then
	$PY - "$PWD/tests/reference" "$T" <<'PYEOF' && ok "NumPy reference: metadata and tensors of all 9 types" || bad "NumPy reference check"
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from gguf_reader import GGUFFile
from dequant import dequantize_tensor
T = sys.argv[2]
src = GGUFFile(T + "/k32.gguf")
limits = {"f16": (1, 5e-4), "bf16": (32, 4e-3), "q8_0": (7, 0.01), "q6_k": (18, 0.03),
          "q5_k": (16, 0.06), "q4_k": (14, 0.11), "q4_0": (2, 0.13), "q3_k": (11, 0.2),
          "q2_k": (10, 0.4)}
new_keys = {"general.file_type", "general.quantization_version"}
keys = [(k, src.value_types[k], src.metadata[k]) for k in src.metadata if k not in new_keys]
fails = 0
for t, (ftype, bound) in limits.items():
    out = GGUFFile(f"{T}/k_{t}.gguf")
    got = [(k, out.value_types[k], out.metadata[k]) for k in out.metadata if k not in new_keys]
    if got != keys or out.get("general.file_type") != ftype or \
            out.get("general.quantization_version") != 2 or list(out.tensors) != list(src.tensors):
        print(f"{t}: metadata or tensor list differs"); fails += 1
    worst = 0.0
    for name in src.tensors:
        x = dequantize_tensor(src, name).astype(np.float64)
        y = dequantize_tensor(out, name).astype(np.float64)
        worst = max(worst, np.linalg.norm(x - y) / max(np.linalg.norm(x), 1e-30))
    print(f"{t}: worst tensor relative RMS error {worst:.3g} (bound {bound})")
    fails += not worst < bound
sys.exit(1 if fails else 0)
PYEOF
else
	echo "skip NumPy reference check: $PY has no numpy"
fi

$BIN gen-tiny --out "$T/gk.gguf" --seed 2 --hidden 256 --expert-ff 256 --head-dim 64 --type q4_k &&
	$BIN quantize -m "$T/gk.gguf" --out "$T/gkc.gguf" --type q4_k -q >/dev/null &&
	cmp -s "$T/k_q4_k.gguf" "$T/gkc.gguf" && ok "f32 -> q4_k equals gen-tiny --type q4_k byte for byte" ||
	bad "f32 -> q4_k differs from gen-tiny --type q4_k"

$BIN quantize -m "$T/k32.gguf" --out "$T/mix.gguf" --type q8_0 --expert-type q4_k \
	--embd-type f16 --output-type q6_k -q >/dev/null 2>"$T/err" || { bad "mixed types"; cat "$T/err"; }
mix="$(type_of "$T/mix.gguf" blk.0.attn_v.weight) $(type_of "$T/mix.gguf" blk.1.ffn_down_exps.weight)"
mix="$mix $(type_of "$T/mix.gguf" token_embd.weight) $(type_of "$T/mix.gguf" output.weight)"
mix="$mix $(type_of "$T/mix.gguf" blk.1.ffn_norm.weight)"
[ "$mix" = "q8_0 q4_K f16 q6_K f32" ] && ok "overrides: attn/experts/embd/output/norm = $mix" ||
	bad "overrides gave '$mix'"
# q4_k experts requantized from the q8_0 ones: any type reads back through f32
$BIN quantize -m "$T/k_q8_0.gguf" --out "$T/re.gguf" --type q8_0 --expert-type q4_k -q >/dev/null &&
	[ "$(type_of "$T/re.gguf" blk.0.ffn_up_exps.weight)" = q4_K ] && logits "$T/re.gguf" "$T/lre" &&
	below "$(relerr "$T/lk32" "$T/lre")" 0.6 && ok "q8_0 -> q4_k requantization" || bad "q8_0 -> q4_k"

# ---- bad input ----
M="$T/m32.gguf"
expect_error "unknown type" "unknown --type 'q3_x'" $BIN quantize -m "$M" --out "$T/x.gguf" --type q3_x
expect_error "type quantize cannot write" "unknown --expert-type 'q5_0'" \
	$BIN quantize -m "$M" --out "$T/x.gguf" --type q8_0 --expert-type q5_0
expect_error "--tensor-type without =" "expected REGEX=TYPE" \
	$BIN quantize -m "$M" --out "$T/x.gguf" --type q8_0 --tensor-type attn_v
expect_error "--tensor-type bad regex" "bad regular expression" \
	$BIN quantize -m "$M" --out "$T/x.gguf" --type q8_0 --tensor-type 'attn_(v=q4_k'
expect_error "--tensor-type bad type" "unknown --tensor-type 'q9_k'" \
	$BIN quantize -m "$M" --out "$T/x.gguf" --type q8_0 --tensor-type attn_v=q9_k
expect_error "missing -m" "-m IN.gguf is required" $BIN quantize --out "$T/x.gguf" --type q8_0
expect_error "missing --out" "--out OUT.gguf is required" $BIN quantize -m "$M" --type q8_0
expect_error "missing --type" "--type T is required" $BIN quantize -m "$M" --out "$T/x.gguf"
expect_error "flag without value" "type" $BIN quantize -m "$M" --out "$T/x.gguf" --type
expect_error "bad -t" "expects an integer" $BIN quantize -m "$M" --out "$T/x.gguf" --type q8_0 -t 0
expect_error "unknown option" "unknown option" $BIN quantize -m "$M" --out "$T/x.gguf" --type q8_0 --pure
expect_error "missing input" "no such file" $BIN quantize -m "$T/none.gguf" --out "$T/x.gguf" --type q8_0
head -c 3000 "$M" >"$T/trunc.gguf"
expect_error "truncated input" "gguf\|truncat\|past\|end" \
	$BIN quantize -m "$T/trunc.gguf" --out "$T/x.gguf" --type q8_0
expect_error "same path" "is the input" $BIN quantize -m "$M" --out "$M" --type q8_0
expect_error "same file, other name" "is the input" $BIN quantize -m "$M" --out "$T/./m32.gguf" --type q8_0
mkdir "$T/dir.gguf"
expect_error "output is a directory" "not a regular file" $BIN quantize -m "$M" --out "$T/dir.gguf" --type q8_0
expect_error "output directory missing" "no such file" \
	$BIN quantize -m "$M" --out "$T/nodir/x.gguf" --type q8_0
# a write that fails midway (file size limit): an error, and no partial file
expect_error "write fails midway" "write failed" sh -c \
	"trap '' XFSZ; ulimit -f 100; exec \"\$0\" quantize -m \"\$1\" --out \"\$2\" --type q8_0 -q" \
	"$BIN" "$M" "$T/x.gguf"
[ ! -e "$T/x.gguf" ] && [ ! -e "$T/x.gguf.tmp" ] && ok "no output left by the failures" ||
	bad "a failure left $T/x.gguf or its .tmp"
logits "$M" "$T/lafter" && cmp -s "$T/l32" "$T/lafter" && ok "input unchanged" || bad "input changed"

[ $fails -eq 0 ] && echo "all passed" || echo "$fails failed"
[ $fails -eq 0 ]
