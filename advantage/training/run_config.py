"""What a run is: environment, seeds, budget, back end, evaluation and output."""

from __future__ import annotations

import dataclasses
import json
from typing import Literal, Optional

from advantage.config import ConfigError

#: Characters W&B does not allow in a project name.
_WANDB_FORBIDDEN = ("/", "\\", "#", "?", "%", ":")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    env: str = "CartPole-v1"
    """Environment: a built-in JAX-native id, any Gymnasium id, or a ``module:Class`` / ``module:function`` path."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Training seeds; each is an independent run (vmapped together on the JAX back end)."""
    total_steps: Optional[int] = None
    """Budget in environment steps per seed, summed over that seed's parallel envs (exact). Default: the algorithm's
    default for the env."""
    run_dir: Optional[str] = None
    """Output folder. Default: runs/ALGO-ENV-TIMESTAMP."""
    backend: Literal["auto", "jax", "gymnasium"] = "auto"
    """auto: the JAX-native env when one exists, else Gymnasium."""
    env_kwargs: str = "{}"
    """JSON dict of keyword arguments for the environment constructor."""
    env_check: bool = True
    """Gymnasium back end: check the env's API, spaces and values before training (one message lists every problem)."""
    async_envs: bool = False
    """Gymnasium back end: step sub-environments in worker processes (AsyncVectorEnv)."""
    eval_episodes: int = 200
    """Episodes of each evaluation, per training seed (0 skips evaluation)."""
    eval_every: Optional[int] = None
    """Also evaluate every this many env steps per seed during training (default: only at the end)."""
    eval_record: int = 10
    """Keep the observations, actions and rewards of this many evaluation episodes per seed (eval/*.npz)."""
    eval_deterministic: bool = True
    """Evaluate the mode of the policy (True) or sample from it (False)."""
    eval_max_steps: Optional[int] = None
    """Cut evaluation episodes after this many steps (default: the env's time limit, or 10000 if it has none)."""
    video: bool = True
    """At the end, render one evaluation episode of the trained agent (seed index 0) to videos/agent.gif."""
    checkpoint_every: Optional[int] = None
    """Write a checkpoint every this many env steps per seed (default: every 10% of the run)."""
    checkpoint_buffer: bool = True
    """Off-policy algorithms: save the replay buffer in every checkpoint, so that --resume continues the same
    run. --no-checkpoint-buffer keeps checkpoints small; such a run can be evaluated but not resumed."""
    seed_batching: Literal["auto", "vmap", "map"] = "auto"
    """Run the seeds' agents as one batched program (vmap: fastest on accelerators) or one after another
    inside it (map: seed i is bit-identical to a run of seed i alone). auto: map on CPU, vmap elsewhere."""
    log_every: Optional[int] = None
    """Write one metrics row per seed every this many env steps per seed, averaging the updates in between
    (NaN-aware). Default: every update, or about 2000 rows per seed when there are more updates than that."""
    jsonl: bool = False
    """Also write every metrics row, evaluation rows included, to metrics.jsonl (a JSON object a line; NaN: null)."""
    wandb_project: Optional[str] = None
    """Also log to Weights & Biases, project NAME (pip install "advantage[wandb]"): one W&B run per seed,
    grouped by the run folder's name. WANDB_MODE=offline logs without a network."""
    wandb_entity: Optional[str] = None
    """The W&B entity (user or team) of --wandb-project (default: your W&B default entity)."""
    workers: Optional[int] = None
    """Asynchronous workers per seed (a3c, impala): each acts on its own n_envs environments, in its own process
    on Ray (--worker-pool ray) or in this process in turn (--worker-pool local). Default: the algorithm's (a3c: 2;
    impala: none, its lag is simulated in one process by --policy-lag)."""
    worker_pool: Literal["ray", "local"] = "ray"
    """Where the workers run: ray (a process each, on this machine or a cluster; pip install "advantage[ray]")
    or local (in this process, one job after another in a fixed round robin: deterministic, for tests and
    debugging)."""
    jobs_per_worker: Optional[int] = None
    """Jobs queued per worker (a3c, impala). Default: the algorithm's (a3c: 1, the paper's pull after every push;
    impala: 2). With 2, an A3C worker starts its next rollout while the server applies its last gradient, with
    parameters one of its own updates older (grad/staleness grows by about 1 per worker): more env steps/s on slow
    environments, more stale gradients (docs/algorithms/a3c.md, "Jobs per worker")."""
    ray_address: Optional[str] = None
    """Join a running Ray cluster (auto: the one `ray start` runs on this machine; HOST:PORT: its head) instead of
    starting a local Ray on this machine's cores. Run a cluster only inside a private network (docs/scaling-out.md)."""
    n_chunks: int = 50
    """Training is compiled in chunks; logging, checkpoints and the progress bar happen between them."""
    progress: bool = True
    """Show a progress bar."""
    native_isa: bool = False
    """Let XLA use every instruction of this CPU (AVX-512, ...) instead of the AVX2 baseline that makes the same
    seed give the same numbers on any x86-64 CPU: maybe faster, not reproducible elsewhere (docs/reproducibility.md).
    The environment variable ADVANTAGE_NATIVE_ISA=1 does the same for the Python API."""

    def __post_init__(self):
        if not self.seeds:
            raise ConfigError("--seeds: give at least one seed, e.g. --seeds 0 1 2")
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"--seeds {' '.join(map(str, self.seeds))}: seeds must be distinct")
        if any(s < 0 for s in self.seeds):
            raise ConfigError("--seeds: seeds must be non-negative integers")
        if self.total_steps is not None and self.total_steps <= 0:
            raise ConfigError(f"--total-steps {self.total_steps}: the budget must be a positive number of env steps")
        if self.eval_episodes < 0:
            raise ConfigError(f"--eval-episodes {self.eval_episodes}: must be >= 0 (0 skips the final evaluation)")
        if self.eval_every is not None and self.eval_every <= 0:
            raise ConfigError(f"--eval-every {self.eval_every}: must be a positive number of env steps")
        if self.eval_record < 0:
            raise ConfigError(f"--eval-record {self.eval_record}: must be >= 0")
        if self.checkpoint_every is not None and self.checkpoint_every <= 0:
            raise ConfigError(f"--checkpoint-every {self.checkpoint_every}: must be a positive number of env steps")
        if self.eval_max_steps is not None and self.eval_max_steps <= 0:
            raise ConfigError(f"--eval-max-steps {self.eval_max_steps}: must be a positive number of steps")
        try:
            kwargs = json.loads(self.env_kwargs or "{}")
        except json.JSONDecodeError as e:
            raise ConfigError(
                f"--env-kwargs {self.env_kwargs!r} is not valid JSON ({e.msg}); "
                """write a JSON object, e.g. --env-kwargs '{"size": 8}'"""
            ) from None
        if not isinstance(kwargs, dict):
            raise ConfigError(f"--env-kwargs {self.env_kwargs!r} must be a JSON object, e.g. '{{\"size\": 8}}'")
        if self.log_every is not None and self.log_every <= 0:
            raise ConfigError(f"--log-every {self.log_every}: must be a positive number of env steps")
        if self.wandb_project is not None and not self.wandb_project.strip():
            raise ConfigError(
                f"--wandb-project {self.wandb_project!r}: the W&B project name is empty; give one, "
                "e.g. --wandb-project cartpole"
            )
        if self.wandb_project is not None and any(c in self.wandb_project for c in _WANDB_FORBIDDEN):
            raise ConfigError(
                f"--wandb-project {self.wandb_project!r}: W&B project names cannot contain "
                f"{' '.join(_WANDB_FORBIDDEN)}; e.g. --wandb-project cartpole"
            )
        if self.wandb_entity is not None and (not self.wandb_project or not self.wandb_entity.strip()):
            raise ConfigError(
                f"--wandb-entity {self.wandb_entity!r}: give a non-empty entity, together with --wandb-project NAME"
            )
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"--workers {self.workers}: give at least one worker (or leave out --workers)")
        if self.jobs_per_worker is not None and self.jobs_per_worker < 1:
            raise ConfigError(f"--jobs-per-worker {self.jobs_per_worker}: queue at least 1 job per worker")
        if self.ray_address is not None and (self.worker_pool != "ray" or self.workers == 0):
            raise ConfigError("--ray-address joins a Ray cluster for the workers: use it with --worker-pool ray")
        if self.n_chunks < 1:
            raise ConfigError(f"--n-chunks {self.n_chunks}: must be >= 1")


