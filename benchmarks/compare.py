"""Issue 17's speed comparison in one command: PPO, A2C and TRPO on CartPole-v1, SAC and TD3 on
Pendulum-v1, ``advantage`` against Stable-Baselines3 / sb3-contrib, sbx and rejax, side by side
on the same machine in the same run, RL Zoo hyperparameters, ``--repeats`` times each.

An on-demand benchmark, never part of the test suite. Every measurement is a fresh Python
process timed from launch to exit (imports, JIT compilation, training, file output):

    ref      the reference library (SB3 for PPO/A2C/SAC/TD3, sb3-contrib for TRPO), 1 seed
    sbx      sbx, the JAX port of SB3 (SAC and TD3), 1 seed
    rejax    rejax 0.1.3, pure JAX, compiled whole (SAC and TD3, on its own gymnax Pendulum-v1), 1 seed
    jax      advantage, JAX-native env, 1 seed (cold: an empty compilation cache; warm: the same cache again)
    gym      advantage, --backend gymnasium, 1 seed (cold and warm)

The references run in their own venvs (``benchmarks/venvs.py``), which the script creates on
first use under ``--venv-dir`` (default ``~/.cache/advantage-bench``) and reuses afterwards:
``sb3-venv`` (stable-baselines3, sb3-contrib, gymnasium, a CPU-only torch), ``sbx-venv``
(sbx-rl, its jax, a CPU-only torch for SB3) and ``rejax-venv`` (rejax 0.1.3, gymnax 0.0.9).
Their package versions go into the results. ``benchmarks/reference.py`` is what they run.

Every process trains the Zoo's budget (ours gets it with ``--total-steps``) with the final
evaluation switched off (``--eval-episodes 0`` for ours), as the reference processes do. The
final return of every configuration comes from 200 deterministic episodes in a separate,
untimed process, after the first repeat only (every repeat trains seed 0). The repeats are
interleaved (repeat 1 of everything, then repeat 2, ...), so that a change of load falls on
every configuration alike. Before each measurement the script waits (at most ``--max-wait``)
for the 1-minute load average to drop below ``--load-threshold`` and records it.

    python benchmarks/compare.py --quick                       # tiny budgets, 1 repeat: check the pipeline
    python benchmarks/compare.py                               # everything, 3 repeats (see README.md for time)
    python benchmarks/compare.py --task sac-pendulum --only sbx --only rejax --only jax --repeats 1
    python benchmarks/compare.py --from-json benchmarks/results/speed.json   # the report again

Writes ``benchmarks/results/speed.json`` after every measurement (machine, versions of every
venv, git commit, load average before and after each run, every measurement) and the Markdown
report ``benchmarks/results/speed.md`` (``speed-quick.*`` with ``--quick``): medians (min-max)
per configuration, the ratios of the medians to the reference and to sbx, and issue 17's
targets as PASS/FAIL. ``benchmarks/RESULTS.md`` is never written: the script prints how to
paste the report into it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import ppo_cartpole as common  # noqa: E402  (machine_info, timed, wait_for_quiet, last_train_return, snapshot)
import reference  # noqa: E402  (the Zoo table: budgets; importing it imports no library)
import venvs  # noqa: E402

REF_SCRIPT = HERE / "reference.py"


class Task(NamedTuple):
    algo: str  # ours and the reference's
    env: str
    ref_lib: str  # reference.py --lib for the "ref" configuration
    jax_refs: tuple[str, ...]  # the JAX references that have it: "sbx", "rejax"


TASKS = {
    "ppo-cartpole": Task("ppo", "CartPole-v1", "sb3", ()),
    "a2c-cartpole": Task("a2c", "CartPole-v1", "sb3", ()),
    "trpo-cartpole": Task("trpo", "CartPole-v1", "sb3-contrib", ()),
    "sac-pendulum": Task("sac", "Pendulum-v1", "sb3", ("sbx", "rejax")),
    "td3-pendulum": Task("td3", "Pendulum-v1", "sb3", ("sbx", "rejax")),
}
CONFIGS = ("ref", "sbx", "rejax", "jax", "gym")
#: reference.py --lib -> the venv it runs in
LIB_VENV = {"sb3": "sb3", "sb3-contrib": "sb3", "sbx": "sbx", "rejax": "rejax"}
LABELS = {"ref": "reference", "sbx": "sbx", "rejax": "rejax", "jax": "ours, JAX env", "gym": "ours, Gymnasium env"}
QUICK_STEPS, QUICK_EPISODES, EVAL_EPISODES = 2048, 5, 200

#: issue 17's targets: (tasks, ours, against, factor); the measure is the median process wall time
TARGETS = [
    (("ppo-cartpole",), "jax/cold", "ref/train", 1 / 3),
    (("ppo-cartpole",), "jax/warm", "ref/train", 1 / 5),
    (("ppo-cartpole", "a2c-cartpole", "trpo-cartpole"), "gym/cold", "ref/train", 1 / 2),
    (("ppo-cartpole", "a2c-cartpole", "trpo-cartpole"), "gym/warm", "ref/train", 1 / 2),
    (("sac-pendulum", "td3-pendulum"), "jax/cold", "sbx/train", 0.6),
    (("sac-pendulum", "td3-pendulum"), "jax/warm", "sbx/train", 0.6),
]


def parse(stdout: str, prefix: str = "REF_RESULT ") -> dict | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith(prefix):
            return json.loads(line[len(prefix) :])
    return None


def zoo_steps(task: Task) -> int:
    return reference.ZOO[(task.algo, task.env)][1]


def ref_env() -> dict:
    """A reference process's environment: no PYTHONPATH, so that nothing of this environment leaks into its venv."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


