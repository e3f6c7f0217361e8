"""The Gymnasium host back end: shapes, action rescaling, auto-reset, episode statistics, seeding."""

from __future__ import annotations

import envs_for_tests as E
import gymnasium
import numpy as np
import pytest

from advantage.envs.gymnasium import GymnasiumVecEnv, resolve_env_factory
from advantage.envs.spaces import Box, Discrete
from advantage.envs.validation import EnvError


def test_cartpole_shapes_and_dtypes():
    with GymnasiumVecEnv("CartPole-v1", 3) as env:
        assert env.num_envs == 3
        assert isinstance(env.observation_space, Box) and env.observation_space.shape == (4,)
        assert env.action_space == Discrete(2)
        assert isinstance(env.env_action_space, gymnasium.spaces.Discrete)
        assert env.max_episode_steps == 500
        obs = env.reset([0, 1, 2])
        assert obs.shape == (3, 4) and obs.dtype == np.float32
        obs, rew, term, trunc, info = env.step(np.array([0, 1, 0], np.int32))
        assert obs.shape == (3, 4) and obs.dtype == np.float32
        assert rew.shape == (3,) and rew.dtype == np.float32
        assert term.shape == trunc.shape == (3,) and term.dtype == trunc.dtype == np.bool_
        assert info["final_obs"].shape == (3, 4) and info["final_obs"].dtype == np.float32
        assert info["episode_return"].dtype == np.float32 and info["episode_length"].dtype == np.int32
        assert info["episode_done"].dtype == np.bool_
        np.testing.assert_array_equal(info["final_obs"], obs)  # nobody ended


def test_pendulum_box_actions_are_rescaled():
    with GymnasiumVecEnv("Pendulum-v1", 1) as env:
        assert env.action_space == Box(-1.0, 1.0, (1,))
        assert env.env_action_space.high[0] == 2.0
        plain = gymnasium.make("Pendulum-v1")
        for seed, agent_action, torque in [(3, 1.0, 2.0), (4, -1.0, -2.0), (5, 0.25, 0.5), (6, 7.0, 2.0)]:
            obs = env.reset([seed])
            plain_obs, _ = plain.reset(seed=seed)
            np.testing.assert_array_equal(obs[0], plain_obs)
            obs, rew, *_ = env.step(np.array([[agent_action]], np.float32))
            plain_obs, plain_rew, *_ = plain.step(np.array([torque], np.float32))
            np.testing.assert_allclose(obs[0], plain_obs, rtol=1e-6)
            np.testing.assert_allclose(rew[0], plain_rew, rtol=1e-6)
        plain.close()


def test_asymmetric_box_rescaling_and_clipping():
    with GymnasiumVecEnv(E.ActionRecorderEnv, 1) as env:
        env.reset([0])
        seen = [
            env.step(np.array([a], np.float32))[0][0]
            for a in ([-1.0, -1.0], [1.0, 1.0], [0.0, 0.0], [5.0, -5.0])
        ]
    np.testing.assert_allclose(seen, [[0.0, -3.0], [10.0, 1.0], [5.0, -1.0], [10.0, -3.0]], atol=1e-6)


def test_final_obs_is_the_true_last_observation_on_autoreset():
    seed, actions = 11, [0] * 30  # always push left: CartPole falls within ~10 steps
    plain = gymnasium.make("CartPole-v1")
    expected_obs, _ = plain.reset(seed=seed)
    with GymnasiumVecEnv("CartPole-v1", 1) as env:
        obs = env.reset([seed])
        np.testing.assert_array_equal(obs[0], expected_obs)
        for t, a in enumerate(actions):
            plain_obs, plain_rew, plain_term, plain_trunc, _ = plain.step(a)
            obs, rew, term, trunc, info = env.step(np.array([a]))
            assert term[0] == plain_term and trunc[0] == plain_trunc
            np.testing.assert_array_equal(info["final_obs"][0], plain_obs)
            if plain_term:
                next_first, _ = plain.reset()  # same np_random stream as the sub-env's auto-reset
                np.testing.assert_array_equal(obs[0], next_first)
                assert not np.array_equal(obs[0], info["final_obs"][0])
                assert info["episode_done"][0] and info["episode_length"][0] == t + 1
                break
            np.testing.assert_array_equal(obs[0], plain_obs)
        else:
            pytest.fail("CartPole did not terminate")
    plain.close()


