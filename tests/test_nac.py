"""NAC: one update against a hand computation, the step cap, probe environments (learning test: test_presets.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import first_agent, train_run

from advantage import algos
from advantage.algos import nac
from advantage.config import ConfigError
from advantage.core import losses
from advantage.core.natural_gradient import fisher_vector_product
from advantage.core.returns import gae
from advantage.envs import Box, Discrete
from advantage.types import Transition


def _batch(cfg, state, act_space, obs_dim=3, seed=0):
    T, B = cfg.n_steps, cfg.n_envs
    obs = jax.random.normal(jax.random.PRNGKey(seed + 1), (T, B, obs_dim))
    action, logp, value = jax.vmap(lambda o, k: nac.act(cfg, act_space, state, o, k))(
        obs, jax.random.split(jax.random.PRNGKey(seed + 2), T))
    # reward favours action 1 (discrete) or a positive first coordinate (continuous); every step ends an episode
    reward = (action == 1).astype(jnp.float32) if isinstance(act_space, Discrete) else action[..., 0]
    return Transition(obs, action, reward, jnp.ones((T, B), bool), jnp.zeros((T, B), bool), obs, logp, value)


def _update(cfg, act_space, state, batch):
    return jax.jit(lambda s, b, k: nac.update(cfg, act_space, s, b, k))(state, batch, jax.random.PRNGKey(3))


def test_module_and_config():
    assert algos.get("nac") is nac and nac.NAME == "nac"
    with pytest.raises(ConfigError, match="nac.ridge"):
        nac.Config(ridge=0.0)
    with pytest.raises(ConfigError, match="n_minibatches"):
        nac.Config(n_envs=2, n_steps=5, n_minibatches=4)


def test_one_update_of_a_linear_softmax_by_hand():
    """features='linear-raw': logits = [s, 1]^T W, W = 0 at the start (uniform policy, V = 0). The step is
    theta + alpha w with w = (Psi^T Psi / N + ridge I)^{-1} Psi^T A / N and psi = [s, 1] (x) (e_a - pi)."""
    cfg = nac.Config(features="linear-raw", n_envs=4, n_steps=8, n_minibatches=1, n_critic_updates=1,
                     learning_rate=0.7, ridge=0.05, max_kl=0.0, gamma=0.9, gae_lambda=0.95)
    space = Discrete(3)
    state = nac.init(jax.random.PRNGKey(0), Box(-1, 1, (3,)), space, cfg, 1000)
    batch = _batch(cfg, state, space)
    new_state, m = _update(cfg, space, state, batch)

    obs = np.asarray(batch.obs, np.float64).reshape(-1, 3)
    phi = np.concatenate([obs, np.ones((len(obs), 1))], 1)  # [N, 4]
    a = np.asarray(batch.action).reshape(-1)
    assert np.allclose(np.asarray(batch.value), 0.0)  # the linear baseline starts at 0
    adv = gae(batch.reward, batch.value, jnp.zeros_like(batch.value), batch.terminated, batch.truncated, 0.9, 0.95)
    adv = np.asarray(losses.normalize(adv.reshape(-1)), np.float64)
    psi = np.einsum("nj,nb->njb", phi, np.eye(3)[a] - 1 / 3).reshape(len(a), -1)  # theta = W.ravel(), W [4, 3]
    n = len(a)
    w = np.linalg.solve(psi.T @ psi / n + 0.05 * np.eye(12), psi.T @ adv / n)
    w_new = np.asarray(new_state.params["policy"]["params"]["LinearHead_0"]["w"]).ravel()
    np.testing.assert_allclose(w_new, 0.7 * w, rtol=2e-4, atol=1e-6)
    g = psi.T @ adv / n
    np.testing.assert_allclose(float(m["grad/norm"]), np.linalg.norm(g), rtol=1e-4)
    np.testing.assert_allclose(float(m["nac/w_norm"]), np.linalg.norm(w), rtol=1e-4)
    cos = w @ g / np.linalg.norm(w) / np.linalg.norm(g)
    np.testing.assert_allclose(float(m["nac/angle"]), np.degrees(np.arccos(cos)), atol=0.05)
    np.testing.assert_allclose(float(m["nac/w_fisher_w"]), np.mean((psi @ w) ** 2), rtol=1e-4)
    np.testing.assert_allclose(float(m["nac/step_size"]), 0.7)
    r2 = 1 - np.sum((adv - psi @ w) ** 2) / np.sum((adv - adv.mean()) ** 2)
    np.testing.assert_allclose(float(m["nac/critic_r2"]), r2, rtol=1e-3, atol=1e-5)


def test_gaussian_mlp_update_solves_the_dual_least_squares_and_caps_the_step():
    """An MLP Gaussian policy has more parameters than samples (the dual solve); w is checked against psi from
    jax.jacrev of the batched log-probability, and a small max_kl caps the step at 1/2 alpha^2 w^T F w = max_kl."""
    cfg = nac.Config(n_envs=2, n_steps=8, n_minibatches=1, n_critic_updates=1, hidden_sizes=(8,),
                     learning_rate=100.0, max_kl=1e-3, ridge=0.1)
    space = Box(-1, 1, (2,))
    state = nac.init(jax.random.PRNGKey(0), Box(-1, 1, (3,)), space, cfg, 1000)
    batch = _batch(cfg, state, space)
    new_state, m = _update(cfg, space, state, batch)

    policy, critic = nac.networks(cfg, space, None)
    theta, unravel = jax.flatten_util.ravel_pytree(state.params["policy"])
    obs, actions = batch.obs.reshape(16, 3), batch.action.reshape(16, 2)
    psi = np.asarray(jax.jacrev(lambda th: policy.apply(unravel(th), obs).log_prob(actions))(theta), np.float64)
    assert psi.shape[1] > psi.shape[0]  # P > N
    next_v = critic.apply(state.params["critic"], batch.next_obs)
    adv = gae(batch.reward, batch.value, next_v, batch.terminated, batch.truncated, cfg.gamma, cfg.gae_lambda)
    adv = np.asarray(losses.normalize(adv.reshape(-1)), np.float64)
    w = np.linalg.solve(psi.T @ psi / 16 + 0.1 * np.eye(psi.shape[1]), psi.T @ adv / 16)
    alpha = np.sqrt(2 * 1e-3 / np.mean((psi @ w) ** 2))
    assert alpha < 100.0  # the cap binds
    theta_new, _ = jax.flatten_util.ravel_pytree(new_state.params["policy"])
    np.testing.assert_allclose(np.asarray(theta_new - theta), alpha * w, rtol=2e-3, atol=1e-6)
    np.testing.assert_allclose(float(m["nac/step_size"]), alpha, rtol=1e-3)
    # the cap uses the empirical Fisher (the sampled actions' psi psi^T); the KL's Hessian is the expected Fisher
    # over actions, and for this small step the KL follows its quadratic model 1/2 alpha^2 w^T H w
    old = jax.tree.map(jax.lax.stop_gradient, policy.apply(state.params["policy"], obs))
    fvp = fisher_vector_product(lambda th: jnp.mean(old.kl(policy.apply(unravel(th), obs))), theta, 0.0)
    step = jnp.asarray(alpha * w, jnp.float32)
    np.testing.assert_allclose(float(m["policy/kl"]), 0.5 * float(step @ fvp(step)), rtol=0.1)


# ----------------------------------------------------------------------------- probe environments
PROBE_CFG = dict(n_envs=8, n_steps=16, n_minibatches=2, n_critic_updates=10, critic_learning_rate=3e-3, gamma=0.9,
                 gae_lambda=0.95, learning_rate=0.5, max_kl=0.02, ridge=0.01)


def _net_outputs(run_dir, obs_list):
    algo, cfg, space, agent = first_agent(run_dir)
    policy, critic = nac.networks(cfg, space, agent.fmap)
    obs = jnp.asarray(obs_list, jnp.float32)[:, None]
    return policy.apply(agent.params["policy"], obs), np.asarray(critic.apply(agent.params["critic"], obs))


def test_probe_two_step_value(tmp_path):
    """The baseline learns V(s0) = gamma and V(s1) = 1 (discounting through a bootstrap)."""
    _, run_dir = train_run(tmp_path, "nac", nac.Config(**PROBE_CFG), "probe/TwoStep-v0", total_steps=128 * 30)
    _, v = _net_outputs(run_dir, [-1.0, 1.0])
    np.testing.assert_allclose(v, [0.9, 1.0], atol=0.05)


@pytest.mark.parametrize("continuous", [False, True], ids=["discrete", "continuous"])
def test_probe_policy_finds_the_best_action_per_context(tmp_path, continuous):
    env = "probe/ContextualBandit" + ("Continuous-v0" if continuous else "-v0")
    _, run_dir = train_run(tmp_path, "nac", nac.Config(**PROBE_CFG), env, total_steps=128 * 60)
    dist, _ = _net_outputs(run_dir, [-1.0, 1.0])
    if continuous:
        np.testing.assert_allclose(np.asarray(dist.mean[:, 0]), [-0.5, 0.5], atol=0.1)
    else:
        p = np.exp(np.asarray(dist.log_probs))
        assert p[0, 0] > 0.95 and p[1, 1] > 0.95, p


def test_probe_linear_policy_finds_the_best_action_per_context(tmp_path):
    """The same bandit with a linear softmax in raw features (phi = [s, 1])."""
    cfg = nac.Config(**{**PROBE_CFG, "features": "linear-raw"})
    _, run_dir = train_run(tmp_path, "nac", cfg, "probe/ContextualBandit-v0", total_steps=128 * 60)
    dist, _ = _net_outputs(run_dir, [-1.0, 1.0])
    p = np.exp(np.asarray(dist.log_probs))
    assert p[0, 0] > 0.9 and p[1, 1] > 0.9, p
