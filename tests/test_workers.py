"""A3C and IMPALA on a worker pool, in this process (``--worker-pool local``): the deterministic round robin the
other pool tests and the learning tests rest on. Ray itself is tested in tests/test_ray.py."""

from __future__ import annotations

import csv
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import train_run

from advantage import algos
from advantage.errors import ConfigError, MissingExtraError
from advantage.training.run_config import RunConfig

ENV = "CartPole-v1"


def _rows(run_dir, name):
    with open(run_dir / "metrics.csv") as f:
        return [float(r[name]) for r in csv.DictReader(f) if r.get(name) not in (None, "")]


def _a3c(**kw):
    return algos.get("a3c").Config(**{"n_envs": 2, "n_steps": 4, **kw})


def _impala(**kw):
    return algos.get("impala").Config(**{"n_envs": 2, "n_steps": 4, **kw})


@pytest.mark.parametrize(
    "workers, expected", [(1, [0, 0, 0, 0, 0, 0]), (2, [0, 1, 1, 1, 1, 1]), (3, [0, 1, 2, 2, 2, 2])]
)
def test_a3c_round_robin_staleness_is_workers_minus_one(tmp_path, workers, expected):
    """Worker w pulls the parameters after its push; the other W - 1 workers push before its next gradient."""
    summary, run_dir = train_run(tmp_path, "a3c", _a3c(), ENV, total_steps=48, workers=workers,
                                 worker_pool="local", log_every=1)
    assert _rows(run_dir, "grad/staleness") == expected
    assert summary["updates_per_seed"] == [6] and summary["env_steps"] == 48 and summary["worker_restarts"] == 0


def test_a3c_with_two_jobs_per_worker_is_one_round_staler(tmp_path):
    """--jobs-per-worker 2: each worker's next job was queued with the parameters before its last push, so in the
    round robin the staleness settles at 2W - 1 (W workers, 2 jobs each) instead of W - 1."""
    summary, run_dir = train_run(tmp_path, "a3c", _a3c(), ENV, total_steps=64, workers=2, worker_pool="local",
                                 jobs_per_worker=2, log_every=1)
    assert _rows(run_dir, "grad/staleness") == [0, 1, 2, 3, 3, 3, 3, 3]
    assert summary["updates_per_seed"] == [8] and summary["env_steps"] == 64


def test_impala_actors_lag_the_learner(tmp_path):
    """Two actors with two jobs queued each: the rollouts of the first round were all acted by the parameters
    of update 0; after that every rollout is three learner updates old (the learner's pace)."""
    summary, run_dir = train_run(tmp_path, "impala", _impala(), ENV, total_steps=80, workers=2,
                                 worker_pool="local", log_every=1)
    assert _rows(run_dir, "policy/lag") == [0, 1, 2, 3, 3, 3, 3, 3, 3, 3]
    assert summary["mean_policy_lag"] == pytest.approx(24 / 10)
    ratio = np.array(_rows(run_dir, "vtrace/rho_mean"))
    assert ratio[0] == pytest.approx(1.0, abs=1e-6)  # the learner has not moved yet: pi = mu
    assert np.all(np.abs(ratio[3:] - 1.0) > 0)  # lagged data: the ratios are no longer all 1


def test_impala_on_workers_does_not_add_the_simulated_lag(tmp_path):
    _, run_dir = train_run(tmp_path, "impala", _impala(policy_lag=4), ENV, total_steps=16, workers=1,
                           worker_pool="local")
    assert json.loads((run_dir / "config.json").read_text())["algo_config"]["policy_lag"] == 0


def test_the_budget_is_exact_and_every_job_counted_once(tmp_path):
    summary, run_dir = train_run(tmp_path, "a3c", _a3c(), ENV, seeds=(0, 1), total_steps=8 * 25, workers=2,
                                 worker_pool="local")
    assert summary["env_steps"] == 200 and summary["total_env_steps"] == 400
    assert summary["updates_per_seed"] == [25, 25]
    with open(run_dir / "metrics.csv") as f:
        last = {}
        for r in csv.DictReader(f):
            last[r["seed"]] = int(r["step"])
    assert last == {"0": 200, "1": 200}


def test_the_local_pool_is_deterministic_and_seeds_are_independent(tmp_path):
    """The round robin fixes the order of every update: the same run gives the same parameters, and a seed
    trained beside another gives what it gives alone."""
    a, _ = train_run(tmp_path / "a", "a3c", _a3c(), ENV, seeds=(0, 1), total_steps=400, workers=2,
                     worker_pool="local")
    b, _ = train_run(tmp_path / "b", "a3c", _a3c(), ENV, seeds=(0, 1), total_steps=400, workers=2,
                     worker_pool="local")
    alone, _ = train_run(tmp_path / "c", "a3c", _a3c(), ENV, seeds=(1,), total_steps=400, workers=2,
                         worker_pool="local")
    assert a["params_digest"] == b["params_digest"]
    assert a["params_digest_per_seed"][1] == alone["params_digest_per_seed"][0]


