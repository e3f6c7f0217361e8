"""The network options every gradient-trained algorithm shares (docs/network-options.md): decoupled weight decay,
LayerNorm, the Gaussian policy's std (fixed / learned / state-dependent), the softmax temperature; and PPO's
fixed KL-penalty coefficient."""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import first_agent, train_run

from advantage import algos
from advantage.algos import ppo
from advantage.config import ConfigError
from advantage.core import optim
from advantage.core.distributions import Categorical
from advantage.envs import Box, Discrete
from advantage.nets.linear import FeatureMap, Policy
from advantage.nets.mlp import MLP, ActorCritic, tempered
from advantage.nets.offpolicy import Torso
from advantage.types import Transition

# A parameter tree like a Flax one: a weight matrix, a bias, a LayerNorm scale, a state-independent log-std.
PARAMS = {
    "params": {
        "Dense_0": {"kernel": jnp.array([[1.0, -2.0], [0.5, 4.0]]), "bias": jnp.array([1.0, -1.0])},
        "LayerNorm_0": {"scale": jnp.array([1.0, 2.0]), "bias": jnp.array([0.3, 0.3])},
        "log_std": jnp.array([0.5]),
    }
}
GRADS = {
    "params": {
        "Dense_0": {"kernel": jnp.array([[0.2, -0.1], [0.0, 0.3]]), "bias": jnp.array([-0.4, 0.2])},
        "LayerNorm_0": {"scale": jnp.array([0.1, -0.1]), "bias": jnp.array([0.0, 0.5])},
        "log_std": jnp.array([-0.2]),
    }
}


def _leaves(tree):
    return {jax.tree_util.keystr(k): np.asarray(v) for k, v in jax.tree_util.tree_leaves_with_path(tree)}


# ----------------------------------------------------------------------------- weight decay, by hand
def test_sgd_weight_decay_shrinks_only_the_weight_matrices():
    """sgd, step size 0.1, lambda 0.5: kernel <- kernel - 0.1 (g + 0.5 kernel); everything else <- p - 0.1 g."""
    opt = optim.optimizer("sgd", weight_decay=0.5)
    state = opt.init(PARAMS)
    new, _ = optim.apply_gradients(opt, PARAMS, state, GRADS, 0.1)
    got = _leaves(new)
    k, gk = np.array([[1.0, -2.0], [0.5, 4.0]]), np.array([[0.2, -0.1], [0.0, 0.3]])
    np.testing.assert_allclose(got["['params']['Dense_0']['kernel']"], k - 0.1 * (gk + 0.5 * k), rtol=1e-6)
    np.testing.assert_allclose(got["['params']['Dense_0']['bias']"], [1.04, -1.02], rtol=1e-6)
    np.testing.assert_allclose(got["['params']['LayerNorm_0']['scale']"], [0.99, 2.01], rtol=1e-6)
    np.testing.assert_allclose(got["['params']['LayerNorm_0']['bias']"], [0.3, 0.25], rtol=1e-6)
    np.testing.assert_allclose(got["['params']['log_std']"], [0.52], rtol=1e-6)


