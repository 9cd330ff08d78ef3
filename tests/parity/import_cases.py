"""Regenerate the parity case files from the peers' own test suites (a maintainer's tool).

    python tests/parity/import_cases.py MIRROR_DIR

``MIRROR_DIR`` holds bare git mirrors named ``owner+repo/repo`` (as the team's fetch tool
lays them out). The peers' test files are read with ``ast`` (never imported or run); only
the cases are kept: ``(pred, gold, expected)`` with the peer's non-default options, the
file, commit and line they come from, and the peer's own comment. Annotations already in
``cases/*.jsonl`` (``ttc``: ``differs``/``debatable`` and ``why``) are kept by case id, so
re-importing a newer commit shows which cases are new.

Peer cases that quote a MATH reference solution are benchmark text and are not copied:
when the solution is in ``../shared/data/math500`` the case stores a reference to it
(``{"math500": unique_id}``); otherwise only its final ``\\boxed{...}`` is kept (the case
records ``reduced``). Which texts are reference solutions was judged by reading them
(``REFERENCE_SOLUTIONS``); the model outputs in the peers' tests are kept verbatim.
Cases derived from rules (lm-eval's minerva_math normalisation, prm800k's grader,
Qwen2.5-Math's grader examples) are written by hand in ``cases/derived_*.jsonl``; this
script does not touch them.
"""

from __future__ import annotations

import ast
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CASES = HERE / "cases"
MATH500 = HERE.parents[2] / "shared" / "data" / "math500" / "test.jsonl"

# Math-Verify's test functions: what each passes to compare_strings/verify besides
# (gold, pred); "case" options come from the parametrised tuple itself.
MATH_VERIFY_FILES = {
    "tests/test_all.py": {
        "test_number_extraction": {"match_types": ["expr"]},
        "test_simple_fraction_notation": {},
        "test_sets_handling": {},
        "test_latex_notation": {"match_types": ["latex"]},
        "test_percent_notation": {},
        "test_latex_notation_math": {"match_types": ["latex"]},
        "test_relations_math": {"match_types": ["latex"]},
        "test_matrix_extraction": {"match_types": ["latex"]},
        "test_complex_math_expressions": {},
        "test_math_extraction_edge_cases": {},
        "test_math_extraction_additional_cases": {},
        "test_set_rel_assymetry": {"match_types": ["latex"]},
        "test_float_precision": {"precision": 5},
        "test_sqrt_precision": {"precision": 5},
        "test_symbols": {"precision": 5},
    },
    "tests/test_boxed.py": {"test_boxed": {}},
    "tests/test_numina_cases.py": {"test_numina_cases": {}},
    "tests/test_open_thoughts.py": {"test_open_thoughts": {}},
    "tests/test_yujianll.py": {"test_string_extraction": {"parse": "default"}},
    "tests/test_strict.py": {"test_strict_variable_comparison": {}},
}


# (path, line of the case, side): texts that are MATH reference solutions, not model output
REFERENCE_SOLUTIONS = {
    ("tests/test_all.py", line, side)
    for line, side in [
        (185, "pred"), (195, "pred"), (200, "gold"), (205, "gold"), (211, "pred"),
        (216, "pred"), (221, "pred"), (227, "pred"), (232, "pred"), (237, "pred"),
        (242, "pred"), (247, "pred"), (252, "pred"), (257, "pred"), (262, "pred"),
        (267, "pred"), (273, "pred"), (278, "pred"), (283, "pred"), (288, "pred"),
        (293, "pred"), (298, "pred"), (303, "pred"), (308, "pred"), (313, "pred"),
        (314, "pred"), (319, "pred"), (320, "pred"), (681, "pred"), (701, "gold"),
        (748, "pred"), (827, "gold"), (873, "gold"),
    ]
}  # fmt: skip


