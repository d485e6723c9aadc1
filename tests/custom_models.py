"""Models the tests name as ``--model tests.custom_models:Name`` (good and bad ones)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import nnx

import sweepjax


class TinyMLP(nn.Module):
    """flatten -> dense ``hidden`` -> ReLU -> dense ``num_classes``."""

    num_classes: int = 4
    hidden: int = 16

    @nn.compact
    def __call__(self, x):
        x = x.reshape((x.shape[0], -1))
        h = nn.relu(nn.Dense(self.hidden, name="hidden")(x))
        return nn.Dense(self.num_classes, name="out")(h)


class ThreeLogits(nn.Module):
    """Always 3 classes, whatever the data has."""

    @nn.compact
    def __call__(self, x):
        return nn.Dense(3)(x.reshape((x.shape[0], -1)))


class WrongShape(nn.Module):
    """Assumes 100 features per example."""

    @nn.compact
    def __call__(self, x):
        return nn.Dense(4)(x.reshape((x.shape[0], 100)))


class NeedsArgs(nn.Module):
    width: int  # no default

    @nn.compact
    def __call__(self, x):
        return nn.Dense(4)(x.reshape((x.shape[0], -1)))


class WithBatchNorm(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.BatchNorm(use_running_average=False)(x.reshape((x.shape[0], -1)))
        return nn.Dense(4)(x)


NOT_A_MODEL = 3


def _init_w(key, x):
    d = x[0].size
    return {"w": 0.01 * jax.random.normal(key, (d, 4)), "b": jnp.zeros(4)}


def _apply_w(p, x):
    return x.reshape((x.shape[0], -1)) @ p["w"] + p["b"][None, :]


def no_kernel():
    """A factory: a Custom whose weights are not named ``kernel``."""
    return sweepjax.Custom(_init_w, _apply_w)


class BNDropMLP(nn.Module):
    """The Flax examples' pattern: BatchNorm (running statistics in eval mode) and dropout,
    switched by a ``train`` flag."""

    num_classes: int = 4
    hidden: int = 16

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = x.reshape((x.shape[0], -1))
        h = nn.Dense(self.hidden, name="hidden")(x)
        h = nn.BatchNorm(use_running_average=not train, momentum=0.9, name="bn")(h)
        h = nn.Dropout(0.2, deterministic=not train)(nn.relu(h))
        return nn.Dense(self.num_classes, name="out")(h)


class NNXBNDrop(nnx.Module):
    """An NNX module as the Flax NNX docs write it: Linear -> BatchNorm -> ReLU ->
    Dropout -> Linear, on flattened examples of ``features`` values."""

    def __init__(self, features=20, num_classes=4, rate=0.2, *, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(features, 16, rngs=rngs)
        self.bn = nnx.BatchNorm(16, momentum=0.9, rngs=rngs)
        self.drop = nnx.Dropout(rate, rngs=rngs)
        self.out = nnx.Linear(16, num_classes, rngs=rngs)

    def __call__(self, x):
        x = x.reshape((x.shape[0], -1))
        return self.out(self.drop(nnx.relu(self.bn(self.hidden(x)))))


def nnx_blobs(rngs: nnx.Rngs):
    """A factory taking ``rngs``: the NNX model for the 8x8 blobs (64 features)."""
    return NNXBNDrop(64, 4, rngs=rngs)


try:  # the optional `equinox` extra
    import equinox as eqx
except ImportError:  # pragma: no cover
    eqx = EqxBNDrop = eqx_blobs = None

if eqx is not None:

    class EqxBNDrop(eqx.Module):
        """An Equinox module as Equinox's docs write it, called on ONE example:
        Linear -> BatchNorm (``eqx.nn.State``) -> ReLU -> Dropout (a ``key``) -> Linear."""

        hidden: eqx.nn.Linear
        bn: eqx.nn.BatchNorm
        drop: eqx.nn.Dropout
        out: eqx.nn.Linear

        def __init__(self, features=20, num_classes=4, rate=0.2, *, key):
            k1, k2 = jax.random.split(key)
            self.hidden = eqx.nn.Linear(features, 16, key=k1)
            self.bn = eqx.nn.BatchNorm(16, axis_name="batch", momentum=0.9, mode="ema")
            self.drop = eqx.nn.Dropout(rate)
            self.out = eqx.nn.Linear(16, num_classes, key=k2)

        def __call__(self, x, state, *, key=None):
            h, state = self.bn(self.hidden(jnp.ravel(x)), state)
            return self.out(self.drop(jax.nn.relu(h), key=key)), state

    def eqx_blobs(*, key):
        """A factory taking ``key``: the Equinox model for the 8x8 blobs (64 features)."""
        return EqxBNDrop(64, 4, key=key)
