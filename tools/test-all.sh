#!/bin/bash
# Everything CI checks, on a fresh Debian 12 machine:
#  1. normal build with -Werror and the unit tests
#  2. AddressSanitizer + UndefinedBehaviorSanitizer build and the unit tests
#  3. the libFuzzer target (clang) for FUZZ_SECONDS (default 60) from the seed corpus
#  4. make distcheck
#  5. the protocol self-test and the main job (the sandbox tour)
# Ends with one line "N passed, M failed" over all test programs and steps.
set -uo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
JOBS=$(nproc)
FUZZ_SECONDS=${FUZZ_SECONDS:-60}

tools/setup-debian.sh || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }
./autogen.sh >/dev/null || { echo "autogen failed"; echo "0 passed, 1 failed"; exit 1; }

passed=0
failed=0
failures=()

step() {  # step NAME COMMAND...: run a step, count it
    local name=$1; shift
    echo
    echo "=== $name"
    local t0=$SECONDS
    if "$@"; then
        echo "=== $name: ok ($((SECONDS - t0)) s)"
    else
        echo "=== $name: FAILED ($((SECONDS - t0)) s)"
        failed=$((failed + 1))
        failures+=("$name")
        return 1
    fi
}

# make check in a build dir; adds the number of test programs that passed
# and failed (from automake's summary) to the totals.
check_build() {
    local dir=$1; shift
    rm -rf "$dir" && mkdir -p "$dir" && cd "$dir" || return 1
    "$top/configure" -q --enable-werror "$@" || return 1
    make -s -j"$JOBS" || return 1
    local rc=0
    make -s -j"$JOBS" check >check.out 2>&1 || rc=$?
    grep -E '^(PASS|FAIL|XFAIL|XPASS|ERROR|SKIP):|^# [A-Z]+:' check.out
    local p f
    p=$(awk '/^# PASS:/ {print $3}' check.out); f=$(awk '/^# (FAIL|ERROR|XPASS):/ {s += $3} END {print s + 0}' check.out)
    # In CI nothing may be skipped: CI installs everything the tests need.
    if [ "${CI:-}" = "true" ]; then
        local s; s=$(awk '/^# SKIP:/ {print $3}' check.out)
        if [ "${s:-0}" -ne 0 ]; then
            echo "CI: ${s} test(s) skipped; every test must run in CI"
            grep '^SKIP:' check.out
            f=$((f + s)); rc=1
        fi
    fi
    passed=$((passed + ${p:-0}))
    failed=$((failed + f))
    # cmocka test cases, for the record
    cat tests/unit/*.log 2>/dev/null | awk '/\[  PASSED  \]/ {s += $4} END {print "cmocka test cases passed in this build: " s + 0}'
    if [ $rc -ne 0 ]; then
        for log in tests/unit/*.log tests/fuzz/*.log tests/integration/*.log tests/interop/*.log; do
            grep -q '^:test-result: \(FAIL\|ERROR\)' "${log%.log}.trs" 2>/dev/null && { echo "--- $log"; tail -n 80 "$log"; }
        done
        cd "$top"; return 1
    fi
    cd "$top"
}

run_step() {  # like step, but a step that is not itself a test program counts once
    if step "$@"; then passed=$((passed + 1)); fi
}

step "unit tests (gcc, -Werror)" check_build build/normal
step "unit tests (AddressSanitizer + UBSan)" check_build build/sanitize --enable-sanitizers

fuzz() {
    rm -rf build/fuzz && mkdir -p build/fuzz && cd build/fuzz || return 1
    CC=clang "$top/configure" -q --enable-werror --enable-fuzzer || return 1
    make -s -j"$JOBS" tests/fuzz/fuzz-reasm || return 1
    make -s fuzz FUZZ_SECONDS="$FUZZ_SECONDS" >fuzz.out 2>&1
    local rc=$?
    grep -E 'stat::|Done|ERROR|SUMMARY' fuzz.out | head -20
    cd "$top"
    return $rc
}
run_step "libFuzzer: chunk stream -> reassembly -> decode, ${FUZZ_SECONDS} s" fuzz

distcheck() {
    cd build/normal || return 1
    make -s distcheck DISTCHECK_CONFIGURE_FLAGS="--enable-werror" >distcheck.out 2>&1
    local rc=$?
    tail -n 5 distcheck.out
    cd "$top"
    return $rc
}
run_step "make distcheck" distcheck

run_step "protocol self-test: vdp-selftest" build/normal/vdp-selftest

tour() {
    cd build/normal || return 1
    top_srcdir=$top top_builddir=. "$top/tools/sandbox-tour.sh"
    local rc=$?
    cd "$top"
    return $rc
}
run_step "main job: the sandbox tour (tools/sandbox-tour.sh)" tour

echo
if [ $failed -ne 0 ]; then
    echo "failed steps: ${failures[*]}"
fi
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
