"""The ``ttc`` command line: thin wrappers over library calls, one ``asyncio.run`` each.

User mistakes (configs, datasets, keys, conflicting or busy runs, damaged stores) print
one line and exit 2; API failures that end a sweep, and a disk that refuses answers,
exit 1. Ctrl-C, SIGTERM and SIGHUP all keep what completed, print how to resume and
exit 130, 143 and 129; a second signal while completed answers are being saved waits
for them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import signal
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ttc import __version__
from ttc._cli_show import check_types, print_plan, print_result, show_status
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
    sweep.add_argument("--yes", action="store_true",
                       help="run a plan above sweep.confirm_above samples")
    sweep.add_argument("--wait", action="store_true",
                       help="wait for another process writing to the run, instead of refusing")

    status = sub.add_parser("status", help="progress, failures and spend of a run")
    status.add_argument("run", type=Path)
    status.add_argument("--json", action="store_true", help="machine-readable output")

    export = sub.add_parser("export", help="one row per sample as jsonl, csv or parquet")
    export.add_argument("run", type=Path)
    export.add_argument("--format", default="jsonl", choices=["jsonl", "csv", "parquet"])
    export.add_argument("-o", "--output", type=Path, help="file to write")
    export.add_argument("--with-text", action="store_true", help="include text and thinking")
    export.add_argument("--steps", action="store_true",
                        help="agent runs: one row per step instead of one per trajectory")

    grade = sub.add_parser("grade", help="regrade stored samples without calling any model")
    grade.add_argument("run", type=Path)
    grade.add_argument("--number-fallback", action=argparse.BooleanOptionalAction, default=None,
                       help="math: take the last number when no answer is stated "
                       "(default: the run's [grading] setting)")
    grade.add_argument("--wait", action="store_true", help="wait for another writer")

    score = sub.add_parser("score", help="score stored samples with a scorer from the config")
    score.add_argument("run", type=Path)
    score.add_argument("--scorer", required=True, help="the [[scorers]] name")
    score.add_argument("--config", type=Path, help="a config with the scorer (default: the run's)")
    score.add_argument("--quiet", action="store_true")
    score.add_argument("--wait", action="store_true", help="wait for another writer")

    report = sub.add_parser("report", help="summary.json, figures, report.md and report.html")
    report.add_argument("run", type=Path)
    report.add_argument("--out", type=Path, help="output folder (default: RUN/report)")
    report.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    report.add_argument("--subjects", default="all", metavar="all|S1,S2,...",
                        help="subjects to report, after the run's [dataset] subject_map "
                        "(default: all)")

    cmp = sub.add_parser("compare", help="paired differences of runs on shared problems, "
                         "per category (later run minus earlier)")
    cmp.add_argument("runs", type=Path, nargs="+", metavar="RUN", help="runs, in order")
    cmp.add_argument("--metric", default="majority",
                     help="majority | pass | mean | best_of:SCORER | weighted_majority:SCORER")
    cmp.add_argument("--k", type=int, help="samples per vote (default: the most every run has)")
    cmp.add_argument("--budget", help="one budget, or one per run: B or B1,B2,... "
                     "(default: the highest all runs share)")
    cmp.add_argument("--by", help="categories: subject, or a key of the problems' metadata")
    cmp.add_argument("--label", action="append", default=[], metavar="RUN=NAME",
                     help="a run's name (RUN: its letter A, B, ..., path or folder name)")
    cmp.add_argument("--json", action="store_true", help="print the comparison as JSON")
    cmp.add_argument("--out", type=Path, help="write tables, compare.md and figures here")
    cmp.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")

    imp = sub.add_parser("import", help="read inspect_ai / lm-eval / lighteval samples into a run")
    imp.add_argument("harness", choices=["inspect", "lm-eval", "lighteval"])
    imp.add_argument("path", type=Path, help="the log file (or the folder holding it)")
    imp.add_argument("--out", type=Path, required=True, help="the run directory to create")
    imp.add_argument("--task", help="the task (or lm-eval group) to import from the log")
    imp.add_argument("--score", help="the scorer / metric to read (default: the log's first)")
    imp.add_argument("--regrade", action="store_true", help="grade every sample with ttc too")

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


#: BLAS thread pools, pinned to one thread unless the user set them: the analysis
#: multiplies many small matrices (bootstrap weights x per-problem values), where a
#: multi-threaded OpenBLAS measured ~30x slower (15 ms vs 0.5 ms a product on 2 cores)
_BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


#: young objects allowed before a collection (CPython's default: 700); see ``main``
_GC_YOUNG = 20_000


def main(argv: Sequence[str] | None = None) -> int:
    for name in _BLAS_THREADS:  # before numpy loads (commands import it lazily)
        os.environ.setdefault(name, "1")
    # A sweep keeps some hundred requests' objects alive at a time; with CPython's default
    # threshold the collector runs every few requests and walks all of them. This
    # threshold and the freeze in ``_run_sweep`` save 12% of a sweep's time in
    # benchmarks/sampler_throughput.py (its A/B arm; 6% in sampler_overhead.py). Garbage
    # that only a collection frees (cycles) is rare here, so collecting less often costs
    # no memory worth counting. A caller running ``main`` in its own process (tests, a
    # notebook) gets its settings back afterwards.
    before = gc.get_threshold()
    gc.set_threshold(_GC_YOUNG, *before[1:])
    try:
        return _dispatch(argv)
    finally:
        gc.set_threshold(*before)


def _dispatch(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(_COMMANDS[args.command](args) or 0)
    except UserInputError as exc:
        _say(f"ttc: error: {_one_line(exc)}")
        return 2
    except APIError as exc:
        _say(f"ttc: {_one_line(exc)}")
        return 1
    except TTCError as exc:
        _say(f"ttc: {_one_line(exc)}")
        return 1
    except sqlite3.Error as exc:  # a store damaged past what opening it could see
        from ttc.store._schema import wrap_error

        where = Path(getattr(args, "run", None) or getattr(args, "out", None) or ".")
        _say(f"ttc: error: {_one_line(wrap_error(exc, where / 'samples.sqlite'))}")
        return 2
    except OSError as exc:  # an unwritable --out / -o path, a file where a folder should be
        _say(f"ttc: error: {_one_line(exc)}")
        return 2
    except (TypeError, ValueError, OverflowError):  # a value of the wrong type in a store?
        found = _mistyped_store(args)
        if found is None:
            raise
        _say(f"ttc: error: {_one_line(found)}")
        return 2
    except KeyboardInterrupt:
        _say("\nttc: interrupted")
        return 130


def _mistyped_store(args: argparse.Namespace) -> UserInputError | None:
    """After a reader failed on a value: the store column holding a non-number, if any
    (checked only on failure, so readers pay no extra scan)."""
    from ttc.store import RunStore

    runs = [getattr(args, "run", None), *(getattr(args, "runs", None) or [])]
    for run in (r for r in runs if r is not None):
        try:
            with RunStore(run, read_only=True) as store:
                check_types(store)
        except UserInputError as exc:
            return exc
        except (OSError, sqlite3.Error):
            continue
    return None


def _one_line(exc: object) -> str:
    """An error as one line: control characters a config or server put in it are escaped."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in str(exc))


