"""The run store, exports and regrading on a real (simulated-backend) run."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pandas as pd
import pytest

from ttc.config import config_from_dict
from ttc.errors import ConfigError
from ttc.export import EXPORT_COLUMNS, export_run
from ttc.problems import Problem
from ttc.regrade import regrade_run
from ttc.run import open_run
from ttc.sampler import Sweep
from ttc.store import RunStore, SampleRecord


def test_replace_keeps_one_row_and_thinking_roundtrips(tmp_path: Path) -> None:
    with RunStore(tmp_path / "run", create=True) as store:
        store.put_problems([Problem(id="p", question="q", answer="1")], {"p": None})
        store.write_samples([SampleRecord("p", "1024", 0, "failed", attempts=6, error="HTTP 500")])
        assert store.done_keys() == set()
        long_thinking = "step " * 50_000
        store.write_samples([SampleRecord("p", "1024", 0, "ok", answer="1", correct=True,
                                          thinking=long_thinking, thinking_tokens=50_000)])
        records = list(store.iter_samples(with_text=True))
        assert len(records) == 1
        assert records[0].status == "ok" and records[0].thinking == long_thinking
        assert store.done_keys() == {("p", "1024", 0)}
    # compressed: the database is far smaller than the thinking text
    assert (tmp_path / "run" / "samples.sqlite").stat().st_size < len(long_thinking) / 5


def test_opening_a_non_run_is_a_clear_error(tmp_path: Path) -> None:
    from ttc.errors import UserInputError

    with pytest.raises(UserInputError, match="not a ttc run"):
        RunStore(tmp_path)


@pytest.fixture
def sim_run(tmp_path: Path, addition_dataset: Path) -> Path:
    cfg = config_from_dict({
        "model": {"provider": "simulated"},
        "dataset": {"path": str(addition_dataset)},
        "sweep": {"budgets": [1024, "high"], "samples": 3},
    })
    asyncio.run(Sweep(cfg, tmp_path / "run").run())
    return tmp_path / "run"


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_export_has_one_row_per_sample_with_contract_columns(sim_run: Path, fmt: str) -> None:
    with open_run(sim_run) as run:
        target = export_run(run, fmt, None)
    frame = {"jsonl": lambda p: pd.read_json(p, lines=True), "csv": pd.read_csv,
             "parquet": pd.read_parquet}[fmt](target)
    assert list(frame.columns) == EXPORT_COLUMNS
    assert len(frame) == 20 * 2 * 3
    assert set(frame["budget"].astype(str)) == {"1024", "high"}
    assert frame[["problem_id", "budget", "sample_index"]].astype(str).duplicated().sum() == 0


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_sample_and_step_exports_appear_whole_or_not_at_all(
    sim_run: Path, tmp_path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both exports go through ``ttc.export.write_frame``: a disk that fills half way
    through keeps the previous file and leaves no temporary beside it."""
    from ttc.agent.runner import AgentSweep
    from ttc.agent.steps import export_steps

    agent = tmp_path / "agent"
    asyncio.run(AgentSweep(config_from_dict({
        "model": {"provider": "simulated"},
        "dataset": {"builtin": "arithmetic", "difficulty": 2, "size": 3},
        "sweep": {"budgets": [1024], "samples": 1, "step_budgets": [1, 2]},
        "agent": {"environment": "calculator"}}, path=tmp_path / "agent.toml"), agent).run())
    writer = {"jsonl": "to_json", "csv": "to_csv", "parquet": "to_parquet"}[fmt]

    def full_disk(frame: pd.DataFrame, path: Path, *args: object, **kwargs: object) -> None:
        Path(path).write_bytes(b"half a fi")
        raise OSError(28, "No space left on device")

    targets = {"samples": sim_run / f"samples.{fmt}", "steps": agent / f"steps.{fmt}"}
    for target in targets.values():
        target.write_bytes(b"the previous export")
    monkeypatch.setattr(pd.DataFrame, writer, full_disk)
    with open_run(sim_run) as run, pytest.raises(OSError, match="No space left"):
        export_run(run, fmt, None)
    with pytest.raises(OSError, match="No space left"):
        export_steps(agent, fmt)
    for target in targets.values():
        assert target.read_bytes() == b"the previous export"
        assert not [p.name for p in target.parent.iterdir() if ".tmp" in p.name]
    monkeypatch.undo()
    assert export_steps(agent, fmt) == targets["steps"]
    assert targets["steps"].read_bytes() != b"the previous export"


def test_samples_frame_and_answer_classes(sim_run: Path) -> None:
    with open_run(sim_run) as run:
        frame = run.samples()
        assert run.model["provider"] == "simulated"
    assert len(frame) == 120
    assert list(frame["budget"].drop_duplicates()) == [1024, "high"]
    voted = frame[frame["answer"].notna()]
    assert (voted["answer_class"] == voted["answer"]).all()  # integers: one class per value
    assert frame.loc[frame["answer"].isna(), "answer_class"].isna().all()


