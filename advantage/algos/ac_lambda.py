r"""Actor-critic with eligibility traces: the online TD(lambda) actor-critic.

Sutton & Barto (2018), sec. 13.5, "Actor-Critic with Eligibility Traces (episodic)"; the lecture
slide "Policy Gradient Theorem (IV)" (*Policy Gradient Methods*) and the *Policy Search*
summary: :math:`\nabla_\theta J(\theta) = \mathbb E_{\pi_\theta}[\nabla_\theta \log\pi_\theta(a|s)\,\delta\, e]`,
"TD(lambda) Actor-Critic". After every environment step :math:`(S, A, R, S')`:

.. math::
    \delta &\leftarrow R + \gamma\,\hat v(S', w) - \hat v(S, w)
        \qquad (\hat v(S', w) = 0 \text{ if } S' \text{ is terminal}) \\
    z^w &\leftarrow \gamma\lambda^w z^w + \nabla_w \hat v(S, w) \\
    z^\theta &\leftarrow \gamma\lambda^\theta z^\theta + I\,\nabla_\theta \log\pi(A|S, \theta) \\
    w &\leftarrow w + \alpha^w\,\delta\, z^w \\
    \theta &\leftarrow \theta + \alpha^\theta\,\delta\, z^\theta \\
    I &\leftarrow \gamma I

with :math:`z^w = z^\theta = 0` and :math:`I = 1` at the start of every episode. The traces are
**accumulating** traces over the parameters of any differentiable :math:`\hat v` and
:math:`\pi`. With linear features (``nets/linear.py``: tile coding, raw or one-hot features)
:math:`\nabla_w \hat v(S, w) = \phi(S)` and, for the softmax policy,
:math:`\nabla_\theta \log\pi(A|S) = \phi(S, A) - \sum_b \pi(b|S)\phi(S, b)` (S&B eq. 13.9).

**Online.** With ``n_steps = 1`` (the default) the driver calls ``update`` after every step,
and the traces (one set per environment) live in the agent state: this is the book's
algorithm. With ``n_envs > 1`` each environment keeps its own traces and ``I``, and the
parameter step is the mean of the per-environment steps.

``n_steps = T > 1`` runs the *same* per-step updates, in order, over a rollout of ``T`` steps
(:func:`update` scans :func:`online_step`). What changes is only that the rollout's actions were
all chosen by the policy as it was at the rollout's start, so the actor's traces collect
:math:`\nabla\log\pi_\theta(A|S)` of actions drawn from a policy up to ``T - 1`` small steps
old. This exists for speed: the driver logs one metrics row per ``update`` call, which costs
far more than the update itself when it happens after every step (see the doc page).

**Episode ends.** A termination gives :math:`\hat v(S') = 0`. A truncation (time limit)
bootstraps from :math:`\hat v(S')` of the true final observation (``next_obs``), so the
time limit is not mistaken for a terminal state. Either one resets the traces and ``I`` after
the update, since the next observation starts a new episode.

**Average reward** (``objective='average-reward'``; S&B sec. 13.6, "Actor-Critic with Eligibility
Traces (continuing)"). For a continuing task the objective is the reward per step,
:math:`J_{avR}(\theta) = \sum_s d^{\pi_\theta}(s) \sum_a \pi_\theta(a|s) R(s, a)`, the critic learns
the *differential* value and the agent keeps an estimate :math:`\bar R` of :math:`J_{avR}`:

.. math::
    \delta &\leftarrow R - \bar R + \hat v(S', w) - \hat v(S, w) \\
    \bar R &\leftarrow \bar R + \eta\,\delta \\
    z^w &\leftarrow \lambda^w z^w + \nabla_w \hat v(S, w), \qquad
    z^\theta \leftarrow \lambda^\theta z^\theta + \nabla_\theta \log\pi(A|S, \theta)

then the same :math:`w, \theta` steps: no :math:`\gamma` and no :math:`I` (``gamma`` and
``discount_actor`` are unused). :math:`\bar R` (``avg_reward_step_size`` :math:`= \eta`) lives in
the agent state, one estimate shared by all environments (stepped by the mean :math:`\delta`), and is
logged as ``value/avg_reward``.

**The** :math:`I = \gamma^t` **factor** of the book makes the actor follow the gradient of the
discounted start-state objective. Practical implementations usually drop it (it shrinks the
actor's steps late in long episodes); ``discount_actor`` turns it on (default off).

Read top to bottom: ``Config`` -> ``AgentState`` -> networks -> ``init`` / ``act`` -> the
trace update (:func:`trace_step`) -> ``update``. Details: ``docs/algorithms/actor_critic.md``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from advantage.config import check, static
from advantage.core import losses, optim
from advantage.core.returns import td_errors
from advantage.nets.linear import Critic, FeatureMap, FeaturesConfig, Policy, policy_and_value
from advantage.nets.mlp import PolicyConfig, check_torso, flatten_obs
from advantage.types import Transition

NAME = "ac-lambda"
SEARCH = False  # trained by updates (advantage.training.stepper.UpdateStepper)
NAN_METRICS: tuple[str, ...] = ()  # no metric is NaN by design
OBJECTIVES = ("discounted", "average-reward")


@struct.dataclass
class Config(FeaturesConfig, PolicyConfig):
    """TD(lambda) actor-critic hyperparameters. Defaults: linear in tile-coded features."""

    # features, tile_low, tile_high, n_tilings, tiles_per_dim, n_random, random_scale, random_nonlinearity,
    # feature_seed, action_features: the fields of nets.linear.FeaturesConfig (features
    # here linear by default)
    features: str = static("linear-tiles")
    """Function approximation: 'linear-tiles', 'linear-raw', 'linear-onehot', 'linear-random' or 'mlp' (all weights)."""

    n_envs: int = static(1)
    """Parallel environments per seed (each with its own traces); 1 is the book's algorithm."""
    n_steps: int = static(1)
    """Steps per update call; 1 is exactly online. T > 1 replays the T steps one by one (actions chosen by the
    rollout-start policy)."""
    hidden_sizes: tuple[int, ...] = static((64, 64))
    """Hidden layer sizes (features='mlp')."""
    activation: str = static("tanh")
    """Hidden activation (features='mlp'): tanh, relu, elu or gelu."""
    objective: str = static("discounted")
    """'discounted' (S&B sec. 13.5) or 'average-reward' (sec. 13.6, continuing tasks: differential TD error)."""
    discount_actor: bool = static(False)
    """Multiply the actor's trace input by I = gamma^t (t: steps since the episode start), as in S&B's pseudocode."""

    learning_rate: float = 0.01
    """Actor step size alpha^theta (with tile coding: per active tile, so effectively n_tilings times larger)."""
    critic_learning_rate: float = 0.01
    """Critic step size alpha^w."""
    gamma: float = 0.99
    """Discount factor."""
    lambda_actor: float = 0.9
    """Trace decay lambda^theta of the actor."""
    lambda_critic: float = 0.9
    """Trace decay lambda^w of the critic."""
    avg_reward_step_size: float = 0.01
    """Step size eta of the average-reward estimate R_bar <- R_bar + eta delta (objective='average-reward')."""
    log_std_init: float = 0.0
    """Initial log standard deviation of the Gaussian policy (continuous actions)."""

    def __post_init__(self):
        self.check_features()
        self.check_policy()  # layer_norm, weight_decay, std, temperature (nets.mlp.PolicyConfig)
        self.require_mlp_torso()  # no CNN torso in the linear-feature family's networks
        check(self, "n_envs", lambda v: v >= 1, "use at least one environment")
        check(self, "n_steps", lambda v: v >= 1, "collect at least one step per environment")
        check_torso(self)
        check(self, "learning_rate", lambda v: v > 0, "the step size must be positive")
        check(self, "critic_learning_rate", lambda v: v > 0, "the step size must be positive")
        check(self, "gamma", lambda v: 0 <= v <= 1, "gamma must lie in [0, 1]")
        check(self, "lambda_actor", lambda v: 0 <= v <= 1, "lambda must lie in [0, 1]")
        check(self, "lambda_critic", lambda v: 0 <= v <= 1, "lambda must lie in [0, 1]")
        check(self, "objective", lambda v: v in OBJECTIVES, f"choose one of {', '.join(OBJECTIVES)}")
        check(self, "avg_reward_step_size", lambda v: v > 0, "the step size must be positive")
        check(
            self,
            "discount_actor",
            lambda v: not (v and self.objective == "average-reward"),
            "the average-reward objective has no discount: set discount_actor=False",
        )


