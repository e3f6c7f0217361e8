"""DDPG, TD3 and SAC: the targets and losses by hand, the exploration and training schedule,
probe environments (the right value and the right action are learned), and Pendulum-v1."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import first_agent, train_run

from advantage.algos import ddpg, sac, td3
from advantage.buffers import replay
from advantage.config import ConfigError
from advantage.envs import Box, Discrete
from advantage.types import Transition

MODULES = {"ddpg": ddpg, "td3": td3, "sac": sac}


def _sample(obs, action, reward, terminated, truncated, next_obs):
    f = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    return replay.Sample(f(obs), f(action), f(reward), jnp.asarray(terminated, bool), jnp.asarray(truncated, bool),
                         f(next_obs))


def _linear(kernel, bias):
    return {"kernel": jnp.asarray(kernel, jnp.float32), "bias": jnp.asarray(bias, jnp.float32)}


# Networks without hidden layers are linear: their parameters can be written by hand.
# Two critics on (s, a), stacked: Q1 = 1 s + 2 a + 0.5,  Q2 = 2 s + 1 a + 0.
CRITICS = {"params": {"out": _linear([[[1.0], [2.0]], [[2.0], [1.0]]], [[0.5], [0.0]])}}
Q1 = lambda s, a: 1.0 * s + 2.0 * a + 0.5  # noqa: E731
Q2 = lambda s, a: 2.0 * s + 1.0 * a  # noqa: E731
# three transitions from s = 0 with a = 0, reward 1, next state s' = 1: truncated / terminated / both
MB = _sample([[0.0]] * 3, [[0.0]] * 3, [1.0, 1.0, 1.0], [False, True, True], [True, False, True], [[1.0]] * 3)


# ----------------------------------------------------------------------------- targets by hand
def test_td3_target_by_hand_min_of_two_and_truncation_bootstraps():
    cfg = td3.Config(hidden_sizes=(), gamma=0.9, policy_noise=0.0)
    space = Box(-1, 1, (1,))
    actor = {"params": {"out": _linear([[0.5]], [0.0])}}  # mu(s) = tanh(0.5 s)
    y = np.asarray(td3.critic_target(cfg, space, actor, CRITICS, MB, jax.random.PRNGKey(0)))
    a1 = math.tanh(0.5)  # 0.46212
    q_next = min(Q1(1.0, a1), Q2(1.0, a1))  # min(2.42423, 2.46212) = 2.42423: the first critic
    assert q_next == pytest.approx(2.424234, abs=1e-5)
    # truncated: 1 + 0.9 * 2.42423 = 3.18181 ; terminated (or both): 1, no bootstrap
    np.testing.assert_allclose(y, [1.0 + 0.9 * q_next, 1.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(y[0], 3.181811, rtol=1e-6)


def test_td3_target_policy_smoothing_noise_is_clipped_per_dimension():
    cfg = td3.Config(hidden_sizes=(), gamma=0.9, policy_noise=10.0, noise_clip=0.1)
    space = Box(-1, 1, (2,))
    actor = {"params": {"out": _linear(np.zeros((1, 2)), [0.0, 0.0])}}  # mu = 0: a' is the clipped noise
    a = np.asarray(td3.target_action(cfg, space, actor, jnp.zeros((1000, 1)), jax.random.PRNGKey(0)))
    assert np.abs(a).max() <= 0.1 + 1e-7
    assert np.mean(np.abs(a) > 0.0999) > 0.95  # std 10 >> clip: almost all at +-0.1
    assert 0.4 < np.mean(a[:, 0] == a[:, 1]) < 0.6  # independent signs per dimension (about half agree)
    cfg0 = td3.Config(hidden_sizes=(), policy_noise=0.0, noise_clip=0.5)
    a0 = td3.target_action(cfg0, space, actor, jnp.zeros((5, 1)), jax.random.PRNGKey(0))
    np.testing.assert_array_equal(np.asarray(a0), 0.0)  # DDPG: no smoothing


def test_ddpg_target_uses_its_single_critic():
    cfg = ddpg.Config(hidden_sizes=(), gamma=0.9)
    one = jax.tree.map(lambda p: p[1:], CRITICS)  # only Q2 = 2 s + a
    actor = {"params": {"out": _linear([[0.5]], [0.0])}}
    y = np.asarray(td3.critic_target(cfg, Box(-1, 1, (1,)), actor, one, MB, jax.random.PRNGKey(0)))
    np.testing.assert_allclose(y, [1.0 + 0.9 * Q2(1.0, math.tanh(0.5)), 1.0, 1.0], rtol=1e-6)


def _sac_actor(mean_w, mean_b, log_std_b):
    """Linear SAC policy on a 1-D observation: mean = w s + b, log_std = log_std_b (state-independent here)."""
    return {"params": {"mean": _linear([[mean_w]], [mean_b]), "log_std": _linear([[0.0]], [log_std_b])}}


def _tanh_gaussian_by_hand(mean, log_std, eps):
    """a = tanh(u), u = mean + std eps; log pi(a) = log N(u) - log(1 - tanh(u)^2) (SAC 2018a eq. 21)."""
    u = mean + np.exp(log_std) * eps
    logp = -0.5 * eps**2 - log_std - 0.5 * math.log(2 * math.pi) - np.log(1.0 - np.tanh(u) ** 2)
    return np.tanh(u), logp


def test_sac_target_by_hand_with_the_entropy_term():
    cfg = sac.Config(hidden_sizes=(), gamma=0.9)
    space = Box(-1, 1, (1,))
    actor = _sac_actor(0.5, 0.0, math.log(0.3))
    key, alpha = jax.random.PRNGKey(3), 0.2
    y = np.asarray(sac.critic_target(cfg, space, actor, CRITICS, MB, key, alpha))
    eps = np.asarray(jax.random.normal(key, (3, 1)), np.float64)[:, 0]  # the sample a' ~ pi(.|s') uses this key
    a, logp = _tanh_gaussian_by_hand(0.5 * 1.0, math.log(0.3), eps)
    soft_v = np.minimum(Q1(1.0, a), Q2(1.0, a)) - alpha * logp
    np.testing.assert_allclose(y, [1.0 + 0.9 * soft_v[0], 1.0, 1.0], rtol=1e-5)
    assert abs(y[0] - (1.0 + 0.9 * np.minimum(Q1(1.0, a[0]), Q2(1.0, a[0])))) > 1e-3  # the -alpha log pi term counts


def test_sac_actor_loss_by_hand_and_its_reparameterised_gradient():
    cfg = sac.Config(hidden_sizes=())
    space = Box(-1, 1, (1,))
    obs = jnp.asarray([[0.0], [1.0], [-1.0]])
    key, alpha = jax.random.PRNGKey(5), 0.3
    eps = np.asarray(jax.random.normal(key, (3, 1)), np.float64)[:, 0]
    s = np.asarray(obs[:, 0], np.float64)

    def by_hand(mean_b):
        a, logp = _tanh_gaussian_by_hand(0.4 * s + mean_b, math.log(0.5), eps)
        return np.mean(alpha * logp - np.minimum(Q1(s, a), Q2(s, a)))

    loss, logp = sac.actor_loss(_sac_actor(0.4, 0.1, math.log(0.5)), CRITICS, cfg, space, obs, key, alpha)
    np.testing.assert_allclose(float(loss), by_hand(0.1), rtol=1e-5)
    # the gradient flows through the sample a = tanh(mean + std eps) (reparameterisation)
    grad = jax.grad(lambda p: sac.actor_loss(p, CRITICS, cfg, space, obs, key, alpha)[0])(
        _sac_actor(0.4, 0.1, math.log(0.5)))
    h = 1e-4
    numeric = (by_hand(0.1 + h) - by_hand(0.1 - h)) / (2 * h)
    np.testing.assert_allclose(float(grad["params"]["mean"]["bias"][0]), numeric, rtol=1e-3)


def _with_log_std(state, log_std):
    """A SAC agent whose policy's log-std is ``log_std`` everywhere (the log-std head's kernel zeroed)."""
    p = state.actor["params"]["log_std"]
    head = {"kernel": jnp.zeros_like(p["kernel"]), "bias": jnp.full_like(p["bias"], log_std)}
    return state.replace(actor={"params": {**state.actor["params"], "log_std": head}})


@pytest.mark.parametrize("log_std, direction", [(-4.0, +1), (0.5, -1)])
def test_sac_alpha_moves_toward_the_target_entropy(log_std, direction):
    """Entropy below the target (-1 for one action dimension) raises alpha; above it lowers alpha."""
    cfg = sac.Config(hidden_sizes=(16,), batch_size=32, learning_starts=0, learning_rate=1e-2, n_envs=64)
    space = Box(-1, 1, (1,))
    state = _with_log_std(sac.init(jax.random.PRNGKey(0), Box(-1, 1, (1,)), space, cfg, total_steps=6400), log_std)
    obs = jax.random.uniform(jax.random.PRNGKey(1), (1, 64, 1), minval=-1, maxval=1)  # one step of 64 envs
    batch = Transition(obs, jnp.zeros((1, 64, 1)), jnp.zeros((1, 64)), jnp.zeros((1, 64), bool),
                       jnp.zeros((1, 64), bool), obs, jnp.zeros((1, 64)), jnp.zeros((1, 64)))
    new, m = sac.update(cfg, space, state, batch, jax.random.PRNGKey(2))
    assert int(m["opt/gradient_steps"]) == 1
    entropy = float(m["policy/entropy"])
    assert (entropy < -1.0) == (direction > 0), entropy
    assert np.sign(float(new.log_alpha) - float(state.log_alpha)) == direction
    assert float(m["alpha"]) == pytest.approx(math.exp(float(new.log_alpha)))
    # the loss itself: d/dlog(alpha) of -mean(log(alpha) (log pi + H)) = -(mean(log pi) + H) = entropy - H
    g = jax.grad(sac.alpha_loss)(jnp.float32(0.0), jnp.asarray([-entropy]), -1.0)
    assert float(g) == pytest.approx(entropy + 1.0, rel=1e-5)


# ----------------------------------------------------------------------------- acting and the schedule
def test_discrete_action_space_is_a_clear_config_error():
    for name, mod in MODULES.items():
        with pytest.raises(ConfigError, match=rf"^{name} needs a continuous \(Box\) action space; got Discrete\(2\)"
                                              r".*ppo"):
            mod.init(jax.random.PRNGKey(0), Box(-1, 1, (4,)), Discrete(2), mod.Config(hidden_sizes=(8,)), 10)


def test_discrete_env_on_the_command_line_exits_2(tmp_path):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "advantage.cli", "train", "sac", "--env", "CartPole-v1",
                          "--total-steps", "10", "--run-dir", str(tmp_path / "r"), "--no-progress"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert "sac needs a continuous (Box) action space; got Discrete(2)" in out.stderr
    assert "Traceback" not in out.stderr


def test_ddpg_is_td3_with_three_switches():
    assert ddpg.update is td3.update and ddpg.act is td3.act and ddpg.init is td3.init
    c = ddpg.Config()
    assert (c.n_critics, c.policy_delay, c.policy_noise) == (1, 1, 0.0)
    assert (td3.Config().n_critics, td3.Config().policy_delay, td3.Config().policy_noise) == (2, 2, 0.2)
    with pytest.raises(ConfigError, match="ddpg.tau"):
        ddpg.Config(tau=0.0)


def _state(mod, cfg, act_dim=1, obs_dim=1, updates=1000):
    return mod.init(jax.random.PRNGKey(0), Box(-1, 1, (obs_dim,)), Box(-1, 1, (act_dim,)), cfg,
                    updates * cfg.n_envs * cfg.n_steps)


@pytest.mark.parametrize("name", ["td3", "sac"])
def test_act_random_before_learning_starts_then_policy(name):
    mod = MODULES[name]
    cfg = mod.Config(hidden_sizes=(8,), learning_starts=5, n_envs=4000)
    space = Box(-1, 1, (2,))
    state = mod.init(jax.random.PRNGKey(0), Box(-1, 1, (1,)), space, cfg, 40_000)
    if name == "sac":
        state = _with_log_std(state, -3.0)  # std 0.05, so that exploring is told apart from uniform
    obs = jnp.zeros((4000, 1))
    det, _, _ = mod.act(cfg, space, state, obs, jax.random.PRNGKey(1), deterministic=True)
    random, logp, value = mod.act(cfg, space, state, obs, jax.random.PRNGKey(1))
    assert random.shape == (4000, 2) and logp.shape == value.shape == (4000,)
    r = np.asarray(random)
    assert r.min() >= -1 and r.max() <= 1 and abs(r.std() - 1 / math.sqrt(3)) < 0.02  # uniform in [-1, 1]
    explore, _, _ = mod.act(cfg, space, state.replace(env_steps=jnp.int32(5)), obs, jax.random.PRNGKey(1))
    e = np.asarray(explore)
    assert e.std() < 0.5 and np.abs(e.mean(0) - np.asarray(det[0])).max() < 0.1  # around the policy's action


def test_td3_gaussian_exploration_is_independent_per_dimension():
    cfg = td3.Config(hidden_sizes=(8,), learning_starts=0, exploration_std=0.1, n_envs=20_000)
    space = Box(-1, 1, (3,))
    state = td3.init(jax.random.PRNGKey(0), Box(-1, 1, (1,)), space, cfg, 200_000)
    obs = jnp.zeros((20_000, 1))
    mu = np.asarray(td3.act(cfg, space, state, obs, None, deterministic=True)[0])
    noise = np.asarray(td3.act(cfg, space, state, obs, jax.random.PRNGKey(3))[0]) - mu
    np.testing.assert_allclose(noise.std(0), 0.1, rtol=0.05)
    corr = np.corrcoef(noise.T)
    assert np.abs(corr - np.eye(3)).max() < 0.05  # one scalar for all dimensions would give correlation 1


def test_ou_noise_advances_and_restarts_at_episode_ends():
    cfg = td3.Config(hidden_sizes=(8,), exploration_noise="ou", exploration_std=0.5, ou_theta=0.15, ou_dt=0.01,
                     n_envs=2, learning_starts=1000)
    space = Box(-1, 1, (2,))
    state = _state(td3, cfg, act_dim=2)
    assert state.ou_noise.shape == (2, 2)
    noise0 = np.asarray(state.ou_noise)
    # the first step's noise is one step of the process from 0: sigma sqrt(dt) eps, independent per dimension
    assert np.all(noise0 != 0) and len(np.unique(noise0)) == 4
    obs = jnp.zeros((1, 2, 1))
    batch = Transition(obs, jnp.zeros((1, 2, 2)), jnp.zeros((1, 2)), jnp.asarray([[False, True]]),
                       jnp.zeros((1, 2), bool), obs, jnp.zeros((1, 2)), jnp.zeros((1, 2)))
    state = state.replace(ou_noise=jnp.full((2, 2), 3.0))  # far from 0: the mean reversion is visible
    new, _ = td3.update(cfg, space, state, batch, jax.random.PRNGKey(1))
    n = np.asarray(new.ou_noise)
    # env 0 continues: 3 - 0.15 * 3 * 0.01 + 0.5 * 0.1 * eps, i.e. within a few 0.05 of 2.9955
    assert np.all(np.abs(n[0] - 2.9955) < 0.25)
    assert np.all(np.abs(n[1]) < 0.25)  # env 1's episode ended (terminated): restarted near 0
    # act adds exactly the OU noise kept in the state (the clip to [-1, 1] aside)
    mu = td3.act(cfg, space, new, jnp.zeros((2, 1)), None, deterministic=True)[0]
    a = td3.act(cfg, space, new.replace(env_steps=jnp.int32(1000)), jnp.zeros((2, 1)), jax.random.PRNGKey(2))[0]
    np.testing.assert_allclose(np.asarray(a), np.clip(np.asarray(mu) + n, -1, 1), rtol=1e-6)
    with pytest.raises(ConfigError, match="n_steps=1"):
        td3.Config(exploration_noise="ou", n_steps=4)


def test_learning_starts_train_freq_gradient_steps_and_policy_delay():
    """Training rounds of 3 gradient steps every 2 env steps, once more than 3 transitions were collected;
    the actor learns on every second gradient step. No gradient step: the losses are NaN."""
    cfg = td3.Config(hidden_sizes=(8,), batch_size=4, learning_starts=3, train_freq=2, gradient_steps=3,
                     policy_delay=2)
    space = Box(-1, 1, (1,))
    state = _state(td3, cfg)
    steps, actor_losses = [], []
    upd = jax.jit(lambda s, b, k: td3.update(cfg, space, s, b, k))
    for i in range(8):
        obs = jnp.full((1, 1, 1), float(i))
        batch = Transition(obs, jnp.zeros((1, 1, 1)), jnp.ones((1, 1)), jnp.zeros((1, 1), bool),
                           jnp.zeros((1, 1), bool), obs, jnp.zeros((1, 1)), jnp.zeros((1, 1)))
        state, m = upd(state, batch, jax.random.PRNGKey(i))
        steps.append(int(m["opt/gradient_steps"]))
        actor_losses.append(float(m["loss/actor"]))
        if steps[-1] == 0:
            assert math.isnan(float(m["loss/critic"])) and math.isnan(float(m["q/mean"]))
        else:
            assert math.isfinite(float(m["loss/critic"]))
        assert float(m["buffer/size"]) == i + 1
    # collected after each update: 1..8; trains at 4, 6, 8 (> learning_starts=3 and a multiple of train_freq)
    assert steps == [0, 0, 0, 3, 0, 3, 0, 3]
    assert int(state.grad_steps) == 9
    # gradient steps 1-3: the actor at 2; 4-6: at 4 and 6; 7-9: at 8. Every round updated the actor.
    assert all(math.isfinite(x) for x, s in zip(actor_losses, steps) if s) and all(
        math.isnan(x) for x, s in zip(actor_losses, steps) if not s)
    # a rollout of n_steps=4 with train_freq=2 holds two rounds: 6 gradient steps in one update
    cfg4 = td3.Config(hidden_sizes=(8,), batch_size=4, learning_starts=0, train_freq=2, gradient_steps=3, n_steps=4)
    st = _state(td3, cfg4)
    obs = jnp.zeros((4, 1, 1))
    batch = Transition(obs, jnp.zeros((4, 1, 1)), jnp.ones((4, 1)), jnp.zeros((4, 1), bool), jnp.zeros((4, 1), bool),
                       obs, jnp.zeros((4, 1)), jnp.zeros((4, 1)))
    _, m = td3.update(cfg4, space, st, batch, jax.random.PRNGKey(0))
    assert int(m["opt/gradient_steps"]) == 6


@pytest.mark.parametrize("name", ["td3", "sac"])
def test_multidimensional_observation_and_action_spaces(name):
    """Observations (3, 2) and actions (2, 2): the networks see them flattened, act returns the space's shape."""
    mod = MODULES[name]
    cfg = mod.Config(hidden_sizes=(8,), batch_size=4, learning_starts=0)
    space = Box(-1, 1, (2, 2))
    state = mod.init(jax.random.PRNGKey(0), Box(-1, 1, (3, 2)), space, cfg, 10)
    obs = jnp.ones((1, 1, 3, 2))
    action, _, _ = mod.act(cfg, space, state, obs[0], jax.random.PRNGKey(1))
    assert action.shape == (1, 2, 2)
    batch = Transition(obs, action[None], jnp.ones((1, 1)), jnp.zeros((1, 1), bool), jnp.zeros((1, 1), bool), obs,
                       jnp.zeros((1, 1)), jnp.zeros((1, 1)))
    state, m = mod.update(cfg, space, state, batch, jax.random.PRNGKey(2))
    assert state.buffer.obs.shape == (10, 3, 2) and state.buffer.action.shape == (10, 4)
    np.testing.assert_allclose(np.asarray(state.buffer.action[0]), np.asarray(action).reshape(4))
    assert math.isfinite(float(m["loss/critic"]))


