"""Soft Actor-Critic (Haarnoja et al. 2018a, arXiv:1801.01290; 2018b, arXiv:1812.05905) with
automatic entropy tuning.

Read top to bottom: ``Config`` -> ``AgentState`` -> the policy network -> ``init`` -> ``act``
-> the target, the three losses and one gradient step -> ``update``. The replay buffer and
the rule that decides when to train (``advantage/buffers/replay.py``), the critics (a
``vmap``-ed ensemble, ``advantage/nets/offpolicy.py``), the TD target
(``core.returns.td_target``) and the soft target update (``optax.incremental_update``) are
shared with TD3, not copied. Every detail and departure is listed in ``docs/algorithms/sac.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from advantage.buffers import replay
from advantage.config import check, static
from advantage.core import optim
from advantage.core.distributions import TanhGaussian
from advantage.core.losses import global_norm
from advantage.core.returns import td_target
from advantage.envs.spaces import action_dim, require_box
from advantage.nets.mlp import NetworkConfig, flatten_obs
from advantage.nets.offpolicy import Linear, Torso, init_critics, q_values
from advantage.types import Transition

NAME = "sac"
SEARCH = False  # trained by updates (advantage.training.stepper.UpdateStepper)

#: Metric prefixes that are NaN by design: no gradient step runs before ``learning_starts`` (and between
#: training rounds when ``train_freq > 1``); ``loss/alpha`` is NaN when alpha is not learned.
NAN_METRICS = replay.NAN_METRICS


@struct.dataclass
class Config(NetworkConfig):
    """SAC hyperparameters. Defaults are Stable-Baselines3's SAC defaults (the SAC v2 paper's settings)."""

    n_envs: int = static(1)
    """Parallel environments per seed."""
    n_steps: int = static(1)
    """Steps collected from each environment per driver iteration (each iteration ends with one update call)."""
    buffer_size: int = static(1_000_000)
    """Replay buffer capacity in transitions (allocated as min(buffer_size, the run's budget))."""
    batch_size: int = static(256)
    """Minibatch size of each gradient step, drawn uniformly from the buffer."""
    hidden_sizes: tuple[int, ...] = static((256, 256))
    """Hidden layer sizes of the actor and of each critic."""
    activation: str = static("relu")
    """Hidden activation: relu, tanh, elu or gelu."""
    n_critics: int = static(2)
    """Critics in the Q ensemble; targets and the actor use their minimum (2 = the paper's twin Q)."""
    gradient_steps: int = static(1)
    """Gradient steps per training round (update-to-data ratio = gradient_steps / (train_freq * n_envs))."""
    train_freq: int = static(1)
    """Train every train_freq steps per environment."""
    learn_alpha: bool = static(True)
    """Tune the entropy temperature alpha automatically towards target_entropy (False: alpha stays alpha_init)."""
    target_entropy: Optional[float] = static(None)
    """Target policy entropy for the alpha tuning; None = -(action dimensions)."""

    learning_rate: float = 3e-4
    """Adam step size of the actor, the critics and log(alpha)."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak averaging coefficient of the target critics: target <- tau * online + (1 - tau) * target."""
    learning_starts: int = 100
    """Env steps (over all envs) of uniform random actions before the policy acts and training starts."""
    alpha_init: float = 1.0
    """Initial entropy temperature alpha (the fixed value when learn_alpha is False)."""
    log_std_min: float = -20.0
    """Lower clip of the policy's state-dependent log standard deviation."""
    log_std_max: float = 2.0
    """Upper clip of the policy's state-dependent log standard deviation."""
    adam_eps: float = 1e-8
    """Adam epsilon."""

    def __post_init__(self):
        self.check_network()  # layer_norm, weight_decay (nets.mlp.NetworkConfig)
        replay.check_config(self, "use at least one critic (2 for the paper's twin Q)")
        if self.learn_alpha:
            check(self, "alpha_init", lambda v: v > 0, "a learned alpha starts > 0 (it is exp(log alpha))")
        else:
            check(self, "alpha_init", lambda v: v >= 0, "alpha must be >= 0")
        check(
            self,
            "log_std_min",
            lambda v: v < self.log_std_max if isinstance(self.log_std_max, (int, float)) else True,
            "log_std_min must be below log_std_max",
        )


#: Per-environment defaults: the RL Baselines3 Zoo ``hyperparams/sac.yml`` entries at rl-baselines3-zoo@22e3ff2.
#: Pendulum-v1 changes only the learning rate. MountainCarContinuous-v0 is the Zoo's entry without gSDE
#: (not implemented here): its fixed ent_coef 0.1 becomes learn_alpha=False, alpha_init=0.1, and n_steps=32
#: (= train_freq: the same schedule as one step per iteration, with 32 times fewer driver iterations).
PRESETS: dict[str, dict] = {
    "Pendulum-v1": dict(learning_rate=1e-3),
    "MountainCarContinuous-v0": dict(
        n_steps=32,
        learning_rate=3e-4,
        buffer_size=50_000,
        batch_size=512,
        learn_alpha=False,
        alpha_init=0.1,
        train_freq=32,
        gradient_steps=32,
        gamma=0.9999,
        tau=0.01,
        learning_starts=0,
        hidden_sizes=(64, 64),
    ),
}
#: The Zoo's MuJoCo entries (written for the ``-v3`` tasks; here for Gymnasium's ``-v4`` and ``-v5``): the
#: defaults with 10,000 random steps first; Swimmer also discounts with gamma = 0.9999.
MUJOCO = ("HalfCheetah", "Ant", "Hopper", "Walker2d", "Humanoid", "Swimmer")
MUJOCO_IDS = tuple(f"{task}-{version}" for task in MUJOCO for version in ("v4", "v5"))
PRESETS |= {
    env_id: dict(learning_starts=10_000, **({"gamma": 0.9999} if env_id.startswith("Swimmer") else {}))
    for env_id in MUJOCO_IDS
}

#: Default budget (env steps per seed): the Zoo's ``n_timesteps``.
DEFAULT_STEPS: dict[str, int] = {"Pendulum-v1": 20_000, "MountainCarContinuous-v0": 50_000} | {
    env_id: 2_000_000 if env_id.startswith("Humanoid") else 1_000_000 for env_id in MUJOCO_IDS
}


class AgentState(struct.PyTreeNode):
    """Everything that changes during training, replay buffer included; saved whole in every checkpoint."""

    actor: dict
    critic: dict  # stacked: leading axis n_critics
    critic_target: dict
    log_alpha: jax.Array  # [] the entropy temperature is exp(log_alpha)
    actor_opt: optax.OptState
    critic_opt: optax.OptState
    alpha_opt: optax.OptState
    buffer: replay.ReplayBuffer
    env_steps: jax.Array  # transitions collected so far (all envs)
    grad_steps: jax.Array  # gradient steps done so far


# ----------------------------------------------------------------------------- the policy
class GaussianPolicy(nn.Module):
    """``s -> TanhGaussian(mean(s), log_std(s))``: two linear heads on one torso; the state-dependent
    log-std is clipped to ``[log_std_min, log_std_max]`` (Stable-Baselines3's ``[-20, 2]`` by default)."""

    action_dim: int
    hidden_sizes: Sequence[int]
    activation: str = "relu"
    layer_norm: bool = False

    @nn.compact
    def __call__(self, obs, log_std_min, log_std_max):
        h = Torso(self.hidden_sizes, self.activation, self.layer_norm)(obs)
        mean = Linear(self.action_dim, name="mean")(h)
        log_std = jnp.clip(Linear(self.action_dim, name="log_std")(h), log_std_min, log_std_max)
        return TanhGaussian(mean, log_std)


def actor_net(config, action_space) -> GaussianPolicy:
    return GaussianPolicy(action_dim(action_space), config.hidden_sizes, config.activation, config.layer_norm)


def policy(config, action_space, actor_params, obs) -> TanhGaussian:
    net = actor_net(config, action_space)
    return net.apply(actor_params, obs, config.log_std_min, config.log_std_max)


def target_entropy(config, action_space) -> float:
    """``H_target``: ``config.target_entropy``, or ``-dim(A)`` (Haarnoja et al. 2018b, sec. 5)."""
    return -float(action_dim(action_space)) if config.target_entropy is None else float(config.target_entropy)


def obs_features(state, obs):
    """``[B, *obs_shape] -> [B, obs_dim]`` (observations are used raw: no normalisation)."""
    return flatten_obs(obs.astype(jnp.float32), state.buffer.obs.shape[1:])


def optimizer(config) -> optax.GradientTransformation:
    """Adam's scaling (for the actor, the critics and log alpha); the step ``-learning_rate * update`` is applied
    by ``core.optim.apply_gradients``."""
    return optim.optimizer("adam", eps=config.adam_eps, weight_decay=config.weight_decay)


def init(key, obs_space, action_space, config: Config, total_steps: int) -> AgentState:
    require_box(NAME, action_space)
    obs_dim, act_dim = int(np.prod(obs_space.shape)), action_dim(action_space)
    k_actor, k_critic = jax.random.split(key)
    net = actor_net(config, action_space)
    actor = net.init(k_actor, jnp.zeros((1, obs_dim)), config.log_std_min, config.log_std_max)
    critic = init_critics(k_critic, config, obs_dim, act_dim)
    log_alpha = jnp.log(jnp.asarray(config.alpha_init, jnp.float32))
    adam = optimizer(config)
    return AgentState(
        actor=actor,
        critic=critic,
        critic_target=critic,
        log_alpha=log_alpha,
        actor_opt=adam.init(actor),
        critic_opt=adam.init(critic),
        alpha_opt=adam.init(log_alpha),
        buffer=replay.init(replay.capacity_for(config.buffer_size, total_steps), obs_space.shape, (act_dim,)),
        env_steps=jnp.zeros((), jnp.int32),
        grad_steps=jnp.zeros((), jnp.int32),
    )


def act(config: Config, action_space, state: AgentState, obs, key, deterministic: bool = False):
    """Actions for a batch ``obs [B, ...]``; returns ``(action, log_prob, value)``, the last two zeros.

    - ``deterministic``: ``tanh(mean(s))``, the mode of the squashed Gaussian's base (evaluation).
    - before ``learning_starts`` env steps: uniform random in [-1, 1] per dimension.
    - after: a sample ``tanh(u)``, ``u ~ N(mean(s), std(s)^2)``.
    """
    dist = policy(config, action_space, state.actor, obs_features(state, obs))
    zeros = jnp.zeros(dist.mean.shape[:1], jnp.float32)
    out_shape = dist.mean.shape[:1] + tuple(action_space.shape)
    if deterministic:
        return dist.mode().reshape(out_shape), zeros, zeros
    k_pi, k_random = jax.random.split(key)
    random = jax.random.uniform(k_random, dist.mean.shape, jnp.float32, -1.0, 1.0)
    action = jnp.where(state.env_steps < config.learning_starts, random, dist.sample(k_pi))
    return action.reshape(out_shape), zeros, zeros


# ----------------------------------------------------------------------------- target and losses
def critic_target(config, action_space, actor_params, critic_target_params, mb: replay.Sample, key, alpha):
    """Soft Bellman target (Haarnoja et al. 2018b sec. 4, with the minimum over the critics of its algorithm):

    ``y = r + gamma (1 - terminated) [min_i Q'_i(s', a') - alpha log pi(a'|s')]``, ``a' ~ pi(.|s')``
    sampled from the *current* actor (there is no target actor) with ``key``.
    """
    a_next, logp_next = policy(config, action_space, actor_params, mb.next_obs).sample_and_log_prob(key)
    q_next = jnp.min(q_values(config, critic_target_params, mb.next_obs, a_next), axis=0)
    return jax.lax.stop_gradient(td_target(mb.reward, q_next - alpha * logp_next, mb.terminated, config.gamma))


def critic_loss(critic_params, config, obs, action, y):
    """``J_Q = 1/2 sum_i mean_B (Q_i(s, a) - y)^2`` (2018b sec. 4, summed over the critics as in SB3)."""
    q = q_values(config, critic_params, obs, action)
    return 0.5 * jnp.sum(jnp.mean((q - y[None]) ** 2, axis=1)), q


def actor_loss(actor_params, critic_params, config, action_space, obs, key, alpha):
    """``J_pi = mean_B [alpha log pi(a|s) - min_i Q_i(s, a)]``, ``a = tanh(mean + std * eps)``
    reparameterised (2018b sec. 4). Returns ``(loss, log pi(a|s) [B])``."""
    a, logp = policy(config, action_space, actor_params, obs).sample_and_log_prob(key)
    q = jnp.min(q_values(config, critic_params, obs, a), axis=0)
    return jnp.mean(alpha * logp - q), logp


def alpha_loss(log_alpha, log_prob, target_entropy):
    """``J(alpha) = -mean_B [log(alpha) (log pi(a|s) + H_target)]`` (2018b eq. 18, written in log alpha
    as in SB3). Its gradient raises alpha when the entropy ``-log pi`` is below the target."""
    return -jnp.mean(log_alpha * jax.lax.stop_gradient(log_prob + target_entropy))


def gradient_step(config, action_space, state: AgentState, key):
    """One SAC step, in Stable-Baselines3's order: alpha, then the critics, then the actor (against the
    updated critics), then the target critics. All three losses use the alpha from before this step."""
    k_sample, k_pi, k_next = jax.random.split(key, 3)
    mb = replay.sample(state.buffer, k_sample, config.batch_size)
    obs, next_obs = obs_features(state, mb.obs), obs_features(state, mb.next_obs)
    action = mb.action.reshape((config.batch_size, -1))
    mb = mb.replace(obs=obs, next_obs=next_obs, action=action)
    alpha = jnp.exp(state.log_alpha)
    h_target = target_entropy(config, action_space)

    # alpha: the log-probabilities of fresh actions from the current actor (the actor loss reuses k_pi)
    _, logp_pi = policy(config, action_space, state.actor, obs).sample_and_log_prob(k_pi)
    al_loss, al_grad = jax.value_and_grad(alpha_loss)(state.log_alpha, logp_pi, h_target)
    adam = optimizer(config)
    if config.learn_alpha:
        log_alpha, alpha_opt = optim.apply_gradients(
            adam, state.log_alpha, state.alpha_opt, al_grad, config.learning_rate
        )
    else:
        log_alpha, alpha_opt = state.log_alpha, state.alpha_opt

    # critics
    y = critic_target(config, action_space, state.actor, state.critic_target, mb, k_next, alpha)
    (c_loss, q), c_grads = jax.value_and_grad(critic_loss, has_aux=True)(state.critic, config, obs, action, y)
    critic, critic_opt = optim.apply_gradients(adam, state.critic, state.critic_opt, c_grads, config.learning_rate)

    # actor, against the updated critics
    (a_loss, logp), a_grads = jax.value_and_grad(actor_loss, has_aux=True)(
        state.actor, critic, config, action_space, obs, k_pi, alpha
    )
    actor, actor_opt = optim.apply_gradients(adam, state.actor, state.actor_opt, a_grads, config.learning_rate)

    # the target critics: target <- tau * online + (1 - tau) * target
    state = state.replace(
        actor=actor,
        critic=critic,
        critic_target=optax.incremental_update(critic, state.critic_target, config.tau),
        log_alpha=log_alpha,
        actor_opt=actor_opt,
        critic_opt=critic_opt,
        alpha_opt=alpha_opt,
        grad_steps=state.grad_steps + 1,
    )
    metrics = {
        "q/mean": jnp.mean(q),
        "q/max": jnp.max(q),
        "value/td_error": jnp.mean(jnp.abs(q - y[None])),
        "loss/critic": c_loss,
        "loss/actor": a_loss,
        "loss/alpha": al_loss if config.learn_alpha else jnp.float32(jnp.nan),
        "policy/entropy": -jnp.mean(logp),
        "grad/norm_critic": global_norm(c_grads),
        "grad/norm_actor": global_norm(a_grads),
    }
    return state, metrics, jnp.asarray(True)


def update(config: Config, action_space, state: AgentState, batch: Transition, key):
    """Store ``batch [T, B]`` in the buffer, then the gradient steps that are due (maybe none)."""
    n_grad, max_grad = replay.training_rounds(config, state.env_steps, batch.reward.shape[0])
    state = state.replace(buffer=replay.add(state.buffer, batch), env_steps=state.env_steps + batch.reward.size)
    state, metrics = replay.run_gradient_steps(config, action_space, state, key, n_grad, max_grad, gradient_step)
    metrics["alpha"] = jnp.exp(state.log_alpha)
    metrics["buffer/size"] = replay.size(state.buffer).astype(jnp.float32)
    return state, metrics


def policy_params(state: AgentState):
    """What ``params_digest`` hashes: the actor's parameters."""
    return {"actor": state.actor}
