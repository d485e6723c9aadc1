"""Strict numerics for every test (as equinox's conftest): implicit rank promotion
raises, so a silently broadcast shape bug fails loudly."""

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")
