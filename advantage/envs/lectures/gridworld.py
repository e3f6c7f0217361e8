"""A small tabular grid world (the lecture notes' running example of a finite MDP).

The agent walks on an ``size x size`` grid from the top-left cell to the goal in the
bottom-right cell. Observations are the cell index ``row * size + col`` (a ``Discrete``
observation space: tabular methods index a table with it; neural policies one-hot it).
Actions: 0 up, 1 right, 2 down, 3 left; a move into the border leaves the agent in place.
With ``slip > 0`` the intended move is replaced by a uniformly random one with that probability.

Rewards: ``+goal_reward`` for entering the goal (terminates), ``pit_reward`` for entering a pit
(terminates), ``-step_cost`` for every other step. With the defaults (5x5, pits at (1,1), (2,3)
and (3,1), step cost 0.01) the shortest path takes 8 steps and the optimal return is
``1 - 7 * 0.01 = 0.93``. ``Gridworld-v0`` cuts episodes at 50 steps.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from advantage.envs.api import Environment
from advantage.envs.registry import register
from advantage.envs.spaces import Discrete

#: (d_row, d_col) of the actions up, right, down, left.
MOVES = ((-1, 0), (0, 1), (1, 0), (0, -1))


@struct.dataclass
class GridState:
    pos: jax.Array  # cell index row * size + col
    t: jax.Array


@struct.dataclass
class GridParams:
    goal_reward: float = 1.0
    pit_reward: float = -1.0
    step_cost: float = 0.01
    slip: float = 0.0


class Gridworld(Environment):
    name = "Gridworld-v0"

    def __init__(
        self,
        size: int = 5,
        pits: tuple = ((1, 1), (2, 3), (3, 1)),
        step_cost: float = 0.01,
        slip: float = 0.0,
        goal_reward: float = 1.0,
        pit_reward: float = -1.0,
    ):
        if size < 2:
            raise ValueError(f"Gridworld: size must be >= 2, got {size}")
        self.size = int(size)
        self.pits = tuple(tuple(int(v) for v in p) for p in pits)
        for r, c in self.pits:
            if not (0 <= r < size and 0 <= c < size) or (r, c) in ((0, 0), (size - 1, size - 1)):
                raise ValueError(f"Gridworld: pit {(r, c)} must lie inside the grid, off the start and the goal")
        self.start, self.goal = 0, size * size - 1
        is_pit = [False] * (size * size)
        for r, c in self.pits:
            is_pit[r * size + c] = True
        self._is_pit = tuple(is_pit)
        self._defaults = GridParams(float(goal_reward), float(pit_reward), float(step_cost), float(slip))

    def default_params(self) -> GridParams:
        return self._defaults

    def observation_space(self, params):
        return Discrete(self.size * self.size)

    def action_space(self, params):
        return Discrete(4)

    def reset(self, key, params):
        pos = jnp.asarray(self.start, jnp.int32)
        return pos, GridState(pos, jnp.zeros((), jnp.int32))

    def step(self, key, state, action, params):
        k_slip, k_dir = jax.random.split(key)
        slipped = jax.random.uniform(k_slip) < params.slip
        action = jnp.where(slipped, jax.random.randint(k_dir, (), 0, 4), jnp.asarray(action, jnp.int32))
        moves = jnp.asarray(MOVES, jnp.int32)
        row = jnp.clip(state.pos // self.size + moves[action, 0], 0, self.size - 1)
        col = jnp.clip(state.pos % self.size + moves[action, 1], 0, self.size - 1)
        pos = (row * self.size + col).astype(jnp.int32)
        at_goal = pos == self.goal
        in_pit = jnp.asarray(self._is_pit)[pos]
        reward = jnp.where(at_goal, params.goal_reward, jnp.where(in_pit, params.pit_reward, -params.step_cost))
        terminated = at_goal | in_pit
        return pos, GridState(pos, state.t + 1), reward.astype(jnp.float32), terminated, jnp.asarray(False), {}

    def render(self, state, params, cell: int = 48):
        """The grid as an ``[size*cell, size*cell, 3]`` uint8 image: goal green, pits black, agent red."""
        n = self.size
        idx = jnp.arange(n * n)
        colour = jnp.where(
            idx[:, None] == self.goal,
            jnp.array([60, 180, 75]),
            jnp.where(jnp.asarray(self._is_pit)[:, None], jnp.array([30, 30, 30]), jnp.array([235, 235, 235])),
        )
        colour = jnp.where(idx[:, None] == state.pos, jnp.array([220, 40, 40]), colour).astype(jnp.uint8)
        rows = jnp.arange(n * cell) // cell
        cells = rows[:, None] * n + rows[None, :]
        img = colour[cells]
        border = jnp.arange(n * cell) % cell == 0
        grid_line = border[:, None] | border[None, :]
        return jnp.where(grid_line[..., None], jnp.uint8(150), img)


register("Gridworld-v0", "advantage.envs.lectures.gridworld:Gridworld", 50)
