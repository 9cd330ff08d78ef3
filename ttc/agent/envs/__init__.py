"""Built-in environments and the one place an ``[agent] environment`` name becomes a class."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from ttc.agent.protocol import Environment

__all__ = ["BUILTIN_ENVIRONMENTS", "EnvironmentSpecError", "resolve_environment"]

BUILTIN_ENVIRONMENTS = {
    "calculator": "ttc.agent.envs.calculator:CalculatorEnv",
    "rooms": "ttc.agent.envs.rooms:RoomsEnv",
}


class EnvironmentSpecError(ValueError):
    """``[agent] environment`` names nothing usable; the message is one line for the user."""


def resolve_environment(name: str) -> type[Any]:
    """The environment class for a built-in name or ``"package.module:Class"``.

    The class must build with no arguments and its instances must have ``reset`` and
    ``step`` (checked on a fresh instance, so a broken user class fails before any
    request is sent).
    """
    target = BUILTIN_ENVIRONMENTS.get(name, name)
    if ":" not in target:
        raise EnvironmentSpecError(
            f"unknown environment {name!r}; use one of {', '.join(BUILTIN_ENVIRONMENTS)} "
            f"or 'package.module:Class'"
        )
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import failure of user code is the user's to fix
        raise EnvironmentSpecError(
            f"cannot import module {module_name!r} for environment {name!r}: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    cls = getattr(module, attr, None)
    if cls is None or not inspect.isclass(cls):
        raise EnvironmentSpecError(f"module {module_name!r} has no class {attr!r}")
    try:
        instance = cls()
    except Exception as exc:
        raise EnvironmentSpecError(
            f"environment {name!r} cannot be built with no arguments: {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(instance, Environment):
        raise EnvironmentSpecError(
            f"{name!r} is not an Environment: it needs reset(problem, seed) and step(tool_call)"
        )
    return cls
