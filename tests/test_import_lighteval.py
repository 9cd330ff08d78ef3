"""``ttc import lighteval``: details parquet files in lighteval's own layout.

lighteval itself cannot run here (it needs torch and transformers, and its tasks load
datasets from the Hugging Face hub), so the files are written the way lighteval 0.13.0
writes them, by the same library calls: ``EvaluationTracker.save`` in
src/lighteval/logging/evaluation_tracker.py does
``Dataset.from_list([asdict(detail) for detail in task_details])``, keeps the columns
sorted and calls ``dataset.to_parquet`` on
``details/<model>/<date>/details_<task>_<date>.parquet``; results go to
``results/<model>/results_<date>.json``. The dataclasses below copy the fields of
``Doc`` (src/lighteval/tasks/requests.py), ``ModelResponse``
(src/lighteval/models/model_output.py) and ``DetailsLogger.Detail``
(src/lighteval/logging/info_loggers.py) of lighteval 0.13.0.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import pytest

from ttc.cli import main
from ttc.run import open_run

datasets = pytest.importorskip("datasets")
pytest.importorskip("pyarrow")

DATE = "2026-01-02T03-04-05.678901"
MODEL = "org/tiny-model"

def _verdict(value: object) -> bool | None:
    """A stored verdict as a Python bool (frames hold numpy/pandas nullable booleans)."""
    import pandas as pd

    return None if value is pd.NA or value is None else bool(value)



class SamplingMethod(str, Enum):  # noqa: UP042 - lighteval's own definition
    GENERATIVE = "GENERATIVE"
    LOGPROBS = "LOGPROBS"
    PERPLEXITY = "PERPLEXITY"


@dataclass
class Doc:
    query: str
    choices: list[str]
    gold_index: int | list[int]
    instruction: str | None = None
    images: list[Any] | None = None
    specific: dict[str, Any] | None = None
    unconditioned_query: str | None = None
    original_query: str | None = None
    id: str = ""
    task_name: str = ""
    fewshot_samples: list[Any] = field(default_factory=list)
    sampling_methods: list[SamplingMethod] = field(default_factory=list)
    fewshot_sorting_class: str | None = None
    generation_size: int | None = None
    stop_sequences: list[str] | None = None
    use_logits: bool = False
    num_samples: int = 1
    generation_grammar: None = None


@dataclass
class ModelResponse:
    input: str | list[Any] | None = None
    input_tokens: list[int] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    output_tokens: list[list[int]] = field(default_factory=list)
    text_post_processed: list[str] | None = None
    reasonings: list[str | None] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    argmax_logits_eq_gold: list[bool] = field(default_factory=list)
    logits: list[list[float]] | None = None
    unconditioned_logprobs: list[float] | None = None
    truncated_tokens_count: int = 0
    padded_tokens_count: int = 0


@dataclass
class Detail:
    doc: Doc
    model_response: ModelResponse
    metric: dict[str, Any]


def save_details(root: Path, task: str, details: list[Detail]) -> Path:
    """lighteval 0.13.0 ``EvaluationTracker.save`` + ``save_details``, minus the hub."""
    dataset = datasets.Dataset.from_list([asdict(d) for d in details])
    columns = [c for c in dataset.column_names if c != "id"]
    dataset = dataset.select_columns(sorted(columns))
    folder = root / "details" / MODEL / DATE
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"details_{task}_{DATE}.parquet"
    dataset.to_parquet(str(path))
    results = root / "results" / MODEL
    results.mkdir(parents=True, exist_ok=True)
    (results / f"results_{DATE}.json").write_text(json.dumps({
        "config_general": {"lighteval_sha": "?", "model_name": MODEL},
        "results": {}, "versions": {}, "config_tasks": {}, "summary_tasks": {},
        "summary_general": {},
    }))
    return path


# question -> (gold, subject, three sampled generations)
SAMPLED = {
    "q1": ("4", "alg", ["so \\boxed{4}", "so \\boxed{4}", "so \\boxed{5}"]),
    "q2": ("8", "geo", ["so \\boxed{7}", "so \\boxed{8}", "so \\boxed{8}"]),
    "q3": ("3", "alg", ["so \\boxed{1}", "so \\boxed{2}", "so \\boxed{3}"]),
}


def sampled_details() -> list[Detail]:
    out = []
    for i, (qid, (gold, subject, texts)) in enumerate(SAMPLED.items()):
        doc = Doc(query=f"{qid}?", choices=[gold], gold_index=0, id=str(i),
                  task_name="lighteval|toy_math|0", specific={"subject": subject},
                  sampling_methods=[SamplingMethod.GENERATIVE], num_samples=3)
        response = ModelResponse(input=f"{qid}?", input_tokens=[1, 2, 3], text=texts,
                                 output_tokens=[[7] * (5 + j) for j in range(3)],
                                 reasonings=["thinking it over " * 4, None, None])
        # lighteval scores the document, not each sample: maj@3 and pass@1 over 3 samples
        votes = [t[-2] for t in texts]
        majority = max(set(votes), key=votes.count) if len(set(votes)) < 3 else votes[0]
        out.append(Detail(doc=doc, model_response=response, metric={
            "maj@n:n=3": float(majority == gold),
            "pass@k:k=1&n=3": sum(v == gold for v in votes) / 3}))
    return out


def mc_details() -> list[Detail]:
    rows = [(["Paris", "Rome", "Oslo"], 0, [-0.1, -2.0, -3.0]),
            (["1", "2", "3"], 2, [-0.5, -0.2, -0.9])]
    out = []
    for i, (choices, gold, logprobs) in enumerate(rows):
        doc = Doc(query=f"mc {i}", choices=choices, gold_index=gold, id=str(i),
                  task_name="lighteval|toy_mc|0", sampling_methods=[SamplingMethod.LOGPROBS])
        pick = max(range(3), key=lambda j: logprobs[j])
        out.append(Detail(doc=doc, model_response=ModelResponse(logprobs=logprobs,
                                                                input_tokens=[1, 2]),
                          metric={"acc": float(pick == gold)}))
    return out


def single_details() -> list[Detail]:
    doc = Doc(query="2+2?", choices=["4"], gold_index=0, id="0",
              task_name="lighteval|toy_one|0", sampling_methods=[SamplingMethod.GENERATIVE])
    right = ModelResponse(text=["The final answer is 4."], output_tokens=[[1, 2, 3]])
    doc2 = Doc(query="3+3?", choices=["6"], gold_index=0, id="1",
               task_name="lighteval|toy_one|0", sampling_methods=[SamplingMethod.GENERATIVE])
    wrong = ModelResponse(text=["The final answer is 5."], output_tokens=[[1, 2]])
    return [Detail(doc, right, {"extractive_match": 1.0}),
            Detail(doc2, wrong, {"extractive_match": 0.0})]


@pytest.fixture(scope="module")
def details(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("lighteval")
    return {
        "sampled": save_details(root, "lighteval|toy_math|0", sampled_details()),
        "mc": save_details(root, "lighteval|toy_mc|0", mc_details()),
        "one": save_details(root, "lighteval|toy_one|0", single_details()),
    }


def test_several_samples_per_document_are_graded_by_ttc(details: dict[str, Path],
                                                        tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["import", "lighteval", str(details["sampled"]), "--out", str(out)]) == 0
    with open_run(out) as run:
        frame = run.samples(with_text=True)
        meta = run.meta
        curves = run.curves(ks=[1, 2, 3], n_boot=20, metrics=["majority", "pass"])
    assert len(frame) == 9
    for row in frame.itertuples():
        gold, subject, texts = list(SAMPLED.values())[int(row.problem_id.rsplit("/", 1)[1])]
        assert row.answer == texts[row.sample_index][-2]
        assert _verdict(row.correct) is (row.answer == gold) and row.subject == subject
        assert row.output_tokens == 5 + row.sample_index and row.input_tokens == 3
        assert row.extra["graded_by"] == "ttc"
    first = frame[frame["sample_index"] == 0].iloc[0]
    assert first["thinking"].startswith("thinking it over") and first["thinking_estimated"]
    assert meta["fingerprint"]["model"]["name"] == MODEL
    assert meta["import_info"]["task"] == "lighteval|toy_math|0"
    got = {(r.metric, r.k): r.value for r in curves.itertuples() if r.subject == "all"}
    # by hand: majority@3 = (1 + 1 + 1/3) / 3 (q3 is a three-way tie) = 7/9; the file's
    # own maj@3 broke q3's tie by taking the first sample: (1 + 1 + 0) / 3
    assert got[("majority", 3)] == pytest.approx(7 / 9)
    assert got[("pass", 1)] == pytest.approx((2 / 3 + 2 / 3 + 1 / 3) / 3)
    file_maj = [d.metric["maj@n:n=3"] for d in sampled_details()]
    assert sum(file_maj) / 3 == pytest.approx(2 / 3) != pytest.approx(got[("majority", 3)])


def test_log_probability_choice_and_single_sample_scores(details: dict[str, Path],
                                                         tmp_path: Path) -> None:
    assert main(["import", "lighteval", str(details["mc"]), "--out", str(tmp_path / "mc")]) == 0
    with open_run(tmp_path / "mc") as run:
        frame = run.samples().set_index("problem_id")
        problems = {p.id: p for p, _ in run.problems()}
    assert problems["lighteval|toy_mc|0/0"].kind == "mcq"
    assert problems["lighteval|toy_mc|0/0"].choices == ("Paris", "Rome", "Oslo")
    assert frame.loc["lighteval|toy_mc|0/0", "answer"] == "A"
    assert _verdict(frame.loc["lighteval|toy_mc|0/0", "correct"]) is True
    assert frame.loc["lighteval|toy_mc|0/1", "answer"] == "B"
    assert _verdict(frame.loc["lighteval|toy_mc|0/1", "correct"]) is False
    assert main(["import", "lighteval", str(details["one"]), "--out", str(tmp_path / "one")]) == 0
    with open_run(tmp_path / "one") as run:
        frame = run.samples().set_index("problem_id")
    assert _verdict(frame.loc["lighteval|toy_one|0/0", "correct"]) is True
    assert _verdict(frame.loc["lighteval|toy_one|0/1", "correct"]) is False
    assert frame.loc["lighteval|toy_one|0/1", "answer"] == "5"  # ttc's extraction
    assert frame.loc["lighteval|toy_one|0/1", "extra"]["metric"] == "extractive_match"


def test_a_details_folder_with_task_selection_and_report(
    details: dict[str, Path], tmp_path: Path
) -> None:
    folder = details["mc"].parent
    assert main(["import", "lighteval", str(folder), "--out", str(tmp_path / "all")]) == 0
    with open_run(tmp_path / "all") as run:
        frame = run.samples()
    assert len(frame) == 9 + 2 + 2
    assert "lighteval|toy_mc|0" in set(frame["subject"])  # several tasks: task = category
    assert main(["import", "lighteval", str(folder), "--out", str(tmp_path / "mc"),
                 "--task", "toy_mc"]) == 0
    assert main(["report", str(tmp_path / "all"), "--bootstrap", "20"]) == 0
    assert main(["status", str(tmp_path / "all")]) == 0
    target = tmp_path / "all.parquet"
    assert main(["export", str(tmp_path / "all"), "--format", "parquet", "-o", str(target)]) == 0
    import pyarrow.parquet as pq

    assert pq.read_table(target).num_rows == 13


def test_a_misspelt_score_is_refused_for_several_samples_too(
        details: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Documents with several samples are graded by ttc, so the metric was never looked
    up and ``--score maj@4`` imported without a word."""
    out = tmp_path / "run"
    assert main(["import", "lighteval", str(details["sampled"]), "--out", str(out),
                 "--score", "maj@4"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no metric 'maj@4' (it has maj@n:n=3, pass@k:k=1&n=3)" in err and "\n" not in err
    assert not out.exists()


def test_a_folder_with_two_evaluations_is_refused(details: dict[str, Path], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Details of two dates in one folder are two evaluations (lm-eval's reader already
    refused them; lighteval's imported both and then failed on repeated problem ids)."""
    import shutil

    folder = tmp_path / "details"
    folder.mkdir()
    shutil.copy(details["mc"], folder / details["mc"].name)
    shutil.copy(details["mc"], folder / details["mc"].name.replace("2026-01-02", "2026-02-03"))
    assert main(["import", "lighteval", str(folder), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert "files of 2 evaluations" in err and "\n" not in err
