"""``ttc report`` time and peak memory against sample count, this code against the old one.

Runs of 100k to 10M samples are generated in a temp folder (never committed) through
the store's own API (``RunStore.write_samples``): each problem draws a difficulty, each
sample a realized thinking length capped by its budget (censored, with no answer, now
and then at the cap), and a right or a wrong answer (one of three distractors) with
the simulated backend's probability of being right. Rows carry what a real sweep
stores besides: a short final text and thinking, a response id, a stop reason and the
simulated scorer signal in ``extra``. Each report runs in a fresh subprocess, so its
time and peak RSS are its own:

* ``new``: this checkout's ``write_report`` (the streaming analysis pass);
* ``old``: the same call on another commit's code (``--old-ref``, default the commit
  before the analysis pass), extracted with ``git archive`` into a temp folder; it
  loads the whole run as a frame (~2.2 KB a sample), so it is skipped where it would
  need more than ``--old-max-gb``.

Prints seconds, peak GB and KB per sample for each size, and the old/new ratios.
Usage::

    python benchmarks/report_speed.py [--sizes 100k 512k 2M 10M] [--n-boot 1000]

Sizes: ``100k`` = 200 problems x 128 samples x 4 budgets, ``512k`` = 1,000 x 128 x 4,
``2M`` = 1,000 x 512 x 4, ``10M`` = 1,000 x 10,000 x 1 (majority@k at n = 10,000 is
refused by estimators that stop at n = 2,000: the report then says so and curves hold
pass@k and accuracy only).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

from ttc.problems import Problem
from ttc.store import RunStore, SampleRecord

__all__ = ["SIZES", "build_run", "main", "measure"]

ROOT = Path(__file__).resolve().parents[1]
SIZES = {  # name -> (problems, samples, budgets)
    "100k": (200, 128, [1024, 2048, 4096, 8192]),
    "512k": (1000, 128, [1024, 2048, 4096, 8192]),
    "2M": (1000, 512, [1024, 2048, 4096, 8192]),
    "10M": (1000, 10_000, [16384]),
}
DEFAULT_OLD_REF = "48a0df4"  # main before the one-pass analysis
OLD_KB_PER_SAMPLE = 2.3  # measured: the old report holds ~2.2 KB a sample


def build_run(path: Path, problems: int, samples: int, budgets: list[int], seed: int = 0) -> None:
    """Write a simulated run of problems x budgets x samples through ``RunStore``."""
    rng = np.random.default_rng(seed)
    letters = np.array(["A", "B", "C", "D"])
    with RunStore(path, create=True) as store:
        probs = [Problem(id=f"q{i:05d}", question="q", answer="A", kind="mcq",
                         choices=("a", "b", "c", "d"), subject=f"s{i % 5}")
                 for i in range(problems)]
        store.put_problems(probs, {p.id: None for p in probs})
        store.set_meta(
            fingerprint={"model": {"provider": "simulated", "name": "bench"},
                         "dataset": "bench", "prompt": {}},
            config={"sweep": {"budgets": budgets, "samples": samples},
                    "dataset": {"builtin": "bench"}},
            n_problems=problems,
            dataset_info={"source": "benchmark", "n_problems": problems},
        )
        batch: list[SampleRecord] = []
        for p in probs:
            difficulty = rng.normal(0.0, 1.6)
            mu = math.log(2500.0) + 0.35 * difficulty
            weights = np.sort(rng.random(3) ** 2 + 0.05)[::-1]
            weights /= weights.sum()
            for budget in budgets:
                length = np.exp(mu + 0.9 * rng.standard_normal(samples))
                used = np.maximum(np.minimum(length, budget), 1).astype(np.int64)
                censored = (length > budget) & (rng.random(samples) < 0.08)
                x = 0.3 + 0.55 * np.log2(used / 1024.0) - difficulty
                right = rng.random(samples) < 1.0 / (1.0 + np.exp(-x))
                wrong = letters[1:][rng.choice(3, size=samples, p=weights)]
                answers = np.where(right, "A", wrong)
                signal = rng.normal(right.astype(float), 1.0)
                ids = rng.integers(0, 2**62, size=samples)
                for i in range(samples):
                    cut = bool(censored[i])
                    answer = None if cut else str(answers[i])
                    batch.append(SampleRecord(
                        p.id, str(budget), i, "censored" if cut else "ok", answer=answer,
                        correct=False if cut else bool(right[i]),
                        text=None if cut else f"The options compare as follows. Answer: {answer}",
                        thinking="Let me think about each option in turn.",
                        thinking_tokens=int(used[i]), output_tokens=int(used[i]) + 40,
                        input_tokens=120, stop_reason="max_tokens" if cut else "end_turn",
                        response_id=f"sim-{ids[i]:016x}", attempts=1, latency_s=1.0,
                        extra={"signal": round(float(signal[i]), 6)}, created_at=1.0))
                if len(batch) >= 100_000:
                    store.write_samples(batch)
                    batch = []
        store.write_samples(batch)


_CHILD = """
import json, resource, sys, time
from pathlib import Path
from ttc.run import open_run
from ttc.report import write_report
run_dir, out, n_boot = sys.argv[1], sys.argv[2], int(sys.argv[3])
started = time.perf_counter()
with open_run(run_dir) as run:
    write_report(run, Path(out), n_boot=n_boot, progress=False)