def test_adamw_first_step_by_hand_and_against_optax():
    """Adam's first step is g / (|g| + eps) (m_hat = g, v_hat = g^2); the decoupled decay adds lambda * theta to it
    after Adam's scaling, so it is not divided by sqrt(v_hat): theta - lr (g / (|g| + eps) + lambda theta)."""
    lr, wd, eps = 0.01, 0.1, 1e-8
    for with_lr_in_chain in (False, True):
        opt = optim.optimizer("adam", eps=eps, weight_decay=wd, learning_rate=lr if with_lr_in_chain else None)
        state = opt.init(PARAMS)
        if with_lr_in_chain:
            updates, _ = opt.update(GRADS, state, PARAMS)
            new = optax.apply_updates(PARAMS, updates)
        else:
            new, _ = optim.apply_gradients(opt, PARAMS, state, GRADS, lr)
        for key, p in _leaves(PARAMS).items():
            g = _leaves(GRADS)[key]
            decay = wd * p if key.endswith("['kernel']") else 0.0
            expected = p - lr * (g / (np.abs(g) + eps) + decay)
            np.testing.assert_allclose(_leaves(new)[key], expected, rtol=1e-5, atol=1e-7, err_msg=key)
    # the same as optax.adamw with a mask of the kernels
    mask = jax.tree_util.tree_map_with_path(lambda path, _: optim.decays(path), PARAMS)
    ref = optax.adamw(lr, eps=eps, weight_decay=wd, mask=mask)
    ref_updates, _ = ref.update(GRADS, ref.init(PARAMS), PARAMS)
    ours, _ = optim.apply_gradients(
        opt := optim.optimizer("adam", eps=eps, weight_decay=wd), PARAMS, opt.init(PARAMS), GRADS, lr
    )
    for a, b in zip(jax.tree.leaves(optax.apply_updates(PARAMS, ref_updates)), jax.tree.leaves(ours)):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_weight_decay_is_not_clipped_and_keeps_the_state_structure():
    """Clipping sees only the gradient; the state has the structure of the chain without decay, so an init without
    decay serves an update with a traced one (a sweep), and zero traced decay gives the undecayed step."""
    plain = optim.optimizer("adam", max_grad_norm=1e-3)
    decayed = optim.optimizer("adam", max_grad_norm=1e-3, weight_decay=1.0)
    assert jax.tree.structure(plain.init(PARAMS)) == jax.tree.structure(decayed.init(PARAMS))
    zero = jax.tree.map(jnp.zeros_like, GRADS)
    new, _ = optim.apply_gradients(decayed, PARAMS, decayed.init(PARAMS), zero, 0.1)
    k = np.array([[1.0, -2.0], [0.5, 4.0]])
    np.testing.assert_allclose(_leaves(new)["['params']['Dense_0']['kernel']"], 0.9 * k, rtol=1e-6)

    @jax.jit
    def step(wd):
        opt = optim.optimizer("adam", max_grad_norm=1.0, weight_decay=wd)
        return optim.apply_gradients(opt, PARAMS, plain.init(PARAMS), GRADS, 0.1)[0]

    reference = optim.apply_gradients(
        optim.optimizer("adam", max_grad_norm=1.0), PARAMS, plain.init(PARAMS), GRADS, 0.1
    )[0]
    for a, b in zip(jax.tree.leaves(step(0.0)), jax.tree.leaves(reference)):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    kernel = "['params']['Dense_0']['kernel']"
    assert not np.allclose(_leaves(step(0.5))[kernel], _leaves(reference)[kernel])  # a traced 0.5 does decay


def test_decay_weights_step_by_hand_and_zero_is_identity():
    new = optim.decay_weights(PARAMS, 0.5, 0.1)
    np.testing.assert_allclose(new["params"]["Dense_0"]["kernel"], 0.95 * PARAMS["params"]["Dense_0"]["kernel"])
    assert new["params"]["log_std"] is not None and np.allclose(new["params"]["log_std"], [0.5])
    assert optim.decay_weights(PARAMS, 0.0, 0.1) is PARAMS


# ----------------------------------------------------------------------------- LayerNorm
def _ln_outputs(module, x, *args):
    variables = module.init(jax.random.PRNGKey(0), x, *args)
    _, state = module.apply(variables, x, *args, capture_intermediates=lambda m, _: isinstance(m, nn.LayerNorm))
    found = []
    jax.tree_util.tree_map_with_path(lambda p, v: found.append(v), state["intermediates"])
    return variables, found


