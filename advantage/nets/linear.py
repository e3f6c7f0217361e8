r"""Linear function approximation: feature maps :math:`\phi(s)` and :math:`\phi(s, a)`, linear heads
:math:`w^\top \phi(s)`, and the policy / critic networks of the on-policy family.

The lectures' actor-critic slides (*Policy Search: Actor-Critic and Gradient Policy
search*, "Compatible Function Approximation"; Sutton & Barto 2018, secs. 9.4–9.5 and 13.5)
work with linear approximators over hand-made features; the *Policy Gradient Methods* deck
("Value Function Approximation (VFA)") lists one-hot, random-projection and hand-coded
features. Four state feature maps are here:

=================  ==============================================  ==========================
``features``       :math:`\phi(s)`                                  for
=================  ==============================================  ==========================
``linear-raw``     ``[s_1, ..., s_d, 1]``: the observation + bias   any Box observation
``linear-onehot``  the observation itself, a one-hot vector         ``Discrete(n)`` observations
                   (no bias: a tabular representation)              (the Gymnasium bridge one-hot
                                                                    encodes them)
``linear-tiles``   binary tile coding (S&B sec. 9.5.4):             low-dimensional Box observations
                   ``n_tilings`` grids of ``tiles_per_dim`` tiles   with known ranges
                   per dimension, offset asymmetrically
``linear-random``  random Fourier features (Rahimi & Recht 2007):   any Box observation
                   ``[cos(P^T x + b), 1]`` with a fixed Gaussian
                   ``P`` (``random_nonlinearity='cos'``), or the
                   random projection ``[P^T x, 1]`` (``'none'``)
=================  ==============================================  ==========================

``mlp`` (no feature map: an MLP torso over the flat observation, ``nets/mlp.py``) is the
fourth choice of ``features`` and builds the same :class:`Policy` / :class:`Critic`.

**Tile coding.** Each dimension is scaled to tile units, ``u_k = tiles_per_dim (s_k -
low_k) / (high_k - low_k)`` and clipped to ``[0, tiles_per_dim]`` (observations outside the
range fall in the edge tiles). Tiling ``i`` is displaced by ``i (2k+1) / n_tilings`` of a
tile in dimension ``k`` (the odd displacement vector ``(1, 3, 5, ...)`` recommended by
S&B sec. 9.5.4, after Miller & Glanz 1996), so each tiling has ``tiles_per_dim + 1`` tiles
per dimension and ``phi`` has ``n_tilings * (tiles_per_dim + 1)^d`` entries, exactly
``n_tilings`` of which are 1. The active entries are kept as integer indices
(``[..., n_tilings]``), and :class:`LinearHead` sums the rows of ``w`` they select, so
``w^T phi(s)`` is computed without building the (large, sparse) binary vector; its gradient
w.r.t. ``w`` is that binary vector. Step sizes for tile coding are customarily divided by
``n_tilings`` (S&B eq. 9.19 and the text after it); the algorithms here take the step size
as given.

**Ranges.** Tile coding needs finite bounds. They come from ``tile_low`` / ``tile_high`` of
the algorithm's config, or, when those are empty, from the observation space. CartPole's
space is unbounded in its two velocities, so it needs configured ranges (the algorithms'
CartPole presets give them).

**Random features.** ``x`` is the observation, scaled to ``[-1, 1]`` per dimension over
``tile_low`` / ``tile_high`` (or the observation space's bounds when those are finite; else ``x =
s``). ``P`` (``[obs_dim, n_random]``) has entries ``N(0, random_scale^2)`` and ``b`` is uniform on
``[0, 2 pi)``. With ``cos``, ``phi(s)^T phi(s') ~ (n_random / 2) exp(-random_scale^2 |x - x'|^2 / 2)``:
a linear function of these features approximates a smooth (Gaussian-kernel) function of the state,
so the linear policy can be nonlinear in ``s``; ``random_scale`` is the inverse length scale (in units
of half the range). ``none`` is a Johnson–Lindenstrauss projection: still linear in ``s``, useful only
to compress a long observation. ``P`` and ``b`` are not trained. They are a pure function of
``(feature_seed, obs_dim, n_random, random_scale)``, drawn from numpy's legacy ``RandomState``,
whose stream is frozen (NEP 19), so the saved config rebuilds the very same matrix on any machine
(``load_policy``); an npz export writes the matrix itself into the file.

**State-action features** (``action_features``, Discrete actions). The *Policy Search* deck's
softmax policy ("Differentiable policies? Soft-max") is linear in features of the pair,

.. math::
    \pi_\theta(a|s) = \frac{e^{\phi(s,a)^\top\theta/\tau}}{\sum_b e^{\phi(s,b)^\top\theta/\tau}},
    \qquad
    \nabla_\theta \log\pi_\theta(a|s) = \frac{1}{\tau}\Big(\phi(s,a) - \sum_b \pi_\theta(b|s)\,\phi(s,b)\Big)

(S&B eqs. 13.2–13.3 and 13.9). Without ``action_features`` the policy has one weight vector per
action, ``logit_a = w_a^T phi(s)``: that is :math:`\phi(s,a) = e_a \otimes \phi(s)` with
``theta = vec(w)``. ``action_features='block'`` builds exactly that :math:`\phi(s,a)` explicitly
(the same policy, to float precision; with tiles, as active indices ``idx + a * size``);
``'module:function'`` names a function of one flat observation ``[obs_dim] -> [n_actions, k]``
(jax-traceable; batched with ``vmap``), whose ``k`` weights are shared by all actions, so what is
learned about one action carries over to every action with similar features. The state value
(and QAC's ``Q(s, .)``) stay linear in ``phi(s)``.

All linear heads start at zero: a uniform softmax policy, a zero mean (Gaussian), ``V = 0``.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from advantage.config import ConfigError, check, static
from advantage.core.distributions import DiagGaussian, categorical
from advantage.envs.spaces import action_dim, action_factors, is_discrete
from advantage.nets.mlp import LOG_STD_MAX, LOG_STD_MIN, MLP, PolicyHead, ortho, tempered

FEATURES = ("mlp", "linear-raw", "linear-onehot", "linear-tiles", "linear-random")
NONLINEARITIES = ("cos", "none")  # of linear-random


# ----------------------------------------------------------------------------- feature maps
@dataclasses.dataclass(frozen=True)
class FeatureMap:
    """A fixed feature map ``phi`` over flat observations ``[..., obs_dim]`` (hashable, no parameters).

    ``kind`` is ``raw``, ``onehot``, ``tiles`` or ``random``. For ``tiles``, ``low`` / ``high`` are the
    per-dimension ranges; for ``random`` the ranges that scale the observation to ``[-1, 1]`` (empty: no
    scaling), ``n_random``, ``random_scale``, ``nonlinearity`` and ``seed`` fix the projection.
    ``__call__`` returns dense features ``[..., size]`` (raw, onehot, random) or the active indices
    ``[..., n_tilings]`` (tiles, ``sparse``).

    ``action`` (with ``n_actions``) adds state-action features for a softmax policy: ``''`` (none: one
    weight vector per action), ``'block'`` (``e_a kron phi(s)``) or a ``'module:function'`` path;
    :meth:`state_action` returns them for every action, ``[..., n_actions, action_size]`` (or active indices
    ``[..., n_actions, n_tilings]`` when ``action_sparse``).
    """

    kind: str
    obs_dim: int
    low: tuple[float, ...] = ()
    high: tuple[float, ...] = ()
    n_tilings: int = 8
    tiles_per_dim: int = 8
    n_random: int = 256
    random_scale: float = 1.0
    nonlinearity: str = "cos"
    seed: int = 0
    action: str = ""
    n_actions: int = 0

    @property
    def sparse(self) -> bool:
        return self.kind == "tiles"

    @property
    def size(self) -> int:
        """Length of ``phi(s)``."""
        if self.kind == "raw":
            return self.obs_dim + 1
        if self.kind == "onehot":
            return self.obs_dim
        if self.kind == "random":
            return self.n_random + 1
        return self.n_tilings * (self.tiles_per_dim + 1) ** self.obs_dim

    def __call__(self, obs):
        if self.kind == "raw":
            return raw_features(obs)
        if self.kind == "onehot":
            return obs
        if self.kind == "random":
            proj, bias = random_projection(self.obs_dim, self.n_random, self.random_scale, self.seed)
            return random_features(obs, proj, bias, self.low, self.high, self.nonlinearity)
        return tile_indices(obs, self.low, self.high, self.n_tilings, self.tiles_per_dim)

    def dense(self, obs):
        """``phi(s)`` as a dense vector ``[..., size]`` (for tiles: the binary vector; for tests and small problems)."""
        f = self(obs)
        return jnp.sum(jax.nn.one_hot(f, self.size), axis=-2) if self.sparse else f

    # ------------------------------------------------------------------ phi(s, a)
    @property
    def action_sparse(self) -> bool:
        """``state_action`` gives active indices (block form over tiles), not dense vectors."""
        return self.action == "block" and self.sparse

    @property
    def action_size(self) -> int:
        """Length of ``phi(s, a)`` (of the shared weight vector ``theta``)."""
        if self.action == "block":
            return self.n_actions * self.size
        return action_feature_shape(self.action, self.obs_dim)[1]

    def state_action(self, obs):
        r""":math:`\phi(s, a)` for every action: ``[..., n_actions, action_size]`` (or indices, ``action_sparse``)."""
        if self.action == "block":  # e_a kron phi(s): phi(s) in the a-th block of n_actions blocks
            f = self(obs)
            if self.sparse:
                return f[..., None, :] + (jnp.arange(self.n_actions, dtype=f.dtype) * self.size)[:, None]
            eye = jnp.eye(self.n_actions, dtype=f.dtype)
            return (eye[:, :, None] * f[..., None, None, :]).reshape(f.shape[:-1] + (self.n_actions, -1))
        fn = load_action_features(self.action)
        flat = obs.reshape((-1, obs.shape[-1]))
        out = jax.vmap(fn)(flat)
        return out.reshape(obs.shape[:-1] + out.shape[1:]).astype(jnp.float32)

    def state_action_dense(self, obs):
        """``state_action`` as dense vectors ``[..., n_actions, action_size]`` (for tests and small problems)."""
        f = self.state_action(obs)
        return jnp.sum(jax.nn.one_hot(f, self.action_size), axis=-2) if self.action_sparse else f


@functools.cache
def random_projection(obs_dim: int, n_random: int, scale: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(P [obs_dim, n_random], b [n_random])``: ``P ~ N(0, scale^2)``, ``b ~ U[0, 2 pi)``, float32.

    Drawn from ``np.random.RandomState(seed)``, numpy's legacy generator, whose stream is frozen (NEP 19):
    the same arguments give the same matrix on every machine and numpy version."""
    rng = np.random.RandomState(seed)
    proj = (scale * rng.standard_normal((obs_dim, n_random))).astype(np.float32)
    bias = rng.uniform(0.0, 2.0 * np.pi, n_random).astype(np.float32)
    proj.setflags(write=False)
    bias.setflags(write=False)
    return proj, bias


