"""Tetris-v0: hand-built boards with known heights and holes, a line clear, game over, the piece limit, jit/vmap."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from advantage.algos import cem
from advantage.envs import make
from advantage.envs.lectures.tetris import (
    CELLS,
    TetrisParams,
    TetrisState,
    board_features,
    hand_weights,
    lines_per_game,
    place,
)
from advantage.errors import ConfigError
from tests.helpers import train_run

I, O, T = 0, 1, 2  # noqa: E741


def board(rows, width):
    """Board from strings, top row first ('#' filled)."""
    return jnp.asarray([[ch == "#" for ch in row] for row in reversed(rows)])


def test_rotation_tables_are_the_seven_tetrominoes():
    for p in range(7):
        for r in range(4):
            cells = {tuple(x) for x in CELLS[p, r]}
            assert len(cells) == 4 and min(x[0] for x in cells) == 0 and min(x[1] for x in cells) == 0


def test_features_of_a_hand_built_board():
    b = board(["......", ".#....", "##..#.", "#...#."], 6)
    f = np.asarray(board_features(b, 0))
    np.testing.assert_array_equal(f[:6], [2, 3, 0, 0, 2, 0])  # heights
    np.testing.assert_array_equal(f[6:11], [1, 3, 0, 2, 2])  # |differences|
    assert f[11] == 3 and f[12] == 1 and f[13] == 0  # max height, holes (under column 1), lines


def test_drop_lands_on_the_highest_cell_and_clamps_the_column():
    b = board(["......", "......", "..#...", "..#..."], 6)
    new, lines, over = place(b, O, 0 * 6 + 1, 6)  # O at columns 1-2 rests on column 2 (height 2)
    assert int(lines) == 0 and not bool(over)
    np.testing.assert_array_equal(np.asarray(board_features(new, 0))[:6], [0, 4, 4, 0, 0, 0])
    a, _, _ = place(b, I, 0 * 6 + 5, 6)  # horizontal I at column 5 sticks out -> column 2
    c, _, _ = place(b, I, 0 * 6 + 2, 6)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(c))


def test_a_line_clear_drops_the_rows_above():
    b = board(["......", "......", "#.....", "##.###"], 6)
    env, params = make("Tetris-v0", width=6, height=4)
    state = TetrisState(b, jnp.asarray(I), jnp.asarray(0))
    new, lines, _ = place(b, I, 1 * 6 + 2, 6)  # vertical I into column 2: clears the bottom row
    assert int(lines) == 1
    obs, state2, reward, term, trunc, _ = env.step(jax.random.key(0), state, 6 + 2, params)
    assert float(reward) == 1.0 and not bool(term) and not bool(trunc)
    np.testing.assert_array_equal(
        np.asarray(state2.board), np.asarray(board(["......", "..#...", "..#...", "#.#..."], 6))
    )
    assert obs.shape == (24, 14) and float(env._obs(state, params)[6 + 2, -1]) == 1.0  # the placement's lines


def test_game_over_terminates():
    env, params = make("Tetris-v0", width=6, height=4)
    b = board(["..#...", "..#...", "..#...", "..#..."], 6)
    state = TetrisState(b, jnp.asarray(O), jnp.asarray(0))
    obs, _ = env.reset(jax.random.key(0), params)
    _, new, reward, term, trunc, _ = env.step(jax.random.key(0), state, 0 * 6 + 1, params)
    assert bool(term) and not bool(trunc) and float(reward) == 0.0
    feats = env._obs(state, params)
    assert float(feats[1, 11]) > params.height  # the game-over placement's max height shows it


def test_piece_limit_truncates():
    env, params = make("Tetris-v0", width=6, height=10, max_pieces=3)
    obs, state = env.reset(jax.random.key(1), params)
    step = jax.jit(env.step, static_argnums=3)
    truncs = []
    for t in range(3):
        # place in the column with the lowest max height after placement
        a = jnp.argmin(obs[:, 11] * 100 + obs[:, 12])
        obs, state, _, term, trunc, _ = step(jax.random.key(t), state, a, params)
        assert not bool(term)
        truncs.append(bool(trunc))
    assert truncs == [False, False, True]


def test_jit_and_vmap():
    env, params = make("Tetris-v0", width=6, height=10)
    keys = jax.random.split(jax.random.key(0), 8)
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(keys, params)
    assert obs.shape == (8, 24, 14) and obs.dtype == jnp.float32
    step = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)), static_argnums=3)
    obs, state, reward, term, trunc, _ = step(keys, state, jnp.arange(8), params)
    assert obs.shape == (8, 24, 14) and reward.shape == (8,) and int(state.pieces.sum()) == 8


@pytest.mark.slow
def test_cem_beats_random_and_greedy_baselines_on_a_small_board(tmp_path):
    """Szita & Lorincz (2006) in small: parameter-space CEM on a linear placement scorer, 6 x 10 board, 200 pieces.
    Every seed must clear at least 1.2 x the lines per game of the hand-weighted greedy baseline (and of random)."""
    kwargs = {"width": 6, "height": 10, "max_pieces": 200}
    params = TetrisParams(**kwargs)
    random_lines = float(lines_per_game(jax.random.key(0), params, None, 200).mean())
    greedy_lines = float(lines_per_game(jax.random.key(0), params, hand_weights(6), 200).mean())
    summary, _ = train_run(
        tmp_path,
        "cem",
        cem.Config(),
        "Tetris-v0",
        seeds=(0, 1),
        total_steps=100_000,
        eval_episodes=50,
        env_kwargs=json.dumps(kwargs),
    )
    for lines in summary["eval_return"]["per_seed"]:
        assert lines >= 1.2 * greedy_lines and lines >= 1.2 * random_lines, (lines, greedy_lines, random_lines)


def test_cem_scores_each_placement_with_one_shared_weight_vector():
    env, params = make("Tetris-v0", width=6, height=10)
    cfg = cem.Config()
    obs_space, action_space = env.observation_space(params), env.action_space(params)
    state = cem.init(jax.random.key(0), obs_space, action_space, cfg)
    w = jax.random.normal(jax.random.key(1), (14,))
    policy = jax.tree.map(lambda _: w[:, None], state.policy)  # the only leaf: the [F, 1] kernel
    obs = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(jax.random.key(2), 3), params)[0]
    dist = cem.policy_dist(cfg, action_space, policy, obs)
    np.testing.assert_allclose(np.asarray(dist.logits), np.asarray(obs @ w), rtol=1e-5, atol=1e-4)
    action, _, _ = cem.act(cfg, action_space, state.replace(policy=policy), obs, jax.random.key(3))
    np.testing.assert_array_equal(np.asarray(action), np.asarray(jnp.argmax(obs @ w, axis=-1)))


def test_cem_action_rows_can_be_turned_off_and_on_is_checked():
    """action_rows=off flattens a Tetris observation [A, F] like any other (one logit per action from all A x F
    features); on, for an env whose observations are not [A, F], is a clear error."""
    env, params = make("Tetris-v0", width=6, height=10)
    obs_space, action_space = env.observation_space(params), env.action_space(params)
    a, f = obs_space.shape
    flat = cem.init(jax.random.key(0), obs_space, action_space, cem.Config(action_rows="off"))
    shapes = [x.shape for x in jax.tree.leaves(flat.policy)]
    assert (a * f, a) in shapes  # a linear map of all the features to A logits, not one shared [F, 1] vector
    cart, cart_params = make("CartPole-v1")
    with pytest.raises(ConfigError, match="action_rows=on needs observations of shape"):
        cem.init(
            jax.random.key(0),
            cart.observation_space(cart_params),
            cart.action_space(cart_params),
            cem.Config(action_rows="on"),
        )
    with pytest.raises(ConfigError, match="action_rows"):
        cem.Config(action_rows="yes")
