r"""Lab ``batch-vs-online``: the one-step actor-critic learns better from a batch than from one transition.

The slides (*Actor Critic and PPO*, "Parallel actors": the online actor-critic algorithm, one transition per
update, whose critic update "works best with a batch (e.g., parallel workers)"; "Asynchronous Advantage Actor
Critic (A3C)") say that the actor-critic's update from a single transition is too noisy (and consecutive
transitions too correlated) to learn well, and that collecting a batch from several environments fixes it.
A2C batches the actor's step as well as the critic's; the lab compares the two as a whole.

The experiment trains ``a2c`` with the library's driver (JAX back end, the seeds vmapped) on CartPole-v1 at
the same budget of environment steps in two forms, everything else A2C's CartPole preset (RMSprop, GAE with
lambda 1, i.e. every step bootstraps at the rollout end, no entropy bonus):

* *online*: ``n_envs = 1, n_steps = 1`` — one transition, one gradient step: the TD(0) actor-critic
  :math:`\hat A_t = r_t + \gamma V(s_{t+1}) - V(s_t)` of the slide. The batched setting's step size is too
  large for single transitions, so the online form gets several smaller ones and is judged by its best;
* *batched*: ``n_envs = 8, n_steps = 5`` (the preset) — 40 transitions from 8 parallel environments per step.

Per setting: the training return against environment steps and against run time (the driver's measured run
time without compilation, spread evenly over the steps), and the final evaluation return per seed (greedy
policy), summarised by the IQM over seeds with a stratified-bootstrap 95% interval (``advantage.report.stats``).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from advantage.algos import a2c
from advantage.labs import header, quiet_run_config
from advantage.labs.gae_lambda import read_curve
from advantage.labs.reinforce_variance import _quiet_console
from advantage.report.stats import iqm, stratified_bootstrap_ci

NAME = "batch-vs-online"
SLIDE = (
    "Actor Critic and PPO (shared/seeds/001), slide 'Parallel actors' (online actor-critic algorithm, step 2, "
    "the critic's update: 'works best with a batch (e.g., parallel workers)'), under 'Asynchronous Advantage "
    "Actor Critic (A3C)'"
)
CLAIM = (
    "At the same number of environment steps, the one-step actor-critic learns better from a batch of "
    "transitions (parallel environments) than online from one transition per update."
)

ENV = "CartPole-v1"
EVAL_EPISODES = 20
BATCHED: dict[str, Any] = dict(n_envs=8, n_steps=5, learning_rate=7e-4)
ONLINE_LRS = (7e-4, 1e-4, 2e-5)
MODES = {  # total steps, n seeds, online learning rates
    "quick": (20_000, 3, (1e-4,)),
    "full": (100_000, 5, ONLINE_LRS),
}


def train_setting(
    label: str,
    cfg,
    seeds,
    total_steps: int,
    tmp: Path,
    extra_keys=(),
    *,
    algo: str = "a2c",
    env: str = ENV,
    evals: int | None = None,
    eval_episodes: int = EVAL_EPISODES,
) -> dict[str, Any]:
    """Train ``algo`` with ``cfg`` on ``env`` for ``seeds`` in one driver run; curves, final eval, timings.

    With ``evals``, also that many greedy evaluations during the run: ``eval_steps`` and ``eval_return_per_seed``
    (``[n_seeds, evals]``, the mean return of ``eval_episodes`` episodes)."""
    from advantage.training.driver import train

    run_dir = tmp / label.replace(" ", "_").replace("/", "-")
    during = {"n_chunks": 10} if evals is None else {"evals": evals}
    summary = train(
        algo,
        cfg,
        quiet_run_config(
            env, seeds, total_steps, run_dir, eval_episodes=eval_episodes, log_every=total_steps // 40, **during
        ),
        console=_quiet_console(),
    )
    steps, ret = read_curve(run_dir / "metrics.csv", seeds)
    with warnings.catch_warnings():  # the first log rows of a slow setting may have no finished episode at all
        warnings.simplefilter("ignore", RuntimeWarning)
        ret_mean, ret_min, ret_max = np.nanmean(ret, axis=0), np.nanmin(ret, axis=0), np.nanmax(ret, axis=0)
    final = np.asarray(summary["eval_return"]["per_seed"], np.float64)
    ci = stratified_bootstrap_ci(final, iqm, seed=0)
    run_time = float(summary["run_time_s"])
    out = {
        "label": label,
        "config": {
            k: getattr(cfg, k) for k in ("n_envs", "n_steps", "learning_rate", "shared_network") if hasattr(cfg, k)
        },
        "steps": steps.tolist(),
        "train_return_mean": ret_mean.tolist(),
        "train_return_min": ret_min.tolist(),
        "train_return_max": ret_max.tolist(),
        "final_eval_per_seed": final.tolist(),
        "final_eval_iqm": ci.estimate,
        "final_eval_iqm_ci95": [ci.lo, ci.hi],
        "run_time_s": run_time,
        "compile_time_s": float(summary["compile_time_s"]),
        "seconds_per_1000_steps": 1000 * run_time / total_steps,
        "updates": total_steps // (cfg.n_envs * cfg.n_steps),
    }
    if evals is not None:
        ev_steps, ev = read_curve(run_dir / "eval" / "history.csv", seeds, "eval/return_mean")
        out["eval_steps"], out["eval_return_per_seed"] = ev_steps.tolist(), ev.tolist()
    for key in extra_keys:
        _, v = read_curve(run_dir / "metrics.csv", seeds, key=key)
        out[key] = {"mean": np.nanmean(v, axis=0).tolist(), "per_seed_last_quarter": _last_quarter(v).tolist()}
    return out


def _last_quarter(v: np.ndarray) -> np.ndarray:
    return np.nanmean(v[:, -max(1, v.shape[1] // 4) :], axis=1)


def run(out_dir: Path, seed: int = 0, quick: bool = False) -> dict:
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    total_steps, n_seeds, lrs = MODES["quick" if quick else "full"]
    seeds = tuple(range(seed * n_seeds, (seed + 1) * n_seeds))
    settings = {"batched 8 envs x 5 steps": a2c.Config(**BATCHED)}
    for lr in lrs:
        settings[f"online 1 x 1, lr {lr:g}"] = a2c.Config(n_envs=1, n_steps=1, learning_rate=lr)
    with tempfile.TemporaryDirectory() as tmp:
        res = {k: train_setting(k, cfg, seeds, total_steps, Path(tmp)) for k, cfg in settings.items()}

    batched = res["batched 8 envs x 5 steps"]
    online = {k: v for k, v in res.items() if k.startswith("online")}
    best_online = max(online, key=lambda k: online[k]["final_eval_iqm"])
    ob = online[best_online]
    checks = {
        "batched final IQM > best online final IQM + 100": bool(batched["final_eval_iqm"] > ob["final_eval_iqm"] + 100),
        "their bootstrap 95% intervals do not overlap": bool(
            batched["final_eval_iqm_ci95"][0] > ob["final_eval_iqm_ci95"][1]
        ),
        "batched takes less run time for the same env steps": bool(batched["run_time_s"] < ob["run_time_s"]),
    }
    holds = all(checks.values())
    results: dict[str, Any] = {
        **header(sys.modules[__name__], seed, quick),
        "setup": {
            "env": ENV,
            "algorithm": "a2c through the driver (JAX back end, seeds vmapped), CartPole preset otherwise",
            "total_steps": total_steps,
            "seeds": list(seeds),
            "eval_episodes": EVAL_EPISODES,
            "online_learning_rates": list(lrs),
            "time_axis": "run time without compilation, spread evenly over the steps",
            "gradient_variance": "not measured",
        },
        "settings": res,
        "best_online": best_online,
        "checks": checks,
        "claim_holds": bool(holds),
    }
    results["summary"] = (
        f"{total_steps:,} env steps, {n_seeds} seeds, final eval IQM [95% CI]: "
        + "; ".join(
            f"{k}: {v['final_eval_iqm']:.0f} [{v['final_eval_iqm_ci95'][0]:.0f}, {v['final_eval_iqm_ci95'][1]:.0f}] "
            f"in {v['run_time_s']:.1f} s"
            for k, v in res.items()
        )
        + f". Claim holds: {holds}"
        + ("." if holds else " (failed: " + ", ".join(k for k, ok in checks.items() if not ok) + ").")
    )
    results["wall_time_s"] = time.perf_counter() - t0
    (out_dir / "results.json").write_text(json.dumps(results, indent=2))
    _figure(out_dir / "figure.png", results)
    return results


def _figure(path, results):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = results["settings"]
    colors = ["tab:blue", "tab:red", "tab:orange", "tab:brown"]
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6), gridspec_kw={"width_ratios": [3, 3, 2]})
    for c, (k, v) in zip(colors, res.items()):
        steps = np.asarray(v["steps"], np.float64)
        mean = np.asarray(v["train_return_mean"])
        lo, hi = np.asarray(v["train_return_min"]), np.asarray(v["train_return_max"])
        secs = steps * v["run_time_s"] / results["setup"]["total_steps"]
        for ax, x in ((axes[0], steps), (axes[1], secs)):
            ax.plot(x, mean, color=c, label=k)
            ax.fill_between(x, lo, hi, color=c, alpha=0.15, lw=0)
    axes[0].set_xlabel("env steps (per seed)")
    axes[1].set_xlabel("run time, s (all seeds together, without compilation)")
    for ax in axes[:2]:
        ax.set_ylabel("training episode return")
    axes[0].set_title("return vs env steps: mean and range over seeds", fontsize=10)
    axes[1].set_title("return vs run time", fontsize=10)
    axes[0].legend(fontsize=8)
    ax = axes[2]
    for i, (c, v) in enumerate(zip(colors, res.values())):
        ax.scatter(np.full(len(v["final_eval_per_seed"]), i), v["final_eval_per_seed"], color=c, s=18, alpha=0.7)
        lo, hi = v["final_eval_iqm_ci95"]
        ax.errorbar(
            i + 0.2,
            v["final_eval_iqm"],
            yerr=[[v["final_eval_iqm"] - lo], [hi - v["final_eval_iqm"]]],
            fmt="D",
            color="k",
            capsize=4,
        )
    ax.set_xticks(range(len(res)), [k.replace(", ", "\n") for k in res], fontsize=7)
    ax.set_ylabel("final eval return (greedy)")
    ax.set_title("seeds, IQM and its 95% bootstrap CI", fontsize=10)
    s = results["setup"]
    fig.suptitle(f"A2C on {s['env']}, {s['total_steps']:,} env steps: one transition per update vs a batch of 40")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
