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
