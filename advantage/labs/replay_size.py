r"""Lab ``replay-size``: what the replay buffer buys an off-policy learner.

The *Off-Policy* deck (``003``), "Off-Policy Benefits": "Sample efficiency: Learn more from each experience";
"Decorrelated data: Break temporal correlations"; "Stability: Smoother gradients from diverse batches"; and its
summary, "Replay buffer (off-policy, sample efficient)".

The experiment trains ``dqn`` (``advantage/algos/dqn.py``, its Zoo-based CartPole-v1 setting ``dqn.ZOO_CARTPOLE``,
the preset until 2026-12-04: Double DQN, batch 64,
64 gradient steps every 128 env steps, target network copied every 10 steps) through the library's driver,
over the same seeds and the same env-step budget, with only ``buffer_size`` changed:

* **no replay**: ``buffer_size = batch_size`` = 64, the most recent 64 transitions (half of the last rollout of
  128 steps, all from one stretch of one or two episodes): every gradient step of a round sees nearly the same,
  temporally correlated data, and nothing older;
* **small replay**: 1 000 transitions (about eight rollouts);
* **replay**: the preset's 100 000 (larger than the budget: nothing is ever dropped).

Measured per seed: the greedy evaluation return of the current Q network (``eval_every``; ``EVAL_EPISODES``
episodes, not counted in the budget) through training, the final one, the env steps until it first reaches
475; and two stability measures: the largest Q value the minibatches saw during training (``value/max_q``; the
true values of CartPole with :math:`\gamma = 0.99` are below :math:`1/(1-\gamma) = 100`, so a larger Q is a
blow-up), and the mean drop from a seed's best evaluation so far over the second half of the run (how much it
forgets what it had learned).
"""

from __future__ import annotations

import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from advantage.labs import header, quiet_run_config, write_results
from advantage.labs.gae_lambda import read_curve
from advantage.labs.reinforce_variance import _quiet_console

NAME = "replay-size"
SLIDE = (
    "Off-Policy (shared/seeds/003), slides 'Off-Policy Benefits' ('Sample efficiency: Learn more from each "
    "experience'; 'Decorrelated data: Break temporal correlations'; 'Stability: Smoother gradients from diverse "
    "batches') and the summary ('Replay buffer (off-policy, sample efficient)')"
)
CLAIM = (
    "At equal env steps, DQN with a large replay buffer reaches a higher return than the same DQN whose buffer "
    "holds only the latest batch, with less spread across seeds (relative to its return) and no Q-value blow-up."
)

ENV = "CartPole-v1"
SOLVED = 475.0
Q_BOUND = 100.0  # 1 / (1 - gamma): no true CartPole value is larger
EVALS = 25
EVAL_EPISODES = 20
#: the preset's network is (256, 256); (64, 64), DQN's default, keeps the lab within minutes on a CPU
LAB_OVERRIDES = {"hidden_sizes": (64, 64)}
#: label -> buffer_size
BUFFERS: dict[str, int] = {"no replay (64)": 64, "small replay (1k)": 1_000, "replay (100k)": 100_000}
NO, BIG = "no replay (64)", "replay (100k)"


def train_buffer(buffer_size: int, seeds, total_steps: int, tmp: Path) -> dict:
    """DQN's CartPole preset with ``buffer_size`` through the driver: greedy evaluation curves and max Q."""
    from advantage.algos import dqn
    from advantage.training.driver import train

    run_dir = tmp / f"buffer{buffer_size}"
    t0 = time.perf_counter()
    train(
        "dqn",
        dqn.Config(**{**dqn.ZOO_CARTPOLE, **LAB_OVERRIDES, "buffer_size": buffer_size}),
        quiet_run_config(
            ENV, seeds, total_steps, run_dir, eval_episodes=EVAL_EPISODES, evals=EVALS, seed_batching="vmap"
        ),
        console=_quiet_console(),
    )
    wall = time.perf_counter() - t0
    steps, ev = read_curve(run_dir / "eval" / "history.csv", seeds, "eval/return_mean")
    q_steps, max_q = read_curve(run_dir / "metrics.csv", seeds, "value/max_q")
    _, mean_q = read_curve(run_dir / "metrics.csv", seeds, "value/mean_q")
    return {"steps": steps, "eval": ev, "q_steps": q_steps, "max_q": max_q, "mean_q": mean_q, "wall_s": wall}


def stats(c: dict) -> dict:
    steps, ev = c["steps"], c["eval"]
    final = ev[:, -1]
    reach = []
    for row in ev:
        hit = np.nonzero(np.nan_to_num(row, nan=-np.inf) >= SOLVED)[0]
        reach.append(float(steps[hit[0]]) if hit.size else None)
    half = steps >= steps[-1] / 2
    best_so_far = np.fmax.accumulate(np.nan_to_num(ev, nan=0.0), axis=1)
    drop = (best_so_far - np.nan_to_num(ev, nan=0.0))[:, half]
    return {
        "final_eval_return_per_seed": final.tolist(),
        "final_eval_return_mean": float(np.mean(final)),
        "final_eval_return_std_over_seeds": float(np.std(final)),
        # the spread relative to the level: a learner that stays near 10 on every seed has a small std too
        "final_eval_return_cv": float(np.std(final) / max(np.mean(final), 1e-9)),
        "mean_eval_return_second_half": float(np.nanmean(ev[:, half])),
        "steps_to_475_per_seed": reach,
        "seeds_reaching_475": int(sum(r is not None for r in reach)),
        "mean_drop_from_best_second_half": float(np.mean(drop)),
        "max_q_per_seed": np.nanmax(c["max_q"], axis=1).tolist(),
        "max_q": float(np.nanmax(c["max_q"])),
        "q_above_bound": bool(np.nanmax(c["max_q"]) > Q_BOUND),
        "wall_s_all_seeds": c["wall_s"],
        "eval_steps": steps.tolist(),
        "eval_return_per_seed": np.round(ev, 2).tolist(),
        "eval_return_mean_over_seeds": np.round(np.nanmean(ev, axis=0), 2).tolist(),
    }


