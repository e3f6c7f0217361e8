"""Tests of ``advantage.core.returns``: hand-computed cases, loop references, identities,
termination vs truncation, the infinite-horizon bootstrap check, jit/vmap."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from advantage.core.returns import (
    discounted_returns,
    episode_returns,
    gae,
    n_step_returns,
    td_errors,
    td_lambda_returns,
    td_target,
)

RTOL = 1e-5
ATOL = 1e-5


def close(actual, desired, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(np.asarray(actual), np.asarray(desired), rtol=rtol, atol=atol)


# ---------------------------------------------------------------------------
# Plain Python-loop references (numpy, one environment column at a time).
# ---------------------------------------------------------------------------


def ref_discounted_returns(rewards, next_values, terminated, truncated, gamma):
    T, B = rewards.shape
    out = np.zeros((T, B))
    for b in range(B):
        future = 0.0  # G_{t+1}
        for t in reversed(range(T)):
            if terminated[t, b]:
                future = 0.0
            elif truncated[t, b] or t == T - 1:
                future = next_values[t, b]
            out[t, b] = rewards[t, b] + gamma * future
            future = out[t, b]
    return out


def ref_episode_returns(rewards, terminated, truncated, gamma, next_values=None):
    T, B = rewards.shape
    if next_values is None:
        next_values = np.zeros((T, B))
    out = np.zeros((T, B))
    for b in range(B):
        start = 0
        for t in range(T):
            done = terminated[t, b] or truncated[t, b]
            if done or t == T - 1:
                # the episode is steps start..t: sum its discounted rewards from its first step
                ret = 0.0
                for k in range(start, t + 1):
                    ret += gamma ** (k - start) * rewards[k, b]
                if not terminated[t, b]:
                    ret += gamma ** (t + 1 - start) * next_values[t, b]
                out[start : t + 1, b] = ret
                start = t + 1
    return out


def ref_n_step_returns(rewards, next_values, terminated, truncated, gamma, n):
    T, B = rewards.shape
    out = np.zeros((T, B))
    for b in range(B):
        for t in range(T):
            ret = 0.0
            for k in range(n):
                s = t + k
                ret += gamma**k * rewards[s, b]
                if terminated[s, b]:
                    break  # terminal: nothing after
                if truncated[s, b] or s == T - 1 or k == n - 1:
                    ret += gamma ** (k + 1) * next_values[s, b]  # bootstrap from V(s'_s)
                    break
            out[t, b] = ret
    return out


def ref_td_errors(rewards, values, next_values, terminated, gamma):
    T, B = rewards.shape
    out = np.zeros((T, B))
    for b in range(B):
        for t in range(T):
            bootstrap = 0.0 if terminated[t, b] else next_values[t, b]
            out[t, b] = rewards[t, b] + gamma * bootstrap - values[t, b]
    return out


def ref_gae(rewards, values, next_values, terminated, truncated, gamma, lam):
    """GAE as the finite sum of Schulman et al. eq. 16, cut at the episode end."""
    T, B = rewards.shape
    delta = ref_td_errors(rewards, values, next_values, terminated, gamma)
    out = np.zeros((T, B))
    for b in range(B):
        for t in range(T):
            adv = 0.0
            for k in range(T - t):
                adv += (gamma * lam) ** k * delta[t + k, b]
                if terminated[t + k, b] or truncated[t + k, b]:
                    break
            out[t, b] = adv
    return out


def ref_lambda_return_recursive(rewards, next_values, terminated, truncated, gamma, lam):
    """Sutton & Barto's recursive lambda-return, bootstrapping from next_values."""
    T, B = rewards.shape
    out = np.zeros((T, B))
    for b in range(B):
        future = next_values[T - 1, b]
        for t in reversed(range(T)):
            if terminated[t, b]:
                out[t, b] = rewards[t, b]
            elif truncated[t, b]:
                out[t, b] = rewards[t, b] + gamma * next_values[t, b]
            else:
                out[t, b] = rewards[t, b] + gamma * ((1 - lam) * next_values[t, b] + lam * future)
            future = out[t, b]
    return out


