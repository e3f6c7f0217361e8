r"""A small JAX-native Tetris whose actions are placements (Szita & Lőrincz 2006, *Learning Tetris using the noisy
cross-entropy method*; slide deck 004: "CEM works embarrassingly well, f.i. playing Tetris").

``Tetris-v0``
    A ``width x height`` board (default 10 x 20; constructor keywords ``width``, ``height``, ``max_pieces``).
    Each step the agent places the current tetromino (one of the 7, uniformly at random): the action
    ``a = r * width + c`` picks rotation ``r in 0..3`` and the column ``c`` of the piece's leftmost cell;
    the piece is dropped straight down and lands on the first filled cell below it. ``Discrete(4 * width)``.

    *Invalid placements*: a column where the rotated piece would stick out on the right is treated as the
    nearest valid column (``c -> width - piece width``); it is never a game over by itself.

    Reward: the number of lines the placement clears (0..4). ``terminated`` when the dropped piece does not
    fit (a cell of it lands at or above row ``height``: game over). ``truncated`` after ``max_pieces``
    pieces (default 500; the env itself truncates, so it is registered without a ``TimeLimit``).

    Observation ``[4 * width, 2 * width + 2]`` float32: for every placement, the Bertsekas-Tsitsiklis
    features :math:`\phi(s, a)` of the board that placement would produce (after its lines are cleared):
    ``width`` column heights, ``width - 1`` absolute height differences of neighbouring columns, the
    maximum height, the number of holes (empty cells below a column's top) and the lines the placement
    clears. A placement that would end the game is computed on a board with 4 spare rows above the top,
    so its max height exceeds ``height``. The paper's policy picks :math:`\arg\max_a w^\top \phi(s, a)`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from advantage.envs.api import Environment
from advantage.envs.registry import register
from advantage.envs.spaces import Box, Discrete

#: The 7 tetrominoes (I, O, T, S, Z, J, L) as 4 cells ``(row, col)``, row 0 at the bottom.
SHAPES = (
    ((0, 0), (0, 1), (0, 2), (0, 3)),  # I
    ((0, 0), (0, 1), (1, 0), (1, 1)),  # O
    ((1, 0), (1, 1), (1, 2), (0, 1)),  # T
    ((0, 0), (0, 1), (1, 1), (1, 2)),  # S
    ((1, 0), (1, 1), (0, 1), (0, 2)),  # Z
    ((1, 0), (0, 0), (0, 1), (0, 2)),  # J
    ((0, 0), (0, 1), (0, 2), (1, 2)),  # L
)
N_PIECES, N_ROT, SPARE = 7, 4, 4


def _rotation_tables() -> tuple[np.ndarray, np.ndarray]:
    """``CELLS [7, 4, 4, 2]`` (piece, rotation, cell, (row, col)) normalised to min row = min col = 0, and
    ``WIDTHS [7, 4]``. Rotation ``r`` turns the piece ``r`` quarter turns clockwise: ``(row, col) -> (-col, row)``.
    """
    cells = np.zeros((N_PIECES, N_ROT, 4, 2), np.int32)
    widths = np.zeros((N_PIECES, N_ROT), np.int32)
    for p, shape in enumerate(SHAPES):
        c = np.array(shape)
        for r in range(N_ROT):
            c = c - c.min(axis=0)
            cells[p, r], widths[p, r] = c, c[:, 1].max() + 1
            c = np.stack([-c[:, 1], c[:, 0]], axis=1)
    return cells, widths


CELLS, WIDTHS = _rotation_tables()


@struct.dataclass
class TetrisState:
    board: jax.Array  # [height, width] bool, row 0 at the bottom
    piece: jax.Array  # int32 index into SHAPES of the piece to place
    pieces: jax.Array  # int32 number of pieces placed so far


@struct.dataclass
class TetrisParams:
    width: int = struct.field(pytree_node=False, default=10)
    height: int = struct.field(pytree_node=False, default=20)
    max_pieces: int = struct.field(pytree_node=False, default=500)


def column_heights(board):
    """``[H, W] bool -> [W]``: one plus the row of each column's top filled cell (0 for an empty column)."""
    rows = jnp.arange(1, board.shape[0] + 1)[:, None]
    return jnp.max(jnp.where(board, rows, 0), axis=0)


def board_features(board, lines):
    r"""Bertsekas-Tsitsiklis features ``[2W + 2]``: heights, :math:`|h_{i+1} - h_i|`, max height, holes, lines."""
    h = column_heights(board)
    below_top = jnp.arange(board.shape[0])[:, None] < h[None, :]
    holes = jnp.sum(below_top & ~board)
    return jnp.concatenate([h, jnp.abs(jnp.diff(h)), jnp.max(h)[None], holes[None], jnp.asarray(lines)[None]]).astype(
        jnp.float32
    )


