"""``advantage.load_policy`` and ``advantage export``: a trained agent acting in the env's own spaces, and its
ONNX / npz files checked against it.

Tiny training runs (seconds): PPO on CartPole-v1 (JAX back end, two seeds), PPO on Pendulum-v1 with normalised
observations (Gymnasium back end), SAC on Pendulum-v1 (JAX back end), a linear REINFORCE on CartPole-v1
(Gymnasium back end). The reference actions come from the algorithm's own ``act`` and each back end's own action
conversion (``scale_action``, ``GymnasiumVecEnv.env_actions``).
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import train_run

import advantage
from advantage import algos
from advantage import export as ex
from advantage.envs.gymnasium import GymnasiumVecEnv
from advantage.envs.spaces import scale_action
from advantage.errors import AdvantageError, MissingExtraError, RunError
from advantage.training.driver import load_agents

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("policy")]

ROOT = Path(__file__).resolve().parents[1]

RUNS = {
    "ppo-cartpole-jax": ("ppo", dict(n_envs=2, n_steps=8, n_epochs=2), "CartPole-v1", "jax", (0, 1), 160),
    "ppo-pendulum-gym": (
        "ppo",
        dict(n_envs=2, n_steps=16, n_epochs=2, n_minibatches=2, normalize_obs=True),
        "Pendulum-v1",
        "gymnasium",
        (0,),
        96,
    ),
    "sac-pendulum-jax": (
        "sac",
        dict(learning_starts=16, batch_size=8, buffer_size=256, hidden_sizes=(16, 16)),
        "Pendulum-v1",
        "jax",
        (3,),
        64,
    ),
    "reinforce-linear-cartpole-gym": (
        "reinforce",
        dict(n_envs=2, n_steps=16, features="linear-raw"),
        "CartPole-v1",
        "gymnasium",
        (0,),
        64,
    ),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = {}
    for name, (algo, kwargs, env, backend, seeds, steps) in RUNS.items():
        cfg = algos.get(algo).Config(**kwargs)
        _, run_dir = train_run(
            tmp_path_factory.mktemp(name),
            algo,
            cfg,
            env,
            seeds=seeds,
            total_steps=steps,
            backend=backend,
            eval_episodes=2,
            eval_max_steps=50,
            n_chunks=1,
        )
        out[name] = run_dir
    return out


def observations(env_id: str, n: int, seed: int = 0) -> np.ndarray:
    """``n`` observations of a Gymnasium env played with random actions."""
    env = gym.make(env_id)
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    out = []
    for _ in range(n):
        out.append(obs)
        obs, _, term, trunc, _ = env.step(env.action_space.sample())
        if term or trunc:
            obs, _ = env.reset()
    return np.asarray(out, np.float32)


def reference_actions(run_dir, seed_index: int, obs: np.ndarray, backend: str, env_id: str) -> np.ndarray:
    """The run's agent's deterministic actions, converted by the back end's own code."""
    algo, cfg, space, agents = load_agents(run_dir)
    agent = jax.tree.map(lambda x: x[seed_index], agents)
    # jitted with the agent as an argument, as the back ends do (as constants, XLA would fold the normalisation)
    act = jax.jit(lambda a, o: algo.act(cfg, space, a, o, jax.random.PRNGKey(0), True)[0])
    action = np.asarray(act(agent, jnp.asarray(obs)))
    if backend == "gymnasium":
        vec = GymnasiumVecEnv(env_id, len(obs), validate=False)
        try:
            return vec.env_actions(action)
        finally:
            vec.close()
    if hasattr(space, "low"):
        return np.asarray(scale_action(action, jnp.asarray(space.low), jnp.asarray(space.high)))
    return action


# ----------------------------------------------------------------------------- load_policy and act
@pytest.mark.parametrize("name", sorted(RUNS))
def test_actions_equal_the_algorithms_act_through_the_back_end(runs, name):
    _, _, env_id, backend, seeds, _ = RUNS[name]
    policy = advantage.load_policy(runs[name], seed=seeds[-1])
    obs = observations(env_id, 64)
    ref = reference_actions(runs[name], len(seeds) - 1, obs, backend, env_id)
    got = policy.act(obs)
    assert got.shape == ref.shape and got.dtype == ref.dtype
    np.testing.assert_array_equal(got, ref)
    # one observation at a time: the same actions, in the env's own form
    singles = [policy.act(o) for o in obs[:8]]
    if env_id == "CartPole-v1":
        assert all(type(a) is int for a in singles) and singles == [int(a) for a in ref[:8]]
        assert policy.action_space.contains(singles[0]) or policy.action_space.contains(np.int32(singles[0]))
    else:
        assert all(a.shape == (1,) for a in singles)
        # a batch of one runs other matrix kernels than a batch of 64: equal to float32 rounding
        np.testing.assert_allclose(np.stack(singles), ref[:8], rtol=0, atol=1e-6)
        assert np.all(np.abs(got) <= 2.0)


