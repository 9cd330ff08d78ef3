"""``ttc import lm-eval``: samples files that lm-evaluation-harness itself wrote.

A subprocess runs lm-eval's real evaluator (``simple_evaluate`` + ``EvaluationTracker``,
as ``lm_eval --log_samples`` does) offline on two local YAML tasks, with a scripted
``LM`` subclass in place of a network model: a generation task with ``repeats: 3`` and
three filters (score-first, first-2 majority, majority of all), and a multiple-choice
task. The file's own maj@k is lm-eval's vote over the first k repeats; ttc's estimate
averages over every k-subset; both are checked against values worked out by hand.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ttc.cli import main
from ttc.run import open_run

# question -> (target, subject, response per repeat)
GEN = {
    "q1": ("4", "alg", ["The answer is 4", "The answer is 4", "The answer is 5"]),
    "q2": ("8", "geo", ["The answer is 7", "The answer is 8", "The answer is 8"]),
    "q3": ("3", "alg", ["The answer is 1", "The answer is 2", "The answer is 3"]),
    "q4": ("6", "geo", ["I am not sure", "The answer is 6", "The answer is 5"]),
}
# question -> (choices, gold index, index the model picks)
MC = {"m1": (["red", "green", "blue"], 1, 1), "m2": (["cat", "dog", "cow"], 2, 0)}
# question -> (choices, gold index, log-likelihood per choice): the raw, per-character and
# per-byte picks differ, and lm-eval divides by the length of the choice itself (not of the
# request's continuation, which carries the " " target delimiter)
MCN = {"n1": (["a", "bb"], 1, [-2.0, -3.5]), "n2": (["cc", "d"], 0, [-3.5, -2.0]),
       "n3": (["\u00e9\u00e9", "xyz"], 0, [-3.5, -5.0])}
# question -> (aliases, response per repeat): doc_to_target renders a list, which lm-eval
# turns back into a list (ast.literal_eval) and writes as str(list)
ALIAS = {"a1": (["4", "4.0"], ["The answer is 4", "The answer is 5"]),
         "a2": (["12", "twelve"], ["The answer is 7", "The answer is 12"])}

TASKS = """\
task: toy_gen
dataset_path: json
dataset_kwargs: {{data_files: {{test: {gen}}}}}
test_split: test
output_type: generate_until
doc_to_text: "Q {{{{id}}}}: {{{{question}}}}\\nA:"
doc_to_target: "{{{{answer}}}}"
repeats: 3
generation_kwargs: {{until: ["\\n"], do_sample: true, temperature: 0.7}}
filter_list:
  - name: score-first
    filter: [{{function: regex, regex_pattern: "(-?[0-9]+)"}}, {{function: take_first}}]
  - name: maj@2
    filter: [{{function: take_first_k, k: 2}}, {{function: regex, regex_pattern: "(-?[0-9]+)"}},
             {{function: majority_vote}}, {{function: take_first}}]
  - name: maj@3
    filter: [{{function: regex, regex_pattern: "(-?[0-9]+)"}}, {{function: majority_vote}},
             {{function: take_first}}]
metric_list: [{{metric: exact_match, aggregation: mean, higher_is_better: true}}]
metadata: {{version: 1.0}}
"""
MC_TASK = """\
task: {name}
dataset_path: json
dataset_kwargs: {{data_files: {{test: {data}}}}}
test_split: test
output_type: multiple_choice
doc_to_text: "Q {{{{id}}}}: pick one\\nA:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: label
metric_list:
  - {{metric: acc, aggregation: mean, higher_is_better: true}}
  - {{metric: acc_norm, aggregation: mean, higher_is_better: true}}
  - {{metric: acc_bytes, aggregation: mean, higher_is_better: true}}
metadata: {{version: 1.0}}
"""
ALIAS_TASK = """\
task: toy_alias
dataset_path: json
dataset_kwargs: {{data_files: {{test: {alias}}}}}
test_split: test
output_type: generate_until
doc_to_text: "Q {{{{id}}}}: what is it?\\nA:"
doc_to_target: "{{{{aliases}}}}"
repeats: 2
generation_kwargs: {{until: ["\\n"], do_sample: true, temperature: 0.7}}
filter_list:
  - name: maj
    filter: [{{function: regex, regex_pattern: "(-?[0-9]+)"}}, {{function: majority_vote}},
             {{function: take_first}}]
metric_list: [{{metric: exact_match, aggregation: mean, higher_is_better: true}}]
metadata: {{version: 1.0}}
"""
RUNNER = """\
import json, sys
from lm_eval import simple_evaluate
from lm_eval.api.model import LM
from lm_eval.loggers import EvaluationTracker
from lm_eval.tasks import TaskManager

