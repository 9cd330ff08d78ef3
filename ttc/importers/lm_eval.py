"""lm-evaluation-harness ``--log_samples`` files: ``samples_<task>_<date>.jsonl``.

The shape is lm-eval's own (``lm_eval/evaluator.py`` builds each line, and
``lm_eval/loggers/evaluation_tracker.py::save_results_samples`` writes it): one line per
(document, filter) with ``doc_id``, ``doc``, ``target``, ``arguments`` (``gen_args_i`` /
``arg_j``), ``resps`` (per request, per repeat), ``filtered_resps`` (per request),
``filter``, ``metrics`` (the metric names) and one field per metric. The sibling
``results_<date>.json`` names the model and the lm-eval version.

Two response shapes carry answers:

* generation (``generate_until``): one request whose ``resps[0]`` holds R repeats.
  With R = 1 the sample's answer is the filtered response and its correctness the
  metric. With R > 1 lm-eval scores the document once, after the filter aggregated
  the repeats (``majority_vote``, ``take_first``): no per-repeat score exists in the
  file, so each repeat becomes a sample that ttc grades against ``target``.
* multiple choice (``loglikelihood`` per choice): the answer is the letter of the
  highest log-likelihood (length-normalised for ``acc_norm``), the correctness the
  metric (``acc`` by default).
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

from ttc.importers.base import (
    DEFAULT_BUDGET,
    LOG_DATE,
    ImportedLog,
    LogFormatError,
    category_from,
    check_unique,
    credit_of,
    letter,
    log_files,
    read_json_object,
)
from ttc.problems import Problem
from ttc.store import SampleRecord

__all__ = ["read_lm_eval"]

FILE_RE = re.compile(rf"^samples_(?P<task>.+)_{LOG_DATE}\.jsonl$")
_REQUIRED = ("doc_id", "resps", "filtered_resps")
_NOT_METRICS = {"doc_id", "doc", "target", "arguments", "resps", "filtered_resps", "filter",
                "metrics", "doc_hash", "prompt_hash", "target_hash"}


def read_lm_eval(path: Path, *, task: str | None = None, score: str | None = None) -> ImportedLog:
    """Read one samples file, or every samples file of one evaluation in a folder."""
    files = _pick_files(path, task)
    results = _results(files[0])
    metric, wanted_filter = (score.split(",", 1) + [None])[:2] if score else (None, None)
    problems: list[Problem] = []
    records: list[SampleRecord] = []
    notes: list[str] = []
    tasks = [_task_name(f) for f in files]
    for file, name in zip(files, tasks, strict=True):
        lines = _lines(file)
        chosen = _choose_filter(lines, wanted_filter, file)
        for number, line in lines:
            if line.get("filter", "none") != chosen:
                continue
            problem, samples = _document(line, name, metric, multi=len(files) > 1,
                                         where=f"{file}:{number}", notes=notes)
            problems.append(problem)
            records.extend(samples)
    check_unique(records, path)
    if not records:
        raise LogFormatError(f"{path}: the samples file holds no documents")
    model_name = str(results.get("model_name") or files[0].parent.name)
    if not results:
        notes.append("no results_<date>.json beside the samples: the model is named after the "
                     "folder and the lm-eval version is unknown")
    task_label = task or (tasks[0] if len(tasks) == 1 else ",".join(tasks))
    model = {"name": model_name, "harness": "lm-eval",
             "model_args": (results.get("config") or {}).get("model_args")}
    return ImportedLog(
        harness="lm-eval", harness_version=results.get("lm_eval_version"), task=task_label,
        model=model, budget=DEFAULT_BUDGET, problems=problems, samples=records, sources=files,
        score=score, notes=sorted(set(notes)),
    )


def _task_name(file: Path) -> str:
    match = FILE_RE.match(file.name)
    return match.group("task") if match else file.stem


def _pick_files(path: Path, task: str | None) -> list[Path]:
    return log_files(path, FILE_RE, "lm-eval samples_<task>_<date>.jsonl", task,
                     keep=lambda files: _group_subtasks(files, task) if task else set())


def _group_subtasks(files: list[Path], group: str) -> set[str]:
    """A group's subtasks (``mmlu`` -> ``mmlu_*``), from the results file of each date."""
    out: set[str] = set()
    for file in files:
        groups = _results(file).get("group_subtasks") or {}
        pending = [group]
        while pending:
            for sub in groups.get(pending.pop(), []) or []:
                if sub not in out:
                    out.add(sub)
                    pending.append(sub)
    return out


