"""advantage: policy-search reinforcement learning in JAX.

The package is organised as in ``docs/architecture.md``: ``core`` holds the
math (returns, advantages, distributions), ``envs`` the functional environment
contract, the JAX-native classic-control environments and the Gymnasium bridge,
``algos`` one file per algorithm family, ``training`` the one generic driver.
"""

__version__ = "0.1.0"
