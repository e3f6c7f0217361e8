r"""Lab ``gae-lambda``: GAE's lambda trades bias for variance.

The slides (*Actor Critic and PPO*, "Generalized Advantage Estimation (GAE)": "Smaller n results in
lower variance, but higher bias"; *Policy Search*, "Generalized Advantage Estimator (GAE)") say that
with an imperfect value function :math:`\hat V`, :math:`\lambda = 0` (the one-step TD error) has low
variance and high bias, and :math:`\lambda = 1` (the Monte-Carlo advantage :math:`G_t - \hat V(s_t)`)
is unbiased with high variance.

Part 1 measures both directly on CartPole-v1. A fixed policy (REINFORCE trained briefly by the
library's driver; untrained in quick mode) and a deliberately imperfect :math:`\hat V` (its critic
refitted on only a few episodes) are given. ``n_states`` states are drawn from the policy's own
episodes; from each state and each action the environment (a pure JAX pytree, so it can be copied)
is rolled out ``n_rollouts`` times to the episode's end, and ``core.returns.gae`` gives
:math:`\hat A_\lambda(s, a)` at the first step of every rollout for every lambda. An independent
set of rollouts gives the reference :math:`A_\text{ref}(s,a) = \hat{\mathbb E}[G_0 \mid s, a] -
\hat V(s)` — the true :math:`Q^\pi(s,a)` minus the same baseline every lambda subtracts (a baseline
does not bias the policy gradient, so this is the target whose error matters). Per lambda:
variance :math:`= \overline{\operatorname{Var}[\hat A_\lambda \mid s,a]}` and squared bias
:math:`= \overline{(\hat{\mathbb E}[\hat A_\lambda \mid s,a] - A_\text{ref}(s,a))^2}` (with the
sampling noise of both means subtracted), averaged over the (s, a) pairs.

Part 2 (full mode only) trains PPO with the library's driver at several lambdas, a few seeds each,
and plots the learning curves.
"""

from __future__ import annotations

import csv
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from advantage.core.returns import gae
from advantage.envs.registry import make
from advantage.labs import header, quiet_run_config, write_results
from advantage.labs.reinforce_variance import _quiet_console, collect_episodes, fit_value, trained_policy

NAME = "gae-lambda"
SLIDE = (
    "Actor Critic and PPO (shared/seeds/001), slide 'Generalized Advantage Estimation (GAE)' "
    "('Smaller n results in lower variance, but higher bias'); Policy Search (004), "
    "'Generalized Advantage Estimator (GAE)'"
)
CLAIM = (
    "With an imperfect value function, GAE(lambda=0) has low variance and high bias and GAE(lambda=1) "
    "is unbiased with high variance: variance grows and bias shrinks as lambda goes from 0 to 1."
)

ENV = "CartPole-v1"
GAMMA = 0.99
LAMBDAS = (0.0, 0.5, 0.9, 0.95, 1.0)
CURVE_LAMBDAS = (0.0, 0.5, 0.95, 1.0)


def sample_states(env, env_params, policy, pparams, key, n_episodes: int, n_states: int, max_steps: int):
    """``n_states`` env states (and observations) drawn uniformly from the steps of the policy's episodes."""

    def one_step(carry, k):
        state, obs, alive = carry
        k_a, k_s = jax.random.split(k)
        action = policy.apply(pparams, obs).sample(k_a)
        obs2, state2, _, term, trunc, _ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
            jax.random.split(k_s, n_episodes), state, action, env_params
        )
        out = (state, obs, alive)
        done = jnp.logical_or(term, trunc)
        state = jax.tree.map(lambda new, old: jnp.where(alive > 0, new, old), state2, state)
        obs = jnp.where(alive[:, None] > 0, obs2, obs)
        return (state, obs, alive * (1.0 - done)), out

    k_reset, k_steps, k_pick = jax.random.split(key, 3)
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k_reset, n_episodes), env_params)
    _, (states, observations, alive) = jax.lax.scan(
        one_step, (state, obs, jnp.ones(n_episodes)), jax.random.split(k_steps, max_steps)
    )
    flat_alive = np.asarray(alive).reshape(-1)
    idx = np.asarray(
        jax.random.choice(k_pick, flat_alive.size, (n_states,), replace=False, p=flat_alive / flat_alive.sum())
    )
    pick = lambda x: x.reshape((-1,) + x.shape[2:])[idx]  # noqa: E731
    return jax.tree.map(pick, states), pick(observations)


