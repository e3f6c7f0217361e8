r"""Policy-gradient, surrogate, KL and value losses as pure functions.

Arrays are time-major ``[T, B]`` or flat ``[N]`` (a minibatch): every function here reduces
over all axes, so both work. Names follow rlax: ``logp_t = log pi(a_t|s_t)`` of the policy being
trained, ``old_logp_t`` of the policy that collected the data, ``adv_t`` an advantage (or any
weight of the score function), ``v_t = V(s_t)``, ``target_t`` its regression target, ``mask_t``
1 where a sample counts and 0 where it does not (padding, unfinished episodes). Each function
checks at trace time that the per-sample arguments have the same shape
(:mod:`advantage.core.checks`).

Everything is a *loss*, to minimise: the negated objective where the paper maximises one.
Advantages and targets are constants of the loss (``stop_gradient``): their gradient never flows.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from advantage.core.checks import assert_equal_shape

__all__ = [
    "masked_mean",
    "policy_gradient_loss",
    "surrogate_loss",
    "clipped_surrogate_loss",
    "mean_kl",
    "value_loss",
    "clipped_value_loss",
    "explained_variance",
    "normalize",
    "global_norm",
]


def masked_mean(x, mask_t):
    r""":math:`\sum_t m_t x_t / \max(\sum_t m_t, 1)`: the mean over the samples that count (0 if none does)."""
    assert_equal_shape("masked_mean", x=x, mask_t=mask_t)
    return jnp.sum(x * mask_t) / jnp.maximum(jnp.sum(mask_t), 1.0)


def policy_gradient_loss(logp_t, adv_t, mask_t=None):
    r"""The score-function (REINFORCE) loss, whose gradient is the policy gradient.

    .. math::
        L(\theta) = -\hat{\mathbb E}_t\big[\log\pi_\theta(a_t|s_t)\,\Psi_t\big], \qquad
        -\nabla_\theta L = \hat{\mathbb E}_t\big[\Psi_t\,\nabla_\theta\log\pi_\theta(a_t|s_t)\big]

    (Williams 1992, eq. 11; Schulman et al. 2016, eq. 1, for the choices of :math:`\Psi_t`). "A loss
    whose gradient, for the right data, is the policy gradient" (Spinning Up): its *value* means
    nothing, only its gradient does. ``adv_t`` (:math:`\Psi_t`: a return, an advantage, a TD error,
    ``Q(s, a)``, or an importance weight times an advantage) is a constant. With ``mask_t`` the mean
    runs over the samples with :math:`m_t = 1` (:func:`masked_mean`).
    """
    assert_equal_shape("policy_gradient_loss", logp_t=logp_t, adv_t=adv_t, mask_t=mask_t)
    score_t = logp_t * jax.lax.stop_gradient(adv_t)
    return -(jnp.mean(score_t) if mask_t is None else masked_mean(score_t, mask_t))


def surrogate_loss(logp_t, old_logp_t, adv_t):
    r"""The importance-sampled surrogate, negated (PPO eq. 6 "CPI"; TRPO eq. 14, sample form).

    .. math::
        L(\theta) = -\hat{\mathbb E}_t\big[\rho_t(\theta)\hat A_t\big], \qquad
        \rho_t(\theta) = \frac{\pi_\theta(a_t|s_t)}{\pi_{\theta_\text{old}}(a_t|s_t)}
            = \exp(\log\pi_\theta - \log\pi_{\theta_\text{old}})

    At :math:`\theta = \theta_\text{old}` its gradient is :func:`policy_gradient_loss`'s.
    """
    assert_equal_shape("surrogate_loss", logp_t=logp_t, old_logp_t=old_logp_t, adv_t=adv_t)
    return -jnp.mean(jnp.exp(logp_t - old_logp_t) * adv_t)


def clipped_surrogate_loss(logp_t, old_logp_t, adv_t, epsilon):
    r"""PPO's clipped surrogate objective, negated to a loss (Schulman et al. 2017, eq. 7).

    .. math::
        L^{CLIP} = -\hat{\mathbb E}_t\big[\min(\rho_t \hat A_t,\;
                   \operatorname{clip}(\rho_t, 1-\epsilon, 1+\epsilon)\hat A_t)\big]

    Returns ``(loss, metrics)`` with the fraction of samples whose ratio was clipped, the largest
    ratio, and the KL estimate between old and new policy on the batch
    ``approx_kl = E[(rho - 1) - log rho]`` (unbiased and non-negative; Schulman 2020,
    "Approximating KL divergence", the k3 estimator).
    """
    assert_equal_shape("clipped_surrogate_loss", logp_t=logp_t, old_logp_t=old_logp_t, adv_t=adv_t)
    log_ratio = logp_t - old_logp_t
    ratio = jnp.exp(log_ratio)
    unclipped = ratio * adv_t
    clipped = jnp.clip(ratio, 1.0 - epsilon, 1.0 + epsilon) * adv_t
    loss = -jnp.mean(jnp.minimum(unclipped, clipped))
    metrics = {
        "clip_fraction": jnp.mean((jnp.abs(ratio - 1.0) > epsilon).astype(jnp.float32)),
        "approx_kl": jnp.mean((ratio - 1.0) - log_ratio),
        "ratio_max": jnp.max(ratio),
    }
    return loss, metrics


def mean_kl(old_dist, dist):
    r"""The mean KL from the old policy, in closed form per state (TRPO eq. 12; PPO eq. 8):

    .. math::
        \overline{\mathrm{KL}} = \hat{\mathbb E}_t\big[
            \mathrm{KL}(\pi_{\theta_\text{old}}(\cdot|s_t)\,\|\,\pi_\theta(\cdot|s_t))\big]

    ``old_dist`` and ``dist`` are distributions of :mod:`advantage.core.distributions` over the
    same batch of states.
    """
    kl_t = old_dist.kl(dist)
    return jnp.mean(kl_t)


def value_loss(v_t, target_t, mask_t=None):
    r"""Squared-error value regression :math:`\tfrac12\hat{\mathbb E}_t[(V(s_t) - \hat V_t)^2]`.

    Its negative gradient is the semi-gradient critic step :math:`\delta_t \nabla V(s_t)` with
    :math:`\delta_t = \hat V_t - V(s_t)`: the target is a constant. With ``mask_t`` the mean runs
    over the samples that count.
    """
    assert_equal_shape("value_loss", v_t=v_t, target_t=target_t, mask_t=mask_t)
    sq_t = (v_t - jax.lax.stop_gradient(target_t)) ** 2
    return 0.5 * (jnp.mean(sq_t) if mask_t is None else masked_mean(sq_t, mask_t))


def clipped_value_loss(v_t, old_v_t, target_t, epsilon):
    r"""PPO's optional value clipping (as in OpenAI baselines): the new value may move at most
    :math:`\epsilon` from the old one before the loss stops rewarding it,

    .. math::
        \tfrac12\hat{\mathbb E}_t\max\big((V - \hat V)^2,\;
            (V_\text{old} + \operatorname{clip}(V - V_\text{old}, -\epsilon, \epsilon) - \hat V)^2\big).
    """
    assert_equal_shape("clipped_value_loss", v_t=v_t, old_v_t=old_v_t, target_t=target_t)
    target_t = jax.lax.stop_gradient(target_t)
    v_clipped = old_v_t + jnp.clip(v_t - old_v_t, -epsilon, epsilon)
    return 0.5 * jnp.mean(jnp.maximum((v_t - target_t) ** 2, (v_clipped - target_t) ** 2))


def explained_variance(v_t, target_t, mask_t=None):
    r""":math:`1 - \operatorname{Var}[\hat V - V] / \operatorname{Var}[\hat V]`: 1 is perfect, 0 no better
    than a constant, < 0 worse; NaN when the targets do not vary. With ``mask_t`` the variances run
    over the samples that count."""
    assert_equal_shape("explained_variance", v_t=v_t, target_t=target_t, mask_t=mask_t)
    if mask_t is None:
        var_t = jnp.var(target_t)
        return jnp.where(var_t > 0, 1.0 - jnp.var(target_t - v_t) / jnp.maximum(var_t, 1e-12), jnp.nan)

    def var(x):
        return masked_mean((x - masked_mean(x, mask_t)) ** 2, mask_t)

    var_t = var(target_t)
    return jnp.where(var_t > 0, 1.0 - var(target_t - v_t) / jnp.maximum(var_t, 1e-12), jnp.nan)


def normalize(x, mask_t=None, eps=1e-8):
    """Zero mean, unit (population) standard deviation: PPO's advantage normalisation. With ``mask_t``
    the statistics are those of the samples that count (the others are shifted and scaled alike)."""
    if mask_t is None:
        return (x - jnp.mean(x)) / (jnp.std(x) + eps)
    mean = masked_mean(x, mask_t)
    return (x - mean) / (jnp.sqrt(masked_mean((x - mean) ** 2, mask_t)) + eps)


def global_norm(tree) -> jax.Array:
    r""":math:`\sqrt{\sum_i \|x_i\|^2}` over the leaves of ``tree`` (the norm gradient clipping uses)."""
    return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree)))
