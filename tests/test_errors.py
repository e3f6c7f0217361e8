"""One error hierarchy (advantage/errors.py): every user-facing error is an AdvantageError, keeps its old
import path and built-in base, and the command line ends each with exit code 2 and one message, no traceback."""

import ast
import json
import sys
from pathlib import Path

import pytest

import advantage
from advantage import errors
from advantage.cli import main

PACKAGE = Path(advantage.__file__).parent


def test_every_error_class_subclasses_the_base():
    for cls in errors.ALL:
        assert issubclass(cls, errors.AdvantageError), cls
    assert issubclass(errors.AdvantageError, ValueError)


def test_no_exception_class_is_defined_outside_errors_py():
    """A new user-facing error belongs in advantage/errors.py, under AdvantageError."""
    outside = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "errors.py" and path.parent == PACKAGE:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and (node.name.endswith(("Error", "Exception"))):
                outside.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}")
    assert not outside, f"define these in advantage/errors.py, under AdvantageError: {outside}"
    defined = {n for n in dir(errors) if isinstance(getattr(errors, n), type)
               and issubclass(getattr(errors, n), BaseException)}
    assert defined == {c.__name__ for c in errors.ALL} | {"AdvantageError"}


def test_old_import_paths_and_builtin_bases_still_work():
    from advantage.config import ConfigError
    from advantage.envs.validation import EnvError
    from advantage.report.report import ReportError
    from advantage.report.video import VideoError
    from advantage.training.checkpoint import CheckpointError
    from advantage.training.driver import RunError
    from advantage.training.health import NonFiniteError

    assert (ConfigError, EnvError, ReportError, VideoError, CheckpointError, RunError, NonFiniteError) == (
        errors.ConfigError, errors.EnvError, errors.ReportError, errors.VideoError, errors.CheckpointError,
        errors.RunError, errors.NonFiniteError)
    assert issubclass(errors.VideoError, errors.RunError)
    assert issubclass(errors.NonFiniteError, FloatingPointError)
    assert issubclass(errors.UnknownNameError, KeyError)
    assert issubclass(errors.MissingExtraError, ModuleNotFoundError)
    assert str(errors.UnknownNameError("unknown algorithm 'x'")) == "unknown algorithm 'x'"  # no KeyError quotes


def test_unknown_names_raise_unknown_name_error():
    from advantage import algos, labs
    from advantage.envs import registry

    for get, name in ((algos.get, "pop"), (registry.spec, "CartPol-v1"), (labs.get, "nope")):
        with pytest.raises(errors.UnknownNameError):
            get(name)


def _run_dir_without_checkpoint(tmp_path):
    from advantage.algos import ppo
    from advantage.config import to_dict
    from advantage.training.run_config import RunConfig

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = {"algo": "ppo", "algo_config": to_dict(ppo.Config()),
              "run": to_dict(RunConfig(env="CartPole-v1", total_steps=1024, run_dir=str(run_dir)))}
    (run_dir / "config.json").write_text(json.dumps(config))
    return run_dir


@pytest.mark.parametrize("case, message", [
    ("unknown algorithm", "unknown algorithm 'pop'"),
    ("unknown lab", "unknown lab 'nope'"),
    ("not a run folder", "is not a run folder"),
    ("no checkpoint", "no checkpoint in"),
    ("report of nothing", "does not exist"),
    ("bad video path", "give a path ending in .gif or .mp4"),
    ("budget not a multiple of n_envs", "use --total-steps 1000 or 1008"),
])
def test_cli_ends_user_errors_with_exit_2_and_one_line(case, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = {
        "unknown algorithm": ["train", "pop"],
        "unknown lab": ["lab", "nope"],
        "not a run folder": ["train", "--resume", str(tmp_path)],
        "no checkpoint": lambda: ["train", "--resume", str(_run_dir_without_checkpoint(tmp_path))],
        "report of nothing": ["report", str(tmp_path / "missing")],
        "bad video path": ["eval", str(tmp_path), "--video", "agent.txt"],
        "budget not a multiple of n_envs": ["train", "ppo", "--total-steps", "1001"],
    }[case]
    code = main(argv() if callable(argv) else argv)
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("advantage: error: "), err
    assert message in lines[0]


def test_cli_names_the_extra_when_an_optional_package_is_missing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "evosax.algorithms", None)  # `from evosax.algorithms import ...` fails
    code = main(["train", "cma-es", "--env", "CartPole-v1", "--total-steps", "1000", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert 'pip install "advantage[evosax]"' in err
    assert not any(tmp_path.iterdir()), "a failed start must leave no run folder"


def test_cli_exit_codes_of_a_diverged_run_and_of_a_plain_key_error(capsys, monkeypatch):
    from advantage.training import driver

    def diverge(*args, **kwargs):
        raise errors.NonFiniteError("loss/total became NaN at step 256")

    monkeypatch.setattr(driver, "train", diverge)
    assert main(["train", "ppo"]) == 1
    assert "advantage: stopped: loss/total became NaN" in capsys.readouterr().err

    def key_error(*args, **kwargs):
        raise KeyError("no such thing")

    monkeypatch.setattr(driver, "train", key_error)
    assert main(["train", "ppo"]) == 2
    assert capsys.readouterr().err.strip() == "advantage: error: no such thing"
