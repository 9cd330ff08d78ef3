"""ttc: test-time-compute scaling experiments for large language models.

The names a user imports are listed in ``__all__`` and pinned by a test
(tests/test_public_api.py); modules whose names start with an underscore are private.
Heavy modules (pandas, matplotlib, scipy) load only when a frame, an estimator, an
analysis or a figure is asked for, so ``import ttc`` and the command line start
quickly: the analysis and estimator names below resolve on first use.

    import ttc
    run = ttc.open_run("runs/quickstart")
    analysis = ttc.analyze(run)          # or run.analyze()
    analysis.curves, analysis.fit, analysis.budgets
    ttc.compare(["runs/gen1", "runs/gen2"], metric="pass", k=5, by="subject")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ttc.config import Config, load_config
from ttc.errors import (
    APIError,
    ConfigError,
    DatasetError,
    RunConflictError,
    TTCError,
    UserInputError,
)
from ttc.problems import Problem
from ttc.run import Run, open_run
from ttc.sampler import Sweep, SweepResult

if TYPE_CHECKING:
    from ttc.analysis import Analysis, analyze
    from ttc.bootstrap import BootstrapResult, PairedDifference
    from ttc.comparison import compare
    from ttc.curves import paired_difference
    from ttc.estimators import (
        Estimate,
        best_of_k,
        g_pass_at_k,
        majority_at_k,
        pass_at_k,
        pass_hat_k,
        weighted_majority_at_k,
    )

__all__ = [
    "APIError",
    "Analysis",
    "analyze",
    "best_of_k",
    "BootstrapResult",
    "compare",
    "Config",
    "ConfigError",
    "DatasetError",
    "Estimate",
    "g_pass_at_k",
    "load_config",
    "majority_at_k",
    "open_run",
    "paired_difference",
    "PairedDifference",
    "pass_at_k",
    "pass_hat_k",
    "Problem",
    "Run",
    "RunConflictError",
    "Sweep",
    "SweepResult",
    "TTCError",
    "UserInputError",
    "weighted_majority_at_k",
    "__version__",
]

__version__ = "0.1.0"

#: names that load their (heavy) module on first use
_LAZY = {
    "Analysis": "ttc.analysis",
    "analyze": "ttc.analysis",
    "BootstrapResult": "ttc.bootstrap",
    "PairedDifference": "ttc.bootstrap",
    "compare": "ttc.comparison",
    "paired_difference": "ttc.curves",
    "Estimate": "ttc.estimators",
    "best_of_k": "ttc.estimators",
    "g_pass_at_k": "ttc.estimators",
    "majority_at_k": "ttc.estimators",
    "pass_at_k": "ttc.estimators",
    "pass_hat_k": "ttc.estimators",
    "weighted_majority_at_k": "ttc.estimators",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ttc' has no attribute {name!r}")


def __dir__() -> list[str]:
    """What tab completion offers: the public names only."""
    return sorted(__all__)
