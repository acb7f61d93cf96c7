#!/usr/bin/env bash
# The full check: setup, lint, format check, type check, then pytest (arguments go to pytest).
# Every step runs even after a failure; the exit status is non-zero if any step failed.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh || { echo "test: setup failed" >&2; exit 1; }

failed=()
run_step() {
  local name="$1"
  shift
  echo "==> $name"
  if ! "$@"; then
    failed+=("$name")
  fi
}

run_step "ruff check" .venv/bin/ruff check .
run_step "ruff format --check" .venv/bin/ruff format --check .
run_step "mypy" .venv/bin/mypy
run_step "pytest" .venv/bin/pytest "$@"

if [ "${#failed[@]}" -gt 0 ]; then
  echo "test: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "test: all steps passed"
