"""Slow Gymnasium environments for the worker-pool benchmark (``pool_throughput.py``).

``SlowCartPole`` is Gymnasium's ``CartPole-v1`` (``gymnasium.make``: the same dynamics, rewards and 500-step
limit) with ``delay_ms`` milliseconds of simulated work on every ``step``: the stand-in for an environment whose
simulator, not the learner, is the bottleneck. The work is either

* ``work="spin"`` (the default) -- a busy loop that holds a CPU core for ``delay_ms``, like a physics simulator
  computing; on a machine with fewer cores than processes, parallel workers compete for the cores; or
* ``work="sleep"`` -- ``time.sleep``, which leaves the core free, like an env that waits on something outside
  the CPU (a remote simulator, a robot); parallel workers overlap even on one core.

Used as ``--env slow_envs:SlowCartPole`` (with ``benchmarks/`` on ``PYTHONPATH``) or
``--env benchmarks.slow_envs:SlowCartPole`` (from the repository root), and ``--env-kwargs '{"work": "sleep"}'``.
"""

from __future__ import annotations

import time

import gymnasium


def simulated_work(seconds: float, work: str = "spin") -> None:
    """Hold this thread for ``seconds``: busy (``spin``) or asleep (``sleep``)."""
    if seconds <= 0:
        return
    if work == "sleep":
        time.sleep(seconds)
        return
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


class SlowCartPole(gymnasium.Wrapper):
    """``CartPole-v1`` with ``delay_ms`` ms of simulated work per step (``work``: ``"spin"`` or ``"sleep"``)."""

    def __init__(self, delay_ms: float = 1.0, work: str = "spin", render_mode: str | None = None):
        if work not in ("spin", "sleep"):
            raise ValueError(f"work={work!r}: choose 'spin' (busy CPU) or 'sleep'")
        if delay_ms < 0:
            raise ValueError(f"delay_ms={delay_ms}: use 0 or more")
        super().__init__(gymnasium.make("CartPole-v1", render_mode=render_mode))
        self.delay_s, self.work = delay_ms / 1000.0, work

    def step(self, action):
        simulated_work(self.delay_s, self.work)
        return self.env.step(action)
