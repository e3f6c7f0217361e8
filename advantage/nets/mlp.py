"""MLP torsos and actor-critic heads (Flax Linen; parameters are plain pytrees)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from advantage.config import check
from advantage.core.distributions import DiagGaussian, categorical

ACTIVATIONS: dict[str, Callable] = {"tanh": nn.tanh, "relu": nn.relu, "elu": nn.elu, "gelu": nn.gelu}


def check_torso(config) -> None:
    """The checks of every config with ``hidden_sizes`` and ``activation`` fields."""
    check(config, "hidden_sizes", lambda v: all(h >= 1 for h in v), "layer sizes must be positive")
    check(config, "activation", lambda v: v in ACTIVATIONS, "choose " + ", ".join(ACTIVATIONS))


def flatten_obs(obs, obs_shape: tuple[int, ...]):
    """``[..., *obs_shape] -> [..., prod(obs_shape)]``: MLPs see a flat feature vector."""
    lead = obs.shape[: obs.ndim - len(obs_shape)]
    return obs.reshape(lead + (-1,)) if len(obs_shape) != 1 else obs


def ortho(scale: float):
    return nn.initializers.orthogonal(scale)


class MLP(nn.Module):
    """Dense layers with orthogonal init (gain sqrt(2)) and zero biases."""

    hidden_sizes: Sequence[int]
    activation: str = "tanh"

    @nn.compact
    def __call__(self, x):
        act = ACTIVATIONS[self.activation]
        for size in self.hidden_sizes:
            x = act(nn.Dense(size, kernel_init=ortho(np.sqrt(2)), bias_init=nn.initializers.zeros)(x))
        return x


class PolicyHead(nn.Module):
    """Categorical logits, or a Gaussian mean with a state-independent, bounded log-std.

    ``factors``: a ``MultiDiscrete`` action's ``nvec`` (``action_dim = sum(nvec)`` logits, a product of
    categoricals); ``()`` for one categorical or a Gaussian."""

    action_dim: int
    discrete: bool
    log_std_init: float = 0.0
    log_std_min: float = -5.0
    log_std_max: float = 2.0
    factors: tuple[int, ...] = ()

    @nn.compact
    def __call__(self, h):
        # A small last layer makes the initial policy nearly uniform / centred (Andrychowicz et al. 2021).
        out = nn.Dense(self.action_dim, kernel_init=ortho(0.01), bias_init=nn.initializers.zeros)(h)
        if self.discrete:
            return categorical(out, self.factors)
        log_std = self.param("log_std", nn.initializers.constant(self.log_std_init), (self.action_dim,))
        log_std = jnp.clip(log_std, self.log_std_min, self.log_std_max)
        return DiagGaussian(out, jnp.broadcast_to(log_std, out.shape))


class ActorCritic(nn.Module):
    """``obs -> (pi(.|s), V(s))`` with separate torsos, or one shared torso when ``shared``."""

    action_dim: int
    discrete: bool
    hidden_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    shared: bool = False
    log_std_init: float = 0.0
    factors: tuple[int, ...] = ()  # a MultiDiscrete action's nvec (envs.spaces.action_factors)

    def setup(self):
        self.actor_torso = MLP(self.hidden_sizes, self.activation)
        if not self.shared:
            self.critic_torso = MLP(self.hidden_sizes, self.activation)
        self.policy_head = PolicyHead(self.action_dim, self.discrete, self.log_std_init, factors=self.factors)
        self.value_head = nn.Dense(1, kernel_init=ortho(1.0), bias_init=nn.initializers.zeros)

    def __call__(self, obs):
        h_pi = self.actor_torso(obs)
        h_v = h_pi if self.shared else self.critic_torso(obs)
        return self.policy_head(h_pi), self.value_head(h_v)[..., 0]

    def value(self, obs):
        h = self.actor_torso(obs) if self.shared else self.critic_torso(obs)
        return self.value_head(h)[..., 0]
