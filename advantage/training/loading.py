"""Loading a run: its saved configuration, its back end rebuilt and filled from the last checkpoint.

The public way into a run folder for everything outside the training loop: ``advantage eval``,
videos (``report/video.py``), labs and user code. It imports nothing of the drivers
(``driver.py``, ``search.py``), so that ``report/`` can load an agent without an import circle.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Literal

import jax

from advantage import algos
from advantage.config import from_dict
from advantage.envs import registry
from advantage.errors import AdvantageError, MissingExtraError, RunError
from advantage.training import checkpoint
from advantage.training.rollout import DEFAULT_EVAL_MAX_STEPS  # noqa: F401 - importable here, as before
from advantage.training.run_config import RunConfig, Schedule
from advantage.training.seeding import EVAL_SEED_OFFSET  # noqa: F401 - for report/video.py


def enable_compilation_cache() -> None:
    """JAX's persistent compilation cache: a second run of the same program skips most compiling."""
    path = os.environ.get("ADVANTAGE_JAX_CACHE", str(Path.home() / ".cache" / "advantage" / "jax"))
    if path and not jax.config.jax_compilation_cache_dir:  # type: ignore[attr-defined]  # options are set at run time
        jax.config.update("jax_compilation_cache_dir", path)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def resolve_seed_batching(run: RunConfig) -> Literal["vmap", "map"]:
    """``run.seed_batching``, with ``"auto"`` resolved: ``lax.map`` over seeds on a CPU, ``vmap`` on an accelerator."""
    if run.seed_batching != "auto":
        return run.seed_batching
    return "map" if jax.default_backend() == "cpu" else "vmap"


def make_backend(algo, algo_cfg, run: RunConfig, backend_name: str, schedule: Schedule):
    """``(backend, chunk_iters)``: the back end ``backend_name`` ("jax" or "gymnasium") of ``run``, not yet
    initialised, and the updates per compiled chunk. An env that cannot be built is a :class:`RunError`."""
    env_kwargs = json.loads(run.env_kwargs) if run.env_kwargs else {}
    chunk_iters = max(1, math.ceil(schedule.full_iters / run.n_chunks))
    seed_batching = resolve_seed_batching(run)
    try:
        if backend_name == "jax":
            from advantage.training.jax_backend import JaxBackend

            try:
                env, env_params = registry.make(run.env, **env_kwargs)
            except ValueError as e:  # the env's constructor rejected a value of --env-kwargs
                if not env_kwargs or isinstance(e, AdvantageError):
                    raise
                raise RunError(
                    f"cannot build {run.env} with --env-kwargs {run.env_kwargs}: {e}; change that value"
                ) from None
            return JaxBackend(algo, algo_cfg, env, env_params, schedule, chunk_iters, seed_batching), chunk_iters
        from advantage.training.gym_backend import GymnasiumBackend

        return GymnasiumBackend(
            algo,
            algo_cfg,
            run.env,
            env_kwargs,
            run.seeds,
            schedule,
            run.async_envs,
            seed_batching,
            validate=run.env_check,
            workers=0 if getattr(algo, "WORKERS", None) else (run.workers or 0),
            ray_address=run.ray_address,
        ), chunk_iters
    except TypeError as e:  # the env's constructor rejected --env-kwargs
        raise RunError(
            f"cannot build {run.env} with --env-kwargs {run.env_kwargs}: {e}; give only keyword arguments "
            "that its constructor accepts"
        ) from None
    except MissingExtraError:  # a JAX library's environment (gymnax:ID, brax:NAME): the message names the extra
        raise
    except Exception as e:
        import gymnasium

        if isinstance(e, (ImportError, gymnasium.error.DependencyNotInstalled)):  # Box2D, MuJoCo, ...
            raise RunError(
                f"{run.env} needs a package that is not installed: {e}; install it as said, or choose another --env"
            ) from None
        raise


def load_run_config(run_dir) -> tuple[str, Any, RunConfig]:
    """``(algo_name, algo_config, run_config)`` saved in ``run_dir/config.json``."""
    run_dir = Path(run_dir)
    path = run_dir / "config.json"
    if not path.exists():
        raise RunError(f"{run_dir} is not a run folder (it has no config.json); give the folder a training run wrote")
    try:
        config = json.loads(path.read_text())
        algo = algos.get(config["algo"])
        algo_cfg = from_dict(algo.Config, config["algo_config"])
        run = from_dict(RunConfig, config["run"])
    except (KeyError, ValueError, TypeError) as e:
        raise RunError(
            f"{path} is damaged or from an incompatible version ({e}); give a folder written by this "
            "version of advantage, or start a new run"
        ) from e
    return config["algo"], algo_cfg, run


def restore_run(run_dir):
    """``(algo, algo_config, run_config, checkpoint_meta, backend, runners)``: the back end of the run in
    ``run_dir`` rebuilt and filled from its last checkpoint (close the backend when done)."""
    run_dir = Path(run_dir)
    algo_name, algo_cfg, run = load_run_config(run_dir)
    meta, raw = checkpoint.load_meta(run_dir / "checkpoints")
    algo = algos.get(algo_name)
    schedule = (
        Schedule(run.total_steps, 1, 1) if algo.SEARCH else Schedule(run.total_steps, algo_cfg.n_envs, algo_cfg.n_steps)
    )
    enable_compilation_cache()
    backend, _ = make_backend(algo, algo_cfg, run, run.backend, schedule)
    runners = checkpoint.restore(
        backend.init(list(run.seeds)),
        raw,
        str(run_dir / "checkpoints"),
        buffers_saved=meta.get("replay_buffer_saved", True),
    )
    return algo, algo_cfg, run, meta, backend, runners


def load_agents(run_dir) -> tuple:
    """``(algo, config, action_space, agents)`` of a finished or checkpointed run; ``agents``
    has a leading seed axis (``jax.tree.map(lambda x: x[i], agents)`` is seed ``i``)::

        algo, cfg, space, agents = load_agents("runs/ppo-CartPole-v1-...")
        action, _, _ = algo.act(cfg, space, jax.tree.map(lambda x: x[0], agents), obs[None], key, True)
    """
    algo, algo_cfg, _, _, backend, runners = restore_run(run_dir)
    backend.close()
    return algo, algo_cfg, backend.action_space, runners.agent
