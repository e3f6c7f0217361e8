"""Gymnasium back end: any Gymnasium environment, stepped on the host as one vector env.

All seeds share one vector env of ``n_seeds * n_envs`` sub-environments (sub-env ``j``
of seed ``i`` is ``i * n_envs + j``); acting and updating are the algorithm's own
``act`` and ``update``, compiled and batched over seeds exactly as on the JAX path.
"""

from __future__ import annotations

import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from advantage.training import rollout
from advantage.training.jax_backend import CompileCache, batch_over_seeds, count_nonfinite, shapes_of
from advantage.training.seeding import env_seed, train_key
from advantage.types import Transition, rollout_shapes


class HostRunner(struct.PyTreeNode):
    """What can be saved of a host run: the agent, the RNG key and the step counter
    (the environments' internal state lives in Gymnasium and is re-seeded on resume)."""

    agent: Any
    key: jax.Array
    env_steps: jax.Array


class GymnasiumBackend:
    name = "gymnasium"

    def __init__(
        self,
        algo,
        config,
        env,
        env_kwargs,
        seeds,
        schedule,
        asynchronous: bool = False,
        seed_batching: str = "vmap",
        validate: bool = True,
        workers: int = 0,
        ray_address: str | None = None,
    ):
        from advantage.envs.gymnasium import GymnasiumVecEnv

        self.algo, self.config, self.schedule = algo, config, schedule
        self.env_spec, self.env_kwargs, self.asynchronous = env, env_kwargs, asynchronous
        self.n_seeds, self.n_envs = len(seeds), config.n_envs
        self.vec: Any  # a GymnasiumVecEnv, or its interface over Ray processes
        if workers:  # each seed's sub-envs stepped by `workers` Ray processes (training/workers.py)
            from advantage.training.ray_cluster import RayVecEnv

            self.vec = RayVecEnv(
                env, self.n_seeds * self.n_envs, self.n_seeds * workers, env_kwargs, validate, ray_address
            )
        else:
            self.vec = GymnasiumVecEnv(
                env, self.n_seeds * self.n_envs, asynchronous=asynchronous, env_kwargs=env_kwargs, validate=validate
            )
        self.obs_space, self.action_space = self.vec.observation_space, self.vec.action_space
        self.compiled = CompileCache()
        self.timers = {"env": 0.0, "act": 0.0, "update": 0.0}
        self._obs: Any = None  # the latest observations [n_seeds * n_envs, ...], set by restart_envs
        self._seeds = list(seeds)
        self.last_batch: Transition | None = None  # the latest rollout, kept so a non-finite update can be inspected

        def act_one(agent, obs, key):
            key, k_act = jax.random.split(key)
            return key, algo.act(config, self.action_space, agent, obs, k_act)

        def update_one(agent, batch, key):
            key, k_update = jax.random.split(key)
            agent, metrics = algo.update(config, self.action_space, agent, batch, k_update)
            metrics["health/nonfinite_params"] = count_nonfinite(algo.policy_params(agent)).astype(jnp.float32)
            return agent, key, metrics

        over_seeds = self.over_seeds = batch_over_seeds(seed_batching)
        self._act_fn = lambda agent, obs, key: over_seeds(lambda a: act_one(*a))((agent, obs, key))
        self._update_fn = lambda agent, batch, key: over_seeds(lambda a: update_one(*a))((agent, batch, key))

    @property
    def compile_time_s(self) -> float:
        return self.compiled.seconds

    def _act(self, agent, obs, key):
        return self.compiled.get("act", self._act_fn, agent, obs, key)(agent, obs, key)

    def _update(self, agent, batch, key):
        """The compiled update. The agent's buffers are donated: the update writes the new state in place
        (an off-policy agent's replay buffer is not copied on every call), so ``agent`` is invalid after it."""
        name = f"update{batch.reward.shape}"  # the final, shorter rollout has its own shape
        return self.compiled.get(name, self._update_fn, agent, batch, key, donate_argnums=(0,))(agent, batch, key)

    def init(self, seeds, prefetch: bool = False) -> HostRunner:
        def init_one(seed):
            key = train_key(seed)
            key, k_init, _ = jax.random.split(key, 3)
            agent = self.algo.init(k_init, self.obs_space, self.action_space, self.config, self.schedule.total_steps)
            return HostRunner(agent, key, jnp.zeros((), jnp.int32))

        seeds = jnp.asarray(seeds, jnp.uint32)
        runners = self.compiled.get("init", self.over_seeds(init_one), seeds)(seeds)
        self.restart_envs(runners)
        # with prefetch, the updates (a full rollout's and the final shorter one's) compile in the background
        for n_steps in ({self.config.n_steps, self.schedule.partial_steps} - {0}) if prefetch else ():
            batch = self._batch_shapes(runners, n_steps)
            self.compiled.prefetch(
                f"update{batch.reward.shape}",
                self._update_fn,
                *shapes_of((runners.agent, batch, runners.key)),
                donate_argnums=(0,),
            )
        return runners

    def _batch_shapes(self, runners: HostRunner, n_steps: int) -> Transition:
        """The shapes of the ``[n_seeds, n_steps, n_envs, ...]`` batch that :meth:`collect_rollout` builds."""
        obs = jax.ShapeDtypeStruct((self.n_seeds, self.n_envs) + self._obs.shape[1:], np.float32)
        _, (action, log_prob, value) = jax.eval_shape(self._act_fn, runners.agent, obs, runners.key)
        return rollout_shapes(obs, action, log_prob, value, n_steps, time_axis=1)

    def restart_envs(self, runners: HostRunner) -> None:
        """(Re)start every sub-env from its seed (also used when resuming from a checkpoint)."""
        steps = np.asarray(runners.env_steps)
        seeds = [env_seed(s, j, int(steps[i])) for i, s in enumerate(self._seeds) for j in range(self.n_envs)]
        self._obs = self.vec.reset(seeds)

    def _split(self, x):
        return x.reshape((self.n_seeds, self.n_envs) + x.shape[1:])

    def collect_rollout(self, runners: HostRunner, n_steps: int):
        """``n_steps`` from every sub-env with the runners' agents, no update: ``(runners, batch, stats)``, the
        batch per seed ``[S, T, n_envs]`` and the rollout's ``train/`` metrics ``[S]`` (an actor of a worker
        pool runs only this)."""
        S, N = self.n_seeds, self.n_envs
        obs_buf = np.zeros((n_steps, S, N) + self._obs.shape[1:], np.float32)
        next_buf = np.zeros_like(obs_buf)
        rew_buf = np.zeros((n_steps, S, N), np.float32)
        term_buf = np.zeros((n_steps, S, N), bool)
        trunc_buf = np.zeros((n_steps, S, N), bool)
        done_buf = np.zeros((n_steps, S, N), bool)
        ret_buf = np.zeros((n_steps, S, N), np.float32)
        len_buf = np.zeros((n_steps, S, N), np.float32)
        actions, log_probs, values = [], [], []
        key = runners.key
        for t in range(n_steps):
            t0 = time.perf_counter()
            obs = self._split(self._obs)
            key, out = self._act(runners.agent, obs, key)
            # to the host now, all three in one call (the rollout's buffers are numpy; device arrays kept until the
            # rollout ends were fetched one by one then)
            action_np, log_prob, value = jax.device_get(out)
            t1 = time.perf_counter()
            next_obs, reward, term, trunc, info = self.vec.step(action_np.reshape((S * N,) + action_np.shape[2:]))
            t2 = time.perf_counter()
            self.timers["act"] += t1 - t0
            self.timers["env"] += t2 - t1
            obs_buf[t], next_buf[t] = obs, self._split(info["final_obs"])
            rew_buf[t], term_buf[t], trunc_buf[t] = self._split(reward), self._split(term), self._split(trunc)
            done_buf[t] = self._split(info["episode_done"])
            ret_buf[t], len_buf[t] = self._split(info["episode_return"]), self._split(info["episode_length"])
            actions.append(action_np)
            log_probs.append(log_prob)
            values.append(value)
            self._obs = next_obs
        # time-major [T, S, N] -> per seed [S, T, N], on the host (one transfer per field, no eager device ops)
        seed_major: Any = lambda x: np.swapaxes(np.asarray(x), 0, 1)  # noqa: E731 - host arrays; jit takes them
        batch = Transition(
            obs=seed_major(obs_buf),
            action=seed_major(np.stack(actions)),
            reward=seed_major(rew_buf),
            terminated=seed_major(term_buf),
            truncated=seed_major(trunc_buf),
            next_obs=seed_major(next_buf),
            log_prob=seed_major(np.stack(log_probs)),
            value=seed_major(np.stack(values)),
        )
        stats: dict[str, np.ndarray] = {}
        n_done = done_buf.sum(axis=(0, 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            stats["train/episode_return"] = np.where(n_done > 0, (ret_buf * done_buf).sum(axis=(0, 2)) / n_done, np.nan)
            stats["train/episode_length"] = np.where(n_done > 0, (len_buf * done_buf).sum(axis=(0, 2)) / n_done, np.nan)
        stats["train/episodes"] = n_done.astype(np.float32)
        stats["train/reward_per_step"] = rew_buf.mean(axis=(0, 2))
        stats["train/reward_std"] = rew_buf.std(axis=(0, 2))
        stats["train/terminations"] = term_buf.sum(axis=(0, 2)).astype(np.float32)
        return HostRunner(runners.agent, key, runners.env_steps + n_steps * N), batch, stats

    def iteration(self, runners: HostRunner, n_steps: int):
        runners, batch, stats = self.collect_rollout(runners, n_steps)
        t0 = time.perf_counter()
        self.last_batch = batch
        agent, key, metrics = self._update(runners.agent, batch, runners.key)
        metrics = {k: np.asarray(v) for k, v in jax.device_get(metrics).items()}
        self.timers["update"] += time.perf_counter() - t0
        metrics.update(stats)
        return runners.replace(agent=agent, key=key), metrics

    def run_chunk(self, runners: HostRunner, n_iters: int):
        # One copy per chunk keeps the caller's ``runners`` intact (a failure mid-chunk checkpoints them);
        # the updates inside the chunk then donate, and so update in place.
        runners = runners.replace(agent=jax.tree.map(jnp.copy, runners.agent))
        rows = []
        for _ in range(n_iters):
            runners, m = self.iteration(runners, self.config.n_steps)
            rows.append(m)
        return runners, {k: np.stack([r[k] for r in rows], axis=1) for k in rows[0]}

    def nonfinite_batch(self, runners: HostRunner, n_iters: int):
        """The latest rollout: the host loop cannot replay a chunk, and the update that failed saw this batch."""
        return self.last_batch

    def run_partial(self, runners: HostRunner):
        runners = runners.replace(agent=jax.tree.map(jnp.copy, runners.agent))
        runners, m = self.iteration(runners, self.schedule.partial_steps)
        return runners, {k: v[:, None] for k, v in m.items()}

    def prefetch_evaluation(self, runners, n_episodes, deterministic, max_steps=None, record=0) -> None:
        """Nothing: the evaluation steps Gymnasium's envs on the host with a small jitted ``act``."""

    def evaluate(
        self, runners: HostRunner, n_episodes: int, deterministic: bool, max_steps: int | None = None, record: int = 0
    ):
        """``n_episodes`` per seed on fresh env instances (``rollout.host_episodes``): episode ``i`` reset with
        seed ``EVAL_SEED_OFFSET + i`` for every training seed. Episodes still running after ``max_steps``
        (default: the env's time limit, else ``DEFAULT_EVAL_MAX_STEPS``) count with the return and length they
        had reached. Also returns the first ``record`` episodes (see ``JaxBackend.evaluate``)."""
        from advantage.envs.gymnasium import GymnasiumVecEnv

        act = jax.jit(
            lambda agent, obs, key: self.algo.act(self.config, self.action_space, agent, obs, key, deterministic)[0]
        )
        agents = [jax.tree.map(lambda x: x[s], runners.agent) for s in range(self.n_seeds)]
        return rollout.host_episodes(
            lambda n: GymnasiumVecEnv(self.env_spec, n, env_kwargs=self.env_kwargs, validate=False),
            act,
            agents,
            n_episodes,
            max_steps,
            record,
        )

    def close(self):
        self.compiled.close()
        self.vec.close()
