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


# ----------------------------------------------------------------------------- GA and Nelder–Mead


def test_ga_finds_the_optimum_of_a_quadratic():
    pytest.importorskip("evosax")
    from jax.flatten_util import ravel_pytree

    from advantage.algos import ga

    cfg = ga.Config(population_size=32, mutation_std=0.05, init_std=1.0)
    space = Discrete(2)
    state = ga.init(jax.random.PRNGKey(0), Box(-1, 1, (3,)), space, cfg)  # 3*2 + 2 = 8 parameters
    target = jnp.linspace(-1.0, 1.0, 8)
    loss = lambda tree: jnp.sum((ravel_pytree(tree)[0] - target) ** 2)  # noqa: E731

    @jax.jit
    def generation(state, key):
        k_ask, k_tell = jax.random.split(key)
        cands, state = ga.ask(cfg, state, k_ask)
        return ga.tell(cfg, space, state, cands, -jax.vmap(loss)(cands), None, k_tell)

    state, m = generation(state, jax.random.PRNGKey(1))
    start = float(loss(state.policy))
    for key in jax.random.split(jax.random.PRNGKey(2), 150):
        state, m = generation(state, key)
    # the elite is never lost (candidate 0 is the unmutated elite): the best loss can only fall
    assert float(loss(state.policy)) < 0.02 * start
    cands, _ = ga.ask(cfg, state, jax.random.PRNGKey(3))
    assert all(np.array_equal(c[0], p) for c, p in zip(jax.tree.leaves(cands), jax.tree.leaves(state.policy)))


def _nm_objectives(n):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(n, n))
    h, c, w = a @ a.T + np.eye(n), rng.normal(size=n), rng.normal(size=n)
    quad = (lambda x: 0.5 * (x - c) @ h @ (x - c), lambda x: 0.5 * (x - c) @ h @ (x - c))
    # an oscillating landscape, where contractions fail and the simplex shrinks
    osc = (lambda x: np.sin(50 * x @ w) + 0.1 * np.sum((x - c) ** 2),
           lambda x: jnp.sin(50 * x @ w) + 0.1 * jnp.sum((x - c) ** 2))
    return {"quadratic": quad, "oscillating": osc}, rng.normal(size=n)


@pytest.mark.parametrize("objective", ["quadratic", "oscillating"])
@pytest.mark.parametrize("population_size,adaptive", [(4, False), (7, False), (4, True)])
def test_nelder_mead_ask_tell_reproduces_scipy(objective, population_size, adaptive):
    """The ask/tell simplex (four trial points scored at once, shrunk vertices re-scored over fill generations)
    goes through SciPy's sequence of simplices, to rounding (float64; SciPy's nit counts from 1, so maxiter=K
    is K - 1 iterations)."""
    scipy_optimize = pytest.importorskip("scipy.optimize")
    from advantage.algos import nelder_mead as nm

    n, K = 5, 80
    (f_np, f_jax), x0 = _nm_objectives(n)[0][objective], _nm_objectives(n)[1]
    with jax.enable_x64(True):
        cfg = nm.Config(population_size=population_size, adaptive=adaptive)
        state = nm.init_state(jnp.asarray(x0), 0.5)
        first = np.asarray(state.simplex)
        tell = jax.jit(lambda s, c: nm.tell(cfg, None, s, c, -jax.vmap(f_jax)(c), None, None))
        shrinks = 0
        while int(state.iterations) < K - 1 or int(state.fill) < n + 1:
            cands, state = nm.ask(cfg, state, None)
            state, m = tell(state, cands)
            shrinks += int(m["search/shrink"])
        simplex, values = np.asarray(state.simplex), np.asarray(state.values)
    res = scipy_optimize.minimize(f_np, x0, method="Nelder-Mead", options=dict(
        initial_simplex=first, maxiter=K, maxfev=10**6, xatol=0, fatol=0, adaptive=adaptive))
    assert res.nit == K
    np.testing.assert_allclose(simplex, res.final_simplex[0], atol=1e-10)
    np.testing.assert_allclose(values, res.final_simplex[1], atol=1e-10)
    if objective == "oscillating" and not adaptive:
        assert shrinks >= 1  # the shrink path was exercised


