"""Trust Region Policy Optimization (Schulman et al. 2015) and the natural policy gradient (Kakade 2001).

One family, one file: the policy takes one natural-gradient step per rollout on the
importance-sampled surrogate ``L = E[ratio * A]`` with GAE advantages, sized so that the
quadratic model of the mean KL from the old policy equals ``max_kl``. With
``line_search=True`` (TRPO) a backtracking line search then enforces the exact KL constraint
and an improvement of the surrogate; with ``line_search=False`` the step is taken as it is
(NPG; ``advantage.algos.npg`` is this module with that default). The critic is a separate
network, fitted by Adam for ``n_critic_updates`` epochs of minibatches (as in SB3-contrib's
TRPO and the RL Zoo's ``trpo.yml``).

Read top to bottom: ``Config`` -> ``AgentState`` -> ``init`` -> ``act`` -> ``update``. The math of
the step is in ``advantage/core/natural_gradient.py``, the surrogate and the mean KL are
``core.losses.surrogate_loss`` and ``core.losses.mean_kl`` (shared with PPO); every
implementation detail is listed in ``docs/algorithms/trpo.md``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import struct
from jax.flatten_util import ravel_pytree

from advantage.config import check, check_minibatches, static
from advantage.core import losses, optim
from advantage.core.natural_gradient import natural_gradient_step
from advantage.core.normalization import RunningMeanStd
from advantage.core.returns import gae, td_errors
from advantage.envs.spaces import action_dim, action_factors, is_discrete
from advantage.nets.mlp import ActorCritic, PolicyConfig, check_torso, init_input, network_input
from advantage.types import Transition

NAME = "trpo"
SEARCH = False  # trained by updates (advantage.training.stepper.UpdateStepper)
NAN_METRICS: tuple[str, ...] = ()  # no metric is NaN by design


@struct.dataclass
class Config(PolicyConfig):
    """TRPO / NPG hyperparameters. Defaults are the RL Zoo's tuned TRPO settings for CartPole-v1."""

    n_envs: int = static(2)
    """Parallel environments per seed."""
    n_steps: int = static(512)
    """Steps collected from each environment per update (rollout length T)."""
    line_search: bool = static(True)
    """Backtracking line search on the exact KL and the surrogate (TRPO); off: plain natural-gradient step (NPG)."""
    cg_iters: int = static(15)
    """Maximum conjugate-gradient iterations (Fisher-vector products) per update."""
    line_search_max_iters: int = static(10)
    """Maximum points tried by the line search (full step, then shrunk by line_search_shrink each time)."""
    n_critic_updates: int = static(20)
    """Epochs of Adam minibatch steps on the value loss per rollout."""
    n_minibatches: int = static(2)
    """Critic minibatches per epoch; the rollout (n_envs * n_steps samples) is split evenly."""
    hidden_sizes: tuple[int, ...] = static((64, 64))
    """Hidden layer sizes of the actor and critic MLPs (two separate networks)."""
    activation: str = static("tanh")
    """Hidden activation: tanh, relu, elu or gelu."""
    normalize_obs: bool = static(False)
    """Normalise observations with running statistics kept in the agent state."""
    normalize_advantage: bool = static(True)
    """Normalise advantages to zero mean and unit std over the rollout."""

    max_kl: float = 0.01
    """Trust-region size delta: the bound on the mean KL(pi_old || pi_new) of one update (SB3's target_kl)."""
    cg_damping: float = 1e-3
    """Damping c added to the Fisher matrix: CG solves (F + c I) s = g."""
    cg_residual_tol: float = 1e-10
    """CG stops once the squared residual norm |g - (F + cI) s|^2 falls below this."""
    line_search_shrink: float = 0.8
    """Factor by which the line search shrinks the step after each rejected point."""
    learning_rate: float = 1e-3
    """Adam step size of the critic."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.98
    """GAE lambda: 0 is the one-step TD error, 1 the Monte-Carlo advantage."""
    log_std_init: float = 0.0
    """Initial log standard deviation of the Gaussian policy (continuous actions)."""
    adam_eps: float = 1e-5
    """Adam epsilon (critic)."""
    reward_scale: float = 1.0
    """Rewards are multiplied by this before returns are computed (the critic learns scaled values)."""

    def __post_init__(self):
        self.check_policy()  # layer_norm, weight_decay, std, temperature (nets.mlp.PolicyConfig)
        check(self, "n_envs", lambda v: v >= 1, "use at least one environment")
        check(self, "n_steps", lambda v: v >= 1, "collect at least one step per environment")
        check(self, "cg_iters", lambda v: v >= 1, "run at least one conjugate-gradient iteration")
        check(self, "line_search_max_iters", lambda v: v >= 1, "try at least one point")
        check(self, "n_critic_updates", lambda v: v >= 0, "use 0 or more critic epochs")
        check(self, "n_minibatches", lambda v: v >= 1, "use at least one minibatch")
        check_torso(self)
        check(self, "max_kl", lambda v: v > 0, "the trust region must be positive (e.g. 0.01)")
        check(self, "reward_scale", lambda v: v > 0, "the reward scale must be positive")
        check(self, "cg_damping", lambda v: v >= 0, "the damping must be >= 0 (e.g. 0.1)")
        check(self, "cg_residual_tol", lambda v: v >= 0, "the tolerance must be >= 0")
        check(self, "line_search_shrink", lambda v: 0 < v < 1, "the shrink factor must lie in (0, 1), e.g. 0.8")
        check(self, "learning_rate", lambda v: v > 0, "the learning rate must be positive")
        check(self, "gamma", lambda v: 0 <= v <= 1, "gamma must lie in [0, 1]")
        check(self, "gae_lambda", lambda v: 0 <= v <= 1, "gae_lambda must lie in [0, 1]")
        check_minibatches(self, "critic")

    @property
    def batch_size(self) -> int:
        """Samples per update: n_envs * n_steps."""
        return self.n_envs * self.n_steps


#: Per-environment defaults from the RL Zoo's ``hyperparams/trpo.yml`` (sb3-contrib TRPO); fields the
#: Zoo leaves out take SB3-contrib's defaults. ``n_minibatches`` is the Zoo's ``batch_size`` expressed
#: as a count: CartPole 1024 / 512 = 2; Pendulum 2048 / 128 (SB3 default) = 16. Pendulum-v1 replaces
#: the Zoo's gSDE exploration by observation normalisation (see docs/algorithms/trpo.md). CartPole-v1 scales
#: rewards by 0.1 and normalises observations: with the Zoo's values the critic fell behind (explained variance
#: down to -40 late in a run, or a constant output) and 3-6 seeds of 0-19 ended below 475 (NPG: 6); with both,
#: every seed ends at 497 or more for TRPO and NPG (benchmarks/ROBUSTNESS.md).
PRESETS: dict[str, dict] = {
    "CartPole-v1": dict(
        n_envs=2,
        n_steps=512,
        n_minibatches=2,
        cg_damping=1e-3,
        gae_lambda=0.98,
        gamma=0.99,
        learning_rate=1e-3,
        n_critic_updates=20,
        reward_scale=0.1,
        normalize_obs=True,
    ),
    "Pendulum-v1": dict(
        n_envs=2,
        n_steps=1024,
        n_minibatches=16,
        gamma=0.9,
        gae_lambda=0.95,
        cg_damping=0.1,
        learning_rate=1e-3,
        n_critic_updates=15,
        normalize_obs=True,
    ),
}
#: Default budget (env steps per seed) for an env, when the user gives none.
DEFAULT_STEPS: dict[str, int] = {"CartPole-v1": 100_000, "Pendulum-v1": 100_000}


class AgentState(struct.PyTreeNode):
    """Everything that changes during training; saved whole in every checkpoint."""

    params: dict  # ActorCritic parameters: actor_torso + policy_head (the policy), critic_torso + value_head
    critic_opt_state: optax.OptState  # Adam state of the critic's parameters only
    obs_rms: RunningMeanStd
    env_steps: jax.Array  # env steps of the batches updated on so far
    total_steps: jax.Array  # env steps of the run (per seed)


class CriticBatch(struct.PyTreeNode):
    """The critic's regression data, one sample per row ``[N, ...]``; a minibatch is a slice of it."""

    obs: jax.Array  # normalised, flattened observations
    ret: jax.Array  # value targets: GAE advantages + V_old(s)


