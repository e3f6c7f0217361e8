"""Exporting a trained policy for programs without JAX: ONNX (any algorithm) and npz (MLP and linear policies,
tile coding included).

``advantage export RUN_DIR --format onnx|npz [--out FILE] [--seed N]`` writes one file and checks it first:
the exported model is run on ``N_CHECK`` observations of evaluation episodes (the env played with the
policy's deterministic actions), and the file is written only if its actions equal ``policy.act``'s
(``max |a_export - a_policy| <= ATOL`` for continuous actions, every action the same for discrete ones).

* **ONNX** (``pip install "advantage[export]"``: ``jax2onnx`` and ``onnxruntime``): ``policy.act_jax``'s
  deterministic path, converted by ``jax2onnx``: one input ``obs`` ``[B, *obs_shape]`` (the observation as the
  agent saw it: float32, a ``Discrete`` Gymnasium observation one-hot encoded), one output ``action`` (``int32``
  ``[B]`` for a Discrete space, the rescaled ``[B, *action_shape]`` for a Box). Normalisation and rescaling are
  in the graph. It works for every algorithm whose deterministic ``act`` jax2onnx can convert.
* **npz** (numpy only): the weights as arrays and a JSON description (``description``: layer sizes,
  activations, normalisation statistics, output and action rescaling) in one ``.npz`` file;
  :func:`numpy_forward` (also in ``docs/using-a-trained-agent.md``) runs it. It covers the policies that are
  a chain of dense layers: MLPs (PPO, A2C/A3C, TRPO/NPG, IMPALA, IS-PG, REINFORCE, QAC, CEM/hill climbing/CMA-ES
  networks, TD3/DDPG and SAC actors) and the linear policies over raw, one-hot or random features (the random
  projection is written as a first layer with a ``cos`` activation).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from advantage.envs.spaces import is_discrete
from advantage.errors import MissingExtraError, RunError
from advantage.policy import Policy

#: Observations the exported model is checked on.
N_CHECK = 1000
#: Largest accepted difference of a continuous action between the export and ``policy.act``.
ATOL = 1e-5
INSTALL_HINT = 'ONNX export needs jax2onnx and onnxruntime: pip install "advantage[export]"'
FORMATS = ("onnx", "npz")


# ----------------------------------------------------------------------------- the check
def evaluation_observations(policy: Policy, n: int = N_CHECK, max_episode_steps: int = 1000) -> np.ndarray:
    """``n`` observations ``[n, *obs_shape]`` (as the agent sees them) of evaluation episodes: the run's env played
    with ``policy.act`` (deterministic) from the evaluation seeds, episode after episode (each cut after
    ``max_episode_steps``), until ``n`` are collected."""
    from advantage.training.seeding import EVAL_SEED_OFFSET

    out: list[np.ndarray] = []
    episode = 0
    if policy.backend == "gymnasium":
        from advantage.envs.gymnasium import resolve_env_factory

        env = resolve_env_factory(policy.env, policy.env_kwargs)()
        try:
            while len(out) < n:
                obs, _ = env.reset(seed=EVAL_SEED_OFFSET + episode)
                for _ in range(max_episode_steps):
                    out.append(np.asarray(policy._agent_obs(np.asarray(obs)[None]))[0])
                    obs, _, terminated, truncated, _ = env.step(policy.act(obs))
                    if terminated or truncated or len(out) >= n:
                        break
                episode += 1
        finally:
            env.close()
        return np.stack(out[:n])

    from advantage.envs import registry

    jenv, params = registry.make(policy.env, **policy.env_kwargs)
    reset, step, act = jax.jit(jenv.reset), jax.jit(jenv.step), jax.jit(policy.act_jax)
    while len(out) < n:
        key = jax.random.PRNGKey(EVAL_SEED_OFFSET + episode)
        obs, state = reset(key, params)
        for t in range(max_episode_steps):
            out.append(np.asarray(obs))
            action = act(obs)
            obs, state, _, terminated, truncated, _ = step(jax.random.fold_in(key, t), state, action, params)
            if bool(terminated) or bool(truncated) or len(out) >= n:
                break
        episode += 1
    return np.stack(out[:n])


def parity(policy: Policy, actions: np.ndarray, obs: np.ndarray) -> dict:
    """How far ``actions`` (of an exported model on the agent's observations ``obs``) are from ``policy.act``'s:
    ``{"n", "discrete", "max_abs_diff", "agreement", "ok"}``."""
    key = jax.random.PRNGKey(0)  # unused by a deterministic act
    algo, cfg, space = policy.algo, policy.config, policy.agent_action_space
    agent_act = jax.jit(lambda agent, o: algo.act(cfg, space, agent, o, key, True)[0])
    ref = policy._to_env_numpy(np.asarray(agent_act(policy.agent, jnp.asarray(obs))))
    actions = np.asarray(actions).reshape(ref.shape)
    diff = np.abs(actions.astype(np.float64) - ref.astype(np.float64))
    discrete = is_discrete(policy.agent_action_space)
    agreement = float(np.mean(np.all(diff.reshape(len(obs), -1) == 0, axis=1)))
    max_diff = float(diff.max()) if diff.size else 0.0
    ok = agreement == 1.0 if discrete else bool(np.isfinite(diff).all()) and max_diff <= ATOL
    return {"n": len(obs), "discrete": discrete, "max_abs_diff": max_diff, "agreement": agreement, "ok": ok}


def _require(result: dict, what: str) -> None:
    if result["ok"]:
        return
    detail = (
        f"{result['agreement']:.1%} of the actions agree"
        if result["discrete"]
        else f"max |difference| {result['max_abs_diff']:.3g} > {ATOL:g}"
    )
    raise RunError(
        f"the {what} does not act like the policy on {result['n']} evaluation observations ({detail}); nothing was "
        "written. This is a bug of the export: please report it with the run's config.json"
    )


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- ONNX
def _deterministic_fn(policy: Policy):
    """``obs [B, *obs_shape] (the agent's) -> env actions [B, ...]``: what the ONNX graph computes."""
    key = jax.random.PRNGKey(0)  # unused by a deterministic act

    def fn(obs):
        action = policy.algo.act(policy.config, policy.agent_action_space, policy.agent, obs, key, True)[0]
        return policy._to_env_jax(action)

    return fn


def to_onnx(policy: Policy):
    """The ONNX ``ModelProto`` of the policy's deterministic actions (input ``obs``, output ``action``)."""
    try:
        import jax2onnx
    except ImportError as e:
        raise MissingExtraError(f"{INSTALL_HINT} ({e})") from None
    space = policy.agent_observation_space
    spec = jax.ShapeDtypeStruct(("B",) + tuple(space.shape), np.dtype(getattr(space, "dtype", np.float32)))
    return jax2onnx.to_onnx(
        _deterministic_fn(policy),
        [spec],
        model_name=f"advantage_{policy.algo.NAME}",
        input_names=["obs"],
        output_names=["action"],
    )


def run_onnx(model_bytes: bytes, obs: np.ndarray) -> np.ndarray:
    """The ONNX model's actions for a batch of (agent) observations, with onnxruntime on the CPU."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise MissingExtraError(f"{INSTALL_HINT} ({e})") from None
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    return session.run(["action"], {"obs": obs})[0]


def export_onnx(policy: Policy, path, obs: np.ndarray | None = None) -> dict:
    """Write the policy to ``path`` as ONNX, after checking it on evaluation observations; returns the parity."""
    model = to_onnx(policy).SerializeToString()
    obs = evaluation_observations(policy) if obs is None else obs
    result = parity(policy, run_onnx(model, obs), obs)
    _require(result, "ONNX model")
    _write_atomic(Path(path), model)
    return result


# ----------------------------------------------------------------------------- npz
def _sorted_layers(d: dict) -> list[dict]:
    """The dense layers ``Dense_0, Dense_1, ...`` (or ``hidden_0, ...``) of a torso's parameters, in order."""
    return [d[k] for k in sorted(d, key=lambda k: int(k.rsplit("_", 1)[1]))]


def describe(policy: Policy) -> tuple[dict, dict[str, np.ndarray]]:
    """``(description, arrays)`` of a policy that is a chain of dense layers; a :class:`RunError` otherwise.

    The description's ``layers`` are applied in order, ``x = activation(x @ W + b)``; then ``output``
    (``argmax`` + ``offset``, or ``squash`` (``tanh`` or ``clip``) and the affine map to ``[low, high]``)."""
    algo, cfg, agent = policy.algo, policy.config, policy.agent
    unsupported = RunError(
        f"npz export reads MLP and linear (raw, one-hot, tile-coded or random features) policies; {algo.NAME}'s "
        f"policy in "
        f"{policy.run_dir} is not one of them: use --format onnx"
    )
    if getattr(cfg, "torso", "mlp") != "mlp":
        raise RunError(
            f"npz export reads MLP and linear policies; {algo.NAME}'s policy in {policy.run_dir} has a "
            f"{cfg.torso.upper()} torso (--torso {cfg.torso}), whose convolutions the npz format does not describe: "
            "use --format onnx"
        )
    params = algo.policy_params(agent)
    net = None
    for outer in ("params", "actor", "policy"):
        inner = params.get(outer) if isinstance(params, dict) else None
        if isinstance(inner, dict) and isinstance(inner.get("params"), dict):
            net = inner["params"]
            break
    if net is None:
        raise unsupported
    act_name = getattr(cfg, "activation", "tanh")
    torso: dict = next((net[k] for k in ("actor_torso", "MLP_0", "Torso_0") if k in net), {})
    layers = [(layer["kernel"], layer["bias"], act_name) for layer in _sorted_layers(torso)]
    features, squash, tiles = "identity", "clip", None
    head = next((net[k] for k in ("policy_head", "PolicyHead_0") if k in net), None)
    if head is not None:
        layers.append((head["Dense_0"]["kernel"], head["Dense_0"]["bias"], None))
    elif "out" in net:  # TD3/DDPG: mu(s) = tanh(out(torso(s)))
        layers.append((net["out"]["kernel"], net["out"]["bias"], None))
        squash = "tanh"
    elif "mean" in net:  # SAC: the mode tanh(mean(s))
        layers.append((net["mean"]["kernel"], net["mean"]["bias"], None))
        squash = "tanh"
    elif "LinearHead_0" in net:  # linear in phi(s): raw [s, 1], one-hot, tiles, or random [g(P^T x + b), 1]
        kind = getattr(getattr(cfg, "features", None), "value", getattr(cfg, "features", "mlp"))
        w = net["LinearHead_0"]["w"]
        if kind == "linear-random":
            layers.append(_random_layer(agent.fmap))
            layers.append((w[:-1], w[-1], None))  # the last feature is the constant 1: the bias
        elif kind in ("linear-raw", "linear-onehot", "linear-tiles"):
            layers.append((w, jnp.zeros(w.shape[1:], w.dtype), None))
            features = {"linear-raw": "raw", "linear-onehot": "identity", "linear-tiles": "tiles"}[kind]
        else:
            raise unsupported
        if kind == "linear-tiles":
            fmap = cfg.feature_map(policy.agent_observation_space, algo.NAME)
            tiles = {"low": list(fmap.low), "high": list(fmap.high), "n_tilings": fmap.n_tilings,
                     "tiles_per_dim": fmap.tiles_per_dim}  # fmt: skip
    else:
        raise unsupported

    arrays: dict[str, np.ndarray] = {}
    described = []
    for i, (w, b, activation) in enumerate(layers):
        arrays[f"W{i}"], arrays[f"b{i}"] = np.asarray(w, np.float32), np.asarray(b, np.float32)
        described.append(
            {"W": f"W{i}", "b": f"b{i}", "in": int(w.shape[0]), "out": int(w.shape[1]), "activation": activation}
        )
    normalize = None
    if getattr(cfg, "normalize_obs", False):
        rms = agent.obs_rms
        arrays["obs_mean"], arrays["obs_var"] = np.asarray(rms.mean, np.float32), np.asarray(rms.var, np.float32)
        normalize = {"mean": "obs_mean", "var": "obs_var", "eps": 1e-8, "clip": 10.0}
    if is_discrete(policy.agent_action_space):
        output: dict[str, Any] = {"kind": "argmax", "offset": int(getattr(policy.action_space, "start", 0))}
    else:
        arrays["action_low"] = np.asarray(policy.action_space.low, np.float32)
        arrays["action_high"] = np.asarray(policy.action_space.high, np.float32)
        output = {
            "kind": "box",
            "squash": squash,
            "low": "action_low",
            "high": "action_high",
            "shape": list(policy.action_space.shape),
        }
    description = {
        "format": "advantage-policy-npz",
        "version": 1,
        "algo": algo.NAME,
        "env": policy.env,
        "seed": policy.seed,
        "observation": {
            "shape": list(policy.agent_observation_space.shape),
            "normalize": normalize,
            "features": features,
            "tiles": tiles,
        },
        "layers": described,
        "output": output,
    }
    return description, arrays


ACTIVATIONS: dict[str, Callable] = {
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0.0),
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
    "gelu": lambda x: 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3))),  # flax: tanh approx.
    "cos": np.cos,  # random Fourier features (nets.linear, features linear-random)
}


