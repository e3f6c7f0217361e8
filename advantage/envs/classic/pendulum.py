"""Pendulum-v1 in JAX, step-for-step equal to ``gymnasium.envs.classic_control.PendulumEnv`` (g = 10).

The action is a float32 array of shape ``(1,)``: the torque, clipped to
``[-max_torque, max_torque] = [-2, 2]`` before it is used (also in the cost).
Gymnasium computes in float64; this version in the dtype of the state:
float32 as returned by ``reset`` (JAX's default), or float64 for a float64 state
under ``jax.enable_x64(True)`` (which the tests use to check the logic to ~1e-12). The pendulum never
terminates; ``TimeLimit`` truncates it after 200 steps.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from advantage.envs.api import Environment
from advantage.envs.spaces import Box


@struct.dataclass
class PendulumParams:
    max_speed: float = 8.0
    max_torque: float = 2.0
    dt: float = 0.05
    g: float = 10.0
    m: float = 1.0
    l: float = 1.0  # noqa: E741 (Gymnasium's name)
    reset_x: float = math.pi  # th ~ U(-reset_x, reset_x)
    reset_y: float = 1.0  # thdot ~ U(-reset_y, reset_y)


@struct.dataclass
class PendulumState:
    th: jax.Array
    thdot: jax.Array


def angle_normalize(x):
    """Maps an angle to ``[-pi, pi)`` (Python/NumPy floor-modulo semantics)."""
    return jnp.mod(x + jnp.pi, 2 * jnp.pi) - jnp.pi


class Pendulum(Environment):
    """Swing up and hold an inverted pendulum with a bounded torque."""

    name = "Pendulum-v1"

    def default_params(self) -> PendulumParams:
        return PendulumParams()

    # ------------------------------------------------------------------ API
    def reset(self, key, params):
        high = jnp.stack([jnp.asarray(params.reset_x, jnp.float32), jnp.asarray(params.reset_y, jnp.float32)])
        u = jax.random.uniform(key, (2,), jnp.float32, -high, high)
        state = PendulumState(u[0], u[1])
        return self.obs_from_state(state, params), state

    def step(self, key, state, action, params):
        del key  # deterministic
        th, thdot = state.th, state.thdot
        dtype = jnp.result_type(th)
        g, m, l, dt = params.g, params.m, params.l, params.dt  # noqa: E741 - l: the pole's length, as in Gymnasium
        u = jnp.clip(jnp.asarray(action, dtype).reshape(-1), -params.max_torque, params.max_torque)[0]
        costs = angle_normalize(th) ** 2 + 0.1 * thdot**2 + 0.001 * (u**2)
        newthdot = thdot + (3 * g / (2 * l) * jnp.sin(th) + 3.0 / (m * l**2) * u) * dt
        newthdot = jnp.clip(newthdot, -params.max_speed, params.max_speed)
        newth = th + newthdot * dt
        new_state = PendulumState(newth.astype(dtype), newthdot.astype(dtype))
        reward = (-costs).astype(dtype)
        terminated = jnp.zeros((), jnp.bool_)
        truncated = jnp.zeros((), jnp.bool_)
        return self.obs_from_state(new_state, params), new_state, reward, terminated, truncated, {}

    def obs_from_state(self, state, params):
        return jnp.stack([jnp.cos(state.th), jnp.sin(state.th), state.thdot])

    def observation_space(self, params):
        high = np.array([1.0, 1.0, params.max_speed], dtype=np.float32)
        return Box(-high, high, (3,), np.float32)

    def action_space(self, params):
        return Box(-params.max_torque, params.max_torque, (1,), np.float32)

    # ------------------------------------------------------- Gymnasium glue
    @staticmethod
    def state_from_gymnasium(gym_env, dtype=np.float32) -> PendulumState:
        th, thdot = np.asarray(gym_env.unwrapped.state, dtype=dtype)
        return PendulumState(jnp.asarray(th), jnp.asarray(thdot))

    @staticmethod
    def state_to_gymnasium(state: PendulumState, gym_env) -> None:
        gym_env.unwrapped.state = np.array([float(state.th), float(state.thdot)], dtype=np.float64)

    # ------------------------------------------------------------ rendering
    def render(self, state, params, size: int = 500):
        """The rod and its axle as a ``[size, size, 3]`` uint8 image (jittable)."""
        bnd = 2.2
        scale = size / (bnd * 2)
        offset = size // 2
        cols = jnp.arange(size, dtype=jnp.float32)[None, :] + 0.5
        rows = jnp.arange(size, dtype=jnp.float32)[:, None] + 0.5
        wx = jnp.broadcast_to((cols - offset) / scale, (size, size))
        wy = jnp.broadcast_to((offset - rows) / scale, (size, size))  # y up
        # theta = 0 points up; positive theta is counter-clockwise (as in Gymnasium's drawing)
        ex, ey = -params.l * jnp.sin(state.th), params.l * jnp.cos(state.th)
        t = jnp.clip((wx * ex + wy * ey) / (ex**2 + ey**2), 0.0, 1.0)
        dist = jnp.hypot(wx - t * ex, wy - t * ey)
        img = jnp.full((size, size, 3), 255, jnp.uint8)
        img = jnp.where((dist <= 0.1)[..., None], jnp.asarray((204, 77, 77), jnp.uint8), img)
        img = jnp.where((jnp.hypot(wx, wy) <= 0.05)[..., None], jnp.uint8(0), img)
        return img
