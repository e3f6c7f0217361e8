"""The functional wrappers: TimeLimit, EpisodeStats, AutoReset (alone and stacked as the driver does)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from advantage.envs import AutoReset, EpisodeStats, TimeLimit, make
from advantage.envs.api import Environment
from advantage.envs.spaces import Box, Discrete


# ------------------------------------------------------------------------- toy env
@struct.dataclass
class CounterParams:
    horizon: int = 5  # terminates when the count reaches this


@struct.dataclass
class CounterState:
    count: jax.Array  # steps taken in this episode
    tag: jax.Array  # random per-episode id drawn at reset


class Counter(Environment):
    """Counts steps. obs = [count, tag]; reward = count + 10 * action; terminates at ``horizon``
    or on action 2 ("quit"). The random ``tag`` makes every reset distinguishable."""

    name = "Counter-v0"

    def default_params(self):
        return CounterParams()

    def reset(self, key, params):
        state = CounterState(jnp.zeros((), jnp.int32), jax.random.uniform(key, (), jnp.float32))
        return self._obs(state), state

    def step(self, key, state, action, params):
        state = CounterState(state.count + 1, state.tag)
        reward = state.count.astype(jnp.float32) + 10.0 * action
        terminated = (state.count >= params.horizon) | (action == 2)
        return self._obs(state), state, reward, terminated, jnp.zeros((), jnp.bool_), {"count": state.count}

    def _obs(self, state):
        return jnp.stack([state.count.astype(jnp.float32), state.tag])

    def observation_space(self, params):
        return Box(0.0, np.inf, (2,))

    def action_space(self, params):
        return Discrete(3)


def _rollout(env, params, actions, key):
    """Runs ``env`` over ``actions`` with ``lax.scan``; also returns the state before each step."""
    key, reset_key = jax.random.split(key)
    obs, state = env.reset(reset_key, params)

    def body(carry, xs):
        state = carry
        k, a = xs
        obs, new_state, reward, terminated, truncated, info = env.step(k, state, a, params)
        return new_state, (state, obs, reward, terminated, truncated, info)

    keys = jax.random.split(key, len(actions))
    _, out = jax.lax.scan(body, state, (keys, actions))
    return obs, keys, out


# ------------------------------------------------------------------------ TimeLimit
def test_time_limit_truncates_on_exactly_the_limit():
    env = TimeLimit(Counter(), max_episode_steps=3)
    params = CounterParams(horizon=100)
    _, _, (_, obs, _, terminated, truncated, _) = jax.jit(_rollout, static_argnums=0)(
        env, params, jnp.zeros(5, jnp.int32), jax.random.key(0)
    )
    np.testing.assert_array_equal(truncated, [False, False, True, True, True])
    assert not terminated.any()


def test_time_limit_terminated_and_truncated_on_the_same_step():
    env = TimeLimit(Counter(), max_episode_steps=5)
    params = CounterParams(horizon=5)
    _, _, (_, _, _, terminated, truncated, _) = _rollout(env, params, jnp.zeros(5, jnp.int32), jax.random.key(0))
    np.testing.assert_array_equal(terminated, [False] * 4 + [True])
    np.testing.assert_array_equal(truncated, [False] * 4 + [True])  # both kept True


def test_time_limit_rejects_non_positive_limit():
    import pytest

    with pytest.raises(ValueError):
        TimeLimit(Counter(), 0)


# ----------------------------------------------------------------------- AutoReset
def _check_auto_reset(env, params, actions, key, raw_step, is_reset_obs):
    """Common AutoReset checks on a rollout; ``raw_step(state, action)`` is the wrapped env's step."""
    first_obs, keys, (states, obs, reward, terminated, truncated, info) = jax.jit(_rollout, static_argnums=0)(
        env, params, actions, key
    )
    done = np.asarray(terminated | truncated)
    assert done.sum() >= 3 and (~done).sum() >= 3
    final_obs = np.asarray(info["final_obs"])
    obs = np.asarray(obs)
    # final_obs is what the wrapped env's own step returned from the same state (recomputed
    # here in a separately compiled function: XLA may fuse float ops differently, e.g. FMA,
    # so allow float32 rounding rather than bit equality)
    raw_obs = np.asarray(jax.jit(jax.vmap(raw_step))(states, actions))
    np.testing.assert_allclose(final_obs, raw_obs, rtol=1e-6, atol=1e-7)
    # not done: obs is the step's obs, final_obs == obs
    np.testing.assert_array_equal(obs[~done], final_obs[~done])
    # done: obs is a fresh reset observation, different from the pre-reset one
    assert all(is_reset_obs(o) for o in obs[done])
    assert not np.any(np.all(obs[done] == final_obs[done], axis=-1))
    # every reset draws a new key: no two episode starts are equal (nor equal to the very first)
    starts = np.concatenate([np.asarray(first_obs)[None], obs[done]])
    assert len(np.unique(starts, axis=0)) == len(starts)
    return done, obs, final_obs


