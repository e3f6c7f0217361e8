"""Hill climbing in policy-parameter space (lecture notes "Policy Search", *Gradient Free Policy
Optimization*), with optional adaptive noise scale.

Each generation perturbs the best parameters found so far with Gaussian noise,

.. math:: \\theta_i = \\theta^* + \\sigma\\,\\varepsilon_i, \\quad \\varepsilon_i \\sim \\mathcal N(0, I),
          \\quad i = 1 \\dots N-1,

scores every candidate by whole episodes, and keeps the best perturbation only if it beats the
incumbent: :math:`\\theta^* \\leftarrow \\theta_{i^*}` iff :math:`R(\\theta_{i^*}) > R^*`. With
``reevaluate`` (off by default) the incumbent is candidate 0 of every generation, so :math:`R^*` is a
fresh estimate and one lucky episode cannot lock the search. With ``adaptive_noise`` the scale
shrinks after an improvement (:math:`\\sigma \\leftarrow \\max(\\sigma\\cdot\\text{shrink}, \\sigma_{min})`)
and grows otherwise (:math:`\\sigma \\leftarrow \\min(\\sigma\\cdot\\text{grow}, \\sigma_{max})`).

The policy (linear or MLP, acting deterministically) is the CEM module's ``PolicyNet``; the
search runs on ``advantage/training/search.py`` like CEM. See ``docs/algorithms/cem.md``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from advantage.algos import cem
from advantage.config import check, static

NAME = "hill-climb"
NAN_METRICS: tuple[str, ...] = ()  # no metric is NaN by design
SEARCH = True


@struct.dataclass
class Config(cem.PolicySearchConfig):
    """Hill-climbing hyperparameters (defaults: a linear policy, 8 candidates per generation)."""

    # max_episode_steps, hidden_sizes, activation: the fields of cem.PolicySearchConfig
    population_size: int = static(8)
    """Candidates per generation: with reevaluate, the incumbent plus population_size - 1 perturbations."""
    episodes_per_candidate: int = static(3)
    """Episodes averaged into each candidate's return."""
    reevaluate: bool = static(False)
    """Score the incumbent again every generation (candidate 0) instead of trusting its first score."""
    adaptive_noise: bool = static(True)
    """Shrink the noise after an improvement, grow it otherwise."""

    init_std: float = 1.0
    """Std of the initial parameters theta* ~ N(0, init_std^2)."""
    noise_std: float = 0.5
    """Initial perturbation scale sigma."""
    noise_shrink: float = 0.5
    """adaptive_noise: sigma <- sigma * noise_shrink after an improvement."""
    noise_grow: float = 2.0
    """adaptive_noise: sigma <- sigma * noise_grow after a generation without one."""
    noise_min: float = 1e-3
    """Lower bound of the adaptive sigma."""
    noise_max: float = 2.0
    """Upper bound of the adaptive sigma."""

    def __post_init__(self):
        check(self, "population_size", lambda v: v >= 2, "use at least 2 candidates")
        self.check_search()  # episodes_per_candidate, max_episode_steps, hidden_sizes, activation, action_rows
        check(self, "init_std", lambda v: v >= 0, "the initial std must be >= 0")
        check(self, "noise_std", lambda v: v > 0, "the noise scale must be positive")
        check(self, "noise_shrink", lambda v: 0 < v <= 1, "the shrink factor must lie in (0, 1]")
        check(self, "noise_grow", lambda v: v >= 1, "the grow factor must be >= 1")
        check(self, "noise_min", lambda v: v > 0, "the lower bound must be positive")
        check(
            self,
            "noise_max",
            lambda v: v >= self.noise_min if isinstance(self.noise_min, float) else True,
            "the upper bound must be >= noise_min",
        )


PRESETS: dict[str, dict] = {"CartPole-v1": dict(population_size=8, episodes_per_candidate=3, noise_std=0.5)}
DEFAULT_STEPS: dict[str, int] = {"CartPole-v1": 200_000}


@struct.dataclass
class AgentState:
    params: Any  # the incumbent theta* (PolicyNet parameters)
    best_return: jax.Array  # R*: the incumbent's latest score (-inf before the first generation)
    noise_std: jax.Array  # sigma
    generation: jax.Array


def init(key, obs_space, action_space, config: Config, total_steps=None) -> AgentState:
    """``total_steps`` (the run's budget) is ignored: a search has no schedule."""
    k_net, k_theta = jax.random.split(key)
    template = cem.init_network(k_net, obs_space, action_space, config)
    leaves, treedef = jax.tree.flatten(template)
    keys = jax.random.split(k_theta, len(leaves))
    params = jax.tree.unflatten(
        treedef, [config.init_std * jax.random.normal(k, x.shape, x.dtype) for x, k in zip(leaves, keys)]
    )
    return AgentState(
        params, jnp.asarray(-jnp.inf, jnp.float32), jnp.asarray(config.noise_std, jnp.float32), jnp.zeros((), jnp.int32)
    )


def ask(config: Config, state: AgentState, key):
    """``(candidates, state)``: ``[theta*, theta* + sigma eps_1, ...]`` (reevaluate) or N perturbations."""
    n = config.population_size
    leaves, treedef = jax.tree.flatten(state.params)
    keys = jax.random.split(key, len(leaves))
    eps = [jax.random.normal(k, (n,) + x.shape, x.dtype) for x, k in zip(leaves, keys)]
    if config.reevaluate:
        eps = [e.at[0].set(0.0) for e in eps]
    return jax.tree.unflatten(treedef, [x + state.noise_std * e for x, e in zip(leaves, eps)]), state


def candidate_act(config: Config, action_space, candidate, obs, key):
    return cem.policy_dist(config, action_space, candidate, obs[None]).mode()[0]


def needs_trajectories(config: Config) -> bool:
    return False


def hill_climb_step(params, best_return, candidates, returns, reevaluate: bool):
    """Keep the best perturbation only if it is better. Returns ``(params, best_return, improved)``.

    With ``reevaluate``, candidate 0 is the incumbent and ``returns[0]`` its fresh score R*;
    otherwise R* is the stored ``best_return``."""
    first = 1 if reevaluate else 0
    reference = returns[0] if reevaluate else best_return
    i = first + jnp.argmax(returns[first:])
    improved = returns[i] > reference
    new_params = jax.tree.map(lambda c, p: jnp.where(improved, c[i], p), candidates, params)
    return new_params, jnp.where(improved, returns[i], reference), improved


def tell(config: Config, action_space, state: AgentState, candidates, returns, trajectories, key):
    params, best, improved = hill_climb_step(state.params, state.best_return, candidates, returns, config.reevaluate)
    sigma = state.noise_std
    if config.adaptive_noise:
        sigma = jnp.where(
            improved,
            jnp.maximum(sigma * config.noise_shrink, config.noise_min),
            jnp.minimum(sigma * config.noise_grow, config.noise_max),
        )
    metrics = {
        "search/noise_std": state.noise_std,
        "search/accepted": improved.astype(jnp.float32),
        "search/incumbent_return": best,
        "search/elite_return_mean": jnp.max(returns),
    }
    return AgentState(params, best, sigma, state.generation + 1), metrics


def act(config: Config, action_space, state: AgentState, obs, key, deterministic: bool = False):
    """The incumbent policy (always its mode) on a batch ``obs [B, ...]``; zero log-probs and values."""
    zeros = jnp.zeros(obs.shape[:1], jnp.float32)
    return cem.policy_dist(config, action_space, state.params, obs).mode(), zeros, zeros


def policy_params(state: AgentState):
    return {"params": state.params}
