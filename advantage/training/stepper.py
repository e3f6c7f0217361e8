"""What executes training: the :class:`Stepper` contract, and the steppers of the gradient-based algorithms.

A *run session* (``session.py``) owns everything around training -- the run folder, writers,
progress, checkpoint and evaluation cadence, health checks, interrupts and the summary. A *stepper*
executes it, and the session knows it only through :class:`Stepper`:

    state = stepper.start(seeds)                       # or stepper.restore(template, raw, ...)
    while not stepper.finished(state):
        adv = stepper.advance(state, budget)           # metrics and each seed's env steps, per update
        state = adv.state
    returns, lengths, episodes = stepper.evaluate(state, ...)

A stepper counts the env steps it consumed **per seed and per update** (:attr:`Advance.env_steps`):
the session never assumes that seeds (or workers) advance in lockstep. A new way of executing training
-- an asynchronous worker pool, an actor-learner on a cluster -- is one more class that satisfies
:class:`Stepper`; nothing in the session changes.

This file also holds the contract of an *environment back end* (:class:`Backend`: where env steps
happen -- the JAX-native compiled path ``jax_backend.py`` or the Gymnasium host path ``gym_backend.py``)
and :class:`UpdateStepper`, which runs any algorithm with ``init / act / update`` on any back end:
``full_iters`` updates in compiled chunks, then one shorter rollout that makes the budget exact.
Population search (CEM, hill climbing, CMA-ES) is :class:`advantage.training.search.SearchStepper`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol, runtime_checkable

import jax
import numpy as np

from advantage.training.run_config import Schedule


def seed_env_steps(state) -> np.ndarray:
    """``[n_seeds]`` int64: the ``env_steps`` counter of a state whose pytree has one per seed."""
    return np.asarray(jax.device_get(state.env_steps)).astype(np.int64).reshape(-1)


@dataclasses.dataclass
class Advance:
    """What one :meth:`Stepper.advance` did."""

    state: Any
    """The stepper's state after it (the input state stays valid: a failure later keeps the last good one)."""
    metrics: dict[str, np.ndarray]
    """Every metric per seed and update, ``[n_seeds, n_updates]`` (NaN where a metric has no value)."""
    env_steps: np.ndarray
    """``[n_seeds, n_updates]`` int: each seed's env-step count after each update. An update in which a seed's
    count did not grow did not happen for that seed (it had reached its budget) and is not logged."""


@runtime_checkable
class Stepper(Protocol):
    """How training is executed, as the run session sees it."""

    name: str
    """The back end's name, written to ``summary.json`` and ``config.json`` (``jax``, ``gymnasium``, ...)."""
    action_space: Any
    total_steps: int
    """The budget: env steps per seed."""
    update_size: int
    """Env steps per seed that one update consumes (a typical batch for an asynchronous stepper; 1 for search).
    The default checkpoint interval is at least this, and health rules that need several steps read it."""
    health_checks: bool
    """Whether the session checks the metrics for non-finite values and unhealthy trends."""
    nan_metrics: tuple[str, ...]
    """Metric prefixes that may be NaN by design (the algorithm's ``NAN_METRICS``)."""

    @property
    def timers(self) -> dict[str, float]:
        """Seconds spent per activity so far (``env``, ``act``, ``update``, ...); may be empty."""
        ...

    @property
    def compile_time_s(self) -> float:
        """Seconds spent compiling so far (reported apart from run time)."""
        ...

    def describe(self) -> str:
        """One line for the console: how the budget is spent."""
        ...

    def log_interval(self, log_every: int | None) -> int:
        """Env steps per seed between two metrics rows, given the user's ``--log-every`` (None: the
        stepper's default; 1: a row after every update)."""
        ...

    def start(self, seeds: list[int]) -> Any:
        """The state of a new run of ``seeds``."""
        ...

    def restore(self, template: Any, raw: dict, path: str, meta: dict) -> Any:
        """The state of a checkpointed run: ``raw`` (``checkpoint.load_meta``) poured into ``template``
        (a :meth:`start` state), the environments restarted where they cannot be saved."""
        ...

    def env_steps(self, state: Any) -> np.ndarray:
        """``[n_seeds]`` int: each seed's env steps so far."""
        ...

    def finished(self, state: Any) -> bool:
        """Whether every seed has spent its budget."""
        ...

    def advance(self, state: Any, budget: int) -> Advance:
        """Train for at most ``budget`` more env steps per seed (it may do less, e.g. one compiled chunk)."""
        ...

    def nonfinite_batch(self, state: Any, adv: Advance) -> Any:
        """The rollout batch of the first update of ``adv`` (started from ``state``) whose metrics hold a
        non-finite value, for saving to ``debug/``; None if it cannot be reproduced."""
        ...

    def evaluate(
        self, state: Any, n_episodes: int, deterministic: bool, max_steps: int | None = None, record: int = 0
    ) -> tuple[np.ndarray, np.ndarray, dict | None]:
        """Returns and lengths ``[n_seeds, n_episodes]`` of evaluation episodes (``advantage.training.seeding``),
        and the first ``record`` episodes' ``{"obs", "actions", "rewards"}`` (None if 0)."""
        ...

    def prefetch_evaluation(
        self, state: Any, n_episodes: int, deterministic: bool, max_steps: int | None = None, record: int = 0
    ) -> None:
        """Start preparing (compiling) the evaluation :meth:`evaluate` will run with these arguments, in the
        background while training goes on; nothing where there is nothing to prepare."""
        ...

    def agents(self, state: Any) -> Any:
        """The agents, with a leading seed axis."""
        ...

    def checkpoint_meta(self, state: Any) -> dict:
        """Extra fields for the checkpoint's metadata (counters older readers expect)."""
        ...

    def summary(self, state: Any) -> dict:
        """Extra fields for ``summary.json``."""
        ...

    def close(self) -> None:
        """Release environments and workers."""
        ...


