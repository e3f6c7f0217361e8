r"""Lab ``replay-recovery``: after one destructive update, does replay help a learner recover?

The *Actor Critic I* deck (``000``), slides "Trust Regions": "With policy gradient, it is much harder to
recover"; "Bad data = no policy recovery!"; "Off-policy methods recover with 'good' data from replay buffer,
on-policy cannot". An on-policy learner's next batch comes from the policy it has now: after a bad update it
learns from the bad policy's episodes. An off-policy learner keeps learning from its buffer, which still holds
the good policy's transitions.

The experiment trains, on CartPole-v1 with the driver's own rollout code (``JaxBackend.run_chunk``, which
calls each algorithm's ``init``, ``act`` and ``update``), over several seeds:

* **off-policy**: ``dqn``, its Zoo-based CartPole setting (``dqn.ZOO_CARTPOLE``, the preset until 2026-12-04:
  Double DQN, replay buffer of 100k: nothing is dropped);
* **on-policy**: ``ppo``, its CartPole preset.

At the same env step (``bad_at``; both have learned by then), one destructive update is injected between
two updates: the policy's parameters (DQN: the online Q network, whose argmax is the policy; PPO: the actor's
torso and head; the critic is left alone) are replaced by a fresh random initialisation (``init`` with the seed
plus ``FRESH_SEED_OFFSET``), the worst a bad step can do. (A Gaussian perturbation as large as the weights
themselves dropped DQN's greedy return to 10 but left PPO's at its level, so it would not have been the same
damage to both.) Training then continues unchanged (the buffer, the optimiser's state, the schedules are untouched).

Measured per seed with the driver's greedy evaluation (``backend.evaluate``, ``EVAL_EPISODES`` episodes,
every ``EVAL_EVERY`` env steps, not counted in the budget): the return just before the update (mean of the
last three evaluations), just after it (the reset policy, before any further update), and the env steps
until the evaluation first returns to ``RECOVERED`` x the return before (never: not within the budget).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import jax
import numpy as np

from advantage.envs.registry import make
from advantage.labs import header, write_results
from advantage.training.jax_backend import JaxBackend
from advantage.training.run_config import Schedule

NAME = "replay-recovery"
SLIDE = (
    "Actor Critic I (shared/seeds/000), slides 'Trust Regions' ('Bad data = no policy recovery!'; 'Off-policy "
    'methods recover with "good" data from replay buffer, on-policy cannot\')'
)
CLAIM = (
    "After the same destructive update, an off-policy learner (DQN, replay buffer) gets back to its return "
    "in fewer env steps than an on-policy learner (PPO), which has to learn from the damaged policy's data."
)

ENV = "CartPole-v1"
FRESH_SEED_OFFSET = 10_000  # the new initialisation of seed s is init's for seed s + 10 000
RECOVERED = 0.9  # recovered: evaluation return >= 0.9 x the return before the update
EVAL_EVERY = 1024  # env steps (a multiple of both learners' iteration: DQN 128, PPO 256)
EVAL_EPISODES = 10

#: preset fields changed for the lab (none: both run their CartPole presets)
LAB_OVERRIDES: dict[str, dict] = {}

#: label -> (algorithm, is the parameter leaf at this path part of the policy?)
LEARNERS = {
    "DQN (off-policy, replay)": ("dqn", lambda path: True),
    "PPO (on-policy)": ("ppo", lambda path: "actor" in path or "policy" in path),
}


def _policy_params_field(algo: str) -> str:
    return "q_params" if algo == "dqn" else "params"


def reset_policy(agent, fresh, algo: str):
    """``agent`` with its policy's parameters taken from ``fresh`` (a new ``init``); everything else kept."""
    field = _policy_params_field(algo)
    is_policy = next(v[1] for v in LEARNERS.values() if v[0] == algo)
    params = jax.tree_util.tree_map_with_path(
        lambda path, w, w_new: w_new if is_policy(jax.tree_util.keystr(path)) else w,
        getattr(agent, field),
        getattr(fresh, field),
    )
    return agent.replace(**{field: params})