def _results(samples_file: Path) -> dict[str, Any]:
    match = FILE_RE.match(samples_file.name)
    if not match:
        return {}
    return read_json_object(samples_file.with_name(f"results_{match.group('date')}.json"))


def _lines(file: Path) -> list[tuple[int, dict[str, Any]]]:
    out = []
    try:
        with file.open(encoding="utf-8") as fh:
            for number, raw in enumerate(fh, start=1):
                if not raw.strip():
                    continue
                try:
                    line = json.loads(raw)
                except ValueError:
                    raise LogFormatError(f"{file}:{number}: not JSON; not an lm-eval samples "
                                         f"file") from None
                if not isinstance(line, dict) or any(k not in line for k in _REQUIRED):
                    raise LogFormatError(
                        f"{file}:{number}: not an lm-eval samples line (needs "
                        f"{', '.join(_REQUIRED)})")
                out.append((number, line))
    except UnicodeDecodeError:
        raise LogFormatError(f"{file}: not text; not an lm-eval samples file") from None
    if not out:
        raise LogFormatError(f"{file}: the samples file is empty")
    return out


def _choose_filter(lines: list[tuple[int, dict[str, Any]]], wanted: str | None,
                   file: Path) -> str:
    filters = list(dict.fromkeys(str(line.get("filter", "none")) for _, line in lines))
    if wanted is None:
        return filters[0]
    if wanted not in filters:
        raise LogFormatError(f"{file}: no filter {wanted!r} (it has {', '.join(filters)})")
    return wanted


def _metric(line: dict[str, Any], wanted: str | None, prefer: str | None, where: str) -> str:
    names = [str(m) for m in line.get("metrics") or []] or [
        k for k, v in line.items() if k not in _NOT_METRICS and isinstance(v, int | float)]
    if wanted is not None:
        if wanted not in names or wanted not in line:
            raise LogFormatError(f"{where}: no metric {wanted!r} (it has {', '.join(names)})")
        return wanted
    if prefer in names:
        return str(prefer)
    if not names or names[0] not in line:
        raise LogFormatError(f"{where}: the line holds no metric value")
    return names[0]


def _document(line: dict[str, Any], task: str, metric: str | None, *, multi: bool, where: str,
              notes: list[str]) -> tuple[Problem, list[SampleRecord]]:
    doc = line.get("doc") if isinstance(line.get("doc"), dict) else {}
    pid = f"{task}/{line['doc_id']}"
    subject = category_from(doc) or (task if multi else None)
    resps, filtered = line["resps"], line["filtered_resps"]
    if not isinstance(resps, list) or not resps or not isinstance(filtered, list):
        raise LogFormatError(f"{where}: resps / filtered_resps are not lists")
    args = line.get("arguments") if isinstance(line.get("arguments"), dict) else {}
    prompt = _arg(args, 0, 0)
    # generate_until logs its generation kwargs as the request's second argument; a
    # loglikelihood_rolling request has one argument and a (stringified) float response
    generated = not args or isinstance((args.get("gen_args_0") or {}).get("arg_1"), dict)
    if (generated and len(resps) == 1 and isinstance(resps[0], list)
            and all(isinstance(r, str) for r in resps[0])):
        return _generation(line, pid, subject, prompt, metric, where, notes)
    if len(resps) >= 2 and all(_is_loglikelihood(r) for r in resps):
        return _multiple_choice(line, pid, subject, prompt, metric, where)
    raise LogFormatError(f"{where}: responses of a shape ttc cannot import (loglikelihood_rolling "
                         f"and single-continuation loglikelihood tasks hold no answer to vote on)")


def _arg(args: Any, request: int, position: int) -> str:
    if not isinstance(args, dict):
        return ""
    value = (args.get(f"gen_args_{request}") or {}).get(f"arg_{position}")
    return value if isinstance(value, str) else ""


def _is_loglikelihood(resp: Any) -> bool:
    """``[[log-likelihood, is_greedy]]``; lm-eval's ``sanitize_list`` writes both as strings."""
    return (isinstance(resp, list) and len(resp) == 1 and isinstance(resp[0], list)
            and len(resp[0]) == 2 and _number(resp[0][0]) is not None)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number == number else None  # NaN is no log-likelihood


