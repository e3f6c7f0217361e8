"""The reference implementations with the RL Zoo hyperparameters: one process, one seed.

Run by ``benchmarks/compare.py`` in a fresh process per measurement (the parent times the
whole process), with the interpreter of the library's own venv (``benchmarks/venvs.py``;
this script never imports ``advantage``); it can also be run by hand:

    python benchmarks/reference.py --lib sb3 --algo sac --env Pendulum-v1 --seed 0 --save /tmp/m.zip
    python benchmarks/reference.py --lib sb3 --algo sac --env Pendulum-v1 --eval /tmp/m.zip
    python benchmarks/reference.py --lib rejax --algo td3 --env Pendulum-v1 --save /tmp/td3.pkl

Training prints one JSON line (``REF_RESULT {...}``) with the time of the imports, the model
construction and ``model.learn`` (SPS = env steps / learn time). Evaluation (kept out of the
timed process) runs ``evaluate_policy`` with deterministic actions on 200 episodes.

Libraries: ``sb3`` (Stable-Baselines3: PPO, A2C, SAC, TD3), ``sb3-contrib`` (TRPO), ``sbx``
(the JAX port of SB3: SAC, TD3) and ``rejax`` (pure JAX, everything compiled: SAC, TD3). The
hyperparameters are rl-baselines3-zoo's ``hyperparams/{ppo,a2c,trpo,sac,td3}.yml`` entries,
written out in ``ZOO`` below (PPO's comes from ``sb3_ppo_cartpole.py``, the settings of
``ppo_cartpole.py``); every field the Zoo does not list keeps the library's default.

rejax 0.1.3 trains on its own gymnax ``Pendulum-v1`` (the same dynamics, reward and 200-step
episodes as Gymnasium's, written in JAX), not on Gymnasium's, and is configured in
``rejax_algo`` to match the Zoo entry plus SB3's defaults as closely as its fields allow:

    SAC  matched: 256-256 ReLU actor and critics, 2 critics, lr 1e-3 (actor, critics and
         entropy coefficient), gamma 0.99, buffer 1e6, batch 256, 100 steps before the
         first update (``fill_buffer``), 1 gradient step per env step, target update every
         step with tau 0.005 (``polyak`` 0.995), entropy coefficient learned from 1.0 with
         target entropy -dim(A), no gradient clipping, Adam.
         NOT matched: (1) rejax acts with the (untrained) policy during the first 100
         steps, SB3 samples actions uniformly; (2) log-std clipped to [-10, 2], SB3
         [-20, 2]; (3) the order of the updates: rejax actor, critics, entropy
         coefficient; SB3 entropy coefficient, critics, actor; (4) the 200-step time
         limit is a termination for rejax (no bootstrap), a truncation for SB3
         (``handle_timeout_termination``); (5) network initialisation: flax's
         lecun-normal, torch's kaiming-uniform.
    TD3  matched: 400-300 ReLU actor and critics (rejax 0.1.3 hard-codes 64-64 swish in
         ``TD3.create_agent``; the modules are replaced after ``create``), lr 1e-3,
         gamma 0.98, buffer 200k, batch 256, 10k uniformly random steps before the first
         update, 1 gradient step per env step, policy and target update every 2nd
         critic step (``policy_delay`` 2), tau 0.005, Gaussian exploration noise 0.1,
         target-policy noise 0.2 clipped at 0.5 (SB3 states these for actions scaled to
         [-1, 1]; rejax adds them to the env's actions, so they are multiplied by the
         half-range, 2 for Pendulum), no gradient clipping, Adam.
         NOT matched: (4) and (5) above; the critic loss is 0.5 * MSE per critic (SB3:
         MSE), which Adam's scale invariance mostly absorbs.
    Both: ``eval_callback`` is replaced by a no-op (rejax would otherwise evaluate 128
         stochastic episodes inside the timed program); the final return comes from
         ``rejax.evaluate.evaluate`` (vmapped episodes) with the deterministic policy
         (TD3: the actor; SAC: tanh of the Gaussian's mean, scaled) in a separate,
         untimed process from the saved actor parameters. rejax does not record
         training episode returns, so ``train_return_last100`` is None.
"""

from __future__ import annotations

import time

T_START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from importlib import metadata  # noqa: E402

import sb3_ppo_cartpole as ppo_zoo  # noqa: E402  (this folder; PPO's Zoo settings, the ones of ppo_cartpole.py)

