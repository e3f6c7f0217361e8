"""DDPG (Lillicrap et al. 2016) as TD3 with one critic, no target smoothing and no policy delay.

There is no DDPG code here: ``Config`` only changes TD3's defaults, and ``init``, ``act``,
``update`` and ``policy_params`` are TD3's (``advantage/algos/td3.py``), exactly as in
Stable-Baselines3 (``DDPG(TD3)`` with ``policy_delay=1, n_critics=1, target_policy_noise=0``).
This is Fujimoto et al.'s "Our DDPG": DDPG with TD3's networks and hyperparameters.
See ``docs/algorithms/ddpg_td3.md``.
"""

from __future__ import annotations

from flax import struct

from advantage.algos import td3
from advantage.algos.td3 import NAN_METRICS, AgentState, act, init, policy_params, update  # noqa: F401  (the interface)
from advantage.config import static

NAME = "ddpg"
SEARCH = False  # trained by updates (advantage.training.stepper.UpdateStepper)


@struct.dataclass
class Config(td3.Config):
    """DDPG hyperparameters: TD3's, with one critic, no target smoothing and no delay."""

    n_critics: int = static(1)
    """Critics in the Q ensemble: 1 = DDPG's single critic, 2 = clipped double Q (TD3)."""
    policy_delay: int = 1
    """Update the actor and the target networks every policy_delay critic steps (1 = every step, DDPG)."""
    policy_noise: float = 0.0
    """Std of the Gaussian noise added to the target action (target policy smoothing; 0 = none, DDPG)."""
    noise_clip: float = 0.0
    """The target-smoothing noise is clipped to +-noise_clip."""


#: The Zoo's ``hyperparams/ddpg.yml`` entries for these envs are identical to ``td3.yml``'s.
PRESETS: dict[str, dict] = {env: dict(p) for env, p in td3.PRESETS.items()}
DEFAULT_STEPS: dict[str, int] = dict(td3.DEFAULT_STEPS)
