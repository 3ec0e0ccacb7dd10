#!/bin/sh
# tests/run.sh: runs every test of the project and prints one line per test and
# a closing "N passed, N failed, N skipped". Exit status 0 only if none failed.
#   - C unit tests of the release and sanitizer (ASan+UBSan) builds
#   - shell end-to-end tests (tests/e2e_*.sh) against the release binary
#   - the independent NumPy reference (tests/reference/)
#   - the tokenizer exactness test (tests/tokenizer/run.sh; needs npm)
#   - logits against llama.cpp on the same files (tests/llamacpp/compare.sh;
#     compiles llama-cpp-python into a cached venv the first time)
# Each test exits 0 (pass), 77 (skip, with its reason) or anything else (fail).
cd "$(dirname "$0")/.." || exit 1
pass=0 fail=0 skip=0 failed=""
export FM_BIN="$PWD/build/release/flashmoe"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
log=build/test-logs
mkdir -p "$log"
# the CPU the tests ran on: its SIMD flags and the kernels flashmoe picks there
cpu_simd=""
for f in avx2 fma f16c avx512f avx512bw avx512vl avx512dq avx512_vnni avx512_bf16 \
	avx_vnni amx_tile amx_int8 amx_bf16; do
	grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | grep -qw "$f" && cpu_simd="$cpu_simd $f"
done
isa=$("$FM_BIN" bench -m models/brown-moe.gguf -p 1 -n 1 -t 1 2>/dev/null | sed -n 's/.* isa \([a-z0-9]*\) .*/\1/p')
echo "cpu: $(grep -m1 '^model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: *//');${cpu_simd:- no avx2} (flashmoe dispatch: ${isa:-unknown})"

run() { # name timeout cmd...
	name=$1 limit=$2
	shift 2
	out="$log/$(echo "$name" | tr '/ ' '__').log"
	start=$(date +%s)
	timeout "$limit" "$@" >"$out" 2>&1
	rc=$?
	secs=$(( $(date +%s) - start ))
	case $rc in
	0) pass=$((pass + 1)); echo "PASS  $name (${secs}s)" ;;
	77) skip=$((skip + 1)); echo "SKIP  $name: $(tail -n 1 "$out")" ;;
	*) fail=$((fail + 1)); failed="$failed $name"
	   echo "FAIL  $name (exit $rc, ${secs}s); last lines of $out:"; tail -n 15 "$out" | sed 's/^/      /' ;;
	esac
}

for b in release asan; do
	for t in build/$b/tests/test_*; do
		[ -x "$t" ] || continue
		case $b in release) lim=300 ;; *) lim=900 ;; esac
		run "$b/$(basename "$t")" $lim "$t"
	done
done
# the concurrency tests under ThreadSanitizer (make tsan-check), when built
if [ -x build/tsan/flashmoe ]; then
	run tsan-check 900 sh tests/tsan.sh build/tsan
fi
for t in tests/e2e_*.sh; do
	# e2e_convert creates the PyTorch venv on a fresh machine (~5 GB)
	case $t in *e2e_convert*.sh) lim=1800 ;; *) lim=600 ;; esac
	[ -f "$t" ] && run "$(basename "$t" .sh)" $lim sh "$t"
done
if [ -f tests/reference/selftest.py ]; then
	run reference/selftest 300 /usr/bin/python3 tests/reference/selftest.py
fi
if [ -f tests/reference/test_reference.py ]; then
	run reference/compare 1800 /usr/bin/python3 tests/reference/test_reference.py
fi
if [ -f tests/tokenizer/run.sh ]; then
	run tokenizer/exactness 1800 sh tests/tokenizer/run.sh
fi
if [ -f tests/llamacpp/compare.sh ]; then
	run llamacpp/compare 2400 sh tests/llamacpp/compare.sh
fi
echo
[ -n "$failed" ] && echo "failed:$failed"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
