"""JAX-native back end: env step, rollout and update in one compiled ``lax.scan``,
batched over seeds (``vmap``, or ``lax.map`` for bit-exact single-seed equality).

A *chunk* is ``chunk_iters`` training iterations (rollout + update) compiled once;
the host loop in ``driver.py`` logs, checkpoints and draws progress between chunks.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from advantage.envs.spaces import is_discrete, scale_action
from advantage.envs.wrappers import AutoReset, EpisodeStats
from advantage.training import rollout
from advantage.training.rollout import DEFAULT_EVAL_MAX_STEPS
from advantage.training.seeding import EVAL_SEED_OFFSET, train_key  # noqa: F401 - importable here
from advantage.types import Transition


class Runner(struct.PyTreeNode):
    """The complete state of one seed's training run (everything a checkpoint needs)."""

    agent: Any
    env_state: Any
    obs: jax.Array
    key: jax.Array
    env_steps: jax.Array


def episode_metrics(reward, done, ep_return, ep_length, terminated) -> dict:
    """Mean return/length of the episodes that ended during a rollout (NaN if none did)."""
    n = jnp.sum(done)
    safe = jnp.maximum(n, 1)
    nan = jnp.float32(jnp.nan)
    return {
        "train/episode_return": jnp.where(n > 0, jnp.sum(ep_return * done) / safe, nan),
        "train/episode_length": jnp.where(n > 0, jnp.sum(ep_length * done) / safe, nan),
        "train/episodes": n.astype(jnp.float32),
        "train/reward_per_step": jnp.mean(reward),
        "train/reward_std": jnp.std(reward),
        "train/terminations": jnp.sum(terminated).astype(jnp.float32),
    }


def count_nonfinite(tree) -> jax.Array:
    # sum() starts from the int 0; every tree counted here holds float arrays, so the result is an array
    return sum(  # type: ignore[return-value]
        jnp.sum(~jnp.isfinite(x)) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)
    )


def health_metrics(batch: Transition, policy_params) -> dict:
    """Counts of non-finite values where they can enter: env observations, rewards, parameters."""
    return {
        "health/nonfinite_obs": count_nonfinite((batch.obs, batch.next_obs)).astype(jnp.float32),
        "health/nonfinite_reward": count_nonfinite(batch.reward).astype(jnp.float32),
        "health/nonfinite_params": count_nonfinite(policy_params).astype(jnp.float32),
    }


def batch_over_seeds(mode: str):
    """``fn(x) -> y`` for one seed  ->  the same over a leading seed axis of ``x``.

    ``vmap`` batches the seeds into one program (fast on accelerators); ``map`` loops over
    them inside the program, so each seed runs exactly the single-seed code: XLA's batched
    kernels may round differently (by about one ulp per update) from unbatched ones.
    """
    if mode == "vmap":
        return jax.vmap
    if mode == "map":
        return lambda fn: lambda x: jax.lax.map(fn, x)
    raise ValueError(f"seed batching must be 'vmap' or 'map', got {mode!r}")


