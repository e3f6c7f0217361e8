r"""The access-control queuing task: a continuing task with no episode end (Sutton & Barto 2018, Example 10.2).

The *Policy Objective Functions* deck (CISC 7404, Steven Morad): in a continuing environment there is
no start state to score, so the objective is the **average reward per time step**
:math:`J_{avR}(\theta) = \sum_s d^{\pi_\theta}(s) \sum_a \pi_\theta(a|s)\,R(s, a)`. This task has
no terminal state at all.

``AccessControl-v0``
    ``n_servers = 10`` servers and a queue of customers. Each step the customer at the head of the
    queue has priority 1, 2, 4 or 8 (uniformly at random). Action 0 rejects it (reward 0), action 1
    accepts it: if a server is free it takes the customer and the reward is the priority; if no server
    is free the customer is rejected whatever the action (reward 0). Then each busy server becomes free
    with probability ``p_free = 0.06``, and the next customer arrives.

    State :math:`(\text{free servers} \in \{0..10\}, \text{priority})`: 44 states. The observation
    is their one-hot vector ``Box(0, 1, (44,))`` at index ``free * 4 + priority_index``
    (:func:`state_index`), so ``features='linear-onehot'`` makes any linear learner tabular.

    It never terminates (``terminated`` is always False). It is registered with a time limit of
    1000 steps only so that evaluation episodes end; the truncation bootstraps, as it must for a
    continuing task. :func:`optimal_average_reward` solves the 44-state MDP by relative value iteration.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from advantage.envs.api import Environment
from advantage.envs.registry import register
from advantage.envs.spaces import Box, Discrete

REJECT, ACCEPT = 0, 1


@struct.dataclass
class AccessState:
    free: jax.Array  # number of free servers, int32 in [0, n_servers]
    priority: jax.Array  # index into params.priorities of the customer at the head of the queue


@struct.dataclass
class AccessParams:
    n_servers: int = struct.field(pytree_node=False, default=10)
    priorities: tuple = struct.field(pytree_node=False, default=(1.0, 2.0, 4.0, 8.0))
    p_free: float = 0.06
    """Probability that a busy server becomes free on a time step."""


def state_index(free, priority, n_priorities: int = 4):
    """The observation's hot index of the state (free servers, priority index): ``free * n_priorities + priority``."""
    return free * n_priorities + priority


class AccessControl(Environment):
    """Accept or reject prioritized customers for 10 servers; reward = priority when accepted; never terminates."""

    name = "AccessControl-v0"

    def default_params(self) -> AccessParams:
        return AccessParams()

    def observation_space(self, params):
        return Box(0.0, 1.0, ((params.n_servers + 1) * len(params.priorities),))

    def action_space(self, params):
        return Discrete(2)

    def _obs(self, state, params):
        n = (params.n_servers + 1) * len(params.priorities)
        return jax.nn.one_hot(state_index(state.free, state.priority, len(params.priorities)), n, dtype=jnp.float32)

    def reset(self, key, params):
        # all servers free, a random customer at the head of the queue
        priority = jax.random.randint(key, (), 0, len(params.priorities))
        state = AccessState(jnp.asarray(params.n_servers, jnp.int32), priority.astype(jnp.int32))
        return self._obs(state, params), state

    def step(self, key, state, action, params):
        k_free, k_next = jax.random.split(key)
        accepted = (jnp.asarray(action, jnp.int32).reshape(()) == ACCEPT) & (state.free > 0)
        reward = jnp.where(accepted, jnp.asarray(params.priorities, jnp.float32)[state.priority], 0.0)
        free = state.free - accepted.astype(jnp.int32)
        # each busy server frees independently with probability p_free
        busy = jnp.arange(params.n_servers) < params.n_servers - free
        freed = jnp.sum(busy & (jax.random.uniform(k_free, (params.n_servers,)) < params.p_free))
        new = AccessState((free + freed).astype(jnp.int32), jax.random.randint(k_next, (), 0, len(params.priorities)))
        return self._obs(new, params), new, reward.astype(jnp.float32), jnp.asarray(False), jnp.asarray(False), {}


def transition_model(params: AccessParams | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The MDP as arrays: ``P[s, a, s']`` and ``R[s, a]`` over the 44 states (index :func:`state_index`)."""
    params = params or AccessParams()
    n, k, p = params.n_servers, len(params.priorities), float(params.p_free)
    ns = (n + 1) * k
    P, R = np.zeros((ns, 2, ns)), np.zeros((ns, 2))
    for free in range(n + 1):
        for pr in range(k):
            s = state_index(free, pr, k)
            for a in (REJECT, ACCEPT):
                take = a == ACCEPT and free > 0
                R[s, a] = params.priorities[pr] if take else 0.0
                f = free - int(take)
                busy = n - f
                for j in range(busy + 1):  # j busy servers free: Binomial(busy, p)
                    pj = math.comb(busy, j) * p**j * (1 - p) ** (busy - j)
                    for pr2 in range(k):
                        P[s, a, state_index(f + j, pr2, k)] += pj / k
    return P, R


def optimal_average_reward(params: AccessParams | None = None, iters: int = 20_000, tol: float = 1e-10):
    """The optimal average reward ``rho*`` and a greedy optimal policy ``[44]``, by relative value iteration.

    ``h <- max_a (R + P h) - (max_a (R + P h))[0]``; the subtracted constant converges to ``rho*``.
    """
    P, R = transition_model(params)
    h = np.zeros(P.shape[0])
    rho = 0.0
    for _ in range(iters):
        q = R + P @ h
        v = q.max(axis=1)
        rho, new_h = v[0], v - v[0]
        if np.max(np.abs(new_h - h)) < tol:
            h = new_h
            break
        h = new_h
    return float(rho), (R + P @ h).argmax(axis=1)


def average_reward_of(policy_probs: np.ndarray, params: AccessParams | None = None) -> float:
    """The exact average reward of a stochastic policy ``pi[s, a]`` (``[44, 2]``): stationary ``d`` of ``P_pi``."""
    P, R = transition_model(params)
    P_pi = np.einsum("sa,sat->st", policy_probs, P)
    r_pi = np.sum(policy_probs * R, axis=1)
    evals, evecs = np.linalg.eig(P_pi.T)
    d = np.real(evecs[:, np.argmin(np.abs(evals - 1.0))])
    d = d / d.sum()
    return float(d @ r_pi)


register("AccessControl-v0", AccessControl, 1000)
