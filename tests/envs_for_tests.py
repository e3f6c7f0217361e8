"""Small Gymnasium environments for the bridge and validation tests.

They live in an importable module (not in the test files) so that
``AsyncVectorEnv`` workers and ``"envs_for_tests:Class"`` paths can import them.
Each "bad" env breaks exactly one rule unless its docstring says otherwise.
"""

from __future__ import annotations

import gymnasium
import numpy as np
from gymnasium import spaces


class CountEnv(gymnasium.Env):
    """obs = [t, noise], reward = 1 + action-dependent term; terminates after ``length`` steps.

    With ``obs_dtype=np.float64`` it returns float64 observations for a float64 Box.
    """

    def __init__(self, length: int = 5, obs_dtype=np.float32):
        self.length = length
        self.obs_dtype = obs_dtype
        self.observation_space = spaces.Box(-np.inf, np.inf, (2,), obs_dtype)
        self.action_space = spaces.Discrete(2)
        self.t = 0

    def _obs(self):
        return np.array([self.t, self.noise], dtype=self.obs_dtype)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        self.noise = float(self.np_random.uniform()) + 1e-10  # float64-only precision
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        reward = 1.0 + int(action)
        return self._obs(), reward, self.t >= self.length, False, {}


def make_count_env(length: int = 5):
    """A factory function (for the ``module:function`` form)."""
    return CountEnv(length=length)


