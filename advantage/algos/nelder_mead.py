"""Nelder–Mead simplex search over policy parameters (Nelder & Mead 1965; the variant of Lagarias et al.
1998 that SciPy's ``minimize(method="Nelder-Mead")`` implements), written as pure-JAX ask/tell.

The search keeps a simplex of :math:`n + 1` parameter vectors :math:`x_0, \\dots, x_n` (``n`` = number of
policy parameters), sorted by :math:`f = -\\text{return}`, so :math:`x_0` is the best and :math:`x_n` the worst.
With the centroid of the best ``n``, :math:`\\bar x = \\frac1n \\sum_{i<n} x_i`, one iteration tries

.. math:: x_r = \\bar x + \\rho(\\bar x - x_n), \\quad x_e = \\bar x + \\rho\\chi(\\bar x - x_n), \\quad
          x_{oc} = \\bar x + \\psi\\rho(\\bar x - x_n), \\quad x_{ic} = \\bar x - \\psi(\\bar x - x_n)

(reflection, expansion, outside and inside contraction; :math:`\\rho, \\chi, \\psi, \\sigma = 1, 2, \\tfrac12,
\\tfrac12`, or with ``adaptive`` Gao & Han's :math:`1, 1 + \\tfrac2n, \\tfrac34 - \\tfrac1{2n}, 1 - \\tfrac1n`) and
replaces :math:`x_n` by the first that SciPy's rules accept:

* :math:`f_r < f_0`: :math:`x_e` if :math:`f_e < f_r`, else :math:`x_r` (expansion);
* :math:`f_0 \\le f_r < f_{n-1}`: :math:`x_r` (reflection);
* :math:`f_{n-1} \\le f_r < f_n`: :math:`x_{oc}` if :math:`f_{oc} \\le f_r` (outside contraction), else shrink;
* :math:`f_r \\ge f_n`: :math:`x_{ic}` if :math:`f_{ic} < f_n` (inside contraction), else shrink;

where *shrink* moves every vertex towards the best, :math:`x_i \\leftarrow x_0 + \\sigma(x_i - x_0)`, and the
moved vertices must be scored again. Then the simplex is sorted again.

**Why pure JAX and not SciPy.** ``scipy.optimize.minimize`` owns its loop: it calls the objective
one point at a time and cannot be paused between calls, which does not fit ask/tell (the search driver
scores a whole population of episodes per generation, compiled and vmapped, on many seeds at once);
driving it from a thread or by replaying its calls would put host Python and SciPy's float64 state
inside every generation and make checkpoints impossible. The simplex steps are a dozen lines, so they
are written here as pure functions on a pytree state (checkpointed like any agent state, ``vmap``-ed
over seeds), and ``tests/test_search.py`` checks them against SciPy's own iterates on a quadratic.

**Fitting the sequential method to generations.** SciPy evaluates :math:`x_r` first and the other
points only when its rules need them. Here every generation scores the four trial points at once
(speculatively: 2-4 times SciPy's evaluations per iteration, in the same wall time when they run in
parallel) and ``tell`` applies exactly SciPy's rules to the four scores, so the sequence of simplices is
SciPy's. Vertices whose score is unknown (the initial simplex, and the ``n`` vertices moved by a shrink)
are scored ``population_size`` per generation until all are known (a *fill* generation). With
``population_size > 4`` the trial points are repeated cyclically and each one's score is the mean
over its copies. A noisy return fools the simplex as it fools any search (a lucky vertex stays best,
its score is never refreshed): average episodes with ``episodes_per_candidate``, and re-score the best
vertex with ``reevaluate_best``.

**Re-scoring the best vertex** (``reevaluate_best``; the usual remedy for a simplex search on a noisy
objective, cf. Barton & Ivey 1996, who re-score the best vertex). Each vertex keeps the number
:math:`c_i` of scores its value :math:`f_i` averages. In an iteration generation the last population slot
scores :math:`x_0` again, :math:`\\hat f`, and after SciPy's decision (taken on the simplex and values as
they were when the points were asked for) its value becomes the running mean

.. math:: f_0 \\leftarrow \\frac{c_0 f_0 + \\hat f}{c_0 + 1}, \\qquad c_0 \\leftarrow c_0 + 1,

then the simplex is sorted again: a vertex that scored high by luck falls back to its mean and loses its
place. The other slots hold the trial points (cyclically), so ``population_size`` must be at least 5. With
the option off nothing is re-scored and the sequence is SciPy's.

The initial simplex is :math:`x_0 \\sim \\mathcal N(0, \\text{init\\_std}^2 I)`, :math:`x_i = x_0 + \\delta e_i`
(``initial_step`` :math:`\\delta`). Simplex methods do not scale with ``n`` (fill and shrink cost
``n / population_size`` generations; progress slows with dimension): use a linear policy.
``act`` is the best vertex :math:`x_0`, acting deterministically (the CEM module's ``PolicyNet``).
See ``docs/algorithms/search.md``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from jax.flatten_util import ravel_pytree

from advantage.algos import cem
from advantage.config import check, static

NAME = "nelder-mead"
NAN_METRICS: tuple[str, ...] = ()  # no metric is NaN by design
SEARCH = True

#: Trial points per iteration: reflection, expansion, outside contraction, inside contraction.
N_TRIALS = 4


@struct.dataclass
class Config(cem.PolicySearchConfig):
    """Nelder–Mead hyperparameters (defaults: a linear policy, the four trial points per generation)."""

    # max_episode_steps, activation: the fields of cem.PolicySearchConfig
    population_size: int = static(4)
    """Points scored per generation (>= 4): the four trial points (repeated and averaged when larger; with
    reevaluate_best the last slot scores x_0 again, so >= 5), or the next vertices of the simplex to score
    (initial simplex, after a shrink)."""
    episodes_per_candidate: int = static(1)
    """Episodes averaged into each point's return (against "lucky" vertices in noisy envs)."""
    hidden_sizes: tuple[int, ...] = static(())
    """Hidden layers of the policy network; () is a linear policy (recommended: a simplex has n + 1 vertices)."""
    adaptive: bool = static(False)
    """Gao & Han's dimension-dependent coefficients (SciPy's adaptive=True), better for larger n."""
    reevaluate_best: bool = static(False)
    """Score the best vertex x_0 again in every iteration (the last population slot) and keep the running mean
    of its scores, so a vertex that scored high by luck falls back (needs population_size >= 5)."""

    init_std: float = 0.0
    """Std of the first vertex x_0 ~ N(0, init_std^2 I) (0: x_0 = 0)."""
    initial_step: float = 1.0
    """delta: the other vertices are x_0 + delta e_i."""

    def __post_init__(self):
        check(self, "population_size", lambda v: v >= N_TRIALS, f"use at least {N_TRIALS} (the trial points)")
        if self.reevaluate_best:
            check(
                self,
                "population_size",
                lambda v: v >= N_TRIALS + 1,
                f"reevaluate_best needs at least {N_TRIALS + 1} (the trial points and x_0 again)",
            )
        self.check_search()  # episodes_per_candidate, max_episode_steps, hidden_sizes, activation, action_rows
        check(self, "init_std", lambda v: v >= 0, "the initial std must be >= 0")
        check(self, "initial_step", lambda v: v > 0, "the simplex needs a positive initial step")


