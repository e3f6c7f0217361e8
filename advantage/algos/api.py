"""The algorithm contract: what a module in ``advantage/algos`` provides, as ``typing.Protocol``s.

An algorithm is a plain module (one file, read top to bottom). The execution layer
(``advantage/training``) knows it only through these protocols, and an algorithm never imports the
execution layer. ``tests/test_algorithm_contract.py`` runs every registered algorithm through them on
a probe environment, on both back ends.

* :class:`Algorithm` -- trained by updates on rollouts (``UpdateStepper``): ``init`` an agent state,
  ``act`` on a batch of observations, ``update`` on a time-major rollout ``Transition [T, n_envs]``.
  Every function is pure and jittable; the agent state is a pytree (a checkpoint saves it whole).
* :class:`SearchAlgorithm` -- gradient-free population search (``SearchStepper``): ``ask`` for
  candidates, score whole episodes of each (``candidate_act``), ``tell`` the returns.
* :class:`SplitUpdate` -- an :class:`Algorithm` whose update is also available as two steps,
  ``compute_gradients`` (on a worker: the gradient of the loss on its own rollout) and
  ``apply_gradients`` (on a parameter server: the optimiser step, with the optimiser state kept there),
  such that ``apply_gradients(state, compute_gradients(state, batch)[0])`` equals ``update(state, batch)``.
  Asynchronous actor-learners (A3C) drive an algorithm through it.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import jax

from advantage.types import Transition


@runtime_checkable
class Algorithm(Protocol):
    """A module trained by updates on rollouts."""

    NAME: str
    """The name on the command line (``advantage train NAME``)."""
    SEARCH: bool
    """False: see :class:`SearchAlgorithm` for True."""
    NAN_METRICS: tuple[str, ...]
    """Metric prefixes that may be NaN by design (e.g. losses before an off-policy learner's first step)."""
    Config: type
    """A frozen ``flax.struct`` dataclass of hyperparameters: shape-changing fields static, numeric ones leaves.
    It must have ``n_envs`` and ``n_steps`` (a rollout is ``n_steps`` from each of ``n_envs`` envs)."""
    PRESETS: dict[str, dict]
    """Tuned ``Config`` fields per env id."""
    DEFAULT_STEPS: dict[str, int]
    """Default budget (env steps per seed) per env id."""

    def init(self, key: jax.Array, obs_space, action_space, config, total_steps: int) -> Any:
        """A new agent state (a pytree). ``total_steps``: the run's budget in env steps per seed (the horizon
        of schedules such as learning-rate annealing)."""
        ...

    def act(
        self, config, action_space, state, obs: jax.Array, key: jax.Array, deterministic: bool = False
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """``(action, log_prob, value)`` for a batch of observations ``[n, ...]``; actions in the policy's own
        space (a Box action in [-1, 1], rescaled to the env's bounds by the back end)."""
        ...

    def update(self, config, action_space, state, batch: Transition, key: jax.Array) -> tuple[Any, dict]:
        """``(state, metrics)`` after learning from the rollout ``batch`` (time-major ``[T, n_envs]``).
        Metrics are scalars named in the glossary's namespaces (``loss/``, ``grad/``, ``value/``, ...)."""
        ...

    def policy_params(self, state) -> Any:
        """The parameters that define the policy (hashed into ``params_digest``)."""
        ...


@runtime_checkable
class SearchAlgorithm(Protocol):
    """A module of gradient-free policy search, driven generation by generation."""

    NAME: str
    SEARCH: bool
    """True."""
    NAN_METRICS: tuple[str, ...]
    Config: type
    """As :attr:`Algorithm.Config`, with ``population_size`` (and optionally ``episodes_per_candidate``)."""
    PRESETS: dict[str, dict]
    DEFAULT_STEPS: dict[str, int]

    def init(self, key: jax.Array, obs_space, action_space, config, total_steps: int | None = None) -> Any: ...

    def act(self, config, action_space, state, obs, key, deterministic: bool = False): ...

    def ask(self, config, state, key) -> tuple[Any, Any]:
        """``(candidates, state)``: a population with a leading axis ``[population_size, ...]``."""
        ...

    def candidate_act(self, config, action_space, candidate, obs, key) -> jax.Array:
        """The action of one candidate for one observation."""
        ...

    def needs_trajectories(self, config) -> bool:
        """Whether ``tell`` needs the episodes' observations and actions (not only their returns)."""
        ...

    def tell(self, config, action_space, state, candidates, returns, trajectories, key) -> tuple[Any, dict]:
        """``(state, metrics)`` after scoring: ``returns [population_size]``."""
        ...

    def policy_params(self, state) -> Any: ...


@runtime_checkable
class SplitUpdate(Protocol):
    """An update in two steps, for asynchronous workers that send gradients to a parameter server (A3C)."""

    def compute_gradients(self, config, action_space, state, batch: Transition, key: jax.Array) -> tuple[Any, dict]:
        """``(grads, metrics)``: what the rollout ``batch`` contributes -- a pytree of arrays the algorithm defines
        (the loss gradient with the collecting parameters, and e.g. the batch's observation moments) -- and the
        metrics of the loss."""
        ...

    def apply_gradients(self, config, state, grads) -> tuple[Any, dict]:
        """``(state, metrics)``: the optimiser step with ``grads`` (and the schedules' position moved on)."""
        ...


def kind(module) -> str:
    """``"search"`` or ``"update"``, checking the module against its protocol (a clear error if it is neither)."""
    from advantage.errors import ConfigError

    if isinstance(module, SearchAlgorithm) and module.SEARCH:
        return "search"
    if isinstance(module, Algorithm) and not module.SEARCH:
        return "update"
    proto = SearchAlgorithm if getattr(module, "SEARCH", False) else Algorithm
    missing = [n for n in (*proto.__annotations__, *_methods(proto)) if not hasattr(module, n)]
    raise ConfigError(
        f"{getattr(module, '__name__', module)} is not an algorithm: it lacks {', '.join(missing)} "
        f"(see advantage.algos.api.{proto.__name__})"
    )


def _methods(proto) -> list[str]:
    return [n for n, v in vars(proto).items() if callable(v) and not n.startswith("_")]
