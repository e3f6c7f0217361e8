"""Acrobot-v1 in JAX, step-for-step equal to ``gymnasium.envs.classic_control.AcrobotEnv``.

Same "book" dynamics (``book_or_nips="book"``), the same single classic RK4 step
of ``dt = 0.2`` s (``rk4``), and the same ``wrap``/``bound`` post-processing as
Gymnasium's ``acrobot.py``. Gymnasium integrates in float64; this version in the
dtype of the state: float32 as returned by ``reset`` (JAX's default), or float64 for a float64 state
under ``jax.enable_x64(True)`` (which the tests use to check the logic to ~1e-12).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from advantage.envs.api import Environment
from advantage.envs.spaces import Box, Discrete

PI = math.pi


@struct.dataclass
class AcrobotParams:
    dt: float = 0.2  # integration time step [s]
    link_length_1: float = 1.0  # [m]
    link_length_2: float = 1.0  # [m]
    link_mass_1: float = 1.0  # [kg]
    link_mass_2: float = 1.0  # [kg]
    link_com_pos_1: float = 0.5  # [m] centre of mass of link 1
    link_com_pos_2: float = 0.5  # [m] centre of mass of link 2
    link_moi: float = 1.0  # moment of inertia of both links
    gravity: float = 9.8
    max_vel_1: float = 4 * PI
    max_vel_2: float = 9 * PI
    torque_noise_max: float = 0.0
    reset_low: float = -0.1
    reset_high: float = 0.1
    avail_torque: tuple = struct.field(pytree_node=False, default=(-1.0, 0.0, 1.0))
    book_or_nips: str = struct.field(pytree_node=False, default="book")


@struct.dataclass
class AcrobotState:
    s: jax.Array  # [theta1, theta2, dtheta1, dtheta2], float32 [4]


def wrap(x, m, M):
    """Wraps ``x`` into ``[m, M]`` by adding/subtracting ``M - m``, exactly like Gymnasium's loop.

    (A closed form with ``floor`` rounds differently; the loop runs once in practice.)
    """
    diff = M - m
    x = lax_while(lambda v: v > M, lambda v: v - diff, x)
    x = lax_while(lambda v: v < m, lambda v: v + diff, x)
    return x


def lax_while(cond, body, x):
    # isfinite guard: Gymnasium would loop forever on +-inf; here inf passes through.
    return jax.lax.while_loop(lambda v: cond(v) & jnp.isfinite(v), body, x)


def bound(x, m, M=None):
    """Clips ``x`` to ``[m, M]`` (``m`` may be a ``(min, max)`` pair), as Gymnasium's ``bound``."""
    if M is None:
        M = m[1]
        m = m[0]
    return jnp.minimum(jnp.maximum(x, m), M)


def rk4(derivs, y0, t):
    """Classic fourth-order Runge-Kutta over the time points ``t`` (as Gymnasium's ``rk4``).

    ``y0`` is the augmented state (state plus the held action); returns the first
    four components at ``t[-1]``.
    """
    y = jnp.asarray(y0)
    for i in range(len(t) - 1):
        this = t[i]
        dt = t[i + 1] - this
        dt2 = dt / 2.0
        k1 = derivs(y)
        k2 = derivs(y + dt2 * k1)
        k3 = derivs(y + dt2 * k2)
        k4 = derivs(y + dt * k3)
        y = y + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
    return y[:4]


