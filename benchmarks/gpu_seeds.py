"""The JAX path on an accelerator: many seeds of one run as one vmapped program, against the same runs on the CPU.

For each number of seeds, ``advantage train ALGO --env ENV --seeds 0..N-1`` runs in a fresh process
(``--seed-batching vmap`` on the accelerator, the default ``map`` on the CPU with ``JAX_PLATFORMS=cpu``), and
this script reads back its ``summary.json``: compile time and run time apart, env steps per second over all
seeds, and the evaluation return of every seed (so "it runs on a GPU" includes "it learns on a GPU").

    python benchmarks/gpu_seeds.py                        # PPO CartPole-v1: 1-256 seeds on the GPU, 1 and 8 on the CPU
    python benchmarks/gpu_seeds.py --gpu-seeds 1 8 --cpu-seeds 1 --eval-episodes 20
    python benchmarks/gpu_seeds.py --from-json benchmarks/results/gpu-seeds-DATE.json   # re-print the table

Results: ``benchmarks/results/gpu-seeds-DATE.json`` (machine, versions, every run) and a table on stdout
(pasted into RESULTS.md). Digests differ between the GPU and the CPU (other kernels, other summation orders):
the recorded digests of ``tests/test_reproducibility.py`` are CPU digests.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def device_info() -> dict:
    """The accelerator as JAX sees it, and the versions that matter, from a child process (this one imports no JAX)."""
    code = (
        "import json, jax, flax, optax; d = jax.devices()[0]; "
        "print(json.dumps({'backend': jax.default_backend(), 'device': d.device_kind, 'n_devices': len(jax.devices()),"
        " 'jax': jax.__version__, 'flax': flax.__version__, 'optax': optax.__version__}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    info = json.loads(out.strip().splitlines()[-1])
    info.update(python=platform.python_version(), cpu_count=os.cpu_count(), machine=platform.machine())
    try:
        smi = ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"]
        info["nvidia_smi"] = subprocess.run(smi, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def run_once(algo: str, env: str, n_seeds: int, platform_name: str, eval_episodes: int, total_steps: int | None):
    """One training process; its summary's timings and returns."""
    run_dir = Path(tempfile.mkdtemp(prefix=f"gpu-seeds-{platform_name}-{n_seeds}-"))
    cmd = [sys.executable, "-m", "advantage.cli", "train", algo, "--env", env, "--backend", "jax"]
    cmd += ["--seeds", *map(str, range(n_seeds)), "--no-video", "--eval-episodes", str(eval_episodes)]
    cmd += ["--run-dir", str(run_dir), "--eval-record", "0"]
    if total_steps:
        cmd += ["--total-steps", str(total_steps)]
    child = dict(os.environ)
    if platform_name == "cpu":
        child["JAX_PLATFORMS"] = "cpu"
    else:
        cmd += ["--seed-batching", "vmap"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=child)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        return {"platform": platform_name, "n_seeds": n_seeds, "error": proc.stderr[-3000:], "process_s": wall}
    summary = json.loads((run_dir / "summary.json").read_text())
    returns = [float(r) for r in summary["eval_return"]["per_seed"]] if isinstance(summary["eval_return"], dict) else []
    return {
        "platform": platform_name,
        "device": summary.get("device"),
        "n_seeds": n_seeds,
        "process_s": wall,
        "compile_time_s": summary.get("compile_time_s"),
        "run_time_s": summary.get("run_time_s"),
        "eval_time_s": summary.get("eval_time_s"),
        "env_steps_per_seed": summary.get("env_steps"),
        "sps_all_seeds": summary.get("sps"),
        "eval_returns": returns,
    }


def table(data: dict) -> str:
    solved = data.get("solved_at", 475.0)
    lines = [
        "| platform | seeds | process s | compile s | run s | eval s | env steps/s (all seeds) | seeds ≥ "
        f"{solved:g} | mean return |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in data["runs"]:
        if "error" in r:
            lines.append(f"| {r['platform']} | {r['n_seeds']} | failed: see JSON | | | | | | |")
            continue
        rets = r["eval_returns"]
        mean = sum(rets) / len(rets) if rets else float("nan")
        lines.append(
            f"| {r['platform']} ({r['device']}) | {r['n_seeds']} | {r['process_s']:.1f} | {r['compile_time_s']:.1f} | "
            f"{r['run_time_s']:.1f} | {r['eval_time_s']:.1f} | {r['sps_all_seeds']:,.0f} | "
            f"{sum(x >= solved for x in rets)}/{len(rets)} | {mean:.1f} |"
        )
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algo", default="ppo")
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--gpu-seeds", type=int, nargs="*", default=[1, 8, 64, 256])
    p.add_argument("--cpu-seeds", type=int, nargs="*", default=[1, 8])
    p.add_argument("--eval-episodes", type=int, default=50)
    p.add_argument("--total-steps", type=int, default=None, help="default: the algorithm's default budget")
    p.add_argument("--solved-at", type=float, default=475.0)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--from-json", type=Path, default=None)
    args = p.parse_args()
    if args.from_json:
        print(table(json.loads(args.from_json.read_text())))
        return 0
    data = {
        "date": datetime.date.today().isoformat(),
        "algo": args.algo,
        "env": args.env,
        "solved_at": args.solved_at,
        "machine": device_info(),
        "runs": [],
    }
    out = args.out or ROOT / "benchmarks" / "results" / f"gpu-seeds-{data['date']}.json"
    plan = [("gpu", n) for n in args.gpu_seeds] + [("cpu", n) for n in args.cpu_seeds]
    for platform_name, n in plan:
        result = run_once(args.algo, args.env, n, platform_name, args.eval_episodes, args.total_steps)
        data["runs"].append(result)
        print(json.dumps(result), flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(data, indent=1))  # after every run: a killed script keeps what it measured
    print(json.dumps(data["machine"]))
    print(table(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
