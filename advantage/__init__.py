"""advantage: policy-search reinforcement learning in JAX.

The package is organised as in ``docs/architecture.md``: ``core`` holds the
math (returns, advantages, distributions), ``envs`` the functional environment
contract, the JAX-native classic-control environments and the Gymnasium bridge,
``algos`` one file per algorithm family, ``training`` the one generic driver.
"""

__version__ = "0.1.0"

# Before JAX starts: XLA's CPU code capped at AVX2, so that the same seed gives the same numbers on
# any x86-64 CPU (advantage/cpu.py; ADVANTAGE_NATIVE_ISA=1 lifts it).
from advantage import cpu as _cpu  # noqa: E402

_cpu.pin_isa()


def __getattr__(name: str):
    """``advantage.load_policy`` and ``advantage.Policy``, imported on first use (``import advantage`` stays fast)."""
    if name in ("load_policy", "Policy"):
        import importlib

        return getattr(importlib.import_module("advantage.policy"), name)
    raise AttributeError(f"module 'advantage' has no attribute {name!r}")
