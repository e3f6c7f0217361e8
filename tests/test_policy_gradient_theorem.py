"""The policy gradient, checked against the definition of the gradient: on a small MDP whose every trajectory
can be enumerated, the *expected* REINFORCE gradient built from the library's own pieces (``core.returns`` for
Φ_t, ``core.losses.policy_gradient_loss`` for the score-function loss, ``jax.grad`` through a tabular softmax)
equals a central finite difference of the exact objective J(θ), for Φ = R(τ), for the reward-to-go, and with a
state baseline subtracted (the baseline adds no bias: deck "Baselines can be unbiased"). The policy gradient
theorem's Q form, Σ_s d(s) Σ_a ∇π(a|s) Q(s, a), gives the same vector on the discounted infinite-horizon
objective. And with γ < 1 the reward-to-go without the γ^t factor is *not* the gradient of the discounted J
(the well-known bias of the usual estimator), while R(τ) and the γ^t-weighted reward-to-go are."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from advantage.core.losses import policy_gradient_loss
from advantage.core.returns import discounted_returns, episode_returns

S, A, H = 2, 2, 3  # states, actions, steps per episode (every episode ends at step H: terminated)
rng = np.random.default_rng(0)
P = rng.dirichlet(np.ones(S), size=(S, A))  # P[s, a, s']
R = rng.normal(size=(S, A))  # r(s, a)
MU = np.array([0.7, 0.3])  # start distribution
THETA = jnp.asarray(rng.normal(size=(S, A)) * 0.5, jnp.float32)
BASELINE = jnp.asarray(rng.normal(size=S) * 3.0, jnp.float32)  # any b(s): no bias

# every trajectory (s_0, a_0, ..., s_{H-1}, a_{H-1}) and the probability of its states (the policy's part apart)
TRAJ = np.array(list(itertools.product(range(S), range(A), repeat=H)))  # [N, 2H]
STATES, ACTIONS = TRAJ[:, 0::2], TRAJ[:, 1::2]  # [N, H]
STATE_PROB = MU[STATES[:, 0]] * np.prod(
    [P[STATES[:, t], ACTIONS[:, t], STATES[:, t + 1]] for t in range(H - 1)], axis=0
)
REWARDS = R[STATES, ACTIONS].astype(np.float32)  # [N, H]


def log_pi(theta):
    return jax.nn.log_softmax(theta, axis=-1)


def traj_prob(theta):
    logp = log_pi(theta)[STATES, ACTIONS]  # [N, H]
    return STATE_PROB * jnp.exp(jnp.sum(logp, axis=1))


def objective(theta, gamma):
    """J(θ) = E[Σ_t γ^t r_t], exactly: the sum over every trajectory."""
    return jnp.sum(traj_prob(theta) * jnp.sum(REWARDS * gamma ** jnp.arange(H), axis=1))


def finite_difference(theta, gamma, eps=1e-2):
    """Central differences of J (float64 around the float32 θ: J is a polynomial in π, smooth)."""
    th = np.asarray(theta, np.float64)

    def j(t):
        logp = t - np.log(np.sum(np.exp(t), axis=-1, keepdims=True))
        prob = STATE_PROB * np.exp(np.sum(logp[STATES, ACTIONS], axis=1))
        return np.sum(prob * np.sum(REWARDS * gamma ** np.arange(H), axis=1))

    g = np.zeros_like(th)
    for idx in np.ndindex(th.shape):
        d = np.zeros_like(th)
        d[idx] = eps
        g[idx] = (j(th + d) - j(th - d)) / (2 * eps)
    return g


def expected_reinforce_gradient(theta, gamma, phi: str, baseline=False, gamma_t: bool = False):
    """Σ_τ P(τ) Σ_t Φ_t ∇log π(a_t|s_t), with Φ_t from ``core.returns`` and the gradient of
    ``policy_gradient_loss`` (a mean over the H steps: times -H). Rollouts are time-major ``[H, N]``."""
    terminated = np.zeros((H, len(TRAJ)), bool)
    terminated[-1] = True
    truncated = np.zeros_like(terminated)
    rewards, zeros = jnp.asarray(REWARDS.T), jnp.zeros((H, len(TRAJ)), jnp.float32)
    if phi == "total":
        weights = episode_returns(rewards, terminated, truncated, gamma)
    else:
        weights = discounted_returns(rewards, zeros, terminated, truncated, gamma)
    if baseline is True:
        weights = weights - BASELINE[STATES.T]
    elif baseline is not False:  # an array b[s, a]: a "baseline" that depends on the action
        weights = weights - jnp.asarray(baseline)[STATES.T, ACTIONS.T]
    if gamma_t:
        weights = weights * (gamma ** jnp.arange(H))[:, None]
    probs = traj_prob(theta)  # constants of the gradient: the expectation's weights

    def surrogate(th):
        logp = log_pi(th)[STATES.T, ACTIONS.T]  # [H, N]
        per_traj = jax.vmap(lambda lp, w: -H * policy_gradient_loss(lp[:, None], w[:, None]), in_axes=1)(logp, weights)
        return jnp.sum(jax.lax.stop_gradient(probs) * per_traj)

    return np.asarray(jax.grad(surrogate)(theta))


@pytest.mark.parametrize("phi, baseline", [("total", False), ("reward-to-go", False), ("reward-to-go", True),
                                           ("total", True)])  # fmt: skip
def test_expected_reinforce_gradient_is_the_gradient_of_j(phi, baseline):
    """γ = 1: every one of these estimators is unbiased, baseline or not."""
    fd = finite_difference(THETA, 1.0)
    got = expected_reinforce_gradient(THETA, 1.0, phi, baseline)
    np.testing.assert_allclose(got, fd, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got, np.asarray(jax.grad(objective)(THETA, 1.0)), rtol=1e-4, atol=1e-5)
    assert np.abs(fd).max() > 0.05  # a gradient worth checking


def test_a_baseline_that_depends_on_the_action_is_biased():
    """The control case: subtract b(s, a) instead of b(s), and the expectation moves away from ∇J."""
    b_sa = jnp.asarray(np.random.default_rng(1).normal(size=(S, A)) * 3.0, jnp.float32)
    fd = finite_difference(THETA, 1.0)
    got = expected_reinforce_gradient(THETA, 1.0, "reward-to-go", baseline=b_sa)
    assert np.abs(got - fd).max() > 0.1


def test_with_discounting_the_reward_to_go_needs_its_gamma_t():
    """γ = 0.9: R(τ) (discounted) and γ^t G_t are ∇J; the usual G_t without γ^t is not (it weights late steps
    as if they were first steps)."""
    gamma = 0.9
    fd = finite_difference(THETA, gamma)
    for phi, gamma_t in (("total", False), ("reward-to-go", True)):
        np.testing.assert_allclose(expected_reinforce_gradient(THETA, gamma, phi, gamma_t=gamma_t), fd,
                                   rtol=1e-4, atol=1e-5)  # fmt: skip
    biased = expected_reinforce_gradient(THETA, gamma, "reward-to-go")
    assert np.abs(biased - fd).max() > 10 * 1e-4 + 1e-3 * np.abs(fd).max()


def test_a_state_baseline_has_zero_expected_score():
    """E_{a~π(·|s)}[∇log π(a|s) b(s)] = b(s) ∇Σ_a π(a|s) = 0, for each state, exactly."""
    pi = jax.nn.softmax(THETA, axis=-1)
    for s in range(S):
        score = jax.jacobian(lambda th, s=s: log_pi(th)[s])(THETA)  # [A, S, A]: ∇ log π(a|s) per a
        expected = jnp.einsum("a,aij->ij", pi[s], score) * BASELINE[s]
        np.testing.assert_allclose(np.asarray(expected), 0.0, atol=1e-6)


def test_policy_gradient_theorem_q_form_on_the_discounted_objective():
    """Infinite horizon, J(θ) = μᵀ V^π, solved exactly: ∇J = Σ_s d(s) Σ_a ∇π(a|s) Q(s, a) with d = μᵀ(I − γP_π)⁻¹
    (Sutton et al. 2000) — and the same with Q − V in place of Q (the baseline again)."""
    gamma = 0.8
    p, r, mu = jnp.asarray(P, jnp.float32), jnp.asarray(R, jnp.float32), jnp.asarray(MU, jnp.float32)

    def j(theta):
        pi = jax.nn.softmax(theta, axis=-1)
        v = jnp.linalg.solve(jnp.eye(S) - gamma * jnp.einsum("sa,sat->st", pi, p), jnp.sum(pi * r, axis=-1))
        return mu @ v

    pi = jax.nn.softmax(THETA, axis=-1)
    p_pi = jnp.einsum("sa,sat->st", pi, p)
    v = jnp.linalg.solve(jnp.eye(S) - gamma * p_pi, jnp.sum(pi * r, axis=-1))
    q = r + gamma * jnp.einsum("sat,t->sa", p, v)
    d = jnp.linalg.solve((jnp.eye(S) - gamma * p_pi).T, mu)
    dpi = jax.jacobian(lambda th: jax.nn.softmax(th, axis=-1))(THETA)  # [S, A, S, A]
    theorem = jnp.einsum("s,saij,sa->ij", d, dpi, q)
    with_baseline = jnp.einsum("s,saij,sa->ij", d, dpi, q - v[:, None])
    np.testing.assert_allclose(np.asarray(theorem), np.asarray(jax.grad(j)(THETA)), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(with_baseline), np.asarray(theorem), rtol=1e-4, atol=1e-5)
