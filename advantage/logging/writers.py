"""Metric writers. Each has ``write(step, metrics, seed)`` and ``close()``; the x axis
is always the global env step count of that seed."""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from pathlib import Path


class CSVWriter:
    """``metrics.csv``: one row per (seed, update); columns fixed by the first write."""

    def __init__(self, path: Path, resume_step: int | dict | None = None):
        """``resume_step``: the env step each seed's run continues from (one int for all seeds, or
        ``{seed: step}``); rows after it are dropped, because the resumed run writes them again."""
        self.path = Path(path)
        self.fields: Sequence[str] | None = None
        if resume_step is not None and self.path.exists() and self.path.stat().st_size > 0:
            # Drop rows written after the checkpoint we resume from: they will be produced again.
            with open(self.path, newline="") as f:
                reader = csv.DictReader(f)
                self.fields = reader.fieldnames
                last = (lambda seed: resume_step[int(seed)]) if isinstance(resume_step, dict) else (  # noqa: E731
                    lambda seed: resume_step)
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
        if not rows:
            return
        if self.writer is None:
            keys = sorted({k for r in rows for k in r} - {"step", "seed"})
            self.fields = ["step", "seed"] + keys
            self.writer = csv.DictWriter(self.file, fieldnames=self.fields, extrasaction="ignore")
            self.writer.writeheader()
        self.writer.writerows(rows)
        self.file.flush()

    def close(self):
        self.file.close()


class TensorBoardWriter:
    """TensorBoard event files, one folder per seed (``tb/seed_N``)."""

    def __init__(self, root: Path, seeds, resume_step: int | dict | None = None):
        from tensorboardX import SummaryWriter

        purge = resume_step if isinstance(resume_step, dict) else {s: resume_step for s in seeds}
        self.writers = {
            s: SummaryWriter(str(Path(root) / f"seed_{s}"), purge_step=purge[s], flush_secs=30) for s in seeds
        }

    def write_rows(self, rows: list[dict]) -> None:
        for r in rows:
            w = self.writers[r["seed"]]
            for k, v in r.items():
                if k not in ("step", "seed") and v is not None and not (isinstance(v, float) and math.isnan(v)):
                    w.add_scalar(k, v, r["step"])

    def close(self):
        for w in self.writers.values():
            w.close()