def random_features(obs, proj, bias, low=(), high=(), nonlinearity: str = "cos"):
    r""":math:`\phi(s) = [\cos(P^\top x + b), 1]` (``cos``) or :math:`[P^\top x, 1]` (``none``), ``[..., n + 1]``.

    ``x = 2 (s - low) / (high - low) - 1`` per dimension when ``low`` / ``high`` are given, else ``x = s``.
    """
    x = obs
    if len(low):
        lo, hi = jnp.asarray(low, jnp.float32), jnp.asarray(high, jnp.float32)
        x = 2.0 * (obs - lo) / (hi - lo) - 1.0
    z = x @ jnp.asarray(proj)
    f = jnp.cos(z + jnp.asarray(bias)) if nonlinearity == "cos" else z
    return jnp.concatenate([f, jnp.ones(f.shape[:-1] + (1,), f.dtype)], axis=-1)


@functools.cache
def load_action_features(spec: str) -> Callable:
    """The function a ``'module:function'`` path names (``action_features``); a ConfigError if there is none."""
    module, _, attr = spec.partition(":")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise ConfigError(
            f"action_features={spec!r}: cannot import {attr!r} from module {module!r} ({e}); give 'block' or a "
            "'module:function' path to a function of one flat observation [obs_dim] -> [n_actions, k]."
        ) from None
    if not callable(fn):
        raise ConfigError(f"action_features={spec!r} names {type(fn).__name__}, not a function.")
    return fn


