"""Figures a person would rather look at than read."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import numpy as np


def learning_curve(metrics_csv: Path, out_png: Path, metric: str = "train/episode_return", title: str = "") -> Path:
    """Per-seed curves of ``metric`` against env steps, with their mean, from a run's ``metrics.csv``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[int, list[tuple[int, float]]] = defaultdict(list)
    with open(metrics_csv, newline="") as f:
        for row in csv.DictReader(f):
            v = row.get(metric, "")
            if v not in ("", "nan"):
                series[int(row["seed"])].append((int(row["step"]), float(v)))
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    grid = None
    curves = []
    for seed, pts in sorted(series.items()):
        steps, values = np.array(pts).T
        ax.plot(steps, values, lw=0.8, alpha=0.45, label=f"seed {seed}")
        grid = steps if grid is None or len(steps) > len(grid) else grid
        curves.append((steps, values))
    if len(curves) > 1 and grid is not None:
        mean = np.mean([np.interp(grid, s, v) for s, v in curves], axis=0)
        ax.plot(grid, mean, color="black", lw=2, label="mean over seeds")
    if not series:
        ax.text(0.5, 0.5, "no episode ended during training", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("environment steps (per seed)")
    ax.set_ylabel(metric)
    ax.set_title(title or metric)
    ax.grid(alpha=0.3)
    if series:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_png)
    plt.close(fig)
    return Path(out_png)


# --------------------------------------------------------------------------- multi-run figures (advantage report)
# Drawn on matplotlib.figure.Figure objects (no pyplot state, no backend switching).


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def _save(fig, out_png: Path) -> Path:
    fig.tight_layout()
    fig.savefig(out_png)
    return Path(out_png)


def color(i: int):
    """The color of run ``i`` (the same in every figure of a report)."""
    import matplotlib

    return matplotlib.colormaps["tab10"](i % 10)


def learning_curves_iqm(
    curves: list[dict], out_png: Path, title: str = "", ylabel: str = "train/episode_return", ci_percent: float = 95
) -> Path:
    """Several runs on one axis: each ``{"label", "color", "steps", "estimate", "lo", "hi", "n_seeds"}``
    is drawn as a line (the IQM across seeds) with its bootstrap confidence band."""
    fig = _figure(7.5, 4.2)
    ax = fig.add_subplot()
    for c in curves:
        steps = np.asarray(c["steps"])
        ax.plot(steps, c["estimate"], color=c["color"], lw=1.8, label=f"{c['label']} ({c['n_seeds']} seeds)")
        if c["n_seeds"] > 1:
            ax.fill_between(steps, c["lo"], c["hi"], color=c["color"], alpha=0.2, lw=0)
    if not curves:
        ax.text(0.5, 0.5, "no run logged a finished training episode", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("environment steps (per seed)")
    ax.set_ylabel(f"{ylabel} (IQM over seeds)")
    ax.set_title(title or f"IQM over seeds, {ci_percent:g}% bootstrap CI band", fontsize=10)
    ax.grid(alpha=0.3)
    if curves:
        ax.legend(fontsize=8, loc="best")
    return _save(fig, out_png)


def final_returns(runs: list[dict], out_png: Path, title: str = "", ci_percent: float = 95) -> Path:
    """Distribution of final returns: one row per run ``{"label", "color", "per_seed", "iqm": (est, lo, hi)}``,
    every seed a dot, the IQM a diamond with its confidence interval."""
    fig = _figure(7.5, 1.2 + 0.55 * max(len(runs), 1))
    ax = fig.add_subplot()
    jitter = np.random.default_rng(0)
    for i, r in enumerate(runs):
        y = len(runs) - 1 - i
        x = np.asarray(r["per_seed"], float)
        ax.scatter(
            x,
            y + jitter.uniform(-0.15, 0.15, len(x)),
            s=22,
            color=r["color"],
            alpha=0.7,
            lw=0,
            label="per-seed final return" if i == 0 else None,
        )
        est, lo, hi = r["iqm"]
        ax.errorbar(
            [est],
            [y],
            xerr=[[est - lo], [hi - est]],
            fmt="D",
            color="black",
            ms=6,
            capsize=4,
            lw=1.4,
            label=f"IQM, {ci_percent:g}% CI" if i == 0 else None,
        )
    ax.set_yticks(range(len(runs)), [r["label"] for r in reversed(runs)], fontsize=8)
    ax.set_ylim(-0.6, len(runs) - 0.4)
    ax.set_xlabel("final evaluation return (mean over a seed's episodes)")
    ax.set_title(title or "final returns per seed", fontsize=10)
    ax.grid(alpha=0.3, axis="x")
    if runs:
        ax.legend(fontsize=8, loc="best")
    return _save(fig, out_png)


def interval_estimates(
    runs: list[dict], out_png: Path, statistics=("mean", "median", "iqm"), title: str = "", ci_percent: float = 95
) -> Path:
    """Side by side, one panel per statistic: each run's point estimate and confidence interval
    (``run[stat] = (est, lo, hi)``), as in rliable's ``plot_interval_estimates``."""
    names = {"mean": "Mean", "median": "Median", "iqm": "IQM"}
    fig = _figure(2.6 * len(statistics) + 2.2, 1.2 + 0.5 * max(len(runs), 1))
    axes = fig.subplots(1, len(statistics), sharey=True, squeeze=False)[0]
    for j, (ax, stat) in enumerate(zip(axes, statistics)):
        for i, r in enumerate(runs):
            y = len(runs) - 1 - i
            est, lo, hi = r[stat]
            ax.barh(y, hi - lo, left=lo, height=0.6, color=r["color"], alpha=0.75)
            ax.plot([est, est], [y - 0.3, y + 0.3], color="black", lw=2)
        ax.set_title(names.get(stat, stat), fontsize=10)
        ax.grid(alpha=0.3, axis="x")
        ax.set_ylim(-0.6, len(runs) - 0.4)
        if j == 0:
            ax.set_yticks(range(len(runs)), [r["label"] for r in reversed(runs)], fontsize=8)
    fig.supxlabel(f"final evaluation return ({ci_percent:g}% CI bars, point estimate in black)", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, out_png)