elapsed = time.perf_counter() - started
peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": elapsed, "peak_gb": peak_kb / 1024**2}))
"""


def measure(code_root: Path, run_dir: Path, out: Path, n_boot: int) -> dict[str, float]:
    """Time and peak RSS of ``write_report`` in a fresh process importing ``code_root``."""
    env = {**os.environ, "PYTHONPATH": str(code_root), "OPENBLAS_NUM_THREADS": "1",
           "OMP_NUM_THREADS": "1"}
    # cwd = code_root too: ``python -c`` puts the working directory first on sys.path
    done = subprocess.run([sys.executable, "-c", _CHILD, str(run_dir), str(out), str(n_boot)],
                          env=env, cwd=code_root, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"report failed ({code_root}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def old_code(ref: str, folder: Path) -> Path:
    """The ``ttc`` package as of ``ref``, extracted into ``folder``."""
    archive = folder / "old.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), ref, "ttc"],
                   check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--old-ref", default=DEFAULT_OLD_REF)
    parser.add_argument("--old-max-gb", type=float, default=6.0)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "ttc_scale")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    old_root = old_code(args.old_ref, Path(tempfile.mkdtemp(prefix="ttc_old_")))
    rows = []
    for name in args.sizes:
        problems, samples, budgets = SIZES[name]
        n = problems * samples * len(budgets)
        run_dir = args.work / name
        if not (run_dir / "samples.sqlite").exists():  # reused across invocations
            started = time.perf_counter()
            build_run(run_dir, problems, samples, budgets)
            print(f"{name}: built {n:,} samples in {time.perf_counter() - started:.0f} s "
                  f"({(run_dir / 'samples.sqlite').stat().st_size / 1e9:.2f} GB on disk)",
                  flush=True)
        new = measure(ROOT, run_dir, args.work / f"{name}_new", args.n_boot)
        old = None
        if n * OLD_KB_PER_SAMPLE / 1024**2 <= args.old_max_gb:
            old = measure(old_root, run_dir, args.work / f"{name}_old", args.n_boot)
        rows.append((name, n, new, old))
        print(f"{name}: new {new['seconds']:.1f} s, {new['peak_gb']:.2f} GB"
              + (f"; old {old['seconds']:.1f} s, {old['peak_gb']:.2f} GB" if old else
                 "; old skipped (memory)"), flush=True)
    print(f"\nttc report, n_boot={args.n_boot}, one process per report, BLAS on one thread")
    print(f"{'size':>6} {'samples':>11} | {'new s':>7} {'new GB':>7} {'KB/sample':>9} | "
          f"{'old s':>7} {'old GB':>7} | {'time old/new':>12} {'memory old/new':>14}")
    for name, n, new, old in rows:
        per = new["peak_gb"] * 1024**2 / n
        tail = (f"{old['seconds']:7.1f} {old['peak_gb']:7.2f} | "
                f"{old['seconds'] / new['seconds']:12.2f} {old['peak_gb'] / new['peak_gb']:14.2f}"
                if old else f"{'-':>7} {'-':>7} | {'-':>12} {'-':>14}")
        print(f"{name:>6} {n:11,} | {new['seconds']:7.1f} {new['peak_gb']:7.2f} {per:9.3f} | "
              + tail)


if __name__ == "__main__":
    main()
