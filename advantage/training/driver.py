"""The one generic driver: budget, chunks, logging, checkpoints, evaluation, summary.

It is the same for every algorithm and both back ends; a back end provides
``init``, ``run_chunk``, ``run_partial`` and ``evaluate`` (see ``jax_backend.py``
and ``gym_backend.py``). What it shares with the search driver (``search.py``) is in
``common.py``; loading a saved run (``load_run_config``, ``load_agents``) is in ``loading.py``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Literal

import jax
import numpy as np

from advantage import algos, cpu
from advantage.config import to_dict
from advantage.envs import registry
from advantage.envs.spaces import action_dim, is_discrete
from advantage.errors import RunError  # defined there; importable from here as before
from advantage.training import checkpoint
from advantage.training.common import eval_result, evaluate_now, finish, params_digest, progress_bar, write_eval
from advantage.training.health import HealthMonitor, NonFiniteError
from advantage.training.loading import enable_compilation_cache, make_backend, resolve_seed_batching, restore_run
from advantage.training.loading import load_agents as load_agents  # moved to loading.py; importable from here
from advantage.training.loading import load_run_config as load_run_config  # as before
from advantage.training.run_config import RunConfig, Schedule


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


def train(algo_name: str, algo_cfg, run: RunConfig, console=None) -> dict:
    """Train ``algo_name`` with ``algo_cfg`` as described by ``run``; returns the summary."""
    algo = algos.get(algo_name)
    if run.native_isa and cpu.isa() != "native":
        cpu.use_native_isa()  # a RunError if JAX has started already
    run = dataclasses.replace(run, native_isa=cpu.isa() == "native")  # config.json says what really ran
    backend_name = resolve_backend(run)
    total = run.total_steps or algo.DEFAULT_STEPS.get(run.env, 100_000)
    schedule = Schedule(total, algo_cfg.n_envs, algo_cfg.n_steps)
    folder = str(run.run_dir or default_run_dir(algo_name, run.env))
    run = dataclasses.replace(run, total_steps=total, backend=backend_name, seed_batching=resolve_seed_batching(run),
                              run_dir=folder)
    run_dir = Path(folder)
    if (run_dir / "config.json").exists():
        raise RunError(f"{run_dir} already holds a run; choose another --run-dir, or continue it with "
                       f"--resume {run_dir}")
    if run.wandb_project:
        from advantage.logging.writers import import_wandb

        import_wandb()  # a missing extra stops the run here, before its folder is made
    return _run(algo, algo_cfg, run, schedule, run_dir, console=console)


def resume(run_dir, console=None) -> dict:
    """Continue the run in ``run_dir`` from its checkpoint. On the JAX back end the result is the
    same, bit for bit, as an uninterrupted run's; on the Gymnasium back end the environments are
    re-seeded (their internal state is not saved), so the continuation differs."""
    algo_name, algo_cfg, run = load_run_config(run_dir)
    meta, raw = checkpoint.load_meta(Path(run_dir) / "checkpoints")
    if meta["env_steps"] >= run.total_steps and (Path(run_dir) / "summary.json").exists():
        raise RunError(f"{run_dir} has finished ({meta['env_steps']} env steps per seed); "
                       f"evaluate it again with: advantage eval {run_dir}")
    if meta.get("replay_buffer_saved") is False:
        raise RunError(f"{run_dir} was trained with --no-checkpoint-buffer: its checkpoint holds no replay buffer, "
                       "so the run cannot continue as it was. Evaluate it (advantage eval), or start a new run.")
    algo = algos.get(algo_name)
    assert run.total_steps is not None  # a saved run's budget is resolved (train() wrote it)
    schedule = Schedule(run.total_steps, algo_cfg.n_envs, algo_cfg.n_steps)
    return _run(algo, algo_cfg, run, schedule, Path(run_dir), ckpt=(meta, raw), console=console)


def _nanmean(x) -> float:
    """Mean of the finite-or-infinite values, ignoring NaN (NaN when all are NaN)."""
    x = np.asarray(x, np.float64)
    keep = ~np.isnan(x)
    return float(x[keep].mean()) if keep.any() else float("nan")


def _run(algo, algo_cfg, run: RunConfig, schedule: Schedule, run_dir: Path, ckpt=None, console=None) -> dict:
    assert run.total_steps is not None  # resolved by train() (or saved by it, for resume())
    if getattr(algo, "SEARCH", False):  # gradient-free search (CEM, hill climbing, CMA-ES): whole-episode generations
        from advantage.training import search

        return search.run(algo, algo_cfg, run, run_dir, ckpt=ckpt, console=console)
    from rich.console import Console

    from advantage.logging.writers import CSVWriter, open_writers

    console = console or Console(stderr=True)
    enable_compilation_cache()
    t_start = time.perf_counter()
    backend, chunk_iters = make_backend(algo, algo_cfg, run, run.backend, schedule)
    seeds = list(run.seeds)
    runners = backend.init(seeds)
    if ckpt is None:  # written once the env and agent are built, so a failed start leaves no half-made run
        run_dir.mkdir(parents=True, exist_ok=True)
        config = {"algo": algo.NAME, "algo_config": to_dict(algo_cfg), "run": to_dict(run),
                  "versions": checkpoint.versions()}
        (run_dir / "config.json").write_text(json.dumps(config, indent=2))
    iters_done, partial_done, wall_before, compile_before = 0, False, 0.0, 0.0
    if ckpt is not None:
        meta, raw = ckpt
        runners = checkpoint.restore(runners, raw, str(run_dir / "checkpoints"))
        iters_done, partial_done = meta["iters_done"], meta["partial_done"]
        wall_before, compile_before = meta["wall_time_s"], meta["compile_time_s"]
        if hasattr(backend, "reset_envs"):
            backend.reset_envs(runners)
        console.print(f"[bold]resuming[/] {run_dir} at {meta['env_steps']} env steps per seed")
    steps_done = lambda: iters_done * schedule.batch + (schedule.partial_steps * algo_cfg.n_envs if partial_done else 0)  # noqa: E731
    resume_step = steps_done() if ckpt is not None else None
    writers = open_writers(run_dir, seeds, run, json.loads((run_dir / "config.json").read_text()), resume_step)
    (run_dir / "eval").mkdir(parents=True, exist_ok=True)
    eval_csv = CSVWriter(run_dir / "eval" / "history.csv", resume_step=resume_step)
    ckpt_every = run.checkpoint_every or max(schedule.batch, run.total_steps // 10)
    next_ckpt = (steps_done() // ckpt_every + 1) * ckpt_every
    next_eval = (steps_done() // run.eval_every + 1) * run.eval_every if run.eval_every else None
    monitor = HealthMonitor(seeds, console, run_dir / "warnings.log", discrete=is_discrete(backend.action_space),
                            action_dim=action_dim(backend.action_space),
                            nan_allowed=tuple(getattr(algo, "NAN_METRICS", ())), steps_per_update=schedule.batch)

    def evaluate(step: int, name: str) -> dict:
        return evaluate_now(backend, runners, run, run_dir, step, name, (writers, eval_csv))

    console.print(f"[bold]{algo.NAME}[/] on [bold]{run.env}[/] ({backend.name} back end, {jax.default_backend()}), "
                  f"seeds {seeds}: {schedule.describe()}; run folder {run_dir}")
    if buffers := checkpoint.replay_buffers(runners):
        from advantage.buffers import replay

        mb = sum(replay.nbytes(b) for b in buffers) / 2**20
        console.print(f"replay buffer: {replay.capacity(buffers[0]):,} transitions per seed, {mb:.1f} MiB for "
                      f"{len(seeds)} seed(s); " + ("saved in every checkpoint" if run.checkpoint_buffer else
                                                   "not saved in checkpoints (--no-checkpoint-buffer)"))

    def save_checkpoint():
        checkpoint.save(run_dir / "checkpoints", runners, {
            "algo": algo.NAME, "algo_config": to_dict(algo_cfg), "run": to_dict(run),
            "iters_done": iters_done, "partial_done": partial_done, "env_steps": steps_done(),
            "wall_time_s": wall_before + time.perf_counter() - t_start,
            "compile_time_s": compile_before + backend.compile_time_s,
        }, keep_buffers=run.checkpoint_buffer)

    group = schedule.log_group(run.log_every)

    def log(metrics: dict, first_step: int, step_size: int, sps: float, timers_before: dict):
        """One row per seed per ``group`` updates (NaN-aware means), and one at the end of every chunk."""
        n = next(iter(metrics.values())).shape[1]
        first_update = first_step // schedule.batch
        ends = [i for i in range(n) if (first_update + i + 1) % group == 0 or i == n - 1]
        rows = []
        for si, seed in enumerate(seeds):
            start = 0
            for i in ends:
                row: dict[str, float] = {"step": first_step + (i + 1) * step_size, "seed": seed}
                row.update({k: _nanmean(v[si, start:i + 1]) for k, v in metrics.items()})
                if i == n - 1:
                    row["perf/sps"] = sps
                    row["perf/compile_s"] = compile_before + backend.compile_time_s
                    for k, v in getattr(backend, "timers", {}).items():  # host back end: where the time went
                        row[f"perf/{k}_s"] = v - timers_before[k]
                rows.append(row)
                start = i + 1
        writers.write_rows(rows)
        returns = metrics["train/episode_return"]
        finite = returns[np.isfinite(returns)]
        return float(np.mean(returns[:, -1])) if np.all(np.isfinite(returns[:, -1])) else (
            float(finite.mean()) if finite.size else float("nan"))

    def check_health(metrics, steps, reproduce):
        """Warn about unhealthy metrics; on a non-finite value save the offending batch and stop."""
        try:
            monitor.check(metrics, steps)
        except NonFiniteError:
            try:
                found = reproduce() if run.backend == "jax" else (None, getattr(backend, "last_batch", None), None)
                if found is not None and found[1] is not None:
                    (run_dir / "debug").mkdir(exist_ok=True)
                    batch = found[1]
                    flat = {f: np.asarray(getattr(batch, f)) for f in batch.__dataclass_fields__}
                    np.savez_compressed(run_dir / "debug" / "nonfinite_batch.npz", **flat)
                    console.print("the offending rollout batch is saved in "
                                  f"{run_dir / 'debug' / 'nonfinite_batch.npz'}")
            except Exception as e:  # noqa: BLE001 - the diagnosis must not hide the error itself
                console.print(f"[yellow]could not save the offending batch: {e}[/]")
            raise

    run_time = 0.0
    try:
        with progress_bar(console, run.progress) as progress:
            task = progress.add_task(f"{algo.NAME} {run.env}", total=run.total_steps, completed=steps_done(),
                                     sps="-", ret="-")
            while iters_done < schedule.full_iters:
                n = min(chunk_iters, schedule.full_iters - iters_done)
                c0, timers0 = backend.compile_time_s, dict(getattr(backend, "timers", {}))
                t0 = time.perf_counter()
                new_runners, metrics = backend.run_chunk(runners, n)
                dt = time.perf_counter() - t0 - (backend.compile_time_s - c0)
                run_time += dt
                sps = n * schedule.batch * len(seeds) / max(dt, 1e-9)
                latest = log(metrics, iters_done * schedule.batch, schedule.batch, sps, timers0)
                steps = iters_done * schedule.batch + schedule.batch * np.arange(1, n + 1)
                check_health(metrics, steps, lambda: backend.first_nonfinite_batch(runners, n)
                             if hasattr(backend, "first_nonfinite_batch") else None)
                runners, iters_done = new_runners, iters_done + n  # together: a Ctrl-C saves a consistent pair
                progress.update(task, completed=steps_done(), sps=f"{sps:,.0f}", ret=f"{latest:.1f}")
                if next_eval and steps_done() >= next_eval and iters_done < schedule.full_iters:
                    ev = evaluate(steps_done(), f"step_{steps_done()}")
                    console.print(f"evaluation at {steps_done()} steps: mean return {ev['eval_return']['mean']:.1f}")
                    assert run.eval_every  # next_eval is set only with eval_every
                    next_eval = (steps_done() // run.eval_every + 1) * run.eval_every
                if steps_done() >= next_ckpt and iters_done < schedule.full_iters:
                    save_checkpoint()
                    next_ckpt = (steps_done() // ckpt_every + 1) * ckpt_every
            if schedule.partial_steps and not partial_done:
                first = iters_done * schedule.batch
                t0 = time.perf_counter()
                c0, timers0 = backend.compile_time_s, dict(getattr(backend, "timers", {}))
                new_runners, metrics = backend.run_partial(runners)
                dt = time.perf_counter() - t0 - (backend.compile_time_s - c0)
                run_time += dt
                sps = schedule.partial_steps * algo_cfg.n_envs * len(seeds) / max(dt, 1e-9)
                log(metrics, first, schedule.partial_steps * algo_cfg.n_envs, sps, timers0)
                check_health(metrics, np.array([first + schedule.partial_steps * algo_cfg.n_envs]), lambda: None)
                runners, partial_done = new_runners, True
                progress.update(task, completed=steps_done())
    except BaseException as e:
        # Ctrl-C, or an error from the env or the host: keep the state after the last completed chunk.
        save_checkpoint()
        writers.close()
        eval_csv.close()
        what = "interrupted" if isinstance(e, KeyboardInterrupt) else f"stopped by an error ({type(e).__name__})"
        resumable = run.checkpoint_buffer or not checkpoint.replay_buffers(runners)
        console.print(f"\n[bold]{what}[/] at {steps_done()} env steps per seed; the checkpoint is saved. " + (
            f"Continue with: advantage train --resume {run_dir}" if resumable else
            "It holds no replay buffer (--no-checkpoint-buffer): evaluate it with advantage eval; it cannot resume."))
        raise
    save_checkpoint()

    summary = {
        "algo": algo.NAME, "env": run.env, "backend": backend.name, "seeds": seeds,
        "env_steps": steps_done(), "total_env_steps": steps_done() * len(seeds),
        "params_digest": params_digest([algo.policy_params(jax.tree.map(lambda x: x[i], runners.agent))
                                        for i in range(len(seeds))]),
        "params_digest_per_seed": [params_digest(algo.policy_params(jax.tree.map(lambda x: x[i], runners.agent)))
                                   for i in range(len(seeds))],
    }
    if run.eval_episodes > 0:
        t0 = time.perf_counter()
        summary.update(evaluate(steps_done(), "final"))
        summary["eval_time_s"] = time.perf_counter() - t0
    writers.close()
    eval_csv.close()
    if monitor.warned:
        summary["warnings"] = list(monitor.warned.values())
    if hasattr(backend, "close"):
        backend.close()
    return finish(summary, algo, run, run_dir, console, wall_time_s=wall_before + time.perf_counter() - t_start,
                  compile_time_s=compile_before + backend.compile_time_s, run_time_s=run_time,
                  sps=steps_done() * len(seeds) / max(run_time, 1e-9) if ckpt is None else None)


def evaluate_run(run_dir, episodes: int = 200, deterministic: bool = True, max_steps: int | None = None) -> dict:
    """Evaluate the last checkpoint of the run in ``run_dir`` again (``advantage eval``)."""
    run_dir = Path(run_dir)
    algo, algo_cfg, run, meta, backend, runners = restore_run(run_dir)
    returns, lengths, _ = backend.evaluate(runners, episodes, deterministic, max_steps or run.eval_max_steps)
    if hasattr(backend, "close"):
        backend.close()
    result = {"run_dir": str(run_dir), "env_steps": meta["env_steps"], "seeds": list(run.seeds),
              **eval_result(run.seeds, returns, lengths, deterministic)}
    out = run_dir / "eval" / f"eval-{time.strftime('%Y%m%d-%H%M%S')}.json"
    write_eval(out, run.seeds, returns, lengths)
    result["episodes_file"] = str(out)
    return result
