"""Tests of ``advantage.core.returns.vtrace`` (Espeholt et al. 2018, eq. 1): a hand-computed case, the
paper's sum as a plain Python loop, the on-policy identities (lambda-returns and GAE), clipping, and
termination vs truncation at episode ends."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_returns import close, random_rollout

from advantage.core.returns import gae, td_lambda_returns, vtrace

# ---------------------------------------------------------------------------
# The paper's definition as a plain loop (numpy, one column at a time).
# ---------------------------------------------------------------------------


def ref_vtrace(rewards, values, next_values, terminated, truncated, log_rho, gamma, lam, rho_bar, c_bar):
    """Eq. 1 written as its sum of products, cut at the episode end; then the policy-gradient advantages."""
    T, B = rewards.shape
    ratio = np.exp(log_rho.astype(np.float64))
    rho = np.minimum(rho_bar, ratio)
    c = lam * np.minimum(c_bar, ratio)
    targets = np.zeros((T, B))
    pg = np.zeros((T, B))
    for b in range(B):
        done = terminated[:, b] | truncated[:, b]
        delta = [rho[t, b] * (rewards[t, b] + (0.0 if terminated[t, b] else gamma * next_values[t, b])
                              - values[t, b]) for t in range(T)]
        for s in range(T):
            v = values[s, b]
            trace = 1.0  # prod_{i=s}^{t-1} c_i
            for t in range(s, T):
                v += gamma ** (t - s) * trace * delta[t]
                if done[t]:
                    break  # nothing from the next episode
                trace *= c[t, b]
            targets[s, b] = v
        for s in range(T):
            q = rewards[s, b] + (0.0 if terminated[s, b] else gamma * next_values[s, b])
            if not done[s] and s < T - 1:  # lambda v_{s+1} + (1 - lambda) V(s_{s+1}), expressed as a correction
                q += gamma * lam * (targets[s + 1, b] - values[s + 1, b])
            pg[s, b] = rho[s, b] * (q - values[s, b])
    return targets, pg


# ---------------------------------------------------------------------------
# Hand-computed case: T = 3, gamma = 0.5, lambda = 1, rho_bar = c_bar = 1, in three columns.
#   rewards 1, 2, 3; values V = 5, 6, 7; ratios pi/mu = 2, 0.5, 1  ->  rho = c = 1, 0.5, 1
#   column 0: no episode end, next values 6, 7, 10 (= V(s_1), V(s_2), then the rollout-end bootstrap)
#   column 1: termination after step 0
#   column 2: truncation after step 1, the true final observation worth 20
# ---------------------------------------------------------------------------

G = 0.5
R = np.array([[1.0] * 3, [2.0] * 3, [3.0] * 3], np.float32)
V = np.array([[5.0] * 3, [6.0] * 3, [7.0] * 3], np.float32)
NV = np.array([[6.0, 6.0, 6.0], [7.0, 7.0, 20.0], [10.0, 10.0, 10.0]], np.float32)
TERM = np.array([[0, 1, 0], [0, 0, 0], [0, 0, 0]], bool)
TRUNC = np.array([[0, 0, 0], [0, 0, 1], [0, 0, 0]], bool)
LOG_RHO = np.log(np.array([[2.0] * 3, [0.5] * 3, [1.0] * 3], np.float32))


def test_vtrace_by_hand():
    out = vtrace(R, V, NV, TERM, TRUNC, LOG_RHO, G)
    # r + .5 (1 - term) NV:  col 0: 4, 5.5, 8;  col 1: 1, 5.5, 8;  col 2: 4, 12, 8
    # delta = rho (that - V): col 0: 1*(-1) = -1, .5*(-.5) = -.25, 1*1 = 1
    #                         col 1: 1*(1-5) = -4, -.25, 1
    #                         col 2: -1, .5*(12-6) = 3, 1
    # v - V backwards (c = 1, .5, 1; cut at episode ends):
    #   col 0: 1;  -.25 + .5*.5*1 = 0;    -1 + .5*1*0 = -1     -> v = 4, 6, 8
    #   col 1: 1;  0 (as col 0);          -4 (terminated)       -> v = 1, 6, 8
    #   col 2: 1;  3 (truncated);         -1 + .5*1*3 = .5      -> v = 5.5, 9, 8
    close(out.targets, [[4.0, 1.0, 5.5], [6.0, 6.0, 9.0], [8.0, 8.0, 8.0]])
    # pg = rho (r + gamma v_{s+1} - V), v_{s+1} := V(s') at an episode end and at the rollout end:
    #   col 0: 1*(1 + .5*6 - 5) = -1;   .5*(2 + .5*8 - 6) = 0;   1*(3 + .5*10 - 7) = 1
    #   col 1: 1*(1 - 5) = -4;          0;                       1
    #   col 2: 1*(1 + .5*9 - 5) = .5;   .5*(2 + .5*20 - 6) = 3;  1
    close(out.pg_advantages, [[-1.0, -4.0, 0.5], [0.0, 0.0, 3.0], [1.0, 1.0, 1.0]])


def test_vtrace_by_hand_with_separate_truncation_levels():
    # column 0 with rho_bar = 2, c_bar = .25: rho = 2, .5, 1 and c = .25, .25, .25
    out = vtrace(R[:, :1], V[:, :1], NV[:, :1], TERM[:, :1], TRUNC[:, :1], LOG_RHO[:, :1], G, 1.0, 2.0, 0.25)
    # delta = 2*(-1) = -2, .5*(-.5) = -.25, 1
    # v - V: 1;  -.25 + .5*.25*1 = -.125;  -2 + .5*.25*(-.125) = -2.015625  -> v = 2.984375, 5.875, 8
    close(out.targets[:, 0], [2.984375, 5.875, 8.0])
    # pg: 2*(1 + .5*5.875 - 5) = -2.125;  .5*(2 + .5*8 - 6) = 0;  1*(3 + 5 - 7) = 1
    close(out.pg_advantages[:, 0], [-2.125, 0.0, 1.0])
    # lambda = .5 scales the traces (c = .125) and mixes q's bootstrap: .5 v_{s+1} + .5 V(s_{s+1})
    out = vtrace(R[:, :1], V[:, :1], NV[:, :1], TERM[:, :1], TRUNC[:, :1], LOG_RHO[:, :1], G, 0.5, 2.0, 0.25)
    # v - V: 1;  -.25 + .5*.125*1 = -.1875;  -2 + .5*.125*(-.1875) = -2.01171875
    close(out.targets[:, 0], [5 - 2.01171875, 6 - 0.1875, 8.0])
    # pg_0 = 2*(4 + .5*.5*(-.1875) - 5) = -2.09375;  pg_1 = .5*(5.5 + .5*.5*1 - 6) = -.125
    close(out.pg_advantages[:, 0], [-2.09375, -0.125, 1.0])


# ---------------------------------------------------------------------------
# The loop reference on random rollouts, ratios spread far on both sides of 1
# ---------------------------------------------------------------------------

SHAPES = [(1, 1), (6, 3), (33, 2)]
SETTINGS = [  # (gamma, lambda, rho_bar, c_bar)
    (0.9, 1.0, 1.0, 1.0),
    (0.99, 0.95, 1.0, 1.0),
    (0.5, 0.7, 2.0, 0.5),
    (1.0, 1.0, 0.8, 1.5),
    (0.0, 1.0, 1.0, 1.0),
]


@jax.jit
def _vtrace_settings(r, v, nv, term, trunc, log_rho):
    s = jnp.array(SETTINGS, jnp.float32)  # traced hyperparameters: one program for every setting
    return jax.vmap(lambda g, lam, rb, cb: vtrace(r, v, nv, term, trunc, log_rho, g, lam, rb, cb))(*s.T)


@pytest.mark.parametrize("T,B", SHAPES)
def test_against_the_loop(T, B):
    r, v, nv, term, trunc = random_rollout(T * 31 + B, T, B)
    log_rho = np.random.default_rng(T + B).normal(scale=2.0, size=(T, B)).astype(np.float32)  # e^-4 .. e^4
    out = _vtrace_settings(r, v, nv, term, trunc, log_rho)
    for i, (gamma, lam, rho_bar, c_bar) in enumerate(SETTINGS):
        targets, pg = ref_vtrace(r, v, nv, term, trunc, log_rho, gamma, lam, rho_bar, c_bar)
        close(out.targets[i], targets, rtol=1e-4, atol=1e-4)
        close(out.pg_advantages[i], pg, rtol=1e-4, atol=1e-4)
    if T * B > 10:  # both clippings happened in these data
        assert (np.exp(log_rho) > 2.0).any() and (np.exp(log_rho) < 0.5).any()


# ---------------------------------------------------------------------------
# On-policy: the lambda-returns and GAE
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("T,B", SHAPES)
@pytest.mark.parametrize("lam", [0.0, 0.8, 1.0])
def test_on_policy_is_lambda_returns_and_gae(T, B, lam):
    r, v, nv, term, trunc = random_rollout(T + 7 * B, T, B)  # values and next values inconsistent: any values
    zero = np.zeros((T, B), np.float32)
    out = vtrace(r, v, nv, term, trunc, zero, 0.9, lam)
    close(out.targets, td_lambda_returns(r, v, nv, term, trunc, 0.9, lam))
    close(out.pg_advantages, gae(r, v, nv, term, trunc, 0.9, lam))
    # truncation levels above 1 change nothing at ratio 1
    out = vtrace(r, v, nv, term, trunc, zero, 0.9, lam, 3.0, 2.0)
    close(out.targets, td_lambda_returns(r, v, nv, term, trunc, 0.9, lam))


# ---------------------------------------------------------------------------
# Clipping
# ---------------------------------------------------------------------------


def test_ratios_far_above_the_truncation_levels_are_clipped():
    r, v, nv, term, trunc = random_rollout(5, 12, 4)
    on_policy = vtrace(r, v, nv, term, trunc, np.zeros((12, 4), np.float32), 0.9, 0.9)
    # every ratio >= 1 with rho_bar = c_bar = 1: clipped to 1, i.e. the on-policy result
    big = np.random.default_rng(0).uniform(0.0, 30.0, (12, 4)).astype(np.float32)  # ratios 1 .. e^30
    off = vtrace(r, v, nv, term, trunc, big, 0.9, 0.9)
    close(off.targets, on_policy.targets)
    close(off.pg_advantages, on_policy.pg_advantages)
    # with rho_bar = 2, c_bar = 1.5: the same as ratios exactly 2 (rho) and 1.5 (c), by the loop
    off = vtrace(r, v, nv, term, trunc, big + 2.0, 0.9, 0.9, 2.0, 1.5)  # every ratio >= e^2 > 2
    # rho = 2 in every TD error, c = lambda * 1.5 = 1.35 in every trace (the loop with every ratio exactly 2)
    _, pg = ref_vtrace(r, v, nv, term, trunc, np.full((12, 4), np.log(2.0), np.float32), 0.9, 0.9, 2.0, 1.5)
    close(off.pg_advantages, pg, rtol=1e-4, atol=1e-4)
    # v - V = delta_t + gamma * 1.35 * (1 - done_t) (v - V)_{t+1}: GAE of the deltas with "gamma lambda" = 1.215
    delta = 2.0 * (r + 0.9 * (1 - term) * nv - v)
    expected = np.asarray(gae(delta, np.zeros_like(v), np.zeros_like(v), term, trunc, 1.0, 0.9 * 0.9 * 1.5))
    close(off.targets - v, expected, rtol=1e-4, atol=1e-4)


def test_ratios_far_below_one_stop_the_correction():
    r, v, nv, term, trunc = random_rollout(6, 10, 3)
    tiny = np.full((10, 3), -40.0, np.float32)  # pi / mu = e^-40: the target policy never takes these actions
    out = vtrace(r, v, nv, term, trunc, tiny, 0.99)
    close(out.targets, v)  # v_s = V(x_s): nothing to learn from
    close(out.pg_advantages, np.zeros_like(v))
    # one step with a tiny ratio cuts the trace: steps before it see nothing of the steps after it
    log_rho = np.zeros((10, 3), np.float32)
    log_rho[4] = -40.0
    no_end = np.zeros((10, 3), bool)
    a = vtrace(r, v, nv, no_end, no_end, log_rho, 0.99)
    r2 = r.copy()
    r2[5:] += 100.0
    b = vtrace(r2, v, nv, no_end, no_end, log_rho, 0.99)
    close(a.targets[:5], b.targets[:5])
    assert np.all(np.abs(np.asarray(a.targets[5:]) - np.asarray(b.targets[5:])) > 1.0)


# ---------------------------------------------------------------------------
# Episode ends: a truncation bootstraps, a termination does not, nothing crosses
# ---------------------------------------------------------------------------


def test_termination_vs_truncation_differ_by_the_clipped_bootstrap():
    T, e, gamma, lam, v_final = 8, 4, 0.9, 0.8, 3.0  # one episode ends after step e
    rng = np.random.default_rng(1)
    r, v, nv = (rng.normal(size=(T, 1)).astype(np.float32) for _ in range(3))
    nv[e] = v_final
    log_rho = rng.normal(scale=1.0, size=(T, 1)).astype(np.float32)
    flag = np.zeros((T, 1), bool)
    flag[e] = True
    no = np.zeros((T, 1), bool)
    trunc = vtrace(r, v, nv, no, flag, log_rho, gamma, lam)
    term = vtrace(r, v, nv, flag, no, log_rho, gamma, lam)
    ratio = np.exp(log_rho[:, 0].astype(np.float64))
    rho, c = np.minimum(1.0, ratio), lam * np.minimum(1.0, ratio)
    # targets: rho_e gamma V_final, carried back by gamma c_i; pg: rho_e gamma V_final at e, rho_t gamma lambda
    # (the targets' difference at t+1) before it; after e: nothing
    d_targets, d_pg = np.zeros(T), np.zeros(T)
    d_targets[e] = d_pg[e] = rho[e] * gamma * v_final
    for t in reversed(range(e)):
        d_targets[t] = gamma * c[t] * d_targets[t + 1]
        d_pg[t] = rho[t] * gamma * lam * d_targets[t + 1]
    close(np.asarray(trunc.targets - term.targets)[:, 0], d_targets)
    close(np.asarray(trunc.pg_advantages - term.pg_advantages)[:, 0], d_pg)
    assert d_targets[0] != 0.0  # the difference does reach back to the episode's first step


@pytest.mark.parametrize("kind", ["terminated", "truncated"])
def test_nothing_flows_back_across_an_episode_end(kind):
    T, e = 9, 3
    r, v, nv, _, _ = random_rollout(9, T, 2)
    log_rho = np.random.default_rng(2).normal(size=(T, 2)).astype(np.float32)
    flag = np.zeros((T, 2), bool)
    flag[e] = True
    no = np.zeros((T, 2), bool)
    term, trunc = (flag, no) if kind == "terminated" else (no, flag)
    a = vtrace(r, v, nv, term, trunc, log_rho, 0.99, 0.9)
    # change everything of the next episode: rewards, values, next values, ratios
    r2, v2, nv2, lr2 = r.copy(), v.copy(), nv.copy(), log_rho.copy()
    for x in (r2, v2, nv2, lr2):
        x[e + 1:] += 5.0
    b = vtrace(r2, v2, nv2, term, trunc, lr2, 0.99, 0.9)
    close(a.targets[: e + 1], b.targets[: e + 1])
    close(a.pg_advantages[: e + 1], b.pg_advantages[: e + 1])


def test_both_flags_on_one_step_is_a_termination():
    r, v, nv, term, trunc = random_rollout(4, 6, 3)
    log_rho = np.random.default_rng(3).normal(size=(6, 3)).astype(np.float32)
    both = vtrace(r, v, nv, term, term | trunc, log_rho, 0.9)
    only = vtrace(r, v, nv, term, trunc & ~term, log_rho, 0.9)
    close(both.targets, only.targets)


def test_shapes_jit_and_vmap():
    r, v, nv, term, trunc = random_rollout(8, 6, 3)
    log_rho = np.random.default_rng(4).normal(size=(6, 3)).astype(np.float32)
    full = vtrace(r, v, nv, term, trunc, log_rho, 0.9, 0.8)
    assert full.targets.shape == full.pg_advantages.shape == (6, 3)
    assert full.targets.dtype == jnp.float32
    single = vtrace(r[:, 1], v[:, 1], nv[:, 1], term[:, 1], trunc[:, 1], log_rho[:, 1], 0.9, 0.8)  # [T]
    close(single.targets, np.asarray(full.targets)[:, 1])
    cols = jax.vmap(vtrace, in_axes=(1, 1, 1, 1, 1, 1, None, None), out_axes=1)(
        r, v, nv, term, trunc, log_rho, 0.9, 0.8)
    close(cols.pg_advantages, full.pg_advantages)
    floats = vtrace(r, v, nv, term.astype(np.float32), trunc.astype(np.float32), log_rho, 0.9, 0.8)
    close(floats.targets, full.targets)
