"""Minimal observation/action spaces for JAX-native environments.

They mirror ``gymnasium.spaces.Discrete``, ``Box`` and ``MultiDiscrete`` closely
enough that the agent code treats both back ends alike. A ``MultiDiscrete(nvec)``
action is ``k = len(nvec)`` integers, factor ``i`` in ``0 .. nvec[i]-1``; the policy is a
product of categoricals (:class:`advantage.core.distributions.MultiCategorical`). A
``MultiBinary(n)`` action is ``MultiDiscrete([2] * n)`` (each factor a Bernoulli).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from advantage.errors import ConfigError


@dataclass(frozen=True)
class Discrete:
    """Actions ``0 .. n-1``."""

    n: int
    dtype: type = np.int32

    @property
    def shape(self) -> tuple[int, ...]:
        return ()

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return np.asarray(rng.integers(self.n), dtype=self.dtype)

    def contains(self, x) -> bool:
        x = np.asarray(x)
        return x.shape == () and np.issubdtype(x.dtype, np.integer) and 0 <= int(x) < self.n


@dataclass(frozen=True)
class MultiDiscrete:
    """``k`` discrete actions at once, ``0 <= a[i] < nvec[i]``, as a flat vector (``MultiBinary(n)``: ``[2] * n``)."""

    nvec: tuple[int, ...]
    dtype: type = np.int32

    def __post_init__(self):
        object.__setattr__(self, "nvec", tuple(int(k) for k in np.asarray(self.nvec).reshape(-1)))
        if not self.nvec or min(self.nvec) < 1:
            raise ConfigError(f"MultiDiscrete needs at least one factor, each with >= 1 choice; got nvec={self.nvec}")

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.nvec),)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return np.asarray([rng.integers(k) for k in self.nvec], dtype=self.dtype)

    def contains(self, x) -> bool:
        x = np.asarray(x)
        return (
            x.shape == self.shape
            and np.issubdtype(x.dtype, np.integer)
            and bool(np.all((0 <= x) & (x < np.asarray(self.nvec))))
        )


@dataclass(frozen=True)
class Box:
    """A (possibly unbounded) box ``low <= x <= high`` of a fixed shape."""

    low: np.ndarray
    high: np.ndarray
    shape: tuple[int, ...]
    dtype: type = np.float32
    one_hot: bool = False
    """True when the box holds one-hot encodings of a ``Discrete`` space (the Gymnasium bridge's
    ``Discrete(n)`` observations): tabular methods read the index back with ``argmax``."""

    def __post_init__(self):
        object.__setattr__(self, "low", np.broadcast_to(np.asarray(self.low, self.dtype), self.shape).copy())
        object.__setattr__(self, "high", np.broadcast_to(np.asarray(self.high, self.dtype), self.shape).copy())

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        low = np.where(np.isfinite(self.low), self.low, -1.0)
        high = np.where(np.isfinite(self.high), self.high, 1.0)
        return rng.uniform(low, high).astype(self.dtype)

    def contains(self, x) -> bool:
        x = np.asarray(x)
        return x.shape == self.shape and bool(np.all(x >= self.low) and np.all(x <= self.high))

    def __eq__(self, other):
        return (
            isinstance(other, Box)
            and self.shape == other.shape
            and np.array_equal(self.low, other.low)
            and np.array_equal(self.high, other.high)
        )

    def __hash__(self):
        return hash((self.shape, self.low.tobytes(), self.high.tobytes()))


def is_discrete(space) -> bool:
    """True for ``Discrete`` and ``MultiDiscrete`` action spaces (ours or Gymnasium's): integer actions."""
    return not hasattr(space, "low")


def action_factors(space) -> tuple[int, ...]:
    """``nvec`` of a ``MultiDiscrete`` action space (a factored categorical policy); ``()`` for any other."""
    return tuple(int(k) for k in np.asarray(space.nvec).reshape(-1)) if hasattr(space, "nvec") else ()


def action_dim(space) -> int:
    """Number of logits (discrete: ``n``, or ``sum(nvec)`` for ``MultiDiscrete``) or of action dimensions."""
    if hasattr(space, "nvec"):
        return sum(action_factors(space))
    return int(space.n) if is_discrete(space) else int(np.prod(space.shape))


def scale_action(action, low, high):
    """Map an agent action in ``[-1, 1]`` (clipped first) to the box ``[low, high]``."""
    import jax.numpy as jnp

    action = jnp.clip(action, -1.0, 1.0)
    return low + 0.5 * (action + 1.0) * (high - low)


def require_box(name: str, action_space) -> None:
    """Algorithm ``name`` acts in continuous spaces only (DDPG, TD3, SAC): a clear error otherwise."""
    if is_discrete(action_space):
        got = (
            f"Discrete({action_space.n})"
            if hasattr(action_space, "n")
            else f"MultiDiscrete({action_factors(action_space)})"
        )
        raise ConfigError(
            f"{name} needs a continuous (Box) action space; got {got}. "
            "Use ppo (or another on-policy algorithm) for discrete actions."
        )
    if not (np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high))):
        raise ConfigError(
            f"{name} needs finite action bounds (its actions in [-1, 1] are rescaled to them); "
            f"got low={action_space.low}, high={action_space.high}."
        )
