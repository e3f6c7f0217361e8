"""MountainCarContinuous-v0 in JAX, step-for-step equal to Gymnasium's ``Continuous_MountainCarEnv``.

The action is a float32 array of shape ``(1,)``: the force, clipped to
``[min_action, max_action] = [-1, 1]`` for the dynamics. As in Gymnasium, the
action penalty ``0.1 * action**2`` uses the action *before* clipping.
Gymnasium stores the state in float32 but computes the update in float64;
this version computes in the dtype of the state:
float32 as returned by ``reset`` (JAX's default), or float64 for a float64 state
under ``jax.enable_x64(True)`` (which the tests use to check the logic to ~1e-12).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from advantage.envs.api import Environment
from advantage.envs.classic.mountain_car import render_mountain_car
from advantage.envs.spaces import Box


@struct.dataclass
class MountainCarContinuousParams:
    min_action: float = -1.0
    max_action: float = 1.0
    min_position: float = -1.2
    max_position: float = 0.6
    max_speed: float = 0.07
    goal_position: float = 0.45  # 0.5 in MountainCar-v0
    goal_velocity: float = 0.0
    power: float = 0.0015
    gravity: float = 0.0025  # hard-coded in Gymnasium's step
    reset_low: float = -0.6
    reset_high: float = -0.4


@struct.dataclass
class MountainCarContinuousState:
    position: jax.Array
    velocity: jax.Array


class MountainCarContinuous(Environment):
    """Drive an under-powered car up the right hill with a continuous force in ``[-1, 1]``."""

    name = "MountainCarContinuous-v0"

    def default_params(self) -> MountainCarContinuousParams:
        return MountainCarContinuousParams()

    # ------------------------------------------------------------------ API
    def reset(self, key, params):
        position = jax.random.uniform(key, (), jnp.float32, params.reset_low, params.reset_high)
        state = MountainCarContinuousState(position, jnp.zeros((), jnp.float32))
        return self.obs_from_state(state, params), state

    def step(self, key, state, action, params):
        del key  # deterministic
        position, velocity = state.position, state.velocity
        dtype = jnp.result_type(position)
        a = jnp.asarray(action, dtype).reshape(-1)[0]
        force = jnp.minimum(jnp.maximum(a, params.min_action), params.max_action)
        velocity = velocity + (force * params.power - params.gravity * jnp.cos(3 * position))
        velocity = jnp.clip(velocity, -params.max_speed, params.max_speed)
        position = position + velocity
        position = jnp.clip(position, params.min_position, params.max_position)
        velocity = jnp.where((position == jnp.asarray(params.min_position, dtype)) & (velocity < 0), 0.0, velocity)
        new_state = MountainCarContinuousState(position.astype(dtype), velocity.astype(dtype))
        terminated = self.is_terminal(new_state, params)
        reward = (jnp.where(terminated, 100.0, 0.0) - a**2 * 0.1).astype(dtype)
        truncated = jnp.zeros((), jnp.bool_)
        return self.obs_from_state(new_state, params), new_state, reward, terminated, truncated, {}

    def is_terminal(self, state, params):
        return (state.position >= params.goal_position) & (state.velocity >= params.goal_velocity)

    def obs_from_state(self, state, params):
        return jnp.stack([state.position, state.velocity])

    def observation_space(self, params):
        low = np.array([params.min_position, -params.max_speed], dtype=np.float32)
        high = np.array([params.max_position, params.max_speed], dtype=np.float32)
        return Box(low, high, (2,), np.float32)

    def action_space(self, params):
        return Box(params.min_action, params.max_action, (1,), np.float32)

    # ------------------------------------------------------- Gymnasium glue
    @staticmethod
    def state_from_gymnasium(gym_env, dtype=np.float32) -> MountainCarContinuousState:
        position, velocity = np.asarray(gym_env.unwrapped.state, dtype=dtype)
        return MountainCarContinuousState(jnp.asarray(position), jnp.asarray(velocity))

    @staticmethod
    def state_to_gymnasium(state: MountainCarContinuousState, gym_env) -> None:
        # Gymnasium keeps this env's state in float32 (after the first step).
        gym_env.unwrapped.state = np.array([state.position, state.velocity], dtype=np.float32)

    # ------------------------------------------------------------ rendering
    def render(self, state, params, width: int = 600, height: int = 400):
        return render_mountain_car(state.position, params, width, height)