def _say(line: str) -> None:
    """One line to stderr; a closed terminal (SIGHUP) must not turn it into a traceback."""
    with contextlib.suppress(OSError, ValueError):
        print(line, file=sys.stderr, flush=True)


def _waiting(holder: Any) -> None:
    who = holder.describe() if holder is not None else "another process"
    _say(f"ttc: waiting for {who} to finish writing to the run")


def _sweep(args: argparse.Namespace) -> int:
    from ttc.config import load_config
    from ttc.sampler import Sweep

    path = args.config_opt or args.config_file
    if path is None:
        raise UserInputError("ttc sweep needs a config file: ttc sweep CONFIG.toml")
    config = load_config(path, args.set)
    out = args.out or Path("runs") / Path(path).stem
    if config.agent is not None:  # agent runs: the step-budget sweep of ttc.agent
        from ttc.agent.runner import sweep_command

        return sweep_command(config, out, path=Path(path), sets=args.set,
                             dry_run=args.dry_run, quiet=args.quiet)
    sweep = Sweep(config, out, progress=not args.quiet, confirmed=args.yes, wait=args.wait)
    sweep.on_wait = _waiting
    if args.dry_run:
        return print_plan(sweep, config, out)
    from ttc.config import config_warnings

    for warning in config_warnings(config):
        _say(f"ttc: warning: {warning}")
    result, signum = _run_sweep(sweep)
    if result is None:
        again = " ".join(["ttc sweep", str(path), "--out", str(out), *_sets(args.set),
                          *(["--yes"] if args.yes else [])])
        name = signal.Signals(signum).name if signum else "interrupt"
        _say(f"\nttc: stopped by {name}; completed samples are saved in {out}.\n"
             f"Resume with: {again}")
        return 128 + (signum or signal.SIGINT)
    return print_result(result, out)