@runtime_checkable
class Backend(Protocol):
    """An environment back end: where env steps happen, with the algorithm's ``act`` and ``update`` compiled
    and batched over seeds. ``runners`` is a pytree with a leading seed axis whose ``agent`` holds the
    agents and ``env_steps`` each seed's env-step count."""

    name: str
    obs_space: Any
    action_space: Any
    timers: dict[str, float]

    @property
    def compile_time_s(self) -> float: ...

    def init(self, seeds, prefetch: bool = False) -> Any:
        """New runners for ``seeds`` (agents initialised, environments reset). ``prefetch``: also start
        compiling the training programs (:meth:`run_chunk`'s, :meth:`run_partial`'s) in the background, for a
        caller that will train with them (not a worker that only collects, nor a search)."""
        ...

    def restart_envs(self, runners) -> None:
        """Restart environments whose state a checkpoint does not hold (a no-op where it does)."""
        ...

    def run_chunk(self, runners, n_iters: int) -> tuple[Any, dict]:
        """``n_iters`` iterations (rollout of ``n_steps`` from every env, then one update): ``(runners,
        metrics [n_seeds, n_iters])``."""
        ...

    def run_partial(self, runners) -> tuple[Any, dict]:
        """One iteration on the schedule's shorter final rollout: ``(runners, metrics [n_seeds, 1])``."""
        ...

    def nonfinite_batch(self, runners, n_iters: int) -> Any:
        """The rollout batch of the first of ``n_iters`` iterations from ``runners`` whose metrics are not
        finite, or None."""
        ...

    def evaluate(
        self, runners, n_episodes: int, deterministic: bool, max_steps: int | None = None, record: int = 0
    ) -> tuple[np.ndarray, np.ndarray, dict | None]: ...

    def prefetch_evaluation(
        self, runners, n_episodes: int, deterministic: bool, max_steps: int | None = None, record: int = 0
    ) -> None: ...

    def close(self) -> None: ...


class UpdateStepper:
    """Gradient-based training on a :class:`Backend`: ``schedule.full_iters`` updates in compiled chunks of
    ``chunk_iters``, then (when the budget is not a multiple of the batch) one update on a shorter rollout.
    Every seed advances in lockstep here; the session does not rely on it."""

    def __init__(self, algo, backend: Backend, schedule: Schedule, chunk_iters: int):
        self.algo, self.backend, self.schedule, self.chunk_iters = algo, backend, schedule, chunk_iters
        self.name, self.action_space = backend.name, backend.action_space
        self.total_steps, self.update_size = schedule.total_steps, schedule.batch
        self.nan_metrics = tuple(algo.NAN_METRICS)
        self.health_checks = True

    @property
    def compile_time_s(self) -> float:
        return self.backend.compile_time_s

    @property
    def timers(self) -> dict[str, float]:  # the back end's
        return self.backend.timers

    def describe(self) -> str:
        return self.schedule.describe()

    def log_interval(self, log_every: int | None) -> int:
        return self.schedule.log_group(log_every) * self.schedule.batch

    def start(self, seeds):
        return self.backend.init(seeds, prefetch=True)

    def restore(self, template, raw, path, meta):
        from advantage.training import checkpoint

        runners = checkpoint.restore(template, raw, path, buffers_saved=meta.get("replay_buffer_saved", True))
        self.backend.restart_envs(runners)
        return runners

    def env_steps(self, state) -> np.ndarray:
        return seed_env_steps(state)

    def _position(self, state) -> tuple[int, bool]:
        """``(full iterations done, final short rollout done)`` from the env steps (all seeds alike)."""
        steps = int(self.env_steps(state).min())
        return min(steps // self.schedule.batch, self.schedule.full_iters), steps >= self.schedule.total_steps

    def finished(self, state) -> bool:
        return self._position(state)[1]

    def advance(self, state, budget: int) -> Advance:
        iters_done, _ = self._position(state)
        before = self.env_steps(state)
        if iters_done < self.schedule.full_iters:
            n = min(self.chunk_iters, self.schedule.full_iters - iters_done, max(1, budget // self.schedule.batch))
            state, metrics = self.backend.run_chunk(state, n)
            steps = before[:, None] + self.schedule.batch * np.arange(1, n + 1)[None, :]
        else:  # the final, shorter rollout
            state, metrics = self.backend.run_partial(state)
            steps = before[:, None] + self.schedule.partial_steps * self.schedule.n_envs
        return Advance(state, metrics, steps)

    def nonfinite_batch(self, state, adv: Advance):
        return self.backend.nonfinite_batch(state, adv.env_steps.shape[1])

    def evaluate(self, state, n_episodes, deterministic, max_steps=None, record=0):
        return self.backend.evaluate(state, n_episodes, deterministic, max_steps, record)

    def prefetch_evaluation(self, state, n_episodes, deterministic, max_steps=None, record=0):
        self.backend.prefetch_evaluation(state, n_episodes, deterministic, max_steps, record)

    def agents(self, state):
        return state.agent

    def checkpoint_meta(self, state) -> dict:
        iters_done, done = self._position(state)
        return {"iters_done": iters_done, "partial_done": bool(done and self.schedule.partial_steps)}

    def summary(self, state) -> dict:
        return {}

    def close(self) -> None:
        self.backend.close()
