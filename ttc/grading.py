"""Answer extraction, equivalence and clustering: the grader every TTC curve rests on.

A vote that splits ``"0.5"`` from ``"\\frac{1}{2}"`` or a grader that hangs on ``9^9^9^9``
bends every figure, so grading has three layers:

1. ``extract_answer`` pulls the final committed answer out of a response (``None`` is an
   abstention, never ``""``).
2. A synchronous fast path decides integers, decimals, simple fractions and letters after a
   cheap normalisation (``$``, ``10{,}000``, ``\\dfrac``, units, ``\\left(``); it never
   touches sympy and runs at hundreds of thousands of answers per second.
3. Everything else goes to math-verify in one long-lived worker process
   (``ttc._grading_worker``) with a wall-time limit and a memory limit; on a timeout the
   worker is killed and restarted, and the pair counts as not equivalent. Verdicts are
   cached, so regrading and voting pay for each distinct pair once.

The module functions delegate to a process-wide default ``Grader``. Calls block the caller
for at most about ``time_limit_s`` (the worker path); the fast path is cheap enough to call
from the sampler's event loop.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
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

from ttc.problems import LETTERS, Kind, Problem

__all__ = [
    "EXTRACT_TAIL_CHARS",
    "MAX_ANSWER_CHARS",
    "Grader",
    "canonical",
    "decided_in_process",
    "cluster_answers",
    "default_grader",
    "extract_answer",
    "grade",
    "is_equivalent",
    "last_boxed",
    "numeric_value",
]

EXTRACT_TAIL_CHARS = 20_000
"""Only the last 20k characters of an output are searched for its final answer."""
MAX_ANSWER_CHARS = 1000
"""Longer extracted answers are never sent to the symbolic checker (they are not answers)."""
_MAX_DEPTH = 40
_MAX_DIGITS = 200

# ------------------------------------------------------------------ extraction

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BOX_BARE_RE = re.compile(r"\\boxed\s+([^\s$\\{}]+)")
# Possessive quantifiers (*+, ?+) and no newline-spanning runs: model output is
# hostile, and back-to-back optional whitespace runs backtrack quadratically or worse.
_FINAL_RE = re.compile(
    r"(?:final answer|the answer)\s*+(?:is|=|:)[\s:]*+(.+?)(?=\n|\.\s|\.$|$)",
    re.IGNORECASE,
)
_ANSWER_LINE_RE = re.compile(r"^[ \t*#>_]*+answer[ \t*]*+:[ \t*]*+(.+)$", re.I | re.M)
_NUMBER_RE = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+)?(?!\d)|-?\.\d+")
_MCQ_COMMIT_RE = re.compile(
    r"\\(?:boxed|fbox)\s*+\{\s*+(?:\\text(?:bf)?\s*+\{\s*+)?+\(?([A-Z])\)?(?![A-Za-z])"
    r"|answer\s*+(?:is|:|=)?+\s*+(?:option|choice)?+[\s:*_$]*+\(?\s*+([A-Z])(?:\s*+\))?"
    r"(?![A-Za-z'])",
    re.IGNORECASE,
)
_MCQ_PAREN_RE = re.compile(r"\(([A-Z])\)")
_MCQ_ALONE_RE = re.compile(r"^\W*\(?([A-Z])\)?\W*$")


def _braced(text: str, start: int) -> str | None:
    """Content of the brace group opening at ``text[start - 1]``; None if unbalanced."""
    depth = 1
    i = start
    end = min(len(text), start + 20 * MAX_ANSWER_CHARS)
    while i < end:
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[start:i]
        i += 1
    return None


def last_boxed(text: str) -> str | None:
    """Content of the last complete ``\\boxed{}``/``\\fbox{}`` in ``text`` (nested braces)."""
    starts = [m.end() for m in _BOX_RE.finditer(text)]
    for start in reversed(starts[-8:]):
        content = _braced(text, start)
        if content is not None and content.strip():
            return content
    bare = _BOX_BARE_RE.findall(text)
    return bare[-1] if bare else None


def _clean(answer: str) -> str | None:
    """Strip the wrapping a model puts around an answer; None when nothing is left."""
    s = answer.strip()
    for _ in range(3):
        before = s
        s = s.strip().rstrip(".").strip()
        s = re.sub(r"^\*\*(.*)\*\*$", r"\1", s)
        for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
            if s.startswith(left) and s.endswith(right) and len(s) >= len(left) + len(right):
                s = s[len(left) : len(s) - len(right)]
        if s == before:
            break
    return s or None


def extract_answer(text: str | None, kind: Kind, *, number_fallback: bool = True) -> str | None:
    """The final committed answer in ``text``: a string, or None for an abstention.

    Math: the last ``\\boxed{}``/``\\fbox{}`` (nested braces), else the last "final answer
    is ...", else the last "Answer: ..." line, else (if ``number_fallback``) the last
    number. MCQ: the letter of the last commitment ("Answer: C", "answer is (B)",
    ``\\boxed{D}``), else the last "(X)", else a reply that is just a letter.
    """
    if not text:
        return None
    text = text[-EXTRACT_TAIL_CHARS:]  # the final answer is at the end; bound the work
    if kind == "mcq":
        return _extract_letter(text)
    boxed = last_boxed(text)
    cleaned = _clean(boxed) if boxed is not None else None
    if cleaned:
        return cleaned
    for regex in (_FINAL_RE, _ANSWER_LINE_RE):
        for candidate in reversed(regex.findall(text)):
            # "Final Answer: The final answer is $5$." nests one phrase in another
            inner = _FINAL_RE.findall(candidate)
            cleaned = _clean((inner[-1] if inner else candidate).strip())
            if cleaned and _plausible(cleaned):
                return cleaned
    if number_fallback:
        numbers = _NUMBER_RE.findall(text)
        if numbers:
            return numbers[-1].replace(",", "").replace(" ", "")
    return None


def _plausible(answer: str) -> bool:
    """A stated answer, not prose ("the answer is not obvious"): short, or mathematical."""
    if len(answer) > 200:
        return False
    return bool(re.search(r"[\d\\^=+\-*/()]", answer)) or len(answer.split()) <= 3


def _extract_letter(text: str) -> str | None:
    best: tuple[int, str] | None = None
    for match in _MCQ_COMMIT_RE.finditer(text):
        letter = match.group(1) or match.group(2)
        if not letter or not letter.isupper():
            continue
        bare = not match.group(0).rstrip().endswith(")")
        if bare and letter == "I" and re.match(r"\s+[a-z]", text[match.end() :]):
            continue  # "Answer: I think ...": a pronoun, not a letter
        best = (match.start(), letter)
    if best is not None:
        return best[1]
    parens = _MCQ_PAREN_RE.findall(text)
    if parens:
        return str(parens[-1])
    alone = _MCQ_ALONE_RE.match(text.strip()[-20:]) if len(text.strip()) <= 20 else None
    return alone.group(1) if alone else None


# ------------------------------------------------------------------ fast path

_NUMBER_PREFIX_RE = re.compile(r"[-+]?(?:\d[\d,]*(?:\.\d+)?|\.\d+)")
# each pattern is unambiguous (no nested quantifiers over the same characters), so a
# hostile string cannot make them backtrack exponentially
_TEXT_UNITS_RE = re.compile(r"\s*(?:\\(?:text|mbox|mathrm)\s*\{[^{}]*\}\s*)+")
_WORD_UNITS_RE = re.compile(r"\s+[A-Za-z]{2,}(?:\s+[A-Za-z]+)*\s*")
_THOUSANDS_RE = re.compile(r"^[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")


@functools.lru_cache(maxsize=65536)  # pure; gold answers and common predictions repeat
def canonical(answer: str) -> str:
    """A cheap normal form: answers equal here are equivalent (the converse needs sympy)."""
    s = answer.strip()
    s = _clean(s) or ""
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = s.replace("{,}", ",").replace("\\displaystyle", "")
    s = re.sub(r"\\left(?![a-zA-Z])|\\right(?![a-zA-Z])", "", s)
    s = re.sub(r"\\[!,;: ]|~", " ", s)
    s = re.sub(r"\^\s*\{?\s*\\circ\s*\}?|°", "", s)
    s = s.replace("\\%", "").replace("%", "").replace("\\$", "").replace("$", "")
    whole_text = re.fullmatch(r"\\(?:text|textbf|mbox|mathrm)\s*\{([^{}]*)\}", s.strip())
    if whole_text:
        s = whole_text.group(1)
    s = s.strip()
    number = _NUMBER_PREFIX_RE.match(s)
    if number and number.end() < len(s):
        rest = s[number.end() :]
        if _TEXT_UNITS_RE.fullmatch(rest) or _WORD_UNITS_RE.fullmatch(rest):
            s = number.group(0)
    s = re.sub(r"\s+", "", s)
    if _THOUSANDS_RE.match(s):
        s = s.replace(",", "")
    return s.rstrip(".")


_FRAC_RE = re.compile(r"^([-+]?)\\frac\{([-+]?\d+)\}\{([-+]?\d+)\}$|^([-+]?)\\frac(\d)(\d)$")


def decided_in_process(answer: str, gold: str) -> bool:
    """Whether ``is_equivalent`` settles this math pair on its fast path, without the worker.

    Callers on an event loop use it to grade inline and send only symbolic pairs to a
    thread.
    """
    if len(answer) > MAX_ANSWER_CHARS or len(gold) > MAX_ANSWER_CHARS:
        return True  # refused without parsing
    return numeric_value(canonical(answer)) is not None and (
        numeric_value(canonical(gold)) is not None
    )


def numeric_value(canon: str) -> Fraction | None:
    """The exact value of a canonical integer, decimal or simple fraction, else None."""
    if not canon or len(canon) > _MAX_DIGITS:
        return None
    try:
        if re.fullmatch(r"[-+]?\d+", canon):
            return Fraction(int(canon))
        if re.fullmatch(r"[-+]?(?:\d+\.\d*|\.\d+)", canon):
            return Fraction(canon)
        m = re.fullmatch(r"([-+]?\d+)/([-+]?\d+)", canon)
        if m:
            return Fraction(int(m.group(1)), int(m.group(2)))
        m = _FRAC_RE.match(canon)
        if m:
            sign, num, den = (
                (m.group(1), m.group(2), m.group(3)) if m.group(2) else m.group(4, 5, 6)
            )
            value = Fraction(int(num), int(den))
            return -value if sign == "-" else value
    except (ValueError, ZeroDivisionError):
        return None
    return None


def _letter(answer: str) -> str:
    s = re.sub(r"\\(?:boxed|text|textbf|fbox)\s*\{([^{}]*)\}", r"\1", answer)
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
        self.stats = {"fast": 0, "cached": 0, "worker": 0, "timeouts": 0, "starts": 0}

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
        """Whether ``pred`` states the same answer as ``gold`` (None is never equivalent)."""
        if pred is None or not pred.strip():
            return False
        if kind == "mcq":
            self.stats["fast"] += 1
            return _letter(pred) == _letter(gold) != ""
        if len(pred) > MAX_ANSWER_CHARS or len(gold) > MAX_ANSWER_CHARS:
            return False  # not an answer; and keeps normalisation cost bounded
        cp, cg = canonical(pred), canonical(gold)
        if cp == cg and cp:
            self.stats["fast"] += 1
            return True
        vp, vg = numeric_value(cp), numeric_value(cg)
        if vp is not None and vg is not None:
            self.stats["fast"] += 1
            return vp == vg
        if not cp or not cg or _too_hostile(pred) or _too_hostile(gold):
            return False
        key = (cp, cg)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                self.stats["cached"] += 1
                return self._cache[key]
        self.stats["worker"] += 1
        reply = self._ask(["verify", cp, cg], self.time_limit_s)
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
            index = LETTERS.find(_letter(answer)) if len(_letter(answer)) == 1 else -1
            if index < 0 or index >= len(shown):
                return None, False
            source = LETTERS[shown[index]]
            return source, source == problem.answer.strip().upper()
        return answer, self.is_equivalent(answer, problem.answer, "math")

    def cluster_answers(self, answers: Sequence[str | None], kind: Kind) -> list[int | None]:
        """Equivalence-class ids (first-seen order) for voting; None stays None."""
        keys: list[Any] = []
        for answer in answers:
            if answer is None or not answer.strip():
                keys.append(None)
            elif kind == "mcq":
                keys.append(_letter(answer))
            else:
                canon = canonical(answer)
                value = numeric_value(canon)
                keys.append(("n", value) if value is not None else ("s", canon))
        distinct: list[Any] = list(dict.fromkeys(k for k in keys if k is not None))
        merged = {key: i for i, key in enumerate(distinct)}
        symbolic = [k for k in distinct if k[0] == "s"] if kind == "math" else []
        if symbolic and len(distinct) > 1:
            merged = self._merge(distinct)
        renumber: dict[int, int] = {}
        result: list[int | None] = []
        for key in keys:
            if key is None:
                result.append(None)
                continue
            cls = merged[key]
            result.append(renumber.setdefault(cls, len(renumber)))
        return result

    def _merge(self, distinct: list[Any]) -> dict[Any, int]:
        """Classes of distinct normal forms, merged by math-verify in one worker call."""
        texts = [str(k[1]) if k[0] == "s" else _fraction_text(k[1]) for k in distinct]
        fallback = {key: i for i, key in enumerate(distinct)}
        safe = [i for i, t in enumerate(texts) if not _too_hostile(t)]
        n = len(safe)
        limit = min(30.0, self.time_limit_s * 2 + 0.05 * n)
        numeric = [distinct[i][0] == "n" for i in safe]
        ids = self._ask(["cluster", [texts[i] for i in safe], numeric], limit)
        if not isinstance(ids, list) or len(ids) != n:
            return fallback
        merged = dict(fallback)
        first: dict[int, int] = {}
        for position, i in enumerate(safe):
            first.setdefault(ids[position], position)
            merged[distinct[i]] = safe[first[ids[position]]]
        return merged


def _fraction_text(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    sign = "-" if value < 0 else ""
    return f"{sign}\\frac{{{abs(value.numerator)}}}{{{value.denominator}}}"


_default: Grader | None = None
_default_lock = threading.Lock()


def default_grader() -> Grader:
    """The process-wide grader behind the module functions (created on first use)."""
    global _default
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
