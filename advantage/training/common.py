"""What both drivers share: ``driver.py`` (gradient-based training, chunk by chunk) and ``search.py``
(population search, generation by generation) show the same progress bar, evaluate and write the
evaluation files the same way, hash the parameters the same way and finish a run's summary the same way."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import jax
import numpy as np

from advantage import cpu
from advantage.report.stats import iqm
from advantage.training import checkpoint
from advantage.training.run_config import RunConfig
from advantage.training.seeding import EVAL_SEED_OFFSET


def params_digest(tree) -> str:
    """SHA-256 of every array of ``tree`` (dtype, shape and bytes, in tree order)."""
    h = hashlib.sha256()
    for leaf in jax.tree.leaves(jax.device_get(tree)):
        a = np.ascontiguousarray(np.asarray(leaf))
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def progress_bar(console, enabled: bool):
    """The progress bar of a run: env steps per seed done of the budget, SPS, ETA and the latest return."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("steps"),
        TextColumn("{task.fields[sps]:>8} SPS"),
        TimeRemainingColumn(),
        TextColumn("return {task.fields[ret]}"),
        console=console,
        disable=not enabled,
        transient=False,
    )


def evaluate_now(stepper, state, run: RunConfig, run_dir: Path, step: int, name: str, writers) -> dict:
    """Evaluate all seeds now; write eval/NAME.json (+ .npz episodes) and the eval/ metrics rows to ``writers``."""
    seeds = list(run.seeds)
    returns, lengths, trajectories = stepper.evaluate(
        state, run.eval_episodes, run.eval_deterministic, run.eval_max_steps, run.eval_record
    )
    result = eval_result(seeds, returns, lengths, run.eval_deterministic)
    write_eval(run_dir / "eval" / f"{name}.json", seeds, returns, lengths, step, trajectories)
    rows = [
        {
            "step": step,
            "seed": seed,
            "eval/return_mean": float(returns[i].mean()),
            "eval/return_iqm": iqm(returns[i]),
            "eval/return_std": float(returns[i].std()),
            "eval/length_mean": float(lengths[i].mean()),
        }
        for i, seed in enumerate(seeds)
    ]
    for w in writers:
        w.write_rows(rows)
    return result


def release_free_heap() -> None:
    """Give the C heap's free memory back to the operating system (glibc's ``malloc_trim``; elsewhere nothing).

    XLA's compilation frees most of what it allocates, but glibc keeps the freed pages: a cold-compiled
    classic-control run held 300 MB more than a warm one from then on, and the learning curve and the
    video came on top of it (benchmarks/RESULTS.md, "Peak memory per algorithm"). Only free memory is
    returned, so nothing the run holds changes."""
    import ctypes
    import ctypes.util

    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or None).malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to do
        return
    trim(0)


def finish(summary: dict, algo, run: RunConfig, run_dir: Path, console, loaded: tuple | None = None, **timing) -> dict:
    """Complete a finished run's summary (timings, device, versions), draw its learning curve and video,
    and write summary.json. A failing plot or video is reported, never allowed to lose the run.
    ``loaded``: ``(algo, algo_config, action_space, agents)`` of the run, for the video without reloading it."""
    release_free_heap()
    summary.update(timing)
    summary.update(
        {
            "device": jax.default_backend(),
            "cpu": cpu.describe(),
            "run_dir": str(run_dir),
            "versions": checkpoint.versions(),
        }
    )
    try:
        from advantage.report.plots import learning_curve

        summary["learning_curve"] = str(
            learning_curve(run_dir / "metrics.csv", run_dir / "learning_curve.png", title=f"{algo.NAME} on {run.env}")
        )
    except Exception as e:  # noqa: BLE001 - a plot must never lose a finished run
        console.print(f"[yellow]could not draw the learning curve: {e}[/]")
    if run.video:
        try:
            from advantage.report.video import record

            summary["video"] = str(record(run_dir, loaded=loaded))
        except Exception as e:  # noqa: BLE001 - a video must never lose a finished run
            console.print(f"[yellow]no video: {e}[/]")
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def eval_result(seeds, returns: np.ndarray, lengths: np.ndarray, deterministic: bool) -> dict:
    """``eval_return`` of a summary: per-seed mean returns over the evaluation episodes, their mean and IQM."""
    per_seed = returns.mean(axis=1)
    return {
        "eval_return": {
            "per_seed": per_seed.tolist(),
            "mean": float(per_seed.mean()),
            "iqm": iqm(per_seed),
            "std": float(per_seed.std()),
            "episodes_per_seed": int(returns.shape[1]),
            "deterministic": deterministic,
        },
        "eval_length_mean": float(lengths.mean()),
    }


def write_eval(path: Path, seeds, returns, lengths, step: int | None = None, trajectories=None) -> None:
    """``path`` (JSON): per training seed, the evaluation seeds and every episode's return and length.
    With ``trajectories``, ``path.npz`` keeps the recorded episodes: ``obs``, ``actions``, ``rewards``
    ``[n_seeds, n_recorded, T, ...]`` (zero after each episode's length) and ``lengths``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = returns.shape[1]
    path.write_text(
        json.dumps(
            [
                {
                    "seed": s,
                    "step": step,
                    "eval_seeds": list(range(EVAL_SEED_OFFSET, EVAL_SEED_OFFSET + n)),
                    "returns": returns[i].tolist(),
                    "lengths": lengths[i].tolist(),
                }
                for i, s in enumerate(seeds)
            ]
        )
    )
    if trajectories is not None:
        r = trajectories["obs"].shape[1]
        t_max = max(1, int(lengths[:, :r].max()))
        arrays: dict[str, Any] = {k: np.asarray(v)[:, :, :t_max] for k, v in trajectories.items()}
        np.savez_compressed(
            path.with_suffix(".npz"),
            seeds=np.asarray(seeds),
            lengths=lengths[:, :r],
            eval_seeds=np.arange(EVAL_SEED_OFFSET, EVAL_SEED_OFFSET + r),
            **arrays,
        )
