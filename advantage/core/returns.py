r"""Returns and advantages. Arrays are time-major ``[T, B]``.

Time indexing: step ``t`` is ``(obs_t, a_t, r_t, next_obs_t)`` where
``r_t = r(s_t, a_t)`` and ``next_obs_t`` is the *true* next observation — at an
episode end it is the pre-reset ``final_obs``. ``terminated_t`` / ``truncated_t``
describe how the episode stands after step ``t``:

* ``terminated_t``: terminal state, the future is worth 0 — never bootstrap;
* ``truncated_t``: cut by a time limit — bootstrap from ``V(next_obs_t)``;
* either one ends the episode, so nothing flows from step ``t+1`` back to ``t``;
* both on the same step (the time limit hit a terminal state): termination wins,
  no bootstrap.

``next_values[t] = V(next_obs_t)`` is given for *every* step, which makes the
rollout end an ordinary bootstrap and the truncation case explicit.

Compared with Sutton & Barto (2018), whose reward after ``S_t`` is ``R_{t+1}``,
our ``r_t`` is their ``R_{t+1}`` and our ``next_values[t]`` their ``V(S_{t+1})``.

Every function here is pure and jittable. ``gamma`` and ``gae_lambda`` may be
traced scalars; ``n`` of :func:`n_step_returns` is a static Python int. The
recursions are ``jax.lax.scan`` over the leading (time) axis and everything after
it is elementwise, so ``[T]``, ``[T, B]`` and ``[T, B, ...]`` inputs all work, and so
does ``jax.vmap``. The public functions are wrapped in ``jax.jit`` so that eager
calls compile once per shape/dtype instead of once per call (inside a caller's
``jit`` this changes nothing).
``terminated`` / ``truncated`` may be bool or 0/1 floats.

Which function for what:

* :func:`discounted_returns` — reward-to-go (REINFORCE, MC value targets);
* :func:`episode_returns` — total return ``R(tau)`` of the episode (vanilla REINFORCE);
* :func:`n_step_returns` — n-step bootstrapped targets (A2C/A3C style);
* :func:`td_target` — the one-step TD target (replay critics, SARSA);
* :func:`td_errors` — one-step TD residuals;
* :func:`gae` — generalised advantage estimation (PPO, TRPO, A2C);
* :func:`td_lambda_returns` — lambda-returns, the value targets that go with :func:`gae`;
* :func:`vtrace` — V-trace targets and policy-gradient advantages for off-policy data
  (IMPALA); with the behaviour policy equal to the target policy it is :func:`td_lambda_returns`
  and :func:`gae`.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from advantage.core.checks import assert_equal_shape

__all__ = [
    "discounted_returns",
    "episode_returns",
    "n_step_returns",
    "td_target",
    "td_errors",
    "gae",
    "td_lambda_returns",
    "VTrace",
    "vtrace",
]


def _flags(rewards: jax.Array, terminated: jax.Array, truncated: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(not_term, done)``: ``1 - terminated`` in the rewards' dtype, and the bool episode-end mask."""
    terminated = jnp.asarray(terminated)
    truncated = jnp.asarray(truncated)
    not_term = 1.0 - terminated.astype(rewards.dtype)
    done = jnp.logical_or(terminated.astype(bool), truncated.astype(bool))
    return not_term, done


