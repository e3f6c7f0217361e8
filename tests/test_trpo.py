"""TRPO and NPG: one update by hand, probe environments, and learning tests."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import first_agent, train_run

from advantage import algos
from advantage.algos import npg, trpo
from advantage.config import ConfigError
from advantage.envs import Box, Discrete
from advantage.types import Transition


# ----------------------------------------------------------------------------- the module and one update
def test_npg_is_trpo_without_the_line_search():
    assert algos.get("npg") is npg and algos.get("trpo") is trpo
    assert npg.NAME == "npg" and trpo.NAME == "trpo"
    assert npg.update is trpo.update and npg.act is trpo.act and npg.init is trpo.init
    assert npg.Config().line_search is False and trpo.Config().line_search is True
    # the same presets, except a larger Fisher damping for NPG on CartPole (no line search catches an oversize step)
    assert npg.PRESETS["Pendulum-v1"] == trpo.PRESETS["Pendulum-v1"]
    assert npg.PRESETS["CartPole-v1"] == {**trpo.PRESETS["CartPole-v1"], "cg_damping": 0.1}
    with pytest.raises(ConfigError, match="npg.max_kl"):
        npg.Config(max_kl=0.0)
    with pytest.raises(ConfigError, match="n_minibatches"):
        trpo.Config(n_envs=2, n_steps=5, n_minibatches=4)


def _one_update(cfg, act_space, seed=0):
    obs_space = Box(-1, 1, (3,))
    state = trpo.init(jax.random.PRNGKey(seed), obs_space, act_space, cfg, 10 * cfg.n_envs * cfg.n_steps)
    T, B = cfg.n_steps, cfg.n_envs
    obs = jax.random.normal(jax.random.PRNGKey(1), (T, B, 3))
    action, logp, value = jax.vmap(lambda o, k: trpo.act(cfg, act_space, state, o, k))(
        obs, jax.random.split(jax.random.PRNGKey(2), T))
    # reward favours action 1 (discrete) or a positive first coordinate (continuous)
    reward = (action == 1).astype(jnp.float32) if act_space.__class__ is Discrete else action[..., 0]
    batch = Transition(obs, action, reward, jnp.ones((T, B), bool), jnp.zeros((T, B), bool), obs, logp, value)
    new_state, m = jax.jit(lambda s, b, k: trpo.update(cfg, act_space, s, b, k))(state, batch, jax.random.PRNGKey(3))
    return state, new_state, m


def test_one_trpo_update():
    cfg = trpo.Config(n_envs=4, n_steps=16, n_minibatches=2, n_critic_updates=3, max_kl=0.01)
    state, new_state, m = _one_update(cfg, Discrete(2))
    expected = {"loss/policy", "loss/value", "policy/kl", "trpo/step_size", "trpo/line_search_steps", "trpo/accepted",
                "trpo/cg_residual", "trpo/curvature", "value/explained_variance", "grad/norm"}
    assert expected <= set(m), expected - set(m)
    assert float(m["trpo/accepted"]) == 1.0
    assert 0.0 < float(m["policy/kl"]) <= 0.01  # the exact KL constraint holds after the line search
    assert float(m["trpo/surrogate_improvement"]) > 0.0 and float(m["trpo/curvature"]) > 0.0
    old_actor, old_critic = trpo.split_params(state.params)
    new_actor, new_critic = trpo.split_params(new_state.params)

    def changed(a, b):
        return any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))

    assert changed(old_actor, new_actor) and changed(old_critic, new_critic)
    assert int(new_state.env_steps) == cfg.n_envs * cfg.n_steps


def test_one_npg_update_takes_the_full_natural_step():
    cfg = npg.Config(n_envs=4, n_steps=16, n_minibatches=2, n_critic_updates=1, max_kl=0.01)
    _, _, m = _one_update(cfg, Discrete(2))
    assert float(m["trpo/line_search_steps"]) == 0.0 and float(m["trpo/accepted"]) == 1.0
    # 1/2 s^T F s = delta for the quadratic model; the true KL is close for this small delta
    np.testing.assert_allclose(0.5 * float(m["trpo/step_size"]) ** 2 * float(m["trpo/curvature"]), 0.01, rtol=1e-3)
    np.testing.assert_allclose(float(m["policy/kl"]), 0.01, rtol=0.5)


# ----------------------------------------------------------------------------- probe environments
PROBE_CFG = dict(n_envs=8, n_steps=16, n_minibatches=2, n_critic_updates=10, learning_rate=3e-3, gamma=0.9,
                 gae_lambda=0.95, max_kl=0.02, cg_damping=0.01)


def _net_outputs(run_dir, obs_list):
    algo, cfg, space, agent = first_agent(run_dir)
    dist, v = trpo.network(cfg, space).apply(agent.params, jnp.asarray(obs_list, jnp.float32)[:, None])
    return dist, np.asarray(v)


def test_probe_two_step_value(tmp_path):
    """The critic learns V(s0) = gamma and V(s1) = 1 (discounting through a bootstrap)."""
    _, run_dir = train_run(tmp_path, "trpo", trpo.Config(**PROBE_CFG), "probe/TwoStep-v0", total_steps=128 * 30)
    _, v = _net_outputs(run_dir, [-1.0, 1.0])
    np.testing.assert_allclose(v, [0.9, 1.0], atol=0.05)


@pytest.mark.parametrize("continuous", [False, True], ids=["discrete", "continuous"])
def test_probe_policy_finds_the_best_action_per_context(tmp_path, continuous):
    env = "probe/ContextualBandit" + ("Continuous-v0" if continuous else "-v0")
    _, run_dir = train_run(tmp_path, "trpo", trpo.Config(**PROBE_CFG), env, total_steps=128 * 60)
    dist, _ = _net_outputs(run_dir, [-1.0, 1.0])
    if continuous:
        np.testing.assert_allclose(np.asarray(dist.mean[:, 0]), [-0.5, 0.5], atol=0.1)
    else:
        p = np.exp(np.asarray(dist.log_probs))
        assert p[0, 0] > 0.95 and p[1, 1] > 0.95, p


# Learning tests (TRPO and NPG on CartPole-v1, TRPO on Pendulum-v1): tests/test_presets.py.
