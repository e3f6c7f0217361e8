r"""Natural actor-critic (Peters, Vijayakumar & Schaal 2005; Peters & Schaal 2008): the actor follows the
weights of a *compatible* critic, which are the natural policy gradient.

The slide "Natural Actor Critic" (*Policy Search: Actor-Critic and Gradient Policy search*, deck 004):
with the compatible advantage critic :math:`A_w(s,a) = \psi(s,a)^\top w`,
:math:`\psi = \nabla_\theta\log\pi_\theta(a|s)`, fitted by least squares,

.. math::
    \nabla_\theta J = \mathbb E_\pi[\psi\,\psi^\top w] = F_\theta\, w
    \quad\Longrightarrow\quad \tilde\nabla_\theta J = F_\theta^{-1}\nabla_\theta J = w,
    \qquad \theta \leftarrow \theta + \alpha\, w .

Each update, on a rollout of ``n_steps x n_envs`` transitions:

1. **State baseline** :math:`V_v(s)` (a separate MLP or linear critic): advantages
   :math:`\hat A_t = \text{GAE}(\gamma, \lambda)` from the baseline as it acted.
2. **Compatible critic**: the per-sample features :math:`\psi_i` (``core.natural_gradient.compatible_features``,
   ``vmap(grad(log pi))``) and :math:`w = \arg\min_w \frac1N\sum_i(\psi_i^\top w - \hat A_i)^2 + \lambda\|w\|^2
   = (\hat F + \lambda I)^{-1}\hat g` by an exact ridge least-squares solve
   (``core.natural_gradient.fit_compatible_critic``), with :math:`\hat F = \Psi^\top\Psi/N` and the vanilla
   gradient :math:`\hat g = \Psi^\top\hat A/N`.
3. **Actor**: :math:`\theta \leftarrow \theta + \alpha_\text{eff}\,w` with :math:`\alpha_\text{eff} = \alpha`
   (Peters & Schaal's fixed step), or, with ``max_kl > 0``, :math:`\alpha_\text{eff} = \min(\alpha,
   \sqrt{2\delta / w^\top\hat F w})`: no step longer than the one whose quadratic KL model reaches
   :math:`\delta` (with a large :math:`\alpha` this is NPG's step, ``algos/npg.py``, with ``w`` solved exactly
   instead of by conjugate gradient).
4. **Baseline**: ``n_critic_updates`` epochs of Adam minibatches on :math:`\frac12(V_v(s) - \hat R)^2`,
   :math:`\hat R = \hat A + V_{v,\text{old}}(s)` (as TRPO).

Policies: softmax (``Discrete``) or diagonal Gaussian (``Box``), an MLP or linear in features
(``features``: ``nets/linear.py``; the compatible features of a linear softmax are
:math:`\psi = \phi(s) \otimes (e_a - \pi(\cdot|s))`).

Read top to bottom: ``Config`` -> ``AgentState`` -> networks -> ``init`` / ``act`` -> the actor step ->
``update``. Details and measured numbers: ``docs/algorithms/nac.md``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import struct
from jax.flatten_util import ravel_pytree

from advantage.config import check, check_minibatches, static
from advantage.core import losses, optim
from advantage.core.natural_gradient import compatible_features, fit_compatible_critic
from advantage.core.normalization import RunningMeanStd
from advantage.core.returns import gae
from advantage.nets.linear import Critic, FeatureMap, FeaturesConfig, Policy, policy_and_value
from advantage.nets.mlp import PolicyConfig, check_torso, flatten_obs
from advantage.types import Transition

NAME = "nac"
SEARCH = False  # trained by updates (advantage.training.stepper.UpdateStepper)
NAN_METRICS: tuple[str, ...] = ()  # no metric is NaN by design


@struct.dataclass
class Config(FeaturesConfig, PolicyConfig):
    """Natural actor-critic hyperparameters. Defaults: the CartPole-v1 preset."""

    # features, tile_low, tile_high, n_tilings, tiles_per_dim, n_random, random_scale, random_nonlinearity,
    # feature_seed, action_features: the fields of nets.linear.FeaturesConfig
    # layer_norm, weight_decay (the baseline's only: the actor's step is the natural gradient), std, temperature:
    # the fields of nets.mlp.PolicyConfig (docs/network-options.md)
    n_envs: int = static(2)
    """Parallel environments per seed."""
    n_steps: int = static(512)
    """Steps collected from each environment per update (rollout length T)."""
    n_critic_updates: int = static(20)
    """Epochs of Adam minibatch steps on the baseline's value loss per rollout."""
    n_minibatches: int = static(2)
    """Baseline minibatches per epoch; the rollout (n_envs * n_steps samples) is split evenly."""
    hidden_sizes: tuple[int, ...] = static((64, 64))
    """Hidden layer sizes of the policy and baseline MLPs (features='mlp')."""
    activation: str = static("tanh")
    """Hidden activation: tanh, relu, elu or gelu."""
    normalize_obs: bool = static(False)
    """Normalise observations with running statistics kept in the agent state."""
    normalize_advantage: bool = static(True)
    """Normalise the advantages (the compatible critic's targets) to zero mean and unit std over the rollout."""

    learning_rate: float = 1.0
    """Actor step size alpha: theta <- theta + alpha w (w the compatible critic's weights)."""
    max_kl: float = 0.0
    """Cap on the step: alpha_eff = min(alpha, sqrt(2 max_kl / w^T F w)) (quadratic KL model); 0 turns it off."""
    ridge: float = 0.1
    """Ridge lambda of the compatible critic's least squares: w = (F + lambda I)^{-1} g (Fisher damping)."""
    critic_learning_rate: float = 1e-3
    """Adam step size of the state baseline V_v."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.98
    """GAE lambda of the advantage targets: 0 is the one-step TD error, 1 the Monte-Carlo advantage."""
    log_std_init: float = 0.0
    """Initial log standard deviation of the Gaussian policy (continuous actions)."""
    adam_eps: float = 1e-5
    """Adam epsilon (baseline)."""
    reward_scale: float = 1.0
    """Rewards are multiplied by this before returns are computed (the baseline learns scaled values)."""

    def __post_init__(self):
        self.check_features()
        self.check_policy()  # layer_norm, weight_decay, std, temperature (nets.mlp.PolicyConfig)
        self.require_mlp_torso()  # no CNN torso in the linear-feature family's networks
        check(self, "n_envs", lambda v: v >= 1, "use at least one environment")
        check(self, "n_steps", lambda v: v >= 1, "collect at least one step per environment")
        check(self, "n_critic_updates", lambda v: v >= 0, "use 0 or more baseline epochs")
        check(self, "n_minibatches", lambda v: v >= 1, "use at least one minibatch")
        check_torso(self)
        check(self, "learning_rate", lambda v: v > 0, "the actor step size must be positive")
        check(self, "max_kl", lambda v: v >= 0, "the KL cap must be >= 0 (0 turns it off)")
        check(self, "ridge", lambda v: v > 0, "the compatible critic's Gram matrix is singular: use a ridge > 0")
        check(self, "critic_learning_rate", lambda v: v > 0, "the learning rate must be positive")
        check(self, "gamma", lambda v: 0 <= v <= 1, "gamma must lie in [0, 1]")
        check(self, "gae_lambda", lambda v: 0 <= v <= 1, "gae_lambda must lie in [0, 1]")
        check(self, "reward_scale", lambda v: v > 0, "the reward scale must be positive")
        check_minibatches(self, "baseline")


#: Per-environment defaults (docs/algorithms/nac.md): NPG's CartPole-v1 preset (rollouts of 2 x 512, GAE 0.98,
#: rewards x 0.1, normalised observations) with the compatible critic's ridge 0.1 in the place of NPG's Fisher
#: damping 0.1, and Peters & Schaal's fixed step theta + 1.0 w (no KL cap). Every seed of 0-19 ends at 500.
PRESETS: dict[str, dict] = {
    "CartPole-v1": dict(
        n_envs=2,
        n_steps=512,
        n_minibatches=2,
        n_critic_updates=20,
        learning_rate=1.0,
        max_kl=0.0,
        ridge=0.1,
        gae_lambda=0.98,
        gamma=0.99,
        critic_learning_rate=1e-3,
        reward_scale=0.1,
        normalize_obs=True,
    ),
}
#: Default budget (env steps per seed) for an env, when the user gives none.
DEFAULT_STEPS: dict[str, int] = {"CartPole-v1": 100_000}


class AgentState(struct.PyTreeNode):
    """Everything that changes during training; ``fmap`` (static) is the linear feature map, if any."""

    params: dict  # {"policy": ..., "critic": ...}: pi_theta and the state baseline V_v
    critic_opt_state: optax.OptState  # Adam state of the baseline
    obs_rms: RunningMeanStd
    env_steps: jax.Array  # env steps of the batches updated on so far
    total_steps: jax.Array  # env steps of the run (per seed)
    fmap: FeatureMap | None = struct.field(pytree_node=False, default=None)


class CriticBatch(struct.PyTreeNode):
    """The baseline's regression data, one sample per row ``[N, ...]``; a minibatch is a slice of it."""

    obs: jax.Array  # normalised, flattened observations
    ret: jax.Array  # value targets: GAE advantages + V_old(s)


