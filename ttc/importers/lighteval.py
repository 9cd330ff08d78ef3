"""lighteval details: ``details_<task>_<date>.parquet``, one row per document.

The layout is lighteval's own (``src/lighteval/logging/evaluation_tracker.py::save``
writes ``Dataset.from_list(asdict(Detail))`` with columns sorted; ``Detail`` in
``logging/info_loggers.py`` holds ``doc`` (a ``Doc``: ``query``, ``choices``,
``gold_index``, ``id``, ``task_name``, ``specific``, ``num_samples`` ...),
``model_response`` (a ``ModelResponse``: ``text``, ``text_post_processed``,
``reasonings``, ``logprobs``, ``input_tokens``, ``output_tokens`` ...) and ``metric``
(metric name -> value)). The results file ``results/<model>/results_<date>.json``
beside the ``details/`` folder names the model.

* Log-likelihood multiple choice (``logprobs`` per choice, no text): the answer is the
  letter of the highest log-probability, the correctness the metric.
* Generation with one sample: the metric is the correctness; lighteval keeps its
  extracted answer inside the metric, so ttc's extractor reads the text for voting.
* Generation with N > 1 samples (``num_samples``): lighteval's metrics score the
  document (``maj@n``, ``pass@k``), not each sample, so ttc grades each sample against
  the gold choice.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ttc.errors import UserInputError
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
    one_line,
    read_json_object,
)
from ttc.problems import Problem
from ttc.store import SampleRecord

__all__ = ["read_lighteval"]

FILE_RE = re.compile(rf"^details_(?P<task>.+)_{LOG_DATE}\.parquet$")
_COLUMNS = ("doc", "model_response", "metric")
_OLD_COLUMNS = ("example", "predictions", "metrics")


def read_lighteval(path: Path, *, task: str | None = None,
                   score: str | None = None) -> ImportedLog:
    """Read one details parquet file, or every details file of one evaluation in a folder."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise UserInputError(
            "importing lighteval details needs pyarrow: pip install 'ttc[parquet]'"
        ) from None
    files = _pick_files(path, task)
    problems: list[Problem] = []
    records: list[SampleRecord] = []
    notes: list[str] = []
    names = []
    for file in files:
        rows = _rows(file, pq)
        name = _task_name(file, rows)
        names.append(name)
        for i, row in enumerate(rows):
            problem, samples = _document(row, i, name, score, multi=len(files) > 1,
                                         where=f"{file}: row {i}", notes=notes)
            problems.append(problem)
            records.extend(samples)
    check_unique(records, path)
    if not records:
        raise LogFormatError(f"{path}: the details hold no documents")
    results = _results(files[0])
    general = results.get("config_general") or {}
    model_name = str(general.get("model_name") or _model_from_path(files[0]) or "unknown")
    sha = general.get("lighteval_sha")
    return ImportedLog(
        harness="lighteval", harness_version=sha if sha and sha != "?" else None,
        task=task or ",".join(names), model={"name": model_name, "harness": "lighteval"},
        budget=DEFAULT_BUDGET, problems=problems, samples=records, sources=files, score=score,
        notes=sorted(set(notes)),
    )


def _task_name(file: Path, rows: list[dict[str, Any]]) -> str:
    match = FILE_RE.match(file.name)
    if match:
        return match.group("task")
    doc = rows[0].get("doc") or {}
    return str(doc.get("task_name") or file.stem)


def _pick_files(path: Path, task: str | None) -> list[Path]:
    return log_files(path, FILE_RE, "lighteval details_<task>_<date>.parquet", task)


def _rows(file: Path, pq: Any) -> list[dict[str, Any]]:
    try:
        table = pq.read_table(file)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for "not parquet"
        raise LogFormatError(f"{file}: not a lighteval details file ({one_line(exc)})") from None
    columns = set(table.column_names)
    if all(c in columns for c in _COLUMNS):
        rows: list[dict[str, Any]] = table.to_pylist()
        if not rows:
            raise LogFormatError(f"{file}: the details file is empty")
        return rows
    if all(c in columns for c in _OLD_COLUMNS):
        raise LogFormatError(f"{file}: lighteval details in the older layout (example / "
                             f"predictions / metrics columns) are not supported; "
                             f"re-save with lighteval >= 0.11")
    raise LogFormatError(f"{file}: not a lighteval details file (columns "
                         f"{', '.join(sorted(columns)[:6])}; expected doc, model_response, metric)")


