r"""Lab ``try-a2c-first``: A2C, PPO, REINFORCE, TRPO and DQN side by side, at equal budget.

The slides (*Actor Critic I*, deck ``000``, "Proximal Policy Optimization") give an opinion: "PPO is
overrated ... Many hyperparameters, hard to implement, computationally expensive", "Our experiments find that
Q learning outperforms PPO", and "My suggestions: Try A2C first, solid actor-critic method, easy to
implement". "Hard to implement" and "many hyperparameters" are not measured here; the rest is.

The experiment trains each algorithm with the library's driver (JAX back end; on a CPU the seeds run one
after another, as each would alone) on CartPole-v1 and Acrobot-v1, 5 seeds, with its own preset for the
environment (``<algo>.PRESETS[env]``; DQN: ``dqn.ZOO_CARTPOLE``, its preset when the lab was measured) at one
**common budget** of environment steps per seed: the issue asks for the algorithms "side by side at equal
budget", and the default budgets differ tenfold (DQN's Zoo setting 50k, A2C 500k on CartPole), which would
compare budgets, not algorithms. None of the five has a preset for
Acrobot-v1: there each uses its CartPole-v1 preset (the tuned setting for the other discrete classic-control
task with the same 500-step limit), without CartPole's tile-coding ranges (REINFORCE's preset learns an MLP and
ignores them). ``results.json`` records the configuration each run used.

Measured per algorithm and environment: greedy evaluations during training (the learning curves: IQM over
seeds with a bootstrap 95 % band), the final evaluation's IQM over seeds with its stratified-bootstrap 95 %
interval (``advantage.report.stats``), the env steps until the greedy policy first reaches the threshold
(CartPole 475, Acrobot -100) per seed, and the run time per 1,000 env steps (the driver's run time without
compilation and without the evaluations, all seeds' steps counted), with the compile time apart.

The verdict checks the three claims one by one, whatever the outcome:

(a) *A2C is solid*: on each environment A2C's final IQM lies within the 95 % interval of the best algorithm's
    (at least its lower end), or A2C reaches the threshold on every seed;
(b) *PPO is computationally expensive*: on each environment PPO's run time per 1,000 env steps exceeds A2C's;
(c) *Q learning outperforms PPO*: on each environment DQN's final IQM is at least PPO's and DQN needs no more
    env steps to the threshold (median over seeds; a seed that never reaches it counts as infinite).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from advantage.algos import a2c, dqn, ppo, reinforce, trpo
from advantage.labs import header, write_results
from advantage.labs.batch_vs_online import train_setting
from advantage.report.stats import learning_curve_stats

NAME = "try-a2c-first"
SLIDE = (
    "Actor Critic I (shared/seeds/000), slides 'Proximal Policy Optimization' ('Personal opinion: PPO is "
    "overrated ... Many hyperparameters, hard to implement, computationally expensive'; 'Our experiments find "
    "that Q learning outperforms PPO'; 'My suggestions: Try A2C first, solid actor-critic method, easy to "
    "implement')"
)
CLAIM = (
    "At equal budget A2C is a solid choice (as good as the best of A2C, PPO, REINFORCE, TRPO and DQN), PPO costs "
    "more compute per env step than A2C, and Q learning (DQN) outperforms PPO."
)

ALGOS = {"a2c": a2c, "ppo": ppo, "reinforce": reinforce, "trpo": trpo, "dqn": dqn}
THRESHOLDS = {"CartPole-v1": 475.0, "Acrobot-v1": -100.0}
EVAL_EPISODES = 10
#: The preset's fields that only make sense on CartPole (REINFORCE's tile-coding ranges, unused by its MLP).
CARTPOLE_ONLY = ("tile_low", "tile_high")
MODES: dict[str, dict[str, Any]] = {
    "quick": dict(envs=("CartPole-v1",), total_steps=12_000, n_seeds=2, evals=4),
    "full": dict(envs=("CartPole-v1", "Acrobot-v1"), total_steps=150_000, n_seeds=5, evals=15),
}


def preset(algo: str, env: str) -> tuple[dict, str]:
    """The configuration ``algo`` runs with on ``env`` and where it comes from: ``PRESETS[env]``, or, when the
    algorithm has none for ``env``, its CartPole-v1 preset without the CartPole-only fields."""
    if algo == "dqn":  # the setting the lab was measured with, the preset until 2026-12-04
        return dict(dqn.ZOO_CARTPOLE), "dqn.ZOO_CARTPOLE (the Zoo-based CartPole-v1 setting)"
    presets = ALGOS[algo].PRESETS
    if env in presets:
        return dict(presets[env]), f"{algo}.PRESETS[{env!r}]"
    p = {k: v for k, v in presets["CartPole-v1"].items() if k not in CARTPOLE_ONLY}
    return p, f"no preset for {env}: {algo}.PRESETS['CartPole-v1']" + (
        f" without {', '.join(CARTPOLE_ONLY)}" if any(k in presets["CartPole-v1"] for k in CARTPOLE_ONLY) else ""
    )


def steps_to_threshold(steps, curves, threshold: float) -> list[float | None]:
    """Per seed (a row of ``curves``): the first of ``steps`` whose evaluation return is ``>= threshold``;
    None if it never is."""
    out: list[float | None] = []
    for row in np.asarray(curves, np.float64):
        hit = np.nonzero(np.nan_to_num(row, nan=-np.inf) >= threshold)[0]
        out.append(float(steps[hit[0]]) if hit.size else None)
    return out


def median_steps(per_seed: list[float | None]) -> float:
    """The median of ``per_seed`` with an unreached threshold (None) as infinity."""
    return float(np.median([np.inf if s is None else s for s in per_seed]))


def run(out_dir: Path, seed: int = 0, quick: bool = False) -> dict:
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    m = MODES["quick" if quick else "full"]
    total_steps, n_seeds, evals = m["total_steps"], m["n_seeds"], m["evals"]
    seeds = tuple(range(seed * n_seeds, (seed + 1) * n_seeds))
    res: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for env in m["envs"]:
            res[env] = {}
            for algo, mod in ALGOS.items():
                overrides, source = preset(algo, env)
                r = train_setting(
                    f"{algo} {env}",
                    mod.Config(**overrides),
                    seeds,
                    total_steps,
                    Path(tmp),
                    algo=algo,
                    env=env,
                    evals=evals,
                    eval_episodes=EVAL_EPISODES,
                )
                r["preset"] = {"source": source, "overrides": overrides}
                res[env][algo] = _summarise(r, env, total_steps, n_seeds)
    checks, per_env = _verdict(res)
    holds = all(checks.values())
    results: dict[str, Any] = {
        **header(sys.modules[__name__], seed, quick),
        "setup": {
            "envs": list(m["envs"]),
            "algorithms": list(ALGOS),
            "total_steps_per_seed": total_steps,
            "budget": "one common budget for every algorithm and environment (equal budget, not each preset's "
            "DEFAULT_STEPS, which range from 50k to 500k on CartPole)",
            "default_steps": {a: dict(getattr(mod, "DEFAULT_STEPS", {})) for a, mod in ALGOS.items()},
            "seeds": list(seeds),
            "evals_during_training": evals,
            "eval_episodes": EVAL_EPISODES,
            "thresholds": {e: THRESHOLDS[e] for e in m["envs"]},
            "back_end": "JAX, the driver's seed_batching 'auto' (the seeds one after another on a CPU, vmapped on "
            "an accelerator)",
            "time": "run time without compilation and evaluations, all seeds' steps counted",
        },
        "results": res,
        "per_env": per_env,
        "checks": checks,
        "claim_holds": bool(holds),
    }
    results["summary"] = _summary(results)
    results["wall_time_s"] = time.perf_counter() - t0
    return write_results(out_dir, _figure(results), results)


def _summarise(r: dict, env: str, total_steps: int, n_seeds: int) -> dict:
    ev = np.asarray(r["eval_return_per_seed"], np.float64)
    est, lo, hi = learning_curve_stats(ev, seed=0)
    reach = steps_to_threshold(r["eval_steps"], ev, THRESHOLDS[env])
    r["eval_iqm"], r["eval_iqm_lo"], r["eval_iqm_hi"] = est.tolist(), lo.tolist(), hi.tolist()
    r["steps_to_threshold_per_seed"] = reach
    r["seeds_reaching_threshold"] = sum(s is not None for s in reach)
    med = median_steps(reach)
    r["median_steps_to_threshold"] = None if np.isinf(med) else med
    r["seconds_per_1000_env_steps"] = 1000 * r["run_time_s"] / (total_steps * n_seeds)
    return r


def _verdict(res: dict) -> tuple[dict[str, bool], dict]:
    checks: dict[str, bool] = {}
    per_env = {}
    for env, r in res.items():
        best = max(r, key=lambda a: r[a]["final_eval_iqm"])
        a, p, d = r["a2c"], r["ppo"], r["dqn"]
        within = a["final_eval_iqm"] >= r[best]["final_eval_iqm_ci95"][0]
        every_seed = a["seeds_reaching_threshold"] == len(a["final_eval_per_seed"])
        per_env[env] = {
            "best_final_iqm": best,
            "a2c_within_best_ci": bool(within),
            "a2c_reaches_threshold_every_seed": bool(every_seed),
            "dqn_final_iqm_minus_ppo": d["final_eval_iqm"] - p["final_eval_iqm"],
            "ppo_over_a2c_seconds_per_step": p["seconds_per_1000_env_steps"] / a["seconds_per_1000_env_steps"],
        }
        checks[f"(a) {env}: A2C final IQM within the best's ({best}) 95% CI, or the threshold on every seed"] = bool(
            within or every_seed
        )
        checks[f"(b) {env}: PPO's run time per 1,000 env steps > A2C's"] = bool(
            p["seconds_per_1000_env_steps"] > a["seconds_per_1000_env_steps"]
        )
        checks[f"(c) {env}: DQN final IQM >= PPO's and median steps to threshold <= PPO's"] = bool(
            d["final_eval_iqm"] >= p["final_eval_iqm"]
            and median_steps(d["steps_to_threshold_per_seed"]) <= median_steps(p["steps_to_threshold_per_seed"])
        )
    return checks, per_env


def _summary(results: dict) -> str:
    s = results["setup"]
    parts = []
    for env, r in results["results"].items():
        parts.append(
            f"{env}: "
            + ", ".join(
                f"{a} {v['final_eval_iqm']:.0f} [{v['final_eval_iqm_ci95'][0]:.0f}, {v['final_eval_iqm_ci95'][1]:.0f}]"
                f" ({v['seeds_reaching_threshold']}/{len(v['final_eval_per_seed'])} seeds reach "
                f"{THRESHOLDS[env]:g}, median steps to it {_fmt_steps(v['median_steps_to_threshold'])}, "
                f"{v['seconds_per_1000_env_steps']:.3f} s / 1k steps)"
                for a, v in r.items()
            )
        )
    failed = [k for k, ok in results["checks"].items() if not ok]
    return (
        f"{s['total_steps_per_seed']:,} env steps per seed, {len(s['seeds'])} seeds, final eval IQM [95% CI]. "
        + "; ".join(parts)
        + f". Claim holds: {results['claim_holds']}"
        + ("." if not failed else " (failed: " + "; ".join(failed) + ").")
    )


def _fmt_steps(x) -> str:
    return "never" if x is None else f"{x / 1000:.0f}k"


COLORS = {"a2c": "tab:blue", "ppo": "tab:orange", "reinforce": "tab:green", "trpo": "tab:purple", "dqn": "tab:red"}


def _figure(results):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = results["results"]
    fig, axes = plt.subplots(
        len(res), 3, figsize=(17, 4.4 * len(res)), gridspec_kw={"width_ratios": [3, 2, 2]}, squeeze=False
    )
    for row, (env, r) in zip(axes, res.items()):
        thr = THRESHOLDS[env]
        ax = row[0]
        for algo, v in r.items():
            x = np.asarray(v["eval_steps"], np.float64)
            ax.plot(x, v["eval_iqm"], color=COLORS[algo], label=algo, marker=".")
            ax.fill_between(x, v["eval_iqm_lo"], v["eval_iqm_hi"], color=COLORS[algo], alpha=0.12, lw=0)
        ax.axhline(thr, color="k", ls=":", lw=1)
        ax.set_xlabel("env steps (per seed)")
        ax.set_ylabel(f"{env}: greedy eval return")
        ax.set_title("learning curves: IQM over seeds, bootstrap 95% band; dotted: threshold", fontsize=9)
        ax.legend(fontsize=8)
        ax = row[1]
        for i, (algo, v) in enumerate(r.items()):
            f = v["final_eval_per_seed"]
            ax.scatter(np.full(len(f), i), f, color=COLORS[algo], s=16, alpha=0.7)
            lo, hi = v["final_eval_iqm_ci95"]
            mid = v["final_eval_iqm"]
            ax.errorbar(i + 0.2, mid, yerr=[[mid - lo], [hi - mid]], fmt="D", color="k", capsize=4, ms=4)
        ax.set_xticks(
            range(len(r)),
            [
                f"{a}\n{v['seeds_reaching_threshold']}/{len(v['final_eval_per_seed'])}, "
                f"{_fmt_steps(v['median_steps_to_threshold'])}"
                for a, v in r.items()
            ],
            fontsize=8,
        )
        ax.set_ylabel("final eval return")
        ax.set_title(f"seeds, IQM, 95% CI; under the names: seeds reaching {thr:g}, median steps", fontsize=9)
        ax = row[2]
        names = list(r)
        run_s = [r[a]["seconds_per_1000_env_steps"] for a in names]
        ax.bar(range(len(names)), run_s, color=[COLORS[a] for a in names])
        for i, a in enumerate(names):
            ax.annotate(f"compile\n{r[a]['compile_time_s']:.0f} s", (i, run_s[i]), ha="center", va="bottom", fontsize=7)
        ax.set_xticks(range(len(names)), names, fontsize=8)
        ax.set_yscale("log")
        ax.set_ylim(min(run_s) / 1.5, max(run_s) * 3)
        ax.set_ylabel("run time per 1,000 env steps, s")
        ax.set_title("compute cost (without compilation)", fontsize=9)
    s = results["setup"]
    fig.suptitle(
        f"Equal budget: {s['total_steps_per_seed']:,} env steps per seed, {len(s['seeds'])} seeds, each algorithm's "
        f"preset (CartPole's where it has none)"
    )
    fig.tight_layout()
    return fig
