"""Policy and value losses as pure functions over flat batches ``[N]``."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def clipped_surrogate(log_prob, old_log_prob, advantages, clip_eps):
    r"""PPO's clipped surrogate objective, negated to a loss (Schulman et al. 2017, eq. 7).

    .. math::
        r_t(\theta) = \frac{\pi_\theta(a_t|s_t)}{\pi_{\theta_\text{old}}(a_t|s_t)}, \qquad
        L^{CLIP} = -\hat{\mathbb E}_t\big[\min(r_t \hat A_t,\;
                   \operatorname{clip}(r_t, 1-\epsilon, 1+\epsilon)\hat A_t)\big]

    Returns ``(loss, metrics)`` with the fraction of samples whose ratio was clipped,
    the largest ratio, and the KL estimate between old and new policy on the batch
    ``approx_kl = E[(r-1) - log r]`` (unbiased and non-negative; Schulman 2020,
    "Approximating KL divergence").
    """
    log_ratio = log_prob - old_log_prob
    ratio = jnp.exp(log_ratio)
    unclipped = ratio * advantages
    clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantages
    loss = -jnp.mean(jnp.minimum(unclipped, clipped))
    metrics = {
        "clip_fraction": jnp.mean((jnp.abs(ratio - 1.0) > clip_eps).astype(jnp.float32)),
        "approx_kl": jnp.mean((ratio - 1.0) - log_ratio),
        "ratio_max": jnp.max(ratio),
    }
    return loss, metrics


def value_loss(values, old_values, targets, clip_eps=None):
    r"""Squared-error value loss :math:`\tfrac12 \hat{\mathbb E}_t[(V_\phi(s_t) - \hat V_t)^2]`.

    With ``clip_eps`` (PPO's optional value clipping, as in OpenAI baselines) the new
    value may move at most ``clip_eps`` from ``old_values`` before the loss stops
    rewarding it:
    :math:`\tfrac12\max\big((V-\hat V)^2, (V_\text{old} + \operatorname{clip}(V - V_\text{old}, \pm\epsilon)
    - \hat V)^2\big)`.
    """
    sq = (values - targets) ** 2
    if clip_eps is None:
        return 0.5 * jnp.mean(sq)
    v_clipped = old_values + jnp.clip(values - old_values, -clip_eps, clip_eps)
    return 0.5 * jnp.mean(jnp.maximum(sq, (v_clipped - targets) ** 2))


def explained_variance(predictions, targets):
    """``1 - Var[targets - predictions] / Var[targets]``: 1 is perfect, 0 no better than a constant, < 0 worse."""
    var_t = jnp.var(targets)
    return jnp.where(var_t > 0, 1.0 - jnp.var(targets - predictions) / jnp.maximum(var_t, 1e-12), jnp.nan)


def normalize(x, eps=1e-8):
    """Zero mean, unit standard deviation (PPO's per-minibatch advantage normalisation)."""
    return (x - jnp.mean(x)) / (jnp.std(x) + eps)


def global_norm(tree) -> jax.Array:
    return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree)))
