"""Where a step of the Gymnasium path goes: the raw vector env against ours, on the same machine, in one run.

An on-demand benchmark (issue 17, part 2). For PPO's CartPole-v1 preset (8 sub-envs) it times, per vector step:

    raw        ``gymnasium.vector.SyncVectorEnv`` of 8 ``CartPole-v1`` with random actions (the floor)
    env        our ``GymnasiumVecEnv`` (same-step auto-reset, episode statistics, final observations)
    act        the compiled ``act`` of the trained agent and the copy of its action to the host
    rollout    a whole ``collect_rollout`` of the Gymnasium back end, divided by its steps

and writes ``benchmarks/results/gym_step.json`` with the machine and versions. The target: the rollout's step at
most twice the raw step.

    python benchmarks/gym_step.py [--steps 4000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import ppo_cartpole as common  # noqa: E402  (machine_info)


def per_step(fn, steps: int, repeats: int) -> list[float]:
    """Microseconds per call of ``fn`` (``steps`` calls per repeat, after one warm-up repeat)."""
    out = []
    for r in range(repeats + 1):
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        if r:
            out.append((time.perf_counter() - t0) / steps * 1e6)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=4000, help="vector steps per repeat")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()

    import gymnasium as gym
    import numpy as np

    from advantage import algos
    from advantage.training.gym_backend import GymnasiumBackend
    from advantage.training.run_config import Schedule

    ppo = algos.get("ppo")
    config = ppo.Config(**ppo.PRESETS["CartPole-v1"])
    n = config.n_envs
    rng = np.random.default_rng(0)

    raw = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1") for _ in range(n)])
    raw.reset(seed=0)
    results = {"raw": per_step(lambda: raw.step(rng.integers(0, 2, n)), args.steps, args.repeats)}

    schedule = Schedule(args.steps * n * 4, n, config.n_steps)
    backend = GymnasiumBackend(ppo, config, "CartPole-v1", None, [0], schedule)
    runners = backend.init([0])
    backend.restart_envs(runners)
    results["env"] = per_step(lambda: backend.vec.step(rng.integers(0, 2, n)), args.steps, args.repeats)

    obs = backend._split(backend._obs)
    state: dict = {"key": runners.key}

    def act():
        state["key"], (action, _, _) = backend._act(runners.agent, obs, state["key"])
        np.asarray(action)

    results["act"] = per_step(act, args.steps, args.repeats)

    state["runners"] = runners

    def rollout():
        state["runners"], _, _ = backend.collect_rollout(state["runners"], args.steps)

    results["rollout"] = [us / args.steps for us in per_step(rollout, 1, args.repeats)]
    backend.close()

    med = {k: statistics.median(v) for k, v in results.items()}
    data = {
        "machine": common.machine_info(),
        "n_envs": n,
        "steps_per_repeat": args.steps,
        "us_per_vector_step": results,
        "median_us": med,
        "rollout_over_raw": med["rollout"] / med["raw"],
    }
    out = HERE / "results" / "gym_step.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1, default=str))
    print("| part | µs per vector step (median) | × raw |\n|---|---|---|")
    for k, v in med.items():
        print(f"| {k} | {v:.0f} | {v / med['raw']:.2f} |")
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