def test_target_networks_follow_by_polyak_averaging():
    cfg = td3.Config(hidden_sizes=(8,), batch_size=4, learning_starts=0, policy_delay=1, tau=0.25)
    space = Box(-1, 1, (1,))
    state = _state(td3, cfg)
    obs = jnp.ones((1, 1, 1))
    batch = Transition(obs, jnp.zeros((1, 1, 1)), jnp.ones((1, 1)), jnp.zeros((1, 1), bool), jnp.zeros((1, 1), bool),
                       obs, jnp.zeros((1, 1)), jnp.zeros((1, 1)))
    new, _ = td3.update(cfg, space, state, batch, jax.random.PRNGKey(0))
    for old_t, online, new_t in zip(jax.tree.leaves(state.critic_target), jax.tree.leaves(new.critic),
                                    jax.tree.leaves(new.critic_target)):
        np.testing.assert_allclose(np.asarray(new_t), 0.25 * np.asarray(online) + 0.75 * np.asarray(old_t), rtol=1e-5,
                                   atol=1e-7)
    assert not np.allclose(np.asarray(jax.tree.leaves(new.actor)[0]), np.asarray(jax.tree.leaves(state.actor)[0]))


@pytest.mark.parametrize("name", ["td3", "sac"])
def test_same_act_and_update_on_the_gymnasium_back_end(tmp_path, name):
    """The Gymnasium back end steps gymnasium's Pendulum-v1 on the host and calls the same jitted
    act/update: the buffer fills in the agent state and training starts after learning_starts."""
    import csv

    mod = MODULES[name]
    cfg = mod.Config(hidden_sizes=(32, 32), batch_size=32, learning_starts=100, n_envs=2)
    summary, run_dir = train_run(tmp_path, name, cfg, "Pendulum-v1", total_steps=300, backend="gymnasium",
                                 eval_episodes=2)
    assert summary["backend"] == "gymnasium" and summary["env_steps"] == 300
    _, _, _, agent = first_agent(run_dir)
    assert int(replay.size(agent.buffer)) == 300 and replay.capacity(agent.buffer) == 300
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    assert len(rows) == 150
    trained = [math.isfinite(float(r["loss/critic"])) for r in rows]
    assert trained == [int(r["step"]) > 100 for r in rows]  # NaN until more than learning_starts were collected


