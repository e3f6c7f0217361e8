"""``advantage.core.importance``: importance weights and their diagnostics by hand (moved from
test_offpolicy_pg.py with the functions), the slides' degeneracy of full products, and the shape check."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from advantage.core.importance import LOG_WEIGHT_MAX, importance_weights, weight_statistics

# ----------------------------------------------------------------------------- the weights, by hand
RATIOS = np.array([2.0, 0.5, 3.0, 0.1], np.float32)  # one env, 4 steps; the episode ends after step 1
DONE = np.array([False, True, False, False])


@pytest.mark.parametrize("mode, expected", [
    ("per-decision", [2.0, 1.0, 3.0, 0.3]),  # prod_{k <= t} rho_k, restarting after the episode end
    ("full", [1.0, 1.0, 0.3, 0.3]),          # the fragment's whole product, for every step of it
    ("truncated", [1.0, 0.5, 1.0, 0.1]),     # prod_{k <= t} min(1, rho_k)
])
def test_importance_weights_by_hand(mode, expected):
    w, log_w = importance_weights(jnp.log(RATIOS)[:, None], DONE[:, None], mode, rho_bar=1.0)
    np.testing.assert_allclose(np.asarray(w[:, 0]), expected, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(log_w[:, 0]), np.log(expected), atol=1e-5)


def test_truncation_level_and_the_log_weight_cap():
    w, _ = importance_weights(jnp.log(RATIOS)[:, None], DONE[:, None], "truncated", rho_bar=2.5)
    np.testing.assert_allclose(np.asarray(w[:, 0]), [2.0, 1.0, 2.5, 0.25], rtol=1e-5)
    w, log_w = importance_weights(jnp.full((100, 1), 1.0), jnp.zeros((100, 1), bool), "per-decision")
    assert float(log_w.max()) == LOG_WEIGHT_MAX and np.all(np.isfinite(np.asarray(w)))


def test_weight_statistics_by_hand():
    valid = jnp.ones(4)
    s = weight_statistics(jnp.ones(4), jnp.zeros(4), jnp.zeros(4), valid)
    got = [s["ess"], s["mean_log_weight"], s["frac_zero"], s["max_ratio"]]
    np.testing.assert_allclose(got, [1, 0, 0, 1], atol=1e-6)
    w = jnp.array([1.0, 1e-4, 1e-5, 0.0])
    s = weight_statistics(w, jnp.log(jnp.maximum(w, 1e-30)), jnp.log(jnp.array([1.0, 2.0, 0.5, 0.1])), valid)
    np.testing.assert_allclose(s["ess"], (w.sum() ** 2) / (4 * (w**2).sum()), rtol=1e-5)  # ~ 1/4: one sample counts
    np.testing.assert_allclose(s["frac_zero"], 0.75)
    np.testing.assert_allclose(s["max_ratio"], 2.0, rtol=1e-6)
    # invalid samples are ignored
    s = weight_statistics(w, jnp.zeros(4), jnp.zeros(4), jnp.array([1.0, 0.0, 0.0, 0.0]))
    np.testing.assert_allclose([s["ess"], s["frac_zero"]], [1.0, 0.0], atol=1e-6)
    # all valid weights 0 (underflow) while invalid entries are huge: finite statistics, no 0 * inf
    big = jnp.array([0.0, 0.0, 5e8, 5e8])
    s = weight_statistics(big, jnp.array([-300.0, -200.0, 20.0, 20.0]), jnp.array([0.0, 0.0, 90.0, 90.0]),
                               jnp.array([1.0, 1.0, 0.0, 0.0]))
    assert float(s["ess"]) == 0.0 and float(s["frac_zero"]) == 1.0 and float(s["max_ratio"]) == 1.0
    assert all(np.isfinite(float(v)) for v in s.values())


def test_full_products_degenerate_faster_than_per_decision_ones():
    """The slides' point: prod_t rho_t -> 0 or infinity, so fewer and fewer samples keep any weight.

    Ratios with log rho ~ N(0, 0.3^2): the full product over 16 steps has log w ~ N(0, 16 * 0.09), whose
    ESS is about exp(-1.44) = 0.24; per-decision products are shorter on average, truncated ones bounded."""
    def ess(mode, t, seed=0):
        log_rho = 0.3 * jax.random.normal(jax.random.PRNGKey(seed), (t, 256))
        w, log_w = importance_weights(log_rho, jnp.zeros((t, 256), bool), mode)
        return float(weight_statistics(w, log_w, log_rho, jnp.ones_like(w))["ess"])

    assert ess("full", 16) < ess("per-decision", 16) < ess("truncated", 16) < 1.0
    assert 0.15 < ess("full", 16) < 0.4
    assert ess("full", 64) < ess("full", 16) < ess("full", 4)  # longer products, fewer effective samples


def test_unknown_mode_and_mismatched_shapes_are_errors():
    with pytest.raises(ValueError, match="mode must be one of"):
        importance_weights(jnp.zeros((3, 1)), jnp.zeros((3, 1), bool), "weighted")
    with pytest.raises(ValueError, match=r"log_rho_t \(3, 1\), done_t \(3,\)"):
        importance_weights(jnp.zeros((3, 1)), jnp.zeros(3, bool), "full")
