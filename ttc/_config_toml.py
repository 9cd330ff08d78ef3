"""From TOML text to typed dataclasses, for ``ttc.config``: parsing, ``--set`` overrides,
the walk over a dataclass's fields that coerces and checks each value, and the
``Locator`` that names the file and line (or the ``--set``) of any key an error is about.

Nothing here knows which sections ttc's config has: ``ttc.config`` defines them (its
dataclasses are the schema) and the rules across fields.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import math
import re
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Literal

from ttc.errors import ConfigError
from ttc.fsutil import user_path

__all__ = ["Locator", "apply_override", "build", "parse_toml", "suggest"]


def parse_toml(text: str, path: Path) -> dict[str, Any]:
    """The TOML document in ``text``; a syntax error is one line naming ``path`` and its line."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None)
        message = getattr(exc, "msg", str(exc))
        if line is None:
            match = re.search(r"line (\d+)", str(exc))
            line = int(match.group(1)) if match else None
            message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise ConfigError(f"invalid TOML: {message}", path=path, line=line) from None


class Locator:
    """Finds the line of ``section.key`` in the TOML text, for error messages.

    A key given with ``--set`` is blamed on ``--set``: its line in the file (if any)
    holds a value that was overridden, so pointing there would mislead.
    """

    def __init__(self, path: Path | str, text: str, set_keys: typing.Iterable[str] = ()) -> None:
        self.path = path
        self.lines = text.splitlines()
        self.set_keys = tuple(set_keys)

    def line(self, dotted: str) -> int | None:
        entry = re.fullmatch(r"(\w+)\.(\d+)\.(\w+)", dotted)  # "scorers.1.url"
        if entry:
            return self._entry_line(entry.group(1), int(entry.group(2)), entry.group(3))
        parts = dotted.split(".")
        key = parts[-1]
        section = ".".join(parts[:-1])
        current = ""
        for number, raw in enumerate(self.lines, start=1):
            stripped = raw.strip()
            header = re.fullmatch(r"\[\[?\s*([^\]]+?)\s*\]\]?", stripped)
            if header:
                current = header.group(1)
                if dotted == current:
                    return number
                continue
            if current == section and re.match(rf"{re.escape(key)}\s*=", stripped):
                return number
        section_line = None
        for number, raw in enumerate(self.lines, start=1):
            if re.fullmatch(rf"\[\[?\s*{re.escape(section)}\s*\]\]?", raw.strip()):
                section_line = number
        return section_line

    def _entry_line(self, array: str, index: int, key: str) -> int | None:
        """The line of ``key`` in the ``index``-th ``[[array]]`` table (else its header)."""
        seen, header, inside = -1, None, False
        for number, raw in enumerate(self.lines, start=1):
            stripped = raw.strip()
            if stripped.startswith("["):
                if re.fullmatch(rf"\[\[\s*{re.escape(array)}\s*\]\]", stripped):
                    seen += 1
                    inside = seen == index
                    header = number if inside else header
                else:
                    inside = False  # another table, or a sub-table of this entry
                continue
            if inside and re.match(rf"{re.escape(key)}\s*=", stripped):
                return number
        return header

    def error(self, dotted: str, message: str) -> ConfigError:
        for key in self.set_keys:
            if dotted == key or dotted.startswith(key + "."):
                return ConfigError(message, path=f"--set {key}")
        line = self.line(dotted)
        if line is None:  # not in the file at all: a table only --set created
            for key in self.set_keys:
                if key.startswith(dotted + "."):
                    return ConfigError(message, path=f"--set {key}")
        return ConfigError(message, path=self.path, line=line)


def suggest(key: str, options: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(options), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def build(cls: Any, raw: object, section: str, loc: Locator) -> Any:
    if not isinstance(raw, dict):
        raise loc.error(section, f"[{section}] must be a table")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in names:
            raise loc.error(
                f"{section}.{key}", f"unknown key '{key}' in [{section}]{suggest(key, names)}"
            )
        values[key] = _coerce(value, hints[key], f"{section}.{key}", loc)
    for f in dataclasses.fields(cls):
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required and f.name not in values:
            raise loc.error(section, f"[{section}] needs '{f.name}'")
    return cls(**values)


def _coerce(value: Any, hint: Any, dotted: str, loc: Locator) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return build(hint, value, dotted, loc)
    if origin is Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise loc.error(dotted, f"{dotted} must be one of {choices}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        if set(args) == {int, str}:  # a budget: tokens or an effort name
            if isinstance(value, (int, str)) and not isinstance(value, bool):
                return value
            raise loc.error(dotted, f"{dotted} must be a number or a name")
        inner = [a for a in args if a is not type(None)]
        if len(inner) > 1:  # e.g. bool | Literal["auto"]: the first member that fits
            for member in inner:
                with contextlib.suppress(ConfigError):
                    return _coerce(value, member, dotted, loc)
            raise loc.error(dotted, f"{dotted} must be {_spell(inner)}, got {value!r}")
        return _coerce(value, inner[0], dotted, loc)
    if origin is list:
        if not isinstance(value, list):
            raise loc.error(dotted, f"{dotted} must be a list")
        return [_coerce(v, args[0], dotted, loc) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise loc.error(dotted, f"{dotted} must be a table")
        if len(args) == 2 and args[1] is str:
            for k, v in value.items():
                if not isinstance(v, str):
                    raise loc.error(dotted, f"{dotted}.{k} must be a string, got {v!r}")
                if any(not ch.isprintable() for ch in k + v):
                    raise loc.error(dotted, f"{dotted}.{k} holds control characters")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise loc.error(dotted, f"{dotted} must be true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise loc.error(dotted, f"{dotted} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise loc.error(dotted, f"{dotted} must be a number, got {value!r}")
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise loc.error(dotted, f"{dotted} must be a finite number, got {value!r}")
        return number
    if hint is str:
        if not isinstance(value, str):
            raise loc.error(dotted, f"{dotted} must be a string, got {value!r}")
        return value
    return value


def _spell(members: list[Any]) -> str:
    words: list[str] = []
    for member in members:
        if member is bool:
            words += ["true", "false"]
        elif typing.get_origin(member) is Literal:
            words += [repr(a) for a in typing.get_args(member)]
        else:
            words.append(getattr(member, "__name__", str(member)))
    return ", ".join(words[:-1]) + " or " + words[-1] if len(words) > 1 else words[0]


def apply_override(data: dict[str, Any], item: str, path_keys: tuple[str, ...] = ()) -> str:
    """Apply ``--set section.key=value``; the value is parsed as TOML, else kept as text.

    Returns the dotted key. A relative path given for one of ``path_keys`` resolves
    against the current directory (where the user typed it), not the config file's folder.
    """
    if "=" not in item:
        raise ConfigError(f"--set expects section.key=value, got {item!r}")
    dotted, _, raw = item.partition("=")
    parts = [p.strip() for p in dotted.strip().split(".") if p.strip()]
    if len(parts) < 2:
        raise ConfigError(f"--set expects section.key=value, got {item!r}")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    key = ".".join(parts)
    if key in path_keys and isinstance(value, str) and value:
        expanded = user_path(value)
        value = str(expanded if expanded.is_absolute() else Path.cwd() / expanded)
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {key}: {part} is not a table")
        node = child
    node[parts[-1]] = value
    return key
