#!/bin/sh
# e2e_server.sh: `flashmoe serve` against the official openai Python client
# (tests/server/*.py, in a cached venv made by tests/server/venv.sh).
#   1. the API (test_api.py) on the built-in model, with --api-key and
#      --max-body 64K: chat and completions, plain and streamed, usage, stop
#      strings, seeds, prefix reuse, disconnects, errors, keys, /metrics;
#   2. a full queue (test_queue.py): -np 1 --queue 1 answers 503;
#   3. 64 concurrent clients (test_load.py) on a gen-tiny model larger than
#      --mem 64M, so that its experts stream: inside a memory cgroup of 64M
#      (../shared/bin/memcap) when there is one; the server's peak RSS
#      (VmHWM) must stay within --mem, and the cgroup must not hit its limit;
#   4. the tool-call round trip (test_tools.py: template bytes vs Jinja;
#      test_tool_request.py: the request side through the openai client).
# FM_SERVER_BIN picks the binary; FM_SERVER_ASAN=1 (e2e_server_asan.sh: the
# ASan build) leaves out the memory checks (shadow memory is not the engine's).
# Exit 0 pass, 1 fail, 77 skip (no venv could be made).
set -u
cd "$(dirname "$0")/.." || exit 1
BIN=${FM_SERVER_BIN:-${FM_BIN:-build/release/flashmoe}}
case $BIN in /*) ;; *) BIN=$PWD/$BIN ;; esac
[ -x "$BIN" ] || { echo "FAIL: no binary $BIN"; exit 1; }
PY=$(sh tests/server/venv.sh) || { echo "skip: the openai client venv cannot be made (no network?)"; exit 77; }
T=$(mktemp -d "${TMPDIR:-/tmp}/e2e_server.XXXXXX")
SRV=
stop_server() {
	[ -n "$SRV" ] && kill -TERM "$SRV" 2>/dev/null && wait "$SRV" 2>/dev/null
	SRV=
}
cleanup() {
	[ -n "$SRV" ] && kill -TERM "$SRV" 2>/dev/null
	[ -n "${FM_KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
fails=0

# start NAME ARGS...: the server in the background; sets SRV (its pid) and URL
start() {
	name=$1
	shift
	"$BIN" serve --port 0 "$@" >"$T/$name.out" 2>"$T/$name.err" &
	SRV=$!
	i=0
	while [ $i -lt 600 ]; do
		port=$(sed -n 's|^listening on http://127.0.0.1:\([0-9]*\)$|\1|p' "$T/$name.out" 2>/dev/null)
		[ -n "$port" ] && break
		kill -0 "$SRV" 2>/dev/null || { echo "FAIL $name: the server did not start"; cat "$T/$name.err"; SRV=; return 1; }
		sleep 0.1
		i=$((i + 1))
	done
	[ -n "$port" ] || { echo "FAIL $name: no 'listening on' line"; return 1; }
	URL=http://127.0.0.1:$port
}

# check NAME SCRIPT [KEY]: run a test script against the server
check() {
	if FM_SERVER_URL=$URL FM_SERVER_KEY=${3:-} "$PY" "tests/server/$2" >"$T/$1.log" 2>&1; then
		echo "ok   $1 ($(tail -n 1 "$T/$1.log"))"
	else
		echo "FAIL $1"; sed 's/^/    /' "$T/$1.log" | tail -n 40; fails=$((fails + 1))
	fi
	kill -0 "$SRV" 2>/dev/null || { echo "FAIL $1: the server died"; tail -n 20 "$T/$name.err"; fails=$((fails + 1)); SRV=; }
}

# the server's exit after SIGTERM (0), and no sanitizer report in its log
stopped() {
	pid=$SRV
	SRV=
	kill -TERM "$pid" && wait "$pid"
	rc=$?
	[ $rc -eq 0 ] || { echo "FAIL $1: exit $rc after SIGTERM"; tail -n 30 "$T/$1.err"; fails=$((fails + 1)); }
	if grep -q "ERROR: AddressSanitizer\|runtime error:\|ERROR: LeakSanitizer\|WARNING: ThreadSanitizer" "$T/$1.err"; then
		echo "FAIL $1: sanitizer report"; grep -A 30 "Sanitizer\|runtime error" "$T/$1.err" | head -n 60
		fails=$((fails + 1))
	fi
}

KEY=key-$$-$(date +%s)
start api -t 1 --api-key "$KEY" --max-body 64K && { check api test_api.py "$KEY"; stopped api; }
start queue -t 1 -np 1 --queue 1 && { check queue test_queue.py; stopped queue; }

# 64 clients on a streamed model under --mem 64M (and a 64M cgroup)
M=$T/tiny.gguf
"$BIN" gen-tiny --out "$M" --type q8_0 --layers 4 --hidden 256 --experts 64 --expert-ff 512 \
	--vocab 4096 --ctx 2048 --seed 1 >/dev/null || { echo "FAIL gen-tiny"; exit 1; }
MEMCAP=
ASAN=${FM_SERVER_ASAN:-}
[ -z "$ASAN" ] && [ -x ../shared/bin/memcap ] && [ "$(id -u)" = 0 ] && [ -w /sys/fs/cgroup/memory ] && MEMCAP=../shared/bin/memcap
if [ -n "$MEMCAP" ]; then
	# memcap runs the server as its child: find it for SIGTERM and VmHWM
	"$MEMCAP" 64M "$BIN" serve --port 0 -m "$M" --mem 64M -t 1 -c 512 >"$T/load.out" 2>"$T/load.err" &
	CAP=$!
	sleep 0.5
	SRV=$(ps -o pid= --ppid $CAP | tr -d ' ')
	i=0
	while [ $i -lt 600 ] && ! grep -q "^listening on" "$T/load.out"; do sleep 0.1; i=$((i + 1)); done
	URL=http://127.0.0.1:$(sed -n 's|^listening on http://127.0.0.1:\([0-9]*\)$|\1|p' "$T/load.out")
else
	[ -n "$ASAN" ] && echo "(sanitizer build: its shadow memory is outside --mem; no memory check)" ||
		echo "(no memcap: the memory check is the server's VmHWM only)"
	# the sanitizer's shadow memory counts in the process's RSS, from which
	# --mem sizes the expert cache: stream with a given small cache instead
	if [ -n "$ASAN" ]; then start load -m "$M" --stream --cache-size 8M -t 1 -c 512
	else start load -m "$M" --mem 64M -t 1 -c 512; fi
fi
if [ -n "$SRV" ]; then
	# the sanitizer build is ~3x slower: half the clients keep it within run.sh's 600 s
	[ -n "$ASAN" ] && export FM_LOAD_CLIENTS=32
	check load test_load.py
	hwm=$(awk '/^VmHWM/ { print $2 * 1024 }' "/proc/$SRV/status" 2>/dev/null)
	[ -n "$ASAN" ] && hwm=0
	if [ -n "$MEMCAP" ]; then
		pid=$SRV
		SRV=
		kill -TERM "$pid"
		wait $CAP
		line=$(grep "^memcap:" "$T/load.err")
		echo "     $line"
		case $line in
		*"failcnt=0 oom_kills=0 exit=0") ;;
		*) echo "FAIL load: the 64M cgroup was hit or the server failed"; fails=$((fails + 1)) ;;
		esac
	else
		stopped load
	fi
	limit=$((64 * 1048576))
	[ -n "$ASAN" ] || echo "     server peak RSS (VmHWM) $hwm bytes, --mem $limit"
	if [ -z "$ASAN" ] && { [ -z "$hwm" ] || [ "$hwm" -gt "$limit" ]; }; then
		echo "FAIL load: peak RSS over --mem"; fails=$((fails + 1))
	fi
fi

if [ -f tests/server/test_tools.py ]; then
	start tools -t 1 && { check tools test_tools.py; check tool_request test_tool_request.py; stopped tools; }
	[ -n "$ASAN" ] || { start tools35 -t 1 --template qwen35 && { check tools35 test_tools.py; stopped tools35; }; }
fi

[ $fails -eq 0 ] && echo "e2e_server: all passed" || echo "e2e_server: $fails failed"
[ $fails -eq 0 ]
