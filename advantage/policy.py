"""A trained agent as a policy: observations in, the environment's own actions out.

``load_policy(run_dir)`` reads a run folder (the last checkpoint of one training seed) and returns a
:class:`Policy`. ``policy.act(obs)`` takes one observation or a batch, in the env's own observation
space, and returns actions in the env's own action space, exactly as the run's back end would have
passed them to the env:

* the observation normalisation saved in the agent (``RunningMeanStd``, frozen) is applied by the
  algorithm's own ``act``, so nothing is done twice or forgotten;
* a ``Box`` action (the agent's ``[-1, 1]``) is clipped and rescaled to the env's ``[low, high]``:
  on the JAX back end in float32 with ``envs.spaces.scale_action``, on the Gymnasium back end in
  float64 with ``envs.gymnasium.box_to_env`` (then cast to the space's dtype);
* a ``Discrete(n, start=k)`` action is an ``int`` (``k`` added back, as the Gymnasium bridge does);
* a ``Discrete(n)`` observation of a Gymnasium env is one-hot encoded, as in training.

``policy.act_jax(obs, key)`` is the same as a pure JAX function (float32 throughout), for use inside
``jax.jit``. Every algorithm works, the population-search ones (CEM, hill climbing, CMA-ES) included:
the policy is the algorithm's own ``act`` with its deterministic mode (the search mean).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from advantage.envs.spaces import is_discrete, scale_action
from advantage.errors import RunError


@dataclasses.dataclass
class Policy:
    """One training seed's agent of a run, acting in the env's own spaces (made by :func:`load_policy`)."""

    algo: Any
    """The algorithm module (``advantage.algos.get(name)``)."""
    config: Any
    """The algorithm's resolved ``Config`` of the run."""
    agent: Any
    """The agent state of this seed (its last checkpoint)."""
    agent_action_space: Any
    """The action space ``algo.act`` works in (a Box is ``[-1, 1]`` on the Gymnasium back end)."""
    agent_observation_space: Any
    """The observation space ``algo.act`` sees (float32; a Discrete one one-hot encoded on the Gymnasium back end)."""
    observation_space: Any
    """The env's own observation space (Gymnasium's, or the JAX-native env's)."""
    action_space: Any
    """The env's own action space: what :meth:`act` returns actions in."""
    backend: str
    """``"jax"`` or ``"gymnasium"``: the back end the run was trained on (it fixes the action rescaling)."""
    env: str
    """The run's ``--env``."""
    env_kwargs: dict
    """The run's ``--env-kwargs``."""
    seed: int
    """The training seed this agent comes from."""
    run_dir: str
    """The run folder."""

    def __post_init__(self):
        self._key = jax.random.PRNGKey(self.seed)
        self._act = jax.jit(self._agent_act, static_argnames="deterministic")

    # ------------------------------------------------------------------ observations and actions
    @property
    def _onehot_obs(self) -> bool:
        """A Gymnasium ``Discrete`` observation, one-hot encoded for the agent (as the bridge does in training)."""
        return self.backend == "gymnasium" and getattr(self.agent_observation_space, "one_hot", False)

    def _batched(self, obs) -> tuple[Any, bool]:
        """``(obs [B, ...], single)``: one observation gets a batch axis; a wrong shape is a clear error."""
        if self._onehot_obs:
            shape: tuple[int, ...] = ()
        else:
            shape = tuple(self.agent_observation_space.shape)
        ndim = len(np.shape(obs))
        if ndim == len(shape) and tuple(np.shape(obs)) == shape:
            return jnp.asarray(obs)[None], True
        if ndim == len(shape) + 1 and tuple(np.shape(obs)[1:]) == shape:
            return jnp.asarray(obs), False
        raise RunError(
            f"policy of {self.run_dir}: an observation of shape {tuple(np.shape(obs))} was given; give one "
            f"observation of shape {shape} or a batch of shape (B, {', '.join(map(str, shape))}) "
            f"(the env's observation space is {self.observation_space})"
        )

    def _agent_obs(self, obs):
        """A batch of the env's observations as the agent saw them in training (traceable)."""
        if self._onehot_obs:
            start = int(getattr(self.observation_space, "start", 0))
            return jax.nn.one_hot(jnp.asarray(obs).astype(jnp.int32) - start, self.agent_observation_space.shape[0])
        dtype = getattr(self.agent_observation_space, "dtype", np.float32)
        return jnp.asarray(obs).astype(dtype)

    def _agent_act(self, agent, obs, key, deterministic: bool):
        """The agent's actions for a batch of env observations (in the agent's own action units)."""
        return self.algo.act(self.config, self.agent_action_space, agent, self._agent_obs(obs), key, deterministic)[0]

    def _to_env_jax(self, action):
        """Agent actions -> the env's actions, in JAX (float32): the JAX back end's ``_to_env`` exactly."""
        if is_discrete(self.agent_action_space):
            return action.astype(jnp.int32) + int(getattr(self.action_space, "start", 0))
        low, high = np.asarray(self.action_space.low, np.float32), np.asarray(self.action_space.high, np.float32)
        scaled = scale_action(action, jnp.asarray(low), jnp.asarray(high))
        if self.backend == "gymnasium":  # the bridge also clips to the bounds and rounds an integer box
            scaled = jnp.clip(scaled, low, high)
            if np.dtype(self.action_space.dtype).kind in "iu":
                scaled = jnp.rint(scaled)
        dtype = jnp.float32 if np.dtype(self.action_space.dtype).kind == "f" else jnp.int32
        return scaled.reshape(action.shape[:1] + tuple(self.action_space.shape)).astype(dtype)

    def _to_env_numpy(self, action: np.ndarray) -> np.ndarray:
        """Agent actions -> the env's actions exactly as the run's back end passed them to the env."""
        if is_discrete(self.agent_action_space):
            start = int(getattr(self.action_space, "start", 0))
            return (action.astype(np.int64) + start).astype(getattr(self.action_space, "dtype", np.int64))
        if self.backend == "jax":
            low, high = jnp.asarray(self.action_space.low), jnp.asarray(self.action_space.high)
            return np.asarray(jax.jit(scale_action)(action, low, high))
        from advantage.envs.gymnasium import box_to_env

        out = box_to_env(action, self.action_space.low, self.action_space.high, self.action_space.dtype)
        return out.reshape(action.shape[:1] + tuple(self.action_space.shape))

    # ------------------------------------------------------------------ acting
    def act(self, obs, deterministic: bool = True, key=None):
        """Actions for one observation or a batch ``[B, ...]`` of the env's observations.

        Returns the env's actions: an ``int`` (Discrete) or an array of the action space's shape for one
        observation, an array ``[B]`` or ``[B, *shape]`` for a batch. ``deterministic`` takes the policy's
        mode (the evaluation's default); otherwise actions are sampled with ``key`` (a JAX key), or, when
        none is given, with the policy's own key stream (started from the training seed).
        """
        batch, single = self._batched(obs)
        if key is None:
            self._key, key = jax.random.split(self._key)
        action = np.asarray(self._act(self.agent, batch, key, deterministic=deterministic))
        env_action = self._to_env_numpy(action)
        if not single:
            return env_action
        return int(env_action[0]) if is_discrete(self.agent_action_space) else env_action[0]

    def act_jax(self, obs, key=None, deterministic: bool = True):
        """:meth:`act` as a pure JAX function (traceable: call it inside ``jax.jit``, ``vmap`` or ``lax.scan``).

        ``obs``: one observation or a batch; returns a JAX array of the env's actions (``int32`` for Discrete),
        computed in float32 (on the Gymnasium back end :meth:`act` rescales in float64: they agree to
        float32 rounding). ``key`` is needed only when ``deterministic=False``.
        """
        if key is None:
            if not deterministic:
                raise RunError("policy.act_jax(obs, key, deterministic=False) samples: give it a JAX key")
            key = jax.random.PRNGKey(0)  # not used by a deterministic act
        batch, single = self._batched(obs)
        action = self._to_env_jax(self._agent_act(self.agent, batch, key, deterministic))
        return action[0] if single else action

    def __repr__(self) -> str:
        return (
            f"Policy({self.algo.NAME} on {self.env}, seed {self.seed}, {self.backend} back end; "
            f"observations {self.observation_space}, actions {self.action_space}; from {self.run_dir})"
        )


