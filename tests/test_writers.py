"""The metric writers behind one protocol: CSV, TensorBoard, JSON lines, Weights & Biases and the fan-out."""

from __future__ import annotations

import csv
import json
import math
import struct
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from helpers import train_run

from advantage.algos import cem, ppo
from advantage.errors import ConfigError, MissingExtraError
from advantage.logging.writers import CSVWriter, FanOut, JSONLWriter, TensorBoardWriter, WandbWriter, Writer
from advantage.training.run_config import RunConfig

SMALL = dict(n_envs=8, n_steps=32, n_epochs=2, n_minibatches=2)
NAN = float("nan")


def _csv_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _jsonl_rows(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


class Recorder:
    """A writer that keeps what it gets; ``fail`` makes its ``close`` raise."""

    def __init__(self, fail: bool = False):
        self.rows: list[dict] = []
        self.closed, self.fail = False, fail

    def write_rows(self, rows):
        self.rows.extend(rows)

    def close(self):
        self.closed = True
        if self.fail:
            raise OSError("disk full")


class FakeRun:
    def __init__(self, **kwargs):
        self.kwargs, self.logged, self.exit_code = kwargs, [], None
        self.id = kwargs["id"] or f"id{kwargs['name']}"
        self.starting_step = 17 if kwargs["resume"] else 0  # the first step of a resumed run (online)

    def log(self, metrics, step):
        self.logged.append((step, metrics))

    def finish(self, exit_code=None):
        self.exit_code = exit_code


@pytest.fixture
def fake_wandb(monkeypatch):
    """A stand-in ``wandb`` module that records every ``init``."""
    module = types.ModuleType("wandb")
    module.runs = []  # type: ignore[attr-defined]

    def init(**kwargs):
        module.runs.append(FakeRun(**kwargs))  # type: ignore[attr-defined]
        return module.runs[-1]  # type: ignore[attr-defined]

    module.init = init  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "wandb", module)
    return module


# ----------------------------------------------------------------------------- protocol and fan-out

def test_every_writer_satisfies_the_protocol(tmp_path, fake_wandb):
    writers = [CSVWriter(tmp_path / "m.csv"), TensorBoardWriter(tmp_path / "tb", [0]),
               JSONLWriter(tmp_path / "m.jsonl"), WandbWriter(tmp_path, [0], "p"), FanOut(), Recorder()]
    try:
        for w in writers:
            assert isinstance(w, Writer), type(w).__name__
    finally:
        FanOut(*writers).close()
    assert not isinstance(object(), Writer)


def test_fan_out_forwards_every_row_and_closes_all_even_when_one_raises():
    a, bad, c = Recorder(), Recorder(fail=True), Recorder()
    fan = FanOut(a, bad, c)
    rows = [{"step": 8, "seed": 0, "train/episode_return": 1.0}, {"step": 8, "seed": 1, "train/episode_return": 2.0}]
    fan.write_rows(rows)
    assert a.rows == rows and bad.rows == rows and c.rows == rows
    with pytest.raises(OSError, match="disk full"):
        fan.close()
    assert a.closed and bad.closed and c.closed


def test_metrics_csv_can_leave_evaluation_rows_out(tmp_path):
    w = CSVWriter(tmp_path / "m.csv", skip_namespaces=("eval/",))
    w.write_rows([{"step": 8, "seed": 0, "loss/value": 0.5}])
    w.write_rows([{"step": 8, "seed": 0, "eval/return_mean": 9.0}])
    w.close()
    assert _csv_rows(tmp_path / "m.csv") == [{"step": "8", "seed": "0", "loss/value": "0.5"}]


# ----------------------------------------------------------------------------- JSON lines

def test_jsonl_round_trip_with_nan_as_null(tmp_path):
    w = JSONLWriter(tmp_path / "metrics.jsonl")
    w.write_rows([{"step": 8, "seed": 0, "train/episode_return": NAN, "loss/value": np.float32(0.25),
                   "perf/sps": math.inf},
                  {"step": 8, "seed": 0, "eval/return_mean": 3.5}])
    w.write_rows([])
    w.close()
    assert _jsonl_rows(tmp_path / "metrics.jsonl") == [
        {"step": 8, "seed": 0, "train/episode_return": None, "loss/value": 0.25, "perf/sps": None},
        {"step": 8, "seed": 0, "eval/return_mean": 3.5}]
    assert "NaN" not in (tmp_path / "metrics.jsonl").read_text()  # strict JSON


