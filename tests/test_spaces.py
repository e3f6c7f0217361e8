"""Structured spaces: MultiDiscrete / MultiBinary actions (a product of categoricals) and Dict / Tuple
observations (flattened on the Gymnasium path): the math by hand, the bridge's conversions, every
algorithm through the session, probes and learning tests."""

from __future__ import annotations

import math
import re

import envs_for_tests as E
import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnasium import spaces as gs
from helpers import first_agent, train_run

from advantage import algos
from advantage.algos import actor_critic, api, ppo
from advantage.core.distributions import Categorical, MultiCategorical, categorical
from advantage.envs.flatten import FlattenObservation, flatten, flatten_problems
from advantage.envs.gymnasium import GymnasiumVecEnv
from advantage.envs.spaces import MultiDiscrete, action_dim, action_factors, is_discrete, require_box
from advantage.envs.validation import EnvError, check_gymnasium_env
from advantage.errors import ConfigError


# ----------------------------------------------------------------------------- the distribution, by hand
def test_multicategorical_log_prob_entropy_mode_kl_by_hand():
    # two factors: 3 choices with logits (0, ln 2, ln 3) -> probs (1, 2, 3)/6; 2 choices with logits (0, 0)
    logits = jnp.array([[0.0, math.log(2.0), math.log(3.0), 0.0, 0.0]])
    d = MultiCategorical(logits, (3, 2))
    a = jnp.array([[1, 0]])
    np.testing.assert_allclose(d.log_prob(a), [math.log(2 / 6) + math.log(0.5)], rtol=1e-6)
    h = -sum(p * math.log(p) for p in (1 / 6, 2 / 6, 3 / 6)) + math.log(2.0)
    np.testing.assert_allclose(d.entropy(), [h], rtol=1e-6)
    np.testing.assert_array_equal(d.mode(), [[2, 0]])
    # KL against uniform factors: sum_i KL_i = (log 3 - H_1) + 0
    u = MultiCategorical(jnp.zeros((1, 5)), (3, 2))
    h1 = -sum(p * math.log(p) for p in (1 / 6, 2 / 6, 3 / 6))
    np.testing.assert_allclose(d.kl(u), [math.log(3.0) - h1], rtol=1e-5)
    assert isinstance(categorical(logits), Categorical) and isinstance(categorical(logits, (3, 2)), MultiCategorical)


def test_two_choice_factors_are_bernoullis_and_samples_follow_the_factors():
    # MultiBinary(2) = MultiDiscrete([2, 2]): each factor is a Bernoulli with logit z1 - z0
    z = jnp.array([0.3, 1.5, -0.7, 0.2])  # factor 0: (0.3, 1.5), factor 1: (-0.7, 0.2)
    d = MultiCategorical(z, (2, 2))
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    p0, p1 = sig(1.5 - 0.3), sig(0.2 + 0.7)  # P(bit = 1)
    np.testing.assert_allclose(d.log_prob(jnp.array([1, 0])), math.log(p0) + math.log(1 - p1), rtol=1e-6)
    bern_h = lambda p: -(p * math.log(p) + (1 - p) * math.log(1 - p))  # noqa: E731
    np.testing.assert_allclose(d.entropy(), bern_h(p0) + bern_h(p1), rtol=1e-6)
    s = jax.vmap(d.sample)(jax.random.split(jax.random.PRNGKey(0), 20000))
    assert s.shape == (20000, 2) and s.dtype == jnp.int32
    np.testing.assert_allclose(np.mean(np.asarray(s), axis=0), [p0, p1], atol=0.015)


def test_space_helpers():
    md = MultiDiscrete((3, 4, 2))
    assert is_discrete(md) and action_dim(md) == 9 and action_factors(md) == (3, 4, 2) and md.shape == (3,)
    assert md.contains(np.array([2, 3, 1])) and not md.contains(np.array([3, 0, 0]))
    assert action_factors(gs.MultiDiscrete([[2, 3], [4, 5]])) == (2, 3, 4, 5)
    with pytest.raises(ConfigError, match="at least one factor"):
        MultiDiscrete(())
    with pytest.raises(ConfigError, match=r"sac needs a continuous \(Box\) action space; got MultiDiscrete"):
        require_box("sac", md)