GEN, MC, tasks_dir, out = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
MCN, ALIAS = json.loads(sys.argv[5]), json.loads(sys.argv[6])

class Scripted(LM):
    def __init__(self):
        super().__init__()
        self.calls = {}

    def generate_until(self, requests, disable_tqdm=False):
        out = []
        for r in requests:  # lm-eval sends a document's repeats one after another
            qid = r.arguments[0].split()[1].rstrip(":")
            i = self.calls.get(qid, 0)
            self.calls[qid] = i + 1
            out.append(" " + (GEN[qid][2] if qid in GEN else ALIAS[qid][1])[i])
        return out

    def loglikelihood(self, requests, disable_tqdm=False):
        out = []
        for r in requests:
            qid = r.arguments[0].split()[1].rstrip(":")
            if qid in MCN:
                choices, _gold, lls = MCN[qid]
                out.append((lls[choices.index(r.arguments[1][1:])], False))
                continue
            choices, _gold, pick = MC[qid]
            out.append((0.0 if r.arguments[1].strip() == choices[pick] else -5.0, False))
        return out

    def loglikelihood_rolling(self, requests, disable_tqdm=False):
        raise NotImplementedError

tracker = EvaluationTracker(output_path=out)
results = simple_evaluate(model=Scripted(), tasks=["toy_gen", "toy_mc", "toy_mcn", "toy_alias"],
                          task_manager=TaskManager(include_path=tasks_dir), log_samples=True,
                          evaluation_tracker=tracker)
tracker.save_results_aggregated(results=results, samples=results["samples"])
for name in results["configs"]:
    tracker.save_results_samples(task_name=name, samples=results["samples"][name])
"""

def _verdict(value: object) -> bool | None:
    """A stored verdict as a Python bool (frames hold numpy/pandas nullable booleans)."""
    import pandas as pd

    return None if value is pd.NA or value is None else bool(value)



@pytest.fixture(scope="module")
def lm_eval_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """lm-eval's output folder for the two tasks (one samples file per task)."""
    if importlib.util.find_spec("lm_eval") is None:
        pytest.skip("lm_eval is not installed (pip install 'ttc[dev]')")
    base = tmp_path_factory.mktemp("lm_eval")
    gen = base / "gen.jsonl"
    gen.write_text("".join(json.dumps({"id": q, "question": "what is it?", "answer": t,
                                       "subject": s}) + "\n"
                           for q, (t, s, _r) in GEN.items()))
    mc = base / "mc.jsonl"
    mc.write_text("".join(json.dumps({"id": q, "choices": c, "label": g}) + "\n"
                          for q, (c, g, _p) in MC.items()))
    mcn = base / "mcn.jsonl"
    mcn.write_text("".join(json.dumps({"id": q, "choices": c, "label": g}) + "\n"
                           for q, (c, g, _l) in MCN.items()))
    alias = base / "alias.jsonl"
    alias.write_text("".join(json.dumps({"id": q, "aliases": a}) + "\n"
                             for q, (a, _r) in ALIAS.items()))
    tasks = base / "tasks"
    tasks.mkdir()
    (tasks / "toy_gen.yaml").write_text(TASKS.format(gen=json.dumps(str(gen))))
    for name, data in (("toy_mc", mc), ("toy_mcn", mcn)):
        (tasks / f"{name}.yaml").write_text(MC_TASK.format(name=name, data=json.dumps(str(data))))
    (tasks / "toy_alias.yaml").write_text(ALIAS_TASK.format(alias=json.dumps(str(alias))))
    (base / "runner.py").write_text(textwrap.dedent(RUNNER))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "HF_HOME": str(base / "hf"), "HF_DATASETS_CACHE": str(base / "hf" / "datasets")}
    done = subprocess.run(
        [sys.executable, str(base / "runner.py"), json.dumps(GEN), json.dumps(MC), str(tasks),
         str(base / "out"), json.dumps(MCN), json.dumps(ALIAS)], env=env, capture_output=True,
        text=True, timeout=300,
    )
    if done.returncode != 0:
        pytest.fail(f"lm-eval did not run offline:\n{done.stderr[-3000:]}")
    (folder,) = [p for p in (base / "out").iterdir() if p.is_dir()]
    return folder


def samples_file(folder: Path, task: str) -> Path:
    (path,) = folder.glob(f"samples_{task}_*.jsonl")
    return path


def harness_metric(folder: Path, task: str, filter_name: str) -> dict[str, float]:
    """lm-eval's own per-document exact_match for one filter, read from its file."""
    lines = [json.loads(x) for x in samples_file(folder, task).read_text().splitlines()]
    return {line["doc"]["id"]: line["exact_match"] for line in lines
            if line["filter"] == filter_name}


