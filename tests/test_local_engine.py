"""The local engine's failure paths and sizing, without the real model: a missing
``llama-server``, one that cannot be executed, one that dies or hangs while starting
(real child processes standing in for a broken binary), the ``servers`` -> ``slots``
config change, and the context each slot gets."""

from __future__ import annotations

import asyncio
import stat
import sys
from pathlib import Path

import pytest
from local_support import gone

from ttc.config import BudgetForcingConfig, ModelConfig, SweepConfig, config_from_dict
from ttc.errors import ConfigError, LocalModelError
from ttc.local_server import BINARY_ENV, LlamaServer, find_llama_server
from ttc.providers.local import PROMPT_MARGIN, LocalProvider


def _script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "m.gguf"
    path.write_bytes(b"GGUF" + b"\0" * 64)
    return path


@pytest.fixture
def no_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No $TTC_LLAMA_SERVER, nothing beside this Python, nothing on PATH."""
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.delenv(BINARY_ENV, raising=False)
    monkeypatch.setattr(sys, "executable", str(empty / "python"))
    monkeypatch.setenv("PATH", str(empty))




def test_a_missing_binary_says_to_run_make_local(no_binary: None, model: Path) -> None:
    with pytest.raises(LocalModelError, match=r"llama-server is not installed; run `make local`"):
        find_llama_server()
    server = LlamaServer(model)
    with pytest.raises(LocalModelError, match="make local"):
        asyncio.run(server.start())
    assert server.pid is None and server.log_dir is None  # nothing started, nothing written


def test_the_env_variable_must_name_an_executable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: Path
) -> None:
    monkeypatch.setenv(BINARY_ENV, str(tmp_path / "nope"))
    with pytest.raises(LocalModelError, match=f"{BINARY_ENV}=.*not an executable file"):
        find_llama_server()
    plain = tmp_path / "plain"
    plain.write_text("not a program")
    monkeypatch.setenv(BINARY_ENV, str(plain))
    with pytest.raises(LocalModelError, match="not an executable file"):
        find_llama_server()
    plain.chmod(0o755)  # executable bit, but no interpreter line: exec fails
    server = LlamaServer(model)
    with pytest.raises(LocalModelError, match="cannot run"):
        asyncio.run(server.start())
    assert server.pid is None


def test_a_server_that_dies_while_starting_reports_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: Path
) -> None:
    binary = _script(tmp_path / "llama-server", (
        'echo "args: $*"\n'
        'echo "LLAMA_ARG_CTX_SIZE=${LLAMA_ARG_CTX_SIZE:-unset}"\n'
        'echo "error: unknown argument" >&2\nexit 3\n'
    ))
    monkeypatch.setenv("LLAMA_ARG_CTX_SIZE", "99")  # must not reach the server
    server = LlamaServer(model, slots=4, n_ctx=300, threads=1, binary=binary)
    with pytest.raises(LocalModelError, match="exited with code 3") as info:
        asyncio.run(server.start())
    message = str(info.value)
    assert "error: unknown argument" in message and "last lines" in message
    assert "LLAMA_ARG_CTX_SIZE=unset" in message
    assert "--host 127.0.0.1 --port 0 " in message  # the OS picks the port, no race
    assert "-np 4 -c 1200 --no-kv-unified --cont-batching" in message
    assert "-t 1 -tb 1" in message
    assert server.pid is None
    assert server.log_path is not None and server.log_path.exists()  # kept: it failed


def test_a_server_that_never_gets_healthy_is_killed(tmp_path: Path, model: Path) -> None:
    binary = _script(tmp_path / "llama-server", "echo loading\nexec sleep 60\n")
    server = LlamaServer(model, binary=binary, startup_timeout_s=0.5)
    pids: list[int] = []

    async def go() -> None:
        task = asyncio.create_task(server.start())
        while server.pid is None:
            await asyncio.sleep(0.01)
        pids.append(server.pid)
        await task

    with pytest.raises(LocalModelError, match=r"did not get ready within 0.5s") as info:
        asyncio.run(go())
    assert "loading" in str(info.value)
    assert pids and gone(pids[0]) and server.pid is None


def test_servers_is_replaced_by_slots_with_one_line() -> None:
    base = {"dataset": {"builtin": "arithmetic", "size": 2}}
    with pytest.raises(ConfigError, match=r"model.servers is gone.*slots = N") as info:
        config_from_dict({"model": {"provider": "local", "servers": 2}, **base})
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="model.slots"):
        config_from_dict({"model": {"provider": "local", "slots": 0}, **base})
    config = config_from_dict({"model": {"provider": "local", "slots": 3}, **base})
    assert config.model.slots == 3 and config.model.n_ctx == 0
    with pytest.raises(ConfigError, match="model.n_ctx"):
        config_from_dict({"model": {"provider": "local", "n_ctx": -1}, **base})


def test_each_slot_holds_the_largest_request_of_the_sweep() -> None:
    chat = LocalProvider(ModelConfig(provider="local", answer_tokens=100, slots=4),
                         sweep=SweepConfig(budgets=[64, 2000, 500]))
    assert chat.max_concurrency == 4
    size = chat.context_per_slot()
    assert size % 256 == 0 and 2000 + 100 + PROMPT_MARGIN <= size < 2000 + 100 + PROMPT_MARGIN + 256
    forcing = BudgetForcingConfig(enabled=True, wait_rounds=3)
    bf = LocalProvider(ModelConfig(provider="local", answer_tokens=8, budget_forcing=forcing),
                       sweep=SweepConfig(budgets=[8, 16, 32]))
    assert bf.context_per_slot() >= 32 + 8 + PROMPT_MARGIN + 4 * 16  # room for the Waits
    given = LocalProvider(ModelConfig(provider="local", n_ctx=700),
                          sweep=SweepConfig(budgets=[5000]))
    assert given.context_per_slot() == 700  # the user's choice wins (the server will say
    # when a request does not fit)
    assert "engine" in chat.describe() and "slots" not in chat.describe()
