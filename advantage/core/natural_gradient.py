r"""Natural-gradient machinery for NPG and TRPO, as pure functions over **flat** parameter vectors.

The policy parameters (a pytree) are flattened with ``jax.flatten_util.ravel_pytree``; every
function here works on that vector ``theta [P]``. The pieces, in the order a trust-region
update uses them (Schulman et al. 2015, *Trust Region Policy Optimization*, sec. 6 and
appendix C; Kakade 2001, *A Natural Policy Gradient*):

1. :func:`fisher_vector_product` — ``v -> (H + c I) v`` where ``H`` is the Hessian of the
   mean KL divergence between the old (fixed) policy and the policy at ``theta``, evaluated
   at ``theta = theta_old``. There it equals the Fisher information matrix
   :math:`F = \mathbb E_{s,a}[\nabla\log\pi\,\nabla\log\pi^\top]`. It is computed by automatic
   differentiation (forward-over-reverse: the ``jvp`` of the KL's gradient), never formed.
2. :func:`conjugate_gradient` — ``s ≈ (H + cI)^{-1} g`` in ``k`` matrix-vector products.
3. :func:`max_step_length` — the step length :math:`\beta = \sqrt{2\delta / s^\top H s}` that
   puts the quadratic model of the KL exactly on the trust-region boundary,
   :math:`\tfrac12 (\beta s)^\top H (\beta s) = \delta`.
4. :func:`backtracking_line_search` — try :math:`\theta_\text{old} + \alpha^j \beta s`,
   ``j = 0, 1, …``; accept the first point where the KL constraint holds **and** the
   surrogate improves, and otherwise return ``theta_old`` unchanged.

:func:`natural_gradient_step` chains the four (TRPO), or the first three (NPG).

Lecture references: *Policy Gradient Methods* (``shared/seeds/002_…``), slides "Trust Region
Policy Optimization", "TRPO. Taylor expansion", "TRPO. The search direction" and "TRPO.
Sum-up" (direction :math:`Hs = g` by conjugate gradient, step :math:`\beta=\sqrt{2\delta/s^\top Hs}`);
*Policy Search: Actor-Critic and Gradient Policy search* (``shared/seeds/004_…``), slide
"Better Policy Gradient Directions: Natural Gradient"
(:math:`\nabla^{nat} = G_\theta^{-1}\nabla`, :math:`G_\theta` the Fisher matrix).

Everything is jittable and ``vmap``-able; the loops are ``lax.while_loop`` with a fixed
maximum number of iterations.

**Compatible function approximation** (the last section; Sutton et al. 2000, Theorem 2; Peters,
Vijayakumar & Schaal 2005 and Peters & Schaal 2008, *Natural Actor-Critic*; deck 004, slides
"Compatible Function Approximation: Bias in AC" and "Natural Actor Critic"): the critic
:math:`Q_w(s,a) = \psi(s,a)^\top w` (+ a state baseline) on the *compatible features*
:math:`\psi = \nabla_\theta\log\pi_\theta(a|s)`, fitted by least squares, gives an unbiased policy
gradient :math:`\mathbb E[\psi\,Q_w] = F w`, and its weights are the natural gradient,
:math:`w = F^{-1}\nabla J`. :func:`compatible_features` computes :math:`\psi` per sample,
:func:`fit_compatible_critic` fits ``w`` by (ridge) regression on returns or advantages,
:func:`lstd_q_compatible` by LSTD-Q(lambda), the TD fixed point.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = [
    "fisher_vector_product",
    "conjugate_gradient",
    "CGInfo",
    "max_step_length",
    "backtracking_line_search",
    "LineSearchInfo",
    "natural_gradient_step",
    "compatible_features",
    "compatible_critic",
    "CompatibleFit",
    "fit_compatible_critic",
    "lstd_q_compatible",
]

#: Curvatures ``p^T A p`` at or below this are treated as non-positive (CG stops, step length 0).
CURVATURE_EPS = 1e-12


def _one_matrix_at_a_time(solve: Callable) -> Callable:
    """``solve(a, b)`` that, under ``vmap``, solves one system after another (``lax.map``) instead of batching.

    jaxlib's batched CPU LAPACK kernels split the batch over XLA's intra-op thread pool and wait for it; when
    the program already occupies every thread of that pool (two cores, independent solves in one program),
    that wait can deadlock: a test run hung there, both pool threads in ``BlockingCounter::Wait`` under
    ``lapack_dpotrf_ffi``. One matrix per call never takes that path, and computes the same numbers (the
    batched kernel runs the same LAPACK routine per matrix); the systems here are small and few.
    """
    one = jax.custom_batching.custom_vmap(solve)

    @one.def_vmap
    def _rule(axis_size, in_batched, a, b):
        a, b = (x if batched else jnp.broadcast_to(x, (axis_size, *x.shape)) for x, batched in zip((a, b), in_batched))
        return jax.lax.map(lambda ab: one(*ab), (a, b)), True

    return one


@_one_matrix_at_a_time
def _cholesky_solve(a, b):
    """``a^{-1} b`` for a symmetric positive definite ``a [K, K]`` (Cholesky)."""
    return jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(a), b)


@_one_matrix_at_a_time
def _lu_solve(a, b):
    """``a^{-1} b`` for a square ``a [K, K]`` (LU with partial pivoting)."""
    return jnp.linalg.solve(a, b)


def fisher_vector_product(kl_fn: Callable[[jax.Array], jax.Array], theta: jax.Array, damping) -> Callable:
    r"""The damped Fisher-vector product ``v -> (H + damping I) v`` at ``theta``.

    .. math::
        H = \nabla^2_\theta\, \overline{\mathrm{KL}}(\theta)\big|_{\theta}, \qquad
        \overline{\mathrm{KL}}(\theta') = \hat{\mathbb E}_t\big[\mathrm{KL}\big(\pi_{\theta_\text{old}}(\cdot|s_t)\,\|\,
        \pi_{\theta'}(\cdot|s_t)\big)\big]

    ``kl_fn(theta')`` must return that mean KL with the *old* policy held fixed (computed from
    ``theta_old`` outside, or under ``stop_gradient``). At ``theta' = theta_old`` the KL's
    gradient vanishes and its Hessian equals the Fisher information matrix
    :math:`F = \hat{\mathbb E}[\nabla\log\pi\,\nabla\log\pi^\top]` (Schulman et al. 2015,
    appendix C.1: "the analytic estimator" of :math:`A_{ij} = \partial_i\partial_j \overline{\mathrm{KL}}`).
    ``H v`` is the directional derivative of the gradient, :math:`\tfrac{d}{d\epsilon}
    \nabla\overline{\mathrm{KL}}(\theta + \epsilon v)|_{\epsilon=0}`, i.e. ``jvp(grad(kl_fn))``;
    ``jax.linearize`` runs the forward pass once and reuses it for every ``v``.

    The damping term :math:`c\,v` (SB3's ``cg_damping``; Schulman et al.'s ``cg_damping`` of
    ``modular_rl``) keeps the system positive definite when ``H`` is singular, which it is
    for any over-parameterised network.

    Args:
        kl_fn: ``theta' [P] -> scalar`` mean KL from the old policy.
        theta: ``[P]`` point of evaluation (the old parameters).
        damping: ``c >= 0``, may be traced.
    Returns:
        ``fvp(v [P]) -> [P]``.
    """
    _, hvp = jax.linearize(jax.grad(kl_fn), theta)
    return lambda v: hvp(v) + damping * v


class CGInfo(NamedTuple):
    """Diagnostics of :func:`conjugate_gradient`."""

    residual: jax.Array  # ||b - A x|| at exit (the recursively updated residual)
    iterations: jax.Array  # matrix-vector products done (int32)
    nonpositive_curvature: jax.Array  # True if some p^T A p <= CURVATURE_EPS stopped the solve


def conjugate_gradient(matvec: Callable, b: jax.Array, max_iters: int, residual_tol=1e-10):
    r"""Solve ``A x = b`` for a symmetric positive-(semi)definite ``A`` given only ``v -> A v``.

    Hestenes & Stiefel (1952); Nocedal & Wright (2006), Algorithm 5.2; the TRPO paper's
    appendix C uses ``k = 10`` iterations. Starting from :math:`x_0 = 0`, :math:`r_0 = p_0 = b`:

    .. math::
        \alpha_k = \frac{r_k^\top r_k}{p_k^\top A p_k},\quad
        x_{k+1} = x_k + \alpha_k p_k,\quad
        r_{k+1} = r_k - \alpha_k A p_k,\quad
        p_{k+1} = r_{k+1} + \frac{r_{k+1}^\top r_{k+1}}{r_k^\top r_k}\, p_k

    It stops after ``max_iters`` products, or once :math:`r^\top r <` ``residual_tol`` (a
    tolerance on the **squared** residual norm, as in SB3/``modular_rl``), or when the
    curvature :math:`p^\top A p` is not positive. In that last case the step along ``p`` is
    **not** taken (``x`` keeps its last value, which is 0 if it happens at once) and
    ``info.nonpositive_curvature`` is set. No division by zero is possible: both
    denominators are guarded.

    Args:
        matvec: ``v [P] -> A v [P]``.
        b: ``[P]`` right-hand side (the policy gradient ``g``).
        max_iters: static maximum number of products.
        residual_tol: tolerance on ``r^T r`` (may be traced).
    Returns:
        ``(x [P], CGInfo)``.
    """
    rdotr0 = jnp.vdot(b, b)
    init = (jnp.zeros_like(b), b, b, rdotr0, jnp.int32(0), rdotr0 < residual_tol, jnp.bool_(False))

    def cond(carry):
        _, _, _, _, k, done, _ = carry
        return jnp.logical_and(k < max_iters, jnp.logical_not(done))

    def body(carry):
        x, r, p, rdotr, k, _, _ = carry
        ap = matvec(p)
        curvature = jnp.vdot(p, ap)
        bad = curvature <= CURVATURE_EPS
        alpha = jnp.where(bad, 0.0, rdotr / jnp.where(bad, 1.0, curvature))
        x = x + alpha * p
        r = r - alpha * ap
        new_rdotr = jnp.vdot(r, r)
        p = r + (new_rdotr / jnp.maximum(rdotr, jnp.finfo(rdotr.dtype).tiny)) * p
        done = jnp.logical_or(bad, new_rdotr < residual_tol)
        return x, r, p, new_rdotr, k + 1, done, bad

    x, _, _, rdotr, k, _, bad = jax.lax.while_loop(cond, body, init)
    return x, CGInfo(jnp.sqrt(rdotr), k, bad)


def max_step_length(s: jax.Array, hs: jax.Array, max_kl):
    r"""The largest step along ``s`` allowed by the quadratic KL model: :math:`\beta=\sqrt{2\delta/s^\top Hs}`.

    From :math:`\tfrac12(\beta s)^\top H(\beta s) = \delta` (TRPO appendix C; lecture slide
    "TRPO. Sum-up"). Returns ``(beta, shs)`` with the curvature ``shs = s^T H s``. If the
    curvature is not positive (``shs <= CURVATURE_EPS``: a zero direction, or a broken ``H``),
    ``beta = 0``: no step, and no NaN from the square root or the division.
    """
    shs = jnp.vdot(s, hs)
    ok = shs > CURVATURE_EPS
    beta = jnp.where(ok, jnp.sqrt(2.0 * max_kl / jnp.where(ok, shs, 1.0)), 0.0)
    return beta, shs


class LineSearchInfo(NamedTuple):
    """Diagnostics of :func:`backtracking_line_search`."""

    accepted: jax.Array  # bool: a point satisfied both conditions
    steps: jax.Array  # int32: points evaluated (1 = the full step was accepted)
    fraction: jax.Array  # alpha^j of the accepted point; 0 when rejected
    surrogate: jax.Array  # surrogate at the returned parameters
    kl: jax.Array  # mean KL from the old policy at the returned parameters (0 when rejected)


def backtracking_line_search(
    objective_and_kl: Callable,
    theta_old: jax.Array,
    full_step: jax.Array,
    max_kl,
    max_iters: int,
    shrink=0.8,
    surrogate_old=None,
):
    r"""Exponential backtracking along ``full_step`` (TRPO sec. 6 and appendix C).

    Tries :math:`\theta_j = \theta_\text{old} + \alpha^j\,\Delta` for ``j = 0 … max_iters-1``
    (``alpha = shrink``, :math:`\Delta` = ``full_step`` :math:`= \beta s`) and accepts the first
    :math:`\theta_j` with

    .. math::
        \overline{\mathrm{KL}}(\theta_j) \le \delta \quad\text{and}\quad L(\theta_j) > L(\theta_\text{old}),

    the exact (not quadratic-model) KL constraint and a strict improvement of the surrogate
    (SB3 ``sb3_contrib.TRPO`` checks the same pair). If no point passes, the parameters
    returned are ``theta_old`` itself, bit for bit, and ``info.accepted`` is False.

    Args:
        objective_and_kl: ``theta [P] -> (L(theta), mean KL(pi_old || pi_theta))``.
        theta_old: ``[P]``.
        full_step: ``[P]`` the largest step, ``beta * s``.
        max_kl: ``delta``.
        max_iters: static maximum number of points tried.
        shrink: ``alpha`` in (0, 1).
        surrogate_old: ``L(theta_old)`` if already known (saves one evaluation).
    Returns:
        ``(theta_new [P], LineSearchInfo)``.
    """
    if surrogate_old is None:
        surrogate_old, _ = objective_and_kl(theta_old)
    zero = jnp.zeros((), surrogate_old.dtype)

    def cond(carry):
        j, accepted, *_ = carry
        return jnp.logical_and(j < max_iters, jnp.logical_not(accepted))

    def body(carry):
        j, _, _, _, _ = carry
        fraction = jnp.asarray(shrink, zero.dtype) ** j
        surrogate, kl = objective_and_kl(theta_old + fraction * full_step)
        accepted = jnp.logical_and(kl <= max_kl, surrogate > surrogate_old)
        return j + 1, accepted, fraction, surrogate, kl

    j, accepted, fraction, surrogate, kl = jax.lax.while_loop(
        cond, body, (jnp.int32(0), jnp.bool_(False), zero, surrogate_old, zero)
    )
    theta_new = jnp.where(accepted, theta_old + fraction * full_step, theta_old)
    info = LineSearchInfo(
        accepted,
        j,
        jnp.where(accepted, fraction, zero),
        jnp.where(accepted, surrogate, surrogate_old),
        jnp.where(accepted, kl, zero),
    )
    return theta_new, info


def natural_gradient_step(
    objective_fn: Callable,
    kl_fn: Callable,
    theta_old: jax.Array,
    max_kl,
    damping,
    cg_iters: int,
    cg_residual_tol=1e-10,
    line_search: bool = True,
    line_search_max_iters: int = 10,
    line_search_shrink=0.8,
):
    r"""One NPG (``line_search=False``) or TRPO (``line_search=True``) step on a flat parameter vector.

    1. :math:`g = \nabla_\theta L(\theta)|_{\theta_\text{old}}` (the surrogate's gradient, to be *ascended*);
    2. :math:`s \approx (H + cI)^{-1} g` by :func:`conjugate_gradient` with :func:`fisher_vector_product`;
    3. :math:`\beta = \sqrt{2\delta / s^\top (H+cI) s}` by :func:`max_step_length`;
    4. NPG: :math:`\theta = \theta_\text{old} + \beta s` (Kakade 2001's natural gradient with the step
       normalised to KL :math:`\approx\delta`, as in Spinning Up's ``trpo(algo='npg')``; always accepted);
       TRPO: :func:`backtracking_line_search` from :math:`\beta s`.

    Args:
        objective_fn: ``theta -> L(theta)``, the surrogate to maximise.
        kl_fn: ``theta -> mean KL(pi_old || pi_theta)`` with the old policy fixed.
        theta_old: ``[P]``.
        max_kl: ``delta``; damping: ``c``; cg_iters, line_search, line_search_max_iters: static.
    Returns:
        ``(theta_new, info)`` with ``info`` a dict of scalars: ``surrogate_old``, ``surrogate``, ``kl``,
        ``grad_norm``, ``step_size`` (beta), ``step_fraction``, ``accepted``, ``line_search_steps``,
        ``cg_residual``, ``cg_iterations``, ``cg_nonpositive_curvature``, ``curvature`` (s^T (H+cI) s).
    """
    surrogate_old, g = jax.value_and_grad(objective_fn)(theta_old)
    fvp = fisher_vector_product(kl_fn, theta_old, damping)
    s, cg = conjugate_gradient(fvp, g, cg_iters, cg_residual_tol)
    beta, shs = max_step_length(s, fvp(s), max_kl)
    full_step = beta * s
    if line_search:
        objective_and_kl = lambda th: (objective_fn(th), kl_fn(th))  # noqa: E731
        theta_new, ls = backtracking_line_search(
            objective_and_kl, theta_old, full_step, max_kl, line_search_max_iters, line_search_shrink, surrogate_old
        )
        surrogate, kl, accepted, steps, fraction = ls.surrogate, ls.kl, ls.accepted, ls.steps, ls.fraction
    else:
        theta_new = theta_old + full_step
        surrogate, kl = objective_fn(theta_new), kl_fn(theta_new)
        accepted, steps, fraction = jnp.bool_(True), jnp.int32(0), jnp.ones((), surrogate_old.dtype)
    info = dict(
        surrogate_old=surrogate_old,
        surrogate=surrogate,
        kl=kl,
        grad_norm=jnp.linalg.norm(g),
        step_size=beta,
        step_fraction=fraction,
        accepted=accepted.astype(jnp.float32),
        line_search_steps=steps.astype(jnp.float32),
        cg_residual=cg.residual,
        cg_iterations=cg.iterations.astype(jnp.float32),
        cg_nonpositive_curvature=cg.nonpositive_curvature.astype(jnp.float32),
        curvature=shs,
    )
    return theta_new, info


# ----------------------------------------------------------------------------- compatible function approximation
def compatible_features(logp_fn: Callable, theta: jax.Array, *samples) -> jax.Array:
    r"""The compatible features :math:`\psi_i = \nabla_\theta \log\pi_\theta(a_i|s_i)`, one row per sample: ``[N, P]``.

    .. math::
        \psi(s, a) = \nabla_\theta \log\pi_\theta(a|s), \qquad
        \nabla_w Q_w(s, a) = \psi(s, a) \quad\text{(condition 1 of the slide "Compatible Function Approximation")}

    ``logp_fn(theta [P], *sample) -> scalar`` is the log-probability of *one* sample (e.g.
    ``lambda th, s, a: policy(th, s[None]).log_prob(a[None])[0]``); ``samples`` are arrays with a leading
    sample axis ``[N, ...]`` (observations, actions). It is ``vmap(grad(logp_fn))`` over that axis.

    For a linear softmax policy :math:`\pi(a|s) \propto \exp(\theta^\top x(s,a))` this is
    :math:`\psi = x(s,a) - \sum_b \pi(b|s)\,x(s,b)` (Sutton & Barto 2018, eq. 13.9); for a tabular softmax
    :math:`\psi = e_s \otimes (e_a - \pi(\cdot|s))`. :math:`\mathbb E_{a\sim\pi}[\psi] = 0` in every state.
    """
    return jax.vmap(jax.grad(logp_fn), in_axes=(None,) + (0,) * len(samples))(theta, *samples)


def compatible_critic(psi: jax.Array, w: jax.Array, baseline=None) -> jax.Array:
    r""":math:`Q_w(s,a) = \psi(s,a)^\top w + V_v(s)`: ``psi [N, P]``, ``w [P]``, ``baseline [N]`` or None -> ``[N]``.

    :math:`\psi^\top w` alone is an *advantage* function: its mean under :math:`\pi(\cdot|s)` is 0 in every state
    (Peters & Schaal 2008, sec. 3.1: "the compatible function approximation ... is mean-zero"), so a state value
    :math:`V_v(s)` (``baseline``) carries the rest of :math:`Q`.
    """
    q = psi @ w
    return q if baseline is None else q + baseline


class CompatibleFit(NamedTuple):
    """The result of :func:`fit_compatible_critic`."""

    w: jax.Array  # [P] the compatible critic's weights: the natural-gradient estimate
    v: jax.Array  # [K] the baseline's weights ([0] without baseline features)
    r2: jax.Array  # coefficient of determination of the fit (weighted), 1 - SSE / SST
    prediction: jax.Array  # [N] psi w + phi v


def fit_compatible_critic(psi, targets, ridge=0.0, baseline_features=None, sample_weights=None) -> CompatibleFit:
    r"""Fit :math:`Q(s,a) \approx \psi^\top w + \phi(s)^\top v` by ridge-regularised least squares.

    .. math::
        (w, v) = \arg\min_{w, v}\; \frac{1}{\sum_i c_i}\sum_i c_i \big(\psi_i^\top w + \phi_i^\top v - y_i\big)^2
                 + \lambda\,\big(\|w\|^2 + \|v\|^2\big)

    With ``targets`` :math:`y_i` the returns (or advantage estimates) of the samples, this is condition 2 of the
    slide (the critic minimises the mean squared error), and in expectation the normal equations give
    :math:`F w = \mathbb E[\psi\,y] = \nabla_\theta J` because :math:`\mathbb E_\pi[\psi\,\phi(s)^\top] = 0`:
    :math:`w = F^{-1}\nabla J`, the natural gradient (slide "Natural Actor Critic"; Peters & Schaal 2008, eq. 13;
    their episodic NAC regresses summed features of whole episodes on returns the same way, Table 2). Without
    baseline features and with :math:`c_i = 1`, :math:`w = (\hat F + \lambda I)^{-1}\hat g` with
    :math:`\hat F = \Psi^\top\Psi/N` and :math:`\hat g = \Psi^\top y/N`: the damped natural gradient of NPG.

    Solved exactly with a Cholesky factorisation of the smaller Gram matrix: the ``[K, K]`` normal equations
    :math:`(X^\top C X/\textstyle\sum c + \lambda I)\beta = X^\top C y/\textstyle\sum c` when the number of
    unknowns ``K = P (+ baseline)`` is at most ``N``, otherwise the ``[N, N]`` dual system
    :math:`\beta = \tilde X^\top(\tilde X\tilde X^\top + \lambda I)^{-1}\tilde y` with
    :math:`\tilde X = \sqrt{c/\textstyle\sum c}\,X` (the same solution, cheaper for a network with more
    parameters than samples). The Gram matrix of compatible features is singular (in every state
    :math:`\sum_a\pi(a|s)\psi(s,a) = 0`), so ``ridge`` :math:`\lambda` must be positive unless ``X`` has full
    column rank; a small ridge returns the minimum-norm solution's limit.

    Args:
        psi: ``[N, P]`` compatible features (:func:`compatible_features`).
        targets: ``[N]`` regression targets (returns, Q estimates or advantages).
        ridge: :math:`\lambda \ge 0` (may be traced).
        baseline_features: ``[N, K]`` state features :math:`\phi(s_i)` of a linear baseline, or None.
        sample_weights: ``[N]`` non-negative weights :math:`c_i` (e.g. state-action probabilities for an exact
            expectation), or None for 1.
    Returns:
        :class:`CompatibleFit` ``(w, v, r2, prediction)``.
    """
    n, p = psi.shape
    x = psi if baseline_features is None else jnp.concatenate([psi, baseline_features], axis=1)
    c = jnp.ones((n,), psi.dtype) if sample_weights is None else jnp.asarray(sample_weights, psi.dtype)
    c = c / jnp.sum(c)
    xt, yt = x * jnp.sqrt(c)[:, None], targets * jnp.sqrt(c)
    k = x.shape[1]
    if k <= n:
        gram = xt.T @ xt + ridge * jnp.eye(k, dtype=x.dtype)
        beta = _cholesky_solve(gram, xt.T @ yt)
    else:
        gram = xt @ xt.T + ridge * jnp.eye(n, dtype=x.dtype)
        beta = xt.T @ _cholesky_solve(gram, yt)
    prediction = x @ beta
    mean = jnp.sum(c * targets)
    sse = jnp.sum(c * (targets - prediction) ** 2)
    sst = jnp.sum(c * (targets - mean) ** 2)
    r2 = 1.0 - sse / jnp.maximum(sst, jnp.finfo(sst.dtype).tiny)
    return CompatibleFit(beta[:p], beta[p:], r2, prediction)


def lstd_q_compatible(
    psi, phi, next_phi, rewards, terminated, truncated, gamma, lam=0.0, ridge=0.0
) -> tuple[jax.Array, jax.Array]:
    r"""LSTD-Q(:math:`\lambda`) with the compatible critic: the TD fixed point of :math:`\phi(s)^\top v + \psi^\top w`.

    Peters & Schaal 2008, Table 1 (Natural Actor-Critic with LSTD-Q(:math:`\lambda`); Boyan 1999 for LSTD(lambda)).
    With the basis :math:`\tilde\phi_t = [\phi(s_t); \psi_t]` and the next-state basis
    :math:`\hat\phi_t = [\phi(s'_t); 0]` (the advantage part has mean 0 under :math:`\pi`, so the next state is
    valued by the baseline alone):

    .. math::
        z_t = \gamma\lambda\,(1 - d_{t-1})\, z_{t-1} + \tilde\phi_t, \qquad
        A = \sum_t z_t\big(\tilde\phi_t - \gamma (1 - \text{term}_t)\,\hat\phi_t\big)^\top, \qquad
        b = \sum_t z_t\, r_t, \qquad [v; w] = (A + \lambda_\text{ridge} I)^{-1} b

    ``d_t`` is the end of an episode (terminated or truncated: the trace is cut there); a termination has no
    next value, a truncation bootstraps from the true final observation's features ``next_phi``. With
    ``lam = 0`` this is LSTD-Q(0), the solution of :math:`\mathbb E[\tilde\phi(r + \gamma\hat\phi^\top\beta -
    \tilde\phi^\top\beta)] = 0`; ``w`` is then NAC's natural-gradient estimate.

    Args:
        psi: ``[T, B, P]`` compatible features; phi / next_phi: ``[T, B, K]`` state features of
            :math:`s_t` and :math:`s'_t`; rewards, terminated, truncated: ``[T, B]`` (time-major).
        gamma, lam, ridge: scalars (may be traced).
    Returns:
        ``(w [P], v [K])``.
    """
    k = phi.shape[-1]
    basis = jnp.concatenate([phi, psi], axis=-1)  # [T, B, K + P]
    not_term = 1.0 - jnp.asarray(terminated, basis.dtype)
    done = jnp.logical_or(jnp.asarray(terminated, bool), jnp.asarray(truncated, bool)).astype(basis.dtype)
    next_basis = jnp.concatenate([next_phi, jnp.zeros_like(psi)], axis=-1) * not_term[..., None]

    def trace_step(z, x):
        basis_t, done_t = x
        z = z + basis_t
        return gamma * lam * (1.0 - done_t)[:, None] * z, z

    _, z = jax.lax.scan(trace_step, jnp.zeros_like(basis[0]), (basis, done))  # z_t, [T, B, K + P]
    a = jnp.einsum("tbi,tbj->ij", z, basis - gamma * next_basis)
    b = jnp.einsum("tbi,tb->i", z, rewards.astype(basis.dtype))
    beta = _lu_solve(a + ridge * jnp.eye(a.shape[0], dtype=a.dtype), b)
    return beta[k:], beta[:k]
