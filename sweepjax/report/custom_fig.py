"""The first-layer weights of a user's own model (:mod:`sweepjax.models.custom`) as images.

The built-in models' weights have known names (:func:`figures.weight_images`); a user's
model is searched for a first layer instead: a dense ``kernel [D, F]`` on the flattened
example (``D`` its size), whose columns are drawn as ``F`` images, or a convolution
``kernel [kh, kw, C, F]`` on the data's ``C`` channels, drawn as ``F`` filters (averaged
over channels). Equinox's layouts, ``[F, D]`` and ``[F, C, kh, kw]`` (its ``weight``
leaves, named ``kernel`` by :mod:`sweepjax.models.eqx_net`), are read too. Anything
else has no picture (``None``). Plain arrays in, a ``Figure``
out, no pyplot; weight panels carry ``gid="weights"``.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

from sweepjax.report.network_fig import feature_weights, is_tabular


def _kernels(tree, path=()):
    """``(path, array)`` of every leaf named ``kernel``, in sorted key order."""
    if isinstance(tree, dict):
        for k in sorted(tree, key=str):
            yield from _kernels(tree[k], (*path, str(k)))
    elif path and path[-1] == "kernel":
        yield path, np.asarray(tree, np.float32)


def first_layer(params, input_shape) -> tuple[str, np.ndarray] | None:
    """``(layer name, images [F, h, w])`` of the first layer that reads the examples
    directly, or None."""
    if not input_shape:
        return None
    shape = tuple(int(v) for v in input_shape)
    d = math.prod(shape)
    channels = shape[-1] if len(shape) == 3 else 1
    h, w = (shape[0], d // shape[0]) if len(shape) >= 2 else _square(d)
    for path, k in _kernels(params):
        name = "/".join(path[:-1]) or "kernel"
        if k.ndim == 2 and k.shape[0] == d:  # flax Dense: [D, F]
            return name, k.T.reshape(k.shape[1], h, w)
        if k.ndim == 2 and k.shape[1] == d:  # Equinox Linear: [F, D]
            return name, k.reshape(k.shape[0], h, w)
        if k.ndim == 4 and k.shape[2] == channels:  # flax Conv: [kh, kw, C, F]
            return name, np.moveaxis(k.mean(axis=2), -1, 0)
        if k.ndim == 4 and k.shape[1] == channels:  # Equinox Conv2d: [F, C, kh, kw]
            return name, k.mean(axis=1)
    return None


def _square(d: int) -> tuple[int, int]:
    s = math.isqrt(d)
    return (s, s) if s * s == d else (1, d)


def first_layer_images(params, input_shape, max_units: int = 36) -> Figure | None:
    """The winner's first-layer weights as images (see the module docstring), each
    panel with its own symmetric color scale (red +, blue -); None when no layer fits.
    Tabular data (``input_shape`` ``[D]``): the dense layer's units as one chart of
    weights per feature instead (:func:`network_fig.feature_weights`)."""
    if is_tabular(input_shape):
        d = int(input_shape[0])
        for path, k in _kernels(params):
            if k.ndim == 2 and d in k.shape:  # [D, F] (flax) or [F, D] (Equinox)
                w = (k.T if k.shape[0] == d else k)[:max_units]
                name = "/".join(path[:-1]) or "kernel"
                return feature_weights(
                    w,
                    [f"unit {i}" for i in range(len(w))],
                    f"winner's first-layer weights per feature: {len(w)} units of {name}",
                )
        return None
    found = first_layer(params, input_shape)
    if found is None:
        return None
    name, imgs = found
    imgs = imgs[:max_units]
    cols = min(len(imgs), 9)
    rows = math.ceil(len(imgs) / cols)
    fig = Figure(figsize=(1.0 * cols, 1.15 * rows + 0.4), dpi=100)
    for i, img in enumerate(imgs):
        ax = fig.add_subplot(rows, cols, i + 1)
        v = float(np.abs(img).max()) or 1.0
        ax.imshow(img, cmap="RdBu_r", vmin=-v, vmax=v, gid="weights", interpolation="nearest")
        ax.set_axis_off()
        ax.set_title(f"unit {i}", fontsize=7, pad=2)
    fig.suptitle(f"winner's first-layer weights: {len(imgs)} units of {name}", fontsize=10)
    return fig
