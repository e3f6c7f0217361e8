"""``advantage.core.losses``: every loss by hand (the arithmetic in the comments), its gradient where the
gradient is the point, and the shape checks; ``core.checks`` itself."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from advantage.core import checks, losses
from advantage.core.distributions import Categorical, DiagGaussian


# ----------------------------------------------------------------------------- the score-function loss
def test_policy_gradient_loss_by_hand():
    logp = jnp.log(jnp.array([0.5, 0.25, 0.8]))
    adv = jnp.array([2.0, -1.0, 0.5])
    # -mean(logp * A) = -(2 log .5 - log .25 + .5 log .8) / 3
    expected = -(2 * np.log(0.5) - np.log(0.25) + 0.5 * np.log(0.8)) / 3
    np.testing.assert_allclose(losses.policy_gradient_loss(logp, adv), expected, rtol=1e-6)
    # masked: only samples 0 and 2 count -> -(2 log .5 + .5 log .8) / 2
    mask = jnp.array([1.0, 0.0, 1.0])
    np.testing.assert_allclose(losses.policy_gradient_loss(logp, adv, mask),
                               -(2 * np.log(0.5) + 0.5 * np.log(0.8)) / 2, rtol=1e-6)
    # nothing counts: 0, not 0 / 0
    assert float(losses.policy_gradient_loss(logp, adv, jnp.zeros(3))) == 0.0


def test_policy_gradient_loss_gradient_is_minus_the_weights_and_none_flows_into_them():
    logp = jnp.array([[-1.0, -2.0], [-0.5, -3.0]])  # [T=2, B=2]
    adv = jnp.array([[1.0, -2.0], [3.0, 0.5]])
    g_logp, g_adv = jax.grad(losses.policy_gradient_loss, argnums=(0, 1))(logp, adv)
    np.testing.assert_allclose(g_logp, -adv / 4)  # d/dlogp_t of -1/N sum logp_t A_t
    np.testing.assert_allclose(g_adv, 0.0)  # the advantages are constants


def test_masked_mean_by_hand():
    x = jnp.array([1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(losses.masked_mean(x, jnp.array([1.0, 0.0, 1.0, 0.0])), 2.0)
    np.testing.assert_allclose(losses.masked_mean(x, jnp.array([True, True, True, True])), 2.5)


# ----------------------------------------------------------------------------- surrogates (moved from test_ppo*)
def test_clipped_surrogate_by_hand():
    # ratios 0.5, 1.0, 1.5, 1.5 ; advantages +1, -2, +1, -1 ; eps 0.2
    old = jnp.zeros(4)
    new = jnp.log(jnp.array([0.5, 1.0, 1.5, 1.5]))
    adv = jnp.array([1.0, -2.0, 1.0, -1.0])
    loss, m = losses.clipped_surrogate_loss(new, old, adv, 0.2)
    # min(r A, clip(r) A): 0.5*1=0.5 vs 0.8*1 -> 0.5 ; -2 ; 1.5 vs 1.2 -> 1.2 ; -1.5 vs -1.2 -> -1.5
    np.testing.assert_allclose(loss, -np.mean([0.5, -2.0, 1.2, -1.5]), rtol=1e-6)
    np.testing.assert_allclose(m["clip_fraction"], 0.75)
    r = np.array([0.5, 1.0, 1.5, 1.5])
    np.testing.assert_allclose(m["approx_kl"], np.mean((r - 1) - np.log(r)), rtol=1e-6)
    np.testing.assert_allclose(m["ratio_max"], 1.5, rtol=1e-6)


def test_clipped_surrogate_gradient_vanishes_outside_the_trust_region():
    adv = jnp.array([1.0, -1.0])

    def grad(ratios):
        return jax.grad(lambda lp: losses.clipped_surrogate_loss(lp, jnp.zeros(2), adv, 0.2)[0])(jnp.log(ratios))

    np.testing.assert_allclose(grad(jnp.array([1.5, 0.5])), 0.0)  # past 1+eps with A>0 and past 1-eps with A<0
    g = grad(jnp.array([0.9, 1.1]))
    assert g[0] < 0 and g[1] > 0  # inside: descend the loss = raise the good action, lower the bad one


def test_surrogate_loss_by_hand_and_its_gradient_at_the_old_policy_is_the_policy_gradient():
    # -mean(r A): ratios 2 and 0.5, advantages 1 and 3
    new_logp, old_logp = jnp.log(jnp.array([0.4, 0.1])), jnp.log(jnp.array([0.2, 0.2]))
    adv = jnp.array([1.0, 3.0])
    np.testing.assert_allclose(losses.surrogate_loss(new_logp, old_logp, adv), -(2 * 1 + 0.5 * 3) / 2, rtol=1e-6)
    # at theta = theta_old (ratio 1): grad = -A / N, the score-function loss's gradient
    g = jax.grad(losses.surrogate_loss)(old_logp, old_logp, adv)
    np.testing.assert_allclose(g, jax.grad(losses.policy_gradient_loss)(old_logp, adv), rtol=1e-6)


def test_mean_kl_by_hand():
    old = Categorical(jnp.log(jnp.array([[0.5, 0.5], [0.9, 0.1]])))
    new = Categorical(jnp.log(jnp.array([[0.8, 0.2], [0.9, 0.1]])))
    kl0 = 0.5 * np.log(0.5 / 0.8) + 0.5 * np.log(0.5 / 0.2)  # KL(old || new) in state 0; 0 in state 1
    np.testing.assert_allclose(losses.mean_kl(old, new), kl0 / 2, rtol=1e-6)
    # Gaussians: KL(N(0, 1) || N(1, 2^2)) = log 2 + (1 + 1) / (2 * 4) - 1/2
    g_old = DiagGaussian(jnp.zeros((1, 1)), jnp.zeros((1, 1)))
    g_new = DiagGaussian(jnp.ones((1, 1)), jnp.full((1, 1), np.log(2.0)))
    np.testing.assert_allclose(losses.mean_kl(g_old, g_new), np.log(2.0) + 2 / 8 - 0.5, rtol=1e-6)


# ----------------------------------------------------------------------------- value losses
def test_value_loss_by_hand_and_the_target_is_a_constant():
    v, target = jnp.array([2.0, 0.0]), jnp.array([3.0, 2.0])
    np.testing.assert_allclose(losses.value_loss(v, target), 0.5 * (1 + 4) / 2)  # 1/2 mean (V - G)^2
    np.testing.assert_allclose(losses.value_loss(v, target, jnp.array([0.0, 1.0])), 0.5 * 4)
    g_v, g_t = jax.grad(losses.value_loss, argnums=(0, 1))(v, target)
    np.testing.assert_allclose(g_v, (v - target) / 2)  # -delta / N: the semi-gradient critic step
    np.testing.assert_allclose(g_t, 0.0)


def test_value_loss_clipping_by_hand():
    v, v_old, target = jnp.array([2.0]), jnp.array([1.0]), jnp.array([3.0])
    np.testing.assert_allclose(losses.value_loss(v, target), 0.5)
    # clipped value 1.2 -> (1.2-3)^2 = 3.24 > 1, so the max picks the clipped term
    np.testing.assert_allclose(losses.clipped_value_loss(v, v_old, target, 0.2), 0.5 * 3.24, rtol=1e-6)
    # inside the clip range the clipped loss is the plain one
    np.testing.assert_allclose(losses.clipped_value_loss(jnp.array([1.1]), v_old, target, 0.2), 0.5 * 1.9**2,
                               rtol=1e-6)


def test_explained_variance_by_hand():
    target = jnp.array([1.0, 2.0, 3.0, 4.0])  # variance 1.25
    np.testing.assert_allclose(losses.explained_variance(target, target), 1.0)
    np.testing.assert_allclose(losses.explained_variance(jnp.full(4, 2.5), target), 0.0)
    # residuals [1, 0, -1, 0] (variance 0.5): 1 - 0.5 / 1.25 = 0.6
    np.testing.assert_allclose(losses.explained_variance(jnp.array([0.0, 2.0, 4.0, 4.0]), target), 0.6, rtol=1e-6)
    # masked: only the first three count -> targets [1, 2, 3] (var 2/3), residuals [1, 0, -1] (var 2/3): 0
    mask = jnp.array([1.0, 1.0, 1.0, 0.0])
    np.testing.assert_allclose(losses.explained_variance(jnp.array([0.0, 2.0, 4.0, 99.0]), target, mask), 0.0,
                               atol=1e-6)
    assert np.isnan(float(losses.explained_variance(target, jnp.ones(4))))  # constant targets


def test_normalize_by_hand():
    x = jnp.array([1.0, 3.0, 5.0, 7.0])  # mean 4, std sqrt(5)
    np.testing.assert_allclose(losses.normalize(x), (np.array([1, 3, 5, 7]) - 4) / np.sqrt(5), rtol=1e-5)
    # masked: statistics of [1, 3] (mean 2, std 1); the masked-out sample is shifted and scaled alike
    np.testing.assert_allclose(losses.normalize(x, jnp.array([1.0, 1.0, 0.0, 0.0])), [-1.0, 1.0, 3.0, 5.0],
                               rtol=1e-5)


# ----------------------------------------------------------------------------- shape checks
@pytest.mark.parametrize("call", [
    lambda a, b: losses.policy_gradient_loss(a, b),
    lambda a, b: losses.surrogate_loss(a, a, b),
    lambda a, b: losses.clipped_surrogate_loss(a, a, b, 0.2),
    lambda a, b: losses.value_loss(a, b),
    lambda a, b: losses.clipped_value_loss(a, a, b, 0.2),
    lambda a, b: losses.explained_variance(a, b),
    lambda a, b: losses.masked_mean(a, b),
])
def test_mismatched_shapes_fail_at_trace_time_with_the_shapes(call):
    """A [T, B] array where a flat [N] was meant would broadcast into a [N, N] loss: it is an error instead."""
    flat, column = jnp.zeros(4), jnp.zeros((4, 1))
    with pytest.raises(ValueError, match=r"\(4,\).*\(4, 1\)"):
        call(flat, column)
    with pytest.raises(ValueError):
        jax.jit(call)(flat, column)  # at trace time, inside jit


def test_checks_by_hand():
    checks.assert_rank("f", 2, x=jnp.zeros((2, 3)), y=np.zeros((1, 1)))
    checks.assert_rank("f", (1, 2), x=jnp.zeros(3))
    with pytest.raises(ValueError, match=r"f: expected rank 2, got x \(3,\)"):
        checks.assert_rank("f", 2, x=jnp.zeros(3))
    checks.assert_equal_shape("f", x=jnp.zeros((2, 3)), y=np.zeros((2, 3)), z=None)  # None is skipped
    with pytest.raises(ValueError, match=r"f: arguments must have the same shape, got x \(2,\), y \(3,\)"):
        checks.assert_equal_shape("f", x=jnp.zeros(2), y=jnp.zeros(3))
