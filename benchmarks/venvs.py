"""The reference libraries' own virtual environments, created on first use and reused afterwards.

The benchmarks run each reference implementation with its own interpreter, so that its
dependencies (torch, an older or newer jax, ...) never meet ``advantage``'s. A venv is
built once with ``python -m venv`` + ``pip install`` (pip's configuration applies, so local
find-links folders and indexes are used) and reused while its probe still imports and every
pinned requirement (``name==version``) is still the installed version.

    from venvs import ensure_reference_venv
    info = ensure_reference_venv("sb3")          # ~/.cache/advantage-bench/sb3-venv

``info["versions"]`` holds the installed version of every distribution the venv is for;
``info["python"]`` the interpreter to run the reference scripts with.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

DEFAULT_ROOT = Path.home() / ".cache" / "advantage-bench"


def torch_cpu_requirement(explicit: str | None, option: str = "--torch") -> str:
    """What pip installs for torch: ``explicit``, or else a CPU-only wheel found in pip's find-links folders
    (``PIP_FIND_LINKS`` and ``pip config``); PyPI's Linux torch is the CUDA build, several GB with its nvidia-*
    packages, and PyTorch's own CPU index is not always reachable."""
    if explicit:
        return explicit
    dirs = os.environ.get("PIP_FIND_LINKS", "").split()
    try:
        conf = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
        for line in conf.splitlines():
            if "find-links" in line:
                dirs += [w.strip("'") for w in line.split("=", 1)[1].split()]
    except OSError:
        pass
    wheels: list[Path] = []
    for d in dirs:
        d = d.removeprefix("file://")
        if os.path.isdir(d):
            wheels += sorted(Path(d).glob(f"torch-*+cpu-cp{sys.version_info[0]}{sys.version_info[1]}-*.whl"))
    if wheels:
        return f"torch=={wheels[-1].name.split('-')[1]}"
    raise SystemExit(
        "no CPU-only torch wheel found in pip's find-links folders. PyPI's torch for Linux is the CUDA "
        f"build (a ~550 MB wheel plus ~3 GB of nvidia-* packages). Give one with {option}: a path to a "
        "torch-*+cpu wheel, 'torch==X.Y.Z+cpu' where PyTorch's CPU index is configured, or 'torch' to accept the "
        "CUDA build."
    )


_PROBE = """
import importlib, json, platform, sys
from importlib import metadata
for m in sys.argv[2].split(","):
    if m:
        importlib.import_module(m)
if sys.argv[3]:
    exec(sys.argv[3])
v = {}
for d in sys.argv[1].split(","):
    try:
        v[d] = metadata.version(d)
    except metadata.PackageNotFoundError:
        v[d] = None
v["python"] = platform.python_version()
print("VENV_PROBE " + json.dumps(v))
"""


def _probe(py: Path, dists: list[str], imports: list[str], check: str) -> dict | None:
    """The installed versions of ``dists`` if ``imports`` import and ``check`` runs, else None."""
    try:
        r = subprocess.run(
            [str(py), "-c", _PROBE, ",".join(dists), ",".join(imports), check],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=Path(py).parent,  # not the repository: ``import advantage`` must not find ./advantage
        )
    except (OSError, subprocess.SubprocessError):
        return None
    line = next((ln for ln in reversed(r.stdout.splitlines()) if ln.startswith("VENV_PROBE ")), None)
    return json.loads(line[len("VENV_PROBE ") :]) if r.returncode == 0 and line else None


