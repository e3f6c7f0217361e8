"""Workers and worker pools: where the asynchronous algorithms' env steps happen.

A :class:`Worker` is one actor of IMPALA or one worker of A3C: its own ``n_envs`` environments on the run's back
end (Gymnasium or JAX-native), a copy of the agent it is sent, and its own random stream
(``seeding.worker_seed``). It has two jobs, each one call:

* :meth:`Worker.rollout` -- act ``n_steps`` on its environments with the agent it was sent, and return the
  rollout (time-major ``[T, n_envs]`` arrays, with the behaviour policy's log-probabilities) and its episode
  statistics (IMPALA's actors);
* :meth:`Worker.gradients` -- the same rollout, then the algorithm's ``compute_gradients`` on it with that same
  agent, returning only the gradients (A3C's workers).

A *pool* runs ``n`` workers and hands back their results one at a time, in the order they finish:

* :class:`LocalPool` -- the workers live in this process and run one call at a time, first submitted first run:
  with one call in flight per worker that is a deterministic round robin (the tests' mode, and a way to debug);
* :class:`RayPool` -- each worker is a Ray actor process (on this machine or on a cluster); the caller takes
  whichever result is ready first, never waiting on one particular worker. A worker process that dies is
  started again and its lost calls are submitted again (:attr:`RayPool.restarts`); nothing of a lost call was
  returned, so nothing is counted twice.

Nothing in ``advantage/algos`` knows about any of this: only the execution layer imports Ray
(``ray_cluster.py``: starting or joining Ray safely, and ``RayVecEnv`` for the synchronous algorithms).
"""

from __future__ import annotations

import dataclasses
import os
import socket
import sys
import time
from collections import deque
from typing import Any

import jax
import numpy as np

from advantage.errors import RunError
from advantage.training.ray_cluster import start_ray
from advantage.training.run_config import RunConfig, Schedule
from advantage.training.seeding import worker_seed


class Worker:
    """One worker of seed ``seed``: ``algo_cfg.n_envs`` environments of ``run.env`` on the back end
    ``run.backend``, seeded by ``worker_seed(seed, index, restarts, env_steps)`` (a restarted worker, or one of a run
    resumed at ``env_steps``, does not replay the first episodes)."""

    def __init__(
        self, algo_name: str, algo_cfg, run: RunConfig, seed: int, index: int, restarts: int = 0, env_steps: int = 0
    ):
        from advantage import algos
        from advantage.training.loading import enable_compilation_cache, make_backend

        enable_compilation_cache()
        self.algo, self.config, self.index = algos.get(algo_name), algo_cfg, index
        own_seed = worker_seed(seed, index, restarts, env_steps)
        batch = algo_cfg.n_envs * algo_cfg.n_steps
        run = dataclasses.replace(
            run, seeds=(own_seed,), total_steps=batch, env_check=False, seed_batching="map", workers=None
        )
        self.backend, _ = make_backend(self.algo, algo_cfg, run, run.backend, Schedule(batch, algo_cfg.n_envs, 1))
        self.runners = self.backend.init([own_seed])
        self._grads = jax.jit(
            lambda agent, batch, key: self.algo.compute_gradients(
                self.config, self.backend.action_space, agent, batch, key
            )
        )
        self.key = jax.random.PRNGKey(own_seed)
        self.node_id = self.node()

    def pid(self) -> int:
        return os.getpid()

    @staticmethod
    def node() -> str:
        """Where this worker runs: its Ray node's id inside a Ray worker process, else this machine's host name."""
        ray = sys.modules.get("ray")
        if ray is not None and ray.is_initialized():
            return ray.get_runtime_context().get_node_id()
        return socket.gethostname()

    def rollout(self, agent, version: int) -> dict:
        """``n_steps`` from each of the worker's envs with ``agent`` (the learner's parameters of update
        ``version``): ``{"batch": Transition [T, n_envs] of numpy arrays, "stats": {metric: float}, "version",
        "env_steps", "seconds"}``."""
        t0 = time.perf_counter()
        one = jax.tree.map(lambda x: np.asarray(x)[None], agent)  # the back end's seed axis, of 1
        self.runners, batch, stats = self.backend.collect_rollout(self.runners.replace(agent=one), self.config.n_steps)
        batch = jax.tree.map(lambda x: np.asarray(x)[0], batch)
        stats = {k: float(np.asarray(v).reshape(-1)[0]) for k, v in stats.items()}
        stats["health/nonfinite_obs"] = float(np.sum(~np.isfinite(batch.obs)) + np.sum(~np.isfinite(batch.next_obs)))
        stats["health/nonfinite_reward"] = float(np.sum(~np.isfinite(batch.reward)))
        return {
            "batch": batch,
            "stats": stats,
            "version": version,
            "env_steps": int(batch.reward.size),
            "seconds": time.perf_counter() - t0,
            "node": self.node_id,
        }

    def gradients(self, agent, version: int) -> dict:
        """A :meth:`rollout` with ``agent``, then ``algo.compute_gradients`` on it with the same ``agent``:
        the rollout's result with ``"grads"`` (numpy) and the loss metrics in place of the batch."""
        out = self.rollout(agent, version)
        t0 = time.perf_counter()
        self.key, key = jax.random.split(self.key)
        grads, metrics = jax.device_get(self._grads(agent, out.pop("batch"), key))
        out["grads"] = grads
        out["metrics"] = {k: float(v) for k, v in metrics.items()}
        out["seconds"] += time.perf_counter() - t0
        return out

    def close(self) -> None:
        self.backend.close()


