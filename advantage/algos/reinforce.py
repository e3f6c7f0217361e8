r"""REINFORCE: the Monte-Carlo policy gradient (Williams 1992), with its variants as switches.

The lectures' estimator (*Actor Critic and PPO*, slides "The Policy Gradient (REINFORCE)" and
"Many forms of policy gradients"; *Policy Gradient Methods*, "Monte-Carlo PG. Aka
REINFORCE" and "Baselines"; *Policy Search*, "REINFORCE algorithm" and "REINFORCE
algorithm with baseline (aka MC Actor Critic)"):

.. math::
    \nabla_\theta J(\pi_\theta) \approx \frac{1}{N}\sum_t \nabla_\theta \log\pi_\theta(a_t|s_t)\,(\Phi_t - b_t)

* ``phi="total"``: :math:`\Phi_t = R(\tau)`, the (discounted) return of the whole episode;
* ``phi="reward-to-go"``: :math:`\Phi_t = G_t = \sum_{t'\ge t}\gamma^{t'-t} r_{t'}`;
* ``baseline="none"``: :math:`b_t = 0`; ``"mean"``: the mean of :math:`\Phi` over the batch;
  ``"value"``: a learned :math:`V_w(s_t)` fitted to :math:`G_t` by regression (MC actor-critic).

Read top to bottom: ``Config`` -> ``AgentState`` -> networks -> ``init`` / ``act`` -> the
weights :math:`\Phi_t - b_t` -> ``update`` with its two losses (``core.losses.policy_gradient_loss``
and ``core.losses.value_loss``, over the used steps). Every detail and departure is in
``docs/algorithms/reinforce.md``.

**Whole episodes from fixed-length rollouts.** The driver hands ``update`` a rollout of
``n_steps`` steps from each of ``n_envs`` environments, and episodes run across rollout
boundaries. Monte-Carlo needs the episode's end, so (``incomplete="drop"``, the default) a
step is used only if its episode **ends inside the rollout** (a ``done`` at or after it, in
the same environment): see :func:`complete_mask`. ``n_steps`` should be at least the episode
length limit (500 for CartPole-v1), so that most steps are used. For an episode that began in
an earlier rollout, its steps in that rollout were dropped there; its remaining steps get
``Phi = R(tau)`` computed from the rollout's first step (``core.returns.episode_returns``):
the missing rewards all precede every step that is used, so their term has expectation zero
(causality) and leaving them out changes the variance, not the expected gradient.

*Bias of dropping.* Whether a step is used depends on whether its episode ends before the
rollout does, i.e. on the actions taken at and after it. Steps near a rollout's end are used
more often when they lead to early termination, so the selection is not independent of the
actions, and the estimate is biased towards such episodes (most for steps in the last episode-length
of a rollout). With ``n_steps`` much larger than an episode, the bias shrinks.

With a learned value (``baseline="value"``), ``incomplete="bootstrap"`` instead keeps every
step, and bootstraps the unfinished episode at the rollout end with :math:`V_w(s'_{T-1})`
(what Spinning Up's VPG does): no selection bias, but the bias of :math:`V_w`'s error,
discounted by :math:`\gamma^{T-t}`.

**Terminated vs truncated.** A termination ends the return. A truncation (time limit)
bootstraps from :math:`V_w(s'_t)` of the true final observation when a critic is learned;
without one (``baseline`` none or mean) there is nothing to bootstrap from, and a truncated
episode counts as ended: the finite-horizon return.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import struct

from advantage.config import ConfigError, check, static
from advantage.core import losses, optim
from advantage.core.losses import masked_mean
from advantage.core.returns import discounted_returns, episode_returns
from advantage.nets.linear import Critic, FeatureMap, FeaturesConfig, Policy, policy_and_value
from advantage.nets.mlp import PolicyConfig, check_torso, flatten_obs
from advantage.types import Transition

NAME = "reinforce"
SEARCH = False  # trained by updates (advantage.training.stepper.UpdateStepper)
NAN_METRICS: tuple[str, ...] = ()  # no metric is NaN by design


@struct.dataclass
class Config(FeaturesConfig, PolicyConfig):
    """REINFORCE hyperparameters. Defaults: reward-to-go with a learned value baseline, the CartPole-v1 preset."""

    # features, tile_low, tile_high, n_tilings, tiles_per_dim, n_random, random_scale, random_nonlinearity,
    # feature_seed, action_features: the fields of nets.linear.FeaturesConfig
    n_envs: int = static(2)
    """Parallel environments per seed."""
    n_steps: int = static(500)
    """Steps per environment per update; make it at least the episode length limit (only steps of episodes that
    end in the rollout are used)."""
    phi: str = static("reward-to-go")
    """Weight of grad log pi: 'total' (R(tau), the whole episode's return) or 'reward-to-go' (G_t)."""
    baseline: str = static("value")
    """Baseline subtracted from Phi: 'none', 'mean' (batch mean of Phi) or 'value' (learned V(s), MC actor-critic)."""
    incomplete: str = static("drop")
    """Episodes unfinished at the rollout end: 'drop' their steps, or 'bootstrap' them with V (needs
    baseline='value')."""
    hidden_sizes: tuple[int, ...] = static((64, 64))
    """Hidden layer sizes of the policy and value MLPs (features='mlp')."""
    activation: str = static("tanh")
    """Hidden activation: tanh, relu, elu or gelu."""
    value_steps: int = static(10)
    """Full-batch gradient steps on the value loss per update (baseline='value')."""
    normalize_advantage: bool = static(False)
    """Scale Phi - b to zero mean and unit std over the used steps of the batch (a trick, not in the slides)."""
    optimizer: str = static("adam")
    """Optimiser of policy and critic: 'adam' or 'sgd' (plain gradient ascent, as in the slides)."""

    learning_rate: float = 5e-3
    """Policy step size alpha."""
    value_learning_rate: float = 5e-3
    """Value step size beta (baseline='value')."""
    gamma: float = 0.99
    """Discount factor."""
    ent_coef: float = 0.0
    """Weight of the entropy bonus."""
    max_grad_norm: float = 0.5
    """Global-norm gradient clipping threshold (policy and critic each)."""
    log_std_init: float = 0.0
    """Initial log standard deviation of the Gaussian policy (continuous actions)."""

    def __post_init__(self):
        self.check_features()
        self.check_policy()  # layer_norm, weight_decay, std, temperature (nets.mlp.PolicyConfig)
        self.require_mlp_torso()  # no CNN torso in the linear-feature family's networks
        check(self, "n_envs", lambda v: v >= 1, "use at least one environment")
        check(self, "n_steps", lambda v: v >= 1, "collect at least one step per environment")
        check(self, "phi", lambda v: v in ("total", "reward-to-go"), "choose 'total' or 'reward-to-go'")
        check(self, "baseline", lambda v: v in ("none", "mean", "value"), "choose 'none', 'mean' or 'value'")
        check(self, "incomplete", lambda v: v in ("drop", "bootstrap"), "choose 'drop' or 'bootstrap'")
        check_torso(self)
        check(self, "value_steps", lambda v: v >= 1, "take at least one value step")
        check(self, "optimizer", lambda v: v in ("adam", "sgd"), "choose 'adam' or 'sgd'")
        check(self, "learning_rate", lambda v: v > 0, "the learning rate must be positive")
        check(self, "value_learning_rate", lambda v: v > 0, "the learning rate must be positive")
        check(self, "gamma", lambda v: 0 <= v <= 1, "gamma must lie in [0, 1]")
        check(self, "max_grad_norm", lambda v: v > 0, "the clipping threshold must be positive")
        if self.incomplete == "bootstrap" and self.baseline != "value":
            raise ConfigError(
                "reinforce.incomplete='bootstrap' needs a learned value to bootstrap from: "
                "set baseline='value', or keep incomplete='drop'."
            )


#: CartPole-v1's observation ranges for tile coding: position, velocity, angle, angular velocity
#: (the velocities are unbounded in the space; these cover what a balancing policy visits).
CARTPOLE_TILE_RANGE = dict(tile_low=(-2.4, -3.0, -0.21, -3.5), tile_high=(2.4, 3.0, 0.21, 3.5))

#: Per-environment defaults (see docs/algorithms/reinforce.md, "Presets"): reward-to-go with a learned
#: value baseline, 2 envs x 500 steps (one episode-length per env) per update, tuned on CartPole-v1.
PRESETS: dict[str, dict] = {
    "CartPole-v1": dict(
        n_envs=2,
        n_steps=500,
        phi="reward-to-go",
        baseline="value",
        learning_rate=5e-3,
        value_learning_rate=5e-3,
        gamma=0.99,
        value_steps=10,
        **CARTPOLE_TILE_RANGE,
    ),
}
#: The vanilla estimator (Phi = R(tau), no baseline) as overrides of the CartPole preset: undiscounted returns,
#: one env of 2000 steps per update (4 episode-lengths: with 4 envs x 500 steps up to 84% of a rollout's steps were
#: dropped as unfinished once episodes grew long) and step 1e-3 (at 2e-3 Adam's steps, as large with a flat
#: signal as with a strong one, undid solved policies late in the run). 20 of seeds 0-19 reach 195 under AVX2 and
#: AVX (docs/algorithms/reinforce.md, "Robustness of the vanilla preset").
VANILLA: dict = dict(phi="total", baseline="none", n_envs=1, n_steps=2000, gamma=1.0, learning_rate=1e-3)
#: Budget of the vanilla variant's learning test: 1M steps (at 200k and step 5e-3 most seeds stayed near 100-250).
VANILLA_STEPS = 1_000_000
#: Default budget (env steps per seed) for an env, when the user gives none. CartPole-v1: 200k steps; at 100k
#: one seed of 20 ended at 350 with XLA limited to AVX (a policy still improving), at 200k every seed of 0-19
#: ends at 498.7 or more under both AVX2 and AVX (benchmarks/ROBUSTNESS.md).
DEFAULT_STEPS: dict[str, int] = {"CartPole-v1": 200_000}


class AgentState(struct.PyTreeNode):
    """Everything that changes during training; saved whole in every checkpoint.

    ``fmap`` (static) is the feature map of linear features, with its tile ranges resolved
    from the observation space at ``init`` (``None`` for MLPs)."""

    params: dict  # {"policy": ..., "critic": ...}
    policy_opt: optax.OptState
    critic_opt: optax.OptState
    env_steps: jax.Array  # env steps of the batches updated on so far
    total_steps: jax.Array  # env steps of the run (per seed)
    fmap: FeatureMap | None = struct.field(pytree_node=False, default=None)


# ----------------------------------------------------------------------------- networks
def networks(config: Config, action_space, fmap: FeatureMap | None) -> tuple[Policy, Critic]:
    """The policy ``pi_theta`` and the value ``V_w`` (separate networks, or linear in the same features)."""
    return policy_and_value(config, action_space, fmap)


def _optimizer(config: Config, lr) -> optax.GradientTransformation:
    """Global-norm clipping, then Adam or plain SGD with step size ``lr`` (and the decoupled weight decay)."""
    return optim.optimizer(
        config.optimizer, max_grad_norm=config.max_grad_norm, learning_rate=lr, weight_decay=config.weight_decay
    )


def init(key, obs_space, action_space, config: Config, total_steps: int) -> AgentState:
    fmap = config.feature_map(obs_space, algo=NAME, action_space=action_space)
    policy, critic = networks(config, action_space, fmap)
    k_pi, k_v = jax.random.split(key)
    obs = flatten_obs(jnp.zeros(obs_space.shape, jnp.float32), obs_space.shape)
    params = {"policy": policy.init(k_pi, obs), "critic": critic.init(k_v, obs)}
    return AgentState(
        params=params,
        policy_opt=_optimizer(config, config.learning_rate).init(params["policy"]),
        critic_opt=_optimizer(config, config.value_learning_rate).init(params["critic"]),
        env_steps=jnp.zeros((), jnp.int32),
        total_steps=jnp.asarray(total_steps, jnp.int32),
        fmap=fmap,
    )


def act(config: Config, action_space, state: AgentState, obs, key, deterministic: bool = False):
    """Sample (or take the mode of) ``pi(.|obs)`` for ``obs [B, ...]``; ``value`` is ``V_w(obs)`` (0 without a
    critic)."""
    policy, critic = networks(config, action_space, state.fmap)
    obs = obs.reshape((obs.shape[0], -1))
    dist = policy.apply(state.params["policy"], obs)
    action = dist.mode() if deterministic else dist.sample(key)
    value = critic.apply(state.params["critic"], obs) if config.baseline == "value" else jnp.zeros(obs.shape[0])
    return action, dist.log_prob(action), value


# ----------------------------------------------------------------------------- the weights
def complete_mask(terminated, truncated) -> jax.Array:
    r"""``m_t = 1`` where the episode of step ``t`` ends inside the rollout: some ``done_{t'}``, ``t' >= t``.

    ``done = terminated or truncated``; ``[T, B] -> [T, B]`` float mask (a reverse running OR over time).
    """
    done = jnp.logical_or(jnp.asarray(terminated, bool), jnp.asarray(truncated, bool))
    return jax.lax.cummax(done[::-1].astype(jnp.float32), axis=0)[::-1]


def phi_weights(config: Config, rewards, terminated, truncated, next_values):
    r"""``(Phi, G)``: the chosen :math:`\Phi_t` and the reward-to-go :math:`G_t` (the value target), ``[T, B]``.

    ``next_values`` is :math:`V_w(s'_t)` with a critic and 0 without: it bootstraps truncations
    and (``incomplete="bootstrap"``) the unfinished episode at the rollout end
    (``core.returns.discounted_returns`` / ``episode_returns``).
    """
    rtg = discounted_returns(rewards, next_values, terminated, truncated, config.gamma)
    if config.phi == "reward-to-go":
        return rtg, rtg
    return episode_returns(rewards, terminated, truncated, config.gamma, next_values), rtg


# ----------------------------------------------------------------------------- update
def update(config: Config, action_space, state: AgentState, batch: Transition, key):
    """One REINFORCE update on a rollout ``batch [T, B]``: ``value_steps`` critic steps, one policy step.

    The weights use the critic as it was when the rollout was collected (its values are
    constants of the policy step); the critic then regresses on the Monte-Carlo returns.
    """
    policy, critic = networks(config, action_space, state.fmap)
    T, B = batch.reward.shape
    obs = batch.obs.reshape((T, B, -1))
    next_obs = batch.next_obs.reshape((T, B, -1))
    use_critic = config.baseline == "value"
    if use_critic:
        values = critic.apply(state.params["critic"], obs)
        next_values = critic.apply(state.params["critic"], next_obs)
    else:
        values = next_values = jnp.zeros_like(batch.reward)
    phi, rtg = phi_weights(config, batch.reward, batch.terminated, batch.truncated, next_values)
    mask = complete_mask(batch.terminated, batch.truncated) if config.incomplete == "drop" else jnp.ones_like(phi)
    n_used = jnp.sum(mask)

    if config.baseline == "value":
        base = values
    elif config.baseline == "mean":
        base = masked_mean(phi, mask) * jnp.ones_like(phi)
    else:
        base = jnp.zeros_like(phi)
    weights = phi - base
    if config.normalize_advantage:
        weights = losses.normalize(weights, mask)

    # policy: one gradient step on the score-function loss -mean_used(log pi(a_t|s_t) (Phi_t - b_t))
    def policy_loss(params):
        dist = policy.apply(params, obs)
        entropy = masked_mean(dist.entropy(), mask)
        pg_loss = losses.policy_gradient_loss(dist.log_prob(batch.action), weights, mask)
        return pg_loss - config.ent_coef * entropy, entropy

    (pg_loss, entropy), grads = jax.value_and_grad(policy_loss, has_aux=True)(state.params["policy"])
    popt = _optimizer(config, config.learning_rate)
    upd, policy_opt = popt.update(grads, state.policy_opt, state.params["policy"])
    policy_params = optax.apply_updates(state.params["policy"], upd)

    # critic: value_steps full-batch steps of MC regression 1/2 mean_used (V_w(s_t) - G_t)^2 (the slides'
    # critic step delta grad V_w(s_t), delta = G_t - V_w(s_t))
    critic_params, critic_opt, v_loss = state.params["critic"], state.critic_opt, jnp.zeros(())
    if use_critic:
        vopt = _optimizer(config, config.value_learning_rate)
        v_grad = jax.value_and_grad(lambda p: losses.value_loss(critic.apply(p, obs), rtg, mask))

        def value_step(carry, _):
            p, o = carry
            loss, g = v_grad(p)
            u, o = vopt.update(g, o, p)
            return (optax.apply_updates(p, u), o), loss

        (critic_params, critic_opt), v_losses = jax.lax.scan(
            value_step, (critic_params, critic_opt), None, length=config.value_steps
        )
        v_loss = v_losses[0]

    # a rollout in which no episode ended (drop mode) carries no Monte-Carlo information: no update
    keep = n_used > 0
    pick = lambda new, old: jax.tree.map(lambda a, b: jnp.where(keep, a, b), new, old)  # noqa: E731
    new_state = state.replace(
        params={
            "policy": pick(policy_params, state.params["policy"]),
            "critic": pick(critic_params, state.params["critic"]),
        },
        policy_opt=pick(policy_opt, state.policy_opt),
        critic_opt=pick(critic_opt, state.critic_opt),
        env_steps=state.env_steps + batch.reward.size,
    )
    metrics = {
        "loss/policy": pg_loss,
        "loss/value": v_loss,
        "loss/entropy": entropy,
        "value/explained_variance": (
            losses.explained_variance(values, rtg, mask) if use_critic else jnp.float32(jnp.nan)
        ),
        "value/max": jnp.max(values),
        "value/mean": masked_mean(values, mask),
        "grad/norm": losses.global_norm(grads),
        "opt/learning_rate": jnp.asarray(config.learning_rate, jnp.float32),
        "phi/mean": masked_mean(phi, mask),
        "phi/std": jnp.sqrt(masked_mean((phi - masked_mean(phi, mask)) ** 2, mask)),
        "adv/mean_abs": masked_mean(jnp.abs(weights), mask),
        "reinforce/used_fraction": n_used / mask.size,
    }
    return new_state, metrics


def policy_params(state: AgentState):
    """What ``params_digest`` hashes: the policy's parameters."""
    return {"params": state.params["policy"]}
