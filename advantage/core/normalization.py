"""Running mean/variance of observations, kept in the agent state.

The statistics are part of every checkpoint and are frozen during evaluation:
``update`` is only ever called by the training update.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class RunningMeanStd:
    mean: jax.Array
    var: jax.Array
    count: jax.Array

    @classmethod
    def create(cls, shape: tuple[int, ...]) -> RunningMeanStd:
        # count starts at a tiny epsilon (as SB3's VecNormalize) so the first update dominates.
        return cls(jnp.zeros(shape, jnp.float32), jnp.ones(shape, jnp.float32), jnp.asarray(1e-4, jnp.float32))

    def update(self, x: jax.Array) -> RunningMeanStd:
        """Merge a batch ``x [..., *shape]`` (Chan et al. parallel variance)."""
        return self.merge(*self.moments(x))

    def moments(self, x: jax.Array) -> tuple[jax.Array, jax.Array, int]:
        """``(mean, var, count)`` of a batch ``x [..., *shape]``: what :meth:`merge` takes (a worker sends these)."""
        x = x.reshape((-1,) + self.mean.shape)
        return jnp.mean(x, axis=0), jnp.var(x, axis=0), x.shape[0]

    def merge(self, b_mean: jax.Array, b_var: jax.Array, b_count) -> RunningMeanStd:
        """The statistics with those of a batch merged in (Chan et al. parallel variance)."""
        delta = b_mean - self.mean
        total = self.count + b_count
        mean = self.mean + delta * b_count / total
        m2 = self.var * self.count + b_var * b_count + delta**2 * self.count * b_count / total
        return RunningMeanStd(mean, m2 / total, total)

    def normalize(self, x: jax.Array, clip: float = 10.0, eps: float = 1e-8) -> jax.Array:
        return jnp.clip((x - self.mean) / jnp.sqrt(self.var + eps), -clip, clip)
