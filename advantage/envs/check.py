"""``advantage check-env``: is a user's Gymnasium environment usable, and what does the agent see?

:func:`check_env` runs the strict validation that training runs before it starts
(:func:`advantage.envs.validation.collect_gymnasium_env_problems`), then, when no problem was
found, a few episodes of a uniformly random policy through the Gymnasium bridge
(:class:`advantage.envs.gymnasium.GymnasiumVecEnv`, one sub-env) — the same conversions
training uses, with the bridge's run-time guards (a NaN after 300 steps is found here too).
:func:`format_report` prints every problem with its fix, the env's spaces and the agent's,
the random policy's returns and the step rate.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from advantage.envs.validation import Problem, _env_title, collect_gymnasium_env_problems, format_problems
from advantage.errors import EnvError

#: An episode of the random policy is cut after this many steps when the env has no time limit.
MAX_EPISODE_STEPS = 10_000


@dataclass
class EnvReport:
    """What ``advantage check-env`` prints; ``usable`` decides its exit code."""

    env: str
    problems: list[Problem] = field(default_factory=list)
    error: str | None = None  # the env could not be built (unknown id, a factory that raised, ...)
    env_spaces: tuple[str, str] | None = None  # the env's own (observation, action) spaces
    agent_spaces: tuple[str, str] | None = None  # what the agent sees, after the bridge's conversions
    max_episode_steps: int | None = None
    returns: list[float] = field(default_factory=list)  # one per random episode
    lengths: list[int] = field(default_factory=list)
    cut: int = 0  # random episodes cut at MAX_EPISODE_STEPS (the env has no time limit and did not end)
    steps_per_s: float | None = None  # env steps per second of the random policy through the bridge

    @property
    def usable(self) -> bool:
        return self.error is None and not self.problems


def random_actions(space: Any, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` uniformly random agent actions of ``space`` (Discrete, MultiDiscrete or the bridge's Box [-1, 1])."""
    if hasattr(space, "nvec"):
        return np.stack([rng.integers(0, k, n) for k in space.nvec], axis=-1).astype(np.int32)
    if hasattr(space, "n"):
        return rng.integers(0, space.n, n).astype(np.int32)
    return rng.uniform(-1.0, 1.0, (n, *space.shape)).astype(np.float32)


def check_env(
    env: str | Callable, env_kwargs: dict | None = None, *, episodes: int = 5, seed: int = 0, steps: int = 20
) -> EnvReport:
    """Check ``env`` (a Gymnasium id, ``"module:Class"``, ``"module:function"``, a class or a factory).

    ``steps``: random steps of the strict validation; ``episodes``: random-policy episodes run after
    it when it found no problem. Never raises for a broken env: every problem is in the report.
    """
    import gymnasium

    from advantage.envs.gymnasium import GymnasiumVecEnv, find_max_episode_steps, resolve_env_factory
    from advantage.envs.registry import is_jax_env

    if isinstance(env, str) and env not in gymnasium.registry and is_jax_env(env):
        return check_jax_env(env, env_kwargs, episodes=episodes, seed=seed)
    report = EnvReport(env if isinstance(env, str) else repr(env))
    try:
        factory = resolve_env_factory(env, env_kwargs)
        instance = factory()
    except EnvError as e:
        report.error = str(e)
        return report
    except Exception as e:  # the user's constructor raised
        report.error = f"building the environment raised {type(e).__name__}: {e}"
        return report
    try:
        report.env = f"{env} ({_env_title(instance)})" if isinstance(env, str) else _env_title(instance)
        report.env_spaces = (
            str(getattr(instance, "observation_space", None)),
            str(getattr(instance, "action_space", None)),
        )
        report.max_episode_steps = find_max_episode_steps(instance) if hasattr(instance, "spec") else None
        report.problems = collect_gymnasium_env_problems(instance, steps=steps, seed=seed)
    finally:
        close = getattr(instance, "close", None)
        if callable(close):
            try:
                close()
            except Exception:
                pass
    if report.problems:
        return report

    try:
        with GymnasiumVecEnv(env, 1, env_kwargs=env_kwargs, validate=False) as vec:
            report.agent_spaces = (_agent_space_str(vec.observation_space), _agent_space_str(vec.action_space))
            _random_episodes(vec, report, episodes, seed)
    except EnvError as e:  # a run-time guard of the bridge (a NaN, a wrong shape after many steps, ...)
        report.problems.append(Problem(f"the random policy's episodes stopped: {e}"))
    except Exception as e:
        report.problems.append(
            Problem(
                f"stepping the env with random actions raised {type(e).__name__}",
                actual=f"{type(e).__name__}: {e}",
                where=f"random-policy episodes after reset(seed={seed + 1})",
                fix="run the env by hand: env.reset(seed=...); env.step(env.action_space.sample()) until it ends",
            )
        )
    return report