def choose_seed(run_dir, seeds: tuple[int, ...], seed: int | None) -> int:
    """The index in ``seeds`` of ``seed``, or with ``None`` of the seed with the best evaluation return in
    ``summary.json`` (the first of equals; the only seed of a one-seed run)."""
    if seed is not None:
        if seed not in seeds:
            raise RunError(
                f"{run_dir} was trained with seeds {list(seeds)}; seed {seed} is not one of them: give one of "
                "these, or seed=None for the one with the best evaluation"
            )
        return list(seeds).index(seed)
    if len(seeds) == 1:
        return 0
    path = Path(run_dir) / "summary.json"
    try:
        per_seed = json.loads(path.read_text())["eval_return"]["per_seed"]
    except (OSError, ValueError, KeyError, TypeError):
        raise RunError(
            f"{run_dir} has no evaluation in summary.json (an interrupted run, or --eval-episodes 0), so the best "
            f"of its seeds {list(seeds)} is not known: give the training seed to load, e.g. seed={seeds[0]}"
        ) from None
    returns = np.asarray([np.nan if r is None else r for r in per_seed], np.float64)
    if len(returns) != len(seeds) or not np.isfinite(returns).any():
        raise RunError(f"{path}: eval_return.per_seed {per_seed} does not rank the seeds {list(seeds)}; give seed=")
    return int(np.nanargmax(returns))


