"""Algorithms, one module each. Every module exposes ``NAME``, ``Config``, ``PRESETS``,
``DEFAULT_STEPS``, ``init``, ``act``, ``update`` and ``policy_params``."""

from __future__ import annotations

import difflib
import importlib
from types import ModuleType

ALGORITHMS: dict[str, str] = {
    "ppo": "advantage.algos.ppo",
}


def get(name: str) -> ModuleType:
    if name not in ALGORITHMS:
        close = difflib.get_close_matches(name, ALGORITHMS, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise KeyError(f"unknown algorithm {name!r}.{hint} Available: {', '.join(sorted(ALGORITHMS))}.")
    return importlib.import_module(ALGORITHMS[name])
