"""Agent steps meet a disk that refuses writes the way sampler samples do (``ttc.commit``):
SQLite's own SQLITE_FULL (a page-count cap on the store's connection) parks new requests,
the steps drawn stay in memory and are written once the disk takes them; a disk that
stays full ends the sweep with one line saying what is unsaved and where."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ttc.agent.runner import AgentSweep
from ttc.agent.steps import StepRecord, StepStore
from ttc.agent.wire import ToolRequest, Turn
from ttc.commit import Committer
from ttc.config import config_from_dict
from ttc.errors import StoreWriteError
from ttc.providers.simulated import SimulatedProvider
from ttc.store import DB_NAME


class Bulky(SimulatedProvider):
    """The simulated policy, with ~40 kB of incompressible thinking per step (so every
    step needs new pages of the store)."""

    calls = 0

    async def act(self, request: ToolRequest) -> Turn:
        Bulky.calls += 1
        turn = await super().act(request)
        return dataclasses.replace(turn, thinking=os.urandom(20_000).hex())


def agent_config(tmp_path: Path) -> Any:
    return config_from_dict({
        "model": {"provider": "simulated", "seed": 0},
        "dataset": {"builtin": "arithmetic", "difficulty": 5, "size": 8},
        "sweep": {"budgets": [2048], "samples": 1, "step_budgets": [4], "concurrency": 4},
        "agent": {"environment": "calculator"},
    }, path=tmp_path / "agent.toml")


def cap(db: sqlite3.Connection, slack: int) -> None:
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages + slack}")


def test_a_refused_step_write_is_one_ttc_error_and_leaves_no_transaction(
    tmp_path: Path,
) -> None:
    store = StepStore(tmp_path / DB_NAME)
    record = StepRecord(key=("p", "1024", 0, 0), step=1, message={"role": "assistant"},
                        text=os.urandom(40_000).hex())
    cap(store._db, 0)
    with pytest.raises(StoreWriteError, match="disk is full"):
        store.write_steps([record])
    assert not store._db.in_transaction
    assert store._db.execute("SELECT COUNT(*) FROM steps").fetchone()[0] == 0
    store._db.execute("PRAGMA max_page_count = 1073741823")
    store.write_steps([record])  # the same connection writes again once there is room
    assert [r.text for r in store.load(record.key)] == [record.text]
    store.close()


def test_a_disk_that_fills_then_frees_loses_no_agent_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Committer, "RETRY_DELAYS", (0.05,) * 40)
    stalls: list[Any] = []
    init = StepStore.__init__

    def capped_init(self: StepStore, db_path: Any) -> None:
        init(self, db_path)
        cap(self._db, 4)  # room for the trajectory rows, not for a step

        def lift() -> None:
            time.sleep(0.5)
            stalls.append(self._db.execute("SELECT COUNT(*) FROM steps").fetchone()[0])
            self._db.execute("PRAGMA max_page_count = 1073741823")

        threading.Thread(target=lift, daemon=True).start()

    monkeypatch.setattr(StepStore, "__init__", capped_init)
    config = agent_config(tmp_path)
    Bulky.calls = 0
    result = asyncio.run(AgentSweep(config, tmp_path / "run", provider=Bulky(config.model)).run())
    assert stalls == [0]  # nothing could be written while the cap held
    assert result.failed == 0 and result.ended + result.capped == 8
    with sqlite3.connect(tmp_path / "run" / DB_NAME) as db:
        steps = db.execute("SELECT COUNT(*) FROM steps").fetchone()[0]
        counted = db.execute("SELECT SUM(n_steps) FROM trajectories").fetchone()[0]
    assert steps == counted == Bulky.calls  # every paid step stored, exactly once


def test_a_disk_that_stays_full_ends_the_agent_sweep_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Committer, "RETRY_DELAYS", (0.02, 0.02))
    init = StepStore.__init__

    def capped_init(self: StepStore, db_path: Any) -> None:
        init(self, db_path)
        cap(self._db, 4)

    monkeypatch.setattr(StepStore, "__init__", capped_init)
    config = agent_config(tmp_path)
    Bulky.calls = 0
    with pytest.raises(StoreWriteError) as caught:
        asyncio.run(AgentSweep(config, tmp_path / "run", provider=Bulky(config.model)).run())
    message = str(caught.value)
    assert "\n" not in message and "disk is full" in message
    assert str((tmp_path / "run").resolve()) in message
    assert Bulky.calls <= 4  # parked: no request while the disk refused (one per worker)


def test_a_refused_trajectory_state_write_is_one_ttc_error(tmp_path: Path) -> None:
    """The state row is not a paid step, but a refused write of it must still be one ttc
    error (the CLI's one line), never a raw sqlite3 error, and leave no transaction."""
    from ttc.agent.steps import TrajectoryState
    from ttc.errors import TTCError

    store = StepStore(tmp_path / DB_NAME)
    key = ("p", "1024", 0, 0)
    store.set_trajectory(key, TrajectoryState("running", 4, 0))
    store._db.execute("PRAGMA query_only = 1")  # every write refused by SQLite itself
    with pytest.raises(TTCError) as info:
        store.set_trajectory(key, TrajectoryState("ended", 4, 3))
    assert not isinstance(info.value, sqlite3.Error) and "\n" not in str(info.value)
    assert not store._db.in_transaction
    store._db.execute("PRAGMA query_only = 0")
    store.set_trajectory(key, TrajectoryState("ended", 4, 3))
    assert store.states()[key].status == "ended"
    store.close()