def place(board, piece, action, width: int):
    """Drop ``piece`` with placement ``action`` on ``board [H, W]``. Returns ``(new board [H + 4, W] after the
    full lines are cleared, lines cleared, game over)``; the 4 spare rows hold a piece that does not fit."""
    height = board.shape[0]
    r, c = action // width, action % width
    cells = jnp.asarray(CELLS)[piece, r]  # [4, 2]
    c = jnp.minimum(c, width - jnp.asarray(WIDTHS)[piece, r])  # invalid column -> nearest valid one
    rows, cols = cells[:, 0], cells[:, 1] + c
    # the piece stops on the highest of (column height - the piece's own offset in that column)
    y = jnp.max(column_heights(board)[cols] - rows)
    game_over = jnp.max(y + rows) >= height
    big = jnp.concatenate([board, jnp.zeros((SPARE, width), bool)]).at[y + rows, cols].set(True)
    full = jnp.all(big, axis=1)
    order = jnp.argsort(full, stable=True)  # kept rows first, in order, then the full ones
    n_full = jnp.sum(full)
    cleared = big[order] & (jnp.arange(height + SPARE) < height + SPARE - n_full)[:, None]
    return cleared, n_full.astype(jnp.int32), game_over


def placement_features(board, piece, width: int):
    """``[4 * width, 2 * width + 2]``: :func:`board_features` after each placement of ``piece``."""

    def one(a):
        new, lines, _ = place(board, piece, a, width)
        return board_features(new, lines)

    return jax.vmap(one)(jnp.arange(N_ROT * width))


class Tetris(Environment):
    """Place tetrominoes; reward = lines cleared; game over when a piece does not fit."""

    name = "Tetris-v0"

    def __init__(self, width: int = 10, height: int = 20, max_pieces: int = 500):
        self.width, self.height, self.max_pieces = int(width), int(height), int(max_pieces)
        # the env truncates its own games (as gymnax's do): the drivers cap evaluation and search episodes here
        self.max_episode_steps = self.max_pieces

    def default_params(self) -> TetrisParams:
        return TetrisParams(self.width, self.height, self.max_pieces)

    def observation_space(self, params):
        return Box(-np.inf, np.inf, (N_ROT * params.width, 2 * params.width + 2))

    def action_space(self, params):
        return Discrete(N_ROT * params.width)

    def _obs(self, state, params):
        return placement_features(state.board, state.piece, params.width)

    def reset(self, key, params):
        board = jnp.zeros((params.height, params.width), bool)
        state = TetrisState(board, jax.random.randint(key, (), 0, N_PIECES), jnp.asarray(0, jnp.int32))
        return self._obs(state, params), state

    def step(self, key, state, action, params):
        action = jnp.asarray(action, jnp.int32).reshape(())
        big, lines, game_over = place(state.board, state.piece, action, params.width)
        board = jnp.where(game_over, state.board, big[: params.height])
        reward = jnp.where(game_over, 0.0, lines.astype(jnp.float32))
        pieces = state.pieces + 1
        new = TetrisState(board, jax.random.randint(key, (), 0, N_PIECES), pieces)
        truncated = (pieces >= params.max_pieces) & ~game_over
        return self._obs(new, params), new, reward, game_over, truncated, {"lines": reward}


def hand_weights(width: int) -> jax.Array:
    """The greedy baseline's fixed weights ``w = -holes - max height + 10 * lines`` (over :func:`board_features`)."""
    return jnp.zeros(2 * width + 2).at[-3].set(-1.0).at[-2].set(-1.0).at[-1].set(10.0)


def lines_per_game(key, params: TetrisParams, weights=None, n_games: int = 100) -> jax.Array:
    """Lines cleared in each of ``n_games`` games ``[n_games]``: greedy ``argmax_a w^T phi(s, a)`` with ``weights``,
    or uniformly random placements when ``weights`` is None. A game ends at game over or after ``max_pieces``."""
    env = Tetris(params.width, params.height, params.max_pieces)

    def game(k):
        k0, k = jax.random.split(k)
        obs, state = env.reset(k0, params)

        def body(carry):
            obs, state, k, lines, done = carry
            k, ka, ks = jax.random.split(k, 3)
            if weights is None:
                a = jax.random.randint(ka, (), 0, N_ROT * params.width)
            else:
                a = jnp.argmax(obs @ weights)
            obs, state, r, term, trunc, _ = env.step(ks, state, a, params)
            return obs, state, k, lines + r, term | trunc

        carry = (obs, state, k, jnp.asarray(0.0), jnp.asarray(False))
        return jax.lax.while_loop(lambda c: ~c[-1], body, carry)[3]

    return jax.jit(jax.vmap(game))(jax.random.split(key, n_games))


register("Tetris-v0", Tetris, None)
