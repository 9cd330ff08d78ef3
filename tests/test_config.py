"""Config validation: every mistake is one message naming the file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from ttc.config import load_config, parse_budget
from ttc.errors import ConfigError, MissingAPIKeyError

GOOD = """\
[model]
provider = "openai"
name = "m"
base_url = "http://127.0.0.1:1/v1"
api_key_env = "TTC_TEST_KEY"

[dataset]
path = "data.jsonl"

[sweep]
budgets = [1024, 4096, "high"]
samples = 8
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sweep.toml"
    path.write_text(text)
    return path


def test_good_config_and_overrides(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD), ["sweep.samples=16", "sweep.budgets=[2048]"])
    assert cfg.sweep.samples == 16
    assert cfg.sweep.budgets == [2048]
    assert cfg.model.api_key_env == "TTC_TEST_KEY"
    assert cfg.base_dir == tmp_path


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        (GOOD.replace("samples = 8", "samples = 0"), 12, "samples must be positive"),
        (GOOD.replace("[1024, 4096", "[-5, 4096"), 11, "budgets must be positive"),
        (GOOD.replace('"high"', '"huge"'), 11, "unknown effort level"),
        (GOOD.replace('provider = "openai"', 'provider = "bard"'), 2, "must be one of"),
        (GOOD.replace("samples = 8", "sample = 8"), 12, "did you mean 'samples'"),
        (GOOD.replace("samples = 8", "samples = 8 8"), 12, "invalid TOML"),
        (GOOD.replace("samples = 8", 'samples = "eight"'), 12, "must be an integer"),
        (GOOD + "[weird]\nx = 1\n", 13, "unknown section"),
    ],
)
def test_bad_config_names_file_and_line(
    tmp_path: Path, text: str, line: int, fragment: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}:"), message
    assert fragment in message
    assert "\n" not in message


def test_missing_file_and_sections(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match=r"missing \[dataset\]"):
        load_config(write(tmp_path, '[model]\nprovider = "simulated"\n'))


def test_anthropic_budget_floor(tmp_path: Path) -> None:
    text = GOOD.replace('"openai"', '"anthropic"').replace("[1024, 4096", "[512, 4096")
    with pytest.raises(ConfigError, match=">= 1024"):
        load_config(write(tmp_path, text))


def test_key_comes_only_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_config(write(tmp_path, GOOD))
    monkeypatch.delenv("TTC_TEST_KEY", raising=False)
    with pytest.raises(MissingAPIKeyError, match="TTC_TEST_KEY"):
        cfg.model.api_key()
    monkeypatch.setenv("TTC_TEST_KEY", "sk-secret-123")
    assert cfg.model.api_key() == "sk-secret-123"
    assert "sk-secret-123" not in repr(cfg)


def test_parse_budget() -> None:
    assert parse_budget("1024") == 1024
    assert parse_budget(2048) == 2048
    assert parse_budget("high") == "high"
