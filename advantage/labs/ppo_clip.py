r"""Lab ``ppo-clip``: the clipped objective keeps the probability ratio near 1; without it the ratio wanders.

The slides (*Policy Gradient Methods*, "Proximal Policy Optimization": "Force the importance sampling
ratio to stay within :math:`[1-\varepsilon, 1+\varepsilon]`"; *Actor Critic and PPO*, "Proximal Policy
Iteration (PPO)": "Once :math:`\pi_\theta(a|s) > (1+\epsilon)\pi_{\theta_k}(a|s)` the min kicks in and limits
our policy update") say the clip bounds how far one update's epochs move the policy.

Part 1 takes one rollout of the initial policy on CartPole-v1 (collected by the driver's own rollout
code, ``training.jax_backend.JaxBackend.iteration``) and runs PPO's epochs of minibatch Adam steps on it
with ``algos.ppo.loss_fn`` three ways, on the same data from the same start: the clipped objective
(``objective="clip"``, :math:`\epsilon = 0.2`), the KL penalty (``objective="kl"``, :math:`\beta = 1`), and
no clipping — the plain importance-sampled surrogate :math:`\hat{\mathbb E}[r_t \hat A_t]`, which is
``loss_fn`` with ``clip_eps = 1e6`` (then :math:`\min(r\hat A, \operatorname{clip}(r)\hat A) = r\hat A`
exactly; ``ppo.py`` has no separate switch). After every epoch it records the ratio
:math:`r_t = \pi_\theta(a_t|s_t)/\pi_{\theta_\text{old}}(a_t|s_t)` of every sample.

The clip does not bound the ratio (the gradient of a clipped sample is zero, but the other samples'
steps still move it), so the figure reports the fraction of samples outside :math:`[1-\epsilon, 1+\epsilon]`
and :math:`\max|r - 1|`, not only the mean.

Part 2 (full mode only) trains PPO (CartPole preset: 20 epochs per rollout) with the three objectives
through the library's driver, a few seeds each, and plots the learning curves.
"""

from __future__ import annotations

import sys
import tempfile
import time
import types
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from advantage.algos import ppo
from advantage.core import optim
from advantage.core.returns import gae
from advantage.envs.registry import make
from advantage.labs import header, quiet_run_config, write_results
from advantage.labs.gae_lambda import read_curve
from advantage.labs.reinforce_variance import _quiet_console
from advantage.training.jax_backend import JaxBackend
from advantage.training.run_config import Schedule

NAME = "ppo-clip"
SLIDE = (
    "Policy Gradient Methods (shared/seeds/002), slide 'Proximal Policy Optimization' ('Force the importance "
    "sampling ratio to stay within [1-eps, 1+eps]'); Actor Critic and PPO (001), "
    "'Proximal Policy Iteration (PPO)'"
)
CLAIM = (
    "Over several epochs on the same data, the clipped objective keeps the probability ratio pi/pi_old close to "
    "[1-eps, 1+eps], while the unclipped surrogate lets it wander far from 1."
)

ENV = "CartPole-v1"
CLIP_EPS = 0.2
UNCLIPPED = 1e6
VARIANTS = {  # name -> Config overrides
    "clip": dict(objective="clip", clip_eps=CLIP_EPS),
    "KL penalty": dict(objective="kl", clip_eps=CLIP_EPS, kl_beta=1.0),
    "no clip": dict(objective="clip", clip_eps=UNCLIPPED),
}
CHECK_EPOCH = 10


def collect_rollout(config, seed: int):
    """``(agent, batch)``: the initial PPO agent and one rollout ``[n_steps, n_envs]`` of it (no update)."""
    env, env_params = make(ENV)
    algo = types.SimpleNamespace(
        act=ppo.act,
        init=ppo.init,
        policy_params=ppo.policy_params,
        update=lambda cfg, space, state, batch, key: (state, {}),
    )
    backend = JaxBackend(
        algo, config, env, env_params, Schedule(config.batch_size, config.n_envs, config.n_steps), chunk_iters=1
    )
    runner = backend.init_one(jnp.uint32(seed))
    runner, _, batch = jax.jit(lambda r: backend.iteration(r, config.n_steps, return_batch=True))(runner)
    return runner.agent, batch, backend.action_space


