"""The slides' claims as labs (advantage/labs): each quick run must reproduce its claim, numerically."""

from __future__ import annotations

import json

import numpy as np
import pytest

from advantage import labs


def _run(name, tmp_path):
    mod = labs.get(name)
    for attr in ("NAME", "SLIDE", "CLAIM"):
        assert isinstance(getattr(mod, attr), str) and getattr(mod, attr)
    assert mod.NAME == name
    out = tmp_path / name
    res = mod.run(out, seed=0, quick=True)
    assert (out / "figure.png").stat().st_size > 10_000
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["claim_holds"] == res["claim_holds"]
    assert isinstance(res["summary"], str) and res["summary"]
    return res


def test_reinforce_variance(tmp_path):
    r = _run("reinforce-variance", tmp_path)
    v = {k: s["total_variance"] for k, s in r["estimators"].items()}
    assert v["R(tau)"] > v["reward-to-go"] > v["reward-to-go - V(s)"]
    assert v["reward-to-go"] > v["reward-to-go - mean"]
    assert v["GAE advantage"] <= 1.1 * v["reward-to-go - V(s)"]
    assert v["R(tau)"] > 3 * v["GAE advantage"]  # not a close call
    cos = {k: s["cosine_to_reference"] for k, s in r["estimators"].items()}
    assert cos["reward-to-go - V(s)"] > cos["R(tau)"]
    assert r["claim_holds"]


def test_gae_lambda(tmp_path):
    r = _run("gae-lambda", tmp_path)
    var, bias = np.asarray(r["variance"]), np.maximum(np.asarray(r["bias_sq"]), 0)
    assert r["lambdas"][0] == 0.0 and r["lambdas"][-1] == 1.0
    assert var[-1] > 3 * var[0] and var[-1] > var[2] > var[0]
    assert bias[0] > 10 * bias[-1] and bias[0] > bias[2] > bias[-1] - 0.1 * bias[0]
    # lambda = 1 is the Monte-Carlo advantage: its bias is only sampling noise
    assert bias[-1] < 0.1 * bias[0]
    assert r["claim_holds"]


def test_importance_weights(tmp_path):
    r = _run("importance-weights", tmp_path)
    ess = r["ess_fraction"]
    assert ess["full"][-1] < 0.1 and ess["full"][0] > 0.9
    assert all(a >= b - 0.02 for a, b in zip(ess["full"], ess["full"][1:]))  # falls with H
    assert ess["per-decision"][-1] >= 10 * ess["full"][-1]
    assert ess["truncated"][-1] >= 10 * ess["full"][-1]
    assert min(ess["one-step ratio"]) > 0.9
    # the full product's ESS follows 1/E[rho^2]^H while N is large enough to see it
    for h, e, p in zip(r["horizons"], ess["full"], r["predicted_full_ess_fraction"]):
        if h <= 50:
            assert e == pytest.approx(p, rel=0.3)
    assert r["claim_holds"]


def test_trust_region(tmp_path):
    r = _run("trust-region", tmp_path)
    ex = r["example"]
    assert ex["p0_after_step_0.1"]["large feature"] > 0.99  # [0.4, 0.6] -> [1.0, 0.0]
    assert ex["p0_after_step_0.1"]["unit feature"] < 0.5  # the same step with a unit feature barely moves it
    assert ex["feature_scale"]["natural_kl"] == pytest.approx(0.01, rel=0.2)
    assert ex["feature_unit"]["natural_kl"] == pytest.approx(0.01, rel=0.2)
    delta = r["setup"]["max_kl"]
    assert r["kl_constrained"]["kl_max"] <= 1.05 * delta
    assert r["parameter_step"]["kl_max"] >= 10 * delta
    assert r["parameter_step"]["kl_at_bad_update"] > 100 * r["kl_constrained"]["kl_at_bad_update"]
    assert r["claim_holds"]


