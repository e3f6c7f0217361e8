"""MountainCar-v0 in JAX, step-for-step equal to ``gymnasium.envs.classic_control.MountainCarEnv``.

Gymnasium computes in float64; this version in the dtype of the state:
float32 as returned by ``reset`` (JAX's default), or float64 for a float64 state
under ``jax.enable_x64(True)`` (which the tests use to check the logic to ~1e-12).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from advantage.envs.api import Environment
from advantage.envs.spaces import Box, Discrete


@struct.dataclass
class MountainCarParams:
    min_position: float = -1.2
    max_position: float = 0.6
    max_speed: float = 0.07
    goal_position: float = 0.5
    goal_velocity: float = 0.0
    force: float = 0.001
    gravity: float = 0.0025
    reset_low: float = -0.6
    reset_high: float = -0.4


@struct.dataclass
class MountainCarState:
    position: jax.Array
    velocity: jax.Array


class MountainCar(Environment):
    """Drive an under-powered car up the right hill: actions 0 (left), 1 (no push), 2 (right)."""

    name = "MountainCar-v0"

    def default_params(self) -> MountainCarParams:
        return MountainCarParams()

    # ------------------------------------------------------------------ API
    def reset(self, key, params):
        position = jax.random.uniform(key, (), jnp.float32, params.reset_low, params.reset_high)
        state = MountainCarState(position, jnp.zeros((), jnp.float32))
        return self.obs_from_state(state, params), state

    def step(self, key, state, action, params):
        del key  # deterministic
        position, velocity = state.position, state.velocity
        dtype = jnp.result_type(position)
        action = jnp.asarray(action, jnp.int32)
        velocity = velocity + ((action - 1).astype(dtype) * params.force + jnp.cos(3 * position) * (-params.gravity))
        velocity = jnp.clip(velocity, -params.max_speed, params.max_speed)
        position = position + velocity
        position = jnp.clip(position, params.min_position, params.max_position)
        velocity = jnp.where((position == jnp.asarray(params.min_position, dtype)) & (velocity < 0), 0.0, velocity)
        new_state = MountainCarState(position.astype(dtype), velocity.astype(dtype))
        terminated = self.is_terminal(new_state, params)
        reward = jnp.full((), -1.0, dtype)
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
        return Discrete(3)

    # ------------------------------------------------------- Gymnasium glue
    @staticmethod
    def state_from_gymnasium(gym_env, dtype=np.float32) -> MountainCarState:
        position, velocity = np.asarray(gym_env.unwrapped.state, dtype=dtype)
        return MountainCarState(jnp.asarray(position), jnp.asarray(velocity))

    @staticmethod
    def state_to_gymnasium(state: MountainCarState, gym_env) -> None:
        gym_env.unwrapped.state = np.array([float(state.position), float(state.velocity)], dtype=np.float64)

    # ------------------------------------------------------------ rendering
    def render(self, state, params, width: int = 600, height: int = 400):
        return render_mountain_car(state.position, params, width, height)


def render_mountain_car(position, params, width: int = 600, height: int = 400):
    """The hill, the goal flag and the car as a ``[height, width, 3]`` uint8 image (jittable)."""
    world_width = params.max_position - params.min_position
    scale = width / world_width
    cols = jnp.arange(width, dtype=jnp.float32)[None, :] + 0.5
    rows = jnp.arange(height, dtype=jnp.float32)[:, None] + 0.5
    px = jnp.broadcast_to(cols, (height, width))
    py = jnp.broadcast_to(height - rows, (height, width))  # y up

    def height_at(xs):
        return jnp.sin(3 * xs) * 0.45 + 0.55

    img = jnp.full((height, width, 3), 255, jnp.uint8)

    def paint(img, mask, color):
        return jnp.where(mask[..., None], jnp.asarray(color, jnp.uint8), img)

    # hill: pixels within ~1 px of the curve
    wx = px / scale + params.min_position
    img = paint(img, jnp.abs(py - height_at(wx) * scale) <= 1.0, (0, 0, 0))
    # flag
    flagx = (params.goal_position - params.min_position) * scale
    flagy1 = height_at(params.goal_position) * scale
    img = paint(img, (jnp.abs(px - flagx) <= 0.5) & (py >= flagy1) & (py <= flagy1 + 50), (0, 0, 0))
    in_flag = (px >= flagx) & (px <= flagx + 25) & (jnp.abs(py - (flagy1 + 45)) <= 5 * (1 - (px - flagx) / 25))
    img = paint(img, in_flag, (204, 204, 0))
    # car: a 40x20 rectangle tilted by the slope angle, 10 px above the track
    ang = jnp.cos(3 * position)
    cx = (position - params.min_position) * scale
    cy = 10.0 + height_at(position) * scale
    dx, dy = px - cx, py - cy
    u = dx * jnp.cos(ang) + dy * jnp.sin(ang)
    v = -dx * jnp.sin(ang) + dy * jnp.cos(ang)
    img = paint(img, (jnp.abs(u) <= 20) & (v >= 0) & (v <= 20), (0, 0, 0))
    for wu in (10.0, -10.0):
        img = paint(img, (u - wu) ** 2 + v**2 <= 8.0**2, (128, 128, 128))
    return img
