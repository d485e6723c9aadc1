"""The networks every member shares, written with flax for ONE member.

Nothing here knows about populations: the trainer adds the member axis with a single
``jax.vmap``. Because every member sees the same minibatch (``in_axes=None`` for the
data), XLA turns the population's forward pass into one matmul
``[B, D] @ [D, M*K]`` and the weight gradient into another.

Initialisation is small at the output so the initial loss is about ``ln(num_classes)``,
the lecture's first sanity check.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from sweepjax.config import ModelConfig

# Output weights ~ N(0, 1e-3): logits start near zero, so softmax is near uniform and
# the loss near ln(K). (The lecture's "W = 0.001 * randn".)
OUTPUT_INIT_STD = 1e-3


def unitwise(std, axis: int) -> nn.initializers.Initializer:
    """A normal initializer that draws each slice along ``axis`` (one hidden unit) from its
    own key ``fold_in(key, j)``, with standard deviation ``std(shape)``.

    Unit ``j``'s weights then do not depend on how many units the layer has: the first
    ``h`` units of a width-``H`` layer are exactly a width-``h`` layer. That is what lets
    a member with a swept width train masked inside the widest network and still equal
    the same member trained alone, unmasked (``tests/test_axes.py``).
    """

    def init(key, shape, dtype=jnp.float32):
        rest = shape[:axis] + shape[axis + 1 :]
        scale = std(shape)
        draw = jax.vmap(lambda j: jax.random.normal(jax.random.fold_in(key, j), rest, dtype))
        return jnp.moveaxis(draw(jnp.arange(shape[axis])), 0, axis) * scale

    return init


# The MLP's initializers, in the [in, out] shape flax initializers see (fan-in first).
# He for the hidden layer: fan-in is the input width, not the hidden width.
HIDDEN_INIT = unitwise(lambda shape: (2.0 / shape[0]) ** 0.5, axis=1)
READOUT_INIT = unitwise(lambda shape: OUTPUT_INIT_STD, axis=0)


class Dense(nn.Module):
    """A dense layer for one member with its kernel stored ``[out, in]`` (as PyTorch does).

    ``features_first=True`` takes activations as ``[in, B]`` and returns ``[out, B]``:
    ``kernel @ x``. That is how the trainer calls it, because stacked over members an
    ``[out, in]`` kernel is ``[M*K, D]`` in row-major memory, so the population's forward
    pass is the plain matmul ``W[M*K, D] @ x[D, B]`` and its weight gradient
    ``g[M*K, B] @ x[B, D]``: no operand is copied into another layout. The usual
    ``x[B, in] @ W.T`` costs a transposed copy of every kernel at every step (measured on
    the 2-core CPU: 1.6 ms of a 25 ms step at 256 softmax members), and ``[in, out]``
    kernels cost the same on the gradient side. Row ``k`` of a softmax kernel is also
    the class-``k`` template image.
    """

    features: int
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x, features_first: bool = False):
        d_in = x.shape[0] if features_first else x.shape[-1]
        # Initialisers see the [in, out] shape they expect (fan-in first), then transpose.
        kernel = self.param(
            "kernel",
            lambda key, shape: self.kernel_init(key, shape[::-1]).T,
            (self.features, d_in),
        )
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        # Explicit reshapes: the tests run with implicit rank promotion disabled.
        if features_first:
            return kernel @ x + jnp.reshape(bias, (-1,) + (1,) * (x.ndim - 1))
        return x @ kernel.T + jnp.reshape(bias, (1,) * (x.ndim - 1) + (-1,))


class Softmax(nn.Module):
    """The lecture's linear classifier: ``logits = x @ W.T + b``.

    ``x`` is ``[D]`` or ``[B, D]``; with ``features_first=True`` it is ``[D, B]`` and the
    logits come out ``[K, B]`` (the trainer's layout, see :class:`Dense`).
    """

    num_classes: int

    @nn.compact
    def __call__(self, x, features_first: bool = False):
        return Dense(
            self.num_classes,
            kernel_init=nn.initializers.normal(OUTPUT_INIT_STD),
            name="out",
        )(x, features_first)


# The MLP's hidden activations by name (flax's gelu is the tanh approximation).
ACTIVATION_FNS = {"relu": nn.relu, "gelu": nn.gelu, "tanh": jnp.tanh}


class MLP(nn.Module):
    """One hidden ReLU layer (He-initialised), then a small-init linear read-out.

    Same input conventions as :class:`Softmax`. Two per-member options, both traced:

    - ``width``: only units ``j < width`` are active (the others are multiplied by 0):
      a member's own hidden width inside the widest network;
    - ``dropout`` with ``keep_u``: inverted dropout of the hidden units, a unit kept where
      ``keep_u >= dropout`` (``keep_u`` uniform in [0, 1), the layout of the hidden
      activations) and scaled by ``1 / (1 - dropout)``.
    """

    hidden: int
    num_classes: int
    activation: str = "relu"  # relu | gelu | tanh (ModelConfig.activation)

    @nn.compact
    def __call__(
        self,
        x,
        features_first: bool = False,
        *,
        return_hidden: bool = False,
        width=None,
        dropout=None,
        keep_u=None,
    ):
        act = ACTIVATION_FNS[self.activation]
        h = act(Dense(self.hidden, kernel_init=HIDDEN_INIT, name="hidden")(x, features_first))
        unit_axis = 0 if features_first else h.ndim - 1
        shape = [1] * h.ndim
        shape[unit_axis] = self.hidden
        if width is not None:
            units = jnp.reshape(jnp.arange(self.hidden, dtype=jnp.float32), shape)
            h = h * (units < width).astype(h.dtype)
        if dropout is not None and keep_u is not None:
            h = jnp.where(keep_u >= dropout, h / (1.0 - dropout), 0.0)
        logits = Dense(self.num_classes, kernel_init=READOUT_INIT, name="out")(h, features_first)
        return (logits, h) if return_hidden else logits


def build_model(cfg: ModelConfig, num_classes: int) -> nn.Module:
    """The flax module for ``cfg``; ``apply(params, x[D]) -> logits[K]`` for one member."""
    if cfg.kind == "softmax":
        return Softmax(num_classes=num_classes)
    return MLP(hidden=cfg.hidden, num_classes=num_classes, activation=cfg.activation)


def init_params(model: nn.Module, key: jax.Array, num_features: int):
    """Parameters of one member (no batch axis anywhere)."""
    return model.init(key, jnp.zeros((num_features,), jnp.float32))["params"]


def l2_penalty(params) -> jax.Array:
    """``sum(w**2) / 2`` over weight matrices only (biases are not regularised),
    as ``tf.nn.l2_loss`` and the lecture's ``0.5 * reg * sum(W*W)``."""
    leaves = jax.tree_util.tree_leaves_with_path(params)
    kernels = [leaf for path, leaf in leaves if getattr(path[-1], "key", None) == "kernel"]
    return 0.5 * sum(jnp.sum(jnp.square(k)) for k in kernels)