@pytest.mark.parametrize("name", sorted(RUNS))
def test_act_jax_inside_jit_matches_act(runs, name):
    env_id = RUNS[name][2]
    policy = advantage.load_policy(runs[name], seed=RUNS[name][4][0])
    obs = observations(env_id, 32, seed=1)
    batch = np.asarray(jax.jit(policy.act_jax)(obs))
    single = np.asarray(jax.jit(policy.act_jax)(obs[0]))
    assert batch.shape == policy.act(obs).shape and single.shape == np.shape(policy.act(obs[0]))
    if env_id == "CartPole-v1":
        np.testing.assert_array_equal(batch, policy.act(obs))
    else:  # float32 in JAX; the Gymnasium back end rescales in float64
        np.testing.assert_allclose(batch, policy.act(obs), rtol=0, atol=1e-6)
    # and traced in a scan (a whole evaluation can be one compiled program)
    scanned = jax.jit(lambda o: jax.lax.scan(lambda c, x: (c, policy.act_jax(x)), 0, o)[1])(obs)
    if env_id == "CartPole-v1":
        np.testing.assert_array_equal(np.asarray(scanned), batch)
    else:  # one observation at a time: other kernels, float32 rounding
        np.testing.assert_allclose(np.asarray(scanned), batch, rtol=0, atol=1e-6)


def test_sampled_actions_are_valid_and_reproducible_with_a_key(runs):
    policy = advantage.load_policy(runs["ppo-pendulum-gym"])
    obs = observations("Pendulum-v1", 16)
    key = jax.random.PRNGKey(7)
    a = policy.act(obs, deterministic=False, key=key)
    np.testing.assert_array_equal(a, policy.act(obs, deterministic=False, key=key))
    assert not np.array_equal(a, policy.act(obs)) and np.all(np.abs(a) <= 2.0)
    b, c = policy.act(obs, deterministic=False), policy.act(obs, deterministic=False)  # its own key stream
    assert not np.array_equal(b, c)
    with pytest.raises(RunError, match="give it a JAX key"):
        policy.act_jax(obs, deterministic=False)


def test_the_best_seed_is_chosen_by_the_final_evaluation(runs, tmp_path):
    run_dir = runs["ppo-cartpole-jax"]
    per_seed = json.loads((run_dir / "summary.json").read_text())["eval_return"]["per_seed"]
    assert advantage.load_policy(run_dir).seed == (0, 1)[int(np.argmax(per_seed))]
    assert advantage.load_policy(run_dir, seed=0).seed == 0
    assert advantage.load_policy(run_dir, seed=1).seed == 1
    # the choice follows summary.json: make seed 0 the best
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    summary = json.loads((copy / "summary.json").read_text())
    summary["eval_return"]["per_seed"] = [10.0, 5.0]
    (copy / "summary.json").write_text(json.dumps(summary))
    assert advantage.load_policy(copy).seed == 0
    summary["eval_return"]["per_seed"] = [5.0, 10.0]
    (copy / "summary.json").write_text(json.dumps(summary))
    assert advantage.load_policy(copy).seed == 1
    (copy / "summary.json").unlink()
    with pytest.raises(RunError, match=r"no evaluation in summary.json.*seed=0"):
        advantage.load_policy(copy)
    with pytest.raises(RunError, match=r"seeds \[0, 1\]; seed 5 is not one of them"):
        advantage.load_policy(run_dir, seed=5)


def test_a_folder_that_is_not_a_run_is_a_clear_error(tmp_path):
    with pytest.raises(RunError, match="is not a run folder.*no config.json"):
        advantage.load_policy(tmp_path)
    with pytest.raises(RunError, match="is not a run folder"):
        ex.export(tmp_path, "npz")


def test_a_wrong_observation_shape_is_a_clear_error(runs):
    policy = advantage.load_policy(runs["ppo-cartpole-jax"], seed=0)
    with pytest.raises(RunError, match=r"shape \(3,\) was given; give one observation of shape \(4,\)"):
        policy.act(np.zeros(3, np.float32))
    with pytest.raises(RunError, match="shape"):
        policy.act(np.zeros((2, 2, 4), np.float32))