def tile_indices(x: np.ndarray, tiles: dict) -> np.ndarray:
    """The active tile of each tiling, ``[B, n_tilings]``: ``nets.linear.tile_indices`` in numpy (float32)."""
    low, high = np.asarray(tiles["low"], np.float32), np.asarray(tiles["high"], np.float32)
    n, k, d = tiles["n_tilings"], tiles["tiles_per_dim"], x.shape[1]
    u = np.clip((x - low) / (high - low) * np.float32(k), 0.0, float(k))
    offsets = ((np.arange(n)[:, None] * (2 * np.arange(d)[None, :] + 1) / n) % 1.0).astype(np.float32)
    coords = np.clip(np.floor(u[:, None, :] + offsets), 0, k).astype(np.int64)
    return (coords * (k + 1) ** np.arange(d)).sum(axis=-1) + np.arange(n) * (k + 1) ** d


def _random_layer(fmap) -> tuple[np.ndarray, np.ndarray, str | None]:
    """``(W, b, activation)`` of ``linear-random``'s ``g(P^T x + b)`` with the scaling ``x = 2 (s - low) / (high -
    low) - 1`` folded in: ``W = diag(2 / (high - low)) P``, ``b' = b - ((high + low) / (high - low)) P``."""
    from advantage.nets.linear import random_projection

    proj, bias = random_projection(fmap.obs_dim, fmap.n_random, fmap.random_scale, fmap.seed)
    proj, bias = proj.astype(np.float64), bias.astype(np.float64)
    if not fmap.nonlinearity == "cos":
        bias = np.zeros_like(bias)
    if len(fmap.low):
        low, high = np.asarray(fmap.low, np.float64), np.asarray(fmap.high, np.float64)
        bias = bias - ((high + low) / (high - low)) @ proj
        proj = (2.0 / (high - low))[:, None] * proj
    return proj, bias, ("cos" if fmap.nonlinearity == "cos" else None)