def test_ppo_clip(tmp_path):
    r = _run("ppo-clip", tmp_path)
    s = r["ratio_stats_per_epoch"]
    e = r["setup"]["check_epoch"] - 1
    assert s["clip"]["frac_outside"][0] < 0.05 and s["no clip"]["frac_outside"][0] < 0.05  # epoch 1: near 1
    assert s["no clip"]["mean_abs_dev"][e] >= 2 * s["clip"]["mean_abs_dev"][e]
    assert s["no clip"]["frac_outside"][e] > 2 * s["clip"]["frac_outside"][e]
    assert s["no clip"]["max_abs_log_ratio"][-1] > s["clip"]["max_abs_log_ratio"][-1]
    assert r["claim_holds"]


def test_vtrace_lag(tmp_path):
    r = _run("vtrace-lag", tmp_path)
    s = r["settings"]
    lag = max(r["setup"]["lags"])
    assert lag >= 8  # "several updates" behind the learner
    corr, unc = s[f"lag {lag}, V-trace"], s[f"lag {lag}, ratios ignored"]
    n = len(r["setup"]["seeds"])
    assert len(corr["final_eval_per_seed"]) == len(unc["final_eval_per_seed"]) == n >= 5
    assert corr["final_eval_mean"] >= 400  # V-trace still learns CartPole
    assert corr["final_eval_mean"] >= unc["final_eval_mean"] + 100  # ignoring the ratios: visibly worse
    assert corr["seeds_solved"] > unc["seeds_solved"]
    assert corr["approx_kl_mean"] > 0  # the data really is off-policy
    assert len(corr["steps"]) == len(corr["train_return_mean"]) >= 40
    assert r["claim_holds"]


def test_v_weighted_actor(tmp_path):
    r = _run("v-weighted-actor", tmp_path)
    v, q, adv = (r["variants"][k] for k in ("V(s)", "Q_w(s,a)", "Q_w - V_v"))
    assert r["setup"]["n_seeds"] >= 50 and min(r["setup"]["rewards"]) > 0  # all rewards positive
    # Psi = V(s) > 0 on both actions: the worse action's samples are pushed up as the better one's are ...
    assert v["psi_mean_on_worse"] > 0 and v["psi_mean_on_better"] > 0
    assert v["worse_action_pushed_up"] > 0.95 and v["better_action_pushed_up"] > 0.95
    # ... so the policy only drifts: about as many seeds settle on the worse action as on the better one
    assert abs(v["final_prob_best_mean"] - 0.5) < 0.15
    assert v["seeds_on_worse_action"] > 0.2 and abs(v["seeds_learned"] - v["seeds_on_worse_action"]) < 0.25
    # the advantage is negative on the worse action, which is pushed down; every seed learns the better one
    assert adv["psi_mean_on_worse"] < 0 and adv["worse_action_pushed_up"] < 0.1
    assert adv["seeds_learned"] >= 0.95 and adv["seeds_on_worse_action"] == 0 and adv["final_prob_best_mean"] > 0.95
    # Q_w(s, a) > 0 pushes up the worse action too, but less than the better one: unbiased, it learns here
    assert q["psi_mean_on_worse"] > 0 and q["psi_mean_on_better"] > q["psi_mean_on_worse"]
    assert q["final_prob_best_mean"] > v["final_prob_best_mean"] + 0.3
    assert r["claim_holds"]


def test_labs_listed():
    for name in (
        "reinforce-variance",
        "gae-lambda",
        "importance-weights",
        "trust-region",
        "ppo-clip",
        "vtrace-lag",
        "compatible-critic",
        "v-weighted-actor",
        "gradient-free-efficiency",
        "replay-size",
        "replay-recovery",
        "entropy-bonus",
        "batch-vs-online",
        "shared-vs-separate",
        "average-reward",
        "try-a2c-first",
    ):
        assert name in labs.available()


