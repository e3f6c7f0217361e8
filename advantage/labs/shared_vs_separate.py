r"""Lab ``shared-vs-separate``: one network per head, or one torso for the actor and the critic?

The slides (*Actor Critic and PPO*, "Parameter Sharing": the two network design, :math:`s \to
\pi_\theta(a|s)` and :math:`s \to V_w(s)`, "+ simple & stable", "- no shared features between actor &
critic", against the shared network design, one torso with two heads, as in A3C's "share neural network
weights for actor and critic") contrast the two designs.

The experiment trains ``a2c`` with the library's driver (JAX back end, the seeds vmapped) on CartPole-v1 with
the CartPole preset (8 envs x 5 steps, RMSprop 7e-4, value weight 0.5, (64, 64) tanh) twice: separate
networks (``shared_network = False``, the preset) and a shared torso (``shared_network = True``, as in A3C),
everything else equal. Per design: the training return over steps, the final evaluation return per seed (IQM
over seeds with its stratified-bootstrap 95% interval, ``advantage.report.stats``) and the value loss
(``loss/value``, the mean squared TD(lambda = 1) error of the critic) over training.

The slide's words are not a measurable claim on their own; the lab tests the reading "separate networks are
at least as stable": their final return is no worse (IQM at least the shared torso's), and no more spread out
across seeds (interquartile range no larger).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from advantage.algos import a2c
from advantage.labs import header
from advantage.labs.batch_vs_online import train_setting

NAME = "shared-vs-separate"
SLIDE = (
    "Actor Critic and PPO (shared/seeds/001), slide 'Parameter Sharing' (two network design: '+ simple & "
    "stable', '- no shared features between actor & critic'; shared network design)"
)
CLAIM = (
    "Separate actor and critic networks are the simple and stable choice: on CartPole their final return is at "
    "least the shared torso's and no more spread out across seeds."
)

ENV = "CartPole-v1"
MODES = {"quick": (30_000, 3), "full": (150_000, 8)}  # total steps, n seeds
DESIGNS = {"separate networks": False, "shared torso": True}


def run(out_dir: Path, seed: int = 0, quick: bool = False) -> dict:
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    total_steps, n_seeds = MODES["quick" if quick else "full"]
    seeds = tuple(range(seed * n_seeds, (seed + 1) * n_seeds))
    with tempfile.TemporaryDirectory() as tmp:
        res = {
            k: train_setting(
                k,
                a2c.Config(**dict(a2c.PRESETS[ENV], shared_network=shared)),
                seeds,
                total_steps,
                Path(tmp),
                extra_keys=("loss/value",),
            )
            for k, shared in DESIGNS.items()
        }
    for v in res.values():
        q1, q3 = np.percentile(v["final_eval_per_seed"], [25, 75])
        v["final_eval_iqr"] = float(q3 - q1)
        v["final_eval_mean"] = float(np.mean(v["final_eval_per_seed"]))
        v["value_loss_last_quarter_mean"] = float(np.mean(v["loss/value"]["per_seed_last_quarter"]))
        v["train_return_auc"] = float(np.nanmean(v["train_return_mean"]))
    sep, sh = res["separate networks"], res["shared torso"]
    checks = {
        "separate final IQM >= shared final IQM": bool(sep["final_eval_iqm"] >= sh["final_eval_iqm"]),
        "separate IQR across seeds <= shared IQR": bool(sep["final_eval_iqr"] <= sh["final_eval_iqr"]),
    }
    holds = all(checks.values())
    overlap = not (
        sep["final_eval_iqm_ci95"][0] > sh["final_eval_iqm_ci95"][1]
        or sh["final_eval_iqm_ci95"][0] > sep["final_eval_iqm_ci95"][1]
    )
    results: dict[str, Any] = {
        **header(sys.modules[__name__], seed, quick),
        "setup": {
            "env": ENV,
            "algorithm": "a2c through the driver (JAX back end, seeds vmapped), CartPole preset",
            "preset": dict(a2c.PRESETS[ENV]),
            "total_steps": total_steps,
            "seeds": list(seeds),
            "eval_episodes": 20,
        },
        "designs": res,
        "checks": checks,
        "iqm_intervals_overlap": bool(overlap),
        "claim_holds": bool(holds),
    }
    results["summary"] = (
        f"{total_steps:,} env steps, {n_seeds} seeds. "
        + "; ".join(
            f"{k}: final eval IQM {v['final_eval_iqm']:.0f} [{v['final_eval_iqm_ci95'][0]:.0f}, "
            f"{v['final_eval_iqm_ci95'][1]:.0f}], IQR {v['final_eval_iqr']:.0f}, mean training return "
            f"{v['train_return_auc']:.0f}, value loss (last quarter) {v['value_loss_last_quarter_mean']:.3g}"
            for k, v in res.items()
        )
        + f". Claim holds: {holds}"
        + ("" if holds else " (failed: " + ", ".join(k for k, ok in checks.items() if not ok) + ")")
        + (". The IQM intervals overlap: the difference is within seed noise." if overlap else ".")
    )
    results["wall_time_s"] = time.perf_counter() - t0
    (out_dir / "results.json").write_text(json.dumps(results, indent=2))
    _figure(out_dir / "figure.png", results)
    return results


def _figure(path, results):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = results["designs"]
    colors = {"separate networks": "tab:blue", "shared torso": "tab:orange"}
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6), gridspec_kw={"width_ratios": [3, 3, 2]})
    for k, v in res.items():
        steps = np.asarray(v["steps"])
        axes[0].plot(steps, v["train_return_mean"], color=colors[k], label=k)
        axes[0].fill_between(steps, v["train_return_min"], v["train_return_max"], color=colors[k], alpha=0.15, lw=0)
        axes[1].plot(steps, v["loss/value"]["mean"], color=colors[k], label=k)
    axes[0].set_xlabel("env steps (per seed)")
    axes[0].set_ylabel("training episode return")
    axes[0].set_title("mean and range over seeds", fontsize=10)
    axes[0].legend(fontsize=8)
    axes[1].set_xlabel("env steps (per seed)")
    axes[1].set_ylabel("value loss ½(V − R̂)², mean over seeds")
    axes[1].set_yscale("log")
    axes[1].set_title("the critic's loss", fontsize=10)
    ax = axes[2]
    for i, (k, v) in enumerate(res.items()):
        ax.scatter(np.full(len(v["final_eval_per_seed"]), i), v["final_eval_per_seed"], color=colors[k], s=18)
        lo, hi = v["final_eval_iqm_ci95"]
        m = v["final_eval_iqm"]
        ax.errorbar(i + 0.15, m, yerr=[[m - lo], [hi - m]], fmt="D", color="k", capsize=4)
    ax.set_xticks(range(len(res)), list(res), fontsize=8)
    ax.set_xlim(-0.5, len(res) - 0.5)
    ax.set_ylabel("final eval return (greedy, 20 episodes)")
    ax.set_title("seeds, IQM and its 95% bootstrap CI", fontsize=10)
    s = results["setup"]
    fig.suptitle(f"A2C on {s['env']}, {s['total_steps']:,} env steps, {len(s['seeds'])} seeds: separate vs shared")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
