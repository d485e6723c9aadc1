"""The minibatch each step trains on: rows drawn with replacement by a counter-based hash.

Every training program draws its minibatch inside the compiled loop, from the data key
and the global step only (not the chunking, the population or which members a scheduler
kept). ``jax.random.randint(fold_in(key, t), ...)`` did that with threefry, whose code
is the costliest thing in the program to compile on a CPU: a ``fold_in`` plus a
``randint`` compile in 0.5 s alone, and the population's training program holds two
(the loop's step and the block's measured last step). Measured on the 2-core CPU,
jax 0.10.2, softmax on Fashion-MNIST, 256 members: the training program compiled in
2.4 s with threefry and 1.5 s with this draw, which is part of what every cold run,
every refit and every new population width pays.

The draw is a counter-based generator, as threefry is, built from murmur3's 32-bit
finalizer (a bijection of ``uint32`` with full avalanche): the key's words and the
step give the step's seed, and row ``j`` of the batch is
``mix(seed ^ mix(j * golden))`` reduced modulo ``n``. For a fixed step the 32-bit
values are distinct; modulo ``n`` they fall like draws with replacement (the
modulo's bias is under ``n / 2**32``). ``tests/test_minibatch.py`` checks uniformity,
the overlap of consecutive batches and the dependence on key and step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

GOLDEN = 0x9E3779B9  # 2**32 / golden ratio, odd: j -> j * GOLDEN is a bijection


def mix32(h: jax.Array) -> jax.Array:
    """murmur3's finalizer ``fmix32`` on ``uint32`` values (elementwise)."""
    h = h ^ (h >> 16)
    h = h * jnp.uint32(0x85EBCA6B)
    h = h ^ (h >> 13)
    h = h * jnp.uint32(0xC2B2AE35)
    return h ^ (h >> 16)


def step_seed(data_key, t) -> jax.Array:
    """A ``uint32`` seed of global step ``t`` (traced or not) under ``data_key``."""
    h = mix32(jnp.asarray(t).astype(jnp.uint32) * jnp.uint32(GOLDEN))
    for word in jax.random.key_data(data_key).ravel():  # threefry: 2 words, rbg: 4
        h = mix32(h ^ word.astype(jnp.uint32))
    return h


def minibatch_indices(data_key, t, batch_size: int, n_train: int, draw: str = "hash") -> jax.Array:
    """Rows ``int32[batch_size]`` of the minibatch at global step ``t``: drawn with
    replacement, as the lecture's ``np.random.choice(num_train, batch_size)``.

    ``draw`` (``TrainConfig.minibatch``): ``"hash"``, or ``"threefry"``, the
    ``jax.random.randint(fold_in(data_key, t), ...)`` of versions before it, which a
    sweep they stored resumes with (its minibatches stay the ones it started on)."""
    if draw == "threefry":
        return jax.random.randint(jax.random.fold_in(data_key, t), (batch_size,), 0, n_train)
    rows = mix32(jnp.arange(batch_size, dtype=jnp.uint32) * jnp.uint32(GOLDEN))
    return (mix32(step_seed(data_key, t) ^ rows) % jnp.uint32(n_train)).astype(jnp.int32)