@jax.jit
def discounted_returns(
    rewards: jax.Array,
    next_values: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    gamma: float,
) -> jax.Array:
    r"""Discounted reward-to-go with bootstrap at truncation and at the rollout end.

    The return of Sutton & Barto (2018) eqs. 3.8–3.9, computed backwards in time:

    .. math::
        G_t = r_t + \gamma \begin{cases}
            (1 - \text{term}_t)\, V(s'_t) & \text{if } \text{done}_t \text{ or } t = T-1,\\
            G_{t+1} & \text{otherwise,}
        \end{cases}

    with ``done_t = terminated_t or truncated_t`` and ``V(s'_t) = next_values[t]``.
    Within an episode this is :math:`G_t = \sum_{k=0}^{e-t} \gamma^k r_{t+k}
    + \gamma^{e-t+1} (1-\text{term}_e) V(s'_e)`, ``e`` being the step that ends the
    episode (or ``T-1``): it bootstraps at a truncation and at the rollout end (last
    step, not done), never at a termination.

    With ``next_values = 0`` this is the plain Monte-Carlo "reward-to-go"
    :math:`\sum_{t'\ge t} \gamma^{t'-t} r_{t'}` of the policy-gradient lectures
    (Schulman et al. 2016, eq. 1, choice 2 of :math:`\Psi_t`). With a critic it is
    the lambda=1 value target: ``gae(..., gae_lambda=1) + values`` equals it whenever
    ``next_values[t] == values[t+1]`` inside episodes.

    Args:
        rewards: ``[T, B]`` rewards ``r_t``.
        next_values: ``[T, B]`` values ``V(next_obs_t)`` of the true next observations.
        terminated, truncated: ``[T, B]`` episode-end flags after step ``t``.
        gamma: discount factor (may be traced).
    Returns:
        ``[T, B]`` returns ``G_t``.
    """
    not_term, done = _flags(rewards, terminated, truncated)
    bootstrap = not_term * next_values

    def backward(next_return, xs):
        r, boot, d = xs
        g = r + gamma * jnp.where(d, boot, next_return)
        return g, g

    # "G_T" := V(s'_{T-1}): the last step, when not done, bootstraps from its next value.
    _, returns = jax.lax.scan(backward, next_values[-1].astype(rewards.dtype), (rewards, bootstrap, done), reverse=True)
    return returns


@jax.jit
def episode_returns(
    rewards: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    gamma: float,
    next_values: jax.Array | None = None,
) -> jax.Array:
    r"""Discounted return of the whole episode, ``R(tau)``, given to every step of it.

    REINFORCE's "total return" weight (Williams 1992; Schulman et al. 2016, eq. 1,
    choice 1 of :math:`\Psi_t`): for every step ``t`` of an episode that starts at
    step ``s`` and ends at step ``e`` (``done_e``, or ``e = T-1``),

    .. math::
        \Phi_t = R(\tau) = G_s = \sum_{k=0}^{e-s} \gamma^k r_{s+k}
            + \gamma^{e-s+1} (1-\text{term}_e) V(s'_e),

    i.e. :func:`discounted_returns` evaluated at the episode's first step. An episode
    starts at ``t = 0`` or after a ``done_{t-1}``.

    Partial episodes: an episode already running when the rollout began is counted
    **from the rollout's first step** (the rewards before it are not in the data,
    so its ``R(tau)`` is the return of the observed part only, discounted from
    ``t = 0``). An episode still running at the rollout end bootstraps from
    ``next_values[T-1]`` if ``next_values`` is given, and is cut there otherwise.

    Args:
        rewards: ``[T, B]``.
        terminated, truncated: ``[T, B]`` episode-end flags.
        gamma: discount factor (may be traced).
        next_values: optional ``[T, B]`` ``V(next_obs_t)``; ``None`` means no
            bootstrap anywhere (pure Monte-Carlo, truncation treated as a cut).
    Returns:
        ``[T, B]``, constant over each episode.
    """
    if next_values is None:
        next_values = jnp.zeros_like(rewards)
    returns_to_go = discounted_returns(rewards, next_values, terminated, truncated, gamma)
    _, done = _flags(rewards, terminated, truncated)
    starts = jnp.concatenate([jnp.ones_like(done[:1]), done[:-1]], axis=0)

    def forward(current, xs):
        g, start = xs
        ret = jnp.where(start, g, current)
        return ret, ret

    _, out = jax.lax.scan(forward, jnp.zeros_like(returns_to_go[0]), (returns_to_go, starts))
    return out


