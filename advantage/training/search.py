"""The driver path of gradient-free policy search (CEM, hill climbing, CMA-ES, GA, Nelder–Mead).

A search algorithm scores whole episodes per candidate, which does not fit the on-policy
driver's fixed ``[n_steps, n_envs]`` rollouts. This path runs *generations* instead:

    candidates, state = algo.ask(config, state, key)          # [N, ...] policies or parameter vectors
    returns, lengths, trajectories = population roll-out      # every candidate plays whole episodes
    state, metrics = algo.tell(config, action_space, state, candidates, returns, trajectories, key)

and reuses everything else of the generic driver (through ``common.py`` and ``loading.py``): the
run folder and ``config.json``, the back end's ``init`` (agent per seed, stacked over seeds), its
evaluation routine (``algo.act(..., deterministic=True)`` on evaluation seeds disjoint from
training), checkpoints, CSV/TensorBoard metrics, ``summary.json``, the learning-curve plot and the video.

Roll-outs:

* JAX-native envs: one compiled program per generation; an episode is a ``lax.while_loop``
  capped at ``max_steps`` (``config.max_episode_steps``, else the env's time limit, else 1000),
  ``vmap``-ed over the ``N * episodes_per_candidate`` episodes and batched over seeds like the
  on-policy path (``vmap`` or ``lax.map``).
* Gymnasium envs: one host vector env of ``n_seeds * N * episodes_per_candidate`` sub-envs,
  every sub-env reset at the start of a generation from a seed derived from
  ``(training seed, sub-env index, env steps so far)``; steps after an episode's end are ignored.

Budget: the env steps actually taken, counted up to the end of every episode (or the cap).
Each seed runs generations until its own count reaches ``total_steps``; its last generation
may overshoot by less than one generation, and the exact per-seed counts are reported
(``env_steps_per_seed`` in ``summary.json``).
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np

from advantage.training import checkpoint
from advantage.training.run_config import RunConfig
from advantage.training.seeding import env_seed
from advantage.training.stepper import Advance, seed_env_steps

#: Roll-out step cap when neither the config nor the env gives one.
DEFAULT_MAX_STEPS = 1000


def max_rollout_steps(config, env_limit) -> int:
    return int(getattr(config, "max_episode_steps", None) or env_limit or DEFAULT_MAX_STEPS)


def population_metrics(returns, episode_returns, lengths) -> dict:
    """Per-generation statistics: ``returns [N]`` per candidate, ``episode_returns, lengths`` per episode."""
    return {
        "train/episode_return": jnp.mean(episode_returns),
        "train/episode_length": jnp.mean(lengths.astype(jnp.float32)),
        "train/episodes": jnp.asarray(episode_returns.size, jnp.float32),
        "search/best_return": jnp.max(returns),
        "search/return_std": jnp.std(returns),
        "search/generation_steps": jnp.sum(lengths).astype(jnp.float32),
    }


def _keep_if(active, new, old):
    return jax.tree.map(lambda a, b: jnp.where(active, a, b), new, old)


# ----------------------------------------------------------------------------- JAX-native roll-outs


class JaxPopulation:
    """Generations on a JAX-native env: ask, vmapped episode roll-outs, tell -- one compiled call."""

    def __init__(self, backend, algo, config, total_steps: int):
        self.backend, self.algo, self.config, self.total = backend, algo, config, int(total_steps)
        self.env, self.env_params = backend.base_env, backend.env_params
        self.max_steps = max_rollout_steps(config, getattr(backend.base_env, "max_episode_steps", None))
        self.record = bool(algo.needs_trajectories(config))

    def episode(self, candidate, key):
        """One episode of ``candidate``: ``(return, length, trajectory)``; the trajectory (if recorded)
        holds ``obs [T, ...]``, ``actions [T, ...]`` and ``mask [T]`` (1 inside the episode)."""
        algo, cfg, space, env, params = self.algo, self.config, self.backend.action_space, self.env, self.env_params
        k_reset, key = jax.random.split(key)
        obs, state = env.reset(k_reset, params)
        T = self.max_steps
        a_shape = jax.eval_shape(lambda: algo.candidate_act(cfg, space, candidate, obs, key))
        traj = (
            {
                "obs": jnp.zeros((T,) + obs.shape, obs.dtype),
                "actions": jnp.zeros((T,) + a_shape.shape, a_shape.dtype),
                "mask": jnp.zeros((T,), jnp.float32),
            }
            if self.record
            else {}
        )

        def cond(c):
            return (~c[4]) & (c[5] < T)

        def body(c):
            obs, state, key, ret, _, t, traj = c
            key, k_act, k_env = jax.random.split(key, 3)
            action = algo.candidate_act(cfg, space, candidate, obs, k_act)
            next_obs, state, reward, term, trunc, _ = env.step(k_env, state, self.backend._to_env(action), params)
            if self.record:
                traj = {
                    "obs": traj["obs"].at[t].set(obs),
                    "actions": traj["actions"].at[t].set(action),
                    "mask": traj["mask"].at[t].set(1.0),
                }
            return next_obs, state, key, ret + reward, term | trunc, t + 1, traj

        init = (obs, state, key, jnp.zeros((), jnp.float32), jnp.asarray(False), jnp.zeros((), jnp.int32), traj)
        _, _, _, ret, _, length, traj = jax.lax.while_loop(cond, body, init)
        return ret, length, traj

    def score(self, candidates, key):
        """``(returns [N], episode_returns [N*e], lengths [N*e], trajectories)``: every candidate plays
        ``e = episodes_per_candidate`` episodes (each from its own reset) and its return is their mean,
        so one lucky episode does not decide a selection."""
        n, e = self.config.population_size, getattr(self.config, "episodes_per_candidate", 1)
        episodes = jax.tree.map(lambda x: jnp.repeat(x, e, axis=0), candidates) if e > 1 else candidates
        ep_ret, ep_len, traj = jax.vmap(self.episode)(episodes, jax.random.split(key, n * e))
        return ep_ret.reshape(n, e).mean(axis=1), ep_ret, ep_len, traj

    def generation_one(self, runner):
        """One generation of one seed (a no-op, with NaN metrics, once its budget is spent)."""
        algo, cfg = self.algo, self.config
        key, k_ask, k_roll, k_tell = jax.random.split(runner.key, 4)
        candidates, asked = algo.ask(cfg, runner.agent, k_ask)
        returns, ep_ret, ep_len, traj = self.score(candidates, k_roll)
        agent, metrics = algo.tell(
            cfg, self.backend.action_space, asked, candidates, returns, traj if self.record else None, k_tell
        )
        metrics.update(population_metrics(returns, ep_ret, ep_len))
        active = runner.env_steps < self.total
        metrics = jax.tree.map(lambda m: jnp.where(active, m.astype(jnp.float32), jnp.nan), metrics)
        steps = jnp.where(active, jnp.sum(ep_len), 0)
        return runner.replace(
            agent=_keep_if(active, agent, runner.agent), key=key, env_steps=runner.env_steps + steps
        ), metrics

    def generation(self, runners):
        fn = self.backend.compiled.get("generation", self.backend.over_seeds(self.generation_one), runners)
        runners, metrics = fn(runners)
        return runners, {k: np.asarray(v) for k, v in jax.device_get(metrics).items()}

    def close(self):
        pass


# ----------------------------------------------------------------------------- Gymnasium roll-outs


class HostPopulation:
    """Generations on a Gymnasium env: ask and tell are compiled (batched over seeds); the
    population's episodes run in one host vector env of ``n_seeds * N * episodes_per_candidate``."""

    def __init__(self, backend, algo, config, total_steps: int, env, env_kwargs, seeds):
        from advantage.envs.gymnasium import GymnasiumVecEnv

        self.backend, self.algo, self.config, self.total = backend, algo, config, int(total_steps)
        self.seeds = list(seeds)
        self.n, self.e = config.population_size, getattr(config, "episodes_per_candidate", 1)
        self.vec = GymnasiumVecEnv(env, len(self.seeds) * self.n * self.e, env_kwargs=env_kwargs, validate=False)
        self.max_steps = max_rollout_steps(config, self.vec.max_episode_steps)
        self.record = bool(algo.needs_trajectories(config))
        self.discrete_obs = self.vec._discrete_obs  # one-hot from the bridge: acted on and stored as the index
        space = backend.action_space
        over = backend.over_seeds

        def ask_one(agent, key):
            key, k_ask, k_roll, k_tell = jax.random.split(key, 4)
            candidates, asked = algo.ask(config, agent, k_ask)
            episodes = jax.tree.map(lambda x: jnp.repeat(x, self.e, axis=0), candidates) if self.e > 1 else candidates
            return key, k_roll, k_tell, candidates, episodes, asked

        def act_one(episodes, obs, k_roll, t):
            keys = jax.random.split(jax.random.fold_in(k_roll, t), self.n * self.e)
            return jax.vmap(lambda c, o, k: algo.candidate_act(config, space, c, o, k))(episodes, obs, keys)

        def tell_one(agent, asked, candidates, ep_ret, ep_len, traj, k_tell, env_steps):
            returns = ep_ret.reshape(self.n, self.e).mean(axis=1)
            new_agent, metrics = algo.tell(config, space, asked, candidates, returns, traj, k_tell)
            metrics.update(population_metrics(returns, ep_ret, ep_len))
            active = env_steps < self.total
            metrics = jax.tree.map(lambda m: jnp.where(active, m.astype(jnp.float32), jnp.nan), metrics)
            return _keep_if(active, new_agent, agent), metrics

        self._ask = lambda agent, key: over(lambda a: ask_one(*a))((agent, key))
        self._act = lambda ep, obs, k, t: over(lambda a: act_one(a[0], a[1], a[2], t))((ep, obs, k))
        self._tell = lambda *args: over(lambda a: tell_one(*a))(args)

    def _obs(self, obs):
        obs = np.argmax(obs, axis=-1).astype(np.int32) if self.discrete_obs else obs
        return obs.reshape((len(self.seeds), self.n * self.e) + obs.shape[1:])

    def generation(self, runners):
        from advantage.training.gym_backend import HostRunner

        c = self.backend.compiled
        S, NE, T = len(self.seeds), self.n * self.e, self.max_steps
        key, k_roll, k_tell, candidates, episodes, asked = c.get("ask", self._ask, runners.agent, runners.key)(
            runners.agent, runners.key
        )
        steps_so_far = np.asarray(runners.env_steps)
        obs = self._obs(
            self.vec.reset([env_seed(s, j, int(steps_so_far[i])) for i, s in enumerate(self.seeds) for j in range(NE)])
        )
        ep_ret = np.zeros((S, NE), np.float32)
        ep_len = np.zeros((S, NE), np.int32)
        alive = np.ones((S, NE), bool)
        traj = None
        for t in range(T):
            if not alive.any():
                break
            args = (episodes, obs, k_roll, jnp.asarray(t, jnp.int32))
            action = np.asarray(c.get("act", self._act, *args)(*args))
            if self.record:
                if traj is None:
                    traj = {
                        "obs": np.zeros((S, NE, T) + obs.shape[2:], obs.dtype),
                        "actions": np.zeros((S, NE, T) + action.shape[2:], action.dtype),
                        "mask": np.zeros((S, NE, T), np.float32),
                    }
                traj["obs"][:, :, t], traj["actions"][:, :, t], traj["mask"][:, :, t] = obs, action, alive
            next_obs, reward, term, trunc, _ = self.vec.step(action.reshape((S * NE,) + action.shape[2:]))
            reward, done = reward.reshape(S, NE), (term | trunc).reshape(S, NE)
            ep_ret += np.where(alive, reward, 0.0).astype(np.float32)
            ep_len += alive
            alive &= ~done
            obs = self._obs(next_obs)
        traj_arg = jax.tree.map(jnp.asarray, traj) if self.record else None
        args = (
            runners.agent,
            asked,
            candidates,
            jnp.asarray(ep_ret),
            jnp.asarray(ep_len),
            traj_arg,
            k_tell,
            runners.env_steps,
        )
        agent, metrics = c.get("tell", self._tell, *args)(*args)
        active = steps_so_far < self.total
        env_steps = runners.env_steps + jnp.asarray(np.where(active, ep_len.sum(axis=1), 0), runners.env_steps.dtype)
        return HostRunner(agent, key, env_steps), {k: np.asarray(v) for k, v in jax.device_get(metrics).items()}

    def close(self):
        self.vec.close()