# ---------------------------------------------------------------------------
# Random rollouts
# ---------------------------------------------------------------------------


def random_rollout(seed, T, B, p_term=0.12, p_trunc=0.12, consistent=False):
    rng = np.random.default_rng(seed)
    rewards = rng.normal(size=(T, B)).astype(np.float32)
    values = rng.normal(size=(T, B)).astype(np.float32)
    next_values = rng.normal(size=(T, B)).astype(np.float32)
    terminated = rng.random((T, B)) < p_term
    truncated = rng.random((T, B)) < p_trunc
    # make sure every pattern appears: termination, truncation, both on one step
    if T >= 3:
        terminated[0, 0], truncated[0, 0] = True, True
        terminated[1, -1], truncated[1, -1] = False, True
        terminated[2, B // 2], truncated[2, B // 2] = True, False
    if consistent:  # next_values[t] = values[t+1] inside episodes (same critic evaluated twice)
        done = terminated | truncated
        next_values[:-1] = np.where(done[:-1], next_values[:-1], values[1:])
    return rewards, values, next_values, terminated, truncated


SHAPES = [(1, 1), (6, 3), (33, 2)]
GAMMAS = [0.0, 0.5, 0.9, 0.99, 1.0]


# ---------------------------------------------------------------------------
# Hand-computed cases. T = 4, gamma = 0.5, rewards 1, 2, 3, 4 in three columns:
#   column 0: termination after step 1,
#   column 1: truncation after step 1 (bootstrap from next_values[1] = 20),
#   column 2: no episode end (only the rollout-end bootstrap from next_values[3] = 40).
# Every column bootstraps at the rollout end from next_values[3] = 40.
# ---------------------------------------------------------------------------

G = 0.5
R = np.array([[1.0, 1.0, 1.0], [2.0, 2.0, 2.0], [3.0, 3.0, 3.0], [4.0, 4.0, 4.0]], np.float32)
V = np.array([[5.0] * 3, [6.0] * 3, [7.0] * 3, [8.0] * 3], np.float32)
NV = np.array([[10.0] * 3, [20.0] * 3, [30.0] * 3, [40.0] * 3], np.float32)
TERM = np.array([[0, 0, 0], [1, 0, 0], [0, 0, 0], [0, 0, 0]], bool)
TRUNC = np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0], [0, 0, 0]], bool)


def test_discounted_returns_by_hand():
    # G3 = 4 + .5*40 = 24, G2 = 3 + .5*24 = 15 in every column.
    # col 0: G1 = 2 (terminated), G0 = 1 + .5*2 = 2
    # col 1: G1 = 2 + .5*20 = 12 (truncated), G0 = 1 + .5*12 = 7
    # col 2: G1 = 2 + .5*15 = 9.5, G0 = 1 + .5*9.5 = 5.75
    expected = np.array([[2.0, 7.0, 5.75], [2.0, 12.0, 9.5], [15.0, 15.0, 15.0], [24.0, 24.0, 24.0]])
    close(discounted_returns(R, NV, TERM, TRUNC, G), expected)
    # no bootstrap: plain Monte-Carlo reward-to-go
    # G3 = 4, G2 = 5; col 0/1: G1 = 2, G0 = 2; col 2: G1 = 4.5, G0 = 3.25
    expected_mc = np.array([[2.0, 2.0, 3.25], [2.0, 2.0, 4.5], [5.0, 5.0, 5.0], [4.0, 4.0, 4.0]])
    close(discounted_returns(R, np.zeros_like(NV), TERM, TRUNC, G), expected_mc)


def test_both_flags_on_one_step_is_a_termination():
    both = TERM | TRUNC
    term_only = TERM.copy()
    term_only[1, 1] = True
    close(discounted_returns(R, NV, both, TRUNC, G), discounted_returns(R, NV, term_only, np.zeros_like(TRUNC), G))
    close(gae(R, V, NV, both, TRUNC, G, 0.7), gae(R, V, NV, term_only, np.zeros_like(TRUNC), G, 0.7))
    close(n_step_returns(R, NV, both, TRUNC, G, 2), n_step_returns(R, NV, term_only, np.zeros_like(TRUNC), G, 2))


