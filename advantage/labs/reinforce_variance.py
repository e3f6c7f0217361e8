r"""Lab ``reinforce-variance``: the variance of the policy-gradient estimate for each choice of :math:`\Phi_t`.

The slides (*Actor Critic and PPO*, "Many forms of policy gradients" and "Baselines") list the weights
:math:`\Phi_t` of :math:`\nabla_\theta J \approx \hat{\mathbb E}[\sum_t \nabla_\theta\log\pi_\theta(a_t|s_t)\,\Phi_t]`
in order of decreasing variance: the whole return :math:`R(\tau)`, the reward-to-go :math:`G_t`, the
reward-to-go minus a baseline :math:`G_t - b(s_t)`, and the advantage :math:`A(s_t, a_t)`.

The experiment fixes one policy (REINFORCE trained briefly by the library's driver on CartPole-v1; in
quick mode the untrained network), draws ``n_batches`` independent batches of ``episodes_per_batch``
whole episodes, and computes every estimator's gradient on every batch with the library's own
pieces: ``core.returns.episode_returns`` / ``discounted_returns`` / ``gae`` for the weights and
``core.losses.policy_gradient_loss`` for the surrogate (the same function REINFORCE trains with). The
value baseline is ``reinforce``'s critic network fitted by ``core.losses.value_loss`` on a
separate set of episodes. It reports, per estimator, the total variance (trace of the covariance) of
the batch gradients, their mean squared distance to a reference gradient computed from many more
episodes, and their mean cosine to that reference.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from advantage.algos import reinforce
from advantage.core import losses
from advantage.core.returns import discounted_returns, episode_returns, gae
from advantage.envs.registry import make
from advantage.labs import header, quiet_run_config, write_results

NAME = "reinforce-variance"
SLIDE = (
    "Actor Critic and PPO (shared/seeds/001), slides 'Many forms of policy gradients' and 'Baselines'; "
    "Policy Gradient Methods (002), 'Baselines for controlling variance'"
)
CLAIM = (
    "At equal batch size the policy-gradient estimate's variance falls from Phi = R(tau) to the reward-to-go, "
    "to the reward-to-go minus a baseline, to the advantage."
)

ENV = "CartPole-v1"
GAMMA = 0.99
GAE_LAMBDA = 0.95
#: the estimators, in the slides' order
ESTIMATORS = ("R(tau)", "reward-to-go", "reward-to-go - mean", "reward-to-go - V(s)", "GAE advantage")


def trained_policy(seed: int, total_steps: int):
    """``(config, policy net, critic net, agent)`` of REINFORCE after ``total_steps`` on CartPole (0: untrained)."""
    from advantage.training.driver import load_agents, train

    cfg = reinforce.Config(**reinforce.PRESETS[ENV])
    env, params = make(ENV)
    space = env.action_space(params)
    if total_steps <= 0:
        agent = reinforce.init(
            jax.random.PRNGKey(seed), env.observation_space(params), space, cfg, cfg.n_envs * cfg.n_steps
        )
    else:
        with tempfile.TemporaryDirectory() as tmp:
            run = quiet_run_config(ENV, (seed,), total_steps, Path(tmp) / "run", eval_episodes=0, n_chunks=1)
            train("reinforce", cfg, run, console=_quiet_console())
            _, cfg, space, agents = load_agents(Path(tmp) / "run")
            agent = jax.tree.map(lambda x: x[0], agents)
    policy, critic = reinforce.networks(cfg, space, agent.fmap)
    return cfg, policy, critic, agent


def _quiet_console():
    import io

    from rich.console import Console

    return Console(file=io.StringIO())


def collect_episodes(env, env_params, policy, policy_params, key, n_episodes: int, max_steps: int = 500):
    """``n_episodes`` whole episodes of the fixed policy, padded to ``max_steps``: a dict of ``[T, N]`` arrays.

    ``alive[t]`` is 1 for the steps of the episode; after its end the env state is frozen and the
    (masked) padding steps carry reward 0 and ``done`` flags, so every library return function treats
    each padding step as a separate, empty episode.
    """

    def one_step(carry, k):
        state, obs, alive = carry
        k_a, k_s = jax.random.split(k)
        action = policy.apply(policy_params, obs).sample(k_a)
        obs2, state2, reward, term, trunc, _ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
            jax.random.split(k_s, n_episodes), state, action, env_params
        )
        done = jnp.logical_or(term, trunc)
        out = dict(
            obs=obs,
            next_obs=obs2,
            action=action,
            reward=reward * alive,
            alive=alive,
            terminated=jnp.where(alive > 0, term, True),
            truncated=jnp.where(alive > 0, trunc, False),
        )
        state = jax.tree.map(lambda new, old: jnp.where(alive > 0, new, old), state2, state)
        obs = jnp.where(alive[:, None] > 0, obs2, obs)
        alive = alive * (1.0 - done.astype(jnp.float32))
        return (state, obs, alive), out

    k_reset, k_steps = jax.random.split(key)
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k_reset, n_episodes), env_params)
    _, data = jax.lax.scan(one_step, (state, obs, jnp.ones(n_episodes)), jax.random.split(k_steps, max_steps))
    return data


def fit_value(critic, critic_params, data, steps: int, lr: float = 3e-3):
    """Fit ``V_w`` to the Monte-Carlo reward-to-go of ``data`` with ``core.losses.value_loss`` (Adam)."""
    rtg = discounted_returns(
        data["reward"], jnp.zeros_like(data["reward"]), data["terminated"], data["truncated"], GAMMA
    )
    opt = optax.adam(lr)
    loss = lambda p: losses.value_loss(critic.apply(p, data["obs"]), rtg, data["alive"])  # noqa: E731

    @jax.jit
    def fit(p):
        def step(carry, _):
            p, o = carry
            v, g = jax.value_and_grad(loss)(p)
            u, o = opt.update(g, o, p)
            return (optax.apply_updates(p, u), o), v

        (p, _), curve = jax.lax.scan(step, (p, opt.init(p)), None, length=steps)
        return p, curve

    params, curve = fit(critic_params)
    return params, float(curve[0]), float(curve[-1])


def estimator_weights(data, values, next_values):
    """The five weights ``Psi_t`` of the estimators (``[T, N]`` each), from the library's return functions."""
    r, term, trunc, mask = data["reward"], data["terminated"], data["truncated"], data["alive"]
    zeros = jnp.zeros_like(r)
    total = episode_returns(r, term, trunc, GAMMA)
    rtg = discounted_returns(r, zeros, term, trunc, GAMMA)
    return {
        "R(tau)": total,
        "reward-to-go": rtg,
        "reward-to-go - mean": rtg - losses.masked_mean(rtg, mask),  # the batch mean (reinforce baseline='mean')
        "reward-to-go - V(s)": rtg - values,
        "GAE advantage": gae(r, values, next_values, term, trunc, GAMMA, GAE_LAMBDA),
    }