def test_qac_joint_critic_index_and_probabilities():
    nvec = (3, 4, 2)
    a = jnp.array([[2, 1, 1], [0, 3, 0]])
    np.testing.assert_array_equal(actor_critic._joint_index(a, nvec), [np.ravel_multi_index(x, nvec) for x in a])
    d = MultiCategorical(jax.random.normal(jax.random.PRNGKey(0), (2, 9)), nvec)
    joint = actor_critic._joint_probs(d)  # [2, 24]
    np.testing.assert_allclose(jnp.sum(joint, -1), 1.0, rtol=1e-5)
    idx = actor_critic._joint_index(a, nvec)
    np.testing.assert_allclose(jnp.log(joint[jnp.arange(2), idx]), d.log_prob(a), rtol=1e-5)


# ----------------------------------------------------------------------------- flattening observations
def test_flatten_layout_sorted_keys_one_hot_and_bounds():
    space = gs.Dict(
        {
            "z": gs.Box(-2.0, 3.0, (2,), np.float32),
            "a": gs.Discrete(3, start=1),
            "m": gs.Tuple((gs.MultiDiscrete([2, 3]), gs.MultiBinary(2))),
        }
    )
    obs = {"z": np.array([0.5, -1.0]), "a": 2, "m": (np.array([1, 2]), np.array([1, 0], np.int8))}
    # a (one-hot of 2 - start 1), then m[0] (one-hot blocks of 1 and 2), m[1] (bits), then z
    want = [0, 1, 0] + [0, 1] + [0, 0, 1] + [1, 0] + [0.5, -1.0]
    np.testing.assert_array_equal(flatten(space, obs), np.asarray(want, np.float32))
    box = FlattenObservation.flat_space(space)
    assert box.shape == (12,) and box.dtype == np.float32
    np.testing.assert_array_equal(box.low, [0] * 10 + [-2, -2])
    np.testing.assert_array_equal(box.high, [1] * 10 + [3, 3])


def test_nested_unflattenable_part_is_named_with_its_fix():
    assert flatten_problems(E.NestedSequenceObsEnv().observation_space) == [
        "obs['path'] is a Sequence (Sequence(Discrete(4), stack=False)): it has no fixed size, so it cannot be "
        "part of the flat observation vector"
    ]
    with pytest.raises(EnvError) as exc:
        check_gymnasium_env(E.NestedSequenceObsEnv())
    msg = str(exc.value)
    assert "cannot be flattened" in msg and "obs['path'] is a Sequence" in msg and "pad the sequence" in msg
    with pytest.raises(EnvError, match="cannot be flattened"):
        GymnasiumVecEnv(E.NestedSequenceObsEnv, 1, validate=False)


def test_validation_checks_each_part_of_a_dict_observation():
    class BadCue(E.DictCueEnv):
        def reset(self, *, seed=None, options=None):
            obs, info = super().reset(seed=seed)
            return {**obs, "cue": 5, "pos": np.zeros(3, np.float32)}, info

    with pytest.raises(EnvError) as exc:
        check_gymnasium_env(BadCue())
    msg = str(exc.value)
    assert re.search(r"2 problems", msg), msg
    assert "reset(seed=0), the returned observation['cue']" in msg and "an integer in [0, 1]" in msg
    assert "observation['pos']" in msg and "shape (2, 2)" in msg
    check_gymnasium_env(E.DictCueEnv())
    check_gymnasium_env(E.DictCartPole())


def test_bridge_flattens_dict_observations_including_final_obs():
    with GymnasiumVecEnv(E.DictCueEnv, 3) as vec:
        assert vec.observation_space.shape == (8,) and isinstance(vec.env_observation_space, gs.Dict)
        obs = vec.reset([0, 1, 2])
        ref = E.DictCueEnv()
        for i in range(3):
            raw, _ = ref.reset(seed=i)
            np.testing.assert_array_equal(obs[i], flatten(ref.observation_space, raw))
            assert obs[i][:2].sum() == 1 and obs[i][raw["cue"]] == 1  # the cue is one-hot, first (sorted keys)
        _, reward, term, _, info = vec.step(np.array([o[1] > 0 for o in obs], np.int32))  # act on the cue
        np.testing.assert_array_equal(reward, 1.0)
        assert term.all() and info["final_obs"].shape == (3, 8)