def test_regrade_counts_changed_verdicts(sim_run: Path) -> None:
    with RunStore(sim_run) as store:
        record = next(r for r in store.iter_samples() if r.correct)
        store.update_grades([("999", False, record.key)])
        result = regrade_run(store)
        assert result.changed_verdicts == 1 and result.changed_answers == 1
        assert regrade_run(store).changed_verdicts == 0
        fixed = next(r for r in store.iter_samples() if r.key == record.key)
        assert fixed.correct is True


def test_stored_config_has_no_secrets(sim_run: Path) -> None:
    with RunStore(sim_run) as store:
        meta = store.meta()
    assert set(meta["fingerprint"]) == {"model", "dataset", "prompt"}
    assert "headers" not in meta["config"]["model"]
    json.dumps(meta)


def test_the_last_run_scorer_version_is_the_one_analyses_use(sim_run: Path) -> None:
    with RunStore(sim_run) as store:
        keys = sorted(store.done_keys())
        store.write_scores("judge", "zzz-old", [(k, 0.0) for k in keys])
        store.activate_scorer("judge", "zzz-old")
        store.write_scores("judge", "aaa-new", [(k, 1.0) for k in keys])
        store.activate_scorer("judge", "aaa-new")
        assert store.active_scorers() == {"judge": "aaa-new"}
    with open_run(sim_run) as run:
        scores = run._latest_scores()
        assert scores is not None and set(scores["score"]) == {1.0}
    with RunStore(sim_run) as store:
        store.activate_scorer("judge", "zzz-old")  # switching back needs no re-scoring
    with open_run(sim_run) as run:
        scores = run._latest_scores()
        assert scores is not None and set(scores["score"]) == {0.0}


def test_samples_frame_with_mixed_null_json_columns(tmp_path: Path) -> None:
    with RunStore(tmp_path / "run", create=True) as store:
        store.put_problems([Problem(id="p", question="q", answer="1")], {"p": None})
        store.write_samples([
            SampleRecord("p", "1024", 0, "ok", answer="1", correct=True),
            SampleRecord("p", "1024", 1, "ok", answer="2", correct=False,
                         extra={"signal": 0.5}, choice_order=(1, 0)),
            SampleRecord("p", "1024", 2, "failed", error="HTTP 500"),
        ])
        frame = store.samples_frame(with_text=True)
    assert list(frame["extra"]) == [{}, {"signal": 0.5}, {}]
    assert list(frame["choice_order"]) == [None, (1, 0), None]
    assert list(frame["correct"]) == [True, False, None]


def test_scorer_and_header_credentials_never_reach_the_run(
    tmp_path: Path, addition_dataset: Path
) -> None:
    cfg = config_from_dict({
        "model": {"provider": "simulated", "headers": {"x-api-key": "SECRET-MODEL"},
                  # pasted into extra_body, a key must not become part of the run's identity
                  "extra_body": {"api_key": "SECRET-BODY", "top_k": 5,
                                 "metadata": {"X-Access-Token": "SECRET-NESTED"}}},
        "dataset": {"path": str(addition_dataset)},
        "sweep": {"budgets": [1024], "samples": 1},
        "scorers": [
            {"name": "rm", "kind": "reward_model", "url": "http://127.0.0.1:9/score",
             "headers": {"authorization": "Bearer SECRET-RM"}},
            {"name": "judge", "kind": "verifier",
             "model": {"provider": "openai", "name": "judge-model",
                       "base_url": "http://127.0.0.1:9/v1",
                       "headers": {"authorization": "SECRET-VER"}}},
        ],
    })
    asyncio.run(Sweep(cfg, tmp_path / "run").run())
    blob = b"".join(p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file())
    for secret in (b"SECRET-MODEL", b"SECRET-RM", b"SECRET-VER",
                   b"SECRET-BODY", b"SECRET-NESTED"):
        assert secret not in blob
    with RunStore(tmp_path / "run") as store:
        scorers = store.meta()["config"]["scorers"]
        assert store.meta()["config"]["model"]["extra_body"] == {"top_k": 5, "metadata": {}}
    assert scorers[0]["options"]["url"] == "http://127.0.0.1:9/score"
    assert "SECRET-RM" not in json.dumps(scorers)
    # a key pasted as a scorer option is refused at load, before anything is stored
    with pytest.raises(ConfigError, match="unknown option.*api_key"):
        config_from_dict({"model": {"provider": "simulated"},
                          "dataset": {"path": str(addition_dataset)},
                          "scorers": [{"name": "rm", "kind": "reward_model",
                                       "url": "http://127.0.0.1:9/score",
                                       "api_key": "SECRET-KEY"}]})


