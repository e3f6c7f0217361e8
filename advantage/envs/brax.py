"""Brax environments on the JAX-native path: ``--env brax:NAME`` (``pip install "advantage[brax]"``).

`Brax <https://github.com/google/brax>`_ simulates rigid bodies in JAX (``inverted_pendulum``,
``inverted_double_pendulum``, ``reacher``, ``hopper``, ``ant``, ...), so its environments run inside the compiled
training loop. :class:`BraxEnv` adapts the *raw* environment (``brax.envs.get_environment``, none of Brax's
training wrappers) onto this library's contract (``advantage/envs/api.py``):

* ``reset`` and ``step`` are Brax's (``step`` takes no key: Brax's dynamics are deterministic); the state is
  Brax's ``State``, observations ``state.obs`` (float32), rewards ``state.reward``.
* ``terminated`` is Brax's ``state.done``: the raw environment sets it only on a terminal state (a fallen
  pendulum, a hopper that is no longer healthy). ``truncated`` comes from a :class:`TimeLimit` of
  ``episode_length`` steps (default 1000, ``brax.envs.create``'s), where ``brax.envs.create`` would add its
  ``EpisodeWrapper`` and report ``state.info["truncation"]`` -- the same episodes: Brax truncates on the
  ``episode_length``-th step unless that step terminates, and here ``terminated`` wins on that step (no
  bootstrapping). A truncated episode bootstraps from ``info["final_obs"]`` (``AutoReset`` keeps it).
* Actions are ``Box(-1, 1, (action_size,))``: Brax's environments take actions in [-1, 1] and scale them to
  the actuators' ranges themselves. Observations are an unbounded ``Box(-inf, inf, (observation_size,))``.

Keyword arguments (``--env-kwargs``) go to the environment's constructor (e.g. ``{"backend": "positional"}``,
the physics pipeline), except ``episode_length``, the time limit.
"""

from __future__ import annotations

import difflib

import jax
import jax.numpy as jnp
import numpy as np

from advantage.envs.api import Environment
from advantage.envs.spaces import Box
from advantage.envs.wrappers import TimeLimit
from advantage.errors import MissingExtraError, UnknownNameError

INSTALL_HINT = 'Brax environments need the brax package: pip install "advantage[brax]"'

#: ``brax.envs.create``'s default time limit.
EPISODE_LENGTH = 1000


def import_brax_envs():
    """``brax.envs``, or a :class:`MissingExtraError` that names the extra to install."""
    try:
        from brax import envs
    except ImportError as e:
        raise MissingExtraError(f"{INSTALL_HINT} ({e})") from None
    return envs


class BraxEnv(Environment):
    """The raw Brax environment ``name`` (keyword arguments go to its constructor) on this library's contract:
    it terminates and never truncates (:func:`make` adds the time limit)."""

    def __init__(self, name: str, **kwargs):
        envs = import_brax_envs()
        known = sorted(envs._envs)  # brax.envs has no public list of names; get_environment indexes this dict
        if name not in known:
            close = difflib.get_close_matches(name, known, n=3)
            hint = f" Did you mean {', '.join('brax:' + c for c in close)}?" if close else ""
            raise UnknownNameError(f"No Brax environment named {name!r}.{hint} Available: {', '.join(known)}.")
        self.env = envs.get_environment(name, **kwargs)
        self.name = f"brax:{name}"
        obs = jax.eval_shape(self.env.reset, jax.random.key_data(jax.random.key(0))).obs
        self._obs_shape = tuple(int(d) for d in obs.shape)
        self._action_size = int(self.env.action_size)

    def default_params(self):
        return None  # a Brax environment holds its system itself

    def reset(self, key, params):
        state = self.env.reset(_raw_key(key))
        return jnp.asarray(state.obs, jnp.float32), _floats(state)

    def step(self, key, state, action, params):
        state = _floats(self.env.step(state, action))
        terminated = state.done > 0.5
        return state.obs, state, state.reward, terminated, jnp.zeros((), jnp.bool_), {}

    def observation_space(self, params) -> Box:
        high = np.full(self._obs_shape, np.inf, np.float32)
        return Box(-high, high, self._obs_shape)

    def action_space(self, params) -> Box:
        shape = (self._action_size,)
        return Box(-np.ones(shape, np.float32), np.ones(shape, np.float32), shape)


def _raw_key(key):
    """Brax splits and draws from ``uint32[2]`` keys (``jax.random.PRNGKey``); a typed key is unwrapped."""
    return jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key


def _floats(state):
    """Brax's ``State`` with ``obs``, ``reward`` and ``done`` as float32 arrays (some environments return a
    Python float reward, which would change the state's types between ``reset`` and ``step``)."""
    return state.replace(
        obs=jnp.asarray(state.obs, jnp.float32),
        reward=jnp.asarray(state.reward, jnp.float32),
        done=jnp.asarray(state.done, jnp.float32),
    )


def make(name: str, episode_length: int = EPISODE_LENGTH, **kwargs) -> TimeLimit:
    """``brax:NAME`` of the registry: the raw environment under a ``TimeLimit`` of ``episode_length`` steps."""
    return TimeLimit(BraxEnv(name, **kwargs), episode_length)
