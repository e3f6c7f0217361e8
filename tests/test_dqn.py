"""DQN and Double DQN: the TD targets and losses by hand (terminated does not bootstrap, truncated does), the
epsilon schedule and acting, the target-network update and the training schedule, probe environments (the
right values and the optimal actions are learned), a resumed run, and CartPole-v1."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import first_agent, train_run

from advantage.algos import dqn
from advantage.buffers import replay
from advantage.config import ConfigError
from advantage.envs import Box, Discrete
from advantage.types import Transition

SPACE = Discrete(2)


def _linear(kernel, bias):
    """A Q network without hidden layers (``hidden_sizes=()``): ``Q(s) = s W + b``, written by hand."""
    return {"params": {"out": {"kernel": jnp.asarray(kernel, jnp.float32), "bias": jnp.asarray(bias, jnp.float32)}}}


def _sample(obs, action, reward, terminated, truncated, next_obs):
    f = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    return replay.Sample(
        f(obs),
        jnp.asarray(action, jnp.int32),
        f(reward),
        jnp.asarray(terminated, bool),
        jnp.asarray(truncated, bool),
        f(next_obs),
    )


# Online Q(s) = [s, -s + 0.5]; target Q'(s) = [0.5 s, s + 1], for a 1-D observation and two actions.
ONLINE = _linear([[1.0, -1.0]], [0.0, 0.5])
TARGET = _linear([[0.5, 1.0]], [0.0, 1.0])
# four transitions with reward 1: s' = 1 truncated / terminated / both; s' = -1 neither
MB = _sample(
    [[0.0]] * 4,
    [0, 1, 0, 1],
    [1.0] * 4,
    [False, True, True, False],
    [True, False, True, False],
    [[1.0], [1.0], [1.0], [-1.0]],
)


# ----------------------------------------------------------------------------- targets and losses by hand
def test_dqn_and_double_dqn_targets_by_hand():
    """At s' = 1: online Q = [1, -0.5] picks action 0, target Q' = [0.5, 2]. DQN bootstraps from max Q' = 2,
    Double DQN from Q'(s', 0) = 0.5. At s' = -1: online Q = [-1, 1.5] picks action 1, Q' = [-0.5, 0]: both
    bootstrap from 0. A terminated step (alone or with a truncation) does not bootstrap; a truncated one does."""
    y = np.asarray(dqn.q_target(dqn.Config(hidden_sizes=(), gamma=0.9), SPACE, ONLINE, TARGET, MB))
    np.testing.assert_allclose(y, [1.0 + 0.9 * 2.0, 1.0, 1.0, 1.0 + 0.9 * 0.0], rtol=1e-6)
    y2 = np.asarray(dqn.q_target(dqn.Config(hidden_sizes=(), gamma=0.9, double=True), SPACE, ONLINE, TARGET, MB))
    np.testing.assert_allclose(y2, [1.0 + 0.9 * 0.5, 1.0, 1.0, 1.0], rtol=1e-6)
    assert y[0] == pytest.approx(2.8) and y2[0] == pytest.approx(1.45)  # where the two differ


def test_next_value_is_the_target_value_of_the_online_argmax():
    q_t = jnp.asarray([[1.0, 5.0, 3.0], [2.0, 0.0, 4.0]])
    q_o = jnp.asarray([[0.0, 0.0, 9.0], [7.0, 1.0, 1.0]])
    np.testing.assert_allclose(np.asarray(dqn.next_value(q_t, None, double=False)), [5.0, 4.0])
    np.testing.assert_allclose(np.asarray(dqn.next_value(q_t, q_o, double=True)), [3.0, 2.0])


@pytest.mark.parametrize("loss, expected", [("huber", (0.125 + 2.5) / 2), ("mse", (0.25 + 9.0) / 2)])
def test_td_loss_by_hand_and_its_gradient(loss, expected):
    """Q(s=1) = [1, -0.5]; actions 0 and 1 with targets 0.5 and -3.5: errors 0.5 and 3. Huber: 0.5 * 0.5^2 and
    3 - 0.5; squared: 0.25 and 9. The gradient reaches only the taken action's output."""
    cfg = dqn.Config(hidden_sizes=(), loss=loss)
    obs, action, y = jnp.ones((2, 1)), jnp.asarray([0, 1]), jnp.asarray([0.5, -3.5])
    value, q_sa = dqn.td_loss(ONLINE, cfg, SPACE, obs, action, y)
    np.testing.assert_allclose(np.asarray(q_sa), [1.0, -0.5])
    assert float(value) == pytest.approx(expected)
    grad = jax.grad(lambda p: dqn.td_loss(p, cfg, SPACE, obs, action, y)[0])(ONLINE)["params"]["out"]["bias"]
    # d/dq of the mean over 2 samples: huber -> clip(err, -1, 1) / 2 ; mse -> 2 err / 2
    np.testing.assert_allclose(np.asarray(grad), [0.25, 0.5] if loss == "huber" else [0.5, 3.0], rtol=1e-6)


