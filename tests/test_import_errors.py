"""Bad input to ``ttc import``: one clear line, exit 2, and no run directory left behind.

The valid lm-eval lines here copy the shape lm-eval 0.4.13 writes (lm_eval/evaluator.py
builds the dict, loggers/evaluation_tracker.py::save_results_samples stringifies
``resps`` / ``filtered_resps`` and writes one JSON object a line); test_import_lm_eval.py
checks the same reader against files lm-eval itself wrote.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ttc.cli import main
from ttc.errors import UserInputError
from ttc.importers import credit_of, read_log
from ttc.store import RunStore

ROOT = Path(__file__).resolve().parents[1]
DATE = "2026-01-02T03-04-05.678901"


def lm_line(doc_id: int, answer: str, target: str = "4") -> dict[str, Any]:
    return {
        "doc_id": doc_id, "doc": {"question": "2+2?", "answer": target}, "target": target,
        "arguments": {"gen_args_0": {"arg_0": "Q: 2+2?\nA:", "arg_1": {"until": ["\n"]}}},
        "resps": [[f" The answer is {answer}"]], "filtered_resps": [answer],
        "filter": "none", "metrics": ["exact_match"], "doc_hash": "x", "prompt_hash": "y",
        "target_hash": "z", "exact_match": float(answer == target),
    }


@pytest.fixture
def lm_file(tmp_path: Path) -> Path:
    path = tmp_path / "logs" / f"samples_toy_{DATE}.jsonl"
    path.parent.mkdir()
    path.write_text("".join(json.dumps(lm_line(i, a)) + "\n" for i, a in enumerate("454")))
    return path


def fails_cleanly(args: list[str], out: Path, capsys: pytest.CaptureFixture[str],
                  *needles: str) -> str:
    """Exit 2, one ``ttc: error:`` line naming the problem, nothing left beside ``out``."""
    before = set(out.parent.iterdir()) if out.parent.exists() else set()
    assert main([*args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ttc: error: ") and "\n" not in err, err
    for needle in needles:
        assert needle in err, err
    assert not out.exists()
    after = set(out.parent.iterdir()) if out.parent.exists() else set()
    assert after == before, after - before  # no temporary directory either
    return err


@pytest.mark.parametrize("harness", ["inspect", "lm-eval", "lighteval"])
@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\n\x00\x00binary", b"hello, world\n",
                                     b'{"a": 1}\n', b""])
def test_a_file_that_is_not_a_log(harness: str, content: bytes, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    suffix = {"inspect": ".json", "lm-eval": ".jsonl", "lighteval": ".parquet"}[harness]
    path = tmp_path / f"junk{suffix}"
    path.write_bytes(content)
    if harness == "inspect":
        pytest.importorskip("inspect_ai")
    fails_cleanly(["import", harness, str(path)], tmp_path / "run", capsys, str(path))


def test_missing_path_and_wrong_suffix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fails_cleanly(["import", "lm-eval", str(tmp_path / "nope.jsonl")], tmp_path / "run", capsys,
                  "no such file")
    pytest.importorskip("inspect_ai")
    (tmp_path / "log.txt").write_text("x")
    fails_cleanly(["import", "inspect", str(tmp_path / "log.txt")], tmp_path / "run", capsys,
                  ".eval or .json")


def test_unknown_formats_and_versions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / f"samples_toy_{DATE}.jsonl"
    other.write_text(json.dumps({"id": 1, "prediction": "4", "label": "4"}) + "\n")
    fails_cleanly(["import", "lm-eval", str(other)], tmp_path / "run", capsys,
                  f"{other}:1", "not an lm-eval samples line")
    rolling = tmp_path / f"samples_wiki_{DATE}.jsonl"
    # loglikelihood_rolling: one argument (the text), one float per request, as a string
    line = {**lm_line(0, "4"), "arguments": {"gen_args_0": {"arg_0": "A long text."}},
            "resps": [["-12.5"]], "filtered_resps": ["-12.5"], "metrics": ["word_perplexity"],
            "word_perplexity": 3.2}
    rolling.write_text(json.dumps(line) + "\n")
    fails_cleanly(["import", "lm-eval", str(rolling)], tmp_path / "run", capsys,
                  "cannot import")
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    old = tmp_path / f"details_toy|0_{DATE}.parquet"
    pq.write_table(pa.table({"example": ["q"], "predictions": [["4"]],
                             "metrics": [{"em": 1.0}]}), old)
    fails_cleanly(["import", "lighteval", str(old)], tmp_path / "run", capsys, "older layout")


def test_a_task_that_is_not_in_the_log(lm_file: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    fails_cleanly(["import", "lm-eval", str(lm_file), "--task", "gsm8k"], tmp_path / "run",
                  capsys, "'gsm8k'")
    fails_cleanly(["import", "lm-eval", str(lm_file.parent), "--task", "gsm8k"],
                  tmp_path / "run", capsys, "'gsm8k'")
    fails_cleanly(["import", "lm-eval", str(lm_file), "--score", "f1"], tmp_path / "run",
                  capsys, "no metric 'f1'")


def test_empty_logs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / f"samples_toy_{DATE}.jsonl"
    empty.write_text("\n")
    fails_cleanly(["import", "lm-eval", str(empty)], tmp_path / "run", capsys, "empty")
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    none = tmp_path / f"details_toy|0_{DATE}.parquet"
    pq.write_table(pa.table({"doc": pa.array([], pa.struct([("query", pa.string())])),
                             "model_response": pa.array([], pa.struct([("text", pa.string())])),
                             "metric": pa.array([], pa.struct([("acc", pa.float64())]))}), none)
    fails_cleanly(["import", "lighteval", str(none)], tmp_path / "run", capsys, "empty")


def _inspect_log(folder: Path, *, log_samples: bool = True) -> Path:
    pytest.importorskip("inspect_ai")
    from inspect_ai import Task, eval
    from inspect_ai.dataset import MemoryDataset, Sample
    from inspect_ai.model import ModelOutput
    from inspect_ai.model._providers.mockllm import MockLLM
    from inspect_ai.scorer import match
    from inspect_ai.solver import generate

    def out(*_args: Any) -> ModelOutput:
        output = ModelOutput.from_content(model="mockllm/model", content="4")
        output.usage = None
        from inspect_ai.model import ModelUsage

        output.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)
        return output

    async def no_tokenizer(*_a: Any, **_k: Any) -> int:
        raise AssertionError("no tokenizer downloads")

    task = Task(dataset=MemoryDataset([Sample(id="a", input="2+2?", target="4")]),
                solver=generate(), scorer=match(), name="tiny")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(MockLLM, "count_tokens", no_tokenizer)
        log = eval(task, model="mockllm/model", model_args={"custom_outputs": out},
                   log_dir=str(folder), log_format="json", display="none",
                   log_samples=log_samples)[0]
    return Path(log.location)


def test_inspect_unknown_version_wrong_task_and_no_samples(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = _inspect_log(tmp_path / "logs")
    fails_cleanly(["import", "inspect", str(log), "--task", "gsm8k"], tmp_path / "run", capsys,
                  "'gsm8k' is not in this log", "'tiny'")
    fails_cleanly(["import", "inspect", str(log.parent), "--task", "gsm8k"], tmp_path / "run",
                  capsys, "found 0")
    future = tmp_path / "future.json"
    data = json.loads(log.read_text())
    data["version"] = 99
    future.write_text(json.dumps(data))
    fails_cleanly(["import", "inspect", str(future)], tmp_path / "run", capsys, str(future))
    headless = _inspect_log(tmp_path / "headless", log_samples=False)
    fails_cleanly(["import", "inspect", str(headless)], tmp_path / "run", capsys,
                  "no samples")
    assert main(["import", "inspect", str(log.parent), "--task", "tiny",
                 "--out", str(tmp_path / "ok")]) == 0


def test_existing_directories_are_refused_unless_it_is_the_same_import(
    lm_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    assert main(["import", "lm-eval", str(lm_file), "--out", str(busy)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert [p.name for p in busy.iterdir()] == ["notes.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["import", "lm-eval", str(lm_file), "--out", str(empty)]) == 0
    assert main(["import", "lm-eval", str(lm_file), "--out", str(empty)]) == 0
    assert "already holds this import" in capsys.readouterr().out
    stamp = (empty / "samples.sqlite").stat().st_mtime_ns
    assert main(["import", "lm-eval", str(lm_file), "--out", str(empty), "--regrade"]) == 2
    lm_file.write_text(lm_file.read_text().replace("is 5", "is 6"))  # another file now
    assert main(["import", "lm-eval", str(lm_file), "--out", str(empty)]) == 2
    assert (empty / "samples.sqlite").stat().st_mtime_ns == stamp
    with RunStore(empty) as store:
        assert store.totals()["samples"] == 3


def test_a_full_disk_mid_import_leaves_nothing(lm_file: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    def full(self: RunStore, records: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(RunStore, "write_samples", full)
    fails_cleanly(["import", "lm-eval", str(lm_file)], tmp_path / "runs" / "x", capsys,
                  "No space left")


def test_the_command_line_prints_one_line_and_exits_2(tmp_path: Path) -> None:
    junk = tmp_path / "junk.jsonl"
    junk.write_text("{not json\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "ttc", "import", "lm-eval", str(junk), "--out",
                           str(tmp_path / "run")], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == f"ttc: error: {junk}:1: not JSON; not an lm-eval samples file"
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------ open-ended inputs

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8))
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=12)


@given(json_values)
def test_credit_is_in_unit_interval_or_refused(value: Any) -> None:
    try:
        credit = credit_of(value, "here")
    except UserInputError as exc:
        assert str(exc).startswith("here: ")
        return
    assert 0.0 <= credit <= 1.0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.one_of(
    json_values,
    st.fixed_dictionaries({"doc_id": json_values, "resps": json_values,
                           "filtered_resps": json_values}, optional={
        "metrics": json_values, "exact_match": json_values, "target": json_values,
        "filter": json_values, "arguments": json_values, "doc": json_values}),
), min_size=1, max_size=4))
def test_hostile_lm_eval_lines_are_read_or_refused_in_one_line(lines: list[Any],
                                                               tmp_path: Path) -> None:
    path = tmp_path / f"samples_fuzz_{DATE}.jsonl"  # rewritten by every example
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    try:
        log = read_log("lm-eval", path)
    except UserInputError as exc:
        assert "\n" not in str(exc)
        return
    for sample in log.samples:
        assert sample.correct in (True, False, None)