def test_auto_reset_on_toy_env():
    env = AutoReset(Counter())
    params = CounterParams(horizon=4)
    actions = jnp.asarray(np.random.default_rng(0).choice(3, size=60, p=[0.5, 0.3, 0.2]), jnp.int32)
    done, obs, _ = _check_auto_reset(
        env,
        params,
        actions,
        jax.random.key(1),
        raw_step=lambda s, a: Counter().step(jax.random.key(0), s, a, params)[0],
        is_reset_obs=lambda o: o[0] == 0.0,
    )
    # the step after a reset continues the new episode from count 0 (or ends it at once and resets)
    after = np.flatnonzero(done[:-1]) + 1
    np.testing.assert_array_equal(obs[after, 0], np.where(done[after], 0.0, 1.0))


def test_auto_reset_on_cartpole():
    env, params = make("CartPole-v1")
    env = AutoReset(env)
    raw = env.unwrapped
    actions = jnp.asarray(np.random.default_rng(2).integers(2, size=200), jnp.int32)
    _check_auto_reset(
        env,
        params,
        actions,
        jax.random.key(3),
        raw_step=lambda s, a: raw.step(jax.random.key(0), s.env_state, a, params)[0],
        is_reset_obs=lambda o: bool(np.all(np.abs(o) <= 0.05)),
    )


def test_auto_reset_keeps_state_structure_under_vmap():
    env = AutoReset(EpisodeStats(TimeLimit(Counter(), 3)))
    params = CounterParams()
    keys = jax.random.split(jax.random.key(4), 6)
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(keys, params)
    step = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
    for i in range(5):
        keys = jax.vmap(lambda k: jax.random.split(k)[0])(keys)
        actions = jnp.arange(6, dtype=jnp.int32) % 2  # never "quit": episodes end by the time limit
        obs, state2, reward, terminated, truncated, info = step(keys, state, actions, params)
        assert jax.tree.structure(state2) == jax.tree.structure(state)
        for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(state2)):
            assert a.shape == b.shape and a.dtype == b.dtype
        assert obs.shape == info["final_obs"].shape == (6, 2)
        np.testing.assert_array_equal(truncated, (i + 1) % 3 == 0)
        state = state2


# --------------------------------------------------------------------- EpisodeStats
def _manual_episodes(reward, done):
    """(return, length) of each finished episode, from the per-step rewards and done flags.

    Sums in float32 in step order, like the wrapper, so the result is exact."""
    out, ret, length = [], np.float32(0.0), 0
    for r, d in zip(reward, done):
        ret = np.float32(ret + np.float32(r))
        length += 1
        if d:
            out.append((ret, length))
            ret, length = np.float32(0.0), 0
    return out


def test_episode_stats_match_manual_sums():
    # terminations (action 2; horizon 6 is never reached) and truncations (limit 4) both end episodes
    env = AutoReset(EpisodeStats(TimeLimit(Counter(), 4)))
    params = CounterParams(horizon=6)
    actions = jnp.asarray(np.random.default_rng(5).choice(3, size=80, p=[0.45, 0.4, 0.15]), jnp.int32)
    _, _, (_, _, reward, terminated, truncated, info) = jax.jit(_rollout, static_argnums=0)(
        env, params, actions, jax.random.key(6)
    )
    done = np.asarray(terminated | truncated)
    np.testing.assert_array_equal(info["episode_done"], done)
    assert np.asarray(terminated).any() and np.asarray(truncated & ~terminated).any()
    expected = _manual_episodes(np.asarray(reward), done)
    got_ret = np.asarray(info["episode_return"])[done]
    got_len = np.asarray(info["episode_length"])[done]
    assert len(expected) == done.sum() >= 10
    np.testing.assert_allclose(got_ret, [e[0] for e in expected], rtol=1e-6)
    np.testing.assert_array_equal(got_len, [e[1] for e in expected])
    assert info["episode_return"].dtype == jnp.float32 and info["episode_length"].dtype == jnp.int32
    # counters restart: on non-final steps the running length counts from the last episode end
    running = np.asarray(info["episode_length"])
    since = 0
    for t in range(len(done)):
        since += 1
        assert running[t] == since
        if done[t]:
            since = 0


def test_episode_stats_on_pendulum_full_episodes():
    env, params = make("Pendulum-v1")
    env = AutoReset(EpisodeStats(env))
    actions = jnp.asarray(np.random.default_rng(7).uniform(-2, 2, size=(450, 1)), jnp.float32)
    _, _, (_, _, reward, terminated, truncated, info) = jax.jit(_rollout, static_argnums=0)(
        env, params, actions, jax.random.key(8)
    )
    done = np.asarray(info["episode_done"])
    assert np.flatnonzero(done).tolist() == [199, 399]  # truncated at 200 steps, then again
    assert not np.asarray(terminated).any()
    expected = _manual_episodes(np.asarray(reward), done)
    np.testing.assert_allclose(np.asarray(info["episode_return"])[done], [e[0] for e in expected], rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(info["episode_length"])[done], [200, 200])
