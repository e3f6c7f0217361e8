"""PPO on CartPole-v1: ``advantage`` against Stable-Baselines3, same machine, same hyperparameters.

An on-demand benchmark, never part of the test suite. Every measurement is a fresh
Python process, timed from launch to exit (imports, JIT compilation, training and,
where asked, evaluation), plus the training time and SPS that each library reports:

    sb3      SB3 PPO, 1 seed, torch's default thread count, DummyVecEnv (as the RL Zoo)
    sb3t1    the same with torch.set_num_threads(1) (extra: see RESULTS.md for why)
    jax1     advantage, JAX-native env, --seeds 0
    jax8     advantage, JAX-native env, --seeds 0 1 2 3 4 5 6 7 (vmapped in one process)
    gym      advantage, Gymnasium env (--backend gymnasium), --seeds 0

Ours is run three times per repeat: ``cold`` (a fresh empty ADVANTAGE_JAX_CACHE),
``warm`` (the same cache again), both with --eval-episodes 0 so that they do what
the SB3 process does, and ``eval`` (warm, the default 200-episode deterministic
evaluation, which is where our final return comes from). SB3's final return comes
from ``evaluate_policy`` (200 deterministic episodes) on the saved model, in a
separate process that is not timed.

    pip install -e .[bench]
    python benchmarks/ppo_cartpole.py               # the real thing (3 repeats)
    python benchmarks/ppo_cartpole.py --quick       # a tiny budget: check the script works
    python benchmarks/ppo_cartpole.py --only jax1 --repeats 1

Writes ``benchmarks/results/ppo_cartpole.json`` (after every measurement, so a
stopped run keeps what it measured) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SB3_SCRIPT = HERE / "sb3_ppo_cartpole.py"
DEFAULT_OUT = HERE / "results" / "ppo_cartpole.json"

CONFIGS = ("sb3", "sb3t1", "jax1", "jax8", "gym")
OURS_ARGS = {
    "jax1": ["--seeds", "0"],
    "jax8": ["--seeds", "0", "1", "2", "3", "4", "5", "6", "7"],
    "gym": ["--backend", "gymnasium", "--seeds", "0"],
}
LABELS = {
    "sb3": "SB3 PPO, 1 seed (torch default threads)",
    "sb3t1": "SB3 PPO, 1 seed (torch 1 thread)",
    "jax1": "ours, JAX-native, 1 seed",
    "jax8": "ours, JAX-native, 8 seeds",
    "gym": "ours, Gymnasium back end, 1 seed",
}

# ---------------------------------------------------------------- machine and versions


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def version(dist: str):
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def git_info() -> dict:
    def git(*a):
        try:
            return subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "HEAD"), "dirty_tracked_files": status.splitlines() if status else []}


def machine_info() -> dict:
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "nproc": os.cpu_count(),
        "sched_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "mem_total_gib": mem,
        "python": platform.python_version(),
        "versions": {
            d: version(d)
            for d in ("advantage", "jax", "jaxlib", "flax", "optax", "torch", "stable_baselines3", "gymnasium", "numpy")
        },
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "git": git_info(),
    }


# ---------------------------------------------------------------- hyperparameters


def child_env(extra: dict | None = None) -> dict:
    """The environment of every child process: with --snapshot, the extracted revision comes first on the path."""
    env = dict(os.environ)
    if SNAPSHOT_DIR is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SNAPSHOT_DIR), env.get("PYTHONPATH")) if p)
    env.update(extra or {})
    return env


def extract_snapshot(rev: str, dest: Path) -> dict:
    """``git archive REV`` into ``dest`` (the repository itself is not touched): a fixed version of the code."""
    dest.mkdir(parents=True)
    commit = subprocess.run(
        ["git", "rev-parse", rev], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    archive = subprocess.run(["git", "archive", commit, "advantage"], cwd=REPO, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    check = subprocess.run(
        [sys.executable, "-c", "import advantage; print(advantage.__file__)"],
        env=child_env(),
        capture_output=True,
        text=True,
        cwd=dest.parent,
    )
    where = check.stdout.strip()
    if not where.startswith(str(dest)):
        raise SystemExit(f"--snapshot: child processes import advantage from {where!r}, not from {dest}")
    return {"rev": rev, "commit": commit, "path": str(dest), "advantage_imported_from": where}


SNAPSHOT_DIR: Path | None = None
#: Children run outside the repository, so that ``python -c`` (whose sys.path starts with the current
#: folder) imports the installed package or the --snapshot, never ./advantage by accident.
CHILD_CWD: Path = Path(tempfile.gettempdir())


def our_hyperparameters() -> dict:
    """The CartPole-v1 preset, read from the code (not copied), in a short-lived child process."""
    code = (
        "import json, dataclasses\n"
        "from advantage.algos import ppo\n"
        "c = ppo.Config(**ppo.PRESETS['CartPole-v1'])\n"
        "d = {f.name: getattr(c, f.name) for f in dataclasses.fields(c)}\n"
        "d['batch_size'] = c.batch_size\n"
        "d['minibatch_size'] = c.batch_size // c.n_minibatches\n"
        "d['total_steps'] = ppo.DEFAULT_STEPS['CartPole-v1']\n"
        "print(json.dumps(d, default=list))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=CHILD_CWD, timeout=300, env=child_env()
    )
    if out.returncode != 0:
        return {"error": out.stderr[-2000:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def hyperparameter_table(ours: dict, sb3: dict | None, budget: int | None = None) -> list[dict]:
    """Side by side; ``match`` is judged on the effective setting, with a note where they differ."""
    s = sb3 or {}
    o = ours
    minibatch = o.get("minibatch_size")
    total = budget or 100_000  # SB3's (the Zoo's) budget, which ours runs too (our preset's default is larger)
    n_envs, batch = o.get("n_envs") or 8, o.get("batch_size") or 256
    sb3_total = math.ceil(total / batch) * batch
    net_ours = f"pi {list(o.get('hidden_sizes', []))}, vf {list(o.get('hidden_sizes', []))}" + (
        " (shared)" if o.get("shared_network") else " (separate)"
    )
    rows = [
        ("environments", o.get("n_envs"), s.get("n_envs"), None),
        ("n_steps per env", o.get("n_steps"), s.get("n_steps"), None),
        (
            "minibatch size",
            f"{minibatch} (n_minibatches={o.get('n_minibatches')})",
            s.get("batch_size"),
            "ours: n_envs*n_steps/n_minibatches = 256/1",
        ),
        ("epochs", o.get("n_epochs"), s.get("n_epochs"), None),
        ("gamma", o.get("gamma"), s.get("gamma"), None),
        ("GAE lambda", o.get("gae_lambda"), s.get("gae_lambda"), None),
        (
            "learning rate",
            f"{o.get('learning_rate')} linear to 0" if o.get("anneal_lr") else o.get("learning_rate"),
            s.get("learning_rate"),
            "schedule position differs by one update, see notes",
        ),
        (
            "clip range",
            f"{o.get('clip_eps')} linear to 0" if o.get("anneal_clip") else o.get("clip_eps"),
            s.get("clip_range"),
            None,
        ),
        ("value clipping", o.get("clip_value"), s.get("clip_range_vf"), None),
        ("entropy coef", o.get("ent_coef"), s.get("ent_coef"), None),
        (
            "value coef",
            o.get("vf_coef"),
            s.get("vf_coef"),
            "NOT the same weight: ours multiplies 0.5*MSE, SB3 multiplies MSE (see notes)",
        ),
        ("max grad norm", o.get("max_grad_norm"), s.get("max_grad_norm"), None),
        (
            "advantage normalisation",
            o.get("normalize_advantage"),
            s.get("normalize_advantage"),
            "per minibatch; std: ours population (N), SB3 torch unbiased (N-1), eps 1e-8 both",
        ),
        ("observation normalisation", o.get("normalize_obs"), False, "SB3 Zoo: normalize false for CartPole"),
        (
            "network",
            net_ours,
            f"pi {s.get('net_arch', {}).get('pi')}, vf {s.get('net_arch', {}).get('vf')} (separate)" if s else None,
            None,
        ),
        ("activation", o.get("activation"), s.get("activation_fn"), None),
        (
            "init",
            "orthogonal: sqrt(2) hidden, 0.01 policy, 1 value, zero bias",
            "orthogonal: sqrt(2) hidden, 0.01 policy, 1 value, zero bias"
            if s.get("ortho_init")
            else s.get("ortho_init"),
            None,
        ),
        (
            "optimizer",
            f"Adam eps {o.get('adam_eps')}",
            f"{s.get('optimizer')} eps {s.get('adam_eps')}" if s else None,
            None,
        ),
        ("target KL / early stop", "none", s.get("target_kl", "?") or "none", None),
        (
            "env steps per seed",
            f"{total} ({total // batch} full updates"
            + (f" + 1 of {(total % batch) // n_envs} steps x {n_envs} envs)" if total % batch else ")"),
            f"{sb3_total} ({sb3_total // batch} full updates: SB3 stops at the first rollout that reaches {total})",
            f"SB3 does {sb3_total - total} more env steps" if sb3_total != total else None,
        ),
    ]
    return [{"hyperparameter": n, "ours": _fmt(a), "sb3": _fmt(b), "note": note} for n, a, b, note in rows]


def _fmt(v):
    if isinstance(v, float):
        return f"{v:g}"
    return v if v is None or isinstance(v, (str, int, bool)) else str(v)


# ---------------------------------------------------------------- measuring


def wait_for_quiet(threshold: float, max_wait: float, poll: float = 10.0) -> tuple[tuple, float]:
    """Wait (up to ``max_wait`` s) until the 1-minute load average is <= ``threshold``."""
    t0 = time.monotonic()
    load = os.getloadavg()
    while load[0] > threshold and time.monotonic() - t0 < max_wait:
        time.sleep(poll)
        load = os.getloadavg()
    return load, time.monotonic() - t0


def timed(cmd: list[str], env: dict, timeout: float) -> dict:
    """Run ``cmd``; wall time from launch to exit, and the CPU time (user + sys) of it and its children."""
    with tempfile.TemporaryFile("w+") as fout, tempfile.TemporaryFile("w+") as ferr:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=fout, stderr=ferr, text=True, env=env, cwd=CHILD_CWD)
        timer = threading.Timer(timeout, p.kill)
        timer.start()
        _, status, ru = os.wait4(p.pid, 0)
        elapsed = time.perf_counter() - t0
        timer.cancel()
        p.returncode = os.waitstatus_to_exitcode(status)
        fout.seek(0)
        ferr.seek(0)
        out, err = fout.read(), ferr.read()
    rc = p.returncode if elapsed < timeout else "timeout"
    return {
        "process_time_s": elapsed,
        "returncode": rc,
        "stdout": out,
        "stderr": err,
        "cpu_user_s": ru.ru_utime,
        "cpu_sys_s": ru.ru_stime,
        "max_rss_mib": ru.ru_maxrss / 1024,
    }


def parse_sb3(stdout: str) -> dict | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith("SB3_RESULT "):
            return json.loads(line[len("SB3_RESULT ") :])
    return None


def last_train_return(metrics_csv: Path, window: int = 100) -> float | None:
    """Per seed, the mean return of the last ``window`` training episodes (SB3's ep_info_buffer), averaged over seeds.

    Each metrics row is one update with the mean return of the episodes that ended in it
    and how many did; the window is filled from the end, whole updates at a time.
    """
    try:
        rows = list(csv.DictReader(metrics_csv.open()))
    except OSError:
        return None
    per_seed: dict[str, list] = {}
    for r in rows:
        per_seed.setdefault(r["seed"], []).append(r)
    means = []
    for seed_rows in per_seed.values():
        total, count = 0.0, 0.0
        for r in reversed(seed_rows):
            n, ret = float(r.get("train/episodes") or 0), float(r.get("train/episode_return") or "nan")
            if n > 0 and math.isfinite(ret):
                total, count = total + n * ret, count + n
            if count >= window:
                break
        if count:
            means.append(total / count)
    return sum(means) / len(means) if means else None


class Bench:
    def __init__(self, args):
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="advantage-bench-"))
        self.out_path = Path(args.out)
        self.measurements: list[dict] = []
        self.machine = machine_info()
        if args.snapshot:
            global SNAPSHOT_DIR
            SNAPSHOT_DIR = self.tmp / "code"
            self.machine["code_snapshot"] = extract_snapshot(args.snapshot, SNAPSHOT_DIR)
        else:
            self.machine["code_snapshot"] = None
        self.ours_hp = our_hyperparameters()
        self.sb3_hp = None
        self.budget = args.total_steps or (2048 if args.quick else None)
        self.eval_episodes = 5 if args.quick else 200
        self.first_repeat = 0
        self.sessions = [self.session_info()]
        if args.append and self.out_path.exists():
            self.load_previous()

    def session_info(self) -> dict:
        return {
            "started": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "argv": sys.argv[1:],
            "code_snapshot": self.machine.get("code_snapshot"),
            "git": self.machine.get("git"),
        }

    def load_previous(self) -> None:
        """--append: keep the measurements of an earlier invocation (same budget and code) and add repeats."""
        data = json.loads(self.out_path.read_text())
        if data["budget_env_steps_per_seed"] != (self.budget or 100_000) or data["quick"] != self.args.quick:
            raise SystemExit(f"--append: {self.out_path} was measured with another budget; use another --out")
        old = (data["machine"].get("code_snapshot") or {}).get("commit")
        new = (self.machine.get("code_snapshot") or {}).get("commit")
        if old != new:
            raise SystemExit(f"--append: {self.out_path} measured code {old}, this run {new}; give --snapshot {old}")
        self.measurements = data["measurements"]
        self.sb3_hp = data.get("sb3_config")
        self.first_repeat = 1 + max((m["repeat"] for m in self.measurements), default=-1)
        self.sessions = data.get("sessions", []) + self.sessions
        self.machine = data["machine"]

    @classmethod
    def from_json(cls, path: str, args) -> Bench:
        """Rebuild the tables from a results file (e.g. of a run that was stopped part-way)."""
        data = json.loads(Path(path).read_text())
        self = cls.__new__(cls)
        self.args = argparse.Namespace(
            **{
                **vars(args),
                "quick": data["quick"],
                "repeats": data["repeats_requested"],
                "load_threshold": data["load_threshold"],
                "max_wait": data["max_load_wait_s"],
            }
        )
        self.out_path = Path(path)
        self.measurements, self.machine = data["measurements"], data["machine"]
        if getattr(args, "max_load_before", None) is not None:
            self.measurements = [m for m in self.measurements if m["loadavg_before"][0] <= args.max_load_before]
        self.ours_hp, self.sb3_hp = data["ours_config"], data["sb3_config"]
        self.budget = None if data["budget_env_steps_per_seed"] == 100_000 else data["budget_env_steps_per_seed"]
        return self

    # -- one measurement -------------------------------------------------------------

    def measure(
        self, config: str, variant: str, repeat: int, cmd: list[str], env_extra: dict | None = None
    ) -> tuple[dict, dict]:
        load, waited = wait_for_quiet(self.args.load_threshold, self.args.max_wait)
        env = child_env(env_extra)
        print(
            f"[{time.strftime('%H:%M:%S')}] {config:5s} {variant:5s} repeat {repeat}: load "
            f"{load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}" + (f" (waited {waited:.0f} s)" if waited >= 1 else ""),
            file=sys.stderr,
            flush=True,
        )
        r = timed(cmd, env, self.args.timeout)
        m = {
            "config": config,
            "variant": variant,
            "repeat": repeat,
            "cmd": cmd,
            "env": env_extra or {},
            "loadavg_before": list(load),
            "load_wait_s": waited,
            "loadavg_after": list(os.getloadavg()),
            "process_time_s": r["process_time_s"],
            "cpu_time_s": r["cpu_user_s"] + r["cpu_sys_s"],
            "cpu_user_s": r["cpu_user_s"],
            "cpu_sys_s": r["cpu_sys_s"],
            "max_rss_mib": r["max_rss_mib"],
            "returncode": r["returncode"],
        }
        if r["returncode"] != 0:
            m["stderr_tail"] = r["stderr"][-3000:]
            m["stdout_tail"] = r["stdout"][-2000:]
        print(
            f"           -> {r['process_time_s']:.1f} s, CPU {r['cpu_user_s'] + r['cpu_sys_s']:.1f} s "
            f"(rc {r['returncode']})",
            file=sys.stderr,
            flush=True,
        )
        return m, r

    def record(self, m: dict) -> None:
        self.measurements.append(m)
        self.write()

    # -- SB3 -------------------------------------------------------------------------

    def run_sb3(self, config: str, repeat: int) -> None:
        model = self.tmp / f"{config}-r{repeat}.zip"
        cmd = [sys.executable, str(SB3_SCRIPT), "--seed", "0", "--save", str(model)]
        if self.budget:
            cmd += ["--total-steps", str(self.budget)]
        if config == "sb3t1":
            cmd += ["--threads", "1"]
        m, r = self.measure(config, "train", repeat, cmd)
        res = parse_sb3(r["stdout"]) if r["returncode"] == 0 else None
        if res:
            hp = res.pop("hyperparameters")
            hp["env_steps_done"] = res["env_steps"]
            self.sb3_hp = self.sb3_hp or hp
            m.update(
                training_time_s=res["learn_time_s"],
                sps=res["sps"],
                compile_time_s=None,
                import_time_s=res["import_time_s"],
                setup_time_s=res["setup_time_s"],
                env_steps=res["env_steps"],
                train_return_last100=res["train_return_last100"],
                torch_num_threads=res["torch_num_threads"],
                torch_num_interop_threads=res["torch_num_interop_threads"],
            )
            # Final return: evaluate_policy in a separate, untimed process.
            ev = subprocess.run(
                [sys.executable, str(SB3_SCRIPT), "--eval", str(model), "--eval-episodes", str(self.eval_episodes)],
                capture_output=True,
                text=True,
                cwd=CHILD_CWD,
                timeout=self.args.timeout,
                env=child_env(),
            )
            evr = parse_sb3(ev.stdout) if ev.returncode == 0 else None
            if evr:
                m.update(
                    eval_return=evr["eval_return_mean"],
                    eval_return_std=evr["eval_return_std"],
                    eval_episodes=evr["eval_episodes"],
                    eval_time_s_untimed=evr["eval_time_s"],
                )
            else:
                m["eval_error"] = ev.stderr[-2000:]
        self.record(m)

    # -- ours ------------------------------------------------------------------------

    def run_ours(self, config: str, repeat: int) -> None:
        cache = self.tmp / f"jax-cache-{config}-r{repeat}"
        cache.mkdir()
        for variant in ("cold", "warm", "eval"):
            run_dir = self.tmp / f"{config}-r{repeat}-{variant}"
            cmd = [
                str(Path(sys.executable).parent / "advantage"),
                "train",
                "ppo",
                "--env",
                "CartPole-v1",
                *OURS_ARGS[config],
                "--run-dir",
                str(run_dir),
            ]
            if variant != "eval":
                cmd += ["--eval-episodes", "0"]
            elif self.args.quick:
                cmd += ["--eval-episodes", str(self.eval_episodes)]
            # The Zoo's 100k unless told: our preset's default (DEFAULT_STEPS) is larger.
            cmd += ["--total-steps", str(self.budget or 100_000)]
            m, r = self.measure(config, variant, repeat, cmd, {"ADVANTAGE_JAX_CACHE": str(cache)})
            summary_path = run_dir / "summary.json"
            if r["returncode"] == 0 and summary_path.exists():
                s = json.loads(summary_path.read_text())
                m.update(
                    training_time_s=s["run_time_s"],
                    compile_time_s=s["compile_time_s"],
                    sps=s["sps"],
                    reported_wall_time_s=s["wall_time_s"],
                    env_steps=s["env_steps"],
                    total_env_steps=s["total_env_steps"],
                    n_seeds=len(s["seeds"]),
                    device=s.get("device"),
                    backend=s.get("backend"),
                    train_return_last100=last_train_return(run_dir / "metrics.csv"),
                )
                if "eval_return" in s:
                    m.update(
                        eval_return=s["eval_return"]["mean"],
                        eval_return_per_seed=s["eval_return"]["per_seed"],
                        eval_episodes=s["eval_return"]["episodes_per_seed"],
                        eval_time_s=s.get("eval_time_s"),
                    )
            m["cache_files_after"] = sum(1 for _ in cache.rglob("*") if _.is_file())
            self.record(m)
            if not self.args.keep_runs:
                shutil.rmtree(run_dir, ignore_errors=True)
        if not self.args.keep_runs:
            shutil.rmtree(cache, ignore_errors=True)

    # -- all -------------------------------------------------------------------------

    def run(self) -> None:
        configs = self.args.only or list(CONFIGS)
        for repeat in range(self.first_repeat, self.first_repeat + self.args.repeats):
            for config in configs:
                if config.startswith("sb3"):
                    self.run_sb3(config, repeat)
                else:
                    self.run_ours(config, repeat)
        if not self.args.keep_runs:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- results ---------------------------------------------------------------------

    def stats(self) -> dict:
        out = {}
        keys = (
            "process_time_s",
            "cpu_time_s",
            "training_time_s",
            "compile_time_s",
            "non_training_s",
            "sps",
            "eval_return",
            "train_return_last100",
        )
        groups: dict[tuple, list] = {}
        for m in self.measurements:
            if m["returncode"] == 0:
                groups.setdefault((m["config"], m["variant"]), []).append(m)
        for (config, variant), ms in groups.items():
            entry = {"n": len(ms), "load1_before": [m["loadavg_before"][0] for m in ms]}
            for m in ms:
                if m.get("training_time_s") is not None:
                    m.setdefault("non_training_s", m["process_time_s"] - m["training_time_s"])
            for k in keys:
                vals = [m[k] for m in ms if m.get(k) is not None]
                if vals:
                    entry[k] = {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}
            out[f"{config}/{variant}"] = entry
        return out

    def targets(self, stats: dict) -> list[dict]:
        """The targets on the median whole-process wall time (the brief's measure), and, as a check that is
        less sensitive to other work on the machine, on the median CPU time (user + sys) of the process."""

        def med(key, metric):
            e = stats.get(key, {}).get(metric)
            return e["median"] if e else None

        rows = []
        for metric in ("process_time_s", "cpu_time_s"):
            for ref in ("sb3/train", "sb3t1/train"):
                ref_t = med(ref, metric)
                if ref_t is None:
                    continue
                for name, key, factor in (
                    ("JAX path, 1 seed <= 1/3 of SB3", "jax1", 1 / 3),
                    ("JAX path, 8 seeds <= SB3 (1 seed)", "jax8", 1.0),
                    ("Gymnasium path, 1 seed <= 1/2 of SB3", "gym", 1 / 2),
                ):
                    for variant in ("cold", "warm"):
                        t = med(f"{key}/{variant}", metric)
                        if t is None:
                            continue
                        rows.append(
                            {
                                "target": name,
                                "metric": metric,
                                "reference": ref,
                                "ours": f"{key}/{variant}",
                                "ours_median_s": t,
                                "reference_median_s": ref_t,
                                "limit_s": ref_t * factor,
                                "ratio_to_reference": t / ref_t,
                                "result": "PASS" if t <= ref_t * factor else "FAIL",
                            }
                        )
        return rows

    def write(self) -> None:
        stats = self.stats()
        data = {
            "benchmark": "PPO on CartPole-v1: advantage vs Stable-Baselines3",
            "quick": self.args.quick,
            "budget_env_steps_per_seed": self.budget or 100_000,
            "repeats_requested": self.args.repeats,
            "load_threshold": self.args.load_threshold,
            "max_load_wait_s": self.args.max_wait,
            "machine": self.machine,
            "sessions": getattr(self, "sessions", []),
            "hyperparameters": hyperparameter_table(self.ours_hp, self.sb3_hp, self.budget),
            "ours_config": self.ours_hp,
            "sb3_config": self.sb3_hp,
            "stats": stats,
            "targets": self.targets(stats),
            "measurements": self.measurements,
        }
        self.out_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.out_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(self.out_path)

    def markdown(self) -> str:
        stats = self.stats()

        def cell(entry, key, fmt="{:.1f}"):
            e = entry.get(key)
            if not e:
                return "-"
            s = fmt.format(e["median"])
            if e["n"] > 1:
                s += f" ({fmt.format(e['min'])}-{fmt.format(e['max'])})"
            return s

        lines = [
            "| configuration | run | n | process time s | process CPU s | training time s | compile time s | "
            "process - training s | SPS | final return (eval) | train return (last 100 ep.) | load1 before |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        order = [(c, v) for c in CONFIGS for v in (("train",) if c.startswith("sb3") else ("cold", "warm", "eval"))]
        for c, v in order:
            e = stats.get(f"{c}/{v}")
            if not e:
                continue
            variant = {
                "train": "-",
                "cold": "cold cache, no eval",
                "warm": "warm cache, no eval",
                "eval": "warm cache, 200-ep eval",
            }[v]
            load = ", ".join(f"{x:.1f}" for x in e["load1_before"])
            lines.append(
                f"| {LABELS[c]} | {variant} | {e['n']} | {cell(e, 'process_time_s')} | {cell(e, 'cpu_time_s')} | "
                f"{cell(e, 'training_time_s')} | {cell(e, 'compile_time_s')} | {cell(e, 'non_training_s')} | "
                f"{cell(e, 'sps', '{:,.0f}')} | "
                f"{cell(e, 'eval_return')} | {cell(e, 'train_return_last100')} | {load} |"
            )
        lines += [
            "",
            "| target | measure | reference | ours | ours median s | limit s | ratio | result |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for t in self.targets(stats):
            measure = "process wall time" if t["metric"] == "process_time_s" else "process CPU time"
            lines.append(
                f"| {t['target']} | {measure} | {t['reference']} | {t['ours']} | {t['ours_median_s']:.1f} | "
                f"{t['limit_s']:.1f} | {t['ratio_to_reference']:.2f} | **{t['result']}** |"
            )
        lines += ["", "| hyperparameter | ours | SB3 | note |", "|---|---|---|---|"]
        for h in hyperparameter_table(self.ours_hp, self.sb3_hp, self.budget):
            lines.append(f"| {h['hyperparameter']} | {h['ours']} | {h['sb3']} | {h['note'] or ''} |")
        return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description="PPO on CartPole-v1: advantage vs Stable-Baselines3 (on demand).")
    p.add_argument("--repeats", type=int, default=3, help="measurements per configuration (median, min, max)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny budget (2048 env steps, 5 eval episodes), 1 repeat "
        "unless --repeats is given: checks that the script works, measures nothing useful",
    )
    p.add_argument(
        "--only", action="append", choices=CONFIGS, help="run only this configuration (may be given more than once)"
    )
    p.add_argument("--total-steps", type=int, default=None, help="override the budget (env steps per seed)")
    p.add_argument(
        "--out",
        default=None,
        help=f"results file (default {DEFAULT_OUT.relative_to(REPO)}; --quick writes ppo_cartpole_quick.json)",
    )
    p.add_argument(
        "--load-threshold",
        type=float,
        default=1.5,
        help="wait before a measurement while the 1-minute load average is above this",
    )
    p.add_argument("--max-wait", type=float, default=180.0, help="longest wait for the load to drop, s")
    p.add_argument("--timeout", type=float, default=1800.0, help="limit for one process, s")
    p.add_argument(
        "--append",
        action="store_true",
        help="add --repeats more repeats to the measurements already in --out (same budget and code)",
    )
    p.add_argument("--keep-runs", action="store_true", help="keep the run folders and caches (printed temp dir)")
    p.add_argument(
        "--snapshot",
        metavar="REV",
        default=None,
        help="benchmark the package as committed at git revision REV (extracted to a temp dir and put "
        "first on PYTHONPATH) instead of the working tree, e.g. while others are editing it",
    )
    p.add_argument(
        "--from-json",
        metavar="RESULTS_JSON",
        default=None,
        help="measure nothing: print the tables of an existing results file",
    )
    p.add_argument(
        "--max-load-before",
        type=float,
        default=None,
        help="with --from-json: only the measurements that started at a 1-minute load average <= this",
    )
    args = p.parse_args()
    if args.from_json:
        print(Bench.from_json(args.from_json, args).markdown())
        return 0
    if args.quick and "--repeats" not in " ".join(sys.argv):
        args.repeats = 1
    if args.out is None:
        args.out = str(DEFAULT_OUT.with_name("ppo_cartpole_quick.json") if args.quick else DEFAULT_OUT)
    bench = Bench(args)
    print(
        f"machine: {bench.machine['cpu_model']}, {bench.machine['nproc']} CPUs; temp dir {bench.tmp}",
        file=sys.stderr,
        flush=True,
    )
    bench.run()
    bench.write()
    print(bench.markdown())
    print(f"\nraw results: {bench.out_path}", file=sys.stderr)
    return 0 if all(m["returncode"] == 0 for m in bench.measurements) else 1


if __name__ == "__main__":
    sys.exit(main())


def write_section(path: Path, heading: str, section: str) -> None:
    """Replace the section under ``heading`` (up to the next ``## `` heading) in ``path``, or append it."""
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section.rstrip() + "\n\n", text, count=1).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + section.rstrip() + "\n"
    path.write_text(text)
