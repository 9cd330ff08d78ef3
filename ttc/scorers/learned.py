"""A learned scoring model: L2-regularised logistic regression, cross-fitted by problem.

Why cross-fitting: a scorer fitted on a problem's own labels and then used to pick
among that problem's samples reports best-of-k that no deployed system could reach.
Problems are split into ``n_folds`` folds; the samples of each fold are scored by a
model fitted only on the other folds, so no problem's label ever informs its own
scores. Why not scikit-learn: one convex objective with an analytic gradient and
Hessian is a few lines on scipy's trust-region Newton solver, which keeps a heavy
dependency out of the core; the estimator follows scikit-learn's conventions
(keyword-only ``__init__`` storing parameters, ``fit`` returning self, fitted state
with a trailing underscore).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

from ttc.errors import ConfigError, UserInputError
from ttc.scorers.base import ScorableSample
from ttc.scorers.features import DEFAULT_FEATURES, build_features, expand_features

__all__ = ["Groups", "LearnedScorer", "assign_folds"]

#: one problem id per row: a list or a 1-d array
Groups = Sequence[Hashable] | np.ndarray


def assign_folds(groups: Groups, n_folds: int, seed: int) -> dict[Hashable, int]:
    """Map each distinct group to a fold: a seeded shuffle dealt round-robin.

    Depends only on the set of groups and the seed, never on labels or order.
    """
    unique = sorted(set(groups), key=str)
    order = np.random.default_rng(seed).permutation(len(unique))
    return {unique[j]: pos % n_folds for pos, j in enumerate(order)}


class LearnedScorer:
    """P(correct) of each sample from label-free features, cross-fitted over problems.

    As an estimator: ``fit(X, y, groups)`` / ``predict_proba(X)`` on numpy arrays.
    As a ``Scorer``: called with every sample of a run (``whole_run``), it builds
    features, fits on labelled problems of the other folds, and scores each fold.
    """

    whole_run = True
    needs_text = False

    def __init__(
        self,
        *,
        features: Sequence[str] = DEFAULT_FEATURES,
        l2: float = 1.0,
        n_folds: int = 5,
        seed: int = 0,
        name: str = "learned",
    ) -> None:
        self.features = tuple(features)
        self.l2 = l2
        self.n_folds = n_folds
        self.seed = seed
        self.name = name

    @classmethod
    def from_options(cls, name: str, options: dict[str, Any]) -> LearnedScorer:
        """Build from a ``[[scorers]]`` entry's options (``features``, ``l2``, ...)."""
        from ttc.scorer_rules import check_scorer_options

        check_scorer_options("learned", name, options)
        scorer = cls(name=name, **options)
        if scorer.l2 < 0 or scorer.n_folds < 2:
            raise ConfigError(f"scorer {name!r}: need l2 >= 0 and n_folds >= 2")
        return scorer

    @property
    def version(self) -> str:
        """Changes with every parameter that changes the scores."""
        params = {"features": list(self.features), "l2": self.l2, "n_folds": self.n_folds,
                  "seed": self.seed}
        digest = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:10]
        return f"learned-v1:{digest}"

    def get_params(self) -> dict[str, Any]:
        return {"features": self.features, "l2": self.l2, "n_folds": self.n_folds,
                "seed": self.seed, "name": self.name}

    # ------------------------------------------------------------ estimator
    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        groups: Groups | None = None,
        *,
        feature_names: Sequence[str] | None = None,
    ) -> LearnedScorer:
        """Fit on rows with a label (NaN in ``y`` = unlabelled, ignored).

        With ``groups`` (problem ids) every problem carries total weight 1, so a problem
        with more samples does not dominate and ``l2`` is relative to the number of
        problems; without, every sample weighs 1.
        """
        X = np.asarray(X, dtype=float)
        y = np.asarray(y, dtype=float)
        keep = ~np.isnan(y)
        X, y = X[keep], y[keep]
        weights = np.ones(len(y))
        if groups is not None:
            g = np.asarray([str(v) for v in groups], dtype=object)[keep]
            _, inverse, counts = np.unique(g, return_inverse=True, return_counts=True)
            weights = 1.0 / counts[inverse]
        names = list(feature_names) if feature_names is not None else None
        if names is None or len(names) != X.shape[1]:
            names = [f"x{i}" for i in range(X.shape[1])]
        self.feature_names_ = names
        self.n_train_ = int(len(y))
        if len(y):
            self.mean_ = np.average(X, axis=0, weights=weights)
            scale = np.sqrt(np.average((X - self.mean_) ** 2, axis=0, weights=weights))
        else:
            self.mean_, scale = np.zeros(X.shape[1]), np.ones(X.shape[1])
        self.scale_ = np.where(scale > 1e-12, scale, 1.0)
        if len(y) == 0:
            raise ValueError("no labelled samples to fit on")
        if y.min() == y.max():
            rate = float(np.clip(np.average(y, weights=weights), 1e-3, 1 - 1e-3))
            beta, b = np.zeros(X.shape[1]), float(np.log(rate / (1 - rate)))
        else:
            beta, b = self._solve((X - self.mean_) / self.scale_, y, weights)
        self.coef_std_ = beta
        self.coef_ = beta / self.scale_
        self.intercept_ = float(b - np.dot(self.coef_, self.mean_))
        return self

    def _solve(self, Z: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, float]:
        d = Z.shape[1]
        A = np.hstack([Z, np.ones((len(y), 1))])
        penalty = np.full(d + 1, self.l2)
        penalty[-1] = 0.0  # the intercept is not shrunk

        def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
            z = A @ theta
            # log(1 + e^z) - y z, computed stably
            loss = np.sum(w * (np.logaddexp(0.0, z) - y * z)) + 0.5 * np.sum(penalty * theta**2)
            grad = A.T @ (w * (expit(z) - y)) + penalty * theta
            return float(loss), grad

        def hessian(theta: np.ndarray) -> np.ndarray:
            p = expit(A @ theta)
            return (A * (w * p * (1 - p))[:, None]).T @ A + np.diag(penalty)

        # a convex objective with a handful of parameters: exact Newton steps in a trust
        # region converge in a few iterations (L-BFGS needed ~10x the time here)
        result = minimize(objective, np.zeros(d + 1), jac=True, hess=hessian,
                          method="trust-exact", options={"gtol": 1e-8, "maxiter": 200})
        return result.x[:d], float(result.x[d])

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Log-odds of correctness."""
        return np.asarray(X, dtype=float) @ self.coef_ + self.intercept_

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """``(n, 2)`` array of P(wrong), P(correct), as scikit-learn returns."""
        p = expit(self.decision_function(X))
        return np.column_stack([1 - p, p])

    def cross_fit_predict(
        self, X: np.ndarray, y: np.ndarray, groups: Groups,
        *, feature_names: Sequence[str] | None = None,
    ) -> np.ndarray:
        """P(correct) for every row, each from a model that never saw its group's labels.

        Sets ``folds_`` (group -> fold) and ``fold_models_`` (one fitted copy per fold).
        """
        X = np.asarray(X, dtype=float)
        y = np.asarray(y, dtype=float)
        groups = list(groups)
        n_groups = len(set(groups))
        if n_groups < 2:
            raise ValueError("cross-fitting needs samples of at least two problems")
        folds = assign_folds(groups, min(self.n_folds, n_groups), self.seed)
        fold_of = np.array([folds[g] for g in groups])
        out = np.full(len(y), np.nan)
        self.fold_models_: list[LearnedScorer] = []
        for k in sorted(set(folds.values())):
            held = fold_of == k
            train = ~held & ~np.isnan(y)
            model = LearnedScorer(**self.get_params())
            if train.any():
                train_groups = [g for g, t in zip(groups, train, strict=True) if t]
                model.fit(X[train], y[train], train_groups, feature_names=feature_names)
                out[held] = model.predict_proba(X[held])[:, 1]
            self.fold_models_.append(model)
        self.folds_ = folds
        return out

    # ------------------------------------------------------------ scorer
    async def __call__(self, samples: Sequence[ScorableSample]) -> list[float | None]:
        """Cross-fitted scores for a whole run; also fits ``coef_`` on all labels to inspect."""
        names = expand_features(self.features, samples)
        X = build_features(samples, names)
        y = np.array([np.nan if s.record.correct is None else float(s.record.correct)
                      for s in samples])
        groups = [s.record.problem_id for s in samples]
        if np.isnan(y).all():
            raise UserInputError(f"learned scorer {self.name!r}: no graded samples to learn from")
        try:
            p = self.cross_fit_predict(X, y, groups, feature_names=names)
        except ValueError as exc:
            raise UserInputError(f"learned scorer {self.name!r}: {exc}") from None
        self.fit(X, y, groups, feature_names=names)
        return [None if np.isnan(v) else float(v) for v in p]

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"LearnedScorer({params})"
