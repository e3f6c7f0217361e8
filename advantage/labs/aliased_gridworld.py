r"""Lab ``aliased-gridworld``: under state aliasing the best policy is stochastic.

Environment: ``AliasedGridworld-v0`` (``advantage/envs/lectures/aliased_gridworld.py``): five corridor
cells, skulls below the corners, money below the middle; the agent sees only the four wall features
:math:`\phi_d(s) = 1(\text{wall to } d)`, so the two grey cells (walls N and S) look the same.

Every policy on the features is a table ``[4 observation classes, 4 actions]`` of probabilities
(the classes: the left corner, the grey cells, the middle cell, the right corner), evaluated by the
same Monte-Carlo routine with the 100-step time limit:

1. **Policy gradient**: the library's REINFORCE (``advantage.algos.reinforce``, reward-to-go with a
   learned value baseline, a *linear* softmax policy on ``[phi(s), 1]``), trained through the
   JAX-native back end on several seeds; its table is the softmax at the four feature vectors.
2. **Best deterministic policy**: all :math:`4^4 = 256` deterministic maps class -> action are
   enumerated and evaluated exactly (the env is deterministic given the start); the best one
   (highest success rate, then fewest steps) is reported.
3. **Value-based**: linear Q-learning :math:`Q_w(s, a) = w_a^\top [\phi(s), 1]` with
   :math:`\epsilon`-greedy exploration, then its greedy policy (and, as the slides say "or near
   deterministic when it explores", its :math:`\epsilon`-greedy policy).

Measured: success rate (money reached within 100 steps) and mean steps to goal, a failed episode
counted at the 100-step limit.
"""

from __future__ import annotations

import itertools
import json
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

NAME = "aliased-gridworld"
SLIDE = (
    "Policy Search: Actor-Critic and Gradient Policy search (UPC, Mario Martin), slides 'Stochastic "
    "Policies when aliased states (POMDPs)'; after David Silver's lecture 7, 'Example: Aliased Gridworld'"
)
CLAIM = (
    "Under aliasing a stochastic policy learned by policy gradient reaches the money in a few steps from "
    "every start, while the best deterministic policy and a greedy value-based policy get stuck in the corridor."
)

ENV_ID = "AliasedGridworld-v0"
LIMIT = 100
CLASS_NAMES = ("left corner", "grey", "middle", "right corner")
ACTIONS = ("N", "E", "S", "W")


def obs_class(obs):
    """Observation class of a feature vector ``[N, E, S, W]``: 0 left corner, 1 grey, 2 middle, 3 right corner."""
    return jnp.where(obs[..., 2] > 0.5, 1, jnp.where(obs[..., 3] > 0.5, 0, jnp.where(obs[..., 1] > 0.5, 3, 2)))


def class_features():
    """The feature vector of each observation class, ``[4, 4]``."""
    from advantage.envs.lectures.aliased_gridworld import FEATURES

    return jnp.asarray([FEATURES[0], FEATURES[1], FEATURES[2], FEATURES[4]], jnp.float32)


def evaluate(table, key, n_episodes: int):
    """Run ``n_episodes`` of the raw env under the policy ``table [4, 4]`` for at most ``LIMIT`` steps.

    Episode ``i`` starts in corridor cell ``i % 5`` (the env's uniform start, stratified: a deterministic
    policy is then evaluated exactly by 5 episodes). Returns ``(success [n], steps [n])``: money reached,
    and the step at which it was (``LIMIT`` if not)."""
    from advantage.envs.lectures.aliased_gridworld import AliasedGridworld, AliasedState, features

    env = AliasedGridworld()
    params = env.default_params()
    logits = jnp.log(jnp.clip(table, 1e-12, 1.0))

    def episode(k, start):
        k1 = k
        obs, state = features(start), AliasedState(start, jnp.asarray(False))

        def step(carry, kt):
            obs, state, done, success, steps, t = carry
            ka, ke = jax.random.split(kt)
            a = jax.random.categorical(ka, logits[obs_class(obs)])
            obs2, state2, r, term, _, info = env.step(ke, state, a, params)
            live = ~done
            success = success | (live & info["reached_goal"])
            steps = jnp.where(live & info["reached_goal"], t + 1, steps)
            return (obs2, state2, done | term, success, steps, t + 1), None

        init = (obs, state, jnp.asarray(False), jnp.asarray(False), jnp.asarray(LIMIT, jnp.int32), jnp.asarray(0))
        (_, _, _, success, steps, _), _ = jax.lax.scan(step, init, jax.random.split(k1, LIMIT))
        return success, steps

    starts = jnp.arange(n_episodes, dtype=jnp.int32) % 5
    return jax.vmap(episode)(jax.random.split(key, n_episodes), starts)


_evaluate = jax.jit(evaluate, static_argnums=2)


