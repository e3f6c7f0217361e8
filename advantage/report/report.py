"""``advantage report``: aggregate statistics, figures and a summary of one or many runs.

Seeds are the unit of evidence. For each run the final evaluation gives one number per
training seed (the mean return over that seed's evaluation episodes); the report gives
the mean, median and IQM of those numbers with percentile stratified-bootstrap
confidence intervals (:mod:`advantage.report.stats`), learning curves (the IQM across
seeds of ``train/episode_return`` with a bootstrap band) and the distribution of final
returns, one set of figures per environment, so that algorithms or configurations
trained on the same env are compared side by side.

Writes ``report.json`` (every number), ``report.md`` (a table and the figures) and PNGs
into the output folder.
"""

from __future__ import annotations

import csv
import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from advantage.errors import ReportError  # defined there; importable from here as before
from advantage.report import plots, stats

#: Run options that do not change what is learned; left out of labels.
_NOT_IN_LABEL = {
    "run_dir",
    "progress",
    "n_chunks",
    "checkpoint_every",
    "async_envs",
    "env_check",
    "seed_batching",
    "env",
    "eval_record",
    "eval_every",
}
#: At most this many differing config fields are shown in a label (report.json has them all).
_LABEL_FIELDS = 3
#: Learning curves are interpolated onto at most this many common env-step points.
_CURVE_POINTS = 200
CURVE_METRIC = "train/episode_return"


@dataclass
class _Run:
    path: Path
    config: dict
    summary: dict | None
    seeds: list
    eval: dict | None = None  # per_seed, episodes_per_seed, deterministic, source
    curves: dict = field(default_factory=dict)  # seed -> (steps, values), finite values only
    notes: list = field(default_factory=list)
    label: str = ""
    config_diff: dict = field(default_factory=dict)

    @property
    def algo(self) -> str:
        return self.config.get("algo", "?")

    @property
    def env(self) -> str:
        return self.config.get("run", {}).get("env", "?")


# --------------------------------------------------------------------------- reading runs


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ReportError(
            f"{path} cannot be read ({e}); the run folder is damaged: leave it out of the report, "
            "or train the run again"
        ) from None


def _load_eval(path: Path, config: dict, summary: dict | None, seeds: list) -> tuple[dict | None, str | None]:
    """Per-seed final returns: summary.json's eval_return, else eval/final.json, else the latest
    ``advantage eval`` file. Returns ``(eval, note)``."""
    ev = (summary or {}).get("eval_return")
    if ev and ev.get("per_seed"):
        return {
            "per_seed": [float(v) for v in ev["per_seed"]],
            "episodes_per_seed": ev.get("episodes_per_seed"),
            "deterministic": ev.get("deterministic"),
            "source": "summary.json",
        }, None
    candidates = [path / "eval" / "final.json"] + sorted((path / "eval").glob("eval-*.json"), reverse=True)
    for f in candidates:
        if not f.exists():
            continue
        entries = _read_json(f)
        try:
            by_seed = {e["seed"]: np.asarray(e["returns"], np.float64) for e in entries}
        except (TypeError, KeyError) as e:
            raise ReportError(
                f"{f} is not an evaluation file of advantage ({e!r} missing); move it out of the eval/ "
                "folder, or evaluate the run again with: advantage eval RUN_DIR"
            ) from None
        if not by_seed or any(r.size == 0 for r in by_seed.values()):
            continue
        order = [s for s in seeds if s in by_seed] or list(by_seed)
        final = f.name == "final.json"
        out = {
            "per_seed": [float(by_seed[s].mean()) for s in order],
            "episodes_per_seed": int(min(by_seed[s].size for s in order)),
            # the final evaluation follows the run's --eval-deterministic; `advantage eval` files do not say
            "deterministic": config["run"].get("eval_deterministic") if final else None,
            "source": str(f.relative_to(path)),
        }
        note = (
            None
            if final
            else (
                f"no final evaluation; used {out['source']} written by `advantage eval` "
                "(whether it was deterministic is not recorded in that file)"
            )
        )
        return out, note
    return None, None


def _load_curves(metrics_csv: Path, metric: str = CURVE_METRIC) -> dict:
    series: dict = {}
    if not metrics_csv.exists():
        return series
    with open(metrics_csv, newline="") as f:
        for row in csv.DictReader(f):
            v = row.get(metric, "")
            try:
                value = float(v)
                step, seed = int(float(row["step"])), int(float(row["seed"]))
            except (TypeError, ValueError, KeyError):
                continue
            if math.isfinite(value):
                series.setdefault(seed, []).append((step, value))
    out = {}
    for seed, pts in series.items():
        pts.sort()
        steps, values = np.asarray(pts, np.float64).T
        out[seed] = (steps, values)
    return out