# ----------------------------------------------------------------------------- the stepper


class SearchStepper:
    """Population search as a :class:`advantage.training.stepper.Stepper`: one generation per ``advance``;
    each seed counts the env steps its episodes took, so seeds reach their budget at different times."""

    health_checks = False  # generations have no losses or gradients to watch
    update_size = 1  # a generation's env steps vary with its episodes' lengths
    nan_metrics: tuple[str, ...] = ()

    def __init__(self, algo, algo_cfg, run: RunConfig, backend):
        assert run.total_steps is not None  # resolved by the session
        self.algo, self.config, self.backend = algo, algo_cfg, backend
        self.name, self.action_space, self.total_steps = backend.name, backend.action_space, run.total_steps
        self.timers: dict[str, float] = {}
        self.generations = 0
        self.population: JaxPopulation | HostPopulation
        if backend.name == "jax":
            self.population = JaxPopulation(backend, algo, algo_cfg, run.total_steps)
        else:
            env_kwargs = json.loads(run.env_kwargs) if run.env_kwargs else {}
            self.population = HostPopulation(backend, algo, algo_cfg, run.total_steps, run.env, env_kwargs, run.seeds)

    @property
    def compile_time_s(self) -> float:
        return self.backend.compile_time_s

    def describe(self) -> str:
        cfg = self.config
        return (
            f"generations of {cfg.population_size} candidates x {getattr(cfg, 'episodes_per_candidate', 1)} "
            f"episodes (at most {self.population.max_steps} steps each) until {self.total_steps} env steps "
            "per seed"
        )

    def log_interval(self, log_every: int | None) -> int:
        return 1  # a row per generation

    def start(self, seeds):
        return self.backend.init(seeds)

    def restore(self, template, raw, path, meta):
        self.generations = meta["generations"]
        return checkpoint.restore(template, raw, path)

    def env_steps(self, state) -> np.ndarray:
        return seed_env_steps(state)

    def finished(self, state) -> bool:
        return bool((self.env_steps(state) >= self.total_steps).all())

    def advance(self, state, budget: int) -> Advance:
        state, metrics = self.population.generation(state)
        self.generations += 1
        metrics["search/generation"] = np.full(len(self.env_steps(state)), float(self.generations), np.float32)
        return Advance(state, {k: v[:, None] for k, v in metrics.items()}, self.env_steps(state)[:, None])

    def nonfinite_batch(self, state, adv: Advance):
        return None

    def evaluate(self, state, n_episodes, deterministic, max_steps=None, record=0):
        return self.backend.evaluate(state, n_episodes, deterministic, max_steps, record)

    def prefetch_evaluation(self, state, n_episodes, deterministic, max_steps=None, record=0):
        self.backend.prefetch_evaluation(state, n_episodes, deterministic, max_steps, record)

    def agents(self, state):
        return state.agent

    def checkpoint_meta(self, state) -> dict:
        return {"generations": self.generations, "iters_done": self.generations, "partial_done": False}

    def summary(self, state) -> dict:
        return {"env_steps_per_seed": self.env_steps(state).tolist(), "generations": self.generations}

    def close(self) -> None:
        self.population.close()
        self.backend.close()
