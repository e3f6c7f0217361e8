"""Shared array containers. Arrays are time-major: ``[T, B, ...]``."""

from __future__ import annotations

from typing import Any

import jax
from flax import struct

PRNGKey = jax.Array
Params = Any
Metrics = dict[str, jax.Array]


@struct.dataclass
class Transition:
    """One step of experience for a batch of environments (a ``[B]`` slice of a rollout).

    ``obs`` is the observation the action was chosen from. ``next_obs`` is the true
    next observation: at an episode end it is the pre-reset observation (``final_obs``),
    never the first observation of the next episode. ``terminated`` and ``truncated``
    are kept apart: a truncation (time limit) bootstraps from ``V(next_obs)``, a
    termination does not.
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    next_obs: jax.Array
    log_prob: jax.Array
    value: jax.Array


def rollout_shapes(obs, action, log_prob, value, n_steps: int, time_axis: int = 0) -> Transition:
    """``jax.ShapeDtypeStruct`` leaves of a rollout of ``n_steps`` steps whose every step has these ``obs``,
    ``action``, ``log_prob`` and ``value`` (shapes, e.g. from ``jax.eval_shape`` of an ``act``), with the time axis
    inserted at ``time_axis``; rewards and the value have the same shape, the episode ends are ``bool``. What a
    program that takes a rollout is compiled for before the rollout exists."""

    def over_time(x, dtype=None):
        shape = tuple(x.shape)
        return jax.ShapeDtypeStruct(shape[:time_axis] + (n_steps,) + shape[time_axis:], dtype or x.dtype)

    step = jax.ShapeDtypeStruct(tuple(value.shape), "float32")
    return Transition(
        obs=over_time(obs),
        action=over_time(action),
        reward=over_time(step),
        terminated=over_time(step, "bool"),
        truncated=over_time(step, "bool"),
        next_obs=over_time(obs),
        log_prob=over_time(log_prob),
        value=over_time(value),
    )
