"""``advantage``: the command line, a thin layer over ``advantage.training.driver``.

    advantage train ALGO --env ID [--seeds 0 1 2] [--total-steps N] [--run-dir DIR]
                         [--backend auto|jax|gymnasium] [every field of ALGO's Config]
    advantage train --resume DIR
    advantage eval DIR [--episodes N] [--stochastic]
    advantage envs

Options are generated from the ``RunConfig`` and algorithm ``Config`` dataclasses;
their field docstrings are the help. Bad input ends with a one-paragraph message
and exit code 2, never with a traceback.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from typing import Optional

USAGE = """usage: advantage COMMAND ...

commands:
  train ALGO --env ID [options]   train ALGO (see `advantage train ALGO --help` for every option)
  train --resume DIR              continue an interrupted run to the same result
  eval DIR [--episodes N] [--stochastic]
                                  evaluate the final checkpoint of a run again
  envs                            list the built-in JAX-native environments
"""


def _fail(message: str) -> int:
    print(f"advantage: error: {message}", file=sys.stderr)
    return 2


def _prepare_jax() -> None:
    # Must happen before JAX starts: do not grab 75% of a GPU's memory up front.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")


def _option(args: list[str], name: str) -> Optional[str]:
    """The value of ``--name V`` or ``--name=V`` in ``args`` (None if absent)."""
    for i, a in enumerate(args):
        if a == name and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


def _train(args: list[str]) -> int:
    import tyro

    from advantage import algos
    from advantage.training import driver
    from advantage.training.run_config import RunConfig

    resume_dir = _option(args, "--resume")
    if resume_dir is not None:
        others = [a for a in args if a not in ("--resume", resume_dir) and not a.startswith("--resume=")]
        if len(others) > 1 or (others and others[0].startswith("-")):
            return _fail("--resume DIR continues a run with its saved configuration; give no other options "
                         f"(got {' '.join(others)})")
        summary = driver.resume(resume_dir)
        return _report(summary)

    if not args or args[0].startswith("-"):
        if args and args[0] in ("-h", "--help"):
            print(USAGE)
            return 0
        return _fail(f"name an algorithm: advantage train ALGO --env ID (ALGO one of {', '.join(sorted(algos.ALGORITHMS))})")
    algo_name, rest = args[0], args[1:]
    algo = algos.get(algo_name)
    env = _option(rest, "--env") or RunConfig.env
    preset = algo.PRESETS.get(env, {})

    # Built with real types (not string annotations) so that tyro can read them.
    TrainArgs = dataclasses.make_dataclass("TrainArgs", [
        ("run", tyro.conf.OmitArgPrefixes[RunConfig]),
        ("algo", tyro.conf.OmitArgPrefixes[algo.Config]),
    ])
    default = TrainArgs(run=RunConfig(env=env), algo=algo.Config(**preset))
    parsed = tyro.cli(TrainArgs, args=rest, default=default, prog=f"advantage train {algo_name}",
                      description=(algo.__doc__ or "").strip().splitlines()[0]
                      + (f" Defaults shown are the {env} preset." if preset else ""))
    summary = driver.train(algo_name, parsed.algo, parsed.run)
    return _report(summary)


def _report(summary: dict) -> int:
    from rich.console import Console

    console = Console()
    ev = summary.get("eval_return")
    console.print(f"[bold]done[/] {summary['algo']} on {summary['env']} ({summary['backend']}): "
                  f"{summary['env_steps']} env steps per seed, wall {summary['wall_time_s']:.1f} s "
                  f"(compile {summary['compile_time_s']:.1f} s)")
    if ev:
        per_seed = ", ".join(f"{r:.1f}" for r in ev["per_seed"])
        console.print(f"evaluation ({ev['episodes_per_seed']} episodes per seed, "
                      f"{'deterministic' if ev['deterministic'] else 'stochastic'}): mean {ev['mean']:.1f}, "
                      f"IQM {ev['iqm']:.1f}; per seed {per_seed}")
    run_dir = summary.get("run_dir")
    if summary.get("learning_curve"):
        console.print(f"learning curve: {summary['learning_curve']}")
    if run_dir:
        console.print(f"run folder: {run_dir} (summary.json, metrics.csv, tb/, checkpoints/)")
    return 0


@dataclasses.dataclass
class EvalArgs:
    run_dir: str
    """A run folder written by `advantage train`."""
    episodes: int = 200
    """Evaluation episodes per training seed."""
    stochastic: bool = False
    """Sample actions from the policy instead of taking its mode."""


def _eval(args: list[str]) -> int:
    import tyro

    from advantage.training import driver

    parsed = tyro.cli(tyro.conf.PositionalRequiredArgs[EvalArgs], args=args, prog="advantage eval")
    if parsed.episodes <= 0:
        return _fail(f"--episodes {parsed.episodes}: evaluate at least one episode")
    result = driver.evaluate_run(parsed.run_dir, parsed.episodes, deterministic=not parsed.stochastic)
    print(json.dumps({k: v for k, v in result.items() if k != "episodes"}, indent=2))
    return 0


def _envs(args: list[str]) -> int:
    from advantage.envs import registry

    for env_id in registry.registered_ids():
        s = registry.spec(env_id)
        print(f"{env_id:28s} time limit {s.max_episode_steps}")
    print("\nAny Gymnasium id or module:Class path also works (Gymnasium back end).")
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    _prepare_jax()
    # Like `python -m`, make the current folder importable, so that `--env my_pkg.envs:MyEnv`
    # finds a user's own package without installing it.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    from advantage.config import ConfigError
    from advantage.envs.validation import EnvError
    from advantage.training.checkpoint import CheckpointError
    from advantage.training.driver import RunError

    commands = {"train": _train, "eval": _eval, "envs": _envs}
    command, rest = argv[0], argv[1:]
    if command not in commands:
        import difflib

        close = difflib.get_close_matches(command, commands, n=1)
        return _fail(f"unknown command {command!r}" + (f"; did you mean {close[0]!r}?" if close else "") + "\n" + USAGE)
    try:
        return commands[command](rest)
    except (ConfigError, RunError, CheckpointError, EnvError) as e:
        return _fail(str(e))
    except KeyError as e:  # unknown algorithm or environment: the message is the first argument
        return _fail(str(e.args[0]) if e.args else str(e))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