class LocalPool:
    """``n`` workers in this process. A submitted call runs when its result is asked for, first submitted
    first run: with one call in flight per worker the workers take turns (a deterministic round robin)."""

    def __init__(self, make_worker, n: int):
        self.make_worker = make_worker
        self.workers = [make_worker(i, 0) for i in range(n)]
        self.pending: deque = deque()
        self.restarts = 0

    def __len__(self) -> int:
        return len(self.workers)

    def submit(self, i: int, method: str, *args) -> None:
        self.pending.append((i, method, args))

    def in_flight(self) -> int:
        return len(self.pending)

    def ready(self) -> int:
        """Results finished and waiting to be taken (the queue depth): none here, a call runs when taken."""
        return 0

    def next_result(self) -> tuple[int, dict]:
        """``(worker, result)`` of the call submitted first."""
        i, method, args = self.pending.popleft()
        return i, getattr(self.workers[i], method)(*args)

    def close(self) -> None:
        for w in self.workers:
            w.close()


def _first_line(error: BaseException) -> str:
    """The most telling line of a Ray actor's death: the last line of the error it carries."""
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    useful = [ln for ln in lines if "Error" in ln or "error" in ln]
    return (useful or lines or [type(error).__name__])[-1]


class RayPool:
    """``n`` workers as Ray actors; results are taken in the order they finish (``ray.wait``)."""

    max_restarts = 3
    """Replacements of one worker in a row that die before returning anything: then the run stops with the
    worker's error (an env that cannot be built on the workers, say) instead of restarting forever."""

    def __init__(self, make_args, n: int, address: str | None = None, env_module: str | None = None):
        """``make_args(i, restarts)``: the arguments of :class:`Worker` for worker ``i``."""
        self.ray = ray = start_ray(address, env_module=env_module)
        cpus = float(ray.cluster_resources().get("CPU", 1.0))
        self.cpus_per_worker = min(1.0, cpus / n)
        self.actor_class = ray.remote(num_cpus=self.cpus_per_worker)(Worker)
        self.make_args = make_args
        self.generation = [0] * n
        self.failures = [0] * n  # deaths of worker i since its last result
        self.restarts = 0
        self.actors = [self._start(i) for i in range(n)]
        self.calls: dict[Any, tuple[int, int, str, tuple]] = {}  # ref -> (worker, generation, method, args)

    def _start(self, i: int):
        return self.actor_class.remote(*self.make_args(i, self.generation[i]))

    def __len__(self) -> int:
        return len(self.actors)

    def submit(self, i: int, method: str, *args) -> None:
        ref = getattr(self.actors[i], method).remote(*args)
        self.calls[ref] = (i, self.generation[i], method, args)

    def in_flight(self) -> int:
        return len(self.calls)

    def ready(self) -> int:
        if not self.calls:
            return 0
        done, _ = self.ray.wait(list(self.calls), num_returns=len(self.calls), timeout=0, fetch_local=False)
        return len(done)

    def next_result(self, timeout_s: float = 600.0) -> tuple[int, dict]:
        """``(worker, result)`` of whichever call finishes first. A call whose worker died is submitted again to
        the worker's replacement (started once per death), with the same arguments."""
        ray = self.ray
        while True:
            done, _ = ray.wait(list(self.calls), num_returns=1, timeout=timeout_s)
            if not done:
                raise RunError(
                    f"no worker returned a result in {timeout_s:.0f} s ({len(self.calls)} calls in flight); "
                    "a worker may be stuck in its environment, or the cluster has no free CPU for the workers"
                )
            ref = done[0]
            i, generation, method, args = self.calls.pop(ref)
            try:
                result = ray.get(ref)
            except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError) as e:
                if generation == self.generation[i]:  # the first lost call of this death starts the replacement
                    self.failures[i] += 1
                    if self.failures[i] > self.max_restarts:
                        raise RunError(
                            f"worker {i} died {self.failures[i]} times in a row without returning a result; "
                            f"the last time: {_first_line(e)}"
                        ) from None
                    self.generation[i] += 1
                    self.restarts += 1
                    self.actors[i] = self._start(i)
                self.submit(i, method, *args)
                continue
            self.failures[i] = 0
            return i, result

    def pids(self) -> list[int]:
        return self.ray.get([a.pid.remote() for a in self.actors])

    def close(self) -> None:
        for a in self.actors:
            self.ray.kill(a)
        self.actors = []
        self.calls = {}
