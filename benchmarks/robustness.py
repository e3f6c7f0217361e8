"""Robustness of the presets: every preset that the README, the docs or a learning test names,
trained on 20 seeds (0-19), with the per-seed final evaluation, how many seeds reach the
threshold, the IQM with a 95% stratified-bootstrap CI, and the worst seed.

A preset is robust when it solves 20 of 20 seeds under every instruction set: XLA compiles for
the CPU it runs on, and another CPU rounds differently in the last bits. ``advantage`` pins
XLA's CPU code to AVX2 by default (docs/reproducibility.md); ``--isa`` forces another one, the
way another machine would compute, so that one machine can show what the presets do elsewhere:

    python benchmarks/robustness.py                          # every preset, the default (AVX2 pin)
    python benchmarks/robustness.py --isa AVX --jobs 2       # the same, with XLA limited to AVX
    python benchmarks/robustness.py --isa SSE4_2 --only ppo-cartpole --only a2c-gae-cartpole
    python benchmarks/robustness.py --table                  # only rewrite ROBUSTNESS.md from results/

Each preset runs as one ``advantage train`` process (the command a user would type, all seeds
in one run) with its run folder under ``--runs`` (default /tmp/advantage-robustness), so that a
failing seed's learning curve can be read. A run is deterministic, so a finished run folder of
exactly the same preset, seeds and instruction set there is read instead of trained again
(its config.json and summary.json are compared); delete the folder to train it anew. Results go
to ``results/robustness-ISA.json`` (merged with earlier presets of the same ISA) and the table
to ``ROBUSTNESS.md``. On demand only, never in the test suite; the learning tests run the same
presets on fewer seeds (``tests/test_presets.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

import ppo_cartpole as common  # noqa: E402  (machine_info)

from advantage.presets import NOT_YET_ROBUST, ROBUST, Preset  # noqa: E402

ALL = ROBUST + NOT_YET_ROBUST
from advantage.report.stats import iqm, stratified_bootstrap_ci  # noqa: E402

RESULTS = HERE / "results"
TABLE = HERE / "ROBUSTNESS.md"
SEEDS = tuple(range(20))
ISAS = ("default", "native", "AVX2", "AVX", "SSE4_2")


@dataclass
class Outcome:
    name: str
    per_seed: list[float]
    threshold: float
    wall_s: float
    env_steps: int
    run_dir: str
    command: str
    solved: int = field(init=False)

    def __post_init__(self):
        self.solved = sum(r >= self.threshold for r in self.per_seed)


def xla_env(isa: str) -> dict:
    env = dict(os.environ)
    flags = " ".join(f for f in env.get("XLA_FLAGS", "").split() if not f.startswith("--xla_cpu_max_isa"))
    env.pop("ADVANTAGE_NATIVE_ISA", None)
    if isa == "native":
        env["ADVANTAGE_NATIVE_ISA"] = "1"
    elif isa != "default":
        flags = f"{flags} --xla_cpu_max_isa={isa}".strip()
    env["XLA_FLAGS"] = flags
    return env


def finished_run(run_dir: Path, preset: Preset, isa: str, seeds) -> dict | None:
    """The summary of a finished run of exactly this preset (same algorithm config, env, budget, back end, seeds,
    evaluation, instruction set) in ``run_dir``, or None: such a run is deterministic, so it need not run again."""
    from advantage.config import to_dict

    try:
        config = json.loads((run_dir / "config.json").read_text())
        summary = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    run = config["run"]
    same = (
        config["algo"] == preset.module.NAME
        and config["algo_config"] == to_dict(preset.config())
        and run["env"] == preset.env
        and run["total_steps"] == preset.steps
        and run["seeds"] == list(seeds)
        and run["eval_episodes"] == preset.eval_episodes
        and run["eval_deterministic"]
        and (preset.backend == "auto" or run["backend"] == preset.backend)
        and all(run.get(key) == value for key, value in preset.run.items())
        and summary.get("cpu", {}).get("xla_cpu_isa") == ("AVX2" if isa == "default" else isa)
    )
    return summary if same else None


def run_preset(preset: Preset, isa: str, runs: Path, seeds=SEEDS) -> Outcome:
    run_dir = runs / isa / preset.name
    command = preset.command(seeds)
    shown = " ".join(command[: command.index("--seeds")])
    summary = finished_run(run_dir, preset, isa, seeds)
    if summary is not None:  # wall time: the run's own (it ran as this command, maybe beside other runs)
        return Outcome(
            preset.name,
            summary["eval_return"]["per_seed"],
            preset.threshold,
            summary["wall_time_s"],
            summary["env_steps"],
            str(run_dir),
            shown,
        )
    if run_dir.exists():
        subprocess.run(["rm", "-rf", str(run_dir)], check=True)
    argv = [
        sys.executable,
        "-m",
        "advantage.cli",
        *command[1:],
        "--run-dir",
        str(run_dir),
        "--no-video",
        "--no-progress",
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=xla_env(isa), capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{preset.name} ({isa}) failed:\n{proc.stderr[-3000:]}")
    summary = json.loads((run_dir / "summary.json").read_text())
    return Outcome(
        preset.name,
        summary["eval_return"]["per_seed"],
        preset.threshold,
        wall,
        summary["env_steps"],
        str(run_dir),
        shown,
    )


def machine() -> dict:
    """The benchmarks' machine record (CPU, cores, platform, versions, commit, date) and the CPU's vector extensions."""
    from advantage import cpu

    return {**common.machine_info(), "cpu_vector_flags": cpu.describe()["cpu_vector_flags"]}


def load(isa: str) -> dict:
    path = RESULTS / f"robustness-{isa}.json"
    return json.loads(path.read_text()) if path.exists() else {"isa": isa, "presets": {}}


def save(isa: str, data: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"robustness-{isa}.json").write_text(json.dumps(data, indent=1))


def describe_isa(isa: str) -> str:
    return {
        "default": "The default pin (XLA_FLAGS --xla_cpu_max_isa=AVX2)",
        "native": "the CPU's full instruction set (ADVANTAGE_NATIVE_ISA=1)",
    }.get(isa, f"XLA forced to {isa} (--xla_cpu_max_isa={isa})")


def write_table() -> None:
    lines = [
        "# Robustness of the presets",
        "",
        "Every preset that the README, the docs or a learning test names, trained on seeds 0-19, each",
        "seed evaluated on 200 deterministic episodes (evaluation seeds disjoint from training). *solved*",
        "counts the seeds whose mean evaluation return reaches the threshold; the IQM's 95% CI is a",
        "stratified bootstrap over seeds. One table per instruction set that XLA's CPU code was limited",
        "to: another CPU computes like another instruction set, so a preset that holds under each holds",
        "on other machines too. Written by `python benchmarks/robustness.py` (see its docstring).",
        "The wall times are each run's own, measured while several runs shared the 2 cores: a rough",
        "guide to the cost, not a speed benchmark (that is `benchmarks/RESULTS.md`).",
        "",
        *(
            [
                "The last rows of a table are presets that learning tests name but that are not yet robust",
                "(`advantage.presets.NOT_YET_ROBUST`: " + ", ".join(p.name for p in NOT_YET_ROBUST) + "); their",
                "tests check the mean of seeds 0-2.",
            ]
            if NOT_YET_ROBUST
            else ["Every preset is robust (`advantage.presets.NOT_YET_ROBUST` is empty)."]
        ),
        "Each row gives the commit it was measured at (a preset's row is rerun when the preset changes).",
        "",
    ]
    for isa in ("default", "AVX"):
        missing = [p.name for p in ALL if p.name not in load(isa)["presets"]]
        if missing:
            where = "the AVX2 pin" if isa == "default" else isa
            lines += [f"Not run on 20 seeds yet under {where}: {', '.join(missing)}.", ""]
    order = {p.name: i for i, p in enumerate(ALL)}
    for isa in ISAS:
        data = load(isa)
        if not data["presets"]:
            continue
        m = data.get("machine", {})
        lines += [
            f"## {describe_isa(isa)}",
            "",
            f"Machine: {m.get('cpu_model')}, {m.get('nproc')} cores; vector extensions "
            f"{' '.join(m.get('cpu_vector_flags', []))}; {m.get('platform')}; Python {m.get('python')}; "
            + ", ".join(f"{k} {v}" for k, v in m.get("versions", {}).items() if v)
            + f"; last run {m.get('date')}.",
            "",
            "| preset | command | env steps per seed | threshold | solved | IQM [95% CI] | worst seed | "
            "wall, 20 seeds | commit |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name in sorted(data["presets"], key=lambda n: order.get(n, 1e9)):
            r = data["presets"][name]
            per = r["per_seed"]
            ci = stratified_bootstrap_ci(per, "iqm", seed=0)
            worst = min(range(len(per)), key=per.__getitem__)
            lines.append(
                f"| {name} | `{r['command']}` | {r['env_steps']:,} | {r['threshold']:g} | "
                f"**{r['solved']}/{len(per)}** | {iqm(per):.1f} [{ci.lo:.1f}, {ci.hi:.1f}] | "
                f"{per[worst]:.1f} (seed {worst}) | {r['wall_s']:.0f} s | {r.get('commit', '?')} |"
            )
        lines += ["", "Per-seed evaluation returns (seeds 0-19):", ""]
        for name in sorted(data["presets"], key=lambda n: order.get(n, 1e9)):
            lines.append(f"- {name}: " + ", ".join(f"{x:.1f}" for x in data["presets"][name]["per_seed"]))
        lines.append("")
    TABLE.write_text("\n".join(lines))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--isa", default="default", choices=ISAS)
    ap.add_argument(
        "--only", action="append", help="run only this preset (repeatable); names: " + ", ".join(p.name for p in ALL)
    )
    ap.add_argument("--jobs", type=int, default=1, help="presets trained at the same time (one process each)")
    ap.add_argument("--runs", default="/tmp/advantage-robustness", help="where the run folders go")
    ap.add_argument("--table", action="store_true", help="only rewrite ROBUSTNESS.md from the saved results")
    args = ap.parse_args()
    if args.table:
        write_table()
        return 0
    presets = [p for p in ALL if not args.only or p.name in args.only]
    unknown = set(args.only or ()) - {p.name for p in presets}
    if unknown:
        ap.error(f"unknown preset(s) {sorted(unknown)}; choose from {[p.name for p in ALL]}")
    data = load(args.isa)
    data["machine"] = machine()
    failed = 0

    def one(p: Preset):
        out = run_preset(p, args.isa, Path(args.runs))
        print(
            f"{args.isa} {p.name}: {out.solved}/{len(out.per_seed)} solved (threshold {p.threshold:g}), worst "
            f"{min(out.per_seed):.1f}, {out.wall_s:.0f} s; {out.run_dir}",
            flush=True,
        )
        return out

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for out in pool.map(one, presets):
            data["presets"][out.name] = {k: v for k, v in vars(out).items() if k != "name"}
            data["presets"][out.name]["commit"] = (data["machine"].get("git") or {}).get("commit", "")[:7]
            failed += out.solved < len(out.per_seed)
            save(args.isa, data)
            write_table()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