def networks(config: Config, action_space, fmap) -> tuple[Policy, Critic]:
    """The policy ``pi_theta`` (softmax or Gaussian) and the state baseline ``V_v`` (one output)."""
    return policy_and_value(config, action_space, fmap)


def critic_optimizer(config: Config) -> optax.GradientTransformation:
    """Adam on the baseline's parameters, with the decoupled ``weight_decay`` (``core.optim.optimizer``). The actor
    has no optimiser and no decay: its step ``theta + alpha w`` is the natural gradient, as NPG's/TRPO's."""
    return optim.optimizer(
        "adam", eps=config.adam_eps, learning_rate=config.critic_learning_rate, weight_decay=config.weight_decay
    )


def init(key, obs_space, action_space, config: Config, total_steps: int) -> AgentState:
    fmap = config.feature_map(obs_space, algo=NAME, action_space=action_space)
    policy, critic = networks(config, action_space, fmap)
    k_pi, k_v = jax.random.split(key)
    obs = flatten_obs(jnp.zeros(obs_space.shape, jnp.float32), obs_space.shape)
    params = {"policy": policy.init(k_pi, obs), "critic": critic.init(k_v, obs)}
    return AgentState(
        params=params,
        critic_opt_state=critic_optimizer(config).init(params["critic"]),
        obs_rms=RunningMeanStd.create(obs_space.shape),
        env_steps=jnp.zeros((), jnp.int32),
        total_steps=jnp.asarray(total_steps, jnp.int32),
        fmap=fmap,
    )


