r"""Lab ``rock-paper-scissors``: a deterministic policy is exploited; the uniform policy is the Nash equilibrium.

Environment: ``RockPaperScissors-v0`` (``advantage/envs/lectures/rock_paper_scissors.py``): 100 rounds
against an opponent that best-responds to an exponential moving average of the agent's past actions;
the agent observes a constant, so its policy is one distribution :math:`\pi = (p_R, p_P, p_S)`.

1. **Deterministic policies**: each of "always rock", "always paper", "always scissors" is played
   for many episodes; the opponent learns it after a round and wins every round after.
2. **Policy gradient**: the library's REINFORCE (``advantage.algos.reinforce``: linear softmax on the
   constant observation, batch-mean baseline, :math:`\gamma = 0`, so each round's action is credited
   with that round's reward), trained through the JAX-native back end on several seeds, starting
   from a policy that plays rock 86% of the time (logits ``(2.5, 0, 0)``: nearly deterministic, and
   exploited). The action probabilities are recorded during training; at the end they are compared
   with uniform and the policy's mean reward per round is measured on fresh episodes.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

NAME = "rock-paper-scissors"
SLIDE = (
    "Policy Search: Actor-Critic and Gradient Policy search (UPC, Mario Martin), slide 'Stochastic "
    "Policies: Rock-Paper-Scissors'; Policy Gradient Methods, 'Stochastic policies' (after David Silver's "
    "lecture 7)"
)
CLAIM = (
    "In iterated rock-paper-scissors every deterministic policy is exploited (mean reward about -1 per "
    "round), while policy gradient learns a stochastic policy close to uniform, the Nash equilibrium "
    "(mean reward about 0)."
)

ENV_ID = "RockPaperScissors-v0"
ROUNDS = 100
ACTIONS = ("rock", "paper", "scissors")
INIT_LOGITS = (2.5, 0.0, 0.0)


@partial(jax.jit, static_argnums=2)
def evaluate(probs, key, n_episodes: int):
    """Mean reward per round of the fixed policy ``probs [3]`` over ``n_episodes`` episodes of ``ROUNDS`` rounds,
    ``[n_episodes]``."""
    from advantage.envs.lectures.rock_paper_scissors import RockPaperScissors

    env = RockPaperScissors()
    params = env.default_params()
    logits = jnp.log(jnp.clip(probs, 1e-12, 1.0))

    def episode(k):
        k0, k1 = jax.random.split(k)
        _, state = env.reset(k0, params)

        def step(state, kt):
            ka, ke = jax.random.split(kt)
            a = jax.random.categorical(ka, logits)
            _, state, r, _, _, _ = env.step(ke, state, a, params)
            return state, r

        _, rewards = jax.lax.scan(step, state, jax.random.split(k1, ROUNDS))
        return rewards.mean()

    return jax.vmap(episode)(jax.random.split(key, n_episodes))


def train_policy_gradient(seeds, iters: int, record_every: int):
    """REINFORCE from the rock-heavy start on ``seeds``; returns ``(probs [n_records+1, n_seeds, 3],
    updates [n_records+1], mean training reward per round [n_records+1, n_seeds], config)``."""
    from advantage.algos import reinforce
    from advantage.envs import make
    from advantage.training.jax_backend import JaxBackend
    from advantage.training.run_config import Schedule

    env, params = make(ENV_ID)
    cfg = reinforce.Config(
        n_envs=4,
        n_steps=ROUNDS,
        phi="reward-to-go",
        baseline="mean",
        features="linear-raw",
        learning_rate=0.02,
        gamma=0.0,
        optimizer="adam",
        max_grad_norm=10.0,
    )
    sch = Schedule(cfg.n_envs * cfg.n_steps * iters, cfg.n_envs, cfg.n_steps)
    backend = JaxBackend(reinforce, cfg, env, params, sch, chunk_iters=record_every)
    runners = backend.init(list(seeds))
    # start from an almost deterministic policy: features are [obs, 1] = [1, 1]; put the logits in the bias row
    w = runners.agent.params["policy"]["params"]["LinearHead_0"]["w"]
    w = jnp.zeros_like(w).at[:, 1, :].set(jnp.asarray(INIT_LOGITS))
    runners = runners.replace(
        agent=runners.agent.replace(params={**runners.agent.params, "policy": {"params": {"LinearHead_0": {"w": w}}}})
    )
    policy, _ = reinforce.networks(cfg, env.action_space(params), jax.tree.map(lambda x: x[0], runners.agent).fmap)
    get_probs = jax.jit(jax.vmap(lambda p: jax.nn.softmax(policy.apply(p, jnp.ones((1, 1))).logits[0])))

    probs = [np.asarray(get_probs(runners.agent.params["policy"]))]
    rewards = [np.full(len(seeds), np.nan)]
    for _ in range(iters // record_every):
        runners, metrics = backend.run_chunk(runners, record_every)
        probs.append(np.asarray(get_probs(runners.agent.params["policy"])))
        rewards.append(np.asarray(metrics["train/reward_per_step"]).mean(axis=1))
    updates = np.arange(len(probs)) * record_every
    return np.stack(probs), updates, np.stack(rewards), cfg


def run(out_dir: Path, seed: int = 0, quick: bool = False) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n_seeds, iters, n_eval = (2, 80, 300) if quick else (5, 200, 1000)
    record_every = 5
    key = jax.random.PRNGKey(seed)
    k_det, k_eval = jax.random.split(key)
    seeds = [seed * 1000 + i for i in range(n_seeds)]

    deterministic = {}
    for i, name in enumerate(ACTIONS):
        r = np.asarray(evaluate(jax.nn.one_hot(i, 3), jax.random.fold_in(k_det, i), n_eval))
        deterministic[f"always {name}"] = float(r.mean())
    init_probs = np.asarray(jax.nn.softmax(jnp.asarray(INIT_LOGITS)))
    init_reward = float(np.asarray(evaluate(jnp.asarray(init_probs), jax.random.fold_in(k_det, 10), n_eval)).mean())
    uniform_reward = float(np.asarray(evaluate(jnp.full(3, 1 / 3), jax.random.fold_in(k_det, 11), n_eval)).mean())

    probs, updates, train_rewards, cfg = train_policy_gradient(seeds, iters, record_every)
    final = probs[-1]  # [n_seeds, 3]
    learned_rewards = [
        float(np.asarray(evaluate(jnp.asarray(p), jax.random.fold_in(k_eval, i), n_eval)).mean())
        for i, p in enumerate(final)
    ]
    dist = np.abs(final - 1 / 3).max(axis=1)  # max |p_a - 1/3| per seed
    tv = 0.5 * np.abs(final - 1 / 3).sum(axis=1)  # total-variation distance to uniform

    holds = bool(
        max(deterministic.values()) <= -0.9
        and float(dist.max()) <= 0.06
        and abs(float(np.mean(learned_rewards))) <= 0.05
    )
    det_text = ", ".join(f"{k} {v:+.2f}" for k, v in deterministic.items())
    summary = (
        f"deterministic policies: mean reward per round {det_text}; "
        f"learned policy (mean over {n_seeds} seeds) p = ({', '.join(f'{x:.3f}' for x in final.mean(0))}), "
        f"max |p - 1/3| = {dist.max():.3f}, mean reward {np.mean(learned_rewards):+.3f} per round "
        f"(start policy {init_reward:+.2f}, uniform {uniform_reward:+.3f})"
    )
    results = {
        "claim": CLAIM,
        "slide": SLIDE,
        "claim_holds": holds,
        "summary": summary,
        "seed": seed,
        "quick": quick,
        "rounds_per_episode": ROUNDS,
        "eval_episodes_per_policy": n_eval,
        "n_training_seeds": n_seeds,
        "updates_per_seed": iters,
        "reinforce_config": {
            k: getattr(cfg, k)
            for k in ("n_envs", "n_steps", "phi", "baseline", "features", "learning_rate", "gamma", "optimizer")
        },
        "deterministic_mean_reward": deterministic,
        "start_policy": {"probs": init_probs.tolist(), "mean_reward": init_reward},
        "uniform_mean_reward": uniform_reward,
        "learned": {
            "final_probs_per_seed": final.tolist(),
            "final_probs_mean": final.mean(0).tolist(),
            "max_abs_distance_to_uniform_per_seed": dist.tolist(),
            "total_variation_to_uniform_per_seed": tv.tolist(),
            "mean_reward_per_seed": learned_rewards,
            "mean_reward": float(np.mean(learned_rewards)),
        },
        "training": {
            "updates": updates.tolist(),
            "probs_mean_over_seeds": probs.mean(1).tolist(),
            "reward_per_round_mean_over_seeds": [None] + train_rewards[1:].mean(1).tolist(),
        },
        "criteria": "every deterministic policy <= -0.9 per round; learned max |p - 1/3| <= 0.06 on every seed; "
        "|learned mean reward| <= 0.05",
    }
    (out_dir / "results.json").write_text(json.dumps(results, indent=2))
    _figure(out_dir / "figure.png", probs, updates, deterministic, init_reward, learned_rewards, uniform_reward)
    return results


def _figure(path, probs, updates, deterministic, init_reward, learned_rewards, uniform_reward):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    ax = axes[0]
    colors = ("tab:brown", "tab:blue", "tab:red")
    for a, (name, c) in enumerate(zip(ACTIONS, colors)):
        for s in range(probs.shape[1]):
            ax.plot(updates, probs[:, s, a], color=c, alpha=0.25, lw=0.8)
        ax.plot(updates, probs[:, :, a].mean(1), color=c, lw=2, label=f"π({name})")
    ax.axhline(1 / 3, color="k", ls="--", lw=1, label="uniform (Nash)")
    ax.set_xlabel("REINFORCE updates (400 rounds each)")
    ax.set_ylabel("action probability")
    ax.set_ylim(0, 1)
    ax.set_title("Learned policy over training (thin: seeds)")
    ax.legend(loc="upper right")
    ax = axes[1]
    labels = [k.replace("always ", "always\n") for k in deterministic] + [
        "start\n(86% rock)",
        "learned\n(PG)",
        "uniform",
    ]
    values = list(deterministic.values()) + [init_reward, float(np.mean(learned_rewards)), uniform_reward]
    bars = ax.bar(labels, values, color=["tab:red"] * 3 + ["tab:orange", "tab:green", "tab:gray"])
    for bar, v in zip(bars, values):
        ax.annotate(
            f"{v:+.3f}",
            (bar.get_x() + bar.get_width() / 2, max(v, 0.0)),
            xytext=(0, 3),
            textcoords="offset points",
            ha="center",
            fontsize=8,
        )
    ax.axhline(0, color="k", lw=0.8)
    ax.set_ylim(-1.05, 0.3)
    ax.set_ylabel("mean reward per round vs the opponent")
    ax.set_title("Deterministic policies are exploited")
    fig.suptitle("Iterated rock-paper-scissors against a best-responding opponent")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
