"""Strict checks of a Gymnasium environment, run once before training starts.

``check_gymnasium_env(env)`` resets the environment with a seed, steps it with a
few random actions and collects *every* problem it finds. It then raises ONE
:class:`EnvError` that lists them all, numbered, each with five parts::

    EnvError: Environment check failed for MyEnv (my_pkg.envs:MyEnv): 2 problems
      1. the observation returned by reset() does not match observation_space
           expected: shape (6,), dtype float32, Box(-1.0, 1.0, (6,), float32)
           actual:   shape (14,), dtype float64
           where:    reset(seed=0)
           fix:      make reset()/step() return ... or declare Box(..., shape=(14,))
      2. ...

(what / expected vs actual / where / likely cause / fix). Problems that repeat
on every step are reported once, at their first occurrence.

What is deliberately *not* a problem: a float64 observation for a float32 Box
(the bridge casts every observation to float32), integer observations, or a
Box declared with an integer dtype.
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from advantage.errors import EnvError  # defined there; importable from here as before

#: How many offending entries a message lists before it says "and N more".
MAX_LISTED = 5


# --------------------------------------------------------------------------- formatting


@dataclass
class Problem:
    """One thing wrong with an environment, in the five-part form of every message."""

    what: str
    expected: str | None = None
    actual: str | None = None
    where: str | None = None
    cause: str | None = None
    fix: str | None = None

    def lines(self) -> list[str]:
        out = [self.what]
        for label, value in (
            ("expected", self.expected),
            ("actual", self.actual),
            ("where", self.where),
            ("cause", self.cause),
            ("fix", self.fix),
        ):
            if value:
                body = str(value).splitlines() or [""]
                out.append(f"  {label + ':':<10}{body[0]}")
                out.extend(f"  {'':<10}{line}" for line in body[1:])
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


def format_problems(title: str, problems: Sequence[Problem | str], footer: str | None = None) -> str:
    """``title`` followed by the numbered problems (indented), then an optional footer.

    Every error message about environments is built with this function so that
    they all look alike. A single problem is still numbered ``1.``.
    """
    n = len(problems)
    head = f"{title}: {n} problem{'s' if n != 1 else ''}" if n else title
    out = [head]
    width = len(str(n))
    for i, p in enumerate(problems, 1):
        lines = p.lines() if isinstance(p, Problem) else str(p).splitlines() or [""]
        prefix = f"  {i:>{width}}. "
        out.append(prefix + lines[0])
        out.extend(" " * len(prefix) + line for line in lines[1:])
    if footer:
        out.append(footer)
    return "\n".join(out)


def _short(x: Any, limit: int = 80) -> str:
    try:
        s = repr(x)
    except Exception:  # pragma: no cover - a broken __repr__
        s = f"<{type(x).__name__}>"
    s = " ".join(s.split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _fmt_index(idx: Sequence[int] | tuple) -> str:
    return ", ".join(str(int(i)) for i in idx)


def _fmt_value(v: Any) -> str:
    v = float(v) if np.ndim(v) == 0 and np.isreal(v) else v
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def list_entries(name: str, arr: np.ndarray, mask: np.ndarray, extra=None) -> str:
    """``obs[3]=nan, obs[7]=inf`` for the entries where ``mask`` is true (capped)."""
    idx = np.argwhere(mask)
    parts = []
    for ix in idx[:MAX_LISTED]:
        t = tuple(ix)
        s = f"{name}[{_fmt_index(t)}]={_fmt_value(arr[t])}"
        if extra is not None:
            s += extra(t)
        parts.append(s)
    more = len(idx) - MAX_LISTED
    if more > 0:
        parts.append(f"and {more} more")
    return ", ".join(parts)


def _exception_where(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    if not tb:
        return ""
    frame = tb[-1]
    return f" (raised at {frame.filename}:{frame.lineno} in {frame.name})"


# --------------------------------------------------------------------------- spaces

_OBS_FIX = {
    "Sequence": "pad the sequence to a fixed length in a gymnasium.ObservationWrapper that returns a Box",
    "Graph": "encode the graph as fixed-size arrays (e.g. a padded adjacency matrix) in a gymnasium.ObservationWrapper",
    "Text": "encode the text as a fixed-size Box or MultiDiscrete in a gymnasium.ObservationWrapper",
}
_ACT_FIX = {
    "Dict": "flatten the actions into one Box (gymnasium.spaces.flatten_space) with a gymnasium.ActionWrapper",
    "Tuple": "flatten the actions into one Box (gymnasium.spaces.flatten_space) with a gymnasium.ActionWrapper",
}


def _is_old_gym(obj_or_type) -> bool:
    """True if the object (or class) comes from the unmaintained ``gym`` package."""
    cls = obj_or_type if isinstance(obj_or_type, type) else type(obj_or_type)
    for klass in cls.__mro__:
        root = (getattr(klass, "__module__", "") or "").split(".")[0]
        if root == "gym":
            return True
    return False


def space_problems(space: Any, role: str) -> list[Problem]:
    """Problems with the declared ``observation_space`` (``role="observation"``) or ``action_space``.

    Supported: observations ``Box`` (any shape), ``Discrete`` (one-hot encoded), and ``Dict``, ``Tuple``,
    ``MultiDiscrete``, ``MultiBinary`` (flattened into one vector: :mod:`advantage.envs.flatten`);
    actions ``Discrete``, ``MultiDiscrete``, ``MultiBinary`` and ``Box`` with finite bounds.
    """
    import gymnasium
    from gymnasium import spaces as gs

    attr = f"{role}_space"
    where = f"env.{attr}"
    if space is None:
        return [
            Problem(
                f"env.{attr} is not set",
                expected="a gymnasium.spaces.Box or gymnasium.spaces.Discrete",
                actual="None",
                where="the environment's __init__",
                fix=f"set self.{attr} = gymnasium.spaces.Box(low, high, shape, dtype=np.float32) in __init__",
            )
        ]
    if not isinstance(space, gymnasium.spaces.Space):
        if _is_old_gym(space):
            return [
                Problem(
                    f"env.{attr} is a space from the old `gym` package, not from `gymnasium`",
                    expected="a gymnasium.spaces.* instance",
                    actual=f"{type(space).__module__}.{type(space).__name__}: {_short(space)}",
                    where=where,
                    cause="`import gym` instead of `import gymnasium as gym` (gym is unmaintained and "
                    "its spaces are not gymnasium spaces)",
                    fix="`from gymnasium import spaces` and build the space with it "
                    "(see https://gymnasium.farama.org/introduction/migration_guide/)",
                )
            ]
        if isinstance(space, (list, tuple)):
            return [
                Problem(
                    f"env.{attr} is a Python {type(space).__name__}, not a space",
                    expected="a gymnasium.spaces.Box or gymnasium.spaces.Discrete",
                    actual=_short(space),
                    where=where,
                    fix=f"self.{attr} = gymnasium.spaces.Box(low=..., high=..., shape=(...,), dtype=np.float32)",
                )
            ]
        return [
            Problem(
                f"env.{attr} is not a gymnasium space",
                expected="a gymnasium.spaces.Box or gymnasium.spaces.Discrete",
                actual=f"{type(space).__module__}.{type(space).__name__}: {_short(space)}",
                where=where,
                fix="build the space with gymnasium.spaces",
            )
        ]

    kind = type(space).__name__
    if role == "observation":
        from advantage.envs.flatten import flatten_problems, needs_flattening

        if isinstance(space, (gs.Box, gs.Discrete)):
            return []
        if needs_flattening(space):
            parts = flatten_problems(space)
            if not parts:
                return []
            leaf = parts[0].split(" is a ")[1].split(" ")[0]
            return [
                Problem(
                    f"observation space {kind} holds a part that cannot be flattened into one vector",
                    expected="Box, Discrete, MultiDiscrete or MultiBinary parts (Dict and Tuple may nest)",
                    actual="; ".join(parts),
                    where=where,
                    fix=_OBS_FIX.get(leaf, "turn that part into a fixed-size Box in a gymnasium.ObservationWrapper"),
                )
            ]
        return [
            Problem(
                f"observation space {kind} is not supported",
                expected="Box (any shape), Discrete (one-hot encoded), or Dict / Tuple / MultiDiscrete / MultiBinary "
                "(flattened into one vector)",
                actual=_short(space, 160),
                where=where,
                fix=_OBS_FIX.get(kind, "wrap the env in a gymnasium.ObservationWrapper that returns a flat Box"),
            )
        ]
    # actions
    if isinstance(space, (gs.Discrete, gs.MultiDiscrete, gs.MultiBinary)):
        return []
    if isinstance(space, gs.Box):
        low, high = np.asarray(space.low, np.float64), np.asarray(space.high, np.float64)
        out = []
        bad = ~(np.isfinite(low) & np.isfinite(high))
        if bad.any():
            out.append(
                Problem(
                    "action space Box has non-finite bounds",
                    expected="finite low and high: the agent acts in [-1, 1] and the bridge rescales to [low, high]",
                    actual=f"low: {list_entries('low', low, bad)}; high: {list_entries('high', high, bad)}",
                    where=where,
                    fix="declare finite bounds, e.g. Box(-1.0, 1.0, shape, np.float32) and scale inside step(), "
                    "or wrap the env in gymnasium.wrappers.RescaleAction(env, -1.0, 1.0) after giving it bounds",
                )
            )
        inverted = np.isfinite(low) & np.isfinite(high) & (low > high)
        if inverted.any():
            out.append(
                Problem(
                    "action space Box has low > high",
                    expected="low <= high in every dimension",
                    actual=f"{list_entries('low', low, inverted)} vs {list_entries('high', high, inverted)}",
                    where=where,
                    fix="swap the bounds",
                )
            )
        return out
    return [
        Problem(
            f"action space {kind} is not supported",
            expected="Discrete, MultiDiscrete, MultiBinary or Box (finite bounds)",
            actual=_short(space, 160),
            where=where,
            fix=_ACT_FIX.get(kind, "wrap the env in a gymnasium.ActionWrapper that exposes a Discrete or Box"),
        )
    ]


# --------------------------------------------------------------------------- observations


def observation_problems(obs: Any, space: Any, where: str) -> dict[str, Problem]:
    """Problems of one observation against a (supported) gymnasium space, keyed by kind."""
    from gymnasium import spaces as gs

    out: dict[str, Problem] = {}
    if isinstance(space, (gs.Dict, gs.Tuple)):
        return _structured_observation_problems(obs, space, where)
    if isinstance(space, (gs.MultiDiscrete, gs.MultiBinary)):
        ok = not isinstance(obs, (dict, tuple)) and _contains(space, obs)
        if not ok:
            out["element"] = Problem(
                f"the observation is not an element of the {type(space).__name__} observation space",
                expected=f"an integer array of shape {space.shape} within {space}",
                actual=f"{type(obs).__name__} {_short(obs)}",
                where=where,
                fix="return np.asarray(obs, dtype=space.dtype) within the space, or fix observation_space",
            )
        return out
    if isinstance(space, gs.Discrete):
        arr = np.asarray(obs) if not isinstance(obs, (dict, tuple)) else None
        ok = (
            arr is not None
            and arr.size == 1
            and np.issubdtype(arr.dtype, np.integer)
            and int(space.start) <= int(arr.reshape(())) < int(space.start + space.n)
        )
        if not ok:
            actual = (
                f"{type(obs).__name__} {_short(obs)}"
                if arr is None
                else f"{_short(obs)} (shape {arr.shape}, dtype {arr.dtype})"
            )
            out["discrete"] = Problem(
                "the observation is not an element of the Discrete observation space",
                expected=f"an integer in [{space.start}, {space.start + space.n - 1}] ({space})",
                actual=actual,
                where=where,
                fix="return an int (e.g. int(state)) within the space, or fix observation_space",
            )
        return out

    if not isinstance(space, gs.Box):
        return out
    if isinstance(obs, (dict, tuple)) and not isinstance(obs, np.ndarray):
        out["type"] = Problem(
            f"the observation is a {type(obs).__name__}, but observation_space is a Box",
            expected=f"an array of shape {space.shape}",
            actual=_short(obs),
            where=where,
            fix="return one flat numpy array, or declare the matching space and wrap the env in "
            "gymnasium.wrappers.FlattenObservation",
        )
        return out
    try:
        arr = np.asarray(obs)
    except Exception as e:  # ragged lists, ...
        out["type"] = Problem(
            "the observation cannot be converted to a numpy array",
            expected=f"an array of shape {space.shape}",
            actual=f"{type(obs).__name__} {_short(obs)} ({type(e).__name__}: {e})",
            where=where,
            fix="return np.asarray(obs, dtype=np.float32)",
        )
        return out
    if arr.dtype.kind not in "biuf":
        out["dtype"] = Problem(
            "the observation is not real-valued numbers",
            expected=f"a real array castable to float32 (space dtype {space.dtype})",
            actual=f"dtype {arr.dtype}: {_short(obs)}",
            where=where,
            fix="return np.asarray(obs, dtype=np.float32)",
        )
        return out
    if arr.shape != tuple(space.shape):
        if arr.shape == ():
            cause = "a scalar was returned where an array is expected"
            fix = f"return np.array([x], dtype=np.float32) (shape {space.shape})"
        elif arr.size == int(np.prod(space.shape)):
            cause = "the same number of entries in a different layout"
            fix = f"reshape the observation to {space.shape}, or declare Box(..., shape={arr.shape})"
        else:
            cause = "observation_space declares a different number of features than the env returns"
            fix = f"declare observation_space with shape={arr.shape}, or return {space.shape} features"
        out["shape"] = Problem(
            "the observation does not match the shape of observation_space",
            expected=f"shape {tuple(space.shape)} ({space})",
            actual=f"shape {arr.shape}, dtype {arr.dtype}",
            where=where,
            cause=cause,
            fix=fix,
        )
        return out
    x = arr.astype(np.float64)
    nonfinite = ~np.isfinite(x)
    if nonfinite.any():
        out["nonfinite"] = Problem(
            f"the observation has {int(nonfinite.sum())} non-finite entr{'y' if nonfinite.sum() == 1 else 'ies'}",
            expected="finite numbers",
            actual=list_entries("obs", x, nonfinite),
            where=where,
            cause="a division by zero, log of 0, an overflow, or an uninitialised value in the env",
            fix="find the source in the env's step()/reset(); clip or guard the computation (np.nan_to_num "
            "only hides it)",
        )
    low = np.broadcast_to(np.asarray(space.low, np.float64), x.shape)
    high = np.broadcast_to(np.asarray(space.high, np.float64), x.shape)
    outside = np.isfinite(x) & ((x < low) | (x > high))
    if outside.any():
        out["bounds"] = Problem(
            f"the observation has {int(outside.sum())} entr{'y' if outside.sum() == 1 else 'ies'} "
            "outside observation_space",
            expected="low <= obs[i] <= high",
            actual=list_entries(
                "obs", x, outside, lambda t: f" (bounds [{_fmt_value(low[t])}, {_fmt_value(high[t])}])"
            ),
            where=where,
            fix="widen the Box bounds (np.inf is allowed), or clip the observation in the env",
        )
    return out


def _contains(space: Any, x: Any) -> bool:
    try:
        return bool(space.contains(np.asarray(x)))
    except Exception:
        return False


def _structured_observation_problems(obs: Any, space: Any, where: str) -> dict[str, Problem]:
    """A ``Dict`` / ``Tuple`` observation: its structure, then each part as its own space (keys ``path:kind``)."""
    from gymnasium import spaces as gs

    out: dict[str, Problem] = {}
    if isinstance(space, gs.Dict):
        keys = sorted(space.spaces)
        if not isinstance(obs, dict) or sorted(obs) != keys:
            out["structure"] = Problem(
                "the observation does not have the keys of the Dict observation space",
                expected=f"a dict with keys {keys}",
                actual=f"{type(obs).__name__} with keys {sorted(obs)}" if isinstance(obs, dict) else _short(obs),
                where=where,
                fix="return a dict with exactly the keys of observation_space, or declare the keys the env returns",
            )
            return out
        items = [(repr(k), obs[k], space.spaces[k]) for k in keys]
    else:
        if not isinstance(obs, (tuple, list)) or len(obs) != len(space.spaces):
            out["structure"] = Problem(
                "the observation does not match the Tuple observation space",
                expected=f"a tuple of {len(space.spaces)} items",
                actual=f"{type(obs).__name__} {_short(obs)}",
                where=where,
                fix="return a tuple with one item per part of observation_space",
            )
            return out
        items = [(str(i), obs[i], sub) for i, sub in enumerate(space.spaces)]
    for name, value, sub in items:
        for kind, p in observation_problems(value, sub, f"{where}[{name}]").items():
            out[f"[{name}]{kind}"] = p
    return out


def reward_problems(reward: Any, where: str) -> dict[str, Problem]:
    out: dict[str, Problem] = {}
    arr = None
    try:
        arr = np.asarray(reward)
    except Exception:
        pass
    if arr is None or arr.shape != () or arr.dtype.kind not in "iuf" or isinstance(reward, (bool, np.bool_)):
        shape = "" if arr is None else f" (shape {arr.shape}, dtype {arr.dtype})"
        out["reward_type"] = Problem(
            "the reward is not a real scalar",
            expected="a Python float/int or a numpy scalar",
            actual=f"{type(reward).__name__} {_short(reward)}{shape}",
            where=where,
            fix="return float(reward)",
        )
        return out
    if not math.isfinite(float(arr)):
        out["reward_nonfinite"] = Problem(
            "the reward is not finite",
            expected="a finite number",
            actual=f"reward={float(arr)}",
            where=where,
            cause="a division by zero, log of 0 or an overflow in the reward computation",
            fix="find the source in the env's step(); clip or guard the computation",
        )
    return out


def _flag_problem(name: str, value: Any, where: str) -> Problem | None:
    if isinstance(value, (bool, np.bool_)):
        return None
    return Problem(
        f"`{name}` is not a bool",
        expected="True or False (a Python bool or np.bool_)",
        actual=f"{type(value).__name__} {_short(value)}",
        where=where,
        fix=f"return bool({name})",
    )


# --------------------------------------------------------------------------- the check


def _env_title(env: Any) -> str:
    name = type(getattr(env, "unwrapped", env)).__name__
    spec = getattr(env, "spec", None)
    env_id = getattr(spec, "id", None)
    return f"{name} ({env_id})" if env_id else name


class _Collector:
    """Keeps the first problem of each kind (a NaN on every step is reported once)."""

    def __init__(self):
        self.problems: list[Problem] = []
        self._seen: set[str] = set()

    def add(self, key: str, problem: Problem | None) -> None:
        if problem is None or key in self._seen:
            return
        self._seen.add(key)
        self.problems.append(problem)

    def extend(self, prefix: str, problems: dict[str, Problem]) -> None:
        for k, p in problems.items():
            self.add(f"{prefix}:{k}", p)

    def has(self, key: str) -> bool:
        return key in self._seen


def collect_gymnasium_env_problems(env: Any, *, steps: int = 20, seed: int = 0) -> list[Problem]:
    """Every problem found in ``env``; ``[]`` if it passes. See :func:`check_gymnasium_env`."""
    import gymnasium

    c = _Collector()

    if isinstance(env, type):
        c.add(
            "env_class",
            Problem(
                f"got the class {env.__name__}, not an environment instance",
                expected="an instance, e.g. MyEnv()",
                actual=f"the class {env.__module__}.{env.__qualname__}",
                fix=f"call it: {env.__name__}(...)",
            ),
        )
        return c.problems
    if not isinstance(env, gymnasium.Env):
        old = _is_old_gym(env)
        c.add(
            "env_type",
            Problem(
                "the environment does not inherit from gymnasium.Env" + (" (it is an old `gym.Env`)" if old else ""),
                expected="an instance of a gymnasium.Env subclass",
                actual=f"{type(env).__module__}.{type(env).__qualname__}",
                cause="`import gym` instead of `import gymnasium as gym`" if old else None,
                fix="inherit from gymnasium.Env (see https://gymnasium.farama.org/introduction/migration_guide/)",
            ),
        )
        if not (hasattr(env, "reset") and hasattr(env, "step")):
            return c.problems

    obs_space = getattr(env, "observation_space", None)
    act_space = getattr(env, "action_space", None)
    for p in space_problems(obs_space, "observation"):
        c.add(f"obs_space:{p.what}", p)
    for p in space_problems(act_space, "action"):
        c.add(f"act_space:{p.what}", p)
    obs_ok = not any(k.startswith("obs_space") for k in c._seen)

    # ---- reset
    where = f"reset(seed={seed})"
    try:
        result = env.reset(seed=seed)
    except TypeError as e:
        if "seed" in str(e):
            c.add(
                "reset_seed",
                Problem(
                    "reset() does not accept a `seed` keyword argument",
                    expected="def reset(self, *, seed=None, options=None)",
                    actual=f"TypeError: {e}",
                    where=where,
                    cause="the old gym API (before gymnasium 0.26) seeded with env.seed(s)",
                    fix="def reset(self, *, seed=None, options=None):\n"
                    "    super().reset(seed=seed)   # seeds self.np_random\n"
                    "    ...\n    return obs, {}",
                ),
            )
        else:
            c.add("reset_raised", _raised("reset()", e, where))
        return c.problems
    except Exception as e:
        c.add("reset_raised", _raised("reset()", e, where))
        return c.problems

    first_obs = _check_reset_result(c, result, obs_space if obs_ok else None, where)
    if isinstance(first_obs, np.ndarray):
        first_obs = first_obs.copy()  # an env may update its observation buffer in place
    first_obs = _comparable(first_obs, obs_space if obs_ok else None)

    # ---- a short random rollout
    sample = _action_sampler(act_space, seed)
    if sample is None:
        return c.problems
    t = 0
    for t in range(1, steps + 1):
        where = f"step() #{t} (a random action after reset(seed={seed}))"
        try:
            action = sample()
        except Exception as e:
            c.add("sample_raised", _raised("action_space.sample()", e, where))
            break
        try:
            result = env.step(action)
        except Exception as e:
            c.add("step_raised", _raised("step()", e, where))
            break
        if not isinstance(result, tuple) or len(result) not in (4, 5):
            n = len(result) if isinstance(result, tuple) else None
            c.add(
                "step_arity",
                Problem(
                    "step() must return five values: obs, reward, terminated, truncated, info",
                    expected="a tuple of 5 elements",
                    actual=f"a tuple of {n} elements" if n is not None else f"{type(result).__name__} {_short(result)}",
                    where=where,
                    fix="return obs, reward, terminated, truncated, info",
                ),
            )
            break
        if len(result) == 4:
            c.add(
                "step_arity",
                Problem(
                    "step() returns four values (obs, reward, done, info): the old gym API",
                    expected="five values: obs, reward, terminated, truncated, info",
                    actual="four values",
                    where=where,
                    cause="gym < 0.26 used one `done` flag; gymnasium splits it in two so that time-limit "
                    "truncations can be bootstrapped",
                    fix="return obs, reward, terminated, truncated, info, where terminated=True for a true "
                    "terminal state and truncated=True when the episode is cut short (time limit)",
                ),
            )
            obs, reward, done, info = result
            terminated, truncated = bool(done) if isinstance(done, (bool, np.bool_)) else False, False
        else:
            obs, reward, terminated, truncated, info = result
            for name, flag in (("terminated", terminated), ("truncated", truncated)):
                c.add(f"flag:{name}", _flag_problem(name, flag, where))
        if obs_ok:
            c.extend("obs", observation_problems(obs, obs_space, f"{where}, the returned observation"))
        c.extend("reward", reward_problems(reward, where))
        if not isinstance(info, dict):
            c.add(
                "step_info",
                Problem(
                    "the info returned by step() is not a dict",
                    expected="a dict (may be empty)",
                    actual=f"{type(info).__name__} {_short(info)}",
                    where=where,
                    fix="return obs, reward, terminated, truncated, {}",
                ),
            )
        if _truthy(terminated) or _truthy(truncated):
            try:
                result = env.reset()
            except Exception as e:
                c.add("reset_raised", _raised("reset()", e, f"reset() after the episode ended at step {t}"))
                break
            _check_reset_result(c, result, obs_space if obs_ok else None, f"reset() after step {t}")

    # ---- seeding: the same seed gives the same first observation
    if first_obs is not None and obs_ok and not c.has("reset_raised"):
        try:
            again = env.reset(seed=seed)
            again_obs = again[0] if isinstance(again, tuple) else again
            again_obs = _comparable(again_obs, obs_space)
            a, b = np.asarray(first_obs, np.float64), np.asarray(again_obs, np.float64)
            if a.shape == b.shape and not np.array_equal(a, b, equal_nan=True):
                differ = a != b
                c.add(
                    "seeding",
                    Problem(
                        f"reset(seed={seed}) twice gives different first observations",
                        expected="the same observation for the same seed (reproducible runs)",
                        actual=list_entries("first", a, differ) + "  vs  " + list_entries("second", b, differ),
                        where=f"reset(seed={seed}) called again after {t} steps",
                        cause="reset() does not call super().reset(seed=seed), or draws random numbers from "
                        "np.random / random instead of self.np_random",
                        fix="call super().reset(seed=seed) first in reset() and use self.np_random for all randomness",
                    ),
                )
        except Exception:
            pass
    return c.problems


def _comparable(obs: Any, space: Any) -> Any:
    """A structured observation flattened into one vector (to compare two resets); anything else as is."""
    from advantage.envs.flatten import flatten, needs_flattening

    if obs is None or space is None or not needs_flattening(space):
        return obs
    try:
        return flatten(space, obs)
    except Exception:
        return None  # its problems are reported by observation_problems


def _truthy(x: Any) -> bool:
    try:
        return bool(x)
    except Exception:
        return False


def _raised(what: str, e: BaseException, where: str) -> Problem:
    return Problem(
        f"{what} raised {type(e).__name__}",
        actual=f"{type(e).__name__}: {e}{_exception_where(e)}",
        where=where,
        fix="fix the exception (run the env by hand: env.reset(seed=0); env.step(env.action_space.sample()))",
    )


def _check_reset_result(c: _Collector, result: Any, obs_space: Any, where: str) -> Any:
    """Checks ``reset()``'s return value; returns the observation (leniently) or None."""
    if isinstance(result, tuple) and len(result) == 2:
        obs, info = result
        if not isinstance(info, dict):
            c.add(
                "reset_info",
                Problem(
                    "the info returned by reset() is not a dict",
                    expected="a tuple (obs, info) with info a dict",
                    actual=f"info is {type(info).__name__} {_short(info)}",
                    where=where,
                    fix="return obs, {}",
                ),
            )
    elif isinstance(result, tuple):
        c.add(
            "reset_return",
            Problem(
                "reset() must return two values (obs, info)",
                expected="a tuple (obs, info)",
                actual=f"a tuple of {len(result)} elements",
                where=where,
                fix="return obs, {}",
            ),
        )
        return None
    else:
        obs = result
        c.add(
            "reset_return",
            Problem(
                "reset() returned only the observation, not (obs, info)",
                expected="a tuple (obs, info) with info a dict",
                actual=f"{type(result).__name__} {_short(result)}",
                where=where,
                cause="the old gym API (before gymnasium 0.26) returned only the observation",
                fix="return obs, {}",
            ),
        )
    if obs_space is not None:
        c.extend("obs", observation_problems(obs, obs_space, f"{where}, the returned observation"))
    return obs