def test_the_file_is_lm_evals_documented_shape(lm_eval_dir: Path) -> None:
    line = json.loads(samples_file(lm_eval_dir, "toy_gen").read_text().splitlines()[0])
    for key in ("doc_id", "doc", "target", "arguments", "resps", "filtered_resps", "filter",
                "metrics", "doc_hash", "prompt_hash", "target_hash", "exact_match"):
        assert key in line
    assert len(line["resps"]) == 1 and len(line["resps"][0]) == 3  # one request, 3 repeats
    assert list((lm_eval_dir).glob("results_*.json"))


def test_repeats_become_samples_graded_by_ttc(lm_eval_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["import", "lm-eval", str(samples_file(lm_eval_dir, "toy_gen")),
                 "--out", str(out)]) == 0
    with open_run(out) as run:
        frame = run.samples(with_text=True)
        meta = run.meta
    assert len(frame) == 12
    by_id = {f"toy_gen/{i}": q for i, q in enumerate(GEN)}
    for row in frame.itertuples():
        target, subject, responses = GEN[by_id[row.problem_id]]
        assert row.text == " " + responses[row.sample_index]
        assert row.subject == subject and row.gold == target
        stated = responses[row.sample_index].rpartition(" ")[2]
        assert _verdict(row.correct) is (stated == target)
        assert row.extra["graded_by"] == "ttc"
    # ttc's grading of repeat 0 agrees with lm-eval's "score-first" exact_match
    first = harness_metric(lm_eval_dir, "toy_gen", "score-first")
    for row in frame[frame["sample_index"] == 0].itertuples():
        assert float(row.correct) == first[by_id[row.problem_id]]
    info = meta["import_info"]
    import lm_eval

    assert info["harness"] == "lm-eval" and info["task"] == "toy_gen"
    assert info["harness_version"] == lm_eval.__version__
    assert meta["config"]["sweep"]["samples"] == 3


def test_ttc_estimates_versus_lm_evals_first_k_majority(lm_eval_dir: Path,
                                                        tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["import", "lm-eval", str(samples_file(lm_eval_dir, "toy_gen")),
                 "--out", str(out)]) == 0
    with open_run(out) as run:
        curves = run.curves(ks=[1, 2, 3], n_boot=50, metrics=["majority", "pass"])
    got = {(r.metric, r.k): r.value for r in curves.itertuples() if r.subject == "all"}
    # lm-eval's own maj@2 (take_first_k 2, majority_vote; "[invalid]" counts as a vote and
    # the first-seen answer wins a tie): q1 {4,4} 1, q2 {7,8} -> 7: 0, q3 {1,2} 0,
    # q4 {[invalid],6} -> [invalid]: 0. maj@3: q1 1, q2 1, q3 {1,2,3} -> 1: 0, q4 0.
    maj2, maj3 = (harness_metric(lm_eval_dir, "toy_gen", f) for f in ("maj@2", "maj@3"))
    assert list(maj2.values()) == [1.0, 0.0, 0.0, 0.0]
    assert list(maj3.values()) == [1.0, 1.0, 0.0, 0.0]
    # ttc, over every k-subset, ties shared, abstentions casting no vote (by hand):
    # majority@2 = (2/3 + 2/3 + 1/3 + 1/2) / 4 = 13/24; majority@3 = (1 + 1 + 1/3 + 1/2) / 4
    assert got[("majority", 1)] == pytest.approx(0.5)
    assert got[("majority", 2)] == pytest.approx(13 / 24)
    assert got[("majority", 3)] == pytest.approx(17 / 24)
    assert got[("pass", 2)] == pytest.approx(5 / 6) and got[("pass", 3)] == pytest.approx(1.0)
    assert sum(maj2.values()) / 4 == 0.25 != pytest.approx(got[("majority", 2)])
    assert sum(maj3.values()) / 4 == 0.5 != pytest.approx(got[("majority", 3)])


def test_multiple_choice_picks_the_highest_likelihood(lm_eval_dir: Path,
                                                      tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["import", "lm-eval", str(samples_file(lm_eval_dir, "toy_mc")),
                 "--out", str(out)]) == 0
    with open_run(out) as run:
        frame = run.samples().set_index("problem_id")
        problems = {p.id: p for p, _ in run.problems()}
    for i, (choices, gold, pick) in enumerate(MC.values()):
        pid = f"toy_mc/{i}"
        assert problems[pid].kind == "mcq" and problems[pid].choices == tuple(choices)
        assert problems[pid].answer == "ABC"[gold]
        assert frame.loc[pid, "answer"] == "ABC"[pick]
        assert _verdict(frame.loc[pid, "correct"]) is (pick == gold)
        assert frame.loc[pid, "extra"]["metric"] == "acc"
    assert main(["import", "lm-eval", str(samples_file(lm_eval_dir, "toy_mc")),
                 "--out", str(tmp_path / "norm"), "--score", "acc_norm"]) == 0


