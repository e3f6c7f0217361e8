r"""IMPALA: an actor-critic that learns from a lagged behaviour policy with V-trace (Espeholt et al. 2018).

The lectures: *Policy Gradient Methods*, "IMPALA" ("Remember A3C is essentially online. IMPALA needs to deal
with off-policy data") and "IMPALA V-Trace" (``shared/seeds/002_…``).

In IMPALA, actors act with the parameters they last received from the learner, which is some updates
ahead by the time their trajectories arrive: the data comes from a *behaviour* policy :math:`\mu` older than
the learner's :math:`\pi`. Here that lag is reproduced synchronously, inside the ordinary rollout loop of
either back end: the agent state keeps the learner's parameters of the last ``policy_lag`` updates (a ring),
``act`` samples from the oldest of them, and ``update`` corrects for the difference with V-trace
(``core.returns.vtrace``). ``policy_lag=0`` is on-policy (every ratio is 1, and IMPALA is A2C with GAE).

Each update takes one rollout of ``n_steps`` steps from ``n_envs`` environments, recomputes
:math:`\log\pi_\theta(a_t|s_t)`, :math:`V_\theta(s_t)` and :math:`V_\theta(s'_t)` with the current parameters,
and makes **one** gradient step on

.. math::
    L(\theta) = -\hat{\mathbb E}_t\big[\operatorname{sg}(A^{pg}_t)\log\pi_\theta(a_t|s_t)\big]
        + c_v\,\tfrac12\hat{\mathbb E}_t\big[(V_\theta(s_t) - \operatorname{sg}(v_t))^2\big]
        - c_e\,\hat{\mathbb E}_t\,\mathcal H[\pi_\theta(\cdot|s_t)]

with the V-trace targets :math:`v_t` and advantages :math:`A^{pg}_t = \rho_t(r_t + \gamma v_{t+1} - V(s_t))`
from the log-ratios :math:`\log\rho_t = \log\pi_\theta(a_t|s_t) - \log\mu(a_t|s_t)` (``sg``: stop-gradient;
Espeholt et al., sec. 4.2). ``correction=False`` ignores the ratios (``log rho = 0``): the same lagged data
with plain lambda-return targets and GAE advantages, to show what the correction is for.

Read top to bottom: ``Config`` -> the policy ring -> ``AgentState`` -> networks -> ``init`` / ``act`` -> the
loss -> ``update``. Every detail: ``docs/algorithms/impala.md``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import struct

from advantage.config import check, static
from advantage.core import losses, optim
from advantage.core.normalization import RunningMeanStd
from advantage.core.returns import vtrace
from advantage.envs.spaces import action_dim, action_factors, is_discrete
from advantage.nets.mlp import ActorCritic, PolicyConfig, init_input, network_input
from advantage.types import Transition

NAME = "impala"
SEARCH = False  # trained by updates (advantage.training.stepper.UpdateStepper)
WORKERS = "trajectories"  # with --workers: actors send rollouts to a learner (training/pool_stepper.py)
NAN_METRICS: tuple[str, ...] = ()  # no metric is NaN by design


@struct.dataclass
class Config(PolicyConfig):
    """IMPALA hyperparameters. Defaults: the paper's V-trace and loss (rho_bar = c_bar = lambda = 1, baseline cost
    0.5, RMSProp with decay 0.99, no momentum) with the CartPole-v1 preset's sizes and rates (A2C's, lag 2)."""

    n_envs: int = static(8)
    """Parallel environments per seed (the actors)."""
    n_steps: int = static(8)
    """Steps collected from each environment per update (the unroll length T)."""
    policy_lag: int = static(2)
    """Updates between the behaviour policy that acts and the learner: act samples with the parameters of
    policy_lag updates ago (0: on-policy)."""
    correction: bool = static(True)
    """Correct for the lag with V-trace (True), or ignore the importance ratios (False: lambda-return targets
    and GAE advantages on the lagged data)."""
    hidden_sizes: tuple[int, ...] = static((64, 64))
    """Hidden layer sizes of the actor and critic MLPs."""
    activation: str = static("tanh")
    """Hidden activation: tanh, relu, elu or gelu."""
    shared_network: bool = static(False)
    """One torso for actor and critic (True, as in the paper's networks) or two separate ones (False)."""
    optimizer: str = static("rmsprop")
    """'rmsprop' (as in the paper: decay rms_decay, no momentum) or 'adam'."""
    normalize_obs: bool = static(False)
    """Normalise observations with running statistics kept in the agent state (and in the policy ring)."""
    anneal_lr: bool = static(False)
    """Decay the learning rate linearly to 0 over the run (as in the paper)."""

    learning_rate: float = 7e-4
    """Step size (initial value when annealed)."""
    gamma: float = 0.99
    """Discount factor."""
    vtrace_lambda: float = 1.0
    """V-trace's lambda: the traces are c_t = lambda min(c_bar, rho_t); 1 is the paper's eq. 1."""
    rho_bar: float = 1.0
    """Truncation level of the importance ratios in the TD errors and the policy gradient (rho-bar)."""
    c_bar: float = 1.0
    """Truncation level of the importance ratios in the traces (c-bar)."""
    ent_coef: float = 0.0
    """Weight of the entropy bonus."""
    vf_coef: float = 0.5
    """Weight of the value loss (which is 1/2 the squared error; the paper's baseline cost 0.5)."""
    max_grad_norm: float = 0.5
    """Global-norm gradient clipping threshold."""
    opt_eps: float = 1e-5
    """Epsilon of RMSprop / Adam."""
    rms_decay: float = 0.99
    """RMSprop's decay of the squared-gradient average."""
    log_std_init: float = 0.0
    """Initial log standard deviation of the Gaussian policy (continuous actions)."""
    reward_scale: float = 1.0
    """Rewards are multiplied by this before the targets are computed (the critic learns scaled values)."""

    def __post_init__(self):
        self.check_policy()  # layer_norm, weight_decay, std, temperature (nets.mlp.PolicyConfig)
        check(self, "n_envs", lambda v: v >= 1, "use at least one environment")
        check(self, "n_steps", lambda v: v >= 1, "collect at least one step per environment")
        check(self, "policy_lag", lambda v: v >= 0, "the lag is a number of updates, 0 or more")
        check(self, "activation", lambda v: v in ("tanh", "relu", "elu", "gelu"), "choose tanh, relu, elu or gelu")
        check(self, "hidden_sizes", lambda v: all(h >= 1 for h in v), "layer sizes must be positive")
        check(self, "optimizer", lambda v: v in ("rmsprop", "adam"), "choose 'rmsprop' or 'adam'")
        check(self, "learning_rate", lambda v: v > 0, "the learning rate must be positive")
        check(self, "gamma", lambda v: 0 <= v <= 1, "gamma must lie in [0, 1]")
        check(self, "vtrace_lambda", lambda v: 0 <= v <= 1, "lambda must lie in [0, 1]")
        check(self, "rho_bar", lambda v: v > 0, "the truncation level must be positive (e.g. 1.0)")
        check(self, "c_bar", lambda v: v > 0, "the truncation level must be positive (e.g. 1.0)")
        check(self, "max_grad_norm", lambda v: v > 0, "the clipping threshold must be positive")
        check(self, "opt_eps", lambda v: v > 0, "epsilon must be positive")
        check(self, "rms_decay", lambda v: 0 <= v < 1, "the decay must lie in [0, 1)")
        check(self, "reward_scale", lambda v: v > 0, "the reward scale must be positive")


#: Per-environment defaults (docs/algorithms/impala.md, "Presets"): the class defaults with lambda 0.95 for
#: CartPole-v1, A2C's Pendulum-v1 preset (lambda for GAE's) for Pendulum-v1, both with a lag of 2 updates. Each
#: solves seeds 0-19 under the AVX2 pin and with XLA forced to AVX (benchmarks/ROBUSTNESS.md).
PRESETS: dict[str, dict] = {
    "CartPole-v1": dict(n_envs=8, n_steps=8, policy_lag=2, learning_rate=7e-4, ent_coef=0.0, vtrace_lambda=0.95),
    "Pendulum-v1": dict(
        n_envs=8,
        n_steps=8,
        gamma=0.9,
        vtrace_lambda=0.9,
        ent_coef=0.0,
        vf_coef=0.4,
        learning_rate=7e-4,
        anneal_lr=True,
        normalize_obs=True,
        reward_scale=0.1,
    ),
}
#: Default budget (env steps per seed) for an env, when the user gives none.
DEFAULT_STEPS: dict[str, int] = {"CartPole-v1": 500_000, "Pendulum-v1": 2_000_000}


# ----------------------------------------------------------------------------- the policy ring
class PolicyRing(struct.PyTreeNode):
    """The learner's parameters and observation statistics before each of the last ``L = policy_lag`` updates,
    stacked ``[L, ...]``: update ``k`` writes its starting parameters :math:`\\theta_k` into slot ``k % L``, which
    held :math:`\\theta_{k-L}`. Before update ``k`` the slot ``k % L`` holds :math:`\\theta_{\\max(0, k-L)}`:
    the behaviour policy of the rollout that update ``k`` learns from (all slots start as :math:`\\theta_0`)."""

    params: dict
    obs_rms: RunningMeanStd

    @classmethod
    def create(cls, lag: int, params, obs_rms: RunningMeanStd) -> PolicyRing:
        stack = lambda x: jnp.repeat(x[None], lag, axis=0)  # noqa: E731 - L copies (L = 0: an empty ring)
        return cls(params=jax.tree.map(stack, params), obs_rms=jax.tree.map(stack, obs_rms))

    def oldest(self, update_count):
        """``(params, obs_rms)`` of ``L`` updates ago (of update 0 while fewer than ``L`` were made)."""
        slot = update_count % self.obs_rms.count.shape[0]
        return jax.tree.map(lambda x: x[slot], self.params), jax.tree.map(lambda x: x[slot], self.obs_rms)

    def push(self, update_count, params, obs_rms: RunningMeanStd) -> PolicyRing:
        """Overwrite the oldest entry (slot ``update_count % L``) with the parameters of update ``update_count``."""
        slot = update_count % self.obs_rms.count.shape[0]
        put = lambda ring, x: ring.at[slot].set(x)  # noqa: E731
        return PolicyRing(
            params=jax.tree.map(put, self.params, params), obs_rms=jax.tree.map(put, self.obs_rms, obs_rms)
        )


class AgentState(struct.PyTreeNode):
    """Everything that changes during training; saved whole in every checkpoint (the ring included)."""

    params: dict
    opt_state: optax.OptState
    obs_rms: RunningMeanStd
    behaviour: PolicyRing
    update_count: jax.Array  # updates so far: the position in the policy ring
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
    obs_rms = RunningMeanStd.create(obs_space.shape)
    return AgentState(
        params=params,
        opt_state=optimizer(config).init(params),
        obs_rms=obs_rms,
        behaviour=PolicyRing.create(config.policy_lag, params, obs_rms),
        update_count=jnp.zeros((), jnp.int32),
        env_steps=jnp.zeros((), jnp.int32),
        total_steps=jnp.asarray(total_steps, jnp.int32),
    )


def _preprocess(config: Config, obs_rms: RunningMeanStd, obs):
    obs = obs_rms.normalize(obs) if config.normalize_obs else obs
    return network_input(obs, obs_rms.mean.shape, config.torso)


def act(config: Config, action_space, state: AgentState, obs, key, deterministic: bool = False):
    """``(action, log_prob, value)`` for ``obs [B, ...]``.

    Sampling (``deterministic=False``: the training rollouts) uses the **behaviour** policy, the parameters of
    ``policy_lag`` updates ago, and returns its :math:`\\log\\mu(a|s)`. The mode (``deterministic=True``: the
    evaluation) is the current learner's."""
    if deterministic or config.policy_lag == 0:
        params, obs_rms = state.params, state.obs_rms
    else:
        params, obs_rms = state.behaviour.oldest(state.update_count)
    dist, value = network(config, action_space).apply(params, _preprocess(config, obs_rms, obs))
    action = dist.mode() if deterministic else dist.sample(key)
    return action, dist.log_prob(action), value


# ----------------------------------------------------------------------------- the loss
def impala_loss(params, net, config: Config, obs, next_obs, batch: Transition, rewards):
    r"""IMPALA's loss on a rollout ``[T, B]`` (Espeholt et al. 2018, sec. 4.2):
    :math:`-\hat{\mathbb E}[\operatorname{sg}(A^{pg})\log\pi]
    + c_v\,\tfrac12\hat{\mathbb E}[(V - \operatorname{sg}(v))^2] - c_e\,\hat{\mathbb E}[\mathcal H]`.

    ``obs``, ``next_obs``: ``[T, B, features]`` (preprocessed with the learner's statistics). The targets
    :math:`v_t` and advantages :math:`A^{pg}_t` are V-trace's (``core.returns.vtrace``) with the current
    critic's values and the ratios of the current policy to the behaviour policy that acted
    (``batch.log_prob``); both are constants of the gradient. Returns ``(loss, aux)``.
    """
    dist, values = net.apply(params, obs)  # [T, B]
    next_values = net.apply(params, next_obs, method=net.value)
    log_pi = dist.log_prob(batch.action)
    log_rho = jax.lax.stop_gradient(log_pi) - batch.log_prob
    used = log_rho if config.correction else jnp.zeros_like(log_rho)
    sg = jax.lax.stop_gradient
    vt = vtrace(
        rewards,
        sg(values),
        sg(next_values),
        batch.terminated,
        batch.truncated,
        used,
        config.gamma,
        config.vtrace_lambda,
        config.rho_bar,
        config.c_bar,
    )
    pg_loss = -jnp.mean(sg(vt.pg_advantages) * log_pi)
    v_loss = losses.value_loss(values, sg(vt.targets))
    entropy = jnp.mean(dist.entropy())
    total = pg_loss + config.vf_coef * v_loss - config.ent_coef * entropy
    return total, dict(
        policy=pg_loss,
        value=v_loss,
        entropy=entropy,
        log_rho=log_rho,
        values=values,
        targets=vt.targets,
        pg_advantages=vt.pg_advantages,
    )


# ----------------------------------------------------------------------------- update
def update(config: Config, action_space, state: AgentState, batch: Transition, key):
    """One IMPALA update on a rollout ``batch [T, B]`` collected by the behaviour policy: V-trace with the
    current parameters, one gradient step, and the starting parameters pushed into the policy ring.

    ``key`` is unused (no sampling in the update); it is part of the algorithm interface."""
    del key
    net = network(config, action_space)
    obs = _preprocess(config, state.obs_rms, batch.obs)
    next_obs = _preprocess(config, state.obs_rms, batch.next_obs)
    rewards = batch.reward * config.reward_scale
    lr = config.learning_rate * (optim.linear_decay(state.env_steps, state.total_steps) if config.anneal_lr else 1.0)
    (_, aux), grads = jax.value_and_grad(impala_loss, has_aux=True)(
        state.params, net, config, obs, next_obs, batch, rewards
    )
    params, opt_state = optim.apply_gradients(optimizer(config), state.params, state.opt_state, grads, lr)
    obs_rms = state.obs_rms.update(batch.obs) if config.normalize_obs else state.obs_rms
    behaviour = state.behaviour
    if config.policy_lag > 0:
        behaviour = behaviour.push(state.update_count, state.params, state.obs_rms)
    new_state = state.replace(
        params=params,
        opt_state=opt_state,
        obs_rms=obs_rms,
        behaviour=behaviour,
        update_count=state.update_count + 1,
        env_steps=state.env_steps + batch.reward.size,
    )

    ratio = jnp.exp(aux["log_rho"])  # of the data, whether or not the correction uses it
    metrics = {
        "loss/policy": aux["policy"],
        "loss/value": aux["value"],
        "loss/entropy": aux["entropy"],
        "grad/norm": losses.global_norm(grads),
        "vtrace/rho_mean": jnp.mean(ratio),
        "vtrace/rho_clipped_fraction": jnp.mean((ratio > config.rho_bar).astype(jnp.float32)),
        "vtrace/c_clipped_fraction": jnp.mean((ratio > config.c_bar).astype(jnp.float32)),
        "vtrace/approx_kl": jnp.mean((ratio - 1.0) - aux["log_rho"]),
        "policy/lag": jnp.minimum(state.update_count, config.policy_lag).astype(jnp.float32),
        "value/explained_variance": losses.explained_variance(aux["values"], aux["targets"]),
        "value/mean": jnp.mean(aux["values"]),
        "opt/learning_rate": lr,
        "adv/mean_abs": jnp.mean(jnp.abs(aux["pg_advantages"])),
    }
    return new_state, metrics


def policy_params(state: AgentState):
    """What ``params_digest`` hashes: the learner's network parameters and normalisation statistics."""
    return {"params": state.params, "obs_rms": state.obs_rms}
