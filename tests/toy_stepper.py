"""A toy stepper written only against ``advantage.training.stepper.Stepper`` (docs/how-to/add-a-back-end.md).

It trains any ``Algorithm`` on a two-armed bandit simulated with NumPy on the host (arm 1 pays 1, arm 0
pays 0; every episode is one step), and it advances its seeds **unevenly**, as an asynchronous worker pool
would: in each ``advance``, seed number ``i`` does ``i + 1`` updates.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from advantage.envs.spaces import Box, Discrete
from advantage.training import checkpoint
from advantage.training.seeding import train_key
from advantage.training.stepper import Advance
from advantage.types import Transition


class ToyState(struct.PyTreeNode):
    agent: object  # the agents, leading seed axis
    key: jax.Array  # [n_seeds, 2]
    env_steps: jax.Array  # [n_seeds]


class BanditStepper:
    name = "toy-bandit"
    health_checks = True
    timers: dict[str, float] = {}

    def __init__(self, algo, config, total_steps: int):
        self.algo, self.config, self.total_steps = algo, config, total_steps
        self.obs_space, self.action_space = Box(-1.0, 1.0, (1,)), Discrete(2)
        self.update_size = config.n_envs * config.n_steps
        self.nan_metrics = tuple(algo.NAN_METRICS)
        self._act = jax.jit(jax.vmap(lambda agent, obs, key: algo.act(config, self.action_space, agent, obs, key)))
        self._update = jax.jit(jax.vmap(lambda agent, batch, key: algo.update(config, self.action_space, agent,
                                                                             batch, key)))

    @property
    def compile_time_s(self) -> float:
        return 0.0

    def describe(self) -> str:
        return f"a NumPy two-armed bandit, {self.update_size} steps per update, seeds advancing unevenly"

    def log_interval(self, log_every):
        return log_every or 1

    def start(self, seeds):
        keys = jnp.stack([train_key(s) for s in seeds])
        agents = jax.vmap(lambda k: self.algo.init(k, self.obs_space, self.action_space, self.config,
                                                   self.total_steps))(keys)
        return ToyState(agents, keys, jnp.zeros(len(seeds), jnp.int32))

    def restore(self, template, raw, path, meta):
        return checkpoint.restore(template, raw, path)

    def env_steps(self, state):
        return np.asarray(state.env_steps).astype(np.int64)

    def finished(self, state):
        return bool((self.env_steps(state) >= self.total_steps).all())

    def advance(self, state, budget):
        n_seeds, cfg = len(self.env_steps(state)), self.config
        rounds = n_seeds  # seed i does i + 1 updates
        metrics: dict[str, np.ndarray] = {}
        steps = np.repeat(self.env_steps(state)[:, None], rounds, axis=1)
        agent, key, count = state.agent, state.key, self.env_steps(state).copy()
        for r in range(rounds):
            active = (np.arange(n_seeds) >= r) & (count < self.total_steps)  # seed i is busy for i + 1 rounds
            if not active.any():
                break
            obs = jnp.zeros((n_seeds, cfg.n_steps, cfg.n_envs, 1))
            split = jax.vmap(lambda k: jax.random.split(k, cfg.n_steps + 2))(key)
            actions = jax.vmap(jax.vmap(lambda a, o, k: self._act_one(a, o, k), in_axes=(None, 0, 0)))(
                agent, obs, split[:, 2:])
            reward = (np.asarray(actions) == 1).astype(np.float32)
            done = np.ones_like(reward, bool)
            batch = Transition(obs, actions, jnp.asarray(reward), jnp.asarray(done), jnp.asarray(~done), obs,
                               jnp.zeros_like(jnp.asarray(reward)), jnp.zeros_like(jnp.asarray(reward)))
            new_agent, m = self._update(agent, batch, split[:, 1])
            keep = jnp.asarray(active)
            agent = jax.tree.map(lambda a, b: jnp.where(keep.reshape((-1,) + (1,) * (a.ndim - 1)), a, b),
                                 new_agent, agent)
            key = jnp.where(keep[:, None], split[:, 0], key)
            count = count + active * self.update_size
            steps[:, r] = count
            m = {k: np.where(active, np.asarray(v), np.nan) for k, v in m.items()}
            m["train/episode_return"] = np.where(active, reward.mean(axis=(1, 2)), np.nan)
            m["train/episode_length"] = np.where(active, 1.0, np.nan)
            for k, v in m.items():
                metrics.setdefault(k, np.full((n_seeds, rounds), np.nan))[:, r] = v
        new = ToyState(agent, key, jnp.asarray(count, jnp.int32))
        return Advance(new, metrics, steps)

    def _act_one(self, agent, obs, key):
        return self.algo.act(self.config, self.action_space, agent, obs, key)[0]

    def nonfinite_batch(self, state, adv):
        return None

    def prefetch_evaluation(self, state, n_episodes, deterministic, max_steps=None, record=0):
        pass  # nothing to compile ahead

    def evaluate(self, state, n_episodes, deterministic, max_steps=None, record=0):
        obs = jnp.zeros((n_episodes, 1))
        actions = jax.vmap(lambda a: self.algo.act(self.config, self.action_space, a, obs, jax.random.PRNGKey(0),
                                                   deterministic)[0])(state.agent)
        returns = (np.asarray(actions) == 1).astype(np.float32)
        return returns, np.ones_like(returns, np.int32), None

    def agents(self, state):
        return state.agent

    def checkpoint_meta(self, state):
        return {}

    def summary(self, state):
        return {}

    def close(self):
        pass
