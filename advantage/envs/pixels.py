"""A small JAX-native environment seen only through pixels: ``pixels/Reach-v0``, for the CNN torso
(``--torso cnn``, ``nets/mlp.py``).

An ``n x n`` grid (``size``, 5 by default; ``--env-kwargs '{"size": 8}'`` for a larger one). The observation
is an image ``[n, n, 2]``: channel 0 has the agent's cell lit (255), channel 1 the goal's; every other value is
0. Four actions move the agent one cell, ``0`` up (row - 1), ``1`` down, ``2`` left (column - 1), ``3`` right;
a move into the border leaves it where it is. Reaching the goal gives reward 1 and terminates; every other step
gives 0. Agent and goal start on two different cells drawn uniformly. Registered with a time limit of 32 steps
(truncation).

The optimal policy walks a shortest path, ``|dr| + |dc|`` steps (3.33 on average on the 5 x 5 grid, at most
``2 (n - 1)``), so its discounted return is ``gamma^(|dr| + |dc| - 1)``; a uniformly random policy reaches the
goal within the limit in about half of the episodes on the 5 x 5 grid (0.47 over 4,000, in 23.5 steps on
average), a quarter on the 8 x 8 one. Nothing but the positions of two lit pixels tells the agent where to go.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from advantage.envs.api import Environment
from advantage.envs.registry import register
from advantage.envs.spaces import Box, Discrete

#: The moves of actions 0-3: (row, column) steps: up, down, left, right.
MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))


@struct.dataclass
class ReachState:
    agent: jax.Array  # int32 [2]: row, column
    goal: jax.Array  # int32 [2]


@struct.dataclass
class ReachParams:
    pass


class Reach(Environment):
    """Walk to the goal on an ``size x size`` grid seen as a two-channel image (module docstring)."""

    name = "pixels/Reach-v0"

    def __init__(self, size: int = 5):
        if size < 2:
            from advantage.errors import ConfigError

            raise ConfigError(f"pixels/Reach-v0: size={size} is invalid: the grid needs at least 2 x 2 cells")
        self.size = int(size)

    def default_params(self):
        return ReachParams()

    def observation_space(self, params):
        return Box(0.0, 255.0, (self.size, self.size, 2))

    def action_space(self, params):
        return Discrete(4)

    def image(self, state: ReachState):
        """The observation: ``[size, size, 2]`` float32, 255 at the agent (channel 0) and the goal (channel 1)."""
        rows = jnp.arange(self.size)[:, None]
        cols = jnp.arange(self.size)[None, :]
        at = lambda p: ((rows == p[0]) & (cols == p[1])).astype(jnp.float32)  # noqa: E731
        return jnp.stack([at(state.agent), at(state.goal)], axis=-1) * 255.0

    def reset(self, key, params):
        n = self.size * self.size
        k_agent, k_goal = jax.random.split(key)
        agent = jax.random.randint(k_agent, (), 0, n)
        goal = (agent + jax.random.randint(k_goal, (), 1, n)) % n  # uniform over the other n - 1 cells
        cell = lambda i: jnp.stack([i // self.size, i % self.size]).astype(jnp.int32)  # noqa: E731
        state = ReachState(agent=cell(agent), goal=cell(goal))
        return self.image(state), state

    def step(self, key, state, action, params):
        move = jnp.asarray(MOVES, jnp.int32)[action]
        agent = jnp.clip(state.agent + move, 0, self.size - 1)
        state = ReachState(agent=agent, goal=state.goal)
        reached = jnp.all(agent == state.goal)
        return self.image(state), state, reached.astype(jnp.float32), reached, jnp.asarray(False), {}

    def render(self, state, params):
        """The grid, 16 pixels a cell: the agent red, the goal green, on black."""
        img = self.image(state) / 255.0
        rgb = jnp.stack([img[..., 0], img[..., 1], jnp.zeros_like(img[..., 0])], axis=-1)
        return (jnp.repeat(jnp.repeat(rgb, 16, axis=0), 16, axis=1) * 255).astype(jnp.uint8)


register(Reach.name, Reach, 32)
