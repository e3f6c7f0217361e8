"""The evaluation routine and the health checks of the driver."""

import jax
import numpy as np
import pytest
from helpers import train_run

from advantage.algos import ppo
from advantage.cli import main
from advantage.training import driver
from advantage.training.health import HealthMonitor, NonFiniteError

SMALL = dict(n_envs=8, n_steps=32, n_epochs=2, n_minibatches=2)


@pytest.mark.parametrize("backend", ["jax", "gymnasium"])
def test_eval_seeds_are_disjoint_and_shared_across_training_seeds(tmp_path, backend):
    import json

    summary, run_dir = train_run(tmp_path, "ppo", ppo.Config(**SMALL), "CartPole-v1", seeds=(0, 1),
                                 total_steps=1024, eval_episodes=12, backend=backend, eval_record=4)
    final = json.loads((run_dir / "eval" / "final.json").read_text())
    assert final[0]["eval_seeds"] == final[1]["eval_seeds"]
    assert len(final[0]["returns"]) == 12
    assert not set(final[0]["eval_seeds"]) & {0, 1}
    episodes = np.load(run_dir / "eval" / "final.npz")
    # the same evaluation episodes start from the same states for both training seeds ...
    np.testing.assert_array_equal(episodes["obs"][0, :, 0], episodes["obs"][1, :, 0])
    # ... which differ from one episode to the next
    assert len({tuple(o) for o in episodes["obs"][0, :, 0]}) == 4
    # the recorded rewards add up to the reported returns (raw, undiscounted)
    np.testing.assert_allclose(episodes["rewards"].sum(axis=2), np.asarray([f["returns"][:4] for f in final]))


def test_evaluation_freezes_normalisation_and_matches_a_reload(tmp_path):
    cfg = ppo.Config(**{**SMALL, "normalize_obs": True})
    summary, run_dir = train_run(tmp_path, "ppo", cfg, "CartPole-v1", total_steps=1024, eval_episodes=20)
    before = driver.load_agents(run_dir)[3].obs_rms
    again = driver.evaluate_run(run_dir, episodes=20)
    after = driver.load_agents(run_dir)[3].obs_rms
    for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after)):
        np.testing.assert_array_equal(a, b)
    assert again["eval_return"]["per_seed"] == summary["eval_return"]["per_seed"]
    assert float(before.count[0]) > 1000  # statistics were learned during training


def test_periodic_evaluation_is_kept(tmp_path):
    summary, run_dir = train_run(tmp_path, "ppo", ppo.Config(**SMALL), "CartPole-v1", total_steps=2048,
                                 eval_episodes=5, eval_every=1024, n_chunks=8)
    assert (run_dir / "eval" / "step_1024.json").exists()
    rows = (run_dir / "eval" / "history.csv").read_text().splitlines()
    assert rows[0].startswith("step,seed") and [r.split(",")[0] for r in rows[1:]] == ["1024", "2048"]


def test_learning_curve_is_a_real_image(tmp_path):
    from PIL import Image

    summary, run_dir = train_run(tmp_path, "ppo", ppo.Config(**SMALL), "CartPole-v1", total_steps=2048)
    img = np.asarray(Image.open(summary["learning_curve"]).convert("L"), np.float32)
    assert img.shape[0] > 200 and img.shape[1] > 300 and img.std() > 5


# ----------------------------------------------------------------------------- health checks
def _metrics(n=30, **overrides):
    base = {"loss/value": np.ones((1, n)), "loss/entropy": np.full((1, n), 0.5), "grad/norm": np.ones((1, n)),
            "adv/mean_abs": np.ones((1, n)), "train/reward_std": np.ones((1, n)),
            "train/terminations": np.zeros((1, n)), "value/explained_variance": np.full((1, n), 0.5),
            "loss/approx_kl_max": np.full((1, n), 0.01), "train/episode_return": np.full((1, n), np.nan)}
    base.update({k: np.asarray(v, np.float64).reshape(1, n) for k, v in overrides.items()})
    return base


def test_healthy_metrics_warn_nothing():
    m = HealthMonitor([0])
    m.check(_metrics(), np.arange(1, 31) * 100)
    assert m.warned == {}