@pytest.mark.parametrize("torso", ["mlp", "offpolicy"])
def test_layer_norm_output_has_zero_mean_and_unit_variance_per_sample(torso):
    x = jax.random.normal(jax.random.PRNGKey(1), (7, 5)) * 3.0 + 2.0
    module = MLP((16, 8), "relu", layer_norm=True) if torso == "mlp" else Torso((16, 8), "relu", layer_norm=True)
    variables, outs = _ln_outputs(module, x)
    assert len(outs) == 2  # one per hidden layer
    for y in outs:  # scale 1, offset 0 at init: the normalised pre-activations
        assert y.shape[0] == 7
        np.testing.assert_allclose(np.mean(y, -1), 0.0, atol=1e-5)
        np.testing.assert_allclose(np.var(y, -1), 1.0, atol=1e-3)  # flax's epsilon 1e-6 in the denominator
    names = jax.tree_util.keystr(jax.tree_util.tree_leaves_with_path(variables))
    assert ("LayerNorm_0" in names) if torso == "mlp" else ("norm_1" in names)
    # off: the same parameters as before the option existed (no norm layers, the same names)
    plain = (MLP((16, 8), "relu") if torso == "mlp" else Torso((16, 8), "relu")).init(jax.random.PRNGKey(0), x)
    assert "LayerNorm" not in str(jax.tree_util.tree_leaves_with_path(plain))
    assert "norm_" not in str(jax.tree_util.tree_leaves_with_path(plain))


# ----------------------------------------------------------------------------- temperature
def test_temperature_log_prob_and_entropy_by_hand():
    z, tau = np.array([1.0, 2.0, 4.0]), 2.0
    p = np.exp(z / tau) / np.exp(z / tau).sum()
    dist = Categorical(tempered(jnp.asarray(z), tau))
    np.testing.assert_allclose(np.exp(dist.log_probs), p, rtol=1e-6)
    np.testing.assert_allclose(dist.log_prob(jnp.asarray(2)), math.log(p[2]), rtol=1e-6)
    np.testing.assert_allclose(dist.entropy(), -(p * np.log(p)).sum(), rtol=1e-6)
    assert tempered(jnp.asarray(z), 1.0) is not None and np.array_equal(tempered(jnp.asarray(z), 1.0), z)


@pytest.mark.parametrize("net", ["mlp", "linear"])
def test_temperature_divides_the_networks_logits(net):
    obs = jax.random.normal(jax.random.PRNGKey(3), (4, 3))

    def make(tau):
        if net == "mlp":
            return ActorCritic(3, True, (8,), temperature=tau)
        return Policy(3, True, FeatureMap("raw", 3), temperature=tau)

    params = make(1.0).init(jax.random.PRNGKey(0), obs)
    if net == "linear":  # the linear head starts at zero: give it some weights
        params = jax.tree.map(lambda w: jax.random.normal(jax.random.PRNGKey(5), w.shape), params)
    first = lambda out: out[0] if isinstance(out, tuple) else out  # noqa: E731
    plain, hot = first(make(1.0).apply(params, obs)), first(make(0.25).apply(params, obs))
    np.testing.assert_allclose(hot.log_probs, jax.nn.log_softmax(plain.logits / 0.25), rtol=1e-5, atol=1e-6)
    assert np.all(hot.entropy() < plain.entropy())  # tau < 1 sharpens


def test_config_checks():
    with pytest.raises(ConfigError, match="ppo.std"):
        ppo.Config(std="adaptive")
    with pytest.raises(ConfigError, match="ppo.temperature"):
        ppo.Config(temperature=0.0)
    with pytest.raises(ConfigError, match="sac.weight_decay"):
        algos.get("sac").Config(weight_decay=-1e-4)
    with pytest.raises(ConfigError, match="qac.std|actor_critic.std"):
        algos.get("qac").Config(std="state")


# ----------------------------------------------------------------------------- std options, one PPO update
SMALL = dict(n_envs=4, n_steps=16, n_epochs=4, n_minibatches=2, anneal_lr=False, anneal_clip=False)


