"""One member: its state, objective, learning-rate schedule, step and evaluation.

Everything here is written for ONE model with no member axis; the population axis is
added in exactly one place, :func:`sweepjax.engine.program.over_members`. Shapes: ``B``
batch, ``D`` features, ``K`` classes.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from sweepjax.engine import optimizers
from sweepjax.engine.hparams import HParams
from sweepjax.engine.minibatch import minibatch_indices
from sweepjax.errors import ConfigError
from sweepjax.metric import ACCURACY, Metric
from sweepjax.models.network import DROPOUT_STREAM, Network, has_state


class Health(NamedTuple):
    """Whether a member still trains. A diverged member is frozen (never updated again)."""

    alive: jax.Array  # bool
    diverged_at: jax.Array  # int32 step at which it diverged, -1 if alive
    initial_loss: jax.Array  # float32 loss of the first minibatch (the "original cost")


class Best(NamedTuple):
    """The best-checkpoint choice: the parameters at the member's best validation
    score so far (measured on the trainer's validation subset), best in the metric's
    direction (``Static.metric``)."""

    acc: jax.Array  # float32 the metric's value (accuracy, or an MSE: lower is better)
    step: jax.Array  # int32 steps completed when ``acc`` was reached
    params: Any


class MemberState(NamedTuple):
    """The training state of one member (the trainer stacks ``[M]`` on every leaf).

    ``params`` is the member's whole model tree. For a model with state
    (:func:`sweepjax.models.network.has_state`: a linen module's ``batch_stats``, the
    member's dropout key) that is its variables, of which only ``net.trainable(params)``
    is optimised; the state rides in the same tree so the best checkpoint, the store,
    resume, compaction and the winner's test accuracy keep each weight with the
    statistics it was trained with, with no second tree to keep in step."""

    params: Any
    opt_state: Any
    health: Health
    best: Best


class EvalMetrics(NamedTuple):
    """One evaluation of one member (stacked to ``[M, E]`` in ``Curves``)."""

    train_loss: jax.Array  # mean minibatch objective (data loss + L2) over the block
    val_loss: jax.Array  # mean cross-entropy on the validation subset
    val_acc: jax.Array
    train_acc: jax.Array  # mean accuracy on the block's minibatches (before each update)
    update_ratio: jax.Array  # ||update|| / ||params|| at the block's last step


class Static(NamedTuple):
    """What one member's functions need to know statically (hashable)."""

    network: Network
    optimizer: str
    batch_size: int
    explode_factor: float
    # K-fold cross-validation: each member skips the rows of its held-out fold (per-row
    # weights on the shared minibatch) and is evaluated on that fold only.
    folds: bool = False
    # The population's layout (program.over_members): 0 vmaps every member at once; k > 0
    # loops over the members k at a time inside the program (a convolutional custom
    # model: see setup.static).
    member_batch: int = 0
    # The chunk as host-driven steps (program.compiled_steps): each step of each member is
    # one call of one compiled program, dispatched without waiting (setup.static).
    host_steps: bool = False
    # What members are scored by (sweepjax.metric) and, for real-valued targets (a
    # regression), their training mean and std: the model learns the standardised
    # targets (its loss is the squared error in those units, so the default boxes, the
    # initial-loss checks and the divergence rule see unit-scale targets whatever the
    # data's units) and is scored on ``mean + std * output``, in the data's units.
    metric: Metric = ACCURACY
    target: tuple[float, float] | None = None
    minibatch: str = "hash"  # how a step draws its rows (sweepjax.engine.minibatch)

    @property
    def task(self) -> Task:
        return Task(self.metric, self.target)


class Task(NamedTuple):
    """What a member's outputs are scored against: the metric and, for real targets,
    their ``(mean, std)`` (:class:`Static`)."""

    metric: Metric = ACCURACY
    target: tuple[float, float] | None = None

    def first_best(self) -> float:
        """The best checkpoint's score before any evaluation: accuracy's 0, else the
        worst value in the metric's direction (so the first evaluation is better)."""
        if self.metric.binomial:
            return 0.0
        return -jnp.inf if self.metric.higher_is_better else jnp.inf


def loss_and_values(net: Network, logits_t, y, task: Task | None, hp: HParams | None = None):
    """Per-example loss and metric values ``[B]`` of features-first outputs ``[K, B]``.

    Classes: the network's loss (cross-entropy or the user's) and the metric. Real
    targets: the squared error against the standardised targets (or the user's loss on
    them), and the metric of the outputs mapped back to the targets' units. ``hp`` is
    given at training steps: a user's loss that takes them gets the member's own
    hyperparameters (:func:`training_loss`)."""
    if task is None:
        task = Task()
    if logits_t.ndim == 1:  # a one-output model returning [B] (a regression's)
        logits_t = logits_t[None, :]
    if task.target is None:
        return training_loss(net, logits_t, y, hp), task.metric.values_t(logits_t, y)
    mean, scale = task.target
    z = (y - mean) / scale
    if getattr(net, "loss_fn", None) is not None:
        loss = training_loss(net, logits_t, z, hp)
    else:
        loss = jnp.square(logits_t[0] - z)
    return loss, task.metric.values_t(logits_t * scale + mean, y)


def training_loss(net: Network, logits_t, y, hp: HParams | None = None):
    """Per-example loss ``[B]``: at a training step (``hp`` given) a user's loss that
    takes them gets the member's own hyperparameters (``hp.user``); evaluation calls
    ``net.loss_t(logits_t, y)``."""
    if hp is not None and getattr(net, "loss_takes_hp", ""):
        return net.loss_t(logits_t, y, hp)
    return net.loss_t(logits_t, y)


def direction(optimizer: str, momentum) -> optax.GradientTransformation:
    """The optimizer without its learning rate; the (traced, per-member, scheduled) rate
    multiplies its output, so one program serves every learning rate. ``momentum`` (the
    trace decay, or Adam's ``b1``) may be traced too: it is the member's ``hp.momentum``."""
    if optimizer == "sgd":
        return optax.identity()
    if optimizer == "momentum":
        return optax.trace(decay=momentum)
    return optax.scale_by_adam(b1=momentum)


def lr_multiplier(t, horizon, floor):
    """Cosine from 1 at step 0 to ``floor`` at step ``horizon`` (held after it).

    Relative to the run, not to an epoch: the same ``floor`` means the same schedule on
    3,600 and on 54,000 training examples, and half of the run is spent above
    ``(1 + floor) / 2`` of the base rate, so no member idles at a rate near 0.
    ``floor = 1`` is a constant rate.
    """
    frac = jnp.minimum(
        jnp.asarray(t, jnp.float32) / jnp.maximum(jnp.asarray(horizon, jnp.float32), 1.0), 1.0
    )
    return floor + (1.0 - floor) * 0.5 * (1.0 + jnp.cos(jnp.pi * frac))


def objective(params, x, y, hp: HParams, net: Network, dropout_key=None, task=None):
    """Mean loss + ``hp.l2 * sum(w**2)/2`` for one member on a batch ``x[B, D]``.

    The network runs features-first (``x.T``, see :class:`sweepjax.models.builtin.Dense`): the
    transpose is of the shared minibatch, once per step, not of any member's weights.
    """
    return objective_and_accuracy(params, x, y, hp, net, None, dropout_key, task)[0]


def objective_and_accuracy(
    params, x, y, hp: HParams, net: Network, w=None, dropout_key=None, task: Task | None = None
):
    """:func:`objective` and, as a free by-product of the same logits, the minibatch's
    accuracy, or ``task``'s metric (what Keras reports as training accuracy: no extra
    pass over the data).

    ``w[B]`` (0 or 1): the rows this member may see (folds); both means are then over
    those rows only, so a row of weight 0 contributes nothing to the loss or gradient.
    """
    logits_t = net.logits_t(params, x.T, hp, dropout_key)
    ce, correct = loss_and_values(net, logits_t, y, task, hp)
    if w is None:
        return ce.mean() + hp.l2 * net.penalty(params), correct.mean()
    n = jnp.maximum(jnp.sum(w), 1.0)
    return jnp.sum(w * ce) / n + hp.l2 * net.penalty(params), jnp.sum(w * correct) / n


def stateful_objective(trained, tree, x, y, hp: HParams, net: Network, t, task=None):
    """:func:`objective_and_accuracy` of a model with state, differentiated in its
    trained parameters ``trained`` only: the forward pass runs in training mode (batch
    statistics, the member's dropout stream at step ``t``) and returns, beside the
    accuracy, the member's ``tree`` with its state updated."""
    logits_t, new_tree = net.train_logits_t(net.with_trainable(tree, trained), x.T, hp, t)
    ce, correct = loss_and_values(net, logits_t, y, task, hp)
    loss = ce.mean() + hp.l2 * net.penalty(trained)
    return loss, (correct.mean(), jax.lax.stop_gradient(new_tree))


def loss_and_accuracy(
    params, xs, ys, ms, net: Network, hp: HParams | None = None, task: Task | None = None
):
    """Mean loss and accuracy (or ``task``'s metric) of one member's ``params`` over
    sliced, masked data (``xs[S, D, rows]`` features-first, ``ys`` and ``ms``
    ``[S, rows]``), and the metric's mean square (its SE's second moment; accuracy's
    equals its mean)."""

    def body(acc, slc):
        x_t, y, m = slc
        logits_t = net.logits_t(params, x_t, hp)
        ce, correct = loss_and_values(net, logits_t, y, task)
        sums = (acc[0] + jnp.sum(ce * m), acc[1] + jnp.sum(correct * m))
        return (*sums, acc[2] + jnp.sum(jnp.square(correct) * m)), None

    (ce_sum, correct, sq), _ = jax.lax.scan(body, (0.0, 0.0, 0.0), (xs, ys, ms))
    n = jnp.maximum(jnp.sum(ms), 1.0)  # a member's fold may miss a small subset
    return ce_sum / n, correct / n, sq / n


def init(member_key, hp: HParams, num_features: int, static: Static) -> MemberState:
    """Initial state of one member: weights from ``member_key``, scaled by
    ``hp.init_scale`` (and masked to ``hp.hidden`` units) by the network."""
    net = static.network
    params = net.init(member_key, num_features, hp)
    trained = net.trainable(params) if has_state(net) else params
    if optimizers.is_factory(static.optimizer):  # a user's optax factory, traced values
        opt_state = optimizers.init(static.optimizer, hp, trained)
    else:
        opt_state = direction(static.optimizer, hp.momentum).init(trained)
    return MemberState(
        params=params,
        opt_state=opt_state,
        health=Health(
            alive=jnp.array(True),
            diverged_at=jnp.array(-1, jnp.int32),
            initial_loss=jnp.array(jnp.nan, jnp.float32),
        ),
        best=Best(
            acc=jnp.array(static.task.first_best(), jnp.float32),
            step=jnp.array(0, jnp.int32),
            params=params,
        ),
    )


class Own(NamedTuple):
    """One member's own inputs to a step: ``program.over_members`` maps it (the
    population stacks ``[M]`` on every leaf)."""

    state: MemberState
    hp: HParams
    fold: jax.Array  # int32 held-out fold (ignored without folds)
    born: jax.Array  # int32 global step at which the member started


class Shared(NamedTuple):
    """What every member's step shares: ``program.over_members`` closes over it."""

    x_train: jax.Array  # [N, D]
    y_train: jax.Array  # [N]
    fold_train: jax.Array  # [N] int32 fold of each training row
    t: jax.Array  # int32 global step
    horizon: jax.Array  # int32 steps of the run (the learning-rate schedule's length)
    data_key: jax.Array  # the minibatch and dropout key


class StepMetrics(NamedTuple):
    """One step of one member: minibatch objective and accuracy (0 once diverged), and
    the update/weight ratio (0 unless measured)."""

    loss: jax.Array
    acc: jax.Array
    update_ratio: jax.Array


def step(
    own: Own, shared: Shared, static: Static, measure: bool = False
) -> tuple[MemberState, StepMetrics]:
    """One SGD/momentum/Adam step of one member at global step ``shared.t`` of a
    ``shared.horizon``-step run (the learning-rate schedule's length).

    ``own.born`` (int32) is the global step at which the member started (0 for a
    population that starts together; an ASHA refill starts later). Its schedule, its
    "original cost" and its divergence step follow its own age ``t - born``; the
    minibatch follows the global step, so it stays the population's.

    With ``static.folds`` the member holds out fold ``own.fold`` (int32): minibatch rows
    whose ``fold_train`` equals it get weight 0 (the minibatch stays the population's).

    The update/weight ratio is measured only when ``measure`` (the last step of an
    evaluation block): it needs the update tensor materialised, which the ordinary step
    fuses away.
    """
    s, hp, t, data_key = own.state, own.hp, shared.t, shared.data_key
    # Same indices for every member: t and data_key carry no member axis, so the gather
    # and the matmuls are shared across the population (so are the dropout draws).
    n_train = shared.x_train.shape[0]
    idx = minibatch_indices(data_key, t, static.batch_size, n_train, static.minibatch)
    x, y = shared.x_train[idx], shared.y_train[idx]
    w = (shared.fold_train[idx] != own.fold).astype(jnp.float32) if static.folds else None
    net = static.network
    if has_state(net):
        if static.folds:
            raise ConfigError(
                "--folds cannot train a model with BatchNorm statistics (held-out rows "
                "would enter the batch statistics); use a validation split instead"
            )
        trained = net.trainable(s.params)
        (loss, (acc, tree)), grads = jax.value_and_grad(stateful_objective, has_aux=True)(
            trained, s.params, x, y, hp, net, t, static.task
        )
    else:
        trained = tree = s.params
        drop_key = jax.random.fold_in(jax.random.fold_in(data_key, DROPOUT_STREAM), t)
        (loss, acc), grads = jax.value_and_grad(objective_and_accuracy, has_aux=True)(
            s.params, x, y, hp, net, w, drop_key, static.task
        )
    if optimizers.is_factory(static.optimizer):  # the rate is one of its traced values
        age = t - own.born
        lr_t = hp.lr * lr_multiplier(age, shared.horizon, hp.lr_decay)
        updates, opt_state = optimizers.update(
            static.optimizer, hp, lr_t, grads, s.opt_state, trained
        )
    else:  # the built-ins, exactly as recorded (tests/test_loop_reference.py)
        tx = direction(static.optimizer, hp.momentum)
        d, opt_state = tx.update(grads, s.opt_state, trained)
        age = t - own.born
        lr_t = hp.lr * lr_multiplier(age, shared.horizon, hp.lr_decay)
        updates = jax.tree.map(lambda g: -lr_t * g, d)
    new_trained = optax.apply_updates(trained, updates)
    new_params = net.with_trainable(tree, new_trained) if has_state(net) else new_trained

    h = s.health
    initial = jnp.where(age == 0, loss, h.initial_loss)
    exploded = ~jnp.isfinite(loss) | (loss > static.explode_factor * initial)
    alive = h.alive & ~exploded
    ratio = (
        optax.global_norm(updates) / (optax.global_norm(trained) + 1e-12)
        if measure
        else jnp.zeros((), jnp.float32)
    )
    # Frozen once diverged: keep the old values, so a NaN never spreads further.
    keep = lambda new, old: jnp.where(alive, new, old)  # noqa: E731
    s = s._replace(
        params=jax.tree.map(keep, new_params, s.params),
        opt_state=jax.tree.map(keep, opt_state, s.opt_state),
        health=Health(alive, jnp.where(h.alive & exploded, age, h.diverged_at), initial),
    )
    return s, StepMetrics(jnp.where(alive, loss, 0.0), jnp.where(alive, acc, 0.0), ratio)


def fold_mask(ms, fs, fold, static: Static):
    """The evaluation rows of one member: every real row, or with ``static.folds`` the
    rows of its held-out fold (``fs == fold``)."""
    return ms * (fs == fold).astype(ms.dtype) if static.folds else ms


class Block(NamedTuple):
    """One member at the end of an evaluation block: ``program.over_members`` maps it."""

    own: Own  # its state after the block's last step
    train_loss: jax.Array  # the block's running mean minibatch objective
    train_acc: jax.Array  # the block's running mean minibatch accuracy
    update_ratio: jax.Array  # measured at the block's last step


class Evaluation(NamedTuple):
    """What every member's evaluation shares: ``program.over_members`` closes over it."""

    val: Any  # ``(xs, ys, ms, fs)`` validation slices (``program.Slices``)
    end: jax.Array  # int32 global steps completed at the block's end


def record_evaluation(
    block: Block, shared: Evaluation, static: Static
) -> tuple[MemberState, EvalMetrics]:
    """Evaluate one member after the block on the validation subset ``shared.val`` (with
    folds, its held-out fold's rows of it) and keep its best parameters, with the steps
    it has trained (``end - born``) as their step.

    Returns the new state and :class:`EvalMetrics` (NaN once diverged).
    """
    s, hp, fold = block.own.state, block.own.hp, block.own.fold
    done = shared.end - block.own.born
    xs, ys, ms, fs = shared.val
    val_loss, val_acc, _ = loss_and_accuracy(
        s.params, xs, ys, fold_mask(ms, fs, fold, static), static.network, hp, static.task
    )
    orient = static.metric.orient  # the best in the metric's direction
    better = s.health.alive & (orient(val_acc) > orient(s.best.acc))
    s = s._replace(
        best=Best(
            acc=jnp.where(better, val_acc, s.best.acc),
            step=jnp.where(better, done, s.best.step),
            params=jax.tree.map(lambda p, b: jnp.where(better, p, b), s.params, s.best.params),
        )
    )
    nan = jnp.float32(jnp.nan)
    metrics = EvalMetrics(
        *(
            jnp.where(s.health.alive, v, nan)
            for v in (block.train_loss, val_loss, val_acc, block.train_acc, block.update_ratio)
        )
    )
    return s, metrics