@pytest.mark.parametrize("resume_step, kept", [(16, [(8, 0), (16, 0), (8, 1), (16, 1)]),
                                               ({0: 24, 1: 8}, [(8, 0), (16, 0), (24, 0), (8, 1)])])
def test_jsonl_drops_the_rows_after_the_step_a_run_resumes_from(tmp_path, resume_step, kept):
    path = tmp_path / "metrics.jsonl"
    w = JSONLWriter(path)
    w.write_rows([{"step": s, "seed": seed, "x": float(s)} for seed in (0, 1) for s in (8, 16, 24, 32)])
    w.close()
    with open(path, "a") as f:
        f.write('{"step": 40, "se')  # the last line of a killed run, cut short
    w = JSONLWriter(path, resume_step=resume_step)
    w.write_rows([{"step": 99, "seed": 0, "x": 1.0}])
    w.close()
    rows = _jsonl_rows(path)
    assert [(r["step"], r["seed"]) for r in rows] == kept + [(99, 0)]
    # and exactly like metrics.csv
    c = CSVWriter(tmp_path / "m.csv")
    c.write_rows([{"step": s, "seed": seed, "x": float(s)} for seed in (0, 1) for s in (8, 16, 24, 32)])
    c.close()
    CSVWriter(tmp_path / "m.csv", resume_step=resume_step).close()
    assert [(int(r["step"]), int(r["seed"])) for r in _csv_rows(tmp_path / "m.csv")] == kept


def _assert_same_rows(csv_path, jsonl_path):
    """The rows of ``metrics.csv`` are the JSON lines without the evaluation rows, value for value."""
    table = _csv_rows(csv_path)
    lines = [r for r in _jsonl_rows(jsonl_path) if not any(k.startswith("eval/") for k in r)]
    assert len(table) == len(lines) > 0
    for c, j in zip(table, lines):
        assert {k for k, v in c.items() if v != ""} == set(j), (c, j)
        for k, v in j.items():
            assert (math.isnan(float(c[k])) if v is None else float(c[k]) == v), (k, c[k], v)
    return lines


def test_a_run_with_jsonl_writes_the_rows_of_metrics_csv(tmp_path):
    _, run_dir = train_run(tmp_path, "ppo", ppo.Config(**SMALL), "CartPole-v1", seeds=(0, 1), total_steps=1000,
                           eval_episodes=3, eval_every=512, jsonl=True)
    lines = _assert_same_rows(run_dir / "metrics.csv", run_dir / "metrics.jsonl")
    assert {r["step"] for r in lines} == {256, 512, 768, 1000}
    evals = [(r["step"], r["seed"]) for r in _jsonl_rows(run_dir / "metrics.jsonl") if "eval/return_mean" in r]
    assert evals == [(512, 0), (512, 1), (1000, 0), (1000, 1)]  # --eval-every 512, then the final one
    assert [(int(r["step"]), int(r["seed"])) for r in _csv_rows(run_dir / "eval" / "history.csv")] == evals


def interrupted_and_resumed_search_run(tmp_path, monkeypatch, **run_kwargs) -> Path:
    """A CEM run on Gridworld-v0 (seeds 0 and 1) stopped by Ctrl-C after 3 generations, then resumed."""
    from advantage.training import driver, search

    cfg = cem.Config(**{**cem.PRESETS["Gridworld-v0"], "population_size": 20})
    kwargs = dict(seeds=(0, 1), total_steps=1500, checkpoint_every=200, eval_episodes=2, **run_kwargs)
    calls, real = {"n": 0}, search.JaxPopulation.generation

    def generation(self, runners):
        calls["n"] += 1
        if calls["n"] > 3:
            raise KeyboardInterrupt
        return real(self, runners)

    monkeypatch.setattr(search.JaxPopulation, "generation", generation)
    with pytest.raises(KeyboardInterrupt):
        train_run(tmp_path, "cem", cfg, "Gridworld-v0", **kwargs)
    monkeypatch.setattr(search.JaxPopulation, "generation", real)
    run_dir = next(tmp_path.glob("run-*"))
    driver.resume(run_dir)
    return run_dir