def test_compatible_critic(tmp_path):
    r = _run("compatible-critic", tmp_path)
    ex, smp, n = r["exact"], r["sampled"], r["setup"]["sample_sizes"]
    # exact expectation: both compatible critics give grad J to round-off, the arbitrary one does not (its bias)
    assert max(ex[c]["angle_to_grad_deg"] for c in ("compatible + baseline", "compatible alone")) < 1e-4
    assert ex["compatible + baseline"]["norm_ratio"] == pytest.approx(1.0, abs=1e-6)
    assert ex["arbitrary"]["angle_to_grad_deg"] > 5
    assert ex["compatible alone"]["r2_of_fit_to_Q"] < ex["arbitrary"]["r2_of_fit_to_Q"]  # a worse fit, no bias
    # and NAC's w is the natural gradient F^+ grad J, which is not the vanilla gradient's direction
    assert ex["nac_w_angle_to_natural_deg"] < 1e-4 and ex["vanilla_vs_natural_angle_deg"] > 10
    # samples: the compatible critic's error shrinks with N, the arbitrary critic's stays at its bias
    comp, arb = smp["compatible + baseline"], smp["arbitrary"]
    assert comp["angle_deg"][-1]["mean"] < 0.5 * comp["angle_deg"][0]["mean"]
    assert comp["angle_deg"][-1]["ci95"][1] < arb["angle_deg"][-1]["ci95"][0]
    assert arb["bias_angle_deg"][-1] > 0.5 * ex["arbitrary"]["angle_to_grad_deg"]
    assert comp["bias_angle_deg"][-1] < arb["bias_angle_deg"][-1] / 3
    fisher = r["nac_w"]["fisher_angle_to_natural_deg"]
    assert fisher[-1]["mean"] < 0.5 * fisher[0]["mean"] and fisher[-1]["mean"] < ex["vanilla_vs_natural_angle_deg"] / 3
    assert len(n) == len(comp["angle_deg"]) >= 3
    assert r["claim_holds"]


@pytest.mark.slow
def test_gradient_free_efficiency(tmp_path):
    r = _run("gradient-free-efficiency", tmp_path)
    v = r["variants"]
    pg = v["PPO, MLP (64, 64)"]
    n = len(r["setup"]["seeds"])
    for s in v.values():
        assert len(s["steps_to_475_per_seed"]) == n and s["wall_s_all_seeds"] > 0
        # a seed that reached 475 did so within its budget, plus at most one search generation (50 x 500 steps)
        assert all(x is None or 0 < x < s["budget_per_seed"] + 25_000 for x in s["steps_to_475_per_seed"])
    assert pg["seeds_reaching_475"] == n

    def med(s):
        return np.inf if s["median_steps_to_475"] is None else s["median_steps_to_475"]

    # the verdict is exactly "PPO solves most seeds and needs fewer median env steps than every search" ...
    expected = pg["seeds_reaching_475"] > n // 2 and all(med(pg) < med(s) for k, s in v.items() if s is not pg)
    assert r["claim_holds"] == expected == all(r["checks"].values())
    # ... and what this run found: CMA-ES on the linear policy solves CartPole in fewer env steps than PPO (the
    # claim does not hold for it); CEM searching PPO's (64, 64) network is slower than PPO. CEM on the linear policy
    # is left out: its median (13.5k over these 2 seeds) sat beside PPO's, which moved from 11.5k to 9.0k with a
    # last-bit change of arithmetic (rsqrt computed exactly instead of from the CPU's approximation)
    assert med(v["CMA-ES, linear"]) < med(pg)
    assert med(v["CEM, MLP (64, 64)"]) > med(pg)
    assert not r["claim_holds"]


@pytest.mark.slow
def test_replay_size(tmp_path):
    r = _run("replay-size", tmp_path)
    no, big = r["buffers"]["no replay (64)"], r["buffers"]["replay (100k)"]
    assert no["buffer_size"] == 64 and big["buffer_size"] == 100_000
    assert big["final_eval_return_mean"] > no["final_eval_return_mean"] + 100
    assert big["mean_eval_return_second_half"] > no["mean_eval_return_second_half"]
    assert big["seeds_reaching_475"] >= 1 and no["seeds_reaching_475"] == 0
    expected = (
        big["final_eval_return_mean"] > no["final_eval_return_mean"]
        and big["mean_eval_return_second_half"] > no["mean_eval_return_second_half"]
        and big["final_eval_return_cv"] < no["final_eval_return_cv"]
        and big["max_q"] <= r["setup"]["q_bound"]
    )
    assert r["claim_holds"] == expected == all(r["checks"].values())


