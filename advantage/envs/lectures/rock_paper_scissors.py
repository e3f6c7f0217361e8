r"""Iterated rock-paper-scissors against an opponent that exploits predictability.

The slides (*Policy Search: Actor-Critic and Gradient Policy search*, "Stochastic Policies:
Rock-Paper-Scissors"; David Silver's lecture 7; *Policy Gradient Methods*, "Stochastic
policies"): "a deterministic policy is easily exploited; a uniform random policy is optimal
(i.e. Nash equilibrium)".

* Actions: ``0 = rock, 1 = paper, 2 = scissors`` (paper beats rock, scissors beat paper, rock
  beats scissors). Reward: +1 win, 0 draw, -1 loss.
* The opponent keeps an exponential moving average ``m`` of the agent's actions (one-hot,
  ``m <- (1 - rate) m + rate e_a`` after each round, starting from uniform 1/3 each) and plays
  the best response to it: the action ``b`` maximising its expected payoff
  :math:`\sum_a m_a u(b, a)` against ``m``, ties (within ``tie_tol``) broken uniformly at random.
  It sees only past rounds, never the agent's current action.
* Observation: a constant ``[1.0]``. The agent has no information about the opponent, so its
  (memoryless) policy is a fixed distribution over the three actions. This is the setting of
  the slides: a deterministic policy (always the same action) is learned by the opponent after
  a round or two and then loses every round (mean reward about -1), while the uniform policy
  earns 0 in expectation whatever the opponent does (the Nash equilibrium). Were ``m``
  observable, a deterministic policy could predict and beat the opponent, and the point
  would be lost.
* Episodes of 100 rounds: registered with a time limit of 100 (truncation; never terminated).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from advantage.envs.api import Environment
from advantage.envs.registry import register
from advantage.envs.spaces import Box, Discrete

ROCK, PAPER, SCISSORS = 0, 1, 2
#: PAYOFF[a, b]: reward of playing a against b.
PAYOFF = ((0.0, -1.0, 1.0), (1.0, 0.0, -1.0), (-1.0, 1.0, 0.0))


def payoff(a, b):
    """+1 if ``a`` beats ``b``, 0 on a draw, -1 if ``b`` beats ``a``."""
    return jnp.asarray(PAYOFF, jnp.float32)[a, b]


def best_response(key, freq, tie_tol=1e-6):
    """The opponent's best response to the agent's action frequencies ``freq [3]``, random tie-break."""
    values = jnp.asarray(PAYOFF, jnp.float32) @ freq  # values[b] = sum_a freq_a u(b, a)
    best = values >= jnp.max(values) - tie_tol
    logits = jnp.where(best, 0.0, -jnp.inf)
    return jax.random.categorical(key, logits).astype(jnp.int32)


@struct.dataclass
class RPSState:
    freq: jax.Array  # [3] EMA of the agent's one-hot actions
    t: jax.Array


@struct.dataclass
class RPSParams:
    rate: float = 0.2
    """Weight of the latest round in the opponent's moving average of the agent's actions."""
    tie_tol: float = 1e-6


class RockPaperScissors(Environment):
    """Iterated rock-paper-scissors against a best-responder to the agent's recent frequencies."""

    name = "RockPaperScissors-v0"

    def default_params(self):
        return RPSParams()

    def observation_space(self, params):
        return Box(0.0, 1.0, (1,))

    def action_space(self, params):
        return Discrete(3)

    def reset(self, key, params):
        return jnp.ones((1,), jnp.float32), RPSState(jnp.full((3,), 1.0 / 3.0, jnp.float32), jnp.zeros((), jnp.int32))

    def step(self, key, state, action, params):
        action = jnp.asarray(action, jnp.int32).reshape(())
        opponent = best_response(key, state.freq, params.tie_tol)
        reward = payoff(action, opponent)
        freq = (1.0 - params.rate) * state.freq + params.rate * jax.nn.one_hot(action, 3, dtype=jnp.float32)
        info = {"opponent_action": opponent}
        return (
            jnp.ones((1,), jnp.float32),
            RPSState(freq, state.t + 1),
            reward,
            jnp.asarray(False),
            jnp.asarray(False),
            info,
        )


register("RockPaperScissors-v0", RockPaperScissors, 100)
