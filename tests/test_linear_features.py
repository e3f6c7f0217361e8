"""State-action features phi(s, a) for the linear softmax, random-projection features (``linear-random``), and the
average-value objective J_avV = J_avR / (1 - gamma) (``nets/linear.py``, ``algos/ac_lambda.py``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import first_agent, train_run

import advantage
from advantage import algos
from advantage import export as ex
from advantage.algos import ac_lambda, reinforce
from advantage.config import ConfigError
from advantage.core import losses
from advantage.envs import Box, Discrete
from advantage.envs.lectures import access_control
from advantage.nets.linear import Policy, make_feature_map, random_projection

N_ARMS_PROBE = 32


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def shared_features(obs):
    """A hand-made phi(s, a) for 4 actions and 2-d observations: ``[s_0 c_a, s_1 c_a, c_a^2]``, c = (-1, -.5, .5, 1)."""
    c = jnp.asarray([-1.0, -0.5, 0.5, 1.0])
    return jnp.stack([obs[0] * c, obs[1] * c, c**2], axis=-1)


def arm_kind_features(obs):
    """``phi(s, a) = [a even, a odd]`` for :data:`N_ARMS_PROBE` arms (the observation is not used)."""
    even = (jnp.arange(N_ARMS_PROBE) % 2 == 0).astype(jnp.float32)
    return jnp.stack([even, 1.0 - even], axis=-1) + 0.0 * obs[0]


# ----------------------------------------------------------------------------- phi(s, a): the score
@pytest.mark.parametrize("tau", [1.0, 0.5])
@pytest.mark.parametrize("spec", ["test_linear_features:shared_features", "block"])
def test_score_is_phi_minus_its_policy_mean_by_hand_and_by_jax_grad(spec, tau):
    """grad log pi(a|s) = (phi(s, a) - sum_b pi(b|s) phi(s, b)) / tau for the softmax of phi(s, a)^T theta / tau."""
    fmap = make_feature_map("linear-raw", Box(-1, 1, (2,)), action_features=spec, action_space=Discrete(4))
    policy = Policy(4, True, fmap, temperature=tau)
    params = policy.init(jax.random.PRNGKey(0), jnp.zeros((1, 2)))
    rng = np.random.default_rng(0)
    theta = rng.normal(size=fmap.action_size).astype(np.float32)
    params = {"params": {"StateActionHead_0": {"w": jnp.asarray(theta)}}}
    s = rng.normal(size=(5, 2)).astype(np.float32)
    a = np.array([0, 3, 1, 2, 3])
    phi = np.asarray(fmap.state_action_dense(jnp.asarray(s)))  # [5, 4, k]
    if spec == "block":  # e_a kron [s, 1], written out
        x = np.concatenate([s, np.ones((5, 1), np.float32)], axis=1)
        by_block = np.einsum("ab,ni->nabi", np.eye(4), x).reshape(5, 4, 12)
        np.testing.assert_array_equal(phi, by_block)
    else:
        c = np.array([-1.0, -0.5, 0.5, 1.0])
        np.testing.assert_allclose(phi, np.stack([s[:, :1] * c, s[:, 1:] * c, np.broadcast_to(c**2, (5, 4))], -1))
    pi = _softmax(phi @ theta / tau)  # [5, 4]
    dist = policy.apply(params, jnp.asarray(s))
    np.testing.assert_allclose(np.exp(np.asarray(dist.log_prob(jnp.asarray(a)))), pi[np.arange(5), a], rtol=1e-5)
    by_hand = (phi[np.arange(5), a] - np.einsum("nb,nbk->nk", pi, phi)) / tau
    score = jax.vmap(
        lambda x, u: jax.grad(lambda p: policy.apply(p, x[None]).log_prob(u[None])[0])(params)["params"][
            "StateActionHead_0"
        ]["w"]
    )(jnp.asarray(s), jnp.asarray(a))
    np.testing.assert_allclose(np.asarray(score), by_hand, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("features", ["linear-raw", "linear-tiles", "linear-random"])
def test_block_features_give_the_per_action_policy(features):
    """phi(s, a) = e_a kron phi(s) with theta = vec(w) is the policy with one weight vector w_a per action."""
    space = Box(-1.0, 1.0, (2,))
    per_action = make_feature_map(features, space, n_tilings=3, tiles_per_dim=4, n_random=16)
    block = make_feature_map(
        features, space, n_tilings=3, tiles_per_dim=4, n_random=16, action_features="block", action_space=Discrete(3)
    )
    assert block.action_sparse == (features == "linear-tiles") and block.action_size == 3 * per_action.size
    w = np.random.default_rng(1).normal(size=(per_action.size, 3)).astype(np.float32)
    p1 = {"params": {"LinearHead_0": {"w": jnp.asarray(w)}}}
    p2 = {"params": {"StateActionHead_0": {"w": jnp.asarray(w.T.reshape(-1))}}}  # theta[a * size + i] = w[i, a]
    s = jnp.asarray(np.random.default_rng(2).uniform(-1, 1, (50, 2)), jnp.float32)
    for tau in (1.0, 0.3):
        l1 = Policy(3, True, per_action, temperature=tau).apply(p1, s).logits
        l2 = Policy(3, True, block, temperature=tau).apply(p2, s).logits
        np.testing.assert_allclose(np.asarray(l2), np.asarray(l1), rtol=1e-5, atol=1e-5)
    if features == "linear-tiles":  # the sparse indices select exactly the dense block vector's ones
        dense = np.asarray(block.state_action_dense(s[:4]))
        np.testing.assert_array_equal(dense.sum(-1), 3.0)
        np.testing.assert_array_equal(dense[:, 1, block.size : 2 * block.size], np.asarray(block.dense(s[:4])))


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, kw",
    [
        ("reinforce", dict(n_envs=4, n_steps=4, baseline="mean")),
        ("qac", dict(n_envs=4, n_steps=4, learning_rate=0.02, critic_learning_rate=0.05)),
        ("ac-lambda", dict(n_envs=4, n_steps=4, learning_rate=0.1, critic_learning_rate=0.1)),
        ("nac", dict(n_envs=4, n_steps=4)),
    ],
)
def test_block_run_equals_the_per_action_run(tmp_path, name, kw):
    """Each algorithm trains the same policy with per-action weights and with their explicit block form: Adam acts
    per coordinate, and the trace and natural-gradient steps are linear in the gradient, so the permuted
    parameters take the same steps."""
    probs = {}
    for spec in ("", "block"):
        cfg = algos.get(name).Config(features="linear-raw", action_features=spec, **kw)
        _, run_dir = train_run(
            tmp_path / (spec or "per-action"), name, cfg, "probe/ContextualBandit-v0", total_steps=1000
        )
        algo, c, space, agent = first_agent(run_dir)
        policy = algo.networks(c, space, agent.fmap)[0]
        logits = policy.apply(agent.params["policy"], jnp.asarray([[1.0], [-1.0]])).logits
        probs[spec] = np.asarray(jax.nn.softmax(logits))
    print(name, "per-action", probs[""].round(4).tolist(), "block", probs["block"].round(4).tolist())
    assert probs[""][0, 1] > 0.55 and probs[""][1, 0] > 0.55  # it learned something
    np.testing.assert_allclose(probs["block"], probs[""], rtol=1e-4, atol=1e-5)


def test_shared_weights_generalise_to_actions_never_taken():
    """32 arms, even ones good. Five REINFORCE steps on 4 sampled arms each: with phi(s, a) = [a even, a odd] every
    even arm the agent never tried gains probability over every odd arm it never tried; with per-action weights
    (the block form) untried arms stay exactly alike, whatever their kind."""
    n, obs = N_ARMS_PROBE, jnp.zeros((4, 1))
    reward = lambda a: (a % 2 == 0).astype(jnp.float32)  # noqa: E731
    result = {}
    for spec in ("test_linear_features:arm_kind_features", "block"):
        fmap = make_feature_map("linear-raw", Box(-1, 1, (1,)), action_features=spec, action_space=Discrete(n))
        policy = Policy(n, True, fmap)
        params = policy.init(jax.random.PRNGKey(0), obs)
        opt = optax.sgd(0.5)
        opt_state, taken = opt.init(params), set()
        key = jax.random.PRNGKey(3)
        for _ in range(5):
            key, k = jax.random.split(key)
            a = policy.apply(params, obs).sample(k)
            taken |= set(np.asarray(a).tolist())
            w = reward(a) - jnp.mean(reward(a))  # the mean baseline
            grads = jax.grad(lambda p: losses.policy_gradient_loss(policy.apply(p, obs).log_prob(a), w, jnp.ones(4)))(
                params
            )
            upd, opt_state = opt.update(grads, opt_state)
            params = optax.apply_updates(params, upd)
        pi = np.asarray(jax.nn.softmax(policy.apply(params, obs[:1]).logits[0]))
        untried = np.array([i for i in range(n) if i not in taken])
        good, bad = pi[untried[untried % 2 == 0]], pi[untried[untried % 2 == 1]]
        result[spec] = (good, bad)
        print(spec, f"taken {sorted(taken)}; untried even arms {good.mean():.4f}, odd {bad.mean():.4f}")
        assert len(good) >= 4 and len(bad) >= 4
    good, bad = result["test_linear_features:arm_kind_features"]
    assert good.min() > 1.5 * bad.max()
    good, bad = result["block"]
    np.testing.assert_allclose(np.concatenate([good, bad]), good[0], rtol=1e-6)


@pytest.mark.slow
def test_reinforce_learns_parity_arms_with_one_shared_weight(tmp_path):
    """16 arms, one weight: phi(s, a) = s (+1 even, -1 odd). REINFORCE (mean baseline, Adam 0.1) reaches the right
    parity on both observations, 3 seeds, 2 000 steps; the policy has one parameter."""
    cfg = reinforce.Config(
        features="linear-raw",
        action_features="parity_arms:parity_features",
        n_envs=8,
        n_steps=8,
        baseline="mean",
        learning_rate=0.1,
    )
    _, run_dir = train_run(tmp_path, "reinforce", cfg, "parity_arms:ParityArms", seeds=(0, 1, 2), total_steps=2000)
    algo, c, space, agents = __import__("advantage.training.driver", fromlist=["load_agents"]).load_agents(run_dir)
    for i in range(3):
        agent = jax.tree.map(lambda x, i=i: x[i], agents)
        policy, _ = algo.networks(c, space, agent.fmap)
        assert jax.tree.map(np.shape, agent.params["policy"]) == {"params": {"StateActionHead_0": {"w": (1,)}}}
        pi = np.asarray(jax.nn.softmax(policy.apply(agent.params["policy"], jnp.asarray([[1.0], [-1.0]])).logits))
        right = [pi[0, 0::2].sum(), pi[1, 1::2].sum()]
        print(
            f"seed {i}: theta {float(agent.params['policy']['params']['StateActionHead_0']['w'][0]):.3f}, "
            f"P(right parity) {right[0]:.4f} on +1, {right[1]:.4f} on -1"
        )
        assert min(right) > 0.95


def test_action_feature_config_errors():
    with pytest.raises(ConfigError, match="Discrete"):
        make_feature_map("linear-raw", Box(-1, 1, (2,)), action_features="block", action_space=Box(-1, 1, (1,)))
    with pytest.raises(ConfigError, match="linear policy"):
        make_feature_map("mlp", Box(-1, 1, (2,)), action_features="block", action_space=Discrete(2))
    with pytest.raises(ConfigError, match="cannot import"):
        make_feature_map("linear-raw", Box(-1, 1, (2,)), action_features="no_such_module:f", action_space=Discrete(2))
    with pytest.raises(ConfigError, match="4 actions"):
        make_feature_map(
            "linear-raw",
            Box(-1, 1, (2,)),
            action_features="test_linear_features:shared_features",
            action_space=Discrete(3),
        )
    with pytest.raises(ConfigError, match="action_features"):
        reinforce.Config(features="linear-raw", action_features="nocolon")


# ----------------------------------------------------------------------------- linear-random
def test_random_features_shape_range_and_determinism():
    space = Box(np.array([-2.0, 0.0, -1.0]), np.array([2.0, 10.0, 1.0]), (3,))
    fmap = make_feature_map("linear-random", space, n_random=64, random_scale=2.0, seed=5)
    assert fmap.size == 65 and not fmap.sparse
    s = jnp.asarray(np.random.default_rng(0).uniform(space.low, space.high, (7, 3)), jnp.float32)
    f = np.asarray(fmap(s))
    assert f.shape == (7, 65) and np.all(np.abs(f) <= 1.0) and np.all(f[:, -1] == 1.0)
    # by hand: x scaled to [-1, 1] over the space's bounds, then cos(P^T x + b)
    proj, bias = random_projection(3, 64, 2.0, 5)
    x = 2 * (np.asarray(s) - space.low) / (space.high - space.low) - 1
    np.testing.assert_allclose(f[:, :-1], np.cos(x @ proj + bias), rtol=1e-5, atol=1e-5)
    assert np.isclose(np.std(proj), 2.0, rtol=0.15)  # entries N(0, random_scale^2)
    # the same seed gives the same features (a fresh map, a fresh draw); another seed others
    again = make_feature_map("linear-random", space, n_random=64, random_scale=2.0, seed=5)
    np.testing.assert_array_equal(np.asarray(again(s)), f)
    other = make_feature_map("linear-random", space, n_random=64, random_scale=2.0, seed=6)
    assert np.abs(np.asarray(other(s)) - f).max() > 0.1
    # 'none': a linear random projection, [P^T x, 1]
    lin = make_feature_map("linear-random", space, n_random=64, random_scale=2.0, seed=5, nonlinearity="none")
    np.testing.assert_allclose(np.asarray(lin(s))[:, :-1], x @ proj, rtol=1e-5, atol=1e-5)
    # an unbounded space without ranges: the observation as it is
    raw = make_feature_map("linear-random", Box(-np.inf, np.inf, (3,)), n_random=8)
    assert raw.low == () and np.asarray(raw(s)).shape == (7, 9)


def test_random_projection_is_numpys_frozen_legacy_stream():
    """The matrix is RandomState(seed)'s stream (frozen by NEP 19), so a saved config rebuilds it exactly."""
    rng = np.random.RandomState(11)
    proj, bias = random_projection(4, 10, 0.5, 11)
    np.testing.assert_array_equal(proj, (0.5 * rng.standard_normal((4, 10))).astype(np.float32))
    np.testing.assert_array_equal(bias, rng.uniform(0.0, 2.0 * np.pi, 10).astype(np.float32))