@pytest.mark.slow
def test_replay_recovery(tmp_path):
    r = _run("replay-recovery", tmp_path)
    off, on = r["learners"]["DQN (off-policy, replay)"], r["learners"]["PPO (on-policy)"]
    n = len(r["setup"]["seeds"])
    for s in (off, on):
        assert len(s["steps_to_recover_per_seed"]) == len(s["return_before_per_seed"]) == n
        # the reset was destructive: the greedy return fell below half its level
        assert s["return_just_after_mean"] <= 0.5 * s["return_before_mean"]
    # DQN, refitting its Q network on the buffer, gets part of its return back sooner ...
    assert off["fraction_of_before_first_5k_after"] > on["fraction_of_before_first_5k_after"]
    # ... but PPO, learning from the reset policy's own episodes, recovers too, on every seed within 20k steps
    assert on["seeds_recovered"] == n

    def med(s):
        return np.inf if s["median_steps_to_recover"] is None else s["median_steps_to_recover"]

    expected = (
        min(off["return_before_mean"], on["return_before_mean"]) >= 100
        and all(s["return_just_after_mean"] <= 0.5 * s["return_before_mean"] for s in (off, on))
        and med(off) < med(on)
        and off["fraction_of_before_first_5k_after"] > on["fraction_of_before_first_5k_after"]
    )
    assert r["claim_holds"] == expected == all(r["checks"].values())


def test_entropy_bonus(tmp_path):
    r = _run("entropy-bonus", tmp_path)
    c = r["coefs"]
    base, big = c["0.0"], c["1.0"]
    assert r["setup"]["n_seeds"] >= 64 and r["setup"]["arm_means"][0] > r["setup"]["arm_means"][1]
    # without the bonus the entropy collapses and a good share of the seeds gives up the better arm ...
    assert base["final_entropy_mean"] < 0.05 and base["seeds_stuck"] >= 0.1
    # ... a large bonus keeps the policy near uniform: no seed is stuck, but none commits either
    assert big["final_entropy_mean"] > 0.6 and big["seeds_stuck"] <= 0.5 * base["seeds_stuck"]
    assert big["seeds_committed_to_best"] < base["seeds_committed_to_best"]
    assert big["mean_entropy_over_training"] > base["mean_entropy_over_training"]
    # the regularised optimum is stochastic: the sampled return stays below the greedy one
    assert big["final_return_sampled_mean"] < big["final_return_greedy_mean"]
    assert r["claim_holds"] == all(r["checks"].values())
    assert r["claim_holds"]


@pytest.mark.slow
def test_batch_vs_online(tmp_path):
    r = _run("batch-vs-online", tmp_path)
    s = r["settings"]
    batched = s["batched 8 envs x 5 steps"]
    online = [v for k, v in s.items() if k.startswith("online")]
    assert online and all(v["updates"] == 40 * batched["updates"] for v in online)  # same env steps
    assert all(batched["final_eval_iqm"] > v["final_eval_iqm"] + 100 for v in online)
    assert all(batched["run_time_s"] < v["run_time_s"] for v in online)
    assert r["claim_holds"]


@pytest.mark.slow
def test_shared_vs_separate(tmp_path):
    r = _run("shared-vs-separate", tmp_path)
    d = r["designs"]
    assert set(d) == {"separate networks", "shared torso"}
    for v in d.values():
        assert len(v["final_eval_per_seed"]) == len(r["setup"]["seeds"]) >= 3
        lo, hi = v["final_eval_iqm_ci95"]
        assert lo <= v["final_eval_iqm"] <= hi
        assert np.isfinite(v["value_loss_last_quarter_mean"]) and v["value_loss_last_quarter_mean"] > 0
    sep, sh = d["separate networks"], d["shared torso"]
    # the robust finding on CartPole with the preset: the separate networks learn much faster (seeds 0-2)
    assert sep["train_return_auc"] > 2 * sh["train_return_auc"]
    assert r["checks"]["separate final IQM >= shared final IQM"] == (sep["final_eval_iqm"] >= sh["final_eval_iqm"])
    assert r["claim_holds"] == all(r["checks"].values())


