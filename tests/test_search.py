"""Gradient-free policy search: CEM (tabular, fitted, parameter-space), hill climbing, CMA-ES,
the search driver path and the Gridworld-v0 lecture env."""

from __future__ import annotations

import csv
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from advantage.algos import cem, hill_climb
from advantage.envs import registry
from advantage.envs.spaces import Box, Discrete
from advantage.training.driver import evaluate_run
from tests.helpers import train_run

# ----------------------------------------------------------------------------- the math, by hand

def test_tabular_refit_formula_by_hand():
    # two elite episodes over 3 states, 2 actions; the second is one step shorter (mask 0 = padding)
    states = jnp.array([[0, 1, 1], [0, 0, 2]])
    actions = jnp.array([[1, 0, 0], [1, 0, 1]])
    mask = jnp.array([[1, 1, 1], [1, 1, 0]])
    old = jnp.array([[0.5, 0.5], [0.5, 0.5], [0.9, 0.1]])
    lam = 1.0
    probs, visits = cem.tabular_refit(states, actions, mask, old, lam)
    # state 0: actions 1, 1, 0 -> n(0,0)=1, n(0,1)=2, n(0)=3 -> (1+1)/(3+2), (2+1)/(3+2)
    # state 1: actions 0, 0      -> (2+1)/(2+2), (0+1)/(2+2)
    # state 2: only a padded step -> never visited: keeps its old row
    expected = np.array([[2 / 5, 3 / 5], [3 / 4, 1 / 4], [0.9, 0.1]])
    np.testing.assert_allclose(np.asarray(probs), expected, rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(visits), [3, 2, 0])
    # lambda = 0: the plain frequencies
    probs0, _ = cem.tabular_refit(states, actions, mask, old, 0.0)
    np.testing.assert_allclose(np.asarray(probs0)[:2], [[1 / 3, 2 / 3], [1.0, 0.0]], rtol=1e-6)


def test_elite_selection():
    returns = jnp.array([1.0, 5.0, 3.0, 5.0, 0.0])
    idx, threshold = cem.select_elite(returns, 3)
    assert sorted(np.asarray(idx).tolist()) == [1, 2, 3] and float(threshold) == 3.0
    # equal returns: the shorter episode is preferred
    idx, threshold = cem.select_elite(jnp.array([1.0, 1.0, 0.0, 1.0]), 2, lengths=jnp.array([9, 3, 1, 5]))
    assert np.asarray(idx).tolist() == [1, 3] and float(threshold) == 1.0
    assert cem.Config(population_size=10, elite_frac=0.2).n_elite == 2
    assert cem.Config(population_size=7, elite_frac=0.2).n_elite == 2  # ceil(1.4)


def test_gaussian_refit():
    elite = {"w": jnp.array([[1.0, 2.0], [3.0, 2.0]])}
    mean, std = cem.gaussian_refit(elite, {"w": jnp.zeros(2)}, {"w": jnp.ones(2)}, extra_std=0.0, update_rate=1.0)
    np.testing.assert_allclose(mean["w"], [2.0, 2.0])
    np.testing.assert_allclose(std["w"], [1.0, 0.0])
    mean, std = cem.gaussian_refit(elite, {"w": jnp.zeros(2)}, {"w": jnp.ones(2)}, extra_std=0.5, update_rate=0.5)
    np.testing.assert_allclose(mean["w"], [1.0, 1.0])
    np.testing.assert_allclose(std["w"], [0.5 * math.sqrt(1.25) + 0.5, 0.5 * 0.5 + 0.5], rtol=1e-6)