def _action_sampler(space: Any, seed: int):
    if space is None or not callable(getattr(space, "sample", None)):
        return None
    try:
        space.seed(seed)
    except Exception:
        pass
    return space.sample


def check_gymnasium_env(env: Any, *, steps: int = 20, seed: int = 0) -> None:
    """Raise one :class:`EnvError` listing every problem of ``env``; return None if it passes.

    Checks that the spaces are supported ``gymnasium.spaces`` (observations: Box,
    Discrete, or Dict / Tuple / MultiDiscrete / MultiBinary that can be flattened; actions:
    Discrete, MultiDiscrete, MultiBinary or Box with finite bounds), that ``reset(seed=...)``
    returns ``(obs, info)``, that ``step`` returns five values, and, on the reset and
    on ``steps`` random steps: observation shape, type and bounds, a finite real
    scalar reward, bool ``terminated``/``truncated``, a dict ``info``, and that the
    same seed gives the same first observation. The env is reset and stepped (not closed).
    """
    problems = collect_gymnasium_env_problems(env, steps=steps, seed=seed)
    if problems:
        raise EnvError(
            format_problems(
                f"Environment check failed for {_env_title(env)}",
                problems,
                footer="(To skip this check: --no-env-check, RunConfig(env_check=False) or validate=False; "
                "the problems will then surface later, usually as harder-to-read errors.)",
            )
        )


def raise_problems(title: str, problems: Iterable[Problem]) -> None:
    """Raise one :class:`EnvError` for ``problems`` if there are any."""
    problems = list(problems)
    if problems:
        raise EnvError(format_problems(title, problems))
