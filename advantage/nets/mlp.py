r"""MLP and CNN torsos and actor-critic heads (Flax Linen; parameters are plain pytrees), and the network options
that every gradient-trained algorithm shares (``docs/network-options.md``):

* :class:`NetworkConfig` — ``layer_norm`` (LayerNorm after each hidden ``Dense``, before its activation) and
  ``weight_decay`` (decoupled weight decay of the weight matrices, ``core.optim.optimizer``);
* :class:`PolicyConfig` — also the policy head's options: ``std`` (the Gaussian's :math:`\sigma` fixed,
  learned state-independent, or state-dependent) and ``temperature`` (the softmax's :math:`\tau`), and the
  ``torso``: ``mlp`` over the flattened observation, or ``cnn`` (:class:`CNN`) over an ``H x W x C`` image.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
from flax import struct

from advantage.config import ConfigError, check, is_concrete, static
from advantage.core.distributions import DiagGaussian, categorical

ACTIVATIONS: dict[str, Callable] = {"tanh": nn.tanh, "relu": nn.relu, "elu": nn.elu, "gelu": nn.gelu}


#: The Gaussian policy's standard deviation (``PolicyConfig.std``).
STDS = ("learned", "fixed", "state")
#: The bounds of a learned log-std (both state-independent and state-dependent).
LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0
#: The torsos (``PolicyConfig.torso``): an MLP over the flat observation, or a small CNN over an image.
TORSOS = ("mlp", "cnn")
#: The CNN torso's convolutions: output channels and strides of its 3x3 kernels (SAME padding, ReLU).
CNN_CHANNELS, CNN_STRIDES = (16, 32, 32), (1, 2, 2)
#: The CNN divides its input by this: pixel values 0..255 (a uint8 image, cast to float32) become 0..1.
PIXEL_MAX = 255.0


@struct.dataclass
class NetworkConfig:
    """The ``Config`` fields of every gradient-trained algorithm's networks and optimiser: its ``Config`` derives
    from this class (or :class:`PolicyConfig`), and its ``__post_init__`` calls :meth:`check_network`."""

    layer_norm: bool = static(False)
    """LayerNorm (Ba et al. 2016) after each hidden Dense layer, before its activation, in every network."""
    weight_decay: float = 0.0
    """Decoupled weight decay lambda (AdamW): theta -= lr * lambda * theta on the weight matrices at each step
    (not biases, LayerNorm parameters or log-stds); 0 = none."""

    def check_network(self) -> None:
        check(self, "weight_decay", lambda v: v >= 0, "the weight decay must be 0 (off) or positive, e.g. 1e-4")


@struct.dataclass
class PolicyConfig(NetworkConfig):
    """:class:`NetworkConfig` and the policy head's options, for the on-policy algorithms (``check_policy``)."""

    std: str = static("learned")
    """Gaussian policy std: learned (a state-independent parameter), fixed (exp(log_std_init), never trained) or
    state (mu and log sigma both outputs of the network, log sigma clipped to [-5, 2])."""
    temperature: float = 1.0
    """Softmax temperature tau of a categorical policy: pi(a|s) = softmax(z(s) / tau); 1 = the plain softmax."""
    torso: str = static("mlp")
    """Network torso: mlp (Dense layers over the flattened observation) or cnn (for H x W x C images with pixel
    values 0..255: scaled by 1/255, three 3x3 ReLU convolutions of 16, 32, 32 channels with strides 1, 2, 2,
    then the hidden_sizes Dense layers); ppo, a2c, a3c, impala, trpo, npg and is-pg take cnn."""

    def check_policy(self) -> None:
        self.check_network()
        check(self, "std", lambda v: v in STDS, "choose " + ", ".join(STDS))
        check(self, "temperature", lambda v: v > 0, "the temperature must be positive (1 = the plain softmax)")
        check(self, "torso", lambda v: v in TORSOS, "choose " + ", ".join(TORSOS))
        if self.torso == "cnn" and getattr(self, "normalize_obs", False):
            name = type(self).__module__.split(".")[-1]
            raise ConfigError(
                f"{name}: normalize_obs=True with torso='cnn': the CNN scales pixels by 1/{PIXEL_MAX:g} itself, "
                "and a running mean and variance per pixel (zero for a pixel that never changes) is not used for "
                "images; drop --normalize-obs (or use --torso mlp)."
            )

    def require_mlp_torso(self) -> None:
        """For the algorithms whose networks have no CNN torso (the linear-feature family): refuse ``cnn``."""
        if self.torso != "mlp":
            name = type(self).__module__.split(".")[-1]
            raise ConfigError(
                f"{name}.torso={self.torso!r} is invalid: {name} has only the MLP torso (its networks take flat "
                "features); for image observations use ppo, a2c, a3c, impala, trpo, npg or is-pg with --torso cnn."
            )