# ----------------------------------------------------------------------------- probe environments
# Small networks and a fast target (tau 0.05) so the probes converge in a few thousand steps.
PROBE = dict(hidden_sizes=(64, 64), batch_size=64, learning_rate=1e-3, gamma=0.9, tau=0.05, learning_starts=200)
SAC_FIXED_ALPHA = dict(learn_alpha=False, alpha_init=0.1)  # a fixed alpha: the soft values below are fixed points


def _q(agent, cfg, obs, actions):
    """min_i Q_i(obs, a) for each action in ``actions``, at a 1-D observation ``obs``."""
    a = jnp.asarray(actions, jnp.float32)[:, None]
    s = jnp.full((len(actions), 1), obs, jnp.float32)
    return np.asarray(jnp.min(td3.q_values(cfg, agent.critic, s, a), axis=0))


def _soft_value(agent, cfg, space, obs, n=20_000):
    """E_{a ~ pi(.|s)} [min_i Q_i(s, a) - alpha log pi(a|s)], estimated from n samples."""
    s = jnp.full((n, 1), obs, jnp.float32)
    a, logp = sac.policy(cfg, space, agent.actor, s).sample_and_log_prob(jax.random.PRNGKey(123))
    q = jnp.min(td3.q_values(cfg, agent.critic, s, a), axis=0)
    return float(jnp.mean(q - jnp.exp(agent.log_alpha) * logp))


