"""``advantage``: the command line, a thin layer over ``advantage.training.driver``.

    advantage train ALGO --env ID [--seeds 0 1 2] [--total-steps N] [--run-dir DIR]
                         [--backend auto|jax|gymnasium] [every field of ALGO's Config]
    advantage train --resume DIR
    advantage eval DIR [--episodes N] [--stochastic] [--video [PATH]]
    advantage report DIR [DIR ...] [--out OUT]
    advantage envs
    advantage check-env ID_OR_PATH [--env-kwargs JSON]

Options are generated from the ``RunConfig`` and algorithm ``Config`` dataclasses;
their field docstrings are the help. Bad input (any ``advantage.errors.AdvantageError``)
ends with a one-paragraph message and exit code 2, never with a traceback; a run that
diverges (``NonFiniteError``) ends with exit code 1.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Literal, Optional

USAGE = """usage: advantage COMMAND ...

commands:
  train ALGO --env ID [options]   train ALGO (see `advantage train ALGO --help` for every option)
  train --resume DIR              continue an interrupted run to the same result
  eval DIR [--episodes N] [--stochastic]
                                  evaluate the final checkpoint of a run again
  eval DIR --video [PATH]         render the trained agent to a GIF (default DIR/videos/agent.gif) or .mp4
  report DIR [DIR ...] [--out OUT]
                                  statistics over seeds (mean, median, IQM, bootstrap CIs), learning
                                  curves and a Markdown summary of one or many runs
  export DIR --format onnx|npz [--out FILE] [--seed N]
                                  write the trained policy as ONNX or npz, checked against the policy
  envs                            list the built-in JAX-native environments
  check-env ID_OR_PATH [--env-kwargs JSON]
                                  validate a Gymnasium env as training does: every problem with its
                                  fix, the spaces, a random policy's returns, the step rate (exit 1
                                  when it is not usable)
  lab NAME [--out DIR] [--quick]  run one of the slides' claims as an experiment: a figure, its numbers
                                  and the verdict (advantage lab --list shows them)
"""


def _fail(message: str) -> int:
    print(f"advantage: error: {message}", file=sys.stderr)
    return 2


def _prepare_jax(argv: list[str]) -> None:
    """What must happen before JAX starts: do not grab 75% of a GPU's memory up front, and lift the
    AVX2 pin of XLA's CPU code (advantage/cpu.py) for ``train --native-isa`` or a resumed run that used it."""
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    from advantage import cpu

    if argv[0] != "train":
        return
    native = "--native-isa" in argv
    resume_dir = _option(argv, "--resume")
    if resume_dir is not None:
        try:
            native = bool(json.loads((Path(resume_dir) / "config.json").read_text())["run"].get("native_isa"))
        except (OSError, ValueError, KeyError):
            pass  # driver.resume reports a missing or damaged folder
    if native:
        cpu.use_native_isa()


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
    from advantage.envs import registry
    from advantage.training import driver
    from advantage.training.run_config import RunConfig

    resume_dir = _option(args, "--resume")
    if resume_dir is not None:
        others = [a for a in args if a not in ("--resume", resume_dir) and not a.startswith("--resume=")]
        if len(others) > 1 or (others and others[0].startswith("-")):
            return _fail(
                "--resume DIR continues a run with its saved configuration; give no other options "
                f"(got {' '.join(others)})"
            )
        summary = driver.resume(resume_dir)
        return _report(summary)

    if not args or args[0].startswith("-"):
        if args and args[0] in ("-h", "--help"):
            print(USAGE)
            return 0
        return _fail(
            f"name an algorithm: advantage train ALGO --env ID (ALGO one of {', '.join(sorted(algos.ALGORITHMS))})"
        )
    algo_name, rest = args[0], args[1:]
    algo = algos.get(algo_name)
    env = _option(rest, "--env") or RunConfig.env
    preset = algo.PRESETS.get(env) or algo.PRESETS.get(registry.preset_id(env), {})

    # Built with real types (not string annotations) so that tyro can read them.
    TrainArgs = dataclasses.make_dataclass(
        "TrainArgs",
        [
            ("run", tyro.conf.OmitArgPrefixes[RunConfig]),
            ("algo", tyro.conf.OmitArgPrefixes[algo.Config]),  # type: ignore[misc,name-defined]  # a run-time type
        ],
    )
    default = TrainArgs(run=RunConfig(env=env), algo=algo.Config(**preset))
    parsed = tyro.cli(
        TrainArgs,
        args=rest,
        default=default,
        prog=f"advantage train {algo_name}",
        description=(algo.__doc__ or "").strip().splitlines()[0]
        + (f" Defaults shown are the {env} preset." if preset else ""),
    )
    summary = driver.train(algo_name, parsed.algo, parsed.run)
    return _report(summary)


