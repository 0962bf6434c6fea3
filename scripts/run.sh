#!/usr/bin/env bash
# `make run`: the whole system on embedded defaults, in the foreground.
# Starts nats-server with JetStream under the data directory, then the
# services, waits until the gateway is ready, prints how to use it, and stops
# everything it started on Ctrl-C. A second run keeps the data.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-build}
export NATTER_DATA_DIR=${NATTER_DATA_DIR:-$ROOT/data}
export NATTER_MIGRATIONS_DIR=${NATTER_MIGRATIONS_DIR:-$ROOT/schemas/migrations}
NATS_PORT=${NATTER_NATS_PORT:-4222}
export NATS_URL=${NATS_URL:-nats://127.0.0.1:$NATS_PORT}
export NATTER_HTTP_PORT=${NATTER_HTTP_PORT:-8080}
export EDGE_PORT=${EDGE_PORT:-4000}
LOGS="$NATTER_DATA_DIR/logs"
mkdir -p "$NATTER_DATA_DIR/nats" "$LOGS"

pids=()
stop() {
    local rc=${1:-0}
    trap - INT TERM EXIT
    echo
    echo "natter: stopping"
    # Services first (they drain), the broker last.
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        kill -TERM "${pids[i]}" 2>/dev/null
        wait "${pids[i]}" 2>/dev/null
    done
    exit "$rc"
}
trap 'stop 0' INT TERM
trap 'stop $?' EXIT

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if port_open "$NATS_PORT"; then
    echo "natter: something already listens on port $NATS_PORT; is another 'make run' going?" >&2
    echo "natter: set NATTER_NATS_PORT to use another port" >&2
    exit 1
fi
nats-server -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$NATTER_DATA_DIR/nats" >"$LOGS/nats-server.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do port_open "$NATS_PORT" && break; sleep 0.1; done
port_open "$NATS_PORT" || { echo "natter: nats-server did not start; see $LOGS/nats-server.log" >&2; exit 1; }

# Each service logs to the terminal, prefixed with its name, and to a file.
start() {
    local name=$1
    "$BUILD/bin/$name" > >(tee -a "$LOGS/$name.log" | sed -u "s/^/[$name] /") 2>&1 &
    pids+=($!)
}
start auth
start rooms
start messages
start presence
start gateway
start edge

URL="http://localhost:$NATTER_HTTP_PORT"
for _ in $(seq 1 150); do
    if curl -fsS -o /dev/null "$URL/readyz" 2>/dev/null; then break; fi
    sleep 0.2
done
if ! curl -fsS -o /dev/null "$URL/readyz" 2>/dev/null; then
    echo "natter: the gateway did not become ready; logs are in $LOGS" >&2
    exit 1
fi
for _ in $(seq 1 50); do
    if curl -fsS -o /dev/null "http://127.0.0.1:$EDGE_PORT/healthz" 2>/dev/null; then break; fi
    sleep 0.2
done
if ! curl -fsS -o /dev/null "http://127.0.0.1:$EDGE_PORT/healthz" 2>/dev/null; then
    echo "natter: the WebSocket edge did not become ready; logs are in $LOGS" >&2
    exit 1
fi

cat <<MSG

  Natter is running.
    REST API (gateway):   $URL
    WebSocket (edge):     ws://localhost:$EDGE_PORT/socket  (Phoenix Channels v2: new Socket("ws://localhost:$EDGE_PORT/socket", {params: {token}}))
    NATS:                 $NATS_URL
    data:                 $NATTER_DATA_DIR

  Get a local token, then call the API with it (your profile, a new room,
  a message in it, its history, your rooms):

    TOKEN=\$(curl -s -X POST $URL/api/dev/token -H 'Content-Type: application/json' -d '{"username":"alice"}' | sed -E 's/.*"token":"([^"]+)".*/\1/')
    curl -s $URL/api/users/me -H "Authorization: Bearer \$TOKEN"
    ROOM=\$(curl -s -X POST $URL/api/rooms -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' -d '{"name":"general"}' | sed -E 's/.*"id":"([^"]+)".*/\1/')
    curl -s -X POST $URL/api/rooms/\$ROOM/messages -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' -d '{"content":"hello, world"}'
    curl -s $URL/api/rooms/\$ROOM/messages -H "Authorization: Bearer \$TOKEN"
    curl -s $URL/api/rooms -H "Authorization: Bearer \$TOKEN"

  Press Ctrl-C to stop.

MSG
wait -n "${pids[@]}"
echo "natter: a process exited; stopping the rest (logs in $LOGS)" >&2
stop 1
