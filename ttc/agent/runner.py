"""The step-budget sweep: every trajectory run once, resumably, within the sweep's limits.

Mode "truncate" plans one trajectory per (problem, thinking budget, sample) run to
``max_steps`` (raising ``max_steps`` later extends the stored trajectories instead of
starting over); mode "separate" plans one per step budget too, with the budget stated
in the prompt. A fixed pool of ``sweep.concurrency`` workers pulls trajectories from
one iterator; each trajectory resumes from its last stored step. When a trajectory
stops (the world says done, its cap is reached, or a step fails its retries) its
outcome goes to the ordinary ``samples`` table through ``RunStore.write_samples``, so
``ttc status`` and ``ttc export`` see agent runs like any other.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ttc.agent.config import AgentConfig, effective_step_budgets
from ttc.agent.envs import EnvironmentSpecError, resolve_environment
from ttc.agent.loop import (
    DEFAULT_SYSTEM,
    EnvironmentContractError,
    Limits,
    Trajectory,
    TrajectoryOutcome,
    run_trajectory,
)
from ttc.agent.steps import StepRecord, StepStore, TrajectoryState
from ttc.commit import Committer
from ttc.config import Config, config_error
from ttc.errors import ConfigError
from ttc.problems import Problem
from ttc.progress import SweepProgress
from ttc.providers.base import Provider
from ttc.ratelimit import RequestLimiter, TokenBucket
from ttc.retry import Halted, SweepAborted, drain_notice
from ttc.store import DB_NAME, RunStore, SampleRecord, budget_label

__all__ = ["AgentPlan", "AgentResult", "AgentSweep", "sample_label", "sweep_command"]


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]


def sample_label(label: str, horizon: int) -> str:
    """The ``samples.budget`` of a trajectory: the thinking budget, plus ``@N`` when the
    agent was told a step budget of N (mode "separate")."""
    return f"{label}@{horizon}" if horizon else label


@dataclass(slots=True)
class AgentPlan:
    total: int
    done: int
    jobs: list[Trajectory]
    max_requests: int


@dataclass(slots=True)
class AgentResult:
    planned: int
    ended: int = 0
    capped: int = 0
    failed: int = 0
    steps: int = 0
    cost: float = 0.0
    tokens: int = 0
    elapsed_s: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)


class AgentSweep:
    """One configured agent sweep over one run directory."""

    def __init__(self, config: Config, run_dir: str | Path, *, provider: Provider | None = None,
                 progress: bool = False) -> None:
        if config.agent is None:
            raise ConfigError("not an agent config: it has no [agent] section")
        self.config = config
        self.agent: AgentConfig = config.agent
        self.run_dir = Path(run_dir)
        self._provider = provider
        self._progress = progress
        self.step_budgets = effective_step_budgets(self.agent, config.sweep.step_budgets)
        self.max_steps = self.agent.max_steps or max(self.step_budgets)

    # ------------------------------------------------------------ loading
    def _env_class(self) -> type[Any]:
        try:
            return resolve_environment(self.agent.environment)
        except EnvironmentSpecError as exc:
            raise config_error(self.config, "agent.environment", str(exc)) from None

    def _problems(self, env_cls: type[Any]) -> tuple[list[Problem], str]:
        cfg, agent = self.config, self.agent
        if cfg.dataset.path or cfg.dataset.builtin:
            from ttc.datasets import dataset_fingerprint, load_dataset

            return (load_dataset(cfg.dataset, base_dir=cfg.base_dir),
                    dataset_fingerprint(cfg.dataset, base_dir=cfg.base_dir))
        make = getattr(env_cls, "tasks", None)
        if not callable(make):
            raise config_error(cfg, "agent.tasks", f"environment {agent.environment!r} does not "
                               f"generate tasks (no tasks() method); give a [dataset]")
        ident = f"tasks\0{agent.environment}\0{agent.tasks}\0{agent.difficulty}\0{cfg.sweep.seed}"
        name = agent.environment
        try:
            problems = list(make(agent.tasks, cfg.sweep.seed, agent.difficulty))
        except ValueError as exc:  # the environment refuses these settings: say so, located
            raise config_error(cfg, "agent.difficulty" if "difficult" in str(exc)
                               else "agent.tasks", str(exc)) from None
        except Exception as exc:  # user code: its bug is reported against the config
            raise config_error(cfg, "agent.environment", f"tasks() of {name!r} failed: "
                               f"{type(exc).__name__}: {_one_line(exc)}") from None
        seen: set[str] = set()
        for problem in problems:
            if not isinstance(problem, Problem):
                raise config_error(cfg, "agent.environment", f"tasks() of {name!r} returned a "
                                   f"{type(problem).__name__}, not a ttc.problems.Problem")
            if problem.id in seen:
                raise config_error(cfg, "agent.environment", f"tasks() of {name!r} returned "
                                   f"problem id {problem.id!r} twice")
            seen.add(problem.id)
        return problems, hashlib.sha256(ident.encode()).hexdigest()

    def _load(self, *, check_key: bool) -> tuple[type[Any], list[Problem], Provider,
                                                 dict[str, Any]]:
        from ttc.agent.providers import make_tool_provider

        cfg = self.config
        env_cls = self._env_class()
        problems, data_id = self._problems(env_cls)
        provider = self._provider
        if provider is None:
            model = cfg.model
            if check_key:
                model.api_key()
            elif model.api_key_env:
                model = dataclasses.replace(model, api_key_env="")
            try:
                provider = make_tool_provider(model, sweep=cfg.sweep)
            except ConfigError as exc:
                raise config_error(cfg, "model.provider", str(exc)) from None
        for budget in cfg.sweep.budgets:
            try:
                provider.check_budget(budget)
            except ConfigError as exc:
                raise config_error(cfg, "sweep.budgets", str(exc)) from None
        fingerprint = {"model": provider.describe(), "dataset": data_id,
                       "prompt": self.prompt_identity()}
        return env_cls, problems, provider, fingerprint

    def prompt_identity(self) -> dict[str, Any]:
        return {"system": self.system, "environment": self.agent.environment,
                "mode": self.agent.mode, "seed": self.config.sweep.seed}

    @property
    def system(self) -> str:
        return self.agent.system or self.config.prompt.system or DEFAULT_SYSTEM

    # ------------------------------------------------------------ planning
    def plan(self, problems: list[Problem], states: dict[Any, TrajectoryState],
             written: set[tuple[str, str, int]] | None = None) -> AgentPlan:
        """The trajectories left to run. A finished one counts as done only when its row
        in ``samples`` (``written``: the store's ``done_keys``) exists too: the two are
        separate commits, and a kill between them must not leave the row missing for
        good. Such a trajectory is planned again and only replayed (no request)."""
        cfg = self.config
        jobs: list[Trajectory] = []
        total = 0
        for budget in cfg.sweep.budgets:
            label = budget_label(budget)
            for problem in problems:
                for horizon in self.horizons:
                    cap = horizon or self.max_steps
                    for i in range(cfg.sweep.samples):
                        total += 1
                        seed = zlib.crc32(f"{cfg.sweep.seed}|{problem.id}|{budget}|{i}".encode())
                        job = Trajectory(problem, budget, label, horizon, i, cap,
                                         env_seed=cfg.sweep.seed, request_seed=seed)
                        state = states.get(job.key)
                        row = (problem.id, sample_label(label, horizon), i)
                        if state is not None and (state.status == "ended" or (
                                state.status == "capped" and state.n_steps >= cap)) and (
                                written is None or row in written):
                            continue
                        jobs.append(job)
        max_requests = sum(max(0, j.cap - (states[j.key].n_steps if j.key in states else 0))
                           for j in jobs if not (j.key in states
                                                 and states[j.key].status == "ended"))
        return AgentPlan(total, total - len(jobs), jobs, max_requests)

    def prepare(self) -> tuple[RunStore, StepStore, Provider, AgentPlan]:
        """Validate, claim the run directory, plan. Raises before any request."""
        from ttc.sweep_record import public_config

        env_cls, problems, provider, fingerprint = self._load(check_key=True)
        self._env_cls = env_cls
        store = RunStore(self.run_dir, create=True)
        try:
            store.claim(fingerprint)
            store.put_problems(problems, {})
            store.set_meta(config=public_config(self.config), n_problems=len(problems),
                           agent=self.describe(), sample_budgets=self.sample_budgets())
            steps = StepStore(self.run_dir / DB_NAME)
            plan = self.plan(problems, steps.states(), store.done_keys())
        except BaseException:
            store.close()
            raise
        return store, steps, provider, plan

    def prepare_dry(self) -> tuple[Provider, AgentPlan]:
        _env_cls, problems, provider, fingerprint = self._load(check_key=False)
        states: dict[Any, TrajectoryState] = {}
        written: set[tuple[str, str, int]] = set()
        if (self.run_dir / DB_NAME).exists():
            with RunStore(self.run_dir) as store:
                store.check(fingerprint)
                written = store.done_keys()
            with StepStore(self.run_dir / DB_NAME) as steps:
                states = steps.states()
        return provider, self.plan(problems, states, written)

    def sample_budgets(self) -> list[str]:
        """The ``samples.budget`` labels this run writes, each holding problems x samples
        rows (``ttc status`` counts progress per label)."""
        return [sample_label(budget_label(b), h) for b in self.config.sweep.budgets
                for h in self.horizons]

    @property
    def horizons(self) -> list[int]:
        """The step budgets agents are told: none (0) in truncate mode, each in separate."""
        return [0] if self.agent.mode == "truncate" else self.step_budgets

    def describe(self) -> dict[str, Any]:
        """What ``meta.agent`` records: how to read the step axis of this run."""
        return {"environment": self.agent.environment, "mode": self.agent.mode,
                "step_budgets": self.step_budgets, "max_steps": self.max_steps,
                "told_budget": self.agent.mode == "separate"}

    # ------------------------------------------------------------ running
    async def run(self) -> AgentResult:
        """Run every planned trajectory; safe to cancel or kill at any point."""
        store, steps, provider, plan = self.prepare()
        result = AgentResult(planned=len(plan.jobs))
        started = time.monotonic()
        sweep = self.config.sweep
        committer: Committer[StepRecord] | None = None
        try:
            if not plan.jobs:
                return result
            await provider.start()
            bar = SweepProgress(total=plan.total, done=plan.done, enabled=self._progress)
            committer = Committer(store, steps.write_steps)
            committer.start()
            limits = Limits(sweep, RequestLimiter(sweep.requests_per_minute),
                            TokenBucket(sweep.tokens_per_minute), committer, progress=bar)
            jobs = iter(plan.jobs)
            workers = min(sweep.concurrency, len(plan.jobs))
            if provider.max_concurrency is not None:
                workers = min(workers, max(1, provider.max_concurrency))
            with bar:
                async with asyncio.TaskGroup() as group:
                    for _ in range(workers):
                        group.create_task(
                            self._worker(jobs, provider, store, steps, limits, result, bar))
            if limits.halt.reason is not None:  # every step in flight is stored by now
                raise limits.halt.reason
        except* Exception as group_error:
            raise group_error.exceptions[0] from None
        finally:
            result.elapsed_s = time.monotonic() - started
            try:
                if committer is not None:
                    await committer.aclose()  # the steps drawn are stored, even on Ctrl-C
            finally:
                steps.close()
            store.close()
            await provider.aclose()
        return result

    async def _worker(self, jobs: Iterator[Trajectory], provider: Provider, store: RunStore,
                      steps: StepStore, limits: Limits, result: AgentResult,
                      bar: SweepProgress) -> None:
        for job in jobs:
            try:
                outcome = await run_trajectory(
                    job, self._env_cls(), provider, steps, limits, system=self.system,
                    store_thinking=self.config.sweep.store_thinking)
            except Halted:
                return  # the sweep stops: this trajectory resumes from its stored steps
            except SweepAborted as exc:  # stop sending; the other workers' steps finish
                if limits.halt.reason is None:
                    bar.note(drain_notice(exc, "the steps", self.config.sweep.timeout_s))
                limits.halt.halt(exc)
                return
            except EnvironmentContractError as exc:
                raise config_error(self.config, "agent.environment", f"environment "
                                   f"{self.agent.environment!r} {exc}") from None
            row = self._sample_row(job, outcome)
            store.write_samples([row])
            bar.advance(row)
            status = outcome.state.status
            result.ended += status == "ended"
            result.capped += status == "capped"
            if status == "failed":
                result.failed += 1
                key = (outcome.state.error or "error").split(": ")[0][:60]
                result.errors[key] = result.errors.get(key, 0) + 1
            result.steps += outcome.new_steps
            result.cost += outcome.cost
            result.tokens += outcome.output_tokens

    def _sample_row(self, job: Trajectory, outcome: TrajectoryOutcome) -> SampleRecord:
        state = outcome.state
        failed = state.status == "failed"
        return SampleRecord(
            problem_id=job.problem.id, budget=sample_label(job.label, job.horizon),
            sample_index=job.sample_index,
            status="failed" if failed else "ok" if state.status == "ended" else "censored",
            answer=None if failed else outcome.answer,
            correct=None if failed else outcome.score >= 1.0,
            text=outcome.last_text, input_tokens=outcome.input_tokens,
            output_tokens=outcome.output_tokens, thinking_tokens=outcome.thinking_tokens,
            thinking_estimated=outcome.thinking_estimated,
            stop_reason=state.status, latency_s=round(outcome.latency_s, 6),
            attempts=outcome.attempts, error=state.error, cost=outcome.cost,
            extra={"agent": {"steps": state.n_steps, "cap": state.cap, "horizon": job.horizon,
                             "score": outcome.score, "first_success": outcome.first_success,
                             "milestones": outcome.milestones}},
            created_at=time.time(),
        )


# ---------------------------------------------------------------------- the command


def sweep_command(config: Config, out: Path, *, path: Path, sets: list[str], dry_run: bool,
                  quiet: bool) -> int:
    """``ttc sweep`` for a config with ``[agent]``: plan or run, print one summary."""
    sweep = AgentSweep(config, out, progress=not quiet)
    if dry_run:
        provider, plan = sweep.prepare_dry()
        print(f"run directory : {out}")
        print(f"model         : {provider.describe().get('name')} ({config.model.provider})")
        print(f"environment   : {sweep.agent.environment} (mode {sweep.agent.mode})")
        print(f"step budgets  : {', '.join(map(str, sweep.step_budgets))}")
        print(f"trajectories  : {len(plan.jobs):,} to run ({plan.done:,} of {plan.total:,} "
              f"finished)")
        print(f"requests      : up to {plan.max_requests:,} (every trajectory to its cap)")
        return 0
    try:
        result = asyncio.run(sweep.run())
    except KeyboardInterrupt:
        again = " ".join(["ttc sweep", str(path), "--out", str(out),
                          *[f"--set {s}" for s in sets]])
        print(f"\nttc: interrupted; stored steps are saved in {out}.\nResume with: {again}",
              file=sys.stderr)
        return 130
    print(f"{result.ended + result.capped} trajectories ({result.ended} finished, "
          f"{result.capped} out of steps), {result.failed} failed, {result.steps:,} steps, "
          f"{result.tokens:,} output tokens, ${result.cost:.2f}, {result.elapsed_s:.1f}s -> {out}")
    for error, count in sorted(result.errors.items(), key=lambda kv: -kv[1]):
        print(f"  {count} x {error}")
    if result.failed:
        print("Failed trajectories resume from their last stored step when you run the same "
              "command again.")
    return 1 if result.failed else 0
