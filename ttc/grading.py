"""Answer extraction, equivalence and clustering: the grader every TTC curve rests on.

A vote that splits ``"0.5"`` from ``"\\frac{1}{2}"`` or a grader that hangs on ``9^9^9^9``
bends every figure, so grading has three layers (docs/grading.md has the full rules):

1. ``extract_answer`` pulls the final committed answer out of a response (``None`` is an
   abstention, never ``""``); ``ttc._grading_extract``.
2. A synchronous fast path decides pairs of integers, decimals, fractions, mixed numbers,
   letters and anything equal after a cheap normalisation (``canonical``, in
   ``ttc._grading_canon``); it never touches sympy and is cheap enough for the sampler's
   event loop.
3. Everything else goes to math-verify in one long-lived worker process
   (``ttc._grading_worker``) with a wall-time limit and a memory limit; on a timeout the
   worker is killed and restarted, and the pair counts as not equivalent. Verdicts are
   cached, so regrading and voting pay for each distinct pair once.

One relation serves grading and voting: ``is_equivalent`` is symmetric, numbers follow one
tolerance rule on both paths (``numbers_equal``), and ``cluster_answers`` returns the
connected components of ``is_equivalent`` over the answers it is given
(``ttc._grading_cluster``), so two answers graded equal always vote together, whatever
the order of the answers.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import select
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from ttc._grading_canon import (
    MIN_SIGNIFICANT_DIGITS,
    Number,
    based_numerals,
    canonical,
    number,
    numbers_equal,
)
from ttc._grading_cluster import find, union, union_numbers
from ttc._grading_extract import EXTRACT_TAIL_CHARS, MAX_ANSWER_CHARS, extract_answer, last_boxed
from ttc.problems import LETTERS, Kind, Problem

__all__ = [
    "EXTRACT_TAIL_CHARS",
    "GRADER_VERSION",
    "MAX_ANSWER_CHARS",
    "MIN_SIGNIFICANT_DIGITS",
    "Grader",
    "canonical",
    "cluster_answers",
    "decided_in_process",
    "default_grader",
    "extract_answer",
    "grade",
    "is_equivalent",
    "last_boxed",
    "numeric_value",
]

GRADER_VERSION = "3"
"""Bumped whenever a verdict can change (extraction, canonical forms, tolerance, worker);
stored with each sample so stale verdicts are detectable and ``ttc grade`` can redo them."""
_MAX_DEPTH = 40


def numeric_value(canon: str) -> Fraction | None:
    """The exact value of a canonical integer, decimal or simple fraction, else None."""
    found = number(canon)
    return found.value if found is not None else None


def decided_in_process(answer: str, gold: str) -> bool:
    """Whether ``is_equivalent`` settles this math pair on its fast path, without the worker.

    Callers on an event loop use it to grade inline and send only symbolic pairs to a
    thread.
    """
    if len(answer) > MAX_ANSWER_CHARS or len(gold) > MAX_ANSWER_CHARS:
        return True  # refused without parsing
    ca, cg = canonical(answer), canonical(gold)
    if not ca or not cg or ca == cg:
        return True
    if number(ca) is not None and number(cg) is not None:
        return True
    return based_numerals(ca) != based_numerals(cg)


_LETTER_WRAP_RE = re.compile(r"\\(?:boxed|text|textbf|fbox)\s*\{([^{}]*)\}")


def _letter(answer: str) -> str:
    s = _LETTER_WRAP_RE.sub(r"\1", answer) if "\\" in answer else answer
    return s.strip().strip("().*$ ").upper()


_BIG_EXPONENT_RE = re.compile(r"\^\s*\{?\s*\d{5,}|\d{5,}\s*!|!\s*!")
_TOWER_RE = re.compile(r"\^[\w.\\]*\^[\w.\\]*\^")


def _too_hostile(answer: str) -> bool:
    """Answers no grader should parse: huge, nested deeper than any real answer, or
    arithmetic bombs (power towers three high, exponents >= 10^4, huge factorials) that
    would only burn the worker's time limit and force a restart."""
    if len(answer) > MAX_ANSWER_CHARS or _BIG_EXPONENT_RE.search(answer):
        return True
    depth = deepest = 0
    for ch in answer:
        if ch in "{([":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "})]":
            depth -= 1
    flat = re.sub(r"[{}\s]", "", answer)  # 9^{9^{9}} -> 9^9^9
    return deepest > _MAX_DEPTH or _TOWER_RE.search(flat) is not None


# ------------------------------------------------------------------ the grader