def rollouts_from(env, env_params, policy, pparams, critic, cparams, state, obs, first_action, key, max_steps: int):
    """Roll out from copies of ``state`` ``[B]``: ``first_action`` at step 0, then the policy, to the episode end.

    Returns ``[T, B]`` arrays ``reward, value, next_value, terminated, truncated`` (steps after the end are
    padding: reward 0, terminated). An episode still running after ``max_steps`` is cut there and
    bootstraps from ``V`` (``truncated``)."""
    n = first_action.shape[0]

    def one_step(carry, xs):
        state, obs, alive = carry
        t, k = xs
        k_a, k_s = jax.random.split(k)
        action = jnp.where(t == 0, first_action, policy.apply(pparams, obs).sample(k_a))
        obs2, state2, reward, term, trunc, _ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
            jax.random.split(k_s, n), state, action, env_params
        )
        trunc = jnp.logical_or(trunc, t == max_steps - 1)
        done = jnp.logical_or(term, trunc)
        out = dict(
            alive=alive,
            reward=reward * alive,
            value=critic.apply(cparams, obs),
            next_value=critic.apply(cparams, obs2),
            terminated=jnp.where(alive > 0, term, True),
            truncated=jnp.where(alive > 0, trunc, False),
        )
        state = jax.tree.map(lambda new, old: jnp.where(alive > 0, new, old), state2, state)
        obs = jnp.where(alive[:, None] > 0, obs2, obs)
        return (state, obs, alive * (1.0 - done)), out

    _, data = jax.lax.scan(
        one_step, (state, obs, jnp.ones(n)), (jnp.arange(max_steps), jax.random.split(key, max_steps))
    )
    return data


def advantages_at_start(data, lambdas):
    """``[L, B]``: GAE(lambda) at step 0 for every lambda, and the Monte-Carlo return ``G_0`` ``[B]``."""
    adv = jnp.stack(
        [
            gae(data["reward"], data["value"], data["next_value"], data["terminated"], data["truncated"], GAMMA, lam)[0]
            for lam in lambdas
        ]
    )
    g0 = (
        gae(data["reward"], data["value"], data["next_value"], data["terminated"], data["truncated"], GAMMA, 1.0)[0]
        + data["value"][0]
    )
    return adv, g0


def bias_variance(policy, pparams, critic, cparams, states, obs, key, n_rollouts: int, max_steps: int):
    """Per (state, action): the GAE estimates of ``n_rollouts`` rollouts and a reference from as many more."""
    env, env_params = make(ENV)
    n_states = obs.shape[0]
    rep = lambda x: jnp.repeat(x, 2 * 2 * n_rollouts, axis=0)  # noqa: E731  # state i, action a, (est | ref), m
    first_action = jnp.tile(jnp.repeat(jnp.arange(2, dtype=jnp.int32), 2 * n_rollouts), n_states)
    data = rollouts_from(
        env,
        env_params,
        policy,
        pparams,
        critic,
        cparams,
        jax.tree.map(rep, states),
        rep(obs),
        first_action,
        key,
        max_steps,
    )
    adv, g0 = advantages_at_start(data, LAMBDAS)
    v0 = data["value"][0]
    adv = np.asarray(adv, np.float64).reshape(len(LAMBDAS), n_states, 2, 2, n_rollouts)
    g0 = np.asarray(g0, np.float64).reshape(n_states, 2, 2, n_rollouts)
    v0 = np.asarray(v0, np.float64).reshape(n_states, 2, 2, n_rollouts)[..., 0, 0]  # [S, 2], equal columns
    est, ref_g = adv[:, :, :, 0], g0[:, :, 1]
    a_ref = ref_g.mean(-1) - v0  # [S, 2]: Q(s, a) - V_hat(s)
    var_ref = ref_g.var(-1, ddof=1) / n_rollouts
    var = est.var(-1, ddof=1)  # [L, S, 2]
    bias_sq_raw = (est.mean(-1) - a_ref) ** 2
    bias_sq = bias_sq_raw - var / n_rollouts - var_ref  # minus the sampling noise of the two means
    lengths = float(np.asarray(jnp.sum(data["alive"], axis=0)).mean())
    v_true = np.sum(ref_g.mean(-1) * _probs(policy, pparams, obs), axis=-1)  # V^pi(s) = sum_a pi Q
    return dict(
        variance=var.mean(axis=(1, 2)),
        bias_sq=bias_sq.mean(axis=(1, 2)),
        bias_sq_raw=bias_sq_raw.mean(axis=(1, 2)),
        mean_abs_bias=np.sqrt(bias_sq_raw).mean(axis=(1, 2)),
        mse=(var + bias_sq).mean(axis=(1, 2)),
        mean_rollout_length=lengths,
        value_error_rms=float(np.sqrt(np.mean((v0[:, 0] - v_true) ** 2))),
    )


