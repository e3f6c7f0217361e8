"""gymnax environments on the JAX-native path: ``--env gymnax:ID`` (``pip install "advantage[gymnax]"``).

`gymnax <https://github.com/RobertTLange/gymnax>`_ writes classic control, bsuite, MinAtar and a few
other environments as pure JAX functions, so they run inside the compiled training loop like the
built-in ones. :class:`GymnaxEnv` adapts one onto this library's contract (``advantage/envs/api.py``):

* ``reset`` is gymnax's ``reset_env`` and ``step`` its ``step_env``: one transition and no reset (gymnax's
  own ``step`` resets by itself; here ``AutoReset`` does, and keeps the true last observation in
  ``info["final_obs"]``).
* ``terminated`` is what ``step_env`` returns: the MDP's terminal states only (gymnax >= 1.0; earlier
  versions mixed the time limit into one ``done``). ``truncated`` is gymnax's time limit, read back from
  the state after the step: ``state.time >= params.max_steps_in_episode`` (gymnax's ``is_truncated``).
  When the last allowed step also terminates, both are true and ``terminated`` wins: no bootstrapping, as
  with :class:`~advantage.envs.wrappers.TimeLimit`. A truncated episode bootstraps from ``final_obs``.
* Spaces become this library's: ``Discrete(n)`` actions stay ``Discrete(n)``, ``Box`` spaces become
  float32 ``Box`` es of the same shape and bounds, and a ``Discrete(n)`` observation (FrozenLake-misc) is
  one-hot encoded, as the Gymnasium bridge does. Observations are float32, rewards float32.
  Dict and Tuple spaces are refused.

The time limit is also :attr:`GymnaxEnv.max_episode_steps`, which caps evaluation episodes.
"""

from __future__ import annotations

import difflib

import jax
import jax.numpy as jnp
import numpy as np

from advantage.envs.api import Environment
from advantage.envs.spaces import Box, Discrete
from advantage.errors import EnvError, MissingExtraError, UnknownNameError

INSTALL_HINT = 'gymnax environments need the gymnax package: pip install "advantage[gymnax]"'


def import_gymnax():
    """The ``gymnax`` module, or a :class:`MissingExtraError` that names the extra to install."""
    try:
        import gymnax
    except ImportError as e:
        raise MissingExtraError(f"{INSTALL_HINT} ({e})") from None
    return gymnax


def convert_space(space, env_id: str, what: str) -> Discrete | Box:
    """A gymnax ``Discrete`` or ``Box`` as this library's space (a ``Discrete`` observation: one-hot ``Box``)."""
    from gymnax.environments import spaces

    if isinstance(space, spaces.Discrete):
        if what == "observation":
            n = int(space.n)
            return Box(np.zeros(n, np.float32), np.ones(n, np.float32), (n,), one_hot=True)
        return Discrete(int(space.n))
    if isinstance(space, spaces.Box):
        shape = tuple(int(d) for d in space.shape)
        return Box(np.asarray(space.low, np.float32), np.asarray(space.high, np.float32), shape)
    raise EnvError(
        f"gymnax:{env_id} has a {type(space).__name__} {what} space, which advantage does not support "
        "(only Discrete and Box); choose another environment"
    )


class GymnaxEnv(Environment):
    """The gymnax environment ``env_id`` (keyword arguments go to its constructor) on this library's contract."""

    def __init__(self, env_id: str, **kwargs):
        gymnax = import_gymnax()
        if env_id not in gymnax.registered_envs:
            close = difflib.get_close_matches(env_id, gymnax.registered_envs, n=3)
            hint = f" Did you mean {', '.join('gymnax:' + c for c in close)}?" if close else ""
            raise UnknownNameError(
                f"No gymnax environment named {env_id!r}.{hint} Available: {', '.join(gymnax.registered_envs)}."
            )
        self.env, self._params = gymnax.make(env_id, **kwargs)
        self.env_id = env_id
        self.name = f"gymnax:{env_id}"
        self.max_episode_steps = int(self._params.max_steps_in_episode)
        obs_space = self.observation_space(self._params)  # Dict/Tuple spaces fail here
        self.action_space(self._params)
        self._one_hot = obs_space.shape[0] if obs_space.one_hot else 0  # the size of a one-hot observation

    def default_params(self):
        return self._params

    def _obs(self, obs):
        if self._one_hot:
            return jax.nn.one_hot(obs, self._one_hot, dtype=jnp.float32)
        return jnp.asarray(obs, jnp.float32)

    def reset(self, key, params):
        obs, state = self.env.reset_env(key, params)
        return self._obs(obs), state

    def step(self, key, state, action, params):
        obs, state, reward, terminated, info = self.env.step_env(key, state, action, params)
        truncated = self.env.is_truncated(state, params)
        info = jax.tree.map(jnp.asarray, info)
        return (
            self._obs(obs),
            state,
            jnp.asarray(reward, jnp.float32),
            jnp.asarray(terminated, jnp.bool_),
            jnp.asarray(truncated, jnp.bool_),
            info,
        )

    def observation_space(self, params) -> Box:
        space = convert_space(self.env.observation_space(params), self.env_id, "observation")
        assert isinstance(space, Box)  # Discrete observations are one-hot boxes
        return space

    def action_space(self, params) -> Discrete | Box:
        return convert_space(self.env.action_space(params), self.env_id, "action")


def make(env_id: str, **kwargs) -> GymnaxEnv:
    """``gymnax:ENV_ID`` of the registry: the adapter, whose time limit is gymnax's own."""
    return GymnaxEnv(env_id, **kwargs)