def test_random_feature_config_checks():
    with pytest.raises(ConfigError, match="random_nonlinearity"):
        ac_lambda.Config(features="linear-random", random_nonlinearity="relu")
    with pytest.raises(ConfigError, match="n_random"):
        ac_lambda.Config(features="linear-random", n_random=0)
    with pytest.raises(ConfigError, match="random_scale"):
        ac_lambda.Config(features="linear-random", random_scale=0.0)


CARTPOLE_RANDOM = dict(
    ac_lambda.PRESETS["CartPole-v1"],
    features="linear-random",
    n_random=256,
    random_scale=1.0,
    learning_rate=1e-4,
    critic_learning_rate=1e-3,
)


@pytest.mark.slow
def test_ac_lambda_learns_cartpole_with_random_fourier_features(tmp_path):
    """AC(lambda), linear in 256 random Fourier features of CartPole's state (scaled over the preset's tile ranges):
    every seed balances for the full 500 steps after 50 000 steps (about 15 s on one core)."""
    cfg = ac_lambda.Config(**CARTPOLE_RANDOM)
    summary, run_dir = train_run(
        tmp_path, "ac-lambda", cfg, "CartPole-v1", seeds=(0, 1, 2), total_steps=50_000, eval_episodes=10
    )
    per_seed = summary["eval_return"]["per_seed"]
    print("ac-lambda linear-random CartPole eval returns per seed:", per_seed)
    assert min(per_seed) >= 475.0
    # load_policy rebuilds the same features from the saved config, and the npz export writes the projection
    policy = advantage.load_policy(run_dir, seed=0)
    obs = np.random.default_rng(0).uniform([-2.4, -3, -0.21, -3], [2.4, 3, 0.21, 3], (300, 4)).astype(np.float32)
    algo, c, space, agent = first_agent(run_dir)
    ref = np.asarray(algo.act(c, space, agent, jnp.asarray(obs), jax.random.PRNGKey(0), True)[0])
    np.testing.assert_array_equal(policy.act(obs), ref)
    path, result, _ = ex.export(run_dir, "npz", out=tmp_path / "p.npz", seed=0)
    assert result["ok"]
    np.testing.assert_array_equal(ex.numpy_forward(np.load(path), obs), ref)
    from test_policy import doc_forward  # the numpy forward pass of docs/using-a-trained-agent.md (cos layers)

    np.testing.assert_array_equal(doc_forward()(np.load(path), obs), ref)


