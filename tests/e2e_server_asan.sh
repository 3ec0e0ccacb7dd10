#!/bin/sh
# e2e_server_asan.sh: the server tests of e2e_server.sh with the ASan+UBSan
# build's binary (build/asan/flashmoe; FM_ASAN_BIN overrides): any sanitizer
# report in the server's log, or a leak at its exit, fails. Skipped (77)
# when that build is absent.
cd "$(dirname "$0")/.." || exit 1
BIN=${FM_ASAN_BIN:-build/asan/flashmoe}
[ -x "$BIN" ] || { echo "skip: no ASan build ($BIN; make BUILD=asan)"; exit 77; }
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
FM_SERVER_BIN=$BIN FM_SERVER_ASAN=1 exec sh tests/e2e_server.sh
