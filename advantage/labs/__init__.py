"""The slides' claims as reproducible experiments: ``advantage lab NAME``.

Each lab is one module exposing

- ``NAME``: the CLI name; ``SLIDE``: which deck and slide it reproduces; ``CLAIM``: the claim, one sentence;
- ``run(out_dir: pathlib.Path, seed: int = 0, quick: bool = False) -> dict``: runs the experiment, writes
  ``out_dir/figure.png`` and ``out_dir/results.json`` (every number the figure shows, and the verdict
  ``"claim_holds": bool`` with the numbers it rests on), and returns the results dict. ``quick`` runs a
  smaller version for the tests (same claim, fewer repetitions).

A lab runs in a few minutes at most on 2 CPU cores. ``docs/lectures.md`` shows each figure with its slide.
What the labs share is here: :func:`header` (the first fields of ``results.json``), :func:`quiet_run_config` (the
``RunConfig`` of a training run inside a lab) and :func:`write_results`.
"""

from __future__ import annotations

import importlib

from advantage.errors import UnknownNameError

#: name -> module path
LABS: dict[str, str] = {
    "aliased-gridworld": "advantage.labs.aliased_gridworld",
    "rock-paper-scissors": "advantage.labs.rock_paper_scissors",
    "negative-reward": "advantage.labs.negative_reward",
    "reinforce-variance": "advantage.labs.reinforce_variance",
    "gae-lambda": "advantage.labs.gae_lambda",
    "importance-weights": "advantage.labs.importance_weights",
    "trust-region": "advantage.labs.trust_region",
    "ppo-clip": "advantage.labs.ppo_clip",
    "vtrace-lag": "advantage.labs.vtrace_lag",
    "compatible-critic": "advantage.labs.compatible_critic",
    "v-weighted-actor": "advantage.labs.v_weighted_actor",
    "gradient-free-efficiency": "advantage.labs.gradient_free_efficiency",
    "replay-size": "advantage.labs.replay_size",
    "replay-recovery": "advantage.labs.replay_recovery",
    "entropy-bonus": "advantage.labs.entropy_bonus",
    "shared-vs-separate": "advantage.labs.shared_vs_separate",
    "batch-vs-online": "advantage.labs.batch_vs_online",
    "average-reward": "advantage.labs.average_reward",
    "try-a2c-first": "advantage.labs.try_a2c_first",
}


def header(module, seed: int, quick: bool) -> dict:
    """The first fields of every lab's ``results.json``: which lab, which slide and claim, and how it was run."""
    return {"lab": module.NAME, "slide": module.SLIDE, "claim": module.CLAIM, "seed": seed, "quick": quick}


def write_results(out_dir, fig, results: dict) -> dict:
    """Write a lab's ``out_dir/figure.png`` (``fig``, which is closed then) and ``out_dir/results.json``; returns
    ``results``."""
    import json

    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_dir / "figure.png", dpi=110, bbox_inches="tight")
    (out_dir / "results.json").write_text(json.dumps(results, indent=2))
    plt.close(fig)
    return results


def quiet_run_config(
    env: str, seeds, total_steps: int, run_dir, *, eval_episodes: int, evals: int | None = None, **overrides
):
    """The ``RunConfig`` of a lab's training run: no progress bar, no video, ``eval_episodes`` per evaluation (at
    the end). With ``evals``, also ``evals`` evaluations during the run (``eval_every = total_steps // evals``, one
    compiled chunk each), whose episodes are not kept (``eval_record=0``). ``overrides``: other RunConfig fields."""
    from advantage.training.run_config import RunConfig

    during = {} if evals is None else {"eval_every": total_steps // evals, "eval_record": 0, "n_chunks": evals}
    return RunConfig(
        env=env,
        seeds=tuple(seeds),
        total_steps=total_steps,
        run_dir=str(run_dir),
        progress=False,
        eval_episodes=eval_episodes,
        video=False,
        **{**during, **overrides},
    )


def available() -> list[str]:
    """The labs whose module exists."""
    out = []
    for name, path in LABS.items():
        try:
            importlib.import_module(path)
        except ModuleNotFoundError as e:
            if e.name != path:
                raise
            continue
        out.append(name)
    return out


def get(name: str):
    """The lab module ``name``; an UnknownNameError (a KeyError) whose message lists the labs otherwise."""
    if name not in LABS:
        import difflib

        close = difflib.get_close_matches(name, LABS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownNameError(f"unknown lab {name!r}.{hint} Labs: {', '.join(LABS)} (advantage lab --list).")
    return importlib.import_module(LABS[name])