def _document(row: dict[str, Any], index: int, task: str, score: str | None, *, multi: bool,
              where: str, notes: list[str]) -> tuple[Problem, list[SampleRecord]]:
    doc, response = row.get("doc") or {}, row.get("model_response") or {}
    metric = row.get("metric") or {}
    if not isinstance(doc, dict) or not isinstance(response, dict) or not isinstance(metric, dict):
        raise LogFormatError(f"{where}: doc / model_response / metric are not records")
    pid = f"{task}/{doc.get('id') or index}"
    choices = [str(c) for c in doc.get("choices") or []]
    golds = doc.get("gold_index")
    gold_ix = [int(g) for g in (golds if isinstance(golds, list) else [golds]) if g is not None]
    subject = category_from(doc.get("specific")) or (task if multi else None)
    query = str(doc.get("query") or "")
    logprobs = response.get("logprobs") or []
    texts = response.get("text_post_processed") or response.get("text") or []
    if logprobs and not texts and len(logprobs) == len(choices) >= 2 and gold_ix:
        problem = Problem(id=pid, question=query, answer=letter(gold_ix[0]), kind="mcq",
                          choices=tuple(choices), subject=subject)
        name = _metric(metric, score, where)
        credit = credit_of(metric[name], f"{where} metric {name}")
        pick = max(range(len(logprobs)), key=lambda i: float(logprobs[i]))
        return problem, [SampleRecord(problem_id=pid, budget=DEFAULT_BUDGET, sample_index=0,
                                      status="ok", answer=letter(pick), correct=credit >= 1.0,
                                      extra={"score": metric[name], "metric": name})]
    if not texts:
        raise LogFormatError(f"{where}: neither generations nor per-choice log-probabilities")
    gold_texts = [choices[g] for g in gold_ix if 0 <= g < len(choices)]
    problem = Problem(id=pid, question=query, answer=gold_texts[0] if gold_texts else "",
                      kind="math", subject=subject,
                      meta={"golds": gold_texts} if len(gold_texts) > 1 else {})
    inputs = len(response.get("input_tokens") or [])
    outputs = response.get("output_tokens") or []
    reasonings = response.get("reasonings") or []
    records = []
    for i, text in enumerate(texts):
        thinking = reasonings[i] if i < len(reasonings) and reasonings[i] else None
        record = SampleRecord(
            problem_id=pid, budget=DEFAULT_BUDGET, sample_index=i, status="ok",
            text=str(text), thinking=thinking, input_tokens=inputs,
            output_tokens=len(outputs[i]) if i < len(outputs) and outputs[i] else 0,
        )
        if thinking:
            from ttc.providers.base import estimate_tokens

            record.thinking_tokens, record.thinking_estimated = estimate_tokens(thinking), True
        records.append(record)
    if len(records) == 1:
        from ttc.grading import extract_answer

        name = _metric(metric, score, where)
        credit = credit_of(metric[name], f"{where} metric {name}")
        records[0].answer = extract_answer(records[0].text, "math")
        records[0].correct = credit >= 1.0
        records[0].extra = {"score": metric[name], "metric": name, "answer_by": "ttc"}
        if 0.0 < credit < 1.0:
            records[0].extra["credit"] = credit
            notes.append("partial credit (0 < credit < 1) counts as incorrect; the credit is "
                         "kept in extra['credit']")
        notes.append("lighteval keeps its extracted answers inside its metrics: the answers "
                     "that votes count are ttc's extraction from the text")
    else:
        if score is not None:  # not read here, but a name the row lacks is a mistake
            _metric(metric, score, where)
        notes.append("lighteval scores a document with several samples once (maj@n, pass@k); "
                     "each sample was graded by ttc against the gold choice")
    return problem, records


def _metric(metric: dict[str, Any], wanted: str | None, where: str) -> str:
    present = [k for k, v in metric.items() if v is not None]
    if wanted is not None:
        if wanted not in present:
            raise LogFormatError(f"{where}: no metric {wanted!r} (it has {', '.join(present)})")
        return wanted
    if not present:
        raise LogFormatError(f"{where}: the row holds no metric value")
    return present[0]


def _model_from_path(file: Path) -> str | None:
    """``details/<model name, may hold a slash>/<date>/details_*.parquet``."""
    parts = file.parts
    if "details" not in parts[:-2]:
        return None
    start = len(parts) - 1 - parts[::-1].index("details")
    name = "/".join(parts[start + 1 : -2])
    return name or None


def _results(file: Path) -> dict[str, Any]:
    match = FILE_RE.match(file.name)
    model = _model_from_path(file)
    if not match or model is None:
        return {}
    parts = file.parts
    root = Path(*parts[: len(parts) - 1 - parts[::-1].index("details")])
    return read_json_object(root / "results" / model / f"results_{match.group('date')}.json")
