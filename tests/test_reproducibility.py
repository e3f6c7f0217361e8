"""The same seed gives the same numbers on any x86-64 CPU (docs/reproducibility.md).

``advantage`` caps XLA's CPU code at AVX2 (``advantage/cpu.py``), so a short fixed-seed run
must end with exactly the parameters recorded in ``fixtures/digests.json``, on whatever
x86-64 CPU CI runs. The digests were recorded with the library versions stored beside them;
with other versions of JAX & co. the arithmetic may legitimately change, and the test says
so (skips, naming the versions) instead of failing. Re-record after a deliberate change:

    python tests/test_reproducibility.py
"""

from __future__ import annotations

import json
import platform
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from advantage import cpu
from advantage.algos import a2c, cem, ppo, sac
from advantage.training.driver import train
from advantage.training.run_config import RunConfig

FIXTURE = Path(__file__).parent / "fixtures" / "digests.json"
#: The packages whose versions change the arithmetic (the Gymnasium path also steps Gymnasium's env in NumPy).
PACKAGES = ("jax", "jaxlib", "flax", "optax", "numpy", "gymnasium")

#: PPO's CartPole-v1 preset as the digests were recorded (fixed here, so that tuning the preset does not move them).
PPO_CARTPOLE = dict(n_envs=8, n_steps=32, n_epochs=20, n_minibatches=1, gamma=0.98, gae_lambda=0.8,
                    learning_rate=1e-3, clip_eps=0.2, ent_coef=0.0)
#: A2C's CartPole-v1 preset as recorded.
A2C_CARTPOLE = dict(n_envs=8, n_steps=5, ent_coef=0.0)

#: name -> (algo, config, env, env steps per seed, back end); seeds 0 and 1.
CASES = {
    "ppo-jax": ("ppo", lambda: ppo.Config(**PPO_CARTPOLE), "CartPole-v1", 5120, "jax"),
    "a2c-jax": ("a2c", lambda: a2c.Config(**A2C_CARTPOLE), "CartPole-v1", 5000, "jax"),
    "sac-jax": ("sac", lambda: sac.Config(**{**sac.PRESETS["Pendulum-v1"], "hidden_sizes": (64, 64),
                                               "learning_starts": 200}), "Pendulum-v1", 600, "jax"),
    "cem-jax": ("cem", lambda: cem.Config(**{**cem.PRESETS["CartPole-v1"], "population_size": 20}), "CartPole-v1",
                5000, "jax"),
    "ppo-gymnasium": ("ppo", lambda: ppo.Config(**PPO_CARTPOLE), "CartPole-v1", 2560, "gymnasium"),
}


def run_case(name: str, run_dir: Path) -> str:
    algo, config, env, steps, backend = CASES[name]
    summary = train(algo, config(), RunConfig(env=env, seeds=(0, 1), total_steps=steps, run_dir=str(run_dir),
                                              backend=backend, progress=False, eval_episodes=0, video=False))
    return summary["params_digest"]


def installed_versions() -> dict:
    return {p: version(p) for p in PACKAGES}


@pytest.fixture(scope="module")
def recorded() -> dict:
    return json.loads(FIXTURE.read_text())


@pytest.mark.parametrize("name", list(CASES))
def test_short_run_reproduces_the_recorded_digest(tmp_path, recorded, name):
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip(f"the digests are recorded for x86-64 CPUs; this is {platform.machine()}")
    if cpu.isa() != recorded["isa"]:
        pytest.skip(f"XLA's CPU code is limited to {cpu.isa()} here (XLA_FLAGS={cpu.describe()['xla_flags']!r}); "
                    f"the digests hold for the default pin {recorded['isa']}")
    if installed_versions() != recorded["versions"]:
        pytest.skip(f"the digests were recorded with {recorded['versions']}, this is {installed_versions()}: "
                    "re-record them with `python tests/test_reproducibility.py` if the change is expected")
    digest = run_case(name, tmp_path / "run")
    assert digest == recorded["digests"][name], (
        f"{name}: the same seeds gave other parameters than on the machine that recorded them "
        f"({recorded['machine']}); this one is {cpu.describe()['cpu']}. A change of arithmetic: if it is "
        "deliberate (a changed algorithm or preset), re-record with `python tests/test_reproducibility.py`.")