def run(out_dir: Path, seed: int = 0, quick: bool = False) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = time.perf_counter()
    warnings.filterwarnings("ignore", "All-NaN slice", RuntimeWarning)
    out_dir = Path(out_dir)
    n_seeds = 2 if quick else 8
    total = 20_000 if quick else 40_000
    seeds = [seed + i for i in range(n_seeds)]
    buffers = {k: v for k, v in BUFFERS.items() if not quick or k in (NO, BIG)}
    curves, res = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, size in buffers.items():
            curves[label] = train_buffer(size, seeds, total, Path(tmp))
            res[label] = {"buffer_size": size, **stats(curves[label])}

    no, big = res[NO], res[BIG]
    checks = {
        "replay: higher final evaluation return (mean over seeds)": big["final_eval_return_mean"]
        > no["final_eval_return_mean"],
        "replay: higher mean evaluation return over the second half": big["mean_eval_return_second_half"]
        > no["mean_eval_return_second_half"],
        "replay: smaller relative spread (std / mean) of the final return across seeds": big["final_eval_return_cv"]
        < no["final_eval_return_cv"],
        f"replay: no Q value above 1/(1-gamma) = {Q_BOUND:g}": not big["q_above_bound"],
    }
    claim_holds = all(checks.values())

    colours = {NO: "#b2182b", "small replay (1k)": "#ef8a62", BIG: "#2166ac"}
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.3), gridspec_kw={"width_ratios": [1.5, 1, 1.2]})
    ax = axes[0]
    for label, c in curves.items():
        ax.plot(c["steps"], np.nanmean(c["eval"], axis=0), color=colours[label], lw=2, label=label)
        for row in c["eval"]:
            ax.plot(c["steps"], row, color=colours[label], alpha=0.25, lw=0.7)
    ax.axhline(SOLVED, color="k", ls="--", lw=0.8)
    ax.set_xlabel("env steps per seed")
    ax.set_ylabel(f"greedy evaluation return ({EVAL_EPISODES} episodes)")
    ax.set_title(f"return curves ({n_seeds} seeds: thin; mean: thick)", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[1]
    for i, label in enumerate(buffers):
        f = res[label]["final_eval_return_per_seed"]
        ax.scatter(np.full(len(f), i) + np.linspace(-0.12, 0.12, len(f)), f, color=colours[label], s=20)
        ax.errorbar(
            i + 0.25,
            res[label]["final_eval_return_mean"],
            yerr=res[label]["final_eval_return_std_over_seeds"],
            fmt="s",
            color="k",
            ms=4,
            capsize=3,
        )
    ax.set_xticks(range(len(buffers)))
    ax.set_xticklabels([k.replace(" (", "\n(") for k in buffers], fontsize=7)
    ax.set_ylabel("final evaluation return (mean +- std over seeds)")
    ax.set_title(f"final return at {total:,} env steps", fontsize=9)
    ax = axes[2]
    for label, c in curves.items():
        for j, row in enumerate(c["max_q"]):
            ok = np.isfinite(row)
            ax.plot(c["q_steps"][ok], row[ok], color=colours[label], alpha=0.6, lw=0.8, label=label if j == 0 else None)
    ax.axhline(Q_BOUND, color="k", ls="--", lw=0.8, label="1/(1-gamma)")
    ax.set_yscale("log")
    ax.set_xlabel("env steps per seed")
    ax.set_ylabel("largest Q(s, a) in the minibatches")
    ax.set_title("stability: Q values", fontsize=9)
    ax.legend(fontsize=7)
    fig.suptitle(f"DQN on {ENV}: replay buffer size (seeds {seeds[0]}-{seeds[-1]})", fontsize=10)
    fig.tight_layout()

    results = {
        **header(sys.modules[__name__], seed, quick),
        "setup": {
            "env": ENV,
            "seeds": seeds,
            "total_steps": total,
            "preset": "dqn.ZOO_CARTPOLE with buffer_size changed",
            "evals": EVALS,
            "eval_episodes": EVAL_EPISODES,
            "q_bound": Q_BOUND,
        },
        "buffers": res,
        "checks": checks,
        "claim_holds": bool(claim_holds),
        "summary": "; ".join(
            f"{k}: final return {v['final_eval_return_mean']:.0f} +- {v['final_eval_return_std_over_seeds']:.0f}, "
            f"second half {v['mean_eval_return_second_half']:.0f}, {v['seeds_reaching_475']}/{n_seeds} seeds reach "
            f"475, max Q {v['max_q']:.3g}"
            for k, v in res.items()
        )
        + (". The claim holds here." if claim_holds else ". The claim does not hold here."),
        "wall_time_s": time.perf_counter() - t0,
    }
    return write_results(out_dir, fig, results)
