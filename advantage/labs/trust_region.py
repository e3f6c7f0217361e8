r"""Lab ``trust-region``: a small parameter step can change the policy a lot; a KL-constrained step cannot.

The slides (*Actor Critic I*, "Trust Regions") say: "Small parameter change can cause large changes in
deep networks", :math:`\pi(a|s_A;\theta_i) = [0.4, 0.6] \to \pi(a|s_A;\theta_{i+1}) = [1.0, 0.0]`;
"Parameter-space constraints (learning rate) does not work very well!"; constrain the action
distributions instead, :math:`\mathrm{KL}[\pi_{\theta_i}, \pi_{\theta_{i+1}}] < k` (TRPO, natural gradient).

Part 1, the slides' example: one state, two actions, a linear softmax policy whose feature is large
(``FEATURE_SCALE``, as an unnormalised input is). From :math:`\pi = [0.4, 0.6]`, a step of length
:math:`\|\Delta\theta\|` along the policy gradient (towards action 0) is compared, over a sweep of
lengths, with the natural-gradient step of ``core.natural_gradient.natural_gradient_step`` (NPG, KL
:math:`\approx\delta`), for a unit feature and for the large one.

Part 2, on CartPole-v1: the same agent (``algos.trpo``'s networks, critic and GAE, driven by the
driver's own rollout code ``training.jax_backend.JaxBackend.iteration``) is trained two ways:

* **KL-constrained**: TRPO's update (``trpo.update`` -> ``natural_gradient_step`` with line search, ``max_kl``
  :math:`\delta`);
* **parameter step**: the same critic and advantages, but the policy moves by a fixed
  :math:`\|\Delta\theta\| = \epsilon` along the plain policy gradient (``epsilon`` = the median TRPO step length,
  so both move the parameters equally far on average).

Each update's exact mean KL(pi_old || pi_new) over the batch states (closed form) and the largest
total-variation distance over those states are recorded. Once, at update ``BAD_UPDATE``, both runs are
handed one bad update — a step ``BAD_FACTOR`` times longer: the parameter-step run takes it; the
KL-constrained run sends it through ``core.natural_gradient.backtracking_line_search``, which shrinks
it until the KL is at most :math:`\delta`. A third run (parameter steps, no bad update) is the control.
"""

from __future__ import annotations

import sys
import time
import types
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from advantage.algos import trpo
from advantage.core import losses
from advantage.core.distributions import Categorical
from advantage.core.natural_gradient import backtracking_line_search, natural_gradient_step
from advantage.core.returns import gae
from advantage.envs.registry import make
from advantage.labs import header, write_results
from advantage.training.jax_backend import JaxBackend
from advantage.training.run_config import Schedule

NAME = "trust-region"
SLIDE = (
    "Actor Critic I (shared/seeds/000), slides 'Trust Regions' (pi = [0.4, 0.6] -> [1.0, 0.0]; "
    "'Parameter-space constraints (learning rate) does not work very well!')"
)
CLAIM = (
    "A small parameter step can move the policy from [0.4, 0.6] to [1.0, 0.0]; a KL-constrained step keeps "
    "every update's KL at most delta, while fixed-size parameter steps exceed it by a large factor."
)

ENV = "CartPole-v1"
MAX_KL = 0.01
FEATURE_SCALE = 50.0
BAD_FACTOR = 30.0
KL_TOL = 1.05  # the line search checks the exact batch KL <= delta; 5% covers float32 round-off


# ----------------------------------------------------------------------------- part 1: one state, two actions
def two_action_example(scale: float, step_norms) -> dict:
    """Linear softmax ``logits = W phi`` with ``phi = [scale]``, ``pi = [0.4, 0.6]``, advantage +1 for action 0."""
    w0 = jnp.array([jnp.log(0.4), jnp.log(0.6)]) / scale  # W [2, 1] flattened
    phi = jnp.array([scale])

    def dist(w):
        return Categorical(w * phi)

    old = dist(w0)
    objective = lambda w: jnp.exp(dist(w).log_prob(jnp.int32(0)) - old.log_prob(jnp.int32(0))) * 1.0  # noqa: E731
    kl_fn = lambda w: old.kl(dist(w))  # noqa: E731
    g = jax.grad(objective)(w0)
    direction = g / jnp.linalg.norm(g)
    plain = [dist(w0 + s * direction) for s in step_norms]
    w_nat, info = natural_gradient_step(objective, kl_fn, w0, MAX_KL, 0.0, cg_iters=5, line_search=False)
    new_nat = dist(w_nat)
    return {
        "step_norms": [float(s) for s in step_norms],
        "plain_p0": [float(jnp.exp(d.log_probs[0])) for d in plain],
        "plain_kl": [float(old.kl(d)) for d in plain],
        "natural_p0": float(jnp.exp(new_nat.log_probs[0])),
        "natural_kl": float(old.kl(new_nat)),
        "natural_step_norm": float(jnp.linalg.norm(w_nat - w0)),
    }


