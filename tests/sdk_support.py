"""Request bodies checked against the official SDKs' typed params (one checker for every
test that sends a body: providers, agents, batches).

Pydantic validation of a TypedDict silently ignores keys it does not declare, and
validates ``Iterable`` fields lazily, so a check is: validate, walk everything the
validation returned (so lazy fields are checked too), and list the undeclared keys.
"""

from __future__ import annotations

import collections.abc
import functools
import typing
from typing import Any

import pytest
import typing_extensions as te

__all__ = ["assert_sdk_valid", "sdk_params", "unknown_keys"]


def unknown_keys(value: Any, hint: Any, where: str = "") -> list[str]:
    """Keys no TypedDict in ``hint`` declares (pydantic validation silently ignores them)."""
    origin = typing.get_origin(hint)
    if origin in (te.Required, te.NotRequired, typing.Annotated):
        return unknown_keys(value, typing.get_args(hint)[0], where)
    if origin is typing.Union:
        return min((unknown_keys(value, a, where) for a in typing.get_args(hint)), key=len)
    if te.is_typeddict(hint):
        if not isinstance(value, dict):
            return []
        hints = typing.get_type_hints(hint)
        bad = [f"{where}{k}" for k in value if k not in hints]
        for k, v in value.items():
            if k in hints:
                bad += unknown_keys(v, hints[k], f"{where}{k}.")
        return bad
    if isinstance(value, list) and origin in (
        list,
        collections.abc.Iterable,
        collections.abc.Sequence,
    ):
        item = typing.get_args(hint)[0]
        return [k for i, v in enumerate(value) for k in unknown_keys(v, item, f"{where}{i}.")]
    return []


@functools.cache
def sdk_params(sdk: str, streaming: bool = False) -> tuple[Any, Any]:
    """The SDK's create params type for a (streaming) request and a TypeAdapter kept alive
    (lazily validated fields need its schema)."""
    pytest.importorskip(sdk)
    from pydantic import TypeAdapter

    params: Any
    if sdk == "anthropic":
        from anthropic.types import message_create_params as m

        params = m.MessageCreateParamsStreaming if streaming else (
            m.MessageCreateParamsNonStreaming)
    else:
        from openai.types.chat import completion_create_params as o

        params = o.CompletionCreateParamsStreaming if streaming else (
            o.CompletionCreateParamsNonStreaming)
    return params, TypeAdapter(params)


def _drain(value: Any) -> None:
    """Walk everything, so that lazily validated ``Iterable`` fields are checked too."""
    if isinstance(value, dict):
        for v in value.values():
            _drain(v)
    elif isinstance(value, (list, tuple, collections.abc.Iterator)):
        for v in value:
            _drain(v)


def assert_sdk_valid(sdk: str, body: dict[str, Any],
                     allowed_extra: frozenset[str] = frozenset()) -> None:
    """``body`` is what ``sdk``'s typed params accept, and declares nothing else but
    ``allowed_extra`` (documented extensions such as vLLM's ``thinking_token_budget``)."""
    params, adapter = sdk_params(sdk, body.get("stream") is True)
    _drain(adapter.validate_python({k: v for k, v in body.items() if k not in allowed_extra}))
    assert sorted(unknown_keys(body, params)) == sorted(set(body) & allowed_extra)
