"""``ttc adaptive`` as a user meets it: output shapes, files, one-line errors, a judge over HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ttc.cli import main
from ttc.config import config_from_dict
from ttc.problems import Problem
from ttc.sampler import Sweep
from ttc.store import RunStore, SampleRecord
from ttc.testing.fake_server import Query, Reply, run_in_thread

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sim_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("adaptive_cli") / "run"
    config = config_from_dict({
        "model": {"provider": "simulated", "seed": 2},
        "dataset": {"builtin": "arithmetic", "difficulty": 2, "size": 24},
        "sweep": {"budgets": [1024, 8192], "samples": 8, "concurrency": 16},
    })
    asyncio.run(Sweep(config, out).run())
    return out


def foreign_run(path: Path, *, failed: bool = False) -> Path:
    """A run of another backend made through the store's API: no logprobs anywhere."""
    store = RunStore(path, create=True)
    store.claim({"model": {"provider": "openai", "name": "gpt-x"}, "dataset": {"name": "d"},
                 "prompt": {}})
    problems = [Problem(id=f"p{i}", question=f"What is {i} + 1?", answer=str(i + 1))
                for i in range(3)]
    store.put_problems(problems, {})
    records = [SampleRecord(problem_id=p.id, budget="1024", sample_index=j, status="ok",
                            answer=p.answer if j else "0", correct=bool(j), output_tokens=50)
               for p in problems for j in range(4)]
    if failed:
        records.append(SampleRecord(problem_id="p0", budget="1024", sample_index=4,
                                    status="failed", error="boom"))
    store.write_samples(records)
    store.close()
    return path