def load_policy(run_dir, seed: int | None = None) -> Policy:
    """The policy of one training seed of the run in ``run_dir`` (its last checkpoint)::

        policy = advantage.load_policy("runs/ppo-CartPole-v1-...")   # the seed with the best evaluation
        action = policy.act(obs)                                      # the env's own action

    ``seed``: the training seed to load (one of the run's ``--seeds``); ``None`` takes the seed whose final
    evaluation (``summary.json``'s ``eval_return.per_seed``) was best.
    """
    from advantage.training.loading import load_run_config, restore_run

    run_dir = Path(run_dir)
    if not (run_dir / "config.json").exists():
        raise RunError(
            f"{run_dir} is not a run folder (it has no config.json): give the folder that `advantage train` "
            "wrote (its --run-dir, by default runs/ALGO-ENV-DATE)"
        )
    _, _, run = load_run_config(run_dir)
    index = choose_seed(run_dir, tuple(run.seeds), seed)
    algo, algo_cfg, run, _, backend, runners = restore_run(run_dir)
    try:
        if backend.name == "gymnasium":
            obs_space, act_space = backend.vec.env_observation_space, backend.vec.env_action_space
        else:
            obs_space, act_space = backend.obs_space, backend.action_space
        # JAX arrays, not the checkpoint's numpy: act_jax indexes them with traced values (tile-coded weights)
        agent = jax.tree.map(lambda x: jnp.asarray(x[index]), runners.agent)
        return Policy(
            algo=algo,
            config=algo_cfg,
            agent=agent,
            agent_action_space=backend.action_space,
            agent_observation_space=backend.obs_space,
            observation_space=obs_space,
            action_space=act_space,
            backend=backend.name,
            env=run.env,
            env_kwargs=json.loads(run.env_kwargs) if run.env_kwargs else {},
            seed=int(run.seeds[index]),
            run_dir=str(run_dir),
        )
    finally:
        backend.close()
