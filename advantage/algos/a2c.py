r"""A2C: synchronous advantage actor-critic (Mnih et al. 2016, the synchronous variant of A3C).

The lectures: *Actor Critic I*, "Advantage Actor Critic" (the TD error as the advantage,
:math:`A = r + \neg d\,\gamma V(s') - V(s)`); *Actor Critic and PPO*, "Advantage Actor Critic
(A2C)", "Asynchronous Advantage Actor Critic (A3C)" (parallel workers, n-step returns,
entropy regularisation, shared weights) and "N-Step Returns"; *Policy Search*, "From A2C to
REINFORCE with baseline" and "Generalized Advantage Estimator (GAE)".

Each update takes one rollout of ``n_steps`` steps from ``n_envs`` synchronous environments and
makes **one** gradient step on

.. math::
    L(\theta, w) = -\hat{\mathbb E}_t\big[\hat A_t \log\pi_\theta(a_t|s_t)\big]
        + c_v\,\tfrac12\hat{\mathbb E}_t\big[(V_w(s_t) - \hat R_t)^2\big]
        - c_e\,\hat{\mathbb E}_t\,\mathcal H[\pi_\theta(\cdot|s_t)]

with one of two advantage estimators (``estimator``):

* ``"n-step"``: :math:`\hat R_t = G^{(n)}_t` (``core.returns.n_step_returns``, cut at episode
  ends and at the rollout end), :math:`\hat A_t = G^{(n)}_t - V_w(s_t)`. ``n_step=1`` is the
  **TD actor-critic**: :math:`\hat A_t = \delta_t = r_t + \gamma(1-\text{term}_t)V_w(s'_t) - V_w(s_t)`.
* ``"gae"``: :math:`\hat A_t = \text{GAE}(\gamma, \lambda)` (``core.returns.gae``),
  :math:`\hat R_t = \hat A_t + V_w(s_t)`. ``gae_lambda=1`` (the default, as in Stable-Baselines3)
  is A3C's "every step bootstraps at the rollout end": the n-step return with the largest
  ``n`` the rollout allows.

Read top to bottom: ``Config`` -> ``AgentState`` -> networks -> ``init`` / ``act`` -> the
advantages and the loss -> ``update``. Details and departures: ``docs/algorithms/actor_critic.md``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import struct

from advantage.config import ConfigError, check, static
from advantage.core import losses, optim
from advantage.core.normalization import RunningMeanStd
from advantage.core.returns import gae, n_step_returns, td_errors
from advantage.envs.spaces import action_dim, action_factors, is_discrete
from advantage.nets.mlp import ActorCritic, PolicyConfig, check_torso, init_input, network_input
from advantage.types import Transition

NAME = "a2c"
SEARCH = False  # trained by updates (advantage.training.stepper.UpdateStepper)
NAN_METRICS: tuple[str, ...] = ()  # no metric is NaN by design


@struct.dataclass
class Config(PolicyConfig):
    """A2C hyperparameters. Defaults: the RL Zoo's ``a2c.yml`` CartPole-v1 entry (n_envs 8, ent_coef 0)
    on the Stable-Baselines3 A2C defaults (n_steps 5, lr 7e-4, gamma 0.99, gae_lambda 1, RMSprop)."""

    n_envs: int = static(8)
    """Parallel (synchronous) environments per seed."""
    n_steps: int = static(5)
    """Steps collected from each environment per update (rollout length T)."""
    estimator: str = static("gae")
    """Advantage estimator: 'gae' (GAE(gamma, gae_lambda)) or 'n-step' (n_step-step return minus V)."""
    n_step: int = static(5)
    """n of the n-step returns (estimator='n-step'); 1 is the TD actor-critic (delta as the advantage)."""
    hidden_sizes: tuple[int, ...] = static((64, 64))
    """Hidden layer sizes of the actor and critic MLPs."""
    activation: str = static("tanh")
    """Hidden activation: tanh, relu, elu or gelu."""
    shared_network: bool = static(False)
    """One torso for actor and critic (True, as in A3C) or two separate ones (False, as in SB3)."""
    optimizer: str = static("rmsprop")
    """'rmsprop' (as in A3C and SB3: decay 0.99, eps added outside the square root) or 'adam'."""
    normalize_obs: bool = static(False)
    """Normalise observations with running statistics kept in the agent state."""
    normalize_advantage: bool = static(False)
    """Normalise advantages to zero mean and unit std over the rollout."""
    anneal_lr: bool = static(False)
    """Decay the learning rate linearly to 0 over the run."""

    learning_rate: float = 7e-4
    """Step size (initial value when annealed)."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 1.0
    """GAE lambda (estimator='gae'): 0 is the TD error, 1 the return bootstrapped at the rollout end."""
    ent_coef: float = 0.0
    """Weight of the entropy bonus."""
    vf_coef: float = 0.5
    """Weight of the value loss (which is 1/2 the squared error)."""
    max_grad_norm: float = 0.5
    """Global-norm gradient clipping threshold."""
    opt_eps: float = 1e-5
    """Epsilon of RMSprop / Adam."""
    rms_decay: float = 0.99
    """RMSprop's decay of the squared-gradient average."""
    log_std_init: float = 0.0
    """Initial log standard deviation of the Gaussian policy (continuous actions)."""
    reward_scale: float = 1.0
    """Rewards are multiplied by this before returns are computed (the critic learns scaled values)."""

    def __post_init__(self):
        self.check_policy()  # layer_norm, weight_decay, std, temperature (nets.mlp.PolicyConfig)
        check(self, "n_envs", lambda v: v >= 1, "use at least one environment")
        check(self, "n_steps", lambda v: v >= 1, "collect at least one step per environment")
        check(self, "estimator", lambda v: v in ("gae", "n-step"), "choose 'gae' or 'n-step'")
        check(self, "n_step", lambda v: v >= 1, "n-step returns need n >= 1")
        check_torso(self)
        check(self, "optimizer", lambda v: v in ("rmsprop", "adam"), "choose 'rmsprop' or 'adam'")
        check(self, "learning_rate", lambda v: v > 0, "the learning rate must be positive")
        check(self, "gamma", lambda v: 0 <= v <= 1, "gamma must lie in [0, 1]")
        check(self, "gae_lambda", lambda v: 0 <= v <= 1, "gae_lambda must lie in [0, 1]")
        check(self, "max_grad_norm", lambda v: v > 0, "the clipping threshold must be positive")
        check(self, "opt_eps", lambda v: v > 0, "epsilon must be positive")
        check(self, "rms_decay", lambda v: 0 <= v < 1, "the decay must lie in [0, 1)")
        check(self, "reward_scale", lambda v: v > 0, "the reward scale must be positive")
        if self.estimator == "n-step" and self.n_step > self.n_steps:
            raise ConfigError(
                f"a2c.n_step={self.n_step} exceeds the rollout length n_steps={self.n_steps}: returns "
                f"are cut at the rollout end, so use n_step <= {self.n_steps} or a longer rollout."
            )


