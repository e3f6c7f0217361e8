"""Draws docs/img/architecture.png: session, stepper, back ends, algorithm, env and writers.

    python docs/img/make_architecture.py
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

BOXES = {
    # name: (x, y, w, h, title, lines, color)
    "cli": (0.5, 8.6, 4.2, 1.0, "cli.py  /  driver.train, resume", ["advantage train | eval | report"], "#eeeeee"),
    "session": (0.5, 5.6, 4.2, 2.4, "training/session.py: Session", [
        "run folder, config.json", "writers, progress bar (SPS, ETA)", "checkpoint + evaluation cadence",
        "health checks, Ctrl-C / crash", "summary.json, plot, video"], "#dbe9f6"),
    "stepper": (5.6, 5.6, 4.4, 2.4, "Stepper (Protocol)", [
        "start / restore(seeds | checkpoint)", "advance(budget) -> metrics,", "   env steps per seed & update",
        "evaluate, agents, close"], "#fde9c9"),
    "update": (5.6, 3.0, 2.1, 1.9, "UpdateStepper", ["chunks of updates", "+ final short", "rollout"], "#fde9c9"),
    "search": (7.9, 3.0, 2.1, 1.9, "SearchStepper", ["generations:", "ask, episodes,", "tell"], "#fde9c9"),
    "future": (10.4, 5.6, 2.6, 2.4, "(more steppers)", ["Ray worker pool", "(A3C, IMPALA)", "GPU learner"],
               "#f5f5f5"),
    "jax": (5.6, 0.4, 2.1, 1.9, "JaxBackend", ["env + act + update", "in one compiled", "lax.scan"], "#e3f1dc"),
    "gym": (7.9, 0.4, 2.1, 1.9, "GymnasiumBackend", ["host vector env,", "jitted act and", "update"], "#e3f1dc"),
    "algo": (10.4, 0.4, 2.6, 4.5, "Algorithm (Protocol)", [
        "algos/*.py, one file each", "Config, PRESETS", "init, act, update,", "policy_params",
        "(search: ask, tell)", "(A3C: compute_ /", " apply_gradients)", "math from core/"], "#f3dcef"),
    "writers": (0.5, 2.6, 4.2, 2.2, "logging/writers.py: Writer", [
        "metrics.csv, tb/, eval/history.csv", "(JSON lines, W&B: optional)", "rows: step = each seed's env steps"],
        "#e8e2f4"),
    "env": (0.5, 0.4, 4.2, 1.6, "environments", ["JAX-native: reset/step, pure", "any Gymnasium id or class"],
            "#e3f1dc"),
}
ARROWS = [("cli", "session", "runs"), ("session", "stepper", "advance, evaluate"), ("session", "writers", "rows"),
          ("stepper", "update", ""), ("stepper", "search", ""), ("update", "jax", ""), ("update", "gym", ""),
          ("search", "jax", ""), ("search", "gym", ""), ("jax", "env", ""), ("gym", "env", "step"),
          ("gym", "algo", "act, update"), ("stepper", "future", "")]


def centre(name, side):
    x, y, w, h = BOXES[name][:4]
    return {"top": (x + w / 2, y + h), "bottom": (x + w / 2, y), "left": (x, y + h / 2), "right": (x + w, y + h / 2)}[
        side]


def main():
    fig, ax = plt.subplots(figsize=(13, 10))
    ax.set_xlim(0, 13.3)
    ax.set_ylim(-0.8, 10)
    ax.axis("off")
    for x, y, w, h, title, lines, color in BOXES.values():
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.05", fc=color, ec="#444444", lw=1.2))
        ax.text(x + w / 2, y + h - 0.3, title, ha="center", va="center", fontsize=10.5, weight="bold")
        for i, line in enumerate(lines):
            ax.text(x + 0.15, y + h - 0.75 - 0.36 * i, line, ha="left", va="center", fontsize=9)
    sides = {("cli", "session"): ("bottom", "top"), ("session", "stepper"): ("right", "left"),
             ("session", "writers"): ("bottom", "top"), ("stepper", "update"): ("bottom", "top"),
             ("stepper", "search"): ("bottom", "top"), ("update", "jax"): ("bottom", "top"),
             ("update", "gym"): ("bottom", "top"), ("search", "jax"): ("bottom", "top"),
             ("search", "gym"): ("bottom", "top"), ("jax", "env"): ("left", "right"),
             ("gym", "env"): ("bottom", "bottom"), ("gym", "algo"): ("right", "left"),
             ("stepper", "future"): ("right", "left")}
    for a, b, label in ARROWS:
        sa, sb = sides[(a, b)]
        p, q = centre(a, sa), centre(b, sb)
        style = "arc3,rad=-0.25" if (a, b) == ("gym", "env") else "arc3"
        ls = "--" if b == "future" else "-"
        ax.add_patch(FancyArrowPatch(p, q, arrowstyle="-|>", mutation_scale=14, lw=1.2, color="#333333",
                                     connectionstyle=style, linestyle=ls))
        if label:
            dy = {("gym", "env"): -0.55, ("session", "stepper"): 0.45}.get((a, b), 0.15)
            ax.text((p[0] + q[0]) / 2 - 0.4, (p[1] + q[1]) / 2 + dy, label, fontsize=9, color="#333333")
    ax.text(0.5, 9.85, "advantage: one run session, any stepper, any back end, any algorithm", fontsize=13,
            weight="bold")
    ax.text(10.45, 5.05, "(both back ends call act / update)", fontsize=8, color="#555555")
    out = Path(__file__).with_name("architecture.png")
    fig.savefig(out, dpi=110, bbox_inches="tight")
    print(out)


if __name__ == "__main__":
    main()
