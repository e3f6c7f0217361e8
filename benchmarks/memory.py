"""Peak memory (RSS) of every algorithm on its classic-control env, run as a user runs it.

An on-demand measurement, never part of the test suite. Issue 17's target: the peak resident
memory of any classic-control run is at most 1 GB. Every row is ``advantage train ALGO --env ENV``
(the console script) in its own fresh process, 3 seeds, with the default outputs (final
evaluation of 200 episodes per seed, learning curve, TensorBoard, checkpoints and the closing GIF),
and its peak RSS is the ``ru_maxrss`` that ``os.wait4`` returns for that one child (the child and
the descendants it waited for, never the earlier rows). While it runs, the child's ``VmRSS`` is
sampled from ``/proc/PID/status`` every ``--sample-every`` seconds, to see when the peak happens.

Each row gets a fresh, empty JAX compilation cache (``ADVANTAGE_JAX_CACHE``): the first run of a
user, where XLA compiles everything, is the worst case (a warm cache lowers the peak by about
200 MB, see RESULTS.md). ``--warm-cache`` uses the cache of the caller's environment instead.

Budgets: the algorithm's preset budget for the env, capped at ``--max-steps`` env steps per seed
(default 50,000; the off-policy presets, 20k on Pendulum and DQN's 50k, are within it, so their
replay buffers, allocated as min(buffer_size, budget), have their preset size). The peak comes
from compilation and the fixed-size buffers, not from the number of steps: the main job (PPO,
CartPole-v1, its full 200k preset, ``main`` row) is run at both budgets to show it. Gymnasium
back-end rows are capped at ``--max-steps-gymnasium`` (default 3,000: they step a Python env, and
the off-policy ones update after every step, about 25 s per 1,000 steps of 3 seeds here).

    python benchmarks/memory.py                 # every row (about 15 min on a quiet 2-core machine)
    python benchmarks/memory.py --quick         # 2,000 steps, 5 eval episodes: checks the script works
    python benchmarks/memory.py --only ppo --only sac
    python benchmarks/memory.py --from-json benchmarks/results/memory-DATE.json   # the table again

Writes ``benchmarks/results/memory-DATE.json`` (after every row, with the machine, the versions and
the load average before and after every run) and, on a full run, replaces the section "Peak memory
per algorithm" of ``benchmarks/RESULTS.md`` (``--results-md PATH`` or ``none``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import ppo_cartpole as common  # noqa: E402  (machine_info)

SECTION = "## Peak memory per algorithm"
LIMIT_MIB = 1000 * 1000**2 / 2**20  # 1 GB = 10^9 bytes = 953.7 MiB

#: name -> (algorithm, env, extra CLI arguments). The env is the algorithm's classic-control preset env:
#: CartPole-v1, or Pendulum-v1 for the continuous-only ones.
ROWS: dict[str, tuple[str, str, list[str]]] = {
    "main": ("ppo", "CartPole-v1", []),  # the main job: the preset's full budget (see --max-steps)
    "ppo": ("ppo", "CartPole-v1", []),
    "a2c": ("a2c", "CartPole-v1", []),
    "a3c": ("a3c", "CartPole-v1", ["--worker-pool", "local"]),
    "impala": ("impala", "CartPole-v1", []),
    "reinforce": ("reinforce", "CartPole-v1", []),
    "qac": ("qac", "CartPole-v1", []),
    "ac-lambda": ("ac-lambda", "CartPole-v1", []),
    "npg": ("npg", "CartPole-v1", []),
    "trpo": ("trpo", "CartPole-v1", []),
    "nac": ("nac", "CartPole-v1", []),
    "is-pg": ("is-pg", "CartPole-v1", []),
    "dqn": ("dqn", "CartPole-v1", []),
    "ddpg": ("ddpg", "Pendulum-v1", []),
    "td3": ("td3", "Pendulum-v1", []),
    "sac": ("sac", "Pendulum-v1", []),
    "cem": ("cem", "CartPole-v1", []),
    "hill-climb": ("hill-climb", "CartPole-v1", []),
    "cma-es": ("cma-es", "CartPole-v1", []),
    "ga": ("ga", "CartPole-v1", []),
    "nelder-mead": ("nelder-mead", "CartPole-v1", []),
    "ppo-gym": ("ppo", "CartPole-v1", ["--backend", "gymnasium"]),
    "dqn-gym": ("dqn", "CartPole-v1", ["--backend", "gymnasium"]),
    "ddpg-gym": ("ddpg", "Pendulum-v1", ["--backend", "gymnasium"]),
    "td3-gym": ("td3", "Pendulum-v1", ["--backend", "gymnasium"]),
    "sac-gym": ("sac", "Pendulum-v1", ["--backend", "gymnasium"]),
}


def preset_steps(algo: str, env: str) -> tuple[int, int]:
    """The algorithm's default budget for ``env`` (what ``advantage train`` uses without --total-steps) and
    its preset's number of parallel envs (a budget must be a multiple of it)."""
    code = (
        f"from advantage import algos; m = algos.get({algo!r}); c = m.Config(**m.PRESETS[{env!r}]); "
        f"print(m.DEFAULT_STEPS[{env!r}], getattr(c, 'n_envs', 1))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=CHILD_CWD)
    steps, n_envs = out.stdout.strip().splitlines()[-1].split()
    return int(steps), int(n_envs)


CHILD_CWD = Path(tempfile.gettempdir())


def cli() -> list[str]:
    """The console script a user runs, next to this interpreter; else ``python -m advantage.cli``."""
    script = Path(sys.executable).parent / "advantage"
    return [str(script)] if script.exists() else [sys.executable, "-m", "advantage.cli"]


def run_measured(cmd: list[str], env: dict, timeout: float, sample_every: float) -> dict:
    """Run ``cmd``; its own peak RSS (``wait4``), wall time, CPU time, and a VmRSS timeline from /proc."""
    timeline: list[tuple[float, float]] = []
    with tempfile.TemporaryFile("w+") as fout, tempfile.TemporaryFile("w+") as ferr:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=fout, stderr=ferr, text=True, env=env, cwd=CHILD_CWD)
        done = threading.Event()

        def sample() -> None:
            status = Path(f"/proc/{p.pid}/status")
            while not done.wait(sample_every):
                try:
                    for line in status.read_text().splitlines():
                        if line.startswith("VmRSS:"):
                            timeline.append((round(time.perf_counter() - t0, 2), int(line.split()[1]) / 1024))
                except (OSError, ValueError):
                    pass

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        timer = threading.Timer(timeout, p.kill)
        timer.start()
        _, status, ru = os.wait4(p.pid, 0)
        elapsed = time.perf_counter() - t0
        done.set()
        timer.cancel()
        sampler.join()
        rc = os.waitstatus_to_exitcode(status)
        fout.seek(0)
        ferr.seek(0)
        out, err = fout.read(), ferr.read()
    return {
        "process_time_s": elapsed,
        "returncode": rc if elapsed < timeout else "timeout",
        "cpu_time_s": ru.ru_utime + ru.ru_stime,
        "peak_rss_mib": ru.ru_maxrss / 1024,
        "rss_timeline_mib": timeline,
        "stdout": out,
        "stderr": err,
    }


