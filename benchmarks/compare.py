"""A2C and TRPO on CartPole-v1, SAC and TD3 on Pendulum-v1: ``advantage`` against
Stable-Baselines3, sb3-contrib and sbx, same machine, RL Zoo hyperparameters.

An on-demand benchmark, never part of the test suite. Every measurement is a fresh Python
process timed from launch to exit (imports, JIT compilation, training, file output):

    ref      the reference library (SB3 for A2C/SAC/TD3, sb3-contrib for TRPO), 1 seed
    sbx      sbx, the JAX port of SB3 (SAC and TD3 only), 1 seed
    jax      advantage, JAX-native env, 1 seed (cold: an empty compilation cache; warm: the same cache again)
    gym      advantage, --backend gymnasium, 1 seed (cold and warm)

All training processes run with the final evaluation switched off (``--eval-episodes 0``
for ours), so that they do what the reference processes do. The final return of every
configuration then comes from 200 deterministic episodes in a separate, untimed process
(``advantage eval`` / SB3's ``evaluate_policy``).

    pip install -e .[bench]
    python benchmarks/compare.py --task sac-pendulum --task td3-pendulum
    python benchmarks/compare.py --task a2c-cartpole --only ref --only jax
    python benchmarks/compare.py --quick                       # tiny budgets: check the script works

Writes ``benchmarks/results/TASK.json`` after every measurement (with the machine, the
versions and the load average before and after each run) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import ppo_cartpole as common  # noqa: E402  (machine_info, timed, wait_for_quiet, last_train_return)

REF_SCRIPT = HERE / "reference.py"

#: task -> (our algo, env, reference lib, reference algo, has sbx)
TASKS = {
    "a2c-cartpole": ("a2c", "CartPole-v1", "sb3", "a2c", False),
    "trpo-cartpole": ("trpo", "CartPole-v1", "sb3-contrib", "trpo", False),
    "sac-pendulum": ("sac", "Pendulum-v1", "sb3", "sac", True),
    "td3-pendulum": ("td3", "Pendulum-v1", "sb3", "td3", True),
}
CONFIGS = ("ref", "sbx", "jax", "gym")


def parse(stdout: str, prefix: str = "REF_RESULT ") -> dict | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith(prefix):
            return json.loads(line[len(prefix) :])
    return None


class Compare:
    def __init__(self, args, task: str):
        self.args, self.task = args, task
        self.algo, self.env, self.ref_lib, self.ref_algo, self.has_sbx = TASKS[task]
        self.tmp = Path(tempfile.mkdtemp(prefix=f"advantage-{task}-"))
        self.out = HERE / "results" / f"{task}{'-quick' if args.quick else ''}.json"
        self.budget = args.total_steps or (2000 if args.quick else None)
        self.eval_episodes = 5 if args.quick else 200
        self.data = {
            "task": task,
            "algo": self.algo,
            "env": self.env,
            "reference": self.ref_lib,
            "budget_env_steps_per_seed": self.budget or "the Zoo's n_timesteps",
            "quick": args.quick,
            "machine": common.machine_info(),
            "measurements": [],
        }

    def write(self) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text(json.dumps(self.data, indent=1, default=str))

    def measure(self, config: str, variant: str, cmd: list[str], env_extra: dict | None = None) -> tuple[dict, dict]:
        load, waited = common.wait_for_quiet(self.args.load_threshold, self.args.max_wait)
        print(
            f"[{time.strftime('%H:%M:%S')}] {self.task} {config} {variant}: load {load[0]:.2f}",
            file=sys.stderr,
            flush=True,
        )
        r = common.timed(cmd, common.child_env(env_extra), self.args.timeout)
        m = {
            "config": config,
            "variant": variant,
            "cmd": cmd,
            "loadavg_before": list(load),
            "loadavg_after": list(os.getloadavg()),
            "process_time_s": r["process_time_s"],
            "cpu_time_s": r["cpu_user_s"] + r["cpu_sys_s"],
            "max_rss_mib": r["max_rss_mib"],
            "returncode": r["returncode"],
        }
        if r["returncode"] != 0:
            m["stderr_tail"] = r["stderr"][-3000:]
        print(f"    -> {r['process_time_s']:.1f} s (rc {r['returncode']})", file=sys.stderr, flush=True)
        return m, r

    def run_ref(self, lib: str, config: str) -> None:
        model = self.tmp / f"{config}.zip"
        base = [sys.executable, str(REF_SCRIPT), "--lib", lib, "--algo", self.ref_algo, "--env", self.env]
        cmd = (
            base + ["--seed", "0", "--save", str(model)] + (["--total-steps", str(self.budget)] if self.budget else [])
        )
        m, r = self.measure(config, "train", cmd)
        res = parse(r["stdout"]) if r["returncode"] == 0 else None
        if res:
            m.update(
                training_time_s=res["learn_time_s"],
                sps=res["sps"],
                env_steps=res["env_steps"],
                import_time_s=res["import_time_s"],
                train_return_last100=res["train_return_last100"],
                hyperparameters=res["hyperparameters"],
                torch_num_threads=res["torch_num_threads"],
            )
            ev = subprocess.run(
                base + ["--eval", str(model), "--eval-episodes", str(self.eval_episodes)],
                capture_output=True,
                text=True,
                cwd=common.CHILD_CWD,
                timeout=self.args.timeout,
            )
            evr = parse(ev.stdout)
            m.update(eval_return=evr["eval_return_mean"]) if evr else m.update(eval_error=ev.stderr[-2000:])
        self.data["measurements"].append(m)
        self.write()

    def run_ours(self, config: str) -> None:
        cache = self.tmp / f"cache-{config}"
        cache.mkdir()
        exe = str(Path(sys.executable).parent / "advantage")
        for variant in ("cold", "warm"):
            run_dir = self.tmp / f"{config}-{variant}"
            cmd = [
                exe,
                "train",
                self.algo,
                "--env",
                self.env,
                "--seeds",
                "0",
                "--run-dir",
                str(run_dir),
                "--eval-episodes",
                "0",
                "--no-video",
                "--no-progress",
            ]
            cmd += ["--backend", "gymnasium"] if config == "gym" else []
            cmd += ["--total-steps", str(self.budget)] if self.budget else []
            m, r = self.measure(config, variant, cmd, {"ADVANTAGE_JAX_CACHE": str(cache)})
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
            if variant == "warm" and r["returncode"] == 0:  # the return: an untimed evaluation of this run
                ev = subprocess.run(
                    [exe, "eval", str(run_dir), "--episodes", str(self.eval_episodes)],
                    capture_output=True,
                    text=True,
                    cwd=common.CHILD_CWD,
                    timeout=self.args.timeout,
                )
                try:
                    m["eval_return"] = json.loads(ev.stdout[ev.stdout.index("{") :])["eval_return"]["mean"]
                except (ValueError, KeyError):
                    m["eval_error"] = (ev.stdout + ev.stderr)[-2000:]
            self.data["measurements"].append(m)
            self.write()

    def run(self, only: list[str]) -> None:
        for config in only or CONFIGS:
            if config == "ref":
                self.run_ref(self.ref_lib, "ref")
            elif config == "sbx" and self.has_sbx:
                self.run_ref("sbx", "sbx")
            elif config in ("jax", "gym"):
                self.run_ours(config)
        print(table(self.data))


def table(data: dict) -> str:
    ms = data["measurements"]
    ref = next((m["process_time_s"] for m in ms if m["config"] == "ref" and m["returncode"] == 0), None)
    sbx = next((m["process_time_s"] for m in ms if m["config"] == "sbx" and m["returncode"] == 0), None)
    lines = [
        f"### {data['task']} ({data['env']}, budget {data['budget_env_steps_per_seed']})",
        "",
        "| configuration | process s | training s | compile s | SPS | × ref | × sbx | final return | load before |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for m in ms:
        t = m["process_time_s"]
        f = lambda v, fmt="{:.1f}": "–" if v is None else fmt.format(v)  # noqa: E731
        lines.append(
            f"| {m['config']} {m['variant']} | {t:.1f} | {f(m.get('training_time_s'))} | "
            f"{f(m.get('compile_time_s'))} | {f(m.get('sps'), '{:,.0f}')} | "
            f"{f(t / ref if ref else None, '{:.2f}')} | {f(t / sbx if sbx else None, '{:.2f}')} | "
            f"{f(m.get('eval_return'))} | {m['loadavg_before'][0]:.2f} |"
        )
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", action="append", choices=sorted(TASKS), help="default: all four")
    p.add_argument("--only", action="append", choices=CONFIGS, help="configurations to run (default: all)")
    p.add_argument("--quick", action="store_true", help="2000 env steps and 5 evaluation episodes")
    p.add_argument("--total-steps", type=int, default=None)
    p.add_argument("--load-threshold", type=float, default=1.5, help="wait for the 1-min load average to drop below")
    p.add_argument("--max-wait", type=float, default=120.0, help="...but at most this many seconds")
    p.add_argument("--timeout", type=float, default=3600.0)
    p.add_argument("--from-json", nargs="*", help="only print the tables of these results files")
    args = p.parse_args()
    if args.from_json:
        for path in args.from_json:
            print(table(json.loads(Path(path).read_text())) + "\n")
        return 0
    for task in args.task or list(TASKS):
        Compare(args, task).run(args.only or [])
    return 0


if __name__ == "__main__":
    sys.exit(main())
