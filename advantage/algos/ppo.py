"""Proximal Policy Optimization (Schulman et al. 2017): clipped objective, (adaptive) KL penalty, or both.

``objective`` picks the policy loss: ``clip`` (paper eq. 7, the default), ``kl`` (the
KL penalty of sec. 4, eq. 8, with the adaptive coefficient or, ``kl_beta_adaptive=False``, a
fixed one) or ``clip-kl`` (clipping plus the penalty); every
variant adds the entropy bonus, and ``target_kl`` optionally stops an update's epochs early.

Read top to bottom: ``Config`` -> ``AgentState`` -> ``init`` -> ``act`` -> the loss
-> ``update``. The same ``act`` and ``update`` serve both back ends: the JAX-native
driver calls them inside one compiled ``lax.scan``; the Gymnasium driver calls them
as jitted functions between host env steps. Every implementation detail is listed
in ``docs/algorithms/ppo.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from advantage.config import check, check_minibatches, static
from advantage.core import losses, optim
from advantage.core.normalization import RunningMeanStd
from advantage.core.returns import gae, td_errors
from advantage.envs.spaces import action_dim, action_factors, is_discrete
from advantage.nets.mlp import ActorCritic, PolicyConfig, check_torso, init_input, network_input
from advantage.types import Transition

NAME = "ppo"
SEARCH = False  # trained by updates (advantage.training.stepper.UpdateStepper)
NAN_METRICS: tuple[str, ...] = ()  # no metric is NaN by design


@struct.dataclass
class Config(PolicyConfig):
    """PPO hyperparameters. Defaults are the RL Zoo's tuned CartPole-v1 settings."""

    n_envs: int = static(8)
    """Parallel environments per seed."""
    n_steps: int = static(32)
    """Steps collected from each environment per update (rollout length T)."""
    n_epochs: int = static(20)
    """Passes over each rollout."""
    n_minibatches: int = static(1)
    """Minibatches per epoch; the rollout (n_envs * n_steps samples) is split evenly."""
    hidden_sizes: tuple[int, ...] = static((64, 64))
    """Hidden layer sizes of the actor and critic MLPs."""
    activation: str = static("tanh")
    """Hidden activation: tanh, relu, elu or gelu."""
    shared_network: bool = static(False)
    """One torso for actor and critic (True) or two separate ones (False)."""
    normalize_obs: bool = static(False)
    """Normalise observations with running statistics kept in the agent state."""
    normalize_advantage: bool = static(True)
    """Normalise advantages to zero mean and unit std in each minibatch."""
    anneal_lr: bool = static(True)
    """Decay the learning rate linearly to 0 over the run."""
    anneal_clip: bool = static(True)
    """Decay the clip range linearly to 0 over the run (RL Zoo's ``lin_0.2``)."""
    clip_value: bool = static(False)
    """Clip the value update to +-clip_eps around the old value (baselines' value clipping)."""
    objective: str = static("clip")
    """Policy objective: clip (L^CLIP), kl (ratio * A minus a KL penalty) or clip-kl (both)."""
    kl_beta_adaptive: bool = static(True)
    """KL penalty (objectives kl, clip-kl): adapt beta after every update (sec. 4's rule), or keep it at kl_beta."""

    learning_rate: float = 1e-3
    """Adam step size (initial value when annealed)."""
    gamma: float = 0.98
    """Discount factor."""
    gae_lambda: float = 0.8
    """GAE lambda: 0 is the one-step TD error, 1 the Monte-Carlo advantage."""
    clip_eps: float = 0.2
    """Clip range epsilon of the probability ratio (initial value when annealed)."""
    ent_coef: float = 0.0
    """Weight of the entropy bonus."""
    vf_coef: float = 0.5
    """Weight of the value loss."""
    max_grad_norm: float = 0.5
    """Global-norm gradient clipping threshold."""
    log_std_init: float = 0.0
    """Initial log standard deviation of the Gaussian policy (continuous actions)."""
    adam_eps: float = 1e-5
    """Adam epsilon."""
    kl_beta: float = 1.0
    """KL-penalty coefficient beta (objectives kl and clip-kl): its initial value, or its value throughout with
    kl_beta_adaptive off."""
    kl_target: float = 0.01
    """Target KL d_targ of the adaptive penalty: beta halves when KL < d_targ/1.5 and doubles when KL > 1.5 d_targ."""
    target_kl: float | None = None
    """Early stopping: skip the rest of an update once a minibatch's approx KL exceeds 1.5 * target_kl (None: off)."""
    reward_scale: float = 1.0
    """Rewards are multiplied by this before returns are computed (the critic learns scaled values)."""

    def __post_init__(self):
        self.check_policy()  # layer_norm, weight_decay, std, temperature (nets.mlp.PolicyConfig)
        check(self, "n_envs", lambda v: v >= 1, "use at least one environment")
        check(self, "n_steps", lambda v: v >= 1, "collect at least one step per environment")
        check(self, "n_epochs", lambda v: v >= 1, "run at least one epoch")
        check(self, "n_minibatches", lambda v: v >= 1, "use at least one minibatch")
        check_torso(self)
        check(self, "learning_rate", lambda v: v > 0, "the learning rate must be positive")
        check(self, "gamma", lambda v: 0 <= v <= 1, "gamma must lie in [0, 1]")
        check(self, "gae_lambda", lambda v: 0 <= v <= 1, "gae_lambda must lie in [0, 1]")
        check(self, "clip_eps", lambda v: v > 0, "the clip range must be positive")
        check(self, "max_grad_norm", lambda v: v > 0, "the clipping threshold must be positive")
        check(self, "objective", lambda v: v in OBJECTIVES, f"choose one of {', '.join(OBJECTIVES)}")
        check(self, "kl_beta", lambda v: v > 0, "the initial KL coefficient must be positive (the paper uses 1)")
        check(self, "kl_target", lambda v: v > 0, "the target KL must be positive (the paper's best: 0.01)")
        check(self, "reward_scale", lambda v: v > 0, "the reward scale must be positive")
        if self.target_kl is not None:
            check(self, "target_kl", lambda v: v > 0, "use a positive KL (e.g. 0.01), or None for no early stopping")
        check_minibatches(self)

    @property
    def batch_size(self) -> int:
        """Samples per update: n_envs * n_steps."""
        return self.n_envs * self.n_steps

    @property
    def uses_kl_penalty(self) -> bool:
        return self.objective in ("kl", "clip-kl")