def test_a_folder_imports_every_task_with_the_task_as_category(
    lm_eval_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert main(["import", "lm-eval", str(lm_eval_dir), "--out", str(out)]) == 0
    with open_run(out) as run:
        frame = run.samples()
    assert len(frame) == 12 + 2 + 3 + 4
    assert set(frame.loc[frame["problem_id"].str.startswith("toy_mc/"), "subject"]) == {"toy_mc"}
    assert set(frame.loc[frame["problem_id"].str.startswith("toy_gen"), "subject"]) == {
        "alg", "geo"}
    assert main(["status", str(out)]) == 0
    assert main(["report", str(out), "--bootstrap", "20"]) == 0
    assert (out / "report" / "summary.json").exists()
    assert main(["export", str(out), "--format", "csv", "-o", str(tmp_path / "x.csv")]) == 0
    assert len((tmp_path / "x.csv").read_text().splitlines()) == 22
    capsys.readouterr()
    # --task selects one task of the folder; the score-first filter is the default
    assert main(["import", "lm-eval", str(lm_eval_dir), "--out", str(tmp_path / "mc"),
                 "--task", "toy_mc"]) == 0
    assert "2 samples of 2 problems" in capsys.readouterr().out


@pytest.mark.parametrize("metric", ["acc", "acc_norm", "acc_bytes"])
def test_the_answer_is_the_choice_lm_eval_scored(lm_eval_dir: Path, tmp_path: Path,
                                                 metric: str) -> None:
    """acc_norm divides by the choice's characters and acc_bytes by its UTF-8 bytes (as
    lm-eval's ``process_results`` does), so the stored answer is the choice the metric
    judged: the reader used to divide by the continuation's length (" " + choice) and
    to ignore acc_bytes, storing answer A with a verdict about choice B."""
    out = tmp_path / metric
    assert main(["import", "lm-eval", str(samples_file(lm_eval_dir, "toy_mcn")),
                 "--out", str(out), "--score", metric]) == 0
    scored = {line["doc"]["id"]: line[metric] for line in
              map(json.loads, samples_file(lm_eval_dir, "toy_mcn").read_text().splitlines())}
    with open_run(out) as run:
        frame = run.samples().set_index("problem_id")
    for i, (qid, (choices, gold, lls)) in enumerate(MCN.items()):
        size = {"acc": lambda c: 1, "acc_norm": len, "acc_bytes": lambda c: len(c.encode())}
        pick = max(range(len(choices)), key=lambda j: lls[j] / size[metric](choices[j]))
        row = frame.loc[f"toy_mcn/{i}"]
        assert row["answer"] == "AB"[pick], (qid, metric)
        assert _verdict(row["correct"]) is (pick == gold) is (scored[qid] == 1.0), (qid, metric)


def test_a_list_target_is_a_list_of_gold_answers(lm_eval_dir: Path, tmp_path: Path) -> None:
    """lm-eval writes ``str(target)``: a task whose target is a list of aliases (TriviaQA,
    NQ-Open) leaves "['4', '4.0']" in the file; each repeat must be graded against the
    aliases, not against that string (which marked every repeat wrong)."""
    out = tmp_path / "run"
    assert main(["import", "lm-eval", str(samples_file(lm_eval_dir, "toy_alias")),
                 "--out", str(out)]) == 0
    with open_run(out) as run:
        frame = run.samples().set_index(["problem_id", "sample_index"])
        problems = {p.id: p for p, _ in run.problems()}
    for i, (aliases, responses) in enumerate(ALIAS.values()):
        pid = f"toy_alias/{i}"
        assert problems[pid].answer == aliases[0]
        assert problems[pid].meta["golds"] == aliases
        for j, text in enumerate(responses):
            assert _verdict(frame.loc[(pid, j), "correct"]) is (text.rpartition(" ")[2] in aliases)


def test_a_misspelt_score_is_refused_even_where_repeats_are_graded_by_ttc(
        lm_eval_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With repeats the metric is not read (ttc grades each repeat), so ``--score
    exact_macth`` used to import happily; a name the file does not have is refused."""
    out = tmp_path / "run"
    assert main(["import", "lm-eval", str(samples_file(lm_eval_dir, "toy_gen")),
                 "--out", str(out), "--score", "exact_macth"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no metric 'exact_macth' (it has exact_match)" in err and "\n" not in err
    assert not out.exists()
