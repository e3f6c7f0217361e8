"""`advantage check-env`: the strict validation, the spaces, a random policy's returns; exit 0 / 1."""

from __future__ import annotations

import envs_for_tests as E
import numpy as np

from advantage.cli import main
from advantage.envs.check import check_env, format_report, random_actions
from advantage.envs.spaces import Box, Discrete


def test_good_env_reports_spaces_returns_and_rate(capsys):
    assert main(["check-env", "envs_for_tests:CountEnv", "--env-kwargs", '{"length": 7}', "--episodes", "3"]) == 0
    out = capsys.readouterr().out
    assert "observation space: Box(-inf, inf, (2,), float32)" in out
    assert "actions:      Discrete(2)" in out
    # CountEnv pays 1 + action per step for 7 steps: a random policy's return lies in [7, 14]
    report = check_env("envs_for_tests:CountEnv", {"length": 7}, episodes=3)
    assert report.usable and report.lengths == [7, 7, 7]
    assert all(7 <= r <= 14 for r in report.returns) and len(set(report.returns)) > 1
    assert report.steps_per_s > 0 and "env steps/s" in out and out.rstrip().endswith("can use it.")


def test_broken_env_lists_every_problem_with_its_fix_and_exits_1(capsys):
    assert main(["check-env", "envs_for_tests:ThreeProblemsEnv"]) == 1
    out = capsys.readouterr().out
    assert "NOT USABLE (each problem with its fix): 3 problems" in out
    assert out.count("fix:") == 3 and "random policy" not in out


def test_problem_found_only_by_the_longer_random_episodes():
    # NaN from step 50: after the 20 validation steps, found by the bridge's guard on the random episodes
    report = check_env(E.NanAtStepEnv, {"at": 50, "what": "reward"}, episodes=1)
    assert not report.usable
    assert "reward" in format_report(report) and "NOT USABLE" in format_report(report)


def test_unknown_id_and_bad_kwargs(capsys):
    assert main(["check-env", "CartPol-v1"]) == 1
    assert "CartPole-v1" in capsys.readouterr().out  # the close match
    assert main(["check-env", "envs_for_tests:CountEnv", "--env-kwargs", '{"lenght": 3}']) == 1
    assert "lenght" in capsys.readouterr().out
    assert main(["check-env", "envs_for_tests:CountEnv", "--env-kwargs", "{bad"]) == 2


def test_random_actions_of_each_agent_space():
    rng = np.random.default_rng(0)
    assert random_actions(Discrete(3), rng, 5).shape == (5,)
    a = random_actions(Box(-1.0, 1.0, (2,)), rng, 5)
    assert a.shape == (5, 2) and np.all(np.abs(a) <= 1)


def test_jax_native_env_is_stepped_jitted(capsys):
    assert main(["check-env", "probe/FactoredBandit-v0", "--episodes", "20"]) == 0
    out = capsys.readouterr().out
    assert "(JAX-native)" in out and "MultiDiscrete([3, 4, 2])" in out and "time limit: 1 step " in out
    report = check_env("probe/FactoredBandit-v0", episodes=20)
    # reward = the fraction of the 3 factors equal to the target: multiples of 1/3
    assert report.lengths == [1] * 20 and all(abs(3 * r - round(3 * r)) < 1e-6 for r in report.returns)
    assert main(["check-env", "envs_for_tests:NanAfter50", "--episodes", "1"]) == 1
    out = capsys.readouterr().out
    assert "a non-finite observation or reward" in out and "step 50 of random episode 0" in out
