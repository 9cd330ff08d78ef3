"""The notebook face of a run directory: frames, curves, fits and plots from one object.

Everything the CLI prints or draws is a call on ``Run`` first, so a notebook and
``ttc report`` always agree.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ttc.store import RunStore

if TYPE_CHECKING:
    import pandas as pd

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

    def refresh(self) -> None:
        """Forget cached frames (after more samples or scores were stored)."""
        for name in ("meta", "_samples", "_scores"):
            self.__dict__.pop(name, None)

    # ------------------------------------------------------------ frames
    def samples(self, *, with_text: bool = False) -> pd.DataFrame:
        """One row per stored sample, with ``answer_class`` for voting (None = no vote)."""
        if with_text:
            return _with_classes(self.store.samples_frame(with_text=True))
        return self._samples.copy()

    @cached_property
    def _samples(self) -> pd.DataFrame:
        return _with_classes(self.store.samples_frame())

    def scores(self) -> pd.DataFrame:
        """Stored scorer outputs: ``problem_id, budget, sample_index, scorer, version, score``."""
        return self._scores.copy()

    @cached_property
    def _scores(self) -> pd.DataFrame:
        return self.store.scores_frame()

    def problems(self) -> list[Any]:
        """Stored problems with their stored choice order."""
        return self.store.problems()

    # ------------------------------------------------------------ analysis
    def per_problem(self, **kwargs: Any) -> pd.DataFrame:
        """Exact per-problem estimator values (see ``ttc.curves.per_problem_values``)."""
        from ttc.curves import per_problem_values

        return per_problem_values(self._samples, self._latest_scores(), **kwargs)

    def curves(self, **kwargs: Any) -> pd.DataFrame:
        """Curves with problem-bootstrap intervals (see ``ttc.curves.compute_curves``)."""
        from ttc.curves import compute_curves

        return compute_curves(self._samples, self._latest_scores(), **kwargs)

    def fit(self, **kwargs: Any) -> Any:
        """Accuracy against log2 mean realized thinking tokens, with problem-bootstrap CI.

        Keyword arguments go to ``ttc.analysis.fit_samples`` (``n_boot``, ``seed``, ``level``).
        """
        from ttc.analysis import fit_samples

        return fit_samples(self._samples, **kwargs)

    def _latest_scores(self) -> pd.DataFrame | None:
        """One score per sample and scorer: each scorer's active (last run) version."""
        scores = self._scores
        if scores.empty:
            return None
        active = self.store.active_scorers()
        keep = scores["version"] == scores["scorer"].map(active)
        return scores[keep].drop(columns=["version"])

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, model={self.model.get('name')!r})"


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