#: CartPole-v1: tile coding over the ranges a balancing policy visits (the velocities are unbounded), and
#: updates replayed in blocks of 100 steps (n_steps=100; n_steps=1 is exactly online but the driver's
#: per-update logging then costs about 7x the run time, see docs/algorithms/actor_critic.md).
PRESETS: dict[str, dict] = {
    "CartPole-v1": dict(
        n_envs=1,
        n_steps=100,
        features="linear-tiles",
        tile_low=(-2.4, -3.0, -0.21, -3.5),
        tile_high=(2.4, 3.0, 0.21, 3.5),
        n_tilings=8,
        tiles_per_dim=6,
        learning_rate=0.01,
        critic_learning_rate=0.01,
        gamma=0.99,
        lambda_actor=0.9,
        lambda_critic=0.9,
    ),
}
#: Default budget (env steps per seed) for an env, when the user gives none.
DEFAULT_STEPS: dict[str, int] = {"CartPole-v1": 100_000}


class AgentState(struct.PyTreeNode):
    """Parameters, the eligibility traces (leading axis: environment) and ``I``; ``fmap`` is static."""

    params: dict  # {"policy": theta, "critic": w}
    traces: dict  # {"policy": z^theta, "critic": z^w}, each like params with a leading [n_envs] axis
    discount_power: jax.Array  # I = gamma^t per environment, [n_envs]
    avg_reward: jax.Array  # R_bar, the estimate of the reward per step (objective='average-reward'; else 0)
    env_steps: jax.Array  # env steps of the batches updated on so far
    total_steps: jax.Array  # env steps of the run (per seed)
    fmap: FeatureMap | None = struct.field(pytree_node=False, default=None)


