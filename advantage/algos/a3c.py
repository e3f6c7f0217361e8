r"""A3C: asynchronous advantage actor-critic (Mnih et al. 2016).

The lectures: *Actor Critic and PPO*, "Asynchronous Advantage Actor Critic (A3C)" (parallel actor-learners, each
with its own copy of the environment, sending gradients to shared parameters; n-step returns; entropy
regularisation; shared weights) and *Policy Gradient Methods*, "IMPALA" ("Remember A3C is essentially online").

A3C's loss is A2C's (``a2c.py``): per rollout of ``n_steps`` steps from a worker's ``n_envs`` environments,

.. math::
    L(\theta, w) = -\hat{\mathbb E}_t\big[\hat A_t \log\pi_\theta(a_t|s_t)\big]
        + c_v\,\tfrac12\hat{\mathbb E}_t\big[(V_w(s_t) - \hat R_t)^2\big]
        - c_e\,\hat{\mathbb E}_t\,\mathcal H[\pi_\theta(\cdot|s_t)].

What makes it A3C is *where* the two halves of an update happen (the paper's Algorithm S3):

* each **worker** keeps its own copy :math:`\theta'` of the parameters, collects a rollout on its own
  environments with it, and computes :math:`d\theta = \nabla_{\theta'} L` on that rollout
  (:func:`compute_gradients`);
* the **parameter server** applies each gradient as it arrives, in arrival order, with the optimiser state it
  keeps (:func:`apply_gradients`: the paper's shared RMSProp statistics), and the worker pulls the new
  parameters before its next rollout.

So a gradient is computed with parameters that are ``grad/staleness`` server updates old by the time it is
applied (with ``W`` workers taking turns, ``W - 1``). The workers are the execution layer's
(``advantage/training/pool_stepper.py``): ``advantage train a3c --workers N`` runs ``N`` per seed, as Ray processes
(``--worker-pool ray``) or in this process in a fixed round robin (``--worker-pool local``). This module is A2C's
maths with A3C's defaults; ``update`` (both halves at once, staleness 0) is A2C.

Every detail: ``docs/algorithms/a3c.md``.
"""

from __future__ import annotations

from flax import struct

from advantage.algos import a2c
from advantage.algos.a2c import (  # noqa: F401 - A3C is A2C's maths, split between workers and a server
    AgentState,
    Gradients,
    act,
    apply_gradients,
    compute_gradients,
    init,
    network,
    policy_params,
    update,
)
from advantage.config import static

NAME = "a3c"
SEARCH = False  # trained by updates (on a worker pool: advantage.training.pool_stepper.PoolStepper)
WORKERS = "gradients"  # workers send gradients to a parameter server
DEFAULT_WORKERS = 2  # per seed, when --workers is not given
NAN_METRICS: tuple[str, ...] = ()  # no metric is NaN by design


@struct.dataclass
class Config(a2c.Config):
    """A3C hyperparameters: A2C's fields, *per worker* (``n_envs`` environments and ``n_steps``-step rollouts
    for each gradient). Defaults: the paper's returns (every step bootstrapped at the rollout end: GAE with
    lambda 1) over ``t_max = 5`` steps, its entropy bonus 0.01 and its shared RMSProp (decay 0.99), on 4
    environments per worker."""

    n_envs: int = static(4)
    """Environments per worker (the paper: 1; several make each gradient less noisy)."""
    n_steps: int = static(5)
    """Steps from each environment per gradient (the paper's t_max)."""
    ent_coef: float = 0.01
    """Weight of the entropy bonus (the paper's beta)."""


#: Per-environment defaults (docs/algorithms/a3c.md, "Presets").
PRESETS: dict[str, dict] = {
    # rewards scaled by 0.1: the value targets (about 100 at gamma 0.99) no longer dominate the clipped global
    # gradient; 20 of 20 seeds under AVX2 and AVX, 19 of 20 without (docs/algorithms/a3c.md, "Results")
    "CartPole-v1": dict(n_envs=8, n_steps=5, ent_coef=0.0, learning_rate=7e-4, anneal_lr=True, reward_scale=0.1),
    "Acrobot-v1": dict(n_envs=4, n_steps=5, ent_coef=0.01, learning_rate=7e-4),
}
#: Default budget (env steps per seed) for an env, when the user gives none.
DEFAULT_STEPS: dict[str, int] = {"CartPole-v1": 500_000, "Acrobot-v1": 500_000}