def batch_gradients(policy, policy_params, critic, critic_params, data, n_batches: int):
    """``{estimator: [n_batches, P]}``: the gradient of ``-reinforce_loss`` on each batch of episodes.

    ``data`` holds ``n_batches * k`` episodes; batch ``i`` is episodes ``i*k .. i*k+k-1``.
    """
    theta, unravel = ravel_pytree(policy_params)

    def split(x):  # [T, n_batches * k] -> [n_batches, T, k]
        t, n = x.shape[:2]
        return jnp.moveaxis(x.reshape((t, n_batches, n // n_batches) + x.shape[2:]), 1, 0)

    batches = jax.tree.map(split, data)

    def one_batch(b):
        values = critic.apply(critic_params, b["obs"])
        next_values = critic.apply(critic_params, b["next_obs"])
        weights = estimator_weights(b, values, next_values)

        def grad_for(w):
            loss = lambda th: losses.policy_gradient_loss(  # noqa: E731
                policy.apply(unravel(th), b["obs"]).log_prob(b["action"]), w, b["alive"]
            )
            return -jax.grad(loss)(theta)

        return {name: grad_for(w) for name, w in weights.items()}

    return jax.lax.map(one_batch, batches)


def run(out_dir: Path, seed: int = 0, quick: bool = False) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    train_steps = 0 if quick else 10_000
    n_batches = 100 if quick else 300
    per_batch = 8
    n_value, n_ref = (200, 800) if quick else (400, 4000)

    cfg, policy, critic, agent = trained_policy(seed, train_steps)
    pparams, cparams = agent.params["policy"], agent.params["critic"]
    env, env_params = make(ENV)
    collect = jax.jit(lambda k, n: collect_episodes(env, env_params, policy, pparams, k, n), static_argnums=1)
    k_val, k_ref, k_est = jax.random.split(jax.random.PRNGKey(seed + 1000), 3)

    def trimmed(data):  # drop the padding past the longest episode (saves compute, changes nothing)
        t_max = int(np.max(np.sum(np.asarray(data["alive"]), axis=0)))
        return jax.tree.map(lambda x: x[:t_max], data)

    # the value baseline: the critic refitted on its own episodes of this policy
    val_data = trimmed(collect(k_val, n_value))
    cparams, v_loss_before, v_loss_after = fit_value(critic, cparams, val_data, steps=400)
    ep_len = float(np.mean(np.sum(np.asarray(val_data["alive"]), axis=0)))

    # the reference gradient: reward-to-go - V(s) on many episodes
    ref_data = trimmed(collect(k_ref, n_ref))
    g_ref = batch_gradients(policy, pparams, critic, cparams, ref_data, 1)["reward-to-go - V(s)"][0]

    # n_batches independent batches, every estimator on each
    est_data = trimmed(collect(k_est, n_batches * per_batch))
    grads = batch_gradients(policy, pparams, critic, cparams, est_data, n_batches)

    g_ref = np.asarray(g_ref, np.float64)
    stats = {}
    for name in ESTIMATORS:
        g = np.asarray(grads[name], np.float64)
        mean = g.mean(axis=0)
        total_var = float(np.sum(np.var(g, axis=0, ddof=1)))
        mse = float(np.mean(np.sum((g - g_ref) ** 2, axis=1)))
        cos = np.sum(g * g_ref, axis=1) / (np.linalg.norm(g, axis=1) * np.linalg.norm(g_ref) + 1e-30)
        stats[name] = {
            "total_variance": total_var,
            "mse_to_reference": mse,
            "cosine_to_reference": float(cos.mean()),
            "cosine_std": float(cos.std()),
            "bias_sq": float(np.sum((mean - g_ref) ** 2)),
            "mean_grad_norm": float(np.linalg.norm(g, axis=1).mean()),
        }
    v = [stats[n]["total_variance"] for n in ESTIMATORS]
    checks = {
        "R(tau) > reward-to-go": v[0] > v[1],
        "reward-to-go > reward-to-go - V(s)": v[1] > v[3],
        "reward-to-go > reward-to-go - mean": v[1] > v[2],
        "GAE advantage <= 1.1 x (reward-to-go - V(s))": v[4] <= 1.1 * v[3],
    }
    claim_holds = all(checks.values())
    ratio = v[0] / v[4]

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    labels = [n.replace(" - ", "\n- ") for n in ESTIMATORS]
    colors = ["#b2182b", "#ef8a62", "#fddbc7", "#67a9cf", "#2166ac"]
    axes[0].bar(labels, v, color=colors)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("total variance of the batch gradient (trace of cov.)")
    axes[0].set_title(f"{n_batches} batches x {per_batch} episodes, same policy")
    for i, x in enumerate(v):
        axes[0].text(i, x, f"{x:.3g}", ha="center", va="bottom", fontsize=8)
    cs = [stats[n]["cosine_to_reference"] for n in ESTIMATORS]
    axes[1].bar(labels, cs, yerr=[stats[n]["cosine_std"] for n in ESTIMATORS], color=colors, capsize=3)
    axes[1].set_ylabel("cosine to the reference gradient")
    axes[1].set_title(f"reference: {n_ref} episodes, reward-to-go - V(s)")
    axes[1].axhline(0, color="k", lw=0.5)
    for ax in axes:
        ax.tick_params(axis="x", labelsize=8)
    fig.suptitle(
        f"REINFORCE gradient variance on {ENV} (policy after {train_steps} steps of REINFORCE, "
        f"mean episode length {ep_len:.0f}, gamma={GAMMA})",
        fontsize=10,
    )
    fig.tight_layout()

    results = {
        **header(sys.modules[__name__], seed, quick),
        "setup": {
            "env": ENV,
            "gamma": GAMMA,
            "gae_lambda": GAE_LAMBDA,
            "policy_training_steps": train_steps,
            "n_batches": n_batches,
            "episodes_per_batch": per_batch,
            "value_fit_episodes": n_value,
            "reference_episodes": n_ref,
            "mean_episode_length": ep_len,
            "value_loss_before_fit": v_loss_before,
            "value_loss_after_fit": v_loss_after,
            "n_policy_params": int(g_ref.size),
            "reference_grad_norm": float(np.linalg.norm(g_ref)),
        },
        "estimators": stats,
        "variance_ratio_total_over_advantage": ratio,
        "checks": checks,
        "claim_holds": bool(claim_holds),
        "summary": (
            f"total gradient variance {' > '.join(f'{n} {x:.3g}' for n, x in zip(ESTIMATORS, v))}; "
            f"R(tau) is {ratio:.1f}x the GAE advantage's. "
            + (
                "Ordering as on the slides."
                if claim_holds
                else "Ordering NOT as on the slides: " + ", ".join(k for k, ok in checks.items() if not ok)
            )
        ),
        "wall_time_s": time.perf_counter() - t0,
    }
    return write_results(out_dir, fig, results)
