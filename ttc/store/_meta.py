"""The typed, versioned record of a run: what ran, where it came from, how it is going.

The ``meta`` table is a key -> JSON map (so older and newer keys coexist); ``RunMeta``
is its one typed reading. Commands read fields (``meta.budgets``, ``meta.origin``)
instead of ``.get`` chains with silent defaults scattered over the code base.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ttc.config import Budget, parse_budget

__all__ = ["ORIGINS", "RunMeta", "SweepState"]

ORIGINS = ("sweep", "import")
Origin = Literal["sweep", "import"]


@dataclass(frozen=True, slots=True)
class SweepState:
    """The last (or current) sweep's concurrency, written as it runs, for ``ttc status``."""

    pid: int
    started_at: float
    updated_at: float
    #: ``sweep.concurrency``: the ceiling
    concurrency: int
    #: the adaptive limit when last written (429s and 529s push it down)
    effective_concurrency: int
    #: the lowest the limit went
    min_concurrency: int
    #: rate-limit and overload answers seen
    overloaded: int
    finished: bool

    @classmethod
    def from_dict(cls, data: Any) -> SweepState | None:
        if not isinstance(data, dict):
            return None
        try:
            return cls(
                pid=int(data.get("pid", 0)),
                started_at=float(data.get("started_at", 0.0)),
                updated_at=float(data.get("updated_at", 0.0)),
                concurrency=int(data.get("concurrency", 0)),
                effective_concurrency=int(data.get("effective_concurrency", 0)),
                min_concurrency=int(data.get("min_concurrency", 0)),
                overloaded=int(data.get("overloaded", 0)),
                finished=bool(data.get("finished", False)),
            )
        except (TypeError, ValueError):
            return None

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class RunMeta:
    """Everything a run records about itself, read once and typed.

    ``config`` is the public config as stored (no secrets), ``fingerprint`` the model,
    dataset and prompt identities a resumed sweep must match, ``dataset`` the source,
    hash and selection. ``origin`` is ``"import"`` for runs built by ``ttc import``
    (``import_info`` says from what); a sweep refuses to add to those.
    """

    schema_version: int
    origin: Origin
    ttc_version: str
    created_at: float | None
    fingerprint: dict[str, Any]
    config: dict[str, Any]
    dataset: dict[str, Any]
    n_problems: int
    import_info: dict[str, Any] | None
    last_sweep: SweepState | None
    #: the budget labels samples are stored under when they are not the configured
    #: budgets (agent runs in "separate" mode store "1024@8": thinking budget @ steps)
    sample_budgets: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, meta: dict[str, Any], *, schema_version: int) -> RunMeta:
        origin = meta.get("origin", "sweep")
        fingerprint = meta.get("fingerprint")
        config = meta.get("config")
        info = meta.get("dataset_info")
        imported = meta.get("import_info")
        created = meta.get("created_at")
        n_problems = meta.get("n_problems")
        return cls(
            schema_version=schema_version,
            origin=origin if origin in ORIGINS else "sweep",
            ttc_version=str(meta.get("ttc_version") or "unknown"),
            created_at=float(created) if isinstance(created, (int, float)) else None,
            fingerprint=dict(fingerprint) if isinstance(fingerprint, dict) else {},
            config=dict(config) if isinstance(config, dict) else {},
            dataset=dict(info) if isinstance(info, dict) else {},
            n_problems=n_problems if isinstance(n_problems, int) else 0,
            import_info=dict(imported) if isinstance(imported, dict) else None,
            last_sweep=SweepState.from_dict(meta.get("last_sweep")),
            sample_budgets=tuple(str(b) for b in meta.get("sample_budgets") or ()),
        )

    def to_dict(self) -> dict[str, Any]:
        """The ``meta`` table entries this record is written as."""
        out: dict[str, Any] = {
            "origin": self.origin,
            "ttc_version": self.ttc_version,
            "fingerprint": self.fingerprint,
            "config": self.config,
            "dataset_info": self.dataset,
            "n_problems": self.n_problems,
            "import_info": self.import_info,
        }
        if self.created_at is not None:
            out["created_at"] = self.created_at
        if self.last_sweep is not None:
            out["last_sweep"] = self.last_sweep.to_dict()
        if self.sample_budgets:
            out["sample_budgets"] = list(self.sample_budgets)
        return out

    # ------------------------------------------------------------ typed views
    @property
    def claimed(self) -> bool:
        """Whether a sweep or import has bound the run to a model, dataset and prompt."""
        return bool(self.fingerprint)

    @property
    def model(self) -> dict[str, Any]:
        return dict(self.fingerprint.get("model") or {})

    @property
    def model_name(self) -> str:
        model = self.model
        return str(model.get("name") or model.get("provider") or "unknown model")

    @property
    def prompt(self) -> dict[str, Any]:
        return dict(self.fingerprint.get("prompt") or {})

    @property
    def sweep(self) -> dict[str, Any]:
        section = self.config.get("sweep")
        return dict(section) if isinstance(section, dict) else {}

    @property
    def budgets(self) -> tuple[Budget, ...]:
        """The budget labels samples are stored under (empty when none were recorded)."""
        if self.sample_budgets:
            return tuple(parse_budget(b) for b in self.sample_budgets)
        raw = self.sweep.get("budgets")
        return tuple(parse_budget(b) for b in raw) if isinstance(raw, list) else ()

    @property
    def samples(self) -> int:
        """Samples per (problem, budget) cell as configured (0 when not recorded)."""
        value = self.sweep.get("samples")
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    @property
    def planned_cells(self) -> int:
        return self.n_problems * self.samples * len(self.budgets)

    @property
    def number_fallback(self) -> bool:
        """The run's ``[grading] number_fallback`` (true when not recorded, as in v1)."""
        grading = self.config.get("grading")
        value = grading.get("number_fallback") if isinstance(grading, dict) else None
        return value if isinstance(value, bool) else True