def _final_box(text: str) -> str | None:
    """``\\boxed{...}`` of the last box in a reference solution (plain brace matching)."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth = 0
    for i in range(start + len("\\boxed"), len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[start : i + 1]
    return None


def _git(mirror: Path, *args: str) -> str:
    return subprocess.run(
        ["git", f"--git-dir={mirror}", *args], capture_output=True, text=True, check=True
    ).stdout


def _value(node: ast.expr) -> Any:
    """A literal, or an f-string over ``math`` (Math-Verify's float-precision case)."""
    try:
        return ast.literal_eval(node)
    except ValueError:
        if isinstance(node, ast.Call):  # an extraction config: kept as its source text
            return ast.unparse(node)
        if isinstance(node, ast.JoinedStr):
            code = compile(ast.Expression(node), "<case>", "eval")
            return eval(code, {"__builtins__": {}, "math": math})  # a peer's constant
        raise


def _comment_above(lines: list[str], lineno: int) -> str | None:
    """The ``# ...`` comment on the lines just above a case, if any."""
    i = lineno - 2
    while i >= 0 and lines[i].strip().startswith("#"):
        text = lines[i].strip().lstrip("#").strip()
        if text and not text.startswith("("):
            return text
        i -= 1
    return None


def _math500_solutions() -> dict[str, str]:
    if not MATH500.exists():
        return {}
    rows = [json.loads(x) for x in MATH500.open(encoding="utf-8")]
    return {row["solution"].strip(): row["unique_id"] for row in rows}


def import_math_verify(mirror: Path, solutions: dict[str, str]) -> tuple[list[dict[str, Any]], int]:
    commit = _git(mirror, "rev-parse", "HEAD").strip()
    cases: list[dict[str, Any]] = []
    skipped = 0
    for path, functions in MATH_VERIFY_FILES.items():
        source = _git(mirror, "show", f"HEAD:{path}")
        lines = source.splitlines()
        for fn in ast.walk(ast.parse(source)):
            if not isinstance(fn, ast.FunctionDef) or fn.name not in functions:
                continue
            for deco in fn.decorator_list:
                if not (
                    isinstance(deco, ast.Call) and getattr(deco.func, "attr", "") == "parametrize"
                ):
                    continue
                names = [n.strip() for n in _value(deco.args[0]).split(",")]
                for element in deco.args[1].elts:  # type: ignore[attr-defined]
                    row = dict(zip(names, [_value(e) for e in element.elts], strict=True))
                    options = dict(functions[fn.name])
                    for key in ("precision", "strict", "allow_set_relation_comp"):
                        if key in row:
                            options[key] = row[key]
                    expected = row.get("expected", row.get("result"))
                    case_id = f"math-verify:{path}:{element.lineno}"
                    same_line = sum(c["id"].split("#")[0] == case_id for c in cases)
                    case: dict[str, Any] = {
                        "id": case_id + (f"#{same_line + 1}" if same_line else ""),
                        "source": {"repo": "huggingface/Math-Verify", "path": path,
                                   "commit": commit, "line": element.lineno, "test": fn.name},
                        "level": "response",
                        "gold": row["gold"],
                        "pred": row["pred"],
                        "expected": bool(expected),
                    }  # fmt: skip
                    if options:
                        case["options"] = options
                    comment = _comment_above(lines, element.lineno)
                    if comment:
                        case["peer_comment"] = comment
                    for side in ("gold", "pred"):
                        if (path, element.lineno, side) not in REFERENCE_SOLUTIONS:
                            continue
                        uid = solutions.get(case[side].strip())
                        if uid is not None:
                            case[side] = {"math500": uid}
                            continue
                        box = _final_box(case[side])
                        if box is None:
                            case = {}
                            break
                        case[side] = box
                        case.setdefault("reduced", {})[side] = (
                            "a MATH reference solution: only its final \\boxed{} is kept"
                        )
                    if case:
                        cases.append(case)
                    else:
                        skipped += 1
    return cases, skipped


def import_math_verify_letters(mirror: Path) -> list[dict[str, Any]]:
    """Math-Verify's string (multiple-choice) extraction cases: text -> letter or none."""
    path = "tests/test_string_extraction.py"
    commit = _git(mirror, "rev-parse", "HEAD").strip()
    source = _git(mirror, "show", f"HEAD:{path}")
    lines = source.splitlines()
    cases = []
    for deco in (d for fn in ast.walk(ast.parse(source)) if isinstance(fn, ast.FunctionDef)
                 for d in fn.decorator_list if isinstance(d, ast.Call)):  # fmt: skip
        names = [n.strip() for n in _value(deco.args[0]).split(",")]
        for element in deco.args[1].elts:  # type: ignore[attr-defined]
            row = dict(zip(names, [_value(e) for e in element.elts], strict=True))
            if "strings=" in row["config"]:
                continue  # a custom set of accepted strings: not a letter question
            case = {
                "id": f"math-verify:{path}:{element.lineno}",
                "source": {"repo": "huggingface/Math-Verify", "path": path, "commit": commit,
                           "line": element.lineno, "test": "test_string_extraction"},
                "level": "letter",
                "pred": row["pred"],
                "gold": row["expected"][-1] if row["expected"] else None,
                "expected": True,
            }  # fmt: skip
            comment = _comment_above(lines, element.lineno)
            if comment:
                case["peer_comment"] = comment
            cases.append(case)
    return cases


def import_hendrycks(mirror: Path) -> list[dict[str, Any]]:
    path = "modeling/math_equivalence_test.py"
    commit = _git(mirror, "rev-parse", "HEAD").strip()
    source = _git(mirror, "show", f"HEAD:{path}")
    cases = []
    for fn in ast.walk(ast.parse(source)):
        if not isinstance(fn, ast.FunctionDef) or not fn.name.startswith("test_"):
            continue
        values: dict[str, str] = {}
        expected = None
        for stmt in fn.body:
            if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name):
                values[stmt.targets[0].id] = _value(stmt.value)
            elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
                expected = getattr(stmt.value.func, "attr", "") == "assertTrue"
        cases.append({
            "id": f"hendrycks-math:{path}:{fn.name}",
            "source": {"repo": "hendrycks/math", "path": path, "commit": commit,
                       "line": fn.lineno, "test": fn.name},
            "level": "answer",
            "gold": values["test_out"],
            "pred": values["test_in"],
            "expected": bool(expected),
        })  # fmt: skip
    return cases


def _write(name: str, cases: list[dict[str, Any]]) -> None:
    target = CASES / name
    old: dict[str, dict[str, Any]] = {}
    if target.exists():
        old = {c["id"]: c for c in map(json.loads, target.open(encoding="utf-8"))}
    with target.open("w", encoding="utf-8") as out:
        for case in cases:
            for key in ("ttc", "why"):
                if key in old.get(case["id"], {}):
                    case[key] = old[case["id"]][key]
            out.write(json.dumps(case, ensure_ascii=False) + "\n")


def main() -> None:
    mirrors = Path(sys.argv[1])
    CASES.mkdir(exist_ok=True)
    solutions = _math500_solutions()
    mv, skipped = import_math_verify(mirrors / "huggingface+Math-Verify" / "repo", solutions)
    mv += import_math_verify_letters(mirrors / "huggingface+Math-Verify" / "repo")
    _write("math_verify.jsonl", mv)
    hendrycks = import_hendrycks(mirrors / "hendrycks+math" / "repo")
    _write("hendrycks_math.jsonl", hendrycks)
    print(f"Math-Verify: {len(mv)} cases ({skipped} left out); "
          f"hendrycks/math: {len(hendrycks)} cases")  # fmt: skip


if __name__ == "__main__":
    main()
