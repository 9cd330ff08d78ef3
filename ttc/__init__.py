"""ttc: test-time-compute scaling experiments for large language models.

The library surface a notebook needs is re-exported here; heavy modules (pandas,
matplotlib, scipy) load only when a frame, fit or figure is asked for, so the
command line starts quickly.
"""

from __future__ import annotations

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

__all__ = [
    "APIError",
    "Config",
    "ConfigError",
    "DatasetError",
    "Problem",
    "Run",
    "RunConflictError",
    "Sweep",
    "SweepResult",
    "TTCError",
    "UserInputError",
    "__version__",
    "load_config",
    "open_run",
]

__version__ = "0.1.0"