def train_policy_gradient(seeds, iters: int):
    """REINFORCE (linear softmax on the features) on ``seeds``; returns tables ``[n_seeds, 4, 4]`` and the
    training curve (mean episode length per update, ``[n_seeds, iters]``)."""
    from advantage.algos import reinforce
    from advantage.envs import make
    from advantage.training.jax_backend import JaxBackend
    from advantage.training.run_config import Schedule

    env, params = make(ENV_ID)
    cfg = reinforce.Config(
        n_envs=8,
        n_steps=LIMIT,
        phi="reward-to-go",
        baseline="value",
        features="linear-raw",
        learning_rate=0.05,
        value_learning_rate=0.05,
        gamma=0.95,
        optimizer="adam",
        max_grad_norm=10.0,
    )
    sch = Schedule(cfg.n_envs * cfg.n_steps * iters, cfg.n_envs, cfg.n_steps)
    backend = JaxBackend(reinforce, cfg, env, params, sch, chunk_iters=sch.full_iters)
    runners = backend.init(list(seeds))
    runners, metrics = backend.run_chunk(runners, sch.full_iters)
    feats = class_features()

    def table(agent):
        policy, _ = reinforce.networks(cfg, env.action_space(params), agent.fmap)
        return jax.nn.softmax(policy.apply(agent.params["policy"], feats).logits, axis=-1)

    tables = np.stack([np.asarray(table(jax.tree.map(lambda x: x[i], runners.agent))) for i in range(len(seeds))])
    return tables, np.asarray(metrics["train/episode_length"]), cfg


@partial(jax.jit, static_argnums=1)
def q_learning(key, n_steps: int, epsilon=0.1, lr=0.05, gamma=0.95):
    r"""Linear Q-learning on ``x = [phi(s), 1]``: :math:`w_a \leftarrow w_a + \alpha (r + \gamma (1-d)
    \max_b w_b^\top x' - w_a^\top x) x` with :math:`\epsilon`-greedy behaviour; returns ``Q [4 classes, 4]``."""
    from advantage.envs import make
    from advantage.envs.wrappers import AutoReset

    env, params = make(ENV_ID)
    env = AutoReset(env)

    def x(obs):
        return jnp.concatenate([obs, jnp.ones((1,))])

    def step(carry, k):
        w, obs, state = carry
        ke, kr, ka = jax.random.split(k, 3)
        q = w @ x(obs)
        a = jnp.where(jax.random.uniform(kr) < epsilon, jax.random.randint(ka, (), 0, 4), jnp.argmax(q))
        obs2, state2, r, term, trunc, info = env.step(ke, state, a, params)
        target = r + gamma * (1.0 - term) * jnp.max(w @ x(info["final_obs"]))
        w = w.at[a].add(lr * (target - q[a]) * x(obs))
        return (w, obs2, state2), None

    k0, k1 = jax.random.split(key)
    obs, state = env.reset(k0, params)
    (w, _, _), _ = jax.lax.scan(step, (jnp.zeros((4, 5)), obs, state), jax.random.split(k1, n_steps))
    feats = class_features()
    return jnp.concatenate([feats, jnp.ones((4, 1))], axis=1) @ w.T


def best_deterministic(key):
    """All 256 deterministic class -> action maps, evaluated exactly; returns (best map, its success, its steps)."""
    maps = np.asarray(list(itertools.product(range(4), repeat=4)))
    tables = jax.nn.one_hot(maps, 4)
    # the env is deterministic given the start and so is the policy: one episode from each of the 5 starts
    success, steps = jax.jit(jax.vmap(lambda t: evaluate(t, key, 5)))(tables)
    success, steps = np.asarray(success).mean(1), np.asarray(steps).mean(1)
    order = np.lexsort((steps, -success))
    return maps[order[0]], float(success[order[0]]), float(steps[order[0]]), maps, success, steps


def _summary(name, success, steps):
    return {
        "policy": name,
        "success_rate": float(np.mean(success)),
        "mean_steps_to_goal": float(np.mean(steps)),
        "mean_steps_when_successful": float(np.mean(steps[success])) if np.any(success) else None,
    }


