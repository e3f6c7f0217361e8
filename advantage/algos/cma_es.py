"""CMA-ES (Hansen & Ostermeier 2001; tutorial: Hansen 2016, arXiv:1604.00772) over policy
parameters, through **evosax** (a maintained JAX library; install with
``pip install "advantage[evosax]"``). Nothing of CMA-ES itself is written here.

The search distribution is :math:`\\mathcal N(m, \\sigma^2 C)` over the flattened parameters of a
deterministic linear/MLP policy (the CEM module's ``PolicyNet``). Each generation evosax samples
the population (``ask``), the search driver scores every candidate by whole episodes, and evosax
updates the mean, step size and covariance from the ranks of the returns (``tell``; evosax
minimises, so it is told ``-return``). ``act`` is the policy at the mean ``m``.
See ``docs/algorithms/cem.md``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from jax.flatten_util import ravel_pytree

from advantage.algos import cem
from advantage.config import check, static
from advantage.errors import MissingExtraError

NAME = "cma-es"
NAN_METRICS: tuple[str, ...] = ()  # no metric is NaN by design
SEARCH = True

INSTALL_HINT = 'cma-es needs the evosax package: pip install "advantage[evosax]" (or: pip install evosax)'


def _evosax():
    try:
        from evosax.algorithms import CMA_ES
    except ImportError as e:  # pragma: no cover - depends on the installation
        raise MissingExtraError(f"{INSTALL_HINT} ({e})") from None
    return CMA_ES


@struct.dataclass
class Config(cem.PolicySearchConfig):
    """CMA-ES hyperparameters (evosax's defaults for everything not listed)."""

    # episodes_per_candidate, max_episode_steps, hidden_sizes, activation: the fields of cem.PolicySearchConfig
    population_size: int = static(16)
    """Candidates per generation (lambda); evosax uses the best half, with log-rank weights."""

    init_std: float = 0.5
    """Initial step size sigma_0 (the mean starts at 0)."""

    def __post_init__(self):
        check(self, "population_size", lambda v: v >= 4, "use at least 4 candidates")
        self.check_search()  # episodes_per_candidate, max_episode_steps, hidden_sizes, activation, action_rows
        check(self, "init_std", lambda v: v > 0, "the initial step size must be positive")


PRESETS: dict[str, dict] = {"CartPole-v1": dict(population_size=16, init_std=0.5)}
DEFAULT_STEPS: dict[str, int] = {"CartPole-v1": 200_000}


class AgentState(struct.PyTreeNode):
    policy: Any  # PolicyNet parameters at the mean m (what act uses)
    es_state: Any  # evosax's CMA-ES state (mean, sigma, C, paths, ...)
    generation: jax.Array


def strategy(config: Config, flat_template):
    """evosax's CMA-ES for vectors like ``flat_template``, and its parameters (sigma_0 = init_std)."""
    es = _evosax()(population_size=config.population_size, solution=flat_template)
    return es, es.default_params.replace(std_init=jnp.asarray(config.init_std, jnp.float32))


def init(key, obs_space, action_space, config: Config, total_steps=None) -> AgentState:
    """``total_steps`` (the run's budget) is ignored: a search has no schedule."""
    k_net, k_es = jax.random.split(key)
    template = cem.init_network(k_net, obs_space, action_space, config)
    mean = jax.tree.map(jnp.zeros_like, template)
    flat, _ = ravel_pytree(mean)
    es, params = strategy(config, flat)
    return AgentState(mean, es.init(k_es, flat, params), jnp.zeros((), jnp.int32))


def ask(config: Config, state: AgentState, key):
    """``(candidates, state)``: evosax's population, unflattened into ``[N, ...]`` parameter pytrees."""
    flat, unravel = ravel_pytree(state.policy)
    es, params = strategy(config, flat)
    population, es_state = es.ask(key, state.es_state, params)
    return jax.vmap(unravel)(population), state.replace(es_state=es_state)


def candidate_act(config: Config, action_space, candidate, obs, key):
    return cem.policy_dist(config, action_space, candidate, obs[None]).mode()[0]


def needs_trajectories(config: Config) -> bool:
    return False


def tell(config: Config, action_space, state: AgentState, candidates, returns, trajectories, key):
    flat, unravel = ravel_pytree(state.policy)
    es, params = strategy(config, flat)
    population = jax.vmap(lambda c: ravel_pytree(c)[0])(candidates)
    es_state, _ = es.tell(key, population, -returns, state.es_state, params)  # evosax minimises
    metrics = {
        "search/noise_std": jnp.asarray(es_state.std, jnp.float32),
        "search/elite_return_mean": jnp.mean(jax.lax.top_k(returns, max(1, config.population_size // 2))[0]),
    }
    return AgentState(unravel(es.get_mean(es_state)), es_state, state.generation + 1), metrics


def act(config: Config, action_space, state: AgentState, obs, key, deterministic: bool = False):
    """The policy at the mean ``m`` (always its mode) on a batch ``obs [B, ...]``; zero log-probs and values."""
    zeros = jnp.zeros(obs.shape[:1], jnp.float32)
    return cem.policy_dist(config, action_space, state.policy, obs).mode(), zeros, zeros


def policy_params(state: AgentState):
    return {"policy": state.policy}
