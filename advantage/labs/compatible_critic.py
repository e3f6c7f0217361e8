r"""Lab ``compatible-critic``: a compatible critic gives the true policy gradient, and its weights are the
natural gradient; an arbitrary fitted critic gives a biased gradient.

The slides (*Policy Search: Actor-Critic and Gradient Policy search*, deck 004, "Compatible Function
Approximation: Bias in AC" and "Natural Actor Critic"): if (1) :math:`\nabla_w Q_w(s,a) =
\nabla_\theta\log\pi_\theta(a|s)` and (2) ``w`` minimises the mean squared error to :math:`Q^\pi`, "the policy
gradient is without bias"; and then :math:`\nabla_\theta J = F_\theta w`, so the natural gradient
:math:`F_\theta^{-1}\nabla_\theta J` is ``w`` itself.

**The MDP**: the lecture grid world ``Gridworld-v0`` (``advantage/envs/lectures/gridworld.py``), 3x3 with a pit in
the centre and slip 0.2 (7 states where the agent acts, 4 actions); its transition and reward tables are read
from the env's own ``step``. Discount
:math:`\gamma = 0.9`, start in the top-left cell. The policy is a tabular softmax :math:`\pi(a|s) \propto
\exp\theta_{s,a}` at a random :math:`\theta \sim \mathcal N(0, 1)`. In closed form (float64):
:math:`V^\pi = (I - \gamma P_\pi)^{-1} r_\pi`, :math:`Q^\pi`, the discounted visitation
:math:`d(s) = \mu^\top(I - \gamma P_\pi)^{-1}`, :math:`\nabla J` (``jax.grad`` of :math:`J = \mu^\top V^\pi`), and the
Fisher matrix :math:`F = \sum_s d(s)\sum_a \pi(a|s)\,\psi\psi^\top`; the natural gradient is
:math:`F^{+}\nabla J` (pseudo-inverse: a softmax is unchanged by adding a constant to a state's logits).

**Samples**: ``N`` pairs :math:`(s_i, a_i) \sim d\,\pi` with their Monte-Carlo discounted return :math:`y_i` (an
unbiased sample of :math:`Q^\pi(s_i, a_i)`, cut at 100 steps, :math:`\gamma^{100} < 3\cdot10^{-5}`), repeated
``M`` times for each ``N`` (each ``N`` uses the first ``N`` of the same draws). On each sample three critics are
fitted by the same least squares (``core.natural_gradient.fit_compatible_critic``) to :math:`y` (the features
depend on the pair only, so the fit is computed from each pair's sample count and mean return):

* **compatible + baseline**: :math:`\psi^\top w + v_s` (one-hot state baseline);
* **compatible alone**: :math:`\psi^\top w` (it cannot fit the state values, so its fit is poor);
* **arbitrary**: :math:`\phi(s,a)^\top u` with random Gaussian features, as many as the compatible critic's
  effective dimension :math:`|S|(|A|-1)`.

(a) Each critic's actor-critic gradient, in its all-actions form
:math:`\hat g = Z\,\frac1N\sum_i \sum_a \pi(a|s_i)\,\psi(s_i,a)\,\hat Q(s_i, a)` (:math:`Z = \sum_s d(s)`; a
state baseline cancels in it), is compared with :math:`\nabla J`: the angle and the norm ratio of every
repetition (mean and a 95% bootstrap CI over the ``M``), the angle of their mean (the bias), and the
exact-expectation angle (the critic fitted with weights :math:`d\pi` to :math:`Q^\pi` on every pair). The
REINFORCE estimate :math:`Z\frac1N\sum_i\psi_i y_i` is reported beside them. (b) NAC's :math:`\hat w`
(compatible + baseline) is compared with :math:`F^{+}\nabla J` in the same way, in the Euclidean metric and in
the Fisher metric :math:`\cos = u^\top F v / (\|u\|_F\|v\|_F)` (the angle between the policy changes the two
directions make: rarely visited states, where few samples land, count by how often they are visited), next to
the angle between the vanilla and the natural gradient, which shows the agreement is not a coincidence of
directions.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from advantage.core.natural_gradient import compatible_features, fit_compatible_critic
from advantage.envs.lectures.gridworld import GridState, Gridworld
from advantage.labs import header, write_results

NAME = "compatible-critic"
SLIDE = (
    "Policy Search: Actor-Critic and Gradient Policy search (shared/seeds/004), slides 'Compatible Function "
    "Approximation: Bias in AC' (grad_w Q_w = grad_theta log pi, w minimises the MSE -> no bias) and "
    "'Natural Actor Critic' (grad J = G_theta w, natural gradient = w)"
)
CLAIM = (
    "An actor-critic gradient through an arbitrary least-squares critic is biased, through the compatible critic "
    "Q_w = psi^T w it is not (its error vanishes as samples grow, the arbitrary critic's does not), and the "
    "compatible critic's weights w are the natural gradient F^-1 grad J."
)

SIZE, PITS, SLIP, GAMMA = 3, ((1, 1),), 0.2, 0.9
HORIZON = 100  # Monte-Carlo returns are cut here: gamma^100 < 3e-5
RIDGE = 1e-9  # the compatible Gram matrix is singular (a softmax ignores a constant per state): a tiny ridge
EXACT_RIDGE = 1e-12  # the same for the exact-expectation fit (float64; its bias is below 1e-5 degrees)
CRITICS = ("compatible + baseline", "compatible alone", "arbitrary")


# ----------------------------------------------------------------------------- the MDP in closed form
def gridworld_tables(env: Gridworld):
    """The grid world's slip-free moves ``next0 [S, A]`` and rewards ``r0 [S, A]``, and ``terminal [S]``, from its
    own ``step`` (a slip replaces the action by a uniform one, so these tables give the whole model)."""
    params = dataclasses.replace(env.default_params(), slip=0.0)
    n_s, n_a = env.size * env.size, 4
    s, a = jnp.repeat(jnp.arange(n_s), n_a), jnp.tile(jnp.arange(n_a), n_s)
    step = jax.jit(jax.vmap(lambda s, a: env.step(jax.random.PRNGKey(0), GridState(s, jnp.int32(0)), a, params)[:4]))
    nxt, _, r, _ = step(s.astype(jnp.int32), a.astype(jnp.int32))
    terminal = np.zeros(n_s, bool)
    terminal[env.goal] = True
    for row, col in env.pits:
        terminal[row * env.size + col] = True
    return np.asarray(nxt).reshape(n_s, n_a), np.asarray(r, np.float64).reshape(n_s, n_a), terminal


def model(next0, r0, terminal, slip):
    """``P [S, A, S]`` (transitions into terminal cells dropped: their value is 0) and ``R [S, A]``."""
    n_s, n_a = next0.shape
    moved = np.zeros((n_s, n_a, n_s))
    moved[np.arange(n_s)[:, None], np.arange(n_a)[None, :], next0] = 1.0
    p = (1 - slip) * moved + slip * moved.mean(axis=1, keepdims=True)
    p[:, :, terminal] = 0.0
    r = (1 - slip) * r0 + slip * r0.mean(axis=1, keepdims=True)
    return p, r


def policy_log_prob(theta, s, a):
    r""":math:`\log\pi(a|s)` of the tabular softmax, ``theta [S * A]`` flattened (one sample)."""
    n_a = 4
    return jax.nn.log_softmax(theta.reshape(-1, n_a)[s])[a]


@jax.jit
def exact(theta, p, r, mu, gamma):
    """Closed-form ``J``, ``V``, ``Q``, ``d`` and ``grad J`` (``jax.grad`` of J) of the tabular softmax ``theta``."""

    def values(th):
        pi = jax.nn.softmax(th.reshape(r.shape), axis=-1)
        p_pi = jnp.einsum("sa,sat->st", pi, p)
        m = jnp.linalg.inv(jnp.eye(p.shape[0]) - gamma * p_pi)
        v = m @ jnp.sum(pi * r, axis=-1)
        return mu @ v, (v, mu @ m, pi)

    (j, (v, d, pi)), grad = jax.value_and_grad(values, has_aux=True)(theta)
    q = r + gamma * jnp.einsum("sat,t->sa", p, v)
    return dict(j=j, v=v, q=q, d=d, pi=pi, grad=grad)


def angle(u, v):
    """Degrees between ``u`` and ``v`` (last axis)."""
    cos = np.sum(u * v, -1) / (np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1))
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def mean_ci(x, key: int = 0, n_boot: int = 2000) -> dict:
    """Mean and 95% percentile-bootstrap CI of the mean."""
    x = np.asarray(x, np.float64)
    rng = np.random.default_rng(key)
    boots = x[rng.integers(0, len(x), size=(n_boot, len(x)))].mean(axis=1)
    return {"mean": float(x.mean()), "ci95": [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))]}


# ----------------------------------------------------------------------------- samples
def _draw(key, probs):
    """One index per row of ``probs [..., K]`` by the inverse CDF (cheaper to compile than ``categorical``)."""
    u = jax.random.uniform(key, probs.shape[:-1], probs.dtype)
    return jnp.minimum(jnp.sum(jnp.cumsum(probs, axis=-1) <= u[..., None], -1), probs.shape[-1] - 1).astype(jnp.int32)


@partial(jax.jit, static_argnames="shape")
def sample_returns(key, pi, d_bar, next0, r0, terminal, slip, gamma, shape):
    """``(s, a, y)`` of ``shape``: ``s ~ d_bar``, ``a ~ pi(.|s)``, ``y`` the discounted Monte-Carlo return from
    ``(s, a)`` following ``pi`` for ``HORIZON`` steps (a slip takes a uniform action instead, as the env does)."""
    k_s, k_a, k_run = jax.random.split(key, 3)
    n_a = next0.shape[1]
    pi, r0, term = jnp.asarray(pi), jnp.asarray(r0), jnp.asarray(terminal)
    next0 = jnp.asarray(next0, jnp.int32)
    s0 = _draw(k_s, jnp.broadcast_to(jnp.asarray(d_bar), shape + (len(d_bar),)))
    a0 = _draw(k_a, pi[s0])

    def step(carry, k):
        s, a, ret, disc, alive = carry
        k_slip, k_b, k_next = jax.random.split(k, 3)
        b = jnp.where(jax.random.uniform(k_slip, shape) < slip, jax.random.randint(k_b, shape, 0, n_a, jnp.int32), a)
        ret = ret + alive * disc * r0[s, b]
        s = next0[s, b]
        alive = alive * (1.0 - term[s])
        return (s, _draw(k_next, pi[s]), ret, disc * gamma, alive), None

    zeros = jnp.zeros(shape, r0.dtype)
    (_, _, y, _, _), _ = jax.lax.scan(step, (s0, a0, zeros, zeros + 1.0, zeros + 1.0), jax.random.split(k_run, HORIZON))
    return s0, a0, y


def run(out_dir: Path, seed: int = 0, quick: bool = False) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    sizes = (100, 1000, 10000) if quick else (100, 300, 1000, 3000, 10000, 30000)
    reps = 40 if quick else 100
    with jax.enable_x64(True):
        env = Gridworld(size=SIZE, pits=PITS, slip=SLIP)
        next0, r0, terminal = gridworld_tables(env)
        p, r = model(next0, r0, terminal, SLIP)
        n_s, n_a = r.shape
        mu = np.zeros(n_s)
        mu[env.start] = 1.0
        key = jax.random.PRNGKey(seed)
        k_theta, k_feat, k_samples = jax.random.split(key, 3)
        theta = jax.random.normal(k_theta, (n_s * n_a,), jnp.float64)
        ex = exact(theta, jnp.asarray(p), jnp.asarray(r), jnp.asarray(mu), GAMMA)
        d, pi, q = np.asarray(ex["d"]), np.asarray(ex["pi"]), np.asarray(ex["q"])
        d = np.where(terminal, 0.0, np.maximum(d, 0.0))  # exactly 0 in terminal cells (not -1e-18)
        grad_j = np.asarray(ex["grad"])
        z = float(d.sum())

        # every (s, a) pair, its features and its weight d(s) pi(a|s)
        s_all, a_all = np.repeat(np.arange(n_s), n_a), np.tile(np.arange(n_a), n_s)
        features = jax.jit(lambda th, s, a: compatible_features(policy_log_prob, th, s, a))
        psi_all = np.asarray(features(theta, jnp.asarray(s_all), jnp.asarray(a_all)))
        onehot_s = np.eye(n_s)[s_all]
        n_live = int((~terminal).sum())
        k_arb = n_live * (n_a - 1)  # the compatible critic's effective dimension
        phi_arb = np.asarray(jax.random.normal(k_feat, (n_s * n_a, k_arb), jnp.float64))
        weight = (d[:, None] * pi).reshape(-1)
        fisher = psi_all.T @ (weight[:, None] * psi_all)
        natural = np.linalg.pinv(fisher, rcond=1e-12, hermitian=True) @ grad_j
        # the policy gradient theorem's closed form, a check of the autodiff gradient
        theorem = psi_all.T @ (weight * (q.reshape(-1) - np.repeat(np.asarray(ex["v"]), n_a)))

        def fit(critic, targets, weights, ridge=RIDGE):
            """The critic fitted on every pair with these weights; returns ``(prediction on every pair, R^2)``.

            The least squares over ``N`` samples equal the one over the pairs with weights = the pairs' sample
            counts and targets = their mean returns (the features depend on the pair only)."""
            if critic == "compatible + baseline":
                f = fit_compatible_critic(jnp.asarray(psi_all), targets, ridge, jnp.asarray(onehot_s), weights)
                return jnp.asarray(psi_all) @ f.w + jnp.asarray(onehot_s) @ f.v, f.r2, f.w
            if critic == "compatible alone":
                f = fit_compatible_critic(jnp.asarray(psi_all), targets, ridge, None, weights)
                return jnp.asarray(psi_all) @ f.w, f.r2, f.w
            f = fit_compatible_critic(jnp.asarray(phi_arb), targets, ridge, None, weights)
            return jnp.asarray(phi_arb) @ f.w, f.r2, f.w

        def ac_gradient(q_hat, state_weights):
            r"""The actor-critic gradient :math:`Z\sum_s \hat d(s)\sum_a\pi(a|s)\,\psi(s,a)\,\hat Q(s,a)`."""
            return z * jnp.asarray(psi_all).T @ (jnp.repeat(state_weights, n_a) * jnp.asarray(pi).reshape(-1) * q_hat)

        # exact expectation: every pair, weighted by d pi, fitted to Q
        @jax.jit
        def exact_fits():
            out = {}
            for c in CRITICS:
                q_hat, r2, w = fit(c, jnp.asarray(q.reshape(-1)), jnp.asarray(weight) / z, EXACT_RIDGE)
                out[c] = (ac_gradient(q_hat, jnp.asarray(d) / z), r2, w)
            return out

        exact_rows = {}
        for c, (g, r2, w) in exact_fits().items():
            g = np.asarray(g)
            exact_rows[c] = {
                "angle_to_grad_deg": float(angle(g, grad_j)),
                "norm_ratio": float(np.linalg.norm(g) / np.linalg.norm(grad_j)),
                "r2_of_fit_to_Q": float(r2),
            }
            if c == "compatible + baseline":
                w_exact = np.asarray(w)

        # samples: M repetitions of N_max pairs with their returns; each N uses the first N of them
        s_smp, a_smp, y_smp = sample_returns(k_samples, pi, d / z, next0, r0, terminal, SLIP, GAMMA, (reps, max(sizes)))
        pair_smp = s_smp * n_a + a_smp

        def one_repetition(pair, y, n):
            """The critics' fits and gradients on the first ``n`` samples of one repetition (a traced ``n``: one
            compilation for every sample size)."""
            first = (jnp.arange(y.shape[0]) < n).astype(y.dtype)
            counts = jax.ops.segment_sum(first, pair, n_s * n_a)
            mean_y = jax.ops.segment_sum(first * y, pair, n_s * n_a) / jnp.maximum(counts, 1.0)
            state_freq = counts.reshape(n_s, n_a).sum(1) / n
            out = {}
            for c in CRITICS:
                q_hat, r2, w = fit(c, mean_y, counts)
                out[c] = (ac_gradient(q_hat, state_freq), r2)
                if c == "compatible + baseline":
                    out["w"] = w
            out["vanilla"] = z * jnp.asarray(psi_all).T @ (counts * mean_y) / n  # REINFORCE: mean psi y
            return out

        def fisher_angle(u, v):
            """Degrees between ``u`` and ``v`` in the Fisher metric (the angle between the policy changes)."""
            uv, uu, vv = np.sum(u @ fisher * v, -1), np.sum(u @ fisher * u, -1), np.sum(v @ fisher * v, -1)
            return np.degrees(np.arccos(np.clip(uv / np.sqrt(uu * vv), -1.0, 1.0)))

        sampled: dict = {
            c: {"angle_deg": [], "norm_ratio": [], "bias_angle_deg": [], "r2_to_pair_mean_returns": []} for c in CRITICS
        }
        nac: dict = {"angle_to_natural_deg": [], "fisher_angle_to_natural_deg": [], "bias_angle_deg": []}
        reinforce: dict = {"angle_deg": [], "bias_angle_deg": []}
        batched = jax.jit(jax.vmap(one_repetition, in_axes=(0, 0, None)))
        for n in sizes:
            res = batched(pair_smp, y_smp, jnp.float64(n))
            for c in CRITICS:
                g, r2 = np.asarray(res[c][0]), np.asarray(res[c][1])
                sampled[c]["angle_deg"].append(mean_ci(angle(g, grad_j[None]), seed))
                sampled[c]["norm_ratio"].append(mean_ci(np.linalg.norm(g, axis=1) / np.linalg.norm(grad_j), seed))
                sampled[c]["bias_angle_deg"].append(float(angle(g.mean(0), grad_j)))
                sampled[c]["r2_to_pair_mean_returns"].append(float(np.mean(r2)))
            w = np.asarray(res["w"])
            nac["angle_to_natural_deg"].append(mean_ci(angle(w, natural[None]), seed))
            nac["fisher_angle_to_natural_deg"].append(mean_ci(fisher_angle(w, natural[None]), seed))
            nac["bias_angle_deg"].append(float(angle(w.mean(0), natural)))
            g = np.asarray(res["vanilla"])
            reinforce["angle_deg"].append(mean_ci(angle(g, grad_j[None]), seed))
            reinforce["bias_angle_deg"].append(float(angle(g.mean(0), grad_j)))

    comp, arb = sampled["compatible + baseline"], sampled["arbitrary"]
    alone = sampled["compatible alone"]
    first, last = 0, len(sizes) - 1
    vanilla_vs_natural = float(angle(grad_j, natural))
    checks = {
        "the autodiff grad J equals the policy gradient theorem's sum (rel. err < 1e-8)": bool(
            np.linalg.norm(theorem - grad_j) < 1e-8 * np.linalg.norm(grad_j)
        ),
        "exact: compatible critics' gradient angle to grad J < 1e-4 deg": max(
            exact_rows["compatible + baseline"]["angle_to_grad_deg"],
            exact_rows["compatible alone"]["angle_to_grad_deg"],
        )
        < 1e-4,
        "exact: arbitrary critic's gradient angle to grad J > 5 deg": exact_rows["arbitrary"]["angle_to_grad_deg"] > 5,
        "exact: NAC's w angle to F^+ grad J < 1e-4 deg": float(angle(w_exact, natural)) < 1e-4,
        "vanilla and natural gradient differ (> 10 deg)": vanilla_vs_natural > 10,
        f"N={sizes[last]}: compatible angle CI below arbitrary angle CI": comp["angle_deg"][last]["ci95"][1]
        < arb["angle_deg"][last]["ci95"][0],
        f"compatible mean angle falls by 2x from N={sizes[first]} to N={sizes[last]}": comp["angle_deg"][last]["mean"]
        < 0.5 * comp["angle_deg"][first]["mean"],
        f"N={sizes[last]}: arbitrary critic's bias (angle of the mean) >= 0.5 x its exact bias": arb["bias_angle_deg"][
            last
        ]
        >= 0.5 * exact_rows["arbitrary"]["angle_to_grad_deg"],
        f"N={sizes[last]}: compatible bias < 1/3 of the arbitrary critic's": comp["bias_angle_deg"][last]
        < arb["bias_angle_deg"][last] / 3,
        f"N={sizes[last]}: NAC's w mean Fisher-metric angle to F^+ grad J < the vanilla-natural angle / 3": nac[
            "fisher_angle_to_natural_deg"
        ][last]["mean"]
        < vanilla_vs_natural / 3,
        f"NAC's w mean Fisher-metric angle falls by 2x from N={sizes[first]} to N={sizes[last]}": nac[
            "fisher_angle_to_natural_deg"
        ][last]["mean"]
        < 0.5 * nac["fisher_angle_to_natural_deg"][first]["mean"],
    }
    claim_holds = all(checks.values())

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.4))
    colours = {"compatible + baseline": "#2166ac", "compatible alone": "#67a9cf", "arbitrary": "#b2182b"}
    for c in CRITICS:
        m = [x["mean"] for x in sampled[c]["angle_deg"]]
        lo, hi = zip(*(x["ci95"] for x in sampled[c]["angle_deg"]))
        axes[0].plot(
            sizes, m, "o-", color=colours[c], label=f"{c} (exact fit R2 {exact_rows[c]['r2_of_fit_to_Q']:.2f})"
        )
        axes[0].fill_between(sizes, lo, hi, color=colours[c], alpha=0.2)
        axes[0].plot(sizes, sampled[c]["bias_angle_deg"], ":", color=colours[c], lw=1)
        rm = [x["mean"] for x in sampled[c]["norm_ratio"]]
        lo, hi = zip(*(x["ci95"] for x in sampled[c]["norm_ratio"]))
        axes[1].plot(sizes, rm, "o-", color=colours[c], label=c)
        axes[1].fill_between(sizes, lo, hi, color=colours[c], alpha=0.2)
    axes[0].axhline(
        exact_rows["arbitrary"]["angle_to_grad_deg"],
        color=colours["arbitrary"],
        ls="--",
        lw=1,
        label="arbitrary, exact expectation (its bias)",
    )
    axes[0].set_title(
        "(a) angle of the actor-critic gradient to grad J\nsolid: mean of M runs (95% CI); dotted: angle of their mean",
        fontsize=9,
    )
    axes[0].set_ylabel("degrees")
    axes[1].axhline(1.0, color="k", lw=0.8)
    axes[1].axhline(
        exact_rows["arbitrary"]["norm_ratio"],
        color=colours["arbitrary"],
        ls="--",
        lw=1,
        label="arbitrary, exact expectation",
    )
    axes[1].set_title("(a) |g_hat| / |grad J| (mean, 95% CI)", fontsize=9)
    m = [x["mean"] for x in nac["angle_to_natural_deg"]]
    lo, hi = zip(*(x["ci95"] for x in nac["angle_to_natural_deg"]))
    axes[2].plot(sizes, m, "o-", color="#1b7837", label="NAC's w (compatible + baseline) vs F^+ grad J")
    axes[2].fill_between(sizes, lo, hi, color="#1b7837", alpha=0.2)
    m = [x["mean"] for x in nac["fisher_angle_to_natural_deg"]]
    lo, hi = zip(*(x["ci95"] for x in nac["fisher_angle_to_natural_deg"]))
    axes[2].plot(sizes, m, "s-", color="#5aae61", label="the same in the Fisher metric (policy change)")
    axes[2].fill_between(sizes, lo, hi, color="#5aae61", alpha=0.2)
    axes[2].plot(sizes, nac["bias_angle_deg"], ":", color="#1b7837", lw=1, label="angle of the mean w")
    axes[2].axhline(vanilla_vs_natural, color="gray", ls="--", lw=1, label="grad J vs F^+ grad J (exact)")
    axes[2].set_title(
        f"(b) NAC's w is the natural gradient (exact expectation: {float(angle(w_exact, natural)):.1e} deg)", fontsize=9
    )
    axes[2].set_ylabel("degrees")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("samples N (s, a, Monte-Carlo return)")
        ax.legend(fontsize=7)
    axes[0].set_yscale("log")
    axes[2].set_yscale("log")
    fig.suptitle(
        f"Compatible function approximation on Gridworld {SIZE}x{SIZE} (slip {SLIP}, gamma {GAMMA}), "
        f"tabular softmax, M={reps} repetitions per N",
        fontsize=10,
    )
    fig.tight_layout()

    results = {
        **header(sys.modules[__name__], seed, quick),
        "setup": {
            "env": "Gridworld-v0",
            "size": SIZE,
            "pits": [list(x) for x in PITS],
            "slip": SLIP,
            "gamma": GAMMA,
            "horizon": HORIZON,
            "ridge": RIDGE,
            "n_states": n_s,
            "n_actions": n_a,
            "n_nonterminal_states": n_live,
            "arbitrary_features": k_arb,
            "sample_sizes": list(sizes),
            "repetitions": reps,
            "J": float(ex["j"]),
        },
        "exact": {
            **exact_rows,
            "nac_w_angle_to_natural_deg": float(angle(w_exact, natural)),
            "vanilla_vs_natural_angle_deg": vanilla_vs_natural,
        },
        "sampled": sampled,
        "nac_w": nac,
        "reinforce_mc_returns": reinforce,
        "checks": checks,
        "claim_holds": bool(claim_holds),
        "summary": (
            f"exact expectation: arbitrary critic {exact_rows['arbitrary']['angle_to_grad_deg']:.1f} deg off grad J "
            f"(R2 {exact_rows['arbitrary']['r2_of_fit_to_Q']:.2f}), compatible "
            f"{exact_rows['compatible + baseline']['angle_to_grad_deg']:.1e} deg, compatible alone "
            f"{exact_rows['compatible alone']['angle_to_grad_deg']:.1e} deg (R2 "
            f"{exact_rows['compatible alone']['r2_of_fit_to_Q']:.2f}); at N={sizes[last]}: compatible "
            f"{comp['angle_deg'][last]['mean']:.1f} deg (CI {comp['angle_deg'][last]['ci95'][0]:.1f}-"
            f"{comp['angle_deg'][last]['ci95'][1]:.1f}), compatible alone {alone['angle_deg'][last]['mean']:.1f}, "
            f"arbitrary {arb['angle_deg'][last]['mean']:.1f} (CI {arb['angle_deg'][last]['ci95'][0]:.1f}-"
            f"{arb['angle_deg'][last]['ci95'][1]:.1f}); NAC's w vs F^+ grad J: exact "
            f"{float(angle(w_exact, natural)):.1e} deg, sampled {nac['angle_to_natural_deg'][last]['mean']:.1f} deg "
            f"(vanilla vs natural {vanilla_vs_natural:.1f} deg)."
        ),
        "wall_time_s": time.perf_counter() - t0,
    }
    return write_results(out_dir, fig, results)