#: Per-environment defaults (docs/algorithms/actor_critic.md, "Presets"). CartPole-v1 is the RL Zoo's
#: ``a2c.yml`` entry (n_envs 8, ent_coef 0, 5e5 steps; the rest SB3's A2C defaults). Pendulum-v1 keeps the
#: Zoo entry (n_envs 8, n_steps 8, gamma 0.9, GAE 0.9, vf_coef 0.4, RMSprop with an annealed step of 7e-4,
#: clipping at 0.5, no advantage normalisation) without gSDE: log_std_init 0 instead of -2, rewards x 0.1 and
#: normalised observations instead of VecNormalize, and 2M steps instead of 1M. Every seed of 0-19 ends at -180
#: or better; the earlier preset (Adam 2e-3, clipping at 10, GAE 0.95, normalised advantages, 1M steps) left 11
#: of 20 near -1000, never swinging up, and 9 of 20 at 2M (docs/algorithms/actor_critic.md).
PRESETS: dict[str, dict] = {
    "CartPole-v1": dict(n_envs=8, n_steps=5, ent_coef=0.0),
    "Pendulum-v1": dict(
        n_envs=8,
        n_steps=8,
        gamma=0.9,
        gae_lambda=0.9,
        vf_coef=0.4,
        ent_coef=0.0,
        max_grad_norm=0.5,
        optimizer="rmsprop",
        learning_rate=7e-4,
        anneal_lr=True,
        normalize_obs=True,
        normalize_advantage=False,
        log_std_init=0.0,
        reward_scale=0.1,
    ),
}
#: Default budget (env steps per seed) for an env, when the user gives none.
DEFAULT_STEPS: dict[str, int] = {"CartPole-v1": 500_000, "Pendulum-v1": 2_000_000}


