#!/usr/bin/env bash
# The whole test suite: lint, types, then every test (real iverilog, yosys, verilator, OpenSTA).
#   bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
export COCOTB_REWRITE_ASSERTION_FILES=""
.venv/bin/ruff check evoforge tests bench
.venv/bin/ruff format --check evoforge tests bench
.venv/bin/mypy
status=0
.venv/bin/pytest -n 2 --dist loadfile "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "test.sh: pytest collected no tests (exit 5); nothing failed" >&2
  exit 0
fi
exit "$status"
