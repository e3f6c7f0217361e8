"""Asynchronous workers (IMPALA, A3C) against single-process A2C: env steps per second, and RLlib's IMPALA.

An on-demand benchmark, never part of the test suite. Every run is a fresh process, one seed, on the Gymnasium
back end (``--backend gymnasium``), and the numbers are the run's own (``summary.json``: ``run_time_s`` is the
training time with JIT compilation left out, ``sps`` the env steps over it; ``metrics.csv``: the pool's
metrics). Configurations (a job is what one worker collects before it reports: ``n_envs x n_steps`` env steps):

    a2c-4x5     A2C in one process, 4 envs x 5 steps per update     (the baseline of A3C: one A3C job)
    a3c-w1      A3C, 1 worker (Ray), 4 envs x 5 steps per gradient
    a3c-w2      A3C, 2 workers (Ray)
    a3c-w2-q2   A3C, 2 workers with 2 jobs queued each (--jobs-per-worker 2: one update staler, no round-trip wait)
    a2c-8x8     A2C in one process, 8 envs x 8 steps per update     (the baseline of IMPALA: one IMPALA job)
    impala-w1   IMPALA, 1 actor (Ray), 8 envs x 8 steps per rollout
    impala-w2   IMPALA, 2 actors (Ray)
    rllib-w1    RLlib's IMPALA, 1 env runner of 8 envs x 8 steps, train batch 64, learner in the driver
    rllib-w2    the same with 2 env runners                          (only with --rllib: its own venv)
    rllib-tuned-w2  2 env runners of 8 envs x 8 steps with RLlib's own CartPole-v1 settings (its tuned example:
                train batch 500, lr 5e-4, grad clip 40, vf_loss_coeff 0.05, a shared 256-256 network), the
                reference at equal return: ``--env cartpole --steps 500000 --only impala-w2 --only rllib-tuned-w2``

on three envs: ``cartpole`` (Gymnasium's CartPole-v1), ``slow-spin`` (``slow_envs:SlowCartPole``: CartPole-v1
with 1 ms of busy CPU work per step) and ``slow-sleep`` (the same 1 ms spent in ``time.sleep``). The
hyperparameters are the CartPole-v1 presets (A3C's for A2C and A3C, IMPALA's for IMPALA), given explicitly so
that the slow env gets the same. The target of the issue: on the slow env, 2 workers give at least 1.6x the env
steps/s of single-process A2C at the same batch.

    python benchmarks/pool_throughput.py --quick             # tiny budgets: checks the script works (5-15 min)
    python benchmarks/pool_throughput.py                     # the benchmark (96k env steps a run, ~30-40 min)
    python benchmarks/pool_throughput.py --rllib             # ... and RLlib's IMPALA (creates its venv once)
    python benchmarks/pool_throughput.py --env slow-spin --only a2c-8x8 --only impala-w2
    python benchmarks/pool_throughput.py --from-json benchmarks/results/pool-throughput-2026-12-04.json
    python benchmarks/pool_throughput.py --check-shipping    # only: can Ray workers import slow_envs?

Writes ``benchmarks/results/pool-throughput-<date>.json`` after every run (machine, versions, load average
before and after each run) and, at the end, the section "Asynchronous workers (IMPALA, A3C) against A2C" of
``benchmarks/RESULTS.md`` (replaced if there; ``--quick`` writes no RESULTS.md unless ``--results-md`` says where).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import ppo_cartpole as common  # noqa: E402  (machine_info, timed, wait_for_quiet, version)
import venvs  # noqa: E402  (ensure_venv, torch_cpu_requirement)

RLLIB_SCRIPT = HERE / "rllib_impala.py"
SECTION = "## Asynchronous workers (IMPALA, A3C) against A2C"
TARGET = 1.6

#: A3C's CartPole-v1 preset (also given to its A2C baseline) and IMPALA's, written out so that the slow env,
#: which has no preset, gets the same.
A3C_HP = ["--learning-rate", "0.0007", "--ent-coef", "0.0"]
IMPALA_HP = ["--learning-rate", "0.0007", "--ent-coef", "0.0", "--policy-lag", "2", "--vtrace-lambda", "0.95"]

CONFIGS: dict[str, dict] = {
    "a2c-4x5": dict(kind="ours", algo="a2c", workers=0, n_envs=4, n_steps=5, hp=A3C_HP, base=None),
    "a3c-w1": dict(kind="ours", algo="a3c", workers=1, n_envs=4, n_steps=5, hp=A3C_HP, base="a2c-4x5"),
    "a3c-w2": dict(kind="ours", algo="a3c", workers=2, n_envs=4, n_steps=5, hp=A3C_HP, base="a2c-4x5"),
    "a3c-w2-q2": dict(kind="ours", algo="a3c", workers=2, n_envs=4, n_steps=5, hp=A3C_HP, base="a2c-4x5", jobs=2),
    "a2c-8x8": dict(kind="ours", algo="a2c", workers=0, n_envs=8, n_steps=8, hp=A3C_HP, base=None),
    "impala-w1": dict(kind="ours", algo="impala", workers=1, n_envs=8, n_steps=8, hp=IMPALA_HP, base="a2c-8x8"),
    "impala-w2": dict(kind="ours", algo="impala", workers=2, n_envs=8, n_steps=8, hp=IMPALA_HP, base="a2c-8x8"),
    "rllib-w1": dict(kind="rllib", algo="rllib-impala", workers=1, n_envs=8, n_steps=8, hp=[], base="a2c-8x8"),
    "rllib-w2": dict(kind="rllib", algo="rllib-impala", workers=2, n_envs=8, n_steps=8, hp=[], base="a2c-8x8"),
    "rllib-tuned-w2": dict(
        kind="rllib", algo="rllib-impala", workers=2, n_envs=8, n_steps=8, hp=["--tuned"], base="a2c-8x8"
    ),
}
LABELS = {
    "a2c-4x5": "A2C, 1 process, 4 envs x 5 steps",
    "a3c-w1": "A3C, 1 worker",
    "a3c-w2": "A3C, 2 workers",
    "a3c-w2-q2": "A3C, 2 workers, 2 jobs each",
    "a2c-8x8": "A2C, 1 process, 8 envs x 8 steps",
    "impala-w1": "IMPALA, 1 actor",
    "impala-w2": "IMPALA, 2 actors",
    "rllib-w1": "RLlib IMPALA, 1 env runner",
    "rllib-w2": "RLlib IMPALA, 2 env runners",
    "rllib-tuned-w2": "RLlib IMPALA, 2 env runners, RLlib's CartPole settings",
}
ENVS = ("cartpole", "slow-spin", "slow-sleep")
#: every budget is a multiple of both job sizes (20 and 64 env steps), so that the worker runs spend it exactly
STEP_UNIT = 320


def env_spec(name: str, delay_ms: float) -> tuple[str, dict]:
    if name == "cartpole":
        return "CartPole-v1", {}
    return "slow_envs:SlowCartPole", {"delay_ms": delay_ms, "work": name.split("-")[1]}


def child_env(extra: dict | None = None) -> dict:
    """Children see ``benchmarks/`` (for ``slow_envs``) and this checkout's package first on their path."""
    env = dict(os.environ)
    parts = [str(REPO), str(HERE)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env["PYTHONPATH"] = os.pathsep.join(parts)
    env.update(extra or {})
    return env


# ---------------------------------------------------------------- reading a run


def _float(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _mean(xs) -> float | None:
    xs = [x for x in xs if math.isfinite(x)]
    return sum(xs) / len(xs) if xs else None


def read_metrics(path: Path, total: int) -> dict:
    """From ``metrics.csv``: the means of the pool's metrics over the logged rows, and the steady-state env
    steps/s (the advances that began after 10% of the budget, which leaves out Ray's start, the workers' start and
    their first JIT compilation; every advance's ``perf/sps`` is on its last row)."""
    try:
        rows = list(csv.DictReader(path.open()))
    except OSError:
        return {}
    out: dict = {}
    for name in ("pool/learner_idle_fraction", "pool/actor_sps", "pool/learner_sps", "pool/queue_depth"):
        out[name] = _mean(_float(r.get(name)) for r in rows)
    late = [r for r in rows if _float(r.get("step")) >= 0.1 * total]
    out["pool/learner_idle_fraction_after_10pct"] = _mean(_float(r.get("pool/learner_idle_fraction")) for r in late)
    prev, steps, seconds = 0.0, 0.0, 0.0
    for r in rows:
        sps, step = _float(r.get("perf/sps")), _float(r.get("step"))
        if not math.isfinite(sps) or not math.isfinite(step):
            continue
        if prev >= 0.1 * total and sps > 0:
            steps += step - prev
            seconds += (step - prev) / sps
        prev = step
    out["steady_sps"] = steps / seconds if seconds > 0 else None
    return out


# ---------------------------------------------------------------- the RLlib venv


def ensure_rllib_venv(path: Path, torch_req: str | None) -> dict:
    """A venv at ``path`` with ``ray[rllib]`` at the version of this environment's Ray and a CPU-only torch;
    created once, reused while its Ray version matches. Returns what was done and how long it took."""
    ray_version = common.version("ray")
    if not ray_version:
        raise SystemExit('--rllib: Ray is not installed here (pip install -e ".[ray]"): its version picks RLlib\'s')
    return venvs.ensure_venv(
        path,
        requirements=lambda: [f"ray[rllib]=={ray_version}", venvs.torch_cpu_requirement(torch_req, "--rllib-torch")],
        dists=["ray", "torch", "gymnasium"],
        imports=["ray", "ray.rllib", "torch"],
        pinned={"ray": ray_version},
        label="rllib",
    )


# ---------------------------------------------------------------- can the Ray workers import slow_envs?

_SHIP_PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])     # the copy of slow_envs.py: on the driver's path only, not on PYTHONPATH or cwd
import slow_envs
from advantage.training.ray_cluster import _user_modules, start_ray
ray = start_ray(num_cpus=1, env_module="slow_envs")