# ----------------------------------------------------------------------------- config, acting, schedules
def test_box_action_space_is_a_clear_config_error():
    with pytest.raises(ConfigError, match=r"^dqn needs a discrete action space; got a continuous Box .*sac or td3"):
        dqn.init(jax.random.PRNGKey(0), Box(-1, 1, (3,)), Box(-1, 1, (1,)), dqn.Config(hidden_sizes=(8,)), 10)
    with pytest.raises(ConfigError, match="dqn.loss"):
        dqn.Config(loss="l1")
    with pytest.raises(ConfigError, match="dqn.exploration_final_eps"):
        dqn.Config(exploration_final_eps=1.5)


def test_continuous_env_on_the_command_line_exits_2(tmp_path):
    import subprocess
    import sys

    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "advantage.cli",
            "train",
            "dqn",
            "--env",
            "Pendulum-v1",
            "--total-steps",
            "10",
            "--run-dir",
            str(tmp_path / "r"),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert out.returncode == 2, out.stderr
    assert "dqn needs a discrete action space" in out.stderr and "sac or td3" in out.stderr
    assert "Traceback" not in out.stderr


def test_epsilon_schedule_by_hand():
    cfg = dqn.Config(exploration_fraction=0.5, exploration_initial_eps=1.0, exploration_final_eps=0.1)
    eps = [float(dqn.epsilon(cfg, t, 1000)) for t in (0, 250, 500, 900)]
    np.testing.assert_allclose(eps, [1.0, 0.55, 0.1, 0.1], rtol=1e-6)
    assert float(dqn.epsilon(cfg.replace(exploration_fraction=0.0), 0, 1000)) == pytest.approx(0.1)


def test_act_random_before_learning_starts_then_epsilon_greedy():
    """Four actions; the network prefers one action at s = 0. Before learning_starts every action is uniform;
    after, the greedy one is taken with probability 1 - eps + eps / 4."""
    n, space = 20_000, Discrete(4)
    cfg = dqn.Config(hidden_sizes=(8,), learning_starts=100, exploration_fraction=0.5, exploration_final_eps=0.2)
    state = dqn.init(jax.random.PRNGKey(0), Box(-1, 1, (1,)), space, cfg, total_steps=1000)
    obs = jnp.zeros((n, 1))
    greedy, logp, value = dqn.act(cfg, space, state, obs, None, deterministic=True)
    assert greedy.dtype == jnp.int32 and greedy.shape == logp.shape == value.shape == (n,)
    q = dqn.q_net(cfg, space).apply(state.q_params, obs[:1])[0]
    assert int(greedy[0]) == int(jnp.argmax(q)) and float(value[0]) == pytest.approx(float(jnp.max(q)))
    a = np.asarray(dqn.act(cfg, space, state, obs, jax.random.PRNGKey(1))[0])
    np.testing.assert_allclose(np.bincount(a, minlength=4) / n, 0.25, atol=0.015)  # uniform
    for t, eps in ((100, 1.0 - 0.8 * 100 / 500), (600, 0.2)):  # eps(100) = 0.84, eps(600) = 0.2 (final)
        a = np.asarray(dqn.act(cfg, space, state.replace(env_steps=jnp.int32(t)), obs, jax.random.PRNGKey(2))[0])
        assert np.mean(a == int(greedy[0])) == pytest.approx(1 - eps + eps / 4, abs=0.015)


def _batch(T, n_envs=1, obs=0.0):
    o = jnp.full((T, n_envs, 1), obs, jnp.float32)
    return Transition(
        o,
        jnp.ones((T, n_envs), jnp.int32),
        jnp.ones((T, n_envs)),
        jnp.zeros((T, n_envs), bool),
        jnp.zeros((T, n_envs), bool),
        o,
        jnp.zeros((T, n_envs)),
        jnp.zeros((T, n_envs)),
    )


