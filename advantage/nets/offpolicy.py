"""The networks of the off-policy actor-critics (DDPG, TD3, SAC): PyTorch-initialised layers, and
the Q critic as an ensemble of independent networks ``vmap``-ed over stacked parameters.

``Linear`` uses PyTorch's default initialisation, as in Fujimoto et al.'s and Stable-Baselines3's
TD3/SAC networks (the on-policy ``nets/mlp.py`` initialises orthogonally). The actors differ
(TD3's deterministic ``tanh`` actor, SAC's squashed Gaussian) and live in their algorithm's file.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from advantage.nets.mlp import ACTIVATIONS


class Linear(nn.Module):
    """``x W + b`` with PyTorch's default initialisation, ``W, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))``."""

    features: int

    @nn.compact
    def __call__(self, x):
        bound = 1.0 / math.sqrt(x.shape[-1])
        init = lambda key, shape: jax.random.uniform(key, shape, jnp.float32, -bound, bound)  # noqa: E731
        w = self.param("kernel", init, (x.shape[-1], self.features))
        b = self.param("bias", init, (self.features,))
        return x @ w + b


class Torso(nn.Module):
    """Hidden layers ``Linear -> activation``, one per entry of ``hidden_sizes`` (none: identity); with
    ``layer_norm``, ``Linear -> LayerNorm -> activation`` (as in Ball et al. 2023's RLPD critics)."""

    hidden_sizes: Sequence[int]
    activation: str = "relu"
    layer_norm: bool = False

    @nn.compact
    def __call__(self, x):
        for i, size in enumerate(self.hidden_sizes):
            x = Linear(size, name=f"hidden_{i}")(x)
            x = ACTIVATIONS[self.activation](nn.LayerNorm(name=f"norm_{i}")(x) if self.layer_norm else x)
        return x


class Critic(nn.Module):
    """``Q(s, a) = Linear(torso([s, a]))``: state and action enter the first layer together."""

    hidden_sizes: Sequence[int]
    activation: str = "relu"
    layer_norm: bool = False

    @nn.compact
    def __call__(self, obs, action):
        h = Torso(self.hidden_sizes, self.activation, self.layer_norm)(jnp.concatenate([obs, action], axis=-1))
        return Linear(1, name="out")(h)[..., 0]


def critic_net(config) -> Critic:
    """The critic of a config with ``hidden_sizes``, ``activation`` and ``layer_norm`` (``nets.mlp.NetworkConfig``)."""
    return Critic(config.hidden_sizes, config.activation, config.layer_norm)


def init_critics(key, config, obs_dim: int, act_dim: int):
    """Parameters of ``config.n_critics`` independent critics, stacked along a leading axis (for ``jax.vmap``)."""
    net = critic_net(config)
    return jax.vmap(lambda k: net.init(k, jnp.zeros((1, obs_dim)), jnp.zeros((1, act_dim))))(
        jax.random.split(key, config.n_critics)
    )


def q_values(config, critic_params, obs, action):
    """Every critic of the ensemble at ``(obs [B, obs_dim], action [B, act_dim])``: ``[n_critics, B]``."""
    net = critic_net(config)
    return jax.vmap(lambda p: net.apply(p, obs, action))(critic_params)
