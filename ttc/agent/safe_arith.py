"""A calculator that cannot be turned against its host: a recursive-descent parser, no eval.

Model output is data. The grammar is numbers, ``+ - * /``, powers (``**`` or ``^``),
unary signs and parentheses, nothing else: no names, no calls, no attribute access.
Arithmetic is exact (``fractions.Fraction``), and every way to make the machine work
hard is bounded before the work is done: input length, nesting depth, digits per
number, exponent size and the size of every intermediate result. ``9**9**9`` is
refused in microseconds instead of hanging for hours.
"""

from __future__ import annotations

import re
from decimal import Context, Decimal
from fractions import Fraction

__all__ = [
    "MAX_DEPTH",
    "MAX_EXPONENT",
    "MAX_INPUT_CHARS",
    "MAX_RESULT_BITS",
    "ArithmeticError_",
    "evaluate",
    "format_number",
]

MAX_INPUT_CHARS = 500
MAX_DEPTH = 60
MAX_EXPONENT = 512
MAX_RESULT_BITS = 2048
MAX_NUMBER_DIGITS = 60

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+\.?\d*|\.\d+)|(?P<op>\*\*|[-+*/^()]))",
    re.ASCII,  # "\d" must not match other scripts' digits
)
# look-alike operators people and models type
_ALIASES = str.maketrans({"\u2212": "-", "\u00d7": "*", "\u00f7": "/", "\u2013": "-"})


class ArithmeticError_(ValueError):  # noqa: N801 - the builtin name is taken
    """The expression is not one this calculator evaluates; the message says why."""


def _check_size(value: Fraction) -> Fraction:
    if max(value.numerator.bit_length(), value.denominator.bit_length()) > MAX_RESULT_BITS:
        raise ArithmeticError_("result too large")
    return value


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = self._tokenize(text)
        self.pos = 0
        self.depth = 0

    @staticmethod
    def _tokenize(text: str) -> list[str]:
        tokens: list[str] = []
        pos = 0
        text = text.rstrip()
        while pos < len(text):
            match = _TOKEN.match(text, pos)
            if match is None or match.end() == pos:
                bad = text[pos:].lstrip()[:1]
                raise ArithmeticError_(f"unexpected character {bad!r}")
            tokens.append(match.group("num") or match.group("op"))
            pos = match.end()
        return tokens

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise ArithmeticError_("unexpected end of expression")
        self.pos += 1
        return token

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ArithmeticError_(f"nesting deeper than {MAX_DEPTH}")

    def expr(self) -> Fraction:
        self.enter()
        value = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()
            right = self.term()
            value = _check_size(value + right if op == "+" else value - right)
        self.depth -= 1
        return value

    def term(self) -> Fraction:
        value = self.unary()
        while self.peek() in ("*", "/"):
            op = self.take()
            right = self.unary()
            if op == "*":
                value = _check_size(value * right)
            elif right == 0:
                raise ArithmeticError_("division by zero")
            else:
                value = _check_size(value / right)
        return value

    def unary(self) -> Fraction:
        if self.peek() in ("+", "-"):
            self.enter()
            sign = self.take()
            value = self.unary()
            self.depth -= 1
            return -value if sign == "-" else value
        return self.power()

    def power(self) -> Fraction:
        base = self.atom()
        if self.peek() in ("**", "^"):
            self.take()
            self.enter()
            exponent = self.unary()  # right-associative: 2**3**2 = 2**9
            self.depth -= 1
            return _power(base, exponent)
        return base

    def atom(self) -> Fraction:
        token = self.take()
        if token == "(":
            value = self.expr()
            if self.take() != ")":
                raise ArithmeticError_("expected ')'")
            return value
        if token[0] in "0123456789.":
            digits = token.replace(",", "")
            if len(digits) > MAX_NUMBER_DIGITS:
                raise ArithmeticError_(f"numbers are limited to {MAX_NUMBER_DIGITS} digits")
            return Fraction(digits)
        raise ArithmeticError_(f"unexpected {token!r}")


def _power(base: Fraction, exponent: Fraction) -> Fraction:
    if exponent.denominator != 1:
        raise ArithmeticError_("only whole-number exponents are supported")
    e = exponent.numerator
    if abs(e) > MAX_EXPONENT:
        raise ArithmeticError_(f"exponent larger than {MAX_EXPONENT}")
    if base == 0 and e < 0:
        raise ArithmeticError_("division by zero")
    bits = max(base.numerator.bit_length(), base.denominator.bit_length())
    if bits * abs(e) > MAX_RESULT_BITS:  # decided before the power is computed
        raise ArithmeticError_("result too large")
    return _check_size(base**e)


def evaluate(text: object) -> Fraction:
    """The exact value of an arithmetic expression, or ``ArithmeticError_`` saying why not."""
    if not isinstance(text, str):
        raise ArithmeticError_("the expression must be a string")
    if len(text) > MAX_INPUT_CHARS:
        raise ArithmeticError_(f"expression longer than {MAX_INPUT_CHARS} characters")
    parser = _Parser(text.translate(_ALIASES))
    if not parser.tokens:
        raise ArithmeticError_("empty expression")
    value = parser.expr()
    if parser.peek() is not None:
        raise ArithmeticError_(f"unexpected {parser.peek()!r}")
    return value


_FLOAT_RANGE = (Fraction(1, 10**300), Fraction(10**300))


def format_number(value: Fraction) -> str:
    """An integer as an integer; anything else as a decimal of up to 12 significant digits.

    Outside float range (results up to 2**2048 are allowed) the digits come from exact
    decimal division, not from a float that would say "inf" or "0".
    """
    if value.denominator == 1:
        return str(value.numerator)
    if _FLOAT_RANGE[0] < abs(value) < _FLOAT_RANGE[1]:
        return f"{float(value):.12g}"
    digits = Context(prec=12, Emax=MAX_RESULT_BITS, Emin=-MAX_RESULT_BITS).divide(
        Decimal(value.numerator), Decimal(value.denominator))
    mantissa, _, exponent = f"{digits:.12g}".lower().partition("e")
    return f"{mantissa}e{int(exponent):+03d}" if exponent else mantissa
