r"""Importance-sampled off-policy policy gradient (``is-pg``): reuse the last few rollouts.

The agent keeps the last ``buffer_size`` rollouts in its state, each with the log-probabilities
of the policy that collected it (the *behaviour* policy :math:`\mu`, an older snapshot of
:math:`\pi`). Every update appends the new rollout and takes ``n_epochs`` gradient steps on all
stored rollouts, each step reweighted by importance ratios
:math:`\rho_k = \pi_\theta(a_k|s_k)/\mu(a_k|s_k)`:

.. math::
    \nabla J(\theta) \approx \frac1N\sum_{\text{buffer}} w_t\,\hat A_t\,\nabla_\theta\log\pi_\theta(a_t|s_t)

with the weight :math:`w_t` chosen by ``is_mode`` (see ``core.importance.importance_weights``):

* ``full`` — the slides' product over the whole (observed part of the) episode,
  :math:`w_t = \prod_{k} \rho_k` (lecture *Actor Critic I*, ``shared/seeds/000_…``, slides
  "Off-Policy Gradient": :math:`\mathbb E[G(\tau)\mid\theta_\pi] = \mathbb E[G(\tau)\prod_t
  \pi(a_t|s_t;\theta_\pi)/\pi(a_t|s_t;\theta_\beta)\mid\theta_\beta]`);
* ``per-decision`` — only the ratios up to the decision, :math:`w_t = \prod_{k\le t}\rho_k`
  (Precup, Sutton & Singh 2000): later actions cannot affect earlier rewards;
* ``truncated`` — per-decision with every factor truncated at :math:`\bar\rho` (``is_clip``),
  :math:`w_t = \prod_{k\le t}\min(\bar\rho, \rho_k)`, the traces :math:`c_i` of Retrace
  (Munos et al. 2016) and V-trace (lecture *Policy Gradient Methods*, ``shared/seeds/002_…``,
  slide "IMPALA V-Trace").

The lectures' point — "off-policy gradient does not work in most cases" because
:math:`\prod_t \rho_t \to 0, \infty` — is what the logged weight statistics (``is/ess``,
``is/max_ratio``, ``is/mean_log_weight``, ``is/frac_zero``) show as the behaviour policy ages.

Read top to bottom: ``Config`` -> buffer -> ``AgentState`` -> ``init`` -> ``act`` -> the loss
-> ``update``. The weights and their diagnostics are ``advantage/core/importance.py``. Every
detail is in ``docs/algorithms/is_pg.md``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import struct

from advantage.config import check, static
from advantage.core import losses, optim
from advantage.core.importance import IS_MODES, importance_weights, weight_statistics
from advantage.core.returns import gae
from advantage.envs.spaces import action_dim, action_factors, is_discrete
from advantage.nets.mlp import ActorCritic, PolicyConfig, check_torso, init_input, network_input
from advantage.types import Transition

NAME = "is-pg"
SEARCH = False  # trained by updates (advantage.training.stepper.UpdateStepper)
NAN_METRICS: tuple[str, ...] = ()  # no metric is NaN by design


@struct.dataclass
class Config(PolicyConfig):
    """Importance-sampled off-policy PG hyperparameters (defaults: CartPole-v1, tuned here; ``PRESETS`` adds two)."""

    n_envs: int = static(8)
    """Parallel environments per seed."""
    n_steps: int = static(32)
    """Steps collected from each environment per update (rollout length T)."""
    buffer_size: int = static(4)
    """Rollouts kept and reused, the newest included (1: on-policy, no reuse)."""
    n_epochs: int = static(4)
    """Gradient steps per update, each on all stored rollouts (weights recomputed at every step)."""
    is_mode: str = static("truncated")
    """Importance weight: full (product over the episode), per-decision (product up to t) or truncated
    (per-decision with every ratio capped at is_clip)."""
    hidden_sizes: tuple[int, ...] = static((64, 64))
    """Hidden layer sizes of the actor and critic MLPs."""
    activation: str = static("tanh")
    """Hidden activation: tanh, relu, elu or gelu."""
    normalize_advantage: bool = static(True)
    """Normalise advantages to zero mean and unit std over the buffer (valid samples)."""
    anneal_lr: bool = static(True)
    """Decay the learning rate linearly to 0 over the run."""

    is_clip: float = 1.0
    """rho-bar: the truncation level of each ratio in is_mode=truncated."""
    learning_rate: float = 3e-3
    """Adam step size (initial value when annealed)."""
    gamma: float = 0.98
    """Discount factor."""
    gae_lambda: float = 0.8
    """GAE lambda of the advantages (computed with the current critic on every stored rollout)."""
    ent_coef: float = 0.0
    """Weight of the entropy bonus."""
    vf_coef: float = 0.5
    """Weight of the value loss (fitted on the newest rollout only)."""
    max_grad_norm: float = 0.5
    """Global-norm gradient clipping threshold."""
    log_std_init: float = 0.0
    """Initial log standard deviation of the Gaussian policy (continuous actions)."""
    adam_eps: float = 1e-5
    """Adam epsilon."""

    def __post_init__(self):
        self.check_policy()  # layer_norm, weight_decay, std, temperature (nets.mlp.PolicyConfig)
        check(self, "n_envs", lambda v: v >= 1, "use at least one environment")
        check(self, "n_steps", lambda v: v >= 1, "collect at least one step per environment")
        check(self, "buffer_size", lambda v: v >= 1, "keep at least the newest rollout")
        check(self, "n_epochs", lambda v: v >= 1, "take at least one gradient step")
        check(self, "is_mode", lambda v: v in IS_MODES, f"choose one of {', '.join(IS_MODES)}")
        check_torso(self)
        check(self, "is_clip", lambda v: v > 0, "the truncation level must be positive (e.g. 1.0)")
        check(self, "learning_rate", lambda v: v > 0, "the learning rate must be positive")
        check(self, "gamma", lambda v: 0 <= v <= 1, "gamma must lie in [0, 1]")
        check(self, "gae_lambda", lambda v: 0 <= v <= 1, "gae_lambda must lie in [0, 1]")
        check(self, "max_grad_norm", lambda v: v > 0, "the clipping threshold must be positive")


#: Per-environment defaults (measured in docs/algorithms/is_pg.md). CartPole-v1: the class defaults plus an entropy
#: bonus (a saturated softmax is absorbing) and LayerNorm (without it the critic's tanh units can saturate on returns
#: of up to 50, and the critic then predicts one value everywhere for the rest of the run): every one of seeds 0-19
#: at 500 under XLA's AVX2, AVX and SSE4_2.
PRESETS: dict[str, dict] = {"CartPole-v1": {"ent_coef": 0.05, "layer_norm": True}}
#: Default budget (env steps per seed) for an env, when the user gives none.
DEFAULT_STEPS: dict[str, int] = {"CartPole-v1": 100_000}


# ----------------------------------------------------------------------------- the buffer
class RolloutBuffer(struct.PyTreeNode):
    """The last ``K = buffer_size`` rollouts, ``[K, T, B, ...]``, written in a ring (slot = update % K).

    ``log_prob`` is the behaviour policy's :math:`\\log\\mu(a_t|s_t)`, stored when acting.
    ``valid`` is 0 for empty slots and for the padding of a shorter final rollout.
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    next_obs: jax.Array
    log_prob: jax.Array
    valid: jax.Array

    @classmethod
    def create(cls, k: int, t: int, b: int, obs_shape, act_shape, act_dtype) -> RolloutBuffer:
        z = lambda *s, dtype=jnp.float32: jnp.zeros((k, t, b) + tuple(s), dtype)  # noqa: E731
        return cls(
            obs=z(*obs_shape),
            action=z(*act_shape, dtype=act_dtype),
            reward=z(),
            terminated=z(dtype=bool),
            truncated=z(dtype=bool),
            next_obs=z(*obs_shape),
            log_prob=z(),
            valid=z(),
        )

    def insert(self, slot, batch: Transition) -> RolloutBuffer:
        """Write a rollout ``[T', B]`` into ``slot``. A shorter one (the final rollout, ``T' < T``) is
        padded with invalid steps, and its last real step is marked truncated, so that returns and
        importance products stop there exactly as at a rollout end (bootstrap from ``V(next_obs)``)."""
        t_full, t = self.reward.shape[1], batch.reward.shape[0]
        pad = t_full - t

        def fill(x, v=0):
            return jnp.concatenate([x, jnp.full((pad,) + x.shape[1:], v, x.dtype)]) if pad else x

        truncated = batch.truncated.astype(bool)
        if pad:
            truncated = truncated.at[-1].set(True)
        row = dict(
            obs=fill(batch.obs),
            action=fill(batch.action),
            reward=fill(batch.reward),
            terminated=fill(batch.terminated.astype(bool), True),
            truncated=fill(truncated, True),
            next_obs=fill(batch.next_obs),
            log_prob=fill(batch.log_prob),
            valid=fill(jnp.ones(batch.reward.shape, jnp.float32)),
        )
        return self.replace(
            **{k: getattr(self, k).at[slot].set(v.astype(getattr(self, k).dtype)) for k, v in row.items()}
        )


