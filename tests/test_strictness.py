"""What tests/conftest.py and pyproject.toml promise every test runs under is in force:
implicit rank promotion raises (eagerly and inside jit), float64 is off (JAX's default,
so the engine's float32 numbers are the ones users get), warnings are errors, and the
persistent compile cache is off."""

from __future__ import annotations

import os
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest


def test_rank_promotion_raises_eagerly_and_inside_jit():
    assert jax.config.jax_numpy_rank_promotion == "raise"
    with pytest.raises(ValueError, match="rank_promotion"):
        jnp.ones(3) + jnp.ones((2, 3))
    with pytest.raises(ValueError, match="rank_promotion"):
        jax.jit(lambda a, b: a * b)(jnp.ones(3), jnp.ones((2, 3)))
    # Equal ranks still broadcast, and an explicit reshape is the way to mix ranks.
    assert (jnp.ones((1, 3)) + jnp.ones((2, 3))).shape == (2, 3)
    assert (jnp.ones(3)[None, :] + jnp.ones((2, 3))).shape == (2, 3)


def test_float64_is_off():
    assert not jax.config.jax_enable_x64
    assert jnp.asarray(np.float64(1.5)).dtype == jnp.float32
    assert jax.jit(lambda a: a * 2.0)(np.ones(2, np.float64)).dtype == jnp.float32


def test_warnings_are_errors():
    with pytest.raises(UserWarning, match="loud"):
        warnings.warn("loud", stacklevel=1)


def test_the_persistent_compile_cache_is_off():
    assert os.environ["SWEEPJAX_COMPILE_CACHE"] == "0"
