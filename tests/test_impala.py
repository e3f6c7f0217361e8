"""IMPALA (advantage/algos/impala.py): the loss by hand, the lagged behaviour policy (the ring of parameters,
ratios of exactly 1 without lag), probe environments, and learning CartPole-v1 with a lag of 2 updates."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import first_agent, train_run

from advantage.algos import impala
from advantage.config import ConfigError
from advantage.envs import Box, Discrete
from advantage.presets import get as get_preset
from advantage.types import Transition

OBS_SPACE, SPACE = Box(-1.0, 1.0, (1,)), Discrete(2)


def _constant_outputs(state, logits, value):
    """Zero every kernel: pi(.|s) = softmax(logits) and V(s) = value for every s (the biases carry them)."""
    params = jax.tree.map(jnp.zeros_like, state.params)
    params["params"]["policy_head"]["Dense_0"]["bias"] = jnp.asarray(logits, jnp.float32)
    params["params"]["value_head"]["bias"] = jnp.asarray([value], jnp.float32)
    return state.replace(params=params)


def _loss(cfg, state, batch):
    """``((loss, aux), grads)`` of ``impala_loss`` on ``batch`` (one compiled program)."""
    net = impala.network(cfg, SPACE)
    fn = lambda p: impala.impala_loss(p, net, cfg, batch.obs, batch.next_obs, batch, batch.reward)  # noqa: E731
    return jax.jit(jax.value_and_grad(fn, has_aux=True))(state.params)


def _batch(actions, rewards, log_mu, terminated=None, truncated=None):
    t = len(actions)
    col = lambda x, dtype=jnp.float32: jnp.asarray(x, dtype).reshape(t, 1)  # noqa: E731 - [T, B=1]
    no = [False] * t
    return Transition(obs=jnp.zeros((t, 1, 1)), action=col(actions, jnp.int32), reward=col(rewards),
                      terminated=col(terminated or no, bool), truncated=col(truncated or no, bool),
                      next_obs=jnp.zeros((t, 1, 1)), log_prob=col(log_mu), value=jnp.zeros((t, 1)))


# ----------------------------------------------------------------------------- the loss by hand
def test_loss_and_gradient_by_hand():
    """pi = (.25, .75), V = 2 everywhere, mu = (.5, .5): ratios 1.5 for a=1 and .5 for a=0; gamma = .9."""
    cfg = impala.Config(n_envs=1, n_steps=3, gamma=0.9, ent_coef=0.01, vf_coef=0.5, learning_rate=0.1,
                        optimizer="adam", max_grad_norm=1e6)
    state = _constant_outputs(impala.init(jax.random.PRNGKey(0), OBS_SPACE, SPACE, cfg, 10), [0.0, math.log(3.0)],
                              2.0)
    batch = _batch(actions=[1, 0, 1], rewards=[1.0, 1.0, 1.0], log_mu=[math.log(0.5)] * 3)
    (total, aux), grads = _loss(cfg, state, batch)

    # rho = min(1, ratio) = 1, .5, 1 and c = the same. r + gamma V(s') = 1 + .9*2 = 2.8, minus V = .8 at every step
    # delta = rho * .8 = .8, .4, .8
    # v - V backwards: .8;  .4 + .9*.5*.8 = .76;  .8 + .9*1*.76 = 1.484  ->  v = 3.484, 2.76, 2.8
    np.testing.assert_allclose(aux["targets"][:, 0], [3.484, 2.76, 2.8], rtol=1e-6)
    # pg = rho (r + gamma v_{s+1} - V): 1*(1 + .9*2.76 - 2) = 1.484;  .5*(1 + .9*2.8 - 2) = .76;  1*(2.8 - 2) = .8
    pg = np.array([1.484, 0.76, 0.8])
    np.testing.assert_allclose(aux["pg_advantages"][:, 0], pg, rtol=1e-6)
    log_pi = np.log([0.75, 0.25, 0.75])
    pg_loss = -np.mean(pg * log_pi)
    v_loss = 0.5 * np.mean(np.array([1.484, 0.76, 0.8]) ** 2)  # V - v = -(v - V)
    entropy = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))  # 0.5623
    np.testing.assert_allclose(aux["policy"], pg_loss, rtol=1e-6)
    np.testing.assert_allclose(aux["value"], v_loss, rtol=1e-6)
    np.testing.assert_allclose(aux["entropy"], entropy, rtol=1e-6)
    np.testing.assert_allclose(total, pg_loss + 0.5 * v_loss - 0.01 * entropy, rtol=1e-6)
    np.testing.assert_allclose(aux["log_rho"][:, 0], np.log([1.5, 0.5, 1.5]), rtol=1e-6)

    # the gradient treats the targets and advantages as constants:
    #   d/d logits = -mean_t pg_t (onehot(a_t) - pi) - c_e d H / d logits,   d/d V-bias = c_v mean_t (V - v_t)
    pi = np.array([0.25, 0.75])
    onehot = np.eye(2)[[1, 0, 1]]
    d_pg = -np.mean(pg[:, None] * (onehot - pi), axis=0)
    d_ent = -pi * (np.log(pi) + entropy)  # dH/dz_k = -pi_k (log pi_k + H)
    np.testing.assert_allclose(grads["params"]["policy_head"]["Dense_0"]["bias"], d_pg - 0.01 * d_ent, rtol=1e-5,
                               atol=1e-7)
    np.testing.assert_allclose(grads["params"]["value_head"]["bias"], [0.5 * -np.mean([1.484, 0.76, 0.8])], rtol=1e-6)


def test_loss_by_hand_at_an_episode_end_and_without_correction():
    cfg = impala.Config(n_envs=1, n_steps=3, gamma=0.9)
    state = _constant_outputs(impala.init(jax.random.PRNGKey(0), OBS_SPACE, SPACE, cfg, 10), [0.0, math.log(3.0)],
                              2.0)
    # the episode terminates after step 0: v_0 = V + rho_0 (1 - 2) = 1, pg_0 = -1, and step 0 sees nothing later
    batch = _batch([1, 0, 1], [1.0, 1.0, 1.0], [math.log(0.5)] * 3, terminated=[True, False, False])
    (_, aux), _ = _loss(cfg, state, batch)
    np.testing.assert_allclose(aux["targets"][:, 0], [1.0, 2.76, 2.8], rtol=1e-6)
    np.testing.assert_allclose(aux["pg_advantages"][:, 0], [-1.0, 0.76, 0.8], rtol=1e-6)
    # truncated instead: bootstraps from V(s'_0) = 2 like any other step
    batch = _batch([1, 0, 1], [1.0, 1.0, 1.0], [math.log(0.5)] * 3, truncated=[True, False, False])
    (_, aux), _ = _loss(cfg, state, batch)
    np.testing.assert_allclose(aux["targets"][:, 0], [2.8, 2.76, 2.8], rtol=1e-6)
    # correction=False ignores the ratios: the lambda-returns with lambda = 1 and GAE(1)
    #   v - V: .8;  .8 + .9*.8 = 1.52;  .8 + .9*1.52 = 2.168
    cfg = cfg.replace(correction=False)
    batch = _batch([1, 0, 1], [1.0, 1.0, 1.0], [math.log(0.5)] * 3)
    (_, aux), _ = _loss(cfg, state, batch)
    np.testing.assert_allclose(aux["targets"][:, 0], [4.168, 3.52, 2.8], rtol=1e-6)
    np.testing.assert_allclose(aux["pg_advantages"][:, 0], [2.168, 1.52, 0.8], rtol=1e-6)
    np.testing.assert_allclose(aux["log_rho"][:, 0], np.log([1.5, 0.5, 1.5]), rtol=1e-6)  # still reported


def test_config_errors():
    with pytest.raises(ConfigError, match="policy_lag"):
        impala.Config(policy_lag=-1)
    with pytest.raises(ConfigError, match="rho_bar"):
        impala.Config(rho_bar=0.0)
    with pytest.raises(ConfigError, match="vtrace_lambda"):
        impala.Config(vtrace_lambda=1.5)


# ----------------------------------------------------------------------------- the lagged behaviour policy
def _rollout_and_update(cfg, state, key, obs):
    """One rollout of ``cfg.n_steps`` steps of ``act`` on fixed observations (rewards 1), then ``update``."""
    steps = []
    for _ in range(cfg.n_steps):
        key, k = jax.random.split(key)
        steps.append(impala.act(cfg, SPACE, state, obs, k))
    action, log_prob, value = (jnp.stack(x) for x in zip(*steps))
    t, b = action.shape
    batch = Transition(obs=jnp.broadcast_to(obs, (t,) + obs.shape), action=action, reward=jnp.ones((t, b)),
                       terminated=jnp.zeros((t, b), bool), truncated=jnp.zeros((t, b), bool),
                       next_obs=jnp.broadcast_to(obs, (t,) + obs.shape), log_prob=log_prob, value=value)
    new_state, metrics = impala.update(cfg, SPACE, state, batch, key)
    return new_state, metrics, batch


OBS = jnp.asarray([[-1.0], [0.0], [0.5], [1.0]])
UPDATE = jax.jit(_rollout_and_update, static_argnums=0)


def test_without_lag_the_ratios_are_one():
    cfg = impala.Config(n_envs=4, n_steps=8, policy_lag=0, learning_rate=0.05, optimizer="adam")
    state = impala.init(jax.random.PRNGKey(0), OBS_SPACE, SPACE, cfg, 10)
    assert jax.tree.leaves(state.behaviour) and all(x.shape[0] == 0 for x in jax.tree.leaves(state.behaviour))
    for i in range(4):
        state, metrics, _ = UPDATE(cfg, state, jax.random.PRNGKey(i), OBS)
        # the behaviour policy is the learner: log pi recomputed in the update equals log mu of act (to rounding)
        assert abs(float(metrics["vtrace/rho_mean"]) - 1.0) < 1e-6, metrics["vtrace/rho_mean"]
        assert float(metrics["vtrace/rho_clipped_fraction"]) == 0.0 or float(metrics["vtrace/rho_mean"]) > 1.0
        assert abs(float(metrics["vtrace/approx_kl"])) < 1e-6
        assert float(metrics["policy/lag"]) == 0.0


def test_the_behaviour_policy_is_the_learner_of_lag_updates_ago():
    lag = 2
    cfg = impala.Config(n_envs=4, n_steps=8, policy_lag=lag, learning_rate=0.05, optimizer="adam")
    state = impala.init(jax.random.PRNGKey(0), OBS_SPACE, SPACE, cfg, 10)
    net = impala.network(cfg, SPACE)
    history = [state.params]  # theta_0, theta_1, ...
    for k in range(6):
        behaviour = history[max(0, k - lag)]
        # the ring holds theta_{k-lag}, ..., theta_{k-1} (theta_0 in the slots not yet written)
        ring = [jax.tree.map(lambda x: x[j], state.behaviour.params) for j in range(lag)]
        expected = [history[max(0, i)] for i in range(k - lag, k)]
        for got in expected:
            assert any(_same(got, r) for r in ring)
        assert _same(state.behaviour.oldest(state.update_count)[0], behaviour)
        state, metrics, batch = UPDATE(cfg, state, jax.random.PRNGKey(k), OBS)
        # act sampled from theta_{k-lag}: its log-probabilities are the behaviour's, not the learner's
        dist, _ = net.apply(behaviour, batch.obs)
        np.testing.assert_allclose(batch.log_prob, dist.log_prob(batch.action), rtol=1e-5, atol=1e-6)
        assert float(metrics["policy/lag"]) == min(k, lag)
        if k >= 1:  # the learner has moved away from the behaviour: the ratios are not all 1
            assert float(metrics["vtrace/approx_kl"]) > 1e-6
        history.append(state.params)
    # evaluation (the mode) uses the learner, sampling uses the behaviour
    mode, _, _ = impala.act(cfg, SPACE, state, OBS, jax.random.PRNGKey(0), deterministic=True)
    dist, _ = net.apply(state.params, OBS)
    np.testing.assert_array_equal(mode, dist.mode())


def _same(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


# ----------------------------------------------------------------------------- probe environments
PROBE = dict(n_envs=8, n_steps=8, gamma=0.9, learning_rate=3e-3, optimizer="adam", ent_coef=0.0, policy_lag=2)
PROBE_OBS = jnp.asarray([[-1.0], [0.0], [1.0]])


def _probe(tmp_path, cfg, env, steps):
    _, run_dir = train_run(tmp_path, "impala", cfg, env, total_steps=steps)
    mod, cfg, space, agent = first_agent(run_dir)
    dist, v = mod.network(cfg, space).apply(agent.params, PROBE_OBS)
    return dist, np.asarray(v)


def test_probe_action_reward(tmp_path):
    """ActionReward: observation 0, reward 1 for action 1, 0 for action 0 (one-step episodes): pi(1|0) -> 1,
    V(0) -> 1."""
    dist, v = _probe(tmp_path, impala.Config(**PROBE), "probe/ActionReward-v0", 5120)
    p = np.exp(np.asarray(dist.log_probs))
    assert p[1, 1] > 0.95, p
    assert abs(v[1] - 1.0) < 0.1, v


def test_probe_action_reward_continuous(tmp_path):
    """The Gaussian policy: reward -(a - 0.5)^2 at observation 0; the mean moves to the best action 0.5."""
    dist, _ = _probe(tmp_path, impala.Config(**PROBE, log_std_init=-1.0), "probe/ActionRewardContinuous-v0", 5120)
    assert abs(float(dist.mean[1, 0]) - 0.5) < 0.1, dist.mean


def test_probe_discounting(tmp_path):
    """TwoStep: observation -1 then +1, reward 1 at the end: V(-1) = gamma = 0.9, V(+1) = 1."""
    _, v = _probe(tmp_path, impala.Config(**PROBE), "probe/TwoStep-v0", 5120)
    assert abs(v[0] - 0.9) < 0.05 and abs(v[2] - 1.0) < 0.05, v


def test_probe_truncation_bootstraps(tmp_path):
    """EndlessReward: reward 1 forever, cut at 10 steps; V = 1/(1-gamma) = 10 only if truncation bootstraps."""
    _, v = _probe(tmp_path, impala.Config(**PROBE), "probe/EndlessReward-v0", 20480)
    assert abs(v[1] - 10.0) < 0.5, v  # treating the time limit as termination: about 6.5


# ----------------------------------------------------------------------------- learning
def test_the_cartpole_preset_learns_from_lagged_data():
    """The learning test of the CartPole-v1 preset is tests/test_presets.py (impala-cartpole: seeds 0, 1, 2 in one
    process, each evaluation >= 475; seeds 0-19 under two instruction sets: benchmarks/ROBUSTNESS.md). It must
    learn off-policy: a lag of at least 2 updates, corrected by V-trace."""
    preset = get_preset("impala-cartpole")
    cfg = preset.config()
    assert cfg.policy_lag >= 2 and cfg.correction and preset.backend in ("auto", "jax") and preset.in_tests