class AgentState(struct.PyTreeNode):
    """Everything that changes during training; saved whole in every checkpoint (buffer included)."""

    params: dict
    opt_state: optax.OptState
    buffer: RolloutBuffer
    update_count: jax.Array  # updates done so far: the buffer's next slot is update_count % buffer_size
    env_steps: jax.Array  # env steps of the batches updated on so far: the schedule's position
    total_steps: jax.Array  # env steps of the run (per seed): the schedule's horizon


class BufferBatch(struct.PyTreeNode):
    """What the loss reads from the whole buffer, ``[K, T, B, ...]``."""

    obs: jax.Array  # flattened observations
    action: jax.Array
    behaviour_logp: jax.Array  # log mu(a|s), the behaviour policy's, stored when acting
    done: jax.Array  # terminated or truncated after the step
    valid: jax.Array  # 1 for real steps, 0 for empty slots and padding
    adv: jax.Array  # GAE advantages (normalised if configured) with the current critic
    ret: jax.Array  # value targets: advantages + V(s)
    newest: jax.Array  # 1 on the newest rollout (the value loss's samples)
    oldest: jax.Array  # 1 on the oldest stored rollout (for is/ess_oldest)


def network(config: Config, action_space) -> ActorCritic:
    return ActorCritic(
        action_dim=action_dim(action_space),
        discrete=is_discrete(action_space),
        factors=action_factors(action_space),
        hidden_sizes=config.hidden_sizes,
        activation=config.activation,
        shared=False,
        log_std_init=config.log_std_init,
        layer_norm=config.layer_norm,
        std=config.std,
        temperature=config.temperature,
        torso=config.torso,
    )


