"""Registry of JAX-native environments: ``make(env_id)`` returns ``(env, params)``."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from dataclasses import dataclass

from advantage.envs.api import Environment
from advantage.envs.wrappers import TimeLimit
from advantage.errors import UnknownNameError


@dataclass(frozen=True)
class EnvSpec:
    id: str
    entry_point: str | Callable[..., Environment]
    max_episode_steps: int | None


_REGISTRY: dict[str, EnvSpec] = {}

#: Other JAX libraries' environments, ``"LIBRARY:ID"``, each through an adapter onto this contract (an optional
#: extra: ``advantage[gymnax]``, ``advantage[brax]``). The adapter's ``make(ID, **kwargs)`` returns the env with
#: its time limit.
LIBRARIES: dict[str, str] = {"gymnax": "advantage.envs.gymnax:make", "brax": "advantage.envs.brax:make"}


def register(env_id: str, entry_point: str | Callable[..., Environment], max_episode_steps: int | None) -> None:
    """Register a JAX-native environment under ``env_id``.

    ``entry_point`` is a ``"module:Class"`` string or a callable returning an
    ``Environment``; ``max_episode_steps`` adds a ``TimeLimit`` (``None``: no limit).
    """
    _REGISTRY[env_id] = EnvSpec(env_id, entry_point, max_episode_steps)


def registered_ids() -> list[str]:
    return sorted(_REGISTRY)


def is_registered(env_id: str) -> bool:
    return env_id in _REGISTRY


def spec(env_id: str) -> EnvSpec:
    if env_id not in _REGISTRY:
        close = difflib.get_close_matches(env_id, _REGISTRY, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UnknownNameError(
            f"No JAX-native environment named {env_id!r}.{hint} "
            f"Available: {', '.join(registered_ids())}. Any Gymnasium id works with --backend gymnasium."
        )
    return _REGISTRY[env_id]


def _load(entry_point):
    if callable(entry_point):
        return entry_point
    module, _, attr = entry_point.partition(":")
    return getattr(importlib.import_module(module), attr)


def _user_env_class(env_id: str):
    """The ``Environment`` subclass named by a ``"module:Class"`` path, or None if it names none."""
    if ":" not in env_id:
        return None
    try:
        obj = _load(env_id)
    except (ImportError, AttributeError, ValueError):
        return None
    return obj if isinstance(obj, type) and issubclass(obj, Environment) else None


def library_of(env_id: str) -> str | None:
    """``"gymnax"`` for ``"gymnax:CartPole-v1"``, ``"brax"`` for ``"brax:ant"``; None for any other id."""
    library, sep, rest = env_id.partition(":")
    return library if sep and rest and library in LIBRARIES else None


def preset_id(env_id: str) -> str:
    """The id whose algorithm presets (``PRESETS``, ``DEFAULT_STEPS``) ``env_id`` uses: gymnax's classic-control
    environments are ports of Gymnasium's, so ``"gymnax:CartPole-v1"`` uses ``"CartPole-v1"``'s."""
    return env_id.partition(":")[2] if library_of(env_id) == "gymnax" else env_id


def is_jax_env(env_id: str) -> bool:
    """True for a registered id, a ``"gymnax:ID"`` or ``"brax:NAME"``, or a ``"module:Class"`` path to an
    ``Environment`` subclass."""
    return env_id in _REGISTRY or library_of(env_id) is not None or _user_env_class(env_id) is not None


def make(env_id: str, **kwargs) -> tuple[Environment, object]:
    """Build the JAX-native environment ``env_id`` with its time limit.

    ``env_id`` is a registered id, ``"gymnax:ID"`` or ``"brax:NAME"`` (another library's environment,
    with that library's time limit), or a ``"module:Class"`` path to an ``Environment``
    subclass (its class attribute ``max_episode_steps``, if set, is the time limit).
    Returns ``(env, params)`` where ``params = env.default_params()``; keyword
    arguments go to the environment's constructor.
    """
    library = library_of(env_id)
    if library is not None and env_id not in _REGISTRY:
        env = _load(LIBRARIES[library])(env_id.partition(":")[2], **kwargs)
        return env, env.default_params()
    cls = None if env_id in _REGISTRY else _user_env_class(env_id)
    if cls is not None:
        env, limit = cls(**kwargs), getattr(cls, "max_episode_steps", None)
    else:
        s = spec(env_id)
        env, limit = _load(s.entry_point)(**kwargs), s.max_episode_steps
    if limit is not None:
        env = TimeLimit(env, limit)
    return env, env.default_params()


# Gymnasium's classic control, step-for-step equal to Gymnasium (tests/test_classic_envs.py).
register("CartPole-v1", "advantage.envs.classic.cartpole:CartPole", 500)
register("Acrobot-v1", "advantage.envs.classic.acrobot:Acrobot", 500)
register("MountainCar-v0", "advantage.envs.classic.mountain_car:MountainCar", 200)
register("MountainCarContinuous-v0", "advantage.envs.classic.continuous_mountain_car:MountainCarContinuous", 999)
register("Pendulum-v1", "advantage.envs.classic.pendulum:Pendulum", 200)