@pytest.mark.parametrize("override, rule", [
    ({"adv/mean_abs": np.zeros(30)}, "zero-advantage"),
    ({"train/reward_std": np.zeros(30)}, "constant-reward"),
    ({"loss/entropy": np.full(30, 1e-5)}, "entropy-collapse"),
    ({"loss/approx_kl_max": np.r_[np.full(29, 0.01), 0.9]}, "large-kl"),
])
def test_each_health_rule_warns_once(override, rule, tmp_path):
    m = HealthMonitor([0], log_path=tmp_path / "w.log")
    m.check(_metrics(**override), np.arange(1, 31) * 100)
    m.check(_metrics(**override), np.arange(31, 61) * 100)
    assert list(m.warned) == [rule]
    assert len((tmp_path / "w.log").read_text().splitlines()) == 1


def test_explained_variance_rule_needs_a_long_streak():
    m = HealthMonitor([0])
    m.check(_metrics(**{"value/explained_variance": np.full(30, -0.5)}), np.arange(30))
    assert m.warned == {}
    m.check(_metrics(**{"value/explained_variance": np.full(30, -0.5)}), np.arange(30, 60))
    assert list(m.warned) == ["negative-ev"]


def test_algorithm_nan_metrics_are_allowed_but_nonfinite_params_still_stop():
    nan_loss = {"loss/critic": np.full(30, np.nan), "q/mean": np.full(30, np.nan)}
    with pytest.raises(NonFiniteError, match="loss/critic"):
        HealthMonitor([0]).check(_metrics(**nan_loss), np.arange(30))
    m = HealthMonitor([0], nan_allowed=("loss/", "q/"))  # an off-policy learner before learning_starts
    m.check(_metrics(**nan_loss), np.arange(30))
    with pytest.raises(NonFiniteError, match="parameters"):
        m.check(_metrics(**nan_loss, **{"health/nonfinite_params": np.r_[np.zeros(29), 3.0]}), np.arange(30))


def test_constant_reward_rule_needs_two_steps_per_update():
    # one env step per update (SAC, TD3): the std of a single reward is 0 whatever the reward function
    m = HealthMonitor([0], steps_per_update=1)
    m.check(_metrics(**{"train/reward_std": np.zeros(30)}), np.arange(30))
    assert m.warned == {}


def test_constant_reward_with_terminations_is_a_signal():
    m = HealthMonitor([0])  # CartPole: reward 1 on every step, episodes terminate
    m.check(_metrics(**{"train/reward_std": np.zeros(30), "train/terminations": np.ones(30)}), np.arange(30))
    m.check(_metrics(**{"train/reward_std": np.zeros(30)}), np.arange(30, 60))
    assert m.warned == {}


def test_nonfinite_names_its_first_source():
    m = HealthMonitor([3, 7])
    metrics = {"loss/value": np.array([[1.0, 1.0, np.nan], [1.0, 1.0, 1.0]]),
               "grad/norm": np.array([[1.0, np.inf, 1.0], [1.0, 1.0, 1.0]]),
               "health/nonfinite_obs": np.zeros((2, 3)), "train/episode_return": np.full((2, 3), np.nan)}
    with pytest.raises(NonFiniteError, match=r"gradient \(grad/norm\), first at the update ending at env step 200 "
                                             r"of seed 3"):
        m.check_finite(metrics, np.array([100, 200, 300]))
    metrics["health/nonfinite_obs"] = np.array([[0.0, 0.0, 0.0], [0.0, 4.0, 0.0]])
    with pytest.raises(NonFiniteError, match="an observation from the environment"):
        m.check_finite(metrics, np.array([100, 200, 300]))


def test_nan_from_a_jax_env_stops_the_run_and_saves_the_batch(tmp_path, capsys):
    from advantage.training.checkpoint import load_meta

    run_dir = tmp_path / "nan"
    code = main(["train", "ppo", "--env", "envs_for_tests:NanAfter50", "--seeds", "0", "--total-steps", "2560",
                 "--n-envs", "4", "--n-steps", "16", "--n-epochs", "1", "--n-chunks", "10", "--eval-episodes", "0",
                 "--run-dir", str(run_dir), "--no-progress"])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 1 and "an observation from the environment" in err and "Traceback" not in err, err
    batch = np.load(run_dir / "debug" / "nonfinite_batch.npz")
    assert np.isnan(batch["next_obs"]).any()
    meta, _ = load_meta(run_dir / "checkpoints")
    assert meta["env_steps"] < 50 * 4  # the checkpoint holds the last finite state
