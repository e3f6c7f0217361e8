"""Brax environments through ``advantage/envs/brax.py``: the contract, an episode that terminates (the pendulum
falls) and one that is truncated (the time limit), both through the driver's wrappers, and PPO on
``brax:inverted_pendulum``. The tests that need Brax skip without it (``pip install "advantage[brax]"``; not in
the ``test`` extra: it brings MuJoCo, and each Brax program takes 20-30 s to compile on a CPU)."""

from __future__ import annotations

import csv
import importlib.util
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import train_run

from advantage import envs
from advantage.envs import AutoReset, EpisodeStats, registry
from advantage.envs.spaces import Box
from advantage.errors import MissingExtraError

needs_brax = pytest.mark.skipif(importlib.util.find_spec("brax") is None, reason='needs brax: "advantage[brax]"')


def test_missing_brax_names_the_extra(monkeypatch):
    assert registry.is_jax_env("brax:inverted_pendulum") and registry.library_of("brax:ant") == "brax"
    monkeypatch.setitem(sys.modules, "brax", None)  # import brax raises ImportError
    with pytest.raises(MissingExtraError, match=r'pip install "advantage\[brax\]"'):
        envs.make("brax:inverted_pendulum")


@needs_brax
def test_inverted_pendulum_terminates_when_it_falls_and_is_truncated_at_the_limit():
    """Two envs of one rollout through ``AutoReset(EpisodeStats(TimeLimit(raw)))`` with a 10-step limit: pushed
    one way (action +1) the pole falls within a few steps, every episode *terminates* (|angle| > 0.2 in the final
    observation, not truncated); held still (action 0) from near upright it stays up for 10 steps (it falls after
    about 20) and every episode is *truncated* (not terminated, |angle| <= 0.2: bootstrapped from that final
    observation)."""
    env, params = envs.make("brax:inverted_pendulum", episode_length=10)
    assert env.max_episode_steps == 10 and env.name == "brax:inverted_pendulum"
    assert env.observation_space(params).shape == (4,) and env.action_space(params) == Box(-1.0, 1.0, (1,))
    wrapped = AutoReset(EpisodeStats(env))

    def rollout(action):
        obs0, state = wrapped.reset(jax.random.key(0), params)

        def body(state, key):
            obs, state, reward, terminated, truncated, info = wrapped.step(key, state, action, params)
            return state, (obs, reward, terminated, truncated, info["final_obs"], info["episode_length"])

        return obs0, jax.lax.scan(body, state, jax.random.split(jax.random.key(1), 25))[1]

    obs0, out = jax.jit(jax.vmap(rollout))(jnp.array([[1.0], [0.0]]))
    assert obs0.shape == (2, 4) and obs0.dtype == jnp.float32
    obs, reward, terminated, truncated, final, length = map(np.asarray, out)
    assert reward.dtype == np.float32 and np.all(reward == 1.0)

    falls = np.flatnonzero(terminated[0])  # pushed: terminates, again and again after each reset
    assert len(falls) >= 3 and not truncated[0].any()
    assert np.all(np.abs(final[0, falls, 1]) > 0.2)  # the fallen pole is the final observation...
    assert np.all(np.abs(obs[0, falls, 1]) <= 0.011)  # ... and the next observation a fresh, near-upright start

    assert not terminated[1].any()  # held still: only the time limit, on every 10th step
    ends = [9, 19]
    assert np.flatnonzero(truncated[1]).tolist() == ends and np.all(length[1, ends] == 10)
    assert np.all(np.abs(final[1, ends, 1]) <= 0.2) and np.all(np.abs(obs[1, ends, 1]) <= 0.011)
    assert not np.any(np.all(final[1, ends] == obs[1, ends], axis=-1))
    others = np.setdiff1d(np.arange(25), ends)
    np.testing.assert_array_equal(final[1, others], obs[1, others])  # final_obs is obs on every other step


@needs_brax
@pytest.mark.slow
def test_ppo_balances_the_inverted_pendulum(tmp_path):
    """PPO with its ``brax:inverted_pendulum`` preset for 100k steps on two seeds: each seed's deterministic
    evaluation return (+1 per step upright, at most 1000) reaches 200, and 10 times what the untrained policy (a
    random Gaussian policy) got in its first rollout. Measured: 726 and 686 after 100k steps, from about 5."""
    from advantage.algos import ppo

    seeds = (0, 1)
    config = ppo.Config(**ppo.PRESETS["brax:inverted_pendulum"])
    steps = ppo.DEFAULT_STEPS["brax:inverted_pendulum"]
    summary, run_dir = train_run(
        tmp_path, "ppo", config, "brax:inverted_pendulum", seeds=seeds, total_steps=steps, eval_episodes=20
    )
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    first = {}  # each seed's first rollout: the untrained policy's return
    for r in rows:
        first.setdefault(int(r["seed"]), float(r["train/episode_return"]))
    per_seed = summary["eval_return"]["per_seed"]
    for seed, trained in zip(seeds, per_seed):
        assert trained >= 200 and trained >= 10 * first[seed], (
            f"seed {seed}: evaluation return {trained:.1f}, untrained {first[seed]:.1f} (all seeds: {per_seed})"
        )