def load_run(run_dir) -> _Run:
    path = Path(run_dir)
    if not path.exists():
        raise ReportError(f"{path} does not exist; give run folders written by `advantage train`")
    if not path.is_dir() or not (path / "config.json").exists():
        raise ReportError(
            f"{path} is not a run folder (it has no config.json); give folders written by `advantage train`"
        )
    config = _read_json(path / "config.json")
    if not isinstance(config, dict) or "run" not in config or "algo" not in config:
        raise ReportError(
            f"{path / 'config.json'} is not the configuration of an advantage run; give folders "
            "written by `advantage train`"
        )
    summary = _read_json(path / "summary.json") if (path / "summary.json").exists() else None
    seeds = list((summary or {}).get("seeds") or config["run"].get("seeds") or [])
    run = _Run(path, config, summary, seeds)
    if summary is None:
        run.notes.append("no summary.json: the run did not finish (continue it with `advantage train --resume`)")
    run.eval, note = _load_eval(path, config, summary, seeds)
    if note:
        run.notes.append(note)
    if run.eval is None:
        run.notes.append(
            "no evaluation: left out of the final-return statistics (it was trained with "
            "--eval-episodes 0 or did not finish; `advantage eval` evaluates it)"
        )
    elif len(run.eval["per_seed"]) == 1:
        run.notes.append(
            "a single seed: its confidence intervals are degenerate (one number cannot show how "
            "results vary between seeds); train with several --seeds"
        )
    run.curves = _load_curves(path / "metrics.csv")
    if not run.curves:
        run.notes.append(f"no finite {CURVE_METRIC} in metrics.csv (no training episode ended): no learning curve")
    return run


# --------------------------------------------------------------------------- labels


def _fmt_value(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_fmt_value(x) for x in v) + "]"
    return str(v)


def _flat_config(config: dict) -> dict:
    flat = {"backend": config["run"].get("backend")}
    for k, v in (config.get("algo_config") or {}).items():
        flat[k] = v
    for k, v in config["run"].items():
        if k not in _NOT_IN_LABEL:
            flat[k if k not in flat else f"run.{k}"] = v
    return flat


def _assign_labels(runs: list[_Run]) -> None:
    """``algo env field=value ...`` with the config fields that differ between runs of the same
    algorithm on the same env; the folder name is added where labels would still collide."""
    groups: dict = {}
    for r in runs:
        groups.setdefault((r.algo, r.env), []).append(r)
    for (algo, env), group in groups.items():
        flats = [_flat_config(r.config) for r in group]
        keys = sorted(set().union(*flats), key=lambda k: (k != "backend", k))
        differing = [k for k in keys if len({json.dumps(f.get(k), sort_keys=True) for f in flats}) > 1]
        for r, f in zip(group, flats):
            r.config_diff = {k: f.get(k) for k in differing}
            shown = [f"{k}={_fmt_value(f.get(k))}" for k in differing[:_LABEL_FIELDS]]
            if len(differing) > _LABEL_FIELDS:
                shown.append("...")
            r.label = " ".join([algo, env] + shown)
    seen: dict = {}
    for r in runs:
        seen.setdefault(r.label, []).append(r)
    for label, same in seen.items():
        if len(same) > 1:
            for r in same:
                r.label = f"{label} ({r.path.name})"


# --------------------------------------------------------------------------- numbers


def _ci_dict(ci: stats.CI) -> dict:
    return {"estimate": ci.estimate, "lo": ci.lo, "hi": ci.hi}


def _common_grid(curves: dict) -> np.ndarray | None:
    """Env steps at which every seed has data (between the latest first and the earliest last point)."""
    start = max(s[0] for s, _ in curves.values())
    end = min(s[-1] for s, _ in curves.values())
    if end < start:
        return None
    steps = np.unique(np.concatenate([s[(s >= start) & (s <= end)] for s, _ in curves.values()]))
    if len(steps) > _CURVE_POINTS:
        steps = steps[np.unique(np.linspace(0, len(steps) - 1, _CURVE_POINTS).round().astype(int))]
    return steps


def _curve_stats(run: _Run, n_boot: int, alpha: float, seed: int) -> dict | None:
    if not run.curves:
        return None
    grid = _common_grid(run.curves)
    if grid is None or len(grid) == 0:
        run.notes.append("the seeds' learning curves do not overlap in env steps: no learning curve")
        return None
    seeds = sorted(run.curves)
    matrix = np.stack([np.interp(grid, *run.curves[s]) for s in seeds])
    est, lo, hi = stats.learning_curve_stats(matrix, n_boot=n_boot, alpha=alpha, seed=seed)
    return {
        "metric": CURVE_METRIC,
        "statistic": "iqm",
        "seeds": seeds,
        "steps": grid.tolist(),
        "estimate": est.tolist(),
        "lo": lo.tolist(),
        "hi": hi.tolist(),
    }


