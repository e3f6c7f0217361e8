"""PPO's variants: the adaptive KL penalty (paper sec. 4), clip + KL penalty, and KL early stopping."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import first_agent, train_run

from advantage.algos import ppo
from advantage.config import ConfigError
from advantage.envs import Box, Discrete
from advantage.types import Transition


# ----------------------------------------------------------------------------- the rules, by hand
@pytest.mark.parametrize("kl, expected", [
    (0.001, 0.5),     # d < d_targ / 1.5 = 0.00667: halve
    (0.0066, 0.5),
    (0.0067, 1.0),    # inside [d_targ / 1.5, 1.5 d_targ]: unchanged
    (0.01, 1.0),
    (0.015, 1.0),     # 1.5 d_targ itself: unchanged (strict inequality)
    (0.0151, 2.0),    # d > 1.5 d_targ: double
    (0.3, 2.0),
])
def test_adaptive_beta_rule_by_hand(kl, expected):
    np.testing.assert_allclose(float(ppo.adapt_kl_beta(jnp.float32(1.0), jnp.float32(kl), 0.01)), expected)


def test_adaptive_beta_stays_within_its_bounds():
    assert float(ppo.adapt_kl_beta(jnp.float32(ppo.KL_BETA_MIN), 0.0, 0.01)) == pytest.approx(ppo.KL_BETA_MIN)
    assert float(ppo.adapt_kl_beta(jnp.float32(ppo.KL_BETA_MAX), 1.0, 0.01)) == pytest.approx(ppo.KL_BETA_MAX)


def test_config_checks_the_new_fields():
    with pytest.raises(ConfigError, match="ppo.objective"):
        ppo.Config(objective="kl-clip")
    with pytest.raises(ConfigError, match="ppo.target_kl"):
        ppo.Config(target_kl=0.0)
    with pytest.raises(ConfigError, match="ppo.kl_target"):
        ppo.Config(kl_target=-1.0)


# ----------------------------------------------------------------------------- one update
def _update(cfg, act_space=None, seed=0):
    act_space = Discrete(2) if act_space is None else act_space
    obs_space = Box(-1, 1, (3,))
    state = ppo.init(jax.random.PRNGKey(seed), obs_space, act_space, cfg, total_steps=10 * cfg.n_envs * cfg.n_steps)
    T, B = cfg.n_steps, cfg.n_envs
    obs = jax.random.normal(jax.random.PRNGKey(1), (T, B, 3))
    action, logp, value = jax.vmap(lambda o, k: ppo.act(cfg, act_space, state, o, k))(
        obs, jax.random.split(jax.random.PRNGKey(2), T))
    reward = (action == 1).astype(jnp.float32) if isinstance(act_space, Discrete) else action[..., 0]
    batch = Transition(obs, action, reward, jnp.ones((T, B), bool), jnp.zeros((T, B), bool), obs, logp, value)
    new_state, m = jax.jit(lambda s, b, k: ppo.update(cfg, act_space, s, b, k))(state, batch, jax.random.PRNGKey(3))
    return state, new_state, {k: float(v) for k, v in m.items()}


SMALL = dict(n_envs=4, n_steps=16, n_epochs=4, n_minibatches=2, anneal_lr=False, anneal_clip=False)


@pytest.mark.parametrize("objective", ["kl", "clip-kl"])
def test_kl_objectives_adapt_beta_from_the_measured_kl(objective):
    cfg = ppo.Config(**SMALL, objective=objective, kl_beta=1.0, kl_target=0.01, learning_rate=1e-2)
    state, new_state, m = _update(cfg)
    assert {"loss/kl_penalty", "opt/kl_beta", "policy/kl"} <= set(m) and "opt/epochs_done" not in m
    assert m["opt/kl_beta"] == 1.0 and m["loss/kl_penalty"] > 0.0
    expected = float(ppo.adapt_kl_beta(state.kl_beta, m["policy/kl"], 0.01))
    np.testing.assert_allclose(float(new_state.kl_beta), expected)
    assert float(new_state.kl_beta) != 1.0  # lr 1e-2 for 8 steps moves the policy far from d_targ


def test_default_clip_logs_the_same_metrics_as_before():
    _, new_state, m = _update(ppo.Config(**SMALL))
    assert not {"loss/kl_penalty", "opt/kl_beta", "opt/epochs_done", "policy/kl"} & set(m)
    assert float(new_state.kl_beta) == 1.0  # untouched without the penalty


def test_early_stopping_stops():
    # One minibatch: step 1 runs at ratio 1 (approx KL 0); from step 2 on the KL exceeds 1.5 * 1e-9.
    base = dict(n_envs=4, n_steps=16, n_epochs=10, n_minibatches=1, anneal_lr=False, anneal_clip=False)
    _, stopped, m = _update(ppo.Config(**base, target_kl=1e-9))
    assert m["opt/epochs_done"] == 1.0
    _, one_epoch, _ = _update(ppo.Config(**{**base, "n_epochs": 1}))
    for a, b in zip(jax.tree.leaves(stopped.params), jax.tree.leaves(one_epoch.params)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)  # the skipped steps changed nothing
    # a KL that is never reached: all epochs run, and the result equals no early stopping
    _, never, m = _update(ppo.Config(**base, target_kl=1e3))
    assert m["opt/epochs_done"] == 10.0
    _, off, _ = _update(ppo.Config(**base))
    for a, b in zip(jax.tree.leaves(never.params), jax.tree.leaves(off.params)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    # with several minibatches, a stop mid-epoch counts the steps taken as a fraction of an epoch
    _, _, m = _update(ppo.Config(**{**base, "n_minibatches": 4}, target_kl=0.002, learning_rate=1e-2))
    assert 0.25 <= m["opt/epochs_done"] < 10.0 and (m["opt/epochs_done"] * 4) % 1 == 0


# ----------------------------------------------------------------------------- probe environments
PROBE_CFG = dict(n_envs=8, n_steps=16, n_epochs=4, n_minibatches=2, learning_rate=3e-3, gamma=0.9, gae_lambda=0.95,
                 anneal_lr=False, anneal_clip=False)


def test_probe_two_step_with_kl_penalty_and_early_stopping(tmp_path):
    """The critic learns V(s0) = gamma, V(s1) = 1 while the KL objective and early stopping are on."""
    cfg = ppo.Config(**PROBE_CFG, objective="kl", target_kl=0.02)
    _, run_dir = train_run(tmp_path, "ppo", cfg, "probe/TwoStep-v0", total_steps=128 * 40)
    _, cfg, space, agent = first_agent(run_dir)
    _, v = ppo.network(cfg, space).apply(agent.params, jnp.array([[-1.0], [1.0]]))
    np.testing.assert_allclose(np.asarray(v), [0.9, 1.0], atol=0.05)


@pytest.mark.parametrize("objective, continuous", [("kl", False), ("clip-kl", True)])
def test_probe_policy_finds_the_best_action_per_context(tmp_path, objective, continuous):
    env = "probe/ContextualBandit" + ("Continuous-v0" if continuous else "-v0")
    cfg = ppo.Config(**PROBE_CFG, objective=objective)
    _, run_dir = train_run(tmp_path, "ppo", cfg, env, total_steps=128 * (60 if continuous else 40))
    _, cfg, space, agent = first_agent(run_dir)
    dist, _ = ppo.network(cfg, space).apply(agent.params, jnp.array([[-1.0], [1.0]]))
    if continuous:
        np.testing.assert_allclose(np.asarray(dist.mean[:, 0]), [-0.5, 0.5], atol=0.1)
    else:
        p = np.exp(np.asarray(dist.log_probs))
        assert p[0, 0] > 0.95 and p[1, 1] > 0.95, p


# Learning tests (objectives kl and clip-kl on CartPole-v1): tests/test_presets.py.
