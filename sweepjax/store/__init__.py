"""The sweep store: one SQLite file of sweeps, members, curves and checkpoints
(:mod:`.db`), its versioned schema and migrations (:mod:`.schema`), the encoding of
arrays and results (:mod:`.codec`, :mod:`.result_rows`) and activation counts
(:mod:`.activations`)."""

from sweepjax.store.db import DEFAULT_PATH, Store, SweepRow, default_path
from sweepjax.store.schema import SCHEMA_VERSION

__all__ = ["DEFAULT_PATH", "SCHEMA_VERSION", "Store", "SweepRow", "default_path"]