def _train_probe(tmp_path, name, env, steps, **overrides):
    mod = MODULES[name]
    cfg = mod.Config(**{**PROBE, **overrides})
    _, run_dir = train_run(tmp_path, name, cfg, "probe/" + env, total_steps=steps)
    _, cfg, space, agent = first_agent(run_dir)
    return cfg, space, agent


@pytest.mark.parametrize("name", ["td3", "sac"])
def test_probe_constant_reward_and_two_step_values(tmp_path, name):
    extra = SAC_FIXED_ALPHA if name == "sac" else {}
    cfg, _, agent = _train_probe(tmp_path, name, "ConstantRewardContinuous-v0", 1500, **extra)
    np.testing.assert_allclose(_q(agent, cfg, 0.0, [-0.5, 0.0, 0.5]), 1.0, atol=0.05)  # a terminal step: Q = r
    cfg, space, agent = _train_probe(tmp_path, name, "TwoStepContinuous-v0", 3000, **extra)
    np.testing.assert_allclose(_q(agent, cfg, 1.0, [-0.5, 0.0, 0.5]), 1.0, atol=0.05)
    if name == "td3":
        expected = 0.9  # Q(s0, .) = gamma * Q(s1, mu(s1)) = gamma
    else:  # soft: Q(s0, .) = gamma * E[Q(s1, a') - alpha log pi(a'|s1)] = gamma (1 + alpha H(pi(.|s1)))
        expected = 0.9 * _soft_value(agent, cfg, space, 1.0)
        assert expected > 0.9  # the entropy bonus of the max-entropy policy on a flat Q is positive here
    np.testing.assert_allclose(_q(agent, cfg, -1.0, [-0.5, 0.0, 0.5]), expected, atol=0.05)


