"""The cross-entropy method (CEM): tabular, fitted-network and parameter-space variants.

Lecture notes "Policy Search", slides *Cross-Entropy Method*, *Tabular Cross-Entropy* and
*Approximated Cross-Entropy Method*: from the current policy sample N roll-outs, keep the M
with the highest return (the **elite**), fit a new policy to behave like the elite, repeat.

``variant`` picks what "fit the policy to the elite" means:

* ``tabular`` -- the slides' algorithm, for Discrete observations: the policy is a table
  ``pi[s, a]`` refitted in closed form to the elite's state-action counts with smoothing lambda
  (:func:`tabular_refit`).
* ``fit`` -- approximate CEM with a neural policy: ``fit_steps`` Adam steps on
  ``max_theta sum_{(s,a) in elite} log pi_theta(a|s)`` (:func:`elite_log_likelihood`).
* ``params`` -- CEM in parameter space (Szita & Lorincz 2006): a diagonal Gaussian over the
  parameters of a deterministic linear/MLP policy; the population is sampled from it, and its
  mean and variance are refitted to the elite parameter vectors (:func:`gaussian_refit`).

This is a *search* algorithm (``SEARCH = True``): it is driven by
``advantage/training/search.py`` through ``ask`` (the candidates of a generation), the driver's
population roll-out (whole episodes, vmapped over candidates), and ``tell`` (the refit).
``act`` is the current policy (the table, the network, or the Gaussian's mean), so the
standard evaluation, ``advantage eval`` and videos work unchanged. Every detail and default is
listed in ``docs/algorithms/cem.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from advantage.config import ConfigError, check, static
from advantage.core import optim
from advantage.core.distributions import categorical
from advantage.core.losses import masked_mean
from advantage.envs.spaces import action_dim, action_factors, is_discrete
from advantage.nets.mlp import MLP, PolicyHead, check_torso

NAME = "cem"
NAN_METRICS: tuple[str, ...] = ()  # no metric is NaN by design
SEARCH = True

VARIANTS = ("tabular", "fit", "params")
ACTION_ROWS = ("auto", "on", "off")


class SearchSchedule:
    """``n_envs = n_steps = 1``, which the generic driver's Schedule reads: a search algorithm steps whole episodes
    instead. Every search ``Config`` derives from it."""

    @property
    def n_envs(self) -> int:
        return 1

    @property
    def n_steps(self) -> int:
        return 1


@struct.dataclass
class Config(SearchSchedule):
    """Cross-entropy method hyperparameters (defaults: parameter-space CEM with a linear policy)."""

    variant: str = static("params")
    """What is refitted to the elite: tabular (a table pi[s, a], Discrete observations only), fit (a neural
    policy, by maximum likelihood of the elite's actions) or params (a diagonal Gaussian over policy parameters)."""
    population_size: int = static(50)
    """Candidates per generation N (tabular/fit: roll-outs of the current policy; params: parameter vectors)."""
    elite_frac: float = static(0.2)
    """Fraction of the population kept as the elite: M = ceil(elite_frac * N)."""
    episodes_per_candidate: int = static(1)
    """params: episodes averaged into each candidate's return (fights "lucky" candidates); tabular/fit: must be 1."""
    max_episode_steps: int | None = static(None)
    """Cut roll-outs after this many steps (default: the env's time limit, else 1000)."""
    hidden_sizes: tuple[int, ...] = static(())
    """fit/params: hidden layers of the policy network; () is a linear policy."""
    activation: str = static("tanh")
    """Hidden activation: tanh, relu, elu or gelu."""
    fit_steps: int = static(20)
    """fit: Adam steps on the elite log-likelihood per generation."""

    smoothing: float = 1.0
    """tabular: lambda, added to every count: pi(a|s) = (n(s,a) + lambda) / (n(s) + lambda |A|)."""
    learning_rate: float = 1e-2
    """fit: Adam step size."""
    init_std: float = 1.0
    """params: initial standard deviation of the parameter distribution (its mean starts at 0)."""
    extra_std: float = 0.0
    """params: noise added to the refitted std, sigma^2 <- var(elite) + extra_std^2 (keeps the search from
    collapsing)."""
    update_rate: float = 1.0
    """tabular/params: alpha of the smoothed refit new = alpha * fit + (1 - alpha) * old (1: the plain refit)."""
    action_rows: str = static("auto")
    """fit/params: whether an observation [A, F] holds one feature row phi(s, a) per action, scored by one shared
    network, logits_a = f(phi(s, a)) (Szita & Lorincz's Tetris; Tetris-v0): auto (when the observation's shape is
    [number of actions, F]), on, or off (flatten it like any other observation)."""

    def __post_init__(self):
        check(self, "variant", lambda v: v in VARIANTS, f"choose one of {', '.join(VARIANTS)}")
        check(self, "population_size", lambda v: v >= 2, "use at least 2 candidates")
        check(self, "elite_frac", lambda v: 0 < v <= 1, "the elite fraction must lie in (0, 1]")
        check(self, "episodes_per_candidate", lambda v: v >= 1, "run at least one episode per candidate")
        if self.max_episode_steps is not None:
            check(self, "max_episode_steps", lambda v: v >= 1, "use a positive step cap (or None)")
        check_torso(self)
        check(self, "fit_steps", lambda v: v >= 1, "take at least one fitting step")
        check(self, "smoothing", lambda v: v >= 0, "lambda must be >= 0")
        check(self, "learning_rate", lambda v: v > 0, "the learning rate must be positive")
        check(self, "init_std", lambda v: v > 0, "the initial std must be positive")
        check(self, "extra_std", lambda v: v >= 0, "the extra noise must be >= 0")
        check(self, "update_rate", lambda v: 0 < v <= 1, "alpha must lie in (0, 1]")
        check(self, "action_rows", lambda v: v in ACTION_ROWS, f"choose one of {', '.join(ACTION_ROWS)}")
        if self.variant in ("tabular", "fit") and self.episodes_per_candidate != 1:
            raise ConfigError(
                f"cem.episodes_per_candidate={self.episodes_per_candidate} is invalid: with variant="
                f"{self.variant} every roll-out is its own candidate; use 1 (or variant=params)"
            )

    @property
    def n_elite(self) -> int:
        """M = ceil(elite_frac * population_size), at least 1."""
        return max(1, math.ceil(self.elite_frac * self.population_size - 1e-9))


@struct.dataclass
class PolicySearchConfig(SearchSchedule):
    """The ``Config`` fields and checks of a search over the parameters of a :class:`PolicyNet` acting
    deterministically (hill-climb, cma-es, ga and nelder-mead derive from it; CEM's own ``Config`` puts
    ``variant`` first). A ``Config`` re-declares a field whose default or help differs: the field keeps its
    place, first here, and the CLI shows the re-declared default and help. Its ``__post_init__`` checks
    ``population_size`` (each search needs its own minimum), then calls :meth:`check_search`."""

    population_size: int = static(16)
    """Candidates per generation N."""
    episodes_per_candidate: int = static(1)
    """Episodes averaged into each candidate's return."""
    max_episode_steps: int | None = static(None)
    """Cut roll-outs after this many steps (default: the env's time limit, else 1000)."""
    hidden_sizes: tuple[int, ...] = static(())
    """Hidden layers of the policy network; () is a linear policy."""
    activation: str = static("tanh")
    """Hidden activation: tanh, relu, elu or gelu."""
    action_rows: str = static("auto")
    """Whether an observation [A, F] holds one feature row phi(s, a) per action, scored by one shared network
    (Tetris-v0): auto (when its shape is [number of actions, F]), on, or off (flatten it)."""

    def check_search(self) -> None:
        """The checks of ``episodes_per_candidate``, ``max_episode_steps``, the network's torso and ``action_rows``."""
        check(self, "episodes_per_candidate", lambda v: v >= 1, "run at least one episode per candidate")
        if self.max_episode_steps is not None:
            check(self, "max_episode_steps", lambda v: v >= 1, "use a positive step cap (or None)")
        check_torso(self)
        check(self, "action_rows", lambda v: v in ACTION_ROWS, f"choose one of {', '.join(ACTION_ROWS)}")


#: Per-environment defaults (see docs/algorithms/cem.md for the measured results).
PRESETS: dict[str, dict] = {
    "Gridworld-v0": dict(variant="tabular", population_size=100, elite_frac=0.1, smoothing=0.1),
    "FrozenLake-v1": dict(variant="tabular", population_size=200, elite_frac=0.1, smoothing=0.1),
    "Taxi-v4": dict(variant="tabular", population_size=250, elite_frac=0.2, smoothing=0.1, update_rate=0.5),
    "CartPole-v1": dict(variant="params", population_size=50, elite_frac=0.2, init_std=1.0, extra_std=0.1),
}
#: Default budget (env steps per seed).
DEFAULT_STEPS: dict[str, int] = {
    "Gridworld-v0": 100_000,
    "FrozenLake-v1": 200_000,
    "Taxi-v4": 2_000_000,
    "CartPole-v1": 100_000,
}


# ----------------------------------------------------------------------------- policies


class PolicyNet(nn.Module):
    """MLP torso (``hidden_sizes``; empty: linear) and a categorical or Gaussian head."""

    action_dim: int
    discrete: bool
    hidden_sizes: Sequence[int] = ()
    activation: str = "tanh"
    factors: tuple[int, ...] = ()  # a MultiDiscrete action's nvec: a product of categoricals
    rows: bool = False  # obs [A, F] holds features phi(s, a) per action: one shared scorer, logits_a = f(phi(s, a))

    @nn.compact
    def __call__(self, x):
        if self.rows:  # Szita & Lorincz (2006): logits_a = w^T phi(s, a), one weight vector for all actions
            x = x.reshape(x.shape[0], self.action_dim, -1)
            return categorical(nn.Dense(1, use_bias=False)(MLP(self.hidden_sizes, self.activation)(x))[..., 0])
        return PolicyHead(self.action_dim, self.discrete, factors=self.factors)(
            MLP(self.hidden_sizes, self.activation)(x)
        )


def network(config, action_space, rows: bool = False) -> PolicyNet:
    return PolicyNet(
        action_dim(action_space),
        is_discrete(action_space),
        config.hidden_sizes,
        config.activation,
        factors=action_factors(action_space),
        rows=rows,
    )


def scores_rows(config, obs_shape, action_space) -> bool:
    """Whether an observation ``[A, F]`` holds one feature row per action (e.g. Tetris-v0's placements): then
    the policy scores each row with one shared network, ``logits_a = f_theta(phi(s, a))``. ``config.action_rows``:
    auto (by the shape), on (a ``ConfigError`` when the shape does not fit) or off."""
    fits = is_discrete(action_space) and len(obs_shape) == 2 and obs_shape[0] == action_dim(action_space) > 1
    if config.action_rows == "on" and not fits:
        raise ConfigError(
            "action_rows=on needs observations of shape [number of actions, F] and a Discrete action space; "
            f"this env's observations are {tuple(obs_shape)} for {action_space}; use action_rows=auto or off"
        )
    return fits and config.action_rows != "off"


def obs_features(obs, in_dim: int):
    """``[B, ...] -> [B, in_dim]`` float features: integer observations (a Discrete space's cell index)
    are one-hot encoded, anything else is flattened."""
    if jnp.issubdtype(obs.dtype, jnp.integer):
        return jax.nn.one_hot(obs.reshape(obs.shape[0]), in_dim)
    return obs.reshape(obs.shape[0], -1).astype(jnp.float32)


def obs_dim(obs_space) -> int:
    """Feature size of an observation: ``n`` for Discrete(n) (one-hot), else the flattened size."""
    return int(obs_space.n) if hasattr(obs_space, "n") else int(np.prod(obs_space.shape))


def _first_kernel(params):
    p = params["params"]
    layers = p.get("MLP_0", {})
    return layers["Dense_0"]["kernel"] if layers else p["PolicyHead_0"]["Dense_0"]["kernel"]


def policy_dist(config, action_space, params, obs):
    """pi_theta(.|obs) for a batch ``obs [B, ...]``."""
    if scores_rows(config, obs.shape[1:], action_space):
        return network(config, action_space, rows=True).apply(params, obs.astype(jnp.float32))
    return network(config, action_space).apply(params, obs_features(obs, _first_kernel(params).shape[0]))


def state_index(obs):
    """Tabular state of a batch of observations: the index itself (JAX-native Discrete observations)
    or the position of the one (the Gymnasium bridge one-hot encodes Discrete observations)."""
    if jnp.issubdtype(obs.dtype, jnp.integer):
        return obs.reshape(obs.shape[0])
    return jnp.argmax(obs.reshape(obs.shape[0], -1), axis=-1)


def tabular_entropy(probs):
    """Mean over states of the entropy of pi(.|s) (nats)."""
    logp = jnp.log(jnp.maximum(probs, 1e-30))
    return jnp.mean(-jnp.sum(probs * logp, axis=-1))


# ----------------------------------------------------------------------------- the math


def select_elite(returns, n_elite: int, lengths=None):
    """Indices of the ``n_elite`` highest ``returns [N]`` (best first), and the elite threshold (the
    lowest elite return). Ties go to the shorter episode when ``lengths [N]`` is given, else to the
    lower index. (The length tie-break matters for the tabular refit on sparse-reward tasks such as
    FrozenLake: every successful episode has return 1, and without it an episode that bumps into a
    wall ten times counts as much as the direct one, so the no-op keeps its probability.)"""
    if lengths is None:
        top, idx = jax.lax.top_k(returns, n_elite)
        return idx, top[-1]
    order = jnp.lexsort((jnp.arange(returns.shape[0]), lengths, -returns))  # last key is the primary one
    idx = order[:n_elite]
    return idx, returns[idx[-1]]


def tabular_refit(states, actions, mask, old_probs, smoothing):
    r"""The slides' tabular refit on the elite's state-action pairs.

    .. math:: \pi(a|s) = \frac{n_{elite}(s, a) + \lambda}{n_{elite}(s) + \lambda |A|}

    ``states, actions, mask [M, T]`` (``mask`` is 1 on steps inside an episode), ``old_probs [S, A]``.
    A state no elite episode visited keeps its old row ``old_probs[s]`` (the formula is undefined
    there for lambda = 0 and would reset it to uniform for lambda > 0, forgetting what earlier elites
    taught). Returns ``(probs [S, A], visits [S])``.
    """
    n_states, n_actions = old_probs.shape
    w = mask.astype(jnp.float32).reshape(-1)
    counts = jnp.zeros((n_states, n_actions), jnp.float32).at[states.reshape(-1), actions.reshape(-1)].add(w)
    visits = counts.sum(axis=1)
    new = (counts + smoothing) / jnp.maximum(visits[:, None] + smoothing * n_actions, 1e-30)
    return jnp.where(visits[:, None] > 0, new, old_probs), visits


def elite_log_likelihood(params, config, action_space, obs, actions, mask):
    r"""Mean log-likelihood of the elite's actions, :math:`\frac{1}{|E|}\sum_{(s,a)\in E}\log\pi_\theta(a|s)`
    (the approximate CEM objective of the slides, normalised by the number of pairs).
    ``obs [K, ...]``, ``actions [K, ...]``, ``mask [K]``."""
    dist = policy_dist(config, action_space, params, obs)
    return masked_mean(dist.log_prob(actions), mask), dist


def gaussian_refit(elite, old_mean, old_std, extra_std, update_rate):
    r"""Parameter-space CEM: refit the diagonal Gaussian to the elite parameter vectors.

    .. math:: \mu' = \frac1M\sum_{i\in E}\theta_i, \qquad
              \sigma'^2 = \frac1M\sum_{i\in E}(\theta_i-\mu')^2 + \sigma_{extra}^2

    then ``mu <- alpha mu' + (1 - alpha) mu`` and likewise for sigma (``optax.incremental_update``).
    ``elite``: pytree of ``[M, ...]`` leaves; ``old_mean, old_std``: pytrees of the same leaves without
    the M axis.
    """
    mean = jax.tree.map(lambda e: jnp.mean(e, axis=0), elite)
    std = jax.tree.map(lambda e, m: jnp.sqrt(jnp.mean((e - m) ** 2, axis=0) + extra_std**2), elite, mean)
    return optax.incremental_update(mean, old_mean, update_rate), optax.incremental_update(std, old_std, update_rate)


def tree_mean_std(std) -> jax.Array:
    leaves = jax.tree.leaves(std)
    return sum(jnp.sum(x) for x in leaves) / sum(x.size for x in leaves)


# ----------------------------------------------------------------------------- state


class AgentState(struct.PyTreeNode):
    """Everything a generation changes; saved whole in every checkpoint.

    ``policy``: tabular -> probabilities ``[S, A]``; fit -> network parameters; params -> the mean of
    the parameter Gaussian. ``std``: params -> its per-parameter std (a pytree like ``policy``), else ``()``.
    ``opt_state``: fit -> Adam's state, else ``()``."""

    policy: Any
    std: Any
    opt_state: Any
    generation: jax.Array


def optimizer(config) -> optax.GradientTransformation:
    return optim.optimizer("adam", learning_rate=config.learning_rate)


def init_network(key, obs_space, action_space, config):
    if scores_rows(config, getattr(obs_space, "shape", ()), action_space):
        return network(config, action_space, rows=True).init(key, jnp.zeros((1, *obs_space.shape), jnp.float32))
    return network(config, action_space).init(key, jnp.zeros((1, obs_dim(obs_space)), jnp.float32))


def init(key, obs_space, action_space, config: Config, total_steps=None) -> AgentState:
    """``total_steps`` (the run's budget) is ignored: a search has no schedule."""
    if config.variant == "tabular":
        if not (hasattr(obs_space, "n") or getattr(obs_space, "one_hot", False)):
            raise ConfigError(
                f"cem.variant='tabular' needs a Discrete observation space (got {obs_space}); "
                "use --variant fit or --variant params for other observations (e.g. features)"
            )
        if not is_discrete(action_space) or action_factors(action_space):
            raise ConfigError("cem.variant='tabular' needs a Discrete action space; use --variant params")
        n_s, n_a = obs_dim(obs_space), action_dim(action_space)
        return AgentState(jnp.full((n_s, n_a), 1.0 / n_a, jnp.float32), (), (), jnp.zeros((), jnp.int32))
    params = init_network(key, obs_space, action_space, config)
    gen = jnp.zeros((), jnp.int32)
    if config.variant == "fit":
        return AgentState(params, (), optimizer(config).init(params), gen)
    mean = jax.tree.map(jnp.zeros_like, params)
    std = jax.tree.map(lambda x: jnp.full_like(x, config.init_std), params)
    return AgentState(mean, std, (), gen)


def ask(config: Config, state: AgentState, key):
    """``(candidates, state)``: the candidates of a generation, a pytree whose leaves have a leading
    ``[population_size]`` axis (the state is returned unchanged). tabular/fit: N copies of the current
    policy (each roll-out samples its own actions); params: N parameter vectors drawn from N(mu, diag sigma^2)."""
    n = config.population_size
    if config.variant != "params":
        return jax.tree.map(lambda x: jnp.broadcast_to(x, (n,) + x.shape), state.policy), state
    leaves, treedef = jax.tree.flatten(state.policy)
    keys = jax.random.split(key, len(leaves))
    stds = jax.tree.leaves(state.std)
    samples = [m + s * jax.random.normal(k, (n,) + m.shape, m.dtype) for m, s, k in zip(leaves, stds, keys)]
    return jax.tree.unflatten(treedef, samples), state


def candidate_act(config: Config, action_space, candidate, obs, key):
    """Action of one candidate for one observation (roll-outs): tabular/fit sample from pi(.|s),
    params acts deterministically (the mode of its policy)."""
    if config.variant == "tabular":
        return jax.random.categorical(key, jnp.log(candidate[state_index(obs[None])[0]])).astype(jnp.int32)
    dist = policy_dist(config, action_space, candidate, obs[None])
    return (dist.mode() if config.variant == "params" else dist.sample(key))[0]


def needs_trajectories(config: Config) -> bool:
    """tabular and fit refit on the elite's state-action pairs; params only needs the returns."""
    return config.variant in ("tabular", "fit")


def tell(config: Config, action_space, state: AgentState, candidates, returns, trajectories, key):
    """Refit to the elite. ``returns [N]``; ``trajectories`` (tabular/fit): ``obs [N, T, ...]``,
    ``actions [N, T, ...]``, ``mask [N, T]``. Returns ``(state, metrics)``."""
    lengths = None if trajectories is None else jnp.sum(trajectories["mask"], axis=1)
    idx, threshold = select_elite(returns, config.n_elite, lengths)
    metrics = {"search/elite_return_mean": jnp.mean(returns[idx]), "search/elite_threshold": threshold}
    if config.variant == "tabular":
        states = jax.vmap(state_index)(trajectories["obs"][idx])  # [M, T]
        probs, visits = tabular_refit(
            states, trajectories["actions"][idx], trajectories["mask"][idx], state.policy, config.smoothing
        )
        probs = optax.incremental_update(probs, state.policy, config.update_rate)
        metrics["search/policy_entropy"] = tabular_entropy(probs)
        metrics["search/elite_states"] = jnp.sum(visits > 0).astype(jnp.float32)
        return state.replace(policy=probs, generation=state.generation + 1), metrics
    if config.variant == "fit":
        flat = lambda x: x[idx].reshape((-1,) + x.shape[2:])  # noqa: E731  [M*T, ...]
        obs, actions, mask = flat(trajectories["obs"]), flat(trajectories["actions"]), flat(trajectories["mask"])
        opt = optimizer(config)
        loss = lambda p: -elite_log_likelihood(p, config, action_space, obs, actions, mask)[0]  # noqa: E731

        def step(carry, _):
            params, opt_state = carry
            value, grads = jax.value_and_grad(loss)(params)
            updates, opt_state = opt.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), value

        (params, opt_state), losses = jax.lax.scan(step, (state.policy, state.opt_state), None, length=config.fit_steps)
        _, dist = elite_log_likelihood(params, config, action_space, obs, actions, mask)
        metrics["loss/elite_nll"] = losses[-1]
        metrics["search/policy_entropy"] = masked_mean(dist.entropy(), mask)
        return state.replace(policy=params, opt_state=opt_state, generation=state.generation + 1), metrics
    elite = jax.tree.map(lambda x: x[idx], candidates)
    mean, std = gaussian_refit(elite, state.policy, state.std, config.extra_std, config.update_rate)
    metrics["search/noise_std"] = tree_mean_std(std)
    return state.replace(policy=mean, std=std, generation=state.generation + 1), metrics


def act(config: Config, action_space, state: AgentState, obs, key, deterministic: bool = False):
    """The current policy on a batch ``obs [B, ...]``: the table, the fitted network, or (params) the
    Gaussian's mean, which always acts deterministically. Returns ``(action, log_prob, value)`` with
    zero log-probabilities and values (a search algorithm has no critic)."""
    zeros = jnp.zeros(obs.shape[:1], jnp.float32)
    if config.variant == "tabular":
        probs = jnp.asarray(state.policy)[state_index(obs)]  # [B, A] (the table may be a restored numpy array)
        action = (
            jnp.argmax(probs, axis=-1) if deterministic else jax.random.categorical(key, jnp.log(probs), axis=-1)
        ).astype(jnp.int32)
        return action, zeros, zeros
    dist = policy_dist(config, action_space, state.policy, obs)
    action = dist.mode() if (deterministic or config.variant == "params") else dist.sample(key)
    return action, zeros, zeros


def policy_params(state: AgentState):
    """What ``params_digest`` hashes: the table / network / Gaussian mean and std."""
    return {"policy": state.policy, "std": state.std}