def _safe_name(env: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", env).strip("_") or "env"


def _fmt(x: float) -> str:
    if not math.isfinite(x):
        return str(x)
    return f"{x:.0f}" if abs(x) >= 1000 else f"{x:.4g}" if abs(x) < 1 else f"{x:.1f}"


def _fmt_ci(d: dict, n_seeds: int) -> str:
    if n_seeds < 2:
        return f"{_fmt(d['estimate'])} (1 seed, no CI)"
    return f"{_fmt(d['estimate'])} [{_fmt(d['lo'])}, {_fmt(d['hi'])}]"


# --------------------------------------------------------------------------- the report


def make_report(run_dirs, out_dir, n_boot: int = 2000, alpha: float = 0.05, seed: int = 0) -> dict:
    """Statistics, figures, ``report.json`` and ``report.md`` of ``run_dirs`` in ``out_dir``.

    Returns the content of ``report.json``. Raises :class:`ReportError` for bad input
    (no runs, a folder that is not a run, ``out_dir`` is a file).
    """
    run_dirs = [Path(d) for d in run_dirs]
    if not run_dirs:
        raise ReportError("no runs given: advantage report RUN_DIR [RUN_DIR ...] --out DIR")
    if n_boot < 1:
        raise ReportError(f"--n-boot {n_boot}: give at least 1 bootstrap resample (2000 is usual)")
    if not 0 < alpha < 1:
        raise ReportError(f"confidence level {1 - alpha:g} must be strictly between 0 and 1, e.g. 0.95")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ReportError(f"--out {out} is a file; give a folder to write the report into")
    unique: list[Path] = []
    global_notes: list[str] = []
    for d in run_dirs:
        if any(d.resolve() == u.resolve() for u in unique):
            global_notes.append(f"{d} was given more than once; it is reported once")
        else:
            unique.append(d)
    runs = [load_run(d) for d in unique]
    _assign_labels(runs)
    out.mkdir(parents=True, exist_ok=True)
    ci_percent = 100 * (1 - alpha)

    run_entries = []
    for i, r in enumerate(runs):
        entry = {
            "label": r.label,
            "run_dir": str(r.path),
            "algo": r.algo,
            "env": r.env,
            "backend": (r.summary or {}).get("backend") or r.config["run"].get("backend"),
            "seeds": r.seeds,
            "env_steps": (r.summary or {}).get("env_steps"),
            "config_diff": r.config_diff,
            "final_return": None,
            "learning_curve": None,
        }
        if r.eval is not None:
            per_seed = r.eval["per_seed"]
            entry["final_return"] = {
                "per_seed": per_seed,
                "n_seeds": len(per_seed),
                "episodes_per_seed": r.eval["episodes_per_seed"],
                "deterministic": r.eval["deterministic"],
                "source": r.eval["source"],
                "ci_degenerate": len(per_seed) < 2,
                **{
                    name: _ci_dict(stats.stratified_bootstrap_ci(per_seed, name, n_boot, alpha, seed))
                    for name in ("mean", "median", "iqm")
                },
            }
            f = entry["final_return"]
            if len(per_seed) > 1 and f["mean"]["lo"] == min(per_seed) and f["mean"]["hi"] == max(per_seed):
                r.notes.append(
                    f"only {len(per_seed)} seeds: the bootstrap interval of the mean is the whole range of "
                    "the seeds, which understates the uncertainty; 5 to 10 seeds give useful intervals"
                )
        entry["learning_curve"] = _curve_stats(r, n_boot, alpha, seed)
        entry["notes"] = list(r.notes)
        entry["color_index"] = i
        run_entries.append(entry)

    envs: dict = {}
    for e in run_entries:
        envs.setdefault(e["env"], []).append(e)
    env_entries = {}
    for env, entries in envs.items():
        name = _safe_name(env)
        figures = {}
        curves = [
            {
                "label": e["label"],
                "color": plots.color(e["color_index"]),
                "n_seeds": len(e["learning_curve"]["seeds"]),
                **{k: e["learning_curve"][k] for k in ("steps", "estimate", "lo", "hi")},
            }
            for e in entries
            if e["learning_curve"]
        ]
        if curves:
            figures["learning_curves"] = plots.learning_curves_iqm(
                curves,
                out / f"learning_curves_{name}.png",
                title=f"{env}: IQM over seeds, {ci_percent:g}% CI band",
                ci_percent=ci_percent,
            ).name
        evaluated = [e for e in entries if e["final_return"]]
        finals = [
            {
                "label": e["label"],
                "color": plots.color(e["color_index"]),
                "per_seed": e["final_return"]["per_seed"],
                **{
                    st: tuple(e["final_return"][st][k] for k in ("estimate", "lo", "hi"))
                    for st in ("mean", "median", "iqm")
                },
            }
            for e in evaluated
        ]
        if finals:
            figures["final_returns"] = plots.final_returns(
                finals,
                out / f"final_returns_{name}.png",
                title=f"{env}: final evaluation return per seed",
                ci_percent=ci_percent,
            ).name
        if len(finals) > 1:
            figures["comparison"] = plots.interval_estimates(
                finals,
                out / f"comparison_{name}.png",
                title=f"{env}: aggregate final return, {ci_percent:g}% CIs",
                ci_percent=ci_percent,
            ).name
        env_entries[env] = {"runs": [e["label"] for e in entries], "figures": figures}

    report = {
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "settings": {
            "unit": "training seed: each number summarised is one seed's mean evaluation return",
            "statistics": {
                "mean": "arithmetic mean over seeds",
                "median": "median over seeds",
                "iqm": "interquartile mean: mean after dropping the floor(n/4) lowest and highest "
                "(scipy.stats.trim_mean(x, 0.25))",
            },
            "ci": f"{ci_percent:g}% percentile bootstrap, resampling seeds with replacement (stratified by task)",
            "n_boot": n_boot,
            "alpha": alpha,
            "bootstrap_seed": seed,
            "learning_curve": f"IQM over seeds of {CURVE_METRIC}, each seed linearly interpolated onto common env "
            f"steps (at most {_CURVE_POINTS}), with a bootstrap band over seeds",
        },
        "runs": run_entries,
        "envs": env_entries,
        "notes": global_notes,
    }
    (out / "report.json").write_text(json.dumps(report, indent=2, default=_json_default))
    (out / "report.md").write_text(_markdown(report, ci_percent))
    return report


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def _markdown(report: dict, ci_percent: float) -> str:
    s = report["settings"]
    lines = [
        "# Report",
        "",
        f"{len(report['runs'])} run(s), written by `advantage report` on {report['created']}.",
        "",
        "Seeds are the unit of evidence: every statistic below summarises one number per training seed, that "
        "seed's mean return over its evaluation episodes (raw, undiscounted). Intervals are "
        f"{ci_percent:g}% percentile bootstrap confidence intervals over seeds ({s['n_boot']} resamples). "
        "IQM is the interquartile mean (the mean of the middle half of the seeds; with fewer than 4 seeds "
        "it equals the mean). All numbers are in `report.json`.",
        "",
    ]
    by_label = {r["label"]: r for r in report["runs"]}
    for env, env_entry in report["envs"].items():
        lines += [f"## {env}", ""]
        rows = [by_label[label] for label in env_entry["runs"]]
        lines += [
            f"| run | seeds | eval episodes per seed | mean [{ci_percent:g}% CI] | median [{ci_percent:g}% CI] | "
            f"IQM [{ci_percent:g}% CI] | per-seed final returns |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            f = r["final_return"]
            if f is None:
                lines.append(f"| {r['label']} | {len(r['seeds'])} | no evaluation | - | - | - | - |")
                continue
            mode = {True: ", deterministic", False: ", stochastic"}.get(f["deterministic"], "")
            per_seed = ", ".join(_fmt(v) for v in f["per_seed"])
            lines.append(
                f"| {r['label']} | {f['n_seeds']} | {f['episodes_per_seed']}{mode} | "
                f"{_fmt_ci(f['mean'], f['n_seeds'])} | {_fmt_ci(f['median'], f['n_seeds'])} | "
                f"{_fmt_ci(f['iqm'], f['n_seeds'])} | {per_seed} |"
            )
        lines.append("")
        captions = {
            "learning_curves": f"Learning curves: IQM over seeds of `{CURVE_METRIC}` against env steps per seed, "
            f"with a {ci_percent:g}% bootstrap band.",
            "final_returns": f"Final evaluation return of every seed (dots) and the IQM with its {ci_percent:g}% CI.",
            "comparison": f"Mean, median and IQM of the final return with {ci_percent:g}% CIs, side by side.",
        }
        for key, fname in env_entry["figures"].items():
            lines += [captions[key], "", f"![{key.replace('_', ' ')}]({fname})", ""]
    notes = [f"- {n}" for n in report["notes"]]
    for r in report["runs"]:
        notes += [f"- {r['label']} (`{r['run_dir']}`): {n}" for n in r["notes"]]
    if notes:
        lines += ["## Notes", ""] + notes + [""]
    lines += ["## Runs", ""]
    for r in report["runs"]:
        diff = ", ".join(f"{k}={_fmt_value(v)}" for k, v in r["config_diff"].items()) or "-"
        lines.append(
            f"- **{r['label']}**: `{r['run_dir']}`, {r['env_steps']} env steps per seed, seeds "
            f"{r['seeds']}, {r['backend']} back end; differs in: {diff}"
        )
    return "\n".join(lines) + "\n"
