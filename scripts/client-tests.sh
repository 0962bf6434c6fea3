#!/usr/bin/env bash
# The client conformance tier: the official `phoenix` npm client (over the
# `ws` package) against the real stack, one test file at a time with Node's
# built-in runner (tests/client/*.test.mjs; each file starts its own stack).
# Works with Debian 12's node 18, which has no --test-concurrency: running
# the files one by one is what keeps them from competing for the CPU.
# Prints each file's TAP output, then after "==== client summary" the totals:
#   # tests N
#   # pass N
#   # fail N
#   client: N passed, N failed
# and exits non-zero on any failure, or when no test ran.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
DIR=tests/client
FILE_TIMEOUT_S=${CLIENT_FILE_TIMEOUT_S:-300}

# Node comes from scripts/setup.sh (Debian's nodejs). npm is installed here,
# only when it is needed and missing: it cannot be in setup.sh's list, since
# NodeSource's nodejs (which bundles npm) conflicts with Debian's npm package.
if ! command -v node >/dev/null 2>&1; then
    bash scripts/setup.sh || exit 1
fi
install_npm() {
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if ! command -v sudo >/dev/null 2>&1; then
            echo "client-tests: npm is missing and I am not root: apt-get install npm" >&2
            return 1
        fi
        sudo=(sudo)
    fi
    echo "client-tests: installing Debian's npm" >&2
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends npm \
        >/dev/null || { "${sudo[@]}" apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq \
            --no-install-recommends npm >/dev/null; }
}
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 18 ]; then
    echo "client-tests: node $(node --version) is too old: 18 or newer is needed" >&2
    exit 1
fi

# Install the pinned client packages when they are missing or the lock changed.
if [ ! -d "$DIR/node_modules" ] || [ "$DIR/package-lock.json" -nt "$DIR/node_modules" ]; then
    if ! command -v npm >/dev/null 2>&1 && ! install_npm; then
        echo "client-tests: npm is needed to install the client packages" >&2
        exit 1
    fi
    # npm trusts only its own CA list unless told otherwise; a machine whose
    # registry traffic passes a TLS proxy has that proxy's CA in the system
    # store, so npm is pointed at it unless a CA file is configured already.
    if [ -z "${npm_config_cafile:-}" ] && [ -z "${NODE_EXTRA_CA_CERTS:-}" ] &&
        [ -r /etc/ssl/certs/ca-certificates.crt ]; then
        export npm_config_cafile=/etc/ssl/certs/ca-certificates.crt
    fi
    if ! (cd "$DIR" && npm ci --no-audit --no-fund --loglevel=error); then
        echo "client-tests: npm ci failed" >&2
        exit 1
    fi
    touch "$DIR/node_modules"
fi

# 1000 sockets in the load check need more descriptors than the usual 1024.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

shopt -s nullglob
files=("$DIR"/*.test.mjs)
shopt -u nullglob

tests=0 pass=0 fail=0
failed_files=()
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for f in "${files[@]}"; do
    echo "==== $f"
    # timeout(1) signals the whole process group, so a hung file takes its
    # stack down with it.
    timeout -k 10 "$FILE_TIMEOUT_S" node --test --test-reporter=tap "$f" 2>&1 | tee "$out"
    rc=${PIPESTATUS[0]}
    # The runner's own summary lines start at column 0; subtests are indented.
    t=$(sed -nE 's/^# tests ([0-9]+)$/\1/p' "$out" | tail -n 1)
    p=$(sed -nE 's/^# pass ([0-9]+)$/\1/p' "$out" | tail -n 1)
    x=$(sed -nE 's/^# fail ([0-9]+)$/\1/p' "$out" | tail -n 1)
    c=$(sed -nE 's/^# cancelled ([0-9]+)$/\1/p' "$out" | tail -n 1)
    if [ -z "$t" ] || [ -z "$p" ] || [ -z "$x" ]; then
        echo "==== $f: no summary from the runner (exit $rc): counted as one failure"
        fail=$((fail + 1))
        failed_files+=("$f")
        continue
    fi
    tests=$((tests + t))
    pass=$((pass + p))
    # A cancelled test (its hook failed, or the file ended early) failed too.
    fail=$((fail + x + ${c:-0}))
    if [ "$rc" -ne 0 ] || [ "$x" -ne 0 ] || [ "${c:-0}" -ne 0 ] || [ "$t" -eq 0 ]; then
        failed_files+=("$f")
        if [ "$rc" -ne 0 ] && [ "$x" -eq 0 ] && [ "${c:-0}" -eq 0 ]; then
            # The runner failed without a failing test (a crash after the
            # tests, a timeout): count it.
            fail=$((fail + 1))
        fi
    fi
done

echo "==== client summary"
if [ ${#files[@]} -eq 0 ] || [ "$tests" -eq 0 ]; then
    echo "client-tests: no test ran" >&2
    fail=$((fail + 1))
    failed_files+=("(none ran)")
fi
if [ ${#failed_files[@]} -ne 0 ]; then
    echo "failed files: ${failed_files[*]}"
fi
echo "# tests $tests"
echo "# pass $pass"
echo "# fail $fail"
echo "client: $pass passed, $fail failed"
[ ${#failed_files[@]} -eq 0 ]