def epoch_ratios(config, action_space, agent, batch, key, n_epochs: int):
    """PPO's epochs on one rollout with ``ppo.loss_fn``; the ratio of every sample after each epoch ``[E, N]``."""
    net = ppo.network(config, action_space)
    params = agent.params
    next_values = net.apply(params, batch.next_obs, method=net.value)
    advantages = gae(
        batch.reward, batch.value, next_values, batch.terminated, batch.truncated, config.gamma, config.gae_lambda
    )
    n = batch.reward.size
    flat = lambda x: x.reshape((n,) + x.shape[2:])  # noqa: E731
    data = ppo.Minibatch(
        obs=flat(batch.obs),
        action=flat(batch.action),
        old_logp=flat(batch.log_prob),
        old_value=flat(batch.value),
        adv=flat(advantages),
        ret=flat(advantages + batch.value),
        old_dist=jax.tree.map(flat, net.apply(params, batch.obs)[0]),
    )
    opt = ppo.optimizer(config)
    grad_fn = jax.grad(ppo.loss_fn, has_aux=True)

    def step(carry, mb):
        p, o = carry
        g, _ = grad_fn(p, config, action_space, mb, config.clip_eps, jnp.float32(config.kl_beta))
        return optim.apply_gradients(opt, p, o, g, config.learning_rate), None

    def ratios_after(carry):
        logp = net.apply(carry[0], data.obs)[0].log_prob(data.action)
        return jnp.exp(logp - data.old_logp)

    _, (_, ratios) = optim.minibatch_epochs(
        step, (params, opt.init(params)), data, key, n_epochs, config.n_minibatches, after_epoch=ratios_after
    )
    return ratios


def learning_curves(seeds, total_steps: int) -> dict:
    from advantage.training.driver import train

    curves = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, over in VARIANTS.items():
            cfg = ppo.Config(**dict(ppo.PRESETS[ENV], **over))
            run_dir = Path(tmp) / name.replace(" ", "_")
            train(
                "ppo",
                cfg,
                quiet_run_config(
                    ENV, seeds, total_steps, run_dir, eval_episodes=0, n_chunks=4, log_every=total_steps // 40
                ),
                console=_quiet_console(),
            )
            curves[name] = read_curve(run_dir / "metrics.csv", seeds)
    return curves