# ----------------------------------------------------------------------------- the bridge's actions
class _Recorder(gymnasium.Env):
    observation_space = gs.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self, space=None):
        self.action_space = space
        self.seen = []

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.seen.append(np.array(action))
        return np.zeros(1, np.float32), 0.0, False, False, {}


def test_bridge_maps_multidiscrete_and_multibinary_actions():
    md = gs.MultiDiscrete([[2, 3], [4, 5]], start=[[1, 0], [-2, 10]])
    vec = GymnasiumVecEnv(lambda: _Recorder(md), 2)
    assert vec.action_space == MultiDiscrete((2, 3, 4, 5))
    env_a = vec.env_actions(np.array([[1, 2, 3, 4], [0, 0, 0, 0]]))
    np.testing.assert_array_equal(env_a[0], [[2, 2], [1, 14]])
    np.testing.assert_array_equal(env_a[1], [[1, 0], [-2, 10]])
    assert env_a.shape == (2, 2, 2) and all(md.contains(a) for a in env_a)
    with pytest.raises(EnvError, match="out of range"):
        vec.env_actions(np.array([[2, 0, 0, 0], [0, 0, 0, 0]]))
    with pytest.raises(EnvError, match=r"4 integers per sub-env"):
        vec.env_actions(np.zeros((2, 3), np.int32))
    vec.close()
    mb = gs.MultiBinary([2, 2])
    vec = GymnasiumVecEnv(lambda: _Recorder(mb), 1)
    assert vec.action_space == MultiDiscrete((2, 2, 2, 2))
    env_a = vec.env_actions(np.array([[1, 0, 0, 1]]))
    assert env_a.dtype == mb.dtype and mb.contains(env_a[0])
    np.testing.assert_array_equal(env_a[0], [[1, 0], [0, 1]])
    vec.close()


# ----------------------------------------------------------------------------- every algorithm, through the session
#: Discrete-action algorithms through the session on a MultiDiscrete env, each on one back end (the cheaper one to
#: compile); a contract check, not learning. Every algorithm ran on both back ends when this was written; to keep
#: the suite short, those whose policy path another case or test already takes are left out (ALSO_COVERED).
SESSION_CASES = [
    ("a3c", "gymnasium"),  # A2C's update, split into gradients and their application by workers
    ("qac", "jax"),  # the critic over joint actions
    ("ac-lambda", "jax"),  # nets.linear.Policy, eligibility traces per parameter
    ("trpo", "gymnasium"),  # the closed-form KL in the Fisher-vector product and the line search
    ("is-pg", "jax"),  # the rollout buffer's [k] actions
    ("impala", "gymnasium"),  # V-trace on the behaviour policy's log-probabilities
    ("cem", "jax"),
    ("hill-climb", "gymnasium"),
    ("cma-es", "jax"),
    ("nac", "jax"),  # the compatible features of a product of categoricals
    ("ga", "gymnasium"),
    ("nelder-mead", "jax"),
]
ALSO_COVERED = {
    "ppo": "the learning tests below, on both back ends",
    "a2c": "a3c (the same update)",
    "npg": "trpo (the same file, without the line search)",
    "reinforce": "ac-lambda (the same nets.linear.Policy)",
}


def test_session_cases_cover_every_discrete_algorithm():
    from test_algorithm_contract import CONTINUOUS_ONLY

    assert {n for n, _ in SESSION_CASES} | set(ALSO_COVERED) | set(REFUSED) == set(algos.ALGORITHMS) - CONTINUOUS_ONLY


#: Discrete-action algorithms that refuse a MultiDiscrete action space, with a message that names the way out.
REFUSED = {"dqn": "one Q output per action"}


def test_dqn_refuses_a_multidiscrete_action_space():
    from advantage.algos import dqn
    from advantage.errors import ConfigError

    with pytest.raises(ConfigError, match="MultiDiscrete.*ppo, a2c"):
        dqn.require_discrete(gymnasium.spaces.MultiDiscrete([2, 3]))