# ----------------------------------------------------------------------------- J_avV = J_avR / (1 - gamma)
def _stationary(P_pi):
    evals, evecs = np.linalg.eig(P_pi.T)
    d = np.real(evecs[:, np.argmin(np.abs(evals - 1.0))])
    return d / d.sum()


def _objectives(P, R, pi, gamma):
    """``(J_avV, J_avR)``: sum_s d(s) V(s) with V = (I - gamma P_pi)^-1 r_pi, and rho = sum_s d(s) r_pi(s)."""
    P_pi, r_pi = np.einsum("sa,sat->st", pi, P), np.sum(pi * R, axis=1)
    d = _stationary(P_pi)
    np.testing.assert_allclose(d @ P_pi, d, atol=1e-10)  # stationary
    V = np.linalg.solve(np.eye(len(d)) - gamma * P_pi, r_pi)
    return float(d @ V), float(d @ r_pi)


@pytest.mark.parametrize("gamma", [0.5, 0.9, 0.99])
def test_average_value_is_average_reward_over_one_minus_gamma(gamma):
    """J_avV = sum_s d(s) V(s) = sum_t gamma^t d P^t r = rho / (1 - gamma) (d P = d), exactly: on a random
    5-state MDP and on AccessControl-v0 (S&B Example 10.2, 44 states), for random stochastic policies."""
    rng = np.random.default_rng(0)
    P = rng.dirichlet(np.ones(5), size=(5, 3))  # [s, a, s']
    R = rng.normal(size=(5, 3))
    for _ in range(3):
        pi = rng.dirichlet(np.ones(3), size=5)
        j_avv, rho = _objectives(P, R, pi, gamma)
        np.testing.assert_allclose(j_avv, rho / (1 - gamma), rtol=1e-9)
    P, R = access_control.transition_model()
    pi = rng.dirichlet(np.ones(2), size=P.shape[0])
    j_avv, rho = _objectives(P, R, pi, gamma)
    np.testing.assert_allclose(rho, access_control.average_reward_of(pi), rtol=1e-9)
    np.testing.assert_allclose(j_avv, rho / (1 - gamma), rtol=1e-8)
    print(f"AccessControl, gamma {gamma}: rho {rho:.5f}, J_avV {j_avv:.5f}, rho / (1 - gamma) {rho / (1 - gamma):.5f}")


