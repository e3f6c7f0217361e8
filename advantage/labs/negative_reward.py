r"""Lab ``negative-reward``: with always-negative returns, REINFORCE without a baseline oscillates.

The *Actor Critic I* deck (CISC 7404, Steven Morad), slides "Advantage Actor Critic": when every
return is negative, :math:`\nabla J \approx G\,\nabla\log\pi(a_0|s_0)` with :math:`G = -|G|` pushes the
probability of **every** sampled action down, the good ones too; "policy keeps oscillating, can
destabilize learning", and taking 8 actions per update does not fix it. Subtracting the mean of the
return (a baseline), i.e. using the advantage :math:`A = Q - V`, does: "the policy will not oscillate,
policy only changes if it improves return".

Written directly in JAX (a two-parameter softmax and a one-parameter Gaussian with fixed
:math:`\sigma = 0.5`, the score function by hand) on the environments ``OneStateDiscrete-v0``
(rewards -1 for action 0, -2 for action 1) and ``OneStateContinuous-v0`` (reward :math:`-(a - 1)^2`,
:math:`a \in [-2, 2]`), each as registered and with every reward lowered by a constant (10 for the
discrete, 5 for the continuous one: the same problem, more negative returns). Each update samples
``K = 8`` one-step episodes and takes the plain gradient step

.. math::
    \theta \leftarrow \theta + \alpha \frac{1}{K}\sum_{i=1}^{K} (r_i - b)\,\nabla_\theta \log\pi_\theta(a_i),

with three choices of :math:`b`:

* ``none``: :math:`b = 0` (REINFORCE as is);
* ``mean``: :math:`b = \bar r`, the mean return of the batch (recentring the return);
* ``advantage``: :math:`b = V^\pi(s_0)`, the true value of the current policy (closed form:
  :math:`\sum_a \pi(a) r(a)`, or :math:`-((\mu - 1)^2 + \sigma^2)` minus the constant), so that
  :math:`r_i - b = Q(s_0, a_i) - V(s_0) = A(s_0, a_i)`, the slides' advantage.

Both baselines are invariant to the constant (same samples, same trajectory); no baseline is not.

Measured, per variant and seed: the fraction of updates that move the policy *away* from the best
action ("wrong-way" updates: the gradient estimate's sign disagrees with the true gradient's), the
standard deviation of the parameter updates, and the number of updates until :math:`\pi(a_0) \ge 0.95`
(discrete) or :math:`|\mu - 1| \le 0.1` (continuous) holds from then on.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

NAME = "negative-reward"
SLIDE = (
    "Actor Critic I (CISC 7404 Decision Making, Steven Morad), slides 'Advantage Actor Critic': 'Any "
    "scenarios where reward is always negative? Distance to goal' ... 'Policy keeps oscillating'"
)
CLAIM = (
    "When every return is negative, REINFORCE without a baseline pushes down every sampled action and "
    "the policy oscillates; recentring the return (mean baseline) or using the advantage makes it converge "
    "steadily."
)

VARIANTS = ("none", "mean", "advantage")
K = 8  # actions sampled per update
ALPHA_DISCRETE = 0.5
ALPHA_CONTINUOUS = 0.01
SIGMA = 0.5  # fixed std of the Gaussian policy
MU0 = -1.0  # initial mean of the Gaussian policy (goal: 1)
#: constant subtracted from every reward: 0 (the env's default) and a more negative version
SHIFTS_DISCRETE = (0.0, 10.0)
SHIFTS_CONTINUOUS = (0.0, 5.0)


def _baseline(variant: str, r, v_true):
    if variant == "none":
        return jnp.zeros(())
    if variant == "mean":
        return r.mean()
    return v_true


@partial(jax.jit, static_argnums=(0, 3))
def run_discrete(variant: str, key, shift, n_updates: int):
    """Softmax over two logits ``theta`` (start 0: pi(a0) = 1/2) on ``OneStateDiscrete-v0`` with rewards
    ``(-1 - shift, -2 - shift)``. Returns the logits after every update, ``[n_updates + 1, 2]``."""
    from advantage.envs.lectures.one_state import DiscreteParams, OneStateDiscrete

    env = OneStateDiscrete()
    params = DiscreteParams(rewards=(-1.0 - shift, -2.0 - shift))
    q = jnp.asarray(params.rewards)  # Q(s0, a) = r(a): one-step episodes

    def update(theta, k):
        ka, ke = jax.random.split(k)
        a = jax.random.categorical(ka, theta, shape=(K,))
        _, state = env.reset(ke, params)
        r = jax.vmap(lambda a: env.step(ke, state, a, params)[2])(a)
        pi = jax.nn.softmax(theta)
        score = jax.nn.one_hot(a, 2) - pi  # grad_theta log pi(a) = e_a - pi
        b = _baseline(variant, r, jnp.sum(pi * q))  # V(s0) = sum_a pi(a) Q(s0, a)
        theta = theta + ALPHA_DISCRETE * jnp.mean((r - b)[:, None] * score, axis=0)
        return theta, theta

    theta0 = jnp.zeros(2)
    _, thetas = jax.lax.scan(update, theta0, jax.random.split(key, n_updates))
    return jnp.concatenate([theta0[None], thetas])


@partial(jax.jit, static_argnums=(0, 3))
def run_continuous(variant: str, key, shift, n_updates: int):
    """Gaussian ``N(mu, SIGMA^2)`` (start ``mu = MU0``) on ``OneStateContinuous-v0`` with ``offset = shift``;
    returns ``mu`` after every update, ``[n_updates + 1]``."""
    from advantage.envs.lectures.one_state import ContinuousParams, OneStateContinuous

    env = OneStateContinuous()
    params = ContinuousParams(offset=shift)

    def update(mu, k):
        ka, ke = jax.random.split(k)
        a = mu + SIGMA * jax.random.normal(ka, (K,))
        _, state = env.reset(ke, params)
        r = jax.vmap(lambda a: env.step(ke, state, a[None], params)[2])(a)
        score = (a - mu) / SIGMA**2  # d/dmu log N(a; mu, sigma^2)
        v_true = -((mu - params.goal) ** 2 + SIGMA**2) - shift  # E[r] (ignoring the clip at +-2)
        b = _baseline(variant, r, v_true)
        mu = mu + ALPHA_CONTINUOUS * jnp.mean((r - b) * score)
        return mu, mu

    mu0 = jnp.asarray(MU0)
    _, mus = jax.lax.scan(update, mu0, jax.random.split(key, n_updates))
    return jnp.concatenate([mu0[None], mus])


def _settle_time(ok: np.ndarray) -> int | None:
    """First update from which ``ok`` holds to the end (None if it does not hold at the end)."""
    if not ok[-1]:
        return None
    bad = np.nonzero(~ok)[0]
    return int(bad[-1] + 1) if len(bad) else 0


def _stats(param: np.ndarray, good_direction: np.ndarray, ok: np.ndarray) -> dict:
    """``param [n+1]``: the tracked parameter; ``good_direction [n]``: sign of the true gradient before each update."""
    delta = np.diff(param)
    moved = np.abs(delta) > 1e-12
    wrong = moved & (np.sign(delta) != good_direction)
    flips = np.sum(np.sign(delta[1:]) * np.sign(delta[:-1]) < 0)
    return {
        "wrong_way_fraction": float(wrong.mean()),
        "update_std": float(delta.std()),
        "sign_flips": int(flips),
        "settle_update": _settle_time(ok),
    }


def run(out_dir: Path, seed: int = 0, quick: bool = False) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n_seeds, n_updates = (6, 300) if quick else (20, 400)
    key = jax.random.PRNGKey(seed)
    results: dict[str, Any] = {
        "claim": CLAIM,
        "slide": SLIDE,
        "seed": seed,
        "quick": quick,
        "actions_per_update": K,
        "n_seeds": n_seeds,
        "n_updates": n_updates,
        "alpha_discrete": ALPHA_DISCRETE,
        "alpha_continuous": ALPHA_CONTINUOUS,
        "sigma": SIGMA,
        "mu0": MU0,
        "discrete": {},
        "continuous": {},
    }
    curves = {}
    half = n_updates // 2
    for part, shifts in (("discrete", SHIFTS_DISCRETE), ("continuous", SHIFTS_CONTINUOUS)):
        for shift in shifts:
            label = f"shift {shift:g}"
            results[part][label] = {}
            for variant in VARIANTS:
                per_seed, cs = [], []
                for s in range(n_seeds):
                    k = jax.random.fold_in(key, s)  # the same sample stream for every variant and shift
                    if part == "discrete":
                        theta = np.asarray(run_discrete(variant, k, shift, n_updates))
                        z = theta[:, 0] - theta[:, 1]  # pi(a0) = sigmoid(z); the true gradient always raises z
                        c = 1 / (1 + np.exp(-z))
                        st = _stats(z, np.ones(n_updates), c >= 0.95)
                        st["mean_prob_best_second_half"] = float(c[half:].mean())
                        st["frac_second_half_below_half"] = float(np.mean(c[half:] < 0.5))
                    else:
                        c = np.asarray(run_continuous(variant, jax.random.fold_in(k, 1), shift, n_updates))
                        st = _stats(c, np.sign(1.0 - c[:-1]), np.abs(c - 1.0) <= 0.1)
                        st["mean_abs_error_second_half"] = float(np.abs(c[half:] - 1.0).mean())
                    per_seed.append(st)
                    cs.append(c)
                curves[(part, label, variant)] = np.array(cs)
                agg: dict[str, Any] = {
                    m: float(np.mean([d[m] for d in per_seed])) for m in per_seed[0] if m != "settle_update"
                }
                settle = [d["settle_update"] for d in per_seed]
                agg["settled_seeds"] = int(sum(x is not None for x in settle))
                agg["per_seed"] = per_seed
                results[part][label][variant] = agg

    d = results["discrete"][f"shift {SHIFTS_DISCRETE[1]:g}"]
    c = results["continuous"][f"shift {SHIFTS_CONTINUOUS[1]:g}"]
    base = ("mean", "advantage")
    invariant = all(
        np.allclose(curves[(part, f"shift {shifts[0]:g}", v)], curves[(part, f"shift {shifts[1]:g}", v)], atol=1e-3)
        for part, shifts in (("discrete", SHIFTS_DISCRETE), ("continuous", SHIFTS_CONTINUOUS))
        for v in base
    )
    holds = bool(
        d["none"]["wrong_way_fraction"] >= 0.3
        and all(d[v]["wrong_way_fraction"] <= 0.05 for v in base)
        and d["none"]["mean_prob_best_second_half"] <= 0.9
        and all(d[v]["mean_prob_best_second_half"] >= 0.98 for v in base)
        and all(d[v]["settled_seeds"] == n_seeds for v in base)
        and c["none"]["mean_abs_error_second_half"] >= 3 * max(c[v]["mean_abs_error_second_half"] for v in base)
        and c["none"]["update_std"] >= 2 * max(c[v]["update_std"] for v in base)
        and invariant
    )
    results["baselines_invariant_to_shift"] = bool(invariant)
    results["claim_holds"] = holds
    results["criteria"] = (
        "with the lowered rewards: discrete, >= 30% of no-baseline updates lower pi(best) (<= 5% with a baseline), "
        "no-baseline mean pi(best) over the second half <= 0.9 (>= 0.98 and every seed settled at >= 0.95 with a "
        "baseline); continuous, the no-baseline mean |mu - 1| over the second half >= 3x and the std of its updates "
        ">= 2x the baselines'; both baselines' trajectories unchanged by the shift"
    )
    results["summary"] = (
        f"discrete, rewards (-{1 + SHIFTS_DISCRETE[1]:g}, -{2 + SHIFTS_DISCRETE[1]:g}) (mean pi(best) over the "
        f"second half; wrong-way updates): "
        + "; ".join(
            f"{v}: {d[v]['mean_prob_best_second_half']:.2f}, {d[v]['wrong_way_fraction']:.0%}" for v in VARIANTS
        )
        + f". continuous, offset {SHIFTS_CONTINUOUS[1]:g} (mean |mu - 1| over the second half; std of mu updates): "
        + "; ".join(f"{v}: {c[v]['mean_abs_error_second_half']:.3f}, {c[v]['update_std']:.3f}" for v in VARIANTS)
        + f". Baselines invariant to the shift: {invariant}."
    )
    (out_dir / "results.json").write_text(json.dumps(results, indent=2))
    _figure(out_dir / "figure.png", curves)
    return results


def _figure(path, curves):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"none": "tab:red", "mean": "tab:blue", "advantage": "tab:green"}
    labels = {"none": "no baseline: G", "mean": "mean baseline: G - mean(G)", "advantage": "advantage: G - V"}
    fig, axes = plt.subplots(2, 2, figsize=(13, 8), sharex=True)
    panels = [(0, "discrete", s, f"OneStateDiscrete-v0, r = ({-1 - s:g}, {-2 - s:g})") for s in SHIFTS_DISCRETE]
    panels += [(1, "continuous", s, f"OneStateContinuous-v0, r = -(a - 1)² - {s:g}") for s in SHIFTS_CONTINUOUS]
    for j, (row, part, shift, title) in enumerate(panels):
        ax = axes[row, j % 2]
        for v in VARIANTS:
            c = curves[(part, f"shift {shift:g}", v)]
            for s in range(min(3, len(c))):
                ax.plot(c[s], color=colors[v], lw=0.9, alpha=0.85, label=labels[v] if s == 0 else None)
        ax.axhline(0.95 if part == "discrete" else 1.0, color="k", ls="--", lw=0.8)
        ax.set_title(title + " (3 seeds each)")
        ax.set_ylabel("π(a₀), the better action" if part == "discrete" else "μ of the Gaussian policy (goal 1)")
        if row == 1:
            ax.set_xlabel(f"update ({K} one-step episodes each)")
        ax.legend(loc="lower right", fontsize=8)
    fig.suptitle(
        "Always-negative rewards: without a baseline every sampled action is pushed down, and the more "
        "negative the returns, the more the policy oscillates"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
