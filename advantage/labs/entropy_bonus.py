r"""Lab ``entropy-bonus``: does the entropy bonus keep a policy from converging too early?

The slides (*Actor Critic and PPO*, "Policy Entropy Bonus": it "improves exploration by discouraging premature
convergence to suboptimal deterministic policies"; A3C's "entropy regularization", the term
:math:`c_e\,\mathcal H[\pi_\theta(\cdot|s)]` added to the objective) say that rewarding the policy's entropy keeps
it exploring.

The experiment runs ``a2c`` itself (``advantage/algos/a2c.py``: its ``init``, ``act`` and ``update``) on a
*deceptive* two-armed bandit, one state and episodes of one step. Arm 0 is the better one in expectation but
pays rarely: 10 with probability 0.1, else 0 (mean 1.0); arm 1 pays 0.8 every time. Most samples of arm 0
say it is worse than arm 1, so a policy gradient with a fast step tends to give it up before the rare
jackpots have shown its mean; once :math:`\pi(a_0)` is small it is hardly sampled again and the policy stays on
arm 1 — premature convergence. A2C's loss gets :math:`c_e\in\{0, \dots\}` (``ent_coef``), everything else equal:
8 parallel one-step episodes per update (``n_envs = 8, n_steps = 1``), Adam with step 0.03, a (16,) tanh torso,
no gradient clipping. Every coefficient sees the same seeds and random keys.

Measured over many seeds: the policy's entropy and :math:`\pi(a_0)` over training, the fraction of seeds that
end *stuck* (:math:`\pi(a_0) < 0.1`) and that end *committed* to the better arm (:math:`\pi(a_0) > 0.9`), and
the final return, both of the stochastic policy (:math:`\sum_a \pi(a) r(a)`, exact) and of its greedy action.
Note the trade-off the bonus brings: the entropy-regularised optimum is the softmax
:math:`\pi(a) \propto \exp(\bar r(a)/c_e)`, itself stochastic, so a large :math:`c_e` keeps the policy from
committing to *either* arm.
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

from advantage.algos import a2c
from advantage.labs import header
from advantage.types import Transition

NAME = "entropy-bonus"
SLIDE = (
    "Actor Critic and PPO (shared/seeds/001), slide 'Policy Entropy Bonus' ('Improves exploration by "
    "discouraging premature convergence to suboptimal deterministic policies'), after 'Asynchronous Advantage "
    "Actor Critic (A3C)' ('3. Entropy regularization')"
)
CLAIM = (
    "Adding an entropy bonus c_e H[pi] to the actor-critic loss discourages premature convergence: fewer runs "
    "settle on a suboptimal action before they have learned which action is better."
)

JACKPOT, P_JACKPOT, SAFE = 10.0, 0.1, 0.8  # arm 0: 10 w.p. 0.1 (mean 1.0); arm 1: 0.8 always
MEANS = (JACKPOT * P_JACKPOT, SAFE)
ENT_COEFS = (0.0, 0.1, 0.3, 1.0, 3.0)
N_ENVS = 8
LR = 0.03
STUCK, COMMITTED = 0.1, 0.9  # final pi(a_0) < 0.1: stuck on the worse arm; > 0.9: committed to the better one
CURVE_EVERY = 20


def _config() -> a2c.Config:
    return a2c.Config(
        n_envs=N_ENVS,
        n_steps=1,
        hidden_sizes=(16,),
        optimizer="adam",
        learning_rate=LR,
        max_grad_norm=1e6,  # no clipping
        ent_coef=0.0,  # replaced (traced) per run
    )


def bandit_reward(key, action):
    """The deceptive bandit: arm 0 pays ``JACKPOT`` with probability ``P_JACKPOT`` (else 0), arm 1 pays ``SAFE``."""
    jackpot = jax.random.bernoulli(key, P_JACKPOT, action.shape)
    return jnp.where(action == 0, JACKPOT * jackpot, SAFE).astype(jnp.float32)


@partial(jax.jit, static_argnums=(2,))
def run_coefs(ent_coefs, keys, n_updates: int):
    """A2C on the bandit for every ``ent_coefs [C]`` and seed ``keys [S]`` (the same keys for every coefficient).

    Returns ``(prob_best [C, S, n_updates + 1], entropy [C, S, n_updates + 1])``: pi(a_0) and H[pi] before every
    update and after the last."""
    from advantage.envs.lectures.one_state import DiscreteParams, OneStateDiscrete

    env = OneStateDiscrete()
    params = DiscreteParams(rewards=(0.0, 0.0))  # only its spaces and observation: the rewards are bandit_reward's
    obs_space, space = env.observation_space(params), env.action_space(params)
    net = a2c.network(_config(), space)
    obs = jnp.zeros((N_ENVS, 1), jnp.float32)

    def probs_entropy(state):
        dist, _ = net.apply(state.params, obs[:1])
        return jnp.exp(dist.log_probs[0, 0]), dist.entropy()[0]

    def one_run(ent_coef, key):
        config = _config().replace(ent_coef=ent_coef)
        k_init, k_run = jax.random.split(key)

        def step(state, k):
            k_act, k_rew, k_upd = jax.random.split(k, 3)
            out = probs_entropy(state)
            action, log_prob, value = a2c.act(config, space, state, obs, k_act)
            reward = bandit_reward(k_rew, action)
            batch = Transition(
                obs=obs[None],
                action=action[None],
                reward=reward[None],
                terminated=jnp.ones((1, N_ENVS), bool),  # one-step episodes: nothing to bootstrap
                truncated=jnp.zeros((1, N_ENVS), bool),
                next_obs=obs[None],
                log_prob=log_prob[None],
                value=value[None],
            )
            state, _ = a2c.update(config, space, state, batch, k_upd)
            return state, out

        state = a2c.init(k_init, obs_space, space, config, n_updates * N_ENVS)
        state, (p, h) = jax.lax.scan(step, state, jax.random.split(k_run, n_updates))
        p_last, h_last = probs_entropy(state)
        return jnp.append(p, p_last), jnp.append(h, h_last)

    per_coef = jax.vmap(one_run, in_axes=(None, 0))
    return jax.vmap(per_coef, in_axes=(0, None))(ent_coefs, keys)


def _stats(p: np.ndarray, h: np.ndarray) -> dict[str, Any]:
    """Numbers of one coefficient from ``p [S, n + 1]`` (pi(a_0)) and ``h [S, n + 1]`` (entropy)."""
    final = p[:, -1]
    sampled = final * MEANS[0] + (1 - final) * MEANS[1]
    greedy = np.where(final >= 0.5, MEANS[0], MEANS[1])
    return {
        "seeds_stuck": float(np.mean(final < STUCK)),
        "seeds_committed_to_best": float(np.mean(final > COMMITTED)),
        "seeds_greedy_on_best": float(np.mean(final >= 0.5)),
        "final_prob_best_mean": float(final.mean()),
        "final_return_sampled_mean": float(sampled.mean()),
        "final_return_greedy_mean": float(greedy.mean()),
        "final_entropy_mean": float(h[:, -1].mean()),
        "mean_entropy_over_training": float(h.mean()),
        "entropy_mean_curve": [round(float(x), 4) for x in h.mean(axis=0)[::CURVE_EVERY]],
        "prob_best_mean_curve": [round(float(x), 4) for x in p.mean(axis=0)[::CURVE_EVERY]],
        "stuck_fraction_curve": [round(float(x), 4) for x in (p < STUCK).mean(axis=0)[::CURVE_EVERY]],
        "final_prob_best_per_seed": [round(float(x), 4) for x in final],
    }


def run(out_dir: Path, seed: int = 0, quick: bool = False) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    n_seeds, n_updates = (64, 1000) if quick else (256, 2000)
    keys = jax.random.split(jax.random.PRNGKey(seed), n_seeds)
    p, h = (np.asarray(x, np.float64) for x in run_coefs(jnp.asarray(ENT_COEFS, jnp.float32), keys, n_updates))
    per = {str(c): _stats(p[i], h[i]) for i, c in enumerate(ENT_COEFS)}

    base = per[str(ENT_COEFS[0])]
    bonus = {k: v for k, v in per.items() if k != str(ENT_COEFS[0])}
    best_c = min(bonus, key=lambda k: (bonus[k]["seeds_stuck"], -bonus[k]["final_return_greedy_mean"]))
    checks = {
        "without the bonus >= 10% of seeds end stuck on the worse arm (premature convergence shows)": bool(
            base["seeds_stuck"] >= 0.1
        ),
        "some c_e > 0 at most halves the stuck fraction": bool(
            bonus[best_c]["seeds_stuck"] <= 0.5 * base["seeds_stuck"]
        ),
        "that c_e keeps the entropy higher over training": bool(
            bonus[best_c]["mean_entropy_over_training"] > base["mean_entropy_over_training"]
        ),
    }
    holds = all(checks.values())
    monotone = all(per[str(a)]["seeds_stuck"] >= per[str(b)]["seeds_stuck"] for a, b in zip(ENT_COEFS, ENT_COEFS[1:]))
    results: dict[str, Any] = {
        **header(sys.modules[__name__], seed, quick),
        "setup": {
            "env": "two-armed bandit, one step: arm 0 pays 10 w.p. 0.1 (mean 1.0), arm 1 pays 0.8",
            "algorithm": "a2c (init / act / update), n_envs 8, n_steps 1, Adam 0.03, hidden (16,), no clipping",
            "arm_means": list(MEANS),
            "ent_coefs": list(ENT_COEFS),
            "n_seeds": n_seeds,
            "n_updates": n_updates,
            "stuck_threshold": STUCK,
            "committed_threshold": COMMITTED,
            "curve_updates": list(range(0, n_updates + 1, CURVE_EVERY)),
            "regularised_optimum_prob_best": {
                str(c): float(1 / (1 + np.exp(-(MEANS[0] - MEANS[1]) / c))) for c in ENT_COEFS if c > 0
            },
        },
        "coefs": per,
        "best_coef": float(best_c),
        "stuck_fraction_monotone_in_coef": bool(monotone),
        "checks": checks,
        "claim_holds": bool(holds),
        # not part of the claim, but what a reader wants next: did any bonus end with a better policy?
        "bonus_improves_final_return": bool(
            max(v["final_return_greedy_mean"] for v in bonus.values()) > base["final_return_greedy_mean"]
            or max(v["final_return_sampled_mean"] for v in bonus.values()) > base["final_return_sampled_mean"]
        ),
    }
    results["summary"] = (
        "stuck (final pi(best) < 0.1) / committed to the best arm (> 0.9) / sampled return / greedy return by c_e: "
        + "; ".join(
            f"{c}: {s['seeds_stuck']:.0%} / {s['seeds_committed_to_best']:.0%} / "
            f"{s['final_return_sampled_mean']:.3f} / {s['final_return_greedy_mean']:.3f}"
            for c, s in per.items()
        )
        + f". Claim holds: {holds} (best c_e {best_c})."
        + ("" if monotone else " The stuck fraction is not monotone in c_e.")
        + (
            " Some c_e > 0 ends with a higher return than c_e = 0."
            if results["bonus_improves_final_return"]
            else " No c_e > 0 ends with a higher return (sampled or greedy) than c_e = 0: the bonus that stops the "
            "runs from sticking also stops them from committing to the better arm."
        )
    )
    results["wall_time_s"] = time.perf_counter() - t0
    (out_dir / "results.json").write_text(json.dumps(results, indent=2))
    _figure(out_dir / "figure.png", p, h, results)
    return results


def _figure(path, p, h, results):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    coefs = results["setup"]["ent_coefs"]
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(coefs)))
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    x = np.arange(p.shape[2])
    for i, c in enumerate(coefs):
        axes[0].plot(x, h[i].mean(axis=0), color=colors[i], label=f"c_e = {c:g}")
        axes[1].plot(x, (p[i] < STUCK).mean(axis=0), color=colors[i], label=f"c_e = {c:g}")
    axes[0].set_xlabel("update")
    axes[0].set_ylabel("policy entropy (nats), mean over seeds")
    axes[0].axhline(np.log(2), color="k", ls=":", lw=0.8)
    axes[0].legend(fontsize=8)
    axes[0].set_title("entropy over training")
    axes[1].set_xlabel("update")
    axes[1].set_ylabel(f"fraction of seeds with π(a₀) < {STUCK}")
    axes[1].set_title("seeds stuck on the worse arm")
    per = results["coefs"]
    pos = np.arange(len(coefs))
    w = 0.38
    ax = axes[2]
    ax.bar(pos - w / 2, [per[str(c)]["seeds_stuck"] for c in coefs], w, color="tab:red", label="stuck (π(a₀) < 0.1)")
    ax.bar(
        pos + w / 2,
        [per[str(c)]["seeds_committed_to_best"] for c in coefs],
        w,
        color="tab:green",
        label="committed (π(a₀) > 0.9)",
    )
    ax.set_xticks(pos, [f"{c:g}" for c in coefs])
    ax.set_xlabel("entropy coefficient c_e")
    ax.set_ylabel("fraction of seeds at the end")
    ax.set_ylim(0, 1.05)
    ax2 = ax.twinx()
    ax2.plot(pos, [per[str(c)]["final_return_sampled_mean"] for c in coefs], "ko-", label="return, sampled π")
    ax2.plot(pos, [per[str(c)]["final_return_greedy_mean"] for c in coefs], "k^--", label="return, greedy")
    ax2.set_ylabel("final expected return (best 1.0, worse arm 0.8)")
    ax2.set_ylim(0.78, 1.01)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="upper center")
    ax.set_title("where the seeds end")
    s = results["setup"]
    fig.suptitle(
        f"A2C on a deceptive bandit (arm 0: 10 w.p. 0.1, arm 1: 0.8), {s['n_seeds']} seeds × {s['n_updates']} "
        "updates of 8 samples: the entropy bonus c_e·H[π]"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
