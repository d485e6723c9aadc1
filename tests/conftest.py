"""Strict numerics for every test (as equinox's conftest): implicit rank promotion
raises, so a silently broadcast shape bug fails loudly."""

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")

# The CLI keeps compiled programs in a persistent cache; tests must not write to the
# user's home, and must measure what they claim without a warm cache.
import os  # noqa: E402

os.environ.setdefault("SWEEPJAX_COMPILE_CACHE", "0")