def test_episode_returns_by_hand():
    # the reward-to-go at each episode's first step, given to the whole episode
    expected = np.array([[2.0, 7.0, 5.75], [2.0, 7.0, 5.75], [15.0, 15.0, 5.75], [15.0, 15.0, 5.75]])
    close(episode_returns(R, TERM, TRUNC, G, next_values=NV), expected)
    # without next_values: no bootstrap anywhere; episode 2 (steps 2, 3) = 3 + .5*4 = 5
    expected_mc = np.array([[2.0, 2.0, 3.25], [2.0, 2.0, 3.25], [5.0, 5.0, 3.25], [5.0, 5.0, 3.25]])
    close(episode_returns(R, TERM, TRUNC, G), expected_mc)


def test_episode_started_before_rollout_counts_from_first_step():
    # A rollout that joins an episode mid-way: rewards 1, 2 then the episode terminates,
    # then a new episode 3, 4. The first episode's return is counted from t = 0.
    r = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
    term = np.array([False, True, False, True])
    trunc = np.zeros(4, bool)
    close(episode_returns(r, term, trunc, 0.5), [1 + 0.5 * 2, 1 + 0.5 * 2, 3 + 0.5 * 4, 3 + 0.5 * 4])


def test_n_step_returns_by_hand():
    # n = 2, gamma = .5
    # col 0: t0 = 1 + .5*2 (episode ends, terminated) = 2; t1 = 2
    # col 1: t0 = 1 + .5*2 + .25*20 (truncated at 1) = 7; t1 = 2 + .5*20 = 12
    # col 2: t0 = 1 + .5*2 + .25*NV[1]=20 -> 7; t1 = 2 + .5*3 + .25*30 = 11
    # all:   t2 = 3 + .5*4 + .25*40 = 15; t3 = 4 + .5*40 = 24 (rollout end)
    expected = np.array([[2.0, 7.0, 7.0], [2.0, 12.0, 11.0], [15.0, 15.0, 15.0], [24.0, 24.0, 24.0]])
    close(n_step_returns(R, NV, TERM, TRUNC, G, 2), expected)
    # n = 1: the TD target r + .5 (1 - term) NV
    expected_1 = np.array([[6.0, 6.0, 6.0], [2.0, 12.0, 12.0], [18.0, 18.0, 18.0], [24.0, 24.0, 24.0]])
    close(n_step_returns(R, NV, TERM, TRUNC, G, 1), expected_1)


def test_td_errors_by_hand():
    # delta = r + .5 (1 - term) NV - V
    # t0: 1 + 5 - 5 = 1; t1: 2 + 0 - 6 = -4 (col 0, terminated), 2 + 10 - 6 = 6;
    # t2: 3 + 15 - 7 = 11; t3: 4 + 20 - 8 = 16
    expected = np.array([[1.0, 1.0, 1.0], [-4.0, 6.0, 6.0], [11.0, 11.0, 11.0], [16.0, 16.0, 16.0]])
    close(td_errors(R, V, NV, TERM, G), expected)


def test_td_target_by_hand():
    # y = r + gamma (1 - term) V(s'): 1 + .5 * 4 = 3 ; terminated: 2 ; truncated bootstraps: 3 + .5 * 8 = 7
    r, v_tp1 = jnp.array([1.0, 2.0, 3.0]), jnp.array([4.0, 6.0, 8.0])
    close(td_target(r, v_tp1, jnp.array([False, True, False]), 0.5), [3.0, 2.0, 7.0])
    close(td_target(r, v_tp1, jnp.array([0.0, 1.0, 0.0]), 0.5), [3.0, 2.0, 7.0])  # 0/1 float flags
    close(td_errors(R, V, NV, TERM, G), td_target(R, NV, TERM, G) - V)  # delta = y - V(s)
    with pytest.raises(ValueError, match=r"td_target.*r_t \(3,\), v_tp1 \(3, 1\)"):
        td_target(r, v_tp1[:, None], jnp.zeros(3, bool), 0.5)