def measure(name: str, args, tmp: Path) -> dict:
    algo, env_id, extra = ROWS[name]
    preset, n_envs = preset_steps(algo, env_id)
    if args.quick:
        steps = min(preset, 2_000)
    elif name == "main":
        steps = preset
    else:
        steps = min(preset, args.max_steps_gymnasium if "gymnasium" in extra else args.max_steps)
    steps -= steps % n_envs  # the CLI wants a multiple of the parallel envs
    run_dir = tmp / name
    cmd = [
        *cli(),
        "train",
        algo,
        "--env",
        env_id,
        *extra,
        "--seeds",
        *map(str, args.seeds),
        "--total-steps",
        str(steps),
        "--run-dir",
        str(run_dir),
        "--no-progress",
    ]
    if args.quick:
        cmd += ["--eval-episodes", "5"]
    env = dict(os.environ)
    if not args.warm_cache:
        cache = tmp / f"jax-cache-{name}"
        cache.mkdir()
        env["ADVANTAGE_JAX_CACHE"] = str(cache)
    load = os.getloadavg()
    print(f"[{time.strftime('%H:%M:%S')}] {name}: {steps} steps, load {load[0]:.2f}", file=sys.stderr, flush=True)
    r = run_measured(cmd, env, args.timeout, args.sample_every)
    row = {
        "name": name,
        "algo": algo,
        "env": env_id,
        "backend": "gymnasium" if "gymnasium" in extra else "jax",
        "cmd": ["advantage", *cmd[len(cli()) :]],
        "preset_steps": preset,
        "env_steps_per_seed": steps,
        "seeds": list(args.seeds),
        "cold_cache": not args.warm_cache,
        "loadavg_before": list(load),
        "loadavg_after": list(os.getloadavg()),
        **{k: r[k] for k in ("process_time_s", "returncode", "cpu_time_s", "peak_rss_mib", "rss_timeline_mib")},
        "within_1gb": r["peak_rss_mib"] <= LIMIT_MIB,
    }
    try:
        s = json.loads((run_dir / "summary.json").read_text())
        row.update(
            compile_time_s=s.get("compile_time_s"),
            run_time_s=s.get("run_time_s"),
            eval_time_s=s.get("eval_time_s"),
            eval_return_mean=(s.get("eval_return") or {}).get("mean"),
            video=bool(s.get("video")),
        )
    except (OSError, ValueError):
        row["video"] = None
    if r["returncode"] != 0:
        row["stderr_tail"], row["stdout_tail"] = r["stderr"][-3000:], r["stdout"][-2000:]
    print(
        f"           -> {r['process_time_s']:.1f} s, peak RSS {r['peak_rss_mib']:.0f} MiB (rc {r['returncode']})",
        file=sys.stderr,
        flush=True,
    )
    if not args.keep_runs:
        shutil.rmtree(run_dir, ignore_errors=True)
        shutil.rmtree(tmp / f"jax-cache-{name}", ignore_errors=True)
    return row


