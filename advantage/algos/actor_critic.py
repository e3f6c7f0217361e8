r"""Q actor-critic (QAC): one-step actor-critic with an action-value critic trained by SARSA.

The lectures' "Algorithm 1 Q Actor Critic" (*Actor Critic and PPO*, after Lilian Weng's
"Policy Gradient Algorithms") and "One step Actor Critic (QAC)" (*Policy Search*):

.. math::
    \theta &\leftarrow \theta + \alpha_\theta\, Q_w(s, a)\, \nabla_\theta \log\pi_\theta(a|s) \\
    \delta &= r + \gamma\, Q_w(s', a') - Q_w(s, a), \qquad a' \sim \pi_\theta(\cdot|s') \\
    w &\leftarrow w + \alpha_w\, \delta\, \nabla_w Q_w(s, a)

The actor is weighted by the critic's :math:`Q_w(s,a)` (the "Q Actor-Critic" line of the slide
"Policy Gradient Theorem (IV)"), the critic is on-policy TD(0) on action values (SARSA).
``actor_weight`` chooses :math:`\Psi` in the actor step
:math:`\theta \leftarrow \theta + \alpha_\theta\,\Psi\,\nabla_\theta\log\pi_\theta(a|s)` (:func:`actor_weights`):

* ``"q"``: :math:`\Psi = Q_w(s, a)` (Algorithm 1);
* ``"advantage"``: :math:`\Psi = Q_w(s, a) - V(s)` (the slides' "Advantage Actor Critic (AAC)");
* ``"v"``: :math:`\Psi = V(s)`, the *Actor Critic I* deck's first definition of actor-critic
  (:math:`\theta_\pi \leftarrow \theta_\pi + \alpha V(s_0)\nabla\log\pi(a_0|s_0)`). Its expectation is
  :math:`V(s)\sum_a \pi(a|s)\nabla\log\pi(a|s) = V(s)\nabla\sum_a\pi(a|s) = 0`: it does not say which action
  was better, and with :math:`V(s) > 0` it raises the probability of *every* sampled action (lab
  ``v-weighted-actor``). Kept to show that.

``critics`` chooses where :math:`V(s)` comes from: ``"one"``, from the Q critic,
:math:`V(s) = \sum_b \pi_\theta(b|s) Q_w(s,b)`; ``"two"``, from a second critic :math:`V_v(s)` trained by
TD(0), :math:`v \leftarrow v + \alpha_w \delta_v \nabla_v V_v(s)`, :math:`\delta_v = r + \gamma V_v(s') - V_v(s)`
(the *Policy Search* deck's "Advantage Actor Critic": "estimating both V(s) and Q using two function
approximators and two parameter vectors", :math:`A(s,a) = Q_w(s,a) - V_v(s)`, "updating both value
functions by e.g. TD learning").

**Batched.** The slides update after every step of one environment. Here each update takes a
rollout of ``n_steps`` steps from ``n_envs`` parallel environments, and makes one actor and one
critic step on the mean over its ``T x B`` transitions (``n_envs = n_steps = 1`` is the slides'
online algorithm, with Adam instead of plain SGD unless ``optimizer="sgd"``). Both steps use
the critic as it was when the rollout was collected, as in Algorithm 1 (actor step with
:math:`Q_w`, then :math:`\delta` with the same :math:`w`).

**The next action** :math:`a'` is the action actually taken at the next step of the rollout
when there is one in the same episode (SARSA). At the rollout's last step, and at a truncation
(where no action was taken from the true final observation), :math:`a'` is sampled from
:math:`\pi_\theta(\cdot|s')`. A termination has no next action: :math:`\delta = r - Q_w(s,a)`.

Discrete actions only (``Q_w(s, .)`` has one output per action). With a ``MultiDiscrete(nvec)`` action the
policy is a product of categoricals and the critic has one output per *joint* action,
``prod(nvec)`` of them (index ``np.ravel_multi_index(a, nvec)``), so keep the product small. Read top to bottom:
``Config`` -> ``AgentState`` -> networks -> ``init`` / ``act`` -> the SARSA target -> ``update``
with the actor's and the critic's losses.
Details: ``docs/algorithms/actor_critic.md``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from advantage.config import ConfigError, check, static
from advantage.core import losses, optim
from advantage.core.distributions import MultiCategorical
from advantage.core.returns import td_target
from advantage.envs.spaces import action_dim, action_factors, is_discrete
from advantage.nets.linear import Critic, FeatureMap, FeaturesConfig, Policy
from advantage.nets.mlp import PolicyConfig, check_torso, flatten_obs
from advantage.types import Transition

NAME = "qac"
SEARCH = False  # trained by updates (advantage.training.stepper.UpdateStepper)
NAN_METRICS: tuple[str, ...] = ()  # no metric is NaN by design
ACTOR_WEIGHTS = ("q", "advantage", "v")


@struct.dataclass
class Config(FeaturesConfig, PolicyConfig):
    """Q actor-critic hyperparameters (discrete actions). Defaults: the CartPole-v1 preset."""

    # features, tile_low, tile_high, n_tilings, tiles_per_dim, n_random, random_scale, random_nonlinearity,
    # feature_seed, action_features: the fields of nets.linear.FeaturesConfig
    n_envs: int = static(32)
    """Parallel environments per seed."""
    n_steps: int = static(8)
    """Steps collected from each environment per update."""
    actor_weight: str = static("q")
    """What weights grad log pi(a|s): 'q' (Q_w(s,a), the slides' Algorithm 1), 'advantage' (Q_w(s,a) - V(s)) or
    'v' (V(s): zero in expectation, the lab v-weighted-actor shows why it does not learn)."""
    critics: str = static("one")
    """Where V(s) comes from: 'one' (V(s) = sum_b pi(b|s) Q_w(s,b), from the Q critic) or 'two' (a second critic
    V_v(s) trained by TD(0), A = Q_w(s,a) - V_v(s))."""
    hidden_sizes: tuple[int, ...] = static((64, 64))
    """Hidden layer sizes of the policy and Q MLPs."""
    activation: str = static("tanh")
    """Hidden activation: tanh, relu, elu or gelu."""
    optimizer: str = static("adam")
    """Optimiser of actor and critic: 'adam' or 'sgd' (plain stochastic gradient steps, as in the slides)."""

    learning_rate: float = 3e-4
    """Actor step size alpha_theta."""
    critic_learning_rate: float = 2e-3
    """Critic step size alpha_w."""
    gamma: float = 0.99
    """Discount factor."""
    ent_coef: float = 0.0
    """Weight of the entropy bonus."""
    max_grad_norm: float = 0.5
    """Global-norm gradient clipping threshold (actor and critic each)."""

    def __post_init__(self):
        self.check_features()
        self.check_policy()  # layer_norm, weight_decay, std, temperature (nets.mlp.PolicyConfig)
        self.require_mlp_torso()  # no CNN torso in the linear-feature family's networks
        check(self, "n_envs", lambda v: v >= 1, "use at least one environment")
        check(self, "n_steps", lambda v: v >= 1, "collect at least one step per environment")
        check(self, "actor_weight", lambda v: v in ACTOR_WEIGHTS, "choose 'q', 'advantage' or 'v'")
        check(self, "critics", lambda v: v in ("one", "two"), "choose 'one' (Q_w) or 'two' (Q_w and V_v)")
        check_torso(self)
        check(self, "optimizer", lambda v: v in ("adam", "sgd"), "choose 'adam' or 'sgd'")
        check(self, "learning_rate", lambda v: v > 0, "the learning rate must be positive")
        check(self, "critic_learning_rate", lambda v: v > 0, "the learning rate must be positive")
        check(self, "gamma", lambda v: 0 <= v <= 1, "gamma must lie in [0, 1]")
        check(self, "max_grad_norm", lambda v: v > 0, "the clipping threshold must be positive")
        check(self, "std", lambda v: v == "learned", "the Q actor-critic's policy is a softmax (no Gaussian std)")


#: Per-environment defaults (docs/algorithms/actor_critic.md, "Presets"): tuned here. The Q-weighted actor
#: needs large batches (32 envs x 8 steps) and an actor slower than its critic (3e-4 vs 2e-3); with
#: 8 x 8 and equal step sizes of 1e-3, one seed in three collapsed to a deterministic policy. With an actor
#: step of 3e-4, 11 seeds of 0-19 ended below 400 (some collapsed to 9); at 1e-4, the lowest is 466 (AVX2).
PRESETS: dict[str, dict] = {
    "CartPole-v1": dict(
        n_envs=32, n_steps=8, actor_weight="q", learning_rate=1e-4, critic_learning_rate=2e-3, gamma=0.99
    ),
}
#: Default budget (env steps per seed) for an env, when the user gives none. CartPole-v1: 600k, because at 400k
#: the slow actor had not finished on every seed (seed 16 at 370 under XLA's AVX kernels, still climbing); at 600k
#: every seed of 0-19 ends at 474 or more under AVX2 and AVX (benchmarks/ROBUSTNESS.md).
DEFAULT_STEPS: dict[str, int] = {"CartPole-v1": 600_000}


class AgentState(struct.PyTreeNode):
    """Everything that changes during training; ``fmap`` (static) is the linear feature map, if any.

    With ``critics = "two"``, ``params`` also holds ``"value"`` (``V_v``) and ``critic_opt`` is the pair
    ``(Q_w's, V_v's)`` optimiser states (each critic clipped on its own)."""

    params: dict  # {"policy": ..., "critic": ...} (+ "value": ... with two critics)
    policy_opt: optax.OptState
    critic_opt: optax.OptState
    env_steps: jax.Array  # env steps of the batches updated on so far
    total_steps: jax.Array  # env steps of the run (per seed)
    fmap: FeatureMap | None = struct.field(pytree_node=False, default=None)


def networks(config: Config, action_space, fmap) -> tuple[Policy, Critic]:
    """The softmax policy ``pi_theta`` and the critic ``Q_w(s, .)`` (one output per (joint) action)."""
    n, nvec = action_dim(action_space), action_factors(action_space)
    return (
        Policy(
            n,
            True,
            fmap,
            config.hidden_sizes,
            config.activation,
            layer_norm=config.layer_norm,
            temperature=config.temperature,
            factors=nvec,
        ),
        Critic(int(np.prod(nvec)) if nvec else n, fmap, config.hidden_sizes, config.activation, config.layer_norm),
    )


def value_network(config: Config, fmap) -> Critic:
    """The second critic ``V_v(s)`` (``critics = "two"``): the same torso, one output."""
    return Critic(1, fmap, config.hidden_sizes, config.activation, config.layer_norm)


def _optimizer(config: Config, lr) -> optax.GradientTransformation:
    """Global-norm clipping, then Adam or plain SGD with step size ``lr`` (and the decoupled weight decay)."""
    return optim.optimizer(
        config.optimizer, max_grad_norm=config.max_grad_norm, learning_rate=lr, weight_decay=config.weight_decay
    )


def init(key, obs_space, action_space, config: Config, total_steps: int) -> AgentState:
    if not is_discrete(action_space):
        raise ConfigError(
            f"qac needs a Discrete action space (its critic has one output per action); this "
            f"environment's actions are a Box of shape {tuple(action_space.shape)}. Use a2c or "
            "reinforce for continuous actions."
        )
    fmap = config.feature_map(obs_space, algo=NAME, action_space=action_space)
    policy, critic = networks(config, action_space, fmap)
    k_pi, k_q = jax.random.split(key)
    obs = flatten_obs(jnp.zeros(obs_space.shape, jnp.float32), obs_space.shape)
    params = {"policy": policy.init(k_pi, obs), "critic": critic.init(k_q, obs)}
    critic_opt = _optimizer(config, config.critic_learning_rate).init(params["critic"])
    if config.critics == "two":
        params["value"] = value_network(config, fmap).init(jax.random.fold_in(k_q, 1), obs)
        critic_opt = (critic_opt, _optimizer(config, config.critic_learning_rate).init(params["value"]))
    return AgentState(
        params=params,
        policy_opt=_optimizer(config, config.learning_rate).init(params["policy"]),
        critic_opt=critic_opt,
        env_steps=jnp.zeros((), jnp.int32),
        total_steps=jnp.asarray(total_steps, jnp.int32),
        fmap=fmap,
    )


def _joint_index(a, nvec: tuple[int, ...]):
    """A ``MultiDiscrete`` action ``a [..., k]`` -> its joint index ``[...]`` (C order, ``np.ravel_multi_index``);
    a ``Discrete`` action (``nvec = ()``) is its own index."""
    if not nvec:
        return a
    strides = np.cumprod((1,) + nvec[:0:-1])[::-1]
    return jnp.sum(a.astype(jnp.int32) * jnp.asarray(strides, jnp.int32), axis=-1)


def _joint_probs(dist):
    """``pi(b|s)`` for every (joint) action ``b``, ``[..., prod(nvec)]``: the outer product of the factors'
    probabilities, flattened in the order of :func:`_joint_index`."""
    if not isinstance(dist, MultiCategorical):
        return jnp.exp(dist.log_probs)
    lead, k = dist.logits.shape[:-1], len(dist.nvec)
    logp = sum(
        f.log_probs.reshape(lead + (1,) * i + (n,) + (1,) * (k - i - 1))
        for i, (f, n) in enumerate(zip(dist.factors(), dist.nvec))
    )
    return jnp.exp(logp).reshape(lead + (-1,))


def _take(q, a, nvec: tuple[int, ...] = ()):
    """``Q(s, a)`` from ``Q(s, .) [..., A]`` and ``a [...]`` (``[..., k]`` for a ``MultiDiscrete`` action)."""
    return jnp.take_along_axis(q, _joint_index(a, nvec)[..., None].astype(jnp.int32), axis=-1)[..., 0]


def act(config: Config, action_space, state: AgentState, obs, key, deterministic: bool = False):
    """Sample (or take the mode of) ``pi(.|obs)`` for ``obs [B, ...]``; ``value`` is ``Q_w(obs, action)``."""
    policy, critic = networks(config, action_space, state.fmap)
    obs = obs.reshape((obs.shape[0], -1))
    dist = policy.apply(state.params["policy"], obs)
    action = dist.mode() if deterministic else dist.sample(key)
    q = critic.apply(state.params["critic"], obs)
    return action, dist.log_prob(action), _take(q, action, action_factors(action_space))


# ----------------------------------------------------------------------------- next actions and the target
def next_actions(actions, terminated, truncated, sampled_next):
    r"""SARSA's :math:`a'_t` ``[T, B]``: ``actions[t+1]`` inside an episode, else ``sampled_next[t]``.

    ``sampled_next[t] ~ pi(.|s'_t)`` is used at the rollout's last step and where the episode
    ended (at a truncation it is the action the policy would take from the true final
    observation; at a termination it is multiplied by 0 in the target anyway).
    """
    done = jnp.logical_or(jnp.asarray(terminated, bool), jnp.asarray(truncated, bool))
    following = jnp.concatenate([actions[1:], sampled_next[-1:]], axis=0)
    done = done.reshape(done.shape + (1,) * (actions.ndim - done.ndim))  # [T, B, 1] for MultiDiscrete actions
    return jnp.where(done, sampled_next, following)


def sarsa_targets(rewards, next_q, terminated, gamma):
    r"""SARSA's TD target :math:`y_t = r_t + \gamma (1 - \text{term}_t)\, Q_w(s'_t, a'_t)`, ``[T, B]``.

    (``core.returns.td_target``); :math:`\delta_t = y_t - Q_w(s_t, a_t)` is the TD error of the slide
    (Algorithm 1), with the true final observation at a truncation.
    """
    return td_target(rewards, next_q, terminated, gamma)


def actor_weights(actor_weight: str, q_sa, v_s):
    r"""The actor's weight :math:`\Psi_t` ``[T, B]`` for ``Q_w(s_t, a_t)`` and ``V(s_t)`` ``[T, B]``.

    .. math::
        \Psi_t = Q_w(s_t, a_t)\ (\texttt{q}), \qquad Q_w(s_t, a_t) - V(s_t)\ (\texttt{advantage}), \qquad
        V(s_t)\ (\texttt{v})

    with :math:`V(s) = \sum_b \pi_\theta(b|s) Q_w(s, b)` (one critic) or :math:`V_v(s)` (two critics). The
    actor step is :math:`\Psi_t \nabla_\theta \log\pi_\theta(a_t|s_t)`, :math:`\Psi_t` a constant.
    """
    if actor_weight == "q":
        return q_sa
    if actor_weight == "advantage":
        return q_sa - v_s
    return v_s


# ----------------------------------------------------------------------------- update
def update(config: Config, action_space, state: AgentState, batch: Transition, key):
    """One QAC update on ``batch [T, B]``: the actor step weighted by ``Psi``, the critics' TD(0) steps."""
    policy, critic = networks(config, action_space, state.fmap)
    nvec = action_factors(action_space)
    T, B = batch.reward.shape
    obs = batch.obs.reshape((T, B, -1))
    next_obs = batch.next_obs.reshape((T, B, -1))
    p_pi, p_q = state.params["policy"], state.params["critic"]
    two = config.critics == "two"

    q_all = critic.apply(p_q, obs)  # [T, B, A]
    q_sa = _take(q_all, batch.action, nvec)
    sampled_next = policy.apply(p_pi, next_obs).sample(key)
    a_next = next_actions(batch.action, batch.terminated, batch.truncated, sampled_next)
    next_q = _take(critic.apply(p_q, next_obs), a_next, nvec)
    targets = sarsa_targets(batch.reward, next_q, batch.terminated, config.gamma)
    if two:  # V_v(s) and its TD(0) target y_v = r + gamma (1 - term) V_v(s'), with v as it was at collection
        value = value_network(config, state.fmap)
        p_v = state.params["value"]
        v_two = value.apply(p_v, obs)
        v_targets = td_target(batch.reward, value.apply(p_v, next_obs), batch.terminated, config.gamma)

    # actor: -mean(log pi(a|s) Psi), Psi a constant (actor_weights); its negative gradient is the slide's actor
    # step Psi grad log pi(a|s)
    def policy_objective(p):
        dist = policy.apply(p, obs)
        v_s = v_two if two else jnp.sum(_joint_probs(dist) * q_all, axis=-1)
        weights = actor_weights(config.actor_weight, q_sa, v_s)
        entropy = jnp.mean(dist.entropy())
        pg_loss = losses.policy_gradient_loss(dist.log_prob(batch.action), weights)
        return pg_loss - config.ent_coef * entropy, (entropy, weights)

    # critic: semi-gradient TD(0) 1/2 mean (Q_w(s, a) - y)^2, y a constant; its negative gradient is the slide's
    # critic step delta grad Q_w(s, a)
    def critic_objective(p):
        return losses.value_loss(_take(critic.apply(p, obs), batch.action, nvec), targets)

    (pi_loss, (entropy, weights)), g_pi = jax.value_and_grad(policy_objective, has_aux=True)(p_pi)
    q_loss, g_q = jax.value_and_grad(critic_objective)(p_q)
    u_pi, policy_opt = _optimizer(config, config.learning_rate).update(g_pi, state.policy_opt, p_pi)
    critic_opt = _optimizer(config, config.critic_learning_rate)
    u_q, q_opt = critic_opt.update(g_q, state.critic_opt[0] if two else state.critic_opt, p_q)
    params = {"policy": optax.apply_updates(p_pi, u_pi), "critic": optax.apply_updates(p_q, u_q)}
    new_critic_opt, metrics = q_opt, {}
    if two:  # the second critic: semi-gradient TD(0) 1/2 mean (V_v(s) - y_v)^2, its own optimiser and clipping
        v_loss, g_v = jax.value_and_grad(lambda p: losses.value_loss(value.apply(p, obs), v_targets))(p_v)
        u_v, v_opt = critic_opt.update(g_v, state.critic_opt[1], p_v)
        params["value"] = optax.apply_updates(p_v, u_v)
        new_critic_opt = (q_opt, v_opt)
        metrics = {
            "loss/value_v": v_loss,
            "value/mean_v": jnp.mean(v_two),
            "value/explained_variance_v": losses.explained_variance(v_two, v_targets),  # NaN if y_v is constant
            "grad/critic_v_norm": losses.global_norm(g_v),
        }
    new_state = state.replace(
        params=params,
        policy_opt=policy_opt,
        critic_opt=new_critic_opt,
        env_steps=state.env_steps + batch.reward.size,
    )
    metrics = {
        "loss/policy": pi_loss,
        "loss/value": q_loss,
        "loss/entropy": entropy,
        "value/explained_variance": losses.explained_variance(q_sa, targets),
        "value/td_error": jnp.mean(jnp.abs(targets - q_sa)),
        "value/max": jnp.max(q_all),
        "value/mean": jnp.mean(q_sa),
        "grad/norm": losses.global_norm(g_pi),
        "grad/critic_norm": losses.global_norm(g_q),
        "opt/learning_rate": jnp.asarray(config.learning_rate, jnp.float32),
        "adv/mean_abs": jnp.mean(jnp.abs(weights)),
        **metrics,
    }
    return new_state, metrics


def policy_params(state: AgentState):
    """What ``params_digest`` hashes: the policy's parameters."""
    return {"params": state.params["policy"]}
