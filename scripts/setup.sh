#!/usr/bin/env bash
# Installs what the tests need: the system peers (Orthanc, DCMTK) and the project's .venv.
# Idempotent and quick when everything is already in place; runs from any directory.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo_root="$(pwd)"
venv="$repo_root/.venv"
stamp="$venv/.pyproject.sha256"

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# pynetdicom puts its own echoscu/findscu/storescu/storescp into .venv/bin; only the system ones count.
system_path="$(printf '%s' "$PATH" | tr ':' '\n' \
  | { grep -v -x -F -e "$venv/bin" -e "${VIRTUAL_ENV:-/nonexistent}/bin" || true; } | paste -s -d ':')"
system_path="$system_path:/usr/local/sbin:/usr/sbin:/sbin"

missing_tools=()
for tool in Orthanc storescp storescu echoscu findscu movescu dcmqrscp dcmqridx; do
  if ! PATH="$system_path" command -v "$tool" >/dev/null 2>&1; then
    missing_tools+=("$tool")
  fi
done

if [ "${#missing_tools[@]}" -gt 0 ]; then
  echo "setup: missing ${missing_tools[*]}; installing orthanc and dcmtk with apt-get"
  as_root apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y orthanc dcmtk
  # The package may start its own Orthanc (config in /etc/orthanc, ports 4242/8042). Tests use
  # free ports so it would not collide, but it is not wanted on a test machine: stop that one only.
  if pgrep -x Orthanc >/dev/null 2>&1; then
    for pid in $(pgrep -x Orthanc); do
      if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q '/etc/orthanc'; then
        echo "setup: stopping the packaged Orthanc service (pid $pid)"
        as_root service orthanc stop || as_root /etc/init.d/orthanc stop || true
        break
      fi
    done
  fi
fi

if pgrep -x Orthanc >/dev/null 2>&1; then
  echo "setup: note: Orthanc already running (pids: $(pgrep -x Orthanc | paste -s -d ' '));" \
    "tests use their own instances on free ports"
fi

python_ok() {
  "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1
}

if [ ! -x "$venv/bin/python" ] || ! python_ok "$venv/bin/python"; then
  python=""
  for candidate in python3 python3.13 python3.12 python3.11; do
    if command -v "$candidate" >/dev/null 2>&1 && python_ok "$candidate"; then
      python="$candidate"
      break
    fi
  done
  if [ -z "$python" ]; then
    echo "setup: Python >= 3.11 is required" >&2
    exit 1
  fi
  echo "setup: creating .venv with $("$python" --version)"
  rm -rf "$venv"
  "$python" -m venv "$venv"
fi

wanted="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
  echo "setup: installing the project into .venv (pyproject.toml changed)"
  "$venv/bin/python" -m pip install --quiet -e '.[test]'
  printf '%s\n' "$wanted" >"$stamp"
fi
