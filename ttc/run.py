"""The notebook face of a run directory: frames, and the run's one analysis.

Everything the CLI prints or draws is a call on ``Run`` first (``Run.analyze()`` is
what ``ttc report`` writes), so a notebook and ``ttc report`` always agree. Frames use
the dtypes a pandas user expects (see ``ttc._frames``).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ttc.config import parse_budget
from ttc.store import RunStore

if TYPE_CHECKING:
    import pandas as pd

    from ttc.analysis import Analysis
    from ttc.fits import LogLinearFit

__all__ = ["Run", "open_run"]


def open_run(path: str | Path, *, read_only: bool = True, wait: bool = False) -> Run:
    """Open an existing run directory (as written by ``ttc sweep``); read-only by default."""
    return Run(path, read_only=read_only, wait=wait)


class Run:
    """A stored sweep. Frames are computed on demand and cached until ``refresh()``."""

    def __init__(self, path: str | Path, *, read_only: bool = True, wait: bool = False) -> None:
        self.path = Path(path)
        # a reader takes no lock and never writes (a read-only mount works); scoring
        # opens its own writer, or pass read_only=False to hold the writer lock here
        self.store = RunStore(self.path, read_only=read_only, wait=wait)
        self._analyses: dict[str, Analysis] = {}

    # ------------------------------------------------------------ identity
    @cached_property
    def meta(self) -> dict[str, Any]:
        """``fingerprint`` (model, dataset, prompt), ``config`` and schema version."""
        return self.store.meta()

    @property
    def model(self) -> dict[str, Any]:
        return dict(self.meta.get("fingerprint", {}).get("model", {}))

    @property
    def dataset(self) -> Any:
        """Source, format, sha256, selection and subjects of the data (dict), as stored."""
        info = self.meta.get("dataset_info")
        return dict(info) if info else self.meta.get("fingerprint", {}).get("dataset")

    @property
    def prompt(self) -> dict[str, Any]:
        return dict(self.meta.get("fingerprint", {}).get("prompt", {}))

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.meta.get("config", {}))

    @property
    def grading(self) -> dict[str, Any] | None:
        """The rule every graded sample was graded under (``grader_version``,
        ``number_fallback``); None when no graded sample records one (an older ttc).
        Several rules give ``{"mixed": {rule: samples}}`` (``ttc grade`` unifies them)."""
        import json

        rules = {rule: n for rule, n in self.store.grading_rules().items() if rule}
        if len(rules) == 1:
            parsed = json.loads(next(iter(rules)))
            return dict(parsed) if isinstance(parsed, dict) else None
        return {"mixed": rules} if rules else None

    def refresh(self) -> None:
        """Forget cached frames (after more samples or scores were stored)."""
        for name in ("meta", "_samples", "_scores"):
            self.__dict__.pop(name, None)
        self._analyses.clear()

    # ------------------------------------------------------------ frames
    def samples(self, *, with_text: bool = False) -> pd.DataFrame:
        """One row per stored sample, with ``answer_class`` for voting (None = no vote).

        Budgets are ``int64`` (token budgets) or an ordered categorical (effort levels),
        ``correct`` is nullable ``boolean``, token counts are ``int64``.
        """
        if with_text:
            return _typed_samples(_with_classes(self.store.samples_frame(with_text=True)))
        return self._samples.copy()

    @cached_property
    def _samples(self) -> pd.DataFrame:
        return _typed_samples(_with_classes(self.store.samples_frame()))

    def scores(self) -> pd.DataFrame:
        """Stored scorer outputs: ``problem_id, budget, sample_index, scorer, version, score``."""
        return self._scores.copy()

    @cached_property
    def _scores(self) -> pd.DataFrame:
        frame = self.store.scores_frame()
        budgets = [parse_budget(label) for label in self.store.status_counts()]
        frame["sample_index"] = frame["sample_index"].astype("int64")
        return _typed_budgets(frame, budgets)

    def problems(self) -> list[Any]:
        """Stored problems with their stored choice order."""
        return self.store.problems()

    def active_scorers(self) -> dict[str, str]:
        """Each scorer's version that analyses use (the one last run)."""
        return self.store.active_scorers()

    def _latest_scores(self) -> pd.DataFrame | None:
        """One score per sample and scorer: each scorer's active version (for frames)."""
        scores = self._scores
        if scores.empty:
            return None
        keep = scores["version"] == scores["scorer"].map(self.active_scorers())
        return scores[keep].drop(columns=["version"])

    # ------------------------------------------------------------ analysis
    def analyze(self, **kwargs: Any) -> Analysis:
        """The run's one analysis pass (``ttc.analysis.analyze``), cached per arguments
        until ``refresh()``."""
        from ttc.analysis import analyze

        key = repr(sorted((k, v) for k, v in kwargs.items() if k != "progress"))
        if key not in self._analyses:
            self._analyses[key] = analyze(self, **kwargs)
        return self._analyses[key]

    def per_problem(
        self, *, metrics: Sequence[str] | None = None, ks: Sequence[int] | str | None = "all",
        n_mc: int = 200, seed: int = 0,
    ) -> pd.DataFrame:
        """Exact per-problem estimator values, read problem by problem from the store.

        Columns as ``ttc.curves.per_problem_values`` (default ks: 1..n, every k).
        """
        from ttc._pass import DEFAULT_METRICS, pass_over
        from ttc.curves import long_frame

        result = pass_over(self, metrics=metrics or DEFAULT_METRICS, ks=ks, n_mc=n_mc,
                           seed=seed)
        out = long_frame(result)
        out.attrs["n_failed_dropped"] = int(result.n_failed.sum())
        return out

    def curves(self, *, by: str | None = "subject", **kwargs: Any) -> pd.DataFrame:
        """Curves with problem-bootstrap intervals, from the run's one analysis pass.

        ``by="subject"`` (default): ``self.analyze(**kwargs).curves``, "all" plus one row
        set per subject (after the run's ``subject_map``). ``by=None``: "all" only.
        Another name: one row set per value of that key of the problems' stored metadata
        (``by="level"`` for MATH), in a column of that name, from the same per-problem
        values and the same seeded bootstrap as the analysis.
        """
        if by == "subject":
            return self.analyze(**kwargs).curves
        if by is None:
            return self.analyze(**{**kwargs, "by_subject": False}).curves
        from ttc.curves import category_curves

        categories = {p.id: p.meta.get(by) for p, _order in self.problems()}
        if all(value is None for value in categories.values()):
            from ttc.errors import UserInputError

            keys = sorted({key for p, _order in self.problems() for key in p.meta})
            raise UserInputError(f"{self.path}: no problem has {by!r} in its metadata; use "
                                 f"by='subject', None or one of: {', '.join(keys) or '(none)'}")
        return category_curves(self.analyze(**kwargs), categories, by)

    def fit(self, **kwargs: Any) -> LogLinearFit | None:
        """Accuracy against log2 mean realized thinking tokens, with problem-bootstrap CI
        (``self.analyze(**kwargs).fit``; None with one budget)."""
        return self.analyze(**kwargs).fit

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, model={self.model.get('name')!r})"


def _typed_samples(frame: pd.DataFrame) -> pd.DataFrame:
    from ttc._frames import typed_samples as typed

    return typed(frame)


def _typed_budgets(frame: pd.DataFrame, budgets: Sequence[Any]) -> pd.DataFrame:
    from ttc._frames import with_budget_dtype as typed

    return typed(frame, budgets)


def _with_classes(frame: pd.DataFrame) -> pd.DataFrame:
    """Add ``answer_class``: equivalent answers of one problem share one representative."""
    from ttc.grading import cluster_answers

    classes: list[Any] = [None] * len(frame)
    if frame.empty:
        frame["answer_class"] = classes
        return frame
    positions = {label: i for i, label in enumerate(frame.index)}
    for (_pid, kind), group in frame.groupby(["problem_id", "kind"], sort=False):
        answers = [a if isinstance(a, str) else None for a in group["answer"]]
        ids = cluster_answers(answers, "mcq" if kind == "mcq" else "math")
        representative: dict[int, str] = {}
        for label, answer, cid in zip(group.index, answers, ids, strict=True):
            if cid is None or answer is None:
                continue
            rep = representative.setdefault(cid, answer)
            classes[positions[label]] = rep
    frame["answer_class"] = classes
    return frame
