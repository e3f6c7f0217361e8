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

Nothing in ``advantage/algos`` knows about any of this: only this module (and ``pool_stepper.py``) imports Ray.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import time
from collections import deque
from typing import Any

import jax
import numpy as np

from advantage.errors import ConfigError, MissingExtraError, RunError
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

    def pid(self) -> int:
        return os.getpid()

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

    kind = "local"

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

    def pids(self) -> list[int]:
        return [os.getpid()] * len(self.workers)

    def close(self) -> None:
        for w in self.workers:
            w.close()


def import_ray():
    try:
        import ray
    except ImportError:
        raise MissingExtraError(
            'asynchronous workers on Ray need Ray: pip install "advantage[ray]" '
            "(or run the workers in this process, one after another, with --worker-pool local)"
        ) from None
    return ray


def start_ray(address: str | None = None, num_cpus: int | None = None, env_module: str | None = None):
    """Connect to Ray: the cluster at ``address`` (``auto``: the one ``ray start`` runs on this machine;
    ``HOST:PORT``: its head), or else a new local Ray on this machine's cores (or ``num_cpus``), without its
    dashboard and with Ray's token authentication on (Ray's own servers listen on the machine's address, not only
    on the loopback: the token is what keeps others out; docs/scaling-out.md). Reuses a Ray this process already
    started. The workers get this process's ``XLA_FLAGS`` (the same CPU code as here) and, for an env given
    as ``module:Class`` outside the installed packages, that module's source (``env_module``)."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    if not address and os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
        raise RunError(
            "RAY_AUTH_MODE=disabled: a local Ray without token authentication would accept jobs from anyone who "
            "can reach this machine. Unset RAY_AUTH_MODE, or start Ray yourself (ray start --head) and pass "
            "--ray-address auto."
        )
    env_vars = {"JAX_PLATFORMS": "cpu", "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    if os.environ.get("XLA_FLAGS"):
        env_vars["XLA_FLAGS"] = os.environ["XLA_FLAGS"]
    runtime_env: dict[str, Any] = {"env_vars": env_vars}
    modules = _user_modules(env_module)
    if modules:
        runtime_env["py_modules"] = modules
    if os.environ.get("ADVANTAGE_NATIVE_ISA"):
        env_vars["ADVANTAGE_NATIVE_ISA"] = os.environ["ADVANTAGE_NATIVE_ISA"]
    common = dict(runtime_env=runtime_env, logging_level=logging.WARNING, log_to_driver=True)
    try:
        if address:
            ray.init(address=address, **common)
        else:
            ray.init(num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False, **common)
            if not token_auth_enabled():
                ray.shutdown()
                raise RunError(
                    "the local Ray started without token authentication (Ray < 2.52?): anyone who can reach this "
                    'machine could run code in it. Install a current Ray (pip install -U "advantage[ray]").'
                )
    except ConnectionError as e:
        raise RunError(
            f"cannot reach the Ray cluster at --ray-address {address}: {e}. Start it first (ray start --head on "
            "one machine, ray start --address=HEAD:6379 on the others; docs/scaling-out.md), or leave out "
            "--ray-address to start a local Ray on this machine."
        ) from None
    return ray


def token_auth_enabled() -> bool:
    """Whether this process's Ray uses token authentication (Ray 2.52+: on by default for a local Ray)."""
    try:
        from ray._private.authentication.authentication_utils import is_token_auth_enabled
    except ImportError:
        return False
    return bool(is_token_auth_enabled())


def _user_modules(env_module: str | None) -> list:
    """The module of a ``module:Class`` env, when it is the user's own (not installed): Ray ships it to the
    workers of a cluster. Installed packages (site-packages) are expected on every machine. A package without
    ``__init__.py`` (a namespace package, e.g. ``benchmarks.slow_envs``) is shipped as its folder."""
    if not env_module or env_module.split(".")[0] not in sys.modules:
        return []
    module = sys.modules[env_module.split(".")[0]]
    path = getattr(module, "__file__", None) or next(iter(getattr(module, "__path__", [])), "")
    if not path or "site-packages" in path or "dist-packages" in path:
        return []
    return [module] if getattr(module, "__file__", None) else [path]