def test_gae_and_lambda_returns_by_hand():
    # lambda = .5, gamma*lambda = .25; deltas as in test_td_errors_by_hand
    # A3 = 16, A2 = 11 + .25*16 = 15 everywhere
    # col 0: A1 = -4 (episode end), A0 = 1 + .25*(-4) = 0
    # col 1: A1 = 6 (episode end), A0 = 1 + .25*6 = 2.5
    # col 2: A1 = 6 + .25*15 = 9.75, A0 = 1 + .25*9.75 = 3.4375
    expected = np.array([[0.0, 2.5, 3.4375], [-4.0, 6.0, 9.75], [15.0, 15.0, 15.0], [16.0, 16.0, 16.0]])
    close(gae(R, V, NV, TERM, TRUNC, G, 0.5), expected)
    close(td_lambda_returns(R, V, NV, TERM, TRUNC, G, 0.5), expected + V)


# ---------------------------------------------------------------------------
# Equality with the loop references on random rollouts
# ---------------------------------------------------------------------------


NS = (1, 2, 5, 40)  # 40 >= every T in SHAPES
LAMBDAS = (0.0, 0.3, 0.95, 1.0)


@jax.jit
def compute_all(r, v, nv, term, trunc, gamma):
    """Every function on one rollout, in one compiled program (gamma traced, one compile per shape)."""
    lams = jnp.array(LAMBDAS, jnp.float32)
    return {
        "discounted_returns": discounted_returns(r, nv, term, trunc, gamma),
        "td_errors": td_errors(r, v, nv, term, gamma),
        "episode_returns": episode_returns(r, term, trunc, gamma),
        "episode_returns_nv": episode_returns(r, term, trunc, gamma, next_values=nv),
        "n_step_returns": [n_step_returns(r, nv, term, trunc, gamma, n) for n in NS],
        "gae": jax.vmap(lambda lam: gae(r, v, nv, term, trunc, gamma, lam))(lams),
        "td_lambda_returns": jax.vmap(lambda lam: td_lambda_returns(r, v, nv, term, trunc, gamma, lam))(lams),
    }


@pytest.mark.parametrize("T,B", SHAPES)
@pytest.mark.parametrize("gamma", GAMMAS)
def test_against_references(T, B, gamma):
    r, v, nv, term, trunc = random_rollout(1000 * T + B + int(100 * gamma), T, B)
    out = compute_all(r, v, nv, term, trunc, gamma)
    close(out["discounted_returns"], ref_discounted_returns(r, nv, term, trunc, gamma))
    close(out["td_errors"], ref_td_errors(r, v, nv, term, gamma))
    close(out["episode_returns"], ref_episode_returns(r, term, trunc, gamma))
    close(out["episode_returns_nv"], ref_episode_returns(r, term, trunc, gamma, nv))
    for n, got in zip(NS, out["n_step_returns"]):
        close(got, ref_n_step_returns(r, nv, term, trunc, gamma, n))
    for i, lam in enumerate(LAMBDAS):
        expected = ref_gae(r, v, nv, term, trunc, gamma, lam)
        close(out["gae"][i], expected)
        close(out["td_lambda_returns"][i], expected + v)


@pytest.mark.parametrize("T,B", SHAPES)
@pytest.mark.parametrize("lam", [0.0, 0.5, 0.9, 1.0])
def test_lambda_return_matches_recursive_form_when_values_consistent(T, B, lam):
    r, v, nv, term, trunc = random_rollout(7 + T, T, B, consistent=True)
    close(
        td_lambda_returns(r, v, nv, term, trunc, 0.9, lam),
        ref_lambda_return_recursive(r, nv, term, trunc, 0.9, lam),
    )


def test_float_flags_and_traced_lambda():
    r, v, nv, term, trunc = random_rollout(3, 12, 4)
    expected = ref_gae(r, v, nv, term, trunc, 0.9, 0.8)
    f = jax.jit(lambda lam: gae(r, v, nv, term.astype(np.float32), trunc.astype(np.float32), 0.9, lam))
    close(f(jnp.float32(0.8)), expected)
    close(
        discounted_returns(r, nv, term.astype(np.float32), trunc.astype(np.float32), 0.9),
        ref_discounted_returns(r, nv, term, trunc, 0.9),
    )