def _preprocess(config: Config, state: AgentState, obs):
    obs = state.obs_rms.normalize(obs) if config.normalize_obs else obs
    return flatten_obs(obs, state.obs_rms.mean.shape)


def act(config: Config, action_space, state: AgentState, obs, key, deterministic: bool = False):
    """Sample (or take the mode of) ``pi(.|obs)`` for ``obs [B, ...]``: ``(action, log_prob, V_v(obs))``."""
    policy, critic = networks(config, action_space, state.fmap)
    x = _preprocess(config, state, obs)
    dist = policy.apply(state.params["policy"], x)
    action = dist.mode() if deterministic else dist.sample(key)
    return action, dist.log_prob(action), critic.apply(state.params["critic"], x)


# ----------------------------------------------------------------------------- the actor step
def step_size(learning_rate, max_kl, w_fisher_w):
    r""":math:`\alpha_\text{eff} = \min(\alpha, \sqrt{2\delta / w^\top\hat F w})` (``max_kl`` :math:`\delta > 0`),
    else :math:`\alpha`. The cap puts the quadratic model :math:`\tfrac12\alpha^2 w^\top\hat F w` of the mean KL at
    most at :math:`\delta` (TRPO's step length, ``core.natural_gradient.max_step_length``); a zero curvature leaves
    :math:`\alpha`."""
    ok = w_fisher_w > 0
    cap = jnp.sqrt(2.0 * max_kl / jnp.where(ok, w_fisher_w, 1.0))
    capped = jnp.where(ok, jnp.minimum(learning_rate, cap), learning_rate)
    return jnp.where(max_kl > 0, capped, learning_rate)


def angle_degrees(u, v):
    """The angle between two vectors, in degrees (0 when either is zero)."""
    norm = jnp.linalg.norm(u) * jnp.linalg.norm(v)
    cos = jnp.where(norm > 0, jnp.vdot(u, v) / jnp.where(norm > 0, norm, 1.0), 1.0)
    return jnp.degrees(jnp.arccos(jnp.clip(cos, -1.0, 1.0)))


