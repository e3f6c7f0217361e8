"""The natural-gradient machinery: CG, Fisher-vector products, the step length and the line search."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from advantage.core import natural_gradient as ng
from advantage.core.distributions import Categorical, DiagGaussian


# ----------------------------------------------------------------------------- conjugate gradient
def test_cg_matches_a_direct_solve():
    rng = np.random.default_rng(0)
    m = rng.normal(size=(8, 8)).astype(np.float32)
    a = m @ m.T + 0.5 * np.eye(8, dtype=np.float32)  # symmetric positive definite
    b = rng.normal(size=8).astype(np.float32)
    x, info = ng.conjugate_gradient(lambda v: jnp.asarray(a) @ v, jnp.asarray(b), max_iters=30, residual_tol=1e-12)
    np.testing.assert_allclose(np.asarray(x), np.linalg.solve(a.astype(np.float64), b), rtol=1e-3, atol=1e-4)
    assert not bool(info.nonpositive_curvature)
    assert float(info.residual) < 1e-3
    # exact arithmetic needs at most n = 8 iterations; the tolerance stops it there
    assert int(info.iterations) <= 12


def test_cg_stops_at_the_residual_tolerance_and_after_max_iters():
    x, info = ng.conjugate_gradient(lambda v: 2.0 * v, jnp.ones(5), max_iters=10)
    np.testing.assert_allclose(x, 0.5 * np.ones(5), rtol=1e-6)  # A = 2I: one iteration solves it
    assert int(info.iterations) == 1
    a = jnp.diag(jnp.arange(1.0, 11.0))
    _, info = ng.conjugate_gradient(lambda v: a @ v, jnp.ones(10), max_iters=3, residual_tol=0.0)
    assert int(info.iterations) == 3


@pytest.mark.parametrize("sign", [0.0, -1.0])
def test_cg_reports_nonpositive_curvature_without_nan(sign):
    x, info = ng.conjugate_gradient(lambda v: sign * v, jnp.ones(4), max_iters=10)
    assert bool(info.nonpositive_curvature)
    assert np.all(np.isfinite(np.asarray(x))) and np.all(np.asarray(x) == 0.0)  # the bad direction is not taken
    beta, shs = ng.max_step_length(x, sign * x, 0.01)
    assert float(beta) == 0.0 and np.isfinite(float(shs))
    beta, _ = ng.max_step_length(jnp.ones(4), -jnp.ones(4), 0.01)  # negative curvature along s: no step, no NaN
    assert float(beta) == 0.0


# ----------------------------------------------------------------------------- Fisher-vector products
def _tiny_policy(discrete: bool):
    """A linear policy on 5 states of dimension 2: softmax over 3 actions, or a 2-d Gaussian."""
    key = jax.random.PRNGKey(0)
    obs = jax.random.normal(key, (5, 2))
    params = {"w": 0.5 * jax.random.normal(jax.random.fold_in(key, 1), (2, 3 if discrete else 2)),
              "b": 0.1 * jnp.arange(3.0 if discrete else 2.0)}
    if not discrete:
        params["log_std"] = jnp.array([-0.3, 0.2])
    theta, unravel = ravel_pytree(params)

    def dist(th):
        p = unravel(th)
        out = obs @ p["w"] + p["b"]
        return Categorical(out) if discrete else DiagGaussian(out, jnp.broadcast_to(p["log_std"], out.shape))

    old = jax.tree.map(jax.lax.stop_gradient, dist(theta))
    return theta, dist, (lambda th: jnp.mean(old.kl(dist(th))))


def _explicit_fisher(theta, dist, discrete):
    """F = mean_s E_{a~pi(.|s)}[grad log pi(a|s) grad log pi(a|s)^T], in closed form.

    Softmax: the exact sum over the 3 actions. Gaussian: F = J_mu^T diag(1/sigma^2) J_mu + 2 J_ls^T J_ls
    per state (J_mu, J_ls: Jacobians of the mean and the log-std with respect to theta)."""
    d = dist(theta)
    per_state = []
    for s in range(5):
        if discrete:
            probs = jnp.exp(d.log_probs[s])
            scores = jnp.stack([jax.grad(lambda th: dist(th).log_prob(jnp.full(5, a))[s])(theta) for a in range(3)])
            per_state.append(jnp.einsum("a,ai,aj->ij", probs, scores, scores))
        else:
            j_mu = jax.jacobian(lambda th: dist(th).mean[s])(theta)
            j_ls = jax.jacobian(lambda th: dist(th).log_std[s])(theta)
            per_state.append(j_mu.T @ jnp.diag(jnp.exp(-2 * d.log_std[s])) @ j_mu + 2.0 * j_ls.T @ j_ls)
    return sum(per_state) / 5


@pytest.mark.parametrize("discrete", [True, False])
def test_fisher_vector_product_matches_the_explicit_kl_hessian_and_fisher(discrete):
    theta, dist, kl_fn = _tiny_policy(discrete)
    hessian = np.asarray(jax.hessian(kl_fn)(theta))
    damping = 0.1
    fvp = ng.fisher_vector_product(kl_fn, theta, damping)
    rng = np.random.default_rng(1)
    for _ in range(3):
        v = rng.normal(size=theta.shape).astype(np.float32)
        np.testing.assert_allclose(np.asarray(fvp(jnp.asarray(v))), hessian @ v + damping * v, rtol=1e-4, atol=1e-5)
    # at theta_old the KL's Hessian is the Fisher information matrix
    np.testing.assert_allclose(hessian, np.asarray(_explicit_fisher(theta, dist, discrete)), rtol=1e-4, atol=1e-5)


def test_step_length_puts_the_quadratic_kl_on_the_boundary():
    theta, dist, kl_fn = _tiny_policy(True)
    fvp = ng.fisher_vector_product(kl_fn, theta, 0.0)
    g = jnp.asarray(np.random.default_rng(2).normal(size=theta.shape).astype(np.float32))
    s, _ = ng.conjugate_gradient(fvp, g, 10)
    delta = 1e-4
    beta, shs = ng.max_step_length(s, fvp(s), delta)
    step = beta * s
    # float32: the two Fisher-vector products round differently (1.1e-4 relative with XLA limited to AVX)
    np.testing.assert_allclose(0.5 * float(step @ fvp(step)), delta, rtol=5e-4)
    np.testing.assert_allclose(float(shs), float(s @ fvp(s)), rtol=1e-6)
    # for a small delta the true KL is close to its quadratic model
    np.testing.assert_allclose(float(kl_fn(theta + step)), delta, rtol=0.1)


# ----------------------------------------------------------------------------- line search
def _quadratic_problem(direction):
    """L(theta) = g . theta (maximise), KL(theta) = 0.5 |theta - theta_old|^2."""
    theta_old = jnp.array([0.3, -0.2, 0.1])
    g = jnp.array([1.0, 2.0, -1.0])
    f = lambda th: (g @ th, 0.5 * jnp.sum((th - theta_old) ** 2))  # noqa: E731
    return theta_old, f, direction * g / jnp.linalg.norm(g)


def test_line_search_accepts_the_full_step_when_it_is_good():
    theta_old, f, d = _quadratic_problem(+1.0)
    new, info = ng.backtracking_line_search(f, theta_old, 0.1 * d, max_kl=0.01, max_iters=10, shrink=0.8)
    assert bool(info.accepted) and int(info.steps) == 1
    np.testing.assert_allclose(new, theta_old + 0.1 * d, rtol=1e-6)


def test_line_search_backtracks_until_the_kl_constraint_holds():
    theta_old, f, d = _quadratic_problem(+1.0)
    # |step| = 0.2 -> KL 0.02 > 0.01; 0.8 * 0.2 = 0.16 -> 0.0128 > 0.01; 0.64 * 0.2 = 0.128 -> 0.0082: accepted
    new, info = ng.backtracking_line_search(f, theta_old, 0.2 * d, max_kl=0.01, max_iters=10, shrink=0.8)
    assert bool(info.accepted) and int(info.steps) == 3
    np.testing.assert_allclose(float(info.fraction), 0.64, rtol=1e-6)
    assert float(info.kl) <= 0.01


@pytest.mark.parametrize("case", ["violates_kl", "lowers_surrogate"])
def test_line_search_rejection_restores_the_old_parameters_exactly(case):
    if case == "violates_kl":
        theta_old, f, d = _quadratic_problem(+1.0)
        step = 10.0 * d  # still KL > 0.01 after 0.8**4 shrinking
    else:
        theta_old, f, d = _quadratic_problem(-1.0)
        step = 0.05 * d  # inside the trust region but downhill
    new, info = ng.backtracking_line_search(f, theta_old, step, max_kl=0.01, max_iters=5, shrink=0.8)
    assert not bool(info.accepted) and int(info.steps) == 5
    assert np.array_equal(np.asarray(new), np.asarray(theta_old))  # bit for bit
    assert float(info.fraction) == 0.0 and float(info.kl) == 0.0


def test_trpo_step_respects_the_kl_and_npg_step_is_taken_as_is():
    theta, dist, kl_fn = _tiny_policy(True)
    adv = jnp.array([1.0, -0.5, 2.0, -1.0, 0.3])
    actions = jnp.array([0, 1, 2, 1, 0])
    old_logp = dist(theta).log_prob(actions)
    objective = lambda th: jnp.mean(jnp.exp(dist(th).log_prob(actions) - old_logp) * adv)  # noqa: E731
    new, info = ng.natural_gradient_step(objective, kl_fn, theta, max_kl=0.01, damping=1e-3, cg_iters=10)
    assert float(info["accepted"]) == 1.0
    assert float(kl_fn(new)) <= 0.01 and float(objective(new)) > float(objective(theta))
    new_npg, info_npg = ng.natural_gradient_step(objective, kl_fn, theta, max_kl=0.01, damping=1e-3, cg_iters=10,
                                                 line_search=False)
    assert float(info_npg["line_search_steps"]) == 0.0 and float(info_npg["step_fraction"]) == 1.0
    np.testing.assert_allclose(float(info_npg["kl"]), 0.01, rtol=0.3)  # the quadratic model's KL, roughly


def test_zero_gradient_and_zero_curvature_give_no_nan():
    theta = jnp.array([0.5, -0.5])
    # constant surrogate: g = 0, CG returns 0, beta = 0; the line search rejects (no improvement)
    new, info = ng.natural_gradient_step(lambda th: jnp.float32(1.0) + 0.0 * th.sum(),
                                         lambda th: 0.5 * jnp.sum((th - theta) ** 2), theta, 0.01, 0.0, 10)
    assert np.array_equal(np.asarray(new), np.asarray(theta))
    assert all(np.isfinite(float(v)) for v in info.values())
    # flat KL (H = 0) and no damping: non-positive curvature is reported, nothing becomes NaN
    new, info = ng.natural_gradient_step(lambda th: th[0], lambda th: 0.0 * th.sum(), theta, 0.01, 0.0, 10,
                                         line_search=False)
    assert float(info["cg_nonpositive_curvature"]) == 1.0
    assert np.all(np.isfinite(np.asarray(new))) and all(np.isfinite(float(v)) for v in info.values())


# ----------------------------------------------------------------------------- compatible function approximation
def _linear_softmax_logp(theta, phi, action):
    """log pi(a|s) of pi(a|s) ∝ exp(phi(s)^T theta[:, a]), theta flattened [d * A] (d = 2, A = 3)."""
    return jax.nn.log_softmax(phi @ theta.reshape(2, 3))[action]


def test_compatible_features_of_a_linear_softmax_by_hand():
    # theta = 0: a uniform policy, so d log pi(a|s) / d theta[j, b] = phi_j (1[a = b] - 1/3)
    phi = jnp.array([[1.0, 2.0], [0.5, -1.0]])
    actions = jnp.array([0, 2])
    psi = ng.compatible_features(_linear_softmax_logp, jnp.zeros(6), phi, actions)
    expected = np.array([[2 / 3, -1 / 3, -1 / 3, 4 / 3, -2 / 3, -2 / 3],
                         [-1 / 6, -1 / 6, 1 / 3, 1 / 3, 1 / 3, -2 / 3]])
    np.testing.assert_allclose(np.asarray(psi), expected, atol=1e-6)
    # any theta: psi = phi ⊗ (e_a - pi(.|s)), and its mean under pi(.|s) is 0
    theta = jnp.array([0.3, -0.2, 0.5, 1.0, 0.1, -0.7])
    pi = np.asarray(jax.nn.softmax(phi @ theta.reshape(2, 3)))
    psi = np.asarray(ng.compatible_features(_linear_softmax_logp, theta, phi, actions))
    for i, a in enumerate([0, 2]):
        np.testing.assert_allclose(psi[i], np.outer(np.asarray(phi[i]), np.eye(3)[a] - pi[i]).ravel(), atol=1e-6)
    all_a = np.asarray(ng.compatible_features(_linear_softmax_logp, theta, jnp.repeat(phi[:1], 3, 0), jnp.arange(3)))
    np.testing.assert_allclose(pi[0] @ all_a, 0.0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(ng.compatible_critic(jnp.asarray(psi), jnp.ones(6), jnp.array([1.0, 2.0]))),
                               psi.sum(1) + [1.0, 2.0], rtol=1e-6)


def test_compatible_fit_is_least_squares():
    rng = np.random.default_rng(0)
    psi, phi, y = rng.normal(size=(40, 6)), rng.normal(size=(40, 2)), rng.normal(size=40)
    x = np.concatenate([psi, phi], 1)
    with jax.enable_x64(True):
        # no ridge, full column rank: numpy's lstsq, and R^2 = 1 - SSE / SST
        fit = ng.fit_compatible_critic(jnp.asarray(psi), jnp.asarray(y), 0.0, jnp.asarray(phi))
        beta = np.linalg.lstsq(x, y, rcond=None)[0]
        np.testing.assert_allclose(np.asarray(fit.w), beta[:6], rtol=1e-8)
        np.testing.assert_allclose(np.asarray(fit.v), beta[6:], rtol=1e-8)
        r2 = 1 - np.sum((y - x @ beta) ** 2) / np.sum((y - y.mean()) ** 2)
        np.testing.assert_allclose(float(fit.r2), r2, rtol=1e-8)
        # ridge: (X^T X / N + lam I)^{-1} X^T y / N, the same through the dual when there are more unknowns than rows
        lam = 0.3
        ridge = np.linalg.solve(psi.T @ psi / 40 + lam * np.eye(6), psi.T @ y / 40)
        np.testing.assert_allclose(np.asarray(ng.fit_compatible_critic(jnp.asarray(psi), jnp.asarray(y), lam).w),
                                   ridge, rtol=1e-8)
        wide = rng.normal(size=(5, 12))
        dual = ng.fit_compatible_critic(jnp.asarray(wide), jnp.asarray(y[:5]), lam).w
        primal = np.linalg.solve(wide.T @ wide / 5 + lam * np.eye(12), wide.T @ y[:5] / 5)
        np.testing.assert_allclose(np.asarray(dual), primal, rtol=1e-8)
        # integer sample weights = repeated rows
        c = rng.integers(1, 4, size=40)
        weighted = ng.fit_compatible_critic(jnp.asarray(psi), jnp.asarray(y), 0.0, sample_weights=jnp.asarray(c)).w
        repeated = np.linalg.lstsq(np.repeat(psi, c, 0), np.repeat(y, c), rcond=None)[0]
        np.testing.assert_allclose(np.asarray(weighted), repeated, rtol=1e-8)


def test_compatible_weights_are_the_natural_gradient_of_a_bandit():
    """One state, three arms, softmax policy: the exact fit (weights pi(a)) of r_a on psi gives w with F w = grad J."""
    logits, r = jnp.array([0.2, -0.5, 0.4]), jnp.array([1.0, 0.0, 2.0])
    logp = lambda th, a: jax.nn.log_softmax(th)[a]  # noqa: E731
    with jax.enable_x64(True):
        logits, r = logits.astype(jnp.float64), r.astype(jnp.float64)
        pi = jax.nn.softmax(logits)
        psi = ng.compatible_features(logp, logits, jnp.arange(3))
        fit = ng.fit_compatible_critic(psi, r, 1e-12, sample_weights=pi)
        grad_j = jax.grad(lambda th: jnp.sum(jax.nn.softmax(th) * r))(logits)
        fisher = psi.T @ (pi[:, None] * psi)
        np.testing.assert_allclose(np.asarray(fisher @ fit.w), np.asarray(grad_j), atol=1e-9)
        # for a softmax the natural gradient is the advantage r_a - sum_b pi_b r_b, up to a constant
        adv = r - jnp.sum(pi * r)
        np.testing.assert_allclose(np.asarray(fit.w - fit.w.mean()), np.asarray(adv - adv.mean()), atol=1e-9)


def test_lstd_q_matches_a_python_loop():
    rng = np.random.default_rng(1)
    t, b, p, k = 7, 2, 3, 2
    psi, phi, next_phi = rng.normal(size=(t, b, p)), rng.normal(size=(t, b, k)), rng.normal(size=(t, b, k))
    r = rng.normal(size=(t, b))
    term = np.zeros((t, b), bool)
    trunc = np.zeros((t, b), bool)
    term[2, 0], trunc[4, 1] = True, True
    gamma, lam, ridge = 0.9, 0.7, 0.01
    a_ref, b_ref = np.zeros((p + k, p + k)), np.zeros(p + k)
    for j in range(b):
        z = np.zeros(p + k)
        for i in range(t):
            x = np.concatenate([phi[i, j], psi[i, j]])
            nx = np.concatenate([next_phi[i, j], np.zeros(p)]) * (not term[i, j])
            z = z + x
            a_ref += np.outer(z, x - gamma * nx)
            b_ref += z * r[i, j]
            z = gamma * lam * z * (not (term[i, j] or trunc[i, j]))
    beta = np.linalg.solve(a_ref + ridge * np.eye(p + k), b_ref)
    with jax.enable_x64(True):
        w, v = ng.lstd_q_compatible(*map(jnp.asarray, (psi, phi, next_phi, r, term, trunc)), gamma, lam, ridge)
    np.testing.assert_allclose(np.asarray(w), beta[k:], rtol=1e-8)
    np.testing.assert_allclose(np.asarray(v), beta[:k], rtol=1e-8)


def test_solves_under_vmap_call_lapack_one_matrix_at_a_time():
    """Batched CPU LAPACK (``lapack_dpotrf_ffi`` on a ``[B, K, K]`` operand) deadlocked a two-core test run; under
    ``vmap`` (nested too) the fits must lower to one unbatched solve per system and give the per-system numbers."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(2, 3, 40, 6)).astype(np.float32), rng.normal(size=(2, 3, 40)).astype(np.float32)

    def fits(x, y):
        w = ng.fit_compatible_critic(x, y, 1e-3).w
        w_dual = ng.fit_compatible_critic(x[:4], y[:4], 1e-3).w  # more unknowns than samples: the [N, N] system
        t = x.reshape(4, 10, 6)
        zeros = jnp.zeros((4, 10))
        w_lstd, _ = ng.lstd_q_compatible(t[..., :3], t[..., 3:], t[..., 3:], zeros + 1.0, zeros, zeros, 0.9, 0.5, 1e-3)
        return w, w_dual, w_lstd

    batched = jax.jit(jax.vmap(jax.vmap(fits)))
    lapack_calls = [line for line in batched.lower(x, y).as_text().splitlines() if "custom_call @lapack_" in line]
    shapes = [shape for c in lapack_calls for shape in re.findall(r"tensor<((?:\d+x)*)f32>", c.rsplit(" : ", 1)[1])]
    assert len(lapack_calls) >= 3, lapack_calls  # at least one call per system
    assert all(shape.count("x") <= 2 for shape in shapes), shapes  # [K, K] or [K, 1]: no batch dimension
    out = batched(x, y)
    for i in range(2):
        for j in range(3):
            for got, want in zip(out, jax.jit(fits)(x[i, j], y[i, j])):
                np.testing.assert_allclose(got[i, j], want, rtol=1e-5, atol=1e-6)