def test_the_default_pins_avx2_and_respects_the_user(monkeypatch):
    """The pin is appended to the user's XLA_FLAGS, never replaces their own choice, and can be lifted."""
    monkeypatch.setattr(cpu, "_added", None)
    monkeypatch.setattr(cpu, "backend_started", lambda: False)
    monkeypatch.setattr(cpu, "_is_x86_64", lambda: True)
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    cpu.pin_isa(env)
    assert env["XLA_FLAGS"] == ("--xla_force_host_platform_device_count=2 --xla_cpu_max_isa=AVX2 "
                                "--xla_cpu_enable_platform_dependent_math=false")
    cpu.use_native_isa(env)
    assert env["XLA_FLAGS"] == "--xla_force_host_platform_device_count=2" and env[cpu.NATIVE_ENV] == "1"
    monkeypatch.setattr(cpu, "_added", None)
    own = {"XLA_FLAGS": "--xla_cpu_max_isa=SSE4_2"}
    cpu.pin_isa(own)
    assert own["XLA_FLAGS"] == "--xla_cpu_max_isa=SSE4_2 --xla_cpu_enable_platform_dependent_math=false"
    monkeypatch.setattr(cpu, "_added", None)
    both = {"XLA_FLAGS": "--xla_cpu_max_isa=AVX --xla_cpu_enable_platform_dependent_math=true"}
    cpu.pin_isa(both)
    assert both["XLA_FLAGS"] == "--xla_cpu_max_isa=AVX --xla_cpu_enable_platform_dependent_math=true"
    native = {cpu.NATIVE_ENV: "1"}
    cpu.pin_isa(native)
    assert "XLA_FLAGS" not in native
    monkeypatch.setattr(cpu, "_is_x86_64", lambda: False)
    arm = {}
    cpu.pin_isa(arm)
    assert "XLA_FLAGS" not in arm


def test_rsqrt_is_the_same_on_every_vendor():
    """XLA computes rsqrt, and x / sqrt(y) which it rewrites to x * rsqrt(y), from the CPU's approximate
    ``vrsqrtps`` plus Newton steps unless told not to; Intel's and AMD's approximations differ, and so did
    the runs of RMSProp and of observation normalisation. Under the pin rsqrt is an IEEE square root and
    division (exact to the rounding, on any CPU): 29 % of these values differ from that without it."""
    import jax
    import numpy as np

    if platform.machine().lower() not in ("x86_64", "amd64") or "platform_dependent_math=false" not in cpu.describe()[
        "xla_flags"
    ]:
        pytest.skip(f"the pin is not in effect here (XLA_FLAGS={cpu.describe()['xla_flags']!r})")
    x = np.random.default_rng(0).uniform(1e-3, 1e3, 100_000).astype(np.float32)
    ieee = np.float32(1) / np.sqrt(x)
    assert np.array_equal(np.asarray(jax.jit(jax.lax.rsqrt)(x)), ieee)
    assert np.array_equal(np.asarray(jax.jit(lambda a, b: a / jax.numpy.sqrt(b))(np.ones_like(x), x)), ieee)


def test_native_isa_after_jax_started_is_a_clear_error(monkeypatch):
    """Lifting the pin once XLA has read its flags would silently do nothing: it is refused, with the fix."""
    from advantage.errors import RunError

    monkeypatch.setattr(cpu, "_added", "--xla_cpu_max_isa=AVX2")
    monkeypatch.setattr(cpu, "backend_started", lambda: True)
    with pytest.raises(RunError, match="ADVANTAGE_NATIVE_ISA=1"):
        cpu.use_native_isa({"XLA_FLAGS": "--xla_cpu_max_isa=AVX2"})


def test_a_run_records_the_instruction_set(tmp_path):
    summary = train("ppo", ppo.Config(n_envs=2, n_steps=8), RunConfig(
        env="CartPole-v1", seeds=(0,), total_steps=32, run_dir=str(tmp_path / "r"), progress=False,
        eval_episodes=0, video=False))
    assert summary["cpu"]["xla_cpu_isa"] == cpu.isa()
    assert summary["cpu"]["xla_flags"] == cpu.describe()["xla_flags"]


def record() -> None:
    import tempfile

    digests = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in CASES:
            digests[name] = run_case(name, Path(tmp) / name)
            print(name, digests[name], flush=True)
    FIXTURE.parent.mkdir(exist_ok=True)
    FIXTURE.write_text(json.dumps({"isa": cpu.isa(), "versions": installed_versions(), "machine": cpu.describe()["cpu"],
                                   "digests": digests}, indent=1) + "\n")
    print(f"wrote {FIXTURE}")


if __name__ == "__main__":
    sys.exit(record())
