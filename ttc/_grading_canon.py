"""Canonical forms, exact numbers and the one numeric tolerance rule of ttc's grader.

Everything here is pure, stdlib-only and cheap, because it runs twice per graded sample
(prediction and gold) on the sampler's event loop and again inside the symbolic worker
(``ttc._grading_worker`` imports the tolerance rule from here, so both paths apply the
same rule to the same written digits).

The normal form is deliberately conservative: two answers with the same ``canonical``
string are equivalent, but nothing here may make two different answers collide.
Hence: a LaTeX row separator ``\\\\`` survives respacing; a space between two numbers
makes a list (``2 3`` is not ``23``), and so does a comma followed by a space
(``1, 125`` is not ``1125``, while ``1,125`` is); ``7 3/4`` is the mixed number 31/4;
magnitude words scale (``2 million`` is 2000000) instead of being dropped like units;
``52_8`` keeps its base.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from fractions import Fraction

__all__ = [
    "MIN_SIGNIFICANT_DIGITS",
    "Number",
    "based_numerals",
    "canonical",
    "clean",
    "number",
    "numbers_equal",
    "parse_decimal",
]

MIN_SIGNIFICANT_DIGITS = 5
"""A decimal needs this many significant digits before it may match a value it only
approximates (``0.142857`` vs ``\\frac{1}{7}``); shorter decimals (``0.333``) are exact."""
_MAX_DIGITS = 200


# ------------------------------------------------------------------ numbers


@dataclass(frozen=True, slots=True)
class Number:
    """An exact value and, for a decimal as written, its precision.

    ``places`` is the number of digits written after the decimal point (trailing zeros
    count: ``16386.20`` is written to the cent) and ``digits`` the significant digits;
    both are None for exact forms (integers, fractions, mixed numbers).
    """

    value: Fraction
    places: int | None = None
    digits: int | None = None


def numbers_equal(a: Number, b: Number) -> bool:
    """The tolerance rule, the only place ttc compares numbers inexactly.

    Equal values are equal. A decimal written with at least ``MIN_SIGNIFICANT_DIGITS``
    significant digits also equals an exact value (one not written as a decimal) that
    it states to its written precision: the two differ by less than one unit in the
    decimal's last written place, i.e. the decimal is the value rounded or truncated
    there (``1.414214`` and ``1.414213`` both state ``\\sqrt{2}``). Two decimals are
    compared exactly, as are short decimals (``0.333`` is not ``\\frac{1}{3}``).
    """
    if a.value == b.value:
        return True
    if (a.places is None) == (b.places is None):
        return False  # two exact values, or two decimals: exact comparison
    decimal, exact = (a, b) if a.places is not None else (b, a)
    if decimal.digits is None or decimal.digits < MIN_SIGNIFICANT_DIGITS:
        return False
    assert decimal.places is not None
    return abs(decimal.value - exact.value) < Fraction(1, 10**decimal.places)


_DECIMAL_RE = re.compile(r"([-+]?)(\d*)\.(\d+)(?:[eE]([-+]?\d+))?")


def parse_decimal(text: str) -> Number | None:
    """A decimal literal (``-0.1250``, ``.5``, ``1.5e-3``) with its written precision."""
    m = _DECIMAL_RE.fullmatch(text.strip())
    if m is None or len(text) > _MAX_DIGITS:
        return None
    sign, whole, frac, exp = m.groups()
    exponent = int(exp) if exp else 0
    if abs(exponent) > _MAX_DIGITS:
        return None
    value = Fraction(int((whole or "0") + frac), 10 ** len(frac)) * Fraction(10) ** exponent
    if sign == "-":
        value = -value
    places = len(frac) - exponent
    significant = (whole + frac).lstrip("0")
    if places <= 0:  # 1.5e3: an integer as written
        return Number(value)
    return Number(value, places, len(significant) or 1)


_INT_RE = re.compile(r"[-+]?\d+")
_SLASH_RE = re.compile(r"([-+]?\d+)/([-+]?\d+)")
_FRAC_RE = re.compile(r"([-+]?)\\frac\{([-+]?\d+)\}\{([-+]?\d+)\}|([-+]?)\\frac(\d)(\d)")


@functools.lru_cache(maxsize=65536)
def number(canon: str) -> Number | None:
    """The value of a canonical integer, decimal or simple fraction, else None."""
    if not canon or len(canon) > _MAX_DIGITS:
        return None
    try:
        if _INT_RE.fullmatch(canon):
            return Number(Fraction(int(canon)))
        if "." in canon:
            return parse_decimal(canon)
        m = _SLASH_RE.fullmatch(canon)
        if m:
            return Number(Fraction(int(m.group(1)), int(m.group(2))))
        m = _FRAC_RE.fullmatch(canon)
        if m:
            sign, num, den = m.group(1, 2, 3) if m.group(2) else m.group(4, 5, 6)
            value = Fraction(int(num), int(den))
            return Number(-value if sign == "-" else value)
    except (ValueError, ZeroDivisionError):
        return None
    return None


# ------------------------------------------------------------------ based numerals

_BASED_RE = re.compile(r"(?<![A-Za-z0-9\\])([0-9A-Z]*[0-9][0-9A-Z]*)_\{?(\d{1,2})\}?(?![\d}])")


def _based(match: re.Match[str]) -> str:
    digits, base = match.group(1).lstrip("0") or "0", int(match.group(2))
    return digits if base == 10 else f"{digits}_{base}"


def based_numerals(canon: str) -> tuple[str, ...]:
    """The numerals written with a base subscript (``52_8``), sorted.

    math-verify drops subscripts, so ``52_8`` would equal ``52_9``; ttc compares based
    numerals as written instead: two answers can only be equivalent when they contain
    the same based numerals, and a bare numeral never equals a based one.
    """
    if "_" not in canon:
        return ()
    return tuple(sorted(m.group(0) for m in _BASED_RE.finditer(canon)))


# ------------------------------------------------------------------ cleaning

_BOLD_RE = re.compile(r"\*\*([^*]+)\*\*")
_QUOTED_RE = re.compile(r"""\\?(["'`])(.+?)\\?\1""", re.DOTALL)
_WRAPPER_ENDS = frozenset(".$)]\"'`*")
_WRAPPERS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))


