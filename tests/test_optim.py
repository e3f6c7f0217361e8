"""``advantage.core.optim``: the optimiser chains, one step by hand, the schedule on env steps (and that it
anneals exactly as the old per-update schedule did), and the minibatch-epoch loop."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import struct

from advantage.core import optim


def _run(opt, steps=3, lr=None):
    params = {"w": jnp.array([1.0, -2.0, 3.0])}
    state = opt.init(params)
    for i in range(steps):
        grads = {"w": jnp.array([0.5, -1.0, 2.0]) * (i + 1)}
        if lr is None:
            updates, state = opt.update(grads, state, params)
            params = optax.apply_updates(params, updates)
        else:
            params, state = optim.apply_gradients(opt, params, state, grads, lr)
    return np.asarray(params["w"])


@pytest.mark.parametrize("name, reference", [
    ("adam", lambda: optax.chain(optax.clip_by_global_norm(1.0), optax.adam(0.1, eps=1e-5))),
    ("sgd", lambda: optax.chain(optax.clip_by_global_norm(1.0), optax.sgd(0.1))),
    ("rmsprop", lambda: optax.chain(optax.clip_by_global_norm(1.0),
                                    optax.scale_by_rms(decay=0.9, eps=1e-5, eps_in_sqrt=False), optax.scale(-0.1))),
])
def test_optimizer_is_clipping_then_the_named_scaling(name, reference):
    ours = optim.optimizer(name, max_grad_norm=1.0, eps=1e-5, rms_decay=0.9, learning_rate=0.1)
    np.testing.assert_array_equal(_run(ours), _run(reference()))
    # without the step size, apply_gradients takes the step: the same result
    scale_only = optim.optimizer(name, max_grad_norm=1.0, eps=1e-5, rms_decay=0.9)
    np.testing.assert_array_equal(_run(scale_only, lr=0.1), _run(reference()))


def test_apply_gradients_by_hand():
    # plain SGD: theta - lr * g ; Adam's first step: theta - lr * g / (|g| + eps) = theta - lr * sign(g)
    params, grads = jnp.array([1.0, 2.0]), jnp.array([0.5, -4.0])
    sgd = optim.optimizer("sgd")
    new, _ = optim.apply_gradients(sgd, params, sgd.init(params), grads, 0.1)
    np.testing.assert_allclose(new, [0.95, 2.4], rtol=1e-6)
    adam = optim.optimizer("adam")
    new, _ = optim.apply_gradients(adam, params, adam.init(params), grads, 0.1)
    np.testing.assert_allclose(new, [0.9, 2.1], rtol=1e-6)
    with pytest.raises(ValueError, match="adam"):
        optim.optimizer("adagrad")


def test_linear_decay_on_env_steps_by_hand():
    np.testing.assert_allclose(optim.linear_decay(jnp.int32(0), jnp.int32(1000)), 1.0)
    np.testing.assert_allclose(optim.linear_decay(jnp.int32(250), jnp.int32(1000)), 0.75)
    np.testing.assert_allclose(optim.linear_decay(jnp.int32(1000), jnp.int32(1000)), 0.0)
    # uneven batches (an asynchronous worker pool): the position is the env steps, whatever the batch sizes
    steps = np.cumsum([0, 100, 40, 360])
    np.testing.assert_allclose([optim.linear_decay(jnp.int32(s), jnp.int32(1000)) for s in steps],
                               [1.0, 0.9, 0.86, 0.5], rtol=1e-6)
    assert float(optim.linear_decay(jnp.int32(5), jnp.int32(0))) == -4.0  # no division by 0


def test_linear_decay_on_env_steps_equals_the_old_per_update_schedule_bit_for_bit():
    """With equal batches, ``1 - (k b) / (U b)`` is the float32 ``1 - k / U`` of the schedule on update counts it
    replaced (both quotients are correctly rounded values of the same rational): the recorded digests hold."""
    frac = jax.jit(jax.vmap(optim.linear_decay))  # as in the agents: both counters are per-seed state leaves
    for updates, batch in [(20, 256), (125, 40), (97, 8 * 5), (3000, 2048), (611, 1)]:
        k = np.arange(updates + 1, dtype=np.int32)
        old = np.asarray(frac(k, np.full_like(k, updates)))
        new = np.asarray(frac(k * batch, np.full_like(k, updates * batch)))
        np.testing.assert_array_equal(new, old)
        np.testing.assert_array_equal(new, np.float32(1) - k.astype(np.float32) / np.float32(updates))


@struct.dataclass
class _Batch:
    x: jax.Array
    y: jax.Array


@pytest.mark.parametrize("n, n_minibatches, size", [(12, 3, 4), (10, 3, 3), (2, 4, 1)])
def test_minibatch_epochs_visits_each_sample_at_most_once_per_epoch(n, n_minibatches, size):
    batch = _Batch(x=jnp.arange(n, dtype=jnp.float32), y=jnp.arange(n, dtype=jnp.float32) * 10)

    def step(carry, mb):
        np.testing.assert_equal(mb.x.shape, (size,))
        return carry + jnp.sum(mb.x), (mb.x, mb.y)

    total, (xs, ys) = optim.minibatch_epochs(step, jnp.float32(0), batch, jax.random.PRNGKey(0), 2, n_minibatches)
    used = min(n_minibatches, n)
    assert xs.shape == (2, used, size)
    np.testing.assert_array_equal(ys, xs * 10)  # the fields of a sample stay together
    for epoch in np.asarray(xs):
        assert len(set(epoch.ravel().tolist())) == used * size  # no sample twice in an epoch
    if n % n_minibatches == 0:
        np.testing.assert_allclose(total, 2 * np.arange(n).sum())  # every sample once per epoch
    if n >= 10:
        assert not np.array_equal(xs[0], xs[1])  # a new permutation each epoch


def test_minibatch_epochs_permutes_as_the_loop_it_replaced():
    """The same permutations as PPO's and TRPO's former inline epoch loop (same keys, same slicing)."""
    n, n_mb, key = 12, 3, jax.random.PRNGKey(4)
    data = {"a": jnp.arange(n)}
    _, got = optim.minibatch_epochs(lambda c, mb: (c, mb["a"]), 0, data, key, 3, n_mb)
    for i, k in enumerate(jax.random.split(key, 3)):
        perm = jax.random.permutation(k, n)
        np.testing.assert_array_equal(got[i], np.asarray(perm).reshape(n_mb, n // n_mb))


def test_minibatch_epochs_after_epoch_sees_the_carry_at_each_epoch_end():
    data = {"a": jnp.ones(6)}
    _, (outs, after) = optim.minibatch_epochs(lambda c, mb: (c + jnp.sum(mb["a"]), 0), jnp.float32(0), data,
                                              jax.random.PRNGKey(0), 3, 2, after_epoch=lambda c: c * 10)
    assert outs.shape == (3, 2)
    np.testing.assert_allclose(after, [60.0, 120.0, 180.0])  # 6 samples summed per epoch, times 10
