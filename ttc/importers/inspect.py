"""inspect_ai logs (``.eval`` and ``.json``) through inspect_ai's own reader.

Each ``EvalSample`` is one (sample id, epoch): epochs become sample indices 0..E-1.
The score is the one scorer named by ``--score`` (default: the first scorer the log
lists), read with ``credit_of``; a dict-valued score takes the key named as
``--score SCORER:KEY``, else its only key, else the mean of its keys' credits. The
answer is the scorer's ``Score.answer`` (what the harness extracted); when a scorer
records none for any sample, ttc's extractor reads the completion
(``extra["answer_by"] = "ttc"``); a scorer that does record answers and records none
for one sample found no answer there, and that sample abstains.
Token usage is the sum of ``model_usage`` over models, reasoning tokens included.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ttc.errors import UserInputError
from ttc.importers.base import (
    DEFAULT_BUDGET,
    ImportedLog,
    LogFormatError,
    category_from,
    check_unique,
    credit_of,
    one_line,
    task_matches,
)
from ttc.problems import LETTERS, Problem
from ttc.store import SampleRecord

__all__ = ["read_inspect"]

SUFFIXES = (".eval", ".json")
KNOWN_VERSIONS = (1, 2)
_EXCLUDE = {"events", "store", "attachments", "messages"}  # big, and nothing we keep


def read_inspect(path: Path, *, task: str | None = None, score: str | None = None) -> ImportedLog:
    """Read one inspect_ai log (or the one log in a folder matching ``task``)."""
    try:
        from inspect_ai.log import read_eval_log
    except ImportError:
        raise UserInputError(
            "importing inspect_ai logs needs inspect_ai: pip install 'ttc[inspect]'"
        ) from None
    file = _pick_file(path, task, read_eval_log)
    log = _read(file, read_eval_log, header_only=False)
    spec = log.eval
    if task is not None and not task_matches(task, spec.task, spec.task_registry_name,
                                             spec.task_display_name):
        raise LogFormatError(f"{file}: task {task!r} is not in this log (it holds {spec.task!r})")
    if not log.samples:
        raise LogFormatError(f"{file}: the log holds no samples (status {log.status}; "
                             f"was it written with --no-log-samples?)")
    scorer, key = _choose_scorer(log, score, file)
    # a scorer that never records an answer (model-graded, includes) leaves voting to ttc's
    # extractor; one that does records None exactly when it found no answer: an abstention
    answers_recorded = any(
        (s.scores or {}).get(scorer) is not None and s.scores[scorer].answer not in (None, "")
        for s in log.samples
    )
    config = spec.model_generate_config
    budget = (str(config.reasoning_tokens) if getattr(config, "reasoning_tokens", None)
              else str(getattr(config, "reasoning_effort", None) or DEFAULT_BUDGET))
    problems: dict[str, Problem] = {}
    original: dict[str, Any] = {}
    records: list[SampleRecord] = []
    notes: list[str] = []
    for sample in log.samples:
        pid = str(sample.id)
        if pid not in problems:
            problems[pid], original[pid] = _problem(sample), sample.id
        elif original[pid] != sample.id:  # inspect_ai ids are int | str: 7 and "7" differ
            raise LogFormatError(f"{file}: sample ids {original[pid]!r} and {sample.id!r} are "
                                 f"two samples in inspect_ai but both become problem {pid!r}")
        records.append(_record(sample, problems[pid], budget, (scorer, key, answers_recorded),
                               file, notes))
    check_unique(records, file)
    if log.status != "success":
        notes.append(f"the log's status is {log.status!r}: {len(records)} samples were present")
    model = {"name": spec.model, "harness": "inspect",
             "generate_config": config.model_dump(exclude_none=True, mode="json")}
    return ImportedLog(
        harness="inspect", harness_version=spec.packages.get("inspect_ai"), task=spec.task,
        model=model, budget=budget, problems=list(problems.values()), samples=records,
        sources=[file], score=f"{scorer}:{key}" if key else scorer, notes=sorted(set(notes)),
    )


def _read(file: Path, reader: Any, *, header_only: bool) -> Any:
    try:
        try:
            log = reader(file, header_only=header_only, exclude_fields=_EXCLUDE)
        except TypeError:  # inspect_ai before exclude_fields
            log = reader(file, header_only=header_only)
    except Exception as exc:  # noqa: BLE001 - any failure of a foreign reader is "not a log"
        raise LogFormatError(f"{file}: not an inspect_ai log ({one_line(exc)})") from None
    if getattr(log, "version", None) not in KNOWN_VERSIONS:
        raise LogFormatError(f"{file}: inspect_ai log format version {log.version!r} is not "
                             f"one ttc knows ({', '.join(map(str, KNOWN_VERSIONS))})")
    return log


def _pick_file(path: Path, task: str | None, reader: Any) -> Path:
    if not path.exists():
        raise UserInputError(f"{path}: no such file or directory")
    if path.is_file():
        if path.suffix not in SUFFIXES:
            raise LogFormatError(f"{path}: not an inspect_ai log (expected a .eval or .json file)")
        return path
    logs = sorted(p for p in path.iterdir() if p.suffix in SUFFIXES and p.is_file())
    if task is not None:
        logs = [p for p in logs if _header_task_matches(p, task, reader)]
    if len(logs) != 1:
        what = f"for task {task!r} " if task else ""
        found = ", ".join(p.name for p in logs[:5]) or "none"
        raise LogFormatError(f"{path}: expected one inspect_ai log {what}in the folder, found "
                             f"{len(logs)} ({found}); name the file")
    return logs[0]


def _header_task_matches(file: Path, task: str, reader: Any) -> bool:
    try:
        spec = reader(file, header_only=True).eval
    except Exception:  # noqa: BLE001 - a folder may hold other .json files
        return False
    return task_matches(task, spec.task, spec.task_registry_name, spec.task_display_name)


def _choose_scorer(log: Any, score: str | None, file: Path) -> tuple[str, str | None]:
    names: list[str] = []
    for sample in log.samples:
        for name in sample.scores or {}:
            if name not in names:
                names.append(name)
    if not names:
        raise LogFormatError(f"{file}: no sample in the log was scored")
    if score is None:
        return names[0], None
    if score in names:
        return score, None
    scorer, _, key = score.rpartition(":")
    if scorer in names and key:
        return scorer, key
    raise LogFormatError(f"{file}: no scorer {score!r} in the log (it has {', '.join(names)})")


def _problem(sample: Any) -> Problem:
    targets = [sample.target] if isinstance(sample.target, str) else list(sample.target)
    gold = str(targets[0]) if targets else ""
    choices = tuple(str(c) for c in sample.choices) if sample.choices else None
    mcq = (choices is not None and len(choices) <= len(LETTERS)
           and gold.strip().upper() in LETTERS[: len(choices)] and len(gold.strip()) == 1)
    meta: dict[str, Any] = {"golds": [str(t) for t in targets]} if len(targets) > 1 else {}
    return Problem(
        id=str(sample.id), question=_text(sample.input), answer=gold.strip().upper() if mcq
        else gold, kind="mcq" if mcq else "math", choices=choices if mcq else None,
        subject=category_from(sample.metadata), meta=meta,
    )


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return "\n".join(str(getattr(m, "text", "")) for m in value)


def _record(sample: Any, problem: Problem, budget: str,
            chosen: tuple[str, str | None, bool], file: Path, notes: list[str]) -> SampleRecord:
    scorer, key, answers_recorded = chosen
    where = f"{file}: sample {sample.id!r} epoch {sample.epoch}"
    output = sample.output
    text = output.completion if output is not None else None
    usage = _usage(sample)
    thinking = _thinking(output)
    base = SampleRecord(
        problem_id=problem.id, budget=budget, sample_index=int(sample.epoch) - 1, status="ok",
        text=text or None, thinking=thinking, input_tokens=usage["input"],
        output_tokens=usage["output"], thinking_tokens=usage["reasoning"],
        stop_reason=_stop_reason(output), response_id=sample.uuid,
        latency_s=sample.total_time, attempts=1 + len(sample.error_retries or []),
        cost=usage["cost"],
    )
    if usage["reasoning"] == 0 and thinking:
        from ttc.providers.base import estimate_tokens

        base.thinking_tokens, base.thinking_estimated = estimate_tokens(thinking), True
    if sample.epoch < 1:
        raise LogFormatError(f"{where}: epoch {sample.epoch} (inspect_ai counts from 1)")
    if sample.error is not None:
        base.status, base.error = "failed", one_line(getattr(sample.error, "message", sample.error))
        notes.append("samples that errored in inspect_ai are stored as failed (never counted)")
        return base
    found = (sample.scores or {}).get(scorer)
    if found is None:
        base.status, base.error = "failed", f"not scored by {scorer}"
        notes.append(f"samples without a {scorer} score are stored as failed")
        return base
    value = found.value
    if isinstance(value, dict):
        value = _dict_value(value, key, where, notes)
    credit = credit_of(value, where)
    noanswer = isinstance(found.value, str) and found.value.strip().upper() == "N"
    answer = None if noanswer else (str(found.answer) if found.answer not in (None, "") else None)
    if answer is None and not answers_recorded and not noanswer and text:
        from ttc.grading import extract_answer

        answer = extract_answer(text, problem.kind)
        base.extra["answer_by"] = "ttc"
    base.answer, base.correct = answer, credit >= 1.0
    base.extra["score"] = found.value if not isinstance(found.value, dict) else dict(found.value)
    if 0.0 < credit < 1.0:
        base.extra["credit"] = credit
        notes.append("partial credit (0 < credit < 1) counts as incorrect; the credit is kept "
                     "in extra['credit']")
    if _limited(sample, output):
        base.status = "censored"
    return base


def _dict_value(value: dict[str, Any], key: str | None, where: str, notes: list[str]) -> Any:
    if key is not None:
        if key not in value:
            raise LogFormatError(f"{where}: the score has no key {key!r} "
                                 f"(it has {', '.join(map(str, value))})")
        return value[key]
    if len(value) == 1:
        return next(iter(value.values()))
    notes.append(f"dict-valued scores ({', '.join(map(str, value))}) count as the mean of their "
                 f"credits; name one with --score SCORER:KEY")
    credits = [credit_of(v, f"{where} key {k!r}") for k, v in value.items()]
    return sum(credits) / len(credits)


def _limited(sample: Any, output: Any) -> bool:
    """The output was cut by a token limit: censored, as a sweep's truncated sample is."""
    limit = getattr(sample, "limit", None)
    if limit is not None and getattr(limit, "type", None) == "token":
        return True
    return _stop_reason(output) == "max_tokens"


