"""advantage.report: the statistics against NumPy/SciPy references, and reports of real runs."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
from helpers import train_run

from advantage.algos import ppo
from advantage.cli import main
from advantage.report import stats
from advantage.report.report import ReportError, make_report

SMALL = dict(n_envs=8, n_steps=32, n_epochs=2, n_minibatches=2)


# --------------------------------------------------------------------------- statistics

@pytest.mark.parametrize("n", list(range(1, 42)))
def test_iqm_is_scipy_trim_mean_for_every_n(n):
    x = np.random.default_rng(n).normal(size=n) * 10
    assert stats.iqm(x) == pytest.approx(scipy.stats.trim_mean(x, 0.25), rel=1e-12, abs=1e-12)


def test_iqm_definition_when_n_is_not_a_multiple_of_4():
    # floor(n/4) dropped at each end: n=3 keeps all, 5 the middle 3, 6 the middle 4, 7 the middle 5
    assert stats.iqm([1.0, 2.0, 9.0]) == pytest.approx(4.0)
    assert stats.iqm([100.0, 1.0, 2.0, 3.0, -50.0]) == pytest.approx(2.0)
    assert stats.iqm([100.0, 1.0, 2.0, 3.0, 4.0, -50.0]) == pytest.approx(2.5)
    assert stats.iqm([100.0, 1.0, 2.0, 3.0, 4.0, 5.0, -50.0]) == pytest.approx(3.0)
    assert stats.iqm([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]) == pytest.approx(3.5)  # n=8: the middle 4
    # along an axis, as the bootstrap uses it
    m = np.random.default_rng(0).normal(size=(6, 11))
    np.testing.assert_allclose(stats.iqm(m, axis=1), scipy.stats.trim_mean(m, 0.25, axis=1), rtol=1e-12)
    np.testing.assert_allclose(stats.iqm(m, axis=0), scipy.stats.trim_mean(m, 0.25, axis=0), rtol=1e-12)


def _loop_bootstrap(scores, statistic, n_boot, alpha, seed):
    """The plain reference: for each resample, for each task, draw that task's runs with replacement."""
    rng = np.random.default_rng(seed)
    runs, tasks = scores.shape
    values = []
    for _ in range(n_boot):
        sample = []
        for t in range(tasks):
            idx = rng.integers(0, runs, size=runs)
            sample.extend(scores[idx, t])
        values.append(statistic(np.array(sample)))
    lo, hi = np.percentile(values, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return lo, hi


def _sorted_iqm(x):
    x = np.sort(x)
    k = len(x) // 4
    return np.mean(x[k:len(x) - k])


@pytest.mark.parametrize("name,reference", [("mean", np.mean), ("median", np.median), ("iqm", _sorted_iqm)])
@pytest.mark.parametrize("shape", [(7,), (5, 3)])
def test_stratified_bootstrap_equals_a_python_loop_exactly(name, reference, shape):
    scores = np.random.default_rng(1).gamma(2.0, 50.0, size=shape)
    ci = stats.stratified_bootstrap_ci(scores, name, n_boot=500, alpha=0.05, seed=3)
    lo, hi = _loop_bootstrap(scores.reshape(shape[0], -1), reference, 500, 0.05, 3)
    assert (ci.lo, ci.hi) == (lo, hi)  # exact: the same draws, the same arithmetic
    assert ci.estimate == pytest.approx(reference(scores.T.ravel()), rel=1e-12)
    assert ci.lo <= ci.estimate <= ci.hi
    # a statistic without an axis argument takes the slow path, with the same result
    slow = stats.stratified_bootstrap_ci(scores, lambda x: reference(np.asarray(x)), n_boot=500, seed=3)
    assert (slow.lo, slow.hi) == (lo, hi)
    assert stats.iqm(scores.T.ravel()) == pytest.approx(scipy.stats.trim_mean(scores.ravel(), 0.25), rel=1e-12)


def test_bootstrap_ci_of_the_mean_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(12345)
    true_mean, hits, reps = 3.0, 0, 200
    for rep in range(reps):
        x = rng.normal(true_mean, 2.0, size=30)
        ci = stats.stratified_bootstrap_ci(x, "mean", n_boot=1000, alpha=0.05, seed=rep)
        hits += ci.lo <= true_mean <= ci.hi
    # binomial sd at p=0.95 over 200 repetitions is 1.5%; the percentile bootstrap under-covers a little at n=30
    assert 0.89 <= hits / reps <= 0.99, hits / reps


def test_one_seed_gives_a_degenerate_interval():
    ci = stats.stratified_bootstrap_ci([42.0], "iqm")
    assert ci == (42.0, 42.0, 42.0)


def test_learning_curve_stats_equal_a_python_loop():
    curves = np.random.default_rng(2).normal(size=(5, 13)).cumsum(axis=1)
    est, lo, hi = stats.learning_curve_stats(curves, n_boot=300, alpha=0.1, seed=7)
    rng = np.random.default_rng(7)
    boot = []
    for _ in range(300):
        idx = rng.integers(0, 5, size=5)
        boot.append([_sorted_iqm(curves[idx, j]) for j in range(13)])
    ref_lo, ref_hi = np.percentile(np.array(boot), [5, 95], axis=0)
    np.testing.assert_array_equal(lo, ref_lo)
    np.testing.assert_array_equal(hi, ref_hi)
    np.testing.assert_allclose(est, scipy.stats.trim_mean(curves, 0.25, axis=0), rtol=1e-12)
    assert np.all(lo <= est + 1e-12) and np.all(est <= hi + 1e-12)


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError):
        stats.stratified_bootstrap_ci([], "mean")
    with pytest.raises(ValueError):
        stats.stratified_bootstrap_ci([1.0, np.nan], "mean")
    with pytest.raises(ValueError):
        stats.stratified_bootstrap_ci([1.0, 2.0], "mean", alpha=1.5)


