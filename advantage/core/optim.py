r"""Optimisers, the step size schedule, and the minibatch-epoch loop.

* :func:`optimizer` — global-norm gradient clipping, then Adam's, RMSprop's or plain SGD's
  scaling, as one ``optax`` chain;
* :func:`apply_gradients` — one step ``theta <- theta - lr * opt(g)`` with the step size applied
  by hand, so that it may be annealed (or be a traced hyperparameter a sweep vmaps over);
* :func:`linear_decay` — the linear annealing factor over the run, on **env steps**;
* :func:`minibatch_epochs` — shuffle a flat batch, split it into minibatches, ``scan`` a step
  over them, for a number of epochs (PPO's update, TRPO's critic).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

__all__ = ["OPTIMIZERS", "optimizer", "apply_gradients", "linear_decay", "minibatch_epochs"]

#: The names :func:`optimizer` accepts.
OPTIMIZERS = ("adam", "rmsprop", "sgd")


def optimizer(
    name: str = "adam", *, max_grad_norm=None, eps: float = 1e-8, rms_decay: float = 0.99, learning_rate=None
) -> optax.GradientTransformation:
    r"""``clip_by_global_norm(max_grad_norm)`` (unless ``None``), then the scaling of ``name``:

    * ``adam`` — Kingma & Ba (2015), :math:`\hat m / (\sqrt{\hat v} + \epsilon)`, betas 0.9 / 0.999;
    * ``rmsprop`` — as in PyTorch, Stable-Baselines3 and A3C: :math:`g / (\sqrt{E[g^2]} + \epsilon)`,
      ``E[g^2]`` starting at 0 with decay ``rms_decay``, no momentum;
    * ``sgd`` — the gradient itself.

    With ``learning_rate`` the chain ends with the step :math:`-\alpha\,\cdot` (``optax.adam(lr)``
    and ``optax.sgd(lr)`` are such chains); without it, it only scales, and the caller takes the
    step with :func:`apply_gradients`.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer: name must be one of {OPTIMIZERS}, got {name!r}")
    parts = [] if max_grad_norm is None else [optax.clip_by_global_norm(max_grad_norm)]
    if name == "adam":
        parts.append(optax.scale_by_adam(eps=eps))
    elif name == "rmsprop":
        parts.append(optax.scale_by_rms(decay=rms_decay, eps=eps, eps_in_sqrt=False))
    if learning_rate is not None:
        parts.append(optax.scale_by_learning_rate(learning_rate))
    if not parts:  # sgd, without clipping or a step size
        return optax.identity()
    return parts[0] if len(parts) == 1 else optax.chain(*parts)


def apply_gradients(opt: optax.GradientTransformation, params, opt_state, grads, learning_rate):
    r"""One step :math:`\theta \leftarrow \theta - \alpha\,u`, :math:`(u, s') = \text{opt}(g, s)`, with
    :math:`\alpha` = ``learning_rate`` applied here (``opt`` only scales). Returns ``(params, opt_state)``."""
    updates, opt_state = opt.update(grads, opt_state, params)
    return optax.apply_updates(params, jax.tree.map(lambda u: -learning_rate * u, updates)), opt_state


def linear_decay(env_steps, total_steps):
    r"""Linear annealing factor :math:`1 - n / N` from 1 at the start to 0 at the end of the run.

    ``n`` = ``env_steps`` the agent has been updated on so far, ``N`` = ``total_steps`` of the run's
    budget (per seed): a schedule on env steps anneals the same whether the updates come in
    equal batches or, from a pool of asynchronous workers, in uneven ones. Both are integers;
    the quotient is float32, correctly rounded.
    """
    return 1.0 - env_steps / jnp.maximum(total_steps, 1)


def minibatch_epochs(
    step: Callable, carry, batch, key, n_epochs: int, n_minibatches: int, after_epoch: Callable | None = None
):
    """``n_epochs`` passes over ``batch``, each a ``lax.scan`` of ``step(carry, minibatch) -> (carry, out)``
    over ``n_minibatches`` minibatches of a fresh permutation.

    ``batch`` is a pytree (a ``flax.struct`` dataclass) of ``[N, ...]`` arrays; each epoch draws its
    permutation from its own key of ``jax.random.split(key, n_epochs)``. When ``N`` is not a
    multiple of the minibatch count the permutation's tail is left out of that epoch, and when
    ``N < n_minibatches`` (a short final rollout) there are ``N`` minibatches of one sample.
    Returns ``(carry, outs)`` with ``outs`` stacked ``[n_epochs, n_minibatches, ...]``; with
    ``after_epoch(carry) -> out`` (a diagnostic, e.g. the ratios after each epoch), ``(carry, (outs,
    after))`` with ``after`` stacked ``[n_epochs, ...]``.
    """
    n = jax.tree.leaves(batch)[0].shape[0]
    n_minibatches = min(n_minibatches, n)
    mb_size = n // n_minibatches

    def epoch(carry, epoch_key):
        perm = jax.random.permutation(epoch_key, n)[: n_minibatches * mb_size]
        minibatches = jax.tree.map(lambda x: x[perm].reshape((n_minibatches, mb_size) + x.shape[1:]), batch)
        carry, outs = jax.lax.scan(step, carry, minibatches)
        return carry, (outs if after_epoch is None else (outs, after_epoch(carry)))

    return jax.lax.scan(epoch, carry, jax.random.split(key, n_epochs))