def networks(config: Config, action_space, fmap) -> tuple[Policy, Critic]:
    """The policy ``pi_theta`` (softmax or Gaussian) and the state value ``v_w``."""
    return policy_and_value(config, action_space, fmap)


def init(key, obs_space, action_space, config: Config, total_steps: int) -> AgentState:
    fmap = config.feature_map(obs_space, algo=NAME, action_space=action_space)
    policy, critic = networks(config, action_space, fmap)
    k_pi, k_v = jax.random.split(key)
    obs = flatten_obs(jnp.zeros(obs_space.shape, jnp.float32), obs_space.shape)
    params = {"policy": policy.init(k_pi, obs), "critic": critic.init(k_v, obs)}
    zeros = jax.tree.map(lambda p: jnp.zeros((config.n_envs,) + p.shape, p.dtype), params)
    return AgentState(
        params=params,
        traces=zeros,
        discount_power=jnp.ones(config.n_envs),
        avg_reward=jnp.zeros((), jnp.float32),
        env_steps=jnp.zeros((), jnp.int32),
        total_steps=jnp.asarray(total_steps, jnp.int32),
        fmap=fmap,
    )


def act(config: Config, action_space, state: AgentState, obs, key, deterministic: bool = False):
    """Sample (or take the mode of) ``pi(.|obs)`` for ``obs [B, ...]``; ``value`` is ``v_w(obs)``."""
    policy, critic = networks(config, action_space, state.fmap)
    obs = obs.reshape((obs.shape[0], -1))
    dist = policy.apply(state.params["policy"], obs)
    action = dist.mode() if deterministic else dist.sample(key)
    return action, dist.log_prob(action), critic.apply(state.params["critic"], obs)


# ----------------------------------------------------------------------------- the trace update
def trace_step(params, traces, grads, delta, decay, step_size):
    r"""One accumulating-trace step for one parameter set, for a batch of ``B`` environments.

    .. math::
        z_b \leftarrow \text{decay}_b\, z_b + g_b, \qquad
        p \leftarrow p + \alpha\,\tfrac1B \textstyle\sum_b \delta_b\, z_b

    (S&B sec. 13.5; :math:`\text{decay} = \gamma\lambda`). ``traces`` and ``grads`` are pytrees
    like ``params`` with a leading ``[B]`` axis; ``delta`` and ``decay`` are ``[B]``. Returns
    ``(new_params, new_traces)``.
    """

    def bcast(x, leaf):
        return x.reshape(x.shape + (1,) * (leaf.ndim - 1))

    traces = jax.tree.map(lambda z, g: bcast(decay, z) * z + g, traces, grads)
    params = jax.tree.map(lambda p, z: p + step_size * jnp.mean(bcast(delta, z) * z, axis=0), params, traces)
    return params, traces


def differential_td_error(reward, avg_reward, value, next_value, terminated):
    r"""The differential TD error of the average-reward setting (S&B eq. 10.10 / sec. 13.6).

    .. math::
        \delta = R - \bar R + (1 - \text{term})\,\hat v(S') - \hat v(S)

    No discount: :math:`\hat v` is the differential value, :math:`\bar R` the estimate of the reward
    per step. A continuing task never terminates; ``terminated`` only guards an env that does.
    All arguments broadcast (``[B]`` and a scalar ``avg_reward``).
    """
    return reward - avg_reward + (1.0 - terminated.astype(jnp.float32)) * next_value - value


