"""Health checks on the metrics of every update: warn once about the usual ways a run goes
wrong, and stop the run at the first non-finite value, saying where it appeared.

The rules read only the metric dictionary the driver already has after each chunk
(``{name: array [n_seeds, n_updates]}``), so they cost nothing inside the compiled code.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from advantage.errors import NonFiniteError  # defined there; importable from here as before

#: Metrics that may be NaN by design (no episode ended; no variance to explain; no update yet).
NAN_ALLOWED = ("train/", "value/explained_variance", "eval/")


def _where(metric: str) -> str:
    if metric.startswith("health/nonfinite_obs"):
        return "an observation from the environment"
    if metric.startswith("health/nonfinite_reward"):
        return "a reward from the environment"
    if metric.startswith("health/nonfinite_params"):
        return "the parameters"
    if metric.startswith("grad/"):
        return f"a gradient ({metric})"
    if metric.startswith("loss/"):
        return f"a loss ({metric})"
    return metric


class HealthMonitor:
    """Feed it every chunk's metrics with ``check``; it warns once per problem and raises
    ``NonFiniteError`` at the first non-finite value."""

    def __init__(
        self,
        seeds,
        console=None,
        log_path: Path | None = None,
        *,
        discrete: bool = True,
        action_dim: int = 1,
        log_std_min: float = -5.0,
        nan_allowed: tuple[str, ...] = (),
        steps_per_update: int = 2,
    ):
        """``nan_allowed``: the algorithm's own metric prefixes that may be NaN by design (its
        ``NAN_METRICS``, e.g. losses before an off-policy learner's first gradient step).
        ``steps_per_update``: env steps in one update's batch; the constant-reward rule needs >= 2."""
        self.seeds = list(seeds)
        self.nan_allowed = tuple(NAN_ALLOWED) + tuple(nan_allowed)
        self.steps_per_update = steps_per_update
        self.console = console
        self.log_path = Path(log_path) if log_path else None
        self.discrete, self.action_dim = discrete, action_dim
        # entropy of a diagonal Gaussian whose std sits at its floor
        self.entropy_floor = action_dim * (log_std_min + 0.5 * (1.0 + np.log(2 * np.pi)))
        self.warned: dict[str, str] = {}
        self.terminated_seen = np.zeros(len(self.seeds), bool)
        self.streak: dict[tuple[str, int], int] = defaultdict(int)

    # ------------------------------------------------------------------ non-finite values
    @staticmethod
    def _rank(name: str) -> int:
        """Within one update, report the most upstream source: env inputs, then losses, gradients, parameters."""
        order = ("health/nonfinite_obs", "health/nonfinite_reward", "loss/", "grad/", "health/nonfinite_params")
        return next((i for i, prefix in enumerate(order) if name.startswith(prefix)), len(order))

    def check_finite(self, metrics: dict, steps: np.ndarray, active: np.ndarray | None = None) -> None:
        """Raise at the first (update, seed) with a non-finite value, naming its source. ``active [n_seeds,
        n_updates]``: the updates that happened (a seed that had spent its budget, or an asynchronous worker
        that was not reporting, has NaN metrics there by contract)."""
        first = None
        for name, values in metrics.items():
            if name.startswith(self.nan_allowed) and not name.startswith("health/"):
                continue
            values = np.asarray(values, np.float64)
            bad = (values > 0) if name.startswith("health/nonfinite") else ~np.isfinite(values)
            if active is not None:
                bad &= active
            if bad.any():
                si, ui = np.argwhere(bad)[np.argmin(np.argwhere(bad)[:, 1])]
                if first is None or (ui, self._rank(name)) < (first[2], self._rank(first[0])):
                    first = (name, si, ui)
        if first is not None:
            name, si, ui = first
            raise NonFiniteError(
                f"non-finite value in {_where(name)}, first at the update ending at env step {int(steps[ui])} "
                f"of seed {self.seeds[si]}. Common causes: a learning rate too high for the reward scale "
                f"(try a smaller --learning-rate, or --normalize-obs), an env returning NaN/inf, or log(0) in a "
                f"custom loss. The last finite state is in the checkpoint; the offending batch is saved in "
                f"debug/ when it can be reproduced."
            )

    # ------------------------------------------------------------------ warnings
    def _warn(self, key: str, message: str) -> None:
        if key in self.warned:
            return
        self.warned[key] = message
        if self.console is not None:
            self.console.print(f"[yellow]warning:[/] {message}")
        if self.log_path is not None:
            with open(self.log_path, "a") as f:
                f.write(message + "\n")

    def _streak(self, rule: str, values: np.ndarray, bad: np.ndarray, limit: int, message) -> None:
        """Warn when ``bad`` holds for ``limit`` consecutive updates of a seed."""
        for si in range(bad.shape[0]):
            for ui in range(bad.shape[1]):
                if not np.isfinite(values[si, ui]):
                    continue
                key = (rule, si)
                self.streak[key] = self.streak[key] + 1 if bad[si, ui] else 0
                if self.streak[key] >= limit:
                    self._warn(rule, message(self.seeds[si]))

    def check(self, metrics: dict, steps: np.ndarray, active: np.ndarray | None = None) -> None:
        """``steps [n_updates]``: the env step each update ends at (the furthest seed's); ``active``: see
        :meth:`check_finite` (the trend rules skip NaN values anyway)."""
        self.check_finite(metrics, steps, active)
        get = lambda k: np.asarray(metrics[k], np.float64) if k in metrics else None  # noqa: E731
        if (adv := get("adv/mean_abs")) is not None:
            self._streak(
                "zero-advantage",
                adv,
                adv == 0.0,
                10,
                lambda s: (
                    f"all advantages have been exactly zero for 10 updates (seed {s}): there is no reward signal to "
                    f"learn from. Check the reward function, or whether every episode ends before any reward."
                ),
            )
        if (rstd := get("train/reward_std")) is not None and self.steps_per_update >= 2:
            # (one step per update: the std of one reward is 0 whatever the reward function)
            # A constant reward is a signal when episodes can terminate (CartPole: +1 until the pole falls);
            # with no termination ever seen, nothing the agent does changes its return.
            if (term := get("train/terminations")) is not None:
                self.terminated_seen |= np.nan_to_num(term).sum(axis=1) > 0
            flat = (rstd == 0.0) & ~self.terminated_seen[:, None]
            self._streak(
                "constant-reward",
                rstd,
                flat,
                20,
                lambda s: (
                    f"the reward has been the same on every step, and no episode has terminated, for 20 updates "
                    f"(seed {s}): nothing the agent does changes its return. Check the reward function."
                ),
            )
        if (ent := get("loss/entropy")) is not None:
            if self.discrete:
                collapsed = ent < 1e-3
                what = "the policy's entropy has collapsed (below 0.001 nats)"
            else:
                collapsed = ent < self.entropy_floor + 0.05
                what = "the policy's standard deviation sits at its lower bound"
            self._streak(
                "entropy-collapse",
                ent,
                collapsed,
                5,
                lambda s: (
                    f"{what} for 5 updates (seed {s}): it no longer explores. If returns are not yet good, add an "
                    f"entropy bonus (--ent-coef 0.01) or lower the learning rate."
                ),
            )
        if (ev := get("value/explained_variance")) is not None:
            self._streak(
                "negative-ev",
                ev,
                ev < 0.0,
                50,
                lambda s: (
                    f"the critic's explained variance has been below 0 for 50 updates (seed {s}): its predictions "
                    f"are worse than a constant. Try normalising observations (--normalize-obs), a smaller learning "
                    f"rate, or check that rewards are not huge."
                ),
            )
        if (kl := get("loss/approx_kl_max")) is not None:
            big = kl > 0.5
            if big.any():
                si, ui = np.argwhere(big)[0]
                self._warn(
                    "large-kl",
                    f"approx KL reached {kl[si, ui]:.2f} in one minibatch at env step "
                    f"{int(steps[ui])} (seed {self.seeds[si]}); clipped PPO updates usually stay below ~0.05 "
                    f"(an unclipped KL-penalty objective may go higher while its beta adapts). "
                    f"If learning is unstable, lower the learning rate or the number of epochs.",
                )
