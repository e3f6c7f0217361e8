r"""Optimisers, the step size schedule, and the minibatch-epoch loop.

* :func:`optimizer` — global-norm gradient clipping, then Adam's, RMSprop's or plain SGD's
  scaling, as one ``optax`` chain;
* :func:`decays` / :func:`decay_weights` — which parameters a decoupled weight decay shrinks (the weight
  matrices), and that shrink as a plain step (for updates that use no optimiser);
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

from advantage.config import is_concrete

__all__ = [
    "OPTIMIZERS",
    "optimizer",
    "decays",
    "decay_weights",
    "apply_gradients",
    "linear_decay",
    "minibatch_epochs",
]

#: The names :func:`optimizer` accepts.
OPTIMIZERS = ("adam", "rmsprop", "sgd")


#: The parameter names a weight decay shrinks: Flax ``Dense`` / ``nets.offpolicy.Linear`` weight matrices and the
#: linear heads' ``w`` (``nets/linear.py``). Biases, LayerNorm scales and offsets, log-stds and SAC's log-alpha
#: are left alone.
DECAYED_NAMES = ("kernel", "w")


def decays(path) -> bool:
    """Whether a parameter at ``path`` (a ``jax.tree_util`` key path) is a weight matrix a weight decay shrinks."""
    last = path[-1] if path else None
    return getattr(last, "key", getattr(last, "name", None)) in DECAYED_NAMES


def _no_decay(weight_decay) -> bool:
    """A weight decay that is the number 0 (not a traced value): the optimiser is left exactly as it was."""
    return weight_decay is None or (is_concrete(weight_decay) and weight_decay == 0)


def _add_decay(updates, params, weight_decay):
    """``u + lambda * theta`` on the weight matrices (:func:`decays`), ``u`` elsewhere."""
    return jax.tree_util.tree_map_with_path(
        lambda path, u, p: u + weight_decay * p if decays(path) else u, updates, params
    )


def decay_weights(params, weight_decay, step_size):
    r"""Decoupled weight decay as a step of its own, :math:`\theta \leftarrow \theta - \alpha\lambda\theta`
    on the weight matrices (:func:`decays`), for updates that use no optimiser (AC(lambda)'s trace step);
    ``params`` unchanged when ``weight_decay`` is the number 0."""
    if _no_decay(weight_decay):
        return params
    return jax.tree_util.tree_map_with_path(
        lambda path, p: p - step_size * weight_decay * p if decays(path) else p, params
    )


def _with_weight_decay(parts: list, at: int, weight_decay) -> optax.GradientTransformation:
    r"""``optax.chain(*parts)`` with :math:`\lambda\theta` added to the updates before ``parts[at]`` (at the end
    when ``at == len(parts)``). The state is exactly the chain's (the decay keeps none), so an optimiser state
    made without the decay (an ``init`` with a weight decay of 0) serves an update with one (a traced 0 in a
    sweep), and a checkpoint does not depend on it."""
    single = len(parts) == 1
    inner = parts[0] if single else optax.chain(*parts) if parts else optax.identity()

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("optimizer: a weight decay needs the parameters; call opt.update(grads, state, params)")
        states = (state,) if single else tuple(state)
        new_states = []
        for i, (part, s) in enumerate(zip(parts, states)):
            if i == at:
                updates = _add_decay(updates, params, weight_decay)
            updates, s = part.update(updates, s, params)
            new_states.append(s)
        if at == len(parts):
            updates = _add_decay(updates, params, weight_decay)
        if not parts:
            return updates, state
        return updates, (new_states[0] if single else tuple(new_states))

    return optax.GradientTransformation(inner.init, update)


def optimizer(
    name: str = "adam",
    *,
    max_grad_norm=None,
    eps: float = 1e-8,
    rms_decay: float = 0.99,
    learning_rate=None,
    weight_decay=0.0,
) -> optax.GradientTransformation:
    r"""``clip_by_global_norm(max_grad_norm)`` (unless ``None``), then the scaling of ``name``:

    * ``adam`` — Kingma & Ba (2015), :math:`\hat m / (\sqrt{\hat v} + \epsilon)`, betas 0.9 / 0.999;
    * ``rmsprop`` — as in PyTorch, Stable-Baselines3 and A3C: :math:`g / (\sqrt{E[g^2]} + \epsilon)`,
      ``E[g^2]`` starting at 0 with decay ``rms_decay``, no momentum;
    * ``sgd`` — the gradient itself.

    With ``learning_rate`` the chain ends with the step :math:`-\alpha\,\cdot` (``optax.adam(lr)``
    and ``optax.sgd(lr)`` are such chains); without it, it only scales, and the caller takes the
    step with :func:`apply_gradients`.

    With ``weight_decay`` :math:`\lambda \ne 0`, :math:`\lambda\theta` is added to the scaled update of every
    weight matrix (:func:`decays`: not the biases, norm parameters or log-stds) before the step size, so the
    step is :math:`\theta \leftarrow \theta - \alpha(\text{opt}(g) + \lambda\theta)`: *decoupled* weight decay
    (Loshchilov & Hutter 2019, Algorithm 2; ``optax.adamw`` and PyTorch's ``AdamW`` with a mask), which, unlike
    an L2 term in the loss, is not divided by Adam's :math:`\sqrt{\hat v}` and is not clipped. An annealed
    step size anneals it too. The state is the same with and without it; with the number 0 the chain is
    exactly the one without.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer: name must be one of {OPTIMIZERS}, got {name!r}")
    parts = [] if max_grad_norm is None else [optax.clip_by_global_norm(max_grad_norm)]
    if name == "adam":
        parts.append(optax.scale_by_adam(eps=eps))
    elif name == "rmsprop":
        parts.append(optax.scale_by_rms(decay=rms_decay, eps=eps, eps_in_sqrt=False))
    at = len(parts)  # the decay joins after the scaling, before the step size
    if learning_rate is not None:
        parts.append(optax.scale_by_learning_rate(learning_rate))
    if not _no_decay(weight_decay):
        return _with_weight_decay(parts, at, weight_decay)
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
