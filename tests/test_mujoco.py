"""MuJoCo environments through Gymnasium (issue: "``advantage train sac --env HalfCheetah-v5`` works with
``gymnasium[mujoco]`` installed"): a smoke run of a few thousand steps on the Gymnasium back end, its metrics,
its evaluation and the trained policy used through ``advantage.load_policy``. Skips without MuJoCo
(``pip install "advantage[mujoco]"``); without it the command line names the package to install."""

from __future__ import annotations

import csv
import importlib.util
import math
import sys

import numpy as np
import pytest

needs_mujoco = pytest.mark.skipif(
    importlib.util.find_spec("mujoco") is None, reason='needs MuJoCo: pip install "advantage[mujoco]"'
)


def test_without_mujoco_the_error_names_the_package(tmp_path, capsys, monkeypatch):
    from advantage.cli import main

    monkeypatch.setitem(sys.modules, "mujoco", None)  # import mujoco raises ImportError
    for name in [m for m in sys.modules if m.startswith("gymnasium.envs.mujoco")]:  # imported by an earlier test
        monkeypatch.delitem(sys.modules, name)
    run_dir = tmp_path / "r"
    try:
        code = main(["train", "sac", "--env", "HalfCheetah-v5", "--total-steps", "300", "--run-dir", str(run_dir)])
    except SystemExit as e:
        code = e.code
    err = " ".join(capsys.readouterr().err.replace("│", " ").split())
    assert code == 2 and "Traceback" not in err, err
    assert "HalfCheetah-v5 needs a package that is not installed" in err and "gymnasium[mujoco]" in err, err
    assert not (run_dir / "config.json").exists()


@needs_mujoco
@pytest.mark.slow
def test_sac_trains_on_half_cheetah(tmp_path, monkeypatch):
    """1,500 steps of SAC (500 of them random) on HalfCheetah-v5: 17 observations, 6 actions in [-1, 1]. The
    run must finish with finite losses and Q values, a 1,000-step evaluation episode, and a policy that acts in
    the env's action space outside the library."""
    import advantage
    from advantage.cli import main

    monkeypatch.chdir(tmp_path)  # MuJoCo writes its warnings to MUJOCO_LOG.TXT in the working directory
    run_dir = tmp_path / "cheetah"
    main(["train", "sac", "--env", "HalfCheetah-v5", "--seeds", "0", "--total-steps", "1500",
          "--learning-starts", "500", "--eval-episodes", "1", "--no-video", "--no-progress",
          "--run-dir", str(run_dir)])  # fmt: skip
    import json

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["backend"] == "gymnasium" and summary["env_steps"] == 1500
    assert summary["eval_length_mean"] == 1000.0 and math.isfinite(summary["eval_return"]["mean"])

    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    trained = [r for r in rows if int(r["step"]) > 500]
    assert trained, "no row after learning_starts"
    for key in ("loss/critic", "loss/actor", "q/mean", "alpha"):
        assert all(math.isfinite(float(r[key])) for r in trained), key
    assert float(trained[-1]["loss/critic"]) != float(trained[0]["loss/critic"])

    policy = advantage.load_policy(run_dir)
    obs = np.zeros((4, 17), np.float32)
    action = policy.act(obs)
    assert action.shape == (4, 6) and np.all(np.abs(action) <= 1.0)
