"""Probe environments: tiny MDPs whose correct value or action is known in closed
form, so a learning test can check that an agent learned *the right thing*
(after Andy Jones, "Debugging RL, without the agonizing pain", 2021).

=========================  ======================================  ==========================
probe                      what it isolates                        known answer
=========================  ======================================  ==========================
``ConstantReward``         the value loss                          V(s) = 1
``ObsDependentReward``     value depends on the observation        V(+1) = 1, V(-1) = -1
``TwoStep``                discounting / bootstrapping             V(s0) = gamma, V(s1) = 1
``ActionReward``           the policy gradient's sign              pi(a=1) -> 1 (or a -> target)
``ContextualBandit``       policy depends on the observation      a = obs (or a -> obs)
``EndlessReward``          truncation bootstraps                   V = 1 / (1 - gamma)
``FactoredBandit``         a MultiDiscrete (factored) policy       a = TARGETS[obs > 0]
``ImageBandit``            a policy over pixels (``--torso cnn``)  a = the lit pixel's quadrant
=========================  ======================================  ==========================

Each has a discrete and (where it makes sense) a continuous action version; ``FactoredBandit``
has ``MultiDiscrete((3, 4, 2))`` actions, ``ImageBandit`` an ``8 x 8 x 1`` image observation and
``Discrete(4)`` actions.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from advantage.envs.api import Environment
from advantage.envs.registry import register
from advantage.envs.spaces import Box, Discrete, MultiDiscrete


@struct.dataclass
class ProbeState:
    obs: jax.Array
    t: jax.Array


@struct.dataclass
class ProbeParams:
    pass


class _Probe(Environment):
    obs_dim = 1

    def __init__(self, continuous: bool = False):
        self.continuous = continuous

    def default_params(self):
        return ProbeParams()

    def observation_space(self, params):
        return Box(-1.0, 1.0, (self.obs_dim,))

    def action_space(self, params):
        return Box(-1.0, 1.0, (1,)) if self.continuous else Discrete(2)

    def _state(self, obs, t=0):
        obs = jnp.asarray(obs, jnp.float32).reshape(self.obs_dim)
        return obs, ProbeState(obs, jnp.asarray(t, jnp.int32))

    def reset(self, key, params):
        return self._state(0.0)

    @staticmethod
    def _done(flag):
        return jnp.asarray(flag, bool), jnp.asarray(False)


class ConstantReward(_Probe):
    """One step, observation 0, reward 1 whatever the action: the critic must learn V = 1."""

    name = "probe/ConstantReward-v0"

    def step(self, key, state, action, params):
        obs, st = self._state(0.0, state.t + 1)
        term, trunc = self._done(True)
        return obs, st, jnp.float32(1.0), term, trunc, {}


class ObsDependentReward(_Probe):
    """One step; observation +1 or -1 at random, reward equal to it: V(obs) = obs."""

    name = "probe/ObsDependentReward-v0"

    def reset(self, key, params):
        return self._state(jnp.where(jax.random.bernoulli(key), 1.0, -1.0))

    def step(self, key, state, action, params):
        obs, st = self._state(0.0, state.t + 1)
        term, trunc = self._done(True)
        return obs, st, state.obs[0], term, trunc, {}


class TwoStep(_Probe):
    """Observation -1 then +1; reward 1 only at the end of the second step.

    V(-1) = gamma, V(+1) = 1: wrong if discounting or bootstrapping is broken."""

    name = "probe/TwoStep-v0"

    def reset(self, key, params):
        return self._state(-1.0)

    def step(self, key, state, action, params):
        last = state.t >= 1
        obs, st = self._state(1.0, state.t + 1)
        term, trunc = self._done(last)
        return obs, st, jnp.where(last, 1.0, 0.0).astype(jnp.float32), term, trunc, {}


class ActionReward(_Probe):
    """One step, observation 0. Discrete: reward 1 for action 1, 0 for action 0.
    Continuous: reward -(a - 0.5)^2, best action 0.5 (in the agent's [-1, 1] units)."""

    name = "probe/ActionReward-v0"
    target = 0.5

    def step(self, key, state, action, params):
        if self.continuous:
            reward = -((action[0] - self.target) ** 2)
        else:
            reward = (action == 1).astype(jnp.float32)
        obs, st = self._state(0.0, state.t + 1)
        term, trunc = self._done(True)
        return obs, st, jnp.asarray(reward, jnp.float32), term, trunc, {}


class ContextualBandit(_Probe):
    """One step; observation +1 or -1 at random. Discrete: reward 1 if action 1 is taken
    on +1 or action 0 on -1. Continuous: reward -(a - 0.5 obs)^2, best action 0.5 obs."""

    name = "probe/ContextualBandit-v0"

    def reset(self, key, params):
        return self._state(jnp.where(jax.random.bernoulli(key), 1.0, -1.0))

    def step(self, key, state, action, params):
        o = state.obs[0]
        if self.continuous:
            reward = -((action[0] - 0.5 * o) ** 2)
        else:
            reward = (action == (o > 0).astype(jnp.int32)).astype(jnp.float32)
        obs, st = self._state(0.0, state.t + 1)
        term, trunc = self._done(True)
        return obs, st, jnp.asarray(reward, jnp.float32), term, trunc, {}


class EndlessReward(_Probe):
    """Reward 1 on every step, never terminates; registered with a time limit of 10 steps.

    The episode is only ever *truncated*, so the true value is 1 / (1 - gamma) (10 for
    gamma = 0.9). A critic that treats the time limit as termination learns the
    finite-horizon value instead (about 6.5 averaged over the 10 steps for gamma = 0.9)."""

    name = "probe/EndlessReward-v0"

    def step(self, key, state, action, params):
        obs, st = self._state(0.0, state.t + 1)
        term, trunc = self._done(False)
        return obs, st, jnp.float32(1.0), term, trunc, {}


class FactoredBandit(_Probe):
    """One step; observation +1 or -1 at random; a ``MultiDiscrete((3, 4, 2))`` action. The reward is the
    fraction of the three factors equal to the observation's target, ``TARGETS[1]`` on +1 and ``TARGETS[0]``
    on -1: 1 for the right joint action, about 0.36 for a uniformly random one ((1/3 + 1/4 + 1/2) / 3). Each
    factor must be learned, and from the observation."""

    name = "probe/FactoredBandit-v0"
    nvec = (3, 4, 2)
    TARGETS = ((0, 3, 0), (2, 1, 1))

    def action_space(self, params):
        return MultiDiscrete(self.nvec)

    def reset(self, key, params):
        return self._state(jnp.where(jax.random.bernoulli(key), 1.0, -1.0))

    def step(self, key, state, action, params):
        target = jnp.asarray(self.TARGETS, jnp.int32)[(state.obs[0] > 0).astype(jnp.int32)]
        reward = jnp.mean((action == target).astype(jnp.float32))
        obs, st = self._state(0.0, state.t + 1)
        term, trunc = self._done(True)
        return obs, st, reward, term, trunc, {}


class ImageBandit(_Probe):
    """One step; the observation is an ``8 x 8 x 1`` image, black (0) but for one pixel lit at 255, drawn
    uniformly; four actions, reward 1 for the index of the quadrant the pixel lies in (``2 * (row >= 4) +
    (col >= 4)``), else 0. The optimal policy scores 1 (so V = 1 on every image), a uniformly random one 1/4. The
    answer is in the pixels' positions, which a network must tell apart: a CNN (``--torso cnn``) or the MLP over
    the 64 raveled pixels."""

    name = "probe/ImageBandit-v0"
    size = 8

    def observation_space(self, params):
        return Box(0.0, 255.0, (self.size, self.size, 1))

    def action_space(self, params):
        return Discrete(4)

    @classmethod
    def image(cls, cell):
        """The image with pixel ``cell`` (row-major index) lit: ``[size, size, 1]`` float32."""
        return (jnp.arange(cls.size * cls.size) == cell).astype(jnp.float32).reshape(cls.size, cls.size, 1) * 255.0

    @classmethod
    def quadrant(cls, cell):
        """The rewarded action for the image with pixel ``cell`` lit."""
        half = cls.size // 2
        return 2 * (cell // cls.size >= half).astype(jnp.int32) + (cell % cls.size >= half).astype(jnp.int32)

    def _image_state(self, obs, t):
        return obs, ProbeState(obs, jnp.asarray(t, jnp.int32))

    def reset(self, key, params):
        return self._image_state(self.image(jax.random.randint(key, (), 0, self.size * self.size)), 0)

    def step(self, key, state, action, params):
        cell = jnp.argmax(state.obs.reshape(-1))
        reward = (action == self.quadrant(cell)).astype(jnp.float32)
        obs, st = self._image_state(jnp.zeros_like(state.obs), state.t + 1)
        term, trunc = self._done(True)
        return obs, st, reward, term, trunc, {}


PROBES = {
    "probe/ConstantReward-v0": (ConstantReward, 1),
    "probe/ObsDependentReward-v0": (ObsDependentReward, 1),
    "probe/TwoStep-v0": (TwoStep, 2),
    "probe/ActionReward-v0": (ActionReward, 1),
    "probe/ContextualBandit-v0": (ContextualBandit, 1),
    "probe/EndlessReward-v0": (EndlessReward, 10),
}

for _id, (_cls, _limit) in PROBES.items():
    register(_id, _cls, _limit)
    register(_id.replace("-v0", "Continuous-v0"), lambda _cls=_cls: _cls(continuous=True), _limit)
register(FactoredBandit.name, FactoredBandit, 1)
register(ImageBandit.name, ImageBandit, 1)