@functools.cache
def action_feature_shape(spec: str, obs_dim: int) -> tuple[int, int]:
    """``(n_actions, k)``: the shape of ``phi(s, .)`` a ``'module:function'`` returns for one observation."""
    out = jax.eval_shape(load_action_features(spec), jax.ShapeDtypeStruct((obs_dim,), jnp.float32))
    shape = tuple(getattr(out, "shape", ()))
    if len(shape) != 2:
        raise ConfigError(
            f"action_features={spec!r} returned shape {shape} for one observation of shape ({obs_dim},); it must "
            "return phi(s, a) for every action, an array [n_actions, k]."
        )
    return int(shape[0]), int(shape[1])


def raw_features(obs):
    r""":math:`\phi(s) = [s, 1]`: the observation and a constant bias feature."""
    return jnp.concatenate([obs, jnp.ones(obs.shape[:-1] + (1,), obs.dtype)], axis=-1)


def tile_indices(obs, low, high, n_tilings: int, tiles_per_dim: int):
    r"""Active tiles of ``obs [..., d]``: one index per tiling, ``int32 [..., n_tilings]``.

    Tiling ``i`` covers ``[low, high]`` with ``tiles_per_dim + 1`` tiles per dimension,
    displaced by ``i (2k+1) / n_tilings`` tiles in dimension ``k`` (S&B sec. 9.5.4). The
    index of tiling ``i`` is ``i (tiles_per_dim+1)^d + sum_k c_k (tiles_per_dim+1)^k`` with
    ``c_k = floor(u_k + offset_ik)`` and ``u_k = tiles_per_dim (s_k - low_k) / (high_k - low_k)``
    clipped to ``[0, tiles_per_dim]``.
    """
    d = obs.shape[-1]
    low, high = jnp.asarray(low, jnp.float32), jnp.asarray(high, jnp.float32)
    u = jnp.clip((obs - low) / (high - low) * tiles_per_dim, 0.0, float(tiles_per_dim))  # [..., d]
    offsets = (np.arange(n_tilings)[:, None] * (2 * np.arange(d)[None, :] + 1) / n_tilings) % 1.0  # [n, d]
    coords = jnp.floor(u[..., None, :] + jnp.asarray(offsets, jnp.float32)).astype(jnp.int32)  # [..., n, d]
    coords = jnp.clip(coords, 0, tiles_per_dim)
    side = tiles_per_dim + 1
    strides = jnp.asarray(side ** np.arange(d), jnp.int32)
    per_tiling = side**d
    return jnp.sum(coords * strides, axis=-1) + jnp.arange(n_tilings, dtype=jnp.int32) * per_tiling