# ----------------------------------------------------------------------------- part 2: CartPole
def _policy_fn(config, action_space, params, obs):
    net = trpo.network(config, action_space)
    actor, critic = trpo.split_params(params)
    theta, unravel = ravel_pytree(actor)
    return theta, (lambda th: net.apply(trpo.merge_params(unravel(th), critic), obs)[0]), unravel, critic


def make_update(kind, step_norm):
    """An ``update`` for the driver's rollout code: TRPO's (``kind`` 0), a fixed-norm gradient step (1), or a
    fixed-norm step sent through the KL line search (2). ``kind``/``step_norm`` may be traced."""

    def update(config, action_space, state, batch, key):
        # the critic's fit and the TRPO step, exactly as TRPO does them
        trpo_state, metrics = trpo.update(config, action_space, state, batch, key)
        # the plain policy gradient of the same surrogate, with the same (normalised) GAE advantages
        net = trpo.network(config, action_space)
        n = batch.reward.size
        obs = batch.obs.reshape((n, -1))
        next_values = net.apply(state.params, batch.next_obs, method=net.value)
        adv = gae(
            batch.reward, batch.value, next_values, batch.terminated, batch.truncated, config.gamma, config.gae_lambda
        ).reshape(n)
        adv = losses.normalize(adv)
        actions, old_logp = batch.action.reshape(n), batch.log_prob.reshape(n)
        theta_old, policy, unravel, _ = _policy_fn(config, action_space, state.params, obs)
        old = jax.tree.map(jax.lax.stop_gradient, policy(theta_old))
        objective = lambda th: -losses.surrogate_loss(policy(th).log_prob(actions), old_logp, adv)  # noqa: E731
        g = jax.grad(objective)(theta_old)
        plain_step = step_norm * g / (jnp.linalg.norm(g) + 1e-12)
        theta_proj, _ = backtracking_line_search(
            lambda th: (objective(th), losses.mean_kl(old, policy(th))),
            theta_old,
            plain_step,
            MAX_KL,
            max_iters=60,
            shrink=0.8,
        )
        theta_trpo = _policy_fn(config, action_space, trpo_state.params, obs)[0]
        theta = jnp.where(kind == 0, theta_trpo, jnp.where(kind == 1, theta_old + plain_step, theta_proj))
        new = policy(theta)
        kl = old.kl(new)
        tv = 0.5 * jnp.sum(jnp.abs(jnp.exp(old.log_probs) - jnp.exp(new.log_probs)), axis=-1)
        critic = trpo.split_params(trpo_state.params)[1]
        new_state = trpo_state.replace(params=trpo.merge_params(unravel(theta), critic))
        metrics = {
            "kl_mean": jnp.mean(kl),
            "kl_max_state": jnp.max(kl),
            "tv_max": jnp.max(tv),
            "tv_mean": jnp.mean(tv),
            "step_norm": jnp.linalg.norm(theta - theta_old),
            "value/explained_variance": metrics["value/explained_variance"],
        }
        return new_state, metrics

    return update


#: TRPO's CartPole preset without observation normalisation: the running statistics move after every update,
#: outside the trust region (the KL bound holds for a step of the parameters under fixed statistics), so with
#: them the measured KL between consecutive policies reached 1.7 delta. The lab measures the step itself.
LAB_PRESET = {**trpo.PRESETS[ENV], "normalize_obs": False}


def make_trainer(seed: int, n_updates: int):
    """``train(kinds, norms)``: one compiled training run with per-update ``kinds`` / ``norms``; returns a dict
    of ``[n_updates]`` metric arrays."""
    config = trpo.Config(**LAB_PRESET)
    env, env_params = make(ENV)
    schedule = Schedule(n_updates * config.n_envs * config.n_steps, config.n_envs, config.n_steps)

    def backend_for(kind, norm):
        algo = types.SimpleNamespace(
            act=trpo.act, init=trpo.init, policy_params=trpo.policy_params, update=make_update(kind, norm)
        )
        return JaxBackend(algo, config, env, env_params, schedule, chunk_iters=1)

    def one(runner, xs):
        kind, norm = xs
        runner, metrics = backend_for(kind, norm).iteration(runner, config.n_steps)
        return runner, metrics

    @jax.jit
    def train(kinds, norms):
        runner = backend_for(0, 0.0).init_one(jnp.uint32(seed))
        return jax.lax.scan(one, runner, (kinds, norms))[1]

    def run_variant(kinds, norms):
        m = train(jnp.asarray(kinds, jnp.int32), jnp.asarray(norms, jnp.float32))
        return {k: np.asarray(v, np.float64) for k, v in m.items()}

    return run_variant