class Grader:
    """Holds the verdict cache and the math-verify worker process.

    ``time_limit_s`` bounds one symbolic comparison (the worker is killed past it);
    ``cache_size`` bounds the verdict cache; ``number_fallback`` is passed to
    ``extract_answer`` by ``grade``. Safe to share between threads.
    """

    def __init__(
        self, *, time_limit_s: float = 1.0, cache_size: int = 200_000, number_fallback: bool = True
    ) -> None:
        self.time_limit_s = time_limit_s
        self.cache_size = cache_size
        self.number_fallback = number_fallback
        self._cache: OrderedDict[tuple[str, str], bool] = OrderedDict()
        self._lock = threading.RLock()
        self._process: subprocess.Popen[bytes] | None = None
        self._buffer = b""
        self._ready = False
        self._pid = os.getpid()
        self.stats = {
            "fast": 0,
            "cached": 0,
            "worker": 0,
            "timeouts": 0,
            "starts": 0,
            "cluster_failures": 0,
        }

    # -- worker lifecycle
    def _start(self) -> None:
        package_root = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        self._process = subprocess.Popen(
            [sys.executable, "-m", "ttc._grading_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            close_fds=True,
        )
        self._buffer = b""
        self._ready = False
        self.stats["starts"] += 1

    def _kill(self) -> None:
        process, self._process = self._process, None
        self._ready = False
        if process is not None:
            with contextlib.suppress(Exception):
                process.kill()
                process.wait(timeout=2)
            for stream in (process.stdin, process.stdout):
                with contextlib.suppress(Exception):
                    if stream is not None:
                        stream.close()

    def warm_up(self) -> None:
        """Start the worker now (without waiting), so the first symbolic check is not slow."""
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                self._kill()
                self._start()

    def close(self) -> None:
        """Stop the worker; a later symbolic check starts a new one."""
        with self._lock:
            self._kill()

    def _read_line(self, deadline: float) -> bytes | None:
        """One reply line from the worker, or None past ``deadline`` or at end of file."""
        assert self._process is not None and self._process.stdout is not None
        fd = self._process.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def _ask(self, request: list[Any], limit_s: float, worker_budget_s: float | None = None) -> Any:
        """Send one request; None on timeout or worker death (the worker is restarted).

        The worker stops itself after ``worker_budget_s`` (default 90% of ``limit_s``);
        past ``limit_s`` the parent kills it, for work that ignores signals.
        """
        with self._lock:
            if self._pid != os.getpid():  # forked: the handles belong to the parent
                self._process = None
                self._pid = os.getpid()
            if self._process is None or self._process.poll() is not None:
                self._kill()
                self._start()
            process = self._process
            assert process is not None and process.stdin is not None
            try:
                if not self._ready:
                    if self._read_line(time.monotonic() + 60.0) is None:
                        raise OSError("grading worker did not start")
                    self._ready = True
                budget = worker_budget_s if worker_budget_s is not None else limit_s * 0.9
                request = [request[0], max(0.05, budget), *request[1:]]
                process.stdin.write(json.dumps(request).encode() + b"\n")
                process.stdin.flush()
                line = self._read_line(time.monotonic() + limit_s)
                if line is not None:
                    return json.loads(line)
                self.stats["timeouts"] += 1
            except (OSError, ValueError):
                pass
            self._kill()
            self._start()  # warm up the replacement while the caller moves on
            return None

    # -- public operations
    def is_equivalent(self, pred: str | None, gold: str, kind: Kind) -> bool:
        """Whether ``pred`` states the same answer as ``gold`` (None is never equivalent).

        Symmetric: ``is_equivalent(a, b) == is_equivalent(b, a)`` for math and letters.
        """
        if pred is None or not pred.strip():
            return False
        if kind == "mcq":
            self.stats["fast"] += 1
            return _letter(pred) == _letter(gold) != ""
        if len(pred) > MAX_ANSWER_CHARS or len(gold) > MAX_ANSWER_CHARS:
            return False  # not an answer; and keeps normalisation cost bounded
        cp, cg = canonical(pred), canonical(gold)
        if not cp or not cg:
            return False
        if cp == cg:
            self.stats["fast"] += 1
            return True
        np_, ng = number(cp), number(cg)
        if np_ is not None and ng is not None:
            self.stats["fast"] += 1
            return numbers_equal(np_, ng)
        if based_numerals(cp) != based_numerals(cg):
            self.stats["fast"] += 1
            return False  # 52_8 is not 52_9, nor 52
        if _too_hostile(pred) or _too_hostile(gold):
            return False
        key = (cp, cg) if cp < cg else (cg, cp)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                self.stats["cached"] += 1
                return self._cache[key]
        self.stats["worker"] += 1
        reply = self._ask(["verify", key[0], key[1]], self.time_limit_s)
        if reply is None:  # timed out or failed: False now, but not remembered
            return False
        verdict = reply is True
        with self._lock:
            self._cache[key] = verdict
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return verdict

    def grade(
        self, text: str | None, problem: Problem, order: tuple[int, ...] | None = None
    ) -> tuple[str | None, bool]:
        """Extract, map an MCQ letter back to source order, and compare with the gold."""
        answer = extract_answer(text, problem.kind, number_fallback=self.number_fallback)
        if answer is None:
            return None, False
        if problem.kind == "mcq":
            n = len(problem.choices or ())
            shown = order if order is not None else tuple(range(n))
            letter = _letter(answer)
            index = LETTERS.find(letter) if len(letter) == 1 else -1
            if index < 0 or index >= len(shown):
                return None, False
            source = LETTERS[shown[index]]
            return source, source == problem.answer.strip().upper()
        return answer, self.is_equivalent(answer, problem.answer, "math")

    def cluster_answers(self, answers: Sequence[str | None], kind: Kind) -> list[int | None]:
        """Equivalence-class ids (first-seen order) for voting; None stays None.

        The classes are the connected components of ``is_equivalent`` over ``answers``:
        any two answers it calls equal share a class, and the partition does not depend
        on the order of ``answers``. Tolerance matches are not transitive, so an answer
        equal to two answers that differ from each other joins them (docs/grading.md).
        """
        keys: list[str | None] = []
        for answer in answers:
            if answer is None or not answer.strip():
                keys.append(None)
            elif kind == "mcq":
                keys.append(_letter(answer))
            elif len(answer) > MAX_ANSWER_CHARS:
                keys.append("\x00" + answer)  # never equivalent; identical ones vote together
            else:
                keys.append(canonical(answer) or None)
        distinct = list(dict.fromkeys(k for k in keys if k is not None))
        position = {key: i for i, key in enumerate(distinct)}
        parent = list(range(len(distinct)))
        if kind == "math" and len(distinct) > 1:
            numbers = {i: n for i, k in enumerate(distinct) if (n := number(k)) is not None}
            union_numbers(numbers, parent)
            if len(numbers) < len(distinct):
                self._union_symbolic(distinct, numbers, parent)
        renumber: dict[int, int] = {}
        return [
            None if key is None else renumber.setdefault(find(parent, position[key]), len(renumber))
            for key in keys
        ]

    def _union_symbolic(
        self, distinct: list[str], numbers: dict[int, Number], parent: list[int]
    ) -> None:
        """Merge classes the worker finds equivalent, in one request for the whole set."""
        safe = [
            i
            for i, text in enumerate(distinct)
            if not text.startswith("\x00") and not _too_hostile(text)
        ]
        if len(safe) < 2 or all(i in numbers for i in safe):
            return
        limit = min(30.0, self.time_limit_s * 2 + 0.05 * len(safe))
        ids = self._ask(
            ["cluster", [distinct[i] for i in safe], [i in numbers for i in safe]], limit
        )
        if not isinstance(ids, list) or len(ids) != len(safe):
            self.stats["cluster_failures"] += 1
            return  # timed out: classes stay as the fast path found them
        first: dict[int, int] = {}
        for position, i in enumerate(safe):
            union(parent, i, safe[first.setdefault(ids[position], position)])


_default: Grader | None = None
_default_lock = threading.Lock()


def default_grader() -> Grader:
    """The process-wide grader behind the module functions (created on first use)."""
    global _default
    if _default is not None:  # every graded sample asks: no lock once it exists
        return _default
    with _default_lock:
        if _default is None:
            _default = Grader()
            atexit.register(_default.close)
        return _default


def is_equivalent(pred: str | None, gold: str, kind: Kind) -> bool:
    """Whether ``pred`` states the same answer as ``gold``; see ``Grader.is_equivalent``."""
    return default_grader().is_equivalent(pred, gold, kind)


def grade(
    text: str | None, problem: Problem, order: tuple[int, ...] | None = None
) -> tuple[str | None, bool]:
    """(answer in source form, correct) for one response; see ``Grader.grade``."""
    return default_grader().grade(text, problem, order)


def cluster_answers(answers: Sequence[str | None], kind: Kind) -> list[int | None]:
    """Equivalence classes for voting; see ``Grader.cluster_answers``."""
    return default_grader().cluster_answers(answers, kind)