def ensure_venv(
    path: Path,
    requirements: Callable[[], list[str]],
    dists: list[str],
    imports: list[str],
    check: str = "",
    pinned: dict[str, str] | None = None,
    label: str | None = None,
) -> dict:
    """A venv at ``path`` with ``requirements()`` installed (called only when the venv is created); created once,
    reused while ``imports`` import, ``check`` (Python source) runs and every distribution of ``pinned`` is still
    at its version (``dists`` must name it).

    Returns where it is, whether it was created (and how long that took), and the versions of ``dists``.
    """
    label = label or path.name
    py = path / "bin" / "python"
    if py.exists():
        v = _probe(py, dists, imports, check)
        if v is not None and all(v.get(d) == ver for d, ver in (pinned or {}).items()):
            return {"path": str(path), "python": str(py), "created": False, "versions": v}
        print(f"[{label}] {path} is stale or broken: creating it again", file=sys.stderr, flush=True)
        shutil.rmtree(path)
    requirements_ = requirements()
    print(f"[{label}] creating {path}: {' '.join(requirements_)} (once)", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    cmd = [str(py), "-m", "pip", "install", "--quiet", *requirements_]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"[{label}] {' '.join(cmd)} failed:\n{r.stderr[-3000:]}")
    v = _probe(py, dists, imports, check)
    if v is None:
        err = subprocess.run([str(py), "-c", _PROBE, ",".join(dists), ",".join(imports), check], capture_output=True)
        raise SystemExit(f"[{label}] created, but the probe fails:\n{err.stderr.decode()[-3000:]}")
    size = subprocess.run(["du", "-sh", str(path)], capture_output=True, text=True).stdout.split("\t")[0]
    return {
        "path": str(path),
        "python": str(py),
        "created": True,
        "seconds": round(time.perf_counter() - t0, 1),
        "size": size,
        "requirements": requirements_,
        "versions": v,
    }


# ---------------------------------------------------------------- the reference libraries

#: a JAX venv must compute, not only import (a jax/jaxlib mismatch fails at the first computation)
_JAX_CHECK = "import jax.numpy as jnp; assert float(jnp.ones(3).sum()) == 3.0"


def _sb3(torch_req: str | None) -> dict:
    return dict(
        requirements=lambda: ["stable-baselines3", "sb3-contrib", "gymnasium", torch_cpu_requirement(torch_req)],
        dists=["stable_baselines3", "sb3_contrib", "torch", "gymnasium", "numpy"],
        imports=["stable_baselines3", "sb3_contrib", "torch"],
    )


def _sbx(torch_req: str | None) -> dict:
    # sbx is built on SB3, which needs torch even though sbx's networks are JAX.
    return dict(
        requirements=lambda: ["sbx-rl", torch_cpu_requirement(torch_req)],
        dists=["sbx-rl", "stable_baselines3", "jax", "jaxlib", "flax", "optax", "torch", "gymnasium", "numpy"],
        imports=["sbx", "jax"],
        check=_JAX_CHECK,
    )


#: rejax 0.1.3 asks for gymnax>=0.0.9 but unpacks 5 values from ``env.step``: gymnax 1.0 returns 6
#: (terminated and truncated), so gymnax stays at 0.0.9.
REJAX_VERSION, GYMNAX_VERSION = "0.1.3", "0.0.9"


def _rejax(torch_req: str | None) -> dict:
    return dict(
        requirements=lambda: [f"rejax=={REJAX_VERSION}", f"gymnax=={GYMNAX_VERSION}"],
        dists=["rejax", "jax", "jaxlib", "flax", "optax", "gymnax", "distrax", "numpy"],
        imports=["rejax", "jax"],
        check=_JAX_CHECK,
        pinned={"rejax": REJAX_VERSION, "gymnax": GYMNAX_VERSION},
    )


#: name -> (torch requirement or None) -> ensure_venv's keyword arguments
REFERENCE_VENVS: dict[str, Callable[[str | None], dict]] = {"sb3": _sb3, "sbx": _sbx, "rejax": _rejax}


def ensure_reference_venv(name: str, root: Path = DEFAULT_ROOT, torch_req: str | None = None) -> dict:
    """The venv of reference library ``name`` (``sb3``, ``sbx`` or ``rejax``) under ``root``."""
    return ensure_venv(root / f"{name}-venv", label=name, **REFERENCE_VENVS[name](torch_req))