#: The policy objectives ``Config.objective`` accepts.
OBJECTIVES = ("clip", "kl", "clip-kl")

#: Per-environment defaults. CartPole-v1 is the RL Zoo's ``ppo.yml`` entry with an entropy bonus of 0.01.
#: Pendulum-v1 follows the Zoo's entry without gSDE (plain Gaussian exploration), so it adds observation
#: normalisation, an entropy bonus of 0.02 and learning-rate annealing, and runs 300k steps instead of 100k
#: (docs/algorithms/ppo.md).
PRESETS: dict[str, dict] = {
    "CartPole-v1": dict(
        n_envs=8,
        n_steps=32,
        n_epochs=20,
        n_minibatches=1,
        gamma=0.98,
        gae_lambda=0.8,
        learning_rate=1e-3,
        clip_eps=0.2,
        ent_coef=0.01,
    ),
    "Pendulum-v1": dict(
        n_envs=4,
        n_steps=1024,
        n_epochs=10,
        n_minibatches=64,
        gamma=0.9,
        gae_lambda=0.95,
        learning_rate=1e-3,
        clip_eps=0.2,
        ent_coef=0.02,
        anneal_lr=True,
        anneal_clip=False,
        normalize_obs=True,
    ),
    # Brax's inverted pendulum (`pip install "advantage[brax]"`): tried on seeds 0 and 1 only (evaluation returns
    # 726 and 686 of 1000 after 100k steps, from about 5 untrained; tests/test_brax.py), not a robust preset.
    "brax:inverted_pendulum": dict(
        n_envs=8,
        n_steps=256,
        n_epochs=10,
        n_minibatches=8,
        gamma=0.99,
        gae_lambda=0.95,
        learning_rate=3e-4,
        ent_coef=0.0,
        normalize_obs=True,
    ),
}
#: Default budget (env steps per seed) for an env, when the user gives none. CartPole-v1 runs 200k steps, twice
#: the Zoo's 100k: at 100k 1-3 seeds of 20 end below 475 (a deterministic policy that drifts off the track after
#: 150-450 steps, or a late collapse), depending on the CPU's rounding. At 200k without an entropy bonus one seed
#: in 20 still collapsed late on the Gymnasium path under XLA's AVX kernels (entropy 0.2, then returns of 160);
#: with the bonus of 0.01 every seed of 0-19 ends at 500 on both back ends under AVX2 and AVX
#: (benchmarks/ROBUSTNESS.md). Pendulum-v1 runs 300k steps with an entropy bonus of 0.02 and the learning rate
#: annealed: with the Zoo's values at 200k, 3 seeds of 20 ended between -316 and -620 (the policy's std
#: collapsed before it could swing up from every start), and with a bonus of 0.01 one (-341 under AVX); see
#: docs/algorithms/ppo.md.
DEFAULT_STEPS: dict[str, int] = {"CartPole-v1": 200_000, "Pendulum-v1": 300_000, "brax:inverted_pendulum": 100_000}


