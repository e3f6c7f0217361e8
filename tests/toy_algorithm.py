"""A toy algorithm written only against ``advantage.algos.api.Algorithm`` (docs/how-to/add-an-algorithm.md).

A softmax policy over discrete actions that ignores the observation (one logit per action), trained by
REINFORCE on one-step returns: ``theta += lr * mean((r_t - mean(r)) * grad log pi(a_t))``. On a bandit
it learns which arm pays.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from advantage.config import static

NAME = "toy-pg"
SEARCH = False
NAN_METRICS: tuple[str, ...] = ()


@struct.dataclass
class Config:
    n_envs: int = static(4)
    """Parallel environments per seed."""
    n_steps: int = static(8)
    """Steps per environment per update."""
    learning_rate: float = 0.5
    """Step size of the logits."""


PRESETS: dict[str, dict] = {}
DEFAULT_STEPS: dict[str, int] = {}


class AgentState(struct.PyTreeNode):
    logits: jax.Array


def init(key, obs_space, action_space, config: Config, total_steps: int) -> AgentState:
    return AgentState(logits=jnp.zeros(action_space.n))


def act(config: Config, action_space, state: AgentState, obs, key, deterministic: bool = False):
    n = obs.shape[0]
    logits = jnp.broadcast_to(state.logits, (n, state.logits.shape[0]))
    action = jnp.argmax(logits, -1) if deterministic else jax.random.categorical(key, logits)
    log_prob = jax.nn.log_softmax(logits)[jnp.arange(n), action]
    return action, log_prob, jnp.zeros(n)


def update(config: Config, action_space, state: AgentState, batch, key):
    advantage = batch.reward - batch.reward.mean()

    def loss(logits):
        log_prob = jax.nn.log_softmax(logits)[batch.action]
        return -jnp.mean(advantage * log_prob)

    value, grad = jax.value_and_grad(loss)(state.logits)
    new = AgentState(logits=state.logits - config.learning_rate * grad)
    probs = jax.nn.softmax(new.logits)
    return new, {"loss/policy": value, "loss/entropy": -jnp.sum(probs * jnp.log(probs)),
                 "grad/norm": jnp.linalg.norm(grad)}


def policy_params(state: AgentState):
    return state.logits
