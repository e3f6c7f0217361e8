"""A circular replay buffer on the device, as a pure-JAX pytree.

It lives inside an off-policy agent's state (``td3.AgentState.buffer``,
``sac.AgentState.buffer``), so the generic driver needs no replay code of its own, the
whole training loop stays one compiled program on the JAX-native back end, and every
checkpoint holds the buffer (``flax.serialization`` round-trips it like any other
pytree).

Each slot stores one transition ``(s, a, r, terminated, truncated, s')`` where ``s'``
is the *true* next observation: at an episode end it is the pre-reset final
observation, never the first observation of the next episode. ``terminated`` and
``truncated`` are kept apart so that a replay target bootstraps through a time-limit
truncation and never through a termination::

    y = r + gamma * (1 - terminated) * Q'(s', a')

Functions (all pure, all jittable): ``init``, ``add``, ``sample``, ``size``,
``capacity``, ``nbytes``. For the agents that keep one (DDPG, TD3, SAC, DQN): ``capacity_for``
(the buffer's size for a run), ``check_config`` (the config checks they share),
``training_rounds`` (when they train: Stable-Baselines3's rule) and ``run_gradient_steps``
(the gradient steps an update takes, as one ``scan``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from advantage.config import check
from advantage.nets.mlp import check_torso
from advantage.types import Transition


@struct.dataclass
class ReplayBuffer:
    """Fixed-capacity ring of transitions, flat over time and environments.

    Storage arrays have a leading axis of length ``capacity``. ``position`` is the next
    slot to write (the oldest transition once the buffer is full); ``count`` is the
    number of filled slots (``<= capacity``).
    """

    obs: jax.Array  # [C, *obs_shape] float32
    action: jax.Array  # [C, *action_shape] float32
    reward: jax.Array  # [C] float32
    terminated: jax.Array  # [C] bool
    truncated: jax.Array  # [C] bool
    next_obs: jax.Array  # [C, *obs_shape] float32 (the true next observation)
    position: jax.Array  # [] int32, next slot to write
    count: jax.Array  # [] int32, filled slots


class Sample(struct.PyTreeNode):
    """A minibatch drawn from the buffer: every field has a leading ``[batch_size]`` axis."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    next_obs: jax.Array


def init(
    capacity: int, obs_shape: tuple[int, ...], action_shape: tuple[int, ...], action_dtype=jnp.float32
) -> ReplayBuffer:
    """An empty buffer of ``capacity`` slots (zeros everywhere, ``count = 0``)."""
    if int(capacity) < 1:
        raise ValueError(f"a replay buffer needs at least one slot, got capacity={capacity}")
    c = int(capacity)
    return ReplayBuffer(
        obs=jnp.zeros((c,) + tuple(obs_shape), jnp.float32),
        action=jnp.zeros((c,) + tuple(action_shape), action_dtype),
        reward=jnp.zeros((c,), jnp.float32),
        terminated=jnp.zeros((c,), bool),
        truncated=jnp.zeros((c,), bool),
        next_obs=jnp.zeros((c,) + tuple(obs_shape), jnp.float32),
        position=jnp.zeros((), jnp.int32),
        count=jnp.zeros((), jnp.int32),
    )


def capacity(buffer: ReplayBuffer) -> int:
    """Number of slots (a Python int: it is fixed by the array shapes)."""
    return int(buffer.reward.shape[-1])


def size(buffer: ReplayBuffer) -> jax.Array:
    """Number of transitions stored (``min(transitions added, capacity)``)."""
    return buffer.count


def nbytes(buffer: ReplayBuffer) -> int:
    """Bytes held by the buffer's arrays (storage and counters), from the shapes alone.

    With a leading seed axis (the driver's batched agents) this is the total over seeds.
    """
    return int(sum(np.prod(np.shape(x)) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(buffer)))


def add(buffer: ReplayBuffer, batch: Transition) -> ReplayBuffer:
    """Insert a time-major batch ``[T, B]``, flattened time-major (``t0 b0, t0 b1, ..., t1 b0, ...``).

    The ``n = T * B`` transitions go to slots ``position, position + 1, ... (mod capacity)``,
    overwriting the oldest ones once the buffer is full. If ``n > capacity``, only the
    last ``capacity`` transitions are kept (the others would be overwritten anyway).
    ``batch.log_prob`` and ``batch.value`` are not stored.
    """
    c = capacity(buffer)
    lead = batch.reward.ndim  # 2 for [T, B]; 1 for a flat [n] batch
    n = int(np.prod(batch.reward.shape))
    flat = lambda x: x.reshape((n,) + x.shape[lead:])  # noqa: E731
    items = [
        flat(batch.obs).astype(jnp.float32),
        flat(batch.action).astype(buffer.action.dtype),
        flat(batch.reward).astype(jnp.float32),
        flat(batch.terminated).astype(bool),
        flat(batch.truncated).astype(bool),
        flat(batch.next_obs).astype(jnp.float32),
    ]
    skip = max(n - c, 0)  # static: drop what would be overwritten within this very batch
    items = [x[skip:] for x in items]
    m = n - skip
    pos = (buffer.position + skip) % c
    idx = (pos + jnp.arange(m, dtype=jnp.int32)) % c
    obs, action, reward, terminated, truncated, next_obs = (  # an action of shape (2, 2) goes to a slot of 4
        store.at[idx].set(x.reshape((m,) + store.shape[1:]))
        for store, x in zip(
            (buffer.obs, buffer.action, buffer.reward, buffer.terminated, buffer.truncated, buffer.next_obs), items
        )
    )
    return ReplayBuffer(
        obs,
        action,
        reward,
        terminated,
        truncated,
        next_obs,
        position=((pos + m) % c).astype(jnp.int32),
        count=jnp.minimum(buffer.count + m, c).astype(jnp.int32),
    )


