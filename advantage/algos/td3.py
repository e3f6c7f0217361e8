"""TD3 (Fujimoto, van Hoof, Meger 2018) and, with three switches off, DDPG (Lillicrap et al. 2016).

Read top to bottom: ``Config`` -> ``AgentState`` -> networks -> ``init`` -> ``act`` ->
the target, the losses and one gradient step -> ``update``. ``ddpg.py`` re-exports these
functions with DDPG's defaults (one critic, no target smoothing, no delay): there is one
implementation.

How an off-policy learner fits the generic driver: the replay buffer lives inside the
agent state (``advantage.buffers.replay``). Each driver iteration collects ``n_steps``
steps from each of the ``n_envs`` environments (default 1 x 1) and calls ``update``,
which stores them and, once more than ``learning_starts`` transitions were collected,
runs ``gradient_steps`` gradient steps (a ``lax.scan``) every ``train_freq`` steps per
environment. ``act`` reads the counters in the state: uniform random actions before
``learning_starts``, the deterministic policy plus exploration noise after. Every
detail and departure is listed in ``docs/algorithms/ddpg_td3.md``.
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
from advantage.envs.spaces import action_dim, require_box
from advantage.nets.mlp import NetworkConfig, flatten_obs
from advantage.nets.offpolicy import Linear, Torso, init_critics, q_values
from advantage.types import Transition

NAME = "td3"
SEARCH = False  # trained by updates (advantage.training.stepper.UpdateStepper)

#: Metric prefixes that are NaN by design: no gradient step runs before ``learning_starts`` (and between
#: training rounds when ``train_freq > 1``), and with ``policy_delay > 1`` an update may train only the critics.
NAN_METRICS = replay.NAN_METRICS


@struct.dataclass
class Config(NetworkConfig):
    """TD3 hyperparameters. Defaults are Stable-Baselines3's TD3 defaults (Fujimoto et al.'s settings)."""

    n_envs: int = static(1)
    """Parallel environments per seed."""
    n_steps: int = static(1)
    """Steps collected from each environment per driver iteration (each iteration ends with one update call)."""
    buffer_size: int = static(1_000_000)
    """Replay buffer capacity in transitions (allocated as min(buffer_size, the run's budget))."""
    batch_size: int = static(256)
    """Minibatch size of each gradient step, drawn uniformly from the buffer."""
    hidden_sizes: tuple[int, ...] = static((400, 300))
    """Hidden layer sizes of the actor and of each critic."""
    activation: str = static("relu")
    """Hidden activation: relu, tanh, elu or gelu."""
    n_critics: int = static(2)
    """Critics in the Q ensemble: 2 = clipped double Q (TD3), 1 = a single critic (DDPG)."""
    gradient_steps: int = static(1)
    """Gradient steps per training round (update-to-data ratio = gradient_steps / (train_freq * n_envs))."""
    train_freq: int = static(1)
    """Train every train_freq steps per environment."""
    exploration_noise: str = static("gaussian")
    """Exploration noise added to the actor's action: gaussian (independent per dimension) or ou (Ornstein-Uhlenbeck)"""

    learning_rate: float = 1e-3
    """Adam step size of the actor and the critics."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak averaging coefficient of the target networks: target <- tau * online + (1 - tau) * target."""
    learning_starts: int = 100
    """Env steps (over all envs) of uniform random actions before the policy acts and training starts."""
    policy_delay: int = 2
    """Update the actor and the target networks every policy_delay critic steps (1 = every step)."""
    policy_noise: float = 0.2
    """Std of the Gaussian noise added to the target action (target policy smoothing; 0 disables)."""
    noise_clip: float = 0.5
    """The target-smoothing noise is clipped to +-noise_clip."""
    exploration_std: float = 0.1
    """Std of the exploration noise, in the agent's [-1, 1] action units, drawn independently per action dimension."""
    ou_theta: float = 0.15
    """Ornstein-Uhlenbeck mean-reversion rate (exploration_noise=ou)."""
    ou_dt: float = 0.01
    """Ornstein-Uhlenbeck time step (exploration_noise=ou)."""
    adam_eps: float = 1e-8
    """Adam epsilon."""

    def __post_init__(self):
        self.check_network()  # layer_norm, weight_decay (nets.mlp.NetworkConfig)
        name = type(self).__module__.split(".")[-1]
        replay.check_config(self, "use at least one critic (2 for clipped double Q)")
        check(self, "exploration_noise", lambda v: v in ("gaussian", "ou"), "choose gaussian or ou")
        check(self, "policy_delay", lambda v: v >= 1 and float(v).is_integer(), "policy_delay must be an integer >= 1")
        check(self, "policy_noise", lambda v: v >= 0, "the target-smoothing std must be >= 0")
        check(self, "noise_clip", lambda v: v >= 0, "the noise clip must be >= 0")
        check(self, "exploration_std", lambda v: v >= 0, "the exploration std must be >= 0")
        check(self, "ou_theta", lambda v: v >= 0, "ou_theta must be >= 0")
        check(self, "ou_dt", lambda v: v > 0, "ou_dt must be positive")
        if self.exploration_noise == "ou" and self.n_steps != 1:
            raise ConfigError(
                f"{name}.exploration_noise='ou' needs n_steps=1 (got n_steps={self.n_steps}): the Ornstein-Uhlenbeck "
                "state lives in the agent state and advances once per update call, i.e. once per env step only when "
                "n_steps=1; use --n-steps 1, or --exploration-noise gaussian."
            )


#: Per-environment defaults: the RL Baselines3 Zoo ``hyperparams/td3.yml`` entries (``ddpg.yml`` is identical
#: for these envs), at rl-baselines3-zoo@22e3ff2; fields they do not list keep SB3's TD3 defaults (the class's).
PRESETS: dict[str, dict] = {
    "Pendulum-v1": dict(
        gamma=0.98,
        buffer_size=200_000,
        learning_starts=10_000,
        exploration_noise="gaussian",
        exploration_std=0.1,
        gradient_steps=1,
        train_freq=1,
        learning_rate=1e-3,
        hidden_sizes=(400, 300),
    ),
    "MountainCarContinuous-v0": dict(
        exploration_noise="ou",
        exploration_std=0.5,
        gradient_steps=1,
        train_freq=1,
        learning_rate=1e-3,
        batch_size=256,
        hidden_sizes=(400, 300),
    ),
}
#: Default budget (env steps per seed): the Zoo's ``n_timesteps``.
DEFAULT_STEPS: dict[str, int] = {"Pendulum-v1": 20_000, "MountainCarContinuous-v0": 300_000}


class AgentState(struct.PyTreeNode):
    """Everything that changes during training, replay buffer included; saved whole in every checkpoint."""

    actor: dict  # online actor parameters
    critic: dict  # online critic parameters, stacked: leading axis n_critics
    actor_target: dict
    critic_target: dict
    actor_opt: optax.OptState
    critic_opt: optax.OptState
    buffer: replay.ReplayBuffer
    ou_noise: jax.Array  # [n_envs, action_dim]: the OU noise the next act adds (zeros with gaussian noise)
    env_steps: jax.Array  # transitions collected so far (all envs)
    grad_steps: jax.Array  # critic gradient steps done so far (the policy delay counts these)


# ----------------------------------------------------------------------------- networks
# The critics are an ensemble of ``nets.offpolicy.Critic`` (PyTorch-initialised ``Linear`` layers), shared with SAC.
class Actor(nn.Module):
    """Deterministic policy ``mu(s) = tanh(Linear(torso(s)))`` in the agent's [-1, 1] action units."""

    action_dim: int
    hidden_sizes: Sequence[int]
    activation: str = "relu"
    layer_norm: bool = False

    @nn.compact
    def __call__(self, obs):
        h = Torso(self.hidden_sizes, self.activation, self.layer_norm)(obs)
        return jnp.tanh(Linear(self.action_dim, name="out")(h))


def actor_net(config, action_space) -> Actor:
    return Actor(action_dim(action_space), config.hidden_sizes, config.activation, config.layer_norm)


def optimizer(config) -> optax.GradientTransformation:
    """Adam's scaling; the step ``-learning_rate * update`` is applied by ``core.optim.apply_gradients``, so the
    rate can be a pytree leaf."""
    return optim.optimizer("adam", eps=config.adam_eps, weight_decay=config.weight_decay)


def init(key, obs_space, action_space, config: Config, total_steps: int) -> AgentState:
    require_box(type(config).__module__.split(".")[-1], action_space)
    obs_dim, act_dim = int(np.prod(obs_space.shape)), action_dim(action_space)
    k_actor, k_critic, k_ou = jax.random.split(key, 3)
    actor = actor_net(config, action_space).init(k_actor, jnp.zeros((1, obs_dim)))
    critic = init_critics(k_critic, config, obs_dim, act_dim)
    return AgentState(
        actor=actor,
        critic=critic,
        actor_target=actor,
        critic_target=critic,
        actor_opt=optimizer(config).init(actor),
        critic_opt=optimizer(config).init(critic),
        buffer=replay.init(replay.capacity_for(config.buffer_size, total_steps), obs_space.shape, (act_dim,)),
        ou_noise=ou_reset(config, k_ou, (config.n_envs, act_dim)),
        env_steps=jnp.zeros((), jnp.int32),
        grad_steps=jnp.zeros((), jnp.int32),
    )


def obs_features(state, obs):
    """``[B, *obs_shape] -> [B, obs_dim]`` (observations are used raw: no normalisation)."""
    return flatten_obs(obs.astype(jnp.float32), state.buffer.obs.shape[1:])


# ----------------------------------------------------------------------------- acting
def ou_reset(config, key, shape):
    """The OU noise of the first step after a reset: one step of the process from 0, ``sigma sqrt(dt) eps``."""
    return config.exploration_std * jnp.sqrt(config.ou_dt) * jax.random.normal(key, shape)


def ou_step(config, noise, key):
    """One Ornstein-Uhlenbeck step towards 0: ``x + theta (0 - x) dt + sigma sqrt(dt) eps`` (per dimension)."""
    eps = jax.random.normal(key, noise.shape)
    return noise - config.ou_theta * noise * config.ou_dt + config.exploration_std * jnp.sqrt(config.ou_dt) * eps


def exploration(config, state, shape, key):
    """Exploration noise ``[B, act_dim]``, independent per dimension.

    Gaussian: ``N(0, exploration_std^2)``. OU: the noise kept in the state when the batch is the
    ``n_envs`` training envs; a batch of another size (stochastic evaluation) gets the OU process's
    stationary Gaussian, std ``sigma sqrt(dt) / sqrt(1 - (1 - theta dt)^2)``.
    """
    if config.exploration_noise == "ou":
        if state.ou_noise.shape == shape:
            return state.ou_noise
        decay = 1.0 - config.ou_theta * config.ou_dt
        std = config.exploration_std * jnp.sqrt(config.ou_dt) / jnp.sqrt(jnp.maximum(1.0 - decay**2, 1e-12))
        return std * jax.random.normal(key, shape)
    return config.exploration_std * jax.random.normal(key, shape)


def act(config: Config, action_space, state: AgentState, obs, key, deterministic: bool = False):
    """Actions for a batch ``obs [B, ...]``; returns ``(action, log_prob, value)``, the last two zeros.

    - ``deterministic``: ``mu(s)``, the actor's action (evaluation).
    - before ``learning_starts`` env steps: uniform random in [-1, 1] per dimension.
    - after: ``clip(mu(s) + noise, -1, 1)``; the stored action is this clipped one.
    """
    x = obs_features(state, obs)
    mu = actor_net(config, action_space).apply(state.actor, x)
    zeros = jnp.zeros(mu.shape[:1], jnp.float32)
    shape = action_space.shape
    if deterministic:
        return mu.reshape(mu.shape[:1] + shape), zeros, zeros
    k_noise, k_random = jax.random.split(key)
    noisy = jnp.clip(mu + exploration(config, state, mu.shape, k_noise), -1.0, 1.0)
    random = jax.random.uniform(k_random, mu.shape, jnp.float32, -1.0, 1.0)
    action = jnp.where(state.env_steps < config.learning_starts, random, noisy)
    return action.reshape(mu.shape[:1] + shape), zeros, zeros


# ----------------------------------------------------------------------------- targets and losses
def target_action(config, action_space, actor_target, next_obs, key):
    """Target policy smoothing (TD3 sec. 5.3): ``a' = clip(mu'(s') + clip(eps, -c, c), -1, 1)``,
    ``eps ~ N(0, policy_noise^2)`` per dimension (``policy_noise = 0``: plain ``mu'(s')``, DDPG)."""
    mu = actor_net(config, action_space).apply(actor_target, next_obs)
    eps = jnp.clip(config.policy_noise * jax.random.normal(key, mu.shape), -config.noise_clip, config.noise_clip)
    return jnp.clip(mu + eps, -1.0, 1.0)


def critic_target(config, action_space, actor_target, critic_target_params, mb: replay.Sample, key):
    """TD3's clipped double-Q target ``y = r + gamma (1 - terminated) min_i Q'_i(s', a')`` over the
    ``n_critics`` target critics (with one critic: DDPG's target). ``mb.next_obs`` is flat ``[B, obs_dim]``."""
    a_next = target_action(config, action_space, actor_target, mb.next_obs, key)
    q_next = jnp.min(q_values(config, critic_target_params, mb.next_obs, a_next), axis=0)
    return jax.lax.stop_gradient(td_target(mb.reward, q_next, mb.terminated, config.gamma))


def critic_loss(critic_params, config, obs, action, y):
    """``sum_i mean_B (Q_i(s, a) - y)^2`` (TD3 Algorithm 1; summed over the critics as in the authors' code)."""
    q = q_values(config, critic_params, obs, action)  # [n_critics, B]
    return jnp.sum(jnp.mean((q - y[None]) ** 2, axis=1)), q


def actor_loss(actor_params, critic_params, config, action_space, obs):
    """Deterministic policy gradient (Silver et al. 2014; TD3 eq. 1): ``-mean_B Q_1(s, mu(s))``, first critic only."""
    mu = actor_net(config, action_space).apply(actor_params, obs)
    q1 = q_values(config, jax.tree.map(lambda p: p[:1], critic_params), obs, mu)[0]
    return -jnp.mean(q1)


def gradient_step(config, action_space, state: AgentState, key):
    """One TD3 step on a minibatch: the critics always; the actor and both targets every ``policy_delay``.

    Returns ``(state, metrics, actor_updated)``.
    """
    k_sample, k_target = jax.random.split(key)
    mb = replay.sample(state.buffer, k_sample, config.batch_size)
    obs, next_obs = obs_features(state, mb.obs), obs_features(state, mb.next_obs)
    action = mb.action.reshape((config.batch_size, -1))
    mb = mb.replace(obs=obs, next_obs=next_obs, action=action)
    y = critic_target(config, action_space, state.actor_target, state.critic_target, mb, k_target)
    (c_loss, q), c_grads = jax.value_and_grad(critic_loss, has_aux=True)(state.critic, config, obs, action, y)
    critic, critic_opt = optim.apply_gradients(
        optimizer(config), state.critic, state.critic_opt, c_grads, config.learning_rate
    )
    grad_steps = state.grad_steps + 1
    state = state.replace(critic=critic, critic_opt=critic_opt, grad_steps=grad_steps)

    def actor_step(s: AgentState):
        a_loss, a_grads = jax.value_and_grad(actor_loss)(s.actor, s.critic, config, action_space, obs)
        actor, actor_opt = optim.apply_gradients(optimizer(config), s.actor, s.actor_opt, a_grads, config.learning_rate)
        # soft target updates (Lillicrap et al. 2016): target <- tau * online + (1 - tau) * target
        s = s.replace(
            actor=actor,
            actor_opt=actor_opt,
            actor_target=optax.incremental_update(actor, s.actor_target, config.tau),
            critic_target=optax.incremental_update(s.critic, s.critic_target, config.tau),
        )
        return s, a_loss, global_norm(a_grads)

    def no_actor_step(s: AgentState):
        return s, jnp.float32(jnp.nan), jnp.float32(jnp.nan)

    delayed = jnp.mod(grad_steps, config.policy_delay) == 0
    state, a_loss, a_norm = jax.lax.cond(delayed, actor_step, no_actor_step, state)
    metrics = {
        "q/mean": jnp.mean(q),
        "q/max": jnp.max(q),
        "value/td_error": jnp.mean(jnp.abs(q - y[None])),
        "loss/critic": c_loss,
        "grad/norm_critic": global_norm(c_grads),
        "loss/actor": a_loss,
        "grad/norm_actor": a_norm,
    }
    return state, metrics, delayed


# ----------------------------------------------------------------------------- the update
def update(config: Config, action_space, state: AgentState, batch: Transition, key):
    """Store ``batch [T, B]`` in the buffer, then the gradient steps that are due (maybe none).

    The OU exploration state advances one step, and restarts for the envs whose episode ended.
    """
    T = batch.reward.shape[0]
    k_train, k_ou, k_reset = jax.random.split(key, 3)
    n_grad, max_grad = replay.training_rounds(config, state.env_steps, T)
    state = state.replace(buffer=replay.add(state.buffer, batch), env_steps=state.env_steps + batch.reward.size)
    if config.exploration_noise == "ou":
        done = (batch.terminated[-1] | batch.truncated[-1])[:, None]
        state = state.replace(
            ou_noise=jnp.where(
                done, ou_reset(config, k_reset, state.ou_noise.shape), ou_step(config, state.ou_noise, k_ou)
            )
        )
    state, metrics = replay.run_gradient_steps(config, action_space, state, k_train, n_grad, max_grad, gradient_step)
    metrics["buffer/size"] = replay.size(state.buffer).astype(jnp.float32)
    return state, metrics


def policy_params(state: AgentState):
    """What ``params_digest`` hashes: the online actor's parameters."""
    return {"actor": state.actor}