@pytest.mark.slow
def test_average_reward(tmp_path):
    r = _run("average-reward", tmp_path)
    avg, g9 = r["variants"]["average-reward"], r["variants"]["discounted, γ = 0.9"]
    rho = r["optimum"]["rho_star"]
    assert rho > r["optimum"]["always accept"] > r["optimum"]["uniform random"]
    # the differential actor-critic's policies come close to the optimal reward per step ...
    assert avg["fraction_of_optimum"] >= 0.95 and max(avg["exact_avg_reward_per_seed"]) <= rho + 1e-6
    # ... and every one beats every policy of the shortsighted discounted agent
    assert min(avg["exact_avg_reward_per_seed"]) > max(g9["exact_avg_reward_per_seed"])
    assert avg["last_window_reward_per_step_mean"] > avg["reward_per_step_curve"][0]  # it learned online
    assert r["claim_holds"]


def test_try_a2c_first_helpers():
    from advantage.labs import try_a2c_first as lab

    steps = [1000, 2000, 3000]
    curves = [[100, 480, 300], [np.nan, 200, 475], [10, 20, 30]]
    assert lab.steps_to_threshold(steps, curves, 475) == [2000.0, 3000.0, None]
    assert lab.median_steps([2000.0, 3000.0, None]) == 3000.0
    assert lab.median_steps([2000.0, None, None]) == np.inf
    cfg, source = lab.preset("a2c", "CartPole-v1")
    assert cfg == lab.a2c.PRESETS["CartPole-v1"] and source == "a2c.PRESETS['CartPole-v1']"
    cfg, source = lab.preset("reinforce", "Acrobot-v1")  # no Acrobot preset: CartPole's, without its tile ranges
    assert "no preset" in source and "tile_low" not in cfg and cfg["baseline"] == "value"
    cfg, source = lab.preset("dqn", "Acrobot-v1")  # DQN keeps the setting the lab was measured with
    assert cfg == lab.dqn.ZOO_CARTPOLE and "ZOO_CARTPOLE" in source


@pytest.mark.slow
def test_try_a2c_first(tmp_path):
    from advantage.labs import try_a2c_first as lab

    r = _run("try-a2c-first", tmp_path)
    res = r["results"]["CartPole-v1"]
    assert list(res) == ["a2c", "ppo", "reinforce", "trpo", "dqn"]
    n, evals = len(r["setup"]["seeds"]), r["setup"]["evals_during_training"]
    for algo, v in res.items():
        assert v["preset"]["source"] == lab.preset(algo, "CartPole-v1")[1]  # dqn: dqn.ZOO_CARTPOLE
        assert len(v["final_eval_per_seed"]) == n and np.asarray(v["eval_return_per_seed"]).shape == (n, evals)
        lo, hi = v["final_eval_iqm_ci95"]
        assert lo <= v["final_eval_iqm"] <= hi
        assert v["seconds_per_1000_env_steps"] > 0 and v["compile_time_s"] > 0
        reach = lab.steps_to_threshold(v["eval_steps"], v["eval_return_per_seed"], 475)
        assert v["steps_to_threshold_per_seed"] == reach
    # something learns in the quick budget (a random policy scores about 20) ...
    assert max(v["final_eval_iqm"] for v in res.values()) > 300
    # ... and DQN (64 gradient steps on a (256, 256) network per 128 env steps) costs more per env step than A2C
    assert res["dqn"]["seconds_per_1000_env_steps"] > 3 * res["a2c"]["seconds_per_1000_env_steps"]
    # the verdict is exactly the three checks, recomputed from the numbers
    a, p, d = res["a2c"], res["ppo"], res["dqn"]
    best = max(res.values(), key=lambda v: v["final_eval_iqm"])
    expected = (
        (a["final_eval_iqm"] >= best["final_eval_iqm_ci95"][0] or a["seeds_reaching_threshold"] == n)
        and p["seconds_per_1000_env_steps"] > a["seconds_per_1000_env_steps"]
        and d["final_eval_iqm"] >= p["final_eval_iqm"]
        and lab.median_steps(d["steps_to_threshold_per_seed"]) <= lab.median_steps(p["steps_to_threshold_per_seed"])
    )
    assert r["claim_holds"] == expected == all(r["checks"].values())
