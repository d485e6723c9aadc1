"""Models: the contract the trainer asks of one member (:mod:`.network`), the built-in
softmax and MLP (:mod:`.builtin`) and the user's own model (:mod:`.custom`,
:mod:`.custom_net`). :func:`build_network` is the one door from a
:class:`~sweepjax.config.ModelConfig` to a :class:`Network`."""

from __future__ import annotations

from sweepjax.config import ModelConfig
from sweepjax.models.custom import resolve
from sweepjax.models.loss_ref import resolve_loss
from sweepjax.models.network import BuiltIn, Network


def build_network(
    cfg: ModelConfig, num_classes: int, width_mask=False, dropout=False, input_shape=None
) -> Network:
    """The :class:`Network` for ``cfg``; ``input_shape`` (the dataset's example shape)
    is what a custom model reshapes each example to (see :mod:`sweepjax.models.custom`)."""
    if cfg.kind in ("softmax", "mlp"):
        return BuiltIn(
            cfg.kind,
            cfg.hidden,
            num_classes,
            bool(width_mask),
            bool(dropout),
            cfg.activation,
            resolve_loss(cfg.loss),
        )
    return resolve(cfg.spec, num_classes, input_shape)


__all__ = ["BuiltIn", "Network", "build_network"]