class Bench:
    def __init__(self, args):
        self.args = args
        self.tasks = args.task or list(TASKS)
        self.configs = args.only or list(CONFIGS)
        self.tmp = Path(tempfile.mkdtemp(prefix="advantage-speed-"))
        self.out = Path(args.out)
        self.data: dict = {
            "benchmark": "issue 17 speed comparison",
            "argv": sys.argv[1:],
            "quick": args.quick,
            "repeats": args.repeats,
            "tasks": self.tasks,
            "budgets_env_steps_per_seed": {t: self.budget(t) for t in self.tasks},
            "eval_episodes": self.eval_episodes,
            "load_threshold": args.load_threshold,
            "max_load_wait_s": args.max_wait,
            "machine": common.machine_info(),
            "venvs": {},
            "measurements": [],
        }
        if args.snapshot:
            common.SNAPSHOT_DIR = self.tmp / "code"
            self.data["machine"]["code_snapshot"] = common.extract_snapshot(args.snapshot, common.SNAPSHOT_DIR)

    @property
    def eval_episodes(self) -> int:
        return QUICK_EPISODES if self.args.quick else EVAL_EPISODES

    def budget(self, task: str) -> int:
        return self.args.total_steps or (QUICK_STEPS if self.args.quick else zoo_steps(TASKS[task]))

    def libs(self, task: str) -> dict[str, str]:
        """configuration -> reference.py --lib, for the reference configurations of ``task`` that were asked for."""
        t = TASKS[task]
        libs = {"ref": t.ref_lib} | {c: c for c in t.jax_refs}
        return {c: lib for c, lib in libs.items() if c in self.configs}

    def write(self) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.out.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=str))
        tmp.replace(self.out)

    def ensure_venvs(self) -> None:
        names = sorted({LIB_VENV[lib] for t in self.tasks for lib in self.libs(t).values()})
        for name in names:
            self.data["venvs"][name] = venvs.ensure_reference_venv(name, Path(self.args.venv_dir), self.args.torch)
            print(f"[venv] {name}: {self.data['venvs'][name]['versions']}", file=sys.stderr, flush=True)
            self.write()

    def measure(self, task: str, config: str, variant: str, repeat: int, cmd: list[str], env: dict):
        load, waited = common.wait_for_quiet(self.args.load_threshold, self.args.max_wait)
        print(
            f"[{time.strftime('%H:%M:%S')}] r{repeat} {task} {config} {variant}: load {load[0]:.2f}",
            file=sys.stderr,
            flush=True,
        )
        r = common.timed(cmd, env, self.args.timeout)
        m = {
            "task": task,
            "config": config,
            "variant": variant,
            "repeat": repeat,
            "cmd": cmd,
            "loadavg_before": list(load),
            "load_wait_s": round(waited, 1),
            "loadavg_after": list(os.getloadavg()),
            "process_time_s": r["process_time_s"],
            "cpu_time_s": r["cpu_user_s"] + r["cpu_sys_s"],
            "max_rss_mib": r["max_rss_mib"],
            "returncode": r["returncode"],
        }
        if r["returncode"] != 0:
            m["stderr_tail"] = (r["stdout"] + r["stderr"])[-3000:]
        print(f"    -> {r['process_time_s']:.1f} s (rc {r['returncode']})", file=sys.stderr, flush=True)
        return m, r

    def untimed(self, cmd: list[str], env: dict) -> subprocess.CompletedProcess:
        return subprocess.run(
            cmd, capture_output=True, text=True, cwd=common.CHILD_CWD, timeout=self.args.timeout, env=env
        )

    def run_ref(self, task: str, config: str, lib: str, repeat: int) -> None:
        t = TASKS[task]
        py = self.data["venvs"][LIB_VENV[lib]]["python"]
        model = self.tmp / f"{task}-{config}-r{repeat}.{'pkl' if lib == 'rejax' else 'zip'}"
        base = [py, str(REF_SCRIPT), "--lib", lib, "--algo", t.algo, "--env", t.env]
        cmd = base + ["--seed", "0", "--save", str(model), "--total-steps", str(self.budget(task))]
        m, r = self.measure(task, config, "train", repeat, cmd, ref_env())
        res = parse(r["stdout"]) if r["returncode"] == 0 else None
        if res:
            m.update(
                training_time_s=res["learn_time_s"],
                compile_time_s=res.get("compile_time_s"),
                sps=res["sps"],
                env_steps=res["env_steps"],
                import_time_s=res["import_time_s"],
                train_return_last100=res["train_return_last100"],
                hyperparameters=res["hyperparameters"],
                torch_num_threads=res["torch_num_threads"],
            )
            if repeat == 0:  # the return: an untimed evaluation of the saved model
                ev = self.untimed(base + ["--eval", str(model), "--eval-episodes", str(self.eval_episodes)], ref_env())
                evr = parse(ev.stdout) if ev.returncode == 0 else None
                m.update(eval_return=evr["eval_return_mean"]) if evr else m.update(eval_error=ev.stderr[-2000:])
        model.unlink(missing_ok=True)
        self.data["measurements"].append(m)
        self.write()

    def run_ours(self, task: str, config: str, repeat: int) -> None:
        t = TASKS[task]
        cache = self.tmp / f"cache-{task}-{config}-r{repeat}"
        cache.mkdir()
        exe = str(Path(sys.executable).parent / "advantage")
        env = common.child_env({"ADVANTAGE_JAX_CACHE": str(cache)})
        for variant in ("cold", "warm"):
            run_dir = self.tmp / f"{task}-{config}-r{repeat}-{variant}"
            cmd = [exe, "train", t.algo, "--env", t.env, "--seeds", "0", "--run-dir", str(run_dir)]
            cmd += ["--total-steps", str(self.budget(task)), "--eval-episodes", "0", "--no-video", "--no-progress"]
            cmd += ["--backend", "gymnasium"] if config == "gym" else []
            m, r = self.measure(task, config, variant, repeat, cmd, env)
            try:
                s = json.loads((run_dir / "summary.json").read_text())
                m.update(
                    training_time_s=s["run_time_s"],
                    compile_time_s=s["compile_time_s"],
                    sps=s["sps"],
                    env_steps=s["env_steps"],
                    train_return_last100=common.last_train_return(run_dir / "metrics.csv"),
                )
            except (OSError, KeyError, json.JSONDecodeError) as e:
                m["summary_error"] = repr(e)
            if variant == "warm" and repeat == 0 and r["returncode"] == 0:  # the return: an untimed evaluation
                ev = self.untimed([exe, "eval", str(run_dir), "--episodes", str(self.eval_episodes)], env)
                try:
                    m["eval_return"] = json.loads(ev.stdout[ev.stdout.index("{") :])["eval_return"]["mean"]
                except (ValueError, KeyError):
                    m["eval_error"] = (ev.stdout + ev.stderr)[-2000:]
            self.data["measurements"].append(m)
            self.write()
            shutil.rmtree(run_dir, ignore_errors=True)
        shutil.rmtree(cache, ignore_errors=True)

    def run(self) -> None:
        self.ensure_venvs()
        t0 = time.perf_counter()
        for repeat in range(self.args.repeats):
            for task in self.tasks:
                libs = self.libs(task)
                for config in self.configs:
                    if config in libs:
                        self.run_ref(task, config, libs[config], repeat)
                    elif config in ("jax", "gym"):
                        self.run_ours(task, config, repeat)
        self.data["benchmark_seconds"] = round(time.perf_counter() - t0, 1)
        self.write()
        shutil.rmtree(self.tmp, ignore_errors=True)


