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

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from advantage.buffers import replay
from advantage.config import ConfigError, check, static
from advantage.core.losses import global_norm
from advantage.envs.spaces import action_dim, is_discrete
from advantage.nets.mlp import ACTIVATIONS, flatten_obs
from advantage.types import Transition

NAME = "td3"

#: Metric prefixes that are NaN by design: no gradient step runs before ``learning_starts`` (and between
#: training rounds when ``train_freq > 1``), and with ``policy_delay > 1`` an update may train only the critics.
NAN_METRICS = ("loss/", "grad/", "q/", "value/td_error", "policy/entropy")


@struct.dataclass
class Config:
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
        name = type(self).__module__.split(".")[-1]
        check_replay_config(self, "use at least one critic (2 for clipped double Q)")
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
                "n_steps=1; use --n-steps 1, or --exploration-noise gaussian.")


def check_replay_config(config, critics_hint: str) -> None:
    """The checks every replay-buffer actor-critic config shares (TD3, DDPG, SAC)."""
    check(config, "n_envs", lambda v: v >= 1, "use at least one environment")
    check(config, "n_steps", lambda v: v >= 1, "collect at least one step per environment")
    check(config, "buffer_size", lambda v: v >= 1, "the buffer needs at least one slot")
    check(config, "batch_size", lambda v: v >= 1, "a minibatch needs at least one transition")
    check(config, "hidden_sizes", lambda v: all(h >= 1 for h in v), "layer sizes must be positive")
    check(config, "activation", lambda v: v in ACTIVATIONS, "choose relu, tanh, elu or gelu")
    check(config, "n_critics", lambda v: v >= 1, critics_hint)
    check(config, "gradient_steps", lambda v: v >= 1, "take at least one gradient step per training round")
    check(config, "train_freq", lambda v: v >= 1, "train every >= 1 steps")
    check(config, "learning_rate", lambda v: v > 0, "the learning rate must be positive")
    check(config, "gamma", lambda v: 0 <= v <= 1, "gamma must lie in [0, 1]")
    check(config, "tau", lambda v: 0 < v <= 1, "tau must lie in (0, 1]")
    check(config, "learning_starts", lambda v: v >= 0, "learning_starts must be >= 0")


#: Per-environment defaults: the RL Baselines3 Zoo ``hyperparams/td3.yml`` entries (``ddpg.yml`` is identical
#: for these envs), at rl-baselines3-zoo@22e3ff2; fields they do not list keep SB3's TD3 defaults (the class's).
PRESETS: dict[str, dict] = {
    "Pendulum-v1": dict(gamma=0.98, buffer_size=200_000, learning_starts=10_000, exploration_noise="gaussian",
                        exploration_std=0.1, gradient_steps=1, train_freq=1, learning_rate=1e-3,
                        hidden_sizes=(400, 300)),
    "MountainCarContinuous-v0": dict(exploration_noise="ou", exploration_std=0.5, gradient_steps=1, train_freq=1,
                                     learning_rate=1e-3, batch_size=256, hidden_sizes=(400, 300)),
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
class Linear(nn.Module):
    """``x W + b`` with PyTorch's default initialisation, ``W, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))``,
    as in Fujimoto et al.'s and Stable-Baselines3's TD3/SAC networks."""

    features: int

    @nn.compact
    def __call__(self, x):
        bound = 1.0 / math.sqrt(x.shape[-1])
        init = lambda key, shape: jax.random.uniform(key, shape, jnp.float32, -bound, bound)  # noqa: E731
        w = self.param("kernel", init, (x.shape[-1], self.features))
        b = self.param("bias", init, (self.features,))
        return x @ w + b


class Torso(nn.Module):
    """Hidden layers ``Linear -> activation``, one per entry of ``hidden_sizes`` (none: identity)."""

    hidden_sizes: Sequence[int]
    activation: str = "relu"

    @nn.compact
    def __call__(self, x):
        for i, size in enumerate(self.hidden_sizes):
            x = ACTIVATIONS[self.activation](Linear(size, name=f"hidden_{i}")(x))
        return x


class Actor(nn.Module):
    """Deterministic policy ``mu(s) = tanh(Linear(torso(s)))`` in the agent's [-1, 1] action units."""

    action_dim: int
    hidden_sizes: Sequence[int]
    activation: str = "relu"

    @nn.compact
    def __call__(self, obs):
        return jnp.tanh(Linear(self.action_dim, name="out")(Torso(self.hidden_sizes, self.activation)(obs)))


class Critic(nn.Module):
    """``Q(s, a) = Linear(torso([s, a]))``: state and action enter the first layer together."""

    hidden_sizes: Sequence[int]
    activation: str = "relu"

    @nn.compact
    def __call__(self, obs, action):
        h = Torso(self.hidden_sizes, self.activation)(jnp.concatenate([obs, action], axis=-1))
        return Linear(1, name="out")(h)[..., 0]


def critic_net(config) -> Critic:
    return Critic(config.hidden_sizes, config.activation)


def init_critics(key, config, obs_dim: int, act_dim: int):
    """Parameters of ``n_critics`` independent critics, stacked along a leading axis (for ``jax.vmap``)."""
    net = critic_net(config)
    return jax.vmap(lambda k: net.init(k, jnp.zeros((1, obs_dim)), jnp.zeros((1, act_dim))))(
        jax.random.split(key, config.n_critics))


def q_values(config, critic_params, obs, action):
    """Every critic of the ensemble at ``(obs [B, obs_dim], action [B, act_dim])``: ``[n_critics, B]``."""
    net = critic_net(config)
    return jax.vmap(lambda p: net.apply(p, obs, action))(critic_params)


def actor_net(config, action_space) -> Actor:
    return Actor(action_dim(action_space), config.hidden_sizes, config.activation)


def polyak(target, online, tau):
    """``target <- tau * online + (1 - tau) * target`` (soft target update, Lillicrap et al. 2016)."""
    return jax.tree.map(lambda t, o: tau * o + (1.0 - tau) * t, target, online)


def adam(config) -> optax.GradientTransformation:
    """Adam's scaling; the step ``-learning_rate * update`` is applied by hand so the rate can be a pytree leaf."""
    return optax.scale_by_adam(eps=config.adam_eps)


def apply_adam(config, params, grads, opt_state):
    updates, opt_state = adam(config).update(grads, opt_state, params)
    return optax.apply_updates(params, jax.tree.map(lambda u: -config.learning_rate * u, updates)), opt_state


def require_box(name: str, action_space) -> None:
    """Off-policy actor-critics here act in continuous spaces only: a clear error otherwise."""
    if is_discrete(action_space):
        got = f"Discrete({action_space.n})" if hasattr(action_space, "n") else repr(action_space)
        raise ConfigError(
            f"{name} needs a continuous (Box) action space; got {got}. "
            "Use ppo (or another on-policy algorithm) for discrete actions.")
    if not (np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high))):
        raise ConfigError(f"{name} needs finite action bounds (its actions in [-1, 1] are rescaled to them); "
                          f"got low={action_space.low}, high={action_space.high}.")