@pytest.mark.parametrize("backend", ["jax", "gymnasium"])
def test_one_worker_a3c_is_a2c_on_the_worker_rollouts(tmp_path, backend):
    """With one worker nothing is stale: each server step is A2C's update on the rollout the worker collected
    with the current parameters. Replaying the worker's rollouts through ``a2c.update`` gives the same agent."""
    from advantage.training.workers import LocalPool, Worker

    cfg, run = _a3c(), RunConfig(env=ENV, seeds=(0,), total_steps=40, backend=backend)
    a3c = algos.get("a3c")
    pool = LocalPool(lambda i, r: Worker("a3c", cfg, run, 0, i, r), 1)
    twin = Worker("a3c", cfg, run, 0, 0)  # the same worker seed: the same env and action streams
    space = twin.backend.action_space
    agent = a3c.init(jax.random.PRNGKey(0), twin.backend.obs_space, space, cfg, 40)
    reference = agent
    try:
        for version in range(5):
            pool.submit(0, "gradients", jax.device_get(agent), version)
            _, result = pool.next_result()
            agent, _ = a3c.apply_gradients(cfg, agent, jax.tree.map(jnp.asarray, result["grads"]))
            batch = twin.rollout(jax.device_get(reference), version)["batch"]
            reference, _ = a3c.update(cfg, space, reference, jax.tree.map(jnp.asarray, batch), jax.random.PRNGKey(1))
            for x, y in zip(jax.tree.leaves(agent.params), jax.tree.leaves(reference.params)):
                np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
    finally:
        pool.close()
        twin.close()


def test_worker_rollouts_bootstrap_truncations_not_terminations(tmp_path):
    """A worker's rollout keeps the back end's episode-end conventions: next_obs is the true final observation,
    and terminated / truncated are told apart."""
    from advantage.training.workers import Worker

    cfg = _impala(n_envs=2, n_steps=60)
    w = Worker("impala", cfg, RunConfig(env="probe/EndlessReward-v0", seeds=(0,), total_steps=120, backend="jax"), 0, 0)
    agent = algos.get("impala").init(jax.random.PRNGKey(0), w.backend.obs_space, w.backend.action_space, cfg, 120)
    out = w.rollout(jax.device_get(agent), 0)
    batch = out["batch"]
    assert batch.reward.shape == (60, 2) and out["env_steps"] == 120
    assert batch.truncated.sum() == 12 and batch.terminated.sum() == 0  # a time limit of 10, no termination
    assert out["stats"]["train/episodes"] == 12


def test_a_run_that_cannot_use_workers_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="ppo is synchronous.*needs --backend gymnasium"):
        train_run(tmp_path, "ppo", algos.get("ppo").Config(), ENV, total_steps=1024, workers=2)
    with pytest.raises(ConfigError, match="population search"):
        train_run(tmp_path, "cem", algos.get("cem").Config(), ENV, total_steps=1024, workers=2)
    with pytest.raises(ConfigError, match="not a multiple of one worker's rollout"):
        train_run(tmp_path, "a3c", _a3c(), ENV, total_steps=100, worker_pool="local")
    with pytest.raises(ConfigError, match="at least one worker"):
        RunConfig(workers=0)
    with pytest.raises(ConfigError, match="--ray-address"):
        RunConfig(workers=2, worker_pool="local", ray_address="auto")
    with pytest.raises(ConfigError, match="queue at least 1 job"):
        RunConfig(workers=2, jobs_per_worker=0)
    with pytest.raises(ConfigError, match="ppo has no worker pool of its own"):
        train_run(tmp_path, "ppo", algos.get("ppo").Config(), ENV, total_steps=1024, jobs_per_worker=2)


def test_without_ray_the_error_names_the_extra(monkeypatch):
    import builtins

    from advantage.training import ray_cluster

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(MissingExtraError, match=r'advantage\[ray\].*--worker-pool local'):
        ray_cluster.import_ray()


