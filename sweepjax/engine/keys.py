"""The bits of the run's two root keys, computed on the host.

``fold_in(key(seed), 0)`` and ``fold_in(key(seed), 1)`` (the init and data keys) are a
few dozen integer operations, but as JAX computes them they are a compiled program: on
the 2-core CPU 0.25 s of every cold process (tracing, lowering and compiling Threefry),
and a load from disk in every warm one. Here they are Threefry-2x32 written out in
Python integers, exactly as ``jax._src.random.threefry2x32`` computes it (its unrolled
form), and checked against ``jax.random`` for seeds across the whole 64-bit range
(``tests/test_aot.py``). Where JAX would compute something else (another PRNG
implementation, a seed offset), JAX computes it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from sweepjax.engine import aot

_MASK = 0xFFFFFFFF
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _MASK


def threefry2x32(k0: int, k1: int, x0: int, x1: int) -> tuple[int, int]:
    """Threefry-2x32 (20 rounds) of the counter pair ``(x0, x1)`` under key ``(k0, k1)``."""
    ks = (k0, k1, k0 ^ k1 ^ 0x1BD11BDA)
    x0, x1 = (x0 + ks[0]) & _MASK, (x1 + ks[1]) & _MASK
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x0 = (x0 + x1) & _MASK
            x1 = _rotl(x1, r) ^ x0
        x0 = (x0 + ks[(i + 1) % 3]) & _MASK
        x1 = (x1 + ks[(i + 2) % 3] + i + 1) & _MASK
    return x0, x1


def seed_bits(seed: int) -> tuple[int, int]:
    """``jax.random.key(seed)``'s bits: the seed as JAX's integer type (int32 unless
    64-bit mode), its high and low 32 bits (high: 0 for a 32-bit seed)."""
    arr = _seed_array(seed)
    s = int(arr)
    return ((s >> 32) & _MASK if arr.dtype.itemsize == 8 else 0), s & _MASK


def _seed_array(seed: int) -> np.ndarray:
    """The seed as ``jax.random.key`` makes an array of a Python int: int64, then JAX's
    integer type (int32 unless 64-bit mode)."""
    return np.asarray(np.int64(seed)).astype(jax.dtypes.canonicalize_dtype(np.int64))


def fold_in_bits(key: tuple[int, int], data: int) -> tuple[int, int]:
    """``jax.random.fold_in``'s bits for a key's bits and a 32-bit ``data``."""
    return threefry2x32(key[0], key[1], 0, data & _MASK)


def _on_host() -> bool:
    return jax.config.jax_default_prng_impl == "threefry2x32" and not (
        jax.config.jax_random_seed_offset
    )


def _jax_root_bits(seed):
    root = jax.random.key(seed)
    return jnp.stack([jax.random.key_data(jax.random.fold_in(root, i)) for i in (0, 1)])


def root_bits(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The raw bits (``uint32[2]``) of the init key and the data key derived from the
    one root seed: ``fold_in(key(seed), 0)`` and ``fold_in(key(seed), 1)``."""
    if _on_host():
        root = seed_bits(seed)
        return tuple(np.array(fold_in_bits(root, i), np.uint32) for i in (0, 1))
    bits = np.asarray(aot.call("keys", _jax_root_bits, (_seed_array(seed),)))
    return bits[0], bits[1]