class AgentState(struct.PyTreeNode):
    """Everything that changes during training; saved whole in every checkpoint."""

    params: dict
    opt_state: optax.OptState
    obs_rms: RunningMeanStd
    env_steps: jax.Array  # env steps of the batches updated on so far: the schedules' position
    total_steps: jax.Array  # env steps of the run (per seed): the schedules' horizon
    kl_beta: jax.Array  # the KL-penalty coefficient (constant unless the objective has an adaptive penalty)


class Minibatch(struct.PyTreeNode):
    """One sample per row ``[N, ...]``, flattened from the rollout ``[T, B]``; a minibatch is a slice of it."""

    obs: jax.Array  # normalised (with the statistics used to act) and flattened observations
    action: jax.Array
    old_logp: jax.Array  # log pi_old(a|s), stored when acting
    old_value: jax.Array  # V_old(s), stored when acting
    adv: jax.Array  # GAE advantages
    ret: jax.Array  # value targets: adv + V_old(s)
    old_dist: Any = None  # pi_old(.|s), for the closed-form KL of the penalty objectives (else None)


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
    """Global-norm clipping, then Adam's scaling; the (annealed) step size is applied in ``update``."""
    return optim.optimizer(
        "adam", max_grad_norm=config.max_grad_norm, eps=config.adam_eps, weight_decay=config.weight_decay
    )


def init(key, obs_space, action_space, config: Config, total_steps: int) -> AgentState:
    net = network(config, action_space)
    params = net.init(key, init_input(config, obs_space))
    return AgentState(
        params=params,
        opt_state=optimizer(config).init(params),
        obs_rms=RunningMeanStd.create(obs_space.shape),
        env_steps=jnp.zeros((), jnp.int32),
        total_steps=jnp.asarray(total_steps, jnp.int32),
        kl_beta=jnp.asarray(config.kl_beta, jnp.float32),
    )


def _preprocess(config: Config, state: AgentState, obs):
    """Normalise (if configured) and flatten observations ``[..., *obs_shape] -> [..., obs_dim]``."""
    obs = state.obs_rms.normalize(obs) if config.normalize_obs else obs
    return network_input(obs, state.obs_rms.mean.shape, config.torso)


def act(config: Config, action_space, state: AgentState, obs, key, deterministic: bool = False):
    """Sample (or, deterministically, take the mode of) ``pi(.|obs)`` for a batch ``obs [B, ...]``.

    Returns ``(action, log_prob, value)``. Continuous actions are raw Gaussian samples;
    the caller clips them to [-1, 1] and rescales them to the env's bounds.
    """
    dist, value = network(config, action_space).apply(state.params, _preprocess(config, state, obs))
    action = dist.mode() if deterministic else dist.sample(key)
    return action, dist.log_prob(action), value


def schedule(config: Config, state: AgentState):
    """Linear annealing factor 1 -> 0 over the run's env steps, and the resulting (lr, clip_eps)."""
    frac = optim.linear_decay(state.env_steps, state.total_steps)
    lr = config.learning_rate * (frac if config.anneal_lr else 1.0)
    clip_eps = config.clip_eps * (frac if config.anneal_clip else 1.0)
    return lr, clip_eps


#: Bounds that keep the adaptive beta from underflowing to 0 or overflowing (0 * 2 would stay 0 forever).
KL_BETA_MIN, KL_BETA_MAX = 1e-6, 1e6