def run(out_dir: Path, seed: int = 0, quick: bool = False) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n_seeds, iters, n_eval, q_steps = (2, 120, 1000, 20_000) if quick else (5, 200, 4000, 50_000)
    key = jax.random.PRNGKey(seed)
    k_det, k_q, k_eval = jax.random.split(key, 3)
    seeds = [seed * 1000 + i for i in range(n_seeds)]

    tables, curves, cfg = train_policy_gradient(seeds, iters)
    pg_success, pg_steps = [], []
    for i, t in enumerate(tables):
        s, n = _evaluate(jnp.asarray(t), jax.random.fold_in(k_eval, i), n_eval)
        pg_success.append(np.asarray(s))
        pg_steps.append(np.asarray(n))
    pg = _summary("policy gradient (stochastic)", np.concatenate(pg_success), np.concatenate(pg_steps))
    pg["per_seed_success_rate"] = [float(s.mean()) for s in pg_success]
    pg["per_seed_mean_steps"] = [float(n.mean()) for n in pg_steps]
    pg["grey_cell_probabilities"] = {a: [float(t[1, j]) for t in tables] for j, a in enumerate(ACTIONS)}

    best_map, _, _, maps, det_success, det_steps = best_deterministic(k_det)
    det_table = jax.nn.one_hot(jnp.asarray(best_map), 4)
    s, n = _evaluate(det_table, k_eval, n_eval)
    det = _summary("best deterministic", np.asarray(s), np.asarray(n))
    det["map"] = {c: ACTIONS[a] for c, a in zip(CLASS_NAMES, best_map)}
    det["n_maps_enumerated"] = len(maps)
    det["max_success_rate_over_all_maps"] = float(det_success.max())

    q_greedy_s, q_greedy_n, q_eps_s, q_eps_n, q_maps = [], [], [], [], []
    for i in range(n_seeds):
        q = q_learning(jax.random.fold_in(k_q, i), q_steps)
        greedy = jax.nn.one_hot(jnp.argmax(q, axis=1), 4)
        eps = 0.9 * greedy + 0.1 / 4
        s, n = _evaluate(greedy, jax.random.fold_in(k_eval, 100 + i), n_eval)
        q_greedy_s.append(np.asarray(s))
        q_greedy_n.append(np.asarray(n))
        s, n = _evaluate(eps, jax.random.fold_in(k_eval, 200 + i), n_eval)
        q_eps_s.append(np.asarray(s))
        q_eps_n.append(np.asarray(n))
        q_maps.append({c: ACTIONS[int(a)] for c, a in zip(CLASS_NAMES, np.argmax(np.asarray(q), axis=1))})
    greedy = _summary("Q-learning, greedy", np.concatenate(q_greedy_s), np.concatenate(q_greedy_n))
    greedy["greedy_maps"] = q_maps
    eps = _summary("Q-learning, epsilon-greedy (0.1)", np.concatenate(q_eps_s), np.concatenate(q_eps_n))

    rows = [pg, det, greedy, eps]
    holds = bool(
        pg["success_rate"] >= 0.95
        and pg["mean_steps_to_goal"] <= 10.0
        and det["max_success_rate_over_all_maps"] <= 0.6 + 1e-6
        and greedy["success_rate"] <= 0.6 + 1e-6
        and pg["mean_steps_to_goal"] < 0.5 * min(det["mean_steps_to_goal"], greedy["mean_steps_to_goal"])
    )
    summary = "; ".join(
        f"{r['policy']}: success {r['success_rate']:.0%}, {r['mean_steps_to_goal']:.1f} steps to goal" for r in rows
    )
    results = {
        "claim": CLAIM,
        "slide": SLIDE,
        "claim_holds": holds,
        "summary": summary,
        "seed": seed,
        "quick": quick,
        "time_limit": LIMIT,
        "n_training_seeds": n_seeds,
        "updates_per_seed": iters,
        "eval_episodes_per_policy": n_eval,
        "q_learning_steps": q_steps,
        "reinforce_config": {
            k: getattr(cfg, k)
            for k in ("n_envs", "n_steps", "phi", "baseline", "features", "learning_rate", "gamma", "optimizer")
        },
        "policies": rows,
        "training_curve_mean_episode_length": np.nanmean(curves, axis=0).tolist(),
        "criteria": "PG success >= 95% and <= 10 steps; no deterministic map and the greedy Q policy succeed "
        "more than 3/5 of starts; PG needs < half the steps of either",
    }
    (out_dir / "results.json").write_text(json.dumps(results, indent=2))
    _figure(out_dir / "figure.png", rows, curves, tables)
    return results


def _figure(path, rows, curves, tables):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    labels = ["PG\n(stochastic)", "best\ndeterministic", "Q-learning\ngreedy", "Q-learning\nε-greedy"]
    colors = ["tab:green", "tab:red", "tab:orange", "tab:purple"]
    ax = axes[0]
    ax.bar(labels, [r["mean_steps_to_goal"] for r in rows], color=colors)
    ax.set_ylabel(f"mean steps to goal (failure = {LIMIT})")
    ax.set_title("Steps to the money")
    ax = axes[1]
    ax.bar(labels, [100 * r["success_rate"] for r in rows], color=colors)
    ax.set_ylabel(f"% episodes reaching the money in {LIMIT} steps")
    ax.set_ylim(0, 105)
    ax.set_title("Success rate")
    ax = axes[2]
    x = np.arange(4)
    mean = tables[:, 1].mean(0)
    ax.bar(x, mean, color="grey")
    ax.scatter(np.repeat(x, len(tables)), tables[:, 1].T.reshape(-1), color="k", s=10, zorder=3)
    ax.set_xticks(x, [f"move {a}" for a in ACTIONS])
    ax.set_ylim(0, 1)
    ax.set_ylabel("π(a | wall N and S)")
    ax.set_title("Learned policy in the grey (aliased) cells")
    fig.suptitle("Aliased grid world: a stochastic policy beats every deterministic one")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