def _stop_reason(output: Any) -> str | None:
    """``ModelOutput.stop_reason`` reads the first choice; an errored sample has none."""
    if output is None or not output.choices:
        return None
    return str(output.choices[0].stop_reason)


def _usage(sample: Any) -> dict[str, Any]:
    usages = list((sample.model_usage or {}).values())
    if not usages and sample.output is not None and sample.output.usage is not None:
        usages = [sample.output.usage]
    total = {"input": 0, "output": 0, "reasoning": 0, "cost": 0.0}
    for u in usages:
        total["input"] += (u.input_tokens or 0) + (u.input_tokens_cache_read or 0) + (
            u.input_tokens_cache_write or 0)
        total["output"] += u.output_tokens or 0
        total["reasoning"] += u.reasoning_tokens or 0
        total["cost"] += u.total_cost or 0.0
    return total


def _thinking(output: Any) -> str | None:
    if output is None or not output.choices:  # an errored sample has no choices
        return None
    content = getattr(output.choices[0].message, "content", None)
    if not isinstance(content, list):
        return None
    # a redacted block's ``reasoning`` is an opaque blob: only its summary is text
    parts = [str((getattr(c, "summary", None) if getattr(c, "redacted", False)
                  else getattr(c, "reasoning", None)) or "")
             for c in content if getattr(c, "type", None) == "reasoning"]
    text = "\n".join(p for p in parts if p)
    return text or None