def test_nelder_mead_step_by_hand():
    from advantage.algos import nelder_mead as nm

    simplex = jnp.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # sorted: f = 0, 1, 2
    values = jnp.array([0.0, 1.0, 2.0])
    coeffs = nm.coefficients(2, False)
    trials = nm.trial_points(simplex, coeffs)  # centroid (0.5, 0): x_r = (1, -1), x_e = (1.5, -2), ...
    np.testing.assert_allclose(trials, [[1.0, -1.0], [1.5, -2.0], [0.75, -0.5], [0.25, 0.5]])
    # f_r < f_0 and f_e < f_r: expansion
    s, v, shrink = nm.nelder_mead_step(simplex, values, trials, jnp.array([-1.0, -2.0, 5.0, 5.0]), coeffs)
    np.testing.assert_allclose(s[-1], [1.5, -2.0]) and np.testing.assert_allclose(v[-1], -2.0)
    assert not bool(shrink)
    # f_0 <= f_r < f_1: reflection
    s, v, _ = nm.nelder_mead_step(simplex, values, trials, jnp.array([0.5, -9.0, -9.0, -9.0]), coeffs)
    np.testing.assert_allclose(s[-1], [1.0, -1.0])
    # f_1 <= f_r < f_2, contraction no better than x_r: shrink towards x_0
    s, v, shrink = nm.nelder_mead_step(simplex, values, trials, jnp.array([1.5, 9.0, 1.6, 9.0]), coeffs)
    assert bool(shrink)
    np.testing.assert_allclose(s, [[0.0, 0.0], [0.5, 0.0], [0.0, 0.5]])
    # f_r >= f_2, inside contraction better than x_2: accepted
    s, v, shrink = nm.nelder_mead_step(simplex, values, trials, jnp.array([3.0, 9.0, 9.0, 1.9]), coeffs)
    np.testing.assert_allclose(s[-1], [0.25, 0.5]) and not bool(shrink)


def test_nelder_mead_reevaluate_best_averages_a_lucky_vertex_down():
    """reevaluate_best: the last slot scores x_0 again and f_0 becomes the running mean of its scores, so a vertex
    that scored 500 once by luck (true return ~20) loses its place after two iterations."""
    from advantage.algos import nelder_mead as nm
    from advantage.errors import ConfigError

    with pytest.raises(ConfigError, match="population_size"):
        nm.Config(population_size=4, reevaluate_best=True)
    cfg = nm.Config(population_size=5, reevaluate_best=True)
    state = nm.init_state(jnp.zeros(2), 1.0).replace(  # x_0 = (0, 0), x_1 = (1, 0), x_2 = (0, 1), all scored
        values=jnp.array([-500.0, -200.0, -100.0]), counts=jnp.ones(3), fill=jnp.asarray(3, jnp.int32))
    cands, _ = nm.ask(cfg, state, None)  # x_r, x_e, x_oc, x_ic of the centroid (0.5, 0), then x_0
    np.testing.assert_allclose(cands, [[1.0, -1.0], [1.5, -2.0], [0.75, -0.5], [0.25, 0.5], [0.0, 0.0]])
    # f_1 <= f_r = -150 < f_2 and f_oc = -160 <= f_r: outside contraction replaces x_2; x_0 scores 20 again:
    # f_0 = (1 * -500 + -20) / 2 = -260
    state, m = nm.tell(cfg, None, state, cands, jnp.array([150.0, 0.0, 160.0, 0.0, 20.0]), None, None)
    np.testing.assert_allclose(state.simplex, [[0.0, 0.0], [1.0, 0.0], [0.75, -0.5]])
    np.testing.assert_allclose(state.values, [-260.0, -200.0, -160.0])
    np.testing.assert_allclose(state.counts, [2.0, 1.0, 1.0])
    assert float(m["search/incumbent_scores"]) == 2.0
    # f_0 <= f_r = -230 < f_1: reflection replaces x_oc; x_0 scores 20 again: f_0 = (2 * -260 + -20) / 3 = -180,
    # now the worst: the simplex sorts to x_r (-230), x_1 (-200), x_0 (-180)
    cands, _ = nm.ask(cfg, state, None)
    x_r = np.asarray(cands[0])
    np.testing.assert_allclose(x_r, [0.25, 0.5])  # centroid (0.5, 0) reflected away from (0.75, -0.5)
    state, m = nm.tell(cfg, None, state, cands, jnp.array([230.0, 0.0, 0.0, 0.0, 20.0]), None, None)
    np.testing.assert_allclose(state.simplex, [x_r, [1.0, 0.0], [0.0, 0.0]])
    np.testing.assert_allclose(state.values, [-230.0, -200.0, -180.0], rtol=1e-6)
    np.testing.assert_allclose(state.counts, [1.0, 1.0, 3.0])
    np.testing.assert_allclose(state.policy, x_r)  # act uses the new best vertex
    assert float(m["search/incumbent_return"]) == 230.0


@pytest.mark.parametrize("name", ["ga", "nelder-mead"])
def test_search_finds_the_contextual_bandit_optimum(tmp_path, name):
    """Probe: a = obs is the optimum (return 1); a random linear policy gets 0.5 on average. One episode sees one
    of the two observations, so Nelder–Mead (whose vertices are never scored again) averages 8."""
    if name == "ga":
        pytest.importorskip("evosax")
    from advantage import algos

    cfg = algos.get(name).Config(**(dict(population_size=8) if name == "ga" else dict(episodes_per_candidate=8)))
    summary, _ = train_run(tmp_path, name, cfg, "probe/ContextualBandit-v0", seeds=(0, 1), total_steps=800,
                           eval_episodes=20)
    assert summary["eval_return"]["per_seed"] == [1.0, 1.0]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ga", "nelder-mead"])