@functools.partial(jax.jit, static_argnames=("n",))
def n_step_returns(
    rewards: jax.Array,
    next_values: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    gamma: float,
    n: int,
) -> jax.Array:
    r"""n-step bootstrapped returns (Sutton & Barto 2018, eq. 7.1).

    .. math::
        G^{(n)}_t = \sum_{k=0}^{m-1} \gamma^k r_{t+k}
            + \gamma^m (1 - \text{term}_{t+m-1})\, V(s'_{t+m-1}),
        \qquad m = \min(n,\; e - t + 1),

    where ``e >= t`` is the first step that ends the episode (``done_e``) or
    ``T-1`` if none does before the rollout end. So the sum is cut at an episode end
    (termination: no bootstrap; truncation: bootstrap from ``next_values[e]``) and at
    the rollout end (bootstrap from ``next_values[T-1]``); otherwise it bootstraps
    from ``V(s_{t+n}) = next_values[t+n-1]``. ``n = 1`` is the TD target
    ``r_t + gamma (1 - term_t) V(s'_t)``; ``n >= T`` gives :func:`discounted_returns`.

    Computed by one backward ``scan`` that carries ``G^{(1)} ... G^{(n)}`` of the next
    step (``O(n T B)`` work, ``O(n B)`` carry) via
    ``G^{(k)}_t = r_t + gamma * [done_t ? (1-term_t) V(s'_t) : G^{(k-1)}_{t+1}]``
    with ``G^{(0)}_{t+1} := V(s'_t)``.

    Args:
        rewards, next_values, terminated, truncated: ``[T, B]``.
        gamma: discount factor (may be traced).
        n: number of steps, a static Python int ``>= 1``.
    Returns:
        ``[T, B]`` returns ``G^{(n)}_t``.
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"n_step_returns: n must be >= 1, got {n}")
    not_term, done = _flags(rewards, terminated, truncated)
    bootstrap = not_term * next_values
    next_values = next_values.astype(rewards.dtype)

    def backward(carry, xs):
        # carry[j] = G^{(j+1)}_{t+1} for j = 0..n-1
        r, nv, boot, d = xs
        prev = jnp.concatenate([nv[None], carry[:-1]], axis=0)  # G^{(k-1)}_{t+1}, k = 1..n
        g = r + gamma * jnp.where(d, boot, prev)
        return g, g[-1]

    init = jnp.broadcast_to(next_values[-1], (n,) + next_values.shape[1:])
    _, returns = jax.lax.scan(backward, init, (rewards, next_values, bootstrap, done), reverse=True)
    return returns


def td_target(r_t: jax.Array, v_tp1: jax.Array, terminated_t: jax.Array, gamma: float) -> jax.Array:
    r"""One-step TD target (Sutton & Barto 2018, eq. 6.2): bootstraps through truncations, never
    through terminations.

    .. math::
        y_t = r_t + \gamma\,(1 - \text{term}_t)\, V(s'_t)

    ``v_tp1[t]`` is the value of the *true* next observation ``next_obs_t`` (:math:`V(S_{t+1})` of
    Sutton & Barto), so a time-limit truncation bootstraps like any other step. The value may
    be any bootstrap: ``min_i Q'_i(s', a')`` (TD3's clipped double Q, Fujimoto et al. 2018,
    sec. 4.2), ``Q'(s', mu'(s'))`` (DDPG, Lillicrap et al. 2016, Algorithm 1), the soft value
    ``min_i Q'_i(s', a') - alpha log pi(a'|s')`` (SAC, Haarnoja et al. 2018b, sec. 4), or
    ``Q(s', a')`` with the next action taken (SARSA). Any shape (``[B]`` from replay, ``[T, B]``
    from a rollout); ``terminated_t`` bool or 0/1.
    """
    assert_equal_shape("td_target", r_t=r_t, v_tp1=v_tp1, terminated_t=terminated_t)
    return r_t + gamma * (1.0 - jnp.asarray(terminated_t).astype(r_t.dtype)) * v_tp1


@jax.jit
def td_errors(
    rewards: jax.Array,
    values: jax.Array,
    next_values: jax.Array,
    terminated: jax.Array,
    gamma: float,
) -> jax.Array:
    r"""One-step TD errors (Sutton & Barto 2018, eq. 6.5; Schulman et al. 2016, sec. 3).

    .. math::
        \delta_t = r_t + \gamma (1 - \text{term}_t) V(s'_t) - V(s_t)

    Truncation plays no role: ``next_values[t]`` is the value of the true next
    observation, so a truncated step bootstraps like any other.

    Args:
        rewards, values, next_values, terminated: ``[T, B]`` (``values[t] = V(obs_t)``).
        gamma: discount factor (may be traced).
    Returns:
        ``[T, B]`` TD errors.
    """
    return td_target(rewards, next_values, terminated, gamma) - values


@jax.jit
def gae(
    rewards: jax.Array,
    values: jax.Array,
    next_values: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    gamma: float,
    gae_lambda: float,
) -> jax.Array:
    r"""Generalised advantage estimation (Schulman et al. 2016, eq. 16).

    .. math::
        \delta_t = r_t + \gamma (1 - \text{term}_t) V(s'_t) - V(s_t), \qquad
        \hat A_t = \delta_t + \gamma \lambda (1 - \text{done}_t) \hat A_{t+1}

    with ``done_t = terminated_t or truncated_t`` and ``\hat A_T = 0``, i.e.
    :math:`\hat A_t = \sum_{l=0}^{e-t} (\gamma\lambda)^l \delta_{t+l}` summed up to the
    step ``e`` that ends the episode (or ``T-1``). ``V(s'_t) = next_values[t]``
    (truncation and rollout end bootstrap through the ``delta`` of that step).

    ``gae_lambda=0`` gives the one-step TD error (:func:`td_errors`);
    ``gae_lambda=1`` gives the Monte-Carlo advantage with bootstrap at truncation,
    ``discounted_returns(...) - values``, provided ``next_values[t] == values[t+1]``
    inside episodes (the sum of ``delta`` telescopes only then).
    ``gamma`` and ``gae_lambda`` may be traced scalars.

    Args:
        rewards, values, next_values, terminated, truncated: ``[T, B]``
            (``values[t] = V(obs_t)``, ``next_values[t] = V(next_obs_t)``).
        gamma: discount factor.
        gae_lambda: the GAE / TD(lambda) parameter in ``[0, 1]``.
    Returns:
        advantages ``[T, B]``; the value targets are ``advantages + values``
        (:func:`td_lambda_returns`).
    """
    not_term = 1.0 - terminated.astype(rewards.dtype)
    not_done = 1.0 - jnp.logical_or(terminated, truncated).astype(rewards.dtype)
    deltas = rewards + gamma * not_term * next_values - values

    def backward(next_adv, xs):
        delta, nd = xs
        adv = delta + gamma * gae_lambda * nd * next_adv
        return adv, adv

    _, advantages = jax.lax.scan(backward, jnp.zeros_like(deltas[0]), (deltas, not_done), reverse=True)
    return advantages


@jax.jit
def td_lambda_returns(
    rewards: jax.Array,
    values: jax.Array,
    next_values: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    gamma: float,
    gae_lambda: float,
) -> jax.Array:
    r"""Lambda-returns, defined as ``gae(...) + values`` (the value targets of GAE).

    When ``next_values[t] == values[t+1]`` inside episodes this is the recursive
    lambda-return (Sutton & Barto 2018, eqs. 12.2–12.3, written recursively;
    Schulman et al. 2016, sec. 5)

    .. math::
        G^\lambda_t = r_t + \gamma \begin{cases}
            (1-\text{term}_t) V(s'_t) & \text{if done}_t,\\
            (1-\lambda) V(s'_t) + \lambda G^\lambda_{t+1} & \text{otherwise,}
        \end{cases}

    with ``G^lambda_T := V(s'_{T-1})``. Otherwise (e.g. ``values`` and
    ``next_values`` from different networks) it differs from that recursion by
    ``gamma * lambda * (V(s'_t) - V(s_{t+1}))`` terms, and keeps the identity
    ``td_lambda_returns - values == gae`` exactly. ``lambda = 0`` gives the TD target,
    ``lambda = 1`` :func:`discounted_returns` (under the same proviso).

    Args and shapes: as :func:`gae`. Returns ``[T, B]``.
    """
    return gae(rewards, values, next_values, terminated, truncated, gamma, gae_lambda) + values


class VTrace(NamedTuple):
    """What :func:`vtrace` returns, both ``[T, B]``."""

    targets: jax.Array
    """``v_s``: the value targets (Espeholt et al. 2018, eq. 1)."""
    pg_advantages: jax.Array
    """``rho_s (q_s - V(x_s))``: the weights of ``grad log pi(a_s|x_s)`` in the policy gradient (sec. 4.2)."""


@jax.jit
def vtrace(
    rewards: jax.Array,
    values: jax.Array,
    next_values: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    log_rho: jax.Array,
    gamma: float,
    lambda_: float = 1.0,
    rho_bar: float = 1.0,
    c_bar: float = 1.0,
) -> VTrace:
    r"""V-trace targets and policy-gradient advantages (Espeholt et al. 2018, IMPALA, eq. 1 and sec. 4.2).

    Data collected by a behaviour policy :math:`\mu`, learned for a target policy :math:`\pi`, with the
    truncated importance ratios

    .. math::
        \rho_t = \min\big(\bar\rho, \tfrac{\pi(a_t|s_t)}{\mu(a_t|s_t)}\big), \qquad
        c_t = \lambda \min\big(\bar c, \tfrac{\pi(a_t|s_t)}{\mu(a_t|s_t)}\big).

    The targets (eq. 1, with the paper's remark on :math:`\lambda`, sec. 4.1) are

    .. math::
        v_s = V(s_s) + \sum_{t=s}^{e} \gamma^{t-s} \Big(\prod_{i=s}^{t-1} c_i\Big) \delta_t V, \qquad
        \delta_t V = \rho_t \big(r_t + \gamma (1 - \text{term}_t) V(s'_t) - V(s_t)\big),

    summed up to the step ``e`` that ends the episode (or ``T-1``), computed backwards as

    .. math::
        v_t - V(s_t) = \delta_t V + \gamma\, c_t\, (1 - \text{done}_t)\,\big(v_{t+1} - V(s_{t+1})\big),
        \qquad v_T - V(s_T) := 0,

    so a termination does not bootstrap, a truncation bootstraps from ``V(s'_t) = next_values[t]`` (the
    true final observation), and nothing flows back across an episode end or from beyond the rollout.
    The policy-gradient advantages are

    .. math::
        A^{pg}_t = \rho_t \big(q_t - V(s_t)\big), \qquad
        q_t = r_t + \gamma (1 - \text{term}_t) V(s'_t)
            + \gamma \lambda (1 - \text{done}_t) \big(v_{t+1} - V(s_{t+1})\big).

    With :math:`\lambda = 1` and ``next_values[t] == values[t+1]`` inside episodes this is the paper's
    :math:`\rho_s (r_s + \gamma v_{s+1} - V(x_s))`. For :math:`\lambda < 1`, ``q_t`` bootstraps from the
    mixture :math:`\lambda v_{t+1} + (1 - \lambda) V(s_{t+1})`, as rlax's
    ``vtrace_td_error_and_advantage`` does, so that the on-policy case is exactly GAE.

    On-policy (``log_rho = 0``) with :math:`\bar\rho, \bar c \ge 1`: :math:`\rho_t = 1`, :math:`c_t = \lambda`,
    ``targets`` equals :func:`td_lambda_returns` and ``pg_advantages`` equals :func:`gae`, for any values.

    The results are plain functions of the inputs; a caller that differentiates through ``values``
    should stop the gradient of ``targets`` (the paper's targets are constants).

    Args:
        rewards, values, next_values, terminated, truncated: ``[T, B]`` as in :func:`gae`
            (``values[t] = V(obs_t)``, ``next_values[t] = V(next_obs_t)``, both of the target policy's critic).
        log_rho: ``[T, B]`` log importance ratios ``log pi(a_t|s_t) - log mu(a_t|s_t)``.
        gamma: discount factor.
        lambda_: the trace parameter in ``[0, 1]`` (1: the paper's eq. 1).
        rho_bar: truncation level of :math:`\rho_t` (the fixed point's policy; default 1).
        c_bar: truncation level of :math:`c_t` (the speed of the traces; default 1).
        All four scalars may be traced.
    Returns:
        :class:`VTrace` ``(targets, pg_advantages)``, both ``[T, B]``.
    """
    ratio = jnp.exp(log_rho.astype(rewards.dtype))
    rho = jnp.minimum(rho_bar, ratio)
    c = lambda_ * jnp.minimum(c_bar, ratio)
    not_term = 1.0 - terminated.astype(rewards.dtype)
    not_done = 1.0 - jnp.logical_or(terminated, truncated).astype(rewards.dtype)
    td_target = rewards + gamma * not_term * next_values  # r_t + gamma (1 - term_t) V(s'_t)
    deltas = rho * (td_target - values)

    def backward(next_corr, xs):  # next_corr = v_{t+1} - V(s_{t+1})
        delta, c_t, nd = xs
        corr = delta + gamma * c_t * nd * next_corr
        return corr, corr

    _, corrections = jax.lax.scan(backward, jnp.zeros_like(deltas[0]), (deltas, c, not_done), reverse=True)
    next_corr = jnp.concatenate([corrections[1:], jnp.zeros_like(corrections[:1])], axis=0)
    q = td_target + gamma * lambda_ * not_done * next_corr
    return VTrace(targets=values + corrections, pg_advantages=rho * (q - values))
