"""Every registered algorithm satisfies its protocol (advantage.algos.api) and runs through the run session
on both back ends: a probe environment on the JAX path, CartPole-v1 / Pendulum-v1 through Gymnasium.

This is a contract test, not a learning test (those are in tests/test_presets.py and the per-algorithm
files): a short run must finish, count its env steps exactly, write its files, keep its parameters finite,
and give actions the env accepts.
"""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from helpers import first_agent, train_run

from advantage import algos
from advantage.algos import api
from advantage.envs.spaces import is_discrete
from advantage.training import stepper as stepper_mod

#: Algorithms with continuous actions only.
CONTINUOUS_ONLY = {"ddpg", "td3", "sac"}

#: Small settings, so that a run is a few updates or generations.
SMALL: dict[str, dict] = {
    "ppo": dict(n_envs=2, n_steps=8, n_epochs=2),
    "a2c": dict(n_envs=2, n_steps=4),
    "a3c": dict(n_envs=2, n_steps=4),
    "reinforce": dict(n_envs=2, n_steps=16),
    "qac": dict(n_envs=2, n_steps=4),
    "ac-lambda": dict(features="linear-raw"),
    "npg": dict(n_envs=2, n_steps=16, n_critic_updates=2),
    "trpo": dict(n_envs=2, n_steps=16, n_critic_updates=2),
    "nac": dict(n_envs=2, n_steps=16, n_critic_updates=2),
    "is-pg": dict(n_envs=2, n_steps=16),
    "impala": dict(n_envs=2, n_steps=8, policy_lag=2),
    "ddpg": dict(learning_starts=16, batch_size=8, buffer_size=256, hidden_sizes=(16, 16)),
    "td3": dict(learning_starts=16, batch_size=8, buffer_size=256, hidden_sizes=(16, 16)),
    "sac": dict(learning_starts=16, batch_size=8, buffer_size=256, hidden_sizes=(16, 16)),
    "dqn": dict(learning_starts=16, batch_size=8, buffer_size=256, hidden_sizes=(16, 16)),
    "cem": dict(population_size=4),
    "hill-climb": dict(population_size=2, episodes_per_candidate=1),
    "cma-es": dict(population_size=4),
    "ga": dict(population_size=4),
    "nelder-mead": dict(population_size=4, episodes_per_candidate=2),
}


def _config(name: str):
    module = algos.get(name)
    return module.Config(**SMALL[name])


def _budget(name: str, cfg) -> int:
    if api.kind(algos.get(name)) == "search":
        return 40  # a few generations of short probe episodes
    return cfg.n_envs * cfg.n_steps * 3 + (cfg.n_envs if name in ("npg", "trpo", "nac", "ppo", "a2c", "impala") else 0)


def test_every_algorithm_is_covered():
    assert set(SMALL) == set(algos.available())


@pytest.mark.parametrize("name", sorted(SMALL))
def test_module_satisfies_its_protocol(name):
    module = algos.get(name)
    kind = api.kind(module)
    assert isinstance(module, api.SearchAlgorithm if kind == "search" else api.Algorithm)
    assert module.NAME == name
    assert all(isinstance(v, dict) for v in module.PRESETS.values())
    assert set(module.PRESETS) <= set(module.DEFAULT_STEPS) | set(module.PRESETS)


def test_not_an_algorithm_is_a_clear_error():
    import types

    from advantage.errors import ConfigError

    fake = types.ModuleType("fake")
    fake.NAME, fake.SEARCH = "fake", False
    with pytest.raises(ConfigError, match="lacks .*update"):
        api.kind(fake)


def test_update_stepper_satisfies_the_stepper_protocol(tmp_path):
    from advantage.training.loading import make_backend
    from advantage.training.run_config import RunConfig, Schedule

    algo, cfg = algos.get("ppo"), _config("ppo")
    run = RunConfig(env="probe/ActionReward-v0", total_steps=48, backend="jax", seeds=(0,))
    schedule = Schedule(48, cfg.n_envs, cfg.n_steps)
    backend, chunk = make_backend(algo, cfg, run, "jax", schedule)
    assert isinstance(backend, stepper_mod.Backend)
    assert isinstance(stepper_mod.UpdateStepper(algo, backend, schedule, chunk), stepper_mod.Stepper)


@pytest.mark.parametrize("backend", ["jax", "gymnasium"])
@pytest.mark.parametrize("name", sorted(SMALL))
def test_runs_through_the_session(tmp_path, name, backend):
    continuous = name in CONTINUOUS_ONLY
    if backend == "jax":
        env = "probe/ActionRewardContinuous-v0" if continuous else "probe/ActionReward-v0"
    else:
        env = "Pendulum-v1" if continuous else "CartPole-v1"
    cfg = _config(name)
    budget = _budget(name, cfg) if backend == "jax" or api.kind(algos.get(name)) == "update" else 120
    pool = {"worker_pool": "local"} if getattr(algos.get(name), "DEFAULT_WORKERS", None) else {}  # no Ray here
    summary, run_dir = train_run(tmp_path, name, cfg, env, seeds=(0,), total_steps=budget, backend=backend,
                                 eval_episodes=1, eval_max_steps=20, eval_record=0, n_chunks=1, **pool)
    assert summary["backend"] == backend
    per_seed = summary.get("env_steps_per_seed", [summary["env_steps"]])
    if api.kind(algos.get(name)) == "update":
        assert per_seed == [budget]  # exact
    else:
        assert min(per_seed) >= budget  # whole episodes: a generation may overshoot
    assert (run_dir / "metrics.csv").exists() and (run_dir / "checkpoints").exists()
    assert json.loads((run_dir / "config.json").read_text())["algo"] == name
    assert len(summary["eval_return"]["per_seed"]) == 1
    algo, acfg, space, agent = first_agent(run_dir)
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(algo.policy_params(agent)))
    obs_dim = 1 if backend == "jax" else (3 if continuous else 4)
    action, _, _ = algo.act(acfg, space, agent, np.zeros((3, obs_dim), np.float32), jax.random.PRNGKey(0), True)
    action = np.asarray(action)
    if is_discrete(space):
        assert action.shape == (3,) and np.all((0 <= action) & (action < space.n))
    else:
        assert action.shape == (3, *space.shape) and np.all(np.abs(action) <= 1.0 + 1e-6)
