"""Stable-Baselines3 PPO on CartPole-v1 with the RL Zoo hyperparameters: one process, one seed.

Run by ``benchmarks/ppo_cartpole.py`` in a fresh process per measurement (the parent
times the whole process); it can also be run by hand:

    python benchmarks/sb3_ppo_cartpole.py --seed 0 --save /tmp/sb3_model.zip
    python benchmarks/sb3_ppo_cartpole.py --eval /tmp/sb3_model.zip --eval-episodes 200

Training mode prints one JSON line (prefixed ``SB3_RESULT``) with the time of the
imports, the model construction and ``model.learn`` (its SPS is env steps / learn
time), torch's thread count and the mean return of the last 100 training episodes.
Evaluation mode (kept out of the timed process) runs ``evaluate_policy`` with
deterministic actions and prints the mean return.

Hyperparameters: rl-baselines3-zoo ``hyperparams/ppo.yml``, ``CartPole-v1``:
n_envs 8, n_timesteps 1e5, policy MlpPolicy, n_steps 32, batch_size 256, gae_lambda 0.8,
gamma 0.98, n_epochs 20, ent_coef 0.0, learning_rate lin_0.001, clip_range lin_0.2.
Everything else is SB3's default (vf_coef 0.5, max_grad_norm 0.5, Adam eps 1e-5,
net_arch pi=[64, 64] vf=[64, 64], Tanh, orthogonal init, normalize_advantage True,
no value clipping, no target_kl).
"""

from __future__ import annotations

import time

T_START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402

ZOO = dict(n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0)
N_ENVS = 8
TOTAL_STEPS = 100_000
LR, CLIP = 1e-3, 0.2


class linear:
    """The RL Zoo's ``lin_X``: ``progress_remaining * X`` (progress_remaining goes 1 -> 0); prints as ``lin_X``."""

    def __init__(self, initial: float):
        self.initial = initial

    def __call__(self, progress_remaining: float) -> float:
        return progress_remaining * self.initial

    def __repr__(self) -> str:
        return f"lin_{self.initial}"


def train(args) -> dict:
    t0 = time.perf_counter()
    import numpy as np
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    t_import = time.perf_counter() - t0

    t0 = time.perf_counter()
    env = make_vec_env("CartPole-v1", n_envs=N_ENVS, seed=args.seed, vec_env_cls=DummyVecEnv)
    model = PPO(
        "MlpPolicy",
        env,
        learning_rate=linear(LR),
        clip_range=linear(CLIP),
        seed=args.seed,
        device="cpu",
        verbose=0,
        **ZOO,
    )
    t_setup = time.perf_counter() - t0

    t0 = time.perf_counter()
    model.learn(total_timesteps=args.total_steps)
    t_learn = time.perf_counter() - t0

    ep_returns = [ep["r"] for ep in model.ep_info_buffer]
    if args.save:
        model.save(args.save)
    policy = model.policy
    return {
        "import_time_s": t_import,
        "setup_time_s": t_setup,
        "learn_time_s": t_learn,
        "env_steps": int(model.num_timesteps),
        "sps": model.num_timesteps / t_learn,
        "train_return_last100": float(np.mean(ep_returns)) if ep_returns else None,
        "torch_num_threads": torch.get_num_threads(),
        "torch_num_interop_threads": torch.get_num_interop_threads(),
        "device": str(model.device),
        "hyperparameters": {
            "n_envs": env.num_envs,
            "n_steps": model.n_steps,
            "batch_size": model.batch_size,
            "n_epochs": model.n_epochs,
            "gamma": model.gamma,
            "gae_lambda": model.gae_lambda,
            "learning_rate": f"lin_{LR}",
            "clip_range": f"lin_{CLIP}",
            "ent_coef": model.ent_coef,
            "vf_coef": model.vf_coef,
            "max_grad_norm": model.max_grad_norm,
            "clip_range_vf": model.clip_range_vf,
            "normalize_advantage": model.normalize_advantage,
            "target_kl": model.target_kl,
            "net_arch": policy.net_arch,
            "activation_fn": policy.activation_fn.__name__,
            "ortho_init": policy.ortho_init,
            "share_features_extractor": policy.share_features_extractor,
            "optimizer": type(policy.optimizer).__name__,
            "adam_eps": policy.optimizer.defaults.get("eps"),
        },
        "time_to_result_s": time.perf_counter() - T_START,
    }


def evaluate(args) -> dict:
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import DummyVecEnv

    model = PPO.load(args.eval, device="cpu")
    env = make_vec_env("CartPole-v1", n_envs=1, seed=10_000 + args.seed, vec_env_cls=DummyVecEnv)
    t0 = time.perf_counter()
    returns, lengths = evaluate_policy(
        model, env, n_eval_episodes=args.eval_episodes, deterministic=True, return_episode_rewards=True
    )
    import numpy as np

    return {
        "eval_return_mean": float(np.mean(returns)),
        "eval_return_std": float(np.std(returns)),
        "eval_length_mean": float(np.mean(lengths)),
        "eval_episodes": len(returns),
        "deterministic": True,
        "eval_time_s": time.perf_counter() - t0,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--total-steps", type=int, default=TOTAL_STEPS)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: leave torch's default)")
    p.add_argument("--save", default=None, help="save the trained model here (for --eval in another process)")
    p.add_argument("--eval", default=None, metavar="MODEL_ZIP", help="evaluate a saved model instead of training")
    p.add_argument("--eval-episodes", type=int, default=200)
    args = p.parse_args()
    result = evaluate(args) if args.eval else train(args)
    print("SB3_RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
