"""Helpers for algorithm ``Config`` dataclasses.

A ``Config`` is a frozen ``flax.struct.dataclass``: fields that change array shapes
are static (``static(...)``), numeric hyperparameters are pytree leaves so a sweep
can ``vmap`` over them. The docstring under each field is its CLI help.
"""

from __future__ import annotations

import dataclasses
import numbers

from flax import struct

from advantage.errors import ConfigError  # defined there; importable from here as before


def static(default):
    """A shape-changing (non-traced) config field."""
    return struct.field(pytree_node=False, default=default)


def is_concrete(x) -> bool:
    """True for plain Python numbers (not tracers): only those are validated eagerly."""
    return isinstance(x, numbers.Number)


def check(cfg, field: str, ok, requirement: str) -> None:
    """Raise ``ConfigError`` naming ``field`` unless ``ok(value)`` holds (tracers are skipped)."""
    value = getattr(cfg, field)
    if isinstance(value, (numbers.Number, str, tuple, bool)) and not ok(value):
        raise ConfigError(f"{type(cfg).__module__.split('.')[-1]}.{field}={value!r} is invalid: {requirement}.")


def check_minibatches(cfg, kind: str = "") -> None:
    """Raise ``ConfigError`` unless a rollout of ``n_envs * n_steps`` samples splits into ``n_minibatches`` equal
    minibatches (``kind``: what they train, e.g. "critic", as the message calls them), listing the counts that do."""
    batch = cfg.n_envs * cfg.n_steps
    if batch % cfg.n_minibatches != 0:
        raise ConfigError(
            f"{type(cfg).__module__.split('.')[-1]}: n_envs * n_steps = {cfg.n_envs} * {cfg.n_steps} = {batch} samples "
            f"cannot be split into n_minibatches={cfg.n_minibatches} equal {kind + ' ' if kind else ''}minibatches; "
            f"choose n_minibatches from {[m for m in range(1, min(batch, 64) + 1) if batch % m == 0]}."
        )


def to_dict(cfg) -> dict:
    return {f.name: (list(v) if isinstance(v := getattr(cfg, f.name), tuple) else v) for f in dataclasses.fields(cfg)}


def from_dict(cls, d: dict):
    names = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for k, v in d.items():
        if k not in names:
            raise ConfigError(
                f"unknown {cls.__module__}.Config field {k!r}: the saved configuration comes from "
                "another version of advantage; use that version, or start a new run"
            )
        kwargs[k] = tuple(v) if isinstance(v, list) else v
    return cls(**kwargs)
