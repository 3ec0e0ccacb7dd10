#!/bin/sh
# bench/serve_bench.sh MODEL [SERVE_ARGS...]: start `flashmoe serve -m MODEL
# -np 8 SERVE_ARGS` on a free port, run bench/serve_clients.py at 1, 2, 4 and
# 8 concurrent clients (TOKENS each, default 32; ROUNDS times, default 3, the
# best of each printed last), stop it. FM_BIN picks the binary; MEMCAP=SIZE
# runs the server (only it) in a memory cgroup of that size
# (../shared/bin/memcap, which prints the peak). The table in
# docs/BENCHMARKS.md:
#   sh bench/serve_bench.sh q3-30b-shape-L12.gguf -c 128 -t 2
#   MEMCAP=1455M sh bench/serve_bench.sh q3-30b-shape-L12.gguf -c 128 -t 2 --mem 1455M
BIN=${FM_BIN:-build/release/flashmoe}
M=$1
shift
out=$(mktemp)
if [ -n "${MEMCAP:-}" ]; then
	../shared/bin/memcap "$MEMCAP" "$BIN" serve -m "$M" -np 8 --port 0 "$@" >"$out" 2>"$out.err" &
else
	"$BIN" serve -m "$M" -np 8 --port 0 "$@" >"$out" 2>"$out.err" &
fi
pid=$!
while ! grep -q "^listening on" "$out"; do
	kill -0 $pid 2>/dev/null || { cat "$out.err"; exit 1; }
	sleep 0.5
done
srv=$(ps -o pid= --ppid $pid | tr -d ' ')
[ -n "$srv" ] || srv=$pid
python3 bench/serve_clients.py "$(sed -n 's/^listening on //p' "$out")" --clients "${CLIENTS:-1,2,4,8}" \
	--tokens "${TOKENS:-32}" --rounds "${ROUNDS:-3}"
grep VmHWM "/proc/$srv/status"
kill -TERM $srv
wait $pid
grep "streaming experts\|^memcap" "$out.err"
rm -f "$out" "$out.err"