# ----------------------------------------------------------------------------- update
def online_step(config: Config, action_space, state: AgentState, tr: Transition):
    """The book's per-step update for one transition of every environment (``tr`` fields ``[B, ...]``):
    TD error, trace and parameter steps, then the resets at episode ends. Returns ``(state, metrics)``."""
    policy, critic = networks(config, action_space, state.fmap)
    s = tr.obs.reshape((tr.obs.shape[0], -1))
    s_next = tr.next_obs.reshape(s.shape)
    a, r, term, trunc = tr.action, tr.reward, tr.terminated, tr.truncated
    p_pi, p_v = state.params["policy"], state.params["critic"]

    v = critic.apply(p_v, s)
    v_next = critic.apply(p_v, s_next)
    average = config.objective == "average-reward"
    if average:
        delta = differential_td_error(r, state.avg_reward, v, v_next, term)  # R - R_bar + v(S') - v(S)
        avg_reward = state.avg_reward + config.avg_reward_step_size * jnp.mean(delta)  # R_bar <- R_bar + eta delta
        gamma = 1.0  # traces decay by lambda alone
    else:
        delta = td_errors(r, v, v_next, term, config.gamma)  # R + gamma (1 - term) v(S') - v(S)
        avg_reward, gamma = state.avg_reward, config.gamma

    # per-environment gradients: grad_w v(S_b, w) and grad_theta log pi(A_b|S_b, theta)
    grad_v = jax.vmap(jax.grad(lambda p, x: critic.apply(p, x[None])[0]), in_axes=(None, 0))(p_v, s)
    grad_logp = jax.vmap(jax.grad(lambda p, x, u: policy.apply(p, x[None]).log_prob(u[None])[0]), in_axes=(None, 0, 0))(
        p_pi, s, a
    )
    i_t = state.discount_power if config.discount_actor else jnp.ones_like(state.discount_power)
    grad_logp = jax.tree.map(lambda g: i_t.reshape((-1,) + (1,) * (g.ndim - 1)) * g, grad_logp)

    # decoupled weight decay (config.weight_decay; nothing when 0): theta <- theta - alpha lambda_wd theta, then the
    # trace step adds alpha delta z, so the step is theta + alpha (delta z - lambda_wd theta) on the weight matrices
    p_v = optim.decay_weights(p_v, config.weight_decay, config.critic_learning_rate)
    p_pi = optim.decay_weights(p_pi, config.weight_decay, config.learning_rate)
    p_v, z_v = trace_step(
        p_v,
        state.traces["critic"],
        grad_v,
        delta,
        jnp.full_like(delta, gamma * config.lambda_critic),
        config.critic_learning_rate,
    )
    p_pi, z_pi = trace_step(
        p_pi,
        state.traces["policy"],
        grad_logp,
        delta,
        jnp.full_like(delta, gamma * config.lambda_actor),
        config.learning_rate,
    )

    # a new episode starts after a termination or a truncation: clear its traces and I
    done = jnp.logical_or(term, trunc)
    keep = lambda z: jnp.where(done.reshape((-1,) + (1,) * (z.ndim - 1)), 0.0, z)  # noqa: E731
    traces = {"policy": jax.tree.map(keep, z_pi), "critic": jax.tree.map(keep, z_v)}
    discount_power = jnp.where(done, 1.0, config.gamma * state.discount_power)

    entropy = jnp.mean(policy.apply(state.params["policy"], s).entropy())
    new_state = state.replace(
        params={"policy": p_pi, "critic": p_v}, traces=traces, discount_power=discount_power, avg_reward=avg_reward
    )
    b = s.shape[0]
    metrics = {
        "loss/value": 0.5 * jnp.mean(delta**2),
        "loss/entropy": entropy,
        "value/td_error": jnp.mean(jnp.abs(delta)),
        "value/max": jnp.max(v),
        "value/mean": jnp.mean(v),
        "grad/norm": losses.global_norm(grad_logp) / jnp.sqrt(b),
        "trace/actor_norm": losses.global_norm(z_pi) / jnp.sqrt(b),
        "trace/critic_norm": losses.global_norm(z_v) / jnp.sqrt(b),
    }
    if average:
        metrics["value/avg_reward"] = avg_reward
    return new_state, metrics


def update(config: Config, action_space, state: AgentState, batch: Transition, key):
    """``online_step`` for each of the ``T`` steps of ``batch [T, B]`` in order (``T = n_steps``).

    With ``n_steps = 1`` this is the book's online algorithm. With ``n_steps > 1`` the updates
    are the same, step after step, but the actions of a rollout were all chosen by the policy
    as it was at the rollout's start (see the module docstring). Metrics are means over the steps.
    """
    state, m = jax.lax.scan(lambda st, tr: online_step(config, action_space, st, tr), state, batch)
    last = ("value/avg_reward",)  # the estimate after the block's last step
    metrics = {k: (jnp.max(v) if k == "value/max" else v[-1] if k in last else jnp.mean(v)) for k, v in m.items()}
    metrics["opt/learning_rate"] = jnp.asarray(config.learning_rate, jnp.float32)
    return state.replace(env_steps=state.env_steps + batch.reward.size), metrics


def policy_params(state: AgentState):
    """What ``params_digest`` hashes: the policy's parameters."""
    return {"params": state.params["policy"]}