def _report(summary: dict) -> int:
    from rich.console import Console

    console = Console()
    ev = summary.get("eval_return")
    console.print(
        f"[bold]done[/] {summary['algo']} on {summary['env']} ({summary['backend']}): "
        f"{summary['env_steps']} env steps per seed, wall {summary['wall_time_s']:.1f} s "
        f"(compile {summary['compile_time_s']:.1f} s)"
    )
    if ev:
        per_seed = ", ".join(f"{r:.1f}" for r in ev["per_seed"])
        console.print(
            f"evaluation ({ev['episodes_per_seed']} episodes per seed, "
            f"{'deterministic' if ev['deterministic'] else 'stochastic'}): mean {ev['mean']:.1f}, "
            f"IQM {ev['iqm']:.1f}; per seed {per_seed}"
        )
    run_dir = summary.get("run_dir")
    if summary.get("learning_curve"):
        console.print(f"learning curve: {summary['learning_curve']}")
    if summary.get("video"):
        console.print(f"video of the trained agent: {summary['video']}")
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
    video: Optional[str] = None
    """Instead of evaluating, render the agent to this .gif or .mp4 (mp4 needs imageio[ffmpeg]); `--video` alone
    writes RUN_DIR/videos/agent.gif. Video episode i is evaluation episode i."""
    video_episodes: int = 1
    """Episodes in the video."""
    video_seed_index: int = 0
    """Which training seed's agent to film: an index into the run's seeds."""
    max_frames: int = 1000
    """At most this many frames in the video (all are held in memory until written)."""


_VIDEO_DEFAULT = "__default__"


def _video_option(args: list[str]) -> list[str]:
    """``--video`` may come without a value: then it is given the default path. A following word is
    taken as the path only if it ends in a video suffix, so `advantage eval --video RUN_DIR` works."""
    out = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--video":
            nxt = args[i + 1] if i + 1 < len(args) else None
            if nxt is not None and not nxt.startswith("-") and nxt.lower().endswith((".gif", ".mp4")):
                out += ["--video", nxt]
                i += 2
                continue
            if nxt is not None and not nxt.startswith("-") and "." in os.path.basename(nxt) and not os.path.isdir(nxt):
                out += ["--video", nxt]  # a file name with another suffix: let record() say what is allowed
                i += 2
                continue
            out += ["--video", _VIDEO_DEFAULT]
        else:
            out.append(a)
        i += 1
    return out


def _eval(args: list[str]) -> int:
    import tyro

    from advantage.training import driver

    parsed = tyro.cli(tyro.conf.PositionalRequiredArgs[EvalArgs], args=_video_option(args), prog="advantage eval")
    if parsed.video is not None:
        return _video(parsed)
    if parsed.episodes <= 0:
        return _fail(f"--episodes {parsed.episodes}: evaluate at least one episode")
    result = driver.evaluate_run(parsed.run_dir, parsed.episodes, deterministic=not parsed.stochastic)
    print(json.dumps({k: v for k, v in result.items() if k != "episodes"}, indent=2))
    return 0


def _video(parsed: EvalArgs) -> int:
    from advantage.report import video

    if parsed.video_episodes <= 0:
        return _fail(f"--video-episodes {parsed.video_episodes}: record at least one episode")
    path = video.default_path(parsed.run_dir) if parsed.video == _VIDEO_DEFAULT else parsed.video
    video.check_path(path)  # a bad suffix or a missing mp4 writer fails before the (slow) rollout
    r = video.rollout(
        parsed.run_dir,
        parsed.video_episodes,
        parsed.video_seed_index,
        deterministic=not parsed.stochastic,
        max_frames=parsed.max_frames,
        compact=True,
    )
    out = video.write_video(r.frames, path, r.fps)
    episodes = ", ".join(f"return {ret:g} in {n} steps" for ret, n in zip(r.returns, r.lengths))
    print(
        f"video of seed {r.seed} ({'stochastic' if parsed.stochastic else 'deterministic'} policy), "
        f"{len(r.frames)} frames at {r.fps} fps: {out}"
    )
    print(f"episodes: {episodes}" + (f" (cut at --max-frames {parsed.max_frames})" if r.cut_by_max_frames else ""))
    return 0