def test_search_algorithms_act_too(tmp_path):
    cem = algos.get("cem")
    _, run_dir = train_run(
        tmp_path,
        "cem",
        cem.Config(population_size=4),
        "CartPole-v1",
        total_steps=120,
        backend="gymnasium",
        eval_episodes=1,
        eval_max_steps=20,
    )
    policy = advantage.load_policy(run_dir)
    obs = observations("CartPole-v1", 16)
    np.testing.assert_array_equal(policy.act(obs), reference_actions(run_dir, 0, obs, "gymnasium", "CartPole-v1"))
    path, result, _ = ex.export(run_dir, "npz", out=tmp_path / "cem.npz")
    assert result["ok"] and result["agreement"] == 1.0 and path.exists()
    if importlib.util.find_spec("jax2onnx") and importlib.util.find_spec("onnxruntime"):
        path, result, _ = ex.export(run_dir, "onnx", out=tmp_path / "cem.onnx")
        assert result["ok"] and result["agreement"] == 1.0 and path.exists()


def test_the_readme_example_runs(runs, capsys):
    readme = (ROOT / "README.md").read_text()
    code = re.search(r"<!-- policy-example[^>]*-->\n```python\n(.*?)```", readme, re.S).group(1)
    exec(compile(code, "README.md", "exec"), {"summary": {"run_dir": str(runs["ppo-cartpole-jax"])}})
    episode_return = float(capsys.readouterr().out.strip().splitlines()[-1])
    assert 1.0 <= episode_return <= 500.0


# ----------------------------------------------------------------------------- export
def doc_forward():
    """The numpy forward pass printed in docs/using-a-trained-agent.md."""
    doc = (ROOT / "docs" / "using-a-trained-agent.md").read_text()
    code = re.search(r"<!-- npz-forward -->\n```python\n(.*?)```", doc, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "using-a-trained-agent.md", "exec"), namespace)
    return namespace["forward"]


@pytest.mark.parametrize("name", sorted(RUNS))
def test_npz_forward_in_numpy_matches_policy_act(runs, name, tmp_path):
    _, _, env_id, _, seeds, _ = RUNS[name]
    path, result, policy = ex.export(runs[name], "npz", out=tmp_path / "p.npz", seed=seeds[0])
    print(f"npz parity {name}: {result}")
    assert result["ok"] and result["n"] == ex.N_CHECK
    npz = np.load(path)
    description = json.loads(str(npz["description"]))
    assert description["algo"] == RUNS[name][0] and description["seed"] == seeds[0]
    if RUNS[name][1].get("normalize_obs"):
        assert description["observation"]["normalize"] is not None  # folded in
        np.testing.assert_array_equal(npz["obs_mean"], np.asarray(policy.agent.obs_rms.mean))
    obs = observations(env_id, 200, seed=3)
    got, ref = doc_forward()(npz, obs), policy.act(obs)
    assert got.shape == ref.shape
    if env_id == "CartPole-v1":
        np.testing.assert_array_equal(got, ref)
    else:
        np.testing.assert_allclose(got, ref, rtol=0, atol=ex.ATOL)


def test_the_check_fails_when_the_actions_differ(runs):
    policy = advantage.load_policy(runs["sac-pendulum-jax"])
    obs = ex.evaluation_observations(policy, 50)
    actions = policy.act(obs)
    assert ex.parity(policy, actions, obs)["ok"]
    bad = ex.parity(policy, actions + 1e-4, obs)
    assert not bad["ok"] and bad["max_abs_diff"] == pytest.approx(1e-4, rel=1e-2)
    with pytest.raises(RunError, match="does not act like the policy"):
        ex._require(bad, "ONNX model")
    discrete = advantage.load_policy(runs["ppo-cartpole-jax"], seed=0)
    obs = ex.evaluation_observations(discrete, 50)
    flipped = 1 - discrete.act(obs)
    flipped[1:] = discrete.act(obs)[1:]
    result = ex.parity(discrete, flipped, obs)
    assert not result["ok"] and result["agreement"] == pytest.approx(49 / 50)


def test_onnx_without_the_extra_names_it(runs, monkeypatch, tmp_path):
    monkeypatch.setitem(__import__("sys").modules, "jax2onnx", None)
    with pytest.raises(MissingExtraError, match=r"advantage\[export\]"):
        ex.export(runs["ppo-cartpole-jax"], "onnx", out=tmp_path / "p.onnx")
    assert not (tmp_path / "p.onnx").exists()
    with pytest.raises(RunError, match="--format 'tflite': choose one of onnx, npz"):
        ex.export(runs["ppo-cartpole-jax"], "tflite")


