r"""Lab ``v-weighted-actor``: an actor weighted by :math:`V(s)` does not learn which action is better.

The *Actor Critic I* deck (CISC 7404, Steven Morad), slides "Actor Critic": "Replace MC return with
:math:`V/Q` in policy gradient, call it actor-critic", with the first definition

.. math::
    \theta_\pi \leftarrow \theta_\pi + \alpha\, V(s_0)\, \nabla_{\theta_\pi} \log\pi(a_0|s_0), \qquad
    V \text{ trained by TD},

and then, slides "Advantage Actor Critic": "Similar results if reward is always positive" ... "Update the
policy only if action is better/worse than expected", :math:`A = Q - V`. The weight :math:`V(s_0)` does not
depend on the action taken, so its expected step is :math:`V(s)\sum_a \pi(a|s)\nabla\log\pi(a|s) = 0`: with
:math:`V(s) > 0` it raises the probability of *whichever* action was sampled, the better one and the worse one
alike, and the policy only drifts.

The experiment runs ``qac`` itself (``advantage/algos/actor_critic.py``: its ``init``, ``act`` and ``update``)
on the one-state MDP ``OneStateDiscrete-v0`` with all-positive rewards, :math:`r(a_0) = 2` (the better action)
and :math:`r(a_1) = 1`, in the slides' online form: one transition per update (``n_envs = n_steps = 1``), plain
SGD steps, no gradient clipping, tabular policy and critics (``features = linear-raw`` on the constant
observation). Three actor weights, the critics learning by TD from zero:

* ``V(s)``: ``actor_weight = v, critics = two`` (the deck's first definition, :math:`V_v` trained by TD(0));
* ``Q_w(s,a)``: ``actor_weight = q`` (the slides' Algorithm 1, Q actor-critic);
* ``Q_w - V_v``: ``actor_weight = advantage, critics = two`` (the advantage from two TD critics, the *Policy
  Search* deck's A2C).

Measured over many seeds (every variant sees the same random keys): the probability of the better action
after every update, how the final policies split between the two actions, and, in the updates that sampled the
worse action, how often its probability went *up*.
"""

from __future__ import annotations

import json
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from advantage.algos import actor_critic as qac
from advantage.labs import header
from advantage.types import Transition

NAME = "v-weighted-actor"
SLIDE = (
    "Actor Critic I (CISC 7404 Decision Making, Steven Morad), slides 'Actor Critic' (Definition: theta_pi <- "
    "theta_pi + alpha V(s_0) grad log pi(a_0|s_0)) and 'Advantage Actor Critic' ('Similar results if reward is "
    "always positive'; 'Update the policy only if action is better/worse than expected')"
)
CLAIM = (
    "Weighting the actor by V(s) pushes up every sampled action when V(s) > 0, the worse one as much as the "
    "better one, so the policy does not improve on average; weighting by the advantage Q_w - V_v learns the "
    "better action."
)

#: label -> qac config fields
VARIANTS: dict[str, dict] = {
    "V(s)": dict(actor_weight="v", critics="two"),
    "Q_w(s,a)": dict(actor_weight="q", critics="one"),
    "Q_w - V_v": dict(actor_weight="advantage", critics="two"),
}
REWARDS = (2.0, 1.0)  # r(a_0), the better action, and r(a_1): both positive
ALPHA = 0.2  # actor step size (plain SGD)
ALPHA_CRITIC = 0.2  # critics' step size
CURVE_EVERY = 10  # results.json keeps the curves every 10 updates (the figure draws every update)
LEARNED, WRONG = 0.9, 0.1  # final pi(a_0) >= 0.9: learned the better action; <= 0.1: settled on the worse one


def _config(variant: str) -> qac.Config:
    return qac.Config(
        n_envs=1,
        n_steps=1,
        features="linear-raw",
        optimizer="sgd",
        learning_rate=ALPHA,
        critic_learning_rate=ALPHA_CRITIC,
        gamma=0.99,  # irrelevant: every episode terminates after one step
        max_grad_norm=1e6,  # no clipping: the slides' plain step
        **VARIANTS[variant],
    )