def test_json_output_has_exactly_the_documented_shape(
    sim_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["adaptive", str(sim_run), "--rule", "esc", "--param", "window=2,4", "--json",
                 "--bootstrap", "200"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"rule", "full", "points"} and data["rule"] == "esc"
    assert data["full"]["metric"] == "majority@8" and data["full"]["budget"] == 8192
    assert [p["param"]["window"] for p in data["points"]] == [2, 4]
    for point in data["points"]:
        assert set(point) == {"param", "accuracy", "ci_low", "ci_high", "mean_samples",
                              "mean_tokens", "token_savings"}
        assert point["ci_low"] <= point["accuracy"] <= point["ci_high"]
        assert 0 < point["token_savings"] < 1 and point["mean_samples"] < 8


def test_text_output_and_files(sim_run: Path, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "fig"
    code = main(["adaptive", str(sim_run), "--rule", "adaptive_consistency", "--budget", "1024",
                 "--param", "threshold=0.8,0.95", "--out", str(out), "--bootstrap", "200"])
    assert code == 0
    text = capsys.readouterr().out
    assert "(budget 1024): 24 problems, 8 samples each" in text
    assert re.search(r"full run: majority@8 0\.\d{3} \[0\.\d{3}, [01]\.\d{3}\]", text)
    assert re.search(r"threshold=0.95 criterion=beta\s+0\.\d{3}", text)
    for name in ("adaptive.json", "adaptive_tradeoff.png", "adaptive_tradeoff.svg"):
        assert (out / name).stat().st_size > 100
    saved = json.loads((out / "adaptive.json").read_text())
    assert saved["classifier"] == [] and len(saved["points"]) == 2


@pytest.mark.parametrize(("args", "message"), [
    (["--rule", "sprt"], "unknown rule 'sprt'"),
    (["--rule", "prefix:"], "unknown rule 'prefix:'"),
    (["--rule", "esc", "--param", "windw=3"], "esc: unknown parameter(s) windw"),
    (["--rule", "esc", "--param", "window"], "expected KEY=VALUE"),
    (["--rule", "esc", "--param", "window=0"], "window must be a positive integer"),
    (["--rule", "adaptive_consistency", "--param", "threshold=1.5"],
     "threshold must lie in (0.5, 1), got 1.5"),
    (["--rule", "adaptive_consistency", "--param", "threshold=nan"], "threshold must lie in"),
    (["--rule", "deepconf", "--param", "percentile=150"], "percentile must lie in [0, 100]"),
    (["--rule", "prefix:judge"], "no scorer of that name"),
    (["--rule", "esc", "--budget", "777"], "no samples at budget '777'"),
    (["--rule", "esc", "--bootstrap", "0"], "--bootstrap must be a positive number"),
    (["--rule", "prefix:signal", "--param", "every=0"], "every must be an integer >= 1"),
    (["--rule", "deepconf", "--param", "warmup=2.5"], "warmup must be an integer >= 1"),
])
def test_bad_input_is_one_line_and_exit_2(sim_run: Path, args: list[str], message: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["adaptive", str(sim_run), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_confidence_rule_on_a_run_without_logprobs(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    run = foreign_run(tmp_path / "run")
    assert main(["adaptive", str(run), "--rule", "deepconf"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "deepconf needs per-token logprobs" in err
    # the sample-level rules need no logprobs
    assert main(["adaptive", str(run), "--rule", "esc", "--param", "window=2"]) == 0


def test_incomplete_run_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = foreign_run(tmp_path / "run", failed=True)
    assert main(["adaptive", str(run), "--rule", "esc"]) == 2
    assert "1 samples failed and were never drawn" in capsys.readouterr().err
    assert main(["adaptive", str(tmp_path / "nowhere"), "--rule", "esc"]) == 2


def test_the_installed_entry_point(sim_run: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "ttc", "adaptive", str(sim_run), "--rule",
                           "adaptive_consistency", "--param", "threshold=2"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == "ttc: error: adaptive_consistency: threshold must lie in (0.5, 1), " \
                          "got 2\n"


# ---------------------------------------------------------------- a judge over HTTP

_SUM = re.compile(r"What is (\d+) \+ (\d+)\?")


def policy_and_judge(query: Query) -> Reply:
    """One fake server plays both parts. As the policy it answers "a + b" and is wrong
    on a third of the samples, whose thinking voices a doubt 60 words in; as the judge
    (the verifier's prompt) it says no to any solution so far that voices one."""
    if "Is the final answer correct?" in query.prompt:
        return Reply(text="No" if "doubt" in query.prompt else "Yes")
    match = _SUM.search(query.prompt)
    assert match is not None
    truth = int(match.group(1)) + int(match.group(2))
    wrong = (truth + query.seed) % 3 == 0
    words = ["step"] * 200
    if wrong:
        words[60] = "doubt"
    return Reply(text=f"The answer is \\boxed{{{truth + 1 if wrong else truth}}}.",
                 thinking=" ".join(words))


def test_prefix_verifier_against_the_fake_server(addition_dataset: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    with run_in_thread(responder=policy_and_judge) as server:
        model = {"provider": "openai", "name": "fake", "base_url": f"{server.base_url}/v1"}
        config = config_from_dict({
            "model": model, "dataset": {"path": str(addition_dataset)},
            "sweep": {"budgets": [1024], "samples": 3, "concurrency": 8, "timeout_s": 5},
            "scorers": [{"name": "judge", "kind": "verifier", "model": model,
                         "use_logprobs": False, "max_attempts": 2}],
        })
        run = tmp_path / "run"
        asyncio.run(Sweep(config, run).run())
        sampled = server.count
        code = main(["adaptive", str(run), "--rule", "prefix:judge", "--param", "every=50",
                     "--param", "threshold=0.5", "--param", "read=0", "--param", "gen=1",
                     "--out", str(tmp_path / "out"), "--bootstrap", "100"])
        judged = server.count - sampled
    assert code == 0
    saved = json.loads((tmp_path / "out" / "adaptive.json").read_text())
    (view,) = saved["classifier"]
    assert view["n_wrong"] > 5 and view["n_right"] > 20
    assert view["wrong_stopped"] == 1.0 and view["right_stopped"] == 0.0
    # checks at 50, 100, 150 of 200 thinking words; a wrong trace is cut at 100 (the doubt
    # is word 61) after 2 checks; each check is one request to the judge
    assert judged == 3 * view["n_right"] + 3 * view["n_wrong"]
    (point,) = saved["points"]
    assert point["accuracy"] == 1.0  # only right traces vote
    # cached reading: a right trace costs its 150 words read + 3 generated, a wrong one 102
    assert 0 < view["overhead"] < 1
    assert "wrong stopped" in capsys.readouterr().out


def test_stored_logprobs_are_decoded_and_checked(tmp_path: Path) -> None:
    """The store's ``logprobs`` column (the codec's bytes) feeds DeepConf; bad blobs and
    partly missing logprobs are one-line errors."""
    import numpy as np

    from ttc.adaptive.logprobs import encode_logprobs
    from ttc.adaptive.sources import logprob_rows
    from ttc.errors import UserInputError
    from ttc.run import open_run

    with open_run(foreign_run(tmp_path / "run")) as run:
        frame = run.samples()
        rows = [np.full((10 + i, 3), 0.5 + i) for i in range(len(frame))]
        frame["logprobs"] = [encode_logprobs(r) for r in rows]
        decoded = logprob_rows(run, frame)
        assert [decoded[label].shape for label in frame.index] == [r.shape for r in rows]
        broken = frame.copy()
        broken.loc[broken.index[2], "logprobs"] = b"TLP\x01garbage"
        with pytest.raises(UserInputError, match="sample 2 are unreadable"):
            logprob_rows(run, broken)
        partial = frame.copy()
        partial.loc[partial.index[0], "logprobs"] = None
        with pytest.raises(UserInputError, match="1 of 12 samples have no logprobs"):
            logprob_rows(run, partial)
