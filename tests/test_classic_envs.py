"""The JAX-native classic-control environments against Gymnasium's own implementations.

Parity: thousands of transitions per environment. The states come from a real
Gymnasium env played with random actions from random resets, mixed with states
injected near the termination boundaries (and, for the continuous envs, actions
outside the action space to exercise the clipping). Each state is first rounded
to float32 and written back into Gymnasium (``state_to_gymnasium``), so both
sides start from exactly the same state; then Gymnasium steps once in float64
and the JAX env steps the whole batch at once (``jit(vmap(step))``) in float32,
compared at float32 tolerance. The same JAX code is also run in float64
(``jax.enable_x64``), where it must reproduce Gymnasium to rounding: that run
separates logic differences (it would catch them) from float32 rounding.
"""

from __future__ import annotations

import math

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from advantage.envs import make, registered_ids, spec
from advantage.envs.classic.acrobot import Acrobot
from advantage.envs.classic.cartpole import CartPole
from advantage.envs.classic.continuous_mountain_car import MountainCarContinuous
from advantage.envs.classic.mountain_car import MountainCar
from advantage.envs.classic.pendulum import Pendulum
from advantage.envs.spaces import Box, Discrete

ENVS = {
    "CartPole-v1": CartPole,
    "Acrobot-v1": Acrobot,
    "MountainCar-v0": MountainCar,
    "MountainCarContinuous-v0": MountainCarContinuous,
    "Pendulum-v1": Pendulum,
}
TERMINATING = {"CartPole-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0"}
N_TRANSITIONS = 3000
INJECT_FRACTION = 0.3  # share of transitions that start from a state sampled near the boundaries

# float32 tolerance: float32 has ~6e-8 relative resolution; one step of each env's
# arithmetic (a handful of operations) stays well inside this (measured: <= 5e-7 on the
# observations, <= 5e-6 on rewards of magnitude up to 100).
RTOL = 1e-5
ATOL = 1e-5
# Acrobot is the exception, and only on the two angular velocities. One RK4 step of
# dt = 0.2 s at velocities up to 9*pi rad/s is badly conditioned: the Jacobian of the step
# map has entries up to ~1.5e4 (median ~5, 99.9th percentile ~1.5e3, measured in float64
# over 4e5 random states), so float32 rounding (ulp ~2e-6 at |v| ~ 30) of the input and
# of the intermediate RK4 stages is amplified to up to ~4e-3 on the output velocities
# (measured float32-vs-float64 over the same 4e5 states: median 4e-7, 99.9th percentile
# 2e-4, max 4.2e-3). The float64 run below shows the same amplification against
# Gymnasium (~6e-12 = 5e4 float64 ulps) with identical logic, so this is the conditioning
# of the problem, not an implementation difference. Hence: the cos/sin entries keep a
# float32 tolerance, the velocities get a bound of 1e-2 (0.035% of their +-9*pi range), and
# the bulk of the velocities must still meet the strict tolerance.
ACROBOT_VEL_ATOL = 1e-2
ACROBOT_ANGLE_ATOL = 5e-5  # cos/sin entries: measured max 2.2e-5 over 4e5 states
ACROBOT_STRICT_FRACTION = 0.99  # measured: 99.75% of the velocities within RTOL/ATOL
# A float32 termination decision is only compared where the float64 quantity it thresholds
# is further than this from the threshold: closer than that, float32 rounding may legitimately
# decide the other way. (In practice no sampled transition falls that close.) The float64
# run compares every termination decision.
BOUNDARY_EPS = 1e-5
# float64 run (jax.enable_x64): the same code in float64 reproduces Gymnasium to rounding.
X64_TOL = {  # (rtol, atol) on the next state and reward
    "CartPole-v1": (1e-12, 1e-12),
    "Acrobot-v1": (1e-9, 1e-9),  # see above: up to ~5e4 float64 ulps, measured 6e-12
    "MountainCar-v0": (1e-12, 1e-12),
    # Gymnasium stores this env's state as np.float32, and NumPy 2 promotion
    # (np.float32 op Python float -> np.float32) makes its update run in float32 too:
    # compare the float64 result rounded to float32, to ~1 float32 ulp (7.5e-9 at |v| = 0.07).
    "MountainCarContinuous-v0": (2.5e-7, 1e-8),
    # Gymnasium's torque terms `3.0 / (m * l**2) * u` and `0.001 * u**2` run in float32,
    # because u is a np.float32 there (NumPy 2 promotion); measured 1.2e-8.
    "Pendulum-v1": (1e-7, 1e-7),
}