@dataclasses.dataclass(frozen=True)
class Schedule:
    """How a budget splits into updates: ``full_iters`` rollouts of ``n_steps`` from every env,
    then (if the budget is not a multiple of the batch) one shorter rollout of ``partial_steps``."""

    total_steps: int
    n_envs: int
    n_steps: int

    def __post_init__(self):
        if self.total_steps % self.n_envs != 0:
            lo = self.total_steps - self.total_steps % self.n_envs
            raise ConfigError(
                f"--total-steps {self.total_steps} is not a multiple of n_envs={self.n_envs}, so the budget "
                f"could not be met exactly; use --total-steps {lo or self.n_envs} or {lo + self.n_envs}."
            )

    @property
    def batch(self) -> int:
        return self.n_envs * self.n_steps

    @property
    def full_iters(self) -> int:
        return self.total_steps // self.batch

    @property
    def partial_steps(self) -> int:
        return (self.total_steps - self.full_iters * self.batch) // self.n_envs

    @property
    def total_updates(self) -> int:
        return self.full_iters + (1 if self.partial_steps else 0)

    def log_group(self, log_every: int | None, max_rows: int = 2000) -> int:
        """Updates averaged into one metrics row: ``log_every`` env steps' worth (at least one update),
        by default as many as keep a run under about ``max_rows`` rows per seed."""
        if log_every is not None:
            return max(1, round(log_every / self.batch))
        return max(1, -(-self.total_updates // max_rows))

    def describe(self) -> str:
        s = (
            f"1 update = {self.n_envs} envs x {self.n_steps} steps = {self.batch} transitions; "
            f"{self.full_iters} updates"
        )
        if self.partial_steps:
            s += f" + 1 final update on {self.partial_steps} steps x {self.n_envs} envs"
        return s + f" = {self.total_steps} env steps per seed"