@pytest.mark.parametrize("name", ["ddpg", "td3", "sac"])
def test_probe_truncation_bootstraps_through_the_replay_target(tmp_path, name):
    """Reward 1 forever, episodes cut at 10 steps: Q -> 1/(1-gamma) = 10 only if the truncation bootstraps
    (treating it as a termination gives about 6.5)."""
    extra = SAC_FIXED_ALPHA if name == "sac" else {}
    cfg, space, agent = _train_probe(tmp_path, name, "EndlessRewardContinuous-v0", 3000, **extra)
    q = _q(agent, cfg, 0.0, [-0.5, 0.0, 0.5])
    if name == "sac":  # soft: Q = 1 + gamma E[Q - alpha log pi]  ->  Q = 1 + gamma * soft value
        expected = 1.0 + 0.9 * _soft_value(agent, cfg, space, 0.0)
        assert expected > 10.0
    else:
        expected = 10.0
    np.testing.assert_allclose(q, expected, atol=0.5)


@pytest.mark.parametrize("name", ["ddpg", "td3", "sac"])
def test_probe_actor_finds_the_optimal_action(tmp_path, name):
    """ActionReward: r = -(a - 0.5)^2, best a = 0.5. ContextualBandit: r = -(a - 0.5 obs)^2, best a = 0.5 obs."""
    cfg, space, agent = _train_probe(tmp_path, name, "ActionRewardContinuous-v0", 1500)

    def act(obs):  # the deterministic action of the agent trained last
        obs = jnp.asarray(obs, jnp.float32)[:, None]
        return np.asarray(MODULES[name].act(cfg, space, agent, obs, None, deterministic=True)[0][:, 0])

    assert abs(act([0.0])[0] - 0.5) < 0.1, act([0.0])
    if name == "ddpg":
        return  # same code as TD3 (checked above); one bandit per family keeps the test time down
    cfg, space, agent = _train_probe(tmp_path, name, "ContextualBanditContinuous-v0", 2500)
    np.testing.assert_allclose(act([-1.0, 1.0]), [-0.5, 0.5], atol=0.1)


