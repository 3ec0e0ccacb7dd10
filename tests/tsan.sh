#!/bin/sh
# tests/tsan.sh DIR: the concurrency tests under ThreadSanitizer (make
# tsan-check; DIR is the BUILD=tsan build, default build/tsan). Runs every
# test program built there (DIR/tests/test_*: the Makefile's TSAN_TESTS),
# then every tests/tsan_*.sh with FM_BIN=DIR/flashmoe and FM_TSAN_DIR=DIR. A test
# fails on its own failure or on any TSan report (exit code 66). Prints one
# line per test; exit 0 only if all passed (77 from a script: skipped).
cd "$(dirname "$0")/.." || exit 1
dir=${1:-build/tsan}
[ -x "$dir/flashmoe" ] || { echo "tsan: $dir/flashmoe is missing (make tsan-build)"; exit 1; }
export TSAN_OPTIONS="exitcode=66 halt_on_error=0 second_deadlock_stack=1 $TSAN_OPTIONS"
export FM_BIN="$PWD/$dir/flashmoe" FM_TSAN_DIR="$PWD/$dir"
log=build/test-logs/tsan
mkdir -p "$log"
fail=0
check() { # name rc logfile
	if [ "$2" -eq 0 ] && ! grep -q "WARNING: ThreadSanitizer" "$3"; then
		echo "PASS  tsan/$1"
	elif [ "$2" -eq 77 ]; then
		echo "SKIP  tsan/$1: $(tail -n 1 "$3")"
	else
		echo "FAIL  tsan/$1 (exit $2); $3:"
		grep -m1 -A25 "WARNING: ThreadSanitizer" "$3" || tail -n 20 "$3"
		fail=1
	fi
}
for p in "$dir"/tests/test_*; do
	case $p in *.o|*.d) continue ;; esac
	[ -x "$p" ] || continue
	t=$(basename "$p")
	"$p" >"$log/$t.log" 2>&1
	check "$t" $? "$log/$t.log"
done
for s in tests/tsan_*.sh; do
	[ -f "$s" ] || continue
	n=$(basename "$s" .sh)
	sh "$s" >"$log/$n.log" 2>&1
	check "$n" $? "$log/$n.log"
done
exit $fail
