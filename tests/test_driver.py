"""The generic driver: exact budget, determinism, vmapped seeds, kill-and-resume, CLI errors."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import train_run

from advantage.algos import ppo
from advantage.cli import main
from advantage.training import driver

SMALL = dict(n_envs=8, n_steps=32, n_epochs=2, n_minibatches=2)


def _rows(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_budget_is_exact_with_a_short_final_rollout(tmp_path):
    # 1000 = 3 full rollouts of 8x32 = 768, then one of 29 steps x 8 envs = 232
    summary, run_dir = train_run(tmp_path, "ppo", ppo.Config(**SMALL), "CartPole-v1", total_steps=1000)
    assert summary["env_steps"] == 1000
    steps = [int(r["step"]) for r in _rows(run_dir)]
    assert steps == [256, 512, 768, 1000]
    meta = json.loads((run_dir / "config.json").read_text())
    assert meta["run"]["total_steps"] == 1000 and meta["algo_config"]["n_envs"] == 8


def test_log_every_averages_the_updates_in_between(tmp_path):
    # 8 updates of 256 steps in one chunk; --log-every 512 writes the mean of each pair of updates
    cfg = ppo.Config(**SMALL)
    _, every = train_run(tmp_path / "a", "ppo", cfg, "CartPole-v1", total_steps=2048, n_chunks=1)
    _, paired = train_run(tmp_path / "b", "ppo", cfg, "CartPole-v1", total_steps=2048, n_chunks=1, log_every=512)
    rows, pairs = _rows(every), _rows(paired)
    assert [int(r["step"]) for r in rows] == [256 * i for i in range(1, 9)]
    assert [int(r["step"]) for r in pairs] == [512, 1024, 1536, 2048]
    for j, r in enumerate(pairs):
        for key in ("loss/policy", "loss/value", "loss/entropy"):
            expected = (float(rows[2 * j][key]) + float(rows[2 * j + 1][key])) / 2
            assert float(r[key]) == pytest.approx(expected, rel=1e-6), key


def test_same_seed_same_digest_and_different_seed_differs(tmp_path):
    a, _ = train_run(tmp_path / "a", "ppo", ppo.Config(**SMALL), "CartPole-v1", total_steps=2048)
    b, _ = train_run(tmp_path / "b", "ppo", ppo.Config(**SMALL), "CartPole-v1", total_steps=2048)
    c, _ = train_run(tmp_path / "c", "ppo", ppo.Config(**SMALL), "CartPole-v1", seeds=(1,), total_steps=2048)
    assert a["params_digest"] == b["params_digest"]
    assert a["params_digest"] != c["params_digest"]


@pytest.mark.parametrize("backend", ["jax", "gymnasium"])
def test_seed_i_of_a_multi_seed_run_equals_a_single_seed_run(tmp_path, backend):
    """With seed_batching="map" (the CPU default) seeds are bit-identical to single-seed runs."""
    kw = dict(total_steps=2048, backend=backend, seed_batching="map")
    multi, _ = train_run(tmp_path / "m", "ppo", ppo.Config(**SMALL), "CartPole-v1", seeds=(0, 1, 2), **kw)
    single, _ = train_run(tmp_path / "s", "ppo", ppo.Config(**SMALL), "CartPole-v1", seeds=(1,), **kw)
    assert len(set(multi["params_digest_per_seed"])) == 3
    assert multi["params_digest_per_seed"][1] == single["params_digest_per_seed"][0]


def test_vmapped_seeds_run_the_same_computation_up_to_rounding(tmp_path):
    """seed_batching="vmap" batches seeds into one program: XLA's batched kernels may round
    differently (about one ulp), so we check equality to float tolerance after a few updates."""
    import jax
    import numpy as np

    from advantage.training.driver import load_agents

    kw = dict(total_steps=1024, seed_batching="vmap")
    _, run_m = train_run(tmp_path / "m", "ppo", ppo.Config(**SMALL), "CartPole-v1", seeds=(0, 1, 2), **kw)
    _, run_s = train_run(tmp_path / "s", "ppo", ppo.Config(**SMALL), "CartPole-v1", seeds=(1,), **kw)
    multi, single = load_agents(run_m)[3], load_agents(run_s)[3]
    for a, b in zip(jax.tree.leaves(multi.params), jax.tree.leaves(single.params)):
        np.testing.assert_allclose(np.asarray(a)[1], np.asarray(b)[0], atol=1e-5)


def test_killed_run_resumes_to_the_same_result(tmp_path):
    """SIGKILL mid-run, then --resume: same params_digest and evaluation as an uninterrupted run."""
    args = ["--env", "CartPole-v1", "--seeds", "0", "--total-steps", str(256 * 150), "--n-chunks", "75",
            "--checkpoint-every", "512", "--eval-episodes", "20", "--n-epochs", "2", "--no-progress"]
    ref_dir, kill_dir = tmp_path / "ref", tmp_path / "killed"
    assert main(["train", "ppo", *args, "--run-dir", str(ref_dir)]) == 0
    reference = json.loads((ref_dir / "summary.json").read_text())

    proc = subprocess.Popen([sys.executable, "-m", "advantage.cli", "train", "ppo", *args, "--run-dir", str(kill_dir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
    ckpt = kill_dir / "checkpoints" / "checkpoint.msgpack"
    deadline = time.time() + 300
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (kill_dir / "summary.json").exists()

    resumed = driver.resume(kill_dir)
    assert resumed["params_digest"] == reference["params_digest"]
    assert resumed["eval_return"]["per_seed"] == reference["eval_return"]["per_seed"]
    steps = [int(r["step"]) for r in _rows(kill_dir)]
    assert steps == sorted(set(steps)) and steps[-1] == 256 * 150  # no duplicated or missing rows


def test_eval_command_equals_in_process_evaluation(tmp_path, capsys):
    summary, run_dir = train_run(tmp_path, "ppo", ppo.Config(**SMALL), "CartPole-v1", total_steps=2048,
                                 eval_episodes=30)
    assert main(["eval", str(run_dir), "--episodes", "30"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["eval_return"]["per_seed"] == summary["eval_return"]["per_seed"]


@pytest.mark.parametrize("argv, message", [
    (["train", "pop"], "unknown algorithm 'pop'. Did you mean ppo"),
    (["train", "ppo", "--env", "CartPol-v1"], "CartPole-v1"),
    (["train", "ppo", "--backend", "jax", "--env", "Taxi-v3"], "No JAX-native environment named 'Taxi-v3'"),
    (["train", "ppo", "--total-steps", "1001"], "use --total-steps 1000 or 1008"),
    (["train", "ppo", "--total-steps", "-5"], "budget must be a positive"),
    (["train", "ppo", "--n-minibatches", "3"], "cannot be split into n_minibatches=3"),
    (["train", "--resume", "."], "is not a run folder"),
    (["trian"], "did you mean 'train'"),
])
def test_bad_input_exits_2_with_a_message(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        code = main(argv)
    except SystemExit as e:  # errors found while parsing options are reported by tyro, also with code 2
        code = e.code
    assert code == 2
    err = capsys.readouterr().err
    flat = " ".join(err.replace("│", " ").split())
    assert message in flat, err
    assert "Traceback" not in err


def test_damaged_checkpoint_is_reported(tmp_path, capsys):
    _, run_dir = train_run(tmp_path, "ppo", ppo.Config(**SMALL), "CartPole-v1", total_steps=512)
    ckpt = run_dir / "checkpoints" / "checkpoint.msgpack"
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    assert main(["train", "--resume", str(run_dir)]) == 2
    assert "damaged" in capsys.readouterr().err


def test_existing_run_dir_is_not_overwritten(tmp_path, capsys):
    _, run_dir = train_run(tmp_path, "ppo", ppo.Config(**SMALL), "CartPole-v1", total_steps=512)
    assert main(["train", "ppo", "--total-steps", "512", "--run-dir", str(run_dir), "--no-progress"]) == 2
    assert "already holds a run" in capsys.readouterr().err


def test_env_error_mid_run_keeps_a_checkpoint_and_exits_2(tmp_path, capsys):
    """A user env that emits NaN after 400 steps: a short message naming the env and step,
    exit code 2, and the state of the last completed update saved for --resume."""
    from advantage.training.checkpoint import load_meta

    run_dir = tmp_path / "nan"
    code = main(["train", "ppo", "--env", "envs_for_tests:NanAtStepEnv", "--env-kwargs", '{"at": 400}',
                 "--seeds", "0", "--total-steps", str(256 * 50), "--n-epochs", "1", "--eval-episodes", "0",
                 "--run-dir", str(run_dir), "--no-progress"])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2
    assert "non-finite" in err and "sub-env" in err and "400" in err, err
    assert "Traceback" not in err
    meta, _ = load_meta(run_dir / "checkpoints")
    assert meta["env_steps"] == 256 * 12  # step 400 of each env falls in the 13th rollout of 32 steps


def test_two_dimensional_observations_train(tmp_path):
    summary, _ = train_run(tmp_path, "ppo", ppo.Config(**SMALL), "envs_for_tests:MatrixObsEnv", total_steps=2048,
                           eval_episodes=10)
    assert summary["eval_length_mean"] == 5.0


def test_evaluation_cuts_an_env_without_time_limit(tmp_path):
    summary, run_dir = train_run(tmp_path, "ppo", ppo.Config(**SMALL), "envs_for_tests:EndlessEnv",
                                 total_steps=512, eval_episodes=3, eval_max_steps=50)
    assert summary["eval_length_mean"] == 50 and summary["eval_return"]["mean"] == 50.0


def test_users_own_jax_env_by_module_path(tmp_path):
    summary, _ = train_run(tmp_path, "ppo", ppo.Config(**SMALL), "envs_for_tests:UserJaxEnv", total_steps=512,
                           eval_episodes=4)
    assert summary["backend"] == "jax" and summary["eval_return"]["mean"] == 1.0


@pytest.mark.parametrize("argv, message", [
    (["--env-kwargs", "{bad"], "is not valid JSON"),
    (["--env", "CartPole-v1", "--env-kwargs", '{"size": 3}'], "cannot build CartPole-v1 with --env-kwargs"),
    (["--env", "LunarLander-v3"], "needs a package that is not installed"),
])
def test_bad_env_input_exits_2_and_leaves_no_run(tmp_path, capsys, argv, message):
    run_dir = tmp_path / "r"
    try:
        code = main(["train", "ppo", *argv, "--run-dir", str(run_dir), "--no-progress"])
    except SystemExit as e:
        code = e.code
    err = " ".join(capsys.readouterr().err.replace("│", " ").split())
    assert code == 2 and message in err and "Traceback" not in err, err
    assert not (run_dir / "config.json").exists()  # the same --run-dir can be used once the input is fixed


def test_resuming_a_finished_run_says_so(tmp_path, capsys):
    _, run_dir = train_run(tmp_path, "ppo", ppo.Config(**SMALL), "CartPole-v1", total_steps=512)
    assert main(["train", "--resume", str(run_dir)]) == 2
    assert "has finished" in capsys.readouterr().err


def test_programs_needed_later_compile_ahead_to_the_same_program():
    """``CompileCache.prefetch`` compiles from the arguments' shapes in a background thread; ``get`` then returns
    that program, which computes what a program compiled on the spot does."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from advantage.training.jax_backend import CompileCache, shapes_of

    def fn(x, n):
        return jnp.tanh(x @ x.T) * n

    x, n = jnp.arange(12.0).reshape(3, 4) / 10, jnp.int32(3)
    ahead = CompileCache()
    ahead.prefetch("f", fn, shapes_of(x), jax.ShapeDtypeStruct((), jnp.int32))
    assert "f" in ahead.pending and "f" not in ahead.functions
    out = ahead.get("f", fn, x, n)(x, n)
    assert ahead.background_seconds > 0 and not ahead.pending
    on_the_spot = CompileCache()
    np.testing.assert_array_equal(out, on_the_spot.get("f", fn, x, n)(x, n))
    assert on_the_spot.background_seconds == 0
    ahead.prefetch("g", fn, jax.ShapeDtypeStruct((5, 4), jnp.float32), jax.ShapeDtypeStruct((), jnp.int32))
    np.testing.assert_array_equal(ahead.get("g", fn, x, n)(x, n), out)  # prefetched for other shapes: recompiled
    ahead.close()


def test_the_final_rollout_and_evaluation_compile_while_training_runs(tmp_path):
    # 1000 steps = 3 rollouts of 8x32, then a shorter one: its program and the evaluation's are prefetched
    summary, run_dir = train_run(tmp_path, "ppo", ppo.Config(**SMALL), "CartPole-v1", total_steps=1000,
                                 eval_episodes=3)
    ahead = sum(float(r["perf/compile_ahead_s"]) for r in _rows(run_dir) if r["perf/compile_ahead_s"])
    assert ahead > 0, "nothing was compiled in the background"
    assert summary["env_steps"] == 1000 and len(summary["eval_return"]["per_seed"]) == 1
