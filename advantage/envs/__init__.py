"""Environments: the functional JAX contract, wrappers, classic control and the Gymnasium bridge."""

from advantage.envs.api import Environment
from advantage.envs.registry import is_jax_env, is_registered, make, register, registered_ids, spec
from advantage.envs.spaces import Box, Discrete, MultiDiscrete
from advantage.envs.wrappers import AutoReset, EpisodeStats, TimeLimit, Wrapper

__all__ = [
    "AutoReset",
    "Box",
    "Discrete",
    "Environment",
    "EpisodeStats",
    "MultiDiscrete",
    "TimeLimit",
    "Wrapper",
    "is_jax_env",
    "is_registered",
    "make",
    "register",
    "registered_ids",
    "spec",
]

# Importing them registers the lectures', the probe/... and the pixels/... environments.
from advantage.envs import lectures, pixels, probes  # noqa: E402,F401