def check_jax_env(env_id: str, env_kwargs: dict | None = None, *, episodes: int = 5, seed: int = 0) -> EnvReport:
    """A JAX-native env (a registered id or a ``module:Class`` path to an ``Environment``): its spaces, and
    random-policy episodes stepped one jitted step at a time, checking each observation's shape and that
    observations and rewards are finite."""
    import jax
    import jax.numpy as jnp

    from advantage.envs.registry import make

    report = EnvReport(f"{env_id} (JAX-native)")
    try:
        env, params = make(env_id, **(env_kwargs or {}))
    except Exception as e:
        report.error = f"building the environment raised {type(e).__name__}: {e}"
        return report
    obs_space, act_space = env.observation_space(params), env.action_space(params)
    report.env_spaces = (_agent_space_str(obs_space), _agent_space_str(act_space))  # the agent sees them as is
    report.max_episode_steps = getattr(env, "max_episode_steps", None)
    rng, key = np.random.default_rng(seed), jax.random.PRNGKey(seed)
    limit = report.max_episode_steps or MAX_EPISODE_STEPS

    @jax.jit
    def reset(key):
        key, k = jax.random.split(key)
        return (key,) + tuple(env.reset(k, params))

    @jax.jit
    def step(key, state, action):
        key, k = jax.random.split(key)
        obs, state, reward, term, trunc, _ = env.step(k, state, action, params)
        finite = jnp.all(jnp.isfinite(obs)) & jnp.isfinite(reward)
        return key, obs, state, reward, term | trunc, finite

    def random_action():
        if hasattr(act_space, "low"):  # a JAX env receives its Box actions already in [low, high]
            return jnp.asarray(rng.uniform(act_space.low, act_space.high), jnp.float32)
        return jnp.asarray(random_actions(act_space, rng, 1)[0])

    try:  # compile first: the step rate is the env's, not XLA's
        jax.block_until_ready(step(*reset(key)[::2], random_action()))
    except Exception as e:
        report.problems.append(_raised_problem(e))
        return report
    n_steps, t0 = 0, time.perf_counter()
    for i in range(episodes):
        key, obs, state = reset(key)
        ret, done, t = 0.0, False, 0
        for t in range(1, limit + 1):
            key, obs, state, reward, ended, finite = step(key, state, random_action())
            n_steps += 1
            where = f"step {t} of random episode {i}"
            if tuple(obs.shape) != tuple(obs_space.shape):
                report.problems.append(
                    Problem(
                        "the observation does not match observation_space's shape",
                        expected=f"shape {tuple(obs_space.shape)}",
                        actual=f"shape {tuple(obs.shape)}",
                        where=where,
                        fix="return observations of the declared shape, or declare the shape step() returns",
                    )
                )
                return report
            if not bool(finite):
                report.problems.append(
                    Problem(
                        "a non-finite observation or reward",
                        actual=f"obs {np.asarray(obs)}, reward {float(reward)}",
                        where=where,
                        fix="guard the computation in step() (a division by zero, a log of 0, an overflow)",
                    )
                )
                return report
            ret += float(reward)
            if bool(ended):
                done = True
                break
        if done:
            report.returns.append(ret)
            report.lengths.append(t)
        else:
            report.cut += 1
    report.steps_per_s = n_steps / max(time.perf_counter() - t0, 1e-9)
    return report