def buffer_capacity(config, total_steps: int) -> int:
    """``min(buffer_size, total_steps)``: a buffer larger than the transitions the run collects would never fill."""
    return max(1, min(int(config.buffer_size), int(total_steps)))


def init(key, obs_space, action_space, config: Config, total_steps: int) -> AgentState:
    require_box(type(config).__module__.split(".")[-1], action_space)
    obs_dim, act_dim = int(np.prod(obs_space.shape)), action_dim(action_space)
    k_actor, k_critic, k_ou = jax.random.split(key, 3)
    actor = actor_net(config, action_space).init(k_actor, jnp.zeros((1, obs_dim)))
    critic = init_critics(k_critic, config, obs_dim, act_dim)
    return AgentState(
        actor=actor, critic=critic, actor_target=actor, critic_target=critic,
        actor_opt=adam(config).init(actor), critic_opt=adam(config).init(critic),
        buffer=replay.init(buffer_capacity(config, total_steps), obs_space.shape, (act_dim,)),
        ou_noise=ou_reset(config, k_ou, (config.n_envs, act_dim)),
        env_steps=jnp.zeros((), jnp.int32), grad_steps=jnp.zeros((), jnp.int32),
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
def td_target(reward, terminated, next_value, gamma):
    """``y = r + gamma (1 - terminated) V'(s')``: bootstraps through truncations, never through terminations.

    TD3: ``V'(s') = min_i Q'_i(s', a')`` (Fujimoto et al. sec. 4.2, clipped double Q); DDPG:
    ``Q'(s', mu'(s'))`` (Lillicrap et al., Algorithm 1); SAC: the soft value
    ``min_i Q'_i(s', a') - alpha log pi(a'|s')`` (Haarnoja et al. 2018b, sec. 4).
    Shapes ``[B]``; ``terminated`` is boolean.
    """
    return reward + gamma * (1.0 - terminated.astype(jnp.float32)) * next_value


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
    return jax.lax.stop_gradient(td_target(mb.reward, mb.terminated, q_next, config.gamma))


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
    critic, critic_opt = apply_adam(config, state.critic, c_grads, state.critic_opt)
    grad_steps = state.grad_steps + 1
    state = state.replace(critic=critic, critic_opt=critic_opt, grad_steps=grad_steps)

    def actor_step(s: AgentState):
        a_loss, a_grads = jax.value_and_grad(actor_loss)(s.actor, s.critic, config, action_space, obs)
        actor, actor_opt = apply_adam(config, s.actor, a_grads, s.actor_opt)
        s = s.replace(actor=actor, actor_opt=actor_opt, actor_target=polyak(s.actor_target, actor, config.tau),
                      critic_target=polyak(s.critic_target, s.critic, config.tau))
        return s, a_loss, global_norm(a_grads)

    def no_actor_step(s: AgentState):
        return s, jnp.float32(jnp.nan), jnp.float32(jnp.nan)

    delayed = jnp.mod(grad_steps, config.policy_delay) == 0
    state, a_loss, a_norm = jax.lax.cond(delayed, actor_step, no_actor_step, state)
    metrics = {
        "q/mean": jnp.mean(q), "q/max": jnp.max(q), "value/td_error": jnp.mean(jnp.abs(q - y[None])),
        "loss/critic": c_loss, "grad/norm_critic": global_norm(c_grads),
        "loss/actor": a_loss, "grad/norm_actor": a_norm,
    }
    return state, metrics, delayed


# ----------------------------------------------------------------------------- the update
ACTOR_METRICS = ("loss/actor", "grad/norm_actor")


def training_rounds(config, env_steps_before, n_steps: int):
    """How many gradient steps this update takes, and their static upper bound.

    A round of ``gradient_steps`` is due each time the steps per env cross a multiple of
    ``train_freq``, and only once more than ``learning_starts`` transitions were collected
    (Stable-Baselines3's rule, checked after collecting).
    """
    per_env_before = env_steps_before // config.n_envs
    rounds = (per_env_before + n_steps) // config.train_freq - per_env_before // config.train_freq
    collected = env_steps_before + n_steps * config.n_envs
    n_grad = jnp.where(collected > config.learning_starts, rounds * config.gradient_steps, 0)
    max_grad = -(-n_steps // config.train_freq) * config.gradient_steps
    return n_grad, max_grad


def run_gradient_steps(config, action_space, state, key, n_grad, max_grad: int, step_fn, actor_keys=ACTOR_METRICS):
    """Scan ``max_grad`` slots of ``step_fn``; the first ``n_grad`` run, the others are skipped (``lax.cond``).

    Metrics are averaged over the steps that ran (actor metrics over the steps that updated the
    actor); NaN when none did.
    """
    out_shape = jax.eval_shape(lambda s, k: step_fn(config, action_space, s, k)[1], state, key)
    nan = {k: jnp.full(v.shape, jnp.nan, v.dtype) for k, v in out_shape.items()}

    def body(s, inp):
        i, k = inp
        run = lambda s: step_fn(config, action_space, s, k)  # noqa: E731
        skip = lambda s: (s, nan, jnp.asarray(False))  # noqa: E731
        s, m, actor_updated = jax.lax.cond(i < n_grad, run, skip, s)
        return s, (m, i < n_grad, actor_updated & (i < n_grad))

    state, (m, ran, actor_ran) = jax.lax.scan(body, state, (jnp.arange(max_grad), jax.random.split(key, max_grad)))

    def masked_mean(x, mask):
        n = jnp.sum(mask)
        return jnp.where(n > 0, jnp.sum(jnp.where(mask, x, 0.0)) / jnp.maximum(n, 1), jnp.nan)

    metrics = {k: masked_mean(v, actor_ran if k in actor_keys else ran) for k, v in m.items()}
    metrics["opt/gradient_steps"] = jnp.sum(ran).astype(jnp.float32)
    return state, metrics


def update(config: Config, action_space, state: AgentState, batch: Transition, key):
    """Store ``batch [T, B]`` in the buffer, then the gradient steps that are due (maybe none).

    The OU exploration state advances one step, and restarts for the envs whose episode ended.
    """
    T = batch.reward.shape[0]
    k_train, k_ou, k_reset = jax.random.split(key, 3)
    n_grad, max_grad = training_rounds(config, state.env_steps, T)
    state = state.replace(buffer=replay.add(state.buffer, batch), env_steps=state.env_steps + batch.reward.size)
    if config.exploration_noise == "ou":
        done = (batch.terminated[-1] | batch.truncated[-1])[:, None]
        state = state.replace(ou_noise=jnp.where(done, ou_reset(config, k_reset, state.ou_noise.shape),
                                                 ou_step(config, state.ou_noise, k_ou)))
    state, metrics = run_gradient_steps(config, action_space, state, k_train, n_grad, max_grad, gradient_step)
    metrics["buffer/size"] = replay.size(state.buffer).astype(jnp.float32)
    return state, metrics


def policy_params(state: AgentState):
    """What ``params_digest`` hashes: the online actor's parameters."""
    return {"actor": state.actor}
