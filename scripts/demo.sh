#!/usr/bin/env bash
# Set everything up and run the demo box (embedded defaults: SQLite, a local mosquitto).
# Every run starts afresh in var/demo (qilu-edge demo --reset, the default; --keep reuses it).
# Everything it starts stops with it: Ctrl-C ends the box and its local cloud, and the
# mosquitto this script started (if none was running) is stopped on the way out.
# Extra arguments go to `qilu-edge demo` (e.g. --seconds 60).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "==> demo: a fresh box in var/demo on every run; Ctrl-C stops all it started"
[ "${QILU_DEMO_SKIP_SETUP:-}" = 1 ] || bash scripts/setup.sh demo
port="${QILU_DEMO_MQTT_PORT:-1883}"
broker=""
stop() { [ -n "$broker" ] && kill "$broker" 2>/dev/null && wait "$broker" 2>/dev/null; true; }
trap stop EXIT
trap 'exit 130' INT TERM HUP  # until the demo runs (below)
if ! (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then
    echo "==> no MQTT broker on 127.0.0.1:$port: starting mosquitto (loopback only, stopped at the end)"
    mkdir -p var
    printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$port" > var/mosquitto-demo.conf
    mosquitto -c var/mosquitto-demo.conf > var/mosquitto-demo.log 2>&1 &
    broker=$!
    for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
fi
# In the background and waited for: bash runs a trap only once its foreground command has
# ended, so a SIGTERM (systemd, kill) or SIGHUP (a closed terminal) to this script would wait
# for a demo that never ends. The demo stops its box and cloud on SIGTERM.
.venv/bin/qilu-edge demo --mqtt-port "$port" "$@" &
demo=$!
trap 'kill -TERM "$demo" 2>/dev/null; wait "$demo"; exit 130' INT
trap 'kill -TERM "$demo" 2>/dev/null; wait "$demo"; exit 143' TERM HUP
wait "$demo"
