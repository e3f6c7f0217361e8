"""The two ways of extending the library that docs/how-to/ describes, each written only against the public
protocols: an algorithm of one's own (tests/toy_algorithm.py) and a stepper of one's own
(tests/toy_stepper.py, whose seeds advance unevenly as an asynchronous worker pool's would)."""

from __future__ import annotations

import csv
import json

import jax
import numpy as np
import pytest
from helpers import first_agent, train_run

from advantage import algos
from advantage.algos import api
from advantage.errors import ConfigError
from advantage.training import checkpoint
from advantage.training import stepper as stepper_mod
from advantage.training.run_config import RunConfig
from advantage.training.session import Session


@pytest.fixture
def toy_registered():
    algos.register("toy-pg", "toy_algorithm")
    yield algos.get("toy-pg")
    algos.ALGORITHMS.pop("toy-pg")


def test_a_new_algorithm_learns_on_both_back_ends(tmp_path, toy_registered):
    module = toy_registered
    assert api.kind(module) == "update" and isinstance(module, api.Algorithm)
    summary, run_dir = train_run(tmp_path, "toy-pg", module.Config(), "probe/ActionReward-v0", seeds=(0, 1),
                                 total_steps=640, eval_episodes=10)
    assert summary["eval_return"]["per_seed"] == [1.0, 1.0]  # the paying arm, greedily
    _, _, _, agent = first_agent(run_dir)
    assert jax.nn.softmax(agent.logits)[1] > 0.9
    summary, _ = train_run(tmp_path, "toy-pg", module.Config(n_envs=2, n_steps=16), "CartPole-v1",
                           total_steps=64, backend="gymnasium", eval_episodes=2)
    assert summary["env_steps"] == 64 and summary["backend"] == "gymnasium"


def test_register_checks_the_contract(tmp_path):
    with pytest.raises(ConfigError, match="lacks"):
        algos.register("not-an-algo", "helpers")
    assert "not-an-algo" not in algos.ALGORITHMS


def test_a_new_stepper_runs_in_the_session_with_uneven_seeds(tmp_path, toy_registered):
    from toy_stepper import BanditStepper

    module = toy_registered
    cfg = module.Config(n_envs=2, n_steps=4)
    stepper = BanditStepper(module, cfg, total_steps=96)
    assert isinstance(stepper, stepper_mod.Stepper)
    run = RunConfig(env="toy-bandit", seeds=(0, 1, 2), total_steps=96, run_dir=str(tmp_path / "run"),
                    progress=False, video=False, eval_episodes=5, checkpoint_every=24)
    summary = Session(module, cfg, run, tmp_path / "run", stepper=stepper).run()
    assert summary["env_steps"] == 96 and summary["total_env_steps"] == 3 * 96
    assert summary["eval_return"]["per_seed"] == [1.0, 1.0, 1.0]
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    steps = {s: [int(r["step"]) for r in rows if r["seed"] == str(s)] for s in (0, 1, 2)}
    # seed i advanced (i + 1) updates of 8 steps per advance: its own x axis, no lockstep
    assert steps[0][:3] == [8, 16, 24] and steps[2][:3] == [8, 16, 24]
    assert all(s == sorted(set(s)) and s[-1] == 96 for s in steps.values())
    assert len(steps[0]) == len(steps[2]) == 12
    meta, _ = checkpoint.load_meta(tmp_path / "run" / "checkpoints")
    assert meta["env_steps_per_seed"] == [96, 96, 96]
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["backend"] == "toy-bandit"
    assert np.isfinite(summary["run_time_s"])
