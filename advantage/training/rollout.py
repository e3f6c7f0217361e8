"""Playing whole episodes with a trained policy: every evaluation and recording loop, in one place.

Used by the final and periodic evaluations of both back ends, by ``advantage eval`` and by the
videos (``report/video.py``). Episodes are the evaluation episodes of ``training/seeding.py``:
episode ``i`` starts from ``PRNGKey(EVAL_SEED_OFFSET + i)`` (JAX) or ``reset(seed=EVAL_SEED_OFFSET + i)``
(Gymnasium), the same for every training seed.

* :func:`jax_episodes` -- a JAX-native env: each episode a ``lax.scan`` of ``max_steps`` steps,
  ``vmap``-ed over episodes, inside the caller's compiled program.
* :func:`host_episodes` -- a Gymnasium env: batches of episodes in one host vector env, the actions
  from a jitted ``act``.
* :func:`host_render_episodes` -- a Gymnasium env, one episode after another, calling ``on_step``
  after every reset and step (the video renders a frame there).

An episode still running after ``max_steps`` counts with the return and length it had reached.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from advantage.training.seeding import EVAL_SEED_OFFSET, eval_keys

#: Evaluation episodes of an env without a time limit are cut after this many steps.
DEFAULT_EVAL_MAX_STEPS = 10_000

#: Host evaluation runs this many episodes at a time.
EVAL_BATCH = 64


def jax_episodes(
    env,
    env_params,
    act: Callable,
    to_env: Callable,
    n_episodes: int,
    max_steps: int,
    record: int = 0,
    keep_states: bool = False,
) -> dict:
    """Play evaluation episodes ``0 .. n_episodes - 1`` (traceable: call it inside ``jit``).

    ``env``: a functional env wrapped in ``EpisodeStats`` (no auto-reset); ``act(obs, key) -> action`` for one
    observation; ``to_env``: the policy's action to the env's (rescaling a Box action).

    Returns ``returns [E]`` and ``lengths [E]``; with ``record``, ``obs``, ``actions`` and ``rewards``
    ``[record, max_steps, ...]`` of the first ``record`` episodes (zero after an episode's end); with
    ``keep_states``, ``states`` (every env state, the first one included: ``[E, max_steps + 1, ...]``, frozen
    after the episode's end), ``step_returns [E, max_steps]`` (the return so far) and ``done [E, max_steps]``.
    """

    def episode(key, keep: bool):
        obs, state = env.reset(key, env_params)
        key = jax.random.fold_in(key, 1)

        def step(carry, _):
            obs, state, key, done, ret, length = carry
            key, k_act, k_env = jax.random.split(key, 3)
            action = act(obs, k_act)
            next_obs, next_state, reward, _, _, info = env.step(k_env, state, to_env(action), env_params)
            ended = jnp.logical_and(~done, info["episode_done"])
            ret = jnp.where(ended, info["episode_return"], ret)
            length = jnp.where(ended, info["episode_length"], length)
            next_state = jax.tree.map(lambda a, b: jnp.where(done, a, b), state, next_state)  # frozen after the end
            out: dict[str, Any] = {}
            if keep:  # steps after the episode's end are padding: zeros
                out = {
                    "obs": jnp.where(done, 0, obs),
                    "actions": jnp.where(done, 0, action),
                    "rewards": jnp.where(done, 0, reward),
                }
            if keep_states:
                out.update(
                    state=next_state,
                    step_return=jnp.where(done | ended, ret, next_state.episode_return),
                    done=done | ended,
                )
            return (next_obs, next_state, key, done | ended, ret, length), out

        init = (obs, state, key, jnp.asarray(False), jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32))
        (_, state_T, _, done, ret, length), out = jax.lax.scan(step, init, None, length=max_steps)
        # an episode cut by max_steps counts with the return and length it had reached
        ret = jnp.where(done, ret, state_T.episode_return)
        length = jnp.where(done, length, state_T.episode_length)
        if keep_states:
            out["state"] = jax.tree.map(lambda s0, s: jnp.concatenate([s0[None], s]), state, out["state"])
        return ret, length, out

    keys = eval_keys(n_episodes)
    record = min(record, n_episodes)
    parts = []
    if record:
        parts.append(jax.vmap(lambda k: episode(k, True))(keys[:record]))
    if n_episodes > record:
        parts.append(jax.vmap(lambda k: episode(k, False))(keys[record:]))
    result = {"returns": jnp.concatenate([p[0] for p in parts]), "lengths": jnp.concatenate([p[1] for p in parts])}
    if record:
        result.update({k: parts[0][2][k] for k in ("obs", "actions", "rewards")})
    if keep_states:
        extra = [p[2] for p in parts]
        for name, key in (("states", "state"), ("step_returns", "step_return"), ("done", "done")):
            result[name] = jax.tree.map(lambda *xs: jnp.concatenate(xs), *[e[key] for e in extra])
    return result


def host_episodes(
    make_vec: Callable[[int], Any],
    act: Callable,
    agents: list,
    n_episodes: int,
    max_steps: int | None = None,
    record: int = 0,
):
    """Play evaluation episodes ``0 .. n_episodes - 1`` on a Gymnasium env for each agent of ``agents``.

    ``make_vec(n)``: a ``GymnasiumVecEnv`` of ``n`` sub-envs; ``act(agent, obs, key) -> actions`` (jitted).
    Episodes run ``EVAL_BATCH`` at a time; the action keys come from one stream per agent that starts at
    ``PRNGKey(EVAL_SEED_OFFSET)``. Returns ``returns, lengths [n_agents, n_episodes]`` and, with ``record``,
    ``{"obs", "actions", "rewards"}: [n_agents, record, T, ...]`` of the first ``record`` episodes (else None).
    """
    n_par = min(n_episodes, EVAL_BATCH)
    record = min(record, n_par)
    vec = make_vec(n_par)
    max_steps = max_steps or vec.max_episode_steps or DEFAULT_EVAL_MAX_STEPS
    returns = np.zeros((len(agents), n_episodes), np.float32)
    lengths = np.zeros((len(agents), n_episodes), np.int32)
    recorded: dict[str, list] = {"obs": [], "actions": [], "rewards": []}
    try:
        for s, agent in enumerate(agents):
            key = jax.random.PRNGKey(EVAL_SEED_OFFSET)
            steps: dict[str, list] = {"obs": [], "actions": [], "rewards": []}
            for start in range(0, n_episodes, n_par):
                idx = list(range(start, min(start + n_par, n_episodes)))
                obs = vec.reset([EVAL_SEED_OFFSET + i for i in idx] + [0] * (n_par - len(idx)))
                finished = np.zeros(n_par, bool)
                finished[len(idx) :] = True
                running = np.zeros(n_par, np.float64)
                for _ in range(max_steps):
                    if finished.all():
                        break
                    key, k = jax.random.split(key)
                    action = np.asarray(act(agent, obs, k))
                    keep: Callable = lambda x: x  # noqa: E731
                    if start == 0 and record:  # steps after an episode's end are padding: zeros
                        alive = ~finished[:record]
                        keep = lambda x: np.where(alive.reshape(alive.shape + (1,) * (x.ndim - 1)), x, 0)  # noqa: E731
                        steps["obs"].append(keep(obs[:record]))
                        steps["actions"].append(keep(action[:record]))
                    obs, reward, _, _, info = vec.step(action)
                    if start == 0 and record:
                        steps["rewards"].append(keep(reward[:record]))
                    running += reward
                    ended = info["episode_done"] & ~finished
                    for j in np.flatnonzero(ended):
                        returns[s, start + j] = info["episode_return"][j]
                        lengths[s, start + j] = info["episode_length"][j]
                    finished |= ended
                for j in np.flatnonzero(~finished):  # cut by max_steps
                    returns[s, start + j], lengths[s, start + j] = running[j], max_steps
            for k in recorded:
                recorded[k].append(np.swapaxes(np.stack(steps[k]), 0, 1) if steps[k] else None)
    finally:
        vec.close()
    if not record:
        return returns, lengths, None
    # pad every agent's recording to the longest one: [n_agents, record, T, ...]
    t_max = max(r.shape[1] for r in recorded["obs"])
    pad = lambda x: np.concatenate([x, np.zeros((x.shape[0], t_max - x.shape[1]) + x.shape[2:], x.dtype)], 1)  # noqa: E731
    return returns, lengths, {k: np.stack([pad(x) for x in v]) for k, v in recorded.items()}


def host_render_episodes(
    vec, act: Callable, episodes: int, max_steps: int, on_step: Callable[[Any], None], go_on: Callable[[bool], bool]
) -> tuple[list[float], list[int]]:
    """Play evaluation episodes ``0 .. episodes - 1`` one after another on a single Gymnasium env made by the
    bridge ``vec`` (a ``GymnasiumVecEnv``, for its observation and action conversions), calling ``on_step(env)``
    after every reset and step (the video renders a frame there). ``go_on(new_episode)`` is asked before each
    episode (True) and each step (False); False stops there (a frame budget). ``act(obs, key) -> actions`` for a
    batch of one. Returns the returns and lengths of the episodes played (the last one possibly cut)."""
    env = vec.env_factory()
    returns: list[float] = []
    lengths: list[int] = []
    try:
        for i in range(episodes):
            if not go_on(True):
                break
            raw, _ = env.reset(seed=EVAL_SEED_OFFSET + i)
            on_step(env)
            key = jax.random.PRNGKey(EVAL_SEED_OFFSET + i)
            ret, length, ended = 0.0, 0, False
            while not ended and length < max_steps:
                if not go_on(False):
                    break
                key, k = jax.random.split(key)
                action = np.asarray(act(vec._obs_batch(raw), k))
                raw, reward, terminated, truncated, _ = env.step(vec.env_actions(action)[0])
                ret += float(reward)
                length += 1
                ended = bool(terminated or truncated)
                on_step(env)
            returns.append(ret)
            lengths.append(length)
    finally:
        env.close()
    return returns, lengths
