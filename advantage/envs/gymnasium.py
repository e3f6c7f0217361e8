"""The Gymnasium host back end: any ``gymnasium.Env`` as a batch of numpy arrays.

``GymnasiumVecEnv(env, num_envs)`` runs ``num_envs`` copies of a Gymnasium
environment in a ``gymnasium.vector.SyncVectorEnv`` (or ``AsyncVectorEnv``, one
process per copy) in *same-step* auto-reset mode, and presents them to the agent
exactly like the JAX-native back end presents its environments:

* observations are float32 ``[N, *obs_shape]`` (float64 and integer observations
  are cast; a ``Discrete(n)`` observation is one-hot encoded into ``[N, n]``; a ``Dict``,
  ``Tuple``, ``MultiDiscrete`` or ``MultiBinary`` observation is flattened into one vector
  ``[N, D]``, a Dict's keys in sorted order: :mod:`advantage.envs.flatten`);
* a Box action space is seen by the agent as ``Box(-1, 1, shape)``; actions are
  clipped to ``[-1, 1]`` and rescaled linearly to the env's ``[low, high]``;
  a ``Discrete(n, start=k)`` action space is seen as ``Discrete(n)`` (``k`` is added);
  ``MultiDiscrete(nvec, start)`` as a flat ``MultiDiscrete(nvec)`` (``start`` added, the env's
  shape restored) and ``MultiBinary(n)`` as ``MultiDiscrete([2] * n)``;
* when an episode ends, the returned observation is already the first one of the
  next episode, and ``info["final_obs"]`` holds the true last observation of the
  finished episode (equal to ``obs`` for sub-envs that did not end), so that a
  truncated episode can be bootstrapped;
* ``info["episode_return"]``, ``info["episode_length"]`` and ``info["episode_done"]``
  describe the episode that ended at this step (0 elsewhere).

The environment can be named by a registered Gymnasium id (``"CartPole-v1"``,
``"my_pkg.envs:MyEnv-v0"``), an import path (``"my_pkg.envs:MyEnv"`` or
``"my_pkg.envs:make_env"``) or given as a factory (a class or a function); see
:func:`resolve_env_factory`.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces as gs

from advantage.envs.flatten import FlattenObservation, needs_flattening
from advantage.envs.spaces import Box, Discrete, MultiDiscrete
from advantage.envs.validation import (
    EnvError,
    Problem,
    _fmt_index,
    _is_old_gym,
    check_gymnasium_env,
    format_problems,
    list_entries,
    space_problems,
)

__all__ = ["EnvError", "GymnasiumVecEnv", "resolve_env_factory", "find_max_episode_steps"]


# --------------------------------------------------------------------------- resolving the env


def _old_gym_error(cls: type, title: str) -> EnvError:
    return EnvError(
        format_problems(
            title,
            [
                Problem(
                    f"{cls.__name__} is an environment of the old `gym` package",
                    expected="an instance of a gymnasium.Env subclass",
                    actual=f"{cls.__module__}.{cls.__qualname__} (a gym.Env)",
                    cause="`import gym` instead of `import gymnasium as gym`; gym is unmaintained and "
                    "its API differs (reset returns obs only, step returns 4 values)",
                    fix="inherit from gymnasium.Env and follow its API "
                    "(https://gymnasium.farama.org/introduction/migration_guide/), or wrap a "
                    "gym env with shimmy's GymV26CompatibilityV0",
                )
            ],
        )
    )


def _check_env_instance(obj: Any, source: str) -> gymnasium.Env:
    """``obj`` (what ``source`` returned) must be a gymnasium.Env instance."""
    if isinstance(obj, gymnasium.Env):
        return obj
    if isinstance(obj, type):
        raise EnvError(
            format_problems(
                f"{source} did not build an environment",
                [
                    Problem(
                        f"it returned the class {obj.__name__}, not an instance",
                        expected="an environment instance",
                        actual=f"the class {obj.__module__}.{obj.__qualname__}",
                        fix=f"return {obj.__name__}(...) instead of {obj.__name__}, or pass the class itself as env",
                    )
                ],
            )
        )
    if _is_old_gym(obj):
        raise _old_gym_error(type(obj), f"{source} did not build a Gymnasium environment")
    raise EnvError(
        format_problems(
            f"{source} did not build a Gymnasium environment",
            [
                Problem(
                    f"it returned a {type(obj).__name__}",
                    expected="an instance of a gymnasium.Env subclass",
                    actual=f"{type(obj).__module__}.{type(obj).__qualname__}: {obj!r:.80}",
                    fix="make the class inherit from gymnasium.Env, or return a gymnasium.Env from the factory",
                )
            ],
        )
    )


def _check_kwargs(fn: Callable, kwargs: dict, what: str) -> None:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    try:
        sig.bind(**kwargs)
    except TypeError as e:
        raise EnvError(
            format_problems(
                f"Cannot build {what}",
                [
                    Problem(
                        "env_kwargs do not fit its signature",
                        expected=f"{what}{sig}",
                        actual=f"env_kwargs={kwargs!r} ({e})",
                        fix="pass only the keyword arguments it accepts",
                    )
                ],
            )
        ) from None


class _MakeFactory:
    """``gymnasium.make(env_id, **kwargs)`` (picklable, for AsyncVectorEnv)."""

    def __init__(self, env_id: str, kwargs: dict):
        self.env_id, self.kwargs = env_id, dict(kwargs)

    def __call__(self) -> gymnasium.Env:
        return _check_env_instance(gymnasium.make(self.env_id, **self.kwargs), f"gymnasium.make({self.env_id!r})")

    def __repr__(self):
        return f"gymnasium.make({self.env_id!r}, **{self.kwargs!r})"


class _ImportFactory:
    """Imports ``module:attr`` and calls it (picklable: the child process re-imports)."""

    def __init__(self, module: str, attr: str, kwargs: dict):
        self.module, self.attr, self.kwargs = module, attr, dict(kwargs)

    def __call__(self) -> gymnasium.Env:
        fn = getattr(importlib.import_module(self.module), self.attr)
        return _check_env_instance(fn(**self.kwargs), f"{self.module}:{self.attr}(**env_kwargs)")

    def __repr__(self):
        return f"{self.module}:{self.attr}(**{self.kwargs!r})"


class _CallableFactory:
    """Calls a user factory (a class or a function) with ``env_kwargs``."""

    def __init__(self, fn: Callable, kwargs: dict):
        self.fn, self.kwargs = fn, dict(kwargs)

    def __call__(self) -> gymnasium.Env:
        return _check_env_instance(self.fn(**self.kwargs), f"the env factory {_callable_name(self.fn)}")

    def __repr__(self):
        return f"{_callable_name(self.fn)}(**{self.kwargs!r})"


class _CopyObservations(gymnasium.ObservationWrapper):
    """Copies array observations, so that an env that updates its observation buffer in place
    (``self.state += ...; return self.state``) cannot overwrite ``final_obs`` when it resets."""

    def observation(self, observation):
        return observation.copy() if isinstance(observation, np.ndarray) else observation


class _FlatteningFactory:
    """Builds the env wrapped in :class:`advantage.envs.flatten.FlattenObservation` (a structured observation)."""

    def __init__(self, factory: Callable[[], gymnasium.Env]):
        self.factory = factory

    def __call__(self) -> gymnasium.Env:
        return FlattenObservation(self.factory())

    def __repr__(self):
        return repr(self.factory)


class _CopyingFactory:
    def __init__(self, factory: Callable[[], gymnasium.Env]):
        self.factory = factory

    def __call__(self) -> gymnasium.Env:
        return _CopyObservations(self.factory())


def _callable_name(fn: Callable) -> str:
    mod = getattr(fn, "__module__", None)
    name = getattr(fn, "__qualname__", None) or type(fn).__name__
    return f"{mod}.{name}" if mod else name


def _close_ids(env_id: str, n: int = 3) -> list[str]:
    ids = list(gymnasium.registry.keys())
    lower: dict[str, str] = {}
    for i in ids:
        lower.setdefault(i.lower(), i)
    exact_ci = [lower[env_id.lower()]] if env_id.lower() in lower else []
    close = [lower[m] for m in difflib.get_close_matches(env_id.lower(), list(lower), n=n, cutoff=0.6)]
    return list(dict.fromkeys(exact_ci + close))[:n]


def _unknown_id_error(env_id: str, detail: str | None = None) -> EnvError:
    close = _close_ids(env_id.split(":")[-1])
    fix = ("if it is a typo, use one of the close ids above. " if close else "") + (
        "Your own env: register it first "
        "(gymnasium.register(id='MyEnv-v0', entry_point='my_pkg.envs:MyEnv', max_episode_steps=...)) and pass "
        "'my_pkg.envs:MyEnv-v0', or skip the registry: env='my_pkg.envs:MyEnv', env=MyEnv or a factory function"
    )
    expected = "a registered Gymnasium id, 'module:Class', 'module:function', a class or a factory"
    if close:
        expected += "; close registered ids: " + ", ".join(repr(c) for c in close)
    return EnvError(
        format_problems(
            "Unknown environment",
            [
                Problem(
                    f"no Gymnasium environment is registered as {env_id!r}",
                    expected=expected,
                    actual=repr(env_id),
                    cause=f"gymnasium says: {detail}" if detail else None,
                    fix=fix,
                )
            ],
        )
    )


def resolve_env_factory(env: str | Callable, env_kwargs: dict | None = None) -> Callable[[], gymnasium.Env]:
    """A picklable zero-argument function that builds a fresh ``gymnasium.Env``.

    ``env`` may be

    * a registered Gymnasium id, ``"CartPole-v1"`` (``env_kwargs`` go to ``gymnasium.make``,
      e.g. ``max_episode_steps``), or ``"my_pkg.envs:MyEnv-v0"`` (imports ``my_pkg.envs``,
      which registers ``MyEnv-v0``);
    * an import path ``"my_pkg.envs:MyEnv"`` or ``"my_pkg.envs:make_env"``, called with ``env_kwargs``;
    * a class or factory function, called with ``env_kwargs``.

    Unknown ids raise :class:`EnvError` with close matches. The built object is
    checked when the factory is called: a class instead of an instance, or an old
    ``gym.Env``, raises :class:`EnvError`.
    """
    kwargs = dict(env_kwargs or {})
    if not isinstance(env, type) and _is_old_gym(env) and hasattr(env, "step"):
        raise _old_gym_error(type(env), "Cannot use an old gym environment")
    if isinstance(env, gymnasium.Env):
        raise EnvError(
            format_problems(
                "Cannot vectorise an environment instance",
                [
                    Problem(
                        f"env is an instance of {type(env).__name__}, but each sub-environment needs its own copy",
                        expected="a Gymnasium id, 'module:Class', a class or a function that builds a new env",
                        actual=f"an instance: {env!r:.80}",
                        fix=f"pass the class ({type(env).__name__}) with env_kwargs, or a function such as "
                        f"`lambda: {type(env).__name__}(...)`",
                    )
                ],
            )
        )
    if isinstance(env, str):
        return _resolve_string(env, kwargs)
    if callable(env):
        if isinstance(env, type):
            if _is_old_gym(env):
                raise _old_gym_error(env, f"Cannot use the class {env.__name__} as an environment")
            if not issubclass(env, gymnasium.Env):
                raise EnvError(
                    format_problems(
                        f"Cannot use the class {env.__name__} as an environment",
                        [
                            Problem(
                                f"{env.__name__} does not inherit from gymnasium.Env",
                                expected="a gymnasium.Env subclass",
                                actual=f"{env.__module__}.{env.__qualname__} (bases: "
                                f"{', '.join(b.__name__ for b in env.__mro__[1:])})",
                                fix=f"class {env.__name__}(gymnasium.Env): ...",
                            )
                        ],
                    )
                )
        _check_kwargs(env, kwargs, _callable_name(env))
        return _CallableFactory(env, kwargs)
    raise EnvError(
        format_problems(
            "Cannot build an environment",
            [
                Problem(
                    f"env is a {type(env).__name__}",
                    expected="a Gymnasium id, 'module:Class', 'module:function', a class or a factory function",
                    actual=repr(env)[:80],
                    fix="env='CartPole-v1', env='my_pkg.envs:MyEnv' or env=MyEnv",
                )
            ],
        )
    )


def _resolve_string(env: str, kwargs: dict) -> Callable[[], gymnasium.Env]:
    if ":" not in env:
        if env in gymnasium.registry:
            return _MakeFactory(env, kwargs)
        detail = None
        try:
            gymnasium.spec(env)
        except gymnasium.error.Error as e:
            detail = str(e)
        raise _unknown_id_error(env, detail)

    module_name, _, attr = env.rpartition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        raise EnvError(
            format_problems(
                f"Cannot import the environment {env!r}",
                [
                    Problem(
                        f"module {module_name!r} cannot be imported",
                        expected="an importable module (installed, or on sys.path / PYTHONPATH)",
                        actual=f"ModuleNotFoundError: {e}",
                        fix="install the package (pip install -e .), add its folder to PYTHONPATH, or check "
                        "the spelling of the module path before the ':'",
                    )
                ],
            )
        ) from e
    if hasattr(module, attr):
        obj = getattr(module, attr)
        if isinstance(obj, gymnasium.Env) or not callable(obj):
            what = "an environment instance" if isinstance(obj, gymnasium.Env) else f"a {type(obj).__name__}"
            raise EnvError(
                format_problems(
                    f"Cannot build the environment {env!r}",
                    [
                        Problem(
                            f"{env} is {what}, not a class or factory function",
                            expected="a gymnasium.Env subclass or a function returning a new env",
                            actual=f"{obj!r:.80}",
                            fix="point to the class or to a function that builds a new env on every call",
                        )
                    ],
                )
            )
        if isinstance(obj, type) and not issubclass(obj, gymnasium.Env):
            resolve_env_factory(obj)  # raises the class error
        _check_kwargs(obj, kwargs, env)
        return _ImportFactory(module_name, attr, kwargs)
    # "module:EnvId" in gymnasium's sense: the module registers the id on import
    if attr in gymnasium.registry:
        return _MakeFactory(env, kwargs)
    names = [n for n in dir(module) if not n.startswith("_")]
    close = difflib.get_close_matches(attr, names + list(gymnasium.registry.keys()), n=3, cutoff=0.6)
    raise EnvError(
        format_problems(
            f"Cannot find the environment {env!r}",
            [
                Problem(
                    f"module {module_name!r} has no attribute {attr!r}, and importing it registered no "
                    f"Gymnasium id {attr!r}",
                    expected="'module:Class', 'module:function' or 'module:RegisteredId-v0'",
                    actual=repr(env),
                    fix=("did you mean " + ", ".join(repr(f"{module_name}:{c}") for c in close) + "? " if close else "")
                    + "check the name after the ':', or register the id when the module is imported "
                    "(gymnasium.register(id=..., entry_point=...))",
                )
            ],
        )
    )


def find_max_episode_steps(env: gymnasium.Env) -> int | None:
    """The env's time limit: ``spec.max_episode_steps`` or a ``TimeLimit`` wrapper's; None if neither."""
    e: Any = env
    while e is not None:
        if isinstance(e, gymnasium.wrappers.TimeLimit):
            return int(e._max_episode_steps)
        e = getattr(e, "env", None) if isinstance(e, gymnasium.Wrapper) else None
    spec = getattr(env, "spec", None)
    steps = getattr(spec, "max_episode_steps", None)
    return int(steps) if steps is not None else None


# --------------------------------------------------------------------------- the vector env


def box_to_env(actions, low, high, dtype) -> np.ndarray:
    """Agent actions in ``[-1, 1]`` (clipped first) -> the env's ``Box(low, high)``, in float64, clipped to the
    bounds, rounded for an integer box, cast to its ``dtype`` (what :meth:`GymnasiumVecEnv.env_actions` sends)."""
    low, high = np.asarray(low, np.float64), np.asarray(high, np.float64)
    a = np.clip(np.asarray(actions, np.float64), -1.0, 1.0)
    scaled = np.clip(low + 0.5 * (a + 1.0) * (high - low), low, high)
    if np.dtype(dtype).kind in "iu":
        scaled = np.rint(scaled)
    return scaled.astype(dtype)


def _agent_observation_space(space: Any) -> Box:
    if needs_flattening(space):
        space = FlattenObservation.flat_space(space)
    if isinstance(space, gs.Discrete):
        return Box(np.asarray(0.0), np.asarray(1.0), (int(space.n),), one_hot=True)
    with np.errstate(over="ignore"):
        low = np.asarray(space.low, np.float64).astype(np.float32)
        high = np.asarray(space.high, np.float64).astype(np.float32)
    return Box(low, high, tuple(space.shape))


def _agent_action_space(space: Any) -> Discrete | MultiDiscrete | Box:
    if isinstance(space, gs.Discrete):
        return Discrete(int(space.n))
    if isinstance(space, gs.MultiDiscrete):
        return MultiDiscrete(tuple(np.asarray(space.nvec).reshape(-1)))
    if isinstance(space, gs.MultiBinary):
        return MultiDiscrete((2,) * int(np.prod(space.shape)))
    return Box(np.asarray(-1.0), np.asarray(1.0), tuple(space.shape))


class GymnasiumVecEnv:
    """``num_envs`` copies of a Gymnasium environment, batched, in same-step auto-reset mode.

    Args:
        env: a Gymnasium id, ``"module:Class"``, ``"module:function"``, a class or a
            factory (see :func:`resolve_env_factory`).
        num_envs: number of sub-environments.
        asynchronous: one process per sub-environment (``AsyncVectorEnv``) instead of
            stepping them in turn in this process (``SyncVectorEnv``). Worth it only for
            slow environments. The factory must then be picklable (cloudpickle is used,
            so lambdas work) and, with the "spawn"/"forkserver" contexts, importable.
        env_kwargs: keyword arguments for ``gymnasium.make`` or the factory.
        validate: run :func:`advantage.envs.validation.check_gymnasium_env` on one extra
            instance before vectorising (it raises one error listing every problem).
            Unsupported spaces are rejected even with ``validate=False``.
        context: multiprocessing start method for ``asynchronous=True`` (None: the
            platform default).

    Attributes:
        observation_space: float32 ``Box`` seen by the agent (``Box(0, 1, (n,))`` for a
            one-hot encoded ``Discrete(n)`` observation).
        action_space: ``Discrete(n)``, ``MultiDiscrete(nvec)`` (flat; also for ``MultiBinary(n)``: ``[2] * n``),
            or ``Box(-1, 1, shape)`` for any Box action space.
        env_observation_space, env_action_space: the environment's own gymnasium spaces.
        max_episode_steps: the env's time limit, or None if it has none (no limit is added).
    """

    def __init__(
        self,
        env: str | Callable,
        num_envs: int,
        *,
        asynchronous: bool = False,
        env_kwargs: dict | None = None,
        validate: bool = True,
        context: str | None = None,
    ):
        if not isinstance(num_envs, (int, np.integer)) or isinstance(num_envs, bool) or num_envs < 1:
            raise EnvError(f"num_envs must be a positive int, got {num_envs!r}; give at least 1")
        self.num_envs = int(num_envs)
        self.asynchronous = bool(asynchronous)
        self.env_factory = resolve_env_factory(env, env_kwargs)
        # gymnasium's own spaces and vector env; which Space subclass is known only at run time
        self.env_observation_space: Any = None
        self.env_action_space: Any = None
        self._vec: Any = None
        self._closed = False

        probe = self.env_factory()
        try:
            problems = space_problems(getattr(probe, "observation_space", None), "observation") + space_problems(
                getattr(probe, "action_space", None), "action"
            )
            if validate:
                check_gymnasium_env(probe)
            elif problems:
                raise EnvError(format_problems(f"Environment {self.env_factory!r} cannot be used", problems))
            self.env_observation_space = probe.observation_space
            self.env_action_space = probe.action_space
            self.max_episode_steps = find_max_episode_steps(probe)
            self.spec = getattr(probe, "spec", None)
            self.metadata = dict(getattr(probe, "metadata", {}) or {})
        finally:
            probe.close()

        if needs_flattening(self.env_observation_space):
            self.env_factory = _FlatteningFactory(self.env_factory)
        self.observation_space = _agent_observation_space(self.env_observation_space)
        self.action_space = _agent_action_space(self.env_action_space)
        self._discrete_obs = isinstance(self.env_observation_space, gs.Discrete)
        self._discrete_act = isinstance(self.env_action_space, gs.Discrete)
        if isinstance(self.action_space, Box):
            self._act_low = np.asarray(self.env_action_space.low, np.float64)
            self._act_high = np.asarray(self.env_action_space.high, np.float64)

        fns = [_CopyingFactory(self.env_factory)] * self.num_envs
        mode = gymnasium.vector.AutoresetMode.SAME_STEP
        if self.asynchronous:
            self._vec = gymnasium.vector.AsyncVectorEnv(fns, autoreset_mode=mode, context=context)
        else:
            self._vec = gymnasium.vector.SyncVectorEnv(fns, autoreset_mode=mode)

        n = self.num_envs
        self._needs_reset = True
        self._vector_steps = 0  # step() calls since construction (= steps of every sub-env)
        self._ep_return = np.zeros(n, np.float64)
        self._ep_length = np.zeros(n, np.int64)

    # ---------------------------------------------------------------- conversions

    def _obs_batch(self, raw: Any) -> np.ndarray:
        if self._discrete_obs:
            idx = np.asarray(raw).reshape(self.num_envs).astype(np.int64) - int(self.env_observation_space.start)
            return np.eye(int(self.env_observation_space.n), dtype=np.float32)[idx]
        with np.errstate(over="ignore"):
            return np.array(raw, dtype=np.float32).reshape((self.num_envs, *self.observation_space.shape))

    def _obs_single(self, raw: Any) -> np.ndarray:
        if self._discrete_obs:
            out = np.zeros(int(self.env_observation_space.n), np.float32)
            out[int(np.asarray(raw).reshape(())) - int(self.env_observation_space.start)] = 1.0
            return out
        with np.errstate(over="ignore"):
            return np.asarray(raw, dtype=np.float32).reshape(self.observation_space.shape)

    def env_actions(self, actions: Any) -> np.ndarray:
        """The batch of agent actions as the env sees them (rescaled Box / shifted Discrete)."""
        a = np.asarray(actions)
        n = self.num_envs
        if isinstance(self.action_space, Discrete):  # (self._discrete_act)
            if a.size != n or a.dtype.kind not in "iub" and not (a.dtype.kind == "f" and np.all(a == np.round(a))):
                raise EnvError(
                    format_problems(
                        "Bad actions passed to GymnasiumVecEnv.step",
                        [
                            Problem(
                                "actions for a Discrete action space must be integers, one per sub-env",
                                expected=f"int array of shape ({n},) with values in [0, {self.action_space.n - 1}]",
                                actual=f"shape {a.shape}, dtype {a.dtype}",
                                fix="pass e.g. np.asarray(actions, np.int32).reshape(num_envs)",
                            )
                        ],
                    )
                )
            a = a.reshape(n).astype(np.int64)
            bad = (a < 0) | (a >= self.action_space.n)
            if bad.any():
                raise EnvError(
                    format_problems(
                        "Bad actions passed to GymnasiumVecEnv.step",
                        [
                            Problem(
                                "discrete actions out of range",
                                expected=f"0 <= action < {self.action_space.n}",
                                actual=list_entries("actions", a, bad),
                                fix="sample actions from the policy's categorical distribution over "
                                f"{self.action_space.n} logits",
                            )
                        ],
                    )
                )
            return (a + int(self.env_action_space.start)).astype(self.env_action_space.dtype)
        if isinstance(self.action_space, MultiDiscrete):
            return self._multi_discrete_actions(a)

        shape = (n, *self.action_space.shape)
        if a.shape != shape:
            raise EnvError(
                format_problems(
                    "Bad actions passed to GymnasiumVecEnv.step",
                    [
                        Problem(
                            "actions have the wrong shape",
                            expected=f"shape {shape} (num_envs, *action_space.shape), values in [-1, 1]",
                            actual=f"shape {a.shape}, dtype {a.dtype}",
                            fix="pass one action per sub-env",
                        )
                    ],
                )
            )
        a = a.astype(np.float64)
        nonfinite = ~np.isfinite(a)
        if nonfinite.any():
            raise EnvError(
                format_problems(
                    "Bad actions passed to GymnasiumVecEnv.step",
                    [
                        Problem(
                            "the agent produced non-finite actions",
                            expected="finite actions in [-1, 1]",
                            actual=list_entries("actions", a, nonfinite),
                            where=f"vector step {self._vector_steps + 1}",
                            cause="NaN in the policy network (diverged training, a too-large learning rate)",
                            fix="check the losses/gradients for NaN; lower the learning rate",
                        )
                    ],
                )
            )
        return box_to_env(a, self._act_low, self._act_high, self.env_action_space.dtype)

    def _multi_discrete_actions(self, a: np.ndarray) -> np.ndarray:
        """Agent actions ``[N, k]`` -> the env's ``MultiDiscrete`` (``+ start``, its shape) or ``MultiBinary``."""
        assert isinstance(self.action_space, MultiDiscrete)
        n, nvec = self.num_envs, np.asarray(self.action_space.nvec)
        k = len(nvec)
        integral = a.dtype.kind in "iub" or (a.dtype.kind == "f" and bool(np.all(a == np.round(a))))
        if a.shape != (n, k) or not integral:
            raise EnvError(
                format_problems(
                    "Bad actions passed to GymnasiumVecEnv.step",
                    [
                        Problem(
                            f"actions for a {type(self.env_action_space).__name__} action space must be {k} integers "
                            "per sub-env",
                            expected=f"ints of shape ({n}, {k}), factor i in [0, nvec[i] - 1], nvec {nvec.tolist()}",
                            actual=f"shape {a.shape}, dtype {a.dtype}",
                            fix=f"pass np.asarray(actions, np.int32).reshape({n}, {k})",
                        )
                    ],
                )
            )
        a = a.astype(np.int64)
        bad = (a < 0) | (a >= nvec)
        if bad.any():
            raise EnvError(
                format_problems(
                    "Bad actions passed to GymnasiumVecEnv.step",
                    [
                        Problem(
                            "multi-discrete actions out of range",
                            expected=f"0 <= action[:, i] < nvec[i], nvec={nvec.tolist()}",
                            actual=list_entries("actions", a, bad),
                            fix="sample actions from the policy's factored categorical distribution",
                        )
                    ],
                )
            )
        space = self.env_action_space
        if isinstance(space, gs.MultiDiscrete):
            a = a + np.asarray(space.start, np.int64).reshape(-1)
        return a.reshape((n, *space.shape)).astype(space.dtype)

    # ---------------------------------------------------------------- API

    def reset(self, seeds: Sequence[int]) -> np.ndarray:
        """Reset every sub-env, sub-env ``i`` with ``seeds[i]``; returns float32 ``[N, *obs_shape]``."""
        self._check_open()
        as_list = [int(s) for s in np.asarray(seeds).reshape(-1)] if not isinstance(seeds, (int, np.integer)) else None
        if as_list is None or len(as_list) != self.num_envs:
            raise EnvError(
                f"GymnasiumVecEnv.reset needs one seed per sub-env: a list of {self.num_envs} ints "
                f"(e.g. [seed + i for i in range({self.num_envs})])"
            )
        raw, _ = self._vec.reset(seed=as_list)
        obs = self._obs_batch(raw)
        self._ep_return[:] = 0.0
        self._ep_length[:] = 0
        self._needs_reset = False
        self._guard(obs, None, None, "reset")
        return obs

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        """One step of every sub-env.

        Returns ``obs`` float32 ``[N, ...]`` (first observation of the next episode where
        one ended), ``reward`` float32 ``[N]``, ``terminated``/``truncated`` bool ``[N]`` and
        ``info`` with ``final_obs`` float32 ``[N, ...]``, ``episode_return`` float32 ``[N]``,
        ``episode_length`` int32 ``[N]`` and ``episode_done`` bool ``[N]``.
        """
        self._check_open()
        if self._needs_reset:
            raise EnvError("GymnasiumVecEnv.step called before reset: call reset(seeds) first")
        env_actions = self.env_actions(actions)
        raw_obs, raw_reward, terminated, truncated, raw_info = self._vec.step(env_actions)
        self._vector_steps += 1

        obs = self._obs_batch(raw_obs)
        reward64 = np.asarray(raw_reward, np.float64).reshape(self.num_envs)
        terminated = np.asarray(terminated, bool).reshape(self.num_envs)
        truncated = np.asarray(truncated, bool).reshape(self.num_envs)
        done = terminated | truncated

        final_obs = obs.copy()
        mask = np.asarray(raw_info.get("_final_obs", np.zeros(self.num_envs, bool)), bool)
        for i in np.flatnonzero(mask):
            final_obs[i] = self._obs_single(raw_info["final_obs"][i])

        self._ep_return += reward64
        self._ep_length += 1
        self._guard(obs, final_obs, reward64, "step", done)
        ep_return = np.where(done, self._ep_return, 0.0).astype(np.float32)
        ep_length = np.where(done, self._ep_length, 0).astype(np.int32)
        self._ep_return[done] = 0.0
        self._ep_length[done] = 0

        info = {
            "final_obs": final_obs,
            "episode_return": ep_return,
            "episode_length": ep_length,
            "episode_done": done.copy(),
        }
        return obs, reward64.astype(np.float32), terminated, truncated, info

    def close(self) -> None:
        if self._vec is not None and not self._closed:
            self._vec.close()
        self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        kind = "async" if self.asynchronous else "sync"
        return f"GymnasiumVecEnv({self.env_factory!r}, num_envs={self.num_envs}, {kind})"

    # ---------------------------------------------------------------- runtime guard

    def _check_open(self):
        if self._closed:
            raise EnvError("GymnasiumVecEnv is closed; build a new one to step again")

    def _guard(self, obs, final_obs, reward, method: str, done=None) -> None:
        """Raise one EnvError if any observation or reward is not finite (naming sub-env and step)."""
        problems: list[Problem] = []
        fix = (
            "find the source in the env's step()/reset() (division by zero, log of 0, overflow); "
            "run advantage.envs.validation.check_gymnasium_env(env, steps=1000) on one instance to reproduce"
        )
        bad_obs = ~np.isfinite(obs.reshape(self.num_envs, -1)).all(axis=1)
        bad_final = ~np.isfinite(final_obs.reshape(self.num_envs, -1)).all(axis=1) if final_obs is not None else None
        bad_rew = ~np.isfinite(reward) if reward is not None else None
        if not (
            bad_obs.any()
            or (bad_rew is not None and bad_rew.any())
            or (bad_final is not None and (bad_final & done).any())
        ):
            return  # every value finite: the usual step, with no messages to build
        for i in range(self.num_envs):
            if method == "reset":
                where = f"sub-env {i}, reset() (vector step {self._vector_steps})"
            else:
                where = (
                    f"sub-env {i}, vector step {self._vector_steps} (= global step {self._vector_steps} of "
                    f"sub-env {i}; step {int(self._ep_length[i])} of its current episode)"
                )
            if bad_rew is not None and bad_rew[i]:
                problems.append(
                    Problem(
                        f"sub-env {i} returned a non-finite reward",
                        expected="a finite reward",
                        actual=f"reward={reward[i]}",
                        where=where,
                        fix=fix,
                    )
                )
            if bad_final is not None and done[i] and bad_final[i]:
                x = final_obs[i]
                problems.append(
                    Problem(
                        f"sub-env {i} returned non-finite observation entries (final observation of its episode)",
                        expected="finite observation entries",
                        actual=list_entries("obs", x, ~np.isfinite(x)),
                        where=where,
                        fix=fix,
                    )
                )
            if bad_obs[i]:
                x = obs[i]
                which = (
                    "first observation after the automatic reset"
                    if done is not None and done[i]
                    else ("observation returned by reset()" if method == "reset" else "observation")
                )
                problems.append(
                    Problem(
                        f"sub-env {i} returned non-finite observation entries ({which})",
                        expected="finite observation entries",
                        actual=list_entries("obs", x, ~np.isfinite(x)),
                        where=where,
                        fix=fix,
                    )
                )
        if problems:
            listed: list[Problem | str] = list(problems)
            shown = 3  # many sub-envs usually fail alike: show a few in full, then list the rest
            if len(problems) > shown:
                rest = sorted({int(p.what.split()[1]) for p in problems[shown:]})
                listed = [
                    *problems[:shown],
                    f"{len(problems) - shown} more like these, in sub-env{'s' if len(rest) > 1 else ''} "
                    f"{_fmt_index(rest)}",
                ]
            raise EnvError(format_problems(f"Non-finite values from {self._env_name()}", listed))

    def _env_name(self) -> str:
        env_id = getattr(self.spec, "id", None)
        return env_id or repr(self.env_factory)