def sample(buffer: ReplayBuffer, key: jax.Array, batch_size: int) -> Sample:
    """``batch_size`` transitions drawn uniformly, with replacement, from the filled slots.

    Slots ``0 .. count-1`` are the filled ones (the ring fills from slot 0 and, once full,
    every slot is filled). On an empty buffer the indices are all 0 (zeros are returned):
    callers only sample after ``learning_starts`` transitions.
    """
    idx = jax.random.randint(key, (batch_size,), 0, jnp.maximum(buffer.count, 1))
    return Sample(
        buffer.obs[idx],
        buffer.action[idx],
        buffer.reward[idx],
        buffer.terminated[idx],
        buffer.truncated[idx],
        buffer.next_obs[idx],
    )


# ----------------------------------------------------------------------------- agents that keep a buffer
#: Metric prefixes that are NaN by design in an agent trained by :func:`run_gradient_steps`: no gradient step
#: runs before ``learning_starts`` (and between training rounds when ``train_freq > 1``).
NAN_METRICS = ("loss/", "grad/", "q/", "value/td_error", "policy/entropy")


def capacity_for(buffer_size: int, total_steps: int) -> int:
    """``min(buffer_size, total_steps)``: a buffer larger than the transitions a run collects would never fill."""
    return max(1, min(int(buffer_size), int(total_steps)))


def check_config(config, critics_hint: str | None) -> None:
    """The checks every replay-buffer config shares (DDPG, TD3, SAC; DQN, which has no critic ensemble, passes
    ``critics_hint=None``)."""
    check(config, "n_envs", lambda v: v >= 1, "use at least one environment")
    check(config, "n_steps", lambda v: v >= 1, "collect at least one step per environment")
    check(config, "buffer_size", lambda v: v >= 1, "the buffer needs at least one slot")
    check(config, "batch_size", lambda v: v >= 1, "a minibatch needs at least one transition")
    check_torso(config)
    if critics_hint is not None:
        check(config, "n_critics", lambda v: v >= 1, critics_hint)
    check(config, "gradient_steps", lambda v: v >= 1, "take at least one gradient step per training round")
    check(config, "train_freq", lambda v: v >= 1, "train every >= 1 steps")
    check(config, "learning_rate", lambda v: v > 0, "the learning rate must be positive")
    check(config, "gamma", lambda v: 0 <= v <= 1, "gamma must lie in [0, 1]")
    check(config, "tau", lambda v: 0 < v <= 1, "tau must lie in (0, 1]")
    check(config, "learning_starts", lambda v: v >= 0, "learning_starts must be >= 0")


def training_rounds(config, env_steps_before, n_steps: int):
    """How many gradient steps this update takes, and their static upper bound.

    A round of ``gradient_steps`` is due each time the steps per env cross a multiple of
    ``train_freq``, and only once more than ``learning_starts`` transitions were collected
    (Stable-Baselines3's rule, checked after collecting).
    """
    per_env_before = env_steps_before // config.n_envs
    rounds = (per_env_before + n_steps) // config.train_freq - per_env_before // config.train_freq
    collected = env_steps_before + n_steps * config.n_envs
    n_grad = jnp.where(collected > config.learning_starts, rounds * config.gradient_steps, 0)
    max_grad = -(-n_steps // config.train_freq) * config.gradient_steps
    return n_grad, max_grad


def run_gradient_steps(
    config, action_space, state, key, n_grad, max_grad: int, step_fn, actor_keys=("loss/actor", "grad/norm_actor")
):
    """Scan ``max_grad`` slots of ``step_fn(config, action_space, state, key) -> (state, metrics, actor_updated)``;
    the first ``n_grad`` run, the others are skipped (``lax.cond``).

    Metrics are averaged over the steps that ran (the ``actor_keys`` over the steps that updated
    the actor); NaN when none did.
    """
    out_shape = jax.eval_shape(lambda s, k: step_fn(config, action_space, s, k)[1], state, key)
    nan = {k: jnp.full(v.shape, jnp.nan, v.dtype) for k, v in out_shape.items()}

    def body(s, inp):
        i, k = inp
        run = lambda s: step_fn(config, action_space, s, k)  # noqa: E731
        skip = lambda s: (s, nan, jnp.asarray(False))  # noqa: E731
        s, m, actor_updated = jax.lax.cond(i < n_grad, run, skip, s)
        return s, (m, i < n_grad, actor_updated & (i < n_grad))

    state, (m, ran, actor_ran) = jax.lax.scan(body, state, (jnp.arange(max_grad), jax.random.split(key, max_grad)))

    def masked_mean(x, mask):
        n = jnp.sum(mask)
        return jnp.where(n > 0, jnp.sum(jnp.where(mask, x, 0.0)) / jnp.maximum(n, 1), jnp.nan)

    metrics = {k: masked_mean(v, actor_ran if k in actor_keys else ran) for k, v in m.items()}
    metrics["opt/gradient_steps"] = jnp.sum(ran).astype(jnp.float32)
    return state, metrics