def test_hill_climb_keeps_only_improvements():
    params = {"w": jnp.zeros(3)}
    cands = {"w": jnp.stack([jnp.zeros(3), jnp.ones(3), 2 * jnp.ones(3)])}
    # reevaluate: candidate 0 is the incumbent, its fresh score is the reference
    p, best, improved = hill_climb.hill_climb_step(params, -jnp.inf, cands, jnp.array([10.0, 9.0, 10.0]), True)
    assert not bool(improved) and float(best) == 10.0
    np.testing.assert_array_equal(p["w"], np.zeros(3))  # a tie is no improvement
    p, best, improved = hill_climb.hill_climb_step(params, -jnp.inf, cands, jnp.array([10.0, 9.0, 12.0]), True)
    assert bool(improved) and float(best) == 12.0
    np.testing.assert_array_equal(p["w"], 2 * np.ones(3))
    # without reevaluation the stored best score is the reference
    p, best, improved = hill_climb.hill_climb_step(params, jnp.float32(20.0), cands, jnp.array([10.0, 15.0, 19.0]),
                                                   False)
    assert not bool(improved) and float(best) == 20.0
    np.testing.assert_array_equal(p["w"], np.zeros(3))

    # tell: the noise shrinks after an improvement and grows otherwise
    cfg = hill_climb.Config(population_size=3, noise_std=0.5, reevaluate=True)
    state = hill_climb.init(jax.random.PRNGKey(0), Box(-1, 1, (3,)), Discrete(2), cfg)
    cands, _ = hill_climb.ask(cfg, state, jax.random.PRNGKey(1))
    assert all(np.array_equal(c[0], p) for c, p in zip(jax.tree.leaves(cands), jax.tree.leaves(state.params)))
    better, m = hill_climb.tell(cfg, Discrete(2), state, cands, jnp.array([1.0, 3.0, 2.0]), None, None)
    assert float(better.noise_std) == 0.25 and float(m["search/accepted"]) == 1.0
    assert all(np.array_equal(b, c[1]) for b, c in zip(jax.tree.leaves(better.params), jax.tree.leaves(cands)))
    worse, _ = hill_climb.tell(cfg, Discrete(2), state, cands, jnp.array([3.0, 1.0, 2.0]), None, None)
    assert float(worse.noise_std) == 1.0
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(worse.params), jax.tree.leaves(state.params)))


def test_cma_es_improves_a_quadratic():
    pytest.importorskip("evosax")
    from jax.flatten_util import ravel_pytree

    from advantage.algos import cma_es

    cfg = cma_es.Config(population_size=16, init_std=0.5)
    space = Discrete(2)
    state = cma_es.init(jax.random.PRNGKey(0), Box(-1, 1, (3,)), space, cfg)  # 3*2 + 2 = 8 parameters
    target = jnp.linspace(-1.0, 1.0, 8)
    loss = lambda tree: jnp.sum((ravel_pytree(tree)[0] - target) ** 2)  # noqa: E731

    @jax.jit
    def generation(state, key):
        k_ask, k_tell = jax.random.split(key)
        cands, state = cma_es.ask(cfg, state, k_ask)
        returns = -jax.vmap(loss)(cands)
        return cma_es.tell(cfg, space, state, cands, returns, None, k_tell)

    start = float(loss(state.policy))
    for key in jax.random.split(jax.random.PRNGKey(1), 60):
        state, _ = generation(state, key)
    assert float(loss(state.policy)) < 1e-3 * start


def test_gridworld_env():
    env, params = registry.make("Gridworld-v0")
    obs, state = env.reset(jax.random.PRNGKey(0), params)
    assert int(obs) == 0 and env.observation_space(params) == Discrete(25)
    total, key = 0.0, jax.random.PRNGKey(1)
    for a in [1, 1, 1, 1, 2, 2, 2, 2]:  # right along the top row, then down the right column: 8 steps
        obs, state, r, term, trunc, _ = env.step(key, state, a, params)
        total += float(r)
    assert int(obs) == 24 and bool(term) and total == pytest.approx(0.93)
    obs, state = env.reset(jax.random.PRNGKey(0), params)
    obs, state, r, term, _, _ = env.step(key, state, 0, params)  # up into the wall: stays
    assert int(obs) == 0 and not bool(term) and float(r) == pytest.approx(-0.01)
    obs, state, _, _, _, _ = env.step(key, env.reset(key, params)[1], 2, params)  # down to (1, 0), then ...
    obs, _, r, term, _, _ = env.step(key, state, 1, params)  # ... right into the pit at (1, 1)
    assert bool(term) and float(r) == -1.0
    assert int(obs) == 6 and env.unwrapped.render(state.env_state, params).shape == (240, 240, 3)


# ----------------------------------------------------------------------------- learning

def _metrics_steps(run_dir):
    per_seed = {}
    with open(run_dir / "metrics.csv") as f:
        for row in csv.DictReader(f):
            per_seed.setdefault(int(row["seed"]), []).append(float(row["search/generation_steps"]))
    return {s: int(sum(v)) for s, v in per_seed.items()}


