#!/usr/bin/env bash
# Starts the hub with demo rooms on embedded defaults (SQLite file, embedded MQTT broker).
# Extra arguments go to `empfang-hub demo` (for example --port 8081 or --host 0.0.0.0).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
ensure_venv hub
exec .venv/bin/empfang-hub demo "$@"