def network(config: Config, action_space) -> ActorCritic:
    return ActorCritic(
        action_dim=action_dim(action_space),
        discrete=is_discrete(action_space),
        factors=action_factors(action_space),
        hidden_sizes=config.hidden_sizes,
        activation=config.activation,
        shared=False,  # the KL constraint must only see the policy's parameters
        log_std_init=config.log_std_init,
        layer_norm=config.layer_norm,
        std=config.std,
        temperature=config.temperature,
        torso=config.torso,
    )


POLICY_MODULES = ("actor_torso", "policy_head")


def split_params(params: dict) -> tuple[dict, dict]:
    """``ActorCritic`` parameters -> ``(policy part, critic part)``; :func:`merge_params` inverts it."""
    inner = params["params"]
    actor = {k: v for k, v in inner.items() if k in POLICY_MODULES}
    critic = {k: v for k, v in inner.items() if k not in POLICY_MODULES}
    return actor, critic


def merge_params(actor: dict, critic: dict) -> dict:
    return {"params": {**actor, **critic}}


def critic_optimizer(config: Config) -> optax.GradientTransformation:
    """Adam on the critic's parameters (no gradient clipping, as in SB3-contrib's TRPO)."""
    return optim.optimizer(
        "adam", eps=config.adam_eps, learning_rate=config.learning_rate, weight_decay=config.weight_decay
    )