# ----------------------------------------------------------------------------- helpers
def _inject(env_id, rng):
    """A float64 Gymnasium state near the interesting boundaries of ``env_id``."""
    if env_id == "CartPole-v1":
        return np.array(
            [rng.uniform(-2.6, 2.6), rng.uniform(-3, 3), rng.uniform(-0.25, 0.25), rng.uniform(-3, 3)]
        )
    if env_id == "Acrobot-v1":
        return np.array(
            [rng.uniform(-np.pi, np.pi), rng.uniform(-np.pi, np.pi), rng.uniform(-4 * np.pi, 4 * np.pi),
             rng.uniform(-9 * np.pi, 9 * np.pi)]
        )
    if env_id in ("MountainCar-v0", "MountainCarContinuous-v0"):
        goal = 0.5 if env_id == "MountainCar-v0" else 0.45
        region = rng.integers(3)
        if region == 0:  # near the goal, either direction
            pos = rng.uniform(goal - 0.1, 0.6)
        elif region == 1:  # near the left wall, where the velocity is zeroed
            pos = rng.uniform(-1.2, -1.1)
        else:
            pos = rng.uniform(-1.2, 0.6)
        return np.array([pos, rng.uniform(-0.07, 0.07)])
    if env_id == "Pendulum-v1":
        return np.array([rng.uniform(-4 * np.pi, 4 * np.pi), rng.uniform(-8, 8)])
    raise KeyError(env_id)


def _sample_action(env_id, gym_env, rng):
    space = gym_env.action_space
    if isinstance(space, gymnasium.spaces.Discrete):
        return int(rng.integers(space.n))
    # 1.5x the bounds: Gymnasium's unwrapped env accepts these and clips them itself
    return rng.uniform(1.5 * space.low, 1.5 * space.high).astype(np.float32)


def _term_margin(env_id, s):
    """Distance of Gymnasium's float64 next state ``s`` to the thresholds of its termination rule."""
    if env_id == "CartPole-v1":
        thr = 12 * 2 * math.pi / 360
        return min(abs(abs(s[0]) - 2.4), abs(abs(s[2]) - thr))
    if env_id == "Acrobot-v1":
        return abs(-np.cos(s[0]) - np.cos(s[1] + s[0]) - 1.0)
    if env_id in ("MountainCar-v0", "MountainCarContinuous-v0"):
        goal = 0.5 if env_id == "MountainCar-v0" else 0.45
        # position >= goal and velocity >= 0: the velocity matters only past the goal
        # (it is exactly 0 at the left wall, far from it)
        return min(abs(s[0] - goal), abs(s[1]) if s[0] > goal else np.inf)
    return np.inf


def _collect(env_id, n, seed):
    """Steps Gymnasium ``n`` times; returns the JAX start states, actions and Gymnasium's results."""
    cls = ENVS[env_id]
    gym_env = gymnasium.make(env_id).unwrapped
    limit = spec(env_id).max_episode_steps
    rng = np.random.default_rng(seed)
    gym_env.reset(seed=seed)
    states, actions, obs, rewards, terms, margins, next_states = [], [], [], [], [], [], []
    t = 0
    for _ in range(n):
        if rng.random() < INJECT_FRACTION:
            gym_env.state = _inject(env_id, rng)
        state = cls.state_from_gymnasium(gym_env)
        cls.state_to_gymnasium(state, gym_env)  # both sides start from the same float32 state
        action = _sample_action(env_id, gym_env, rng)
        o, r, term, trunc, _ = gym_env.step(action)
        assert not trunc
        states.append(state)
        actions.append(action)
        obs.append(np.asarray(o, np.float32))
        rewards.append(float(r))
        terms.append(bool(term))
        next_state = np.asarray(gym_env.state)
        next_states.append(next_state.astype(np.float64))
        margins.append(_term_margin(env_id, next_state))
        t += 1
        if term or t >= limit:
            gym_env.reset(seed=int(rng.integers(2**31)))
            t = 0
    discrete = isinstance(gym_env.action_space, gymnasium.spaces.Discrete)
    gym_env.close()
    return dict(
        states=jax.tree.map(lambda *xs: np.stack(xs), *states),
        actions=np.stack(actions).astype(np.int32 if discrete else np.float32),
        obs=np.stack(obs),
        reward=np.asarray(rewards),
        terminated=np.asarray(terms),
        margin=np.asarray(margins),
        next_state=np.stack(next_states),
    )


