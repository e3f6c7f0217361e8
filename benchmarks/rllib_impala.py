"""RLlib's IMPALA on CartPole-v1 or ``slow_envs:SlowCartPole``: the reference run of ``pool_throughput.py``.

Runs inside the venv that ``pool_throughput.py --rllib`` creates (``ray[rllib]`` and a CPU-only torch), never in
the project's environment. One seed, ``--workers`` env runners (Ray actors) of ``--n-envs`` envs each, rollout
fragments of ``--n-steps`` steps, a train batch of one fragment (``n_envs x n_steps`` env steps, as one job of
ours) and the learner in the driver process (``num_learners=0``), as our learner is. Network and optimiser
settings that matter for throughput follow our IMPALA CartPole-v1 preset (64-64 tanh, separate value network,
lr 7e-4, no entropy bonus); everything else is RLlib's default.

Timing: ``build_time_s`` is ``config.build_algo()`` (Ray start, env runners, learner); ``train_time_s`` is the sum
of the ``algo.train()`` calls (each at least 1 s: RLlib's default is 10 s, which would overshoot a short budget)
until at least ``--total-steps`` env steps were sampled; ``sps`` is the env steps sampled over it; ``steady_sps``
leaves out the iterations that began before 10% of the budget. The final return
is the mean of ``--eval-episodes`` deterministic (argmax) episodes of the trained module on a fresh env in this
process, not timed. Prints ``RLLIB_RESULT {json}`` as its last line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def make_env_creator(env_id: str, env_kwargs: dict):
    import gymnasium

    if ":" not in env_id:
        return lambda cfg: gymnasium.make(env_id)
    module, _, attr = env_id.partition(":")

    def create(cfg):
        import importlib

        return getattr(importlib.import_module(module), attr)(**cfg)

    return create


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="CartPole-v1", help="a Gymnasium id or module:Class (slow_envs:SlowCartPole)")
    p.add_argument("--env-kwargs", default="{}")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--n-envs", type=int, default=8)
    p.add_argument("--n-steps", type=int, default=8)
    p.add_argument("--total-steps", type=int, default=96_000)
    p.add_argument("--eval-episodes", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--tuned",
        action="store_true",
        help="RLlib's own CartPole-v1 IMPALA settings (its tuned example: train batch 500, lr 5e-4, grad clip 40, "
        "vf_loss_coeff 0.05, one shared 256-256 network) instead of ours; --n-envs/--n-steps still set the sampling",
    )
    args = p.parse_args()
    t_import = time.perf_counter()

    import numpy as np
    import ray
    import torch
    from ray.rllib.algorithms.impala import IMPALAConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
    from ray.tune.registry import register_env

    import_time_s = time.perf_counter() - t_import
    env_kwargs = json.loads(args.env_kwargs)
    creator = make_env_creator(args.env, env_kwargs)
    register_env("bench_env", creator)

    cpus = os.cpu_count() or 1
    runtime_env = {}
    if ":" in args.env:  # the env module (benchmarks/slow_envs.py), for the env runners
        import importlib

        runtime_env["py_modules"] = [importlib.import_module(args.env.partition(":")[0])]
    ray.init(num_cpus=cpus, include_dashboard=False, runtime_env=runtime_env, logging_level="WARNING")
    batch = args.n_envs * args.n_steps
    config = (
        IMPALAConfig()
        .environment("bench_env", env_config=env_kwargs)
        .framework("torch")
        .env_runners(
            num_env_runners=args.workers,
            num_envs_per_env_runner=args.n_envs,
            rollout_fragment_length=args.n_steps,
            num_cpus_per_env_runner=min(1.0, cpus / max(1, args.workers)),
        )
        .learners(num_learners=0)
    )
    if args.tuned:  # rllib/tuned_examples/impala/cartpole_impala.py (num_learners 0 here, so lr 5e-4 x 1)
        training = dict(
            train_batch_size_per_learner=500,
            lr=5e-4,
            grad_clip=40.0,
            grad_clip_by="global_norm",
            vf_loss_coeff=0.05,
            entropy_coeff=0.0,
        )
        model = DefaultModelConfig(vf_share_layers=True)
    else:
        training = dict(train_batch_size_per_learner=batch, lr=7e-4, entropy_coeff=0.0, vf_loss_coeff=0.5)
        model = DefaultModelConfig(fcnet_hiddens=[64, 64], fcnet_activation="tanh", vf_share_layers=False)
    config = (
        config.training(**training)
        .rl_module(model_config=model)
        .reporting(min_time_s_per_iteration=1)
        .debugging(seed=args.seed, log_level="WARN")
    )
    t0 = time.perf_counter()
    algo = config.build_algo()
    build_time_s = time.perf_counter() - t0

    iterations = []  # (env steps sampled before, after, seconds)
    curve = []  # (env steps sampled, mean return of the training episodes RLlib reports)
    sampled = 0
    while sampled < args.total_steps:
        t0 = time.perf_counter()
        result = algo.train()
        dt = time.perf_counter() - t0
        now = int(result["env_runners"].get("num_env_steps_sampled_lifetime", sampled))
        iterations.append((sampled, now, dt))
        curve.append((now, result["env_runners"].get("episode_return_mean")))
        sampled = now
    train_time_s = sum(it[2] for it in iterations)
    late = [it for it in iterations if it[0] >= 0.1 * args.total_steps]
    steady_sps = sum(b - a for a, b, _ in late) / max(1e-9, sum(dt for *_, dt in late)) if late else None

    # Deterministic evaluation of the trained module, in this process (not timed). The learner's weights are sent
    # to the local env runner first: IMPALA broadcasts them to the remote env runners only, so algo.get_module()
    # alone would evaluate the initial (untrained) network.
    algo.env_runner_group.sync_weights(from_worker_or_learner_group=algo.learner_group, inference_only=True)
    module = algo.get_module()
    env = creator(env_kwargs)
    returns = []
    for ep in range(args.eval_episodes):
        obs, _ = env.reset(seed=10_000 + ep)
        done, total = False, 0.0
        while not done:
            with torch.no_grad():
                out = module.forward_inference({"obs": torch.as_tensor(np.asarray(obs, np.float32)[None])})
            action = int(torch.argmax(out["action_dist_inputs"][0]))
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    algo.stop()
    ray.shutdown()

    from importlib import metadata

    out = {
        "env_steps": sampled,
        "iterations": len(iterations),
        "import_time_s": import_time_s,
        "build_time_s": build_time_s,
        "train_time_s": train_time_s,
        "sps": sampled / max(train_time_s, 1e-9),
        "steady_sps": steady_sps,
        "eval_return": float(np.mean(returns)) if returns else None,
        "eval_episodes": len(returns),
        "torch_num_threads": torch.get_num_threads(),
        "versions": {d: metadata.version(d) for d in ("ray", "torch", "gymnasium", "numpy")},
        "python": sys.version.split()[0],
        "training_return_curve": curve,
        "config": {
            "workers": args.workers,
            "n_envs": args.n_envs,
            "rollout_fragment_length": args.n_steps,
            "num_learners": 0,
            **training,
            "model": "RLlib's default (256-256 relu), one shared network"
            if args.tuned
            else "64-64 tanh, separate value network",
        },
    }
    print("RLLIB_RESULT " + json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