def _update(cfg, act_space, seed=0):
    obs_space = Box(-1, 1, (3,))
    state = ppo.init(jax.random.PRNGKey(seed), obs_space, act_space, cfg, total_steps=10 * cfg.n_envs * cfg.n_steps)
    T, B = cfg.n_steps, cfg.n_envs
    obs = jax.random.normal(jax.random.PRNGKey(1), (T, B, 3))
    action, logp, value = jax.vmap(lambda o, k: ppo.act(cfg, act_space, state, o, k))(
        obs, jax.random.split(jax.random.PRNGKey(2), T)
    )
    reward = (action == 1).astype(jnp.float32) if isinstance(act_space, Discrete) else -jnp.abs(action[..., 0] - 0.5)
    batch = Transition(obs, action, reward, jnp.ones((T, B), bool), jnp.zeros((T, B), bool), obs, logp, value)
    new_state, m = jax.jit(lambda s, b, k: ppo.update(cfg, act_space, s, b, k))(state, batch, jax.random.PRNGKey(3))
    return state, new_state, {k: float(v) for k, v in m.items()}


def test_fixed_std_stays_fixed_after_updates():
    cfg = ppo.Config(**SMALL, std="fixed", log_std_init=-0.7, learning_rate=1e-2, ent_coef=0.1)
    space = Box(-1, 1, (2,))
    _, state, _ = _update(cfg, space)
    assert "log_std" not in str(jax.tree_util.tree_leaves_with_path(state.params))  # not a parameter at all
    dist, _ = ppo.network(cfg, space).apply(state.params, jax.random.normal(jax.random.PRNGKey(9), (5, 3)))
    np.testing.assert_array_equal(np.asarray(dist.log_std), np.float32(-0.7))
    # learned (the default) does move under the same update
    _, state, _ = _update(cfg.replace(std="learned"), space)
    assert abs(float(state.params["params"]["policy_head"]["log_std"][0]) + 0.7) > 1e-2


def test_state_dependent_std_varies_with_the_state_and_is_clipped():
    cfg = ppo.Config(**SMALL, std="state", log_std_init=-0.5, learning_rate=1e-2)
    space = Box(-1, 1, (2,))
    _, state, _ = _update(cfg, space)
    obs = jax.random.normal(jax.random.PRNGKey(9), (6, 3)) * 2.0
    dist, _ = ppo.network(cfg, space).apply(state.params, obs)
    log_std = np.asarray(dist.log_std)
    assert log_std.shape == (6, 2) and np.ptp(log_std[:, 0]) > 1e-4  # differs between states
    assert np.all(np.abs(log_std + 0.5) < 0.5)  # starts near log_std_init (small last layer)
    big = jax.tree_util.tree_map_with_path(
        lambda p, v: v * 1e4 if "log_std_head" in jax.tree_util.keystr(p) else v, state.params
    )
    clipped = np.asarray(ppo.network(cfg, space).apply(big, obs)[0].log_std)
    assert clipped.min() >= -5.0 and clipped.max() <= 2.0 and {-5.0, 2.0} & set(np.round(clipped.ravel(), 6))


def test_linear_policy_std_options():
    fmap = FeatureMap("raw", 3)
    obs = jax.random.normal(jax.random.PRNGKey(3), (4, 3))
    fixed = Policy(1, False, fmap, log_std_init=-1.0, std="fixed")
    p = fixed.init(jax.random.PRNGKey(0), obs)
    assert "log_std" not in str(p) and np.all(np.asarray(fixed.apply(p, obs).log_std) == np.float32(-1.0))
    state = Policy(1, False, fmap, log_std_init=-1.0, std="state")
    p = jax.tree.map(lambda w: jnp.full_like(w, 0.1), state.init(jax.random.PRNGKey(0), obs))
    log_std = np.asarray(state.apply(p, obs).log_std)[:, 0]
    np.testing.assert_allclose(log_std, -1.0 + 0.1 * (np.asarray(obs).sum(-1) + 1.0), rtol=1e-5)  # phi = [s, 1]


