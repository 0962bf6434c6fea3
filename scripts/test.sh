#!/usr/bin/env bash
# `make test`: every test tier, in order, from a machine with nothing installed.
#   1. set-up (Debian packages; cheap when present)
#   2. build everything with strict warnings
#   3. unit tests (Criterion), then again under AddressSanitizer + UBSan
#   4. integration tests (Criterion): real nats-server, real binaries, real HTTP
#   5. client conformance (Node): the official phoenix client against the edge
# Ends with one line "N passed, N failed" summing every runner's synthesis.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
JOBS=${JOBS:-2}

bash scripts/setup.sh || exit 1

total_pass=0
total_fail=0
failed_tiers=()
out=$(mktemp)
trap 'rm -f "$out"' EXIT

# Runs one Criterion binary, shows its output, and adds its synthesis to the totals.
run_tier() {
    local name=$1
    shift
    echo "==== $name"
    "$@" 2>&1 | tee "$out"
    local rc=${PIPESTATUS[0]}
    local line
    line=$(grep -E 'Synthesis: Tested: [0-9]+' "$out" | tail -n 1)
    if [ -z "$line" ]; then
        echo "==== $name: no synthesis line (exit $rc): counted as failed"
        total_fail=$((total_fail + 1))
        failed_tiers+=("$name")
        return
    fi
    # Sanitizer findings in a test worker do not always fail the test itself
    # (LeakSanitizer reports after the worker has sent its result): count them.
    if grep -qE 'ERROR: (Leak|Address)Sanitizer|runtime error:' "$out"; then
        echo "==== $name: sanitizer findings above: counted as failed"
        total_fail=$((total_fail + 1))
        failed_tiers+=("$name")
    fi
    local tested passing failing crashing
    tested=$(sed -E 's/.*Tested: ([0-9]+).*/\1/' <<<"$line")
    passing=$(sed -E 's/.*Passing: ([0-9]+).*/\1/' <<<"$line")
    failing=$(sed -E 's/.*Failing: ([0-9]+).*/\1/' <<<"$line")
    crashing=$(sed -E 's/.*Crashing: ([0-9]+).*/\1/' <<<"$line")
    total_pass=$((total_pass + passing))
    total_fail=$((total_fail + failing))
    if [ "$rc" -ne 0 ] || [ "$failing" -ne 0 ] || [ "$tested" -eq 0 ]; then
        failed_tiers+=("$name")
        [ "$tested" -eq 0 ] && total_fail=$((total_fail + 1))
    fi
    : "$crashing"
}

echo "==== build"
if ! make --no-print-directory -j"$JOBS" bins tests-build; then
    echo "0 passed, 1 failed"
    exit 1
fi
echo "==== build (sanitizers)"
if ! make --no-print-directory -j"$JOBS" SANITIZE=address,undefined build/sanitize/tests/unit \
    bins; then
    echo "0 passed, 1 failed"
    exit 1
fi

run_tier "unit" build/tests/unit --jobs "$JOBS"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    run_tier "unit (asan+ubsan)" build/sanitize/tests/unit --jobs "$JOBS"
run_tier "integration" build/tests/integration --jobs 1

# The client tier runs the services built with AddressSanitizer and UBSan:
# the edge meets real protocol traffic there, and a report in any log fails
# its file (tests/client/stack.mjs). It prints "client: N passed, N failed".
echo "==== client (phoenix.js, services under asan+ubsan)"
NATTER_BIN="$ROOT/build/sanitize/bin" ASAN_OPTIONS=detect_leaks=1 \
    UBSAN_OPTIONS=print_stacktrace=1 bash scripts/client-tests.sh 2>&1 | tee "$out"
client_rc=${PIPESTATUS[0]}
client_line=$(grep -E '^client: [0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1)
if [ -z "$client_line" ]; then
    echo "==== client: no summary line (exit $client_rc): counted as failed"
    total_fail=$((total_fail + 1))
    failed_tiers+=("client")
else
    cp=$(sed -E 's/^client: ([0-9]+) passed.*/\1/' <<<"$client_line")
    cf=$(sed -E 's/.* ([0-9]+) failed$/\1/' <<<"$client_line")
    total_pass=$((total_pass + cp))
    total_fail=$((total_fail + cf))
    if [ "$client_rc" -ne 0 ] || [ "$cf" -ne 0 ] || [ "$cp" -eq 0 ]; then
        failed_tiers+=("client")
        [ "$cp" -eq 0 ] && [ "$cf" -eq 0 ] && total_fail=$((total_fail + 1))
    fi
fi

echo "==== summary"
if [ ${#failed_tiers[@]} -ne 0 ]; then
    echo "failed tiers: ${failed_tiers[*]}"
fi
echo "$total_pass passed, $total_fail failed"
[ ${#failed_tiers[@]} -eq 0 ]
