"""A JAX-native bandit whose arms share features, for the state-action feature tests (``"parity_arms:ParityArms"``).

An importable module (not a test file) so that ``--env parity_arms:ParityArms`` and
``--action-features parity_arms:parity_features`` paths resolve.
"""

from __future__ import annotations

import jax.numpy as jnp

from advantage.envs.probes import ContextualBandit
from advantage.envs.spaces import Discrete

N_ARMS = 16


class ParityArms(ContextualBandit):
    """One step; the observation is +1 or -1 at random; ``N_ARMS`` arms. Reward 1 for an even arm on +1 and for an
    odd arm on -1, else 0 (a uniform policy earns 1/2).

    With :func:`parity_features`, ``phi(s, a) = s (+1 even, -1 odd)``, one shared weight sets all the logits,
    so what is learned about one arm carries over to every arm of its parity."""

    name = "parity_arms:ParityArms"

    def action_space(self, params):
        return Discrete(N_ARMS)

    def step(self, key, state, action, params):
        even = (action % 2 == 0).astype(jnp.float32)
        reward = jnp.where(state.obs[0] > 0, even, 1.0 - even)
        obs, st = self._state(0.0, state.t + 1)
        term, trunc = self._done(True)
        return obs, st, jnp.asarray(reward, jnp.float32), term, trunc, {}


def parity_features(obs):
    """``phi(s, a) = [s_0 (+1 if a is even else -1)]`` for every arm: ``[N_ARMS, 1]``."""
    sign = jnp.where(jnp.arange(N_ARMS) % 2 == 0, 1.0, -1.0)
    return (obs[0] * sign)[:, None]


def parity_indicators(obs):
    """``phi(s, a) = [s_0 [a even], s_0 [a odd]]``: two shared weights, ``[N_ARMS, 2]``."""
    even = (jnp.arange(N_ARMS) % 2 == 0).astype(jnp.float32)
    return obs[0] * jnp.stack([even, 1.0 - even], axis=-1)