def test_average_value_gradient_is_average_reward_gradient_over_one_minus_gamma():
    """grad J_avV = grad J_avR / (1 - gamma) for a tabular softmax policy (jax.grad through d^pi and V^pi): the same
    direction, so ac-lambda's objective='average-reward' ascends both."""
    jax.config.update("jax_enable_x64", True)
    try:
        rng = np.random.default_rng(1)
        P = jnp.asarray(rng.dirichlet(np.ones(4), size=(4, 2)))
        R = jnp.asarray(rng.normal(size=(4, 2)))
        gamma = 0.8

        def parts(theta):
            pi = jax.nn.softmax(theta, axis=-1)
            P_pi, r_pi = jnp.einsum("sa,sat->st", pi, P), jnp.sum(pi * R, axis=1)
            # d: the solution of d (I - P_pi) = 0, sum d = 1 (replace one equation by the normalisation)
            A = (jnp.eye(4) - P_pi).T.at[-1].set(1.0)
            d = jnp.linalg.solve(A, jnp.zeros(4).at[-1].set(1.0))
            V = jnp.linalg.solve(jnp.eye(4) - gamma * P_pi, r_pi)
            return d @ V, d @ r_pi

        theta = jnp.asarray(rng.normal(size=(4, 2)))
        g_avv = jax.grad(lambda t: parts(t)[0])(theta)
        g_avr = jax.grad(lambda t: parts(t)[1])(theta)
        assert float(jnp.abs(g_avr).max()) > 1e-3
        np.testing.assert_allclose(np.asarray(g_avv), np.asarray(g_avr) / (1 - gamma), rtol=1e-9, atol=1e-12)
    finally:
        jax.config.update("jax_enable_x64", False)