def test_a_crashed_driver_resumes_to_the_exact_budget(tmp_path, monkeypatch):
    """An error in the middle of a pool run leaves a checkpoint; --resume starts the workers again and finishes."""
    from advantage.training import checkpoint, driver, pool_stepper

    real_advance = pool_stepper.PoolStepper.advance
    calls = {"n": 0}

    def crash_on_third(self, state, budget):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("the driver crashed")
        return real_advance(self, state, budget)

    monkeypatch.setattr(pool_stepper.PoolStepper, "advance", crash_on_third)
    with pytest.raises(RuntimeError, match="the driver crashed"):
        train_run(tmp_path, "a3c", _a3c(), ENV, total_steps=400, worker_pool="local", n_chunks=5)
    run_dir = tmp_path / "run-CartPole-v1-0"
    meta, _ = checkpoint.load_meta(run_dir / "checkpoints")
    assert 0 < meta["env_steps"] < 400  # the two advances before the crash
    monkeypatch.setattr(pool_stepper.PoolStepper, "advance", real_advance)
    summary = driver.resume(run_dir)
    assert summary["env_steps"] == 400 and summary["updates_per_seed"] == [(400 - meta["env_steps"]) // 8]


# ----------------------------------------------------------------------------- probe environments, on the pool
PROBE_OBS = jnp.asarray([[-1.0], [0.0], [1.0]])
PROBE = dict(n_envs=4, n_steps=8, gamma=0.9, learning_rate=3e-3, optimizer="adam", ent_coef=0.0)


def _probe(tmp_path, algo, cfg, env, steps):
    from helpers import first_agent

    _, run_dir = train_run(tmp_path, algo, cfg, env, total_steps=steps, workers=2, worker_pool="local")
    mod, cfg, space, agent = first_agent(run_dir)
    dist, v = mod.network(cfg, space).apply(agent.params, PROBE_OBS)
    return dist, np.asarray(v)


@pytest.mark.parametrize("algo", ["a3c", "impala"])
def test_probe_action_reward_on_workers(tmp_path, algo):
    """ActionReward (reward 1 for action 1 at observation 0, one-step episodes), learned from stale gradients
    (A3C) or lagged rollouts (IMPALA): pi(1|0) -> 1, V(0) -> 1."""
    dist, v = _probe(tmp_path, algo, algos.get(algo).Config(**PROBE), "probe/ActionReward-v0", 2560)
    p = np.exp(np.asarray(dist.log_probs))
    assert p[1, 1] > 0.95, p
    assert abs(v[1] - 1.0) < 0.1, v


@pytest.mark.parametrize("algo", ["a3c", "impala"])
def test_probe_truncation_bootstraps_on_workers(tmp_path, algo):
    """EndlessReward (reward 1 forever, cut at 10 steps): V = 1/(1-gamma) = 10 only if the workers' truncations
    bootstrap (treating the time limit as a termination gives about 6.5)."""
    extra = {"gae_lambda": 0.95} if algo == "a3c" else {"vtrace_lambda": 0.95}
    _, v = _probe(tmp_path, algo, algos.get(algo).Config(**PROBE, **extra), "probe/EndlessReward-v0", 10240)
    assert abs(v[1] - 10.0) < 0.5, v


# ----------------------------------------------------------------------------- learning
@pytest.mark.slow
def test_a3c_cartpole_preset_learns_on_every_seed(tmp_path):
    """A3C's CartPole-v1 preset, 2 workers per seed in the round robin, seeds 0-2: each seed's evaluation >= 475.
    (Seeds 0-19: 20 of 20 under AVX2 and AVX, benchmarks/ROBUSTNESS.md and docs/algorithms/a3c.md.)"""
    from advantage import presets

    preset = presets.get("a3c-cartpole")
    summary, run_dir = train_run(tmp_path, "a3c", preset.config(), ENV, seeds=(0, 1, 2), total_steps=preset.steps,
                                 eval_episodes=preset.eval_episodes, **preset.run)
    per_seed = summary["eval_return"]["per_seed"]
    assert summary["mean_policy_lag"] == pytest.approx(1.0, abs=1e-3)  # every gradient one update stale
    assert all(r >= preset.threshold for r in per_seed), (per_seed, run_dir / "learning_curve.png")


@pytest.mark.parametrize("algo, backend", [("a3c", "jax"), ("a3c", "gymnasium"), ("impala", "gymnasium")])
def test_the_learner_step_compiles_once_in_the_background(tmp_path, monkeypatch, algo, backend):
    """The learner's program is compiled from the shapes of a worker's result while the workers start; the
    results that then arrive fit it (a mismatch would compile it a second time, with the workers waiting)."""
    from advantage.training.jax_backend import CompileCache

    compiled = []
    real = CompileCache._compile
    monkeypatch.setattr(CompileCache, "_compile", staticmethod(lambda fn, *a: compiled.append(fn) or real(fn, *a)))
    cfg = (_a3c if algo == "a3c" else _impala)()
    train_run(tmp_path, algo, cfg, ENV, total_steps=48, workers=2, worker_pool="local", backend=backend)
    assert [fn.__name__ for fn in compiled].count("learn") == 1