class CompileCache:
    """Ahead-of-time compiled functions by name, and the seconds spent compiling them (reported apart from run
    time).

    :meth:`prefetch` compiles a program the run will need later in a background thread, from the shapes of its
    arguments, while the run goes on (XLA compiles without holding Python's lock, so on a CPU with more than
    one core the compilation overlaps the training): the final shorter rollout's program and the final
    evaluation's are ready when they are reached. :meth:`get` waits for a prefetched program if it is not done.
    The programs are the same either way; ``seconds`` counts only the time the run waited for a compilation,
    ``background_seconds`` the compilations done ahead."""

    def __init__(self):
        self.functions: dict[str, Any] = {}
        self.pending: dict[str, tuple[Any, Future]] = {}
        self.seconds = 0.0
        self.background_seconds = 0.0
        self._pool: ThreadPoolExecutor | None = None

    @staticmethod
    def _compile(fn, args, donate_argnums):
        return jax.jit(fn, donate_argnums=donate_argnums).lower(*args).compile()

    def prefetch(self, name: str, fn, *args, donate_argnums=()) -> None:
        """Start compiling ``fn`` for ``args`` (arrays or ``jax.ShapeDtypeStruct``) in the background, unless
        ``name`` is compiled or on its way."""
        if name in self.functions or name in self.pending:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="advantage-compile")

        def job():
            t0 = time.perf_counter()
            return self._compile(fn, args, donate_argnums), time.perf_counter() - t0

        self.pending[name] = (_signature(args), self._pool.submit(job))

    def get(self, name: str, fn, *args, donate_argnums=()):
        if name not in self.functions:
            t0 = time.perf_counter()
            signature, future = self.pending.pop(name, (None, None))
            if future is not None:
                compiled, took = future.result()
                self.background_seconds += took
                if signature != _signature(args):  # prefetched for other shapes: compile for these
                    compiled = None
            if future is None or compiled is None:
                compiled = self._compile(fn, args, donate_argnums)
            self.functions[name] = compiled
            self.seconds += time.perf_counter() - t0
        return self.functions[name]

    def close(self) -> None:
        """Drop compilations not yet started (a run that stops early does not wait for them)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
            self.pending.clear()


def _signature(args) -> tuple:
    """What a compiled program is specific to: the tree structure, shapes, dtypes and weak types of ``args``."""
    leaves, tree = jax.tree.flatten(shapes_of(args))
    return tree, tuple((x.shape, x.dtype, x.weak_type) for x in leaves)


def shapes_of(tree):
    """``jax.ShapeDtypeStruct`` leaves for the arrays of ``tree`` (what :meth:`CompileCache.prefetch` takes)."""
    return jax.eval_shape(lambda t: t, tree)


class JaxBackend:
    name = "jax"

    def __init__(self, algo, config, env, env_params, schedule, chunk_iters: int, seed_batching: str = "vmap"):
        self.algo, self.config, self.schedule = algo, config, schedule
        self.env_params = env_params
        self.base_env = env
        self.env = AutoReset(EpisodeStats(env))
        self.obs_space = env.observation_space(env_params)
        self.action_space = env.action_space(env_params)
        self.chunk_iters = chunk_iters
        self.over_seeds = batch_over_seeds(seed_batching)
        self.compiled = CompileCache()

    @property
    def timers(self) -> dict[str, float]:
        """One compiled program, so no host-side activities to time; ``compile_ahead``: the seconds of
        compilation done in the background (:meth:`CompileCache.prefetch`)."""
        return {"compile_ahead": self.compiled.background_seconds}

    @property
    def compile_time_s(self) -> float:
        return self.compiled.seconds

    def restart_envs(self, runners: Runner) -> None:
        """Nothing to do: the environments' state is part of the runners (a checkpoint holds it)."""

    def close(self) -> None:
        """Drop compilations not yet started."""
        self.compiled.close()

    # ------------------------------------------------------------------ one seed
    def init_one(self, seed) -> Runner:
        key = train_key(seed)
        key, k_init, k_reset = jax.random.split(key, 3)
        agent = self.algo.init(k_init, self.obs_space, self.action_space, self.config, self.schedule.total_steps)
        obs, env_state = jax.vmap(self.env.reset, in_axes=(0, None))(
            jax.random.split(k_reset, self.config.n_envs), self.env_params
        )
        return Runner(agent, env_state, obs, key, jnp.zeros((), jnp.int32))

    def _to_env(self, action):
        if is_discrete(self.action_space):
            return action
        return scale_action(action, jnp.asarray(self.action_space.low), jnp.asarray(self.action_space.high))

    def collect(self, runner: Runner, n_steps: int, config=None):
        """``n_steps`` from every env with the runner's agent, no update: ``(runner, batch [T, n_envs], episodes)``
        with ``episodes = (done, return, length)`` of the steps ``[T, n_envs]`` (an actor of a worker pool
        runs only this)."""
        cfg, algo, env = self.config if config is None else config, self.algo, self.env

        def env_step(carry, _):
            agent, env_state, obs, key = carry
            key, k_act, k_env = jax.random.split(key, 3)
            action, log_prob, value = algo.act(cfg, self.action_space, agent, obs, k_act)
            next_obs, env_state, reward, terminated, truncated, info = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                jax.random.split(k_env, cfg.n_envs), env_state, self._to_env(action), self.env_params
            )
            tr = Transition(obs, action, reward, terminated, truncated, info["final_obs"], log_prob, value)
            ep = (info["episode_done"], info["episode_return"], info["episode_length"])
            return (agent, env_state, next_obs, key), (tr, ep)

        carry = (runner.agent, runner.env_state, runner.obs, runner.key)
        (agent, env_state, obs, key), (batch, episodes) = jax.lax.scan(env_step, carry, None, length=n_steps)
        env_steps = runner.env_steps + n_steps * cfg.n_envs
        return Runner(agent, env_state, obs, key, env_steps), batch, episodes

    def iteration(self, runner: Runner, n_steps: int, return_batch: bool = False, config=None):
        """Collect ``n_steps`` from every env, then one ``algo.update``
        (``return_batch``: also return the rollout, to save it when debugging). ``config``: the algorithm
        config to use, default the back end's; passed as an argument of a compiled function, its numeric
        fields are traced values, so one program serves (and ``vmap`` batches) several of them."""
        cfg, algo = self.config if config is None else config, self.algo
        runner, batch, (done, ep_ret, ep_len) = self.collect(runner, n_steps, config)
        key, k_update = jax.random.split(runner.key)
        agent, metrics = algo.update(cfg, self.action_space, runner.agent, batch, k_update)
        metrics.update(episode_metrics(batch.reward, done, ep_ret, ep_len, batch.terminated))
        metrics.update(health_metrics(batch, algo.policy_params(agent)))
        out = runner.replace(agent=agent, key=key), metrics
        return out + (batch,) if return_batch else out

    def chunk_one(self, runner: Runner, n_iters, config=None):
        """``chunk_iters`` iterations, of which the first ``n_iters`` run (a shorter last chunk
        reuses the same compiled function); metrics of skipped iterations are NaN."""
        n_steps = self.config.n_steps
        out_shape = jax.eval_shape(lambda r: self.iteration(r, n_steps, config=config)[1], runner)
        skipped = jax.tree.map(lambda s: jnp.full(s.shape, jnp.nan, s.dtype), out_shape)

        def body(r, i):
            return jax.lax.cond(
                i < n_iters, lambda r: self.iteration(r, n_steps, config=config), lambda r: (r, skipped), r
            )

        return jax.lax.scan(body, runner, jnp.arange(self.chunk_iters))

    # ------------------------------------------------------------------ all seeds
    def init(self, seeds, prefetch: bool = False) -> Runner:
        """New runners; with ``prefetch``, the chunk's and the final shorter rollout's programs start compiling
        in the background meanwhile (from the runners' shapes)."""
        seeds = jnp.asarray(seeds, jnp.uint32)
        init = self.over_seeds(self.init_one)
        if prefetch:
            shapes = jax.eval_shape(init, seeds)
            self.compiled.prefetch("chunk", self._chunk_all, shapes, jax.ShapeDtypeStruct((), jnp.int32))
            if self.schedule.partial_steps:
                self.compiled.prefetch("partial", self._partial_all, shapes)
        return self.compiled.get("init", init, seeds)(seeds)

    def _chunk_all(self, runners: Runner, n):
        return self.over_seeds(lambda r: self.chunk_one(r, n))(runners)

    def _partial_all(self, runners: Runner):
        return self.over_seeds(lambda r: self.iteration(r, self.schedule.partial_steps))(runners)

    def run_chunk(self, runners: Runner, n_iters: int):
        """Returns ``(runners, metrics)`` with metrics as numpy ``[n_seeds, n_iters]``."""
        n = jnp.asarray(n_iters, jnp.int32)
        runners, metrics = self.compiled.get("chunk", self._chunk_all, runners, n)(runners, n)
        metrics = jax.device_get(metrics)
        return runners, {k: np.asarray(v)[:, :n_iters] for k, v in metrics.items()}

    def run_chunk_over_configs(self, runners: Runner, n_iters: int, configs):
        """Like :meth:`run_chunk`, with the algorithm config as an argument of the compiled program instead of
        constants in it: ``configs`` is a config whose numeric fields carry the same leading axis as
        ``runners`` (e.g. ``Config(learning_rate=jnp.array([1e-3, 3e-4]))`` with two runners), and the runners
        are ``vmap``-ed together with them, so one program trains every setting of a sweep.

        The default :meth:`run_chunk` keeps the config's numbers as compile-time constants: tracing them lets
        XLA fold differently (a last-bit difference), and the recorded digests
        (``tests/fixtures/digests.json``) are those of the constant-folded program."""
        n = jnp.asarray(n_iters, jnp.int32)
        fn = self.compiled.get(
            "chunk-configs",
            jax.vmap(lambda r, c, n: self.chunk_one(r, n, c), in_axes=(0, 0, None)),
            runners,
            configs,
            n,
        )
        runners, metrics = fn(runners, configs, n)
        metrics = jax.device_get(metrics)
        return runners, {k: np.asarray(v)[:, :n_iters] for k, v in metrics.items()}

    def collect_rollout(self, runners: Runner, n_steps: int):
        """``n_steps`` from every env of every seed with the runners' agents, no update (compiled once per
        ``n_steps``): ``(runners, batch [S, T, n_envs], stats)`` with the rollout's ``train/`` metrics ``[S]``."""

        def one(r):
            r, batch, (done, ep_ret, ep_len) = self.collect(r, n_steps)
            return r, batch, episode_metrics(batch.reward, done, ep_ret, ep_len, batch.terminated)

        fn = self.compiled.get(f"collect{n_steps}", self.over_seeds(one), runners)
        runners, batch, stats = fn(runners)
        batch, stats = jax.device_get((batch, stats))
        return runners, batch, {k: np.asarray(v) for k, v in stats.items()}

    def run_partial(self, runners: Runner):
        """The final, shorter rollout that makes the budget exact."""
        runners, metrics = self.compiled.get("partial", self._partial_all, runners)(runners)
        return runners, {k: np.asarray(v)[:, None] for k, v in jax.device_get(metrics).items()}

    def nonfinite_batch(self, runners: Runner, n_iters: int):
        """The rollout batch of the first non-finite iteration of a chunk started from ``runners``, or None."""
        found = self.first_nonfinite_batch(runners, n_iters)
        return None if found is None else found[1]

    def first_nonfinite_batch(self, runners: Runner, n_iters: int):
        """Re-run the iterations of a chunk one at a time from its (finite) start state and
        return ``(index, batch, metrics)`` of the first whose metrics hold a non-finite value."""
        steps = self.config.n_steps
        fn = self.compiled.get("debug", self.over_seeds(lambda r: self.iteration(r, steps, return_batch=True)), runners)
        for i in range(n_iters):
            runners, metrics, batch = fn(runners)
            metrics = jax.device_get(metrics)
            if any(
                not np.all(np.isfinite(v)) or (k.startswith("health/") and np.any(v > 0))
                for k, v in metrics.items()
                if k.startswith(("loss/", "grad/", "health/"))
            ):
                return i, jax.device_get(batch), metrics
        return None

    # ------------------------------------------------------------------ evaluation
    def evaluate_one(self, agent, n_episodes: int, deterministic: bool, max_steps: int, record: int = 0):
        """One seed's evaluation episodes (``rollout.jax_episodes``) with frozen agent statistics: raw
        (undiscounted, unnormalised) returns and lengths, and the observations, actions and rewards of the
        first ``record`` episodes ``[record, max_steps, ...]``."""

        def act(obs, key):
            return self.algo.act(self.config, self.action_space, agent, obs[None], key, deterministic)[0][0]

        r = rollout.jax_episodes(
            EpisodeStats(self.base_env), self.env_params, act, self._to_env, n_episodes, max_steps, record
        )
        empty = jnp.zeros((0,))
        return r["returns"], r["lengths"], (r.get("obs", empty), r.get("actions", empty), r.get("rewards", empty))

    def _evaluation(self, n_episodes: int, deterministic: bool, max_steps: int | None, record: int):
        """``(name, fn)`` of the evaluation program over the agents of every seed."""
        max_steps = max_steps or getattr(self.base_env, "max_episode_steps", None) or DEFAULT_EVAL_MAX_STEPS
        record = min(record, n_episodes)
        fn = self.over_seeds(lambda a: self.evaluate_one(a, n_episodes, deterministic, max_steps, record))
        return f"eval{n_episodes}{deterministic}{max_steps}{record}", fn

    def prefetch_evaluation(
        self, runners: Runner, n_episodes: int, deterministic: bool, max_steps: int | None = None, record: int = 0
    ) -> None:
        """Start compiling the evaluation program in the background (it runs first at the end of training)."""
        name, fn = self._evaluation(n_episodes, deterministic, max_steps, record)
        self.compiled.prefetch(name, fn, shapes_of(runners.agent))

    def evaluate(
        self, runners: Runner, n_episodes: int, deterministic: bool, max_steps: int | None = None, record: int = 0
    ):
        """Returns and lengths ``[n_seeds, n_episodes]``, and the trajectories ``{"obs", "actions",
        "rewards"}: [n_seeds, record, T, ...]`` of the first ``record`` episodes (``None`` if 0).
        Episodes still running after ``max_steps`` (default: the env's time limit, else
        ``DEFAULT_EVAL_MAX_STEPS``) count with the return and length they had reached."""
        fn = self.compiled.get(*self._evaluation(n_episodes, deterministic, max_steps, record), runners.agent)
        ret, length, (obs, actions, rewards) = jax.device_get(fn(runners.agent))
        trajectories = {"obs": obs, "actions": actions, "rewards": rewards} if min(record, n_episodes) else None
        return np.asarray(ret), np.asarray(length), trajectories