def make_feature_map(
    features: str,
    obs_space,
    tile_low=(),
    tile_high=(),
    n_tilings=8,
    tiles_per_dim=8,
    algo: str = "algo",
    *,
    n_random: int = 256,
    random_scale: float = 1.0,
    nonlinearity: str = "cos",
    seed: int = 0,
    action_features: str = "",
    action_space=None,
) -> FeatureMap | None:
    """The ``FeatureMap`` for a config's ``features`` (``None`` for ``mlp``); checks it fits the observations
    (and, with ``action_features``, the ``action_space``)."""
    if features == "mlp":
        if action_features:
            raise ConfigError(
                f"{algo}.action_features={action_features!r} needs a linear policy: give --features linear-raw, "
                "linear-onehot, linear-tiles or linear-random (or drop --action-features)."
            )
        return None
    obs_dim = int(np.prod(obs_space.shape))
    if features == "linear-raw":
        fmap = FeatureMap("raw", obs_dim)
    elif features == "linear-onehot":
        low, high = np.asarray(obs_space.low), np.asarray(obs_space.high)
        if len(obs_space.shape) != 1 or not (np.all(low == 0) and np.all(high == 1)):
            raise ConfigError(
                f"{algo}.features='linear-onehot' needs one-hot observations (a Box(0, 1, (n,)), as the Gymnasium "
                f"bridge makes of a Discrete(n) observation space); this environment observes {obs_space}. "
                "Use linear-raw or linear-tiles."
            )
        fmap = FeatureMap("onehot", obs_dim)
    elif features == "linear-random":
        low, high = _ranges(obs_space, obs_dim, tile_low, tile_high, algo)
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
            low = high = np.zeros(0)  # unbounded and no ranges given: the observation as it is
        fmap = FeatureMap(
            "random",
            obs_dim,
            tuple(float(x) for x in low),
            tuple(float(x) for x in high),
            n_random=int(n_random),
            random_scale=float(random_scale),
            nonlinearity=nonlinearity,
            seed=int(seed),
        )
    elif features == "linear-tiles":
        low, high = _ranges(obs_space, obs_dim, tile_low, tile_high, algo)
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
            raise ConfigError(
                f"{algo}.features='linear-tiles' needs finite observation ranges, but the observation space has "
                f"low={np.asarray(obs_space.low).tolist()}, high={np.asarray(obs_space.high).tolist()}; give them "
                f"with --tile-low and --tile-high ({obs_dim} values each)."
            )
        fmap = FeatureMap(
            "tiles",
            obs_dim,
            tuple(float(x) for x in low),
            tuple(float(x) for x in high),
            int(n_tilings),
            int(tiles_per_dim),
        )
        if fmap.size > 50_000_000:
            raise ConfigError(
                f"{algo}: tile coding of {obs_dim} dimensions with tiles_per_dim={tiles_per_dim} and "
                f"n_tilings={n_tilings} makes {fmap.size} features; use fewer tiles or tilings."
            )
    else:
        raise ConfigError(f"{algo}.features={features!r} is invalid: choose one of {', '.join(FEATURES)}.")
    if action_features:
        fmap = _with_action_features(fmap, action_features, action_space, algo)
    return fmap