def check_torso(config) -> None:
    """The checks of every config with ``hidden_sizes`` and ``activation`` fields."""
    check(config, "hidden_sizes", lambda v: all(h >= 1 for h in v), "layer sizes must be positive")
    check(config, "activation", lambda v: v in ACTIVATIONS, "choose " + ", ".join(ACTIVATIONS))


def flatten_obs(obs, obs_shape: tuple[int, ...]):
    """``[..., *obs_shape] -> [..., prod(obs_shape)]``: MLPs see a flat feature vector."""
    lead = obs.shape[: obs.ndim - len(obs_shape)]
    return obs.reshape(lead + (-1,)) if len(obs_shape) != 1 else obs


def network_input(obs, obs_shape: tuple[int, ...], torso: str = "mlp"):
    """The observations ``[..., *obs_shape]`` as the torso takes them: flattened for the MLP
    (:func:`flatten_obs`), as they are (``[..., H, W, C]``) for the CNN."""
    if torso != "cnn":
        return flatten_obs(obs, obs_shape)
    check_image(obs_shape)
    return obs


def check_image(obs_shape: tuple[int, ...], high=None) -> None:
    """Raise ``ConfigError`` unless an observation of shape ``obs_shape`` (upper bounds ``high``, if known) is an
    image the CNN takes: ``H x W x C``, pixel values up to 255 (not an image already scaled to [0, 1])."""
    if len(obs_shape) != 3:
        what = "a flat vector" if len(obs_shape) <= 1 else f"of rank {len(obs_shape)}"
        raise ConfigError(
            f"torso='cnn' needs image observations of shape (H, W, C), channels last; this environment's "
            f"observations have shape {tuple(obs_shape)} ({what}). Use --torso mlp for a non-image observation; "
            "give a grey image a channel axis (H, W, 1), and put channels last (C, H, W -> H, W, C; Gymnasium: "
            "gymnasium.wrappers.TransformObservation)."
        )
    if high is not None and np.all(np.isfinite(high)) and float(np.max(high)) <= 1.0:
        raise ConfigError(
            f"torso='cnn' divides pixels by {PIXEL_MAX:g} (uint8 images, 0..255); this environment's image "
            f"observations are bounded by {float(np.max(high)):g}: already scaled. Give the image as 0..255 "
            "(e.g. multiplied by 255 and cast to uint8 in a gymnasium.ObservationWrapper), or use --torso mlp."
        )


def init_input(config: PolicyConfig, obs_space):
    """A zero observation ``[*obs_shape]`` as the torso takes it, for ``net.init``; with ``config.torso='cnn'``
    the observation space is checked first (:func:`check_image`)."""
    if config.torso == "cnn":
        check_image(tuple(obs_space.shape), getattr(obs_space, "high", None))
    return network_input(jnp.zeros(obs_space.shape, jnp.float32), tuple(obs_space.shape), config.torso)


def ortho(scale: float):
    return nn.initializers.orthogonal(scale)


class MLP(nn.Module):
    """Dense layers with orthogonal init (gain sqrt(2)) and zero biases; with ``layer_norm``, each Dense's output
    is normalised over its features (LayerNorm, learned scale 1 and offset 0 at init) before the activation."""

    hidden_sizes: Sequence[int]
    activation: str = "tanh"
    layer_norm: bool = False

    @nn.compact
    def __call__(self, x):
        act = ACTIVATIONS[self.activation]
        for size in self.hidden_sizes:
            x = nn.Dense(size, kernel_init=ortho(np.sqrt(2)), bias_init=nn.initializers.zeros)(x)
            x = act(nn.LayerNorm()(x) if self.layer_norm else x)
        return x


class CNN(nn.Module):
    r"""Images ``[..., H, W, C]`` -> features ``[..., hidden_sizes[-1]]``: :math:`x / 255`, then 3x3 convolutions of
    ``CNN_CHANNELS`` channels with ``CNN_STRIDES`` (SAME padding: an ``H x W`` image leaves
    :math:`\lceil H/4 \rceil \times \lceil W/4 \rceil \times 32` values), each followed by a ReLU, flattened,
    then the :class:`MLP` (``hidden_sizes``, ``activation``, ``layer_norm``). Orthogonal init with gain
    :math:`\sqrt 2` and zero biases, like the MLP. Any number of leading batch axes."""

    hidden_sizes: Sequence[int]
    activation: str = "relu"
    layer_norm: bool = False

    @nn.compact
    def __call__(self, x):
        x = x.astype(jnp.float32) / PIXEL_MAX
        for channels, stride in zip(CNN_CHANNELS, CNN_STRIDES, strict=True):
            x = nn.Conv(
                channels,
                (3, 3),
                strides=(stride, stride),
                padding="SAME",
                kernel_init=ortho(np.sqrt(2)),
                bias_init=nn.initializers.zeros,
            )(x)
            x = nn.relu(x)
        x = x.reshape(x.shape[:-3] + (-1,))
        return MLP(self.hidden_sizes, self.activation, self.layer_norm)(x)