# --------------------------------------------------------------------------- reports of real runs

@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two small CartPole runs that differ in the learning rate, 3 seeds each, with a final evaluation."""
    base = tmp_path_factory.mktemp("runs")
    a = train_run(base / "a", "ppo", ppo.Config(**SMALL, learning_rate=1e-3), "CartPole-v1", seeds=(0, 1, 2),
                  total_steps=2048, eval_episodes=4)
    b = train_run(base / "b", "ppo", ppo.Config(**SMALL, learning_rate=3e-4), "CartPole-v1", seeds=(0, 1, 2),
                  total_steps=2048, eval_episodes=4)
    return a, b


def _assert_real_image(path: Path):
    from PIL import Image

    assert path.exists(), path
    with Image.open(path) as im:
        assert im.format == "PNG"
        w, h = im.size
        pixels = np.asarray(im.convert("RGB"), np.float64)
    assert 300 <= w <= 2000 and 150 <= h <= 2000, (w, h)
    assert pixels.std() > 0  # not blank
    assert path.stat().st_size < 150_000


def test_report_of_two_runs_has_the_numbers_of_their_summaries(two_runs, tmp_path):
    (sa, run_a), (sb, run_b) = two_runs
    out = tmp_path / "report"
    report = make_report([run_a, run_b], out)
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["runs"][0]["final_return"]["per_seed"] == report["runs"][0]["final_return"]["per_seed"]
    for summary, entry in zip((sa, sb), on_disk["runs"]):
        per_seed = summary["eval_return"]["per_seed"]
        f = entry["final_return"]
        assert f["per_seed"] == per_seed
        assert f["n_seeds"] == 3 and f["episodes_per_seed"] == 4 and f["deterministic"] is True
        assert f["mean"]["estimate"] == pytest.approx(np.mean(per_seed), rel=1e-12)
        assert f["median"]["estimate"] == pytest.approx(np.median(per_seed), rel=1e-12)
        assert f["iqm"]["estimate"] == pytest.approx(scipy.stats.trim_mean(per_seed, 0.25), rel=1e-12)
        assert f["iqm"]["estimate"] == pytest.approx(summary["eval_return"]["iqm"], rel=1e-6)
        for s in ("mean", "median", "iqm"):
            expected = stats.stratified_bootstrap_ci(per_seed, s, 2000, 0.05, 0)
            assert (f[s]["lo"], f[s]["hi"]) == (expected.lo, expected.hi)
            assert min(per_seed) <= f[s]["lo"] <= f[s]["estimate"] <= f[s]["hi"] <= max(per_seed)
        curve = entry["learning_curve"]
        assert curve["seeds"] == [0, 1, 2] and len(curve["steps"]) >= 2
        assert len(curve["steps"]) == len(curve["estimate"]) == len(curve["lo"]) == len(curve["hi"])
        assert entry["env"] == "CartPole-v1" and entry["env_steps"] == 2048
    labels = [e["label"] for e in on_disk["runs"]]
    assert labels == ["ppo CartPole-v1 learning_rate=0.001", "ppo CartPole-v1 learning_rate=0.0003"]
    figures = on_disk["envs"]["CartPole-v1"]["figures"]
    assert set(figures) == {"learning_curves", "final_returns", "comparison"}
    md = (out / "report.md").read_text()
    for name in figures.values():
        _assert_real_image(out / name)
        assert f"]({name})" in md  # embedded with a relative path
    assert "| run | seeds |" in md and "learning_rate=0.0003" in md


def test_report_handles_one_seed_no_evaluation_and_several_envs(two_runs, tmp_path):
    """The report reads only the run folder's files, so edited copies of a real run stand for the other cases."""
    (summary, run_a), _ = two_runs
    one_seed = tmp_path / "one-seed"
    shutil.copytree(run_a, one_seed)
    s = json.loads((one_seed / "summary.json").read_text())
    s["seeds"], s["eval_return"]["per_seed"] = [0], s["eval_return"]["per_seed"][:1]
    (one_seed / "summary.json").write_text(json.dumps(s))
    no_eval = tmp_path / "no-eval"
    shutil.copytree(run_a, no_eval)
    s = json.loads((no_eval / "summary.json").read_text())
    del s["eval_return"]
    (no_eval / "summary.json").write_text(json.dumps(s))
    shutil.rmtree(no_eval / "eval")
    other_env = tmp_path / "other-env"
    shutil.copytree(run_a, other_env)
    c = json.loads((other_env / "config.json").read_text())
    c["run"]["env"] = "my_pkg.envs:Thing"
    (other_env / "config.json").write_text(json.dumps(c))
    only_final = tmp_path / "only-final-json"  # no summary.json: eval/final.json is read
    shutil.copytree(run_a, only_final)
    (only_final / "summary.json").unlink()

    out = tmp_path / "out"
    report = make_report([run_a, one_seed, no_eval, other_env, only_final, run_a], out)
    by_dir = {Path(r["run_dir"]).name: r for r in report["runs"]}
    assert len(report["runs"]) == 5 and any("more than once" in n for n in report["notes"])
    single = by_dir["one-seed"]["final_return"]
    assert single["ci_degenerate"] and single["iqm"]["lo"] == single["iqm"]["hi"] == single["iqm"]["estimate"]
    assert any("single seed" in n for n in by_dir["one-seed"]["notes"])
    assert by_dir["no-eval"]["final_return"] is None
    assert any("no evaluation" in n for n in by_dir["no-eval"]["notes"])
    final = by_dir["only-final-json"]["final_return"]
    np.testing.assert_allclose(final["per_seed"], summary["eval_return"]["per_seed"], rtol=1e-6)
    assert final["source"] == "eval/final.json"
    assert set(report["envs"]) == {"CartPole-v1", "my_pkg.envs:Thing"}
    other_figures = report["envs"]["my_pkg.envs:Thing"]["figures"]
    assert "comparison" not in other_figures  # a single run of that env
    for name in list(other_figures.values()) + list(report["envs"]["CartPole-v1"]["figures"].values()):
        _assert_real_image(out / name)
    assert not re.search(r"[:]", " ".join(other_figures.values()))  # file names without ':'
    md = (out / "report.md").read_text()
    assert "1 seed, no CI" in md and "no evaluation" in md and "## my_pkg.envs:Thing" in md
    # identical configurations get the folder name in their label to tell them apart
    assert len({r["label"] for r in report["runs"]}) == 5


def test_report_command_and_its_errors(two_runs, tmp_path, capsys):
    (_, run_a), (_, run_b) = two_runs
    out = tmp_path / "cli-report"
    assert main(["report", str(run_a), str(run_b), "--out", str(out), "--n-boot", "200"]) == 0
    printed = capsys.readouterr().out
    assert "IQM" in printed and str(out / "report.md") in printed
    assert json.loads((out / "report.json").read_text())["settings"]["n_boot"] == 200

    assert main(["report", "--out", str(out)]) == 2
    assert "no runs given" in capsys.readouterr().err
    assert main(["report", str(tmp_path), "--out", str(out)]) == 2
    assert "not a run folder" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert main(["report", str(run_a), "--out", str(a_file)]) == 2
    assert "is a file" in capsys.readouterr().err
    with pytest.raises(ReportError, match="no runs given"):
        make_report([], tmp_path / "x")