def _ranges(obs_space, obs_dim: int, tile_low, tile_high, algo: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension ``(low, high)`` from ``tile_low`` / ``tile_high``, or the observation space's bounds."""
    low = np.asarray(tile_low if tile_low else np.asarray(obs_space.low).reshape(-1), np.float64)
    high = np.asarray(tile_high if tile_high else np.asarray(obs_space.high).reshape(-1), np.float64)
    if low.shape != (obs_dim,) or high.shape != (obs_dim,):
        raise ConfigError(
            f"{algo}.tile_low / tile_high need {obs_dim} values each (one per observation dimension), "
            f"got {len(low)} and {len(high)}."
        )
    if np.any(high <= low):
        raise ConfigError(
            f"{algo}.tile_high must exceed tile_low in every dimension (low={low.tolist()}, high={high.tolist()})."
        )
    return low, high


def _with_action_features(fmap: FeatureMap, spec: str, action_space, algo: str) -> FeatureMap:
    """``fmap`` with state-action features ``spec`` for ``action_space`` (a single ``Discrete``), checked."""
    if action_space is None or not is_discrete(action_space) or action_factors(action_space):
        raise ConfigError(
            f"{algo}.action_features={spec!r} is for a softmax policy over a Discrete action space; this "
            f"environment's actions are {action_space}. Drop --action-features."
        )
    n = action_dim(action_space)
    fmap = dataclasses.replace(fmap, action=spec, n_actions=n)
    if spec != "block":
        n_fn, _ = action_feature_shape(spec, fmap.obs_dim)
        if n_fn != n:
            raise ConfigError(
                f"{algo}.action_features={spec!r} returns features for {n_fn} actions; the environment has {n}."
            )
    return fmap


@struct.dataclass
class FeaturesConfig:
    """The ``Config`` fields of an algorithm that may be linear in features (REINFORCE, QAC, AC(lambda)):
    its ``Config`` derives from this class, and its ``__post_init__`` calls :meth:`check_features`."""

    features: str = static("mlp")
    """Function approximation: 'mlp', or linear in features 'linear-raw', 'linear-onehot', 'linear-tiles',
    'linear-random'."""
    tile_low: tuple[float, ...] = static(())
    """Tile coding, random features: lower end of each observation dimension (empty: the observation space's bounds)."""
    tile_high: tuple[float, ...] = static(())
    """Tile coding, random features: upper end of each observation dimension (empty: the observation space's bounds)."""
    n_tilings: int = static(8)
    """Tile coding: number of offset tilings."""
    tiles_per_dim: int = static(8)
    """Tile coding: tiles per dimension in each tiling."""
    n_random: int = static(256)
    """Random features (linear-random): number of random projections (features: n_random + a bias)."""
    random_scale: float = static(1.0)
    """Random features: standard deviation of the projection's entries (inverse length scale, in half-ranges)."""
    random_nonlinearity: str = static("cos")
    """Random features: 'cos' (random Fourier features, nonlinear in s) or 'none' (a linear random projection)."""
    feature_seed: int = static(0)
    """Random features: seed of the fixed projection (not the run's seed: every training seed has the same)."""
    action_features: str = static("")
    """Softmax policy over state-action features phi(s, a): '' (one weight vector per action), 'block'
    (e_a kron phi(s), the same policy written with one shared theta) or 'module:function' (a function of one
    flat observation returning [n_actions, k])."""

    def check_features(self) -> None:
        check(self, "features", lambda v: v in FEATURES, f"choose one of {', '.join(FEATURES)}")
        check(self, "n_tilings", lambda v: v >= 1, "use at least one tiling")
        check(self, "tiles_per_dim", lambda v: v >= 1, "use at least one tile per dimension")
        check(self, "n_random", lambda v: v >= 1, "use at least one random feature")
        check(self, "random_scale", lambda v: v > 0, "the projection's scale must be positive")
        check(self, "random_nonlinearity", lambda v: v in NONLINEARITIES, f"choose {', '.join(NONLINEARITIES)}")
        check(
            self,
            "action_features",
            lambda v: v in ("", "block") or (":" in v and all(v.partition(":")[::2])),
            "give '' (per-action weights), 'block', or a 'module:function' path",
        )
        if len(self.tile_low) != len(self.tile_high):
            name = type(self).__module__.split(".")[-1]
            raise ConfigError(
                f"{name}.tile_low and tile_high need the same length, got {len(self.tile_low)} "
                f"and {len(self.tile_high)}."
            )

    def feature_map(self, obs_space, algo: str, action_space=None) -> FeatureMap | None:
        """The ``FeatureMap`` of these fields for ``obs_space`` (``None`` for ``mlp``): :func:`make_feature_map`
        (``action_space``: needed with ``action_features``)."""
        return make_feature_map(
            self.features,
            obs_space,
            self.tile_low,
            self.tile_high,
            self.n_tilings,
            self.tiles_per_dim,
            algo=algo,
            n_random=self.n_random,
            random_scale=self.random_scale,
            nonlinearity=self.random_nonlinearity,
            seed=self.feature_seed,
            action_features=self.action_features,
            action_space=action_space,
        )


# ----------------------------------------------------------------------------- linear heads
class LinearHead(nn.Module):
    r"""``w^T phi(s)``: ``[..., out]`` from dense features ``[..., size]`` or active tile indices ``[..., n]``.

    ``w`` (``[size, out]``) starts at zero. For tiles, ``w^T phi(s) = sum_i w[idx_i]``.
    """

    fmap: FeatureMap
    out: int

    @nn.compact
    def __call__(self, f):
        w = self.param("w", nn.initializers.zeros, (self.fmap.size, self.out))
        if self.fmap.sparse:
            return jnp.sum(w[f], axis=-2)
        return f @ w


class StateActionHead(nn.Module):
    r"""Logits :math:`\phi(s, a)^\top \theta` for every action, ``[..., n_actions]``; ``theta`` (the parameter ``w``,
    ``[action_size]``, named like ``LinearHead``'s so that ``weight_decay`` acts on it) starts at zero. For block
    tile features, :math:`\phi(s,a)^\top\theta = \sum_i \theta[idx_{a,i}]`."""

    fmap: FeatureMap

    @nn.compact
    def __call__(self, obs):
        theta = self.param("w", nn.initializers.zeros, (self.fmap.action_size,))
        f = self.fmap.state_action(obs)
        if self.fmap.action_sparse:
            return jnp.sum(theta[f], axis=-1)
        return f @ theta


class Policy(nn.Module):
    """``obs -> pi(.|s)``: softmax (``Discrete``) or diagonal Gaussian (``Box``) policy.

    ``fmap=None``: an MLP torso (``nets/mlp.py``) and ``PolicyHead`` (orthogonal init, gain 0.01).
    Otherwise linear in ``phi(s)``: logits ``theta^T phi(s)`` (S&B eq. 13.3) or mean
    ``theta^T phi(s)`` with a state-independent log-std parameter (S&B eq. 13.19 with a constant
    sigma; bounded to [-5, 2] like ``PolicyHead``). ``std``, ``temperature`` and ``layer_norm`` as in
    ``nets/mlp.py`` (``std='state'``: S&B eq. 13.19's ``log sigma(s) = theta_sigma^T phi(s)``, offset by
    ``log_std_init``; ``layer_norm``: only the MLP torso has hidden layers). With state-action features
    (``fmap.action``): logits ``phi(s, a)^T theta`` (:class:`StateActionHead`).
    """

    action_dim: int
    discrete: bool
    fmap: FeatureMap | None = None
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    log_std_init: float = 0.0
    layer_norm: bool = False
    std: str = "learned"
    temperature: float = 1.0
    factors: tuple[int, ...] = ()  # a MultiDiscrete action's nvec: a product of categoricals

    @nn.compact
    def __call__(self, obs):
        if self.fmap is None:
            head = PolicyHead(
                self.action_dim,
                self.discrete,
                self.log_std_init,
                std=self.std,
                temperature=self.temperature,
                factors=self.factors,
            )
            return head(MLP(self.hidden_sizes, self.activation, self.layer_norm)(obs))
        if self.fmap.action:
            if not self.discrete or self.factors:
                raise ConfigError("state-action features (action_features) are for a single Discrete action space")
            return categorical(tempered(StateActionHead(self.fmap)(obs), self.temperature))
        f = self.fmap(obs)
        out = LinearHead(self.fmap, self.action_dim)(f)
        if self.discrete:
            return categorical(tempered(out, self.temperature), self.factors)
        if self.std == "fixed":  # sigma = exp(log_std_init), not a parameter
            return DiagGaussian(out, jnp.full(out.shape, self.log_std_init, out.dtype))
        if self.std == "state":  # log sigma(s) = log_std_init + w_sigma^T phi(s), w_sigma starting at 0
            log_std = self.log_std_init + LinearHead(self.fmap, self.action_dim, name="log_std_head")(f)
            return DiagGaussian(out, jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX))
        log_std = self.param("log_std", nn.initializers.constant(self.log_std_init), (self.action_dim,))
        return DiagGaussian(out, jnp.broadcast_to(jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX), out.shape))


