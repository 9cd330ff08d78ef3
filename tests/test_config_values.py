"""Value rules that keep keys out of sight and absurd values out of runs: scorer options
checked at load (like the model's), variable names told from keys, no credentials in
URLs. Every refusal is one line naming the file, the line and the option."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ttc.config import config_from_dict, load_config
from ttc.config_rules import looks_like_key
from ttc.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-ant-api03-Rt7xQ9zKp2LmN8vB4cW6yH1jF5gS0dAeXq3TuV"
HEX_KEY = "a3f9c2e1" + "0b7d4e6f" * 7

BASE = """\
[model]
provider = "openai"
name = "m"
base_url = "http://127.0.0.1:1/v1"

[dataset]
path = "data.jsonl"

[[scorers]]
name = "judge"
kind = "verifier"
timeout_s = 30

[[scorers]]
name = "rm"
kind = "reward_model"
url = "http://127.0.0.1:1/score"
"""
#: the line the option gets when appended to the second scorer (the file's last line + 1)
APPENDED = BASE.count("\n") + 1


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sweep.toml"
    path.write_text(text)
    return path


# ------------------------------------------------------------------ scorer options


@pytest.mark.parametrize(("line", "option", "fragment"), [
    ("timeout_s = nan", "timeout_s", "finite"),
    ("timeout_s = -1", "timeout_s", "must be > 0"),
    ("timeout_s = 0", "timeout_s", "must be > 0"),
    ("backoff_base_s = inf", "backoff_base_s", "finite"),
    ("max_attempts = 1000000000", "max_attempts", "within 1..100"),
    ("concurrency = 0", "concurrency", "within 1..65,536"),
    ("batch_size = 1e9", "batch_size", "must be an integer"),
    ('format = "tgi"', "format", "must be one of"),
    (f'api_key_env = "{KEY}"', "api_key_env", "looks like an API key"),
    (f'api_key_env = "{HEX_KEY}"', "api_key_env", "looks like an API key"),
    ('headers = {x = 1}', "headers", "must be a string"),
    ("bogus = 1", "bogus", "unknown option"),
])
def test_a_bad_scorer_option_is_refused_at_load_naming_it(
    tmp_path: Path, line: str, option: str, fragment: str
) -> None:
    path = write(tmp_path, BASE + line + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{APPENDED}: [[scorers]] rm")
    assert option in message and fragment in message
    assert KEY[:8] not in message and HEX_KEY[:8] not in message


@pytest.mark.parametrize("url", ["file:///etc/passwd", "http://", "ftp://h/score",
                                 f"http://h/score?key={KEY}", f"http://u:{KEY}@h/score"])
def test_a_scorer_url_is_http_with_a_host_and_no_credentials(tmp_path: Path, url: str) -> None:
    path = write(tmp_path, BASE.replace("http://127.0.0.1:1/score", url))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}:{APPENDED - 1}: [[scorers]] rm.url")
    assert KEY[:8] not in str(info.value)


def test_the_option_is_located_in_its_own_scorers_table(tmp_path: Path) -> None:
    """Both tables set timeout_s; the broken one (the second) is the line named."""
    path = write(tmp_path, BASE + "timeout_s = -3\n")
    with pytest.raises(ConfigError, match=rf"^{path}:{APPENDED}: \[\[scorers\]\] rm.timeout_s"):
        load_config(path)
    bad_first = BASE.replace("timeout_s = 30", "timeout_s = -3")
    with pytest.raises(ConfigError, match=r":12: \[\[scorers\]\] judge.timeout_s"):
        load_config(write(tmp_path, bad_first))


def test_a_verifier_model_table_gets_the_model_rules(tmp_path: Path) -> None:
    text = BASE + f'\n[[scorers]]\nname = "v2"\nkind = "verifier"\n[scorers.model]\n' \
                  f'provider = "openai"\nname = "j"\nbase_url = "http://h/v1"\n' \
                  f'api_key_env = "{HEX_KEY}"\n'
    with pytest.raises(ConfigError, match=r"\[\[scorers\]\] v2.model: .*api_key_env") as info:
        load_config(write(tmp_path, text))
    assert HEX_KEY[:8] not in str(info.value)


def test_the_same_rules_hold_for_a_stored_config_read_back() -> None:
    """``ttc score RUN`` builds scorers from the run's stored config, not a loaded file."""
    from ttc.config import ScorerConfig
    from ttc.scorers import make_scorer

    for options in ({"url": "http://h/s", "timeout_s": float("nan")},
                    {"url": "http://h/s", "api_key_env": KEY},
                    {"url": "http://h/s", "max_attempts": 10**9}):
        with pytest.raises(ConfigError, match=r"^\[\[scorers\]\] rm\.") as info:
            make_scorer(ScorerConfig("rm", "reward_model", options))
        assert KEY[:8] not in str(info.value)


def test_ttc_score_with_a_hostile_option_exits_2_in_one_line(
    tmp_path: Path, addition_dataset: Path
) -> None:
    """The red-team case in a real process: nothing is sent, the key is not printed."""
    import asyncio

    from ttc.sampler import Sweep

    asyncio.run(Sweep(config_from_dict({
        "model": {"provider": "simulated"}, "dataset": {"path": str(addition_dataset)},
        "sweep": {"budgets": [1024], "samples": 1}}), tmp_path / "run").run())
    for line in (f'api_key_env = "{KEY}"', "timeout_s = nan", "max_attempts = 1000000000"):
        path = write(tmp_path, BASE + line + "\n")
        proc = subprocess.run(
            [sys.executable, "-m", "ttc", "score", str(tmp_path / "run"), "--scorer", "rm",
             "--config", str(path), "--quiet"],
            env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
            timeout=60)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "[[scorers]] rm." in proc.stderr
        assert KEY[:8] not in proc.stderr + proc.stdout


