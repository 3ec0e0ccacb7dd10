#!/bin/sh
# tests/tsan_server.sh: a short concurrent run of `flashmoe serve` built with
# ThreadSanitizer (for `make tsan-check`): the engine thread, the connection
# threads and the model's pool under 12 clients at once (chat and
# completions, streamed and not, some leaving midway) on the built-in model
# and on a streamed gen-tiny model. Any ThreadSanitizer report fails.
#   sh tests/tsan_server.sh build/tsan/flashmoe
# Exit 0 pass, 1 fail, 77 skip (no binary, or no openai client venv).
cd "$(dirname "$0")/.." || exit 1
BIN=${1:-${FM_TSAN_BIN:-${FM_BIN:-build/tsan/flashmoe}}}
case $BIN in /*) ;; *) BIN=$PWD/$BIN ;; esac
[ -x "$BIN" ] || { echo "skip: no TSan build ($BIN; make BUILD=tsan)"; exit 77; }
PY=$(sh tests/server/venv.sh) || { echo "skip: the openai client venv cannot be made"; exit 77; }
T=$(mktemp -d "${TMPDIR:-/tmp}/tsan_server.XXXXXX")
SRV=
trap '[ -n "$SRV" ] && kill -TERM $SRV 2>/dev/null; rm -rf "$T"' EXIT
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=0 second_deadlock_stack=1}"
fails=0
"$BIN" gen-tiny --out "$T/tiny.gguf" --type q8_0 --layers 2 --hidden 128 --experts 16 --expert-ff 128 \
	--vocab 4096 --ctx 1024 --seed 3 >/dev/null 2>&1 || { echo "FAIL gen-tiny"; exit 1; }
for model in default stream; do
	case $model in
	default) args="-t 2 -np 4" ;;
	stream) args="-m $T/tiny.gguf --stream --cache-size 1M -t 2 -np 4 -c 256" ;;
	esac
	# shellcheck disable=SC2086
	"$BIN" serve --port 0 $args >"$T/out" 2>"$T/err" &
	SRV=$!
	i=0
	while ! grep -q "^listening on" "$T/out" && [ $i -lt 1200 ]; do
		kill -0 $SRV 2>/dev/null || break
		sleep 0.1
		i=$((i + 1))
	done
	URL=$(sed -n 's/^listening on //p' "$T/out")
	if [ -z "$URL" ]; then
		echo "FAIL $model: the server did not start"; tail -n 20 "$T/err"; fails=$((fails + 1)); SRV=; continue
	fi
	if FM_SERVER_URL=$URL FM_LOAD_CLIENTS=12 "$PY" tests/server/test_load.py >"$T/log" 2>&1; then
		echo "ok   $model: 12 clients"
	else
		echo "FAIL $model: clients"; tail -n 20 "$T/log"; fails=$((fails + 1))
	fi
	kill -TERM $SRV && wait $SRV
	rc=$?
	SRV=
	[ $rc -eq 0 ] || { echo "FAIL $model: exit $rc"; fails=$((fails + 1)); }
	if grep -q "WARNING: ThreadSanitizer" "$T/err"; then
		echo "FAIL $model: ThreadSanitizer reports"; grep -A 40 "WARNING: ThreadSanitizer" "$T/err" | head -n 80
		fails=$((fails + 1))
	fi
done
[ $fails -eq 0 ]