# ---------------------------------------------------------------------------
# Identities
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("T,B", SHAPES)
@pytest.mark.parametrize("gamma", [0.5, 0.99])
def test_identities(T, B, gamma):
    r, v, nv, term, trunc = random_rollout(11 * T + B, T, B, consistent=True)
    ret = discounted_returns(r, nv, term, trunc, gamma)
    td_target = r + gamma * (1 - term) * nv
    # GAE lambda = 1 is the bootstrapped Monte-Carlo advantage (values consistent)
    close(gae(r, v, nv, term, trunc, gamma, 1.0), ret - v, atol=1e-4)
    # GAE lambda = 0 is the TD error (any values)
    r2, v2, nv2, term2, trunc2 = random_rollout(5 * T + B, T, B)
    close(gae(r2, v2, nv2, term2, trunc2, gamma, 0.0), td_errors(r2, v2, nv2, term2, gamma))
    # n-step: n >= T is the full return, n = 1 is the TD target
    for n in (T, 40):
        close(n_step_returns(r, nv, term, trunc, gamma, n), ret)
    close(n_step_returns(r, nv, term, trunc, gamma, 1), td_target)
    close(td_lambda_returns(r, v, nv, term, trunc, gamma, 0.0), td_target)
    close(td_lambda_returns(r, v, nv, term, trunc, gamma, 1.0), ret, atol=1e-4)
    # episode returns: the reward-to-go at each episode start
    done = term | trunc
    ep = np.asarray(episode_returns(r, term, trunc, gamma, next_values=nv))
    starts = np.concatenate([np.ones((1, B), bool), done[:-1]], axis=0)
    close(ep[starts], np.asarray(ret)[starts])


def test_n_must_be_positive():
    with pytest.raises(ValueError):
        n_step_returns(R, NV, TERM, TRUNC, G, 0)


# ---------------------------------------------------------------------------
# Termination vs truncation: the difference is exactly the discounted bootstrap value
# ---------------------------------------------------------------------------


def test_termination_vs_truncation_differ_by_bootstrap():
    T, e, gamma, lam, v_final = 8, 4, 0.9, 0.7, 3.0  # one episode ends at step e = 4
    rng = np.random.default_rng(0)
    r = rng.normal(size=(T, 1)).astype(np.float32)
    v = rng.normal(size=(T, 1)).astype(np.float32)
    nv = rng.normal(size=(T, 1)).astype(np.float32)
    nv[e] = v_final
    flag = np.zeros((T, 1), bool)
    flag[e] = True
    no = np.zeros((T, 1), bool)

    t = np.arange(T)[:, None]
    in_episode = t <= e  # steps 0..e belong to the episode that ends at e
    boot = gamma ** (e - t + 1) * v_final  # gamma^(e-t+1) V(final) seen from step t

    def diff(fn):  # (end marked truncated) minus (end marked terminated)
        return np.asarray(fn(flag_trunc=flag, flag_term=no)) - np.asarray(fn(flag_trunc=no, flag_term=flag))

    def dr(flag_trunc, flag_term):
        return discounted_returns(r, nv, flag_term, flag_trunc, gamma)
    close(diff(dr), np.where(in_episode, boot, 0.0))

    def ep(flag_trunc, flag_term):
        return episode_returns(r, flag_term, flag_trunc, gamma, next_values=nv)
    close(diff(ep), np.where(in_episode, gamma ** (e + 1) * v_final, 0.0))

    def td(flag_trunc, flag_term):
        return td_errors(r, v, nv, flag_term, gamma)
    close(diff(td), np.where(t == e, gamma * v_final, 0.0))

    def ga(flag_trunc, flag_term):
        return gae(r, v, nv, flag_term, flag_trunc, gamma, lam)
    close(diff(ga), np.where(in_episode, (gamma * lam) ** (e - t) * gamma * v_final, 0.0))

    for n in (1, 2, 3, 10):
        def ns(flag_trunc, flag_term):
            return n_step_returns(r, nv, flag_term, flag_trunc, gamma, n)
        close(diff(ns), np.where(in_episode & (e - t + 1 <= n), boot, 0.0))


