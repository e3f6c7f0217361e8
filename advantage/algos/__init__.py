"""Algorithms, one module each. Every module exposes ``NAME``, ``Config``, ``PRESETS``,
``DEFAULT_STEPS``, ``init``, ``act``, ``update`` and ``policy_params``."""

from __future__ import annotations

import difflib
import importlib
from types import ModuleType

from advantage.errors import UnknownNameError

ALGORITHMS: dict[str, str] = {
    "ppo": "advantage.algos.ppo",
    # on-policy family (issue: REINFORCE ... importance-sampled PG)
    "reinforce": "advantage.algos.reinforce",
    "qac": "advantage.algos.actor_critic",
    "a2c": "advantage.algos.a2c",
    "ac-lambda": "advantage.algos.ac_lambda",
    "npg": "advantage.algos.npg",
    "trpo": "advantage.algos.trpo",
    "is-pg": "advantage.algos.offpolicy_pg",
    # off-policy actor-critic
    "ddpg": "advantage.algos.ddpg",
    "td3": "advantage.algos.td3",
    "sac": "advantage.algos.sac",
    # gradient-free policy search (driven by advantage/training/search.py)
    "cem": "advantage.algos.cem",
    "hill-climb": "advantage.algos.hill_climb",
    "cma-es": "advantage.algos.cma_es",
}


def available() -> list[str]:
    """Names whose module exists in this installation."""
    import importlib.util

    return sorted(n for n, m in ALGORITHMS.items() if importlib.util.find_spec(m) is not None)


def get(name: str) -> ModuleType:
    if name not in ALGORITHMS:
        close = difflib.get_close_matches(name, ALGORITHMS, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UnknownNameError(f"unknown algorithm {name!r}.{hint} Available: {', '.join(available())}.")
    if name not in available():
        raise UnknownNameError(f"algorithm {name!r} is planned but not implemented yet. "
                               f"Available: {', '.join(available())}.")
    return importlib.import_module(ALGORITHMS[name])
