"""``ttc import inspect``: logs that inspect_ai itself wrote (mockllm/model, three epochs).

The mock model answers from a script keyed by question and epoch (a solver writes the
epoch into the prompt), so every estimate below is checked against a value worked out
by hand from that script, and against the first-k majority the harnesses report.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("inspect_ai")

from inspect_ai import Task, eval  # noqa: E402
from inspect_ai.dataset import MemoryDataset, Sample  # noqa: E402
from inspect_ai.model import (  # noqa: E402
    ChatCompletionChoice,
    ChatMessageAssistant,
    ContentReasoning,
    ContentText,
    ModelOutput,
    ModelUsage,
)
from inspect_ai.model._providers.mockllm import MockLLM  # noqa: E402
from inspect_ai.scorer import Score, accuracy, choice, pattern, scorer  # noqa: E402
from inspect_ai.solver import generate, multiple_choice, solver  # noqa: E402

from ttc.cli import main  # noqa: E402
from ttc.run import open_run  # noqa: E402

# question id -> (target, subject, answer per epoch; None = no "ANSWER:" line)
SCRIPT: dict[str, tuple[str, str, list[str | None]]] = {
    "q1": ("4", "alg", ["4", "4", "5"]),
    "q2": ("8", "geo", ["7", "8", "8"]),
    "q3": ("3", "alg", ["1", "2", "3"]),
    "q4": ("6", "geo", [None, "6", "5"]),
}
EPOCHS = 3

def _verdict(value: object) -> bool | None:
    """A stored verdict as a Python bool (frames hold numpy/pandas nullable booleans)."""
    import pandas as pd

    return None if value is pd.NA or value is None else bool(value)



async def _no_tokenizer(*_args: Any, **_kwargs: Any) -> int:
    raise AssertionError("count_tokens would fetch a tokenizer; every output carries usage")


@solver
def tag_epoch():  # type: ignore[no-untyped-def]
    """Write the epoch into the prompt, so the scripted model knows which answer to give."""
    async def solve(state, generate):  # type: ignore[no-untyped-def]
        state.user_prompt.text = f"epoch={state.epoch} {state.user_prompt.text}"
        return state
    return solve


@scorer(metrics=[accuracy()])
def two_part():  # type: ignore[no-untyped-def]
    """A dict-valued scorer that records no answer: right answer, and answer format."""
    async def score(state, target):  # type: ignore[no-untyped-def]
        text = state.output.completion
        right = "C" if f"ANSWER: {target.text}" in text else "I"
        return Score(value={"right": right, "format": "C" if "ANSWER:" in text else "I"})
    return score


def _output(qid: str, epoch: int) -> ModelOutput:
    answer = SCRIPT[qid][2][epoch - 1]
    text = f"Thinking about {qid}. ANSWER: {answer}" if answer else "I am not sure."
    message = ChatMessageAssistant(content=[ContentReasoning(reasoning=f"reasoning {qid}"),
                                            ContentText(text=text)], model="mockllm/model")
    usage = ModelUsage(input_tokens=10, output_tokens=20 + epoch, total_tokens=30 + epoch,
                       reasoning_tokens=5 * epoch)
    return ModelOutput(model="mockllm/model", usage=usage,
                       choices=[ChatCompletionChoice(message=message, stop_reason="stop")])


def _scripted(messages: Any, tools: Any, tool_choice: Any, config: Any) -> ModelOutput:
    prompt = messages[-1].text  # "epoch=E qN: ..."
    epoch = int(prompt.split()[0].split("=")[1])
    return _output(prompt.split()[1].rstrip(":"), epoch)


def write_log(folder: Path, fmt: str) -> Path:
    dataset = MemoryDataset([
        Sample(id=qid, input=f"{qid}: what is the answer?", target=target,
               metadata={"subject": subject})
        for qid, (target, subject, _answers) in SCRIPT.items()
    ])
    task = Task(dataset=dataset, solver=[tag_epoch(), generate()],
                scorer=[pattern(r"ANSWER:\s*(\w+)"), two_part()], name="toy")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(MockLLM, "count_tokens", _no_tokenizer)
        logs = eval(task, model="mockllm/model", model_args={"custom_outputs": _scripted},
                    epochs=EPOCHS, log_dir=str(folder), log_format=fmt, display="none",
                    max_samples=2)
    assert logs[0].status == "success", logs[0].error
    return Path(logs[0].location)


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("inspect_logs")
    return {fmt: write_log(base / fmt, fmt) for fmt in ("eval", "json")}


def value(v: Any) -> Any:
    """A frame cell with pandas' NaN for a missing string read back as None."""
    return None if isinstance(v, float) and v != v else v