def test_an_interrupted_search_run_resumes_its_jsonl_like_metrics_csv(tmp_path, monkeypatch):
    """Seeds of a search run stop at different env-step counts; each one's JSON lines are cut at its own."""
    run_dir = interrupted_and_resumed_search_run(tmp_path, monkeypatch, jsonl=True)
    lines = _assert_same_rows(run_dir / "metrics.csv", run_dir / "metrics.jsonl")
    for seed in (0, 1):
        generations = [r["search/generation"] for r in lines if r["seed"] == seed]
        assert generations == list(range(1, len(generations) + 1))  # none twice, none missing


# ----------------------------------------------------------------------------- Weights & Biases

def _tensorboard_scalars(folder) -> dict:
    """``{tag: [(step, value), ...]}`` read back from the event files in ``folder`` (TFRecord framing: a
    uint64 length, its CRC, the serialised ``Event``, its CRC)."""
    from tensorboardX.proto.event_pb2 import Event

    out: dict = {}
    for path in sorted(Path(folder).glob("events.out.tfevents.*")):
        data, pos = path.read_bytes(), 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos:pos + 8])
            event = Event()
            event.ParseFromString(data[pos + 12:pos + 12 + length])
            pos += 12 + length + 4
            for v in event.summary.value:
                out.setdefault(v.tag, []).append((event.step, v.simple_value))
    return out


def test_tensorboard_events_hold_every_finite_value_of_each_seed(tmp_path):
    rows = [{"step": 8, "seed": 0, "loss/a": 1.5, "eval/b": NAN}, {"step": 8, "seed": 3, "loss/a": -2.0},
            {"step": 16, "seed": 0, "loss/a": 0.25, "eval/b": 3.0, "x": None}]
    w = TensorBoardWriter(tmp_path / "tb", [0, 3])
    w.write_rows(rows)
    w.close()
    assert _tensorboard_scalars(tmp_path / "tb" / "seed_0") == {"loss/a": [(8, 1.5), (16, 0.25)], "eval/b": [(16, 3.0)]}
    assert _tensorboard_scalars(tmp_path / "tb" / "seed_3") == {"loss/a": [(8, -2.0)]}


def test_wandb_writer_logs_each_seed_to_its_own_run(tmp_path, fake_wandb):
    run_dir = tmp_path / "ppo-CartPole-v1-x"
    w = WandbWriter(run_dir, [0, 3], "proj", "team", config={"algo": "ppo"})
    w.write_rows([{"step": 8, "seed": 0, "train/episode_return": NAN, "loss/value": 0.5},
                  {"step": 8, "seed": 3, "train/episode_return": 2.0, "loss/value": 0.25}])
    w.write_rows([{"step": 16, "seed": 3, "train/episode_return": 3.0}])
    w.write_rows([{"step": 12, "seed": 0, "eval/return_mean": 1.0}, {"step": 12, "seed": 3, "eval/return_mean": 2.0}])
    w.close()
    first, second = fake_wandb.runs
    for run, seed in ((first, 0), (second, 3)):
        assert run.kwargs == dict(project="proj", entity="team", group="ppo-CartPole-v1-x", name=f"SEED_{seed}",
                                  dir=str(run_dir), config={"algo": "ppo"}, id=None, resume=None, reinit="create_new")
        assert run.exit_code == 0
    assert first.logged == [(8, {"loss/value": 0.5}), (12, {"eval/return_mean": 1.0})]  # NaN skipped
    # seed 3 is past step 12: its evaluation is logged at its own step (W&B drops steps that go back)
    assert second.logged == [(8, {"train/episode_return": 2.0, "loss/value": 0.25}),
                             (16, {"train/episode_return": 3.0}), (16, {"eval/return_mean": 2.0})]
    assert json.loads((run_dir / "wandb" / "run_ids.json").read_text()) == {"0": "idSEED_0", "3": "idSEED_3"}
    # a resumed run continues the same W&B runs, from the step after the last one W&B holds
    w = WandbWriter(run_dir, [0, 3], "proj", resume=True)
    w.write_rows([{"step": s, "seed": 0, "loss/value": 1.0} for s in (16, 24)])
    w.close()
    assert [(r.kwargs["id"], r.kwargs["resume"]) for r in fake_wandb.runs[2:]] == [("idSEED_0", "allow"),
                                                                                   ("idSEED_3", "allow")]
    assert fake_wandb.runs[2].logged == [(24, {"loss/value": 1.0})]


def test_wandb_runs_closed_during_an_error_are_marked_failed(tmp_path, fake_wandb):
    w = WandbWriter(tmp_path, [0], "proj")
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt:
        w.close()
    assert fake_wandb.runs[0].exit_code == 1


