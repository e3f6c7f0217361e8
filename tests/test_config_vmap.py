"""The JAX back end takes the algorithm config's numeric fields as an argument of the compiled program
(``JaxBackend.run_chunk_over_configs``), so that one program trains several settings at once: two learning
rates in one vmapped call give the same parameters as two separate calls (up to float order)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from advantage import algos, envs
from advantage.training.jax_backend import JaxBackend
from advantage.training.run_config import Schedule


def _backend(cfg):
    env, params = envs.make("CartPole-v1")
    return JaxBackend(algos.get("ppo"), cfg, env, params, Schedule(4 * 8 * 2 * 3, 2, 8), chunk_iters=3)


def test_two_learning_rates_in_one_vmapped_call_equal_two_separate_runs():
    ppo = algos.get("ppo")
    cfg = ppo.Config(n_envs=2, n_steps=8, n_epochs=2, n_minibatches=2)
    backend = _backend(cfg)
    lrs = (1e-3, 3e-4)
    runners = backend.init([0, 0])  # the same seed twice: only the learning rate differs
    configs = jax.tree.map(lambda x: jnp.asarray([x, x]), cfg).replace(learning_rate=jnp.asarray(lrs))
    batched, metrics = backend.run_chunk_over_configs(runners, 3, configs)
    assert metrics["loss/policy"].shape == (2, 3)
    for i, lr in enumerate(lrs):
        one = jax.tree.map(lambda x: x[i:i + 1], runners)
        single_cfg = jax.tree.map(lambda x: jnp.asarray([x]), cfg.replace(learning_rate=lr))
        alone, _ = _backend(cfg).run_chunk_over_configs(one, 3, single_cfg)
        for a, b in zip(jax.tree.leaves(ppo.policy_params(alone.agent)),
                        jax.tree.leaves(ppo.policy_params(batched.agent))):
            np.testing.assert_allclose(np.asarray(a)[0], np.asarray(b)[i], rtol=2e-5, atol=2e-6)
    p0, p1 = (jax.tree.leaves(ppo.policy_params(jax.tree.map(lambda x: x[i], batched.agent))) for i in (0, 1))
    assert any(not np.allclose(a, b) for a, b in zip(p0, p1))  # the two learning rates did train differently


def test_the_default_chunk_keeps_the_config_as_constants():
    """The traced program is another program: it may differ in the last bits, and the recorded digests are
    those of the default (constant) one; both still train the same algorithm."""
    ppo = algos.get("ppo")
    cfg = ppo.Config(n_envs=2, n_steps=8, n_epochs=2, n_minibatches=2)
    backend = _backend(cfg)
    runners = backend.init([0])
    const, _ = backend.run_chunk(runners, 3)
    traced, _ = backend.run_chunk_over_configs(runners, 3, jax.tree.map(lambda x: jnp.asarray([x]), cfg))
    for a, b in zip(jax.tree.leaves(ppo.policy_params(const.agent)), jax.tree.leaves(ppo.policy_params(traced.agent))):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