# ---------------------------------------------------------------- statistics and the report

STAT_KEYS = ("process_time_s", "cpu_time_s", "training_time_s", "compile_time_s", "sps", "max_rss_mib")


def stats(data: dict) -> dict:
    """task -> "config/variant" -> key -> {median, min, max, n}, over the successful measurements."""
    groups: dict[tuple, list] = {}
    for m in data["measurements"]:
        if m["returncode"] == 0:
            groups.setdefault((m["task"], f"{m['config']}/{m['variant']}"), []).append(m)
    out: dict = {}
    for (task, key), ms in groups.items():
        e: dict = {"n": len(ms), "load1_before": [m["loadavg_before"][0] for m in ms]}
        for k in STAT_KEYS:
            vals = [m[k] for m in ms if m.get(k) is not None]
            if vals:
                e[k] = {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}
        e["eval_return"] = next((m["eval_return"] for m in ms if m.get("eval_return") is not None), None)
        e["train_return_last100"] = next((m["train_return_last100"] for m in ms if m.get("train_return_last100")), None)
        out.setdefault(task, {})[key] = e
    return out


def median(st: dict, task: str, key: str, metric: str = "process_time_s") -> float | None:
    e = st.get(task, {}).get(key, {}).get(metric)
    return e["median"] if e else None