@ray.remote(num_cpus=1)
def probe():
    import slow_envs
    env = slow_envs.SlowCartPole(delay_ms=0.1)
    env.reset(seed=0)
    env.step(0)
    return slow_envs.__file__

print("SHIP " + json.dumps({"driver_file": slow_envs.__file__, "shipped": [str(m) for m in _user_modules("slow_envs")],
                            "worker_file": ray.get(probe.remote(), timeout=300)}))
ray.shutdown()
"""


def check_shipping(timeout: float = 600.0) -> dict:
    """Whether a Ray worker can import ``slow_envs`` when only the driver can (the cluster case): a child
    imports a copy of it from a folder that is on its own ``sys.path`` only, starts Ray through the library
    (which ships the env module with ``py_modules``) and asks a Ray task to build the env and step it. Also
    reports what the library would ship for the dotted form ``benchmarks.slow_envs`` (a namespace package)."""
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory() as cwd:
        shutil.copy(HERE / "slow_envs.py", tmp)
        env = child_env()
        env["PYTHONPATH"] = str(REPO)  # the package, not benchmarks/
        r = subprocess.run(
            [sys.executable, "-c", _SHIP_PROBE, tmp], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout
        )
        line = next((ln for ln in r.stdout.splitlines() if ln.startswith("SHIP ")), None)
        if line:
            out.update(json.loads(line[5:]))
            out["ok"] = not out["worker_file"].startswith(tmp)  # imported from what Ray shipped, not the folder
        else:
            out.update(ok=False, error=(r.stdout + r.stderr)[-3000:])
    dotted = subprocess.run(
        [
            sys.executable,
            "-c",
            "import benchmarks.slow_envs; from advantage.training.ray_cluster import _user_modules;"
            "print(_user_modules('benchmarks.slow_envs'))",
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        cwd=REPO,
        timeout=300,
    )
    out["dotted_form_ships"] = dotted.stdout.strip() or dotted.stderr.strip()[-500:]
    return out


# ---------------------------------------------------------------- the benchmark


class Bench:
    def __init__(self, args):
        self.args = args
        self.steps = args.steps
        self.tmp = Path(tempfile.mkdtemp(prefix="advantage-pool-"))
        self.cache = self.tmp / "jax-cache"  # shared: the compile time is left out anyway
        self.cache.mkdir()
        date = dt.date.today().isoformat()
        name = f"pool-throughput-{'quick-' if args.quick else ''}{date}.json"
        self.out = Path(args.out) if args.out else HERE / "results" / name
        self.data = {
            "benchmark": "pool-throughput",
            "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
            "quick": args.quick,
            "env_steps_per_run": self.steps,
            "eval_episodes": args.eval_episodes,
            "delay_ms": args.delay_ms,
            "machine": common.machine_info(),
            "versions_extra": {"ray": common.version("ray")},
            "measurements": [],
        }

    def write(self) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text(json.dumps(self.data, indent=1, default=str))

    def measure(self, env_name: str, config: str, cmd: list[str]) -> tuple[dict, dict]:
        load, waited = common.wait_for_quiet(self.args.load_threshold, self.args.max_wait)
        print(f"[{time.strftime('%H:%M:%S')}] {env_name} {config}: load {load[0]:.2f}", file=sys.stderr, flush=True)
        common.CHILD_CWD = self.tmp
        r = common.timed(cmd, child_env({"ADVANTAGE_JAX_CACHE": str(self.cache)}), self.args.timeout)
        m = {
            "env": env_name,
            "config": config,
            **{k: v for k, v in CONFIGS[config].items() if k != "hp"},
            "cmd": cmd,
            "loadavg_before": list(load),
            "waited_for_quiet_s": round(waited, 1),
            "loadavg_after": list(os.getloadavg()),
            "process_time_s": r["process_time_s"],
            "returncode": r["returncode"],
        }
        if r["returncode"] != 0:
            m["stderr_tail"] = (r["stdout"] + r["stderr"])[-3000:]
        print(f"    -> {r['process_time_s']:.1f} s (rc {r['returncode']})", file=sys.stderr, flush=True)
        return m, r

    def run_ours(self, env_name: str, config: str) -> None:
        c = CONFIGS[config]
        env_id, kwargs = env_spec(env_name, self.args.delay_ms)
        run_dir = self.tmp / f"{env_name}-{config}"
        exe = str(Path(sys.executable).parent / "advantage")
        cmd = [
            exe,
            "train",
            c["algo"],
            "--env",
            env_id,
            "--backend",
            "gymnasium",
            "--seeds",
            "0",
            "--total-steps",
            str(self.steps),
            "--n-envs",
            str(c["n_envs"]),
            "--n-steps",
            str(c["n_steps"]),
            *c["hp"],
            "--run-dir",
            str(run_dir),
            "--eval-episodes",
            str(self.args.eval_episodes),
            "--no-video",
            "--no-progress",
        ]
        cmd += ["--env-kwargs", json.dumps(kwargs)] if kwargs else []
        cmd += ["--workers", str(c["workers"]), "--worker-pool", "ray"] if c["workers"] else []
        cmd += ["--jobs-per-worker", str(c["jobs"])] if c.get("jobs") else []
        m, _ = self.measure(env_name, config, cmd)
        try:
            s = json.loads((run_dir / "summary.json").read_text())
            m.update(
                run_time_s=s["run_time_s"],
                compile_time_s=s["compile_time_s"],
                wall_time_s=s["wall_time_s"],
                sps=s["sps"],
                env_steps=s["env_steps"],
                eval_return=(s.get("eval_return") or {}).get("mean"),
                worker_restarts=s.get("worker_restarts"),
                mean_policy_lag=s.get("mean_policy_lag"),
            )
            m.update(read_metrics(run_dir / "metrics.csv", self.steps))
        except (OSError, KeyError, json.JSONDecodeError) as e:
            m["summary_error"] = repr(e)
        self.data["measurements"].append(m)
        self.write()

    def run_rllib(self, env_name: str, config: str) -> None:
        c = CONFIGS[config]
        env_id, kwargs = env_spec(env_name, self.args.delay_ms)
        py = str(Path(self.args.rllib_venv) / "bin" / "python")
        cmd = [
            py,
            str(RLLIB_SCRIPT),
            "--env",
            env_id,
            "--env-kwargs",
            json.dumps(kwargs),
            "--workers",
            str(c["workers"]),
            "--n-envs",
            str(c["n_envs"]),
            "--n-steps",
            str(c["n_steps"]),
            "--total-steps",
            str(self.steps),
            "--eval-episodes",
            str(self.args.eval_episodes),
            *c["hp"],
        ]
        m, r = self.measure(env_name, config, cmd)
        line = next((ln for ln in reversed(r["stdout"].splitlines()) if ln.startswith("RLLIB_RESULT ")), None)
        if line:
            res = json.loads(line[len("RLLIB_RESULT ") :])
            m.update(
                run_time_s=res["train_time_s"],
                compile_time_s=None,
                start_time_s=res["build_time_s"],
                sps=res["sps"],
                steady_sps=res["steady_sps"],
                env_steps=res["env_steps"],
                eval_return=res["eval_return"],
                rllib=res,
            )
            self.data["versions_extra"]["rllib_venv"] = res["versions"]
        else:
            m.setdefault("stderr_tail", (r["stdout"] + r["stderr"])[-3000:])
        self.data["measurements"].append(m)
        self.write()

    def run(self) -> None:
        if any(e.startswith("slow") for e in self.args.env) and not self.args.skip_shipping_check:
            print("[shipping] can the Ray workers import slow_envs (py_modules)?", file=sys.stderr, flush=True)
            self.data["env_shipping"] = check_shipping()
            print(f"    -> {self.data['env_shipping']}", file=sys.stderr, flush=True)
            self.write()
        configs = self.args.only or [c for c in CONFIGS if CONFIGS[c]["kind"] == "ours" or self.args.rllib]
        if any(CONFIGS[c]["kind"] == "rllib" for c in configs):
            self.data["rllib_venv"] = ensure_rllib_venv(Path(self.args.rllib_venv), self.args.rllib_torch)
            self.write()
        t0 = time.perf_counter()
        for env_name in self.args.env:
            for config in configs:
                (self.run_rllib if CONFIGS[config]["kind"] == "rllib" else self.run_ours)(env_name, config)
        self.data["benchmark_seconds"] = round(time.perf_counter() - t0, 1)
        self.write()
        shutil.rmtree(self.tmp, ignore_errors=True)


# ---------------------------------------------------------------- tables


def _f(v, fmt="{:.1f}") -> str:
    return "–" if v is None or (isinstance(v, float) and not math.isfinite(v)) else fmt.format(v)


def ratios(data: dict) -> dict:
    """``(env, config) -> (sps / baseline sps, steady sps / baseline steady sps)``."""
    by = {(m["env"], m["config"]): m for m in data["measurements"] if m.get("sps")}
    out = {}
    for (env, config), m in by.items():
        base = by.get((env, CONFIGS[config]["base"])) if CONFIGS[config]["base"] else None
        if base:
            r1 = m["sps"] / base["sps"]
            r2 = m["steady_sps"] / base["steady_sps"] if m.get("steady_sps") and base.get("steady_sps") else None
            out[(env, config)] = (r1, r2)
    return out


ENV_TITLES = {
    "cartpole": "CartPole-v1 (Gymnasium)",
    "slow-spin": "SlowCartPole, {d} ms busy CPU work per step",
    "slow-sleep": "SlowCartPole, {d} ms of time.sleep per step",
}


def tables(data: dict) -> str:
    rs = ratios(data)
    lines = []
    for env in ENVS:
        ms = [m for m in data["measurements"] if m["env"] == env]
        if not ms:
            continue
        lines += [
            f"### {ENV_TITLES[env].format(d=data['delay_ms'])}",
            "",
            "| configuration | workers | job (envs × steps) | training s | compile s | SPS | steady SPS | "
            "× A2C | × A2C (steady) | learner idle | actor SPS | final return | load before |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for m in ms:
            r = rs.get((env, m["config"]), (None, None))
            label = LABELS[m["config"]] + ("" if m["returncode"] == 0 else f" (**failed**, rc {m['returncode']})")
            idle = m.get("pool/learner_idle_fraction")
            cells = [
                label,
                str(m["workers"] or "–"),
                f"{m['n_envs']} × {m['n_steps']}",
                _f(m.get("run_time_s")),
                _f(m.get("compile_time_s")),
                _f(m.get("sps"), "{:,.0f}"),
                _f(m.get("steady_sps"), "{:,.0f}"),
                _f(r[0], "{:.2f}"),
                _f(r[1], "{:.2f}"),
                _f(idle, "{:.2f}"),
                _f(m.get("pool/actor_sps"), "{:,.0f}"),
                _f(m.get("eval_return")),
                f"{m['loadavg_before'][0]:.2f}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def verdicts(data: dict) -> list[str]:
    rs = ratios(data)
    out = []
    for env in ("slow-spin", "slow-sleep"):
        for config in ("a3c-w2", "a3c-w2-q2", "impala-w2"):
            if (env, config) not in rs:
                continue
            r1, r2 = rs[(env, config)]
            ok = r1 >= TARGET
            out.append(
                f"- {ENV_TITLES[env].format(d=data['delay_ms'])}, {LABELS[config]} vs "
                f"{LABELS[CONFIGS[config]['base']]}: {r1:.2f}× ({'**met**' if ok else '**missed**'}; "
                f"steady state {_f(r2, '{:.2f}')}×)"
            )
    return out


def markdown(data: dict) -> str:
    mach, v = data["machine"], data["machine"]["versions"]
    ms = data["measurements"]
    loads = [m["loadavg_before"][0] for m in ms]
    rl = data.get("versions_extra", {}).get("rllib_venv")
    git = mach.get("git", {})
    rev = (git.get("commit") or "?")[:7] + (" (with uncommitted changes)" if git.get("dirty_tracked_files") else "")
    shipping = data.get("env_shipping")
    head = [
        SECTION,
        "",
        f"`python benchmarks/{data['command']}` ({data['env_steps_per_run']:,} env steps a run, one seed, "
        f"`--backend gymnasium`, Ray pool; {data['eval_episodes']} deterministic evaluation episodes for the final "
        "return). Raw data: `results/" + data.get("_file", "pool-throughput-DATE.json") + "`.",
        "",
        f"- **Date**: {mach['date']}"
        + (
            f"; the whole benchmark took {data['benchmark_seconds'] / 60:.0f} min"
            if data.get("benchmark_seconds")
            else ""
        )
        + ".",
        f"- **Machine**: `{mach['cpu_model']}`, {mach['nproc']} cores ({mach['sched_affinity']} usable), "
        f"{mach['mem_total_gib']} GiB, {mach['platform']}. 1-minute load average before the runs: "
        + (f"{min(loads):.2f}–{max(loads):.2f}" if loads else "–")
        + ".",
        f"- **Versions**: Python {mach['python']}, jax {v.get('jax')}, ray {data['versions_extra'].get('ray')}, "
        f"gymnasium {v.get('gymnasium')}, numpy {v.get('numpy')}, advantage {v.get('advantage')} at `{rev}`"
        + (f"; RLlib venv: ray[rllib] {rl['ray']}, torch {rl['torch']}, gymnasium {rl['gymnasium']}" if rl else "")
        + ".",
    ]
    if data["quick"]:
        head.append("- **`--quick`**: tiny budgets that only check the script; these numbers measure start-up.")
    if shipping:
        ok = "yes" if shipping.get("ok") else "**no**"
        head.append(
            f"- **Env module on the workers**: a Ray task imported `slow_envs` shipped by the library "
            f"(py_modules) from a folder only the driver had on its path: {ok}"
            + (f" (`{shipping.get('worker_file')}`)" if shipping.get("worker_file") else "")
            + "."
        )
    notes = textwrap.dedent(f"""\
        How to read it: *training s* is `run_time_s` of `summary.json` (training, JIT compilation left out; for the
        worker runs it includes starting Ray and the workers, and the workers' own first compilation); *SPS* is env
        steps over it (`sps`); *steady SPS* leaves out the advances (chunks) that began before 10% of the budget,
        i.e. the start-up; *× A2C* divides by the single-process A2C run with the same batch (one A3C job: 4 × 5;
        one IMPALA job: 8 × 8); *learner idle* is the mean of `pool/learner_idle_fraction` (the learner's time
        waiting for a worker's result); *actor SPS* the mean of `pool/actor_sps` (one worker's env steps/s while it
        works). RLlib rows: *training s* is the sum of `algo.train()` calls (RLlib's start, `build_algo`, is left out
        like our compile time), steady SPS the same 10% rule on its iterations. Target of the issue: on the slow
        env, 2 workers ≥ {TARGET}× the env steps/s of single-process A2C.
        """)
    target = f"Target (2 workers ≥ {TARGET}× A2C on the slow env), judged on SPS, with the steady state beside it:"
    body = [*head, "", tables(data), target, "", *(verdicts(data) or ["- no slow-env pair measured"]), "", notes]
    return "\n".join(body)


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--steps",
        type=int,
        default=96_000,
        help=f"env steps of every run (rounded down to a multiple of {STEP_UNIT}; default 96000)",
    )
    p.add_argument("--quick", action="store_true", help=f"{2 * STEP_UNIT} env steps a run and 2 evaluation episodes")
    p.add_argument("--env", action="append", choices=ENVS, help="default: all three")
    p.add_argument("--only", action="append", choices=list(CONFIGS), help="configurations (default: all of ours)")
    p.add_argument("--rllib", action="store_true", help="also RLlib's IMPALA (1 and 2 env runners), in its own venv")
    p.add_argument("--rllib-venv", default=str(Path.home() / ".cache" / "advantage-bench" / "rllib-venv"))
    p.add_argument(
        "--rllib-torch",
        default=None,
        help="pip requirement for torch in the RLlib venv (default: a CPU-only wheel from pip's find-links)",
    )
    p.add_argument("--delay-ms", type=float, default=1.0, help="simulated work per step of the slow env")
    p.add_argument("--eval-episodes", type=int, default=None, help="default 20 (--quick: 2)")
    p.add_argument("--load-threshold", type=float, default=1.5, help="wait for the 1-min load average to drop below")
    p.add_argument("--max-wait", type=float, default=180.0, help="...but at most this many seconds")
    p.add_argument("--timeout", type=float, default=1800.0, help="per run")
    p.add_argument("--out", default=None, help="results JSON (default: results/pool-throughput-DATE.json)")
    p.add_argument(
        "--results-md",
        default=None,
        help="where to write the Markdown section (default: "
        "benchmarks/RESULTS.md; with --quick: nowhere); 'none' writes nothing",
    )
    p.add_argument("--from-json", default=None, help="only print (and write, per --results-md) a results file")
    p.add_argument("--check-shipping", action="store_true", help="only check that Ray workers import slow_envs")
    p.add_argument("--skip-shipping-check", action="store_true")
    args = p.parse_args()
    if args.check_shipping:
        res = check_shipping()
        print(json.dumps(res, indent=1))
        return 0 if res.get("ok") else 1
    md_path = args.results_md or ("none" if args.quick else str(HERE / "RESULTS.md"))
    if args.from_json:
        data = json.loads(Path(args.from_json).read_text())
        data["_file"] = Path(args.from_json).name
        section = markdown(data)
    else:
        if args.quick:
            args.steps = 2 * STEP_UNIT
        args.steps = max(STEP_UNIT, args.steps - args.steps % STEP_UNIT)
        args.eval_episodes = args.eval_episodes if args.eval_episodes is not None else (2 if args.quick else 20)
        args.env = args.env or list(ENVS)
        bench = Bench(args)
        bench.run()
        bench.data["_file"] = bench.out.name
        section = markdown(bench.data)
        print(f"results: {bench.out}", file=sys.stderr)
    print(section)
    if md_path != "none":
        common.write_section(Path(md_path), SECTION, section)
        print(f"section written to {md_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
