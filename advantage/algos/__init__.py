"""Algorithms, one module each. Every module satisfies a protocol of ``advantage.algos.api``:
``Algorithm`` (``NAME``, ``Config``, ``PRESETS``, ``DEFAULT_STEPS``, ``init``, ``act``, ``update``,
``policy_params``, ...) or ``SearchAlgorithm``. ``register`` adds one of your own (docs/how-to/add-an-algorithm.md)."""

from __future__ import annotations

import difflib
import importlib
from types import ModuleType

from advantage.errors import ConfigError, UnknownNameError

ALGORITHMS: dict[str, str] = {
    "ppo": "advantage.algos.ppo",
    # on-policy family (issue: REINFORCE ... importance-sampled PG)
    "reinforce": "advantage.algos.reinforce",
    "qac": "advantage.algos.actor_critic",
    "a2c": "advantage.algos.a2c",
    "ac-lambda": "advantage.algos.ac_lambda",
    "npg": "advantage.algos.npg",
    "trpo": "advantage.algos.trpo",
    "nac": "advantage.algos.nac",
    "is-pg": "advantage.algos.offpolicy_pg",
    "impala": "advantage.algos.impala",
    "a3c": "advantage.algos.a3c",
    # off-policy actor-critic
    "ddpg": "advantage.algos.ddpg",
    "td3": "advantage.algos.td3",
    "sac": "advantage.algos.sac",
    # value-based baseline (the slides' comparison)
    "dqn": "advantage.algos.dqn",
    # gradient-free policy search (driven by advantage/training/search.py)
    "cem": "advantage.algos.cem",
    "hill-climb": "advantage.algos.hill_climb",
    "cma-es": "advantage.algos.cma_es",
    "ga": "advantage.algos.ga",
    "nelder-mead": "advantage.algos.nelder_mead",
}


def register(name: str, module: str) -> None:
    """Make the module ``module`` (an importable dotted path) available as algorithm ``name``: to the CLI
    (``advantage train NAME`` in a process that ran this, e.g. through ``python -m`` a script of yours), to
    ``driver.train`` and to saved runs. It is checked against ``advantage.algos.api`` at once."""
    from advantage.algos import api

    if name in ALGORITHMS and ALGORITHMS[name] != module:
        raise ConfigError(f"algorithm {name!r} is already registered as {ALGORITHMS[name]}; choose another name")
    api.kind(importlib.import_module(module))  # a ConfigError naming what is missing
    ALGORITHMS[name] = module


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
        raise UnknownNameError(
            f"algorithm {name!r} is planned but not implemented yet. Available: {', '.join(available())}."
        )
    return importlib.import_module(ALGORITHMS[name])