def test_target_update_hard_copy_by_period_and_polyak():
    cfg = dqn.Config(hidden_sizes=(8,), batch_size=4, learning_starts=0, train_freq=1, target_update_interval=3)
    state = dqn.init(jax.random.PRNGKey(0), Box(-1, 1, (1,)), SPACE, cfg, 100)
    online = jax.tree.map(lambda x: x + 1.0, state.q_params)
    state = state.replace(q_params=online)
    leaves = lambda p: np.concatenate([np.ravel(x) for x in jax.tree.leaves(p)])  # noqa: E731
    old, new = leaves(state.target_params), leaves(online)
    # from 0 to 2 env steps: no multiple of 3 crossed; from 2 to 3: a hard copy (tau = 1)
    np.testing.assert_array_equal(leaves(dqn.target_update(cfg, state, jnp.int32(0), 2).target_params), old)
    np.testing.assert_allclose(leaves(dqn.target_update(cfg, state, jnp.int32(2), 1).target_params), new)
    # tau = 0.5 and two periods crossed (2 -> 7 passes 3 and 6): 1 - 0.5^2 = 0.75 of the way
    soft = dqn.target_update(cfg.replace(tau=0.5), state, jnp.int32(2), 5).target_params
    np.testing.assert_allclose(leaves(soft), 0.75 * new + 0.25 * old, rtol=1e-6, atol=1e-7)
    # in update: the target takes the online network of before this update's gradient steps (SB3's order)
    cfg1 = cfg.replace(target_update_interval=1)
    after, m = dqn.update(cfg1, SPACE, state, _batch(1), jax.random.PRNGKey(1))
    assert int(m["opt/gradient_steps"]) == 1
    np.testing.assert_allclose(leaves(after.target_params), new)
    assert not np.allclose(leaves(after.q_params), new)


def test_learning_starts_train_freq_gradient_steps_and_metrics():
    """Rounds of 3 gradient steps every 2 env steps once more than 3 transitions were collected; no gradient
    step: the loss and Q metrics are NaN, epsilon and the buffer size are always defined."""
    cfg = dqn.Config(
        hidden_sizes=(8,), batch_size=4, learning_starts=3, train_freq=2, gradient_steps=3, exploration_fraction=0.5
    )
    state = dqn.init(jax.random.PRNGKey(0), Box(-1, 1, (1,)), SPACE, cfg, 16)
    upd = jax.jit(lambda s, b, k: dqn.update(cfg, SPACE, s, b, k))
    steps, eps = [], []
    for i in range(8):
        state, m = upd(state, _batch(1, obs=float(i)), jax.random.PRNGKey(i))
        steps.append(int(m["opt/gradient_steps"]))
        eps.append(float(m["explore/epsilon"]))
        keys = ("loss/td", "value/mean_q", "value/max_q", "grad/norm")
        assert all(math.isnan(float(m[k])) != bool(steps[-1]) for k in keys), m
        assert float(m["buffer/size"]) == i + 1
    assert steps == [0, 0, 0, 3, 0, 3, 0, 3] and int(state.grad_steps) == 9
    # random before learning_starts (eps reported as 1), then the schedule from eps(3) over 8 steps to 0.05
    np.testing.assert_allclose(eps, [1, 1, 1] + [1 - 0.95 * t / 8 for t in range(3, 8)], rtol=1e-6)
    assert state.buffer.action.dtype == jnp.int32
    # one rollout of n_steps=4 and 2 envs with train_freq=2: two rounds in one update
    cfg4 = cfg.replace(learning_starts=0, n_steps=4, n_envs=2)
    _, m = dqn.update(
        cfg4,
        SPACE,
        dqn.init(jax.random.PRNGKey(0), Box(-1, 1, (1,)), SPACE, cfg4, 16),
        _batch(4, 2),
        jax.random.PRNGKey(0),
    )
    assert int(m["opt/gradient_steps"]) == 6


# ----------------------------------------------------------------------------- probe environments
# Small networks, a frequent target update and a short exploration phase, so that the probes converge in a few
# thousand steps; gamma 0.9 as in the other probe tests.
PROBE = dict(
    hidden_sizes=(64, 64),
    batch_size=64,
    learning_rate=1e-3,
    gamma=0.9,
    learning_starts=200,
    train_freq=1,
    target_update_interval=50,
    exploration_fraction=0.3,
    exploration_final_eps=0.2,
)