def adapt_kl_beta(beta, kl, kl_target):
    r"""The adaptive KL coefficient rule of the PPO paper, sec. 4, applied after each update.

    With :math:`d = \hat{\mathbb E}_t[\mathrm{KL}(\pi_{\theta_\text{old}}(\cdot|s_t)\,\|\,\pi_\theta(\cdot|s_t))]`
    measured after the update's epochs:

    * if :math:`d < d_\text{targ}/1.5`, :math:`\beta \leftarrow \beta/2`;
    * if :math:`d > 1.5\,d_\text{targ}`, :math:`\beta \leftarrow 2\beta`;
    * otherwise :math:`\beta` is unchanged.

    The result is kept in ``[KL_BETA_MIN, KL_BETA_MAX]``.
    """
    beta = jnp.where(kl < kl_target / 1.5, beta / 2.0, jnp.where(kl > 1.5 * kl_target, beta * 2.0, beta))
    return jnp.clip(beta, KL_BETA_MIN, KL_BETA_MAX)


def loss_fn(params, config: Config, action_space, mb: Minibatch, clip_eps, kl_beta=None):
    """PPO's total loss on one minibatch: ``L^pi + c_v L^V - c_e H[pi]`` (paper eq. 9).

    ``L^pi`` by ``config.objective``: ``clip`` -> ``L^CLIP`` (eq. 7); ``kl`` -> ``-E[r A] + beta KL``
    (eq. 8); ``clip-kl`` -> ``L^CLIP + beta KL``, with the KL in closed form per state from
    ``mb.old_dist``.
    """
    dist, values = network(config, action_space).apply(params, mb.obs)
    adv = losses.normalize(mb.adv) if config.normalize_advantage else mb.adv
    logp = dist.log_prob(mb.action)
    pg_loss, pg_metrics = losses.clipped_surrogate_loss(logp, mb.old_logp, adv, clip_eps)
    extra = {}
    if config.objective == "kl":
        pg_loss = losses.surrogate_loss(logp, mb.old_logp, adv)
    if config.uses_kl_penalty:
        kl = losses.mean_kl(mb.old_dist, dist)
        penalty = kl_beta * kl
        pg_loss = pg_loss + penalty
        extra = dict(kl_penalty=penalty, kl=kl)
    if config.clip_value:
        v_loss = losses.clipped_value_loss(values, mb.old_value, mb.ret, clip_eps)
    else:
        v_loss = losses.value_loss(values, mb.ret)
    entropy = jnp.mean(dist.entropy())
    total = pg_loss + config.vf_coef * v_loss - config.ent_coef * entropy
    return total, dict(policy=pg_loss, value=v_loss, entropy=entropy, **pg_metrics, **extra)