def test_a_key_pasted_into_extra_body_is_not_part_of_the_model_identity() -> None:
    """The fingerprint (stored with every run) carries extra_body minus secret-named keys."""
    from ttc.config import ModelConfig
    from ttc.providers.openai import OpenAIProvider

    model = ModelConfig(provider="openai", name="m", base_url="http://127.0.0.1:9/v1",
                        extra_body={"Api-Key": "sk-SECRET", "reasoning": {"auth_token": "t"},
                                    "top_k": 5})
    assert OpenAIProvider(model).describe()["extra_body"] == {"reasoning": {}, "top_k": 5}


def test_mcq_export_carries_the_shown_order(tmp_path: Path) -> None:
    cfg = config_from_dict({
        "model": {"provider": "simulated"},
        "dataset": {"builtin": "mcq", "size": 12, "shuffle_choices": "sample"},
        "sweep": {"budgets": [2048], "samples": 4},
    })
    asyncio.run(Sweep(cfg, tmp_path / "run").run())
    with open_run(tmp_path / "run") as run:
        target = export_run(run, "csv", None)
    frame = pd.read_csv(target)
    orders = [json.loads(o) for o in frame["choice_order"]]
    assert all(sorted(o) == [0, 1, 2, 3] for o in orders)
    assert len({tuple(o) for o in orders}) > 1  # per-sample shuffling really shuffles
    # answers are in source order: the letter shown to the model is recoverable
    answered = frame[frame["answer"].notna()]
    assert set(answered["answer"]) <= set("ABCD")
    assert ((answered["answer"] == answered["gold"]) == answered["correct"]).all()


def test_number_fallback_is_a_setting_that_regrading_applies(tmp_path: Path) -> None:
    with RunStore(tmp_path / "run", create=True) as store:
        store.put_problems([Problem(id="p", question="q", answer="5")], {"p": None})
        store.write_samples([SampleRecord("p", "1024", 0, "ok", text="so I count 5 apples")])
        assert regrade_run(store, number_fallback=True).changed_verdicts == 1
        assert next(store.iter_samples()).answer == "5"
        assert regrade_run(store, number_fallback=False).changed_verdicts == 1
        record = next(store.iter_samples())
        assert record.answer is None and record.correct is False
        store.set_meta(config={"grading": {"number_fallback": True}})
        assert regrade_run(store).changed_verdicts == 1  # the stored setting is the default


def test_grading_section_in_config(tmp_path: Path, addition_dataset: Path) -> None:
    cfg = config_from_dict({
        "model": {"provider": "simulated"}, "dataset": {"path": str(addition_dataset)},
        "grading": {"number_fallback": False},
    })
    assert cfg.grading.number_fallback is False


def test_variable_names_survive_and_secrets_do_not() -> None:
    """``api_key_env`` names a variable (ttc score reads it back from the stored config);
    ``api_key``, ``x-api-key`` or ``access_token`` hold the secret itself."""
    from ttc._secrets import is_secret_name, without_secrets

    kept = ["api_key_env", "API_KEY_ENV", "token_env", "key", "max_tokens", "thinking_tokens",
            "answer_tokens", "tokens_per_minute", "max_tokens_field"]
    dropped = ["api_key", "X-Api-Key", "apikey", "access_token", "Authorization", "headers",
               "client_secret", "password", "bearer", "refresh-token"]
    assert [n for n in kept if is_secret_name(n)] == []
    assert [n for n in dropped if not is_secret_name(n)] == []
    scorer = {"kind": "reward_model", "api_key_env": "RM_KEY", "api_key": "sk-x"}
    assert without_secrets({"scorers": [scorer]}) == {
        "scorers": [{"kind": "reward_model", "api_key_env": "RM_KEY"}]}


def test_the_stored_config_keeps_every_setting_but_headers() -> None:
    """Dropping secrets must not drop settings: every field of every section survives
    (``answer_tokens``, ``tokens_per_minute``, ``api_key_env``...), only headers go."""
    import dataclasses

    from ttc.config import Config, ModelConfig, SweepConfig
    from ttc.sweep_record import public_config

    cfg = config_from_dict({
        "model": {"provider": "openai", "name": "m", "base_url": "http://127.0.0.1:9/v1",
                  "api_key_env": "MY_KEY", "headers": {"x-api-key": "SECRET"}},
        "dataset": {"builtin": "arithmetic", "size": 4},
        "scorers": [{"name": "rm", "kind": "reward_model", "url": "http://127.0.0.1:9/score",
                     "api_key_env": "RM_KEY"}],
    })
    stored = public_config(cfg)
    model_fields = {f.name for f in dataclasses.fields(ModelConfig)} - {"headers"}
    assert model_fields <= set(stored["model"])
    assert {f.name for f in dataclasses.fields(SweepConfig)} <= set(stored["sweep"])
    assert stored["model"]["api_key_env"] == "MY_KEY"
    assert stored["scorers"][0]["options"]["api_key_env"] == "RM_KEY"
    assert {f.name for f in dataclasses.fields(Config)} - {"set_keys"} <= set(stored)
