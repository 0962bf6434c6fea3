#!/usr/bin/env bash
# Runs the WebSocket edge benchmark (tests/bench/bench_edge.mjs; `make
# bench-edge`, and the second half of `make bench`): installs its one Node
# package (`ws`, pinned in tests/bench/edge/package-lock.json) when it is
# missing, raises the descriptor limit for 10 000 client sockets, and runs it.
# BUILD says where the binaries are (default "build"); the BENCH_* knobs are
# described in bench_edge.mjs and docs/benchmarks.md.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
DIR=tests/bench/edge

# Node comes from scripts/setup.sh (Debian's nodejs).
if ! command -v node >/dev/null 2>&1; then
    bash scripts/setup.sh || exit 1
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 18 ]; then
    echo "bench-edge: node $(node --version) is too old: 18 or newer is needed" >&2
    exit 1
fi

# Install the pinned package when it is missing or the lock changed. npm is
# installed only then, as scripts/client-tests.sh does.
if [ ! -d "$DIR/node_modules/ws" ] || [ "$DIR/package-lock.json" -nt "$DIR/node_modules" ]; then
    if ! command -v npm >/dev/null 2>&1; then
        sudo=()
        if [ "$(id -u)" -ne 0 ]; then
            command -v sudo >/dev/null 2>&1 || {
                echo "bench-edge: npm is missing and I am not root: apt-get install npm" >&2
                exit 1
            }
            sudo=(sudo)
        fi
        echo "bench-edge: installing Debian's npm" >&2
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq \
            --no-install-recommends npm >/dev/null || {
            "${sudo[@]}" apt-get update -qq &&
                DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq \
                    --no-install-recommends npm >/dev/null
        } || {
            echo "bench-edge: npm is needed to install the ws package" >&2
            exit 1
        }
    fi
    # npm trusts only its own CA list unless told otherwise; a machine whose
    # registry traffic passes a TLS proxy has that proxy's CA in the system
    # store, so npm is pointed at it unless a CA file is configured already.
    if [ -z "${npm_config_cafile:-}" ] && [ -z "${NODE_EXTRA_CA_CERTS:-}" ] &&
        [ -r /etc/ssl/certs/ca-certificates.crt ]; then
        export npm_config_cafile=/etc/ssl/certs/ca-certificates.crt
    fi
    if ! (cd "$DIR" && npm ci --no-audit --no-fund --loglevel=error); then
        echo "bench-edge: npm ci failed in $DIR" >&2
        exit 1
    fi
    touch "$DIR/node_modules"
fi

# Every socket is a descriptor in this process: raise the soft limit to the
# hard one (bench_edge.mjs says so when it is still too low).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

exec node tests/bench/bench_edge.mjs