def optimizer(config: Config) -> optax.GradientTransformation:
    """Global-norm clipping, then Adam's scaling; the (annealed) step size is applied in ``update``."""
    return optim.optimizer(
        "adam", max_grad_norm=config.max_grad_norm, eps=config.adam_eps, weight_decay=config.weight_decay
    )


def init(key, obs_space, action_space, config: Config, total_steps: int) -> AgentState:
    net = network(config, action_space)
    params = net.init(key, init_input(config, obs_space))
    act_dtype = jnp.int32 if is_discrete(action_space) else jnp.float32
    act_shape = tuple(action_space.shape)  # () for Discrete, (k,) for MultiDiscrete
    return AgentState(
        params=params,
        opt_state=optimizer(config).init(params),
        buffer=RolloutBuffer.create(
            config.buffer_size, config.n_steps, config.n_envs, obs_space.shape, act_shape, act_dtype
        ),
        update_count=jnp.zeros((), jnp.int32),
        env_steps=jnp.zeros((), jnp.int32),
        total_steps=jnp.asarray(total_steps, jnp.int32),
    )


def act(config: Config, action_space, state: AgentState, obs, key, deterministic: bool = False):
    """Sample (or take the mode of) ``pi(.|obs)``: ``(action, log_prob, value)``; ``log_prob`` becomes
    the behaviour log-probability ``log mu`` of the stored rollout."""
    obs = network_input(obs, state.buffer.obs.shape[3:], config.torso)
    dist, value = network(config, action_space).apply(state.params, obs)
    action = dist.mode() if deterministic else dist.sample(key)
    return action, dist.log_prob(action), value


# ----------------------------------------------------------------------------- the loss
def loss_fn(params, config: Config, action_space, data: BufferBatch):
    r"""Off-policy PG loss on the whole buffer ``[K, T, B]``, plus value loss and entropy bonus.

    .. math::
        \mathcal L = -\frac1N\sum \operatorname{sg}(w_t)\,\hat A_t\log\pi_\theta(a_t|s_t)
            + c_v\,\tfrac12\overline{(V_\phi(s_t) - \hat R_t)^2}^{\,\text{newest}} - c_e\,\bar H[\pi_\theta]

    ``sg`` = stop-gradient: the weights (computed from the current ``theta``,
    ``core.importance.importance_weights``) scale the score function, so the gradient is
    :math:`-\frac1N\sum w_t\hat A_t\nabla\log\pi_\theta(a_t|s_t)`. Sums run over valid samples; the
    value loss over the newest rollout only (on-policy targets).
    """
    net = network(config, action_space)
    dist, values = net.apply(params, data.obs)  # [K, T, B]
    log_pi = dist.log_prob(data.action)
    log_rho = jax.lax.stop_gradient(log_pi) - data.behaviour_logp
    w, log_w = jax.vmap(lambda lr, d: importance_weights(lr, d, config.is_mode, config.is_clip))(log_rho, data.done)
    pg_loss = losses.policy_gradient_loss(log_pi, w * data.adv, data.valid)
    v_loss = losses.value_loss(values, data.ret, data.newest * data.valid)
    entropy = losses.masked_mean(dist.entropy(), data.valid)
    total = pg_loss + config.vf_coef * v_loss - config.ent_coef * entropy
    stats = weight_statistics(w, log_w, log_rho, data.valid)
    stats["ess_oldest"] = weight_statistics(w, log_w, log_rho, data.oldest * data.valid)["ess"]
    return total, dict(policy=pg_loss, value=v_loss, entropy=entropy, **stats)