@dataclasses.dataclass
class ExportArgs:
    run_dir: str
    """A run folder written by `advantage train`."""
    format: Literal["onnx", "npz"] = "onnx"
    """onnx (needs `pip install "advantage[export]"`) or npz (weights and a JSON description, for numpy)."""
    out: Optional[str] = None
    """The file to write (default RUN_DIR/policy-seedS.FORMAT)."""
    seed: Optional[int] = None
    """The training seed to export (default: the one with the best final evaluation)."""


def _export(args: list[str]) -> int:
    import tyro

    from advantage.export import ATOL, export

    parsed = tyro.cli(tyro.conf.PositionalRequiredArgs[ExportArgs], args=args, prog="advantage export")
    path, r, policy = export(parsed.run_dir, parsed.format, parsed.out, parsed.seed)
    check = (
        f"{r['agreement']:.1%} of the actions identical"
        if r["discrete"]
        else f"max |action - policy.act| = {r['max_abs_diff']:.3g} (at most {ATOL:g})"
    )
    print(f"{policy.algo.NAME} seed {policy.seed} -> {path}")
    print(f"checked on {r['n']} observations of evaluation episodes: {check}")
    return 0


@dataclasses.dataclass
class ReportArgs:
    run_dirs: tuple[str, ...]
    """Run folders written by `advantage train` (one or many; runs of the same env are compared side by side)."""
    out: str = "report"
    """Folder for report.md, report.json and the figures."""
    n_boot: int = 2000
    """Bootstrap resamples for the confidence intervals."""
    confidence: float = 0.95
    """Confidence level of the intervals."""
    bootstrap_seed: int = 0
    """Seed of the bootstrap resampling (the same seed gives the same report)."""


def _report_cmd(args: list[str]) -> int:
    import tyro

    from advantage.report.report import make_report

    with_value = {"--out", "--n-boot", "--confidence", "--bootstrap-seed"}
    words = [a for i, a in enumerate(args) if not a.startswith("-") and (i == 0 or args[i - 1] not in with_value)]
    if not words and not any(a in ("-h", "--help") for a in args):
        return _fail("no runs given: advantage report RUN_DIR [RUN_DIR ...] --out DIR")
    parsed = tyro.cli(tyro.conf.PositionalRequiredArgs[ReportArgs], args=args, prog="advantage report")
    if not 0 < parsed.confidence < 1:
        return _fail(f"--confidence {parsed.confidence}: give a level strictly between 0 and 1, e.g. 0.95")
    report = make_report(
        parsed.run_dirs, parsed.out, n_boot=parsed.n_boot, alpha=1 - parsed.confidence, seed=parsed.bootstrap_seed
    )
    for r in report["runs"]:
        f = r["final_return"]
        if f is None:
            print(f"{r['label']}: no evaluation")
            continue
        iqm = f["iqm"]
        ci = "1 seed, no CI" if f["n_seeds"] < 2 else f"{parsed.confidence:.0%} CI [{iqm['lo']:.1f}, {iqm['hi']:.1f}]"
        print(
            f"{r['label']}: IQM {iqm['estimate']:.1f} ({ci}), mean {f['mean']['estimate']:.1f} over "
            f"{f['n_seeds']} seed(s)"
        )
    print(f"report: {os.path.join(parsed.out, 'report.md')} (every number in report.json)")
    return 0


def _envs(args: list[str]) -> int:
    from advantage.envs import registry

    for env_id in registry.registered_ids():
        s = registry.spec(env_id)
        print(f"{env_id:28s} time limit {s.max_episode_steps}")
    print('\ngymnax:ID (pip install "advantage[gymnax]") and brax:NAME ("advantage[brax]") run on the JAX back end.')
    print("Any Gymnasium id or module:Class path also works (Gymnasium back end).")
    return 0