class AgentState(struct.PyTreeNode):
    """Everything that changes during training; saved whole in every checkpoint."""

    params: dict
    opt_state: optax.OptState
    obs_rms: RunningMeanStd
    env_steps: jax.Array  # env steps of the batches updated on so far: the schedule's position
    total_steps: jax.Array  # env steps of the run (per seed): the schedule's horizon


def network(config: Config, action_space) -> ActorCritic:
    return ActorCritic(
        action_dim=action_dim(action_space),
        discrete=is_discrete(action_space),
        factors=action_factors(action_space),
        hidden_sizes=config.hidden_sizes,
        activation=config.activation,
        shared=config.shared_network,
        log_std_init=config.log_std_init,
        layer_norm=config.layer_norm,
        std=config.std,
        temperature=config.temperature,
        torso=config.torso,
    )


def optimizer(config: Config) -> optax.GradientTransformation:
    """Global-norm clipping, then RMSprop's (as in PyTorch / SB3: ``g / (sqrt(E[g^2]) + eps)``, no momentum) or
    Adam's scaling; the (annealed) step size is applied in ``update``."""
    return optim.optimizer(
        config.optimizer,
        max_grad_norm=config.max_grad_norm,
        eps=config.opt_eps,
        rms_decay=config.rms_decay,
        weight_decay=config.weight_decay,
    )


def init(key, obs_space, action_space, config: Config, total_steps: int) -> AgentState:
    params = network(config, action_space).init(key, init_input(config, obs_space))
    return AgentState(
        params=params,
        opt_state=optimizer(config).init(params),
        obs_rms=RunningMeanStd.create(obs_space.shape),
        env_steps=jnp.zeros((), jnp.int32),
        total_steps=jnp.asarray(total_steps, jnp.int32),
    )


def _preprocess(config: Config, state: AgentState, obs):
    obs = state.obs_rms.normalize(obs) if config.normalize_obs else obs
    return network_input(obs, state.obs_rms.mean.shape, config.torso)


def act(config: Config, action_space, state: AgentState, obs, key, deterministic: bool = False):
    """Sample (or take the mode of) ``pi(.|obs)`` for ``obs [B, ...]``; returns ``(action, log_prob, V(obs))``."""
    dist, value = network(config, action_space).apply(state.params, _preprocess(config, state, obs))
    action = dist.mode() if deterministic else dist.sample(key)
    return action, dist.log_prob(action), value


# ----------------------------------------------------------------------------- advantages and the loss
def advantages_and_targets(config: Config, rewards, values, next_values, terminated, truncated):
    r"""``(A_hat, R_hat)`` ``[T, B]`` of the configured estimator (see the module docstring).

    n-step: :math:`\hat R_t = G^{(n)}_t`, :math:`\hat A_t = \hat R_t - V(s_t)`;
    GAE: :math:`\hat A_t = \sum_l (\gamma\lambda)^l \delta_{t+l}`, :math:`\hat R_t = \hat A_t + V(s_t)`.
    Truncations bootstrap from ``next_values`` (the true final observations), terminations do not.
    """
    if config.estimator == "n-step":
        targets = n_step_returns(rewards, next_values, terminated, truncated, config.gamma, config.n_step)
        return targets - values, targets
    adv = gae(rewards, values, next_values, terminated, truncated, config.gamma, config.gae_lambda)
    return adv, adv + values


