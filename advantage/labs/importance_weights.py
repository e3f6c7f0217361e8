r"""Lab ``importance-weights``: the product of importance ratios collapses as the horizon grows.

The slides (*Actor Critic I*, "Off-Policy Gradient") write the off-policy return as
:math:`\mathbb E[G(\tau)\prod_t \pi(a_t|s_t)/\beta(a_t|s_t)]` and ask what happens to the product:
:math:`\prod_t \rho_t \to 0, \infty` — "off-policy gradient does not work in most cases", and "only works
if :math:`\pi \approx \beta` for all t".

The experiment takes a behaviour policy :math:`\beta = (0.5, 0.5)` and a target :math:`\pi = (0.6, 0.4)`
that differ a little (the 0.4/0.6 of the slides' trust-region example) at every step of ``N``
trajectories, and computes the weights with the library's own ``core.importance.importance_weights``
(modes ``full``, ``per-decision`` and ``truncated`` with :math:`\bar\rho = 1`) and their effective
sample size with ``core.importance.weight_statistics`` (:math:`\mathrm{ESS}/N = (\sum w)^2 / (N\sum w^2)`)
for horizons ``H`` from 1 to 500:

* ``full``: the one weight :math:`\prod_{t<H}\rho_t` that multiplies every reward of the trajectory;
* ``per-decision``: the reward at step ``t`` is weighted by :math:`\prod_{k\le t}\rho_k`; reported is the
  ESS averaged over the ``H`` steps (its value at the last step is the full product's);
* ``truncated``: per-decision with every factor capped at 1 (Retrace/V-trace), averaged the same way;
* ``one-step ratio``: :math:`\rho_t` alone, no product (what PPO's surrogate uses).

For i.i.d. steps the expected ESS/N of the full product is about :math:`1/\mathbb E_\beta[\rho^2]^H`
(:math:`\mathbb E_\beta[\rho^2] = \sum_a \pi(a)^2/\beta(a) = 1.04` here), drawn as a dashed line.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from advantage.core.importance import importance_weights, weight_statistics
from advantage.labs import header, write_results

NAME = "importance-weights"
SLIDE = (
    "Actor Critic I (shared/seeds/000), slides 'Off-Policy Gradient' "
    "(prod_t pi/pi_beta -> 0, infinity; 'Off-policy gradient does not work in most cases')"
)
CLAIM = (
    "The product of importance ratios over a trajectory collapses as the horizon grows, even for a target "
    "policy close to the behaviour policy: its effective sample size falls towards 1/N, while per-decision, "
    "truncated and one-step ratios keep far more of the sample."
)

BEHAVIOUR = (0.5, 0.5)
TARGET = (0.6, 0.4)
HORIZONS = (1, 2, 5, 10, 20, 50, 100, 200, 500)


def ess_by_horizon(log_rho, horizon: int) -> dict:
    """ESS/N of each weighting for trajectories cut at ``horizon`` steps (``log_rho [T, N]``, ``T >= horizon``)."""
    out = _ess_by_horizon(log_rho[:horizon])
    out = {k: np.asarray(v) for k, v in out.items()}
    return {k: (v if k == "log10_full_weights" else float(v)) for k, v in out.items()}


@jax.jit
def _ess_by_horizon(lr):
    done = jnp.zeros(lr.shape, bool).at[-1].set(True)  # one fragment of `horizon` steps per trajectory
    valid = jnp.ones(lr.shape[1:])

    def ess_rows(w, log_w):  # the ESS of the weights at each step t, over the N trajectories
        return jax.vmap(lambda wt, lwt, lrt: weight_statistics(wt, lwt, lrt, valid)["ess"])(w, log_w, lr)

    w_full, lw_full = importance_weights(lr, done, "full")
    w_pd, lw_pd = importance_weights(lr, done, "per-decision")
    w_tr, lw_tr = importance_weights(lr, done, "truncated", rho_bar=1.0)
    full = weight_statistics(w_full[0], lw_full[0], lr[0], valid)
    return {
        "full": full["ess"],
        "full_frac_below_1e-3": full["frac_zero"],
        "full_max_weight_share": jnp.max(w_full[0]) / jnp.sum(w_full[0]),
        "per-decision": jnp.mean(ess_rows(w_pd, lw_pd)),
        "truncated": jnp.mean(ess_rows(w_tr, lw_tr)),
        "one-step ratio": jnp.mean(ess_rows(jnp.exp(lr), lr)),
        "log10_full_weights": lw_full[0] / jnp.log(10.0),
    }


def run(out_dir: Path, seed: int = 0, quick: bool = False) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    n = 1000 if quick else 5000
    beta, pi = np.asarray(BEHAVIOUR), np.asarray(TARGET)
    h_max = max(HORIZONS)
    # N trajectories of h_max actions drawn from the behaviour policy; log rho_t = log pi(a_t) - log beta(a_t)
    actions = jax.random.categorical(jax.random.PRNGKey(seed), jnp.log(jnp.asarray(beta)), shape=(h_max, n))
    log_rho = (jnp.log(jnp.asarray(pi)) - jnp.log(jnp.asarray(beta)))[actions]
    second_moment = float(np.sum(pi**2 / beta))

    rows = {h: ess_by_horizon(log_rho, h) for h in HORIZONS}
    modes = ("full", "per-decision", "truncated", "one-step ratio")
    ess = {m: [rows[h][m] for h in HORIZONS] for m in modes}
    predicted = [max(second_moment**-h, 1.0 / n) for h in HORIZONS]
    last = rows[h_max]
    checks = {
        f"full ESS/N at H={h_max} < 0.1": last["full"] < 0.1,
        "full ESS/N falls with H (H=1 vs H=max: 10x)": ess["full"][0] > 10 * last["full"],
        f"per-decision ESS >= 10 x full at H={h_max}": last["per-decision"] >= 10 * last["full"],
        f"truncated ESS >= 10 x full at H={h_max}": last["truncated"] >= 10 * last["full"],
    }
    claim_holds = all(checks.values())

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    ax = axes[0]
    styles = {
        "full": ("#b2182b", "o-"),
        "per-decision": ("#ef8a62", "s-"),
        "truncated": ("#67a9cf", "^-"),
        "one-step ratio": ("#2166ac", "d-"),
    }
    for m in modes:
        c, st = styles[m]
        ax.plot(
            HORIZONS,
            ess[m],
            st,
            color=c,
            label=m + (" (mean over t < H)" if m in ("per-decision", "truncated") else ""),
        )
    ax.plot(HORIZONS, predicted, "k--", lw=1, label=f"1 / E[rho^2]^H = 1/{second_moment:.2f}^H")
    ax.axhline(1.0 / n, color="gray", lw=0.8, ls=":", label="1/N (one trajectory)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("horizon H (steps)")
    ax.set_ylabel("effective sample size / N")
    ax.set_title(f"behaviour {BEHAVIOUR}, target {TARGET}, N={n} trajectories", fontsize=9)
    ax.legend(fontsize=7, loc="lower left")
    ax = axes[1]
    for h, c in zip((10, 100, 500), ("#fddbc7", "#ef8a62", "#b2182b")):
        ax.hist(rows[h]["log10_full_weights"], bins=60, color=c, alpha=0.7, label=f"H={h}")
    ax.axvline(0, color="k", lw=0.5)
    ax.set_xlabel("log10 of the full-product weight")
    ax.set_ylabel("trajectories")
    ax.set_title("the product spreads over orders of magnitude: most weights -> 0, a few huge", fontsize=9)
    ax.legend(fontsize=8)
    fig.suptitle("Importance weights over a trajectory (advantage.core.importance.importance_weights)", fontsize=10)
    fig.tight_layout()

    results = {
        **header(sys.modules[__name__], seed, quick),
        "setup": {
            "behaviour": list(BEHAVIOUR),
            "target": list(TARGET),
            "n_trajectories": n,
            "second_moment_E_rho2": second_moment,
            "truncation_rho_bar": 1.0,
        },
        "horizons": list(HORIZONS),
        "ess_fraction": ess,
        "predicted_full_ess_fraction": predicted,
        "full_frac_weights_below_1e-3": [rows[h]["full_frac_below_1e-3"] for h in HORIZONS],
        "full_max_weight_share": [rows[h]["full_max_weight_share"] for h in HORIZONS],
        "checks": checks,
        "claim_holds": bool(claim_holds),
        "summary": (
            f"ESS/N at H={h_max}: full product {last['full']:.2g} (largest single weight "
            f"{last['full_max_weight_share']:.0%} of the total), per-decision {last['per-decision']:.2g}, "
            f"truncated {last['truncated']:.2g}, one-step ratio {last['one-step ratio']:.2g}; "
            f"at H=10 the full product still has {rows[10]['full']:.2g}."
        ),
        "wall_time_s": time.perf_counter() - t0,
    }
    return write_results(out_dir, fig, results)
