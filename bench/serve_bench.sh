#!/bin/sh
# bench/serve_bench.sh MODEL [SERVE_ARGS...]: start `flashmoe serve -m MODEL
# -np 8 SERVE_ARGS` on a free port, run bench/serve_clients.py at 1, 2, 4 and
# 8 concurrent clients (TOKENS each, default 32; ROUNDS times, default 3, the
# best of each printed last), stop it. FM_BIN picks the
# binary. Example (the table in docs/BENCHMARKS.md):
#   sh bench/serve_bench.sh q3-30b-shape-L12.gguf -c 128 -t 2
#   sh bench/serve_bench.sh q3-30b-shape-L12.gguf -c 128 -t 2 --mem 1455M --cache-size 700M
BIN=${FM_BIN:-build/release/flashmoe}
M=$1
shift
out=$(mktemp)
"$BIN" serve -m "$M" -np 8 --port 0 "$@" >"$out" 2>"$out.err" &
pid=$!
while ! grep -q "^listening on" "$out"; do
	kill -0 $pid 2>/dev/null || { cat "$out.err"; exit 1; }
	sleep 0.5
done
grep "streaming experts" "$out.err"
python3 bench/serve_clients.py "$(sed -n 's/^listening on //p' "$out")" --clients "${CLIENTS:-1,2,4,8}" \
	--tokens "${TOKENS:-32}" --rounds "${ROUNDS:-3}"
kill -TERM $pid
wait $pid
rm -f "$out" "$out.err"
