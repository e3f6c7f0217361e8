r"""One-state MDPs with always-negative rewards: why a policy gradient needs a baseline.

The *Actor Critic I* deck (CISC 7404, Steven Morad), slides "Advantage Actor Critic": "Any
scenarios where reward is always negative? Distance to goal, :math:`R(s_{t+1}) = -(s_{t+1} -
s_g)^2`" ... "Example: MDP with one state and continuous actions, negative reward" ... "Policy
keeps oscillating, can destabilize learning". With :math:`G < 0` for every action, the update
:math:`G\,\nabla\log\pi(a)` pushes the probability of *every* sampled action down, good or bad;
only the advantage :math:`A = Q - V` says whether to push it up or down.

``OneStateContinuous-v0``
    One state (observation ``[0.0]``), action :math:`a \in [-2, 2]` (clipped), reward
    :math:`-(a - a_g)^2 \le 0` with goal ``a_g = 1`` (``params.goal``), terminated after one step.
    ``params.offset`` (default 0) subtracts a constant cost from every reward.
``OneStateDiscrete-v0``
    Its two-action cousin: reward ``r(0) = -1`` (the better action), ``r(1) = -2``, terminated
    after one step.

Both are registered with a time limit of 1 step (they terminate first).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from advantage.envs.api import Environment
from advantage.envs.registry import register
from advantage.envs.spaces import Box, Discrete


@struct.dataclass
class OneStateState:
    t: jax.Array


@struct.dataclass
class ContinuousParams:
    goal: float = 1.0
    low: float = -2.0
    high: float = 2.0
    offset: float = 0.0
    """Constant cost subtracted from every reward (a per-step cost): r = -(a - goal)^2 - offset."""


@struct.dataclass
class DiscreteParams:
    rewards: tuple = (-1.0, -2.0)


class _OneState(Environment):
    def observation_space(self, params):
        return Box(-1.0, 1.0, (1,))

    def reset(self, key, params):
        return jnp.zeros((1,), jnp.float32), OneStateState(jnp.zeros((), jnp.int32))

    def _end(self, state, reward):
        return (
            jnp.zeros((1,), jnp.float32),
            OneStateState(state.t + 1),
            jnp.asarray(reward, jnp.float32),
            jnp.asarray(True),
            jnp.asarray(False),
            {},
        )


class OneStateContinuous(_OneState):
    """One state, action in [-2, 2], reward -(a - goal)^2 ("distance to goal"), one step."""

    name = "OneStateContinuous-v0"

    def default_params(self):
        return ContinuousParams()

    def action_space(self, params):
        return Box(params.low, params.high, (1,))

    def step(self, key, state, action, params):
        a = jnp.clip(jnp.asarray(action, jnp.float32).reshape(-1)[0], params.low, params.high)
        return self._end(state, -((a - params.goal) ** 2) - params.offset)


class OneStateDiscrete(_OneState):
    """One state, two actions with rewards -1 (action 0, the better one) and -2 (action 1), one step."""

    name = "OneStateDiscrete-v0"

    def default_params(self):
        return DiscreteParams()

    def action_space(self, params):
        return Discrete(len(params.rewards))

    def step(self, key, state, action, params):
        action = jnp.asarray(action, jnp.int32).reshape(())
        return self._end(state, jnp.asarray(params.rewards, jnp.float32)[action])


register("OneStateContinuous-v0", OneStateContinuous, 1)
register("OneStateDiscrete-v0", OneStateDiscrete, 1)
