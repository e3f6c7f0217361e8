"""Metric writers: where the rows of a run go (``metrics.csv``, TensorBoard, ``metrics.jsonl``, Weights & Biases).

Every writer follows the :class:`Writer` protocol (``write_rows(rows)``, ``close()``); :func:`open_writers`
returns the writers a run's :class:`~advantage.training.run_config.RunConfig` asks for, behind one
:class:`FanOut`."""

from __future__ import annotations

import csv
import functools
import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from advantage.errors import MissingExtraError, RunError

if TYPE_CHECKING:
    from advantage.training.run_config import RunConfig

WANDB_HINT = 'logging to Weights & Biases (--wandb-project) needs the wandb package: pip install "advantage[wandb]"'


@runtime_checkable
class Writer(Protocol):
    """Where metric rows go.

    A row is a dict with ``step`` (the x axis: the env steps that row's seed has collected, summed over its
    parallel envs; it does not depend on the number of seeds), ``seed`` (the training seed) and metric names
    in namespaces: ``train/`` (the rollout), ``loss/`` (the update), ``eval/`` (an evaluation), ``perf/``
    (timings), ``search/`` and the algorithms' own (docs/metrics.md). A row holds the metrics of one seed at
    one step; a value may be NaN (an update in which no episode ended), and a row need not hold every metric
    (``perf/*`` only at the end of a chunk, ``eval/*`` in rows of their own). Each seed's rows come in
    increasing ``step`` order, except that an evaluation row may repeat the step of the training row before it.
    """

    def write_rows(self, rows: list[dict]) -> None:
        """Write ``rows`` (possibly of several seeds); a writer keeps no reference to them."""

    def close(self) -> None:
        """Flush and release everything; the writer is not used after this."""


def _kept_up_to(resume_step: int | dict) -> Callable[[Any], int]:
    """``seed -> last step kept`` of a resumed run: one step for all seeds, or ``{seed: step}``."""
    if isinstance(resume_step, dict):
        return lambda seed: resume_step[int(seed)]
    return lambda seed: resume_step


def _close_all(closers: Iterable[Callable[[], Any]]) -> None:
    """Call every closer, even when some raise; then raise the first error."""
    first: Exception | None = None
    for close in closers:
        try:
            close()
        except Exception as e:  # noqa: BLE001 - the others must still be closed
            first = first or e
    if first is not None:
        raise first


class CSVWriter:
    """``metrics.csv``: one row per (seed, update); columns fixed by the first write."""

    def __init__(self, path: Path, resume_step: int | dict | None = None, skip_namespaces: Sequence[str] = ()):
        """``resume_step``: the env step each seed's run continues from (one int for all seeds, or
        ``{seed: step}``); rows after it are dropped, because the resumed run writes them again.
        ``skip_namespaces``: rows whose metrics all lie in these namespaces (``("eval/",)``) are not written."""
        self.path = Path(path)
        self.skip = tuple(skip_namespaces)
        self.fields: Sequence[str] | None = None
        if resume_step is not None and self.path.exists() and self.path.stat().st_size > 0:
            # Drop rows written after the checkpoint we resume from: they will be produced again.
            last = _kept_up_to(resume_step)
            with open(self.path, newline="") as f:
                reader = csv.DictReader(f)
                self.fields = reader.fieldnames
                rows = [r for r in reader if int(r["step"]) <= last(r["seed"])]
            tmp = self.path.with_suffix(".tmp")
            with open(tmp, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=self.fields or ())
                w.writeheader()
                w.writerows(rows)
            os.replace(tmp, self.path)
        self.file = open(self.path, "a", newline="")
        self.writer = csv.DictWriter(self.file, fieldnames=self.fields) if self.fields else None

    def write_rows(self, rows: list[dict]) -> None:
        if self.skip:
            rows = [r for r in rows if not all(k.startswith(self.skip) for k in r if k not in ("step", "seed"))]
        if not rows:
            return
        if self.writer is None:
            keys = sorted({k for r in rows for k in r} - {"step", "seed"})
            self.fields = ["step", "seed"] + keys
            self.writer = csv.DictWriter(self.file, fieldnames=self.fields, extrasaction="ignore")
            self.writer.writeheader()
        self.writer.writerows(rows)
        self.file.flush()

    def close(self) -> None:
        self.file.close()