@pytest.mark.parametrize(
    "name", ["ppo-cartpole-jax", "ppo-pendulum-gym", "sac-pendulum-jax", "reinforce-linear-cartpole-gym"]
)
def test_onnx_export_acts_like_the_policy(runs, name, tmp_path):
    pytest.importorskip("jax2onnx")
    ort = pytest.importorskip("onnxruntime")
    path, result, policy = ex.export(runs[name], "onnx", out=tmp_path / "p.onnx")
    print(f"ONNX parity {name}: max abs diff {result['max_abs_diff']:.3g}, identical {result['agreement']:.1%}")
    assert result["ok"] and result["n"] == ex.N_CHECK
    # from another program: onnxruntime alone, on observations the check did not see
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    obs = observations(RUNS[name][2], 100, seed=5)
    got = session.run(["action"], {"obs": obs})[0]
    one = session.run(["action"], {"obs": obs[:1]})[0]
    ref = policy.act(obs)
    assert got.shape == ref.shape and one.shape == ref[:1].shape
    if result["discrete"]:
        np.testing.assert_array_equal(got, ref)
    else:
        np.testing.assert_allclose(got, ref, rtol=0, atol=ex.ATOL)


def test_cli_export(runs, tmp_path, capsys):
    from advantage.cli import main

    out = tmp_path / "policy.npz"
    assert main(["export", str(runs["ppo-pendulum-gym"]), "--format", "npz", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert out.exists() and re.search(r"checked on 1000 observations .*max \|action - policy.act\| = ", printed)
    assert main(["export", str(tmp_path / "nothing"), "--format", "npz"]) == 2
    assert "is not a run folder" in capsys.readouterr().err
    assert issubclass(RunError, AdvantageError)


def test_discrete_observations_are_one_hot_encoded_as_in_training(tmp_path):
    """FrozenLake (Discrete(16) observations, Discrete(4) actions) on the Gymnasium back end: ``act`` takes the
    env's integer observation; the linear policy's weights are made random so that the actions say something."""
    reinforce = algos.get("reinforce")
    cfg = reinforce.Config(n_envs=2, n_steps=16, features="linear-onehot")
    _, run_dir = train_run(
        tmp_path, "reinforce", cfg, "FrozenLake-v1", total_steps=64, backend="gymnasium", eval_episodes=1
    )
    policy = advantage.load_policy(run_dir)
    w = jax.random.normal(jax.random.PRNGKey(1), (16, 4))
    params = dict(policy.agent.params, policy={"params": {"LinearHead_0": {"w": w}}})
    policy.agent = policy.agent.replace(params=params)
    states = np.arange(16)
    expected = np.argmax(np.asarray(w), axis=1)  # the logits of state s are row s of w
    np.testing.assert_array_equal(policy.act(states), expected)
    assert [policy.act(int(s)) for s in states] == list(expected)
    np.testing.assert_array_equal(np.asarray(jax.jit(policy.act_jax)(states)), expected)
    assert ex.export_npz(policy, tmp_path / "p.npz")["agreement"] == 1.0
    npz = np.load(tmp_path / "p.npz")
    np.testing.assert_array_equal(doc_forward()(npz, np.eye(16, dtype=np.float32)), expected)  # one-hot input


def test_a_tile_coded_linear_policy_exports_to_npz(tmp_path):
    """REINFORCE linear in tile coding (4 tilings of 3 tiles per CartPole dimension): the npz holds the tiling
    and the weight rows, and the numpy forward pass (the documented one too) picks the policy's actions."""
    cfg = algos.get("reinforce").Config(
        n_envs=2, n_steps=16, features="linear-tiles", n_tilings=4, tiles_per_dim=3,
        tile_low=(-2.4, -3.0, -0.21, -3.0), tile_high=(2.4, 3.0, 0.21, 3.0),
    )  # fmt: skip
    _, run_dir = train_run(tmp_path, "reinforce", cfg, "CartPole-v1", total_steps=256, eval_episodes=2, n_chunks=1)
    path, result, policy = ex.export(run_dir, "npz", out=tmp_path / "tiles.npz")
    assert result["agreement"] == 1.0
    npz = np.load(path)
    tiles = json.loads(str(npz["description"]))["observation"]["tiles"]
    assert tiles == {"low": [-2.4, -3.0, -0.21, -3.0], "high": [2.4, 3.0, 0.21, 3.0], "n_tilings": 4,
                     "tiles_per_dim": 3}  # fmt: skip
    assert npz["W0"].shape == (4 * 4**4, 2)
    obs = observations("CartPole-v1", 300, seed=3)
    obs[::7] *= 3.0  # some outside the tiled ranges: clipped to the edge tiles
    np.testing.assert_array_equal(doc_forward()(npz, obs), policy.act(obs))
    np.testing.assert_array_equal(ex.numpy_forward(npz, obs), policy.act(obs))
