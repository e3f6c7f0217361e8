"""The replay buffer: circular overwrite, uniform sampling of filled slots only, shapes,
its size in bytes, and a checkpoint round trip inside an agent state."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import serialization

from advantage.buffers import replay
from advantage.types import Transition


def _batch(values, B=1, obs_shape=(2,), act_dim=1):
    """A ``[T, B]`` batch whose obs, action, reward and next_obs all encode the value ``v`` of the step."""
    v = jnp.asarray(values, jnp.float32).reshape(-1, B)
    T = v.shape[0]
    obs = jnp.broadcast_to(v[..., None], (T, B) + obs_shape)
    return Transition(obs=obs, action=jnp.broadcast_to(v[..., None], (T, B, act_dim)), reward=v,
                      terminated=v > 100, truncated=(v % 2) == 1, next_obs=obs + 0.5,
                      log_prob=jnp.zeros((T, B)), value=jnp.zeros((T, B)))


def test_shapes_and_empty_buffer():
    buf = replay.init(5, (3, 2), (4,))
    assert buf.obs.shape == (5, 3, 2) and buf.next_obs.shape == (5, 3, 2) and buf.action.shape == (5, 4)
    assert buf.reward.shape == buf.terminated.shape == buf.truncated.shape == (5,)
    assert int(replay.size(buf)) == 0 and replay.capacity(buf) == 5
    s = replay.sample(buf, jax.random.PRNGKey(0), 7)
    assert s.obs.shape == (7, 3, 2) and s.action.shape == (7, 4) and s.reward.shape == (7,)
    # per slot: obs and next_obs 6 float32 each, action 4 float32, reward float32, two bool flags; two int32 counters
    expected = 5 * (6 * 4 * 2 + 4 * 4 + 4 + 1 + 1) + 4 + 4
    assert replay.nbytes(buf) == expected


def test_add_flattens_time_major_and_keeps_flags():
    buf = replay.init(10, (2,), (1,))
    batch = _batch(np.arange(6), B=2)  # [T=3, B=2]: steps (t, b) hold 2t + b
    buf = replay.add(buf, batch)
    np.testing.assert_array_equal(np.asarray(buf.reward[:6]), np.arange(6))
    np.testing.assert_array_equal(np.asarray(buf.truncated[:6]), np.arange(6) % 2 == 1)
    np.testing.assert_array_equal(np.asarray(buf.next_obs[:6, 0]), np.arange(6) + 0.5)
    assert int(buf.count) == 6 and int(buf.position) == 6


def test_circular_overwrite():
    buf = replay.init(4, (2,), (1,))
    for v in range(6):  # 0..5 into 4 slots: 4 and 5 overwrite 0 and 1
        buf = replay.add(buf, _batch([v]))
    np.testing.assert_array_equal(np.asarray(buf.reward), [4, 5, 2, 3])
    assert int(replay.size(buf)) == 4 and int(buf.position) == 2
    # a batch that wraps around the end
    buf = replay.add(buf, _batch([10, 11, 12]))
    np.testing.assert_array_equal(np.asarray(buf.reward), [12, 5, 10, 11])
    assert int(buf.position) == 1
    # a batch larger than the buffer keeps only its last `capacity` transitions
    buf = replay.add(buf, _batch(np.arange(20, 27)))
    assert sorted(np.asarray(buf.reward).tolist()) == [23, 24, 25, 26]
    assert int(replay.size(buf)) == 4


def test_add_is_jittable_and_in_a_scan():
    buf = replay.init(8, (2,), (1,))
    add = jax.jit(replay.add)

    def body(b, v):
        return add(b, _batch(v[None])), None

    buf, _ = jax.lax.scan(body, buf, jnp.arange(11.0))
    np.testing.assert_array_equal(np.asarray(buf.reward), [8, 9, 10, 3, 4, 5, 6, 7])


def test_sampling_only_filled_slots_uniformly():
    buf = replay.init(100, (2,), (1,))
    buf = replay.add(buf, _batch(np.arange(1, 8)))  # 7 filled slots with values 1..7; the rest are zeros
    s = jax.jit(replay.sample, static_argnums=2)(buf, jax.random.PRNGKey(0), 70_000)
    r = np.asarray(s.reward)
    assert set(np.unique(r).tolist()) == set(range(1, 8))  # never an empty (zero) slot
    counts = np.bincount(r.astype(int), minlength=8)[1:]
    np.testing.assert_allclose(counts / 70_000, 1 / 7, atol=0.01)  # uniform
    # each sampled transition is whole: obs, action, next_obs and flags belong to the same step
    np.testing.assert_array_equal(np.asarray(s.obs[:, 0]), r)
    np.testing.assert_array_equal(np.asarray(s.action[:, 0]), r)
    np.testing.assert_array_equal(np.asarray(s.next_obs[:, 1]), r + 0.5)
    np.testing.assert_array_equal(np.asarray(s.truncated), r % 2 == 1)


@pytest.mark.parametrize("algo", ["td3", "sac"])
def test_checkpoint_round_trip_with_the_buffer(algo):
    """The buffer is part of AgentState, so flax.serialization saves and restores it like the parameters."""
    from advantage import algos
    from advantage.envs import Box

    mod = algos.get(algo)
    cfg = mod.Config(hidden_sizes=(8,), buffer_size=16, batch_size=4, learning_starts=0)
    obs_space, act_space = Box(-1, 1, (2,)), Box(-1, 1, (1,))
    state = mod.init(jax.random.PRNGKey(0), obs_space, act_space, cfg, total_steps=100)
    assert replay.capacity(state.buffer) == 16
    batch = _batch(np.arange(5.0))
    state, m = mod.update(cfg, act_space, state, batch, jax.random.PRNGKey(1))
    assert int(replay.size(state.buffer)) == 5 and float(m["buffer/size"]) == 5
    data = serialization.msgpack_serialize(serialization.to_state_dict(jax.device_get(state)))
    template = mod.init(jax.random.PRNGKey(7), obs_space, act_space, cfg, total_steps=100)
    restored = serialization.from_state_dict(template, serialization.msgpack_restore(data))
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(restored)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(restored.buffer.reward[:5]), np.arange(5.0))


def test_capacity_is_capped_by_the_budget():
    """A buffer larger than everything the run will collect is allocated at the budget's size."""
    from advantage.algos import td3
    from advantage.envs import Box

    cfg = td3.Config(hidden_sizes=(8,), buffer_size=1_000_000)
    state = td3.init(jax.random.PRNGKey(0), Box(-1, 1, (3,)), Box(-2, 2, (1,)), cfg, total_steps=20_000)
    assert replay.capacity(state.buffer) == 20_000
    assert replay.nbytes(state.buffer) == 20_000 * (3 * 4 * 2 + 4 + 4 + 1 + 1) + 8
