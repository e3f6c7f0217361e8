"""Training on a pool of asynchronous workers: IMPALA's actor-learner and A3C's parameter server, as one stepper.

The algorithm says which of the two it is (``WORKERS`` in its module):

* ``"trajectories"`` (IMPALA) -- every worker acts on its own environments with the parameters it was last sent
  and returns the rollout with its behaviour log-probabilities; the learner (this process) updates on each
  rollout as it arrives with the algorithm's ``update`` (V-trace corrects for the lag), then sends the worker
  its new parameters with its next job;
* ``"gradients"`` (A3C) -- every worker computes the gradient of the loss on its own rollout with its own copy of
  the parameters (``compute_gradients``) and returns only the gradient; the parameter server (this process)
  applies the gradients in arrival order with its optimiser state (``apply_gradients``, the paper's shared
  RMSProp), and the worker pulls the new parameters with its next job.

Each training seed has its own ``n_workers`` workers and its own learner; all seeds' workers share one pool
(``workers.LocalPool`` or ``workers.RayPool``), so the seeds train side by side. A worker has
``--jobs-per-worker`` jobs queued at most (by default ``MAX_IN_FLIGHT``: A3C 1, it pulls fresh parameters after
each push; IMPALA 2, so that an actor never waits for the learner), which bounds the queue of results waiting
for the learner. The learner
takes whichever result is ready first, never waiting on one particular worker.

The budget is exact: a seed gets no more jobs than its remaining budget holds, every job is ``n_envs x n_steps``
env steps, and only the rollouts (or gradients) that reached the learner are counted; a job lost with a worker
is done again by its replacement, and counted once.
"""

from __future__ import annotations

import math
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from advantage.errors import ConfigError
from advantage.training import checkpoint
from advantage.training.jax_backend import CompileCache, count_nonfinite, shapes_of
from advantage.training.run_config import RunConfig
from advantage.training.stepper import Advance, seed_env_steps
from advantage.training.workers import LocalPool, RayPool
from advantage.types import rollout_shapes

#: Jobs queued per worker unless --jobs-per-worker says: A3C pulls after every push; IMPALA's actors keep one rollout
#: queued behind the current.
MAX_IN_FLIGHT = {"gradients": 1, "trajectories": 2}


def check_worker_run(algo, algo_cfg, run: RunConfig) -> None:
    """A clear error before anything starts if ``run`` cannot run on workers."""
    mode = getattr(algo, "WORKERS", None)
    if algo.SEARCH:
        raise ConfigError(f"--workers: {algo.NAME} is a population search, which has no worker pool")
    if mode is None:  # a synchronous algorithm: its Gymnasium sub-envs are stepped by worker processes
        if run.worker_pool != "ray" or run.backend != "gymnasium":
            raise ConfigError(
                f"--workers {run.workers}: {algo.NAME} is synchronous; with --workers its Gymnasium environments "
                "are stepped in Ray worker processes, so it needs --backend gymnasium and --worker-pool ray (a "
                "JAX-native env runs compiled in one process). a3c and impala run on a worker pool of their own."
            )
        return
    batch = algo_cfg.n_envs * algo_cfg.n_steps
    total = run.total_steps
    if total is not None and total % batch:
        lo = total - total % batch
        raise ConfigError(
            f"--total-steps {total} is not a multiple of one worker's rollout ({algo_cfg.n_envs} envs x "
            f"{algo_cfg.n_steps} steps = {batch}), so the budget could not be met exactly; use --total-steps "
            f"{lo or batch} or {lo + batch}."
        )


