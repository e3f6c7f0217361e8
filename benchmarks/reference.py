"""The reference implementations with the RL Zoo hyperparameters: one process, one seed.

Run by ``benchmarks/compare.py`` in a fresh process per measurement (the parent times the
whole process); it can also be run by hand:

    python benchmarks/reference.py --lib sb3 --algo sac --env Pendulum-v1 --seed 0 --save /tmp/m.zip
    python benchmarks/reference.py --lib sb3 --algo sac --env Pendulum-v1 --eval /tmp/m.zip

Training prints one JSON line (``REF_RESULT {...}``) with the time of the imports, the model
construction and ``model.learn`` (SPS = env steps / learn time). Evaluation (kept out of the
timed process) runs ``evaluate_policy`` with deterministic actions on 200 episodes.

Libraries: ``sb3`` (Stable-Baselines3: A2C, SAC, TD3), ``sb3-contrib`` (TRPO) and ``sbx``
(the JAX port of SB3: SAC, TD3). The hyperparameters are rl-baselines3-zoo's
``hyperparams/{a2c,trpo,sac,td3}.yml`` entries, written out in ``ZOO`` below; every field the
Zoo does not list keeps the library's default.
"""

from __future__ import annotations

import time

T_START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402

#: (algo, env) -> (n_envs, n_timesteps, constructor kwargs, extra: noise for TD3)
ZOO = {
    ("a2c", "CartPole-v1"): (8, 500_000, dict(ent_coef=0.0), {}),
    ("trpo", "CartPole-v1"): (
        2,
        100_000,
        dict(
            n_steps=512,
            batch_size=512,
            cg_damping=1e-3,
            gae_lambda=0.98,
            gamma=0.99,
            learning_rate=1e-3,
            n_critic_updates=20,
        ),
        {},
    ),
    ("sac", "Pendulum-v1"): (1, 20_000, dict(learning_rate=1e-3), {}),
    ("td3", "Pendulum-v1"): (
        1,
        20_000,
        dict(
            gamma=0.98,
            buffer_size=200_000,
            learning_starts=10_000,
            gradient_steps=1,
            train_freq=1,
            learning_rate=1e-3,
            policy_kwargs=dict(net_arch=[400, 300]),
        ),
        {"noise_std": 0.1},
    ),
}


def algo_class(lib: str, algo: str):
    if lib == "sbx":
        import sbx

        return getattr(sbx, algo.upper())
    if lib == "sb3-contrib":
        import sb3_contrib

        return getattr(sb3_contrib, algo.upper())
    import stable_baselines3

    return getattr(stable_baselines3, algo.upper())


def train(args) -> dict:
    t0 = time.perf_counter()
    import numpy as np

    try:
        import torch

        if args.threads is not None:
            torch.set_num_threads(args.threads)
        threads = torch.get_num_threads()
    except ImportError:
        threads = None
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.noise import NormalActionNoise
    from stable_baselines3.common.vec_env import DummyVecEnv

    cls = algo_class(args.lib, args.algo)
    t_import = time.perf_counter() - t0
    n_envs, n_timesteps, kwargs, extra = ZOO[(args.algo, args.env)]
    t0 = time.perf_counter()
    env = make_vec_env(args.env, n_envs=n_envs, seed=args.seed, vec_env_cls=DummyVecEnv)
    kwargs = dict(kwargs)
    if "noise_std" in extra:
        dim = env.action_space.shape[0]
        kwargs["action_noise"] = NormalActionNoise(np.zeros(dim), extra["noise_std"] * np.ones(dim))
    if args.lib != "sbx":
        kwargs["device"] = "cpu"
    model = cls("MlpPolicy", env, seed=args.seed, verbose=0, **kwargs)
    t_setup = time.perf_counter() - t0
    total = args.total_steps or n_timesteps
    t0 = time.perf_counter()
    model.learn(total_timesteps=total)
    t_learn = time.perf_counter() - t0
    ep_returns = [ep["r"] for ep in model.ep_info_buffer]
    if args.save:
        model.save(args.save)
    return {
        "lib": args.lib,
        "algo": args.algo,
        "env": args.env,
        "seed": args.seed,
        "import_time_s": t_import,
        "setup_time_s": t_setup,
        "learn_time_s": t_learn,
        "env_steps": int(model.num_timesteps),
        "sps": model.num_timesteps / t_learn,
        "train_return_last100": float(np.mean(ep_returns)) if ep_returns else None,
        "torch_num_threads": threads,
        "n_envs": n_envs,
        "hyperparameters": {k: repr(v) for k, v in kwargs.items()},
        "time_to_result_s": time.perf_counter() - T_START,
    }


def evaluate(args) -> dict:
    import numpy as np
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import DummyVecEnv

    model = algo_class(args.lib, args.algo).load(args.eval, **({} if args.lib == "sbx" else {"device": "cpu"}))
    env = make_vec_env(args.env, n_envs=1, seed=10_000 + args.seed, vec_env_cls=DummyVecEnv)
    returns, lengths = evaluate_policy(
        model, env, n_eval_episodes=args.eval_episodes, deterministic=True, return_episode_rewards=True
    )
    return {
        "eval_return_mean": float(np.mean(returns)),
        "eval_return_std": float(np.std(returns)),
        "eval_length_mean": float(np.mean(lengths)),
        "eval_episodes": len(returns),
        "deterministic": True,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lib", choices=("sb3", "sb3-contrib", "sbx"), required=True)
    p.add_argument("--algo", choices=sorted({a for a, _ in ZOO}), required=True)
    p.add_argument("--env", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--total-steps", type=int, default=None, help="default: the Zoo's n_timesteps")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's default)")
    p.add_argument("--save", default=None)
    p.add_argument("--eval", default=None, metavar="MODEL_ZIP")
    p.add_argument("--eval-episodes", type=int, default=200)
    args = p.parse_args()
    if (args.algo, args.env) not in ZOO:
        p.error(f"no Zoo entry for {args.algo} on {args.env}; known: {sorted(ZOO)}")
    result = evaluate(args) if args.eval else train(args)
    print("REF_RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
