"""Environment validation: one message naming every problem, each with what / expected / actual / where / fix."""

from __future__ import annotations

import re

import envs_for_tests as E
import gymnasium
import numpy as np
import pytest

from advantage.envs.gymnasium import GymnasiumVecEnv
from advantage.envs.validation import (
    EnvError,
    Problem,
    check_gymnasium_env,
    collect_gymnasium_env_problems,
    format_problems,
)


def _message(env) -> str:
    with pytest.raises(EnvError) as exc:
        check_gymnasium_env(env)
    return str(exc.value)


def _count(msg: str) -> int:
    return int(re.search(r": (\d+) problems?\n", msg).group(1))


@pytest.mark.parametrize(
    "env_id, kwargs",
    [("CartPole-v1", {}), ("Pendulum-v1", {}), ("FrozenLake-v1", {}), ("MountainCarContinuous-v0", {})],
)
def test_good_envs_pass(env_id, kwargs):
    env = gymnasium.make(env_id, **kwargs)
    assert collect_gymnasium_env_problems(env, steps=50) == []
    env.close()


def test_good_custom_envs_pass():
    for env in (E.CountEnv(), E.CountEnv(obs_dtype=np.float64), E.ActionRecorderEnv(), E.DiscreteStartEnv()):
        check_gymnasium_env(env)


# one bad env per problem class: (env, the problem, the fix)
CASES = [
    (E.WrongShapeEnv, r"does not match the shape of observation_space", r"expected: shape \(3,\)", "shape (5,)"),
    (E.ResetOnlyObsEnv, r"reset\(\) returned only the observation", r"a tuple \(obs, info\)", "return obs, {}"),
    (E.FourTupleStepEnv, r"step\(\) returns four values", "old gym API", "return obs, reward, terminated, truncated"),
    (E.GymSpaceEnv, r"space from the old `gym` package", "gymnasium.spaces", "from gymnasium import spaces"),
    (E.OutOfBoundsEnv, r"2 entries outside", r"obs\[0\]=1\.5 \(bounds \[-1, 1\]\), obs\[2\]=-7", "widen the Box"),
    (E.NanObsEnv, r"1 non-finite entry", r"obs\[1\]=nan.*\n.*step\(\) #4", "guard the computation"),
    (E.NanRewardEnv, r"the reward is not finite", r"reward=nan\n.*step\(\) #4", "guard the computation"),
    (E.InfiniteActionBoundsEnv, r"action space Box has non-finite bounds", r"low\[0\]=-inf", "RescaleAction"),
    (E.NestedSequenceObsEnv, r"observation space Dict holds a part that cannot be flattened",
     r"obs\['path'\] is a Sequence", "pad the sequence"),
    (E.UnseededEnv, r"reset\(seed=0\) twice gives different", "self.np_random", "super().reset(seed=seed)"),
]


@pytest.mark.parametrize("cls, what, detail, fix", CASES, ids=[c[0].__name__ for c in CASES])
def test_each_problem_is_named_with_its_fix(cls, what, detail, fix):
    msg = _message(cls())
    assert msg.startswith(f"Environment check failed for {cls.__name__}: 1 problem\n"), msg
    assert re.search(what, msg), msg
    assert re.search(detail, msg), msg
    assert "fix:" in msg and fix in msg, msg
    assert "  1. " in msg


def test_three_problems_in_one_message():
    msg = _message(E.ThreeProblemsEnv())
    assert _count(msg) == 3, msg
    assert "1. reset() returned only the observation" in msg
    assert "2. the observation does not match the shape of observation_space" in msg
    assert "3. step() returns four values" in msg
    assert msg.count("fix:") == 3
    assert msg.count("where:") == 3


def test_repeated_problems_are_reported_once():
    msg = _message(E.OutOfBoundsEnv())  # out of bounds at reset and at all 20 steps
    assert _count(msg) == 1
    assert "where:    reset(seed=0)" in msg


def test_class_instead_of_instance_and_old_gym_env():
    assert "call it: CountEnv(...)" in str(collect_gymnasium_env_problems(E.CountEnv)[0])
    problems = collect_gymnasium_env_problems(E.OldGymEnv())
    text = format_problems("t", problems)
    assert "old `gym.Env`" in text and "inherit from gymnasium.Env" in text


def test_bridge_validates_at_construction():
    with pytest.raises(EnvError, match=r"Environment check failed for ThreeProblemsEnv: 3 problems"):
        GymnasiumVecEnv(E.ThreeProblemsEnv, 2)
    with pytest.raises(EnvError, match="reward is not finite"):
        GymnasiumVecEnv(E.NanRewardEnv, 2)


def test_runtime_guard_names_env_index_step_and_quantity():
    kwargs = {"at": 3, "what": "obs", "only_seed": 11}
    with GymnasiumVecEnv(E.NanAtStepEnv, 3, env_kwargs=kwargs, validate=False) as env:
        env.reset([10, 11, 12])
        env.step(np.zeros(3, int))
        env.step(np.zeros(3, int))
        with pytest.raises(EnvError) as exc:
            env.step(np.zeros(3, int))
    msg = str(exc.value)
    assert "1 problem" in msg, msg
    assert "sub-env 1 returned non-finite observation entries" in msg
    assert "vector step 3" in msg and "obs[1]=nan" in msg and "fix:" in msg

    kwargs = {"at": 2, "what": "reward", "only_seed": 12}
    with GymnasiumVecEnv(E.NanAtStepEnv, 3, env_kwargs=kwargs, validate=False) as env:
        env.reset([10, 11, 12])
        env.step(np.zeros(3, int))
        with pytest.raises(EnvError, match=r"sub-env 2 returned a non-finite reward(.|\n)*vector step 2"):
            env.step(np.zeros(3, int))


def test_format_problems():
    text = format_problems(
        "Title", [Problem("a", expected="x", actual="y", where="w", fix="f\nsecond line"), "plain"]
    )
    assert text.splitlines() == [
        "Title: 2 problems",
        "  1. a",
        "       expected: x",
        "       actual:   y",
        "       where:    w",
        "       fix:      f",
        "                 second line",
        "  2. plain",
    ]