# ------------------------------------------------------------------ keys vs names

_WORD = st.from_regex(r"[A-Z]{1,10}[0-9]{0,3}", fullmatch=True)
_NAME = st.lists(_WORD, min_size=1, max_size=6).map("_".join)


@settings(max_examples=300, deadline=None)
@given(name=_NAME, lower=st.booleans())
def test_real_variable_names_are_never_taken_for_keys(name: str, lower: bool) -> None:
    """UPPER_SNAKE (and lower_snake) names of words, digits included, stay names."""
    name = name.lower() if lower else name
    if name.startswith(("sk_", "gsk_", "hf_")):  # a key prefix: only short names pass
        name = name[:15]
    assert not looks_like_key(name)
    cfg = _model({"api_key_env": name})
    assert cfg.model.api_key_env == name


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(min_size=10, max_size=48), form=st.sampled_from(["hex", "HEX", "b64",
                                                                      "b64url", "alnum"]))
def test_keys_in_api_key_env_are_refused_unprinted(raw: bytes, form: str) -> None:
    """Hex (Together, Fireworks), base64 and alphanumeric keys: refused, never shown."""
    if form in ("hex", "HEX"):
        key = raw.hex() if form == "hex" else raw.hex().upper()
    elif form == "b64":
        key = base64.b64encode(raw).decode()
    elif form == "b64url":
        key = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    else:
        key = "".join(ch for ch in base64.b64encode(raw * 2).decode() if ch.isalnum())
    if len(key) <= 20 or (form == "b64url" and "_" in key):
        return  # too short to be a key; underscores make a url-safe one a valid name shape
    with pytest.raises(ConfigError, match="model.api_key_env") as info:
        _model({"api_key_env": key})
    assert key not in str(info.value) and key[:8] not in str(info.value)


def test_the_red_team_hex_key_and_familiar_names() -> None:
    assert looks_like_key(HEX_KEY) and looks_like_key(KEY) and looks_like_key("Ab3" * 16)
    for name in ("OPENAI_API_KEY", "TOGETHER_API_KEY", "hf_token", "HF_TOKEN", "sk_test",
                 "AZURE_OPENAI_API_KEY_2", "X86_64_BUILD_KEY", "GPT4O_KEY", "deadbeef"):
        assert not looks_like_key(name), name


# ------------------------------------------------------------------ URLs


@pytest.mark.parametrize("url", [f"http://h/v1?key={KEY}", f"https://h/v1#{KEY}",
                                 "https://h/v1?api-version=2024-02-01"])
def test_base_url_with_a_query_or_fragment_is_refused_unprinted(url: str) -> None:
    with pytest.raises(ConfigError, match="model.base_url must not hold a query") as info:
        _model({"base_url": url})
    assert KEY[:8] not in str(info.value) and "api-version" not in str(info.value)


def _model(extra: dict[str, object]):  # type: ignore[no-untyped-def]
    return config_from_dict({"model": {"provider": "openai", "name": "m",
                                       "base_url": "http://127.0.0.1:1/v1", **extra},
                             "dataset": {"path": "<unused>"}})


# ------------------------------------------------------------------ sizes


def test_samples_beyond_any_run_are_one_line(tmp_path: Path) -> None:
    """10^12 samples ran a dry run for minutes (packing batches one by one), 10^19 never
    finished and ``--yes`` died in ``len()`` with an OverflowError: now one line each."""
    (tmp_path / "data.jsonl").write_text(
        '{"id": "a", "question": "1+1?", "answer": "2"}\n'
        '{"id": "b", "question": "2+2?", "answer": "4"}\n')
    path = write(tmp_path, BASE.split("[[scorers]]")[0] + "[sweep]\nbudgets = [1024]\n"
                 "samples = 10000000000000000000\n")
    runs = (["--dry-run", "--set", "sweep.samples=1000000000000"], ["--dry-run"],
            ["--yes", "--set", "sweep.max_attempts=1"])
    for extra in runs:
        proc = subprocess.run(
            [sys.executable, "-m", "ttc", "sweep", str(path), "--out", str(tmp_path / "run"),
             "--quiet", *extra], env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True, text=True, timeout=60)
        err = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(err) == 1 and "Traceback" not in proc.stderr, err
        assert "sweep.samples must be at most 1,000,000,000" in err[0]
    assert not (tmp_path / "run").exists()


def test_cells_beyond_what_a_run_can_hold_are_refused(tmp_path: Path) -> None:
    from ttc.config_rules import MAX_CELLS
    from ttc.plan import make_plan
    from ttc.problems import Problem
    from ttc.providers.simulated import SimulatedProvider

    cfg = config_from_dict({"model": {"provider": "simulated"},
                            "dataset": {"path": "<unused>"},
                            "sweep": {"budgets": [1024, 2048], "samples": 10**9}})
    problems = [Problem(id=f"p{i}", question="q", answer="1") for i in range(501)]
    with pytest.raises(ConfigError, match=r"501 problems x 2 budgets x 1,000,000,000 samples"):
        make_plan(cfg, problems, {}, set(), SimulatedProvider(cfg.model))
    plan = make_plan(cfg, problems[:500], {p.id: None for p in problems}, set(),
                     SimulatedProvider(cfg.model))
    assert len(plan.jobs) == plan.total == MAX_CELLS  # exactly at the cap: len() still works