def first_k_majority(k: int) -> float:
    """What the harnesses report as maj@k: a vote over the FIRST k samples only
    (``Counter.most_common``, first-seen wins ties, as lm-eval's ``majority_vote``)."""
    total = 0.0
    for target, _subject, answers in SCRIPT.values():
        votes = [a for a in answers[:k] if a is not None]
        total += bool(votes) and Counter(votes).most_common(1)[0][0] == target
    return total / len(SCRIPT)


def test_epochs_become_samples_with_harness_answers_scores_and_usage(
    logs: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    assert main(["import", "inspect", str(logs["eval"]), "--out", str(out)]) == 0
    with open_run(out) as run:
        frame = run.samples(with_text=True)
        meta = run.meta
        problems = {p.id: p for p, _ in run.problems()}
    assert len(frame) == len(SCRIPT) * EPOCHS
    for row in frame.itertuples():
        target, subject, answers = SCRIPT[row.problem_id]
        epoch = row.sample_index + 1
        assert value(row.answer) == answers[row.sample_index]  # pattern scorer's Score.answer
        assert _verdict(row.correct) is (answers[row.sample_index] == target)
        assert row.subject == subject and row.gold == target and row.budget == "default"
        assert (row.input_tokens, row.output_tokens) == (10, 20 + epoch)
        assert row.thinking_tokens == 5 * epoch and not row.thinking_estimated
        assert row.thinking == f"reasoning {row.problem_id}"
        assert row.status == "ok" and row.extra["score"] in ("C", "I")
    assert problems["q1"].question == "q1: what is the answer?"
    assert meta["origin"] == "import"
    info = meta["import_info"]
    assert set(info) == {"harness", "path", "sha256", "task", "harness_version"}
    import inspect_ai

    assert info["harness"] == "inspect" and info["task"] == "toy"
    assert info["harness_version"] == inspect_ai.__version__
    assert info["sha256"] == hashlib.sha256(logs["eval"].read_bytes()).hexdigest()
    assert meta["fingerprint"]["model"]["name"] == "mockllm/model"
    assert meta["config"]["sweep"] == {"budgets": ["default"], "samples": EPOCHS}


def test_eval_and_json_logs_import_the_same_samples(logs: dict[str, Path],
                                                    tmp_path: Path) -> None:
    frames = []
    for fmt, path in logs.items():
        assert main(["import", "inspect", str(path), "--out", str(tmp_path / fmt)]) == 0
        with open_run(tmp_path / fmt) as run:
            frame = run.samples(with_text=True)
        frames.append(frame[["problem_id", "sample_index", "answer", "correct", "text",
                             "thinking_tokens", "subject"]].reset_index(drop=True))
    assert frames[0].equals(frames[1])


def test_exact_estimates_match_hand_values_and_differ_from_first_k(
    logs: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    assert main(["import", "inspect", str(logs["eval"]), "--out", str(out)]) == 0
    with open_run(out) as run:
        curves = run.curves(ks=[1, 2, 3], n_boot=50, metrics=["majority", "pass"])
    got = {(r.metric, r.k, r.subject): r.value for r in curves.itertuples()}
    # By hand from SCRIPT. majority@2 over the three 2-subsets of each problem (ties share
    # credit, an abstention casts no vote): q1 (1+.5+.5)/3, q2 (.5+.5+1)/3, q3 (0+.5+.5)/3,
    # q4 ({-,6} 1, {-,5} 0, {6,5} .5)/3 -> 13/24. majority@3: 1, 1, 1/3, 1/2 -> 17/24.
    # pass@2 = 1 - C(n-c, 2)/C(3, 2): 1, 1, 2/3, 2/3 -> 5/6.
    expected = {
        ("majority", 1, "all"): 0.5, ("majority", 2, "all"): 13 / 24,
        ("majority", 3, "all"): 17 / 24, ("pass", 1, "all"): 0.5, ("pass", 2, "all"): 5 / 6,
        ("pass", 3, "all"): 1.0, ("majority", 3, "alg"): (1 + 1 / 3) / 2,
        ("majority", 3, "geo"): (1 + 0.5) / 2,
    }
    for key, value in expected.items():
        assert got[key] == pytest.approx(value), key
    # the harnesses' maj@k votes over the first k samples only: 1/4 and 1/2 here
    assert first_k_majority(1) == 0.25 and first_k_majority(2) == 0.5
    assert got[("majority", 1, "all")] != pytest.approx(first_k_majority(1))
    assert got[("majority", 2, "all")] != pytest.approx(first_k_majority(2))


def test_dict_valued_scorer_by_key_and_by_mean(logs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "right"
    assert main(["import", "inspect", str(logs["eval"]), "--out", str(out),
                 "--score", "two_part:right"]) == 0
    with open_run(out) as run:
        frame = run.samples()
    for row in frame.itertuples():
        target, _, answers = SCRIPT[row.problem_id]
        assert _verdict(row.correct) is (answers[row.sample_index] == target)
        # two_part records no answers: ttc's extractor read the completion for voting
        assert value(row.answer) == answers[row.sample_index] and row.extra["answer_by"] == "ttc"
    out = tmp_path / "mean"
    assert main(["import", "inspect", str(logs["eval"]), "--out", str(out),
                 "--score", "two_part"]) == 0
    with open_run(out) as run:
        frame = run.samples()
    for row in frame.itertuples():
        target, _, answers = SCRIPT[row.problem_id]
        right = answers[row.sample_index] == target
        formatted = answers[row.sample_index] is not None
        credit = (right + formatted) / 2
        assert _verdict(row.correct) is (credit == 1.0)
        # partial credit is kept; a whole verdict leaves no "credit" key behind
        assert row.extra.get("credit") == (credit if 0 < credit < 1 else None)


def test_report_status_and_export_work_on_the_imported_run(
    logs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert main(["import", "inspect", str(logs["json"]), "--out", str(out)]) == 0
    assert main(["status", str(out)]) == 0
    status = capsys.readouterr().out
    assert "mockllm/model (imported from inspect), 12/12 samples done" in status
    # 4 problems x epochs 1..3: output 4 * (21 + 22 + 23), reasoning 4 * (5 + 10 + 15)
    assert "default: 12/12 done" in status
    assert "264 output tokens, 120 thinking tokens" in status
    assert main(["report", str(out), "--bootstrap", "50"]) == 0
    summary = json.loads((out / "report" / "summary.json").read_text())
    assert summary["model"]["name"] == "mockllm/model"
    assert summary["budgets"][0]["accuracy"] == pytest.approx(0.5)
    curve = {(c["metric"], c["k"]): c["value"] for c in summary["curves"]
             if c["subject"] == "all"}
    assert curve[("majority", 3)] == pytest.approx(17 / 24)
    assert curve[("pass", 2)] == pytest.approx(5 / 6)
    assert (out / "report" / "report.html").stat().st_size > 0
    assert main(["export", str(out), "--format", "jsonl", "-o", str(tmp_path / "s.jsonl")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and {r["problem_id"] for r in rows} == set(SCRIPT)


def test_regrade_keeps_the_harness_verdict_beside_ttcs(logs: dict[str, Path],
                                                       tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["import", "inspect", str(logs["eval"]), "--out", str(out), "--regrade"]) == 0
    with open_run(out) as run:
        frame = run.samples()
    assert (frame["extra"].map(lambda e: e["graded_by"]) == "ttc").all()
    # ttc's extractor reads "ANSWER: 4" as the pattern scorer does: every verdict agrees
    assert (frame["correct"] == frame["extra"].map(lambda e: e["harness_correct"])).all()


# ------------------------------------------------------------------ edge cases


@solver
def fail_on(qid: str, epoch: int):  # type: ignore[no-untyped-def]
    async def solve(state, generate):  # type: ignore[no-untyped-def]
        if state.sample_id == qid and state.epoch == epoch:
            raise RuntimeError("sandbox exploded")
        return state
    return solve


def test_errors_token_limits_partial_credit_and_choices(tmp_path: Path) -> None:
    """Errored samples are stored failed, max_tokens cut-offs censored, P kept as credit,
    and multiple-choice samples become MCQ problems with the letter answers."""

    def out(messages: Any, tools: Any, tool_choice: Any, config: Any) -> ModelOutput:
        text = messages[-1].text
        stop = "max_tokens" if "cut" in text else "stop"
        message = ChatMessageAssistant(content="ANSWER: B", model="mockllm/model")
        return ModelOutput(model="mockllm/model", choices=[ChatCompletionChoice(
            message=message, stop_reason=stop)], usage=ModelUsage(input_tokens=3,
                                                                  output_tokens=2))

    @scorer(metrics=[accuracy()])
    def half():  # type: ignore[no-untyped-def]
        async def score(state, target):  # type: ignore[no-untyped-def]
            return Score(value="P", answer="B")
        return score

    dataset = MemoryDataset([
        Sample(id="m1", input="pick one", choices=["x", "y", "z"], target="B"),
        Sample(id="m2", input="cut short", choices=["x", "y", "z"], target="A",
               metadata={"category": "cut"}),
    ])
    task = Task(dataset=dataset, solver=[fail_on("m1", 2), multiple_choice()],
                scorer=[choice(), half()], name="mc")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(MockLLM, "count_tokens", _no_tokenizer)
        log = eval(task, model="mockllm/model", model_args={"custom_outputs": out}, epochs=2,
                   log_dir=str(tmp_path / "logs"), display="none", fail_on_error=False)[0]
    run_dir = tmp_path / "run"
    assert main(["import", "inspect", log.location, "--out", str(run_dir)]) == 0
    with open_run(run_dir) as run:
        frame = run.samples().set_index(["problem_id", "sample_index"])
        problems = {p.id: p for p, _ in run.problems()}
    assert problems["m1"].kind == "mcq" and problems["m1"].choices == ("x", "y", "z")
    assert problems["m1"].answer == "B" and problems["m2"].subject == "cut"
    assert frame.loc[("m1", 1), "status"] == "failed"
    assert "sandbox exploded" in frame.loc[("m1", 1), "error"]
    assert frame.loc[("m1", 0), "answer"] == "B"
    assert _verdict(frame.loc[("m1", 0), "correct"]) is True
    assert frame.loc[("m2", 0), "status"] == "censored"
    assert _verdict(frame.loc[("m2", 0), "correct"]) is False
    assert main(["import", "inspect", log.location, "--out", str(tmp_path / "half"),
                 "--score", "half"]) == 0
    with open_run(tmp_path / "half") as run:
        frame = run.samples()
    ok = frame[frame["status"] != "failed"]
    assert not ok["correct"].any()  # P is partial: not counted correct, credit kept
    assert (ok["extra"].map(lambda e: e["credit"]) == 0.5).all()


def test_sample_ids_that_differ_only_in_type_are_named(logs: dict[str, Path],
                                                       tmp_path: Path) -> None:
    """inspect_ai ids are ints or strings, so 1 and "1" are two samples there but one
    problem id here: the import is refused saying so, instead of "problem '1' sample 0
    appears twice" about a log where no sample appears twice."""
    from inspect_ai.log import read_eval_log, write_eval_log

    from ttc.importers import LogFormatError, read_log

    log = read_eval_log(str(logs["json"]))
    assert log.samples
    for sample in log.samples:
        if sample.id == "q1":
            sample.id = 7
        elif sample.id == "q2":
            sample.id = "7"
    path = tmp_path / "mixed.json"
    write_eval_log(log, str(path))
    with pytest.raises(LogFormatError, match=r"sample ids 7 and '7' .* both become problem '7'"):
        read_log("inspect", path)