def train_learner(label: str, seeds, bad_at: int, total: int) -> dict:
    """Train ``label`` on all ``seeds`` to ``total`` env steps with the perturbation at ``bad_at``; greedy
    evaluations ``[n_seeds, n_evals]`` at ``steps``, and the evaluation of the perturbed policy."""
    from advantage import algos

    algo_name = LEARNERS[label][0]
    algo = algos.get(algo_name)
    base = algo.ZOO_CARTPOLE if algo_name == "dqn" else algo.PRESETS[ENV]  # DQN: the setting the lab measured
    config = algo.Config(**{**base, **LAB_OVERRIDES.get(algo_name, {})})
    env, env_params = make(ENV)
    per_iter = config.n_envs * config.n_steps
    assert EVAL_EVERY % per_iter == 0 and bad_at % EVAL_EVERY == 0 and total % EVAL_EVERY == 0
    iters = EVAL_EVERY // per_iter
    backend = JaxBackend(algo, config, env, env_params, Schedule(total, config.n_envs, config.n_steps), iters)
    runners = backend.init(seeds)
    n = len(seeds)
    steps, evals, after = [0], [backend.evaluate(runners, EVAL_EPISODES, True)[0].mean(axis=1)], None
    t0 = time.perf_counter()
    done = 0
    while done < total:
        if done == bad_at:
            fresh = backend.init([FRESH_SEED_OFFSET + s for s in seeds]).agent
            runners = runners.replace(agent=reset_policy(runners.agent, fresh, algo_name))
            after = backend.evaluate(runners, EVAL_EPISODES, True)[0].mean(axis=1)
        runners, _ = backend.run_chunk(runners, iters)
        done += EVAL_EVERY
        steps.append(done)
        evals.append(backend.evaluate(runners, EVAL_EPISODES, True)[0].mean(axis=1))
    assert after is not None and n == len(evals[0])
    return {
        "steps": np.asarray(steps),
        "eval": np.stack(evals, axis=1),
        "after": after,
        "wall_s": time.perf_counter() - t0,
    }


