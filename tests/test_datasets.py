"""Dataset loaders on the real benchmark files, a synthetic GPQA CSV, and bad inputs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from ttc.config import DatasetConfig
from ttc.datasets import dataset_fingerprint, detect_format, load_dataset
from ttc.errors import DatasetError, UserInputError
from ttc.grading import is_equivalent

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _shared(relative: str) -> str:
    if not (SHARED / relative).exists():
        pytest.skip(f"{SHARED / relative} not present")
    return relative


def _load(path: str | Path, base: Path = SHARED, **kwargs: object) -> list:
    return load_dataset(DatasetConfig(path=str(path), **kwargs), base_dir=base)  # type: ignore[arg-type]


# ---------------------------------------------------------------- real formats


def test_gsm8k() -> None:
    problems = _load(_shared("gsm8k/test.jsonl"))
    assert len(problems) == 1319
    first = problems[0]
    assert first.kind == "math" and first.answer == "18" and first.id == "gsm8k-1"
    assert first.question.startswith("Janet")
    assert all(p.answer and "," not in p.answer and "#" not in p.answer for p in problems)
    assert any(p.answer == "2125" for p in problems)  # "#### 2,125" in the source
    assert len({p.id for p in problems}) == 1319
    assert _load("gsm8k/test.jsonl", format="gsm8k") == problems


def test_math500() -> None:
    problems = _load(_shared("math500/test.jsonl"))
    assert len(problems) == 500
    assert problems[0].id == "test/precalculus/807.json"
    assert problems[0].answer == "\\left( 3, \\frac{\\pi}{2} \\right)"
    subjects = {p.subject for p in problems}
    assert subjects == {
        "Algebra",
        "Intermediate Algebra",
        "Prealgebra",
        "Number Theory",
        "Precalculus",
        "Geometry",
        "Counting & Probability",
    }
    assert {p.meta["level"] for p in problems} == {1, 2, 3, 4, 5}
    algebra = _load("math500/test.jsonl", subjects=["algebra"])  # case-insensitive
    assert len(algebra) == 124 and {p.subject for p in algebra} == {"Algebra"}


def test_math_answer_from_last_boxed(tmp_path: Path) -> None:
    rows = [
        {"problem": "p1", "solution": "first \\boxed{1} then \\boxed{\\frac{a}{b}}.", "level": 1},
        {"problem": "p2", "solution": "x", "answer": "7", "subject": "Algebra"},
    ]
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    problems = _load(path, tmp_path)
    assert [p.answer for p in problems] == ["\\frac{a}{b}", "7"]
    assert [p.id for p in problems] == ["math-1", "math-2"]


def test_aime_keeps_leading_zeros() -> None:
    problems = _load(_shared("aime24/test.jsonl"))
    assert len(problems) == 30
    assert problems[0].id == "60" and problems[0].answer == "204"
    zero_padded = [p for p in problems if p.answer.startswith("0")]
    assert {p.answer for p in zero_padded} >= {"025", "073", "023"}
    assert is_equivalent("25", "025", "math")


def test_mmlu_stem() -> None:
    problems = _load(_shared("mmlu_stem/test.jsonl"))
    assert len(problems) == 3018
    first = problems[0]
    assert first.kind == "mcq" and first.choices is not None and len(first.choices) == 4
    assert first.answer == "C" and first.subject == "college_biology"
    assert first.choices[2].startswith("reduce the carrying capacity")
    assert {p.answer for p in problems} == {"A", "B", "C", "D"}
    assert len({p.subject for p in problems}) == 18
    assert all(p.correct_index is not None for p in problems)


# ---------------------------------------------------------------- GPQA (synthetic)

GPQA_HEADER = [
    "Record ID",
    "Question",
    "Correct Answer",
    "Incorrect Answer 1",
    "Incorrect Answer 2",
    "Incorrect Answer 3",
    "Subdomain",
    "High-level domain",
]
GPQA_ROWS = [
    ["rec1", "Which invented organelle glows?", "Lumisome", "Darkosome", "Gravisome", "Nullsome",
     "Molecular Biology", "Biology"],
    ["rec2", "An invented gas X2 has\nhow many atoms\nper molecule?", "2", "1", "3", "4",
     "Inorganic Chemistry", "Chemistry"],
    ["rec3", "A made-up particle 'zeton' has spin?", "1/2", "0", "1", "3/2",
     "Quantum Mechanics", "Physics"],
    ["rec4", "Which invented law says \"quux\"?", "Quux's law", "Foo's law", "Bar's law",
     "Baz's law", "Relativistic Mechanics", "Physics"],
]  # fmt: skip


def _write_gpqa(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(GPQA_HEADER)
        writer.writerows(rows)
    return path


def test_gpqa_csv(tmp_path: Path) -> None:
    path = _write_gpqa(tmp_path / "gpqa_main.csv", GPQA_ROWS)
    problems = _load(path.name, tmp_path)
    assert [p.id for p in problems] == ["rec1", "rec2", "rec3", "rec4"]
    assert all(p.kind == "mcq" and p.answer == "A" for p in problems)
    assert problems[0].choices == ("Lumisome", "Darkosome", "Gravisome", "Nullsome")
    assert [p.subject for p in problems] == ["Biology", "Chemistry", "Physics", "Physics"]
    assert problems[1].meta["subdomain"] == "Inorganic Chemistry"
    assert problems[1].question.count("\n") == 2
    assert _load(path.name, tmp_path, format="gpqa") == problems
    assert [p.id for p in _load(path.name, tmp_path, subjects=["Physics"])] == ["rec3", "rec4"]


def test_gpqa_refuses_unshuffled_choices(tmp_path: Path) -> None:
    path = _write_gpqa(tmp_path / "g.csv", GPQA_ROWS)
    with pytest.raises(DatasetError, match="shuffle_choices"):
        _load(path, tmp_path, shuffle_choices="none")


def test_gpqa_error_names_physical_line(tmp_path: Path) -> None:
    rows = [list(GPQA_ROWS[1]), list(GPQA_ROWS[0])]
    rows[1][3] = "  "  # Incorrect Answer 1 blank; record starts on line 5 (row 1 spans 3)
    path = _write_gpqa(tmp_path / "g.csv", rows)
    with pytest.raises(DatasetError) as err:
        _load(path, tmp_path)
    assert err.value.line == 5 and err.value.path == path
    assert "Incorrect Answer 1" in str(err.value) and f"{path}:5:" in str(err.value)


def test_gpqa_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "g.csv"
    path.write_text("Question,Correct Answer\nq,a\n")
    with pytest.raises(DatasetError, match="Incorrect Answer 1") as err:
        _load(path, tmp_path)
    assert err.value.line == 1


# ---------------------------------------------------------------- canonical JSONL


def test_canonical_jsonl_answer_forms(tmp_path: Path) -> None:
    rows = [
        {"id": "a", "question": "q", "answer": "1/2", "subject": "s1"},
        {"id": "b", "question": "q", "choices": ["x", "y", "z"], "answer": "y"},
        {"id": "c", "question": "q", "choices": ["x", "y", "z"], "answer": 2},
        {"id": "d", "question": "q", "choices": ["x", "y", "z"], "answer": "b"},
        {"id": 5, "question": "q", "answer": 12},
    ]
    path = tmp_path / "c.jsonl"
    path.write_text("\n\n".join(json.dumps(r) for r in rows))
    problems = _load(path, tmp_path, format="jsonl")
    assert [p.id for p in problems] == ["a", "b", "c", "d", "5"]
    assert [p.answer for p in problems] == ["1/2", "B", "C", "B", "12"]
    assert [p.kind for p in problems] == ["math", "mcq", "mcq", "mcq", "math"]


# ---------------------------------------------------------------- selection


def test_sample_is_seeded_stable_and_ordered() -> None:
    rel = _shared("gsm8k/test.jsonl")
    full = _load(rel)
    a = _load(rel, sample=50, seed=1)
    b = _load(rel, sample=50, seed=1)
    c = _load(rel, sample=50, seed=2)
    assert a == b and len(a) == 50 and a != c
    positions = [full.index(p) for p in a]
    assert positions == sorted(positions)  # source order kept
    assert _load(rel, sample=50, seed=1, limit=10) == a[:10]
    assert _load(rel, limit=3) == full[:3]
    assert _load(rel, sample=5000) == full


def test_unknown_subject_lists_available() -> None:
    rel = _shared("mmlu_stem/test.jsonl")
    with pytest.raises(DatasetError, match="college_physics") as err:
        _load(rel, subjects=["astrology"])
    assert "astrology" in str(err.value)


def test_fingerprint_ignores_selection_but_not_data(tmp_path: Path) -> None:
    rel = _shared("math500/test.jsonl")
    base = dataset_fingerprint(DatasetConfig(path=rel), base_dir=SHARED)
    assert len(base) == 64
    for kwargs in ({"limit": 5}, {"sample": 20, "seed": 3}, {"subjects": ["Algebra"]}):
        config = DatasetConfig(path=rel, **kwargs)
        assert dataset_fingerprint(config, base_dir=SHARED) == base
    assert dataset_fingerprint(DatasetConfig(path=rel, format="math"), base_dir=SHARED) == base
    copy = tmp_path / "m.jsonl"
    copy.write_bytes((SHARED / rel).read_bytes())
    assert dataset_fingerprint(DatasetConfig(path=str(copy)), base_dir=tmp_path) == base
    copy.write_bytes((SHARED / rel).read_bytes() + b"\n")
    assert dataset_fingerprint(DatasetConfig(path=str(copy)), base_dir=tmp_path) != base
    as_jsonl = DatasetConfig(path=rel, format="jsonl")
    assert dataset_fingerprint(as_jsonl, base_dir=SHARED) != base


def test_builtin_goes_through_selection() -> None:
    full = load_dataset(DatasetConfig(builtin="mcq", size=30), base_dir=Path("."))
    assert len(full) == 30 and all(p.kind == "mcq" for p in full)
    subset = load_dataset(
        DatasetConfig(builtin="mcq", size=30, sample=10, limit=4), base_dir=Path(".")
    )
    assert len(subset) == 4 and all(p in full for p in subset)
    fp = dataset_fingerprint(DatasetConfig(builtin="mcq", size=30), base_dir=Path("."))
    assert fp == dataset_fingerprint(
        DatasetConfig(builtin="mcq", size=30, limit=3), base_dir=Path(".")
    )
    assert fp != dataset_fingerprint(DatasetConfig(builtin="mcq", size=31), base_dir=Path("."))


def test_detect_format() -> None:
    assert detect_format(Path("x.csv"), None) == "gpqa"
    assert detect_format(Path("x.jsonl"), {"question": "q", "answer": "a #### 3"}) == "gsm8k"
    assert detect_format(Path("x.jsonl"), {"problem": "p", "answer": "1", "id": 3}) == "aime"
    assert detect_format(Path("x.jsonl"), {"problem": "p", "level": 2}) == "math"
    assert detect_format(Path("x.jsonl"), {"question": "q", "choices": [], "answer": 0}) == "mcq"
    assert detect_format(Path("x.jsonl"), {"question": "q", "answer": "4"}) == "jsonl"


# ---------------------------------------------------------------- bad inputs

BAD_ROWS = [
    ('{"question": "q", "answer": "1"}\n{"question": "q2", "answer": \n', 2, "invalid JSON"),
    ('{"question": "q", "answer": "1"}\n[1, 2]\n', 2, "JSON object"),
    ('{"question": "q", "answer": "1"}\n\n{"answer": "2"}\n', 3, "no question"),
    ('{"question": "  ", "answer": "2"}\n', 1, "no question"),
    ('{"question": "q"}\n', 1, "no answer"),
    ('{"question": "q", "choices": ["a", "b"], "answer": 2}\n', 1, "out of range"),
    ('{"question": "q", "choices": ["a", "b"], "answer": "C"}\n', 1, "out of range"),
    ('{"question": "q", "choices": ["a", "b"], "answer": "zzz"}\n', 1, "not a choice"),
    ('{"question": "q", "choices": ["a"], "answer": 0}\n', 1, "at least 2"),
    ('{"question": "q", "choices": ["a", ""], "answer": 0}\n', 1, "choice 1 is empty"),
    ('{"id": "x", "question": "q", "answer": "1"}\n{"id": "x", "question": "r", "answer": "2"}\n',
     2, "duplicate problem id 'x' (first on line 1)"),
    # Python's json accepts these; a gold answer "nan" or "inf" grades nothing right
    ('{"question": "q", "answer": "1"}\n{"question": "1+1?", "answer": NaN}\n', 2, "NaN"),
    ('{"question": "1+1?", "answer": Infinity}\n', 1, "Infinity"),
    ('{"question": "1+1?", "answer": -Infinity}\n', 1, "-Infinity"),
    ('{"question": "1+1?", "answer": 1e400}\n', 1, "1e400"),
    ('{"question": "q", "choices": ["a", NaN], "answer": 0}\n', 1, "non-finite"),
    ('{"question": "q", "answer": "2", "meta": {"w": NaN}}\n', 1, "non-finite"),
]  # fmt: skip


@pytest.mark.parametrize(("content", "line", "message"), BAD_ROWS)
def test_bad_rows_name_file_and_line(tmp_path: Path, content: str, line: int, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(DatasetError) as err:
        _load(path, tmp_path)
    assert err.value.line == line and err.value.path == path
    assert str(err.value).startswith(f"{path}:{line}: ")
    assert message in str(err.value)
    assert isinstance(err.value, UserInputError)


@pytest.mark.parametrize(
    ("fmt", "content", "line", "message"),
    [
        ("gsm8k", '{"question": "q", "answer": "#### 1"}\n{"question": "q", "answer": "7"}\n',
         2, "####"),
        ("math", '{"problem": "p", "solution": "no box here"}\n', 1, "\\boxed{}"),
        ("aime", '{"id": 1, "problem": "p", "answer": ""}\n', 1, "no answer"),
        ("mcq", '{"question": "q", "choices": "abcd", "answer": 0}\n', 1, "must be a list"),
    ],
)  # fmt: skip
def test_bad_rows_per_format(
    tmp_path: Path, fmt: str, content: str, line: int, message: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(DatasetError) as err:
        _load(path, tmp_path, format=fmt)
    assert err.value.line == line and message in str(err.value)


def test_missing_empty_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not found") as err:
        _load("nope.jsonl", tmp_path)
    assert err.value.path == tmp_path / "nope.jsonl"
    (tmp_path / "empty.jsonl").write_text("\n  \n")
    with pytest.raises(DatasetError, match="empty"):
        _load("empty.jsonl", tmp_path)
    (tmp_path / "latin.jsonl").write_bytes(b'{"question": "q", "answer": "1"}\n\xff\xfe\n')
    with pytest.raises(DatasetError, match="UTF-8") as err:
        _load("latin.jsonl", tmp_path)
    assert err.value.line == 2
    with pytest.raises(DatasetError, match="directory"):
        _load(".", tmp_path)
    with pytest.raises(DatasetError, match="not found"):
        dataset_fingerprint(DatasetConfig(path="nope.jsonl"), base_dir=tmp_path)
    with pytest.raises(DatasetError, match="dataset.format"):
        _load("empty.jsonl", tmp_path, format="parquet")


def test_nothing_is_half_loaded(tmp_path: Path) -> None:
    good = [json.dumps({"question": f"q{i}", "answer": str(i)}) for i in range(100)]
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join([*good, "{broken", *good]))
    with pytest.raises(DatasetError) as err:
        _load(path, tmp_path)
    assert err.value.line == 101