def targets(data: dict, st: dict) -> list[dict]:
    rows = []
    for tasks, ours, against, factor in TARGETS:
        for task in tasks:
            o, ref = median(st, task, ours), median(st, task, against)
            if o is None or ref is None:
                continue
            rows.append(
                {
                    "task": task,
                    "ours": ours,
                    "against": against,
                    "against_lib": TASKS[task].ref_lib if against.startswith("ref") else against.split("/")[0],
                    "factor": factor,
                    "ours_median_s": o,
                    "against_median_s": ref,
                    "limit_s": ref * factor,
                    "ratio": o / ref,
                    "result": "PASS" if o <= ref * factor else "FAIL",
                }
            )
    return rows


def _f(v, fmt="{:.1f}") -> str:
    return "–" if v is None else fmt.format(v)


def _cell(e: dict, key: str, fmt="{:.1f}") -> str:
    s = e.get(key)
    if not s:
        return "–"
    out = fmt.format(s["median"])
    return out + (f" ({fmt.format(s['min'])}–{fmt.format(s['max'])})" if s["n"] > 1 else "")


def _versions(v: dict) -> str:
    return ", ".join(f"{k} {x}" for k, x in v.items() if x)


def markdown(data: dict) -> str:
    st = stats(data)
    mach = data["machine"]
    git = mach.get("git") or {}
    snap = mach.get("code_snapshot")
    ours = {k: mach["versions"].get(k) for k in ("advantage", "jax", "jaxlib", "flax", "optax", "gymnasium")}
    code = " (a --snapshot)" if snap else f" (working tree, {len(git.get('dirty_tracked_files') or [])} modified files)"
    lines = [
        "## Speed comparison: PPO, A2C, TRPO, SAC, TD3 against SB3, sb3-contrib, sbx and rejax"
        + (" (--quick: tiny budgets, not a measurement)" if data["quick"] else ""),
        "",
        f"`python benchmarks/compare.py {' '.join(data['argv'])}`, {mach['date']}, git "
        f"{(snap or {}).get('commit') or git.get('commit')}"
        + code
        + f"; {mach['cpu_model']}, {mach['nproc']} CPUs ({mach.get('sched_affinity')} usable), "
        f"{mach['mem_total_gib']} GiB, {mach['platform']}, Python {mach['python']}. "
        f"Every number is the median over {data['repeats']} repeat(s) (min–max in brackets) of a fresh process "
        f"timed from launch to exit, 1 seed; waited for the 1-minute load average to drop below "
        f"{data['load_threshold']} (at most {data['max_load_wait_s']:.0f} s) before each; the load is in the last "
        f"column. Final return: {data['eval_episodes']} deterministic episodes, untimed, of the first repeat's model. "
        "Hyperparameters: the RL Zoo's, in `reference.py` (`ZOO`; rejax: `REJAX`, with what it cannot match in the "
        "docstring; rejax trains and is evaluated on gymnax's Pendulum-v1); each reference run's are in the JSON.",
        "",
        "| environment | versions |",
        "|---|---|",
        f"| ours (this Python) | {_versions(ours)} |",
    ]
    for name, v in data["venvs"].items():
        lines.append(f"| `{name}` venv ({v['path']}) | {_versions(v['versions'])} |")
    rows = targets(data, st)
    if rows:
        lines += [
            "",
            "Issue 17's targets, on the median process wall time:",
            "",
            "| task | ours | against | limit | ours median s | against median s | ratio | result |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for t in rows:
            lines.append(
                f"| {t['task']} | {t['ours']} | {t['against_lib']} | ≤ {t['factor']:.2g}× | {t['ours_median_s']:.1f} "
                f"| {t['against_median_s']:.1f} | {t['ratio']:.2f} | **{t['result']}** |"
            )
    for task in data["tasks"]:
        t = TASKS[task]
        budget = data["budgets_env_steps_per_seed"][task]
        lines += [
            "",
            f"### {t.algo.upper()}, {t.env}, {budget:,} env steps",
            "",
            "| configuration | run | n | process s | CPU s | training s | compile s | SPS | × ref | × sbx "
            "| final return | load1 before |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        ref, sbx = median(st, task, "ref/train"), median(st, task, "sbx/train")
        for config in CONFIGS:
            for variant in ("train", "cold", "warm"):
                e = st.get(task, {}).get(f"{config}/{variant}")
                if not e:
                    continue
                t_med = e["process_time_s"]["median"]
                label = {"ref": t.ref_lib, "sbx": "sbx", "rejax": "rejax (gymnax env)"}.get(config, LABELS[config])
                lines.append(
                    f"| {label} | {variant} | {e['n']} | {_cell(e, 'process_time_s')} | {_cell(e, 'cpu_time_s')} | "
                    f"{_cell(e, 'training_time_s')} | {_cell(e, 'compile_time_s')} | {_cell(e, 'sps', '{:,.0f}')} | "
                    f"{_f(t_med / ref if ref else None, '{:.2f}')} | {_f(t_med / sbx if sbx else None, '{:.2f}')} | "
                    f"{_f(e['eval_return'])} | {', '.join(f'{x:.1f}' for x in e['load1_before'])} |"
                )
    failed = [m for m in data["measurements"] if m["returncode"] != 0]
    if failed:
        names = [f"{m['task']} {m['config']} {m['variant']} r{m['repeat']}" for m in failed]
        lines += ["", "Failed runs (see their `stderr_tail` in the JSON): " + ", ".join(names)]
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(
        description="Issue 17's speed comparison in one command: ours against SB3, sb3-contrib, sbx and rejax "
        "(PPO, A2C, TRPO on CartPole-v1; SAC, TD3 on Pendulum-v1), the references in venvs created on first use."
    )
    p.add_argument("--task", action="append", choices=list(TASKS), help="default: all five")
    p.add_argument("--only", action="append", choices=CONFIGS, help="configurations to run (default: all)")
    p.add_argument("--repeats", type=int, default=None, help="measurements per configuration (default 3; --quick 1)")
    p.add_argument("--quick", action="store_true", help=f"{QUICK_STEPS} env steps, {QUICK_EPISODES} eval episodes")
    p.add_argument("--total-steps", type=int, default=None, help="every task's budget (default: the Zoo's)")
    p.add_argument("--venv-dir", default=str(venvs.DEFAULT_ROOT), help="where the reference venvs are (created)")
    p.add_argument("--torch", default=None, help="pip requirement for torch in new venvs (default: a +cpu wheel)")
    p.add_argument("--load-threshold", type=float, default=1.5, help="wait for the 1-min load average to drop below")
    p.add_argument("--max-wait", type=float, default=None, help="...but at most this many seconds (180; --quick 0)")
    p.add_argument("--timeout", type=float, default=3600.0, help="limit for one process, s")
    p.add_argument("--out", default=None, help="results JSON (default results/speed.json, --quick speed-quick.json)")
    p.add_argument("--snapshot", metavar="REV", default=None, help="benchmark the package as committed at REV")
    p.add_argument("--from-json", metavar="RESULTS_JSON", help="measure nothing: print the report of a results file")
    args = p.parse_args()
    if args.from_json:
        print(markdown(json.loads(Path(args.from_json).read_text())), end="")
        return 0
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.max_wait = args.max_wait if args.max_wait is not None else (0.0 if args.quick else 180.0)
    args.out = args.out or str(HERE / "results" / ("speed-quick.json" if args.quick else "speed.json"))
    bench = Bench(args)
    print(f"machine: {bench.data['machine']['cpu_model']}; temp dir {bench.tmp}", file=sys.stderr, flush=True)
    bench.run()
    report = markdown(bench.data)
    md = Path(args.out).with_suffix(".md")
    md.write_text(report)
    print(report, end="")
    print(
        f"results: {args.out}\nreport:  {md}\nbenchmarks/RESULTS.md is not touched; to put the report there, replace "
        f"its section '## Speed comparison: ...' (or add one) with the contents of {md}, e.g. by hand in an "
        "editor, and keep the discussion of the numbers below the tables.",
        file=sys.stderr,
    )
    return 0 if all(m["returncode"] == 0 for m in bench.data["measurements"]) else 1


if __name__ == "__main__":
    sys.exit(main())