# ----------------------------------------------------------------------------- PPO's fixed KL coefficient
@pytest.mark.parametrize("adaptive", [True, False])
def test_kl_beta_fixed_does_not_move_and_adaptive_does(adaptive):
    cfg = ppo.Config(**SMALL, objective="kl", kl_beta=0.7, kl_beta_adaptive=adaptive, learning_rate=1e-2)
    state, new_state, m = _update(cfg, Discrete(2))
    assert m["policy/kl"] > 1.5 * cfg.kl_target  # the rule would double beta
    assert m["opt/kl_beta"] == pytest.approx(0.7) and m["loss/kl_penalty"] > 0
    assert float(new_state.kl_beta) == pytest.approx(1.4 if adaptive else 0.7)


def test_kl_beta_fixed_over_a_run(tmp_path):
    cfg = ppo.Config(n_envs=4, n_steps=16, n_epochs=4, objective="clip-kl", kl_beta=0.3, kl_beta_adaptive=False)
    _, run_dir = train_run(tmp_path, "ppo", cfg, "probe/ActionReward-v0", total_steps=64 * 6)
    _, _, _, agent = first_agent(run_dir)
    assert float(agent.kl_beta) == pytest.approx(0.3)


# ----------------------------------------------------------------------------- every algorithm, both options on
GRADIENT_BASED = {
    "ppo": dict(n_envs=2, n_steps=8, n_epochs=2),
    "a2c": dict(n_envs=2, n_steps=4),
    "a3c": dict(n_envs=2, n_steps=4),
    "reinforce": dict(n_envs=2, n_steps=16, features="mlp"),
    "qac": dict(n_envs=2, n_steps=4),
    "ac-lambda": dict(features="mlp", hidden_sizes=(16,)),
    "npg": dict(n_envs=2, n_steps=16, n_critic_updates=2),
    "trpo": dict(n_envs=2, n_steps=16, n_critic_updates=2),
    "nac": dict(n_envs=2, n_steps=16, n_critic_updates=2),
    "is-pg": dict(n_envs=2, n_steps=16),
    "impala": dict(n_envs=2, n_steps=8, policy_lag=2),
    "ddpg": dict(learning_starts=16, batch_size=8, buffer_size=256, hidden_sizes=(16, 16)),
    "td3": dict(learning_starts=16, batch_size=8, buffer_size=256, hidden_sizes=(16, 16)),
    "sac": dict(learning_starts=16, batch_size=8, buffer_size=256, hidden_sizes=(16, 16)),
    "dqn": dict(learning_starts=16, batch_size=8, buffer_size=256, hidden_sizes=(16, 16), train_freq=1),
}
OFF_POLICY = ("ddpg", "td3", "sac", "dqn")
CONTINUOUS_ONLY = ("ddpg", "td3", "sac")


def test_every_gradient_based_algorithm_is_covered():
    search = {n for n in algos.available() if algos.get(n).SEARCH}
    assert set(GRADIENT_BASED) == set(algos.available()) - search