def markdown(data: dict) -> str:
    m, rows = data["machine"], data["rows"]
    v = m["versions"]
    lines = [
        SECTION,
        "",
        f"`python benchmarks/memory.py{' ' + ' '.join(data['argv']) if data['argv'] else ''}` "
        f"(results/{Path(data['out']).name}), {data['started'][:16].replace('T', ' ')}: every row is "
        f"`advantage train ALGO --env ENV --seeds {' '.join(map(str, data['seeds']))} --total-steps N` in its own "
        "fresh process, with the default outputs (200-episode evaluation per seed, learning curve, TensorBoard, "
        "checkpoints, the GIF), "
        + ("an empty JAX compilation cache each (cold: the worst case)" if data["cold_cache"] else "a warm cache")
        + ". Peak RSS: `ru_maxrss` of that child from `os.wait4`.",
        "",
        f"- **Machine**: {m['cpu_model']}, {m['nproc']} CPUs, {m['mem_total_gib']} GiB RAM, {m['platform']}; "
        "shared with other work (load average in the JSON).",
        f"- **Versions**: Python {m['python']}, jax {v.get('jax')}, jaxlib {v.get('jaxlib')}, flax {v.get('flax')}, "
        f"optax {v.get('optax')}, gymnasium {v.get('gymnasium')}, numpy {v.get('numpy')}, advantage "
        f"{v.get('advantage')} at `{(m['git']['commit'] or '?')[:7]}`.",
        f"- **Budgets**: the preset's, capped at {data['max_steps']:,} env steps per seed "
        f"({data['max_steps_gymnasium']:,} on the Gymnasium back end); the main job at its full preset.",
        "",
        "| row | command | steps/seed (preset) | wall s | compile s | GIF | peak RSS MiB | ≤ 1 GB (953.7 MiB) |",
        "|---|---|---:|---:|---:|---|---:|---|",
    ]
    for r in rows:
        cmd = " ".join(c for c in r["cmd"] if not c.startswith("/"))
        cmd = re.sub(r" --run-dir\s*--no-progress", "", cmd).replace(" --seeds " + " ".join(map(str, r["seeds"])), "")
        cmd = re.sub(r" --total-steps \d+", "", cmd)
        verdict = "yes" if r["within_1gb"] else "**NO**"
        if r["returncode"] != 0:
            verdict += f" (exit {r['returncode']})"
        gif = {True: "yes", False: "no"}.get(r.get("video"), "?")
        comp = f"{r['compile_time_s']:.1f}" if r.get("compile_time_s") is not None else "–"
        lines.append(
            f"| {r['name']} | `{cmd}` | {r['env_steps_per_seed']:,} ({r['preset_steps']:,}) | "
            f"{r['process_time_s']:.1f} | {comp} | {gif} | {r['peak_rss_mib']:,.0f} | {verdict} |"
        )
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--only", action="append", choices=list(ROWS), help="rows to run (default: all)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--max-steps", type=int, default=50_000, help="cap on a row's budget, env steps per seed")
    p.add_argument("--max-steps-gymnasium", type=int, default=3_000, help="the same on the Gymnasium back end")
    p.add_argument("--quick", action="store_true", help="2,000 steps and 5 eval episodes: checks the script works")
    p.add_argument("--warm-cache", action="store_true", help="keep the caller's JAX cache (default: an empty one)")
    p.add_argument("--sample-every", type=float, default=0.5, help="VmRSS sampling period, s")
    p.add_argument("--timeout", type=float, default=900.0, help="limit for one process, s")
    p.add_argument("--keep-runs", action="store_true", help="keep the run folders (printed temp dir)")
    p.add_argument("--out", default=None, help="results file (default benchmarks/results/memory-DATE.json)")
    p.add_argument(
        "--results-md", default=None, help="where the section goes (default: RESULTS.md; --quick: none); 'none'"
    )
    p.add_argument("--from-json", metavar="RESULTS_JSON", default=None, help="measure nothing: print the table")
    p.add_argument("--label", default=None, help="a note stored with the results (what code this measures)")
    p.add_argument(
        "--update",
        action="store_true",
        help="keep the rows already in --out and replace (or add) only the ones measured now",
    )
    args = p.parse_args()
    if args.from_json:
        print(markdown(json.loads(Path(args.from_json).read_text())))
        return 0
    date = dt.date.today().isoformat()
    out = Path(args.out or HERE / "results" / f"memory-{date}{'-quick' if args.quick else ''}.json")
    tmp = Path(tempfile.mkdtemp(prefix="advantage-memory-"))
    data = {
        "started": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "argv": sys.argv[1:],
        "out": str(out),
        "machine": common.machine_info(),
        "seeds": args.seeds,
        "quick": args.quick,
        "cold_cache": not args.warm_cache,
        "max_steps": args.max_steps,
        "max_steps_gymnasium": args.max_steps_gymnasium,
        "limit_mib": LIMIT_MIB,
        "label": args.label,
        "advantage_imported_from": subprocess.run(
            [sys.executable, "-c", "import advantage; print(advantage.__file__)"],
            capture_output=True,
            text=True,
            cwd=CHILD_CWD,
        ).stdout.strip(),
        "rows": [],
    }
    if args.update and out.exists():
        old = json.loads(out.read_text())
        data["rows"], data["updates"] = old["rows"], [*old.get("updates", []), data["started"]]
        data["started"], data["argv"] = old["started"], old["argv"]
        data["label"] = " / ".join(x for x in (old.get("label"), args.label) if x) or None
    print(f"temp dir {tmp}", file=sys.stderr)
    for name in args.only or ROWS:
        row = measure(name, args, tmp)
        at = [i for i, r in enumerate(data["rows"]) if r["name"] == name]
        if at:
            data["rows"][at[0]] = row
        else:
            data["rows"].append(row)
        out.write_text(json.dumps(data, indent=1) + "\n")
    section = markdown(data)
    print(section)
    md = args.results_md or ("none" if args.quick else str(HERE / "RESULTS.md"))
    if md != "none":
        common.write_section(Path(md), SECTION, section)
    print(f"\nraw results: {out}", file=sys.stderr)
    if not args.keep_runs:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if all(r["returncode"] == 0 and r["within_1gb"] for r in data["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