def numpy_forward(npz: dict, obs: np.ndarray) -> np.ndarray:
    """The actions of an exported npz policy for a batch of observations ``[B, *obs_shape]``, with numpy only.

    ``npz``: ``np.load(path)``. The same code is in ``docs/using-a-trained-agent.md``."""
    desc = json.loads(str(npz["description"]))
    x = np.asarray(obs, np.float32).reshape(len(obs), -1)
    norm = desc["observation"]["normalize"]
    if norm:
        x = (x - npz[norm["mean"]]) / np.sqrt(npz[norm["var"]] + norm["eps"])
        x = np.clip(x, -norm["clip"], norm["clip"])
    if desc["observation"]["features"] == "raw":  # linear policies: phi(s) = [s, 1]
        x = np.concatenate([x, np.ones((len(x), 1), np.float32)], axis=1)
    for layer in desc["layers"]:
        if desc["observation"]["features"] == "tiles":  # w^T phi(s): the sum of the active tiles' rows of W
            x = npz[layer["W"]][tile_indices(x, desc["observation"]["tiles"])].sum(axis=1) + npz[layer["b"]]
        else:
            x = x @ npz[layer["W"]] + npz[layer["b"]]
        if layer["activation"]:
            x = ACTIVATIONS[layer["activation"]](x)
    out = desc["output"]
    if out["kind"] == "argmax":
        return np.argmax(x, axis=1) + out["offset"]
    a = np.tanh(x) if out["squash"] == "tanh" else x
    a = np.clip(a, -1.0, 1.0)
    low, high = npz[out["low"]], npz[out["high"]]
    return np.clip(low + 0.5 * (a.reshape((len(x), *out["shape"])) + 1.0) * (high - low), low, high)