@partial(jax.jit, static_argnums=(0, 2))
def run_variant(variant: str, keys, n_updates: int):
    """``qac`` with the weight ``variant`` on the positive-reward one-state MDP, one seed per key (``keys [S]``).

    Returns ``(prob_best [S, n_updates + 1], action [S, n_updates], psi [S, n_updates])``: pi(a_0) before each
    update and after the last, the sampled action and the actor's weight Psi it was given."""
    from advantage.envs.lectures.one_state import DiscreteParams, OneStateDiscrete

    config = _config(variant)
    env = OneStateDiscrete()
    params = DiscreteParams(rewards=REWARDS)
    obs_space, space = env.observation_space(params), env.action_space(params)
    policy, critic = qac.networks(config, space, config.feature_map(obs_space, algo=qac.NAME))

    def one_seed(key):
        k_init, k_run = jax.random.split(key)

        def step(state, k):
            k_act, k_env, k_upd = jax.random.split(k, 3)
            obs, env_state = env.reset(k_env, params)
            obs = obs[None]  # [B = 1, 1]
            action, log_prob, value = qac.act(config, space, state, obs, k_act)
            _, _, reward, term, trunc, _ = env.step(k_env, env_state, action[0], params)
            # the weight the update gives this transition: Psi(Q_w(s, a), V(s)) with the critics before the step
            dist = policy.apply(state.params["policy"], obs)
            q_all = critic.apply(state.params["critic"], obs)
            if config.critics == "two":
                v_s = qac.value_network(config, state.fmap).apply(state.params["value"], obs)
            else:
                v_s = jnp.sum(jnp.exp(dist.log_probs) * q_all, axis=-1)
            psi = qac.actor_weights(config.actor_weight, jnp.take(q_all[0], action[0]), v_s[0])
            batch = Transition(
                obs=obs[None],
                action=action[None],
                reward=reward[None, None],
                terminated=term[None, None],
                truncated=trunc[None, None],
                next_obs=obs[None],
                log_prob=log_prob[None],
                value=value[None],
            )
            state, _ = qac.update(config, space, state, batch, k_upd)
            return state, (jnp.exp(dist.log_probs[0, 0]), action[0], psi)

        state = qac.init(k_init, obs_space, space, config, n_updates)
        state, (p, a, psi) = jax.lax.scan(step, state, jax.random.split(k_run, n_updates))
        p_last = jnp.exp(policy.apply(state.params["policy"], jnp.zeros((1, 1))).log_probs[0, 0])
        return jnp.append(p, p_last), a, psi

    return jax.vmap(one_seed)(keys)


def _stats(p: np.ndarray, a: np.ndarray, psi: np.ndarray) -> dict[str, Any]:
    """Numbers of one variant from ``p [S, n + 1]`` (pi(a_0)), ``a [S, n]`` (actions) and ``psi [S, n]``."""
    final = p[:, -1]
    dp = np.diff(p, axis=1)  # change of pi(a_0) made by each update
    worse = a == 1
    # a sampled worse action whose probability rose: pi(a_0) fell in that update (it is the only sample)
    worse_up = (dp < -1e-9) & worse
    better_up = (dp > 1e-9) & ~worse
    n_worse = int(worse.sum())
    mean_curve = p.mean(axis=0)
    reached = np.nonzero(mean_curve >= LEARNED)[0]
    return {
        "final_prob_best_mean": float(final.mean()),
        "final_prob_best_median": float(np.median(final)),
        "seeds_learned": float(np.mean(final >= LEARNED)),
        "seeds_on_worse_action": float(np.mean(final <= WRONG)),
        "worse_action_pushed_up": float(worse_up.sum() / max(n_worse, 1)),
        "better_action_pushed_up": float(better_up.sum() / max(int((~worse).sum()), 1)),
        "psi_mean_on_better": float(psi[~worse].mean()) if (~worse).any() else None,
        "psi_mean_on_worse": float(psi[worse].mean()) if worse.any() else None,
        "worse_action_samples": n_worse,
        "first_update_mean_prob_best_ge_0.9": int(reached[0]) if len(reached) else None,
        "mean_prob_best_curve": [round(float(x), 4) for x in mean_curve[::CURVE_EVERY]],
        "q25_prob_best_curve": [round(float(x), 4) for x in np.quantile(p, 0.25, axis=0)[::CURVE_EVERY]],
        "q75_prob_best_curve": [round(float(x), 4) for x in np.quantile(p, 0.75, axis=0)[::CURVE_EVERY]],
        "final_prob_best_per_seed": [round(float(x), 4) for x in final],
    }