def clean(answer: str) -> str | None:
    """Strip the wrapping a model puts around an answer; None when nothing is left."""
    s = answer.strip()
    if not s:
        return None
    if s[-1] not in _WRAPPER_ENDS and "**" not in s:
        return s  # the common case: nothing to strip (this runs for every sample)
    for _ in range(4):
        before = s
        s = s.strip().rstrip(".").strip()
        quoted = _QUOTED_RE.fullmatch(s)
        if quoted:
            s = quoted.group(2)  # 'Final answer is "12 and 13"'
        if "**" in s:  # markdown bold, but x**2 keeps its power
            s = _BOLD_RE.sub(r"\1", s).strip("*").strip()
        for left, right in _WRAPPERS:
            if s.startswith(left) and s.endswith(right) and len(s) >= len(left) + len(right):
                s = s[len(left) : len(s) - len(right)]
        if s == before:
            break
    return s or None


# ------------------------------------------------------------------ canonical form

# LaTeX spacing. The row separator \\ is matched first so it is never read as "\" + "\ ".
_SPACING_RE = re.compile(r"\\\\|\\!|\\[,;: ]|\\q?quad(?![a-zA-Z])|~")
_WHOLE_TEXT_RE = re.compile(r"\\(?:text|textnormal|textrm|textbf|mbox|mathrm)\s*\{([^{}]*)\}")
_NUMBER_PREFIX_RE = re.compile(r"[-+]?(?:\d[\d,]*(?:\.\d+)?|\.\d+|\\frac\{\d+\}\{\d+\}|\\frac\d\d)")
_UNIT_TOKEN_RE = re.compile(
    r"\\(?:text|textnormal|textrm|mbox|mathrm)\s*\{([^{}]*)\}|([A-Za-z]+)|(\s+|\^\{?[23]\}?)|(.)"
)
_THOUSANDS_RE = re.compile(r"[-+]?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?")
_EXPRESSION_RE = re.compile(r"[\d\\({\[]")
_AND_OR_RE = re.compile(
    r"\s*,?\s*(?:\\text\s*\{\s*(?:and|or)\s*\}|(?<![A-Za-z\\])(?:and|or)(?![A-Za-z]))\s*"
)
_MIXED_RE = re.compile(
    r"([-+]?)(\d+)\s*(?:\\frac\{(\d+)\}\{(\d+)\}|\\frac(\d)(\d))|([-+]?)(\d+)\s+(\d+)/(\d+)"
)
_MAGNITUDES = {
    "hundred": 100,
    "thousand": 10**3,
    "million": 10**6,
    "billion": 10**9,
    "trillion": 10**12,
}
# words that make "2 <words>" an expression rather than a number with a unit
_CONNECTIVES = frozenset(
    {
        "and", "or", "to", "through", "times", "plus", "minus", "over", "divided", "by", "of",
        "than", "less", "more", "not", "squared", "cubed", "root", "roots", "is", "are",
        "equals", "equal", "per",
    }
)  # fmt: skip
_WORDS_RE = re.compile(r"[A-Za-z]+(?:[ '\-][A-Za-z]+)*")