def test_missing_wandb_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
    with pytest.raises(MissingExtraError, match=r'pip install "advantage\[wandb\]"'):
        WandbWriter(tmp_path, [0], "proj")
    with pytest.raises(MissingExtraError, match=r'pip install "advantage\[wandb\]"'):
        train_run(tmp_path, "ppo", ppo.Config(**SMALL), "CartPole-v1", total_steps=256, wandb_project="proj")
    assert not list(tmp_path.glob("run-*/config.json"))  # nothing half made: the same --run-dir can be used again


@pytest.mark.parametrize("kwargs, message", [
    (dict(wandb_project=""), "the W&B project name is empty"),
    (dict(wandb_project="  "), "the W&B project name is empty"),
    (dict(wandb_project="a/b"), "cannot contain"),
    (dict(wandb_entity="me"), "together with --wandb-project"),
])
def test_bad_wandb_options_are_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig(**kwargs)


def test_cli_help_lists_the_writer_options(capsys):
    from advantage.cli import main

    with pytest.raises(SystemExit):
        main(["train", "ppo", "--help"])
    out = capsys.readouterr().out
    assert "--wandb-project" in out and "--wandb-entity" in out and "--jsonl" in out


def read_wandb_log(path) -> list:
    """The records of a W&B transaction log (``run-ID.wandb``): W&B's 7-byte header (``:W&B``, magic, version),
    then LevelDB's log format: 32 KiB blocks of fragments, each with a 7-byte header (CRC, length, type: 1 full,
    2 first, 3 middle, 4 last), every fragment holding (part of) one serialised ``Record``."""
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", path
    block, pos, parts, records = 32768, 7, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # too little room left in the block for a header: padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0:  # zero padding up to the next block
            pos += block - pos % block
            continue
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        parts = chunk if kind in (1, 2) else parts + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(parts)
            records.append(record)
    return records


def offline_wandb(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")  # no network
    monkeypatch.setenv("WANDB_SILENT", "true")
    for var in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):  # nothing outside tmp_path
        monkeypatch.setenv(var, str(tmp_path / var.lower()))


def _first_run_record(log):
    return next(r.run for r in read_wandb_log(log) if r.WhichOneof("record_type") == "run")


def test_a_run_logs_to_wandb_offline(tmp_path, monkeypatch):
    offline_wandb(tmp_path, monkeypatch)
    _, run_dir = train_run(tmp_path, "ppo", ppo.Config(**SMALL), "CartPole-v1", seeds=(0, 1), total_steps=1000,
                           eval_episodes=3, wandb_project="test")
    logs = sorted(run_dir.glob("wandb/*run-*/run-*.wandb"))
    assert len(logs) == 2, logs
    ids = json.loads((run_dir / "wandb" / "run_ids.json").read_text())
    seen = {}
    for log in logs:
        records = read_wandb_log(log)
        run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
        assert run.project == "test" and run.run_group == run_dir.name
        config = {u.key: json.loads(u.value_json) for u in run.config.update}
        assert config["algo"] == "ppo" and config["run"]["wandb_project"] == "test"
        history = [{(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in r.history.item}
                   for r in records if r.WhichOneof("record_type") == "history"]
        keys = set().union(*history)
        assert {"train/episode_return", "loss/policy", "loss/value", "perf/sps", "eval/return_mean"} <= keys, keys
        assert [h["_step"] for h in history] == [256, 512, 768, 1000]
        assert "eval/return_mean" in history[-1]  # the final evaluation, at the last step
        seen[run.display_name] = run.run_id
    assert seen == {"SEED_0": ids["0"], "SEED_1": ids["1"]}


def test_a_resumed_run_continues_its_wandb_runs(tmp_path, monkeypatch):
    offline_wandb(tmp_path, monkeypatch)
    run_dir = interrupted_and_resumed_search_run(tmp_path, monkeypatch, wandb_project="test")
    ids = json.loads((run_dir / "wandb" / "run_ids.json").read_text())
    logs = sorted(run_dir.glob("wandb/*run-*/run-*.wandb"))
    assert len(logs) == 4, logs  # offline: a second folder per seed, with the same W&B run id
    assert sorted(_first_run_record(log).run_id for log in logs) == sorted([ids["0"], ids["1"]] * 2)