def _state_vector(env_id, state):
    """The physical state as a ``[..., d]`` array in Gymnasium's order."""
    if env_id == "CartPole-v1":
        return jnp.stack([state.x, state.x_dot, state.theta, state.theta_dot], -1)
    if env_id == "Acrobot-v1":
        return state.s
    if env_id == "Pendulum-v1":
        return jnp.stack([state.th, state.thdot], -1)
    return jnp.stack([state.position, state.velocity], -1)


def _batched_step(env, params, states, actions):
    keys = jax.random.split(jax.random.key(0), len(actions))
    out = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))(keys, states, actions, params)
    return jax.tree.map(np.asarray, out)


MAX_DIFFS = {}  # env id -> max |diff| seen (printed with `pytest -s`)


# ------------------------------------------------------------------------------ parity
@pytest.fixture(scope="module", params=list(ENVS))
def parity_sample(request):
    env_id = request.param
    return env_id, _collect(env_id, N_TRANSITIONS, seed=list(ENVS).index(env_id))


def test_parity_with_gymnasium_float32(parity_sample):
    env_id, g = parity_sample
    env = ENVS[env_id]()
    params = env.default_params()
    states = jax.tree.map(jnp.asarray, g["states"])
    obs, new_states, reward, terminated, truncated, info = _batched_step(env, params, states, jnp.asarray(g["actions"]))

    assert obs.dtype == np.float32 and reward.dtype == np.float32
    assert terminated.dtype == np.bool_ and truncated.dtype == np.bool_
    if env_id == "Acrobot-v1":
        np.testing.assert_allclose(obs[:, :4], g["obs"][:, :4], rtol=RTOL, atol=ACROBOT_ANGLE_ATOL)
        np.testing.assert_allclose(obs[:, 4:], g["obs"][:, 4:], rtol=RTOL, atol=ACROBOT_VEL_ATOL)
        strict = np.abs(obs[:, 4:] - g["obs"][:, 4:]) <= ATOL + RTOL * np.abs(g["obs"][:, 4:])
        assert strict.mean() >= ACROBOT_STRICT_FRACTION, strict.mean()
    else:
        np.testing.assert_allclose(obs, g["obs"], rtol=RTOL, atol=ATOL, err_msg=f"{env_id}: next observation")
    np.testing.assert_allclose(reward, g["reward"], rtol=RTOL, atol=ATOL, err_msg=f"{env_id}: reward")
    assert not truncated.any(), "a raw env never truncates"
    # obs_from_state of the returned state is the returned observation
    np.testing.assert_array_equal(np.asarray(jax.vmap(env.obs_from_state, in_axes=(0, None))(new_states, params)), obs)

    g_term = g["terminated"]
    robust = g["margin"] > BOUNDARY_EPS
    assert robust.mean() > 0.99, f"{env_id}: too many transitions at the termination boundary"
    mismatch = np.flatnonzero(robust & (terminated != g_term))
    assert mismatch.size == 0, f"{env_id}: termination differs at {mismatch[:10]}: {g['next_state'][mismatch[:3]]}"
    if env_id in TERMINATING:
        assert g_term.any() and (~g_term).any(), f"{env_id}: the sample must exercise termination both ways"
    else:
        assert not terminated.any()

    if env_id == "CartPole-v1":  # both termination rules fire in the sample
        nxt = g["next_state"]
        assert (np.abs(nxt[:, 0]) > 2.4).any() and (np.abs(nxt[:, 2]) > 12 * 2 * math.pi / 360).any()
    if env_id == "Acrobot-v1":  # the velocity bounds are exercised
        assert np.isclose(np.abs(g["obs"][:, 4]), 4 * np.pi).sum() > 20
        assert np.isclose(np.abs(g["obs"][:, 5]), 9 * np.pi).sum() > 20
    if env_id in ("MountainCar-v0", "MountainCarContinuous-v0"):
        # the left-wall rule (position clipped to min_position => negative velocity zeroed) is exercised
        at_wall = g["next_state"][:, 0].astype(np.float32) == np.float32(-1.2)
        assert at_wall.sum() > 20
        np.testing.assert_array_equal(obs[at_wall, 1], 0.0)

    MAX_DIFFS[env_id] = (np.abs(obs - g["obs"]).max(), np.abs(reward - g["reward"]).max())
    print(
        f"\n{env_id} float32: max|obs diff|={MAX_DIFFS[env_id][0]:.3g} max|reward diff|={MAX_DIFFS[env_id][1]:.3g} "
        f"terminated={int(g_term.sum())}/{len(g_term)} boundary-skipped={int((~robust).sum())}"
    )


