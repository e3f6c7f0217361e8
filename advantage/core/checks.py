"""Shape checks for the core math, at trace time (shapes are static under ``jit``).

The two assertions of ``chex`` that rlax puts at the entry of every function, without the
dependency (chex needs Python >= 3.11 and JAX >= 0.7; this library supports 3.10 and JAX 0.4.30).
A failed check raises a ``ValueError`` naming the function and every argument's shape, so a
``[T, B]`` array passed where ``[T * B]`` was meant fails at its first call instead of broadcasting
into a silently wrong loss. (A programming error, not a user's: it is not an ``AdvantageError``,
and the command line shows its traceback.)
"""

from __future__ import annotations

import numpy as np

__all__ = ["assert_rank", "assert_equal_shape"]


def _shapes(arrays: dict) -> str:
    return ", ".join(f"{name} {tuple(np.shape(x))}" for name, x in arrays.items())


def assert_rank(fn: str, rank: int | tuple[int, ...], **arrays) -> None:
    """Every array in ``arrays`` (given by name) has rank ``rank`` (or one of the ranks in a tuple)."""
    ranks = (rank,) if isinstance(rank, int) else tuple(rank)
    bad = {name: x for name, x in arrays.items() if np.ndim(x) not in ranks}
    if bad:
        want = " or ".join(str(r) for r in ranks)
        raise ValueError(f"{fn}: expected rank {want}, got {_shapes(bad)}")


def assert_equal_shape(fn: str, **arrays) -> None:
    """All arrays in ``arrays`` (given by name; ``None`` entries are skipped) have the same shape."""
    given = {name: x for name, x in arrays.items() if x is not None}
    if len({tuple(np.shape(x)) for x in given.values()}) > 1:
        raise ValueError(f"{fn}: arguments must have the same shape, got {_shapes(given)}")
