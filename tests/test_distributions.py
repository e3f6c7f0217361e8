import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from advantage.core.distributions import Categorical, DiagGaussian, TanhGaussian
from advantage.core.normalization import RunningMeanStd


def test_categorical_log_prob_entropy_kl_by_hand():
    p = np.array([0.2, 0.3, 0.5])
    q = np.array([0.5, 0.25, 0.25])
    d, e = Categorical(jnp.log(jnp.asarray(p))), Categorical(jnp.log(jnp.asarray(q)) + 3.0)  # logits shift-invariant
    np.testing.assert_allclose(d.log_prob(jnp.array(2)), np.log(0.5), rtol=1e-6)
    np.testing.assert_allclose(d.entropy(), -(p * np.log(p)).sum(), rtol=1e-6)
    np.testing.assert_allclose(d.kl(e), (p * np.log(p / q)).sum(), rtol=1e-5)
    assert int(d.mode()) == 2


def test_categorical_sampling_frequencies():
    d = Categorical(jnp.log(jnp.array([0.2, 0.3, 0.5])))
    a = jax.vmap(d.sample)(jax.random.split(jax.random.PRNGKey(0), 20000))
    np.testing.assert_allclose(np.bincount(np.asarray(a), minlength=3) / 20000, [0.2, 0.3, 0.5], atol=0.015)


def test_diag_gaussian_matches_scipy():
    mean, log_std = jnp.array([0.5, -1.0]), jnp.array([-0.3, 0.7])
    d = DiagGaussian(mean, log_std)
    x = jnp.array([0.1, 2.0])
    ref = stats.norm(np.asarray(mean), np.exp(np.asarray(log_std)))
    np.testing.assert_allclose(d.log_prob(x), ref.logpdf(np.asarray(x)).sum(), rtol=1e-5)
    np.testing.assert_allclose(d.entropy(), ref.entropy().sum(), rtol=1e-5)
    other = DiagGaussian(jnp.array([0.0, 0.0]), jnp.array([0.0, 0.0]))
    # closed-form KL against a Monte-Carlo estimate
    xs = jax.vmap(d.sample)(jax.random.split(jax.random.PRNGKey(1), 200000))
    mc = np.mean(np.asarray(jax.vmap(d.log_prob)(xs) - jax.vmap(other.log_prob)(xs)))
    np.testing.assert_allclose(d.kl(other), mc, rtol=0.02)


def test_tanh_gaussian_density_is_change_of_variables():
    """log pi(a) = log N(u) - sum log(1 - tanh(u)^2): compare with a numerical density of tanh(u)."""
    mean, log_std = jnp.array([0.3]), jnp.array([-0.5])
    d = TanhGaussian(mean, log_std)
    a = jnp.linspace(-0.95, 0.95, 39)[:, None]
    logp = jax.vmap(d.log_prob)(a)
    u = np.arctanh(np.asarray(a[:, 0]))
    expected = stats.norm(0.3, np.exp(-0.5)).logpdf(u) - np.log(1 - np.tanh(u) ** 2)
    np.testing.assert_allclose(logp, expected, rtol=1e-4, atol=1e-5)
    # the density integrates to 1 over (-1, 1)
    grid = np.linspace(-0.99999, 0.99999, 200001)
    dens = np.exp(np.asarray(jax.vmap(d.log_prob)(jnp.asarray(grid)[:, None])))
    assert abs(np.trapezoid(dens, grid) - 1.0) < 2e-3
    # sample_and_log_prob agrees with log_prob of its sample and stays inside (-1, 1)
    s, lp = d.sample_and_log_prob(jax.random.PRNGKey(3))
    np.testing.assert_allclose(lp, d.log_prob(s), rtol=1e-4)
    assert np.all(np.abs(np.asarray(s)) < 1)


def test_tanh_gaussian_entropy_needs_key():
    with pytest.raises(ValueError, match="key"):
        TanhGaussian(jnp.zeros(1), jnp.zeros(1)).entropy()


def test_running_mean_std_equals_numpy_over_all_batches():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, size=(n, 3)) for n in (5, 17, 1, 40)]
    rms = RunningMeanStd.create((3,))
    for b in batches:
        rms = rms.update(jnp.asarray(b, jnp.float32))
    allx = np.concatenate(batches)
    np.testing.assert_allclose(rms.mean, allx.mean(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(rms.var, allx.var(0), rtol=1e-3)
    z = rms.normalize(jnp.asarray(allx, jnp.float32))
    np.testing.assert_allclose(np.asarray(z).mean(0), 0.0, atol=1e-3)
    np.testing.assert_allclose(np.asarray(z).std(0), 1.0, atol=1e-3)