def update(config: Config, action_space, state: AgentState, batch: Transition, key):
    """One PPO update on a rollout ``batch [T, B]``: GAE, then epochs of minibatch steps.

    Observations are normalised with the statistics that were used to act, so that
    the probability ratio starts at exactly 1; the statistics then absorb the batch.
    With a KL-penalty objective, beta is adapted from the KL measured after the epochs (unless
    ``kl_beta_adaptive`` is off).
    With ``target_kl``, a flag carried through the epochs turns the remaining minibatch
    steps into no-ops once one minibatch's approx KL exceeds ``1.5 * target_kl``.
    """
    net = network(config, action_space)
    obs = _preprocess(config, state, batch.obs)  # [T, B, obs_dim]
    next_values = net.apply(state.params, _preprocess(config, state, batch.next_obs), method=net.value)
    rewards = batch.reward * config.reward_scale
    advantages = gae(
        rewards, batch.value, next_values, batch.terminated, batch.truncated, config.gamma, config.gae_lambda
    )
    returns = advantages + batch.value
    deltas = td_errors(rewards, batch.value, next_values, batch.terminated, config.gamma)

    n = batch.reward.size
    flat = lambda x: x.reshape((n,) + x.shape[2:])  # noqa: E731  [T, B, ...] -> [T * B, ...]
    old_dist = net.apply(state.params, obs)[0] if config.uses_kl_penalty else None
    data = Minibatch(
        obs=flat(obs),
        action=flat(batch.action),
        old_logp=flat(batch.log_prob),
        old_value=flat(batch.value),
        adv=flat(advantages),
        ret=flat(returns),
        old_dist=jax.tree.map(flat, old_dist),
    )
    lr, clip_eps = schedule(config, state)
    opt = optimizer(config)
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    early_stop = config.target_kl is not None

    def minibatch_step(carry, mb):  # mb: a Minibatch, one slice of data
        params, opt_state, stopped = carry
        (_, aux), grads = grad_fn(params, config, action_space, mb, clip_eps, state.kl_beta)
        new_params, new_opt_state = optim.apply_gradients(opt, params, opt_state, grads, lr)
        if early_stop:  # SB3's rule: this minibatch's approx KL (before its step) too large -> stop here
            stopped = jnp.logical_or(stopped, aux["approx_kl"] > 1.5 * config.target_kl)
            keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(stopped, b, a), new, old)  # noqa: E731
            new_params, new_opt_state = keep(new_params, params), keep(new_opt_state, opt_state)
        step_metrics = dict(aux, grad_norm=losses.global_norm(grads), done=1.0 - stopped.astype(jnp.float32))
        return (new_params, new_opt_state, stopped), step_metrics

    (params, opt_state, _), m = optim.minibatch_epochs(
        minibatch_step,
        (state.params, state.opt_state, jnp.bool_(False)),
        data,
        key,
        config.n_epochs,
        config.n_minibatches,
    )
    mean: Callable[..., jax.Array]
    vmax: Callable[..., jax.Array]
    if early_stop:  # statistics over the minibatch steps that were taken (the first one always is)
        done = m["done"]
        m = {k: jnp.where(done > 0, v, jnp.nan) for k, v in m.items()}
        mean, vmax = jnp.nanmean, jnp.nanmax
    else:
        mean, vmax = jnp.mean, jnp.max
    obs_rms = state.obs_rms.update(batch.obs) if config.normalize_obs else state.obs_rms
    kl_beta = state.kl_beta
    if config.uses_kl_penalty:  # d = mean KL(pi_old || pi_new) over the whole rollout, then the sec. 4 rule
        kl_after = losses.mean_kl(old_dist, net.apply(params, obs)[0])
        if config.kl_beta_adaptive:  # else beta stays kl_beta: the fixed-coefficient penalty
            kl_beta = adapt_kl_beta(state.kl_beta, kl_after, config.kl_target)
    new_state = state.replace(
        params=params, opt_state=opt_state, obs_rms=obs_rms, env_steps=state.env_steps + n, kl_beta=kl_beta
    )
    metrics = {
        "loss/policy": mean(m["policy"]),
        "loss/value": mean(m["value"]),
        "loss/entropy": mean(m["entropy"]),
        "loss/approx_kl": mean(m["approx_kl"]),
        "loss/approx_kl_max": vmax(m["approx_kl"]),
        "loss/clip_fraction": mean(m["clip_fraction"]),
        "loss/ratio_max": vmax(m["ratio_max"]),
        "value/explained_variance": losses.explained_variance(batch.value, returns),
        "value/td_error": jnp.mean(jnp.abs(deltas)),
        "value/max": jnp.max(batch.value),
        "value/mean": jnp.mean(batch.value),
        "grad/norm": mean(m["grad_norm"]),
        "opt/learning_rate": lr,
        "opt/clip_eps": clip_eps,
        "adv/mean_abs": jnp.mean(jnp.abs(advantages)),
    }
    if config.uses_kl_penalty:
        metrics.update(
            {
                "loss/kl_penalty": mean(m["kl_penalty"]),  # beta * KL, averaged over the minibatch steps
                "policy/kl": kl_after,  # d of the adaptive rule: mean KL(pi_old || pi_new) after the update
                "opt/kl_beta": state.kl_beta,  # the beta this update used (the next one uses the adapted value)
            }
        )
    if early_stop:
        metrics["opt/epochs_done"] = jnp.sum(done) / done.shape[1]  # minibatch steps taken, in epochs
    return new_state, metrics


def policy_params(state: AgentState):
    """What ``params_digest`` hashes: the network parameters and the normalisation statistics."""
    return {"params": state.params, "obs_rms": state.obs_rms}
