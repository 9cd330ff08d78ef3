"""The ``ttc`` command line: thin wrappers over library calls, one ``asyncio.run`` each.

User mistakes (configs, datasets, keys, conflicting runs) print one line and exit 2;
API failures that end a sweep exit 1; Ctrl-C keeps what completed and exits 130.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from ttc import __version__
from ttc.errors import APIError, TTCError, UserInputError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ttc", description="Test-time-compute scaling sweeps, estimators and reports."
    )
    parser.add_argument("--version", action="version", version=f"ttc {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sweep = sub.add_parser("sweep", help="run (or resume) a sweep from a TOML config")
    sweep.add_argument("config_file", nargs="?", type=Path, help="the sweep config (TOML)")
    sweep.add_argument("--config", type=Path, dest="config_opt", help="same as CONFIG_FILE")
    sweep.add_argument("--out", type=Path, help="run directory (default: runs/<config name>)")
    sweep.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key, e.g. --set sweep.samples=16")
    sweep.add_argument("--dry-run", action="store_true",
                       help="print the plan (requests, tokens, cost) and send nothing")
    sweep.add_argument("--quiet", action="store_true", help="no progress bar")

    status = sub.add_parser("status", help="progress, failures and spend of a run")
    status.add_argument("run", type=Path)
    status.add_argument("--json", action="store_true", help="machine-readable output")

    export = sub.add_parser("export", help="one row per sample as jsonl, csv or parquet")
    export.add_argument("run", type=Path)
    export.add_argument("--format", default="jsonl", choices=["jsonl", "csv", "parquet"])
    export.add_argument("-o", "--output", type=Path, help="file to write")
    export.add_argument("--with-text", action="store_true", help="include text and thinking")

    grade = sub.add_parser("grade", help="regrade stored samples without calling any model")
    grade.add_argument("run", type=Path)
    grade.add_argument("--number-fallback", action=argparse.BooleanOptionalAction, default=None,
                       help="math: take the last number when no answer is stated "
                       "(default: the run's [grading] setting)")

    score = sub.add_parser("score", help="score stored samples with a scorer from the config")
    score.add_argument("run", type=Path)
    score.add_argument("--scorer", required=True, help="the [[scorers]] name")
    score.add_argument("--config", type=Path, help="a config with the scorer (default: the run's)")
    score.add_argument("--quiet", action="store_true")

    report = sub.add_parser("report", help="summary.json, figures, report.md and report.html")
    report.add_argument("run", type=Path)
    report.add_argument("--out", type=Path, help="output folder (default: RUN/report)")
    report.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")

    adaptive = sub.add_parser("adaptive", help="replay a stop rule on a finished run: savings, "
                              "accuracy and the trade-off figure")
    adaptive.add_argument("run", type=Path)
    adaptive.add_argument("--rule", required=True,
                          help="esc | adaptive_consistency | deepconf | prefix:SCORER")
    adaptive.add_argument("--param", action="append", default=[], metavar="KEY=V[,V...]",
                          help="rule parameter; several values are swept, e.g. window=2,4,8")
    adaptive.add_argument("--budget", help="which budget's samples (default: the largest)")
    adaptive.add_argument("--json", action="store_true", help="machine-readable output")
    adaptive.add_argument("--out", type=Path, help="write adaptive.json and the figure here")
    adaptive.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(_COMMANDS[args.command](args) or 0)
    except UserInputError as exc:
        print(f"ttc: error: {exc}", file=sys.stderr)
        return 2
    except APIError as exc:
        print(f"ttc: {exc}", file=sys.stderr)
        return 1
    except TTCError as exc:
        print(f"ttc: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # an unwritable --out / -o path, a file where a folder should be
        print(f"ttc: error: {exc}", file=sys.stderr)
        return 2


def _sweep(args: argparse.Namespace) -> int:
    from ttc.config import load_config
    from ttc.sampler import Sweep

    path = args.config_opt or args.config_file
    if path is None:
        raise UserInputError("ttc sweep needs a config file: ttc sweep CONFIG.toml")
    config = load_config(path, args.set)
    out = args.out or Path("runs") / Path(path).stem
    sweep = Sweep(config, out, progress=not args.quiet)
    if args.dry_run:
        return _print_plan(sweep, config, out)
    try:
        result = asyncio.run(sweep.run())
    except KeyboardInterrupt:
        again = " ".join(["ttc sweep", str(path), "--out", str(out), *_sets(args.set)])
        print(f"\nttc: interrupted; completed samples are saved in {out}.\n"
              f"Resume with: {again}", file=sys.stderr)
        return 130
    print(
        f"{result.completed} samples drawn ({result.censored} censored), {result.failed} failed, "
        f"{result.tokens:,} output tokens, ${result.cost:.2f}, {result.elapsed_s:.1f}s -> {out}"
    )
    for error, count in sorted(result.errors.items(), key=lambda kv: -kv[1]):
        print(f"  {count} x {error}")
    if result.failed:
        print("Failed samples are retried when you run the same command again.")
    return 1 if result.failed else 0


def _sets(items: list[str]) -> list[str]:
    return [f"--set {item}" for item in items]


def _print_plan(sweep: object, config: object, out: Path) -> int:
    from ttc.sampler import Sweep

    assert isinstance(sweep, Sweep)
    store, problems, provider, plan = sweep.prepare_dry()
    print(f"run directory : {out}")
    print(f"model         : {provider.describe().get('name')} ({sweep.config.model.provider})")
    print(f"problems      : {len(problems)}")
    print(f"budgets       : {', '.join(map(str, sweep.config.sweep.budgets))}")
    print(f"samples       : {sweep.config.sweep.samples} per (problem, budget)")
    print(f"requests      : {len(plan.jobs):,} to send ({plan.done:,} of {plan.total:,} stored)")
    for budget, n in plan.per_budget.items():
        print(f"  budget {budget:>8}: {n:,} requests")
    print(f"input tokens  : ~{plan.projected_input_tokens:,}")
    print(f"output tokens : up to {plan.projected_output_tokens:,} (every sample at its cap)")
    print(f"cost          : up to ${plan.projected_cost:,.2f} at the configured prices")
    return 0


def _status(args: argparse.Namespace) -> int:
    from ttc.store import RunStore

    with RunStore(args.run) as store:
        counts = store.status_counts()
        totals = store.totals()
        meta = store.meta()
        errors = store.error_counts()
    config = meta.get("config", {})
    budgets = [str(b) for b in config.get("sweep", {}).get("budgets", counts.keys())]
    samples = config.get("sweep", {}).get("samples", 0)
    n_problems = meta.get("n_problems", 0)
    if args.json:
        print(json.dumps({"counts": counts, "totals": totals, "errors": errors}, indent=2))
        return 0
    model = meta.get("fingerprint", {}).get("model", {})
    done_all = sum(n for c in counts.values() for st, n in c.items() if st != "failed")
    print(f"run {args.run}: {model.get('name') or model.get('provider')}, "
          f"{done_all:,}/{n_problems * samples * len(budgets):,} samples done")
    for budget in budgets:
        c = counts.get(budget, {})
        done = c.get("ok", 0) + c.get("censored", 0)
        expected = n_problems * samples
        print(f"  budget {budget:>8}: {done:,}/{expected:,} done, "
              f"{c.get('censored', 0):,} censored, {c.get('failed', 0):,} failed")
    print(f"  spend ${totals['cost']:.2f}, {int(totals['output_tokens']):,} output tokens, "
          f"{int(totals['thinking_tokens']):,} thinking tokens")
    for error, n in errors[:5]:
        print(f"  {n} x {error}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from ttc.export import export_run
    from ttc.run import open_run

    with open_run(args.run) as run:
        target = export_run(run, args.format, args.output, with_text=args.with_text)
    print(f"wrote {target}")
    return 0


def _grade(args: argparse.Namespace) -> int:
    from ttc.regrade import regrade_run
    from ttc.store import RunStore

    with RunStore(args.run) as store:
        result = regrade_run(store, number_fallback=args.number_fallback)
    print(f"regraded {result.samples:,} samples: {result.changed_verdicts:,} verdicts and "
          f"{result.changed_answers:,} extracted answers changed")
    return 0


def _score(args: argparse.Namespace) -> int:
    from ttc.run import open_run
    from ttc.scorers import score_by_name

    with open_run(args.run) as run:
        n = asyncio.run(
            score_by_name(run, args.scorer, config_path=args.config, progress=not args.quiet)
        )
    print(f"scored {n:,} new samples with {args.scorer}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from ttc.report import write_report
    from ttc.run import open_run

    with open_run(args.run) as run:
        out = write_report(run, args.out, n_boot=args.bootstrap)
    print(f"report written to {out}")
    for name in ("summary.json", "report.md", "report.html"):
        if (out / name).exists():
            print(f"  {out / name}")
    return 0


def _adaptive(args: argparse.Namespace) -> int:
    from ttc.adaptive import adaptive_report
    from ttc.run import open_run

    with open_run(args.run) as run:
        result = asyncio.run(adaptive_report(run, args.rule, args.param, budget=args.budget,
                                             n_boot=args.bootstrap))
    written = result.write(args.out) if args.out is not None else []
    print(json.dumps(result.to_json(), indent=2) if args.json else result.text())
    for path in written if not args.json else []:
        print(f"  wrote {path}")
    return 0


_COMMANDS = {
    "sweep": _sweep,
    "status": _status,
    "export": _export,
    "grade": _grade,
    "score": _score,
    "report": _report,
    "adaptive": _adaptive,
}
