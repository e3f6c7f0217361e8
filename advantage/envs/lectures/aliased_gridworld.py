r"""The aliased grid world of David Silver's lecture 7 ("Example: Aliased Gridworld"), as
reproduced in the UPC deck (*Policy Search: Actor-Critic and Gradient Policy search*, slides
"Stochastic Policies when aliased states (POMDPs)") and the *Policy Gradient Methods* deck
("Stochastic policies: Aliased Grid-World")::

    +----+----+----+----+----+
    | 0  | 1▒ | 2  | 3▒ | 4  |       top corridor: cells 0..4, left to right
    +----+----+----+----+----+
    | ☠  |####| $  |####| ☠  |       below 0 and 4: skulls; below 2: the money;
    +----+    +----+    +----+       below the grey cells 1 and 3: wall

The agent observes only the wall features
:math:`\phi_d(s) = 1(\text{wall to } d)` for :math:`d \in (N, E, S, W)`, a float vector of 4
entries. The two grey cells both have walls to N and S only, so they look identical
(``[1, 0, 1, 0]``): the slides' "wall to N and S" state. (The figure of the slides puts the
skulls below the corner cells and the money below the middle cell; with skulls below the grey
cells these would no longer be the N-and-S-walled cells the slides describe.)

* Actions: ``0 = N, 1 = E, 2 = S, 3 = W``. Moving into a wall leaves the agent where it is.
* Moving S from cell 2 reaches the money: reward ``money_reward`` (+1), terminated.
  Moving S from cell 0 or 4 falls on a skull: reward ``skull_reward`` (-1), terminated.
  Every other step: reward ``step_reward`` (0). With discounting the agent prefers short paths.
* Start: uniformly at one of the five corridor cells (the slides do not say; this is our choice).
* Registered with a time limit of 100 steps (truncation).

Under aliasing the best deterministic policy moves the same way (E, say) in both grey cells, so
from cells 3 and 4 it goes back and forth between 3 and 4 forever: it succeeds from 3 of the
5 starts. A stochastic policy that moves E or W with probability 1/2 in the grey cells reaches
the money from every start in a few steps.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from advantage.envs.api import Environment
from advantage.envs.registry import register
from advantage.envs.spaces import Box, Discrete

N, E, S, W = 0, 1, 2, 3
N_CELLS = 5
GREY_CELLS = (1, 3)
SKULL_CELLS = (0, 4)  # the corridor cells with a skull below them
MONEY_CELL = 2  # the corridor cell with the money below it

#: wall features [N, E, S, W] of the corridor cells 0..4 (row) and of the cells below (terminal).
FEATURES = (
    (1.0, 0.0, 0.0, 1.0),  # 0: corner, skull below
    (1.0, 0.0, 1.0, 0.0),  # 1: grey
    (1.0, 0.0, 0.0, 0.0),  # 2: money below
    (1.0, 0.0, 1.0, 0.0),  # 3: grey
    (1.0, 1.0, 0.0, 0.0),  # 4: corner, skull below
)
#: features of a cell of the bottom row (skull or money: the episode has ended there)
BOTTOM_FEATURES = (0.0, 1.0, 1.0, 1.0)


@struct.dataclass
class AliasedState:
    pos: jax.Array  # corridor cell 0..4
    done: jax.Array  # fell into a bottom cell (the episode has terminated)


@struct.dataclass
class AliasedParams:
    money_reward: float = 1.0
    skull_reward: float = -1.0
    step_reward: float = 0.0


def features(pos, in_bottom=False):
    """:math:`\\phi(s)` for corridor cell ``pos`` (or a bottom cell, ``in_bottom``): ``[4]`` float32."""
    table = jnp.asarray(FEATURES, jnp.float32)
    return jnp.where(in_bottom, jnp.asarray(BOTTOM_FEATURES, jnp.float32), table[pos])


class AliasedGridworld(Environment):
    """Silver's aliased grid world: 5 corridor cells, observation = the 4 wall features."""

    name = "AliasedGridworld-v0"

    def default_params(self):
        return AliasedParams()

    def observation_space(self, params):
        return Box(0.0, 1.0, (4,))

    def action_space(self, params):
        return Discrete(4)

    def reset(self, key, params):
        pos = jax.random.randint(key, (), 0, N_CELLS, jnp.int32)
        return features(pos), AliasedState(pos, jnp.asarray(False))

    def step(self, key, state, action, params):
        action = jnp.asarray(action, jnp.int32).reshape(())
        pos = state.pos
        east = jnp.where(action == E, 1, 0)
        west = jnp.where(action == W, 1, 0)
        new_pos = jnp.clip(pos + east - west, 0, N_CELLS - 1).astype(jnp.int32)
        south = action == S
        at_money = south & (pos == MONEY_CELL)
        at_skull = south & ((pos == SKULL_CELLS[0]) | (pos == SKULL_CELLS[1]))
        terminated = at_money | at_skull
        reward = jnp.where(at_money, params.money_reward, jnp.where(at_skull, params.skull_reward, params.step_reward))
        new_pos = jnp.where(south, pos, new_pos)
        obs = features(new_pos, terminated)
        info = {"position": new_pos, "reached_goal": at_money}
        return (
            obs,
            AliasedState(new_pos, terminated),
            jnp.asarray(reward, jnp.float32),
            terminated,
            jnp.asarray(False),
            info,
        )

    def render(self, state, params):
        """A small ``[2*16, 5*16, 3]`` picture: corridor on top (agent red, grey cells grey), bottom row below."""
        import numpy as np

        px = 16
        img = np.zeros((2 * px, 5 * px, 3), np.uint8)
        img[:px] = 235
        for c in GREY_CELLS:
            img[:px, c * px : (c + 1) * px] = 160
        for c in SKULL_CELLS:
            img[px:, c * px : (c + 1) * px] = (60, 60, 60)
        img[px:, MONEY_CELL * px : (MONEY_CELL + 1) * px] = (230, 190, 40)
        pos = int(state.pos)
        row = 1 if bool(state.done) else 0
        img[row * px + 4 : row * px + 12, pos * px + 4 : pos * px + 12] = (220, 30, 30)
        img[:, ::px] = 0
        img[::px, :] = 0
        return img


register("AliasedGridworld-v0", AliasedGridworld, 100)