def recovery(steps, ev, after, bad_at: int) -> dict:
    i_bad = int(np.searchsorted(steps, bad_at))  # the evaluation at bad_at, before the perturbation
    before = ev[:, max(0, i_bad - 2) : i_bad + 1].mean(axis=1)
    rec: list[float | None] = []
    for b, row in zip(before, ev):
        hit = np.nonzero(row[i_bad + 1 :] >= RECOVERED * b)[0]
        rec.append(float(steps[i_bad + 1 + hit[0]] - bad_at) if hit.size else None)
    post = ev[:, i_bad + 1 :]
    return {
        "return_before_per_seed": before.tolist(),
        "return_just_after_per_seed": after.tolist(),
        "steps_to_recover_per_seed": rec,
        "seeds_recovered": int(sum(r is not None for r in rec)),
        "median_steps_to_recover": float(np.median([np.inf if r is None else r for r in rec])),
        "return_before_mean": float(before.mean()),
        "return_just_after_mean": float(after.mean()),
        "return_first_5k_after_mean": float(post[:, : max(1, 5120 // EVAL_EVERY)].mean()),
        # the same, as a fraction of each seed's return before (the learners need not be at the same level)
        "fraction_of_before_first_5k_after": float(
            np.mean(post[:, : max(1, 5120 // EVAL_EVERY)].mean(axis=1) / np.maximum(before, 1e-9))
        ),
        "final_return_per_seed": ev[:, -1].tolist(),
    }


def run(out_dir: Path, seed: int = 0, quick: bool = False) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    n_seeds = 2 if quick else 4
    # the reset after 30k steps in the quick run too: after 20k DQN had learned too little on some seeds, and which
    # learner kept more of its return then flipped with XLA's instruction set
    bad_at = 30_720
    total = bad_at + 20_480
    seeds = [seed + i for i in range(n_seeds)]
    curves, res = {}, {}
    for label in LEARNERS:
        curves[label] = train_learner(label, seeds, bad_at, total)
        c = curves[label]
        res[label] = {
            **recovery(c["steps"], c["eval"], c["after"], bad_at),
            "wall_s_all_seeds": c["wall_s"],
            "eval_steps": c["steps"].tolist(),
            "eval_return_per_seed": np.round(c["eval"], 2).tolist(),
        }

    off, on = res["DQN (off-policy, replay)"], res["PPO (on-policy)"]
    checks = {
        "both had learned before the update (mean return >= 100; a random policy scores about 22)": min(
            off["return_before_mean"], on["return_before_mean"]
        )
        >= 100,
        "the update was destructive for both (return just after <= half the return before)": all(
            r["return_just_after_mean"] <= 0.5 * r["return_before_mean"] for r in (off, on)
        ),
        "off-policy recovers in fewer median env steps": off["median_steps_to_recover"] < on["median_steps_to_recover"],
        "off-policy: a higher fraction of its return before, over the first 5k env steps after": off[
            "fraction_of_before_first_5k_after"
        ]
        > on["fraction_of_before_first_5k_after"],
    }
    claim_holds = all(checks.values())

    colours = {"DQN (off-policy, replay)": "#2166ac", "PPO (on-policy)": "#b2182b"}
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.3), gridspec_kw={"width_ratios": [1.6, 1]})
    ax = axes[0]
    for label, c in curves.items():
        ax.plot(c["steps"], c["eval"].mean(axis=0), color=colours[label], lw=2, label=label)
        for row in c["eval"]:
            ax.plot(c["steps"], row, color=colours[label], alpha=0.25, lw=0.7)
        ax.plot([bad_at] * len(c["after"]), c["after"], "x", color=colours[label], ms=6, label=f"{label}: just after")
    ax.axvline(bad_at, color="gray", ls=":", lw=0.8)
    ax.set_xlabel("env steps per seed")
    ax.set_ylabel(f"greedy evaluation return ({EVAL_EPISODES} episodes)")
    ax.set_title(f"at {bad_at:,} steps the policy's parameters are reset to a fresh initialisation", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[1]
    for i, label in enumerate(LEARNERS):
        r = res[label]["steps_to_recover_per_seed"]
        cap = total - bad_at
        ys = [x if x is not None else cap * 1.05 for x in r]
        ax.scatter(np.full(len(ys), i) + np.linspace(-0.12, 0.12, len(ys)), ys, color=colours[label], s=22)
        never = sum(x is None for x in r)
        if never:
            ax.text(i, cap * 1.1, f"{never} not within {cap:,}", ha="center", fontsize=7)
    ax.set_xticks(range(len(LEARNERS)))
    ax.set_xticklabels(list(LEARNERS), fontsize=8)
    ax.set_ylabel(f"env steps until return >= {RECOVERED:g} x before")
    ax.set_title("recovery (per seed)", fontsize=9)
    fig.suptitle(f"Recovering from a bad update on {ENV} (seeds {seeds[0]}-{seeds[-1]})", fontsize=10)
    fig.tight_layout()

    def fmt(x):
        return "not within the budget (median)" if not np.isfinite(x) else f"{x:,.0f} env steps"

    results = {
        **header(sys.modules[__name__], seed, quick),
        "setup": {
            "env": ENV,
            "seeds": seeds,
            "bad_at": bad_at,
            "total_steps": total,
            "bad_update": "the policy's parameters reset to a fresh init (seed + 10000)",
            "recovered_fraction": RECOVERED,
            "eval_every": EVAL_EVERY,
            "eval_episodes": EVAL_EPISODES,
            "presets": "dqn.ZOO_CARTPOLE / ppo.PRESETS['CartPole-v1']",
        },
        "learners": {
            k: {
                **v,
                "median_steps_to_recover": v["median_steps_to_recover"]
                if np.isfinite(v["median_steps_to_recover"])
                else None,
            }
            for k, v in res.items()
        },
        "checks": checks,
        "claim_holds": bool(claim_holds),
        "summary": "; ".join(
            f"{k}: return {v['return_before_mean']:.0f} before, {v['return_just_after_mean']:.0f} just after, "
            f"recovered in {fmt(v['median_steps_to_recover'])} ({v['seeds_recovered']}/{n_seeds} seeds), "
            f"{v['return_first_5k_after_mean']:.0f} ({v['fraction_of_before_first_5k_after']:.2f} of before) over the "
            "first 5k steps after"
            for k, v in res.items()
        )
        + (". The claim holds here." if claim_holds else ". The claim does not hold here."),
        "wall_time_s": time.perf_counter() - t0,
    }
    return write_results(out_dir, fig, results)
