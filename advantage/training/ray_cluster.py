"""Ray for the library: starting or joining it safely, and a Gymnasium vector env whose sub-envs live in Ray processes.

Imported only by the execution layer when a run has ``--workers`` (``workers.py`` for the worker pools,
``gym_backend.py`` for :class:`RayVecEnv`); nothing else imports Ray.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import numpy as np

from advantage.errors import ConfigError, MissingExtraError, RunError


def import_ray():
    try:
        import ray
    except ImportError:
        raise MissingExtraError(
            'asynchronous workers on Ray need Ray: pip install "advantage[ray]" '
            "(or run the workers in this process, one after another, with --worker-pool local)"
        ) from None
    return ray


def start_ray(address: str | None = None, num_cpus: int | None = None, env_module: str | None = None):
    """Connect to Ray: the cluster at ``address`` (``auto``: the one ``ray start`` runs on this machine;
    ``HOST:PORT``: its head), or else a new local Ray on this machine's cores (or ``num_cpus``), without its
    dashboard and with Ray's token authentication on (Ray's own servers listen on the machine's address, not only
    on the loopback: the token is what keeps others out; docs/scaling-out.md). Reuses a Ray this process already
    started. The workers get this process's ``XLA_FLAGS`` (the same CPU code as here) and, for an env given
    as ``module:Class`` outside the installed packages, that module's source (``env_module``: the env spec, or the
    module's name)."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    if not address and os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
        raise RunError(
            "RAY_AUTH_MODE=disabled: a local Ray without token authentication would accept jobs from anyone who "
            "can reach this machine. Unset RAY_AUTH_MODE, or start Ray yourself (ray start --head) and pass "
            "--ray-address auto."
        )
    env_vars = {"JAX_PLATFORMS": "cpu", "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    if os.environ.get("XLA_FLAGS"):
        env_vars["XLA_FLAGS"] = os.environ["XLA_FLAGS"]
    runtime_env: dict[str, Any] = {"env_vars": env_vars}
    modules = _user_modules(env_module)
    if modules:
        runtime_env["py_modules"] = modules
    if os.environ.get("ADVANTAGE_NATIVE_ISA"):
        env_vars["ADVANTAGE_NATIVE_ISA"] = os.environ["ADVANTAGE_NATIVE_ISA"]
    common = dict(runtime_env=runtime_env, logging_level=logging.WARNING, log_to_driver=True)
    try:
        if address:
            ray.init(address=address, **common)
        else:
            ray.init(num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False, **common)
            if not token_auth_enabled():
                ray.shutdown()
                raise RunError(
                    "the local Ray started without token authentication (Ray < 2.52?): anyone who can reach this "
                    'machine could run code in it. Install a current Ray (pip install -U "advantage[ray]").'
                )
    except ConnectionError as e:
        raise RunError(
            f"cannot reach the Ray cluster at --ray-address {address}: {e}. Start it first (ray start --head on "
            "one machine, ray start --address=HEAD:6379 on the others; docs/scaling-out.md), or leave out "
            "--ray-address to start a local Ray on this machine."
        ) from None
    return ray


def token_auth_enabled() -> bool:
    """Whether this process's Ray uses token authentication (Ray 2.52+: on by default for a local Ray)."""
    try:
        from ray._private.authentication.authentication_utils import is_token_auth_enabled
    except ImportError:
        return False
    return bool(is_token_auth_enabled())


def _user_modules(env: str | None) -> list:
    """The module of a ``module:Class`` env (or a module name), when it is the user's own (not installed): Ray
    ships it to the workers of a cluster. Installed packages (site-packages) are expected on every machine. A package
    without ``__init__.py`` (a namespace package, e.g. ``benchmarks.slow_envs``) is shipped as its folder."""
    top = (env or "").split(":")[0].split(".")[0]
    if not top or top not in sys.modules:
        return []
    module = sys.modules[top]
    path = getattr(module, "__file__", None) or next(iter(getattr(module, "__path__", [])), "")
    if not path or "site-packages" in path or "dist-packages" in path:
        return []
    return [module] if getattr(module, "__file__", None) else [path]


class EnvShard:
    """Sub-environments ``first .. first + n - 1`` of a vector env, in a worker process (see :class:`RayVecEnv`)."""

    def __init__(self, env, n: int, env_kwargs: dict | None):
        from advantage.envs.gymnasium import GymnasiumVecEnv

        self.vec = GymnasiumVecEnv(env, n, env_kwargs=env_kwargs, validate=False)

    def reset(self, seeds):
        return self.vec.reset(seeds)

    def step(self, actions):
        return self.vec.step(actions)

    def close(self) -> None:
        self.vec.close()


class RayVecEnv:
    """A Gymnasium vector env whose sub-envs are split over ``n_shards`` Ray processes, for synchronous algorithms
    (PPO, A2C, ...) on a slow env: every step sends each shard its slice of the actions, steps the shards at once
    and joins their results. The actions are chosen here, and sub-env ``j`` is reset with the same seed as in one
    process, so a run gives the same numbers as with one process. Spaces and the env check come from one local
    instance (``GymnasiumVecEnv`` with one sub-env); it has the interface the Gymnasium back end uses."""

    def __init__(
        self,
        env,
        num_envs: int,
        n_shards: int,
        env_kwargs: dict | None = None,
        validate: bool = True,
        address: str | None = None,
    ):
        from advantage.envs.gymnasium import GymnasiumVecEnv

        if n_shards > num_envs:
            raise ConfigError(
                f"--workers {n_shards}: more workers than environments ({num_envs}); use --workers {num_envs} or "
                "fewer, or more environments per seed"
            )
        local = GymnasiumVecEnv(env, 1, env_kwargs=env_kwargs, validate=validate)
        local.close()
        self.num_envs = num_envs
        for name in (
            "observation_space",
            "action_space",
            "env_observation_space",
            "env_action_space",
            "max_episode_steps",
            "spec",
            "metadata",
            "env_factory",
        ):
            setattr(self, name, getattr(local, name))
        self.ray = ray = start_ray(address, env_module=env if isinstance(env, str) else None)
        cpus = float(ray.cluster_resources().get("CPU", 1.0))
        shard = ray.remote(num_cpus=min(1.0, cpus / n_shards))(EnvShard)
        bounds = np.linspace(0, num_envs, n_shards + 1).round().astype(int)
        self.slices = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
        self.shards = [shard.remote(env, s.stop - s.start, env_kwargs) for s in self.slices]

    def reset(self, seeds) -> np.ndarray:
        seeds = list(seeds)
        return np.concatenate(self.ray.get([sh.reset.remote(seeds[s]) for sh, s in zip(self.shards, self.slices)]))

    def step(self, actions):
        actions = np.asarray(actions)
        parts = self.ray.get([sh.step.remote(actions[s]) for sh, s in zip(self.shards, self.slices)])
        obs, reward, terminated, truncated = (np.concatenate([p[k] for p in parts]) for k in range(4))
        info = {key: np.concatenate([p[4][key] for p in parts]) for key in parts[0][4]}
        return obs, reward, terminated, truncated, info

    def close(self) -> None:
        for sh in self.shards:
            self.ray.kill(sh)
        self.shards = []