def _probs(policy, pparams, obs):
    return np.asarray(jnp.exp(policy.apply(pparams, obs).log_probs), np.float64)


def learning_curves(seeds, total_steps: int, lambdas) -> dict:
    """PPO (CartPole preset) at each lambda through the library's driver:
    ``{lambda: (steps, [seed, step] returns)}``."""
    from advantage.algos import ppo
    from advantage.training.driver import train

    curves = {}
    with tempfile.TemporaryDirectory() as tmp:
        for lam in lambdas:
            cfg = ppo.Config(**dict(ppo.PRESETS[ENV], gae_lambda=lam))
            run_dir = Path(tmp) / f"lam{lam}"
            train(
                "ppo",
                cfg,
                quiet_run_config(
                    ENV, seeds, total_steps, run_dir, eval_episodes=0, n_chunks=4, log_every=total_steps // 40
                ),
                console=_quiet_console(),
            )
            curves[lam] = read_curve(run_dir / "metrics.csv", seeds)
    return curves


def read_curve(path: Path, seeds, key: str = "train/episode_return"):
    """``(steps [S], returns [n_seeds, S])`` from a run's metrics.csv."""
    rows = list(csv.DictReader(open(path)))
    steps = sorted({int(r["step"]) for r in rows})
    table = {(int(r["seed"]), int(r["step"])): float(r[key]) if r[key] not in ("", "nan") else np.nan for r in rows}
    return np.asarray(steps), np.asarray([[table.get((s, t), np.nan) for t in steps] for s in seeds])


