#!/bin/sh
# tests/e2e_kvlong.sh: a context that does not fit in an F16 KV cache under
# --mem runs with a TurboQuant cache (issue 17, "Done when"). The built-in
# model (4 attention layers x 2 KV heads of 64) at -c 131072 under --mem 100M:
#   - f16 (2 KiB per token, 256 MiB) is refused with the bytes per token and
#     the context that fits;
#   - tq3.5 (0.44 KiB per token, 56 MiB) runs and generates, its KV cache
#     counted inside the budget (--stats: the peak stays under 100 MiB);
#   - keys and values in different formats are refused or accepted by the
#     same arithmetic (q8_0 + tq4 needs exactly the 100 MiB: refused).
# Exit 0 pass, 1 fail, 77 skip.
cd "$(dirname "$0")/.." || exit 1
BIN=${FM_BIN:-build/release/flashmoe}
M=models/brown-moe.gguf
[ -f "$M" ] || { echo "skip: $M not present"; exit 77; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0

. tests/expect.sh

run() { # flashmoe generate at -c 131072 under --mem 100M, then the given flags
	$BIN generate -m "$M" -p "The jury said" -n 8 --temp 0 -c 131072 --mem 100M --stats "$@"
}
expect "f16 at -c 131072 refused" nz \
	"KV cache of 131072 tokens \(f16/f16\) needs 256.0 MiB \(2.0 KiB per token\), more than the .* MiB left of the --mem budget; a context of at most [0-9]+ tokens fits" \
	run --kv-type f16
expect "tq3.5 at -c 131072 runs" 0 "generation: [0-9]+ tokens" run --kv-type tq3.5
peak=$(sed -n 's/^memory: \([0-9.]*\) MiB peak counted, budget 100 MiB/\1/p' "$T/out")
if [ -n "$peak" ] && awk "BEGIN { exit !($peak > 56 && $peak <= 100) }"; then
	echo "ok   tq3.5 KV counted in the budget: peak $peak MiB (KV 56 MiB) of 100"
else
	echo "FAIL tq3.5 peak '$peak' MiB: not between the KV's 56 and the budget's 100"
	fails=$((fails + 1))
fi
expect "q8_0 keys + tq4 values at -c 131072 refused" nz \
	"KV cache of 131072 tokens \(q8_0/tq4\) needs 100.0 MiB" run -ctk q8_0 -ctv tq4
expect "q8_0 keys + tq4 values at -c 65536 run" 0 "generation: [0-9]+ tokens" \
	$BIN generate -m "$M" -p "The jury said" -n 8 --temp 0 -c 65536 --mem 100M --stats -ctk q8_0 -ctv tq4
[ $fails -eq 0 ] && echo "e2e_kvlong: ok" && exit 0
echo "e2e_kvlong: $fails failed"
exit 1