def test_parity_with_gymnasium_float64(parity_sample):
    """The same code run in float64 equals Gymnasium to rounding: any logic difference would show here."""
    env_id, g = parity_sample
    env = ENVS[env_id]()
    params = env.default_params()
    rtol, atol = X64_TOL[env_id]
    with jax.enable_x64(True):
        states = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), g["states"])
        actions = jnp.asarray(g["actions"], jnp.int32 if g["actions"].dtype == np.int32 else jnp.float64)
        obs, new_states, reward, terminated, truncated, info = _batched_step(env, params, states, actions)
        next_state = np.asarray(_state_vector(env_id, new_states))
    assert obs.dtype == np.float64 and next_state.dtype == np.float64
    if env_id == "MountainCarContinuous-v0":
        next_state = next_state.astype(np.float32)
    np.testing.assert_allclose(next_state, g["next_state"], rtol=rtol, atol=atol, err_msg=f"{env_id}: next state")
    np.testing.assert_allclose(reward, g["reward"], rtol=rtol, atol=atol, err_msg=f"{env_id}: reward")
    np.testing.assert_array_equal(terminated, g["terminated"], err_msg=f"{env_id}: terminated")
    print(f"\n{env_id} float64: max|state diff|={np.abs(next_state - g['next_state']).max():.3g} "
          f"max|reward diff|={np.abs(reward - g['reward']).max():.3g}")


# ------------------------------------------------------------------------------- reset
RESET_RANGES = {  # Gymnasium's reset distributions: uniform on [low, high] per state component
    "CartPole-v1": ([-0.05] * 4, [0.05] * 4),
    "Acrobot-v1": ([-0.1] * 4, [0.1] * 4),
    "MountainCar-v0": ([-0.6, 0.0], [-0.4, 0.0]),
    "MountainCarContinuous-v0": ([-0.6, 0.0], [-0.4, 0.0]),
    "Pendulum-v1": ([-np.pi, -1.0], [np.pi, 1.0]),
}


@pytest.mark.parametrize("env_id", list(ENVS))
def test_reset_distribution(env_id):
    env = ENVS[env_id]()
    params = env.default_params()
    n = 2000
    obs, state = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(jax.random.split(jax.random.key(1), n), params)
    s = np.asarray(_state_vector(env_id, state))
    low, high = (np.asarray(b, np.float32) for b in RESET_RANGES[env_id])
    assert s.shape == (n, len(low)) and s.dtype == np.float32
    assert np.all(s >= low) and np.all(s <= high)
    width = high - low
    random_dims = width > 0
    # uniform over the whole range: extremes close to the bounds, mean near the centre
    assert np.all((s.min(0) - low)[random_dims] < 0.01 * width[random_dims])
    assert np.all((high - s.max(0))[random_dims] < 0.01 * width[random_dims])
    np.testing.assert_allclose(s.mean(0)[random_dims], ((low + high) / 2)[random_dims], atol=0.03 * width.max())
    assert len(np.unique(s[:, 0])) > 0.99 * n, "resets must differ from key to key"
    space = env.observation_space(params)
    obs = np.asarray(obs)
    assert obs.dtype == np.float32
    assert all(space.contains(o) for o in obs)
    np.testing.assert_array_equal(obs, np.asarray(jax.vmap(env.obs_from_state, in_axes=(0, None))(state, params)))


def test_spaces_match_gymnasium():
    for env_id, cls in ENVS.items():
        env = cls()
        params = env.default_params()
        gym_env = gymnasium.make(env_id).unwrapped
        obs_space = env.observation_space(params)
        assert isinstance(obs_space, Box) and obs_space.shape == gym_env.observation_space.shape
        np.testing.assert_array_equal(obs_space.low, gym_env.observation_space.low)
        np.testing.assert_array_equal(obs_space.high, gym_env.observation_space.high)
        act_space = env.action_space(params)
        if isinstance(gym_env.action_space, gymnasium.spaces.Discrete):
            assert isinstance(act_space, Discrete) and act_space.n == gym_env.action_space.n
        else:
            assert isinstance(act_space, Box) and act_space.shape == gym_env.action_space.shape == (1,)
            np.testing.assert_array_equal(act_space.low, gym_env.action_space.low)
            np.testing.assert_array_equal(act_space.high, gym_env.action_space.high)
        assert env.name == env_id
        gym_env.close()


