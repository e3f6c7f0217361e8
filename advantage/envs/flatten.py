"""Structured Gymnasium observations (``Dict``, ``Tuple``, ``MultiDiscrete``, ``MultiBinary``) as one flat
float32 vector, so that every algorithm's MLP sees a ``Box``.

The layout, part by part (a ``Dict``'s keys in **sorted** order, a ``Tuple``'s items in order, nested
spaces depth first):

=================== =================================================================
``Box(shape)``      its entries, raveled (C order), bounds kept
``Discrete(n)``     one-hot, ``n`` entries in [0, 1]
``MultiDiscrete``   one one-hot block per factor, ``sum(nvec)`` entries in [0, 1]
``MultiBinary``     its bits as 0.0 / 1.0
``Dict`` / ``Tuple`` the concatenation of their parts
=================== =================================================================

Observation normalisation (``--normalize-obs``) keeps a running mean and variance *per entry* of this
vector, so each key of a ``Dict`` is normalised on its own scale without anything specific to dicts.
Spaces without a fixed size (``Sequence``, ``Graph``, ``Text``, ``OneOf``) cannot be flattened:
:func:`flatten_problems` names where they are.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces as gs

#: The observation spaces that the Gymnasium bridge flattens with :class:`FlattenObservation`.
STRUCTURED = (gs.Dict, gs.Tuple, gs.MultiDiscrete, gs.MultiBinary)


def needs_flattening(space: Any) -> bool:
    """True for a structured observation space the bridge flattens (a ``Box`` or ``Discrete`` is used as is)."""
    return isinstance(space, STRUCTURED)


def _parts(space: Any, path: str):
    """``(path, leaf space)`` in layout order."""
    if isinstance(space, gs.Dict):
        for key in sorted(space.spaces):
            yield from _parts(space.spaces[key], f"{path}[{key!r}]")
    elif isinstance(space, gs.Tuple):
        for i, sub in enumerate(space.spaces):
            yield from _parts(sub, f"{path}[{i}]")
    else:
        yield path, space


def flatten_problems(space: Any, path: str = "obs") -> list[str]:
    """The parts of ``space`` that cannot be flattened, one line each (``[]``: it can)."""
    out = []
    for where, leaf in _parts(space, path):
        if not isinstance(leaf, (gs.Box, gs.Discrete, gs.MultiDiscrete, gs.MultiBinary)):
            out.append(
                f"{where} is a {type(leaf).__name__} ({leaf}): it has no fixed size, so it cannot be part of "
                "the flat observation vector"
            )
    return out


def flat_space_bounds(space: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)`` float32 ``[D]`` of the flat vector."""
    lows, highs = [], []
    for _, leaf in _parts(space, "obs"):
        if isinstance(leaf, gs.Box):
            with np.errstate(over="ignore"):
                lows.append(np.asarray(leaf.low, np.float64).astype(np.float32).reshape(-1))
                highs.append(np.asarray(leaf.high, np.float64).astype(np.float32).reshape(-1))
        else:
            size = _leaf_size(leaf)
            lows.append(np.zeros(size, np.float32))
            highs.append(np.ones(size, np.float32))
    return np.concatenate(lows), np.concatenate(highs)


def _leaf_size(leaf: Any) -> int:
    if isinstance(leaf, gs.Discrete):
        return int(leaf.n)
    if isinstance(leaf, gs.MultiDiscrete):
        return int(np.sum(leaf.nvec))
    return int(np.prod(leaf.shape))


def _leaf_values(x: Any, space: Any, path: str):
    if isinstance(space, gs.Dict):
        if not isinstance(x, dict):
            raise ValueError(f"{path} should be a dict with keys {sorted(space.spaces)}, got {type(x).__name__}")
        for key in sorted(space.spaces):
            if key not in x:
                raise ValueError(f"{path} has no key {key!r} (keys: {sorted(x)})")
            yield from _leaf_values(x[key], space.spaces[key], f"{path}[{key!r}]")
    elif isinstance(space, gs.Tuple):
        if not isinstance(x, (tuple, list)) or len(x) != len(space.spaces):
            raise ValueError(f"{path} should be a tuple of {len(space.spaces)} items, got {type(x).__name__}")
        for i, sub in enumerate(space.spaces):
            yield from _leaf_values(x[i], sub, f"{path}[{i}]")
    else:
        yield x, space


def flatten(space: Any, x: Any) -> np.ndarray:
    """One observation of ``space`` -> float32 ``[D]`` (the layout of the module docstring)."""
    out = []
    for value, leaf in _leaf_values(x, space, "obs"):
        if isinstance(leaf, gs.Discrete):
            v = np.zeros(int(leaf.n), np.float32)
            v[int(np.asarray(value).reshape(())) - int(leaf.start)] = 1.0
        elif isinstance(leaf, gs.MultiDiscrete):
            idx = np.asarray(value, np.int64).reshape(-1) - np.asarray(leaf.start, np.int64).reshape(-1)
            v = np.concatenate(
                [np.eye(int(n), dtype=np.float32)[i] for i, n in zip(idx, np.asarray(leaf.nvec).reshape(-1))]
            )
        else:
            with np.errstate(over="ignore"):
                v = np.asarray(value, np.float64).astype(np.float32).reshape(-1)
        out.append(v)
    return np.concatenate(out)


class FlattenObservation(gymnasium.ObservationWrapper):
    """A ``Dict`` / ``Tuple`` / ``MultiDiscrete`` / ``MultiBinary`` observation as one float32 ``Box`` ``[D]``.

    Unlike ``gymnasium.wrappers.FlattenObservation``, a ``Dict``'s keys are always taken in sorted order
    (whatever order the env declared them in) and the result is float32."""

    def __init__(self, env: gymnasium.Env):
        super().__init__(env)
        self.structured_space = env.observation_space
        self.observation_space = self.flat_space(self.structured_space)

    @staticmethod
    def flat_space(space: Any) -> gs.Box:
        """The float32 ``Box`` ``[D]`` that the observations of ``space`` are flattened into."""
        low, high = flat_space_bounds(space)
        return gs.Box(low, high, low.shape, np.float32)

    def observation(self, observation):
        return flatten(self.structured_space, observation)