def export_npz(policy: Policy, path, obs: np.ndarray | None = None) -> dict:
    """Write the policy to ``path`` as npz (weights + ``description``), after checking :func:`numpy_forward`
    on evaluation observations; returns the parity."""
    import io

    description, arrays = describe(policy)
    buf = io.BytesIO()
    contents: dict[str, Any] = {"description": np.asarray(json.dumps(description)), **arrays}
    np.savez(buf, **contents)
    obs = evaluation_observations(policy) if obs is None else obs
    result = parity(policy, numpy_forward(np.load(io.BytesIO(buf.getvalue())), obs), obs)
    _require(result, "npz policy")
    _write_atomic(Path(path), buf.getvalue())
    return result


def export(run_dir, fmt: str = "onnx", out=None, seed: int | None = None) -> tuple[Path, dict, Policy]:
    """Load the policy of ``run_dir`` (``seed``: see :func:`advantage.policy.load_policy`), check and write it as
    ``fmt`` to ``out`` (default ``RUN_DIR/policy-seed{S}.{fmt}``); returns ``(path, parity, policy)``."""
    from advantage.policy import load_policy

    if fmt not in FORMATS:
        raise RunError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if fmt == "onnx":  # before the (slow) loading: a missing extra fails at once
        for module in ("jax2onnx", "onnxruntime"):
            try:
                __import__(module)
            except ImportError as e:
                raise MissingExtraError(f"{INSTALL_HINT} ({e})") from None
    policy = load_policy(run_dir, seed)
    path = Path(out) if out else Path(run_dir) / f"policy-seed{policy.seed}.{fmt}"
    result = (export_onnx if fmt == "onnx" else export_npz)(policy, path)
    return path, result, policy
