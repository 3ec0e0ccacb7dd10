#!/bin/sh
# e2e_cli.sh: the flashmoe command end to end on tiny models, and its errors on
# bad input: every bad file or flag must give one clear message and a non-zero
# exit status below 128 (no crash, no signal).
set -u
BIN=${FM_BIN:-build/release/flashmoe}
T=$(mktemp -d)
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

$BIN gen-tiny --out "$T/m.gguf" --seed 3 || { bad "gen-tiny"; exit 1; }
ok "gen-tiny"
out=$($BIN generate -m "$T/m.gguf" --token-ids 1,2,3 -n 8 --temp 0 --ids) || bad "generate --ids"
n=$(echo "$out" | wc -w)
[ "$n" -eq 8 ] && ok "generate prints 8 ids: $out" || bad "generate printed '$out'"
out2=$($BIN generate -m "$T/m.gguf" --token-ids 1,2,3 -n 8 --temp 0 --ids)
[ "$out" = "$out2" ] && ok "greedy is deterministic" || bad "greedy differs: '$out' vs '$out2'"
s1=$($BIN generate -m "$T/m.gguf" --token-ids 1,2,3 -n 8 --temp 1 --seed 5 --ids)
s2=$($BIN generate -m "$T/m.gguf" --token-ids 1,2,3 -n 8 --temp 1 --seed 5 --ids)
[ "$s1" = "$s2" ] && ok "sampling with a seed is reproducible" || bad "seeded sampling differs"
$BIN generate -m "$T/m.gguf" -p "the cat" -n 4 >/dev/null && ok "generate -p" || bad "generate -p"
$BIN logits -m "$T/m.gguf" --token-ids 1,2,3 --out "$T/l.f32" || bad "logits"
sz=$(stat -c %s "$T/l.f32" 2>/dev/null || echo 0)
[ "$sz" -eq $((3 * 320 * 4)) ] && ok "logits file is 3 x 320 floats" || bad "logits size $sz"
$BIN info -m "$T/m.gguf" | grep -q "experts 8 (2 used" && ok "info" || bad "info"
# an f16 KV cache: logits close to the f32 cache's (f16 rounding of k and v),
# and not the same bytes (the flag reaches the cache)
$BIN logits -m "$T/m.gguf" --token-ids 1,2,3,4,5,6 --out "$T/kv32.f32" --kv-type f32 &&
	$BIN logits -m "$T/m.gguf" --token-ids 1,2,3,4,5,6 --out "$T/kv16.f32" --kv-type f16 || bad "logits --kv-type"
d=$(/usr/bin/python3 -c "
import struct, sys
a = open(sys.argv[1], 'rb').read(); b = open(sys.argv[2], 'rb').read()
x = struct.unpack('%df' % (len(a) // 4), a); y = struct.unpack('%df' % (len(b) // 4), b)
print(max(abs(p - q) for p, q in zip(x, y)) / max(abs(p) for p in x))" "$T/kv32.f32" "$T/kv16.f32")
awk "BEGIN { exit !($d > 0 && $d < 1e-2) }" && ok "--kv-type f16: max rel diff $d vs f32" ||
	bad "--kv-type f16 vs f32: max rel diff $d"
expect_error "bad --kv-type" "kv-type" $BIN logits -m "$T/m.gguf" --token-ids 1 --out "$T/x" --kv-type q9
$BIN bench -m "$T/m.gguf" -p 16 -n 4 --json | grep -q '"tg_tok_s"' && ok "bench --json" || bad "bench"

# bad input
expect_error "missing file" "no such file" $BIN info -m "$T/none.gguf"
printf 'GGUX\003\000\000\000' >"$T/magic.gguf"
expect_error "wrong magic" "magic" $BIN info -m "$T/magic.gguf"
head -c 1000 "$T/m.gguf" >"$T/trunc.gguf"
expect_error "truncated header" "gguf\|truncat\|past\|end" $BIN info -m "$T/trunc.gguf"
sz=$(stat -c %s "$T/m.gguf")
head -c $((sz - 100)) "$T/m.gguf" >"$T/trunc2.gguf"
expect_error "truncated data" "past\|size\|truncat" $BIN info -m "$T/trunc2.gguf"
# n_tensors = 2^62 at offset 8
cp "$T/m.gguf" "$T/count.gguf"
printf '\000\000\000\000\000\000\000\100' | dd of="$T/count.gguf" bs=1 seek=8 conv=notrunc 2>/dev/null
expect_error "absurd tensor count" "tensor" $BIN info -m "$T/count.gguf"
expect_error "bad flag" "unknown option" $BIN generate -m "$T/m.gguf" --bogus
expect_error "bad number" "expects" $BIN generate -m "$T/m.gguf" --token-ids 1 -n abc
expect_error "bad ids" "token-ids" $BIN generate -m "$T/m.gguf" --token-ids 1,x
expect_error "id out of vocab" "vocabulary" $BIN generate -m "$T/m.gguf" --token-ids 99999
expect_error "bad isa" "isa" $BIN generate -m "$T/m.gguf" --token-ids 1 --isa sse9
expect_error "bad gen-tiny dims" "dimensions" $BIN gen-tiny --out "$T/x.gguf" --heads 3 --kv-heads 2
expect_error "unknown command" "unknown command" $BIN frobnicate
# every command answers --help with its usage on stdout and exit 0
for c in $($BIN --help | sed -n 's/^  \([a-z-]*\) .*/\1/p'); do
	if $BIN $c --help >"$T/help" 2>"$T/help.err" && grep -q "^usage: flashmoe $c" "$T/help" &&
		[ ! -s "$T/help.err" ]; then
		ok "$c --help"
	else
		bad "$c --help: exit $?, $(head -n 1 "$T/help.err")"
	fi
done
[ $fails -eq 0 ] || { echo "$fails failed"; exit 1; }
echo "all passed"