# ---------------------------------------------------------------------------
# Infinite-horizon check: reward 1 forever, cut by a time limit of H steps.
# The value of the (single) state is 1 / (1 - gamma) = 100; it is found only if the
# time-limit cuts are treated as truncations (bootstrapped), not terminations.
# ---------------------------------------------------------------------------

H, GAMMA_INF, T_INF, B_INF = 10, 0.99, 40, 8
V_INF = 1.0 / (1.0 - GAMMA_INF)  # 100
V_FINITE = (1.0 - GAMMA_INF**H) / (1.0 - GAMMA_INF)  # 9.5618, return of an H-step episode


def time_limit_rollout(phases):
    """Flags of ``B`` envs whose episodes are cut every ``H`` steps; env ``b`` is ``phases[b]`` steps in."""
    t = np.arange(T_INF)[:, None]
    cut = (t + 1 + np.asarray(phases)[None, :]) % H == 0
    rewards = np.ones((T_INF, len(phases)), np.float32)
    return rewards, cut


def fit_constant_value(target_fn, rewards, cut, mask=None, iters=3000):
    """Fixed-point iteration ``V <- mean(targets computed with values = next_values = V)``.

    Returns ``(V with the cuts marked truncated, V with the same cuts marked terminated)``;
    ``mask`` restricts the mean to some steps (e.g. the episode starts).
    """
    weights = jnp.ones_like(rewards) if mask is None else jnp.asarray(mask, jnp.float32)
    never = np.zeros_like(cut)

    def fit(term, trunc):
        def body(_, v):
            vals = jnp.full_like(rewards, v)
            targets = target_fn(rewards, vals, vals, term, trunc)
            return jnp.sum(targets * weights) / jnp.sum(weights)

        return jax.lax.fori_loop(0, iters, body, jnp.float32(0.0))

    # both labellings in one compiled program: (term, trunc) = (never, cut) and (cut, never)
    v_trunc, v_term = jax.jit(jax.vmap(fit))(np.stack([never, cut]), np.stack([cut, never]))
    return float(v_trunc), float(v_term)


TARGETS = {
    "td": lambda r, v, nv, te, tr: n_step_returns(r, nv, te, tr, GAMMA_INF, 1),
    "n_step_4": lambda r, v, nv, te, tr: n_step_returns(r, nv, te, tr, GAMMA_INF, 4),
    "td_lambda_0.9": lambda r, v, nv, te, tr: td_lambda_returns(r, v, nv, te, tr, GAMMA_INF, 0.9),
    "gae_0.95": lambda r, v, nv, te, tr: gae(r, v, nv, te, tr, GAMMA_INF, 0.95) + v,
    "discounted_returns": lambda r, v, nv, te, tr: discounted_returns(r, nv, te, tr, GAMMA_INF),
}


@pytest.mark.parametrize("name", list(TARGETS))
def test_infinite_horizon_value_needs_truncation_bootstrap(name):
    # staggered envs: several truncations inside the rollout, and episodes still running at its end
    rewards, cut = time_limit_rollout(phases=[0, 1, 3, 5, 7, 9, 2, 6])
    v_trunc, v_term = fit_constant_value(TARGETS[name], rewards, cut)

    assert abs(v_trunc - V_INF) < 0.01 * V_INF, v_trunc
    # the same data wrongly marked "terminated": a finite-horizon fixed point, far below 100
    assert v_term < 0.2 * V_INF, v_term
    if name == "td":
        # V = 1 + gamma (1 - p) V with p the fraction of terminated steps: 1 / (1 - .99 * .9) = 9.17
        p = cut.mean()
        close(v_term, 1.0 / (1.0 - GAMMA_INF * (1.0 - p)), rtol=1e-3)