def test_time_limit_is_truncation_not_termination():
    with GymnasiumVecEnv("Pendulum-v1", 2) as env:
        assert env.max_episode_steps == 200
        env.reset([0, 1])
        total = np.zeros(2)
        for t in range(1, 201):
            obs, rew, term, trunc, info = env.step(np.zeros((2, 1), np.float32))
            total += rew
            assert not term.any()
            if t < 200:
                assert not trunc.any() and not info["episode_done"].any()
                assert (info["episode_length"] == 0).all() and (info["episode_return"] == 0).all()
        assert trunc.all() and info["episode_done"].all()
        np.testing.assert_array_equal(info["episode_length"], [200, 200])
        np.testing.assert_allclose(info["episode_return"], total, rtol=1e-5)
        assert not np.array_equal(info["final_obs"], obs)


def test_episode_statistics_equal_manual_sums():
    rng = np.random.default_rng(0)
    n = 3
    with GymnasiumVecEnv("CartPole-v1", n) as env:
        env.reset([10, 20, 30])
        ret, length = np.zeros(n), np.zeros(n, int)
        finished = []
        for _ in range(150):
            _, rew, term, trunc, info = env.step(rng.integers(0, 2, n))
            ret += rew
            length += 1
            done = term | trunc
            np.testing.assert_array_equal(info["episode_done"], done)
            for i in np.flatnonzero(done):
                assert info["episode_length"][i] == length[i]
                np.testing.assert_allclose(info["episode_return"][i], ret[i], rtol=1e-6)
                finished.append(i)
                ret[i], length[i] = 0.0, 0
            assert (info["episode_length"][~done] == 0).all() and (info["episode_return"][~done] == 0).all()
        assert len(finished) >= n  # several episodes ended


def _rollout(env, seeds, steps=40):
    rng = np.random.default_rng(123)
    out = [env.reset(seeds)]
    for _ in range(steps):
        obs, rew, term, trunc, info = env.step(rng.integers(0, 2, env.num_envs))
        out += [obs, info["final_obs"], rew[:, None]]
    return np.concatenate(out, axis=1)


def test_reset_seeds_make_runs_reproducible():
    with GymnasiumVecEnv("CartPole-v1", 2) as a, GymnasiumVecEnv("CartPole-v1", 2) as b:
        run1, run2 = _rollout(a, [1, 2]), _rollout(b, [1, 2])
        run3 = _rollout(a, [1, 3])
    np.testing.assert_array_equal(run1, run2)
    np.testing.assert_array_equal(run1[0], run3[0])  # same seed, same sub-env trajectory
    assert not np.array_equal(run1[1], run3[1])


def test_async_matches_sync():
    with GymnasiumVecEnv("envs_for_tests:CountEnv", 2, asynchronous=True, env_kwargs={"length": 3}) as a:
        with GymnasiumVecEnv("envs_for_tests:CountEnv", 2, env_kwargs={"length": 3}) as s:
            np.testing.assert_array_equal(a.reset([4, 5]), s.reset([4, 5]))
            for t in range(7):
                acts = np.array([t % 2, 1])
                for x, y in zip(a.step(acts), s.step(acts)):
                    if isinstance(x, dict):
                        assert x.keys() == y.keys()
                        for k in x:
                            np.testing.assert_array_equal(x[k], y[k])
                    else:
                        np.testing.assert_array_equal(x, y)
            assert a.max_episode_steps is None


@pytest.mark.parametrize(
    "env, kwargs",
    [
        ("envs_for_tests:CountEnv", {"length": 2}),  # module:Class
        ("envs_for_tests:make_count_env", {"length": 2}),  # module:function
        (E.CountEnv, {"length": 2}),  # a class
        (lambda: E.CountEnv(length=2), None),  # a factory function
    ],
)
def test_env_forms(env, kwargs):
    with GymnasiumVecEnv(env, 2, env_kwargs=kwargs) as v:
        v.reset([0, 1])
        v.step(np.array([0, 1]))
        _, rew, term, _, info = v.step(np.array([1, 1]))
        assert term.all()
        np.testing.assert_array_equal(info["episode_return"], [3.0, 4.0])
        np.testing.assert_array_equal(info["episode_length"], [2, 2])


