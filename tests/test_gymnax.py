"""gymnax environments through ``advantage/envs/gymnax.py``: the contract, truncation kept apart from
termination on hand-made episodes, equality with gymnax's own auto-resetting ``step``, and PPO learning
``gymnax:CartPole-v1``. The tests that need gymnax skip without it (``pip install "advantage[gymnax]"``)."""

from __future__ import annotations

import importlib.util
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import train_run

from advantage import envs
from advantage.envs import AutoReset, EpisodeStats, registry
from advantage.envs.spaces import Box, Discrete
from advantage.errors import MissingExtraError, UnknownNameError


# ------------------------------------------------------------------ without gymnax
def test_gymnax_ids_are_jax_envs_and_use_the_classic_presets():
    assert registry.is_jax_env("gymnax:CartPole-v1") and registry.is_jax_env("gymnax:MemoryChain-bsuite")
    assert registry.library_of("gymnax:CartPole-v1") == "gymnax"
    assert registry.library_of("gymnax:") is None and registry.library_of("CartPole-v1") is None
    assert registry.preset_id("gymnax:CartPole-v1") == "CartPole-v1"
    assert registry.preset_id("brax:ant") == "brax:ant" and registry.preset_id("CartPole-v1") == "CartPole-v1"


def test_missing_gymnax_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "gymnax", None)  # import gymnax raises ImportError
    with pytest.raises(MissingExtraError, match=r'pip install "advantage\[gymnax\]"'):
        envs.make("gymnax:CartPole-v1")


def test_cli_without_gymnax_exits_2_naming_the_extra(tmp_path, capsys, monkeypatch):
    from advantage.cli import main

    monkeypatch.setitem(sys.modules, "gymnax", None)
    run_dir = tmp_path / "r"
    try:
        code = main(["train", "ppo", "--env", "gymnax:CartPole-v1", "--run-dir", str(run_dir), "--no-progress"])
    except SystemExit as e:
        code = e.code
    err = " ".join(capsys.readouterr().err.replace("│", " ").split())
    assert code == 2 and 'pip install "advantage[gymnax]"' in err and "Traceback" not in err, err
    assert not (run_dir / "config.json").exists()


# ------------------------------------------------------------------ with gymnax
needs_gymnax = pytest.mark.skipif(
    importlib.util.find_spec("gymnax") is None, reason='needs gymnax: pip install "advantage[gymnax]"'
)


def _stacked(env_id, **kwargs):
    env, params = envs.make(env_id, **kwargs)
    return env, AutoReset(EpisodeStats(env)), params


@needs_gymnax
def test_spaces_and_shapes():
    cases = {  # id: (observation shape, action space)
        "CartPole-v1": ((4,), Discrete(2)),
        "MemoryChain-bsuite": ((3,), Discrete(2)),
        "Breakout-MinAtar": ((10, 10, 4), Discrete(3)),
        "FrozenLake-misc": ((16,), Discrete(4)),  # a Discrete(16) observation, one-hot
    }
    for env_id, (shape, action_space) in cases.items():
        env, wrapped, params = _stacked("gymnax:" + env_id)
        space = env.observation_space(params)
        assert isinstance(space, Box) and space.shape == shape and env.action_space(params) == action_space
        assert space.one_hot == (env_id == "FrozenLake-misc")
        obs, state = jax.jit(jax.vmap(wrapped.reset, in_axes=(0, None)))(jax.random.split(jax.random.key(0), 3), params)
        assert obs.shape == (3, *shape) and obs.dtype == jnp.float32
        actions = jnp.zeros(3, jnp.int32)
        obs, state, reward, terminated, truncated, info = jax.jit(jax.vmap(wrapped.step, in_axes=(0, 0, 0, None)))(
            jax.random.split(jax.random.key(1), 3), state, actions, params
        )
        assert obs.shape == (3, *shape) and obs.dtype == jnp.float32 and info["final_obs"].shape == (3, *shape)
        assert reward.shape == (3,) and reward.dtype == jnp.float32
        assert terminated.dtype == jnp.bool_ and truncated.dtype == jnp.bool_
    one_hot = np.asarray(obs)  # FrozenLake's last: each row one-hot
    np.testing.assert_array_equal(one_hot.sum(-1), 1.0)

    env, params = envs.make("gymnax:Pendulum-v1")
    assert env.action_space(params) == Box(-2.0, 2.0, (1,)) and env.max_episode_steps == 200