@functools.lru_cache(maxsize=65536)  # pure; gold answers and common predictions repeat
def canonical(answer: str) -> str:
    """A cheap normal form: answers equal here are equivalent (the converse needs sympy)."""
    s = clean(answer) or ""
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("\\cfrac", "\\frac")
    s = s.replace("\\displaystyle", "")
    s = re.sub(r"\\left(?![a-zA-Z])|\\right(?![a-zA-Z])", "", s)
    # thousands separators written in LaTeX: 10{,}000, 11,\! 111 and 10\,000
    s = s.replace("{,}", ",")
    s = re.sub(r",\\!\s*(?=\d{3}(?!\d))", ",", s)
    s = re.sub(r"(?<=\d)\\[,!](?=\d{3}(?!\d))", "", s)
    s = _SPACING_RE.sub(_respace, s)
    s = re.sub(r"\^\s*\{?\s*\\circ\s*\}?|°", "", s)
    s = s.replace("\\%", "").replace("%", "").replace("\\$", "").replace("$", "")
    whole = _WHOLE_TEXT_RE.fullmatch(s.strip())
    if whole:
        s = whole.group(1)
    s = s.strip()
    if _EXPRESSION_RE.search(s):  # "6 and 8", "19, 46, and 82": lists, not prose
        s = _AND_OR_RE.sub(", ", s)
    s = _mixed_number(s) or _number_with_words(s) or s
    if _THOUSANDS_RE.fullmatch(s):
        s = s.replace(",", "")
    if _WORDS_RE.fullmatch(s) and sum(ch.isalpha() for ch in s) >= 3:
        s = s.lower()  # "Even", "\text{even}" and "EVEN" are one word answer
    s = re.sub(r"(?<=\d)\s+(?=\d)", ",", s)  # "2 3" is a list, never 23
    # drop whitespace, but keep one space where it ends a command (\pi r is not \pir)
    s = re.sub(r"(\\[A-Za-z]+)\s+(?=[A-Za-z])|\s+", _despace, s)
    s = s.replace(",", ", ")  # list commas keep their meaning when the text is re-parsed
    if "_" in s:
        s = _BASED_RE.sub(_based, s)
    single = re.fullmatch(r"\(([A-Za-z])\)", s)
    if single:
        s = single.group(1)  # "(C)": a choice letter
    return s.rstrip(".")


def _respace(match: re.Match[str]) -> str:
    token = match.group(0)
    if token == "\\\\":
        return token
    return "" if token == "\\!" else " "


def _despace(match: re.Match[str]) -> str:
    return match.group(1) + " " if match.group(1) else ""


def _mixed_number(s: str) -> str | None:
    """``7 3/4``, ``7\\frac{3}{4}`` and ``7 \\frac34`` are the mixed number 31/4."""
    m = _MIXED_RE.fullmatch(s)
    if m is None:
        return None
    if m.group(2):
        sign, whole = m.group(1), m.group(2)
        num, den = (m.group(3), m.group(4)) if m.group(3) else (m.group(5), m.group(6))
    else:
        sign, whole, num, den = m.group(7, 8, 9, 10)
    if int(den) == 0:
        return None
    value = int(whole) + Fraction(int(num), int(den))
    value = -value if sign == "-" else value
    return str(value.numerator) if value.denominator == 1 else f"{value}"


def _number_with_words(s: str) -> str | None:
    """A number followed only by words: units are dropped, magnitude words scale.

    ``5 dollars``, ``5\\text{ cm}`` and ``28 percent`` are 5, 5 and 28; ``2 million`` is
    2000000 (not 2); ``2 or more`` and ``3 to 5`` stay as they are.
    """
    m = _NUMBER_PREFIX_RE.match(s)
    if m is None or m.end() >= len(s):
        return None
    words: list[str] = []
    for token in _UNIT_TOKEN_RE.finditer(s, m.end()):
        text, word, space, other = token.groups()
        if other is not None or (space is not None and space.startswith("^") and not words):
            return None  # a power only after a unit: "15 cm^2"
        if text is not None:
            if not re.fullmatch(r"[\sA-Za-z.]*", text):
                return None
            words.extend(w.lower() for w in re.findall(r"[A-Za-z]+", text))
        elif word is not None:
            if len(word) < 2:
                return None  # "5 x" is a product, not a unit
            words.append(word.lower())
    if not words or any(w in _CONNECTIVES for w in words):
        return None
    numeral = m.group(0)
    scale = 1
    for w in words:
        scale *= _MAGNITUDES.get(w.rstrip("s"), 1)
    if scale == 1:
        return numeral
    plain = numeral.replace(",", "") if _THOUSANDS_RE.fullmatch(numeral) else numeral
    value = number(plain)
    if value is None or "," in plain:
        return None  # "1,2 million": refuse rather than guess
    scaled = value.value * scale
    return str(scaled.numerator) if scaled.denominator == 1 else f"{scaled}"