# CartPole-v1: 20 of seeds 0-19 under AVX2 and AVX, 18 of 20-39 (docs/algorithms/search.md, "Measured results")
PRESETS: dict[str, dict] = {
    "CartPole-v1": dict(population_size=5, episodes_per_candidate=5, initial_step=1.0, reevaluate_best=True)
}
DEFAULT_STEPS: dict[str, int] = {"CartPole-v1": 300_000}


class AgentState(struct.PyTreeNode):
    policy: Any  # the best vertex x_0 as PolicyNet parameters (what act uses)
    simplex: jax.Array  # [n + 1, n] vertices, sorted by value once every value is known
    values: jax.Array  # [n + 1] f = -return of each vertex (stale where not yet scored); a mean of counts scores
    counts: jax.Array  # [n + 1] how many scores each value averages (0 where not yet scored)
    fill: jax.Array  # index of the next vertex to score; n + 1 once all are known
    iterations: jax.Array  # completed Nelder–Mead iterations (a shrink counts as one, as in SciPy)
    generation: jax.Array


# ----------------------------------------------------------------------------- the math


def coefficients(n: int, adaptive: bool) -> tuple[float, float, float, float]:
    """``(rho, chi, psi, sigma)``: reflection, expansion, contraction, shrink (SciPy's two choices)."""
    if adaptive:
        return 1.0, 1.0 + 2.0 / n, 0.75 - 1.0 / (2.0 * n), 1.0 - 1.0 / n
    return 1.0, 2.0, 0.5, 0.5