def run(out_dir: Path, seed: int = 0, quick: bool = False) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    n_seeds, n_updates = (64, 300) if quick else (256, 600)
    keys = jax.random.split(jax.random.PRNGKey(seed), n_seeds)  # the same keys for every variant
    results: dict[str, Any] = {
        **header(sys.modules[__name__], seed, quick),
        "setup": {
            "env": "OneStateDiscrete-v0",
            "rewards": list(REWARDS),
            "n_seeds": n_seeds,
            "n_updates": n_updates,
            "transitions_per_update": 1,
            "actor_step": ALPHA,
            "critic_step": ALPHA_CRITIC,
            "optimizer": "sgd",
            "features": "linear-raw (tabular: one state)",
            "variants": {k: dict(v) for k, v in VARIANTS.items()},
            "curve_updates": list(range(0, n_updates + 1, CURVE_EVERY)),
        },
        "variants": {},
    }
    curves = {}
    for variant in VARIANTS:
        p, a, psi = (np.asarray(x) for x in run_variant(variant, keys, n_updates))
        results["variants"][variant] = _stats(p, a, psi)
        curves[variant] = p

    v, q, adv = (results["variants"][k] for k in VARIANTS)
    holds = bool(
        # V-weighted: every sampled action pushed up, the worse one included, and no improvement on average
        v["worse_action_pushed_up"] >= 0.95
        and v["better_action_pushed_up"] >= 0.95
        and abs(v["final_prob_best_mean"] - 0.5) <= 0.15
        and v["seeds_on_worse_action"] >= 0.2
        # the advantage pushes the worse action down and learns the better one on (nearly) every seed
        and adv["worse_action_pushed_up"] <= 0.1
        and adv["final_prob_best_mean"] >= 0.95
        and adv["seeds_learned"] >= 0.95
        and adv["seeds_on_worse_action"] == 0.0
    )
    results["claim_holds"] = holds
    results["criteria"] = (
        "V(s)-weighted: >= 95% of the updates that sampled the worse action raised its probability (and >= 95% of "
        "those that sampled the better one raised that), final mean pi(better) within 0.5 +- 0.15, >= 20% of "
        f"seeds end with pi(better) <= {WRONG}; advantage-weighted (Q_w - V_v): <= 10% of the worse action's "
        f"samples raised its probability, final mean pi(better) >= 0.95, >= 95% of seeds at pi(better) >= "
        f"{LEARNED} and none at <= {WRONG}. The Q_w-weighted actor is shown, not judged."
    )
    results["summary"] = (
        f"rewards {REWARDS} (one state, {n_seeds} seeds, {n_updates} single-transition updates). "
        + "; ".join(
            f"{k}: final mean pi(better) {s['final_prob_best_mean']:.2f}, seeds learned {s['seeds_learned']:.0%}, "
            f"on the worse action {s['seeds_on_worse_action']:.0%}, worse action pushed up in "
            f"{s['worse_action_pushed_up']:.0%} of its samples"
            for k, s in results["variants"].items()
        )
        + f". Claim holds: {holds}."
    )
    results["wall_time_s"] = time.perf_counter() - t0
    (out_dir / "results.json").write_text(json.dumps(results, indent=2))
    _figure(out_dir / "figure.png", curves, results)
    return results


def _figure(path, curves, results):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"V(s)": "tab:red", "Q_w(s,a)": "tab:orange", "Q_w - V_v": "tab:green"}
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [3, 2]})
    for k, p in curves.items():
        x = np.arange(p.shape[1])
        ax.plot(x, p.mean(axis=0), color=colors[k], lw=2, label=f"Ψ = {k}: mean over seeds")
        ax.fill_between(x, *np.quantile(p, [0.25, 0.75], axis=0), color=colors[k], alpha=0.15, lw=0)
        for s in range(3):
            ax.plot(x, p[s], color=colors[k], lw=0.6, alpha=0.5)
    ax.axhline(0.5, color="k", ls=":", lw=0.8)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("update (one transition each, plain SGD)")
    ax.set_ylabel("π(a₀), the better action")
    ax.set_title("mean, interquartile band and 3 seeds")
    ax.legend(loc="lower right", fontsize=8)
    bins = np.linspace(0, 1, 21)
    for k, p in curves.items():
        ax2.hist(p[:, -1], bins=bins, color=colors[k], histtype="step", lw=2.5 if k == "V(s)" else 1.5, label=k)
    ax2.set_xlabel("final π(a₀)")
    ax2.set_ylabel("seeds")
    ax2.set_title(f"where the {curves['V(s)'].shape[0]} seeds end")
    ax2.legend(fontsize=8)
    r = results["setup"]["rewards"]
    fig.suptitle(
        f"One state, rewards r(a₀) = {r[0]:g}, r(a₁) = {r[1]:g}: the actor step Ψ ∇log π(a|s). "
        "Ψ = V(s) > 0 pushes up whatever was sampled; Ψ = Q_w − V_v learns a₀"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