@needs_gymnax
def test_unknown_gymnax_id_suggests_the_close_one():
    with pytest.raises(UnknownNameError, match="gymnax:CartPole-v1"):
        envs.make("gymnax:CartPol-v1")


def _cartpole_at(env, wrapped, params, time, theta):
    """The stacked CartPole's state at step ``time`` of an episode, the pole at angle ``theta``, still."""
    _, state = wrapped.reset(jax.random.key(0), params)
    inner = state.env_state.replace(x=0.0, x_dot=0.0, theta=theta, theta_dot=0.0, time=time)
    return state.replace(env_state=inner, episode_length=jnp.int32(time), episode_return=jnp.float32(time))


@needs_gymnax
def test_truncation_on_the_last_step_keeps_the_final_observation():
    env, wrapped, params = _stacked("gymnax:CartPole-v1")
    assert env.max_episode_steps == params.max_steps_in_episode == 500
    state = _cartpole_at(env, wrapped, params, time=499, theta=0.0)  # upright: the 500th step cannot fail
    obs, new, reward, terminated, truncated, info = jax.jit(wrapped.step)(jax.random.key(1), state, 1, params)
    assert bool(truncated) and not bool(terminated)
    assert float(reward) == 1.0
    assert bool(info["episode_done"]) and int(info["episode_length"]) == 500 and float(info["episode_return"]) == 500
    # the true last observation: pushed right from rest, x and theta still 0, x_dot > 0, theta_dot < 0
    final = np.asarray(info["final_obs"])
    assert final[0] == 0.0 and final[2] == 0.0 and final[1] > 0 and final[3] < 0
    # ... and a fresh episode: its first observation, time 0, in the reset range
    assert int(new.env_state.time) == 0 and int(new.episode_length) == 0
    assert np.all(np.abs(np.asarray(obs)) <= 0.05) and not np.array_equal(obs, final)


@needs_gymnax
def test_termination_is_not_truncation():
    env, wrapped, params = _stacked("gymnax:CartPole-v1")
    step = jax.jit(wrapped.step)
    past = params.theta_threshold_radians + 0.01  # the pole is beyond 12 degrees after this step
    terminated, truncated = step(jax.random.key(1), _cartpole_at(env, wrapped, params, 10, past), 0, params)[3:5]
    assert bool(terminated) and not bool(truncated)
    # falling on the last allowed step: both are true, and terminated wins (no bootstrap)
    terminated, truncated = step(jax.random.key(1), _cartpole_at(env, wrapped, params, 499, past), 0, params)[3:5]
    assert bool(terminated) and bool(truncated)
    # a step in the middle of an episode is neither
    terminated, truncated = step(jax.random.key(1), _cartpole_at(env, wrapped, params, 10, 0.0), 0, params)[3:5]
    assert not bool(terminated) and not bool(truncated)


@needs_gymnax
def test_memory_chain_terminates_after_the_query_with_the_right_reward():
    """MemoryChain (memory length 5): the context bit is shown on the first step only, the episode terminates
    on the 6th step, which pays +1 for repeating the bit and -1 otherwise; its time limit (1000) never truncates."""
    env, wrapped, params = _stacked("gymnax:MemoryChain-bsuite")
    step = jax.jit(wrapped.step)
    for reset_seed in range(4):
        for repeat in (True, False):
            obs, state = wrapped.reset(jax.random.key(reset_seed), params)
            bit = int((obs[2] + 1) / 2)  # the context, as -1 or +1
            rewards, ends = [], []
            for t in range(6):
                action = bit if repeat or t < 5 else 1 - bit
                _, state, reward, terminated, truncated, _ = step(jax.random.key(100 + t), state, action, params)
                rewards.append(float(reward))
                ends.append((bool(terminated), bool(truncated)))
            assert ends == [(False, False)] * 5 + [(True, False)]
            assert rewards == [0.0] * 5 + [1.0 if repeat else -1.0]


