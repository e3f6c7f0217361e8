"""Where an off-policy gradient step's time goes: its FLOPs, its time, and this machine's matmul ceiling.

An on-demand benchmark (issue 17, part 3). For the Pendulum-v1 presets of SAC (256-256, minibatch 256) and TD3
(400-300, minibatch 256) it measures, in this process:

    flops        the FLOPs of one ``gradient_step`` as XLA counts them (``cost_analysis`` of the compiled step)
    step_ms      the time of one compiled ``gradient_step`` (a ``lax.fori_loop`` of ``--steps`` of them, so that
                 dispatch is not in it), median of ``--repeats``
    gflops       flops / step_ms: what the step achieves
    ceiling      GFLOP/s of a chain of dense matmuls of the step's own shapes ([256, in] x [in, out] and their
                 transposes, forward and backward), the most the step's matmuls could run at here
    train        one training run of the preset (``advantage train ALGO --env Pendulum-v1``, 20k env steps, JAX
                 path, one seed, no evaluation or video) in a fresh process: its ``run_time_s`` against the
                 gradient steps it took times ``step_ms``: the share of training that is the gradient step

and writes ``benchmarks/results/offpolicy-ceiling.json`` with the machine, versions and ``XLA_FLAGS``. The gap
between the step's rate and the ceiling is what is not matmul: element-wise work, the replay sampling, the
optimiser, the loop; the gap between the run and its gradient steps is acting, the env, the replay insert.

    python benchmarks/offpolicy_ceiling.py [--steps 200] [--repeats 5] [--no-train]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import ppo_cartpole as common  # noqa: E402  (machine_info)
from gym_step import per_step  # noqa: E402


def timed(fn, *args, repeats: int) -> list[float]:
    """Seconds per call of the compiled ``fn``, waiting for its result (one warm-up call first)."""
    import jax

    return [us / 1e6 for us in per_step(lambda: jax.block_until_ready(fn(*args)), 1, repeats)]


def gradient_step_cost(name: str, steps: int, repeats: int) -> dict:
    """FLOPs and time of one ``gradient_step`` of ``name``'s Pendulum-v1 preset, on a full replay buffer."""
    import gymnasium as gym
    import jax
    import jax.numpy as jnp

    from advantage import algos
    from advantage.buffers import replay

    algo = algos.get(name)
    config = algo.Config(**algo.PRESETS["Pendulum-v1"])
    env = gym.make("Pendulum-v1")
    obs_space, space = env.observation_space, env.action_space
    state = algo.init(jax.random.PRNGKey(0), obs_space, space, config, algo.DEFAULT_STEPS["Pendulum-v1"])
    buf = state.buffer
    capacity = replay.capacity(buf)
    noise = lambda x: jax.random.normal(jax.random.PRNGKey(1), x.shape).astype(x.dtype)  # noqa: E731
    full = buf.replace(
        obs=noise(buf.obs), action=jnp.tanh(noise(buf.action)), reward=noise(buf.reward), next_obs=noise(buf.next_obs),
        count=jnp.asarray(capacity, buf.count.dtype),
    )  # fmt: skip
    state = state.replace(buffer=full)

    one = jax.jit(lambda s, k: algo.gradient_step(config, space, s, k)[0])
    flops = one.lower(state, jax.random.PRNGKey(2)).compile().cost_analysis()
    flops = (flops[0] if isinstance(flops, list) else flops)["flops"]

    def loop(s, k):
        body = lambda i, s: algo.gradient_step(config, space, s, jax.random.fold_in(k, i))[0]  # noqa: E731
        return jax.lax.fori_loop(0, steps, body, s)

    loop = jax.jit(loop)
    seconds = timed(loop, state, jax.random.PRNGKey(3), repeats=repeats)
    step_ms = statistics.median(seconds) / steps * 1e3
    layers = [obs_space.shape[0] + space.shape[0], *config.hidden_sizes, 1]
    return {
        "algo": name,
        "hidden_sizes": list(config.hidden_sizes),
        "batch_size": config.batch_size,
        "flops": flops,
        "step_ms": step_ms,
        "step_ms_all": [s / steps * 1e3 for s in seconds],
        "gflops": flops / step_ms / 1e6,
        "critic_layers": layers,
    }