def _sets(items: list[str]) -> list[str]:
    return [f"--set {item}" for item in items]


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _run_sweep(sweep: Any) -> tuple[Any, int | None]:
    """Run a sweep; SIGINT, SIGTERM and SIGHUP cancel it, which stores what completed.

    Returns ``(result, None)``, or ``(None, signal number)`` when stopped. A second
    signal is acknowledged but does not interrupt the saving of completed answers.
    """

    async def supervise() -> tuple[Any, int | None]:
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(sweep.run())
        received: list[int] = []

        def on_signal(signum: int) -> None:
            if received:
                _say("ttc: still saving completed samples; exiting when done")
                return
            received.append(signum)
            task.cancel()

        for sig in _STOP_SIGNALS:
            loop.add_signal_handler(sig, on_signal, int(sig))
        try:
            return await task, None
        except asyncio.CancelledError:
            if received:
                return None, received[0]
            raise
        finally:
            for sig in _STOP_SIGNALS:
                loop.remove_signal_handler(sig)
                if received:  # stopping: more signals must not cut the exit short
                    signal.signal(sig, signal.SIG_IGN)

    # what is alive by now (modules, classes, the config) lives as long as the sweep:
    # out of the collector's care, or every full collection of a sweep walks it again;
    # given back afterwards, so an in-process caller's later garbage is still collected
    # (unless that caller froze objects itself: unfreezing cannot tell theirs from ours)
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    try:
        return asyncio.run(supervise())
    finally:
        if freeze:
            gc.unfreeze()


def _export(args: argparse.Namespace) -> int:
    from ttc.export import export_run
    from ttc.run import open_run

    if args.steps:
        from ttc.agent.steps import export_steps

        print(f"wrote {export_steps(args.run, args.format, args.output, with_text=args.with_text)}")
        return 0
    with open_run(args.run) as run:
        check_types(run.store)  # an export would carry the text on as if it were a number
        target = export_run(run, args.format, args.output, with_text=args.with_text)
    print(f"wrote {target}")
    return 0


def _grade(args: argparse.Namespace) -> int:
    from ttc.regrade import regrade_run
    from ttc.store import RunStore

    with RunStore(args.run, wait=args.wait, on_wait=_waiting) as store:
        result = regrade_run(store, number_fallback=args.number_fallback)
    print(f"regraded {result.samples:,} samples: {result.changed_verdicts:,} verdicts and "
          f"{result.changed_answers:,} extracted answers changed")
    return 0