def _train_probe(tmp_path, env, steps, **overrides):
    _, run_dir = train_run(tmp_path, "dqn", dqn.Config(**{**PROBE, **overrides}), "probe/" + env, total_steps=steps)
    _, cfg, space, agent = first_agent(run_dir)
    return lambda obs: np.asarray(dqn.q_net(cfg, space).apply(agent.q_params, jnp.asarray([[obs]], jnp.float32))[0])


@pytest.mark.parametrize("double", [False, True], ids=["dqn", "double"])
def test_probe_values_two_step_and_truncation_bootstraps(tmp_path, double):
    """TwoStep: Q(+1, .) = 1 (terminal), Q(-1, .) = gamma. EndlessReward (reward 1, truncated after 10 steps):
    Q = 1 / (1 - gamma) = 10 only if the truncation bootstraps (treated as a termination: about 6.5)."""
    q = _train_probe(tmp_path, "TwoStep-v0", 3000, double=double)
    np.testing.assert_allclose(q(1.0), 1.0, atol=0.05)
    np.testing.assert_allclose(q(-1.0), 0.9, atol=0.05)
    q = _train_probe(tmp_path, "EndlessReward-v0", 3000, double=double)
    np.testing.assert_allclose(q(0.0), 10.0, atol=0.5)


def test_probe_optimal_actions_are_found(tmp_path):
    """ActionReward: Q(0, 1) = 1, Q(0, 0) = 0. ContextualBandit: the greedy action is 1 on +1 and 0 on -1."""
    q = _train_probe(tmp_path, "ActionReward-v0", 1500)
    np.testing.assert_allclose(q(0.0), [0.0, 1.0], atol=0.05)
    q = _train_probe(tmp_path, "ContextualBandit-v0", 2000)
    assert np.argmax(q(1.0)) == 1 and np.argmax(q(-1.0)) == 0
    np.testing.assert_allclose([q(1.0)[1], q(-1.0)[0]], 1.0, atol=0.1)


# ----------------------------------------------------------------------------- checkpoints
def test_interrupted_run_resumes_to_the_same_result_with_its_buffer(tmp_path, monkeypatch):
    from advantage.training import checkpoint, driver
    from advantage.training.jax_backend import JaxBackend

    cfg = dqn.Config(**PROBE)
    kwargs = dict(total_steps=600, n_chunks=6, eval_episodes=3)
    reference, _ = train_run(tmp_path / "ref", "dqn", cfg, "CartPole-v1", **kwargs)
    calls, real = {"n": 0}, JaxBackend.run_chunk

    def run_chunk(self, runners, n):
        calls["n"] += 1
        if calls["n"] > 3:
            raise KeyboardInterrupt
        return real(self, runners, n)

    monkeypatch.setattr(JaxBackend, "run_chunk", run_chunk)
    with pytest.raises(KeyboardInterrupt):
        train_run(tmp_path / "cut", "dqn", cfg, "CartPole-v1", **kwargs)
    monkeypatch.setattr(JaxBackend, "run_chunk", real)
    run_dir = next((tmp_path / "cut").glob("run-*"))
    meta, _ = checkpoint.load_meta(run_dir / "checkpoints")
    assert meta["env_steps"] == 300 and meta["replay_buffer_saved"] is True
    resumed = driver.resume(run_dir)
    assert resumed["params_digest"] == reference["params_digest"]
    assert resumed["eval_return"]["per_seed"] == reference["eval_return"]["per_seed"]


# ----------------------------------------------------------------------------- learning
@pytest.mark.slow
def test_learns_cartpole(tmp_path):
    """The CartPole-v1 preset (advantage/presets.py ``dqn-cartpole``; 500k steps, JAX path) on seeds 0-2. Not yet
    robust: 20 of seeds 0-19 reach 475 under AVX2 but 18 under AVX (docs/algorithms/dqn.md), so this checks the mean
    of seeds 0-2 against 475 (measured 500, 500, 500 under both) and every seed against 400."""
    from advantage.presets import get

    preset = get("dqn-cartpole")
    summary, run_dir = train_run(
        tmp_path,
        "dqn",
        preset.config(),
        preset.env,
        seeds=(0, 1, 2),
        total_steps=preset.steps,
        eval_episodes=preset.eval_episodes,
        backend="jax",
    )
    per_seed = summary["eval_return"]["per_seed"]
    assert summary["eval_return"]["mean"] >= preset.threshold and min(per_seed) >= 400, (per_seed, run_dir)