@needs_gymnax
@pytest.mark.parametrize(
    "env_id,kwargs",
    [("CartPole-v1", {"max_steps_in_episode": 20}), ("MemoryChain-bsuite", {}), ("Pendulum-v1", {})],
)
def test_equal_to_gymnax_own_auto_resetting_step(env_id, kwargs):
    """``AutoReset(EpisodeStats(adapter))`` splits each step's key as gymnax's ``step`` does, so over a random
    rollout both give the same observations, rewards, ``terminated``, ``truncated`` and final observations
    (CartPole with a 20-step limit, so that random episodes are truncated as well as terminated)."""
    env, wrapped, params = _stacked("gymnax:" + env_id)
    raw = env.env
    params = params.replace(**kwargs)
    space = env.action_space(params)
    n = 300

    def rollout(step, reset, key):
        k_reset, k_steps, k_actions = jax.random.split(key, 3)
        _, state = reset(k_reset, params)
        if isinstance(space, Discrete):
            actions = jax.random.randint(k_actions, (n,), 0, space.n)
        else:
            actions = jax.random.uniform(k_actions, (n, *space.shape), minval=space.low, maxval=space.high)

        def body(state, xs):
            obs, state, reward, terminated, truncated, info = step(xs[0], state, xs[1], params)
            final = info["final_obs"] if "final_obs" in info else info["final_observation"]
            return state, (obs, reward, terminated, truncated, final)

        return jax.lax.scan(body, state, (jax.random.split(k_steps, n), actions))[1]

    ours = jax.jit(lambda k: rollout(wrapped.step, wrapped.reset, k))(jax.random.key(3))
    theirs = jax.jit(lambda k: rollout(raw.step, raw.reset, k))(jax.random.key(3))
    names = ("obs", "reward", "terminated", "truncated", "final_obs")
    for name, a, b in zip(names, ours, theirs):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b, np.asarray(a).dtype), rtol=1e-6, err_msg=name)
    terminated, truncated = np.asarray(ours[2]), np.asarray(ours[3])
    if env_id == "CartPole-v1":  # both kinds of episode end occurred
        assert terminated.sum() >= 3 and (truncated & ~terminated).sum() >= 3
    if env_id == "Pendulum-v1":  # never terminates: only the 200-step limit, and no step of 300 reaches it twice
        assert not terminated.any() and np.flatnonzero(truncated).tolist() == [199]


@needs_gymnax
@pytest.mark.slow
def test_ppo_learns_gymnax_cartpole(tmp_path):
    """PPO with the CartPole-v1 preset (gymnax's CartPole is a port of Gymnasium's: the preset applies), its
    budget of 200k steps, three seeds: each seed's evaluation return reaches 475 of 500."""
    from advantage.presets import CARTPOLE, Preset

    preset = Preset("ppo-cartpole-gymnax", "ppo", "gymnax:CartPole-v1", CARTPOLE)
    seeds = (0, 1, 2)
    summary, run_dir = train_run(
        tmp_path, "ppo", preset.config(), preset.env, seeds=seeds, total_steps=preset.steps, eval_episodes=100
    )
    assert summary["env_steps"] == preset.steps == 200_000
    per_seed = summary["eval_return"]["per_seed"]
    assert all(r >= CARTPOLE for r in per_seed), f"seeds {seeds}: {per_seed}; see {run_dir / 'metrics.csv'}"