# ----------------------------------------------------------------------------- checkpoints
def _interrupted_run(tmp_path, monkeypatch, name, run_kwargs, after_chunks=3):
    """Train with Ctrl-C arriving before chunk ``after_chunks + 1``; return the run folder."""
    from advantage.training.jax_backend import JaxBackend

    calls, real = {"n": 0}, JaxBackend.run_chunk

    def run_chunk(self, runners, n):
        calls["n"] += 1
        if calls["n"] > after_chunks:
            raise KeyboardInterrupt
        return real(self, runners, n)

    monkeypatch.setattr(JaxBackend, "run_chunk", run_chunk)
    with pytest.raises(KeyboardInterrupt):
        train_run(tmp_path, name, MODULES[name].Config(**PROBE), "Pendulum-v1", **run_kwargs)
    monkeypatch.setattr(JaxBackend, "run_chunk", real)
    return next(tmp_path.glob("run-*"))


@pytest.mark.parametrize("name", ["td3", "sac"])
def test_interrupted_run_resumes_to_the_same_result_with_its_buffer(tmp_path, monkeypatch, name):
    from advantage.training import checkpoint, driver

    run_kwargs = dict(total_steps=600, n_chunks=6, eval_episodes=3)
    reference, _ = train_run(tmp_path / "ref", name, MODULES[name].Config(**PROBE), "Pendulum-v1", **run_kwargs)
    run_dir = _interrupted_run(tmp_path / "cut", monkeypatch, name, run_kwargs)
    meta, _ = checkpoint.load_meta(run_dir / "checkpoints")
    assert meta["env_steps"] == 300 and meta["replay_buffer_saved"] is True
    resumed = driver.resume(run_dir)
    assert resumed["params_digest"] == reference["params_digest"]
    assert resumed["eval_return"]["per_seed"] == reference["eval_return"]["per_seed"]


