"""Functional wrappers: time limit, episode statistics and auto-reset.

The driver stacks them as ``AutoReset(EpisodeStats(TimeLimit(env)))``:
``TimeLimit`` decides truncation, ``EpisodeStats`` sees the episode end before
``AutoReset`` starts the next one.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from advantage.envs.api import Environment


class Wrapper(Environment):
    """Delegates everything to ``self.env``; subclasses override what they change."""

    def __init__(self, env: Environment):
        self.env = env
        self.name = env.name

    def default_params(self):
        return self.env.default_params()

    def reset(self, key, params):
        return self.env.reset(key, params)

    def step(self, key, state, action, params):
        return self.env.step(key, state, action, params)

    def observation_space(self, params):
        return self.env.observation_space(params)

    def action_space(self, params):
        return self.env.action_space(params)

    def render(self, state, params):
        return self.env.render(self.inner_state(state), params)

    def inner_state(self, state):
        """The wrapped environment's state inside this wrapper's state."""
        return state

    @property
    def unwrapped(self):
        return self.env.unwrapped

    def __getattr__(self, name):  # e.g. max_episode_steps of the wrapped env
        if name == "env":
            raise AttributeError(name)
        return getattr(self.env, name)


@struct.dataclass
class TimeLimitState:
    env_state: object
    t: jax.Array


class TimeLimit(Wrapper):
    """Truncates the episode after ``max_episode_steps`` steps, as ``gymnasium.wrappers.TimeLimit``.

    ``truncated`` becomes true on exactly the ``max_episode_steps``-th step, even if the
    environment terminates on the same step (then ``terminated`` is also true and wins:
    no bootstrapping).
    """

    def __init__(self, env: Environment, max_episode_steps: int):
        super().__init__(env)
        if max_episode_steps <= 0:
            raise ValueError(f"TimeLimit: max_episode_steps must be positive, got {max_episode_steps}")
        self.max_episode_steps = int(max_episode_steps)

    def reset(self, key, params):
        obs, state = self.env.reset(key, params)
        return obs, TimeLimitState(state, jnp.zeros((), jnp.int32))

    def step(self, key, state, action, params):
        obs, env_state, reward, terminated, truncated, info = self.env.step(key, state.env_state, action, params)
        t = state.t + 1
        truncated = jnp.logical_or(truncated, t >= self.max_episode_steps)
        return obs, TimeLimitState(env_state, t), reward, terminated, truncated, info

    def inner_state(self, state):
        return state.env_state


@struct.dataclass
class EpisodeStatsState:
    env_state: object
    episode_return: jax.Array
    episode_length: jax.Array


class EpisodeStats(Wrapper):
    """Adds ``info["episode_return"]``, ``info["episode_length"]`` and ``info["episode_done"]``.

    The first two hold the undiscounted return and length of the episode that ended at
    this step, and are meaningful only where ``episode_done`` is true.
    """

    def reset(self, key, params):
        obs, state = self.env.reset(key, params)
        return obs, EpisodeStatsState(state, jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32))

    def step(self, key, state, action, params):
        obs, env_state, reward, terminated, truncated, info = self.env.step(key, state.env_state, action, params)
        ret = state.episode_return + reward
        length = state.episode_length + 1
        done = jnp.logical_or(terminated, truncated)
        info = dict(info, episode_return=ret, episode_length=length, episode_done=done)
        new_state = EpisodeStatsState(
            env_state, jnp.where(done, 0.0, ret).astype(jnp.float32), jnp.where(done, 0, length).astype(jnp.int32)
        )
        return obs, new_state, reward, terminated, truncated, info

    def inner_state(self, state):
        return state.env_state


class AutoReset(Wrapper):
    """Resets an episode that ended, with a fresh reset drawn from a new key.

    The returned observation is the first of the next episode; the pre-reset
    observation is kept in ``info["final_obs"]`` (equal to ``obs`` on steps that
    did not end an episode) so that a truncated episode can bootstrap from it.
    """

    def step(self, key, state, action, params):
        key_step, key_reset = jax.random.split(key)
        obs, state, reward, terminated, truncated, info = self.env.step(key_step, state, action, params)
        done = jnp.logical_or(terminated, truncated)
        reset_obs, reset_state = self.env.reset(key_reset, params)
        next_state = jax.tree.map(lambda r, s: jnp.where(done, r, s), reset_state, state)
        next_obs = jnp.where(done, reset_obs, obs)
        info = dict(info, final_obs=obs)
        return next_obs, next_state, reward, terminated, truncated, info