def test_gymnasium_id_kwargs_and_module_id_form():
    with GymnasiumVecEnv("CartPole-v1", 1, env_kwargs={"max_episode_steps": 7}) as v:
        assert v.max_episode_steps == 7
    gymnasium.register("AdvantageTestCount-v0", entry_point="envs_for_tests:CountEnv", max_episode_steps=4)
    try:
        with GymnasiumVecEnv("envs_for_tests:AdvantageTestCount-v0", 1) as v:
            assert v.max_episode_steps == 4
    finally:
        gymnasium.registry.pop("AdvantageTestCount-v0")


def test_float64_observations_are_cast_to_float32():
    with GymnasiumVecEnv(E.CountEnv, 2, env_kwargs={"obs_dtype": np.float64}) as env:
        assert env.env_observation_space.dtype == np.float64
        obs = env.reset([0, 1])
        assert obs.dtype == np.float32
        plain = E.CountEnv(obs_dtype=np.float64)
        np.testing.assert_array_equal(obs[1], plain.reset(seed=1)[0].astype(np.float32))
        obs, _, _, _, info = env.step(np.array([0, 0]))
        assert obs.dtype == np.float32 and info["final_obs"].dtype == np.float32


def test_discrete_observations_are_one_hot_and_discrete_start_actions():
    with GymnasiumVecEnv("FrozenLake-v1", 2, env_kwargs={"is_slippery": False}) as env:
        assert env.observation_space == Box(0.0, 1.0, (16,))
        obs = env.reset([0, 1])
        np.testing.assert_array_equal(obs, np.eye(16, dtype=np.float32)[[0, 0]])
        obs, *_ = env.step(np.array([2, 1]))  # right, down
        np.testing.assert_array_equal(obs, np.eye(16, dtype=np.float32)[[1, 4]])

    with GymnasiumVecEnv(E.DiscreteStartEnv, 3) as env:  # actions Discrete(3, start=-1), obs Discrete(4, start=2)
        assert env.action_space == Discrete(3) and env.observation_space.shape == (4,)
        np.testing.assert_array_equal(env.reset([0, 1, 2]), np.eye(4, dtype=np.float32)[[0, 0, 0]])
        obs, rew, *_ = env.step(np.array([0, 1, 2]))  # env sees -1, 0, 1 and returns 2, 3, 4
        np.testing.assert_array_equal(rew, [-1.0, 0.0, 1.0])
        np.testing.assert_array_equal(obs, np.eye(4, dtype=np.float32)[[0, 1, 2]])


def test_no_time_limit_is_reported_as_none():
    with GymnasiumVecEnv(E.CountEnv, 1) as env:
        assert env.max_episode_steps is None


def test_bad_inputs_give_clear_errors():
    with pytest.raises(EnvError, match="CartPole-v1"):
        resolve_env_factory("CartPol-v1")
    with pytest.raises(EnvError, match="instance"):
        GymnasiumVecEnv(E.CountEnv(), 2)
    with pytest.raises(EnvError, match="class CountEnv, not an instance"):
        GymnasiumVecEnv(E.returns_class, 2)
    with pytest.raises(EnvError, match="old `gym` package"):
        resolve_env_factory(E.OldGymEnv)
    with pytest.raises(EnvError, match="env_kwargs"):
        resolve_env_factory(E.CountEnv, {"lenght": 3})
    with pytest.raises(EnvError, match="cannot be flattened"):
        GymnasiumVecEnv(E.NestedSequenceObsEnv, 1, validate=False)  # unsupported spaces even without validation
    with GymnasiumVecEnv("Pendulum-v1", 2) as env:
        with pytest.raises(EnvError, match="before reset"):
            env.step(np.zeros((2, 1)))
        with pytest.raises(EnvError, match="one seed per sub-env"):
            env.reset([0])
        env.reset([0, 1])
        with pytest.raises(EnvError, match=r"shape \(2, 1\)"):
            env.step(np.zeros(2))
        with pytest.raises(EnvError, match="non-finite actions"):
            env.step(np.array([[0.0], [np.nan]]))


def test_final_obs_survives_envs_that_reuse_their_observation_buffer():
    with GymnasiumVecEnv(E.InPlaceEnv, 2) as env:
        env.reset([0, 1])
        for _ in range(2):
            env.step(np.zeros(2, int))
        obs, _, term, _, info = env.step(np.zeros(2, int))
    assert term.all()
    np.testing.assert_array_equal(info["final_obs"], [[3.0], [3.0]])
    np.testing.assert_array_equal(obs, [[0.0], [0.0]])