def matmul_ceiling(batch: int, hidden: list[int], steps: int, repeats: int) -> float:
    """GFLOP/s of forward and backward matmuls of an MLP of widths ``hidden`` on ``batch`` rows, chained in a
    loop (each output feeds the next input, so nothing is hoisted)."""
    import jax
    import jax.numpy as jnp

    ws = [jax.random.normal(jax.random.PRNGKey(i), (a, b)) * 0.01 for i, (a, b) in enumerate(zip(hidden, hidden[1:]))]
    x0 = jax.random.normal(jax.random.PRNGKey(9), (batch, hidden[0]))
    per_iter = sum(3 * 2 * batch * a * b for a, b in zip(hidden, hidden[1:]))  # forward, dX and dW

    def body(_, x):
        hs = [x]
        for w in ws:
            hs.append(hs[-1] @ w)
        g = hs[-1]
        for w, h in zip(reversed(ws), reversed(hs[:-1])):
            dw = h.T @ g
            g = g @ w.T + 1e-6 * jnp.sum(dw)
        return g

    loop = jax.jit(lambda x: jax.lax.fori_loop(0, steps, body, x))
    seconds = statistics.median(timed(loop, x0, repeats=repeats))
    return per_iter * steps / seconds / 1e9


def training_run(name: str, gradient_steps: int, step_ms: float) -> dict:
    """One fresh-process training run of the Pendulum-v1 preset: its run time against its gradient steps."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            str(Path(sys.executable).parent / "advantage"),
            "train",
            name,
            "--env",
            "Pendulum-v1",
            "--seeds",
            "0",
            "--backend",
            "jax",
        ]
        cmd += ["--eval-episodes", "0", "--no-video", "--no-progress", "--run-dir", f"{tmp}/run"]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        summary = json.loads(Path(tmp, "run", "summary.json").read_text())
    run_s = summary["run_time_s"]
    return {
        "run_time_s": run_s,
        "compile_time_s": summary["compile_time_s"],
        "gradient_steps": gradient_steps,
        "gradient_steps_s": gradient_steps * step_ms / 1e3,
        "gradient_share": gradient_steps * step_ms / 1e3 / run_s,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=200, help="gradient steps (or matmul chains) per timed call")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--no-train", action="store_true", help="leave out the training runs")
    args = p.parse_args()

    from advantage import algos  # first: its XLA flags (the CPU pin) apply here as in a training run

    rows = []
    for name in ("sac", "td3"):
        row = gradient_step_cost(name, args.steps, args.repeats)
        row["ceiling_gflops"] = matmul_ceiling(row["batch_size"], row["critic_layers"], args.steps, args.repeats)
        row["of_ceiling"] = row["gflops"] / row["ceiling_gflops"]
        if not args.no_train:
            algo = algos.get(name)
            config = algo.Config(**algo.PRESETS["Pendulum-v1"])
            gradient_steps = algo.DEFAULT_STEPS["Pendulum-v1"] - config.learning_starts  # one per env step after
            row["train"] = training_run(name, gradient_steps, row["step_ms"])
        rows.append(row)
    machine = common.machine_info() | {"xla_flags": os.environ.get("XLA_FLAGS", "")}
    data = {"machine": machine, "steps_per_call": args.steps, "rows": rows}
    out = HERE / "results" / "offpolicy-ceiling.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1, default=str))
    print("| algo | networks | MFLOP per step | ms per step | GFLOP/s | matmul ceiling GFLOP/s | of ceiling |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['algo']} | {'-'.join(map(str, r['hidden_sizes']))} | {r['flops'] / 1e6:.0f} | {r['step_ms']:.2f} "
            f"| {r['gflops']:.0f} | {r['ceiling_gflops']:.0f} | {r['of_ceiling']:.2f} |"
        )
    if not args.no_train:
        print("\n| algo | training run s | gradient steps | of which gradient steps s | share |")
        print("|---|---|---|---|---|")
        for r in rows:
            t = r["train"]
            print(
                f"| {r['algo']} | {t['run_time_s']:.1f} | {t['gradient_steps']:,} | {t['gradient_steps_s']:.1f} "
                f"| {t['gradient_share']:.2f} |"
            )
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