@dataclasses.dataclass
class CheckEnvArgs:
    env: str
    """A Gymnasium id, `module:Class` or `module:function` (the current folder is importable)."""
    env_kwargs: Optional[str] = None
    """Keyword arguments of the env, as JSON (e.g. '{"size": 5}')."""
    episodes: int = 5
    """Episodes of the uniformly random policy (its returns and the step rate)."""
    seed: int = 0
    """Seed of the checks and of the random policy."""
    steps: int = 20
    """Random steps of the strict validation (the checks training runs before it starts)."""


def _check_env(args: list[str]) -> int:
    import tyro

    from advantage.envs.check import check_env, format_report

    parsed = tyro.cli(tyro.conf.PositionalRequiredArgs[CheckEnvArgs], args=args, prog="advantage check-env")
    try:
        kwargs = json.loads(parsed.env_kwargs) if parsed.env_kwargs else None
    except ValueError as e:
        return _fail(f"--env-kwargs is not valid JSON ({e}); give an object, e.g. '{{\"size\": 5}}'")
    if kwargs is not None and not isinstance(kwargs, dict):
        return _fail(f"--env-kwargs must be a JSON object, got {parsed.env_kwargs}")
    if parsed.episodes < 1:
        return _fail(f"--episodes {parsed.episodes}: run at least one episode")
    report = check_env(parsed.env, kwargs, episodes=parsed.episodes, seed=parsed.seed, steps=parsed.steps)
    print(format_report(report))
    return 0 if report.usable else 1


@dataclasses.dataclass
class LabArgs:
    name: str
    """The lab to run (advantage lab --list shows them all)."""
    out: Optional[str] = None
    """Output folder for figure.png and results.json. Default: labs/NAME."""
    seed: int = 0
    """Seed of the experiment (the same seed gives the same numbers)."""
    quick: bool = False
    """A smaller version of the experiment (fewer repetitions), as the tests run it."""


def _lab(args: list[str]) -> int:
    import json
    import time

    import tyro

    from advantage import labs

    if not args or args[0] in ("--list", "list"):
        for name in labs.LABS:
            try:
                mod = labs.get(name)
            except ModuleNotFoundError:
                continue
            print(f"{name:22s} {mod.CLAIM}  [{mod.SLIDE}]")
        if not args:
            print("\nusage: advantage lab NAME [--out DIR] [--seed N] [--quick]")
        return 0
    parsed = tyro.cli(tyro.conf.PositionalRequiredArgs[LabArgs], args=args, prog="advantage lab")
    mod = labs.get(parsed.name)
    out = Path(parsed.out or os.path.join("labs", parsed.name))
    out.mkdir(parents=True, exist_ok=True)
    print(f"lab {parsed.name}: {mod.CLAIM} [{mod.SLIDE}]", file=sys.stderr)
    t0 = time.perf_counter()
    results = mod.run(out, seed=parsed.seed, quick=parsed.quick)
    holds = results.get("claim_holds")
    verdict = "the claim holds" if holds else ("the claim does NOT hold in this run" if holds is not None else "")
    print(
        f"{verdict} ({time.perf_counter() - t0:.0f} s); figure: {out / 'figure.png'}, numbers: {out / 'results.json'}"
    )
    summary = results.get("summary")
    if summary:
        print(summary if isinstance(summary, str) else json.dumps(summary, indent=2))
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    _prepare_jax(argv)
    # Like `python -m`, make the current folder importable, so that `--env my_pkg.envs:MyEnv`
    # finds a user's own package without installing it.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    from advantage.errors import AdvantageError, NonFiniteError

    commands = {
        "train": _train,
        "eval": _eval,
        "report": _report_cmd,
        "envs": _envs,
        "lab": _lab,
        "export": _export,
        "check-env": _check_env,
    }
    command, rest = argv[0], argv[1:]
    if command not in commands:
        import difflib

        close = difflib.get_close_matches(command, commands, n=1)
        return _fail(f"unknown command {command!r}" + (f"; did you mean {close[0]!r}?" if close else "") + "\n" + USAGE)
    try:
        return commands[command](rest)
    except NonFiniteError as e:  # training diverged: not bad input, but no traceback from inside jit either
        print(f"advantage: stopped: {e}", file=sys.stderr)
        return 1
    except AdvantageError as e:  # every user-facing error (advantage/errors.py): its message says what and how
        return _fail(str(e))
    except KeyError as e:  # a KeyError from outside advantage.errors: the message is the first argument
        return _fail(str(e.args[0]) if e.args else str(e))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