def make_torso(torso: str, hidden_sizes: Sequence[int], activation: str, layer_norm: bool) -> nn.Module:
    """The torso named by ``PolicyConfig.torso``: :class:`MLP` or :class:`CNN`."""
    cls = CNN if torso == "cnn" else MLP
    return cls(hidden_sizes, activation, layer_norm)


def tempered(logits, temperature):
    r"""Logits of the softmax with temperature, :math:`z / \tau`: :math:`\pi(a|s) = e^{z_a/\tau} / \sum_b e^{z_b/\tau}`
    (:math:`\tau \to 0`: greedy, :math:`\tau \to \infty`: uniform). The number 1 leaves the logits untouched."""
    return logits if is_concrete(temperature) and temperature == 1 else logits / temperature


class PolicyHead(nn.Module):
    """Categorical logits (divided by ``temperature``), or a Gaussian mean and a log-std by ``std``:

    * ``learned`` — a state-independent parameter ``log_std`` (starts at ``log_std_init``), bounded;
    * ``fixed`` — the constant ``log_std_init`` (no parameter: never trained);
    * ``state`` — a second linear output of the torso (gain 0.01, bias ``log_std_init``), bounded.

    ``factors``: a ``MultiDiscrete`` action's ``nvec`` (``action_dim = sum(nvec)`` logits, a product of
    categoricals); ``()`` for one categorical or a Gaussian.
    """

    action_dim: int
    discrete: bool
    log_std_init: float = 0.0
    log_std_min: float = LOG_STD_MIN
    log_std_max: float = LOG_STD_MAX
    std: str = "learned"
    temperature: float = 1.0
    factors: tuple[int, ...] = ()

    @nn.compact
    def __call__(self, h):
        # A small last layer makes the initial policy nearly uniform / centred (Andrychowicz et al. 2021).
        out = nn.Dense(self.action_dim, kernel_init=ortho(0.01), bias_init=nn.initializers.zeros)(h)
        if self.discrete:
            return categorical(tempered(out, self.temperature), self.factors)
        if self.std == "fixed":
            return DiagGaussian(out, jnp.full(out.shape, self.log_std_init, out.dtype))
        if self.std == "state":
            log_std = nn.Dense(
                self.action_dim,
                kernel_init=ortho(0.01),
                bias_init=nn.initializers.constant(self.log_std_init),
                name="log_std_head",
            )(h)
            return DiagGaussian(out, jnp.clip(log_std, self.log_std_min, self.log_std_max))
        log_std = self.param("log_std", nn.initializers.constant(self.log_std_init), (self.action_dim,))
        log_std = jnp.clip(log_std, self.log_std_min, self.log_std_max)
        return DiagGaussian(out, jnp.broadcast_to(log_std, out.shape))


class ActorCritic(nn.Module):
    """``obs -> (pi(.|s), V(s))`` with separate torsos, or one shared torso when ``shared``; MLP torsos over flat
    observations ``[..., obs_dim]``, or, with ``torso='cnn'``, :class:`CNN` torsos over images ``[..., H, W, C]``."""

    action_dim: int
    discrete: bool
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    shared: bool = False
    log_std_init: float = 0.0
    layer_norm: bool = False
    std: str = "learned"
    temperature: float = 1.0
    factors: tuple[int, ...] = ()  # a MultiDiscrete action's nvec (envs.spaces.action_factors)
    torso: str = "mlp"  # "cnn": image observations [..., H, W, C] (make_torso)

    def setup(self):
        self.actor_torso = make_torso(self.torso, self.hidden_sizes, self.activation, self.layer_norm)
        if not self.shared:
            self.critic_torso = make_torso(self.torso, self.hidden_sizes, self.activation, self.layer_norm)
        self.policy_head = PolicyHead(
            self.action_dim,
            self.discrete,
            self.log_std_init,
            std=self.std,
            temperature=self.temperature,
            factors=self.factors,
        )
        self.value_head = nn.Dense(1, kernel_init=ortho(1.0), bias_init=nn.initializers.zeros)

    def __call__(self, obs):
        h_pi = self.actor_torso(obs)
        h_v = h_pi if self.shared else self.critic_torso(obs)
        return self.policy_head(h_pi), self.value_head(h_v)[..., 0]

    def value(self, obs):
        h = self.actor_torso(obs) if self.shared else self.critic_torso(obs)
        return self.value_head(h)[..., 0]
