#!/usr/bin/env bash
# Installs everything and runs the gateway on a working default: the embedded PACS
# (harmony-dimse pacs, AE HARMONY_PACS on 127.0.0.1:11112) seeded with sample studies, and the
# gateway (demo/config.toml: HTTP on 127.0.0.1:8085, /trigger-dicom) in front of it. The PACS
# knows the gateway's storage SCP (HARMONY_SCU at 127.0.0.1:11113) for C-MOVE. Ctrl-C stops both.
# To put the gateway in front of Orthanc at localhost:4242 instead (the brief's setup), run
#   .venv/bin/harmony-dimse serve --config config.toml
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh

mkdir -p tmp
.venv/bin/python scripts/demo_data.py tmp/demo-data
.venv/bin/harmony-dimse pacs --aet HARMONY_PACS --host 127.0.0.1 --port 11112 \
  --storage tmp/demo-pacs --import tmp/demo-data \
  --destination HARMONY_SCU=127.0.0.1:11113 &
pacs_pid=$!
trap 'kill "$pacs_pid" 2>/dev/null || true' EXIT INT TERM

for _ in $(seq 100); do
  if (exec 3<>/dev/tcp/127.0.0.1/11112) 2>/dev/null; then break; fi
  if ! kill -0 "$pacs_pid" 2>/dev/null; then echo "run: the demo PACS did not start" >&2; exit 1; fi
  sleep 0.1
done

.venv/bin/harmony-dimse serve --config demo/config.toml &
gateway_pid=$!
# stopping this script (Ctrl-C, or a TERM sent to it alone) stops the gateway and the PACS too
trap 'kill "$gateway_pid" "$pacs_pid" 2>/dev/null || true' EXIT INT TERM
wait "$gateway_pid"