def trial_points(simplex, coeffs):
    """``[4, n]``: reflection, expansion, outside and inside contraction of a sorted ``simplex [n + 1, n]``
    (SciPy's formulas: :math:`x_r = (1 + \\rho)\\bar x - \\rho x_n`,
    :math:`x_e = (1 + \\rho\\chi)\\bar x - \\rho\\chi x_n`,
    :math:`x_{oc} = (1 + \\psi\\rho)\\bar x - \\psi\\rho x_n`, :math:`x_{ic} = (1 - \\psi)\\bar x + \\psi x_n`)."""
    rho, chi, psi, _ = coeffs
    xbar, worst = jnp.mean(simplex[:-1], axis=0), simplex[-1]
    return jnp.stack(
        [
            (1 + rho) * xbar - rho * worst,
            (1 + rho * chi) * xbar - rho * chi * worst,
            (1 + psi * rho) * xbar - psi * rho * worst,
            (1 - psi) * xbar + psi * worst,
        ]
    )


def decision(values, trial_values):
    """``(choice, shrink)``: SciPy's rules on a sorted simplex's ``values [n + 1]`` and the ``trial_values [4]``
    of :func:`trial_points`: the index of the accepted trial point (1 = x_e, 0 = x_r, 2 = x_oc, 3 = x_ic;
    meaningless when ``shrink``) and whether the simplex shrinks instead."""
    f_r, f_e, f_oc, f_ic = trial_values
    f_best, f_second_worst, f_worst = values[0], values[-2], values[-1]
    expand = f_r < f_best
    reflect = ~expand & (f_r < f_second_worst)
    outside = ~expand & ~reflect & (f_r < f_worst)
    inside = ~expand & ~reflect & ~outside
    choice = jnp.where(expand, jnp.where(f_e < f_r, 1, 0), jnp.where(reflect, 0, jnp.where(outside, 2, 3))).astype(
        jnp.int32
    )
    shrink = (outside & ~(f_oc <= f_r)) | (inside & ~(f_ic < f_worst))
    return choice, shrink


def nelder_mead_step(simplex, values, trials, trial_values, coeffs):
    """One iteration's decision on a sorted simplex (``values [n + 1]`` ascending, ``trials [4, n]`` and
    their ``trial_values [4]`` in :func:`trial_points`' order). Returns ``(simplex, values, shrink)``:
    the worst vertex replaced by the accepted point (not yet re-sorted), or, if ``shrink``, every vertex but
    the best moved towards it (their values then unknown: the caller scores them again)."""
    choice, shrink = decision(values, trial_values)
    return apply_decision(simplex, values, trials, trial_values, choice, shrink, coeffs)