def run(out_dir: Path, seed: int = 0, quick: bool = False) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    n_epochs = 20
    base = dict(ppo.PRESETS[ENV], n_envs=8, n_steps=128, n_minibatches=4, anneal_lr=False, anneal_clip=False)
    agent, batch, space = collect_rollout(ppo.Config(**base), seed)
    key = jax.random.PRNGKey(seed + 3000)
    ratios = {
        name: np.asarray(epoch_ratios(ppo.Config(**dict(base, **over)), space, agent, batch, key, n_epochs), np.float64)
        for name, over in VARIANTS.items()
    }
    stats = {}
    for name, r in ratios.items():
        dev = np.abs(r - 1.0)
        stats[name] = {
            "mean_abs_dev": dev.mean(axis=1).tolist(),
            "max_abs_dev": dev.max(axis=1).tolist(),
            "frac_outside": (dev > CLIP_EPS).mean(axis=1).tolist(),
            "max_abs_log_ratio": np.abs(np.log(r)).max(axis=1).tolist(),
            "min": r.min(axis=1).tolist(),
            "max": r.max(axis=1).tolist(),
            "q05": np.quantile(r, 0.05, axis=1).tolist(),
            "q95": np.quantile(r, 0.95, axis=1).tolist(),
            "median": np.median(r, axis=1).tolist(),
        }
    e = CHECK_EPOCH - 1
    c, u = stats["clip"], stats["no clip"]
    dev_ratio = u["mean_abs_dev"][e] / max(c["mean_abs_dev"][e], 1e-12)
    checks = {
        f"epoch {CHECK_EPOCH}: mean |r-1| unclipped >= 2 x clipped": dev_ratio >= 2.0,
        f"epoch {CHECK_EPOCH}: fraction outside [1-eps, 1+eps] clipped < unclipped": c["frac_outside"][e]
        < u["frac_outside"][e],
        f"epoch {CHECK_EPOCH}: max |r-1| clipped < unclipped": c["max_abs_dev"][e] < u["max_abs_dev"][e],
    }
    claim_holds = all(checks.values())

    curves = {} if quick else learning_curves((seed, seed + 1, seed + 2), 50_000)

    colors = {"clip": "#2166ac", "KL penalty": "#4dac26", "no clip": "#b2182b"}
    ncols = 2 if quick else 3
    fig, axes = plt.subplots(1, ncols, figsize=(5.5 * ncols, 4.2))
    ep = np.arange(1, n_epochs + 1)
    ax = axes[0]
    for name, s in stats.items():
        ax.plot(ep, s["median"], "-", color=colors[name], label=f"{name}: median, 5-95%")
        ax.fill_between(ep, s["q05"], s["q95"], color=colors[name], alpha=0.18)
        ax.plot(ep, s["min"], ":", color=colors[name], lw=0.9)
        ax.plot(ep, s["max"], ":", color=colors[name], lw=0.9)
    ax.axhspan(1 - CLIP_EPS, 1 + CLIP_EPS, color="gray", alpha=0.12, label=f"[1-eps, 1+eps], eps={CLIP_EPS}")
    ax.set_yscale("log")
    ax.set_xlabel("epoch over the same rollout")
    ax.set_ylabel("ratio pi / pi_old (dotted: min and max)")
    ax.set_title(f"one rollout of {batch.reward.size} samples, 4 minibatches/epoch", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[1]
    for name, s in stats.items():
        ax.plot(ep, s["frac_outside"], "o-", ms=3, color=colors[name], label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"fraction of samples with |r-1| > {CLIP_EPS}")
    ax.set_title("samples outside the clip range", fontsize=9)
    ax.legend(fontsize=8)
    if curves:
        ax = axes[2]
        for name, (steps, ret) in curves.items():
            ax.plot(steps, np.nanmean(ret, axis=0), color=colors[name], label=name)
            ax.fill_between(steps, np.nanmin(ret, axis=0), np.nanmax(ret, axis=0), color=colors[name], alpha=0.15)
        ax.set_xlabel("env steps")
        ax.set_ylabel("training episode return")
        ax.set_title("PPO CartPole preset (20 epochs/rollout): mean and range of 3 seeds", fontsize=9)
        ax.legend(fontsize=8)
    fig.suptitle(f"PPO's clipped objective and the probability ratio on {ENV}", fontsize=10)
    fig.tight_layout()

    curve_summary = {}
    for name, (steps, ret) in curves.items():
        last = ret[:, -max(1, len(steps) // 10) :]
        curve_summary[name] = {
            "steps": steps.tolist(),
            "mean_return": np.nanmean(ret, axis=0).tolist(),
            "final_return_mean": float(np.nanmean(last)),
            "final_return_per_seed": np.nanmean(last, axis=1).tolist(),
            "auc_mean_return": float(np.nanmean(ret)),
        }
    results = {
        **header(sys.modules[__name__], seed, quick),
        "setup": {
            "env": ENV,
            "clip_eps": CLIP_EPS,
            "n_epochs": n_epochs,
            "samples": int(batch.reward.size),
            "ppo_config": {k: v for k, v in base.items()},
            "variants": VARIANTS,
            "check_epoch": CHECK_EPOCH,
        },
        "ratio_stats_per_epoch": stats,
        "mean_abs_dev_ratio_unclipped_over_clipped_at_check_epoch": dev_ratio,
        "learning_curves": curve_summary,
        "checks": checks,
        "claim_holds": bool(claim_holds),
        "summary": (
            f"after {CHECK_EPOCH} epochs: mean |r-1| {c['mean_abs_dev'][e]:.3f} (clip) vs "
            f"{u['mean_abs_dev'][e]:.3f} (no clip), {stats['KL penalty']['mean_abs_dev'][e]:.3f} (KL); "
            f"outside [0.8, 1.2]: {c['frac_outside'][e]:.1%} vs {u['frac_outside'][e]:.1%}; max |r-1| "
            f"{c['max_abs_dev'][e]:.2f} vs {u['max_abs_dev'][e]:.2f}."
            + (
                ""
                if not curve_summary
                else " PPO final return: "
                + ", ".join(f"{k} {v['final_return_mean']:.0f}" for k, v in curve_summary.items())
            )
        ),
        "wall_time_s": time.perf_counter() - t0,
    }
    return write_results(out_dir, fig, results)