#: name -> ``[(optimiser, scale)]`` of its networks for a config (TRPO/NPG/NAC: only the critic's; AC(lambda) has
#: none):
#: ``scale`` is 1 where the caller takes the step (``optim.apply_gradients``), ``-lr`` where the chain ends with it.
OPTIMIZERS = {
    "ppo": lambda m, c: [(m.optimizer(c), 1.0)],
    "a2c": lambda m, c: [(m.optimizer(c), 1.0)],
    "a3c": lambda m, c: [(algos.get("a2c").optimizer(c), 1.0)],  # A3C is A2C's maths
    "impala": lambda m, c: [(m.optimizer(c), 1.0)],
    "is-pg": lambda m, c: [(m.optimizer(c), 1.0)],
    "npg": lambda m, c: [(algos.get("trpo").critic_optimizer(c), -c.learning_rate)],  # NPG is TRPO's code
    "trpo": lambda m, c: [(m.critic_optimizer(c), -c.learning_rate)],
    "nac": lambda m, c: [(m.critic_optimizer(c), -c.critic_learning_rate)],  # the actor's step is natural
    "reinforce": lambda m, c: [
        (m._optimizer(c, c.learning_rate), -c.learning_rate),
        (m._optimizer(c, c.value_learning_rate), -c.value_learning_rate),
    ],
    "qac": lambda m, c: [
        (m._optimizer(c, c.learning_rate), -c.learning_rate),
        (m._optimizer(c, c.critic_learning_rate), -c.critic_learning_rate),
    ],
    "ddpg": lambda m, c: [(algos.get("td3").optimizer(c), 1.0)],  # DDPG is TD3's code
    "td3": lambda m, c: [(m.optimizer(c), 1.0)],
    "sac": lambda m, c: [(m.optimizer(c), 1.0)],
    "dqn": lambda m, c: [(m.optimizer(c), 1.0)],
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_each_algorithms_optimiser_decays_its_weights(name):
    """With zero gradients the whole update is the decay: ``scale * lambda * kernel`` on the weight matrix, zero on
    every other parameter; with weight_decay 0, zero everywhere."""
    module = algos.get(name)
    zero = jax.tree.map(jnp.zeros_like, GRADS)
    for wd in (0.0, 0.5):
        cfg = module.Config(weight_decay=wd)
        for opt, scale in OPTIMIZERS[name](module, cfg):
            updates = _leaves(opt.update(zero, opt.init(PARAMS), PARAMS)[0])
            kernel = updates.pop("['params']['Dense_0']['kernel']")
            np.testing.assert_allclose(
                kernel, scale * wd * np.asarray(PARAMS["params"]["Dense_0"]["kernel"]), rtol=1e-6, err_msg=name
            )
            assert all(np.all(u == 0) for u in updates.values())


def test_ac_lambda_decays_before_its_trace_step():
    """AC(lambda) has no optimiser: its step with a decay is the step without it minus alpha * lambda * theta_old on
    the weight matrices (the trace step is additive, so the order is exact)."""
    ac_lambda = algos.get("ac-lambda")
    space, obs_space = Discrete(2), Box(-1, 1, (3,))
    obs = jax.random.normal(jax.random.PRNGKey(1), (1, 2, 3))
    out = {}
    for wd in (0.0, 0.5):
        cfg = ac_lambda.Config(
            features="mlp", hidden_sizes=(8,), n_envs=2, weight_decay=wd, learning_rate=0.1, critic_learning_rate=0.2
        )
        state = ac_lambda.init(jax.random.PRNGKey(0), obs_space, space, cfg, 100)
        batch = Transition(
            obs,
            jnp.array([[0, 1]]),
            jnp.ones((1, 2)),
            jnp.zeros((1, 2), bool),
            jnp.zeros((1, 2), bool),
            obs * 0.5,
            jnp.zeros((1, 2)),
            jnp.zeros((1, 2)),
        )
        out[wd] = ac_lambda.update(cfg, space, state, batch, jax.random.PRNGKey(2))[0].params
    old = _leaves(state.params)
    for key, with_decay in _leaves(out[0.5]).items():
        lr = 0.1 if key.startswith("['policy']") else 0.2
        decay = lr * 0.5 * old[key] if key.endswith("['kernel']") else 0.0
        np.testing.assert_allclose(with_decay, _leaves(out[0.0])[key] - decay, rtol=1e-5, atol=1e-7, err_msg=key)


def test_nac_decays_the_baseline_and_not_the_natural_gradient_step():
    """NAC's actor step theta + alpha w is the same with and without weight decay; its baseline's is not."""
    nac = algos.get("nac")
    space, obs_space = Discrete(2), Box(-1, 1, (3,))
    T, B = 8, 2
    obs = jax.random.normal(jax.random.PRNGKey(1), (T, B, 3))
    out = {}
    for wd in (0.0, 0.5):
        cfg = nac.Config(n_envs=B, n_steps=T, n_critic_updates=1, n_minibatches=1, hidden_sizes=(8,), weight_decay=wd)
        state = nac.init(jax.random.PRNGKey(0), obs_space, space, cfg, 100)
        action, logp, value = nac.act(cfg, space, state, obs.reshape(T * B, 3), jax.random.PRNGKey(2))
        action, logp, value = (x.reshape(T, B) for x in (action, logp, value))
        batch = Transition(obs, action, action.astype(jnp.float32), jnp.zeros((T, B), bool), jnp.zeros((T, B), bool),
                           obs, logp, value)  # fmt: skip
        out[wd] = nac.update(cfg, space, state, batch, jax.random.PRNGKey(3))[0].params
    for a, b in zip(jax.tree.leaves(out[0.0]["policy"]), jax.tree.leaves(out[0.5]["policy"])):
        np.testing.assert_array_equal(a, b)
    kernels = lambda p: [v for k, v in _leaves(p).items() if k.endswith("['kernel']")]  # noqa: E731
    assert all(not np.allclose(a, b) for a, b in zip(kernels(out[0.0]["critic"]), kernels(out[0.5]["critic"])))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(GRADIENT_BASED))