def apply_decision(simplex, values, trials, trial_values, choice, shrink, coeffs):
    """:func:`nelder_mead_step` for a :func:`decision` ``(choice, shrink)`` already taken."""
    sigma = coeffs[3]
    accepted = simplex.at[-1].set(trials[choice]), values.at[-1].set(trial_values[choice])
    shrunk = simplex[0] + sigma * (simplex - simplex[0])
    new_simplex = jnp.where(shrink, shrunk, accepted[0])
    new_values = jnp.where(shrink, values, accepted[1])
    return new_simplex, new_values, shrink


def sort_simplex(simplex, values, *per_vertex):
    """Vertices in ascending order of value (ties keep their order, as NumPy's sort of a small array), and any
    ``per_vertex`` arrays (e.g. the score counts) in the same order."""
    order = jnp.argsort(values, stable=True)
    return (simplex[order], values[order], *(a[order] for a in per_vertex))


def simplex_size(simplex):
    """:math:`\\max_i \\lVert x_i - x_0 \\rVert_\\infty` (SciPy's ``xatol`` measure)."""
    return jnp.max(jnp.abs(simplex[1:] - simplex[0]))


def _trial_slots(config: Config):
    """``[P]``: the trial point each population slot scores in an iteration (0-3 cyclically), or
    ``N_TRIALS`` for the last slot when it re-scores the best vertex (``reevaluate_best``)."""
    p = config.population_size
    slot = jnp.arange(p) % N_TRIALS
    return slot.at[-1].set(N_TRIALS) if config.reevaluate_best else slot


def _scores(returns, slot):
    """``(f [5], copies [5])``: the four trial points' and (index 4) the best vertex's re-score, each the mean over
    the population slots that scored it (``returns [P]``, ``slot`` from :func:`_trial_slots`)."""
    total = jnp.zeros(N_TRIALS + 1, returns.dtype).at[slot].add(returns)
    count = jnp.zeros(N_TRIALS + 1, returns.dtype).at[slot].add(1.0)
    return -total / jnp.maximum(count, 1.0), count


def running_mean_best(values, counts, f_new, weight):
    r"""The best vertex's value after ``weight`` more scores of mean ``f_new``:
    :math:`f_0 \leftarrow (c_0 f_0 + w \hat f) / (c_0 + w)`, :math:`c_0 \leftarrow c_0 + w`."""
    c0 = counts[0] + weight
    return values.at[0].set((counts[0] * values[0] + weight * f_new) / c0), counts.at[0].set(c0)


# ----------------------------------------------------------------------------- the search


def init(key, obs_space, action_space, config: Config, total_steps=None) -> AgentState:
    """``total_steps`` (the run's budget) is ignored: a search has no schedule."""
    k_net, k_x0 = jax.random.split(key)
    template = cem.init_network(k_net, obs_space, action_space, config)
    flat, unravel = ravel_pytree(template)
    x0 = config.init_std * jax.random.normal(k_x0, flat.shape, flat.dtype)
    return init_state(x0, config.initial_step, unravel)


def init_state(x0, initial_step, unravel=lambda x: x) -> AgentState:
    """The initial simplex around ``x0 [n]``: ``x_0 = x0``, ``x_i = x0 + initial_step e_i``; no vertex scored."""
    n = x0.shape[0]
    simplex = jnp.concatenate([x0[None], x0[None] + initial_step * jnp.eye(n, dtype=x0.dtype)])
    zero = jnp.zeros((), jnp.int32)
    values, counts = jnp.full((n + 1,), jnp.inf, x0.dtype), jnp.zeros((n + 1,), x0.dtype)
    return AgentState(unravel(x0), simplex, values, counts, zero, zero, zero)


def _filling(state: AgentState):
    return state.fill < state.simplex.shape[0]