class Critic(nn.Module):
    """``obs -> [..., n_outputs]``: ``V(s)`` (``n_outputs=1``, squeezed to ``[...]``) or ``Q(s, .)`` (one output
    per action).

    ``fmap=None``: MLP torso and a dense head (orthogonal init, gain 1); otherwise ``w^T phi(s)``.
    """

    n_outputs: int = 1
    fmap: FeatureMap | None = None
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    layer_norm: bool = False

    @nn.compact
    def __call__(self, obs):
        if self.fmap is None:
            h = MLP(self.hidden_sizes, self.activation, self.layer_norm)(obs)
            out = nn.Dense(self.n_outputs, kernel_init=ortho(1.0), bias_init=nn.initializers.zeros)(h)
        else:
            out = LinearHead(self.fmap, self.n_outputs)(self.fmap(obs))
        return out[..., 0] if self.n_outputs == 1 else out


def policy_and_value(config, action_space, fmap: FeatureMap | None) -> tuple[Policy, Critic]:
    """The policy ``pi_theta`` (softmax or Gaussian) and a state value (one output) over the same features ``fmap``
    (``None``: separate MLP torsos), as ``config``'s ``hidden_sizes``, ``activation``, ``layer_norm``,
    ``log_std_init``, ``std`` and ``temperature`` make them: the networks of REINFORCE, AC(lambda) and NAC."""
    return (
        Policy(
            action_dim(action_space),
            is_discrete(action_space),
            fmap,
            config.hidden_sizes,
            config.activation,
            config.log_std_init,
            layer_norm=config.layer_norm,
            std=config.std,
            temperature=config.temperature,
            factors=action_factors(action_space),
        ),
        Critic(1, fmap, config.hidden_sizes, config.activation, config.layer_norm),
    )
