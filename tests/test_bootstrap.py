"""The one problem-bootstrap engine: its NaN policy, degenerate cases, bounds, and scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from ttc.bootstrap import NAN_POLICY, ProblemBootstrap, paired_bootstrap


def test_shaped_like_scipy_and_agrees_with_its_percentile_interval() -> None:
    rng = np.random.default_rng(0)
    values = rng.beta(2, 3, size=300)
    ours = ProblemBootstrap(300, n_boot=4000, seed=1).mean(values, keep_distribution=True)
    theirs = stats.bootstrap((values,), np.mean, n_resamples=4000, method="percentile",
                             random_state=np.random.default_rng(1))
    assert ours.estimate == pytest.approx(values.mean())
    for mine, ref in ((ours.confidence_interval.low, theirs.confidence_interval.low),
                      (ours.confidence_interval.high, theirs.confidence_interval.high)):
        assert mine == pytest.approx(ref, abs=0.004)
    assert ours.standard_error == pytest.approx(theirs.standard_error, rel=0.1)
    assert ours.bootstrap_distribution is not None and ours.bootstrap_distribution.shape == (4000,)
    assert ours.n_problems == 300 and not ours.degenerate


def test_nan_means_no_value_and_is_skipped_in_estimate_and_replicates() -> None:
    values = np.array([[1.0, 0.0], [0.0, np.nan], [1.0, 1.0], [np.nan, np.nan]])
    boot = ProblemBootstrap(4, n_boot=500, seed=3)
    res = boot.mean(values)
    assert res.estimate.tolist() == pytest.approx([2 / 3, 0.5])
    assert res.n_problems.tolist() == [3, 2]
    dist = boot.replicate_means(values)
    # a replicate mean averages only the drawn problems that have a value
    w = boot.weights
    with np.errstate(invalid="ignore"):  # 0/0: a replicate that drew none of the three
        manual = (w[:, :3] @ np.array([1.0, 0.0, 1.0])) / w[:, :3].sum(axis=1)
    np.testing.assert_allclose(dist[:, 0], manual)
    assert np.isnan(dist[:, 1]).any()  # some replicates drew neither valued problem
    assert np.isfinite(res.confidence_interval.low).all()  # ...and are left out
    assert "NaN" in NAN_POLICY


def test_fewer_than_two_problems_is_degenerate_not_a_zero_width_interval() -> None:
    one = ProblemBootstrap(1, n_boot=200, seed=0).mean([23.56])
    assert one.estimate == 23.56 and one.degenerate
    assert np.isnan(one.confidence_interval.low) and np.isnan(one.confidence_interval.high)
    column = ProblemBootstrap(3, n_boot=200).mean(np.array([[1.0], [np.nan], [np.nan]]))
    assert bool(column.degenerate[0]) and np.isnan(column.confidence_interval.low[0])
    same = ProblemBootstrap(5, n_boot=200).mean(np.full(5, 0.4))  # no spread: a real [x, x]
    assert not same.degenerate and same.confidence_interval == (pytest.approx(0.4),
                                                                 pytest.approx(0.4))


def test_bounds_clip_estimate_and_interval() -> None:
    boot = ProblemBootstrap(50, n_boot=300, seed=0)
    rng = np.random.default_rng(1)
    lines = 0.95 + rng.normal(0, 0.1, size=(300, 1))  # replicates of some derived statistic
    res = boot.interval([0.99], lines, n_problems=50, bounds=(0.0, 1.0))
    assert res.confidence_interval.high[0] == 1.0 and res.confidence_interval.low[0] < 1.0


def test_hostile_inputs() -> None:
    boot = ProblemBootstrap(3, n_boot=10)
    with pytest.raises(ValueError, match="infinite"):
        boot.mean([1.0, np.inf, 0.0])
    with pytest.raises(ValueError, match="3 problems"):
        boot.mean([1.0, 0.0])
    with pytest.raises(ValueError, match="level"):
        ProblemBootstrap(3, level=1.0)
    with pytest.raises(ValueError, match="non-empty"):
        paired_bootstrap([], [])
    with pytest.raises(ValueError, match="both sides"):
        paired_bootstrap([np.nan, 1.0], [0.0, np.nan])
    empty = ProblemBootstrap(0, n_boot=10).mean(np.zeros((0, 2)))
    assert np.isnan(empty.estimate).all() and empty.degenerate.all()
    none = ProblemBootstrap(5, n_boot=0).mean(np.arange(5.0))
    assert none.estimate == 2.0 and np.isnan(none.confidence_interval.low)


def test_seeded_and_subsets_are_independent_of_each_other() -> None:
    values = np.random.default_rng(4).random(40)
    a = ProblemBootstrap(40, n_boot=300, seed=9)
    b = ProblemBootstrap(40, n_boot=300, seed=9)
    assert a.mean(values).confidence_interval == b.mean(values).confidence_interval
    mask = np.arange(40) < 20
    first = a.subset(mask, "subject:algebra").mean(values[mask])
    again = ProblemBootstrap(40, n_boot=300, seed=9).subset(mask, "subject:algebra")
    assert again.mean(values[mask]).confidence_interval == first.confidence_interval
    other = a.subset(mask, "subject:geometry").mean(values[mask])
    assert other.confidence_interval != first.confidence_interval  # its own draw


def test_paired_pvalue_and_nan_pairs() -> None:
    rng = np.random.default_rng(5)
    first = rng.random(100)
    same = paired_bootstrap(first, first + rng.normal(0, 0.01, 100), n_boot=2000, seed=0)
    assert same.pvalue > 0.05 and same.confidence_interval.low < 0 < same.confidence_interval.high
    second = first.copy()
    second[:10] = np.nan  # problems without a value on one side are not pairs
    res = paired_bootstrap(first, second + 0.1, n_boot=500)
    assert res.n_problems == 90 and res.estimate == pytest.approx(0.1)
    assert res.pvalue < 0.01 and res.sign == "second minus first"


def test_sizes_that_cannot_fit_are_refused_before_allocating() -> None:
    """10^8 resamples of one problem once grew to 23 GB; now it is one user error (and
    a ValueError for library callers) naming the largest count that fits."""
    import tracemalloc

    from ttc.bootstrap import MAX_WEIGHTS
    from ttc.errors import BootstrapSizeError, UserInputError

    tracemalloc.start()
    try:
        for n_problems, n_boot in ((1, 100_000_000), (5_000, 100_000), (10**12, 10**12)):
            with pytest.raises(BootstrapSizeError, match="use at most") as info:
                ProblemBootstrap(n_problems, n_boot=n_boot)
            assert isinstance(info.value, ValueError) and isinstance(info.value, UserInputError)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000
    fits = ProblemBootstrap(200, n_boot=MAX_WEIGHTS // 200)  # exactly at the limit: allowed
    assert fits.n_boot * fits.n_problems == MAX_WEIGHTS
