"""CartPole-v1 in JAX, step-for-step equal to ``gymnasium.envs.classic_control.CartPoleEnv``.

Dynamics, reward, termination and reset distribution follow Gymnasium's
``cartpole.py`` (Barto, Sutton & Anderson 1983, explicit Euler by default).
Gymnasium computes in float64; this version computes in the dtype of the state:
float32 as returned by ``reset`` (JAX's default), or float64 for a float64 state
under ``jax.enable_x64(True)`` (which the tests use to check the logic to ~1e-12).

One deliberate difference: Gymnasium gives reward 0 (with a warning) for steps
taken *after* the episode terminated, which needs a hidden counter. The raw JAX
env is stateless about that and keeps returning the normal reward; with
``AutoReset`` such steps never happen.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from advantage.envs.api import Environment
from advantage.envs.spaces import Box, Discrete


@struct.dataclass
class CartPoleParams:
    gravity: float = 9.8
    masscart: float = 1.0
    masspole: float = 0.1
    length: float = 0.5  # half the pole's length
    force_mag: float = 10.0
    tau: float = 0.02  # seconds between state updates
    theta_threshold_radians: float = 12 * 2 * math.pi / 360
    x_threshold: float = 2.4
    reset_low: float = -0.05
    reset_high: float = 0.05
    kinematics_integrator: str = struct.field(pytree_node=False, default="euler")
    sutton_barto_reward: bool = struct.field(pytree_node=False, default=False)


@struct.dataclass
class CartPoleState:
    x: jax.Array
    x_dot: jax.Array
    theta: jax.Array
    theta_dot: jax.Array


class CartPole(Environment):
    """Balance a pole on a cart: actions 0 (push left) and 1 (push right)."""

    name = "CartPole-v1"

    def default_params(self) -> CartPoleParams:
        return CartPoleParams()

    # ------------------------------------------------------------------ API
    def reset(self, key, params):
        u = jax.random.uniform(key, (4,), jnp.float32, params.reset_low, params.reset_high)
        state = CartPoleState(u[0], u[1], u[2], u[3])
        return self.obs_from_state(state, params), state

    def step(self, key, state, action, params):
        del key  # deterministic
        x, x_dot, theta, theta_dot = state.x, state.x_dot, state.theta, state.theta_dot
        dtype = jnp.result_type(x)

        def f(v):
            return jnp.asarray(v, dtype)

        total_mass = f(params.masspole) + f(params.masscart)
        polemass_length = f(params.masspole) * f(params.length)
        force = jnp.where(jnp.asarray(action) == 1, f(params.force_mag), -f(params.force_mag))
        costheta = jnp.cos(theta)
        sintheta = jnp.sin(theta)

        temp = (force + polemass_length * jnp.square(theta_dot) * sintheta) / total_mass
        thetaacc = (params.gravity * sintheta - costheta * temp) / (
            params.length * (4.0 / 3.0 - params.masspole * jnp.square(costheta) / total_mass)
        )
        xacc = temp - polemass_length * thetaacc * costheta / total_mass

        tau = params.tau
        if params.kinematics_integrator == "euler":
            x = x + tau * x_dot
            x_dot = x_dot + tau * xacc
            theta = theta + tau * theta_dot
            theta_dot = theta_dot + tau * thetaacc
        else:  # semi-implicit euler
            x_dot = x_dot + tau * xacc
            x = x + tau * x_dot
            theta_dot = theta_dot + tau * thetaacc
            theta = theta + tau * theta_dot
        new_state = CartPoleState(f(x), f(x_dot), f(theta), f(theta_dot))

        terminated = self.is_terminal(new_state, params)
        if params.sutton_barto_reward:
            reward = jnp.where(terminated, -1.0, 0.0)
        else:
            reward = jnp.ones(())
        reward = reward.astype(dtype)
        truncated = jnp.zeros((), jnp.bool_)
        return self.obs_from_state(new_state, params), new_state, reward, terminated, truncated, {}

    def is_terminal(self, state, params):
        return (
            (state.x < -params.x_threshold)
            | (state.x > params.x_threshold)
            | (state.theta < -params.theta_threshold_radians)
            | (state.theta > params.theta_threshold_radians)
        )

    def obs_from_state(self, state, params):
        return jnp.stack([state.x, state.x_dot, state.theta, state.theta_dot])

    def observation_space(self, params):
        high = np.array([params.x_threshold * 2, np.inf, params.theta_threshold_radians * 2, np.inf], dtype=np.float32)
        return Box(-high, high, (4,), np.float32)

    def action_space(self, params):
        return Discrete(2)

    # ------------------------------------------------------- Gymnasium glue
    @staticmethod
    def state_from_gymnasium(gym_env, dtype=np.float32) -> CartPoleState:
        s = np.asarray(gym_env.unwrapped.state, dtype=dtype)
        return CartPoleState(*(jnp.asarray(v) for v in s))

    @staticmethod
    def state_to_gymnasium(state: CartPoleState, gym_env) -> None:
        env = gym_env.unwrapped
        env.state = np.array(
            [float(state.x), float(state.x_dot), float(state.theta), float(state.theta_dot)], dtype=np.float64
        )
        env.steps_beyond_terminated = None  # a fresh, non-terminated episode as far as rewards go

    # ------------------------------------------------------------ rendering
    def render(self, state, params, width: int = 600, height: int = 400):
        """Cart, pole and track as an ``[height, width, 3]`` uint8 image (jittable)."""
        world_width = params.x_threshold * 2
        scale = width / world_width
        polewidth = 10.0
        polelen = scale * (2 * params.length)
        cartwidth, cartheight = 50.0, 30.0
        carty = 100.0  # top of the cart, from the bottom of the image

        cols = jnp.arange(width, dtype=jnp.float32)[None, :] + 0.5
        rows = jnp.arange(height, dtype=jnp.float32)[:, None] + 0.5
        px = jnp.broadcast_to(cols, (height, width))
        py = jnp.broadcast_to(height - rows, (height, width))  # y grows upwards, as in Gymnasium's surface

        img = jnp.full((height, width, 3), 255, jnp.uint8)
        cartx = state.x * scale + width / 2.0
        # track
        img = _paint(img, (py >= carty - 0.5) & (py < carty + 0.5), (0, 0, 0))
        # cart
        in_cart = (jnp.abs(px - cartx) <= cartwidth / 2) & (jnp.abs(py - carty) <= cartheight / 2)
        img = _paint(img, in_cart, (0, 0, 0))
        # pole: a thick segment from the axle, rotated by -theta (clockwise for positive angles)
        axle_y = carty + cartheight / 4.0
        ux, uy = jnp.sin(state.theta), jnp.cos(state.theta)
        dx, dy = px - cartx, py - axle_y
        along = dx * ux + dy * uy
        across = -dx * uy + dy * ux
        in_pole = (along >= -polewidth / 2) & (along <= polelen - polewidth / 2) & (jnp.abs(across) <= polewidth / 2)
        img = _paint(img, in_pole, (202, 152, 101))
        # axle
        img = _paint(img, dx**2 + dy**2 <= (polewidth / 2) ** 2, (129, 132, 203))
        return img


def _paint(img, mask, color):
    return jnp.where(mask[..., None], jnp.asarray(color, jnp.uint8), img)