def test_infinite_horizon_value_of_start_state():
    """V(s0) fitted on the returns of whole H-step episodes: 100 with truncation, 9.56 without."""
    rewards, cut = time_limit_rollout(phases=[0] * B_INF)  # aligned: 4 whole episodes per env
    starts = np.concatenate([np.ones((1, B_INF), bool), cut[:-1]], axis=0)

    # R(tau) of every episode: 9.56 + gamma^H V(final) when truncated, 9.56 when terminated
    def ep(r, v, nv, te, tr):
        return episode_returns(r, te, tr, GAMMA_INF, next_values=nv)
    v_trunc, v_term = fit_constant_value(ep, rewards, cut)
    assert abs(v_trunc - V_INF) < 0.01 * V_INF, v_trunc
    close(v_term, V_FINITE, rtol=1e-4)  # (1 - .99^10) / (1 - .99) = 9.5618

    # the same with the reward-to-go read at the episode starts only
    def rtg(r, v, nv, te, tr):
        return discounted_returns(r, nv, te, tr, GAMMA_INF)
    v_trunc, v_term = fit_constant_value(rtg, rewards, cut, mask=starts)
    assert abs(v_trunc - V_INF) < 0.01 * V_INF, v_trunc
    close(v_term, V_FINITE, rtol=1e-4)


# ---------------------------------------------------------------------------
# jit / vmap / shapes
# ---------------------------------------------------------------------------


def all_functions(r, v, nv, term, trunc, gamma=0.9, lam=0.8):
    return {
        "discounted_returns": discounted_returns(r, nv, term, trunc, gamma),
        "episode_returns": episode_returns(r, term, trunc, gamma),
        "episode_returns_nv": episode_returns(r, term, trunc, gamma, next_values=nv),
        "n_step_returns": n_step_returns(r, nv, term, trunc, gamma, 3),
        "td_errors": td_errors(r, v, nv, term, gamma),
        "gae": gae(r, v, nv, term, trunc, gamma, lam),
        "td_lambda_returns": td_lambda_returns(r, v, nv, term, trunc, gamma, lam),
    }


def test_jit_and_shapes():
    r, v, nv, term, trunc = random_rollout(21, 6, 3)  # a shape of SHAPES: eager calls hit the jit cache
    eager = all_functions(r, v, nv, term, trunc)
    jitted = jax.jit(all_functions)(r, v, nv, term, trunc, jnp.float32(0.9), jnp.float32(0.8))
    for name, out in eager.items():
        assert out.shape == (6, 3), name
        assert out.dtype == jnp.float32, name
        close(jitted[name], out)
    # [T] inputs (one environment) work too
    single = jax.jit(all_functions)(r[:, 0], v[:, 0], nv[:, 0], term[:, 0], trunc[:, 0])
    for name, out in single.items():
        assert out.shape == (6,), name
        close(out, np.asarray(eager[name])[:, 0])


def test_vmap_over_batch_and_extra_axes():
    r, v, nv, term, trunc = random_rollout(22, 6, 3)
    eager = all_functions(r, v, nv, term, trunc)
    # vmap over the batch axis, one [T] column at a time
    per_column = jax.jit(jax.vmap(all_functions, in_axes=(1, 1, 1, 1, 1), out_axes=1))(r, v, nv, term, trunc)
    for name, out in eager.items():
        assert per_column[name].shape == (6, 3), name
        close(per_column[name], out)
    # vmap over a leading axis of independent rollouts, and over gamma
    def stack(x):
        return np.stack([x, x[::-1]])
    batched = jax.jit(jax.vmap(all_functions))(stack(r), stack(v), stack(nv), stack(term), stack(trunc))
    for name, out in eager.items():
        assert batched[name].shape == (2, 6, 3), name
        close(np.asarray(batched[name])[0], out)
    gammas = jnp.array([0.5, 0.9, 0.99], jnp.float32)
    by_gamma = jax.jit(jax.vmap(lambda g: all_functions(r, v, nv, term, trunc, gamma=g)))(gammas)
    for i, g in enumerate([0.5, 0.9, 0.99]):
        close(np.asarray(by_gamma["discounted_returns"])[i], ref_discounted_returns(r, nv, term, trunc, g))
