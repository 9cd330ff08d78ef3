"""Batch mode's settings, projections and store: bad values refused in one line naming the
key (exit 2, nothing sent), servers without batch endpoints refused before anything is
uploaded, ``--dry-run`` showing streaming and batch projections, ``ttc status`` showing
pending batches, and the schema migration that adds the batch tables."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from batch_support import batch_config, open_batches, toml_config, write_data

from ttc.cli import main
from ttc.sampler import Sweep
from ttc.store import SCHEMA_VERSION, RunStore
from ttc.testing.batches import BatchPlan
from ttc.testing.fake_server import FakeServer, run_in_thread


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with run_in_thread() as srv:
        yield srv


def one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


@pytest.mark.parametrize(
    ("provider", "sweep", "model", "expected"),
    [
        ("anthropic", {"mode": "sometimes"}, "",
         "sweep.mode must be one of 'online', 'batch', got 'sometimes'"),
        ("anthropic", {"batch_poll_s": -1.0}, "", "sweep.batch_poll_s must be > 0, got -1"),
        ("anthropic", {"batch_poll_s": 0}, "", "sweep.batch_poll_s must be > 0, got 0"),
        ("openai", {"batch_poll_s": "nan"}, "", "sweep.batch_poll_s must be a finite number"),
        ("openai", {"batch_poll_s": "inf"}, "", "sweep.batch_poll_s must be a finite number"),
        ("anthropic", {}, "batch_discount = 1.5",
         "model.batch_discount must be at most 1, got 1.5"),
        ("openai", {}, "batch_discount = -0.25", "model.batch_discount must be >= 0, got -0.25"),
        ("simulated", {"mode": "batch"}, "",
         "sweep.mode = \"batch\" needs a provider with a batch API (anthropic or openai); "
         "provider 'simulated' has none"),
        ("local", {"mode": "batch"}, "",
         "sweep.mode = \"batch\" needs a provider with a batch API (anthropic or openai); "
         "provider 'local' has none"),
        ("openai", {"mode": "batch"}, "budget_forcing = { enabled = true }",
         "sweep.mode = \"batch\" cannot drive budget forcing"),
    ],
)
def test_bad_batch_settings_are_one_line_naming_the_key(
    provider: str, sweep: dict[str, object], model: str, expected: str, tmp_path: Path,
    server: FakeServer, capsys: pytest.CaptureFixture[str],
) -> None:
    write_data(tmp_path, 2)
    path = toml_config(tmp_path, provider, server.base_url, model=model, **sweep)
    text = path.read_text().replace('"nan"', "nan").replace('"inf"', "inf")
    if provider in ("simulated", "local"):
        text = text.replace('name = "fake-model"\n', "").replace(
            f'base_url = "{server.base_url}"\n', "")
    path.write_text(text)
    for extra in (["--dry-run"], []):
        code = main(["sweep", str(path), "--out", str(tmp_path / "run"), "--quiet", *extra])
        assert code == 2
        line = one_line(capsys)
        assert line.startswith(f"ttc: error: {path}:") and expected in line, line
    assert server.count == 0 and server.batches.calls == []
    assert not (tmp_path / "run").exists()


def test_set_overrides_are_blamed_on_set(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         server: FakeServer) -> None:
    write_data(tmp_path, 2)
    path = toml_config(tmp_path, "anthropic", server.base_url)
    assert main(["sweep", str(path), "--dry-run", "--set", "sweep.batch_poll_s=-5"]) == 2
    assert one_line(capsys) == ("ttc: error: --set sweep.batch_poll_s: sweep.batch_poll_s must "
                                "be > 0, got -5")


def test_a_server_without_batch_endpoints_is_refused_before_anything_is_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_data(tmp_path, 2)
    with run_in_thread(batches=False, record_limit=100) as bare:
        path = toml_config(tmp_path, "openai", bare.base_url, mode="batch")
        assert main(["sweep", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 2
        line = one_line(capsys)
        assert f"{path}:" in line and 'sweep.mode = "batch", but' in line
        assert "has no batch API (HTTP 404)" in line and "nothing was sent" in line
        assert bare.count == 0 and list(bare.requests) == []  # not one model request
    with sqlite3.connect(tmp_path / "run" / "samples.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM batches").fetchone()[0] == 0
        assert db.execute("SELECT COUNT(*) FROM samples").fetchone()[0] == 0


# ---------------------------------------------------------------- --dry-run


def test_dry_run_shows_what_streams_and_what_a_batch_sweep_costs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], server: FakeServer
) -> None:
    write_data(tmp_path, 2)
    path = toml_config(tmp_path, "anthropic", server.base_url, mode="batch",
                       budgets=[1024, 32000])
    assert main(["sweep", str(path), "--out", str(tmp_path / "run"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "mode          : batch (sweep.mode)" in out
    assert "budget     1024: 6 requests, whole online (up to 2,048 output tokens each)" in out
    assert "budget    32000: 6 requests, streamed online (up to 33,024 output tokens each)" in out
    online = float(out.split("cost online   : up to $")[1].split()[0].replace(",", ""))
    batch = float(out.split("cost batch    : up to $")[1].split()[0].replace(",", ""))
    assert batch == pytest.approx(online / 2, abs=0.01) and online > 0
    assert "at model.batch_discount = 0.5 <- sweep.mode" in out
    assert "  1 batch of 12 requests" in out and "nothing streams" in out
    assert "at most 100,000 requests and 256.0 MB per batch" in out
    assert server.count == 0 and server.batches.calls == []


def test_dry_run_of_a_billion_samples_projects_its_batches_arithmetically(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_data(tmp_path, 2)
    path = toml_config(tmp_path, "openai", "http://127.0.0.1:9", model="batch_discount = 0.6",
                       mode="batch")
    started = time.process_time()  # CPU time: load elsewhere on the machine cannot trip it
    assert main(["sweep", str(path), "--dry-run", "--set", "sweep.samples=1000000000"]) == 0
    assert time.process_time() - started < 2.0
    out = capsys.readouterr().out
    assert "  80,000 batches of 4,000,000,000 requests" in out  # 50,000 to a batch
    assert "at model.batch_discount = 0.6 <- sweep.mode" in out
    # an online sweep packs nothing: it shows what the batch discount would save
    assert main(["sweep", str(path), "--dry-run", "--set", "sweep.samples=1000000000",
                 "--set", "sweep.mode=online"]) == 0
    out = capsys.readouterr().out
    assert "at model.batch_discount = 0.6 (sweep.mode = \"batch\")" in out
    assert "batches of" not in out


def test_dry_run_and_status_show_cells_waiting_on_a_batch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], server: FakeServer
) -> None:
    data = write_data(tmp_path, 2)
    server.batches.plan = BatchPlan(delay_s=30)
    run = tmp_path / "run"

    async def submit_then_stop() -> None:
        task = asyncio.ensure_future(Sweep(batch_config("anthropic", server.base_url, data),
                                           run).run())
        while not (open_batches(run) and all(row[1] for row in open_batches(run))):
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(submit_then_stop())
    path = toml_config(tmp_path, "anthropic", server.base_url, mode="batch")
    assert main(["sweep", str(path), "--out", str(run), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "requests      : 0 to send (0 of 12 stored)" in out
    assert "  12 more wait on provider batches: collected, never sent again" in out
    assert main(["status", str(run)]) == 0
    out = capsys.readouterr().out
    assert "  1 provider batch pending (12 cells wait on them; the next sweep re-attaches):" in out
    assert "msgbatch_" in out and "(anthropic): in_progress for 0m, 12 requests" in out
    assert "12 processing" in out
    assert main(["status", str(run), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["batches"]
    assert [(b["status"], b["requests"], b["pending"]) for b in listed] == [("pending", 12, 12)]


# ---------------------------------------------------------------- the store


def _as_v2(path: Path) -> None:
    """Turn a fresh store back into the schema 2 layout (no batch tables)."""
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE batch_cells")
        db.execute("DROP TABLE batches")
        db.execute("PRAGMA user_version = 2")
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', '2')")


def test_a_schema_2_store_is_read_as_is_and_migrated_by_a_writer(tmp_path: Path) -> None:
    assert SCHEMA_VERSION == 3
    with RunStore(tmp_path / "run", create=True):
        pass
    _as_v2(tmp_path / "run" / "samples.sqlite")
    with RunStore(tmp_path / "run", read_only=True) as reader:
        assert reader.schema_version == 2
        assert not reader.batches.available and reader.batches.batches() == []
        assert reader.batches.pending_keys() == set() and not reader.batches.has_open()
    assert main(["status", str(tmp_path / "run")]) == 0
    with RunStore(tmp_path / "run") as writer:
        assert writer.schema_version == 3 and writer.batches.available
        local = writer.batches.record_intent("openai", "t", [(("p", "1024", 0), "c0")], 10)
        assert writer.batches.pending_keys() == {("p", "1024", 0)}
        writer.batches.release(local, "test")
        assert writer.batches.pending_keys() == set()
    with sqlite3.connect(tmp_path / "run" / "samples.sqlite") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 3