def ask(config: Config, state: AgentState, key):
    """``(candidates, state)``: the next ``population_size`` vertices to score (clipped to the last) while
    some are unknown, else the four trial points repeated cyclically (and x_0 last with ``reevaluate_best``)."""
    n1, p = state.simplex.shape[0], config.population_size
    coeffs = coefficients(n1 - 1, config.adaptive)
    unknown = state.simplex[jnp.minimum(state.fill + jnp.arange(p), n1 - 1)]
    with_best = jnp.concatenate([trial_points(state.simplex, coeffs), state.simplex[:1]])
    trials = with_best[_trial_slots(config)]
    points = jnp.where(_filling(state), unknown, trials)
    _, unravel = ravel_pytree(state.policy)
    return jax.vmap(unravel)(points), state


def candidate_act(config: Config, action_space, candidate, obs, key):
    return cem.policy_dist(config, action_space, candidate, obs[None]).mode()[0]


def needs_trajectories(config: Config) -> bool:
    return False


def tell(config: Config, action_space, state: AgentState, candidates, returns, trajectories, key):
    """Record the scores of a fill generation (sorting once all are known), or take one iteration."""
    n1, p = state.simplex.shape[0], config.population_size
    coeffs = coefficients(n1 - 1, config.adaptive)
    filling = _filling(state)
    returns = returns.astype(state.values.dtype)

    # a fill generation: vertices fill .. fill + p - 1 (those past the end are dropped)
    idx = state.fill + jnp.arange(p)
    idx = jnp.where(idx < n1, idx, n1)
    filled_values = state.values.at[idx].set(-returns, mode="drop")
    filled_counts = state.counts.at[idx].set(1.0, mode="drop")
    fill_after = jnp.minimum(state.fill + p, n1)
    f_simplex, f_values, f_counts = jax.lax.cond(
        fill_after == n1, sort_simplex, lambda *a: a, state.simplex, filled_values, filled_counts
    )

    # an iteration on the sorted simplex (x_0 is kept by every step, so its re-score applies after the step)
    trials = trial_points(state.simplex, coeffs)
    scores, copies = _scores(returns, _trial_slots(config))
    choice, shrink = decision(state.values, scores[:N_TRIALS])
    s_simplex, s_values, _ = apply_decision(
        state.simplex, state.values, trials, scores[:N_TRIALS], choice, shrink, coeffs
    )
    s_counts = jnp.where(shrink, state.counts.at[1:].set(0.0), state.counts.at[-1].set(copies[choice]))
    if config.reevaluate_best:
        s_values, s_counts = running_mean_best(s_values, s_counts, scores[N_TRIALS], copies[N_TRIALS])
    s_simplex, s_values, s_counts = jax.lax.cond(shrink, lambda *a: a, sort_simplex, s_simplex, s_values, s_counts)

    simplex = jnp.where(filling, f_simplex, s_simplex)
    values = jnp.where(filling, f_values, s_values)
    counts = jnp.where(filling, f_counts, s_counts)
    fill = jnp.where(filling, fill_after, jnp.where(shrink, 1, n1)).astype(jnp.int32)
    iterations = state.iterations + jnp.where(filling, 0, 1).astype(jnp.int32)
    _, unravel = ravel_pytree(state.policy)
    metrics = {
        "search/incumbent_return": -values[0],
        "search/simplex_size": simplex_size(simplex).astype(jnp.float32),
        "search/fill": filling.astype(jnp.float32),
        "search/shrink": (~filling & shrink).astype(jnp.float32),
        "search/iterations": iterations.astype(jnp.float32),
        "search/incumbent_scores": counts[0].astype(jnp.float32),
    }
    new = AgentState(unravel(simplex[0]), simplex, values, counts, fill, iterations, state.generation + 1)
    return new, metrics


def act(config: Config, action_space, state: AgentState, obs, key, deterministic: bool = False):
    """The best vertex (always its mode) on a batch ``obs [B, ...]``; zero log-probs and values."""
    zeros = jnp.zeros(obs.shape[:1], jnp.float32)
    return cem.policy_dist(config, action_space, state.policy, obs).mode(), zeros, zeros


def policy_params(state: AgentState):
    return {"policy": state.policy}
