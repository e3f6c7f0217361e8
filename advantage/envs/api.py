"""The functional environment contract of the JAX-native back end.

An environment object holds no state. Everything that changes lives in the
``state`` pytree, everything that is fixed for a run lives in ``params``::

    obs, state = env.reset(key, params)
    obs, state, reward, terminated, truncated, info = env.step(key, state, action, params)

``terminated`` means the MDP reached a terminal state (no bootstrapping);
``truncated`` means the episode was cut short, e.g. by a time limit (bootstrap
from the true final observation). A raw environment never truncates: the
``TimeLimit`` wrapper does. ``step`` of a raw environment does not reset either:
the ``AutoReset`` wrapper does, and it keeps the pre-reset observation in
``info["final_obs"]``.

All methods must be pure and jittable so that ``jax.vmap`` runs many copies
and ``jax.lax.scan`` runs many steps.
"""

from __future__ import annotations

from typing import Any

import jax

from advantage.envs.spaces import Box, Discrete

EnvState = Any
EnvParams = Any


class Environment:
    """Base class of JAX-native environments (a namespace of pure functions)."""

    #: Registered id, e.g. ``"CartPole-v1"``.
    name: str = "Environment"

    def default_params(self) -> EnvParams:
        """Fixed parameters of the environment (physics constants, ...)."""
        raise NotImplementedError

    def reset(self, key: jax.Array, params: EnvParams) -> tuple[jax.Array, EnvState]:
        raise NotImplementedError

    def step(
        self, key: jax.Array, state: EnvState, action: jax.Array, params: EnvParams
    ) -> tuple[jax.Array, EnvState, jax.Array, jax.Array, jax.Array, dict]:
        raise NotImplementedError

    def observation_space(self, params: EnvParams) -> Box:
        raise NotImplementedError

    def action_space(self, params: EnvParams) -> Discrete | Box:
        raise NotImplementedError

    def render(self, state: EnvState, params: EnvParams):
        """An ``[H, W, 3]`` uint8 image of ``state`` (optional)."""
        raise NotImplementedError(f"{self.name} has no renderer")

    @property
    def unwrapped(self) -> Environment:
        return self