#: (algo, env) -> (n_envs, n_timesteps, constructor kwargs, extra: noise for TD3)
ZOO = {
    ("ppo", "CartPole-v1"): (
        ppo_zoo.N_ENVS,
        ppo_zoo.TOTAL_STEPS,
        dict(ppo_zoo.ZOO, learning_rate=ppo_zoo.linear(ppo_zoo.LR), clip_range=ppo_zoo.linear(ppo_zoo.CLIP)),
        {},
    ),
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


#: rejax's fields for the Zoo entries above plus SB3's defaults (see the docstring for what differs);
#: ``*_noise*`` in units of actions scaled to [-1, 1], as SB3 states them.
REJAX = {
    ("sac", "Pendulum-v1"): dict(
        hidden=(256, 256),
        learning_rate=1e-3,
        gamma=0.99,
        buffer_size=1_000_000,
        fill_buffer=100,
        batch_size=256,
        polyak=1 - 0.005,
        target_update_freq=1,
        num_epochs=1,
    ),
    ("td3", "Pendulum-v1"): dict(
        hidden=(400, 300),
        learning_rate=1e-3,
        gamma=0.98,
        buffer_size=200_000,
        fill_buffer=10_000,
        batch_size=256,
        polyak=1 - 0.005,
        target_update_freq=1,
        num_epochs=1,
        policy_delay=2,
        exploration_noise=0.1,
        target_noise=0.2,
        target_noise_clip=0.5,
    ),
}


def versions(*dists: str) -> dict:
    out = {}
    for d in dists:
        try:
            out[d] = metadata.version(d)
        except metadata.PackageNotFoundError:
            out[d] = None
    return out


def rejax_algo(algo: str, env: str, total_steps: int):
    """A rejax SAC/TD3 configured as ``REJAX`` says, without its in-training evaluation."""
    import numpy as np
    import rejax
    from flax import linen as nn

    c = dict(REJAX[(algo, env)])
    hidden = c.pop("hidden")
    base = dict(env=env, total_timesteps=total_steps, eval_freq=total_steps, skip_initial_evaluation=True, num_envs=1)
    if algo == "sac":
        a = rejax.SAC.create(**base, **c, agent_kwargs=dict(activation="relu"), hidden_layer_sizes=hidden)
    else:
        space = rejax.TD3.create(**base).action_space
        half_range = float(np.max(np.asarray(space.high) - np.asarray(space.low))) / 2
        for k in ("exploration_noise", "target_noise", "target_noise_clip"):
            c[k] *= half_range
        a = rejax.TD3.create(**base, **c)
        a = a.replace(
            actor=rejax.networks.DeterministicPolicy(
                a.actor.action_dim, a.actor.action_range, hidden_layer_sizes=hidden, activation=nn.relu
            ),
            critic=rejax.networks.QNetwork(hidden_layer_sizes=hidden, activation=nn.relu),
        )
    config = {k: repr(v) for k, v in c.items()} | {"hidden_layer_sizes": repr(hidden), "activation": "relu"}
    return a.replace(eval_callback=lambda algo, ts, rng: ()), config


def train_rejax(args) -> dict:
    t0 = time.perf_counter()
    import pickle

    import jax

    t_import = time.perf_counter() - t0
    n_timesteps = {("sac", "Pendulum-v1"): 20_000, ("td3", "Pendulum-v1"): 20_000}[(args.algo, args.env)]
    total = args.total_steps or n_timesteps
    t0 = time.perf_counter()
    algo, config = rejax_algo(args.algo, args.env, total)
    rng = jax.random.PRNGKey(args.seed)
    t_setup = time.perf_counter() - t0
    t0 = time.perf_counter()
    train = jax.jit(algo.train).lower(rng).compile()
    t_compile = time.perf_counter() - t0
    t0 = time.perf_counter()
    ts, _ = train(rng)
    jax.block_until_ready(ts)
    t_learn = time.perf_counter() - t0
    if args.save:
        with open(args.save, "wb") as f:
            pickle.dump(jax.device_get(ts.actor_ts.params), f)
    return {
        "lib": "rejax",
        "algo": args.algo,
        "env": args.env + " (gymnax)",
        "seed": args.seed,
        "import_time_s": t_import,
        "setup_time_s": t_setup,
        "compile_time_s": t_compile,
        "learn_time_s": t_learn,
        "env_steps": int(ts.global_step),
        "sps": int(ts.global_step) / t_learn,
        "train_return_last100": None,
        "torch_num_threads": None,
        "n_envs": 1,
        "hyperparameters": config,
        "versions": versions("rejax", "jax", "jaxlib", "flax", "gymnax"),
        "time_to_result_s": time.perf_counter() - T_START,
    }


def evaluate_rejax(args) -> dict:
    """rejax's own evaluation (``rejax.evaluate.evaluate``: vmapped episodes) of the deterministic policy."""
    import pickle

    import jax
    import jax.numpy as jnp
    import numpy as np
    from rejax.evaluate import evaluate as rejax_evaluate

    algo, _ = rejax_algo(args.algo, args.env, 1000)
    with open(args.eval, "rb") as f:
        params = pickle.load(f)

    if args.algo == "sac":  # the squashed Gaussian's mean, not a sample

        def policy(m, obs):
            return m.action_loc + jnp.tanh(m._action_dist(obs).mean()) * m.action_scale
    else:

        def policy(m, obs):
            return m(obs)

    def act(obs, rng):
        return jnp.squeeze(algo.actor.apply(params, jnp.expand_dims(obs, 0), method=policy))

    lengths, returns = rejax_evaluate(
        act, jax.random.PRNGKey(10_000 + args.seed), algo.env, algo.env_params, args.eval_episodes
    )
    returns, lengths = np.asarray(returns), np.asarray(lengths)
    return {
        "eval_return_mean": float(returns.mean()),
        "eval_return_std": float(returns.std()),
        "eval_length_mean": float(lengths.mean()),
        "eval_episodes": len(returns),
        "deterministic": True,
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
    p.add_argument("--lib", choices=("sb3", "sb3-contrib", "sbx", "rejax"), required=True)
    p.add_argument("--algo", choices=sorted({a for a, _ in ZOO}), required=True)
    p.add_argument("--env", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--total-steps", type=int, default=None, help="default: the Zoo's n_timesteps")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's default)")
    p.add_argument("--save", default=None)
    p.add_argument("--eval", default=None, metavar="MODEL_ZIP")
    p.add_argument("--eval-episodes", type=int, default=200)
    args = p.parse_args()
    table = REJAX if args.lib == "rejax" else ZOO
    if (args.algo, args.env) not in table:
        p.error(f"no {args.lib} entry for {args.algo} on {args.env}; known: {sorted(table)}")
    if args.lib == "rejax":
        result = evaluate_rejax(args) if args.eval else train_rejax(args)
    else:
        result = evaluate(args) if args.eval else train(args)
    print("REF_RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
