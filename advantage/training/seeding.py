"""Every seed of a run, derived in one place.

The rule:

* **Training seed** ``s`` (``--seeds``): its whole random stream starts at ``PRNGKey(s)`` and is split
  from there (agent initialisation, env resets, actions, minibatch shuffles) -- :func:`train_key`.
* **Host environments** (Gymnasium) of training seed ``s`` are reset with :func:`env_seed`
  ``(s, index, env_steps)``: a different seed per sub-env, and a new one when a run restarts after
  ``env_steps`` steps (a resumed run does not replay its first episodes).
* **Evaluation episode** ``i`` is the same for every training seed and every back end: it starts from
  ``PRNGKey(EVAL_SEED_OFFSET + i)`` on the JAX path and from Gymnasium's ``reset(seed=EVAL_SEED_OFFSET + i)``
  on the host -- :func:`eval_seeds`, :func:`eval_keys`. Training streams only ever *split* ``PRNGKey(s)``
  for ``s < EVAL_SEED_OFFSET``, so the two never coincide.
* **Parallel workers** (an asynchronous worker pool) of training seed ``s``: worker ``w`` draws from
  :func:`worker_seed` ``(s, w)``, disjoint from the training seeds above and from each other.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

#: Evaluation episode ``i`` starts from ``PRNGKey(EVAL_SEED_OFFSET + i)`` (Gymnasium: ``reset(seed=...)``).
EVAL_SEED_OFFSET = 1_000_000_000

#: Worker seeds live in their own range: ``SeedSequence([WORKER_SPACE, seed, worker])``.
WORKER_SPACE = 0x5EED


def train_key(seed) -> jax.Array:
    """The root key of training seed ``seed`` (works under ``jit``/``vmap`` for an integer array)."""
    return jax.random.PRNGKey(seed)


def env_seed(seed: int, index: int, env_steps: int = 0) -> int:
    """Reset seed of host sub-environment ``index`` of training seed ``seed`` when the run (re)starts after
    ``env_steps`` steps."""
    return int(np.random.SeedSequence([seed, index, env_steps]).generate_state(1)[0])


def eval_seeds(n_episodes: int, start: int = 0) -> list[int]:
    """The env seeds of evaluation episodes ``start .. start + n_episodes - 1``."""
    return list(range(EVAL_SEED_OFFSET + start, EVAL_SEED_OFFSET + start + n_episodes))


def eval_keys(n_episodes: int) -> jax.Array:
    """``[n_episodes, 2]``: the root keys of evaluation episodes ``0 .. n_episodes - 1``."""
    return jax.vmap(jax.random.PRNGKey)(EVAL_SEED_OFFSET + jnp.arange(n_episodes, dtype=jnp.uint32))


def worker_seed(seed: int, worker: int, restarts: int = 0, env_steps: int = 0) -> int:
    """The seed of parallel worker ``worker`` of training seed ``seed`` (distinct for every pair, and from every
    training and evaluation seed's stream); a worker restarted after it died (``restarts``) or in a resumed run
    (started at ``env_steps``) gets a new one, so that it does not replay its first episodes."""
    later = [restarts, env_steps] if restarts or env_steps else []  # a worker's first start: [SPACE, seed, worker]
    return int(np.random.SeedSequence([WORKER_SPACE, seed, worker, *later]).generate_state(1)[0])