@pytest.mark.slow
@pytest.mark.parametrize("name, backend", SESSION_CASES)
def test_multidiscrete_runs_through_the_session(tmp_path, name, backend):
    from test_algorithm_contract import _budget, _config

    env = "probe/FactoredBandit-v0" if backend == "jax" else "envs_for_tests:FactoredBanditEnv"
    cfg = _config(name)
    search = api.kind(algos.get(name)) == "search"
    budget = 120 if search and backend == "gymnasium" else _budget(name, cfg)
    pool = {"worker_pool": "local"} if getattr(algos.get(name), "DEFAULT_WORKERS", None) else {}
    summary, run_dir = train_run(
        tmp_path,
        name,
        cfg,
        env,
        total_steps=budget,
        backend=backend,
        eval_episodes=1,
        eval_max_steps=20,
        eval_record=0,
        n_chunks=1,
        **pool,
    )
    assert summary["backend"] == backend
    algo, acfg, space, agent = first_agent(run_dir)
    assert space == MultiDiscrete((3, 4, 2))
    action, _, _ = algo.act(acfg, space, agent, np.zeros((5, 1), np.float32), jax.random.PRNGKey(0), False)
    action = np.asarray(action)
    assert action.shape == (5, 3) and np.all((0 <= action) & (action < np.array([3, 4, 2]))), action


# ----------------------------------------------------------------------------- probes and learning
PROBE_CFG = dict(
    n_envs=8,
    n_steps=16,
    n_epochs=4,
    n_minibatches=2,
    learning_rate=3e-3,
    gamma=0.9,
    anneal_lr=False,
    anneal_clip=False,
    ent_coef=0.0,
)


def _policy(run_dir, obs):
    _, cfg, space, agent = first_agent(run_dir)
    dist, _ = ppo.network(cfg, space).apply(agent.params, ppo._preprocess(cfg, agent, jnp.asarray(obs, jnp.float32)))
    return dist


@pytest.mark.slow
def test_ppo_finds_the_factored_action_jax(tmp_path):
    """probe/FactoredBandit-v0: every factor's target, from the observation (JAX back end)."""
    summary, run_dir = train_run(
        tmp_path, "ppo", ppo.Config(**PROBE_CFG), "probe/FactoredBandit-v0", total_steps=128 * 40, eval_episodes=50
    )
    assert summary["eval_return"]["mean"] == 1.0  # random: 0.36
    dist = _policy(run_dir, [[-1.0], [1.0]])
    np.testing.assert_array_equal(dist.mode(), [[0, 3, 0], [2, 1, 1]])
    p = np.exp(np.asarray(dist.log_prob(jnp.array([[0, 3, 0], [2, 1, 1]]))))
    assert np.all(p > 0.8), p


@pytest.mark.slow
def test_ppo_finds_the_multibinary_action_gymnasium(tmp_path):
    summary, run_dir = train_run(
        tmp_path,
        "ppo",
        ppo.Config(**PROBE_CFG),
        "envs_for_tests:FactoredBanditEnv",
        total_steps=128 * 40,
        eval_episodes=50,
        env_kwargs='{"binary": true}',
    )
    assert summary["eval_return"]["mean"] == 1.0  # random: 0.5
    np.testing.assert_array_equal(_policy(run_dir, [[-1.0], [1.0]]).mode(), E.FactoredBanditEnv.BITS)


@pytest.mark.slow
def test_ppo_uses_the_dict_observation(tmp_path):
    """DictCueEnv: only the Discrete 'cue' inside the Dict tells the rewarded action."""
    summary, _ = train_run(
        tmp_path, "ppo", ppo.Config(**PROBE_CFG), "envs_for_tests:DictCueEnv", total_steps=128 * 40, eval_episodes=50
    )
    assert summary["eval_return"]["mean"] == 1.0  # ignoring the cue: 0.5


@pytest.mark.slow
def test_ppo_learns_dict_cartpole_exactly_as_cartpole(tmp_path):
    """CartPole-v1 behind a Dict observation {'pole', 'cart'} (declared in that order): flattened in sorted
    key order it is CartPole's own vector, so the run is the plain CartPole run to the bit."""
    cfg = ppo.Config(**ppo.PRESETS["CartPole-v1"])
    runs = [
        train_run(tmp_path, "ppo", cfg, env, total_steps=40_000, backend="gymnasium", eval_episodes=20)[0]
        for env in ("envs_for_tests:DictCartPole", "CartPole-v1")
    ]
    assert runs[0]["eval_return"]["mean"] >= 475, runs[0]["eval_return"]
    assert runs[0]["params_digest"] == runs[1]["params_digest"]
