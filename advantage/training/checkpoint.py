"""Complete, atomic checkpoints: one msgpack file holding the whole run state
(parameters, optimiser state, normalisation statistics, RNG keys, counters and
schedule position, for every seed) and its metadata (configs, progress, versions).
No pickled code: restoring needs a template of the same structure, which the
driver rebuilds from the saved configuration."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jax
import numpy as np
from flax import serialization

from advantage.errors import CheckpointError  # defined there; importable from here as before

CHECKPOINT_NAME = "checkpoint.msgpack"


def versions() -> dict:
    import flax
    import gymnasium
    import optax

    import advantage

    return {
        "advantage": advantage.__version__,
        "jax": jax.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "gymnasium": gymnasium.__version__,
        "numpy": np.__version__,
    }


def _is_buffer(x) -> bool:
    from advantage.buffers.replay import ReplayBuffer

    return isinstance(x, ReplayBuffer)


def replay_buffers(state) -> list:
    """The replay buffers inside ``state`` (an off-policy agent's; none for the others)."""
    return [x for x in jax.tree.leaves(state, is_leaf=_is_buffer) if _is_buffer(x)]


def without_buffers(state):
    """``state`` with every replay buffer's storage replaced by empty arrays (counters kept)."""

    def empty(b):
        return b.replace(
            **{
                f: np.zeros((0,), getattr(b, f).dtype)
                for f in ("obs", "action", "reward", "terminated", "truncated", "next_obs")
            }
        )

    return jax.tree.map(lambda x: empty(x) if _is_buffer(x) else x, state, is_leaf=_is_buffer)


def save(directory: Path, state, meta: dict, *, keep_buffers: bool = True) -> Path:
    """Write ``state`` (a pytree) and ``meta`` (JSON-able) atomically to ``directory/checkpoint.msgpack``.

    ``keep_buffers=False`` leaves the replay buffers' contents out (``meta["replay_buffer_saved"]``
    says which): such a checkpoint can be evaluated and loaded, but not resumed."""
    directory = Path(directory)
    if replay_buffers(state):
        meta = dict(meta, replay_buffer_saved=keep_buffers)
        if not keep_buffers:
            state = without_buffers(state)
    directory.mkdir(parents=True, exist_ok=True)
    payload = {
        "meta": json.dumps(dict(meta, versions=versions())),
        "state": serialization.to_state_dict(jax.device_get(state)),
    }
    data = serialization.msgpack_serialize(payload)
    path = directory / CHECKPOINT_NAME
    tmp = directory / (CHECKPOINT_NAME + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)  # atomic: a crash leaves the old or the new checkpoint, never half of one
    return path


def load_meta(directory: Path) -> tuple[dict, dict]:
    """``(meta, raw_state_dict)`` of the checkpoint in ``directory``."""
    path = Path(directory) / CHECKPOINT_NAME
    if not path.exists():
        raise CheckpointError(
            f"no checkpoint in {directory} (expected {path}): the run stopped before its first "
            "checkpoint; start it again with advantage train"
        )
    try:
        payload = serialization.msgpack_restore(path.read_bytes())
        meta = json.loads(payload["meta"])
        return meta, payload["state"]
    except Exception as e:  # noqa: BLE001 - any decoding failure means the file is damaged
        raise CheckpointError(
            f"the checkpoint {path} is damaged and cannot be read ({type(e).__name__}: {e}); "
            "restore it from a copy, or start the run again"
        ) from e


def restore(template, raw_state: dict, path: str = "checkpoint", *, buffers_saved: bool = True):
    """Fill ``template`` (same structure) with the saved arrays. ``buffers_saved=False``: the
    checkpoint holds no replay-buffer contents, and the template's (empty) buffers are kept."""
    if not buffers_saved:
        restored = restore(without_buffers(template), raw_state, path)
        return jax.tree.map(lambda r, t: t if _is_buffer(t) else r, restored, template, is_leaf=_is_buffer)
    try:
        restored = serialization.from_state_dict(template, raw_state)
    except Exception as e:  # noqa: BLE001
        raise CheckpointError(
            f"{path} does not match this run's structure ({e}); keep config.json and checkpoints/ "
            "of one run together, or start the run again"
        ) from e
    t_leaves, r_leaves = jax.tree.leaves(template), jax.tree.leaves(restored)
    for a, b in zip(t_leaves, r_leaves):
        if np.shape(a) != np.shape(b):
            raise CheckpointError(
                f"{path} holds arrays of other shapes than this run's ({np.shape(b)} vs "
                f"{np.shape(a)}); keep config.json and checkpoints/ of one run together, "
                "or start the run again"
            )
    return jax.tree.map(lambda t, r: np.asarray(r, dtype=np.asarray(t).dtype), template, restored)