def test_checkpoint_without_buffer_is_smaller_evaluates_and_refuses_to_resume(tmp_path, monkeypatch, capsys):
    from advantage.cli import main
    from advantage.training import driver

    kwargs = dict(total_steps=600, n_chunks=6, eval_episodes=0)
    _, full = train_run(tmp_path / "a", "td3", td3.Config(**PROBE), "Pendulum-v1", **kwargs)
    _, small = train_run(tmp_path / "b", "td3", td3.Config(**PROBE), "Pendulum-v1", checkpoint_buffer=False, **kwargs)
    size = lambda d: (d / "checkpoints" / "checkpoint.msgpack").stat().st_size  # noqa: E731
    assert size(small) < size(full) - 600 * 4 * (3 + 1 + 3)  # at least the obs, action and next_obs floats
    _, _, _, agent_full = first_agent(full)
    _, _, _, agent_small = first_agent(small)  # loads: the buffer is left empty
    np.testing.assert_array_equal(np.asarray(agent_small.actor["params"]["out"]["kernel"]),
                                  np.asarray(agent_full.actor["params"]["out"]["kernel"]))
    assert int(agent_small.buffer.count) == 0 and int(agent_full.buffer.count) == 600  # loaded with an empty buffer
    cut = _interrupted_run(tmp_path / "c", monkeypatch, "td3", dict(kwargs, checkpoint_buffer=False))
    assert main(["train", "--resume", str(cut)]) == 2
    assert "--no-checkpoint-buffer" in capsys.readouterr().err
    with pytest.raises(driver.RunError):
        driver.resume(cut)


# ----------------------------------------------------------------------------- learning
# The learning tests of SAC, TD3 and DDPG on Pendulum-v1 are presets in tests/test_presets.py: the Zoo presets
# (20k steps, about a minute per seed) on demand (`pytest -m benchmark`), and smaller ones (64-64 networks, 12-16k
# steps, every seed >= -250; sac/td3/ddpg-pendulum-short in advantage/presets.py) in the default run.
