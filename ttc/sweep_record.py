"""What a sweep writes about itself into its run: the public config, the dataset's
identity, its live state for ``ttc status``, and the refusal to add to an imported run.

The config is stored without secrets (only the key's variable name): header tables and
secret-named keys are dropped at any depth, so a scorer's or a verifier model's
credentials never reach the run directory either.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Sequence
from typing import Any

from ttc._secrets import without_secrets
from ttc.concurrency import AdaptiveLimit
from ttc.config import Config
from ttc.errors import StoreWriteError, UserInputError
from ttc.problems import Problem
from ttc.store import RunStore, SweepState

__all__ = ["STATE_EVERY_S", "StateWriter", "dataset_info", "public_config", "refuse_import"]

#: seconds between writes of the sweep's live state (effective concurrency) to the run
STATE_EVERY_S = 5.0


def refuse_import(store: RunStore) -> None:
    meta = store.run_meta()
    if meta.origin == "import":
        source = (meta.import_info or {}).get("source")
        what = f" from {source}" if source else ""
        raise UserInputError(
            f"{store.run_dir} was created by ttc import{what}; a sweep cannot add to it "
            f"(use another --out directory)"
        )


class StateWriter:
    """Writes the sweep's live state (``RunMeta.last_sweep``) for ``ttc status``."""

    def __init__(self, store: RunStore, limit: AdaptiveLimit) -> None:
        self.store = store
        self.limit = limit
        self.started_at = time.time()
        self._last: tuple[int, int, int] | None = None
        self._written = 0.0

    def maybe_write(self) -> None:
        now = time.monotonic()
        current = (self.limit.limit, self.limit.min_limit, self.limit.overloaded)
        if current != self._last and now - self._written >= STATE_EVERY_S or self._last is None:
            self.write()

    def write(self, *, finished: bool = False) -> None:
        lim = self.limit
        state = SweepState(
            pid=os.getpid(), started_at=self.started_at, updated_at=time.time(),
            concurrency=lim.ceiling, effective_concurrency=lim.limit,
            min_concurrency=lim.min_limit, overloaded=lim.overloaded, finished=finished,
        )
        with contextlib.suppress(StoreWriteError):  # the committer reports a full disk
            self.store.set_meta(last_sweep=state.to_dict())
        self._last = (lim.limit, lim.min_limit, lim.overloaded)
        self._written = time.monotonic()


def dataset_info(cfg: Config, sha256: str, problems: Sequence[Problem]) -> dict[str, Any]:
    """What ran, for reports: the source, its format and hash, the selection, the subjects."""
    d = cfg.dataset
    source = d.path or f"builtin:{d.builtin}"
    subjects = sorted({p.subject for p in problems if p.subject})
    selection = {"limit": d.limit, "subjects": d.subjects, "sample": d.sample, "seed": d.seed}
    info: dict[str, Any] = {"source": source, "format": d.format, "sha256": sha256,
                            "n_problems": len(problems), "subjects": subjects,
                            "selection": selection}
    if d.builtin:
        info["params"] = {"size": d.size, "difficulty": d.difficulty, "seed": d.seed}
    return info


def public_config(cfg: Config) -> dict[str, Any]:
    """The config as stored with the run: no secrets (only the key's variable name).

    Header tables and secret-named keys are dropped at any depth, so a scorer's or a
    verifier model's credentials never reach the run directory either.
    """
    data = without_secrets(dataclasses.asdict(cfg))
    data["path"] = str(cfg.path) if cfg.path else None
    data.pop("set_keys", None)  # how the config was given, not what it is
    return data