def run(out_dir: Path, seed: int = 0, quick: bool = False) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    n_updates = 24 if quick else 60
    bad = n_updates // 2

    # part 1
    norms = np.geomspace(1e-3, 1.0, 31)
    ex_big = two_action_example(FEATURE_SCALE, norms)
    ex_unit = two_action_example(1.0, norms)
    i01 = int(np.argmin(np.abs(norms - 0.1)))

    # part 2: TRPO first (its median step length sets epsilon), then the parameter-step runs
    kinds = np.zeros(n_updates, int)
    kinds[bad] = 2
    train_variant = make_trainer(seed, n_updates)
    trpo_run = train_variant(kinds, np.zeros(n_updates))
    normal = np.arange(n_updates) != bad
    eps = float(np.median(trpo_run["step_norm"][normal]))
    bad_norms = np.full(n_updates, eps)
    bad_norms[bad] = BAD_FACTOR * eps
    trpo_run = train_variant(kinds, bad_norms)  # same run, now with the bad request known
    plain_run = train_variant(np.ones(n_updates, int), bad_norms)
    control = train_variant(np.ones(n_updates, int), np.full(n_updates, eps))

    kl_trpo_max = float(np.max(trpo_run["kl_mean"]))
    kl_plain_max = float(np.max(plain_run["kl_mean"]))
    kl_plain_normal_max = float(np.max(plain_run["kl_mean"][normal]))
    checks = {
        f"one step of |dtheta|=0.1 moves [0.4, 0.6] to p0 > 0.99 (feature scale {FEATURE_SCALE:g})": ex_big["plain_p0"][
            i01
        ]
        > 0.99,
        "KL-constrained: max KL per update <= delta (+5%)": kl_trpo_max <= KL_TOL * MAX_KL,
        "parameter step: max KL per update >= 10 x delta": kl_plain_max >= 10 * MAX_KL,
        # The two checks above hold by construction (the line search enforces the bound; the bad step is 30x
        # longer). This one can fail: steps of the SAME length as TRPO's median step, in ordinary updates.
        "parameter step of TRPO's median length, ordinary updates: median KL >= 10 x delta": float(
            np.median(plain_run["kl_mean"][normal])
        )
        >= 10 * MAX_KL,
    }
    claim_holds = all(checks.values())

    def ret_after(run_, k):
        r = run_["train/episode_return"][bad + 1 : bad + 1 + k]
        return float(np.nanmean(r))

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.3))
    ax = axes[0]
    ax.plot(norms, ex_big["plain_p0"], "-", color="#b2182b", label=f"gradient step, feature = {FEATURE_SCALE:g}")
    ax.plot(norms, ex_unit["plain_p0"], "-", color="#ef8a62", label="gradient step, feature = 1")
    for ex, c, lab in (
        (ex_big, "#2166ac", f"natural step (KL={MAX_KL}), feature = {FEATURE_SCALE:g}"),
        (ex_unit, "#67a9cf", f"natural step (KL={MAX_KL}), feature = 1"),
    ):
        ax.plot([ex["natural_step_norm"]], [ex["natural_p0"]], "o", color=c, label=lab)
    ax.axhline(0.4, color="gray", lw=0.6, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("|| delta theta ||")
    ax.set_ylabel("pi(a0 | s_A) after one step (before: 0.4)")
    ax.set_title("the slides' example: [0.4, 0.6] -> ?", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[1]
    u = np.arange(1, n_updates + 1)
    ax.plot(
        u, plain_run["kl_mean"], "o-", ms=3, color="#b2182b", label=f"fixed |dtheta| = {eps:.3g} (one x{BAD_FACTOR:g})"
    )
    ax.plot(u, control["kl_mean"], "o-", ms=2, color="#ef8a62", alpha=0.6, label="fixed |dtheta|, no bad update")
    ax.plot(u, trpo_run["kl_mean"], "s-", ms=3, color="#2166ac", label=f"KL-constrained (TRPO, delta={MAX_KL})")
    ax.axhline(MAX_KL, color="k", ls="--", lw=0.8)
    ax.axvline(bad + 1, color="gray", ls=":", lw=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("update")
    ax.set_ylabel("mean KL(pi_old || pi_new) on the batch")
    ax.set_title("policy change per update", fontsize=9)
    ax.legend(fontsize=7)
    ax = axes[2]
    steps = u * trpo.Config(**LAB_PRESET).n_envs * trpo.Config(**LAB_PRESET).n_steps
    ax.plot(steps, plain_run["train/episode_return"], color="#b2182b", label="fixed |dtheta|, one bad update")
    ax.plot(steps, control["train/episode_return"], color="#ef8a62", alpha=0.6, label="fixed |dtheta|, no bad update")
    ax.plot(steps, trpo_run["train/episode_return"], color="#2166ac", label="KL-constrained, bad request line-searched")
    ax.axvline(steps[bad], color="gray", ls=":", lw=0.8)
    ax.set_xlabel("env steps")
    ax.set_ylabel("training episode return")
    ax.set_title(f"one update {BAD_FACTOR:g}x too long at update {bad + 1}", fontsize=9)
    ax.legend(fontsize=7)
    fig.suptitle(f"Trust regions on {ENV} (seed {seed})", fontsize=10)
    fig.tight_layout()

    def summ(run_):
        return {
            "kl_mean_per_update": run_["kl_mean"].tolist(),
            "kl_max_state_per_update": run_["kl_max_state"].tolist(),
            "tv_max_per_update": run_["tv_max"].tolist(),
            "step_norm_per_update": run_["step_norm"].tolist(),
            "episode_return_per_update": run_["train/episode_return"].tolist(),
            "kl_max": float(np.max(run_["kl_mean"])),
            "kl_median": float(np.median(run_["kl_mean"])),
            "kl_min": float(np.min(run_["kl_mean"])),
            "kl_at_bad_update": float(run_["kl_mean"][bad]),
            "tv_max_at_bad_update": float(run_["tv_max"][bad]),
            "return_before_bad": float(np.nanmean(run_["train/episode_return"][max(0, bad - 5) : bad + 1])),
            "return_5_updates_after_bad": ret_after(run_, 5),
            "final_return": float(np.nanmean(run_["train/episode_return"][-5:])),
        }

    results = {
        **header(sys.modules[__name__], seed, quick),
        "setup": {
            "env": ENV,
            "max_kl": MAX_KL,
            "n_updates": n_updates,
            "bad_update": bad + 1,
            "bad_factor": BAD_FACTOR,
            "step_norm_epsilon": eps,
            "feature_scale": FEATURE_SCALE,
            "trpo_preset": LAB_PRESET,
        },
        "example": {
            "feature_scale": {**ex_big},
            "feature_unit": {**ex_unit},
            "p0_after_step_0.1": {"large feature": ex_big["plain_p0"][i01], "unit feature": ex_unit["plain_p0"][i01]},
            "kl_after_step_0.1": {"large feature": ex_big["plain_kl"][i01], "unit feature": ex_unit["plain_kl"][i01]},
        },
        "kl_constrained": summ(trpo_run),
        "parameter_step": summ(plain_run),
        "parameter_step_control": summ(control),
        "kl_parameter_step_max_over_normal_updates": kl_plain_normal_max,
        "checks": checks,
        "claim_holds": bool(claim_holds),
        "summary": (
            f"|dtheta|=0.1 moves [0.4, 0.6] to [{ex_big['plain_p0'][i01]:.3f}, "
            f"{1 - ex_big['plain_p0'][i01]:.3f}] (KL {ex_big['plain_kl'][i01]:.2f}) with feature "
            f"{FEATURE_SCALE:g}; the natural step gives p0 {ex_big['natural_p0']:.3f} at KL "
            f"{ex_big['natural_kl']:.4f}. CartPole: max KL per update {kl_trpo_max:.4f} (KL-constrained, "
            f"delta {MAX_KL}) vs {kl_plain_max:.3g} (fixed |dtheta|={eps:.3g}; {kl_plain_normal_max:.3g} "
            f"without the bad update). Return 5 updates after the bad update: "
            f"{ret_after(plain_run, 5):.0f} (parameter step) vs {ret_after(trpo_run, 5):.0f} "
            f"(KL-constrained), {ret_after(control, 5):.0f} (control)."
        ),
        "wall_time_s": time.perf_counter() - t0,
    }
    return write_results(out_dir, fig, results)
