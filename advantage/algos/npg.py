"""Natural policy gradient (Kakade 2001): TRPO's step without the line search.

The whole implementation is ``advantage.algos.trpo`` (one family, one file); this module only
names it ``npg`` and turns the line search off by default. Each update takes the full step
``theta + sqrt(2 delta / s^T F s) s`` with ``s = F^{-1} g`` from conjugate gradient, as Spinning
Up's ``trpo(algo='npg')`` does. See ``docs/algorithms/trpo.md``.
"""

from __future__ import annotations

from flax import struct

from advantage.algos import trpo
from advantage.algos.trpo import AgentState, act, init, policy_params, update  # noqa: F401
from advantage.config import static

NAME = "npg"
SEARCH = False  # trained by updates (advantage.training.stepper.UpdateStepper)
NAN_METRICS: tuple[str, ...] = ()  # no metric is NaN by design


@struct.dataclass
class Config(trpo.Config):
    """NPG hyperparameters: TRPO's (RL Zoo CartPole-v1 defaults), without the line search."""

    line_search: bool = static(False)
    """Backtracking line search on the exact KL and the surrogate (TRPO); off: plain natural-gradient step (NPG)."""


#: TRPO's presets, with a Fisher damping of 0.1 on CartPole-v1 (Spinning Up's default) instead of TRPO's 1e-3:
#: without the line search nothing catches a step whose real KL is far above the quadratic model's, and with
#: 1e-3 seed 9 of 0-19 took such a step (KL 1.38 against a target of 0.01) in its last update and ended at 18.5
#: under XLA's AVX kernels. With 0.1 every seed of 0-19 ends at 500 under AVX2 and AVX (benchmarks/ROBUSTNESS.md).
PRESETS = {**trpo.PRESETS, "CartPole-v1": {**trpo.PRESETS["CartPole-v1"], "cg_damping": 0.1}}
DEFAULT_STEPS = trpo.DEFAULT_STEPS