def _raised_problem(e: BaseException) -> Problem:
    return Problem(
        f"reset() or step() raised {type(e).__name__} under jax.jit",
        actual=f"{type(e).__name__}: {e}",
        fix="a JAX-native env must be pure and jittable: no Python control flow on array values (jnp.where, "
        "lax.cond), the same state structure from reset() and step() (docs/environments.md)",
    )


def _random_episodes(vec, report: EnvReport, episodes: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    limit = vec.max_episode_steps or MAX_EPISODE_STEPS
    n_steps = 0
    t0 = time.perf_counter()
    for i in range(episodes):
        vec.reset([seed + 1 + i])
        for _ in range(limit):
            _, _, _, _, info = vec.step(random_actions(vec.action_space, rng, 1))
            n_steps += 1
            if info["episode_done"][0]:
                report.returns.append(float(info["episode_return"][0]))
                report.lengths.append(int(info["episode_length"][0]))
                break
        else:
            report.cut += 1
    elapsed = time.perf_counter() - t0
    report.steps_per_s = n_steps / elapsed if elapsed > 0 else None


def _agent_space_str(space) -> str:
    if hasattr(space, "nvec"):
        return f"MultiDiscrete({list(int(k) for k in space.nvec)})"
    if hasattr(space, "n"):
        return f"Discrete({space.n})"
    flags = " one-hot" if getattr(space, "one_hot", False) else ""
    lo, hi = np.min(space.low), np.max(space.high)
    return f"Box(shape={tuple(space.shape)}, low>={lo:g}, high<={hi:g}{flags})"


def format_report(report: EnvReport) -> str:
    """The report as ``advantage check-env`` prints it."""
    lines = [f"Environment: {report.env}"]
    if report.error is not None:
        return "\n".join(lines + ["", "NOT USABLE: the environment could not be built.", report.error])
    if report.env_spaces:
        lines += [f"  observation space: {report.env_spaces[0]}", f"  action space:      {report.env_spaces[1]}"]
    if report.agent_spaces:
        lines += [
            "  the agent sees (after the bridge's conversions):",
            f"    observations: {report.agent_spaces[0]}",
            f"    actions:      {report.agent_spaces[1]}",
        ]
    limit = report.max_episode_steps
    lines.append(
        f"  time limit: {limit} step{'s' if limit != 1 else ''} (truncation, bootstrapped)"
        if limit
        else "  time limit: none (episodes end only when the env terminates them; add a TimeLimit wrapper or "
        "max_episode_steps= when registering if they may never end)"
    )
    if report.returns or report.cut:
        rets = np.asarray(report.returns, np.float64)
        lines.append(f"  random policy: {len(rets)} episodes" + (f" (+{report.cut} cut)" if report.cut else ""))
        if len(rets):
            lines.append(
                f"    return mean {rets.mean():.4g}, std {rets.std():.3g}, min {rets.min():.4g}, max {rets.max():.4g}; "
                f"length mean {np.mean(report.lengths):.1f}"
            )
        if report.cut:
            lines.append(
                f"    {report.cut} episode(s) did not end within {MAX_EPISODE_STEPS} random steps: with no time "
                "limit, training sees no finished episode (no train/episode_return)"
            )
    if report.steps_per_s and report.env.endswith("(JAX-native)"):
        lines.append(
            f"  step rate: {report.steps_per_s:,.0f} env steps/s (one jitted step at a time from Python; training "
            "compiles whole rollouts over many envs and is much faster)"
        )
    elif report.steps_per_s:
        lines.append(f"  step rate: {report.steps_per_s:,.0f} env steps/s (random actions, one sub-env, this process)")
    lines.append("")
    if report.usable:
        lines.append("OK: the environment passes every check; `advantage train ALGO --env ...` can use it.")
    else:
        lines.append(format_problems("NOT USABLE (each problem with its fix)", report.problems))
    return "\n".join(lines)
