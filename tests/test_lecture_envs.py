"""The lectures' environments: dynamics by hand, aliasing, termination vs truncation, jit/vmap, registry."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from advantage.envs import make, registered_ids
from advantage.envs.lectures.access_control import (
    AccessControl,
    AccessState,
    average_reward_of,
    optimal_average_reward,
    state_index,
    transition_model,
)
from advantage.envs.lectures.aliased_gridworld import AliasedGridworld, AliasedState, features
from advantage.envs.lectures.one_state import OneStateContinuous, OneStateDiscrete
from advantage.envs.lectures.rock_paper_scissors import RockPaperScissors, RPSState, best_response
from advantage.envs.validation import observation_problems, reward_problems

N, E, S, W = 0, 1, 2, 3
KEY = jax.random.PRNGKey(0)
IDS = {"AliasedGridworld-v0": 100, "RockPaperScissors-v0": 100, "OneStateContinuous-v0": 1,
       "OneStateDiscrete-v0": 1, "AccessControl-v0": 1000}


@pytest.mark.parametrize("env_id", list(IDS))
def test_registered_with_time_limit(env_id):
    assert env_id in registered_ids()
    env, params = make(env_id)
    assert env.max_episode_steps == IDS[env_id]


# ----------------------------------------------------------------------------- aliased grid world
def _at(pos):
    return AliasedState(jnp.asarray(pos, jnp.int32), jnp.asarray(False))


def test_aliased_features_grey_cells_identical():
    f = np.asarray([features(p) for p in range(5)])
    np.testing.assert_array_equal(f[1], f[3])
    np.testing.assert_array_equal(f[1], [1, 0, 1, 0])  # wall to N and S: the slides' grey state
    # every other corridor cell is distinguishable from the grey cells and from each other
    assert len({tuple(x) for x in f}) == 4
    np.testing.assert_array_equal(f[0], [1, 0, 0, 1])
    np.testing.assert_array_equal(f[2], [1, 0, 0, 0])
    np.testing.assert_array_equal(f[4], [1, 1, 0, 0])


@pytest.mark.parametrize("pos,action,new_pos", [
    (0, E, 1), (1, E, 2), (3, E, 4), (4, E, 4),  # east, wall at the right end
    (4, W, 3), (1, W, 0), (0, W, 0),  # west, wall at the left end
    (2, N, 2), (1, N, 1),  # wall to the north everywhere
    (1, S, 1), (3, S, 3),  # wall to the south of the grey cells
])
def test_aliased_moves(pos, action, new_pos):
    env = AliasedGridworld()
    p = env.default_params()
    obs, st, r, term, trunc, info = env.step(KEY, _at(pos), action, p)
    assert int(st.pos) == new_pos and not bool(term) and not bool(trunc) and float(r) == 0.0
    np.testing.assert_array_equal(obs, features(new_pos))


@pytest.mark.parametrize("pos,reward", [(2, 1.0), (0, -1.0), (4, -1.0)])
def test_aliased_money_and_skulls_terminate(pos, reward):
    env = AliasedGridworld()
    obs, st, r, term, trunc, info = env.step(KEY, _at(pos), S, env.default_params())
    assert float(r) == reward and bool(term) and not bool(trunc)
    assert bool(info["reached_goal"]) == (reward > 0)


def test_aliased_reset_uniform_over_corridor():
    env = AliasedGridworld()
    _, st = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(KEY, 5000), env.default_params())
    counts = np.bincount(np.asarray(st.pos), minlength=5)
    assert counts.shape == (5,) and np.all(np.abs(counts / 5000 - 0.2) < 0.03)


def test_aliased_truncates_at_100_steps():
    env, p = make("AliasedGridworld-v0")
    obs, st = env.reset(KEY, p)
    st = st.replace(env_state=_at(4))

    def body(carry, _):  # always E: stuck against the east wall, never terminates
        st = carry
        _, st, r, term, trunc, _ = env.step(KEY, st, E, p)
        return st, (term, trunc)

    _, (term, trunc) = jax.lax.scan(body, st, None, length=100)
    assert not np.any(term)
    assert np.flatnonzero(np.asarray(trunc)).tolist() == [99]


# ----------------------------------------------------------------------------- rock-paper-scissors
def test_rps_payoff_and_best_response():
    env = RockPaperScissors()
    p = env.default_params()
    rock_heavy = RPSState(jnp.asarray([0.8, 0.1, 0.1]), jnp.asarray(0))
    assert int(best_response(KEY, rock_heavy.freq)) == 1  # paper beats rock
    for action, reward in ((0, -1.0), (1, 0.0), (2, 1.0)):  # opponent plays paper
        _, st, r, term, trunc, info = env.step(KEY, rock_heavy, action, p)
        assert int(info["opponent_action"]) == 1 and float(r) == reward and not bool(term) and not bool(trunc)
    # the moving average moves towards the agent's action
    _, st, *_ = env.step(KEY, rock_heavy, 2, p)
    np.testing.assert_allclose(st.freq, 0.8 * np.array([0.8, 0.1, 0.1]) + 0.2 * np.array([0, 0, 1]), rtol=1e-6)
    # uniform frequencies: a three-way tie, broken at random
    uniform = jnp.full(3, 1 / 3)
    picks = jax.vmap(lambda k: best_response(k, uniform))(jax.random.split(KEY, 600))
    assert set(np.asarray(picks).tolist()) == {0, 1, 2}


def _rps_mean_reward(probs, n=200):
    env, p = make("RockPaperScissors-v0")
    logits = jnp.log(jnp.clip(jnp.asarray(probs), 1e-12))

    def episode(k):
        obs, st = env.reset(k, p)

        def body(st, kt):
            ka, ke = jax.random.split(kt)
            _, st, r, term, trunc, _ = env.step(ke, st, jax.random.categorical(ka, logits), p)
            return st, (r, term, trunc)

        _, out = jax.lax.scan(body, st, jax.random.split(k, 100))
        return out

    r, term, trunc = jax.jit(jax.vmap(episode))(jax.random.split(KEY, n))
    assert not np.any(term) and np.all(np.asarray(trunc)[:, -1]) and not np.any(np.asarray(trunc)[:, :-1])
    return float(r.mean())


def test_rps_deterministic_exploited_uniform_not():
    for a in range(3):
        assert _rps_mean_reward(np.eye(3)[a]) < -0.95
    assert abs(_rps_mean_reward(np.full(3, 1 / 3))) < 0.03


# ----------------------------------------------------------------------------- one-state MDPs
def test_one_state_continuous():
    env = OneStateContinuous()
    p = env.default_params()
    obs, st = env.reset(KEY, p)
    for a, r_expected in ((1.0, 0.0), (0.0, -1.0), (-2.0, -9.0), (5.0, -1.0)):  # 5 is clipped to 2
        obs2, _, r, term, trunc, _ = env.step(KEY, st, jnp.asarray([a]), p)
        assert float(r) == pytest.approx(r_expected) and bool(term) and not bool(trunc)
    _, _, r, *_ = env.step(KEY, st, jnp.asarray([1.0]), p.replace(offset=5.0))
    assert float(r) == pytest.approx(-5.0)
    rs = jax.vmap(lambda a: env.step(KEY, st, a[None], p)[2])(jnp.linspace(-2, 2, 101))
    assert np.all(np.asarray(rs) <= 0)
    assert env.action_space(p).shape == (1,)


def test_one_state_discrete():
    env = OneStateDiscrete()
    p = env.default_params()
    _, st = env.reset(KEY, p)
    rs = [float(env.step(KEY, st, a, p)[2]) for a in range(2)]
    assert rs == [-1.0, -2.0]
    assert bool(env.step(KEY, st, 0, p)[3])


# ----------------------------------------------------------------------------- all of them
@pytest.mark.parametrize("env_id", list(IDS))
def test_jit_vmap_and_valid_outputs(env_id):
    """Many copies under jit(vmap) with random actions for 120 steps through AutoReset; every observation
    in the space, finite rewards, boolean flags (the checks of envs/validation.py)."""
    from advantage.envs.wrappers import AutoReset

    env, p = make(env_id)
    env = AutoReset(env)
    space, aspace = env.observation_space(p), env.action_space(p)
    n = 16

    def act(k):
        if hasattr(aspace, "n"):
            return jax.random.randint(k, (n,), 0, aspace.n)
        return jax.random.uniform(k, (n,) + aspace.shape, minval=aspace.low, maxval=aspace.high)

    @jax.jit
    def rollout(key):
        k0, k1 = jax.random.split(key)
        obs, st = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k0, n), p)

        def body(carry, k):
            obs, st = carry
            ka, ke = jax.random.split(k)
            obs2, st, r, term, trunc, info = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                jax.random.split(ke, n), st, act(ka), p)
            return (obs2, st), (obs2, r, term, trunc)

        _, out = jax.lax.scan(body, (obs, st), jax.random.split(k1, 120))
        return obs, out

    obs0, (obs, r, term, trunc) = rollout(KEY)
    assert obs.shape == (120, n) + space.shape and obs.dtype == jnp.float32
    assert r.shape == (120, n) and term.dtype == jnp.bool_ and trunc.dtype == jnp.bool_
    import gymnasium

    gym_space = gymnasium.spaces.Box(space.low, space.high, space.shape, np.float32)
    for i, o in enumerate(np.asarray(obs).reshape((-1,) + space.shape)[:50]):
        assert not observation_problems(o, gym_space, f"step {i}")
        assert space.contains(o)
    assert not reward_problems(np.asarray(r[0, 0]), "step 0")
    assert np.all(np.isfinite(np.asarray(r)))
    if env_id == "AccessControl-v0":  # a continuing task: no episode ends within its 1000-step time limit
        assert not np.any(np.asarray(term) | np.asarray(trunc))
    else:
        assert np.any(np.asarray(term) | np.asarray(trunc))  # episodes end (and AutoReset restarts them)


# ----------------------------------------------------------------------------- access control (S&B Example 10.2)
def _queue(free, priority):
    return AccessState(jnp.asarray(free, jnp.int32), jnp.asarray(priority, jnp.int32))


@pytest.mark.parametrize("priority,reward", [(0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0)])
def test_access_control_accept_pays_priority(priority, reward):
    env = AccessControl()
    p = env.default_params().replace(p_free=0.0)  # no server frees: the step's own effect only
    obs, st, r, term, trunc, _ = env.step(KEY, _queue(5, priority), 1, p)
    assert float(r) == reward and int(st.free) == 4 and not bool(term) and not bool(trunc)
    assert obs.shape == (44,) and float(obs.sum()) == 1.0 and int(obs.argmax()) == state_index(4, int(st.priority))
    obs, st, r, *_ = env.step(KEY, _queue(5, priority), 0, p)  # reject: reward 0, servers unchanged
    assert float(r) == 0.0 and int(st.free) == 5


def test_access_control_accept_without_free_server_is_impossible():
    env = AccessControl()
    p = env.default_params().replace(p_free=0.0)
    for priority in range(4):
        _, st, r, term, _, _ = env.step(KEY, _queue(0, priority), 1, p)
        assert float(r) == 0.0 and int(st.free) == 0 and not bool(term)
    P, R = transition_model()
    assert np.all(R[[state_index(0, k) for k in range(4)]] == 0.0)


def test_access_control_servers_free_with_probability_p():
    """All 10 servers busy, reject every customer: the number freed in one step is Binomial(10, 0.06)."""
    env = AccessControl()
    p = env.default_params()
    keys = jax.random.split(KEY, 20_000)
    _, st, r, term, _, _ = jax.vmap(lambda k: env.step(k, _queue(0, 3), 0, p))(keys)
    freed = np.asarray(st.free, np.float64)
    assert np.all(np.asarray(r) == 0.0) and not np.any(np.asarray(term))
    assert abs(freed.mean() - 10 * 0.06) < 4 * np.sqrt(10 * 0.06 * 0.94 / 20_000)  # mean of Binomial(10, 0.06)
    assert abs(np.mean(freed == 0) - 0.94**10) < 0.015
    # with every server free there is nothing to free, and a free server never becomes busy by itself
    _, st, *_ = jax.vmap(lambda k: env.step(k, _queue(10, 0), 0, p))(keys[:100])
    assert np.all(np.asarray(st.free) == 10)


def test_access_control_never_terminates_and_matches_its_model():
    env = AccessControl()
    p = env.default_params()
    obs, st = env.reset(KEY, p)

    def body(carry, k):
        (st,) = carry
        ka, ks = jax.random.split(k)
        obs, st2, r, term, trunc, _ = env.step(ks, st, jax.random.randint(ka, (), 0, 2), p)
        return (st2,), (term, r)

    _, (term, r) = jax.lax.scan(body, (st,), jax.random.split(KEY, 5_000))
    assert not np.any(np.asarray(term))
    # uniformly random policy: its long-run reward per step matches the exact stationary rate of the model
    assert abs(float(np.mean(np.asarray(r))) - average_reward_of(np.full((44, 2), 0.5))) < 0.15
    P, _ = transition_model()
    np.testing.assert_allclose(P.sum(axis=-1), 1.0)


def test_access_control_optimal_rate_beats_simple_policies():
    rho, policy = optimal_average_reward()
    always_accept = average_reward_of(np.tile([0.0, 1.0], (44, 1)))
    assert rho > always_accept > average_reward_of(np.full((44, 2), 0.5))
    assert abs(average_reward_of(np.eye(2)[policy]) - rho) < 1e-6  # the greedy policy attains rho*
    assert policy[state_index(10, 3)] == 1 and policy[state_index(1, 0)] == 0  # accept an 8, reject a 1 when busy
