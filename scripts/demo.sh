#!/usr/bin/env bash
# Set everything up and run the demo box (embedded defaults: SQLite, a local mosquitto).
# Extra arguments go to `qilu-edge demo` (e.g. --seconds 60).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh demo
if ! (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; then
    echo "==> no MQTT broker on 127.0.0.1:1883: starting mosquitto (loopback only)"
    mkdir -p var
    printf 'listener 1883 127.0.0.1\nallow_anonymous true\n' > var/mosquitto-demo.conf
    mosquitto -c var/mosquitto-demo.conf -d
fi
exec .venv/bin/qilu-edge demo "$@"