def _generation(line: dict[str, Any], pid: str, subject: str | None, prompt: str,
                metric: str | None, where: str,
                notes: list[str]) -> tuple[Problem, list[SampleRecord]]:
    texts: list[str] = line["resps"][0]
    filtered = line["filtered_resps"][0] if line["filtered_resps"] else None
    golds = _golds(str(line.get("target", "")))
    problem = Problem(id=pid, question=prompt, answer=golds[0], kind="math", subject=subject,
                      meta={"golds": golds} if len(golds) > 1 else {})
    if len(texts) == 1:
        name = _metric(line, metric, None, where)
        credit = credit_of(line[name], f"{where} metric {name}")
        answer = filtered[0] if isinstance(filtered, list) and filtered else filtered
        record = SampleRecord(problem_id=pid, budget=DEFAULT_BUDGET, sample_index=0,
                              status="ok", answer=_answer(answer), correct=credit >= 1.0,
                              text=texts[0], extra={"score": line[name], "metric": name})
        if 0.0 < credit < 1.0:
            record.extra["credit"] = credit
            notes.append("partial credit (0 < credit < 1) counts as incorrect; the credit is kept "
                         "in extra['credit']")
        return problem, [record]
    if metric is not None:  # not read for repeats, but a name the file lacks is a mistake
        _metric(line, metric, None, where)
    notes.append("lm-eval scores a document with repeats once, after its filter aggregates them; "
                 "each repeat was graded by ttc against the target")
    per_repeat = filtered if isinstance(filtered, list) and len(filtered) == len(texts) else None
    records = [
        SampleRecord(problem_id=pid, budget=DEFAULT_BUDGET, sample_index=i, status="ok",
                     answer=_answer(per_repeat[i]) if per_repeat else None, correct=None,
                     text=text)
        for i, text in enumerate(texts)
    ]
    return problem, records


def _golds(target: str) -> list[str]:
    """The gold answers in a ``target`` field: lm-eval writes ``str(doc_to_target(doc))``,
    and a template that renders a list (TriviaQA's and NQ-Open's aliases) comes back as a
    list, so the file holds "['Paris', 'paris']". Only a list of strings is read as
    several golds: "[1, 2]" may be an interval, and stays one answer."""
    text = target.strip()
    if len(text) > 2 and text[0] == "[" and text[-1] == "]":
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return [target]
        if (isinstance(value, list) and value
                and all(isinstance(v, str) and v.strip() for v in value)):
            return [v.strip() for v in value]
    return [target]


def _answer(value: Any) -> str | None:
    if value is None or isinstance(value, list | dict):
        return None
    text = str(value).strip()
    return text if text and text != "[invalid]" else None


def _multiple_choice(line: dict[str, Any], pid: str, subject: str | None, prompt: str,
                     metric: str | None, where: str) -> tuple[Problem, list[SampleRecord]]:
    args = line.get("arguments") or {}
    n = len(line["resps"])
    # the request's continuation is target_delimiter + choice; the delimiter is " " unless
    # a task sets another, and lm-eval measures the choice alone
    raw = [_arg(args, i, 1) for i in range(n)]
    raw = [c[1:] if c.startswith(" ") else c for c in raw]
    choices = [c.strip() for c in raw]
    lls = [float(r[0][0]) for r in line["resps"]]  # checked by _is_loglikelihood
    name = _metric(line, metric, "acc", where)
    # lm-eval's picks: acc the raw log-likelihood, acc_norm per character of the choice,
    # acc_bytes per UTF-8 byte (``ConfigurableTask.process_results``, multiple_choice)
    size = {"acc_norm": len, "acc_bytes": lambda c: len(c.encode("utf-8"))}.get(name)
    if size is not None:
        lls = [ll / max(1, size(c)) for c, ll in zip(raw, lls, strict=True)]
    pick = max(range(n), key=lambda i: lls[i])
    gold = _gold_letter(str(line.get("target", "")), choices)
    credit = credit_of(line[name], f"{where} metric {name}")
    problem = Problem(id=pid, question=prompt, answer=gold or str(line.get("target", "")),
                      kind="mcq" if gold else "math",
                      choices=tuple(choices) if gold else None, subject=subject)
    record = SampleRecord(problem_id=pid, budget=DEFAULT_BUDGET, sample_index=0, status="ok",
                          answer=letter(pick) if gold else choices[pick],
                          correct=credit >= 1.0, extra={"score": line[name], "metric": name})
    return problem, [record]


def _gold_letter(target: str, choices: list[str]) -> str | None:
    """lm-eval writes ``str(doc_to_target(doc))``: an index, a choice's text or a letter."""
    text = target.strip()
    if text.isdigit() and int(text) < len(choices):
        return letter(int(text))
    if text in choices:
        return letter(choices.index(text))
    if len(text) == 1 and text.upper() in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[: len(choices)]:
        return text.upper()
    return None