def _first_line(error: BaseException) -> str:
    """The most telling line of a Ray actor's death: the last line of the error it carries."""
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    useful = [ln for ln in lines if "Error" in ln or "error" in ln]
    return (useful or lines or [type(error).__name__])[-1]


class RayPool:
    """``n`` workers as Ray actors; results are taken in the order they finish (``ray.wait``)."""

    kind = "ray"
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


class EnvShard:
    """Sub-environments ``first .. first + n - 1`` of a vector env, in a worker process (see :class:`RayVecEnv`)."""

    def __init__(self, env, n: int, env_kwargs: dict | None):
        from advantage.envs.gymnasium import GymnasiumVecEnv

        self.vec = GymnasiumVecEnv(env, n, env_kwargs=env_kwargs, validate=False)

    def reset(self, seeds):
        return self.vec.reset(seeds)

    def step(self, actions):
        return self.vec.step(actions)

    def close(self) -> None:
        self.vec.close()


class RayVecEnv:
    """A Gymnasium vector env whose sub-envs are split over ``n_shards`` Ray processes, for synchronous algorithms
    (PPO, A2C, ...) on a slow env: every step sends each shard its slice of the actions, steps the shards at once
    and joins their results. The actions are chosen here, and sub-env ``j`` is reset with the same seed as in one
    process, so a run gives the same numbers as with one process. Spaces and the env check come from one local
    instance (``GymnasiumVecEnv`` with one sub-env); it has the interface the Gymnasium back end uses."""

    def __init__(
        self,
        env,
        num_envs: int,
        n_shards: int,
        env_kwargs: dict | None = None,
        validate: bool = True,
        address: str | None = None,
    ):
        from advantage.envs.gymnasium import GymnasiumVecEnv

        if n_shards > num_envs:
            raise ConfigError(
                f"--workers {n_shards}: more workers than environments ({num_envs}); use --workers {num_envs} or "
                "fewer, or more environments per seed"
            )
        local = GymnasiumVecEnv(env, 1, env_kwargs=env_kwargs, validate=validate)
        local.close()
        self.num_envs = num_envs
        for name in (
            "observation_space",
            "action_space",
            "env_observation_space",
            "env_action_space",
            "max_episode_steps",
            "spec",
            "metadata",
            "env_factory",
        ):
            setattr(self, name, getattr(local, name))
        env_module = env.split(":")[0] if isinstance(env, str) and ":" in env else None
        self.ray = ray = start_ray(address, env_module=env_module)
        cpus = float(ray.cluster_resources().get("CPU", 1.0))
        shard = ray.remote(num_cpus=min(1.0, cpus / n_shards))(EnvShard)
        bounds = np.linspace(0, num_envs, n_shards + 1).round().astype(int)
        self.slices = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
        self.shards = [shard.remote(env, s.stop - s.start, env_kwargs) for s in self.slices]

    def reset(self, seeds) -> np.ndarray:
        seeds = list(seeds)
        return np.concatenate(self.ray.get([sh.reset.remote(seeds[s]) for sh, s in zip(self.shards, self.slices)]))

    def step(self, actions):
        actions = np.asarray(actions)
        parts = self.ray.get([sh.step.remote(actions[s]) for sh, s in zip(self.shards, self.slices)])
        obs, reward, terminated, truncated = (np.concatenate([p[k] for p in parts]) for k in range(4))
        info = {key: np.concatenate([p[4][key] for p in parts]) for key in parts[0][4]}
        return obs, reward, terminated, truncated, info

    def close(self) -> None:
        for sh in self.shards:
            self.ray.kill(sh)
        self.shards = []
