#!/usr/bin/env bash
# Installs evoforge and everything it needs on Debian/Ubuntu, into .venv at the project root, then
# (unless --no-example) runs a real optimisation job on a bundled example.
#   bash scripts/setup.sh              # install + run the example
#   bash scripts/setup.sh --no-example # install only (what CI does)
set -euo pipefail
cd "$(dirname "$0")/.."

run_example=1
[ "${1:-}" = "--no-example" ] && run_example=0

SYSTEM_PACKAGES=(iverilog yosys verilator opensta bubblewrap python3-venv python3-dev gcc g++ make chromium)

missing=()
for tool in iverilog yosys yosys-abc verilator sta bwrap chromium g++; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing system tools (missing: ${missing[*]})" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "setup: need root or sudo to apt-get install ${SYSTEM_PACKAGES[*]}" >&2; exit 1; }
    SUDO="sudo"
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${SYSTEM_PACKAGES[@]}" >/dev/null
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv" >&2
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# torch: machines without a GPU take the CPU wheel of the pinned release (an unpinned torch pulls a
# multi-GB CUDA build); GPU machines bring their own CUDA build within pyproject's range.
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "setup: a GPU is present: pip takes a CUDA build of torch in pyproject's range (large download)" >&2
  else
    .venv/bin/python -m pip install -q "torch==2.13.0"
  fi
fi
.venv/bin/python -m pip install -q -e ".[dev,llm,web,kernel,ray]"
# nvcc compiles CUDA candidates for the GPU on any machine: the system toolkit when there is one,
# else NVIDIA's wheels of one release into .venv (~270 MB; evoforge.tools.nvcc finds them there)
if ! command -v nvcc >/dev/null 2>&1 && [ ! -x /usr/local/cuda/bin/nvcc ]; then
  echo "setup: installing nvcc 13.0 from PyPI into .venv" >&2
  .venv/bin/python -m pip install -q "nvidia-cuda-nvcc==13.0.88" "nvidia-nvvm==13.0.88" \
    "nvidia-cuda-runtime==13.0.96" "nvidia-cuda-crt==13.0.88" "nvidia-cuda-cccl==13.0.85"
fi
echo "setup: installed $(.venv/bin/evoforge --version)" >&2

if [ "$run_example" = 1 ]; then
  echo "setup: optimising examples/rtl/seq_detect.v (a small search; about a minute)" >&2
  .venv/bin/evoforge run examples/rtl/seq_detect.v --proposer offline --budget 8 \
    --db "sqlite:///$PWD/.evoforge-example.db"
  echo "setup: browse it with: .venv/bin/evoforge jobs --db sqlite:///$PWD/.evoforge-example.db" >&2
fi