class Acrobot(Environment):
    """Swing the tip of a two-link pendulum above the bar: torques -1, 0, +1 on the middle joint."""

    name = "Acrobot-v1"

    def default_params(self) -> AcrobotParams:
        return AcrobotParams()

    # ------------------------------------------------------------------ API
    def reset(self, key, params):
        s = jax.random.uniform(key, (4,), jnp.float32, params.reset_low, params.reset_high)
        state = AcrobotState(s)
        return self.obs_from_state(state, params), state

    def step(self, key, state, action, params):
        dtype = jnp.result_type(state.s)
        torque = jnp.asarray(params.avail_torque, dtype)[jnp.asarray(action, jnp.int32)]
        # Gymnasium adds the noise only when torque_noise_max > 0.
        noise_max = jnp.asarray(params.torque_noise_max, dtype)
        torque = torque + jnp.where(noise_max > 0, jax.random.uniform(key, (), dtype, -noise_max, noise_max), 0.0)
        s_augmented = jnp.append(state.s, torque)
        ns = rk4(lambda y: self._dsdt(y, params), s_augmented, [0.0, params.dt])
        ns = jnp.stack(
            [
                wrap(ns[0], -PI, PI),
                wrap(ns[1], -PI, PI),
                bound(ns[2], -params.max_vel_1, params.max_vel_1),
                bound(ns[3], -params.max_vel_2, params.max_vel_2),
            ]
        ).astype(dtype)
        new_state = AcrobotState(ns)
        terminated = self.is_terminal(new_state, params)
        reward = jnp.where(terminated, 0.0, -1.0).astype(dtype)
        truncated = jnp.zeros((), jnp.bool_)
        return self.obs_from_state(new_state, params), new_state, reward, terminated, truncated, {}

    def is_terminal(self, state, params):
        s = state.s
        return -jnp.cos(s[0]) - jnp.cos(s[1] + s[0]) > 1.0

    def _dsdt(self, s_augmented, params):
        m1 = params.link_mass_1
        m2 = params.link_mass_2
        l1 = params.link_length_1
        lc1 = params.link_com_pos_1
        lc2 = params.link_com_pos_2
        I1 = params.link_moi
        I2 = params.link_moi
        g = params.gravity
        a = s_augmented[-1]
        theta1, theta2, dtheta1, dtheta2 = s_augmented[0], s_augmented[1], s_augmented[2], s_augmented[3]
        d1 = m1 * lc1**2 + m2 * (l1**2 + lc2**2 + 2 * l1 * lc2 * jnp.cos(theta2)) + I1 + I2
        d2 = m2 * (lc2**2 + l1 * lc2 * jnp.cos(theta2)) + I2
        phi2 = m2 * lc2 * g * jnp.cos(theta1 + theta2 - PI / 2.0)
        phi1 = (
            -m2 * l1 * lc2 * dtheta2**2 * jnp.sin(theta2)
            - 2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * jnp.sin(theta2)
            + (m1 * lc1 + m2 * l1) * g * jnp.cos(theta1 - PI / 2)
            + phi2
        )
        if params.book_or_nips == "nips":
            # consistent with the description in the paper
            ddtheta2 = (a + d2 / d1 * phi1 - phi2) / (m2 * lc2**2 + I2 - d2**2 / d1)
        else:
            # consistent with the java implementation and the book
            ddtheta2 = (a + d2 / d1 * phi1 - m2 * l1 * lc2 * dtheta1**2 * jnp.sin(theta2) - phi2) / (
                m2 * lc2**2 + I2 - d2**2 / d1
            )
        ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
        return jnp.stack([dtheta1, dtheta2, ddtheta1, ddtheta2, jnp.zeros_like(dtheta1)]).astype(s_augmented.dtype)

    def obs_from_state(self, state, params):
        s = state.s
        return jnp.stack([jnp.cos(s[0]), jnp.sin(s[0]), jnp.cos(s[1]), jnp.sin(s[1]), s[2], s[3]])

    def observation_space(self, params):
        high = np.array([1.0, 1.0, 1.0, 1.0, params.max_vel_1, params.max_vel_2], dtype=np.float32)
        return Box(-high, high, (6,), np.float32)

    def action_space(self, params):
        return Discrete(len(params.avail_torque))

    # ------------------------------------------------------- Gymnasium glue
    @staticmethod
    def state_from_gymnasium(gym_env, dtype=np.float32) -> AcrobotState:
        return AcrobotState(jnp.asarray(np.asarray(gym_env.unwrapped.state, dtype=dtype)))

    @staticmethod
    def state_to_gymnasium(state: AcrobotState, gym_env) -> None:
        gym_env.unwrapped.state = np.asarray(state.s, dtype=np.float64).copy()

    # ------------------------------------------------------------ rendering
    def render(self, state, params, size: int = 500):
        """The two links seen from the front as a ``[size, size, 3]`` uint8 image (jittable)."""
        s = state.s
        bnd = params.link_length_1 + params.link_length_2 + 0.2
        scale = size / (bnd * 2)
        offset = size / 2.0
        cols = jnp.arange(size, dtype=jnp.float32)[None, :] + 0.5
        rows = jnp.arange(size, dtype=jnp.float32)[:, None] + 0.5
        # world coordinates of each pixel (y up)
        wx = jnp.broadcast_to((cols - offset) / scale, (size, size))
        wy = jnp.broadcast_to((offset - rows) / scale, (size, size))

        img = jnp.full((size, size, 3), 255, jnp.uint8)
        img = jnp.where((jnp.abs(wy - 1.0) * scale < 0.5)[..., None], jnp.uint8(0), img)  # goal line
        p0 = jnp.zeros(2)
        p1 = jnp.stack([params.link_length_1 * jnp.sin(s[0]), -params.link_length_1 * jnp.cos(s[0])])
        p2 = p1 + jnp.stack([params.link_length_2 * jnp.sin(s[0] + s[1]), -params.link_length_2 * jnp.cos(s[0] + s[1])])
        for a, b in ((p0, p1), (p1, p2)):
            d = b - a
            t = jnp.clip(((wx - a[0]) * d[0] + (wy - a[1]) * d[1]) / jnp.maximum(d @ d, 1e-12), 0.0, 1.0)
            dist = jnp.hypot(wx - a[0] - t * d[0], wy - a[1] - t * d[1])
            img = jnp.where((dist <= 0.1)[..., None], jnp.asarray((0, 204, 204), jnp.uint8), img)
        for c in (p0, p1):
            joint = jnp.hypot(wx - c[0], wy - c[1]) <= 0.1
            img = jnp.where(joint[..., None], jnp.asarray((204, 204, 0), jnp.uint8), img)
        return img