class TensorBoardWriter:
    """TensorBoard event files, one folder per seed (``tb/seed_N``); NaN values are skipped.

    One event per row holding all its scalars (``add_scalar`` per metric queued one event per value
    through tensorboardX's inter-thread queue, ~100 µs each: 3.3 s per seed for a 781-update PPO run)."""

    def __init__(self, root: Path, seeds, resume_step: int | dict | None = None):
        from tensorboardX import SummaryWriter

        purge = resume_step if isinstance(resume_step, dict) else {s: resume_step for s in seeds}
        self.writers = {
            s: SummaryWriter(str(Path(root) / f"seed_{s}"), purge_step=purge[s], flush_secs=30, max_queue=1000)
            for s in seeds
        }

    def write_rows(self, rows: list[dict]) -> None:
        from tensorboardX.proto.summary_pb2 import Summary

        for r in rows:
            values = [
                Summary.Value(tag=k, simple_value=float(v))
                for k, v in r.items()
                if k not in ("step", "seed") and v is not None and not (isinstance(v, float) and math.isnan(v))
            ]
            if values:
                self.writers[r["seed"]].file_writer.add_summary(Summary(value=values), r["step"])

    def close(self) -> None:
        _close_all(w.close for w in self.writers.values())


def _json_value(v):
    """A JSON-safe scalar: NumPy scalars as Python numbers, NaN and infinities as None (JSON has neither)."""
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


class JSONLWriter:
    """``metrics.jsonl``: one JSON object per row, in the order written (training and evaluation rows alike),
    with the row's keys only; NaN and infinities are written as ``null``. Read it with
    ``[json.loads(line) for line in open(path)]`` or ``pandas.read_json(path, lines=True)``."""

    def __init__(self, path: Path, resume_step: int | dict | None = None):
        """``resume_step``: as :class:`CSVWriter`'s (rows after it are dropped; so is a line cut short by a kill)."""
        self.path = Path(path)
        if resume_step is not None and self.path.exists():
            last = _kept_up_to(resume_step)
            kept = []
            for line in self.path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:  # the last line of a killed run may be incomplete
                    continue
                if int(row["step"]) <= last(row["seed"]):
                    kept.append(line + "\n")
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text("".join(kept))
            os.replace(tmp, self.path)
        self.file = open(self.path, "a")

    def write_rows(self, rows: list[dict]) -> None:
        if not rows:
            return
        self.file.writelines(
            json.dumps({k: _json_value(v) for k, v in r.items()}, allow_nan=False) + "\n" for r in rows
        )
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def import_wandb():
    """The ``wandb`` module, or a :class:`MissingExtraError` that names the extra to install."""
    try:
        import wandb
    except ImportError as e:
        raise MissingExtraError(f"{WANDB_HINT} ({e})") from None
    return wandb


