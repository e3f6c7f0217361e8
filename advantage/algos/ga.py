"""A genetic algorithm over policy parameters (lecture notes "Policy Search", *Gradient Free Policy
Optimization*; the deep-neuroevolution GA of Such et al. 2017, arXiv:1712.06567), through **evosax**'s
``SimpleGA`` (install with ``pip install "advantage[evosax]"``). Selection, crossover and mutation are
evosax's; this module adds only the elite carried over unchanged.

Each generation of ``N`` candidates is bred from the previous one, ranked by return:

.. math:: \\text{parents} \\sim \\text{Uniform}(\\text{top } \\lfloor N/2 \\rfloor), \\qquad
          \\theta_{child} = (1 - m) \\odot \\theta_{p_1} + m \\odot \\theta_{p_2} + \\sigma\\,\\varepsilon,
          \\quad m_j \\sim \\text{Bernoulli}(p_{cross}),\\ \\varepsilon \\sim \\mathcal N(0, I)

(truncation selection of the better half, uniform crossover with rate ``crossover_rate``, Gaussian
mutation of scale ``mutation_std``). With ``elitism`` (Such et al.'s GA) candidate 0 of every
generation is the previous generation's best, *unmutated*: the best policy found is never lost to a
mutation, and it is scored again each generation, so a lucky episode does not keep it on top for ever.
The generation-0 parents are ``N`` draws from :math:`\\mathcal N(0, \\text{init\\_std}^2 I)` (treated as
equally good, evosax breeds the first half of them).

``act`` is the best candidate of the last scored generation (the elite), acting deterministically
(the mode of the CEM module's linear/MLP ``PolicyNet``). See ``docs/algorithms/search.md``.
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

NAME = "ga"
NAN_METRICS: tuple[str, ...] = ()  # no metric is NaN by design
SEARCH = True

INSTALL_HINT = 'ga needs the evosax package: pip install "advantage[evosax]" (or: pip install evosax)'


def _evosax():
    try:
        from evosax.algorithms import SimpleGA
    except ImportError as e:  # pragma: no cover - depends on the installation
        raise MissingExtraError(f"{INSTALL_HINT} ({e})") from None
    return SimpleGA


@struct.dataclass
class Config(cem.PolicySearchConfig):
    """Genetic-algorithm hyperparameters (evosax's SimpleGA: the better half are the parents)."""

    # max_episode_steps, hidden_sizes, activation: the fields of cem.PolicySearchConfig
    population_size: int = static(16)
    """Candidates per generation N; the best N // 2 are the parents of the next one."""
    episodes_per_candidate: int = static(1)
    """Episodes averaged into each candidate's return (against "lucky" candidates in noisy envs)."""
    elitism: bool = static(True)
    """Carry the best candidate of a generation into the next one unmutated (as candidate 0)."""

    init_std: float = 1.0
    """Std of the generation-0 parents, theta ~ N(0, init_std^2)."""
    mutation_std: float = 0.1
    """sigma of the Gaussian mutation added to every child."""
    crossover_rate: float = 0.0
    """Probability that a parameter of a child comes from its second parent (0: mutation only, as Such et al.)."""

    def __post_init__(self):
        check(self, "population_size", lambda v: v >= 4, "use at least 4 candidates (2 parents)")
        self.check_search()  # episodes_per_candidate, max_episode_steps, hidden_sizes, activation, action_rows
        check(self, "init_std", lambda v: v > 0, "the initial std must be positive")
        check(self, "mutation_std", lambda v: v > 0, "the mutation scale must be positive")
        check(self, "crossover_rate", lambda v: 0 <= v <= 1, "the crossover rate must lie in [0, 1]")


PRESETS: dict[str, dict] = {"CartPole-v1": dict(population_size=32, mutation_std=0.3, init_std=1.0)}
DEFAULT_STEPS: dict[str, int] = {"CartPole-v1": 100_000}


class AgentState(struct.PyTreeNode):
    policy: Any  # the elite: the best candidate of the last scored generation (what act uses)
    es_state: Any  # evosax's SimpleGA state (the last population and its fitness = -return)
    generation: jax.Array


def strategy(config: Config, flat_template):
    """evosax's SimpleGA for vectors like ``flat_template``, and its parameters (crossover rate)."""
    es = _evosax()(population_size=config.population_size, solution=flat_template)
    return es, es.default_params.replace(crossover_rate=jnp.asarray(config.crossover_rate, jnp.float32))


def init(key, obs_space, action_space, config: Config, total_steps=None) -> AgentState:
    """``total_steps`` (the run's budget) is ignored: a search has no schedule."""
    k_net, k_pop, k_es = jax.random.split(key, 3)
    template = cem.init_network(k_net, obs_space, action_space, config)
    flat, unravel = ravel_pytree(template)
    es, params = strategy(config, flat)
    parents = config.init_std * jax.random.normal(k_pop, (config.population_size, flat.size), flat.dtype)
    es_state = es.init(k_es, parents, jnp.zeros(config.population_size, jnp.float32), params)
    return AgentState(unravel(parents[0]), es_state, jnp.zeros((), jnp.int32))


def ask(config: Config, state: AgentState, key):
    """``(candidates, state)``: the children of the last generation's better half (``[N, ...]`` parameter
    pytrees); with ``elitism`` candidate 0 is the elite itself."""
    flat, unravel = ravel_pytree(state.policy)
    es, params = strategy(config, flat)
    es_state = state.es_state.replace(std=jnp.asarray(config.mutation_std, jnp.float32))
    population, es_state = es.ask(key, es_state, params)
    if config.elitism:
        population = population.at[0].set(flat)
    return jax.vmap(unravel)(population), state.replace(es_state=es_state)


def candidate_act(config: Config, action_space, candidate, obs, key):
    return cem.policy_dist(config, action_space, candidate, obs[None]).mode()[0]


def needs_trajectories(config: Config) -> bool:
    return False


def tell(config: Config, action_space, state: AgentState, candidates, returns, trajectories, key):
    """Store the scored generation (evosax minimises: it is told ``-return``); the elite is its best."""
    flat, unravel = ravel_pytree(state.policy)
    es, params = strategy(config, flat)
    population = jax.vmap(lambda c: ravel_pytree(c)[0])(candidates)
    es_state, _ = es.tell(key, population, -returns, state.es_state, params)
    best = jnp.argmax(returns)
    parents = jax.lax.top_k(returns, es.num_elites)[0]
    metrics = {
        "search/noise_std": jnp.asarray(config.mutation_std, jnp.float32),
        "search/elite_return_mean": jnp.mean(parents),
        "search/elite_threshold": parents[-1],
        "search/elite_kept": (best == 0).astype(jnp.float32) if config.elitism else jnp.float32(0.0),
    }
    return AgentState(unravel(population[best]), es_state, state.generation + 1), metrics


def act(config: Config, action_space, state: AgentState, obs, key, deterministic: bool = False):
    """The elite (always its mode) on a batch ``obs [B, ...]``; zero log-probs and values."""
    zeros = jnp.zeros(obs.shape[:1], jnp.float32)
    return cem.policy_dist(config, action_space, state.policy, obs).mode(), zeros, zeros


def policy_params(state: AgentState):
    return {"policy": state.policy}