def test_registry_builds_these_classes():
    for env_id, cls in ENVS.items():
        assert env_id in registered_ids()
        env, params = make(env_id)
        assert type(env.unwrapped) is cls
        assert env.max_episode_steps == gymnasium.spec(env_id).max_episode_steps


# ---------------------------------------------------------------------------- time limit
def _never_terminating_policy(env_id, params):
    """(params, action) such that an episode from reset cannot terminate before the time limit."""
    if env_id == "CartPole-v1":  # no threshold can be crossed
        return params.replace(x_threshold=1e9, theta_threshold_radians=1e9), jnp.int32(1)
    if env_id == "Acrobot-v1":  # no torque: the links just swing a little around the bottom
        return params, jnp.int32(1)
    if env_id == "MountainCar-v0":  # "do nothing" never reaches the top
        return params, jnp.int32(1)
    if env_id == "MountainCarContinuous-v0":
        return params, jnp.zeros((1,), jnp.float32)
    return params, jnp.full((1,), 2.0, jnp.float32)  # Pendulum never terminates


@pytest.mark.parametrize("env_id", list(ENVS))
def test_truncation_at_time_limit(env_id):
    env, params = make(env_id)
    limit = spec(env_id).max_episode_steps
    params, action = _never_terminating_policy(env_id, params)

    @jax.jit
    def run(key):
        obs, state = env.reset(key, params)

        def body(state, k):
            _, state, _, terminated, truncated, _ = env.step(k, state, action, params)
            return state, (terminated, truncated)

        return jax.lax.scan(body, state, jax.random.split(key, limit))[1]

    terminated, truncated = map(np.asarray, run(jax.random.key(2)))
    assert terminated.shape == truncated.shape == (limit,)
    assert not terminated.any()
    assert not truncated[: limit - 1].any()  # steps 1 .. limit-1
    assert truncated[limit - 1]  # step `limit`


# ------------------------------------------------------------------------ jit and vmap
@pytest.mark.parametrize("env_id", list(ENVS))
def test_jit_vmap_shapes_and_dtypes(env_id):
    env = ENVS[env_id]()
    params = env.default_params()
    obs_space, act_space = env.observation_space(params), env.action_space(params)
    b = 7
    keys = jax.random.split(jax.random.key(3), b)
    obs, state = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(keys, params)
    if isinstance(act_space, Discrete):
        actions = jnp.arange(b, dtype=jnp.int32) % act_space.n
    else:
        actions = jnp.linspace(act_space.low[0], act_space.high[0], b, dtype=jnp.float32)[:, None]
    out = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))(keys, state, actions, params)
    obs2, state2, reward, terminated, truncated, info = out
    assert obs.shape == obs2.shape == (b, *obs_space.shape)
    assert obs.dtype == obs2.dtype == jnp.float32
    assert reward.shape == terminated.shape == truncated.shape == (b,)
    assert reward.dtype == jnp.float32 and terminated.dtype == jnp.bool_ and truncated.dtype == jnp.bool_
    assert isinstance(info, dict)
    # step returns a state of exactly the reset state's structure, shapes and dtypes (scan/AutoReset need it)
    assert jax.tree.structure(state) == jax.tree.structure(state2)
    for a, c in zip(jax.tree.leaves(state), jax.tree.leaves(state2)):
        assert a.shape == c.shape and a.dtype == c.dtype and a.shape[0] == b
    one_state = jax.tree.map(lambda x: x[0], state)
    s_reset = jax.eval_shape(env.reset, keys[0], params)[1]
    s_step = jax.eval_shape(env.step, keys[0], one_state, actions[0], params)[1]
    assert s_reset == s_step  # includes weak_type
    for o in np.asarray(obs2):
        assert o.shape == obs_space.shape


@pytest.mark.parametrize("env_id", list(ENVS))
def test_render(env_id):
    env = ENVS[env_id]()
    params = env.default_params()
    _, state = env.reset(jax.random.key(4), params)
    img = np.asarray(jax.jit(env.render)(state, params))
    assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8
    assert (img != 255).any() and (img == 255).any()  # something drawn on a white background
