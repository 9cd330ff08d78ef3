"""Pull the final committed answer out of a model's response.

Model output is hostile: 20k characters of reasoning, unbalanced braces, whitespace runs
and answers restated three times. Every pattern here is linear (possessive quantifiers,
no nested quantifiers over the same characters, manual brace and delimiter scanners) and
only the last ``EXTRACT_TAIL_CHARS`` characters are searched.

Order for math (the first that applies wins):

1. The last ``\\boxed{}``/``\\fbox{}``; boxes joined only by commas, "and"/"or" or
   spacing (``\\boxed{1}, \\boxed{2}``) are one list answer ``1, 2`` -- unless a
   "final answer is ..." statement comes after them, which then wins (a model that
   boxes an intermediate result and states its answer afterwards).
2. The last stated answer: "final answer is ...", "the answer is ...", an
   "Answer: ..." line (with its prose subject dropped: "The largest $n$ is 34" -> 34,
   and a stated computation reduced to its result: "4 + 6 = 10" -> 10).
3. With ``number_fallback``: the last number, widened to the expression it belongs to
   (``$x \\geq 5$``, ``(7, 6)``, the right-hand side of ``$2 \\cdot 20 = 40$``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from ttc._grading_canon import clean
from ttc.problems import Kind

__all__ = ["EXTRACT_TAIL_CHARS", "MAX_ANSWER_CHARS", "extract_answer", "last_boxed"]

EXTRACT_TAIL_CHARS = 20_000
"""Only the last 20k characters of an output are searched for its final answer."""
MAX_ANSWER_CHARS = 1000
"""Longer extracted answers are never sent to the symbolic checker (they are not answers)."""

# ------------------------------------------------------------------ boxes

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BOX_BARE_RE = re.compile(r"\\boxed\s+([^\s$\\{}]+)")


def _braced(text: str, start: int) -> int | None:
    """Index of the brace closing the group opened at ``text[start - 1]``; None if none."""
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
                return i
        i += 1
    return None


def _boxes_from_end(text: str) -> Iterator[tuple[int, int, str, str]]:
    """(start, end, content, cleaned content) of complete, non-empty boxes, last first
    (lazily: the usual caller needs one or two)."""
    for match in reversed(list(_BOX_RE.finditer(text))[-16:]):
        close = _braced(text, match.end())
        if close is not None:
            content = text[match.end() : close]
            cleaned = clean(content)
            if cleaned is not None:
                yield match.start(), close + 1, content, cleaned


def last_boxed(text: str) -> str | None:
    """Content of the last complete ``\\boxed{}``/``\\fbox{}`` in ``text`` (nested braces)."""
    last = next(_boxes_from_end(text), None)
    if last is not None:
        return last[2]
    bare = _BOX_BARE_RE.findall(text)
    return bare[-1] if bare else None


_LABEL_RE = re.compile(r"(?<![A-Za-z])[A-Za-z](?:_\{?[A-Za-z0-9]+\}?)?\s*=")
_CONNECTOR_NOISE_RE = re.compile(r"\\q?quad|\\[,;:! ]|\$|\\[()\[\]]|[,;.&~]")


def _is_connector(gap: str) -> bool:
    """Whether the text between two boxes joins them into one answer.

    Spacing and punctuation do (``\\boxed{1}, \\boxed{2}``), and so do a few words with
    "and"/"or" (``\\boxed{1} and \\boxed{2}``); anything mathematical or a longer
    sentence ("then corrected:") means the earlier box was a different, earlier answer.
    """
    if len(gap) > 60:
        return False
    g = re.sub(r"\\text\s*\{([^{}]*)\}", r" \1 ", gap)
    g = _CONNECTOR_NOISE_RE.sub(" ", g)
    g = _LABEL_RE.sub(" ", g)  # "\boxed{1} and y_2 = \boxed{2}": the next answer's name
    if re.search(r"[^A-Za-z\s()]", g):
        return False
    words = [w.lower() for w in re.findall(r"[A-Za-z]+", g)]
    return not words or (len(words) <= 6 and ("and" in words or "or" in words))


def _final_boxes(text: str) -> tuple[int, str] | None:
    """(end position, answer) of the last box chain; a chain of several is a list."""
    chain: list[tuple[int, int, str, str]] = []
    for box in _boxes_from_end(text):
        if chain and box[1] > chain[0][0]:
            continue  # encloses the box already taken: \boxed{\boxed{5}}
        if chain and not _is_connector(text[box[1] : chain[0][0]]):
            break
        chain.insert(0, box)
    if not chain:
        bare = list(_BOX_BARE_RE.finditer(text))
        return (bare[-1].end(), bare[-1].group(1)) if bare else None
    if len(chain) == 1:
        return chain[0][1], chain[0][3]
    return chain[-1][1], ", ".join(dict.fromkeys(box[3] for box in chain))


# ------------------------------------------------------------------ stated answers

# Possessive quantifiers (*+, ?+) and no newline-spanning runs: model output is
# hostile, and back-to-back optional whitespace runs backtrack quadratically or worse.
_FINAL_RE = re.compile(
    r"(final answer|the answer)\s*+(?:is|=|:)[\s:]*+(.+?)(?=\n|\.\s|\.$|$)", re.IGNORECASE
)
_ANSWER_LINE_RE = re.compile(r"^[ \t*#>_]*+answer[ \t*]*+:[ \t*]*+(.+)$", re.I | re.M)
_SUBJECT_RE = re.compile(r"(?P<subject>[^=\n]{1,80}?)\s(?:is|are|equals|was)\s++(?P<rest>.+)")
_INLINE_MATH_RE = re.compile(r"\$([^$]{1,200})\$")
_BECAUSE_RE = re.compile(r",?\s(?:because|since|as|which|where)\s")


def _stated_value(candidate: str) -> str | None:
    """The answer in a stated sentence: "The largest $n$ is 34 since ..." -> ``34``."""
    if len(candidate) > 400:
        return None  # prose, not an answer; and keeps the patterns below cheap
    inner = _FINAL_RE.findall(candidate)  # "Final Answer: The final answer is $5$."
    s = (inner[-1][1] if inner else candidate).strip()
    m = _SUBJECT_RE.fullmatch(s)
    if m and re.search(r"[\d$\\]", m.group("rest")):
        s = m.group("rest")
    s = _BECAUSE_RE.split(s, maxsplit=1)[0]
    if len(re.findall(r"[A-Za-z]{2,}", _PROSE_RE.sub(" ", s))) >= 3:  # a sentence
        spans = [m.group(1) for m in _INLINE_MATH_RE.finditer(s)]
        numbers = _NUMBER_RE.findall(s)
        if spans:
            s = spans[-1]  # "we get $x = 5$ in the end"
        elif len(numbers) == 1:
            s = numbers[0]  # "Jane started growing Sphere 3 hours ago"
    # a stated computation commits to its result: "Final answer: 4 + 6 = 10" -> 10
    # (as minerva's normaliser does); an equation with variables stays whole
    cleaned = clean(_rhs(_math_inside(s) or s))
    return cleaned if cleaned and _plausible(cleaned) else None


def _math_inside(text: str) -> str | None:
    """``E`` when one ``$E$``, ``\\(E\\)`` or ``\\[E\\]`` span is the whole text, else None."""
    t = text.strip()
    tokens = [m for m in _MATH_DELIM_RE.finditer(t) if m.group(0) != "\\$"]
    if (len(tokens) == 2 and tokens[0].start() == 0 and tokens[1].end() == len(t)
            and _CLOSERS.get(tokens[0].group(0)) == tokens[1].group(0)):
        return t[tokens[0].end() : tokens[1].start()]
    return None


def _plausible(answer: str) -> bool:
    """A stated answer, not prose ("the answer is not obvious"): short, or mathematical."""
    if len(answer) > 200:
        return False
    return bool(re.search(r"[\d\\^=+\-*/()]", answer)) or len(answer.split()) <= 3


def _last_statement(text: str, start: int = 0) -> tuple[int, bool, str] | None:
    """(start, says "final answer", answer) of the last plausible stated answer."""
    best: tuple[int, bool, str] | None = None
    for match in _FINAL_RE.finditer(text, start):
        value = _stated_value(match.group(2))
        if value is not None and (best is None or match.start() >= best[0]):
            best = (match.start(), match.group(1).lower() == "final answer", value)
    for match in _ANSWER_LINE_RE.finditer(text, start):
        value = _stated_value(match.group(1))
        if value is not None and (best is None or match.start() > best[0]):
            best = (match.start(), False, value)
    return best


# ------------------------------------------------------------------ last number, widened

_NUMBER_RE = re.compile(
    r"(?<![A-Za-z_\d])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+)?(?!\d)|-?\.\d+"
)
_MATH_DELIM_RE = re.compile(r"\\\$|\$\$|\$|\\\(|\\\)|\\\[|\\\]")
_CLOSERS = {"$$": "$$", "$": "$", "\\(": "\\)", "\\[": "\\]"}
_EQUALS_RE = re.compile(r"(?<![<>!:\\])=(?!=)|\\approx")
_GROUP_RE = re.compile(r"[(\[][\s\d,.+\-/]*[)\]]")
_PROSE_RE = re.compile(r"\\text\s*\{[^{}]*\}|\\[A-Za-z]+")  # commands and \text{} are not prose


def _math_span(text: str, position: int) -> str | None:
    """Content of the ``$...$``/``\\(...\\)``/``\\[...\\]`` span holding ``position``."""
    opened: tuple[str, int] | None = None
    for token in _MATH_DELIM_RE.finditer(text, 0, min(len(text), position + 2000)):
        t = token.group(0)
        if t == "\\$":
            continue
        if opened is None:
            if t in _CLOSERS:
                opened = (t, token.end())
            continue
        if t == _CLOSERS[opened[0]]:
            if opened[1] <= position < token.start():
                return text[opened[1] : token.start()]
            if token.start() > position:
                return None
            opened = None
    return None


def _whole_expression(text: str) -> str | None:
    """The whole response when it is one short expression: ``$E$``, ``x \\geq 5``."""
    t = text.strip()
    if not t or len(t) > 200 or _BOX_RE.search(t):
        return None
    inside = _math_inside(t)
    if inside is not None:
        return clean(inside)
    prose = _PROSE_RE.sub(" ", t)
    return None if re.search(r"[A-Za-z]{2,}", prose) else clean(t)


def _rhs(span: str) -> str:
    """The result of a computation (``2 \\cdot 20 = 40`` -> ``40``); an equation or an
    assignment with variables on the left stays whole (``x + y = 1``)."""
    parts = _EQUALS_RE.split(span)
    if len(parts) < 2 or re.search(r"[A-Za-z]", _PROSE_RE.sub(" ", "".join(parts[:-1]))):
        return span
    return parts[-1]


def _last_expression(text: str) -> str | None:
    """The last number, or the expression it is part of when that is short."""
    whole = _whole_expression(text)
    if whole is not None:
        return whole
    tail = text[-4000:]
    numbers = list(_NUMBER_RE.finditer(tail))
    if not numbers:
        spans = list(_MATH_DELIM_RE.finditer(tail))
        last_span = (
            _math_span(text, len(text) - len(tail) + spans[-2].end()) if len(spans) >= 2 else None
        )
        return clean(last_span) if last_span and len(last_span) <= 100 else None
    offset = max(0, len(text) - 4000)
    last = numbers[-1]
    position = offset + last.start()
    span = _math_span(text, position)
    if span is not None:
        expression = clean(_rhs(span))
        if expression and len(expression) <= 200 and re.search(r"\d", expression):
            return expression
    line_start = text.rfind("\n", 0, position) + 1
    for group in _GROUP_RE.finditer(text, line_start, min(len(text), position + 200)):
        if group.start() <= position < group.end() and "," in group.group(0):
            return group.group(0)
    return last.group(0).replace(",", "").replace(" ", "")


# ------------------------------------------------------------------ multiple choice

_MCQ_COMMIT_RE = re.compile(
    r"\\(?:boxed|fbox)\s*+\{\s*+(?:\\text(?:bf)?\s*+\{\s*+)?+\(?([A-Z])\)?(?![A-Za-z])"
    r"|answer\s*+(?:is|:|=)?+\s*+(?:option|choice)?+[\s:*_$]*+\(?\s*+([A-Z])(?:\s*+\))?"
    r"(?![A-Za-z'])"
    r"|(?:option|choice)\s++\(?([A-Z])\)?[\s*]*+(?:is|would\s+be|seems)\s++(?:the\s++)?"
    r"(?:correct|right|best|answer)"
    r"|(?:correct|right|best)\s++(?:option|choice|letter)\s*+(?:is|:|=)?+[\s:*_$]*+"
    r"\(?\s*+([A-Z])(?:\s*+\))?(?![A-Za-z'])",
    re.IGNORECASE,
)
_MCQ_PAREN_RE = re.compile(r"(?<![A-Za-z\\])\(([A-Z]|[a-j])\)")
_MCQ_LEAD_RE = re.compile(r"\s*+\(?([A-Z])[.)]\s")
_MCQ_LIST_RE = re.compile(r"\n[ \t]*+\(?[A-Z][.)]\s")
_MCQ_ALONE_RE = re.compile(r"^\W*\(?([A-Z])\)?\W*$")


def _extract_letter(text: str) -> str | None:
    best: tuple[int, str] | None = None
    for match in _MCQ_COMMIT_RE.finditer(text):
        letter = next((g for g in match.groups() if g), None)
        if letter is None:
            continue
        wrapped = match.group(1) is not None or match.group(0).rstrip().endswith(")")
        if not letter.isupper() and not wrapped:
            continue  # "the answer is a matter of ...": lowercase only as "(a)" or "a)"
        if not wrapped and letter == "I" and re.match(r"\s+[a-z]", text[match.end() :]):
            continue  # "Answer: I think ...": a pronoun, not a letter
        best = (match.start(), letter.upper())
    if best is not None:
        return best[1]
    lead = _MCQ_LEAD_RE.match(text)
    if lead and not _MCQ_LIST_RE.search(text):
        return lead.group(1)  # "A. Because ..." (but not "A. ...\nB. ...": a list of options)
    parens = _MCQ_PAREN_RE.findall(text)
    if parens:
        return str(parens[-1]).upper()
    alone = _MCQ_ALONE_RE.match(text.strip()[-20:]) if len(text.strip()) <= 20 else None
    return alone.group(1) if alone else None


# ------------------------------------------------------------------ entry point


def extract_answer(text: str | None, kind: Kind, *, number_fallback: bool = True) -> str | None:
    """The final committed answer in ``text``: a string, or None for an abstention.

    Math: see the module docstring for the order. MCQ: the letter of the last
    commitment ("Answer: C", "answer is (B)", ``\\boxed{D}``, "Option D is correct",
    "the correct option is C", "answer is a)"), else the last "(X)", else a reply that is
    just a letter.
    """
    if not text:
        return None
    text = text[-EXTRACT_TAIL_CHARS:]  # the final answer is at the end; bound the work
    if kind == "mcq":
        return _extract_letter(text)
    boxed = _final_boxes(text)
    if boxed is not None and boxed[1]:
        later = _last_statement(text, boxed[0])
        if later is not None and later[1]:
            return later[2]  # "The final answer is 7" after an intermediate \boxed{6}
        return boxed[1]
    stated = _last_statement(text)
    if stated is not None:
        return stated[2]
    if number_fallback:
        return _last_expression(text)
    return None
