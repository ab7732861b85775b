#!/usr/bin/env bash
# `make test`: every suite, in order, with one summary line at the end.
#   1. source checks; 2. normal build: unit, corpus replay and js-libp2p interop tests;
#   3. ASan+UBSan build: unit and corpus replay tests; 4. libFuzzer: each target briefly.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}
BUILD=${BUILD:-build}
ASAN=${ASAN:-build-asan}
FUZZDIR=${FUZZDIR:-build-fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-5}
passed=0
failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

stage() { printf '\n== %s\n' "$*"; }

# Runs ctest in $1 with the remaining arguments; adds its counts to the totals.
run_ctest() {
    local dir=$1; shift
    local rc=0
    (cd "$dir" && ctest --output-on-failure -j "$JOBS" "$@") 2>&1 | tee "$log" || rc=$?
    local line total nfail
    line=$(grep -E 'tests passed, [0-9]+ tests failed out of [0-9]+' "$log" | tail -1 || true)
    if [ -z "$line" ]; then
        echo "test.sh: ctest in $dir printed no summary"
        failed=$((failed + 1))
        return 1
    fi
    total=$(echo "$line" | sed -E 's/.* out of ([0-9]+).*/\1/')
    nfail=$(echo "$line" | sed -E 's/.*passed, ([0-9]+) tests failed.*/\1/')
    passed=$((passed + total - nfail))
    failed=$((failed + nfail))
    return $rc
}

finish() {
    echo
    echo "make test: $passed passed, $failed failed"
    [ "$failed" -eq 0 ]
}

stage "source checks"
if scripts/checksrc; then passed=$((passed + 1)); else failed=$((failed + 1)); finish; exit 1; fi

stage "build ($BUILD) and run unit, corpus replay and interop tests"
cmake -S . -B "$BUILD" -DCP2P_INTEROP=ON >/dev/null
cmake --build "$BUILD" -j "$JOBS" -- --no-print-directory
run_ctest "$BUILD" || { finish; exit 1; }

stage "sanitizer build ($ASAN, ASan + UBSan): unit, integration and corpus replay tests"
cmake -S . -B "$ASAN" -DCP2P_SANITIZE=ON >/dev/null
cmake --build "$ASAN" -j "$JOBS" -- --no-print-directory
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_ctest "$ASAN" -L 'unit|fuzzreplay|integration' || { finish; exit 1; }

stage "libFuzzer ($FUZZDIR): each target for ${FUZZ_SECONDS}s"
if [ ! -f "$FUZZDIR/CMakeCache.txt" ]; then
    CC=clang cmake -S . -B "$FUZZDIR" -DCP2P_FUZZ=ON >/dev/null
fi
cmake --build "$FUZZDIR" -j "$JOBS" -- --no-print-directory
if scripts/fuzz.sh "$FUZZDIR" "$FUZZ_SECONDS" | tee "$log"; then
    passed=$((passed + $(grep -c ' ok, ' "$log")))
else
    failed=$((failed + 1))
fi
finish
