"""Importance-sampled off-policy PG: the buffer and probes (the weights by hand: test_importance.py; CartPole:
test_presets.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import first_agent, train_run

from advantage import algos
from advantage.algos import offpolicy_pg as ispg
from advantage.config import ConfigError
from advantage.envs import Box, Discrete
from advantage.types import Transition


# ----------------------------------------------------------------------------- buffer and update
def test_config_and_registry():
    assert algos.get("is-pg") is ispg and ispg.NAME == "is-pg"
    with pytest.raises(ConfigError, match="offpolicy_pg.is_mode"):
        ispg.Config(is_mode="weighted")
    with pytest.raises(ConfigError, match="offpolicy_pg.buffer_size"):
        ispg.Config(buffer_size=0)


def _batch(cfg, state, act_space, key, t=None):
    t = t or cfg.n_steps
    obs = jax.random.normal(key, (t, cfg.n_envs, 3))
    action, logp, value = jax.vmap(lambda o, k: ispg.act(cfg, act_space, state, o, k))(obs, jax.random.split(key, t))
    reward = (action == 1).astype(jnp.float32)
    term = jax.random.bernoulli(jax.random.fold_in(key, 1), 0.1, (t, cfg.n_envs))
    return Transition(obs, action, reward, term, jnp.zeros_like(term), obs, logp, value)


def test_buffer_ring_and_the_shorter_final_rollout():
    cfg = ispg.Config(n_envs=2, n_steps=4, buffer_size=3)
    space = Discrete(2)
    state = ispg.init(jax.random.PRNGKey(0), Box(-1, 1, (3,)), space, cfg, 10 * cfg.n_envs * cfg.n_steps)
    update = jax.jit(lambda s, b: ispg.update(cfg, space, s, b, jax.random.PRNGKey(0)))
    batches = [_batch(cfg, state, space, jax.random.PRNGKey(i)) for i in range(4)]
    for i, b in enumerate(batches):
        state, m = update(state, b)
        assert float(m["is/buffer_rollouts"]) == min(i + 1, 3)
    # the 4th rollout overwrote slot 0; slots 1, 2 hold rollouts 2 and 3
    np.testing.assert_array_equal(state.buffer.obs[0], batches[3].obs)
    np.testing.assert_array_equal(state.buffer.log_prob[1], batches[1].log_prob)
    # a 2-step final rollout is padded: valid 0 after it, its last real step cut like a rollout end
    short = _batch(cfg, state, space, jax.random.PRNGKey(9), t=2)
    state, _ = jax.jit(lambda s, b: ispg.update(cfg, space, s, b, jax.random.PRNGKey(0)))(state, short)
    slot = 4 % 3
    np.testing.assert_array_equal(state.buffer.valid[slot], [[1, 1], [1, 1], [0, 0], [0, 0]])
    assert bool(jnp.all(state.buffer.truncated[slot, 1] | state.buffer.terminated[slot, 1]))


def test_on_policy_weights_are_one_and_old_rollouts_lose_weight():
    cfg = ispg.Config(n_envs=4, n_steps=16, buffer_size=4, n_epochs=4, learning_rate=3e-2, is_mode="per-decision",
                      anneal_lr=False)
    space = Discrete(2)
    state = ispg.init(jax.random.PRNGKey(0), Box(-1, 1, (3,)), space, cfg, 10 * cfg.n_envs * cfg.n_steps)
    update = jax.jit(lambda s, b: ispg.update(cfg, space, s, b, jax.random.PRNGKey(0)))
    state, m = update(state, _batch(cfg, state, space, jax.random.PRNGKey(0)))
    np.testing.assert_allclose([m["is/ess"], m["is/max_ratio"], m["is/mean_log_weight"]], [1, 1, 0], atol=1e-5)
    for i in range(1, 4):
        state, m = update(state, _batch(cfg, state, space, jax.random.PRNGKey(i)))
    assert float(m["is/ess"]) < 0.99 and float(m["is/ess_oldest"]) < float(m["is/ess"])
    assert abs(float(m["is/mean_log_weight"])) > 1e-3 and float(m["is/max_ratio"]) > 1.0


# ----------------------------------------------------------------------------- probe environments
#: lr and epochs above the CartPole defaults: the continuous bandit's optimum is 0.5 * obs only once the
#: Gaussian is narrow (with a wide one, clipping actions to [-1, 1] moves the optimum outwards).
PROBE_CFG = dict(n_envs=8, n_steps=16, buffer_size=2, n_epochs=8, learning_rate=1e-2, gamma=0.9, gae_lambda=0.95)


def test_probe_two_step_value(tmp_path):
    """The critic learns V(s0) = gamma and V(s1) = 1 (discounting through a bootstrap)."""
    _, run_dir = train_run(tmp_path, "is-pg", ispg.Config(**PROBE_CFG), "probe/TwoStep-v0", total_steps=128 * 40)
    _, cfg, space, agent = first_agent(run_dir)
    _, v = ispg.network(cfg, space).apply(agent.params, jnp.array([[-1.0], [1.0]]))
    np.testing.assert_allclose(np.asarray(v), [0.9, 1.0], atol=0.05)


@pytest.mark.parametrize("continuous", [False, True], ids=["discrete", "continuous"])
def test_probe_policy_finds_the_best_action_per_context(tmp_path, continuous):
    env = "probe/ContextualBandit" + ("Continuous-v0" if continuous else "-v0")
    _, run_dir = train_run(tmp_path, "is-pg", ispg.Config(**PROBE_CFG), env, total_steps=128 * 60)
    _, cfg, space, agent = first_agent(run_dir)
    dist, _ = ispg.network(cfg, space).apply(agent.params, jnp.array([[-1.0], [1.0]]))
    if continuous:
        np.testing.assert_allclose(np.asarray(dist.mean[:, 0]), [-0.5, 0.5], atol=0.1)
    else:
        p = np.exp(np.asarray(dist.log_probs))
        assert p[0, 0] > 0.95 and p[1, 1] > 0.95, p


# The CartPole-v1 learning test (is-pg-cartpole, seeds 0-2, every seed >= 300): tests/test_presets.py.