# ----------------------------------------------------------------------------- update
def update(config: Config, action_space, state: AgentState, batch: Transition, key):
    """One NAC update on ``batch [T, B]``: GAE from the baseline, the compatible critic's ``w`` by least squares,
    the actor step ``theta + alpha w``, then the baseline's Adam epochs (``key`` permutes its minibatches)."""
    policy, critic = networks(config, action_space, state.fmap)
    obs = _preprocess(config, state, batch.obs)
    next_values = critic.apply(state.params["critic"], _preprocess(config, state, batch.next_obs))
    rewards = batch.reward * config.reward_scale
    advantages = gae(
        rewards, batch.value, next_values, batch.terminated, batch.truncated, config.gamma, config.gae_lambda
    )
    returns = advantages + batch.value

    n = batch.reward.size
    flat_obs = obs.reshape((n, -1))
    actions = batch.action.reshape((n,) + batch.action.shape[2:])
    adv = advantages.reshape(n)
    adv = losses.normalize(adv) if config.normalize_advantage else adv

    # ---- compatible critic: psi_i = grad log pi(a_i|s_i), w = argmin mean (psi^T w - A)^2 + ridge |w|^2
    theta, unravel = ravel_pytree(state.params["policy"])

    def log_prob(th, o, a):
        return policy.apply(unravel(th), o[None]).log_prob(a[None])[0]

    psi = compatible_features(log_prob, theta, flat_obs, actions)  # [N, P]
    fit = fit_compatible_critic(psi, adv, config.ridge)
    w = fit.w
    vanilla = psi.T @ adv / n  # the policy gradient estimate g = mean psi A (= F w + ridge w)
    w_fisher_w = jnp.mean((psi @ w) ** 2)  # w^T F w with F = Psi^T Psi / N

    # ---- actor: theta <- theta + alpha_eff w
    alpha = step_size(config.learning_rate, config.max_kl, w_fisher_w)
    new_policy = unravel(theta + alpha * w)
    old_dist = policy.apply(state.params["policy"], flat_obs)
    new_dist = policy.apply(new_policy, flat_obs)

    # ---- baseline: n_critic_updates epochs of Adam minibatch steps on 1/2 (V - R)^2
    opt = critic_optimizer(config)

    def value_loss(p, mb: CriticBatch):
        return losses.value_loss(critic.apply(p, mb.obs), mb.ret)

    def minibatch_step(carry, mb: CriticBatch):
        p, opt_state = carry
        loss, grads = jax.value_and_grad(value_loss)(p, mb)
        updates, opt_state = opt.update(grads, opt_state, p)
        return (optax.apply_updates(p, updates), opt_state), loss

    (critic_params, critic_opt_state), v_losses = optim.minibatch_epochs(
        minibatch_step,
        (state.params["critic"], state.critic_opt_state),
        CriticBatch(obs=flat_obs, ret=returns.reshape(n)),
        key,
        config.n_critic_updates,
        config.n_minibatches,
    )

    obs_rms = state.obs_rms.update(batch.obs) if config.normalize_obs else state.obs_rms
    new_state = state.replace(
        params={"policy": new_policy, "critic": critic_params},
        critic_opt_state=critic_opt_state,
        obs_rms=obs_rms,
        env_steps=state.env_steps + n,
    )
    metrics = {
        "loss/policy": losses.policy_gradient_loss(old_dist.log_prob(actions), adv),
        "loss/value": jnp.mean(v_losses) if config.n_critic_updates > 0 else jnp.float32(0.0),
        "loss/entropy": jnp.mean(old_dist.entropy()),
        "policy/kl": jnp.mean(old_dist.kl(new_dist)),
        "nac/w_norm": jnp.linalg.norm(w),
        "nac/angle": angle_degrees(w, vanilla),
        "nac/critic_r2": fit.r2,
        "nac/step_size": alpha,
        "nac/w_fisher_w": w_fisher_w,
        "grad/norm": jnp.linalg.norm(vanilla),
        "value/explained_variance": losses.explained_variance(batch.value, returns),
        "value/mean": jnp.mean(batch.value),
        "opt/learning_rate": jnp.asarray(config.learning_rate, jnp.float32),
        "adv/mean_abs": jnp.mean(jnp.abs(advantages)),
    }
    return new_state, metrics


def policy_params(state: AgentState):
    """What ``params_digest`` hashes: the policy's parameters and the normalisation statistics."""
    return {"params": state.params["policy"], "obs_rms": state.obs_rms}
