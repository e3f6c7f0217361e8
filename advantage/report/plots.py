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
