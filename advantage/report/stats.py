"""Aggregate statistics over seeds, in the style of Agarwal et al. (2021), "Deep RL at the
Edge of the Statistical Precipice" (the ``rliable`` library).

Seeds (independent training runs) are the unit of evidence: a score is one number per
training seed (e.g. that seed's mean evaluation return), never one per evaluation
episode. Episodes of one seed share the same trained parameters, so treating them as
independent samples makes confidence intervals far too narrow.

Scores are arrays ``[runs, tasks]`` (``runs`` = seeds); a 1-D array is one task. Every
statistic reduces the *pooled* scores of one sample (all runs of all tasks), and accepts
``axis`` so that the bootstrap evaluates all resamples in one vectorised call.

Pure NumPy.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

__all__ = ["CI", "iqm", "mean", "median", "stratified_bootstrap_ci", "learning_curve_stats", "STATISTICS"]


def iqm(x, axis=None) -> np.ndarray | float:
    """Interquartile mean: the mean of the scores left after removing the ``floor(n / 4)``
    smallest and the ``floor(n / 4)`` largest of the ``n`` scores.

    This is exactly ``scipy.stats.trim_mean(x, 0.25, axis)`` (also what ``rliable`` uses) for
    every ``n``. When ``n`` is a multiple of 4 it is the mean of the middle 50%; otherwise
    slightly more than half the scores are kept (``n = 5``: the middle 3; ``n = 6``: the
    middle 4; ``n = 7``: the middle 5). With fewer than 4 scores nothing is trimmed and
    the IQM is the mean. ``axis=None`` pools all entries.
    """
    x = np.asarray(x, np.float64)
    if axis is None:
        x, axis = x.ravel(), -1
    x = np.sort(x, axis=axis)
    n = x.shape[axis]
    if n == 0:
        raise ValueError("iqm of an empty array")
    cut = n // 4  # == int(0.25 * n), scipy's rule
    kept = np.take(x, np.arange(cut, n - cut), axis=axis)
    out = kept.mean(axis=axis)
    return float(out) if np.ndim(out) == 0 else out


def mean(x, axis=None) -> np.ndarray | float:
    """Arithmetic mean (``axis=None`` pools all entries)."""
    out = np.mean(np.asarray(x, np.float64), axis=axis)
    return float(out) if np.ndim(out) == 0 else out


def median(x, axis=None) -> np.ndarray | float:
    """Median (``axis=None`` pools all entries; the mean of the two middle values for even ``n``)."""
    out = np.median(np.asarray(x, np.float64), axis=axis)
    return float(out) if np.ndim(out) == 0 else out


#: The statistics the report computes, by name.
STATISTICS: dict[str, Callable] = {"mean": mean, "median": median, "iqm": iqm}


class CI(NamedTuple):
    """A point estimate and its percentile-bootstrap confidence interval ``[lo, hi]``."""

    estimate: float
    lo: float
    hi: float


def _as_runs_by_tasks(scores) -> np.ndarray:
    s = np.asarray(scores, np.float64)
    if s.ndim == 1:
        s = s[:, None]
    if s.ndim != 2:
        raise ValueError(f"scores must be [runs] or [runs, tasks], got shape {s.shape}")
    if s.shape[0] == 0 or s.shape[1] == 0:
        raise ValueError(f"scores must hold at least one run of one task, got shape {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    return s


def _check_alpha(alpha: float, n_boot: int) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")


def _takes_axis(fn: Callable) -> bool:
    try:
        return "axis" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def bootstrap_indices(rng: np.random.Generator, n_boot: int, n_tasks: int, n_runs: int) -> np.ndarray:
    """``[n_boot, n_tasks, n_runs]`` run indices: for each resample, for each task, ``n_runs``
    runs of that task drawn with replacement (the order in which they are drawn from ``rng``)."""
    return rng.integers(0, n_runs, size=(n_boot, n_tasks, n_runs))


def stratified_bootstrap_ci(
    scores, statistic: Callable | str = iqm, n_boot: int = 2000, alpha: float = 0.05, seed: int = 0
) -> CI:
    """Percentile stratified-bootstrap confidence interval of ``statistic(scores)``.

    ``scores`` is ``[runs, tasks]`` (or ``[runs]``). Each of the ``n_boot`` resamples draws,
    independently within every task (the strata), as many runs as it has, with replacement;
    ``statistic`` is evaluated on each resample (pooled over runs and tasks) and the
    interval is the ``alpha/2`` and ``1 - alpha/2`` percentiles of those values
    (``numpy.percentile``'s linear interpolation). ``statistic`` is a name in
    :data:`STATISTICS` or a function ``f(x, axis)`` reducing ``axis``; a function without an
    ``axis`` argument is applied to one resample at a time.

    With one run per task every resample equals the data, so the interval is degenerate
    (``lo == hi == estimate``): a single seed says nothing about the spread between seeds.
    """
    _check_alpha(alpha, n_boot)
    stat = STATISTICS[statistic] if isinstance(statistic, str) else statistic
    s = _as_runs_by_tasks(scores)
    n_runs, n_tasks = s.shape
    rng = np.random.default_rng(seed)
    idx = bootstrap_indices(rng, n_boot, n_tasks, n_runs)
    # resampled[b, t, r] = s[idx[b, t, r], t]
    resampled = s.T[np.arange(n_tasks)[None, :, None], idx].reshape(n_boot, n_tasks * n_runs)
    if _takes_axis(stat):
        values = np.asarray(stat(resampled, axis=-1), np.float64)
    else:
        values = np.array([stat(r) for r in resampled], np.float64)
    lo, hi = np.percentile(values, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return CI(float(stat(s.T.ravel())), float(lo), float(hi))


def learning_curve_stats(
    curves, n_boot: int = 2000, alpha: float = 0.05, seed: int = 0, statistic: Callable | str = iqm
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per point of a learning curve: ``statistic`` across seeds (IQM by default) and its
    percentile-bootstrap ``1 - alpha`` interval.

    ``curves`` is ``[seeds, points]`` (every seed on the same grid, e.g. interpolated onto
    common env steps). A resample draws whole seeds with replacement, the same seeds for
    every point, so the band reflects seed-to-seed variation. Returns ``(estimate, lo, hi)``,
    each ``[points]``.
    """
    _check_alpha(alpha, n_boot)
    stat = STATISTICS[statistic] if isinstance(statistic, str) else statistic
    c = np.asarray(curves, np.float64)
    if c.ndim != 2 or c.shape[0] == 0:
        raise ValueError(f"curves must be [seeds, points] with at least one seed, got shape {c.shape}")
    n_seeds = c.shape[0]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
    if _takes_axis(stat):
        values = np.asarray(stat(c[idx], axis=1), np.float64)  # [n_boot, points]
    else:
        values = np.array([[stat(r[:, j]) for j in range(c.shape[1])] for r in c[idx]], np.float64)
    lo, hi = np.percentile(values, [100 * alpha / 2, 100 * (1 - alpha / 2)], axis=0)
    point = stat(c, axis=0) if _takes_axis(stat) else [stat(c[:, j]) for j in range(c.shape[1])]
    return np.asarray(point, np.float64), lo, hi
