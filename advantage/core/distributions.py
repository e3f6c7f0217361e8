"""Action distributions as small pytrees: categorical (softmax policy), diagonal
Gaussian, tanh-squashed Gaussian, and a product of categoricals for ``MultiDiscrete`` /
``MultiBinary`` actions. Each has ``sample``, ``log_prob``,
``entropy``, ``mode`` (the deterministic action) and ``kl``."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import struct

LOG_2PI = math.log(2.0 * math.pi)


@struct.dataclass
class Categorical:
    r"""Softmax policy :math:`\pi(a|s) = \exp(z_a) / \sum_b \exp(z_b)` over ``logits [..., n]``."""

    logits: jax.Array

    @property
    def log_probs(self) -> jax.Array:
        return jax.nn.log_softmax(self.logits, axis=-1)

    def sample(self, key: jax.Array) -> jax.Array:
        return jax.random.categorical(key, self.logits, axis=-1).astype(jnp.int32)

    def log_prob(self, action: jax.Array) -> jax.Array:
        return jnp.take_along_axis(self.log_probs, action[..., None].astype(jnp.int32), axis=-1)[..., 0]

    def entropy(self) -> jax.Array:
        logp = self.log_probs
        return -jnp.sum(jnp.exp(logp) * logp, axis=-1)

    def mode(self) -> jax.Array:
        return jnp.argmax(self.logits, axis=-1).astype(jnp.int32)

    def kl(self, other: Categorical) -> jax.Array:
        """KL(self || other)."""
        logp, logq = self.log_probs, other.log_probs
        return jnp.sum(jnp.exp(logp) * (logp - logq), axis=-1)


@struct.dataclass
class DiagGaussian:
    r"""Gaussian policy :math:`\mathcal N(\mu(s), \operatorname{diag}\sigma^2)` over the last axis."""

    mean: jax.Array
    log_std: jax.Array

    def sample(self, key: jax.Array) -> jax.Array:
        return self.mean + jnp.exp(self.log_std) * jax.random.normal(key, self.mean.shape, self.mean.dtype)

    def log_prob(self, action: jax.Array) -> jax.Array:
        z = (action - self.mean) * jnp.exp(-self.log_std)
        return jnp.sum(-0.5 * z**2 - self.log_std - 0.5 * LOG_2PI, axis=-1)

    def entropy(self) -> jax.Array:
        return jnp.sum(self.log_std + 0.5 * (1.0 + LOG_2PI), axis=-1) * jnp.ones(self.mean.shape[:-1])

    def mode(self) -> jax.Array:
        return self.mean

    def kl(self, other: DiagGaussian) -> jax.Array:
        """KL(self || other), closed form."""
        var_ratio = jnp.exp(2.0 * (self.log_std - other.log_std))
        t = ((self.mean - other.mean) * jnp.exp(-other.log_std)) ** 2
        return jnp.sum(0.5 * (var_ratio + t - 1.0) - (self.log_std - other.log_std), axis=-1)


@struct.dataclass
class TanhGaussian:
    r"""``a = tanh(u)``, ``u ~ N(mean, std)``: a Gaussian squashed into (-1, 1) (SAC).

    :math:`\log\pi(a) = \log\mathcal N(u) - \sum_i \log(1 - \tanh^2 u_i)`, with the
    stable form :math:`\log(1-\tanh^2 u) = 2(\log 2 - u - \operatorname{softplus}(-2u))`
    (Haarnoja et al. 2018, appendix C).
    """

    mean: jax.Array
    log_std: jax.Array

    @property
    def base(self) -> DiagGaussian:
        return DiagGaussian(self.mean, self.log_std)

    @staticmethod
    def _log_det_jacobian(u: jax.Array) -> jax.Array:
        return jnp.sum(2.0 * (math.log(2.0) - u - jax.nn.softplus(-2.0 * u)), axis=-1)

    def sample_and_log_prob(self, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Reparameterised sample and its log-density (use this, not ``log_prob(sample)``)."""
        u = self.base.sample(key)
        return jnp.tanh(u), self.base.log_prob(u) - self._log_det_jacobian(u)

    def sample(self, key: jax.Array) -> jax.Array:
        return jnp.tanh(self.base.sample(key))

    def log_prob(self, action: jax.Array, eps: float = 1e-6) -> jax.Array:
        u = jnp.arctanh(jnp.clip(action, -1.0 + eps, 1.0 - eps))
        return self.base.log_prob(u) - self._log_det_jacobian(u)

    def entropy(self, key: jax.Array | None = None) -> jax.Array:
        """No closed form: a one-sample estimate ``-log pi(a)`` (needs ``key``)."""
        if key is None:
            raise ValueError("TanhGaussian.entropy needs a key: it is a one-sample Monte-Carlo estimate")
        return -self.sample_and_log_prob(key)[1]

    def mode(self) -> jax.Array:
        return jnp.tanh(self.mean)


@struct.dataclass
class MultiCategorical:
    r"""Independent categoricals over ``k`` factors (``MultiDiscrete(nvec)``; ``MultiBinary`` is ``nvec = [2]*n``).

    ``logits [..., sum(nvec)]`` hold factor ``i``'s logits in the slice ``offsets[i] : offsets[i] + nvec[i]``;
    an action is ``a [..., k]`` (int). The factors are independent given the state, so

    .. math:: \pi(a|s) = \prod_i \pi_i(a_i|s),\quad \log\pi(a|s) = \sum_i \log\pi_i(a_i|s),\quad
              H[\pi] = \sum_i H[\pi_i],\quad \mathrm{KL}(\pi\|\pi') = \sum_i \mathrm{KL}(\pi_i\|\pi'_i)

    (the action distribution of Stable-Baselines3's ``MultiCategoricalDistribution``). A factor with two
    choices is a Bernoulli with logit :math:`z_1 - z_0`.
    """

    logits: jax.Array
    nvec: tuple[int, ...] = struct.field(pytree_node=False)

    def factors(self) -> list[Categorical]:
        """The ``k`` factor distributions, each a :class:`Categorical` over its own slice of the logits."""
        out, start = [], 0
        for n in self.nvec:
            out.append(Categorical(self.logits[..., start : start + n]))
            start += n
        return out

    def sample(self, key: jax.Array) -> jax.Array:
        keys = jax.random.split(key, len(self.nvec))
        return jnp.stack([f.sample(k) for f, k in zip(self.factors(), keys)], axis=-1)

    def log_prob(self, action: jax.Array) -> jax.Array:
        return jnp.sum(jnp.stack([f.log_prob(action[..., i]) for i, f in enumerate(self.factors())], -1), -1)

    def entropy(self) -> jax.Array:
        return jnp.sum(jnp.stack([f.entropy() for f in self.factors()], -1), -1)

    def mode(self) -> jax.Array:
        return jnp.stack([f.mode() for f in self.factors()], axis=-1)

    def kl(self, other: MultiCategorical) -> jax.Array:
        """KL(self || other), summed over the factors."""
        return jnp.sum(jnp.stack([p.kl(q) for p, q in zip(self.factors(), other.factors())], -1), -1)


def categorical(logits: jax.Array, factors: tuple[int, ...] = ()) -> Categorical | MultiCategorical:
    """The discrete policy over ``logits``: one :class:`Categorical`, or a :class:`MultiCategorical` over
    ``factors`` (a ``MultiDiscrete`` action space's ``nvec``; see ``envs.spaces.action_factors``)."""
    return MultiCategorical(logits, tuple(factors)) if factors else Categorical(logits)