def init(key, obs_space, action_space, config: Config, total_steps: int) -> AgentState:
    net = network(config, action_space)
    params = net.init(key, init_input(config, obs_space))
    return AgentState(
        params=params,
        critic_opt_state=critic_optimizer(config).init(split_params(params)[1]),
        obs_rms=RunningMeanStd.create(obs_space.shape),
        env_steps=jnp.zeros((), jnp.int32),
        total_steps=jnp.asarray(total_steps, jnp.int32),
    )


def _preprocess(config: Config, state: AgentState, obs):
    obs = state.obs_rms.normalize(obs) if config.normalize_obs else obs
    return network_input(obs, state.obs_rms.mean.shape, config.torso)


def act(config: Config, action_space, state: AgentState, obs, key, deterministic: bool = False):
    """Sample (or take the mode of) ``pi(.|obs)`` for a batch ``obs [B, ...]``: ``(action, log_prob, value)``."""
    dist, value = network(config, action_space).apply(state.params, _preprocess(config, state, obs))
    action = dist.mode() if deterministic else dist.sample(key)
    return action, dist.log_prob(action), value


def update(config: Config, action_space, state: AgentState, batch: Transition, key):
    """One update on a rollout ``batch [T, B]``: GAE with the old critic, one natural-gradient
    policy step (with or without line search), then the critic's Adam epochs.

    ``key`` permutes the critic's minibatches. Observations are normalised with the statistics
    used to act; the statistics absorb the batch at the end (as in PPO).
    """
    net = network(config, action_space)
    obs = _preprocess(config, state, batch.obs)
    next_values = net.apply(state.params, _preprocess(config, state, batch.next_obs), method=net.value)
    rewards = batch.reward * config.reward_scale
    advantages = gae(
        rewards, batch.value, next_values, batch.terminated, batch.truncated, config.gamma, config.gae_lambda
    )
    returns = advantages + batch.value
    deltas = td_errors(rewards, batch.value, next_values, batch.terminated, config.gamma)

    n = batch.reward.size
    flat_obs = obs.reshape((n,) + obs.shape[2:])
    actions = batch.action.reshape((n,) + batch.action.shape[2:])
    old_log_prob = batch.log_prob.reshape(n)
    adv = advantages.reshape(n)
    adv = losses.normalize(adv) if config.normalize_advantage else adv

    # ---- policy: one natural-gradient step on the flattened policy parameters, maximising the surrogate
    # L(theta) = E[ratio * A] (TRPO eq. 14) subject to the mean KL(pi_old || pi_theta) <= max_kl (eq. 12)
    actor, critic = split_params(state.params)
    theta_old, unravel = ravel_pytree(actor)

    def policy(theta):
        return net.apply(merge_params(unravel(theta), critic), flat_obs)[0]

    old_dist = jax.tree.map(jax.lax.stop_gradient, policy(theta_old))
    theta_new, info = natural_gradient_step(
        objective_fn=lambda th: -losses.surrogate_loss(policy(th).log_prob(actions), old_log_prob, adv),
        kl_fn=lambda th: losses.mean_kl(old_dist, policy(th)),
        theta_old=theta_old,
        max_kl=config.max_kl,
        damping=config.cg_damping,
        cg_iters=config.cg_iters,
        cg_residual_tol=config.cg_residual_tol,
        line_search=config.line_search,
        line_search_max_iters=config.line_search_max_iters,
        line_search_shrink=config.line_search_shrink,
    )
    actor = unravel(theta_new)

    # ---- critic: n_critic_updates epochs of Adam minibatch steps on 1/2 (V - R)^2
    opt = critic_optimizer(config)

    def value_loss(critic_params, mb: CriticBatch):
        v = net.apply(merge_params(actor, critic_params), mb.obs, method=net.value)
        return losses.value_loss(v, mb.ret)

    def minibatch_step(carry, mb: CriticBatch):
        critic_params, opt_state = carry
        loss, grads = jax.value_and_grad(value_loss)(critic_params, mb)
        updates, opt_state = opt.update(grads, opt_state, critic_params)
        return (optax.apply_updates(critic_params, updates), opt_state), loss

    (critic, critic_opt_state), v_losses = optim.minibatch_epochs(
        minibatch_step,
        (critic, state.critic_opt_state),
        CriticBatch(obs=flat_obs, ret=returns.reshape(n)),
        key,
        config.n_critic_updates,
        config.n_minibatches,
    )

    obs_rms = state.obs_rms.update(batch.obs) if config.normalize_obs else state.obs_rms
    new_state = state.replace(
        params=merge_params(actor, critic),
        critic_opt_state=critic_opt_state,
        obs_rms=obs_rms,
        env_steps=state.env_steps + n,
    )
    metrics = {
        "loss/policy": -info["surrogate"],
        "loss/value": jnp.mean(v_losses),
        "loss/entropy": jnp.mean(old_dist.entropy()),
        "policy/kl": info["kl"],
        "trpo/surrogate_improvement": info["surrogate"] - info["surrogate_old"],
        "trpo/step_size": info["step_size"],
        "trpo/step_fraction": info["step_fraction"],
        "trpo/line_search_steps": info["line_search_steps"],
        "trpo/accepted": info["accepted"],
        "trpo/cg_residual": info["cg_residual"],
        "trpo/cg_iterations": info["cg_iterations"],
        "trpo/cg_nonpositive_curvature": info["cg_nonpositive_curvature"],
        "trpo/curvature": info["curvature"],
        "value/explained_variance": losses.explained_variance(batch.value, returns),
        "value/td_error": jnp.mean(jnp.abs(deltas)),
        "value/mean": jnp.mean(batch.value),
        "grad/norm": info["grad_norm"],
        "opt/learning_rate": jnp.asarray(config.learning_rate, jnp.float32),
        "adv/mean_abs": jnp.mean(jnp.abs(advantages)),
    }
    return new_state, metrics


def policy_params(state: AgentState):
    """What ``params_digest`` hashes: the network parameters and the normalisation statistics."""
    return {"params": state.params, "obs_rms": state.obs_rms}
