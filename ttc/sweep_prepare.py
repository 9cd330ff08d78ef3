"""Before a sweep sends anything: validate, claim the run directory, plan what is missing.

Everything that can refuse a sweep refuses here, before the first request: a bad
dataset, an unset key, a budget the backend cannot express, a run of another model,
dataset or prompt, an imported run, another writer in the directory, a plan above
``sweep.confirm_above`` that was not confirmed. Stored samples graded under another
rule are regraded first, so one run never mixes two rules. The plan itself is
``ttc.plan``'s (counted, not enumerated); cells waiting on a provider batch are
neither done nor planned.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ttc.config import Config, config_error
from ttc.errors import ConfigError
from ttc.fsutil import user_path
from ttc.lock import Holder
from ttc.plan import SweepPlan, make_plan
from ttc.problems import Problem
from ttc.providers.base import Provider
from ttc.store import RunStore, SampleKey, grading_rule
from ttc.sweep_record import dataset_info, public_config, refuse_import

__all__ = ["Claim", "prepare", "prepare_dry", "prompt_identity", "replan"]


@dataclass(frozen=True, slots=True)
class Claim:
    """How to take the run directory: create it, and queue behind another writer
    (``wait``, telling ``on_wait`` who holds it) or refuse at once."""

    wait: bool = False
    on_wait: Callable[[Holder | None], None] | None = None
    #: a plan above ``sweep.confirm_above`` samples runs only when confirmed (--yes)
    confirmed: bool = False


def prepare(config: Config, run_dir: Path, provider: Provider | None,
            claim: Claim) -> tuple[RunStore, list[Problem], Provider, SweepPlan]:
    """Validate everything, claim the run directory and plan the missing samples."""
    problems, provider, fingerprint, orders = _load(config, provider, check_key=True)
    _check_size(config, problems, claim.confirmed)
    store = RunStore(run_dir, create=True, wait=claim.wait, on_wait=claim.on_wait)
    try:
        refuse_import(store)
        store.claim(fingerprint)
        store.put_problems(problems, orders)
        store.set_meta(
            config=public_config(config),
            n_problems=len(problems),
            dataset_info=dataset_info(config, fingerprint["dataset"], problems),
        )
        regraded = _unify_grading(config, store)
        plan = make_plan(config, problems, orders, store.done_keys(), provider,
                         store.batches.pending_keys())
        plan.regrade = regraded
    except BaseException:
        store.close()
        raise
    return store, problems, provider, plan


def prepare_dry(config: Config, run_dir: Path, provider: Provider | None
                ) -> tuple[None, list[Problem], Provider, SweepPlan]:
    """Like ``prepare`` but writes nothing and needs no key or lock: for ``--dry-run``."""
    problems, provider, fingerprint, orders = _load(config, provider, check_key=False)
    done: set[SampleKey] = set()
    pending: set[SampleKey] = set()
    regrade = 0
    if (run_dir / "samples.sqlite").exists():
        with RunStore(run_dir, read_only=True) as store:
            refuse_import(store)
            store.check(fingerprint)
            done = store.done_keys()
            pending = store.batches.pending_keys()
            rule = grading_rule(config.grading.number_fallback)
            regrade = sum(n for r, n in store.grading_rules().items() if r != rule)
    plan = make_plan(config, problems, orders, done, provider, pending)
    plan.regrade = regrade
    return None, problems, provider, plan


def replan(config: Config, store: RunStore, problems: list[Problem],
           provider: Provider) -> SweepPlan:
    """The plan again, after batch results changed what is stored or pending."""
    orders = {p.id: order for p, order in store.problems()}
    return make_plan(config, problems, orders, store.done_keys(), provider,
                     store.batches.pending_keys())


def prompt_identity(config: Config) -> dict[str, Any]:
    """What makes two sweeps' prompts the same (part of the run's fingerprint)."""
    from ttc.prompts import DEFAULT_TEMPLATES

    p, d = config.prompt, config.dataset
    return {
        "system": p.system,
        "math": p.math or DEFAULT_TEMPLATES["math"],
        "mcq": p.mcq or DEFAULT_TEMPLATES["mcq"],
        "shuffle_choices": d.shuffle_choices,
        "seed": config.sweep.seed,
    }


def _check_size(config: Config, problems: Sequence[Problem], confirmed: bool) -> None:
    s = config.sweep
    total = len(problems) * len(s.budgets) * s.samples
    if total > s.confirm_above and not confirmed:
        raise config_error(
            config, "sweep.samples",
            f"this sweep plans {total:,} samples ({len(problems):,} problems x "
            f"{len(s.budgets)} budgets x {s.samples:,} samples), above sweep.confirm_above "
            f"= {s.confirm_above:,}; check the cost with --dry-run, then add --yes",
        )


def _unify_grading(config: Config, store: RunStore) -> int:
    """Regrade stored samples graded under another rule than this sweep's."""
    rule = grading_rule(config.grading.number_fallback)
    if not any(r != rule for r in store.grading_rules()):
        return 0
    from ttc.regrade import regrade_run

    return regrade_run(store, number_fallback=config.grading.number_fallback).samples


def _load(config: Config, provider: Provider | None, *, check_key: bool) -> tuple[
    list[Problem], Provider, dict[str, Any], dict[str, tuple[int, ...] | None]
]:
    from ttc.datasets import dataset_fingerprint, load_dataset
    from ttc.prompts import choice_order

    cfg = config
    problems = load_dataset(cfg.dataset, base_dir=cfg.base_dir)
    if provider is None:
        from ttc.providers import make_provider

        model = cfg.model
        if model.path and not user_path(model.path).is_absolute():
            model = dataclasses.replace(model, path=str(cfg.base_dir / model.path))
        if check_key:
            model.api_key()  # a missing key fails here, before anything is written
        elif model.api_key_env and not os.environ.get(model.api_key_env):
            model = dataclasses.replace(model, api_key_env="")  # a plan needs no key
        provider = make_provider(model, sweep=cfg.sweep)
    for budget in cfg.sweep.budgets:
        try:
            provider.check_budget(budget)
        except ConfigError as exc:
            raise config_error(cfg, "sweep.budgets", str(exc)) from None
    fingerprint = {
        "model": provider.describe(),
        "dataset": dataset_fingerprint(cfg.dataset, base_dir=cfg.base_dir),
        "prompt": prompt_identity(cfg),
    }
    orders = {
        p.id: choice_order(p, mode=cfg.dataset.shuffle_choices, seed=cfg.sweep.seed,
                           sample_index=0)
        for p in problems
    }
    return problems, provider, fingerprint, orders