class WandbWriter:
    """Weights & Biases: one W&B run per training seed, named ``SEED_N``, grouped by the run folder's name,
    with the run's ``config.json`` as its config and its files in ``RUN_DIR/wandb/``. Every row is logged with
    ``step`` as W&B's step (NaN values are skipped). An evaluation row of a seed that is already past the
    evaluation's step (population search evaluates all seeds at the smallest seed's step) is logged at that
    seed's own step, the env steps its evaluated agent has trained for: W&B drops steps that go back.

    The W&B run ids are saved in ``RUN_DIR/wandb/run_ids.json``; a resumed run (``--resume``) continues the
    same W&B runs. The rows it writes again after the checkpoint are not sent for steps that the W&B run already
    holds from before the interruption (W&B cannot replace them): those keep the values of the first attempt, the
    same numbers on the JAX back end, whose resume is exact. Offline, a resumed run does not know those steps, and
    its W&B files (a second ``offline-run-*`` folder with the same run id) hold every row again.
    Honours ``WANDB_MODE`` (``offline``: upload later with ``wandb sync RUN_DIR/wandb/offline-run-*``) and the
    other ``WANDB_*`` variables."""

    def __init__(
        self,
        run_dir: Path,
        seeds,
        project: str,
        entity: str | None = None,
        config: dict | None = None,
        resume: bool = False,
    ):
        wandb = import_wandb()
        run_dir = Path(run_dir)
        (run_dir / "wandb").mkdir(parents=True, exist_ok=True)
        self.ids_path = run_dir / "wandb" / "run_ids.json"
        ids = json.loads(self.ids_path.read_text()) if resume and self.ids_path.exists() else {}
        self.runs: dict[int, Any] = {}
        self.last_step: dict[int, int] = {}
        try:
            for s in seeds:
                run_id = ids.get(str(s))
                self.runs[s] = wandb.init(
                    project=project,
                    entity=entity,
                    group=run_dir.name,
                    name=f"SEED_{s}",
                    dir=str(run_dir),
                    config=config,
                    id=run_id,
                    resume="allow" if run_id else None,
                    reinit="create_new",
                )
        except Exception as e:
            self.close()
            raise RunError(
                f"could not start the Weights & Biases run of seed {s} ({type(e).__name__}: {e}); "
                "log in with `wandb login`, or log offline with WANDB_MODE=offline"
            ) from e
        self.ids_path.write_text(json.dumps({str(s): r.id for s, r in self.runs.items()}))
        # A resumed W&B run starts at the step after the last one it holds (online; 0 offline): the rows below
        # it, written again after the checkpoint, are W&B's already.
        self.resumed_at = {s: int(r.starting_step or 0) if str(s) in ids else 0 for s, r in self.runs.items()}

    def write_rows(self, rows: list[dict]) -> None:
        for r in rows:
            seed = r["seed"]
            if int(r["step"]) < self.resumed_at[seed]:
                continue
            step = max(int(r["step"]), self.last_step.get(seed, 0))
            metrics = {
                k: v
                for k, v in r.items()
                if k not in ("step", "seed") and v is not None and not (isinstance(v, float) and math.isnan(v))
            }
            self.runs[seed].log(metrics, step=step)
            self.last_step[seed] = step

    def close(self) -> None:
        """Finish every W&B run; closed while an exception is being handled (a crash, Ctrl-C), as failed."""
        exit_code = 1 if sys.exc_info()[0] is not None else 0
        _close_all(functools.partial(r.finish, exit_code=exit_code) for r in self.runs.values())


class FanOut:
    """Several writers as one: every row goes to each of them, in order; ``close`` closes them all (even when
    one raises; the first error is raised after the last writer is closed)."""

    def __init__(self, *writers: Writer):
        self.writers = list(writers)

    def write_rows(self, rows: list[dict]) -> None:
        for w in self.writers:
            w.write_rows(rows)

    def close(self) -> None:
        _close_all(w.close for w in self.writers)


def open_writers(
    run_dir: Path, seeds, run: RunConfig, config_dict: dict | None, resume_step: int | dict | None = None
) -> FanOut:
    """The metric writers of the run in ``run_dir``, as one :class:`FanOut`: ``metrics.csv`` (the training
    rows; evaluation rows have their own CSV, ``eval/history.csv``, which the driver writes), TensorBoard
    (``tb/seed_N``), ``metrics.jsonl`` with ``run.jsonl``, and Weights & Biases with ``run.wandb_project``
    (``config_dict``: the run's ``config.json``, as the W&B runs' config). ``resume_step``: the env step each
    seed continues from (one int, or ``{seed: step}``); None for a new run."""
    run_dir = Path(run_dir)
    writers: list[Writer] = []
    try:
        writers.append(CSVWriter(run_dir / "metrics.csv", resume_step=resume_step, skip_namespaces=("eval/",)))
        writers.append(TensorBoardWriter(run_dir / "tb", seeds, resume_step=resume_step))
        if run.jsonl:
            writers.append(JSONLWriter(run_dir / "metrics.jsonl", resume_step=resume_step))
        if run.wandb_project:
            writers.append(
                WandbWriter(
                    run_dir, seeds, run.wandb_project, run.wandb_entity, config_dict, resume=resume_step is not None
                )
            )
    except BaseException:
        _close_all(w.close for w in writers)
        raise
    return FanOut(*writers)
