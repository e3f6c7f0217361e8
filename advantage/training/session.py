"""The run session: the one place that owns a training run's surroundings.

It makes the run folder and ``config.json``, opens the writers, draws the progress bar (env steps,
SPS, ETA, latest return), keeps the checkpoint and evaluation cadence, watches the metrics' health,
turns Ctrl-C or a crash into a final checkpoint, a clear message and the exception, and writes
``summary.json`` with the learning curve and the video. *How* training is executed is a
:class:`~advantage.training.stepper.Stepper` (JAX compiled chunks, the Gymnasium host loop,
population search, ...): the session asks it to advance, and reads each seed's env steps from
it -- it never assumes that seeds advance in lockstep.

``train`` and ``resume`` (re-exported by ``driver.py``) are the public entry points.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Literal

import jax
import numpy as np

from advantage import algos, cpu
from advantage.config import to_dict
from advantage.envs import registry
from advantage.envs.spaces import action_dim, is_discrete
from advantage.errors import ConfigError, RunError
from advantage.training import checkpoint
from advantage.training.common import eval_result, evaluate_now, finish, params_digest, progress_bar, write_eval
from advantage.training.health import HealthMonitor, NonFiniteError
from advantage.training.loading import (
    enable_compilation_cache,
    load_run_config,
    make_backend,
    resolve_seed_batching,
    restore_run,
)
from advantage.training.run_config import RunConfig, Schedule
from advantage.training.stepper import Advance, Stepper, UpdateStepper


def resolve_backend(run: RunConfig) -> Literal["jax", "gymnasium"]:
    if run.backend == "jax":
        if not registry.is_jax_env(run.env):
            registry.spec(run.env)  # raises with suggestions
        return "jax"
    if run.backend == "gymnasium":
        return "gymnasium"
    return "jax" if registry.is_jax_env(run.env) else "gymnasium"


def default_run_dir(algo_name: str, env: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    safe_env = env.replace(":", "_").replace("/", "_")
    return Path("runs") / f"{algo_name}-{safe_env}-{stamp}"


def make_stepper(algo, algo_cfg, run: RunConfig) -> Stepper:
    """The stepper that executes ``run``: population search for a search algorithm, else chunked updates,
    on the back end ``run.backend`` (resolved)."""
    assert run.total_steps is not None  # resolved by train() (or saved by it, for resume())
    if run.workers and getattr(algo, "WORKERS", None):
        from advantage.training.pool_stepper import PoolStepper

        backend, _ = make_backend(algo, algo_cfg, run, run.backend, Schedule(run.total_steps, algo_cfg.n_envs, 1))
        return PoolStepper(algo, algo_cfg, run, backend)
    if algo.SEARCH:
        from advantage.training.search import SearchStepper

        backend, _ = make_backend(algo, algo_cfg, run, run.backend, Schedule(run.total_steps, 1, 1))
        return SearchStepper(algo, algo_cfg, run, backend)
    schedule = Schedule(run.total_steps, algo_cfg.n_envs, algo_cfg.n_steps)
    backend, chunk_iters = make_backend(algo, algo_cfg, run, run.backend, schedule)
    return UpdateStepper(algo, backend, schedule, chunk_iters)


def train(algo_name: str, algo_cfg, run: RunConfig, console=None) -> dict:
    """Train ``algo_name`` with ``algo_cfg`` as described by ``run``; returns the summary."""
    algo = algos.get(algo_name)
    if run.native_isa and cpu.isa() != "native":
        cpu.use_native_isa()  # a RunError if JAX has started already
    run = dataclasses.replace(run, native_isa=cpu.isa() == "native")  # config.json says what really ran
    backend_name = resolve_backend(run)
    total = run.total_steps or algo.DEFAULT_STEPS.get(registry.preset_id(run.env), 100_000)
    workers = getattr(algo, "DEFAULT_WORKERS", None) if run.workers is None else run.workers
    if run.ray_address and not workers:
        raise RunError(f"--ray-address {run.ray_address}: give --workers N too (the workers are what runs on Ray)")
    if run.jobs_per_worker and not (workers and getattr(algo, "WORKERS", None)):
        raise ConfigError(
            f"--jobs-per-worker {run.jobs_per_worker}: {algo_name} has no worker pool of its own; the option is "
            "for a3c and impala with --workers N"
        )
    if workers and getattr(algo, "WORKERS", None) and run.total_steps is None:
        job = algo_cfg.n_envs * algo_cfg.n_steps  # the default budget, rounded up to whole worker jobs
        total = -(-total // job) * job
    if workers:
        from advantage.training.pool_stepper import check_worker_run

        run = dataclasses.replace(run, workers=workers)
        check_worker_run(algo, algo_cfg, dataclasses.replace(run, total_steps=total, backend=backend_name))
        if getattr(algo_cfg, "policy_lag", 0):  # the workers' own lag replaces the simulated one
            (console or _stderr_console()).print(
                f"--workers {workers}: the behaviour policy is the one each worker was last sent, so the "
                f"simulated lag (policy_lag={algo_cfg.policy_lag}) is set to 0"
            )
            algo_cfg = algo_cfg.replace(policy_lag=0)
    if not algo.SEARCH:
        Schedule(total, algo_cfg.n_envs, algo_cfg.n_steps)  # an inexact budget fails here, before anything is built
    folder = str(run.run_dir or default_run_dir(algo_name, run.env))
    run = dataclasses.replace(
        run, total_steps=total, backend=backend_name, seed_batching=resolve_seed_batching(run), run_dir=folder
    )
    run_dir = Path(folder)
    if (run_dir / "config.json").exists():
        raise RunError(
            f"{run_dir} already holds a run; choose another --run-dir, or continue it with --resume {run_dir}"
        )
    if run.wandb_project:
        from advantage.logging.writers import import_wandb

        import_wandb()  # a missing extra stops the run here, before its folder is made
    return Session(algo, algo_cfg, run, run_dir, console=console).run()


def resume(run_dir, console=None) -> dict:
    """Continue the run in ``run_dir`` from its checkpoint. On the JAX back end the result is the
    same, bit for bit, as an uninterrupted run's; on the Gymnasium back end the environments are
    re-seeded (their internal state is not saved), so the continuation differs."""
    algo_name, algo_cfg, run = load_run_config(run_dir)
    meta, raw = checkpoint.load_meta(Path(run_dir) / "checkpoints")
    if meta["env_steps"] >= run.total_steps and (Path(run_dir) / "summary.json").exists():
        raise RunError(
            f"{run_dir} has finished ({meta['env_steps']} env steps per seed); "
            f"evaluate it again with: advantage eval {run_dir}"
        )
    if meta.get("replay_buffer_saved") is False:
        raise RunError(
            f"{run_dir} was trained with --no-checkpoint-buffer: its checkpoint holds no replay buffer, "
            "so the run cannot continue as it was. Evaluate it (advantage eval), or start a new run."
        )
    return Session(algos.get(algo_name), algo_cfg, run, Path(run_dir), ckpt=(meta, raw), console=console).run()


def evaluate_run(run_dir, episodes: int = 200, deterministic: bool = True, max_steps: int | None = None) -> dict:
    """Evaluate the last checkpoint of the run in ``run_dir`` again (``advantage eval``)."""
    run_dir = Path(run_dir)
    algo, algo_cfg, run, meta, backend, runners = restore_run(run_dir)
    try:
        returns, lengths, _ = backend.evaluate(runners, episodes, deterministic, max_steps or run.eval_max_steps)
    finally:
        backend.close()
    result = {
        "run_dir": str(run_dir),
        "env_steps": meta["env_steps"],
        "seeds": list(run.seeds),
        **eval_result(run.seeds, returns, lengths, deterministic),
    }
    out = run_dir / "eval" / f"eval-{time.strftime('%Y%m%d-%H%M%S')}.json"
    write_eval(out, run.seeds, returns, lengths)
    result["episodes_file"] = str(out)
    return result


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def _nanmean(x) -> float:
    """Mean of the finite-or-infinite values, ignoring NaN (NaN when all are NaN)."""
    x = np.asarray(x, np.float64)
    keep = ~np.isnan(x)
    return float(x[keep].mean()) if keep.any() else float("nan")


def _latest_return(returns: np.ndarray) -> float:
    """The progress bar's return: the seeds' mean at the last update, or the mean of every finite value."""
    if returns.size and np.all(np.isfinite(returns[:, -1])):
        return float(np.mean(returns[:, -1]))
    finite = returns[np.isfinite(returns)]
    return float(finite.mean()) if finite.size else float("nan")


class Session:
    """One training run (new, or resumed from ``ckpt = (meta, raw_state)``) around one stepper."""

    def __init__(
        self, algo, algo_cfg, run: RunConfig, run_dir: Path, ckpt=None, console=None, stepper: Stepper | None = None
    ):
        assert run.total_steps is not None  # resolved by train() (or saved by it, for resume())
        self.algo, self.algo_cfg, self.run_cfg, self.run_dir, self.ckpt = algo, algo_cfg, run, run_dir, ckpt
        self.console = console or _stderr_console()
        self.seeds = list(run.seeds)
        self.total = run.total_steps
        self._stepper = stepper
        self.state: Any = None
        self.run_time = 0.0
        self.wall_before = self.compile_before = 0.0

    # ------------------------------------------------------------------ the run
    def run(self) -> dict:
        enable_compilation_cache()
        self.t_start = time.perf_counter()
        stepper = self.stepper = self._stepper or make_stepper(self.algo, self.algo_cfg, self.run_cfg)
        try:
            self.state = stepper.start(self.seeds)
            self._open()
            if self.run_cfg.eval_episodes > 0:  # the final evaluation's program compiles while training runs
                run = self.run_cfg
                stepper.prefetch_evaluation(
                    self.state, run.eval_episodes, run.eval_deterministic, run.eval_max_steps, run.eval_record
                )
            self._train()
        except BaseException:
            stepper.close()
            raise
        return self._finish()

    def _open(self) -> None:
        """The run folder, config.json (or the checkpoint restored), writers, health monitor, cadences."""
        run, run_dir, stepper = self.run_cfg, self.run_dir, self.stepper
        if self.ckpt is None:  # written once the env and agent are built, so a failed start leaves no half-made run
            run_dir.mkdir(parents=True, exist_ok=True)
            config = {
                "algo": self.algo.NAME,
                "algo_config": to_dict(self.algo_cfg),
                "run": to_dict(run),
                "versions": checkpoint.versions(),
            }
            (run_dir / "config.json").write_text(json.dumps(config, indent=2))
            resume_steps = None
        else:
            meta, raw = self.ckpt
            self.state = stepper.restore(self.state, raw, str(run_dir / "checkpoints"), meta)
            self.wall_before, self.compile_before = meta["wall_time_s"], meta["compile_time_s"]
            self.console.print(f"[bold]resuming[/] {run_dir} at {meta['env_steps']} env steps per seed")
            # seeds may have reached different env-step counts: each seed's metric rows are kept up to its own
            resume_steps = dict(zip(self.seeds, self.env_steps().tolist()))
        from advantage.logging.writers import CSVWriter, open_writers

        # metrics.csv, tb/ (and metrics.jsonl, W&B when asked): every row; eval/history.csv: the evaluations
        self.writers = open_writers(
            run_dir, self.seeds, run, json.loads((run_dir / "config.json").read_text()), resume_steps
        )
        (run_dir / "eval").mkdir(parents=True, exist_ok=True)
        self.eval_csv: Any = CSVWriter(
            run_dir / "eval" / "history.csv", resume_step=None if resume_steps is None else int(self.env_steps().min())
        )
        done = int(self.env_steps().min())
        self.ckpt_every = run.checkpoint_every or max(stepper.update_size, self.total // 10)
        self.next_ckpt = (done // self.ckpt_every + 1) * self.ckpt_every
        self.next_eval = (done // run.eval_every + 1) * run.eval_every if run.eval_every else None
        self.interval = stepper.log_interval(run.log_every)
        self.monitor = HealthMonitor(
            self.seeds,
            self.console,
            run_dir / "warnings.log",
            discrete=is_discrete(stepper.action_space),
            action_dim=action_dim(stepper.action_space),
            nan_allowed=stepper.nan_metrics,
            steps_per_update=stepper.update_size,
        )
        self.console.print(
            f"[bold]{self.algo.NAME}[/] on [bold]{run.env}[/] ({stepper.name} back end, "
            f"{jax.default_backend()}), seeds {self.seeds}: {stepper.describe()}; run folder {run_dir}"
        )
        if buffers := checkpoint.replay_buffers(self.state):
            from advantage.buffers import replay

            mb = sum(replay.nbytes(b) for b in buffers) / 2**20
            saved = (
                "saved in every checkpoint"
                if run.checkpoint_buffer
                else "not saved in checkpoints (--no-checkpoint-buffer)"
            )
            self.console.print(
                f"replay buffer: {replay.capacity(buffers[0]):,} transitions per seed, {mb:.1f} MiB "
                f"for {len(self.seeds)} seed(s); {saved}"
            )

    def env_steps(self) -> np.ndarray:
        return self.stepper.env_steps(self.state)

    def _train(self) -> None:
        stepper, run = self.stepper, self.run_cfg
        try:
            with progress_bar(self.console, run.progress) as progress:
                task = progress.add_task(
                    f"{self.algo.NAME} {run.env}",
                    total=self.total,
                    completed=min(int(self.env_steps().min()), self.total),
                    sps="-",
                    ret="-",
                )
                while not stepper.finished(self.state):
                    before = self.env_steps()
                    c0, timers0 = stepper.compile_time_s, dict(stepper.timers)
                    t0 = time.perf_counter()
                    adv = stepper.advance(self.state, int(self.total - before.min()))
                    dt = time.perf_counter() - t0 - (stepper.compile_time_s - c0)
                    self.run_time += dt
                    sps = float((adv.env_steps[:, -1] - before).sum()) / max(dt, 1e-9)
                    self._log(adv, before, sps, timers0)
                    if stepper.health_checks:
                        self._check_health(adv, before)
                    self.state = adv.state  # only now: a Ctrl-C saves the state after the last completed advance
                    done = int(min(self.env_steps().min(), self.total))
                    progress.update(
                        task,
                        completed=done,
                        sps=f"{sps:,.0f}",
                        ret=f"{_latest_return(adv.metrics['train/episode_return']):.1f}",
                    )
                    self._cadence()
        except BaseException as e:
            # Ctrl-C, or an error from the env or the host: keep the state after the last completed advance.
            self._save_checkpoint()
            self._close_writers()
            what = "interrupted" if isinstance(e, KeyboardInterrupt) else f"stopped by an error ({type(e).__name__})"
            resumable = run.checkpoint_buffer or not checkpoint.replay_buffers(self.state)
            self.console.print(
                f"\n[bold]{what}[/] at {int(self.env_steps().min())} env steps per seed; the checkpoint is saved. "
                + (
                    f"Continue with: advantage train --resume {self.run_dir}"
                    if resumable
                    else "It holds no replay buffer (--no-checkpoint-buffer): evaluate it with advantage eval; "
                    "it cannot resume."
                )
            )
            raise

    def _cadence(self) -> None:
        """Evaluate and checkpoint when their env-step marks are passed (not after the last update: the run's
        end does both)."""
        run, done = self.run_cfg, int(self.env_steps().min())
        if self.stepper.finished(self.state):
            return
        if self.next_eval and done >= self.next_eval:
            ev = self.evaluate(done, f"step_{done}")
            self.console.print(f"evaluation at {done} steps: mean return {ev['eval_return']['mean']:.1f}")
            assert run.eval_every  # next_eval is set only with eval_every
            self.next_eval = (done // run.eval_every + 1) * run.eval_every
        if done >= self.next_ckpt:
            self._save_checkpoint()
            self.next_ckpt = (done // self.ckpt_every + 1) * self.ckpt_every

    # ------------------------------------------------------------------ metrics
    def _log(self, adv: Advance, before: np.ndarray, sps: float, timers_before: dict) -> None:
        """One row per seed per ``interval`` env steps (NaN-aware means of the updates in between), and one at
        the end of every advance; updates in which a seed did not advance are not logged."""
        rows = []
        extra = {"perf/sps": sps, "perf/compile_s": self.compile_before + self.stepper.compile_time_s}
        extra.update({f"perf/{k}_s": v - timers_before[k] for k, v in self.stepper.timers.items()})
        for si, seed in enumerate(self.seeds):
            steps = adv.env_steps[si]
            prev = np.concatenate([[before[si]], steps[:-1]])
            active = steps > prev  # updates that happened for this seed
            if not active.any():
                continue
            last = int(np.flatnonzero(active)[-1])
            start = int(np.flatnonzero(active)[0])
            for i in range(start, last + 1):
                if not (i == last or steps[i] // self.interval > prev[i] // self.interval):
                    continue
                row: dict[str, float] = {"step": int(steps[i]), "seed": seed}
                row.update({k: _nanmean(v[si, start : i + 1]) for k, v in adv.metrics.items()})
                if i == last:
                    row.update(extra)
                rows.append(row)
                start = i + 1
        self.writers.write_rows(rows)

    def _check_health(self, adv: Advance, before: np.ndarray) -> None:
        """Warn about unhealthy metrics; on a non-finite value save the offending batch and stop."""
        active = np.diff(np.concatenate([before[:, None], adv.env_steps], axis=1), axis=1) > 0
        try:
            self.monitor.check(adv.metrics, adv.env_steps.max(axis=0), active)
        except NonFiniteError:
            try:
                batch = self.stepper.nonfinite_batch(self.state, adv)
                if batch is not None:
                    (self.run_dir / "debug").mkdir(exist_ok=True)
                    flat: dict[str, Any] = {f: np.asarray(getattr(batch, f)) for f in batch.__dataclass_fields__}
                    np.savez_compressed(self.run_dir / "debug" / "nonfinite_batch.npz", **flat)
                    self.console.print(
                        f"the offending rollout batch is saved in {self.run_dir / 'debug' / 'nonfinite_batch.npz'}"
                    )
            except Exception as e:  # noqa: BLE001 - the diagnosis must not hide the error itself
                self.console.print(f"[yellow]could not save the offending batch: {e}[/]")
            raise

    def evaluate(self, step: int, name: str) -> dict:
        return evaluate_now(
            self.stepper, self.state, self.run_cfg, self.run_dir, step, name, (self.writers, self.eval_csv)
        )

    # ------------------------------------------------------------------ checkpoints and the end
    def _save_checkpoint(self) -> None:
        per_seed = self.env_steps()
        checkpoint.save(
            self.run_dir / "checkpoints",
            self.state,
            {
                "algo": self.algo.NAME,
                "algo_config": to_dict(self.algo_cfg),
                "run": to_dict(self.run_cfg),
                **self.stepper.checkpoint_meta(self.state),
                "env_steps": int(per_seed.min()),
                "env_steps_per_seed": per_seed.tolist(),
                "wall_time_s": self.wall_before + time.perf_counter() - self.t_start,
                "compile_time_s": self.compile_before + self.stepper.compile_time_s,
            },
            keep_buffers=self.run_cfg.checkpoint_buffer,
        )

    def _close_writers(self) -> None:
        self.writers.close()
        self.eval_csv.close()

    def _finish(self) -> dict:
        stepper, run = self.stepper, self.run_cfg
        self._save_checkpoint()
        per_seed = self.env_steps()
        agents = stepper.agents(self.state)
        policies = [self.algo.policy_params(jax.tree.map(lambda x: x[i], agents)) for i in range(len(self.seeds))]
        summary = {
            "algo": self.algo.NAME,
            "env": run.env,
            "backend": stepper.name,
            "seeds": self.seeds,
            "env_steps": int(per_seed.max()),
            "total_env_steps": int(per_seed.sum()),
            **({} if (per_seed == per_seed[0]).all() else {"env_steps_per_seed": per_seed.tolist()}),
            **stepper.summary(self.state),
            "params_digest": params_digest(policies),
            "params_digest_per_seed": [params_digest(p) for p in policies],
        }
        try:
            if run.eval_episodes > 0:
                t0 = time.perf_counter()
                summary.update(self.evaluate(int(per_seed.max()), "final"))
                summary["eval_time_s"] = time.perf_counter() - t0
        finally:
            self._close_writers()
            stepper.close()
        if self.monitor.warned:
            summary["warnings"] = list(self.monitor.warned.values())
        consumed = float(per_seed.sum())
        return finish(
            summary,
            self.algo,
            run,
            self.run_dir,
            self.console,
            loaded=(self.algo, self.algo_cfg, stepper.action_space, agents),
            wall_time_s=self.wall_before + time.perf_counter() - self.t_start,
            compile_time_s=self.compile_before + stepper.compile_time_s,
            run_time_s=self.run_time,
            sps=consumed / max(self.run_time, 1e-9) if self.ckpt is None else None,
        )
