"""DQN (Mnih et al. 2015) and, with ``double=True``, Double DQN (van Hasselt, Guez, Silver 2016).

The value-based baseline that the slides compare the policy-search methods against: it learns
``Q(s, a)`` for a discrete action space and acts greedily with respect to it (epsilon-greedy
while training). It is an off-policy learner like TD3 and SAC and fits the generic driver the
same way: the replay buffer lives inside the agent state (``advantage.buffers.replay``), each
driver iteration collects ``n_steps`` steps from each of the ``n_envs`` environments and calls
``update``, which stores them, updates the target network when its period is due, and runs the
gradient steps that are due (``replay.training_rounds``: ``gradient_steps`` every ``train_freq``
steps per env, once more than ``learning_starts`` transitions were collected).

Read top to bottom: ``Config`` -> ``AgentState`` -> the Q network -> ``init`` -> the epsilon
schedule and ``act`` -> the target, the loss and one gradient step -> ``update``. Defaults are
Stable-Baselines3's DQN; the CartPole preset is PureJaxRL's settings with Double DQN's target. Every detail
and departure is listed in ``docs/algorithms/dqn.md``.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from advantage.buffers import replay
from advantage.config import ConfigError, check, static
from advantage.core import optim
from advantage.core.losses import global_norm
from advantage.core.returns import td_target
from advantage.envs.spaces import is_discrete
from advantage.nets.mlp import NetworkConfig, flatten_obs
from advantage.nets.offpolicy import Linear, Torso
from advantage.types import Transition

NAME = "dqn"
SEARCH = False  # trained by updates (advantage.training.stepper.UpdateStepper)

#: Metric prefixes that are NaN by design: no gradient step runs before ``learning_starts`` (and between
#: training rounds when ``train_freq > n_steps``), so the minibatch's loss, gradient norm and Q values are NaN.
NAN_METRICS = ("loss/", "grad/", "value/")

#: The losses ``loss`` may name.
LOSSES = ("huber", "mse")


@struct.dataclass
class Config(NetworkConfig):
    """DQN hyperparameters. Defaults are Stable-Baselines3's DQN defaults."""

    # layer_norm (in the Q network's torso), weight_decay (decoupled, on Adam): the fields of nets.mlp.NetworkConfig

    n_envs: int = static(1)
    """Parallel environments per seed."""
    n_steps: int = static(1)
    """Steps collected from each environment per driver iteration (each iteration ends with one update call);
    epsilon is held for the n_steps of an iteration."""
    buffer_size: int = static(1_000_000)
    """Replay buffer capacity in transitions (allocated as min(buffer_size, the run's budget))."""
    batch_size: int = static(32)
    """Minibatch size of each gradient step, drawn uniformly from the buffer."""
    hidden_sizes: tuple[int, ...] = static((64, 64))
    """Hidden layer sizes of the Q network."""
    activation: str = static("relu")
    """Hidden activation: relu, tanh, elu or gelu."""
    gradient_steps: int = static(1)
    """Gradient steps per training round (update-to-data ratio = gradient_steps / (train_freq * n_envs))."""
    train_freq: int = static(4)
    """Train every train_freq steps per environment."""
    double: bool = static(False)
    """Double DQN: the online network picks the next action, the target network values it (False: DQN's max)."""
    loss: str = static("huber")
    """TD loss: huber (smooth L1 with delta 1, SB3 and the Nature paper's clipped error) or mse (CleanRL)."""
    anneal_lr: bool = static(False)
    """Anneal the learning rate linearly to 0 over the run's budget (False: constant, as SB3 and CleanRL)."""

    learning_rate: float = 1e-4
    """Adam step size."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 1.0
    """Target update coefficient: target <- tau * online + (1 - tau) * target every target_update_interval
    env steps (1 = a hard copy, DQN's periodic update; < 1 with interval 1 = Polyak averaging)."""
    target_update_interval: int = 10_000
    """Env steps (over all envs) between target updates."""
    learning_starts: int = 100
    """Env steps (over all envs) of uniform random actions before epsilon-greedy acting and training start."""
    exploration_fraction: float = 0.1
    """Fraction of the run's budget over which epsilon falls linearly from its initial to its final value."""
    exploration_initial_eps: float = 1.0
    """Epsilon at the start of the schedule (the probability of a uniform random action)."""
    exploration_final_eps: float = 0.05
    """Epsilon after exploration_fraction of the budget, until the end of the run."""
    max_grad_norm: float = 10.0
    """Clip the gradient's global norm to this before Adam."""
    adam_eps: float = 1e-8
    """Adam epsilon."""

    def __post_init__(self):
        self.check_network()  # layer_norm, weight_decay (nets.mlp.NetworkConfig)
        replay.check_config(self, None)
        check(self, "loss", lambda v: v in LOSSES, f"choose one of {', '.join(LOSSES)}")
        check(self, "target_update_interval", lambda v: v >= 1, "update the target every >= 1 env steps")
        check(self, "exploration_fraction", lambda v: 0 <= v <= 1, "a fraction of the budget lies in [0, 1]")
        check(self, "exploration_initial_eps", lambda v: 0 <= v <= 1, "epsilon is a probability, in [0, 1]")
        check(self, "exploration_final_eps", lambda v: 0 <= v <= 1, "epsilon is a probability, in [0, 1]")
        check(self, "max_grad_norm", lambda v: v > 0, "the clipping threshold must be positive")


#: Per-environment defaults. CartPole-v1: PureJaxRL's DQN settings (purejaxrl/dqn.py: 10 envs, one gradient step of
#: batch 128 per 10 env steps, the target copied every 500 env steps, buffer 10k, learning starts at 10k, lr 2.5e-4,
#: epsilon 1 -> 0.05 over half the budget, a 120-84 network, the squared TD error, 500k env steps) with three changes:
#: Double DQN's target, the learning rate annealed to 0 (and SB3's gradient clipping at norm 10, this module's
#: default), and more exploration late: epsilon 1 -> 0.1 over the first 30% of the budget (failing transitions keep
#: coming into the 10k buffer once the agent balances; with 0.05 over half the budget two seeds of 20 collapsed late
#: under AVX). Every seed of 0-19 reaches 475 under AVX2, AVX and SSE4.2, and of 20-39 under AVX2
#: (docs/algorithms/dqn.md, "Presets"); the RL Baselines3 Zoo's entry (50k steps, lr 2.3e-3, 256-256, Huber) and the
#: variants of it tried solved at most 15 of 20.
PRESETS: dict[str, dict] = {
    "CartPole-v1": dict(
        n_envs=10,
        n_steps=1,
        train_freq=1,
        gradient_steps=1,
        batch_size=128,
        buffer_size=10_000,
        learning_starts=10_000,
        target_update_interval=500,
        exploration_fraction=0.3,
        exploration_final_eps=0.1,
        learning_rate=2.5e-4,
        anneal_lr=True,
        hidden_sizes=(120, 84),
        loss="mse",
        double=True,
    ),
}
#: Default budget (env steps per seed).
DEFAULT_STEPS: dict[str, int] = {"CartPole-v1": 500_000}
#: The CartPole-v1 preset until 2026-12-04: the RL Baselines3 Zoo's ``hyperparams/dqn.yml`` entry
#: (rl-baselines3-zoo@ce95481) with Double DQN, the learning rate annealed to 0, and rounds of 64 gradient steps every
#: 128 env steps; 50k env steps; 14 of seeds 0-19 solved. The labs replay-size, replay-recovery and try-a2c-first were
#: measured with it and keep it.
ZOO_CARTPOLE: dict = dict(
    n_steps=128,
    learning_rate=2.3e-3,
    anneal_lr=True,
    double=True,
    batch_size=64,
    buffer_size=100_000,
    learning_starts=1000,
    gamma=0.99,
    target_update_interval=10,
    train_freq=128,
    gradient_steps=64,
    exploration_fraction=0.16,
    exploration_final_eps=0.04,
    hidden_sizes=(256, 256),
)


class AgentState(struct.PyTreeNode):
    """Everything that changes during training, replay buffer included; saved whole in every checkpoint."""

    q_params: dict  # online Q network
    target_params: dict  # target Q network
    opt_state: optax.OptState
    buffer: replay.ReplayBuffer  # actions stored as int32
    env_steps: jax.Array  # transitions collected so far (all envs)
    grad_steps: jax.Array  # gradient steps done so far
    total_steps: jax.Array  # env steps of the run (per seed): the epsilon schedule's horizon


# ----------------------------------------------------------------------------- the Q network
class QNetwork(nn.Module):
    """``s -> [Q(s, 0), ..., Q(s, n-1)]``: an MLP torso and one linear output per action, with PyTorch's default
    initialisation (as SB3's and CleanRL's DQN; ``nets/offpolicy.py``); with ``layer_norm``, each hidden layer is
    ``Linear -> LayerNorm -> activation``."""

    n_actions: int
    hidden_sizes: Sequence[int]
    activation: str = "relu"
    layer_norm: bool = False

    @nn.compact
    def __call__(self, obs):
        return Linear(self.n_actions, name="out")(Torso(self.hidden_sizes, self.activation, self.layer_norm)(obs))


def q_net(config, action_space) -> QNetwork:
    return QNetwork(int(action_space.n), config.hidden_sizes, config.activation, config.layer_norm)


def require_discrete(action_space) -> None:
    """DQN's greedy action is an argmax over a finite set: a clear error for a continuous (Box) space."""
    if not is_discrete(action_space):
        raise ConfigError(
            f"dqn needs a discrete action space; got a continuous Box of shape {tuple(action_space.shape)}. "
            "Use sac or td3 (or ddpg) for continuous actions."
        )
    if hasattr(action_space, "nvec"):
        raise ConfigError(
            f"dqn needs a Discrete action space; got a MultiDiscrete one with nvec {tuple(action_space.nvec)}, whose "
            "joint actions DQN's one Q output per action does not cover. Use ppo, a2c or another on-policy algorithm "
            "(a factored policy), or wrap the env so that it has one Discrete action per joint action."
        )


def optimizer(config) -> optax.GradientTransformation:
    """Global-norm clipping, then Adam's scaling and the decoupled ``weight_decay`` of the weight matrices; the step
    ``-learning_rate * update`` is applied by ``core.optim.apply_gradients``, so the rate can be a pytree leaf."""
    return optim.optimizer(
        "adam", max_grad_norm=config.max_grad_norm, eps=config.adam_eps, weight_decay=config.weight_decay
    )


def init(key, obs_space, action_space, config: Config, total_steps: int) -> AgentState:
    require_discrete(action_space)
    obs_dim = int(np.prod(obs_space.shape))
    params = q_net(config, action_space).init(key, jnp.zeros((1, obs_dim)))
    return AgentState(
        q_params=params,
        target_params=params,
        opt_state=optimizer(config).init(params),
        buffer=replay.init(replay.capacity_for(config.buffer_size, total_steps), obs_space.shape, (), jnp.int32),
        env_steps=jnp.zeros((), jnp.int32),
        grad_steps=jnp.zeros((), jnp.int32),
        total_steps=jnp.asarray(total_steps, jnp.int32),
    )


def obs_features(state, obs):
    """``[B, *obs_shape] -> [B, obs_dim]`` (observations are used raw: no normalisation)."""
    return flatten_obs(obs.astype(jnp.float32), state.buffer.obs.shape[1:])


# ----------------------------------------------------------------------------- acting
def epsilon(config, env_steps, total_steps):
    r"""The linear exploration schedule on env steps (SB3's ``get_linear_fn``, CleanRL's ``linear_schedule``):

    .. math::
        \epsilon(t) = \epsilon_0 + (\epsilon_1 - \epsilon_0)\,\min\big(1,\; t / (f\,T)\big)

    ``t`` = ``env_steps`` collected so far, ``T`` = ``total_steps`` (the run's budget per seed),
    ``f`` = ``exploration_fraction`` (``f = 0``: ``epsilon_1`` from the start).
    """
    duration = config.exploration_fraction * total_steps
    progress = jnp.where(duration > 0, jnp.minimum(env_steps / jnp.maximum(duration, 1e-9), 1.0), 1.0)
    start, end = config.exploration_initial_eps, config.exploration_final_eps
    return jnp.asarray(start + (end - start) * progress, jnp.float32)


def act(config: Config, action_space, state: AgentState, obs, key, deterministic: bool = False):
    """Actions for a batch ``obs [B, ...]``; returns ``(action [B] int32, log_prob, value)``: ``log_prob`` is 0,
    ``value`` is the greedy value ``max_a Q(s, a)``.

    - ``deterministic``: the greedy ``argmax_a Q(s, a)`` (evaluation; ties go to the lowest index).
    - before ``learning_starts`` env steps: uniform random actions.
    - after: epsilon-greedy, with probability ``epsilon(env_steps)`` a uniform random action (which may be the
      greedy one), else the greedy one.
    """
    q = q_net(config, action_space).apply(state.q_params, obs_features(state, obs))  # [B, n]
    greedy = jnp.argmax(q, axis=-1).astype(jnp.int32)
    zeros, value = jnp.zeros(q.shape[:1], jnp.float32), jnp.max(q, axis=-1)
    if deterministic:
        return greedy, zeros, value
    k_explore, k_random = jax.random.split(key)
    eps = jnp.where(state.env_steps < config.learning_starts, 1.0, epsilon(config, state.env_steps, state.total_steps))
    random = jax.random.randint(k_random, q.shape[:1], 0, q.shape[-1], jnp.int32)
    action = jnp.where(jax.random.uniform(k_explore, q.shape[:1]) < eps, random, greedy)
    return action, zeros, value


# ----------------------------------------------------------------------------- target and loss
def next_value(q_next_target, q_next_online, double: bool):
    r"""The bootstrap value of the next state, ``[B, n] -> [B]``.

    - DQN (Mnih et al. 2015, Algorithm 1): :math:`\max_a Q_{\theta^-}(s', a)`.
    - Double DQN (van Hasselt et al. 2016, eq. 4): :math:`Q_{\theta^-}\big(s', \arg\max_a Q_\theta(s', a)\big)`:
      the online network chooses the action, the target network values it.
    """
    if double:
        a_star = jnp.argmax(q_next_online, axis=-1)
        return jnp.take_along_axis(q_next_target, a_star[:, None], axis=-1)[:, 0]
    return jnp.max(q_next_target, axis=-1)


def q_target(config, action_space, q_params, target_params, mb: replay.Sample):
    r"""The TD target :math:`y = r + \gamma\,(1 - \text{term})\,\text{next\_value}(s')` (``core.returns.td_target``):
    a truncation bootstraps from the true final observation ``mb.next_obs``, a termination does not.
    ``mb.next_obs`` is flat ``[B, obs_dim]``; no gradient flows through ``y``."""
    net = q_net(config, action_space)
    q_next_online = net.apply(q_params, mb.next_obs) if config.double else None
    v_next = next_value(net.apply(target_params, mb.next_obs), q_next_online, config.double)
    return jax.lax.stop_gradient(td_target(mb.reward, v_next, mb.terminated, config.gamma))


def td_loss(q_params, config, action_space, obs, action, y):
    r"""``mean_B l(Q(s, a) - y)`` with ``l`` the Huber function (:math:`\tfrac12 x^2` for :math:`|x| \le 1`, else
    :math:`|x| - \tfrac12`: PyTorch's ``smooth_l1_loss``, SB3) or the square :math:`x^2` (``mse``: CleanRL).
    Returns ``(loss, Q(s, a) [B])``."""
    q = q_net(config, action_space).apply(q_params, obs)
    q_sa = jnp.take_along_axis(q, action[:, None].astype(jnp.int32), axis=-1)[:, 0]
    err = q_sa - y
    per_sample = optax.huber_loss(err, delta=1.0) if config.loss == "huber" else err**2
    return jnp.mean(per_sample), q_sa


def learning_rate(config, state: AgentState):
    """The step size: ``learning_rate``, times ``1 - t / T`` with ``anneal_lr`` (``t`` = env steps collected,
    ``T`` = the run's budget; ``core.optim.linear_decay``)."""
    if config.anneal_lr:
        return config.learning_rate * optim.linear_decay(state.env_steps, state.total_steps)
    return jnp.asarray(config.learning_rate, jnp.float32)


def gradient_step(config, action_space, state: AgentState, key):
    """One gradient step on a minibatch drawn uniformly from the buffer. Returns ``(state, metrics, True)``."""
    mb = replay.sample(state.buffer, key, config.batch_size)
    mb = mb.replace(obs=obs_features(state, mb.obs), next_obs=obs_features(state, mb.next_obs))
    y = q_target(config, action_space, state.q_params, state.target_params, mb)
    (loss, q_sa), grads = jax.value_and_grad(td_loss, has_aux=True)(
        state.q_params, config, action_space, mb.obs, mb.action, y
    )
    params, opt_state = optim.apply_gradients(
        optimizer(config), state.q_params, state.opt_state, grads, learning_rate(config, state)
    )
    state = state.replace(q_params=params, opt_state=opt_state, grad_steps=state.grad_steps + 1)
    metrics = {
        "loss/td": loss,
        "value/mean_q": jnp.mean(q_sa),
        "value/max_q": jnp.max(q_sa),
        "grad/norm": global_norm(grads),
    }
    return state, metrics, jnp.asarray(True)


def target_update(config, state: AgentState, env_steps_before, n_new) -> AgentState:
    r"""The target updates due while the env steps went from ``env_steps_before`` to ``env_steps_before + n_new``:
    one per multiple of ``target_update_interval`` crossed (SB3 counts them in env steps, during collection,
    before training). The online network does not change during collection, so ``k`` updates
    :math:`\theta^- \leftarrow \tau\theta + (1-\tau)\theta^-` are one with :math:`1 - (1-\tau)^k` (none: 0)."""
    interval = config.target_update_interval
    k = (env_steps_before + n_new) // interval - env_steps_before // interval
    weight = 1.0 - (1.0 - config.tau) ** k.astype(jnp.float32)
    return state.replace(target_params=optax.incremental_update(state.q_params, state.target_params, weight))


# ----------------------------------------------------------------------------- the update
def update(config: Config, action_space, state: AgentState, batch: Transition, key):
    """Store ``batch [T, B]`` in the buffer, update the target network if its period is due, then the gradient
    steps that are due (maybe none)."""
    eps = jnp.where(state.env_steps < config.learning_starts, 1.0, epsilon(config, state.env_steps, state.total_steps))
    n_grad, max_grad = replay.training_rounds(config, state.env_steps, batch.reward.shape[0])
    state = target_update(config, state, state.env_steps, batch.reward.size)
    state = state.replace(buffer=replay.add(state.buffer, batch), env_steps=state.env_steps + batch.reward.size)
    state, metrics = replay.run_gradient_steps(config, action_space, state, key, n_grad, max_grad, gradient_step)
    metrics["explore/epsilon"] = eps  # the epsilon this rollout was collected with
    metrics["opt/learning_rate"] = learning_rate(config, state)
    metrics["buffer/size"] = replay.size(state.buffer).astype(jnp.float32)
    return state, metrics


def policy_params(state: AgentState):
    """What ``params_digest`` hashes: the online Q network (the greedy policy is its argmax)."""
    return {"q": state.q_params}
