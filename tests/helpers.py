"""Small helpers shared by the training tests."""

from __future__ import annotations

import jax

from advantage.training.driver import load_agents, train
from advantage.training.run_config import RunConfig


def train_run(tmp_path, algo_name, config, env, seeds=(0,), total_steps=None, eval_episodes=0, **run_kwargs):
    """Train quietly into ``tmp_path/run`` and return ``(summary, run_dir)`` (no video unless asked)."""
    run_kwargs.setdefault("video", False)
    run_dir = tmp_path / f"run-{env.replace('/', '_')}-{'-'.join(map(str, seeds))}"
    run = RunConfig(env=env, seeds=tuple(seeds), total_steps=total_steps, run_dir=str(run_dir), progress=False,
                    eval_episodes=eval_episodes, **run_kwargs)
    return train(algo_name, config, run), run_dir


def first_agent(run_dir):
    """``(algo, config, action_space, agent)`` of seed index 0 of a run."""
    algo, cfg, space, agents = load_agents(run_dir)
    return algo, cfg, space, jax.tree.map(lambda x: x[0], agents)
