"""PPO: one update, probe environments (the right thing is learned), and learning tests."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import first_agent, train_run

from advantage.algos import ppo


# ----------------------------------------------------------------------------- one update (the losses by hand:
# test_losses.py)
def test_first_epoch_ratio_is_one_and_update_moves_the_policy():
    from advantage.envs import Box, Discrete
    from advantage.types import Transition

    cfg = ppo.Config(n_envs=4, n_steps=8, n_epochs=1, n_minibatches=1, normalize_obs=True)
    obs_space, act_space = Box(-1, 1, (3,)), Discrete(2)
    state = ppo.init(jax.random.PRNGKey(0), obs_space, act_space, cfg, total_steps=10 * cfg.n_envs * cfg.n_steps)
    obs = jax.random.normal(jax.random.PRNGKey(1), (8, 4, 3))
    action, logp, value = jax.vmap(lambda o, k: ppo.act(cfg, act_space, state, o, k))(
        obs, jax.random.split(jax.random.PRNGKey(2), 8))
    batch = Transition(obs, action, jnp.ones((8, 4)), jnp.zeros((8, 4), bool), jnp.zeros((8, 4), bool),
                       obs, logp, value)
    new_state, m = ppo.update(cfg, act_space, state, batch, jax.random.PRNGKey(3))
    np.testing.assert_allclose(m["loss/approx_kl"], 0.0, atol=1e-7)  # one minibatch, first step: ratio == 1
    assert int(new_state.env_steps) == 32  # the schedules run on env steps: T * B of the batch
    assert not np.allclose(np.asarray(new_state.obs_rms.mean), 0.0)  # statistics absorbed the batch after the update


# ----------------------------------------------------------------------------- probe environments
PROBE_CFG = dict(n_envs=8, n_steps=16, n_epochs=4, n_minibatches=2, learning_rate=3e-3, gamma=0.9, gae_lambda=0.95,
                 anneal_lr=False, anneal_clip=False, ent_coef=0.0)


def _values(run_dir, obs_list):
    algo, cfg, space, agent = first_agent(run_dir)
    net = ppo.network(cfg, space)
    dist, v = net.apply(agent.params, jnp.asarray(obs_list, jnp.float32)[:, None])
    return dist, np.asarray(v)


@pytest.mark.parametrize("env", ["probe/ConstantReward-v0", "probe/ObsDependentReward-v0", "probe/TwoStep-v0"])
def test_probe_value(tmp_path, env):
    _, run_dir = train_run(tmp_path, "ppo", ppo.Config(**PROBE_CFG), env, total_steps=128 * 40)
    _, v = _values(run_dir, [-1.0, 0.0, 1.0])
    expected = {"probe/ConstantReward-v0": {1: 1.0}, "probe/ObsDependentReward-v0": {0: -1.0, 2: 1.0},
                "probe/TwoStep-v0": {0: 0.9, 2: 1.0}}[env]
    for i, target in expected.items():
        assert abs(v[i] - target) < 0.05, (env, v)


def test_probe_truncation_bootstraps(tmp_path):
    """Reward 1 forever, episodes cut at 10 steps: V -> 1/(1-gamma) = 10 only if truncation bootstraps."""
    cfg = ppo.Config(**{**PROBE_CFG, "n_steps": 32})
    _, run_dir = train_run(tmp_path, "ppo", cfg, "probe/EndlessReward-v0", total_steps=256 * 60)
    _, v = _values(run_dir, [0.0])
    assert abs(v[0] - 10.0) < 0.5, v  # treating the time limit as termination would give about 6.5


@pytest.mark.parametrize("continuous", [False, True])
def test_probe_action_and_context(tmp_path, continuous):
    suffix = "Continuous-v0" if continuous else "-v0"
    steps = 128 * (60 if continuous else 40)
    _, run_a = train_run(tmp_path, "ppo", ppo.Config(**PROBE_CFG), "probe/ActionReward" + suffix, total_steps=steps)
    _, run_c = train_run(tmp_path, "ppo", ppo.Config(**PROBE_CFG), "probe/ContextualBandit" + suffix,
                         total_steps=steps)
    dist_a, _ = _values(run_a, [0.0])
    dist_c, _ = _values(run_c, [-1.0, 1.0])
    if continuous:
        assert abs(float(dist_a.mean[0, 0]) - 0.5) < 0.1, dist_a.mean
        np.testing.assert_allclose(np.asarray(dist_c.mean[:, 0]), [-0.5, 0.5], atol=0.1)
    else:
        assert float(jnp.exp(dist_a.log_probs[0, 1])) > 0.95
        p = np.exp(np.asarray(dist_c.log_probs))
        assert p[0, 0] > 0.95 and p[1, 1] > 0.95, p


# Learning tests (CartPole-v1 on both back ends, Pendulum-v1): tests/test_presets.py.
