"""ttc's grader against the peers' own test cases (tests/parity/cases/*.jsonl).

The cases are the expectations other graders publish for themselves: Math-Verify's test
suite and hendrycks' ``math_equivalence_test.py`` imported by ``tests/parity/import_cases.py``,
plus cases derived by hand from the rules of lm-eval's minerva_math normalisation,
prm800k's grader and Qwen2.5-Math's grader examples (``derived_*.jsonl``, each citing the
file, commit and line of its rule). A case ttc deliberately decides the other way is
annotated ``"ttc": "differs"`` with the reason, and one whose expectation hangs on a
convention or a peer option ttc does not have is ``"debatable"``; neither counts toward
the target, every other case does, and every remaining disagreement is printed (``-s``).

How ttc is asked, per level: ``answer`` cases compare two answers (``is_equivalent``);
``response`` cases extract from both texts first (the gold as a dataset would: its box or
stated answer, else the text itself); ``letter`` cases extract a multiple-choice letter.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ttc.grading import Grader, extract_answer

# Symbolic comparisons get 10 s here, not the default 1 s: the suite measures the relation,
# and a loaded machine must not turn a slow "equal" into a timeout's "not equal".
GRADER = Grader(time_limit_s=10.0)


def teardown_module() -> None:
    GRADER.close()


CASES = Path(__file__).resolve().parent / "parity" / "cases"
MATH500 = Path(__file__).resolve().parents[2] / "shared" / "data" / "math500" / "test.jsonl"
TARGET = 0.97


def _cases() -> list[dict[str, Any]]:
    cases = []
    for path in sorted(CASES.glob("*.jsonl")):
        with path.open(encoding="utf-8") as handle:
            cases.extend(json.loads(line) for line in handle if line.strip())
    return cases


def _math500() -> dict[str, str]:
    if not MATH500.exists():
        return {}
    with MATH500.open(encoding="utf-8") as handle:
        return {row["unique_id"]: row["solution"] for row in map(json.loads, handle)}


def _text(value: Any, solutions: dict[str, str]) -> str | None:
    if isinstance(value, dict):
        return solutions.get(value["math500"])
    return value  # type: ignore[no-any-return]


def ttc_verdict(case: dict[str, Any], solutions: dict[str, str]) -> bool | None:
    """ttc's verdict on a case, or None when its text lives in absent shared data."""
    pred, gold = _text(case["pred"], solutions), _text(case["gold"], solutions)
    if pred is None or (gold is None and case["level"] != "letter"):
        return None
    if case["level"] == "letter":
        return extract_answer(pred, "mcq") == gold
    if case["level"] == "answer":
        return GRADER.is_equivalent(pred, gold, "math")
    answer = extract_answer(pred, "math")
    gold_answer = extract_answer(gold, "math", number_fallback=False) or gold
    return answer is not None and GRADER.is_equivalent(answer, gold_answer, "math")


def _where(case: dict[str, Any]) -> str:
    source = case["source"]
    return f"{source['repo']} {source['path']}:{source['line']} @{source['commit'][:10]}"


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 90 else text[:60] + " ... " + text[-25:]


def test_every_case_cites_its_source_and_annotations_say_why() -> None:
    cases = _cases()
    assert len(cases) > 300
    assert len({c["id"] for c in cases}) == len(cases)
    for case in cases:
        source = case["source"]
        assert re.fullmatch(r"[0-9a-f]{40}", source["commit"]), case["id"]
        assert source["repo"] and source["path"] and source["line"] > 0, case["id"]
        assert case["level"] in ("answer", "response", "letter"), case["id"]
        assert isinstance(case["expected"], bool), case["id"]
        if "ttc" in case:
            assert case["ttc"] in ("differs", "debatable") and len(case.get("why", "")) > 20


def test_parity_with_the_peers_own_test_cases() -> None:
    solutions = _math500()
    rows = []
    for case in _cases():
        verdict = ttc_verdict(case, solutions)
        if verdict is not None:
            rows.append((case, verdict == case["expected"]))
    assert rows, "no parity cases could be evaluated"
    counted = [(c, ok) for c, ok in rows if "ttc" not in c]
    agreement = sum(ok for _, ok in counted) / len(counted)
    by_source: Counter[str] = Counter()
    agreed: Counter[str] = Counter()
    for case, ok in counted:
        by_source[case["source"]["repo"]] += 1
        agreed[case["source"]["repo"]] += ok
    print(f"\nparity: {sum(ok for _, ok in counted)}/{len(counted)} = {agreement:.4f} on cases "
          f"whose expectation is not debatable; {sum(ok for _, ok in rows)}/{len(rows)} "
          f"on all cases")  # fmt: skip
    for repo in sorted(by_source):
        print(f"  {repo:<36} {agreed[repo]:>4}/{by_source[repo]:<4}")
    print("remaining differences:")
    for case, ok in counted:
        if not ok:
            print(f"  {_where(case)}  expected={case['expected']}  gold={_short(case['gold'])}"
                  f"  pred={_short(case['pred'])}")  # fmt: skip
    print("deliberate differences and debatable cases (not counted):")
    broken = []
    for case, ok in rows:
        if "ttc" in case:
            print(f"  [{case['ttc']}] {_where(case)}  ttc={'agrees' if ok else 'differs'}: "
                  f"{case['why']}")  # fmt: skip
            if case["ttc"] == "differs" and ok:
                broken.append(case["id"])
    assert not broken, f"annotated as deliberate differences but ttc now agrees: {broken}"
    assert agreement >= TARGET, f"parity {agreement:.4f} < {TARGET}"


@pytest.mark.parametrize(
    "case",
    [c for c in _cases() if "ttc" not in c and c["level"] == "answer"],
    ids=lambda c: c["id"][:80],
)
def test_answer_level_case(case: dict[str, Any]) -> None:
    """The answer-level cases one by one, so a regression names its case."""
    assert ttc_verdict(case, {}) == case["expected"], (case["pred"], case["gold"], case.get("rule"))
