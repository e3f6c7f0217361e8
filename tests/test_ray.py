"""The worker pool on Ray: one local Ray (2 CPUs) for the whole test session, every test of this file on the same
pytest worker (``xdist_group``). Skipped where Ray is not installed (the ``ray`` extra)."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest
from helpers import train_run

from advantage import algos

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.xdist_group("ray")

ENV = "CartPole-v1"


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    import envs_for_tests  # noqa: F401 - imported here, shipped to the workers as a user's own env module

    from advantage.training.ray_cluster import start_ray

    start_ray(num_cpus=2, env_module="envs_for_tests")
    yield
    ray.shutdown()


def _a3c(**kw):
    return algos.get("a3c").Config(**{"n_envs": 2, "n_steps": 4, **kw})


def test_the_library_starts_ray_without_a_dashboard_and_with_token_authentication(monkeypatch):
    import ray._private.worker as ray_worker

    from advantage.errors import RunError
    from advantage.training.ray_cluster import start_ray, token_auth_enabled

    assert not ray_worker._global_node.address_info.get("webui_url")  # no dashboard
    assert token_auth_enabled()
    assert ray.cluster_resources()["CPU"] == 2
    ray.shutdown()
    try:
        monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
        with pytest.raises(RunError, match="without token authentication"):
            start_ray(num_cpus=2)
        assert not ray.is_initialized()
    finally:
        monkeypatch.delenv("RAY_AUTH_MODE")
        start_ray(num_cpus=2, env_module="envs_for_tests")


@pytest.mark.parametrize("algo, backend", [("a3c", "jax"), ("impala", "gymnasium")])
def test_a_ray_pool_spends_the_exact_budget(tmp_path, algo, backend):
    cfg = _a3c() if algo == "a3c" else algos.get("impala").Config(n_envs=2, n_steps=4)
    summary, run_dir = train_run(tmp_path, algo, cfg, ENV, seeds=(0, 1), total_steps=8 * 30, workers=2,
                                 backend=backend, eval_episodes=2)
    assert summary["worker_pool"] == "ray" and summary["workers"] == 2
    assert summary["env_steps"] == 240 and summary["updates_per_seed"] == [30, 30]
    assert summary["worker_restarts"] == 0
    assert len(summary["eval_return"]["per_seed"]) == 2


@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_synchronous_algorithms_step_their_envs_in_workers_with_the_same_result(tmp_path, algo):
    """PPO or A2C with --workers: the Gymnasium sub-envs live in Ray processes, the actions are chosen here, and
    each sub-env gets the seed it gets in one process: the parameters are the same, to the bit."""
    cfg = algos.get(algo).Config(n_envs=4, n_steps=16)
    common = dict(seeds=(0, 1), total_steps=64 * 4, backend="gymnasium", eval_episodes=2)
    one, _ = train_run(tmp_path / "one", algo, cfg, ENV, **common)
    shards, _ = train_run(tmp_path / "workers", algo, cfg, ENV, workers=2, **common)
    assert shards["params_digest"] == one["params_digest"]
    assert shards["eval_return"]["per_seed"] == one["eval_return"]["per_seed"]


def test_a_users_env_module_runs_on_the_workers(tmp_path):
    summary, _ = train_run(tmp_path, "impala", algos.get("impala").Config(n_envs=2, n_steps=4),
                           "envs_for_tests:CountEnv", total_steps=64, workers=2, env_check=False)
    assert summary["env_steps"] == 64


def test_a_killed_worker_is_restarted_and_the_run_finishes_its_budget(tmp_path):
    """SIGKILL one worker process in the middle of a run: the pool starts a replacement, gives it the lost job,
    the run spends exactly its budget, no job is counted twice, and summary.json records the restart."""
    from advantage.training import pool_stepper

    real_advance = pool_stepper.PoolStepper.advance
    killed: dict = {}

    def kill_once(self, state, budget):
        adv = real_advance(self, state, budget)
        if not killed:
            pid = self.pool.pids()[0]
            os.kill(pid, signal.SIGKILL)
            killed["pid"] = pid
        return adv

    pool_stepper.PoolStepper.advance = kill_once
    try:
        summary, run_dir = train_run(tmp_path, "a3c", _a3c(), ENV, total_steps=8 * 100, workers=2, n_chunks=10)
    finally:
        pool_stepper.PoolStepper.advance = real_advance
    assert killed
    assert summary["worker_restarts"] == 1
    assert summary["env_steps"] == 800 and summary["updates_per_seed"] == [100]
    import csv

    with open(run_dir / "metrics.csv") as f:
        restarts = [float(r["pool/restarts"]) for r in csv.DictReader(f) if r["pool/restarts"]]
    assert restarts[0] == 0 and restarts[-1] == 1


def test_a_worker_that_cannot_start_stops_the_run_with_its_error(tmp_path):
    from advantage.errors import RunError
    from advantage.training.run_config import RunConfig
    from advantage.training.workers import RayPool

    # the workers fail in their constructor: a keyword the env does not take (the driver would have said so first)
    cfg = _a3c()
    run = RunConfig(env=ENV, seeds=(0,), total_steps=8, backend="gymnasium", env_kwargs='{"no_such_kwarg": 1}')
    pool = RayPool(lambda i, r: ("a3c", cfg, run, 0, i, r), 1)
    try:
        pool.submit(0, "pid")
        with pytest.raises(RunError, match="worker 0 died 4 times in a row without returning a result"):
            pool.next_result()
        assert pool.restarts == 3
    finally:
        pool.close()


def test_learner_takes_results_as_they_come(tmp_path):
    """With a slow worker beside a fast one, the learner does not wait for the slow one: most updates come
    from the fast worker."""
    from advantage.training.run_config import RunConfig
    from advantage.training.workers import RayPool

    cfg, run = _a3c(), RunConfig(env=ENV, seeds=(0,), total_steps=8, backend="jax")
    pool = RayPool(lambda i, r: ("a3c", cfg, run, 0, i, r), 2)
    try:
        agent = algos.get("a3c").init(__import__("jax").random.PRNGKey(0), *_spaces(), cfg, 8)
        import jax

        agent = jax.device_get(agent)
        pool.submit(0, "rollout", agent, 0)  # warm both up (compilation)
        pool.submit(1, "rollout", agent, 0)
        pool.next_result()
        pool.next_result()
        slow = ray.get(pool.actors[1].pid.remote())
        os.kill(slow, signal.SIGSTOP)  # worker 1 stops answering
        try:
            pool.submit(1, "rollout", agent, 0)
            got = []
            t0 = time.perf_counter()
            for _ in range(5):
                pool.submit(0, "rollout", agent, 0)
                got.append(pool.next_result()[0])
            assert got == [0] * 5 and time.perf_counter() - t0 < 60
        finally:
            os.kill(slow, signal.SIGCONT)
        assert pool.next_result()[0] == 1  # and worker 1's job still arrives
    finally:
        pool.close()


def _spaces():
    from advantage.envs import registry

    env, params = registry.make(ENV)
    return env.observation_space(params), env.action_space(params)


def test_pool_metrics_are_logged(tmp_path):
    summary, run_dir = train_run(tmp_path, "impala", algos.get("impala").Config(n_envs=2, n_steps=4), ENV,
                                 total_steps=160, workers=2, log_every=1)
    import csv

    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    for name in ("policy/lag", "pool/actor_sps", "pool/learner_sps", "pool/learner_idle_fraction",
                 "pool/queue_depth", "pool/restarts", "vtrace/rho_mean", "vtrace/rho_clipped_fraction"):
        values = np.array([float(r[name]) for r in rows])
        assert np.all(np.isfinite(values)), name
    assert max(float(r["policy/lag"]) for r in rows) >= 1