def a2c_loss(params, net, config: Config, obs, actions, advantages, targets):
    r"""A2C's loss on a flat batch ``[N]``:
    :math:`-\hat{\mathbb E}[\hat A \log\pi] + c_v\,\tfrac12\hat{\mathbb E}[(V - \hat R)^2]
    - c_e\,\hat{\mathbb E}[\mathcal H]`.

    ``advantages`` and ``targets`` are constants. Mnih et al. (2016), Algorithm S3, with the
    entropy term of their sec. 4; the lecture slide "Advantage Actor Critic (A2C)".
    """
    dist, values = net.apply(params, obs)
    pg_loss = losses.policy_gradient_loss(dist.log_prob(actions), advantages)
    v_loss = losses.value_loss(values, targets)
    entropy = jnp.mean(dist.entropy())
    return pg_loss + config.vf_coef * v_loss - config.ent_coef * entropy, dict(
        policy=pg_loss, value=v_loss, entropy=entropy
    )


# ----------------------------------------------------------------------------- update
class Gradients(struct.PyTreeNode):
    """What one rollout contributes to an update, as a worker sends it to a parameter server (A3C)."""

    params: dict  # the gradient of the loss with respect to the parameters
    obs_moments: tuple  # (mean, var, count) of the rollout's observations, for the normalisation statistics
    env_steps: jax.Array  # transitions in the rollout: the schedules' position moves on by this


def compute_gradients(config: Config, action_space, state: AgentState, batch: Transition, key):
    """``(Gradients, metrics)`` of the loss on a rollout ``batch [T, B]``, with the parameters that collected it
    (on an A3C worker: its own copy). ``key`` is unused (no sampling)."""
    del key
    net = network(config, action_space)
    obs = _preprocess(config, state, batch.obs)
    next_values = net.apply(state.params, _preprocess(config, state, batch.next_obs), method=net.value)
    rewards = batch.reward * config.reward_scale
    adv, targets = advantages_and_targets(config, rewards, batch.value, next_values, batch.terminated, batch.truncated)
    n = batch.reward.size
    flat_adv = adv.reshape(n)
    if config.normalize_advantage:
        flat_adv = losses.normalize(flat_adv)
    (_, aux), grads = jax.value_and_grad(a2c_loss, has_aux=True)(
        state.params,
        net,
        config,
        obs.reshape((n,) + obs.shape[2:]),
        batch.action.reshape((n,) + batch.action.shape[2:]),
        flat_adv,
        targets.reshape(n),
    )
    deltas = td_errors(rewards, batch.value, next_values, batch.terminated, config.gamma)
    metrics = {
        "loss/policy": aux["policy"],
        "loss/value": aux["value"],
        "loss/entropy": aux["entropy"],
        "value/explained_variance": losses.explained_variance(batch.value, targets),
        "value/td_error": jnp.mean(jnp.abs(deltas)),
        "value/max": jnp.max(batch.value),
        "value/mean": jnp.mean(batch.value),
        "grad/norm": losses.global_norm(grads),
        "adv/mean_abs": jnp.mean(jnp.abs(adv)),
    }
    moments = state.obs_rms.moments(batch.obs)
    return Gradients(grads, moments, jnp.asarray(n, jnp.int32)), metrics


def apply_gradients(config: Config, state: AgentState, grads: Gradients):
    """``(state, metrics)``: one optimiser step with ``grads`` (the optimiser state is the server's), the
    normalisation statistics merged with the rollout's, the schedules' position moved on."""
    lr = config.learning_rate * (optim.linear_decay(state.env_steps, state.total_steps) if config.anneal_lr else 1.0)
    params, opt_state = optim.apply_gradients(optimizer(config), state.params, state.opt_state, grads.params, lr)
    obs_rms = state.obs_rms.merge(*grads.obs_moments) if config.normalize_obs else state.obs_rms
    new_state = state.replace(
        params=params, opt_state=opt_state, obs_rms=obs_rms, env_steps=state.env_steps + grads.env_steps
    )
    return new_state, {"opt/learning_rate": lr}


def update(config: Config, action_space, state: AgentState, batch: Transition, key):
    """One A2C update on a rollout ``batch [T, B]``: advantages with the collecting parameters, one gradient step
    (:func:`compute_gradients` then :func:`apply_gradients`, as A3C splits them between worker and server)."""
    grads, metrics = compute_gradients(config, action_space, state, batch, key)
    state, step_metrics = apply_gradients(config, state, grads)
    return state, {**metrics, **step_metrics}


def policy_params(state: AgentState):
    """What ``params_digest`` hashes: the network parameters and the normalisation statistics."""
    return {"params": state.params, "obs_rms": state.obs_rms}