class ActionRecorderEnv(gymnasium.Env):
    """Box(low, high) actions; the observation is the last action received."""

    def __init__(self, low=(0.0, -3.0), high=(10.0, 1.0)):
        self.action_space = spaces.Box(np.array(low, np.float32), np.array(high, np.float32))
        self.observation_space = spaces.Box(-np.inf, np.inf, self.action_space.shape, np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(self.action_space.shape, np.float32), {}

    def step(self, action):
        return np.asarray(action, np.float32).copy(), 0.0, False, False, {}


class DiscreteStartEnv(gymnasium.Env):
    """Discrete(3, start=-1) actions, Discrete(4, start=2) observations (obs = 2 + action + 1)."""

    def __init__(self):
        self.action_space = spaces.Discrete(3, start=-1)
        self.observation_space = spaces.Discrete(4, start=2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return 2, {}

    def step(self, action):
        return int(action) + 3, float(action), False, False, {}


class NanAtStepEnv(gymnasium.Env):
    """Finite until step ``at``; then NaN in observation entry 1 (``what="obs"``) or the reward.

    With ``only_seed`` set, only an env last reset with that seed produces NaN.
    """

    def __init__(self, at: int = 3, what: str = "obs", only_seed: int | None = None):
        self.at, self.what, self.only_seed = at, what, only_seed
        self.seed_used = None
        self.observation_space = spaces.Box(-np.inf, np.inf, (3,), np.float32)
        self.action_space = spaces.Discrete(2)
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            self.seed_used = seed
        self.t = 0
        return np.zeros(3, np.float32), {}

    def step(self, action):
        self.t += 1
        obs = np.full(3, self.t, np.float32)
        reward = 1.0
        if self.t >= self.at and (self.only_seed is None or self.seed_used == self.only_seed):
            if self.what == "obs":
                obs[1] = np.nan
            else:
                reward = float("nan")
        return obs, reward, False, False, {}


# ---------------------------------------------------------------------------- bad envs


class _Base(gymnasium.Env):
    def __init__(self):
        self.observation_space = spaces.Box(-1.0, 1.0, (3,), np.float32)
        self.action_space = spaces.Discrete(2)

    def _obs(self):
        return np.zeros(3, np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self._obs(), {}

    def step(self, action):
        return self._obs(), 0.0, False, False, {}


class WrongShapeEnv(_Base):
    def _obs(self):
        return np.zeros(5, np.float32)


class ResetOnlyObsEnv(_Base):
    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self._obs()


class FourTupleStepEnv(_Base):
    def step(self, action):
        return self._obs(), 0.0, False, {}


class OutOfBoundsEnv(_Base):
    """Entries 0 and 2 are outside [-1, 1] on every observation."""

    def _obs(self):
        return np.array([1.5, 0.0, -7.0], np.float32)


class NanRewardEnv(NanAtStepEnv):
    def __init__(self):
        super().__init__(at=4, what="reward")


class NanObsEnv(NanAtStepEnv):
    def __init__(self):
        super().__init__(at=4, what="obs")


class InfiniteActionBoundsEnv(_Base):
    def __init__(self):
        super().__init__()
        self.action_space = spaces.Box(-np.inf, np.inf, (2,), np.float32)


class DictObsEnv(_Base):
    def __init__(self):
        super().__init__()
        self.observation_space = spaces.Dict({"pos": spaces.Box(-1.0, 1.0, (2,), np.float32)})

    def _obs(self):
        return {"pos": np.zeros(2, np.float32)}


class OldGymBox:
    """Stands for ``gym.spaces.Box`` (the old, unmaintained package) without installing gym."""

    __module__ = "gym.spaces.box"

    def __init__(self, shape):
        self.shape = shape
        self.low = -np.ones(shape, np.float32)
        self.high = np.ones(shape, np.float32)

    def sample(self):
        return np.zeros(self.shape, np.float32)

    def __repr__(self):
        return f"Box(-1.0, 1.0, {self.shape}, float32)"


class GymSpaceEnv(_Base):
    def __init__(self):
        super().__init__()
        self.observation_space = OldGymBox((3,))


class OldGymEnv:
    """Stands for a ``gym.Env`` subclass (the old package)."""

    def __init__(self):
        self.observation_space = OldGymBox((3,))
        self.action_space = OldGymBox((1,))

    def reset(self):
        return np.zeros(3, np.float32)

    def step(self, action):
        return np.zeros(3, np.float32), 0.0, False, {}


OldGymEnv.__module__ = "gym.core"


def returns_class():
    """A factory that forgot the parentheses."""
    return CountEnv


class ThreeProblemsEnv(_Base):
    """reset returns only obs, step returns four values, and the observation has the wrong shape."""

    def _obs(self):
        return np.zeros(4, np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self._obs()

    def step(self, action):
        return self._obs(), 0.0, False, {}


class UnseededEnv(_Base):
    """Draws its start state from the global numpy RNG: not reproducible from reset(seed)."""

    def _obs(self):
        return np.random.uniform(-1, 1, 3).astype(np.float32)


class InPlaceEnv(gymnasium.Env):
    """Returns its own state buffer, updated in place (also by reset): obs = [t]; ends after 3 steps."""

    def __init__(self):
        self.observation_space = spaces.Box(-np.inf, np.inf, (1,), np.float32)
        self.action_space = spaces.Discrete(2)
        self.state = np.zeros(1, np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.state[:] = 0.0
        return self.state, {}

    def step(self, action):
        self.state += 1.0
        return self.state, 1.0, bool(self.state[0] >= 3), False, {}


# ---------------------------------------------------------------------------- for the training driver


class MatrixObsEnv(gymnasium.Env):
    """A 2-D Box observation (3 x 4); reward 1 for action 1. Episodes last 5 steps."""

    def __init__(self):
        self.observation_space = spaces.Box(-1.0, 1.0, (3, 4), np.float32)
        self.action_space = spaces.Discrete(2)
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self.np_random.uniform(-1, 1, (3, 4)).astype(np.float32), {}

    def step(self, action):
        self.t += 1
        obs = self.np_random.uniform(-1, 1, (3, 4)).astype(np.float32)
        return obs, float(action == 1), self.t >= 5, False, {}


class EndlessEnv(gymnasium.Env):
    """Never terminates and has no time limit: evaluation must cut it."""

    observation_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        return np.zeros(2, np.float32), 1.0, False, False, {}


def _jax_probe():
    from advantage.envs.probes import ConstantReward

    class UserJaxEnv(ConstantReward):
        """A user's own JAX-native env, reached by a module:Class path."""

        max_episode_steps = 1

    return UserJaxEnv


UserJaxEnv = _jax_probe()


def _nan_jax_env():
    import jax.numpy as jnp

    from advantage.envs.probes import EndlessReward

    class NanAfter50(EndlessReward):
        """A JAX-native env whose observation becomes NaN from its 50th step on."""

        max_episode_steps = 1000

        def step(self, key, state, action, params):
            obs, st, reward, term, trunc, info = super().step(key, state, action, params)
            obs = jnp.where(st.t >= 50, jnp.nan, obs)
            return obs, st.replace(obs=obs), reward, term, trunc, info

    return NanAfter50


NanAfter50 = _nan_jax_env()


# ---------------------------------------------------------------------------- structured spaces


class FactoredBanditEnv(gymnasium.Env):
    """The Gymnasium twin of ``probe/FactoredBandit-v0``: one step, observation +1 / -1, a ``MultiDiscrete``
    action (``nvec (3, 4, 2)``, with ``start``); reward = fraction of factors equal to the context's target.
    ``binary=True``: a ``MultiBinary(4)`` action instead, targets two bit patterns."""

    TARGETS = ((0, 3, 0), (2, 1, 1))
    BITS = ((1, 0, 1, 1), (0, 1, 1, 0))

    def __init__(self, binary: bool = False, start=(0, 0, 0)):
        self.binary = binary
        self.observation_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.start = np.asarray(start)
        self.action_space = spaces.MultiBinary(4) if binary else spaces.MultiDiscrete([3, 4, 2], start=self.start)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.context = int(self.np_random.integers(2))
        return np.array([1.0 if self.context else -1.0], np.float32), {}

    def step(self, action):
        action = np.asarray(action)
        target = np.asarray((self.BITS if self.binary else self.TARGETS)[self.context])
        if not self.binary:
            target = target + self.start
        reward = float(np.mean(action.reshape(-1) == target))
        return np.zeros(1, np.float32), reward, True, False, {}


class DictCueEnv(gymnasium.Env):
    """One step, a ``Dict`` observation ``{"noise": Box(2), "cue": Discrete(2), "pos": Box((2, 2))}`` (keys
    declared out of order); reward 1 for the action equal to the cue. Only the flattened ``cue`` tells."""

    def __init__(self):
        self.observation_space = spaces.Dict(
            {
                "noise": spaces.Box(-1.0, 1.0, (2,), np.float32),
                "cue": spaces.Discrete(2),
                "pos": spaces.Box(-1.0, 1.0, (2, 2), np.float32),
            }
        )
        self.action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.cue = int(self.np_random.integers(2))
        obs = {
            "noise": self.np_random.uniform(-1, 1, 2).astype(np.float32),
            "cue": self.cue,
            "pos": np.zeros((2, 2), np.float32),
        }
        return obs, {}

    def step(self, action):
        obs = {"noise": np.zeros(2, np.float32), "cue": 0, "pos": np.zeros((2, 2), np.float32)}
        return obs, float(int(action) == self.cue), True, False, {}


class NestedSequenceObsEnv(_Base):
    """A ``Dict`` observation with a ``Sequence`` part: cannot be flattened into one vector."""

    def __init__(self):
        super().__init__()
        self.observation_space = spaces.Dict(
            {"pos": spaces.Box(-1.0, 1.0, (2,), np.float32), "path": spaces.Sequence(spaces.Discrete(4))}
        )


class DictCartPole(gymnasium.ObservationWrapper):
    """CartPole-v1 with a ``Dict`` observation ``{"pole": (angle, angular velocity), "cart": (x, velocity)}``."""

    def __init__(self):
        super().__init__(gymnasium.make("CartPole-v1"))
        box = self.env.observation_space
        self.observation_space = spaces.Dict(
            {
                "pole": spaces.Box(box.low[2:], box.high[2:], (2,), np.float32),
                "cart": spaces.Box(box.low[:2], box.high[:2], (2,), np.float32),
            }
        )

    def observation(self, obs):
        return {"pole": obs[2:].astype(np.float32), "cart": obs[:2].astype(np.float32)}


class ImageBanditEnv(gymnasium.Env):
    """``probe/ImageBandit-v0`` as a Gymnasium env with a ``uint8`` image observation: ``Box(0, 255, (8, 8, 1),
    uint8)``, one pixel lit at 255; reward 1 for the quadrant of the lit pixel (``2 * (row >= 4) + (col >= 4)``),
    one step per episode. For the CNN torso on the Gymnasium back end (tests/test_cnn.py)."""

    size = 8

    def __init__(self):
        self.observation_space = spaces.Box(0, 255, (self.size, self.size, 1), np.uint8)
        self.action_space = spaces.Discrete(4)
        self.cell = 0

    def _image(self, cell):
        img = np.zeros((self.size, self.size, 1), np.uint8)
        img[cell // self.size, cell % self.size, 0] = 255
        return img

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.cell = int(self.np_random.integers(self.size * self.size))
        return self._image(self.cell), {}

    def step(self, action):
        half = self.size // 2
        row, col = divmod(self.cell, self.size)
        reward = float(int(action) == 2 * (row >= half) + (col >= half))
        return np.zeros((self.size, self.size, 1), np.uint8), reward, True, False, {}