@pytest.mark.slow
def test_tabular_cem_solves_gridworld(tmp_path):
    summary, run_dir = train_run(tmp_path, "cem", cem.Config(**cem.PRESETS["Gridworld-v0"]), "Gridworld-v0",
                                 seeds=(0, 1, 2), total_steps=30_000, eval_episodes=10)
    ev = summary["eval_return"]
    assert ev["per_seed"] == pytest.approx([0.93] * 3, abs=1e-5)  # the optimal return: shortest path, no pit
    assert summary["eval_length_mean"] == 8.0
    # the budget is the env steps actually taken, reported exactly (the last generation may overshoot)
    assert all(30_000 <= s < 30_000 + 100 * 50 for s in summary["env_steps_per_seed"])
    assert _metrics_steps(run_dir) == dict(zip((0, 1, 2), summary["env_steps_per_seed"]))
    # the standard machinery works on the run: advantage eval, checkpoint restore
    again = evaluate_run(run_dir, episodes=5)
    assert again["eval_return"]["mean"] == pytest.approx(0.93, abs=1e-5)


@pytest.mark.slow
def test_tabular_cem_solves_frozenlake(tmp_path):
    summary, _ = train_run(tmp_path, "cem", cem.Config(**cem.PRESETS["FrozenLake-v1"]), "FrozenLake-v1",
                           seeds=(0,), total_steps=20_000, eval_episodes=10, env_kwargs='{"is_slippery": false}')
    assert summary["backend"] == "gymnasium"
    assert summary["eval_return"]["per_seed"] == [1.0]
    assert summary["eval_length_mean"] == 6.0  # the shortest path


# Parameter-space CEM on CartPole-v1: tests/test_presets.py.


@pytest.mark.slow
def test_fitted_cem_solves_gridworld(tmp_path):
    cfg = cem.Config(**dict(cem.PRESETS["Gridworld-v0"], variant="fit"))
    summary, _ = train_run(tmp_path, "cem", cfg, "Gridworld-v0", seeds=(0,), total_steps=60_000, eval_episodes=5)
    assert summary["eval_return"]["per_seed"] == pytest.approx([0.93], abs=1e-5)


@pytest.mark.slow
def test_cma_es_runs_on_cartpole(tmp_path):
    pytest.importorskip("evosax")
    from advantage.algos import cma_es

    summary, _ = train_run(tmp_path, "cma-es", cma_es.Config(), "CartPole-v1", seeds=(0,), total_steps=60_000,
                           eval_episodes=10)
    assert summary["eval_return"]["per_seed"][0] >= 475


def test_interrupted_search_resumes_to_the_same_result_and_keeps_every_row(tmp_path, monkeypatch):
    """Ctrl-C after 3 generations, then resume: the same parameters as an uninterrupted run, and every
    seed's metric rows add up to its own env-step count (seeds stop at different counts)."""
    from advantage.training import driver, search

    cfg = cem.Config(**{**cem.PRESETS["Gridworld-v0"], "population_size": 20})
    kwargs = dict(seeds=(0, 1), total_steps=3000, checkpoint_every=200, eval_episodes=5)
    reference, _ = train_run(tmp_path / "ref", "cem", cfg, "Gridworld-v0", **kwargs)
    calls, real = {"n": 0}, search.JaxPopulation.generation

    def generation(self, runners):
        calls["n"] += 1
        if calls["n"] > 3:
            raise KeyboardInterrupt
        return real(self, runners)

    monkeypatch.setattr(search.JaxPopulation, "generation", generation)
    with pytest.raises(KeyboardInterrupt):
        train_run(tmp_path / "cut", "cem", cfg, "Gridworld-v0", **kwargs)
    monkeypatch.setattr(search.JaxPopulation, "generation", real)
    run_dir = next((tmp_path / "cut").glob("run-*"))
    resumed = driver.resume(run_dir)
    assert resumed["params_digest"] == reference["params_digest"]
    assert resumed["env_steps_per_seed"] == reference["env_steps_per_seed"]
    assert _metrics_steps(run_dir) == dict(zip((0, 1), resumed["env_steps_per_seed"]))


def test_tabular_cem_refuses_feature_observations():
    """The aliased grid world's wall features are a Box(0, 1, (4,)) but not a one-hot state: a tabular
    policy would silently merge its cells, so it is refused (the bridge's one-hot Discrete is accepted)."""
    from advantage.config import ConfigError

    with pytest.raises(ConfigError, match="Discrete observation space"):
        cem.init(jax.random.PRNGKey(0), Box(0.0, 1.0, (4,)), Discrete(4), cem.Config(variant="tabular"))
    state = cem.init(jax.random.PRNGKey(0), Box(0.0, 1.0, (16,), one_hot=True), Discrete(4),
                     cem.Config(variant="tabular"))
    assert state.policy.shape == (16, 4)
