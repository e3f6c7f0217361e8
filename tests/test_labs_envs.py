"""The labs on the lectures' environments, run in quick mode: each claim checked on its numbers."""

from __future__ import annotations

import json

import pytest

from advantage import labs


def _run(name, tmp_path):
    mod = labs.get(name)
    assert mod.NAME == name and mod.SLIDE and mod.CLAIM
    out = tmp_path / name
    res = mod.run(out, seed=0, quick=True)
    assert (out / "figure.png").stat().st_size > 10_000
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["claim_holds"] == res["claim_holds"] and isinstance(res["summary"], str)
    return res


def test_labs_listed():
    for name in ("aliased-gridworld", "rock-paper-scissors", "negative-reward"):
        assert name in labs.available()


def test_aliased_gridworld_lab(tmp_path):
    res = _run("aliased-gridworld", tmp_path)
    pg, det, greedy, eps = res["policies"]
    # the stochastic policy gradient policy reaches the money from (almost) every start, in a few steps
    assert pg["success_rate"] >= 0.95 and pg["mean_steps_to_goal"] <= 10
    # in the grey cells it moves E and W with similar probabilities
    for e, w in zip(pg["grey_cell_probabilities"]["E"], pg["grey_cell_probabilities"]["W"]):
        assert e > 0.25 and w > 0.25 and abs(e - w) < 0.2
    # no deterministic map on the features succeeds from more than 3 of the 5 starts
    assert det["n_maps_enumerated"] == 256
    assert det["max_success_rate_over_all_maps"] == pytest.approx(0.6)
    assert det["mean_steps_to_goal"] > 3 * pg["mean_steps_to_goal"]
    # greedy value-based policy is deterministic: stuck as well
    assert greedy["success_rate"] <= 0.6 + 1e-6
    assert greedy["mean_steps_to_goal"] > 3 * pg["mean_steps_to_goal"]
    assert res["claim_holds"]


def test_rock_paper_scissors_lab(tmp_path):
    res = _run("rock-paper-scissors", tmp_path)
    for name, r in res["deterministic_mean_reward"].items():
        assert r <= -0.95, name
    assert res["start_policy"]["mean_reward"] < -0.5
    learned = res["learned"]
    assert max(learned["max_abs_distance_to_uniform_per_seed"]) <= 0.06
    assert abs(learned["mean_reward"]) <= 0.05
    assert abs(res["uniform_mean_reward"]) <= 0.03
    assert res["claim_holds"]


def test_negative_reward_lab(tmp_path):
    res = _run("negative-reward", tmp_path)
    d = res["discrete"]["shift 10"]
    # no baseline: most updates lower the better action's probability, and the policy does not settle
    assert d["none"]["wrong_way_fraction"] >= 0.3
    assert d["none"]["mean_prob_best_second_half"] <= 0.9
    for v in ("mean", "advantage"):
        assert d[v]["wrong_way_fraction"] <= 0.05
        assert d[v]["mean_prob_best_second_half"] >= 0.98
        assert d[v]["settled_seeds"] == res["n_seeds"]
    c = res["continuous"]["shift 5"]
    for v in ("mean", "advantage"):
        assert c["none"]["mean_abs_error_second_half"] >= 3 * c[v]["mean_abs_error_second_half"]
        assert c["none"]["update_std"] >= 2 * c[v]["update_std"]
    # with the env's own rewards (-1, -2) no baseline still converges: the effect grows with |V|
    assert res["discrete"]["shift 0"]["none"]["mean_prob_best_second_half"] >= 0.98
    assert res["baselines_invariant_to_shift"]
    assert res["claim_holds"]