def test_smoke_with_layer_norm_and_weight_decay(tmp_path, name):
    module = algos.get(name)
    extra = {} if name in OFF_POLICY or name == "qac" else {"std": "state"}
    cfg = module.Config(**GRADIENT_BASED[name], layer_norm=True, weight_decay=1e-2, **extra)
    continuous = name in CONTINUOUS_ONLY
    # NAC solves its least squares exactly (Cholesky, float32), which fails when every observation is 0 (ActionReward):
    # LayerNorm of equal pre-activations has a gradient of 1/sqrt(eps) = 1e3 per layer. ContextualBandit's are +-1.
    probe = "probe/ContextualBandit" if name == "nac" else "probe/ActionReward"
    env = f"{probe}Continuous-v0" if continuous or extra else f"{probe}-v0"
    n = 200 if name in OFF_POLICY else 3 * cfg.n_envs * cfg.n_steps
    pool = {"worker_pool": "local"} if getattr(module, "DEFAULT_WORKERS", None) else {}
    summary, run_dir = train_run(tmp_path, name, cfg, env, total_steps=n, **pool)
    assert summary["env_steps"] >= n
    _, cfg, _, agent = first_agent(run_dir)
    assert cfg.layer_norm and cfg.weight_decay == 1e-2  # saved with the run, read back
    leaves = jax.tree_util.tree_leaves_with_path(module.policy_params(agent))
    assert all(np.all(np.isfinite(v)) for _, v in leaves)
    names = " ".join(jax.tree_util.keystr(p) for p, _ in leaves)
    assert "LayerNorm" in names or "norm_0" in names, names


# ----------------------------------------------------------------------------- learning with each std option
@pytest.mark.slow
@pytest.mark.parametrize("std", ["fixed", "learned", "state"])
def test_ppo_learns_pendulum_with_each_std_option(tmp_path, std):
    """A short PPO run on Pendulum-v1 (82k steps, about a quarter of the preset's budget; seed 0) improves the training
    return over its start with each std option (docs/network-options.md, "Results": the numbers)."""
    import csv

    base = {**ppo.PRESETS["Pendulum-v1"], "n_envs": 8, "n_steps": 256, "n_minibatches": 8, "n_epochs": 10}
    cfg = ppo.Config(**base, std=std)
    _, run_dir = train_run(tmp_path, "ppo", cfg, "Pendulum-v1", total_steps=8 * 256 * 40)
    returns = [float(row["train/episode_return"]) for row in csv.DictReader(open(run_dir / "metrics.csv"))]
    start, end = np.mean(returns[:3]), np.mean(returns[-3:])
    assert end > start + 150, (std, start, end)