class PoolStepper:
    """Asynchronous training of ``algo`` (``WORKERS`` = ``"trajectories"`` or ``"gradients"``) on a worker pool.

    ``backend``: the run's ordinary back end, used for the agents' initialisation (the same agents as a
    synchronous run of the same seeds) and for evaluation; the workers build their own."""

    def __init__(self, algo, algo_cfg, run: RunConfig, backend):
        assert run.total_steps is not None and run.workers
        check_worker_run(algo, algo_cfg, run)
        self.algo, self.config, self.run, self.backend = algo, algo_cfg, run, backend
        self.mode: str = algo.WORKERS
        self.jobs_per_worker = run.jobs_per_worker or MAX_IN_FLIGHT[self.mode]
        self.n_workers = run.workers
        self.name, self.action_space = backend.name, backend.action_space
        self.total_steps = run.total_steps
        self.batch = self.update_size = algo_cfg.n_envs * algo_cfg.n_steps
        self.nan_metrics = tuple(algo.NAN_METRICS)
        self.health_checks = True
        self.compiled = CompileCache()
        self.seeds = list(run.seeds)
        updates = len(self.seeds) * self.total_steps // self.batch
        self.updates_per_advance = max(1, math.ceil(updates / run.n_chunks))
        self.pool: Any = None
        self._learn = self._learn_fn()
        self._timers = {"learner": 0.0, "wait": 0.0}
        self.updates = np.zeros(len(self.seeds), np.int64)  # in this session (a resumed run: since it resumed)
        self.lag_sum = 0.0
        self.restarts_before = 0
        self.nodes: set[str] = set()  # where the workers' results came from (Ray node ids, or host names)

    # ------------------------------------------------------------------ the Stepper contract
    @property
    def compile_time_s(self) -> float:
        return self.backend.compile_time_s + self.compiled.seconds

    @property
    def timers(self) -> dict[str, float]:
        return {**self._timers, "compile_ahead": self.compiled.background_seconds}

    def describe(self) -> str:
        what = "gradients to a parameter server" if self.mode == "gradients" else "rollouts to a learner"
        return (
            f"{self.n_workers} worker(s) per seed on a {self.run.worker_pool} pool, sending {what}, "
            f"{self.jobs_per_worker} job(s) queued per worker; 1 job = "
            f"{self.config.n_envs} envs x {self.config.n_steps} steps = {self.batch} transitions; "
            f"{self.total_steps // self.batch} updates = {self.total_steps} env steps per seed"
        )

    def log_interval(self, log_every: int | None) -> int:
        if log_every is not None:
            return max(self.batch, log_every)
        return max(1, -(-self.total_steps // self.batch // 2000)) * self.batch

    def start(self, seeds):
        return self.backend.init(seeds)

    def restore(self, template, raw, path, meta):
        self.restarts_before = int(meta.get("worker_restarts", 0))
        return checkpoint.restore(template, raw, path)

    def env_steps(self, state) -> np.ndarray:
        return seed_env_steps(state)

    def finished(self, state) -> bool:
        return bool((self.env_steps(state) >= self.total_steps).all())

    def nonfinite_batch(self, state, adv: Advance):
        return None  # the rollout lived in a worker

    def evaluate(self, state, n_episodes, deterministic, max_steps=None, record=0):
        return self.backend.evaluate(state, n_episodes, deterministic, max_steps, record)

    def prefetch_evaluation(self, state, n_episodes, deterministic, max_steps=None, record=0):
        self.backend.prefetch_evaluation(state, n_episodes, deterministic, max_steps, record)

    def agents(self, state):
        return state.agent

    def checkpoint_meta(self, state) -> dict:
        return {"worker_restarts": self.restarts}

    def summary(self, state) -> dict:
        return {
            "workers": self.n_workers,
            "worker_pool": self.run.worker_pool,
            "worker_restarts": self.restarts,
            "worker_nodes": len(self.nodes),  # of this session: machines (Ray nodes) whose workers sent results
            "updates_per_seed": self.updates.tolist(),  # of this session
            "mean_policy_lag": self.lag_sum / max(1, int(self.updates.sum())),  # of this session
        }

    @property
    def restarts(self) -> int:
        """Worker restarts over the whole run (a resumed run included)."""
        return self.restarts_before + (0 if self.pool is None else int(self.pool.restarts))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None
        self.compiled.close()
        self.backend.close()

    # ------------------------------------------------------------------ the pool
    def _open(self, state) -> None:
        """Start the workers and give each its first job, with its seed's current agent."""
        from advantage.training.workers import Worker

        algo_name, cfg, run, n = self.algo.NAME, self.config, self.run, self.n_workers
        seeds = self.seeds
        start = self.env_steps(state)

        def args(i: int, restarts: int):
            return algo_name, cfg, run, seeds[i // n], i % n, restarts, int(start[i // n])

        if run.worker_pool == "local":
            self.pool = LocalPool(lambda i, restarts: Worker(*args(i, restarts)), n * len(seeds))
        else:
            self.pool = RayPool(args, n * len(seeds), run.ray_address, run.env)
        self.version = np.zeros(len(seeds), np.int64)  # learner updates since the pool started, per seed
        self.issued = start.copy()  # env steps consumed or in flight, per seed
        self.method = "gradients" if self.mode == "gradients" else "rollout"
        agents = self._unstack(state.agent)
        self._prefetch_learn(agents[0])
        for _ in range(self.jobs_per_worker):
            for i in range(len(self.pool)):
                self._submit(i, agents[i // n])
        self.last_result_t = time.perf_counter()

    def _prefetch_learn(self, agent) -> None:
        """Compile the learner's step in the background, from the shapes of a worker's result, while the workers
        start and run their first jobs (compiled when the first result arrives, it kept every worker waiting)."""
        algo, cfg, space = self.algo, self.config, self.action_space
        agent = shapes_of(jax.tree.map(jnp.asarray, agent))
        key = jax.ShapeDtypeStruct((2,), jnp.uint32)  # the seed's key
        obs = jax.ShapeDtypeStruct((cfg.n_envs, *self.backend.obs_space.shape), jnp.float32)
        action, log_prob, value = jax.eval_shape(lambda a, o, k: algo.act(cfg, space, a, o, k), agent, obs, key)
        payload = rollout_shapes(obs, action, log_prob, value, cfg.n_steps)
        if self.mode == "gradients":
            grads = lambda a, b, k: algo.compute_gradients(cfg, space, a, b, k)[0]  # noqa: E731
            payload = jax.eval_shape(grads, agent, payload, key)
        payload = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), payload)  # numpy: never weak-typed
        self.compiled.prefetch("learn", self._learn, agent, payload, key)

    def _unstack(self, tree) -> list:
        host = jax.device_get(tree)
        return [jax.tree.map(lambda x, s=s: x[s], host) for s in range(len(self.seeds))]

    def _submit(self, i: int, agent) -> None:
        """Give worker ``i`` a job with ``agent`` (its seed's, on the host), if the seed's budget has room for it."""
        s = i // self.n_workers
        if self.issued[s] + self.batch <= self.total_steps:
            self.issued[s] += self.batch
            self.pool.submit(i, self.method, agent, int(self.version[s]))

    def _learn_fn(self):
        """The learner's step on one result: IMPALA's ``update`` on a rollout, or A3C's ``apply_gradients`` on a
        worker's gradients; with the count of non-finite parameters the health checks read. It splits the seed's
        key itself (one compiled call per result: the learner's time is the workers' wait) and returns the next."""
        algo, cfg, space = self.algo, self.config, self.action_space

        def learn(agent, payload, key):
            key, k = jax.random.split(key)
            if self.mode == "gradients":
                agent, metrics = algo.apply_gradients(cfg, agent, payload)
            else:
                agent, metrics = algo.update(cfg, space, agent, payload, k)
            metrics["health/nonfinite_params"] = count_nonfinite(algo.policy_params(agent)).astype(jnp.float32)
            return agent, metrics, key

        return learn

    # ------------------------------------------------------------------ training
    def advance(self, state, budget: int) -> Advance:
        """Take up to ``updates_per_advance`` results from the pool, whichever seed's they are, and update that
        seed's learner on each; ``budget`` (env steps per seed) is not needed: jobs never exceed the budget."""
        if self.pool is None:
            self._open(state)
        agents = [jax.tree.map(jnp.asarray, a) for a in self._unstack(state.agent)]
        keys = list(state.key)
        steps = self.env_steps(state).copy()
        rows: list[tuple[int, dict]] = []
        columns: list[np.ndarray] = []
        while len(rows) < self.updates_per_advance and self.pool.in_flight():
            t0 = time.perf_counter()
            i, result = self.pool.next_result()
            t1 = time.perf_counter()
            s = i // self.n_workers
            payload = result["grads"] if self.mode == "gradients" else result["batch"]
            learn = self.compiled.get("learn", self._learn, agents[s], payload, keys[s])
            agents[s], metrics, keys[s] = learn(agents[s], payload, keys[s])
            host_agent, metrics = jax.device_get((agents[s], metrics))
            t2 = time.perf_counter()
            lag = int(self.version[s] - result["version"])
            self.version[s] += 1
            self._submit(i, host_agent)  # the worker's next job first: the rest is bookkeeping
            self.updates[s] += 1
            self.lag_sum += lag
            steps[s] += result["env_steps"]
            self.nodes.add(result["node"])
            metrics = {name: float(v) for name, v in metrics.items()}
            metrics.update(result.get("metrics", {}))
            metrics.update(result["stats"])
            metrics.update(
                {
                    "grad/staleness" if self.mode == "gradients" else "policy/lag": float(lag),
                    "pool/actor_sps": result["env_steps"] / max(result["seconds"], 1e-9),
                    "pool/learner_sps": result["env_steps"] / max(t2 - t1, 1e-9),
                    "pool/learner_idle_fraction": (t1 - t0) / max(t2 - self.last_result_t, 1e-9),
                    "pool/queue_depth": float(self.pool.ready()),
                    "pool/restarts": float(self.restarts),
                }
            )
            self._timers["wait"] += t1 - t0
            self._timers["learner"] += t2 - t1
            self.last_result_t = t2
            rows.append((s, metrics))
            columns.append(steps.copy())
        n = len(rows)
        names = sorted({name for _, m in rows for name in m})
        out = {name: np.full((len(self.seeds), n), np.nan, np.float32) for name in names}
        for col, (s, m) in enumerate(rows):
            for name, v in m.items():
                out[name][s, col] = v
        stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *agents)
        new_state = state.replace(
            agent=stacked,
            key=jnp.stack(keys),
            env_steps=jnp.asarray(steps, state.env_steps.dtype),
        )
        env_steps = np.stack(columns, axis=1) if columns else steps[:, None]
        return Advance(new_state, out, env_steps)
