"""What the ``ttc`` command line prints about a sweep and a run: the plan of a dry run,
a finished sweep's result line, and ``ttc status`` (``ttc.cli`` dispatches to these).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

__all__ = ["check_types", "print_plan", "print_result", "show_status"]


def check_types(store: Any) -> None:
    """Text where a store holds numbers: one line naming the file and column."""
    from ttc.store._types import check_types as check

    check(store._db, store.path)  # noqa: SLF001 - the store's own connection


def print_result(result: Any, out: Path) -> int:
    """A finished sweep in a few lines; the exit code (1 when samples failed)."""
    if result.regraded:
        print(f"regraded {result.regraded:,} stored samples under this sweep's grading rule")
    wasted = f", {result.wasted_tokens:,} wasted" if result.wasted_tokens else ""
    print(
        f"{result.completed} samples drawn ({result.censored} censored), {result.failed} failed, "
        f"{result.tokens:,} output tokens{wasted}, ${result.cost:.2f}, "
        f"{result.elapsed_s:.1f}s -> {out}"
    )
    if result.skipped or result.stopped:
        print(f"  the adaptive rule skipped {result.skipped:,} planned samples and stopped "
              f"{result.stopped:,} traces mid-stream (`ttc status {out}`: the savings)")
    if result.pending:
        print(f"  {result.waiting()}")
    if result.min_concurrency < result.concurrency_ceiling:
        print(f"  rate limits cut concurrency to {result.min_concurrency} "
              f"(of {result.concurrency_ceiling}); it ended at {result.concurrency}")
    for error, count in sorted(result.errors.items(), key=lambda kv: -kv[1]):
        print(f"  {count} x {error}")
    if result.failed:
        print("Failed samples are retried when you run the same command again.")
    return 1 if result.failed else 0


def print_plan(sweep: object, config: object, out: Path) -> int:
    """``ttc sweep --dry-run``: what the sweep would send, and what it may cost."""
    from ttc.batch.projection import project_batches
    from ttc.config_rules import BATCH_PROVIDERS
    from ttc.providers.base import HTTPProvider
    from ttc.sampler import Sweep

    assert isinstance(sweep, Sweep)
    store, problems, provider, plan = sweep.prepare_dry()
    s, m = sweep.config.sweep, sweep.config.model
    # packing is projected for a batch sweep only; an online one shows the discount alone
    batch = project_batches(sweep.recorder, provider, plan) if s.mode == "batch" else None
    print(f"run directory : {out}")
    print(f"model         : {provider.describe().get('name')} ({m.provider})")
    print(f"mode          : {s.mode} (sweep.mode)")
    print(f"problems      : {len(problems)}")
    print(f"budgets       : {', '.join(map(str, s.budgets))}")
    print(f"samples       : {s.samples} per (problem, budget)")
    print(f"requests      : {len(plan.jobs):,} to send ({plan.done:,} of {plan.total:,} stored)")
    if sweep.config.adaptive is not None:
        print(f"  at most: [adaptive] {sweep.config.adaptive.rule} draws in waves and stops "
              f"each problem when it fires (`ttc status` shows what it has skipped)")
    if plan.pending:
        print(f"  {plan.pending:,} more wait on provider batches: collected, never sent again")
    if plan.total > s.confirm_above:
        print(f"  above sweep.confirm_above ({s.confirm_above:,}): "
              f"the real sweep needs --yes")
    if plan.regrade:
        print(f"  {plan.regrade:,} stored samples were graded under another rule; "
              f"the sweep regrades them first")
    for budget, n in plan.per_budget.items():
        how = ""
        if isinstance(provider, HTTPProvider):
            parsed = next(b for b in s.budgets if str(b) == budget)
            cap = provider.max_output_tokens(parsed)
            how = (f", {'streamed' if provider.streams(parsed) else 'whole'} online "
                   f"(up to {cap:,} output tokens each)")
        print(f"  budget {budget:>8}: {n:,} requests{how}")
    print(f"input tokens  : ~{plan.projected_input_tokens:,}")
    print(f"output tokens : up to {plan.projected_output_tokens:,} (every sample at its cap)")
    online = " <- sweep.mode" if s.mode == "online" else ""
    print(f"cost online   : up to ${plan.projected_cost:,.2f} at the configured prices{online}")
    if s.mode == "online" and m.provider in BATCH_PROVIDERS:
        print(f"cost batch    : up to ${plan.projected_cost * (1 - m.batch_discount):,.2f} at "
              f"model.batch_discount = {m.batch_discount:g} (sweep.mode = \"batch\")")
    elif batch is None:
        print(f"cost batch    : provider '{m.provider}' has no batch API")
    else:
        lim = batch.limits
        chosen = " <- sweep.mode" if s.mode == "batch" else ""
        print(f"cost batch    : up to ${batch.cost:,.2f} at model.batch_discount = "
              f"{batch.discount:g}{chosen}")
        print(f"  {batch.batches:,} batch{'es' if batch.batches != 1 else ''} of "
              f"{batch.requests:,} requests, ~{_size(batch.bytes)} in all; nothing streams")
        print(f"  (at most {lim.max_requests:,} requests and {_size(lim.max_bytes)} per batch; "
              f"results within 24 h)")
    return 0


def _size(n: float) -> str:
    if n >= 1e9:
        return f"{n / 1e9:,.1f} GB"
    return f"{n / 1e6:,.1f} MB" if n >= 1e6 else f"{n / 1e3:,.0f} kB"


def _age(seconds: float) -> str:
    minutes = int(seconds // 60)
    return f"{minutes // 60}h {minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


def show_status(args: argparse.Namespace) -> int:
    """``ttc status RUN``: progress, spend, pending batches, errors (``--json``: all of it)."""
    from ttc.lock import read_holder
    from ttc.store import RunStore

    with RunStore(args.run, read_only=True) as store:
        check_types(store)  # totals would silently sum text as 0
        counts = store.status_counts()
        totals = store.totals()
        meta = store.run_meta()
        errors = store.error_counts()
        rules = store.grading_rules()
        batches = store.batches.batches()
        via_batch = store.batches.via_batch()
        usage = _adaptive_usage(store)
    budgets = [str(b) for b in meta.budgets] or list(counts)
    expected = meta.n_problems * meta.samples
    holder = read_holder(args.run)
    running = holder is not None and holder.alive()
    state = meta.last_sweep
    if args.json:
        writer = holder.pid if running and holder is not None else None
        print(json.dumps({
            "counts": counts, "totals": totals, "errors": errors, "origin": meta.origin,
            "schema_version": meta.schema_version, "writer_pid": writer,
            "last_sweep": state.to_dict() if state else None,
            "grading_rules": {str(k): v for k, v in rules.items()},
            "batches": [b.to_dict() for b in batches],
            "via_batch": {"samples": via_batch[0], "cost": via_batch[1]},
            "adaptive": usage.to_json() if usage is not None else None,
        }, indent=2))
        return 0
    done_all = sum(n for c in counts.values() for st, n in c.items() if st != "failed")
    origin = ""
    if meta.origin == "import":
        source = (meta.import_info or {}).get("harness")
        origin = f" (imported{' from ' + str(source) if source else ''})"
    planned = f"/{expected * len(budgets):,}" if expected else ""
    print(f"run {args.run}: {meta.model_name}{origin}, {done_all:,}{planned} samples done")
    if running and holder is not None:
        print(f"  being written now by {holder.describe()}")
    for budget in budgets:
        c = counts.get(budget, {})
        done = c.get("ok", 0) + c.get("censored", 0) + c.get("stopped", 0)
        stopped = f", {c['stopped']:,} stopped" if c.get("stopped") else ""
        print(f"  budget {budget:>8}: {done:,}{f'/{expected:,}' if expected else ''} done, "
              f"{c.get('censored', 0):,} censored{stopped}, {c.get('failed', 0):,} failed")
    wasted = int(totals["wasted_output_tokens"])
    waste = f" ({wasted:,} output tokens of failed attempts included)" if wasted else ""
    print(f"  spend ${totals['cost']:.2f}{waste}, {int(totals['output_tokens']):,} output "
          f"tokens, {int(totals['thinking_tokens']):,} thinking tokens")
    if state is not None and state.concurrency:
        when = "now" if running else "in the last sweep"
        low = (f", lowest {state.min_concurrency}, {state.overloaded:,} rate-limit answers"
               if state.overloaded else "")
        print(f"  concurrency {when}: {state.effective_concurrency} of {state.concurrency}{low}")
    if via_batch[0]:
        print(f"  {via_batch[0]:,} samples came from provider batches (${via_batch[1]:.2f} of "
              f"the spend, at model.batch_discount)")
    if usage is not None:
        head, *rest = usage.lines()
        print(f"  {head}")
        for line in rest:
            print(f"    {line}")
    _print_batches(batches)
    if len(rules) > 1:
        print(f"  graded under {len(rules)} different rules: run `ttc grade {args.run}` "
              f"before reporting")
    for error, n in errors[:5]:
        print(f"  {n} x {error}")
    return 0


def _adaptive_usage(store: Any) -> Any:
    """Samples and tokens an online stop rule used against the full plan (None: no rule)."""
    if not (store.meta().get("config") or {}).get("adaptive"):
        return None  # no numpy/scipy import for the common case
    from ttc.adaptive.usage import adaptive_usage

    return adaptive_usage(store, n_boot=200)


def _print_batches(batches: list[Any]) -> None:
    """Open provider batches: their ids, age and request counts at the last poll."""
    open_ = [b for b in batches if b.is_open]
    if not open_:
        return
    cells = sum(b.pending for b in open_)
    print(f"  {len(open_)} provider batch{'es' if len(open_) != 1 else ''} pending "
          f"({cells:,} cells wait on them; the next sweep re-attaches):")
    for b in open_:
        if b.remote_id is None:
            print(f"    {b.token} ({b.provider}): create unconfirmed {_age(b.age_s())} ago, "
                  f"{b.requests:,} requests; looked up at the provider before anything is "
                  f"sent again")
            continue
        counts = ", ".join(f"{n:,} {k}" for k, n in sorted(b.counts.items()) if n)
        print(f"    {b.remote_id} ({b.provider}): {b.detail or b.status} for {_age(b.age_s())}, "
              f"{b.requests:,} requests{': ' + counts if counts else ''}")