def _score(args: argparse.Namespace) -> int:
    from ttc.run import open_run
    from ttc.scorers import score_by_name

    with open_run(args.run, read_only=False, wait=args.wait) as run:
        n = asyncio.run(
            score_by_name(run, args.scorer, config_path=args.config, progress=not args.quiet)
        )
    print(f"scored {n:,} new samples with {args.scorer}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from ttc.report import write_report
    from ttc.run import open_run

    _check_bootstrap(args.bootstrap, 0)  # 0: point estimates, no intervals

    with open_run(args.run) as run:
        _refuse_mixed_grading(run.store)
        subjects = [s.strip() for s in args.subjects.split(",") if s.strip()]
        out = write_report(run, args.out, n_boot=args.bootstrap,
                           subjects=None if subjects in ([], ["all"]) else subjects)
    print(f"report written to {out}")
    for name in ("summary.json", "report.md", "report.html"):
        if (out / name).exists():
            print(f"  {out / name}")
    return 0


def _import(args: argparse.Namespace) -> int:
    from ttc.importers import import_log

    result = import_log(args.harness, args.path, args.out, task=args.task,
                        regrade=args.regrade, score=args.score)
    print(result.summary())
    for note in result.notes:
        print(f"  note: {note}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from ttc.comparison import build_comparison
    from ttc.run import open_run

    if len(args.runs) < 2:
        raise UserInputError("ttc compare needs two or more runs")
    _check_bootstrap(args.bootstrap, 2)
    labels = dict(item.split("=", 1) for item in args.label if "=" in item)
    if len(labels) < len(args.label):
        raise UserInputError("--label takes RUN=NAME, e.g. --label A=gen-1")
    budget = None if args.budget is None else [b.strip() for b in args.budget.split(",")]
    runs = [open_run(path) for path in args.runs]
    try:
        for run in runs:
            _refuse_mixed_grading(run.store)
        result = build_comparison(runs, metric=args.metric, k=args.k,
                                  budget=budget[0] if budget and len(budget) == 1 else budget,
                                  by=args.by, labels=labels or None, n_boot=args.bootstrap)
    finally:
        for run in runs:
            run.close()
    for note in result.notes:
        _say(f"ttc: warning: {note}")
    print(json.dumps(result.to_dict(), indent=1) if args.json else result.text().rstrip("\n"))
    if args.out is not None:
        from ttc.comparison_plots import write_comparison

        write_comparison(result, args.out)
        _say(f"ttc: comparison written to {args.out}")
    return 0


#: more resamples than this add nothing a report can show (the percentile bounds settle
#: well before) and cost memory in proportion; the engine also refuses what cannot fit
MAX_BOOTSTRAP = 100_000


def _check_bootstrap(n_boot: int, low: int) -> None:
    if not low <= n_boot <= MAX_BOOTSTRAP:
        raise UserInputError(f"--bootstrap must be within {low}..{MAX_BOOTSTRAP:,} resamples, "
                             f"got {n_boot:,}")


def _refuse_mixed_grading(store: Any) -> None:
    """A report must not vote or average verdicts reached under different grading rules."""
    rules = store.grading_rules()
    if len(rules) > 1:
        shown = "; ".join(f"{n:,} under {rule or 'an unrecorded rule (older ttc)'}"
                          for rule, n in rules.items())
        raise UserInputError(
            f"{store.run_dir}: samples were graded under different rules ({shown}); "
            f"regrade them under one with: ttc grade {store.run_dir}"
        )


def _adaptive(args: argparse.Namespace) -> int:
    from ttc.adaptive import adaptive_report
    from ttc.run import open_run

    if args.bootstrap > MAX_BOOTSTRAP:  # the lower bound is adaptive_report's own check
        _check_bootstrap(args.bootstrap, 1)

    with open_run(args.run) as run:
        _refuse_mixed_grading(run.store)
        result = asyncio.run(adaptive_report(run, args.rule, args.param, budget=args.budget,
                                             n_boot=args.bootstrap))
    written: list[Path] = []
    if args.out is not None:  # several files: built aside and swapped in whole
        from ttc.fsutil import atomic_dir

        with atomic_dir(args.out) as folder:
            written = [args.out / Path(p).relative_to(folder) for p in result.write(folder)]
    print(json.dumps(result.to_json(), indent=2) if args.json else result.text())
    for path in written if not args.json else []:
        print(f"  wrote {path}")
    return 0


_COMMANDS = {
    "sweep": _sweep,
    "status": show_status,
    "export": _export,
    "grade": _grade,
    "score": _score,
    "report": _report,
    "import": _import,
    "compare": _compare,
    "adaptive": _adaptive,
}