def update(config: Config, action_space, state: AgentState, batch: Transition, key):
    """Store the new rollout, compute advantages with the current critic on every stored rollout,
    then ``n_epochs`` full-buffer gradient steps with importance weights recomputed at each step.

    ``key`` is unused (no minibatch sampling); it is part of the algorithm interface.
    """
    del key
    k = config.buffer_size
    slot = state.update_count % k
    buf = state.buffer.insert(slot, batch)
    net = network(config, action_space)
    obs_shape = buf.obs.shape[3:]
    obs, next_obs = (network_input(o, obs_shape, config.torso) for o in (buf.obs, buf.next_obs))

    values = net.apply(state.params, obs, method=net.value)  # [K, T, B], current critic
    next_values = net.apply(state.params, next_obs, method=net.value)
    advantages = jax.vmap(gae, in_axes=(0, 0, 0, 0, 0, None, None))(
        buf.reward, values, next_values, buf.terminated, buf.truncated, config.gamma, config.gae_lambda
    )
    returns = advantages + values
    ages = (slot - jnp.arange(k)) % k  # 0 = newest rollout, k-1 = oldest slot
    filled = jnp.sum(jnp.max(buf.valid, axis=(1, 2)) > 0)
    rollouts = lambda sel: jnp.broadcast_to(sel[:, None, None], buf.valid.shape).astype(jnp.float32)  # noqa: E731
    data = BufferBatch(
        obs=obs,
        action=buf.action,
        behaviour_logp=buf.log_prob,
        done=jnp.logical_or(buf.terminated, buf.truncated),
        valid=buf.valid,
        adv=losses.normalize(advantages, buf.valid) if config.normalize_advantage else advantages,
        ret=returns,
        newest=rollouts(ages == 0),
        oldest=rollouts(ages == jnp.minimum(filled, k) - 1),
    )

    lr = config.learning_rate * (optim.linear_decay(state.env_steps, state.total_steps) if config.anneal_lr else 1.0)
    opt = optimizer(config)
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def step(carry, _):
        params, opt_state = carry
        (_, aux), grads = grad_fn(params, config, action_space, data)
        params, opt_state = optim.apply_gradients(opt, params, opt_state, grads, lr)
        return (params, opt_state), dict(aux, grad_norm=losses.global_norm(grads))

    (params, opt_state), m = jax.lax.scan(step, (state.params, state.opt_state), None, length=config.n_epochs)
    first = jax.tree.map(lambda x: x[0], m)  # the weights as this update found them
    new_state = state.replace(
        params=params,
        opt_state=opt_state,
        buffer=buf,
        update_count=state.update_count + 1,
        env_steps=state.env_steps + batch.reward.size,
    )
    newest = data.newest * buf.valid
    metrics = {
        "loss/policy": jnp.mean(m["policy"]),
        "loss/value": jnp.mean(m["value"]),
        "loss/entropy": jnp.mean(m["entropy"]),
        "is/ess": first["ess"],
        "is/ess_oldest": first["ess_oldest"],
        "is/max_ratio": first["max_ratio"],
        "is/mean_log_weight": first["mean_log_weight"],
        "is/frac_zero": first["frac_zero"],
        "is/buffer_rollouts": filled.astype(jnp.float32),
        "value/explained_variance": losses.explained_variance(values, returns, newest > 0),
        "value/mean": losses.masked_mean(values, newest),
        "grad/norm": jnp.mean(m["grad_norm"]),
        "opt/learning_rate": lr,
        "adv/mean_abs": losses.masked_mean(jnp.abs(advantages), buf.valid),
    }
    return new_state, metrics


def policy_params(state: AgentState):
    """What ``params_digest`` hashes: the network parameters."""
    return {"params": state.params}