def test_search_solves_cartpole(tmp_path, name):
    """The CartPole-v1 presets (docs/algorithms/search.md: both 20 of seeds 0-19)."""
    if name == "ga":
        pytest.importorskip("evosax")
    from advantage import algos

    module = algos.get(name)
    summary, _ = train_run(tmp_path, name, module.Config(**module.PRESETS["CartPole-v1"]), "CartPole-v1",
                           seeds=(0, 1, 2), total_steps=module.DEFAULT_STEPS["CartPole-v1"], eval_episodes=100)
    per_seed = summary["eval_return"]["per_seed"]
    assert min(per_seed) >= 475, per_seed


# ----------------------------------------------------------------------------- "lucky sessions"

SEARCH_ALGOS = ["cem", "hill-climb", "cma-es", "ga", "nelder-mead"]


@pytest.mark.parametrize("name", SEARCH_ALGOS)
def test_every_search_averages_episodes_per_candidate(tmp_path, name):
    """episodes_per_candidate is a field of every search algorithm, and the driver plays that many episodes."""
    if name in ("cma-es", "ga"):
        pytest.importorskip("evosax")
    from advantage import algos

    cfg = algos.get(name).Config(population_size=4, episodes_per_candidate=3)
    _, run_dir = train_run(tmp_path, name, cfg, "probe/ActionReward-v0", seeds=(0,), total_steps=12)
    with open(run_dir / "metrics.csv") as f:
        row = next(csv.DictReader(f))
    assert float(row["train/episodes"]) == 12.0 and float(row["search/generation_steps"]) == 12.0


def _noisy_arms():
    """A one-step bandit registered for the test: reward mu[a] + N(0, 1), mu = (0.5, 1.0)."""
    from advantage.envs.probes import _Probe

    class _NoisyArms(_Probe):
        name = "test/NoisyArms-v0"
        means = (0.5, 1.0)

        def step(self, key, state, action, params):
            reward = jnp.asarray(self.means)[action] + jax.random.normal(key)
            obs, st = self._state(0.0, state.t + 1)
            term, trunc = self._done(True)
            return obs, st, reward.astype(jnp.float32), term, trunc, {}

    registry.register("test/NoisyArms-v0", _NoisyArms, 1)
    return "test/NoisyArms-v0"


def test_averaging_episodes_selects_the_worse_candidate_less_often():
    """The slides' "lucky sessions": two candidates, the worse arm (mean 0.5) and the better (1.0), rewards with
    noise N(0, 1). Scored by one episode the driver ranks the worse one first with probability
    Phi(-0.5 / sqrt(2)) = 0.362; by the mean of k = 8, Phi(-0.5 sqrt(8) / sqrt(2)) = 0.159. Over 4000 seeds
    (standard error 0.008) each measured rate must lie within 0.03 of its value, and averaging must cut the
    rate by at least 0.15 (expected: 0.20)."""
    from math import erf, sqrt

    from advantage.training.loading import make_backend
    from advantage.training.run_config import RunConfig, Schedule
    from advantage.training.search import JaxPopulation

    env, algo = _noisy_arms(), hill_climb
    phi = lambda z: 0.5 * (1 + erf(z / sqrt(2)))  # noqa: E731
    rates = {}
    for k in (1, 8):
        cfg = hill_climb.Config(population_size=2, episodes_per_candidate=k, init_std=0.0)
        run = RunConfig(env=env, total_steps=10, backend="jax", seeds=(0,))
        backend, _ = make_backend(algo, cfg, run, "jax", Schedule(10, 1, 1))
        population = JaxPopulation(backend, algo, cfg, 10)
        agent = hill_climb.init(jax.random.PRNGKey(0), Box(-1, 1, (1,)), Discrete(2), cfg)
        bias = agent.params["params"]["PolicyHead_0"]["Dense_0"]["bias"]
        worse_better = jax.tree.map(lambda x: jnp.stack([x, x]), agent.params)  # candidate 0 plays arm 0
        worse_better["params"]["PolicyHead_0"]["Dense_0"]["bias"] = jnp.stack(
            [bias.at[0].set(1.0), bias.at[1].set(1.0)])
        returns = jax.jit(jax.vmap(lambda key: population.score(worse_better, key)[0]))(
            jax.random.split(jax.random.PRNGKey(k), 4000))
        rates[k] = float(jnp.mean(returns[:, 0] > returns[:, 1]))
        assert rates[k] == pytest.approx(phi(-0.5 * sqrt(k) / sqrt(2)), abs=0.03), rates
    assert rates[1] - rates[8] >= 0.15, rates
