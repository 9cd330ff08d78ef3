"""Config validation: every mistake is one message naming the file and line."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_cli import SIM  # the smallest valid config (simulated backend)

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


# ---------------------------------------------------------------- value rules


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("[sweep]\ntimeout_s = nan", "sweep.timeout_s must be a finite number"),
        ("[sweep]\ntimeout_s = inf", "sweep.timeout_s must be a finite number"),
        ("[sweep]\ntimeout_s = 0.0", "sweep.timeout_s must be positive"),
        ("[sweep]\nbackoff_base_s = 0", "sweep.backoff_base_s must be > 0"),
        ("[sweep]\nbackoff_max_s = -inf", "finite number"),
        ("[sweep]\nmax_attempts = 1000000", "sweep.max_attempts must be at most 100"),
        ("[sweep]\nconcurrency = 99999999", "sweep.concurrency must be at most"),
        ("[sweep]\nbudgets = [10000000000]", "is above 100,000,000 tokens"),
        ("[sweep]\nseed = -1", "sweep.seed must be at least 0"),
        ("[model]\nprice_output_per_mtok = -1.0", "must be >= 0"),
        ("[model]\nprice_input_per_mtok = nan", "finite number"),
        ("[model]\ntemperature = 2.5", "within [0, 2]"),
        ("[model]\ntop_p = 0.0", "model.top_p must be within (0, 1]"),
        ("[model]\nanswer_tokens = 10000000000", "model.answer_tokens must be at most"),
        ("[dataset]\nsubject_map = {a = 1}", "dataset.subject_map.a must be a string"),
    ],
)
def test_every_value_is_checked(tmp_path: Path, line: str, fragment: str) -> None:
    section, assignment = line.split("\n", 1)
    text = SIM.replace("budgets = [1024]\n", "") if "budgets" in assignment else SIM
    text = text.replace(section, f"{section}\n{assignment}", 1)
    if section not in SIM:
        text = SIM + f"{section}\n{assignment}\n"
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert fragment in str(info.value), str(info.value)
    assert str(info.value).startswith(f"{path}:")


def test_anthropic_temperature_range(tmp_path: Path) -> None:
    text = GOOD.replace('"openai"', '"anthropic"') .replace('name = "m"', 'name = "m"\n'
                                                            "temperature = 1.5")
    with pytest.raises(ConfigError, match=r"within \[0, 1\] for provider 'anthropic'"):
        load_config(write(tmp_path, text))


@pytest.mark.parametrize("url", ["ftp://host/v1", "http://", "localhost:8000", "file:///x",
                                 "https://user:pw@api.example.com", "http://h:99999/v1"])
def test_base_url_must_be_http_with_a_host(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError, match="model.base_url") as info:
        load_config(write(tmp_path, GOOD.replace("http://127.0.0.1:1/v1", url)))
    assert "pw" not in str(info.value)


@pytest.mark.parametrize("value", ["sk-ant-api03-abcdefghijklmnop", "sk-proj-Abc123",
                                   "AbCdEf0123456789AbCdEf0123456789xyz", "MY KEY"])
def test_api_key_env_holding_a_key_is_refused_without_printing_it(
    tmp_path: Path, value: str
) -> None:
    with pytest.raises(ConfigError, match="model.api_key_env") as info:
        load_config(write(tmp_path, GOOD.replace("TTC_TEST_KEY", value)))
    assert value not in str(info.value)


@pytest.mark.parametrize("key", ["sk-abc\n", " sk-abc", "sk-\x00abc", "sk abc"])
def test_a_key_with_whitespace_or_control_characters_is_refused_unprinted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    cfg = load_config(write(tmp_path, GOOD))
    monkeypatch.setenv("TTC_TEST_KEY", key.replace("\x00", "\x01"))
    with pytest.raises(MissingAPIKeyError, match="whitespace or control") as info:
        cfg.model.api_key()
    assert "abc" not in str(info.value)


def test_remote_provider_without_a_key_is_warned_about(tmp_path: Path) -> None:
    from ttc.config import config_warnings

    remote = GOOD.replace("http://127.0.0.1:1/v1", "https://api.example.com/v1")
    cfg = load_config(write(tmp_path, remote.replace('api_key_env = "TTC_TEST_KEY"\n', "")))
    assert config_warnings(cfg) == [
        "model.api_key_env is not set: requests to api.example.com carry no API key"]
    local = load_config(write(tmp_path, GOOD.replace('api_key_env = "TTC_TEST_KEY"\n', "")))
    assert config_warnings(local) == []  # a loopback server needs no key
    assert config_warnings(load_config(write(tmp_path, remote))) == []


def test_set_values_are_blamed_on_set_and_set_paths_on_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, GOOD)
    with pytest.raises(ConfigError) as info:
        load_config(path, ["sweep.samples=-3"])
    assert str(info.value) == "--set sweep.samples: sweep.samples must be positive, got -3"
    with pytest.raises(ConfigError, match=r"^--set sweep.timeout_s: .*finite"):
        load_config(path, ["sweep.timeout_s=nan"])
    with pytest.raises(ConfigError, match=r"^--set model.base_url: "):
        load_config(path, ["model.base_url=ftp://x"])
    with pytest.raises(ConfigError, match=r"^--set extra.key: unknown section \[extra\]"):
        load_config(path, ["extra.key=1"])
    # a file mistake stays the file's, even when --set touched the same table
    broken = tmp_path / "broken.toml"
    broken.write_text(GOOD.replace('path = "data.jsonl"', 'path = "d.jsonl"\nbuiltin = "x"'))
    with pytest.raises(ConfigError, match=r"broken.toml:\d+: \[dataset\] takes"):
        load_config(broken, ["dataset.seed=3"])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config(path, ["dataset.path=mine.jsonl"])
    assert cfg.dataset.path == str(elsewhere / "mine.jsonl")
    assert cfg.set_keys == ("dataset.path",)
    assert load_config(path).dataset.path == "data.jsonl"  # in the file: the file's folder


def test_subject_map(tmp_path: Path) -> None:
    text = GOOD.replace('path = "data.jsonl"', 'path = "data.jsonl"\n'
                        'subject_map = {college_physics = "physics", virology = "biology"}')
    cfg = load_config(write(tmp_path, text))
    assert cfg.dataset.subject_map == {"college_physics": "physics", "virology": "biology"}
