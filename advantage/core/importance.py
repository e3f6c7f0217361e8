r"""Importance sampling: per-step ratios, their products over an episode, and diagnostics.

Time-major ``[T, B]`` like :mod:`advantage.core.returns`. ``log_rho_t = log pi(a_t|s_t) - log mu(a_t|s_t)``
is the log of the ratio between the policy being trained and the behaviour policy that chose
the action; ``done_t`` (terminated or truncated) ends the episode after step ``t``.

Off-policy evaluation with importance sampling: Precup, Sutton & Singh (2000); Sutton & Barto
(2018), sec. 5.5 and 7.3. The lecture *Actor Critic I*, "Off-Policy Gradient":
:math:`\mathbb E[G(\tau)\mid\theta_\pi] = \mathbb E[G(\tau)\prod_t \pi(a_t|s_t;\theta_\pi)/
\pi(a_t|s_t;\theta_\beta)\mid\theta_\beta]`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from advantage.core.checks import assert_equal_shape

__all__ = ["IS_MODES", "LOG_WEIGHT_MAX", "ZERO_WEIGHT", "importance_weights", "weight_statistics"]

#: The weightings :func:`importance_weights` computes.
IS_MODES = ("full", "per-decision", "truncated")

#: Log-weights are capped here (w <= e^20 ~ 5e8) only so that float32 sums of w and w^2 stay finite.
LOG_WEIGHT_MAX = 20.0

#: Weights below this count as "zero" in ``frac_zero``.
ZERO_WEIGHT = 1e-3


def importance_weights(log_rho_t, done_t, mode: str, rho_bar=1.0):
    r"""Importance weights ``w_t`` ``[T, B]`` (and ``log w_t``) from per-step log-ratios.

    Products run over the *episode fragment* that holds ``t``: from the rollout's first step or
    the step after a ``done``, to the next ``done`` or the rollout end. With ``s`` the fragment's
    first step and ``e`` its last:

    * ``full``:          :math:`w_t = \prod_{k=s}^{e}\rho_k` (the same for every step of the fragment);
    * ``per-decision``:  :math:`w_t = \prod_{k=s}^{t}\rho_k` (Precup et al. 2000: later actions
      cannot affect earlier rewards);
    * ``truncated``:     :math:`w_t = \prod_{k=s}^{t}\min(\bar\rho, \rho_k)` (the traces :math:`c_i`
      of Retrace and V-trace, with :math:`\bar\rho` = ``rho_bar``).

    Computed in log space (a forward ``scan`` of cumulative sums that restarts at each fragment,
    and for ``full`` a backward ``scan`` that spreads the fragment's total); ``log w`` is capped at
    ``LOG_WEIGHT_MAX``. An episode that began before the rollout starts its product at the
    rollout's first step: the state distribution is not corrected.
    """
    if mode not in IS_MODES:
        raise ValueError(f"importance_weights: mode must be one of {IS_MODES}, got {mode!r}")
    assert_equal_shape("importance_weights", log_rho_t=log_rho_t, done_t=done_t)
    done_t = jnp.asarray(done_t, bool)
    if mode == "truncated":
        log_rho_t = jnp.minimum(log_rho_t, jnp.log(rho_bar))
    starts = jnp.concatenate([jnp.ones_like(done_t[:1]), done_t[:-1]], axis=0)

    def forward(acc, x):
        lr, start = x
        acc = jnp.where(start, 0.0, acc) + lr
        return acc, acc

    _, log_w = jax.lax.scan(forward, jnp.zeros_like(log_rho_t[0]), (log_rho_t, starts))
    if mode == "full":
        ends = done_t.at[-1].set(True)

        def backward(total, x):
            cum, end = x
            total = jnp.where(end, cum, total)
            return total, total

        _, log_w = jax.lax.scan(backward, jnp.zeros_like(log_rho_t[0]), (log_w, ends), reverse=True)
    log_w = jnp.minimum(log_w, LOG_WEIGHT_MAX)
    return jnp.exp(log_w), log_w


def weight_statistics(w_t, log_w_t, log_rho_t, mask_t) -> dict:
    r"""Diagnostics of the weights over the samples with ``mask_t = 1`` (``N`` of them):

    * ``ess`` — effective sample size, normalised: :math:`(\sum w)^2 / (N\sum w^2) \in (0, 1]`
      (Kong 1992; 1 when all weights are equal, :math:`1/N` when one weight dominates);
    * ``max_ratio`` — the largest single-step ratio :math:`\rho_t`;
    * ``mean_log_weight`` — :math:`\frac1N\sum\log w_t` (0 on-policy; drifts away as the products grow or shrink);
    * ``frac_zero`` — the fraction of weights below ``ZERO_WEIGHT`` (``1e-3``): samples that no longer count.
    """
    assert_equal_shape("weight_statistics", w_t=w_t, log_w_t=log_w_t, log_rho_t=log_rho_t, mask_t=mask_t)
    ok = mask_t > 0
    n = jnp.maximum(jnp.sum(mask_t), 1.0)
    w = jnp.where(ok, w_t, 0.0)  # masked entries may hold anything: select, never multiply (0 * inf = nan)
    w_max = jnp.max(w)
    scaled = jnp.where(w_max > 0, w / jnp.where(w_max > 0, w_max, 1.0), 0.0)  # ESS is scale-free; no overflow
    s1, s2 = jnp.sum(scaled), jnp.sum(scaled**2)
    return {
        "ess": jnp.where(s2 > 0, s1**2 / (n * jnp.where(s2 > 0, s2, 1.0)), 0.0),
        "max_ratio": jnp.max(jnp.where(ok, jnp.exp(jnp.minimum(log_rho_t, LOG_WEIGHT_MAX)), 0.0)),
        "mean_log_weight": jnp.sum(jnp.where(ok, log_w_t, 0.0)) / n,
        "frac_zero": jnp.sum(jnp.where(ok, w < ZERO_WEIGHT, False)) / n,
    }
