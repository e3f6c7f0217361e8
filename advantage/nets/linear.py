r"""Linear function approximation: feature maps :math:`\phi(s)` and linear heads
:math:`w^\top \phi(s)`, and the policy / critic networks of the on-policy family.

The lectures' actor-critic slides (*Policy Search: Actor-Critic and Gradient Policy
search*, "Compatible Function Approximation"; Sutton & Barto 2018, secs. 9.4–9.5 and 13.5)
work with linear approximators over hand-made features. Three feature maps are here:

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

All linear heads start at zero: a uniform softmax policy, a zero mean (Gaussian), ``V = 0``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from advantage.config import ConfigError, check, static
from advantage.core.distributions import DiagGaussian, categorical
from advantage.envs.spaces import action_dim, action_factors, is_discrete
from advantage.nets.mlp import LOG_STD_MAX, LOG_STD_MIN, MLP, PolicyHead, ortho, tempered

FEATURES = ("mlp", "linear-raw", "linear-onehot", "linear-tiles")


# ----------------------------------------------------------------------------- feature maps
@dataclasses.dataclass(frozen=True)
class FeatureMap:
    """A fixed feature map ``phi`` over flat observations ``[..., obs_dim]`` (hashable, no parameters).

    ``kind`` is ``raw``, ``onehot`` or ``tiles``. For ``tiles``, ``low`` / ``high`` are the
    per-dimension ranges. ``__call__`` returns dense features ``[..., size]`` (raw, onehot) or
    the active indices ``[..., n_tilings]`` (tiles, ``sparse``).
    """

    kind: str
    obs_dim: int
    low: tuple[float, ...] = ()
    high: tuple[float, ...] = ()
    n_tilings: int = 8
    tiles_per_dim: int = 8

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
        return self.n_tilings * (self.tiles_per_dim + 1) ** self.obs_dim

    def __call__(self, obs):
        if self.kind == "raw":
            return raw_features(obs)
        if self.kind == "onehot":
            return obs
        return tile_indices(obs, self.low, self.high, self.n_tilings, self.tiles_per_dim)

    def dense(self, obs):
        """``phi(s)`` as a dense vector ``[..., size]`` (for tiles: the binary vector; for tests and small problems)."""
        f = self(obs)
        return jnp.sum(jax.nn.one_hot(f, self.size), axis=-2) if self.sparse else f


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
    features: str, obs_space, tile_low=(), tile_high=(), n_tilings=8, tiles_per_dim=8, algo: str = "algo"
) -> FeatureMap | None:
    """The ``FeatureMap`` for a config's ``features`` (``None`` for ``mlp``); checks it fits the observations."""
    if features == "mlp":
        return None
    obs_dim = int(np.prod(obs_space.shape))
    if features == "linear-raw":
        return FeatureMap("raw", obs_dim)
    if features == "linear-onehot":
        low, high = np.asarray(obs_space.low), np.asarray(obs_space.high)
        if len(obs_space.shape) != 1 or not (np.all(low == 0) and np.all(high == 1)):
            raise ConfigError(
                f"{algo}.features='linear-onehot' needs one-hot observations (a Box(0, 1, (n,)), as the Gymnasium "
                f"bridge makes of a Discrete(n) observation space); this environment observes {obs_space}. "
                "Use linear-raw or linear-tiles."
            )
        return FeatureMap("onehot", obs_dim)
    if features != "linear-tiles":
        raise ConfigError(f"{algo}.features={features!r} is invalid: choose one of {', '.join(FEATURES)}.")
    low = np.asarray(tile_low if tile_low else np.asarray(obs_space.low).reshape(-1), np.float64)
    high = np.asarray(tile_high if tile_high else np.asarray(obs_space.high).reshape(-1), np.float64)
    if low.shape != (obs_dim,) or high.shape != (obs_dim,):
        raise ConfigError(
            f"{algo}.tile_low / tile_high need {obs_dim} values each (one per observation dimension), "
            f"got {len(low)} and {len(high)}."
        )
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise ConfigError(
            f"{algo}.features='linear-tiles' needs finite observation ranges, but the observation space has "
            f"low={np.asarray(obs_space.low).tolist()}, high={np.asarray(obs_space.high).tolist()}; give them with "
            f"--tile-low and --tile-high ({obs_dim} values each)."
        )
    if np.any(high <= low):
        raise ConfigError(
            f"{algo}.tile_high must exceed tile_low in every dimension (low={low.tolist()}, high={high.tolist()})."
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
    return fmap


@struct.dataclass
class FeaturesConfig:
    """The ``Config`` fields of an algorithm that may be linear in features (REINFORCE, QAC, AC(lambda)):
    its ``Config`` derives from this class, and its ``__post_init__`` calls :meth:`check_features`."""

    features: str = static("mlp")
    """Function approximation: 'mlp', or linear in features 'linear-raw', 'linear-onehot', 'linear-tiles'."""
    tile_low: tuple[float, ...] = static(())
    """Tile coding: lower end of each observation dimension (empty: the observation space's bounds)."""
    tile_high: tuple[float, ...] = static(())
    """Tile coding: upper end of each observation dimension (empty: the observation space's bounds)."""
    n_tilings: int = static(8)
    """Tile coding: number of offset tilings."""
    tiles_per_dim: int = static(8)
    """Tile coding: tiles per dimension in each tiling."""

    def check_features(self) -> None:
        check(self, "features", lambda v: v in FEATURES, f"choose one of {', '.join(FEATURES)}")
        check(self, "n_tilings", lambda v: v >= 1, "use at least one tiling")
        check(self, "tiles_per_dim", lambda v: v >= 1, "use at least one tile per dimension")
        if len(self.tile_low) != len(self.tile_high):
            name = type(self).__module__.split(".")[-1]
            raise ConfigError(
                f"{name}.tile_low and tile_high need the same length, got {len(self.tile_low)} "
                f"and {len(self.tile_high)}."
            )

    def feature_map(self, obs_space, algo: str) -> FeatureMap | None:
        """The ``FeatureMap`` of these fields for ``obs_space`` (``None`` for ``mlp``): :func:`make_feature_map`."""
        return make_feature_map(
            self.features, obs_space, self.tile_low, self.tile_high, self.n_tilings, self.tiles_per_dim, algo=algo
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


class Policy(nn.Module):
    """``obs -> pi(.|s)``: softmax (``Discrete``) or diagonal Gaussian (``Box``) policy.

    ``fmap=None``: an MLP torso (``nets/mlp.py``) and ``PolicyHead`` (orthogonal init, gain 0.01).
    Otherwise linear in ``phi(s)``: logits ``theta^T phi(s)`` (S&B eq. 13.3) or mean
    ``theta^T phi(s)`` with a state-independent log-std parameter (S&B eq. 13.19 with a constant
    sigma; bounded to [-5, 2] like ``PolicyHead``). ``std``, ``temperature`` and ``layer_norm`` as in
    ``nets/mlp.py`` (``std='state'``: S&B eq. 13.19's ``log sigma(s) = theta_sigma^T phi(s)``, offset by
    ``log_std_init``; ``layer_norm``: only the MLP torso has hidden layers).
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
