"""What the trainer asks of a model, for ONE member.

A :class:`Network` gives a member's initial parameters (its weights may depend on its own
hyperparameters: init scale, hidden width), features-first logits ``[K, B]`` of a batch
``x_t[D, B]``, the per-example loss and the L2 penalty. The trainer never looks inside:
the built-in softmax and MLP (:class:`BuiltIn`) and a user's own model
(:mod:`sweepjax.models.custom`) are trained, stored, judged and reported alike.

Networks are hashable (part of the compiled program's static settings): a built-in is
hashed by value, a user's model by identity.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import jax
import jax.numpy as jnp

from sweepjax.models.builtin import MLP, Softmax, init_params, l2_penalty
from sweepjax.models.user_hp import call_loss, loss_takes_hp

# The dropout masks of a step come from this stream of the data key (the minibatch rows
# come from ``fold_in(data_key, t)``): shared by every member, like the minibatch.
DROPOUT_STREAM = 0x5EED


class Network(Protocol):
    """The contract between a model and the trainer (one member, no member axis)."""

    num_classes: int

    def init(self, key: jax.Array, num_features: int, hp) -> Any:
        """Initial parameters; ``hp`` is this member's :class:`~sweepjax.engine.hparams.HParams`
        row (scalars)."""

    def logits_t(self, params, x_t: jax.Array, hp, dropout_key=None) -> jax.Array:
        """Logits ``[K, B]`` of ``x_t[D, B]``; ``dropout_key`` is given at training steps
        only (evaluation is deterministic)."""

    def loss_t(self, logits_t: jax.Array, y: jax.Array) -> jax.Array:
        """Per-example loss ``[B]`` of logits ``[K, B]`` and integer labels ``[B]``."""

    def penalty(self, params) -> jax.Array:
        """The L2 term ``sum(w**2) / 2`` over the weights the network regularises."""


def has_state(net) -> bool:
    """Whether ``net`` keeps model state beside its trained parameters (BatchNorm
    statistics, a member's dropout key): its member tree is then more than what the
    optimizer trains, and it offers ``trainable(tree)``, ``with_trainable(tree, params)``
    and ``train_logits_t(tree, x_t, hp, t) -> (logits_t, tree with new state)``
    (see :class:`sweepjax.models.custom_net.Custom`). The built-ins keep none."""
    return bool(getattr(net, "stateful", False))


def cross_entropy_t(logits_t, y):
    """Per-example cross-entropy of features-first logits ``[K, B]`` and labels ``[B]``."""
    picked = jnp.take_along_axis(logits_t, y[None, :], axis=0)[0]
    return jax.nn.logsumexp(logits_t, axis=0) - picked


def user_loss_t(loss_fn, logits_t, y, hp=None):
    """Per-example loss ``[B]`` of a network whose loss may be the user's ``loss_fn``
    (None: cross-entropy). A loss that takes the member's own hyperparameters gets
    ``hp.user`` at a training step (``hp`` given); evaluation (no ``hp``) scores it as
    cross-entropy, so members trained with different values (a label smoothing) compare
    on one scale."""
    if loss_fn is None:
        return cross_entropy_t(logits_t, y)
    how = loss_takes_hp(loss_fn)
    if how and hp is None:
        return cross_entropy_t(logits_t, y)
    values = None if hp is None else getattr(hp, "user", None)
    return call_loss(loss_fn, how, logits_t.T, y, values)


def scale_kernels(params, scale):
    """Multiply every leaf named ``kernel`` (flax's weight matrices and filters) by
    ``scale``: the init-scale axis (biases start at zero and stay unscaled)."""

    def f(path, leaf):
        return leaf * scale if getattr(path[-1], "key", None) == "kernel" else leaf

    return jax.tree_util.tree_map_with_path(f, params)


def keep_uniform(key, units: int, batch: int) -> jax.Array:
    """``[units, batch]`` uniforms in [0, 1), unit ``j``'s row from ``fold_in(key, j)``:
    like the initial weights (:func:`sweepjax.models.builtin.unitwise`), a unit's dropout draws do
    not depend on the layer's width."""
    return jax.vmap(lambda j: jax.random.uniform(jax.random.fold_in(key, j), (batch,)))(
        jnp.arange(units)
    )


@dataclass(frozen=True)
class BuiltIn:
    """The built-in softmax classifier or one-hidden-layer MLP.

    Attributes:
      kind: ``softmax`` | ``mlp``.
      hidden: the MLP's (widest) hidden width: the compiled program's width.
      num_classes: ``K``.
      width_mask: members have their own hidden widths (``hp.hidden``): units
        ``j >= hp.hidden`` are masked at every step and start (and stay) at zero.
      dropout: apply inverted dropout of rate ``hp.dropout`` to the hidden units at
        training steps.
      loss_fn: the user's per-example loss ``(logits[B, K], labels[B]) -> [B]`` in place
        of cross-entropy (:mod:`sweepjax.models.loss_ref`), as a custom model's.
    """

    kind: str
    hidden: int
    num_classes: int
    width_mask: bool = False
    dropout: bool = False
    activation: str = "relu"  # the MLP's hidden activation (a static choice)
    loss_fn: Callable | None = None

    def module(self):
        if self.kind == "softmax":
            return Softmax(num_classes=self.num_classes)
        return MLP(hidden=self.hidden, num_classes=self.num_classes, activation=self.activation)

    def init(self, key, num_features: int, hp):
        params = scale_kernels(init_params(self.module(), key, num_features), hp.init_scale)
        if self.kind != "mlp":
            return params
        # Units beyond the member's width start at exactly zero. With zero weights in and
        # out a unit's gradient is zero (and so is its L2 term), so it stays zero under
        # SGD, momentum and Adam: the member's penalty, norms and update/weight ratio are
        # those of the narrower network it stands for.
        on = (jnp.arange(self.hidden, dtype=jnp.float32) < hp.hidden).astype(jnp.float32)
        h, o = params["hidden"], params["out"]
        return {
            "hidden": {"kernel": h["kernel"] * on[:, None], "bias": h["bias"] * on},
            "out": {"kernel": o["kernel"] * on[None, :], "bias": o["bias"]},
        }

    def logits_t(self, params, x_t, hp, dropout_key=None):
        module = self.module()
        if self.kind == "softmax":
            return module.apply({"params": params}, x_t, True)
        kw = {}
        if self.width_mask and hp is not None:  # (without hp: masked units are zero anyway)
            kw["width"] = hp.hidden
        if self.dropout and dropout_key is not None:
            kw["dropout"] = hp.dropout
            kw["keep_u"] = keep_uniform(dropout_key, self.hidden, x_t.shape[1])
        return module.apply({"params": params}, x_t, True, **kw)

    def hidden_t(self, params, x_t, hp=None):
        """The MLP's hidden activations ``[H, B]`` (after the ReLU; no dropout)."""
        kw = {"width": hp.hidden} if (self.width_mask and hp is not None) else {}
        return self.module().apply({"params": params}, x_t, True, return_hidden=True, **kw)[1]

    @property
    def loss_takes_hp(self) -> str:
        """How the loss receives the member's own hyperparameters (``""``: it does not)."""
        return loss_takes_hp(self.loss_fn)

    def loss_t(self, logits_t, y, hp=None):
        return user_loss_t(self.loss_fn, logits_t, y, hp)

    def penalty(self, params):
        return l2_penalty(params)
