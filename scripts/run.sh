#!/usr/bin/env bash
# Installs everything and runs the gateway on its default config (config.toml: HTTP on
# 127.0.0.1:8085, PACS "ORTHANC" at localhost:4242). When nothing listens on 4242 yet, a demo
# Orthanc is started first (Debian's package, with TCP_NODELAY=1), seeded with pydicom's sample
# CT and MR images and knowing HARMONY_SCU at 127.0.0.1:11113 for C-MOVE. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh

demo_pid=""
cleanup() {
  if [ -n "$demo_pid" ]; then kill "$demo_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT INT TERM

if ! (exec 3<>/dev/tcp/127.0.0.1/4242) 2>/dev/null; then
  demo="tmp/demo-orthanc"
  mkdir -p "$demo"
  cat >"$demo/orthanc.json" <<JSON
{
  "Name": "harmony-dimse demo",
  "StorageDirectory": "$PWD/$demo/storage",
  "IndexDirectory": "$PWD/$demo/index",
  "DicomAet": "ORTHANC",
  "DicomPort": 4242,
  "HttpPort": 8042,
  "RemoteAccessAllowed": false,
  "AuthenticationEnabled": false,
  "DicomModalities": { "harmony": ["HARMONY_SCU", "127.0.0.1", 11113] },
  "DicomAlwaysAllowEcho": true, "DicomAlwaysAllowFind": true, "DicomAlwaysAllowMove": true,
  "DicomAlwaysAllowGet": true, "DicomAlwaysAllowStore": true,
  "DefaultEncoding": "Utf8"
}
JSON
  echo "run: starting a demo Orthanc (AE ORTHANC, DICOM 4242, REST 8042) in $demo"
  TCP_NODELAY=1 "$(PATH="$PATH:/usr/sbin" command -v Orthanc)" "$demo/orthanc.json" >"$demo/orthanc.log" 2>&1 &
  demo_pid=$!
  .venv/bin/python - <<'PY'
import time, urllib.request
from pydicom.data import get_testdata_file
for _ in range(300):
    try:
        urllib.request.urlopen("http://127.0.0.1:8042/system", timeout=1)
        break
    except OSError:
        time.sleep(0.1)
else:
    raise SystemExit("run: the demo Orthanc did not start; see tmp/demo-orthanc/orthanc.log")
for name in ("CT_small.dcm", "MR_small.dcm"):
    data = open(get_testdata_file(name), "rb").read()
    req = urllib.request.Request("http://127.0.0.1:8042/instances", data=data, method="POST")
    req.add_header("Content-Type", "application/dicom")
    urllib.request.urlopen(req, timeout=10)
print("run: demo Orthanc ready with 2 sample studies")
PY
fi

.venv/bin/harmony-dimse serve --config config.toml