def run(out_dir: Path, seed: int = 0, quick: bool = False) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    train_steps = 0 if quick else 10_000
    n_states, n_rollouts = (24, 48) if quick else (64, 100)
    max_steps = 200 if quick else 500
    value_episodes = 10

    _, policy, critic, agent = trained_policy(seed, train_steps)
    pparams, cparams = agent.params["policy"], agent.params["critic"]
    env, env_params = make(ENV)
    k_v, k_s, k_r = jax.random.split(jax.random.PRNGKey(seed + 2000), 3)
    # an imperfect V: the critic refitted on only a few episodes (few samples, few steps)
    vdata = collect_episodes(env, env_params, policy, pparams, k_v, value_episodes, max_steps)
    cparams, _, v_loss = fit_value(critic, cparams, vdata, steps=60)
    states, obs = sample_states(env, env_params, policy, pparams, k_s, 64, n_states, max_steps)
    bv = bias_variance(policy, pparams, critic, cparams, states, obs, k_r, n_rollouts, max_steps)

    var, bias = bv["variance"], np.maximum(bv["bias_sq"], 0.0)
    # the claim: endpoints far apart, and a monotone trend up to sampling noise (10% of the larger value)
    var_up = all(var[i + 1] >= 0.9 * var[i] for i in range(len(LAMBDAS) - 1))
    tol = 0.1 * bias[0]
    bias_down = all(bias[i + 1] <= bias[i] + tol for i in range(len(LAMBDAS) - 1))
    checks = {
        "variance(lambda=1) > 3 x variance(lambda=0)": bool(var[-1] > 3 * var[0]),
        "bias^2(lambda=0) > 10 x bias^2(lambda=1)": bool(bias[0] > 10 * bias[-1]),
        "variance non-decreasing in lambda (10% noise allowed)": bool(var_up),
        "bias^2 non-increasing in lambda (noise of 10% of bias^2(0) allowed)": bool(bias_down),
    }
    claim_holds = all(checks.values())

    curves = {} if quick else learning_curves((seed, seed + 1, seed + 2), 50_000, CURVE_LAMBDAS)

    ncols = 1 if quick else 2
    fig, axes = plt.subplots(1, ncols, figsize=(6 * ncols, 4.2), squeeze=False)
    ax = axes[0, 0]
    ax.plot(LAMBDAS, var, "o-", color="#b2182b", label="variance  Var[A_hat | s, a]")
    ax.plot(LAMBDAS, np.maximum(bv["bias_sq"], 0.0), "s-", color="#2166ac", label="bias^2  (E[A_hat|s,a] - A_ref)^2")
    ax.plot(LAMBDAS, bv["mse"], "^--", color="gray", label="MSE = bias^2 + variance")
    ax.set_yscale("symlog", linthresh=1e-2)  # variance(lambda=0) is exactly 0: the first transition is deterministic
    ax.set_xlabel("GAE lambda")
    ax.set_title(f"{n_states} states x 2 actions x {n_rollouts} rollouts (+{n_rollouts} for the reference)", fontsize=9)
    ax.legend(fontsize=8)
    if curves:
        ax2 = axes[0, 1]
        for lam, c in zip(CURVE_LAMBDAS, ["#b2182b", "#ef8a62", "#67a9cf", "#2166ac"]):
            steps, ret = curves[lam]
            m = np.nanmean(ret, axis=0)
            ax2.plot(steps, m, color=c, label=f"lambda={lam}")
            ax2.fill_between(steps, np.nanmin(ret, axis=0), np.nanmax(ret, axis=0), color=c, alpha=0.15)
        ax2.set_xlabel("env steps")
        ax2.set_ylabel("training episode return")
        ax2.set_title("PPO (CartPole preset, gamma=0.98) at each lambda: mean and range of 3 seeds", fontsize=9)
        ax2.legend(fontsize=8)
    fig.suptitle(
        f"GAE(lambda) on {ENV}: imperfect V fitted on {value_episodes} episodes "
        f"(RMS error {bv['value_error_rms']:.2g}), gamma={GAMMA}",
        fontsize=10,
    )
    fig.tight_layout()

    curve_summary = {}
    for lam, (steps, ret) in curves.items():
        last = ret[:, -max(1, len(steps) // 10) :]
        curve_summary[str(lam)] = {
            "steps": steps.tolist(),
            "mean_return": np.nanmean(ret, axis=0).tolist(),
            "final_return_mean": float(np.nanmean(last)),
            "auc_mean_return": float(np.nanmean(ret)),
        }
    results = {
        **header(sys.modules[__name__], seed, quick),
        "setup": {
            "env": ENV,
            "gamma": GAMMA,
            "policy_training_steps": train_steps,
            "n_states": n_states,
            "n_rollouts": n_rollouts,
            "max_steps": max_steps,
            "value_fit_episodes": value_episodes,
            "value_loss_after_fit": v_loss,
            "value_error_rms": bv["value_error_rms"],
            "reference": "A_ref(s,a) = mean MC return of independent rollouts from (s,a) - V_hat(s)",
        },
        "lambdas": list(LAMBDAS),
        "variance": var.tolist(),
        "bias_sq": bv["bias_sq"].tolist(),
        "bias_sq_raw": bv["bias_sq_raw"].tolist(),
        "mean_abs_bias": bv["mean_abs_bias"].tolist(),
        "mse": bv["mse"].tolist(),
        "learning_curves": curve_summary,
        "checks": checks,
        "claim_holds": bool(claim_holds),
        "summary": (
            f"variance {var[0]:.3g} (lambda=0) -> {var[-1]:.3g} (lambda=1); bias^2 {bias[0]:.3g} -> "
            f"{bias[-1]:.3g}. "
            + (
                "Trade-off as on the slides."
                if claim_holds
                else "NOT as on the slides: " + ", ".join(k for k, ok in checks.items() if not ok)
            )
            + (
                ""
                if not curve_summary
                else " PPO final return by lambda: "
                + ", ".join(f"{k}: {v['final_return_mean']:.0f}" for k, v in curve_summary.items())
            )
        ),
        "wall_time_s": time.perf_counter() - t0,
    }
    return write_results(out_dir, fig, results)
