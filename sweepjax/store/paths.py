"""Where a store keeps its files besides the database: each sweep's report folder,
``<store>-reports/<sweep_id>/`` next to the store. Standard library only, so
``sweepjax watch`` finds reports without importing the trainer."""

from __future__ import annotations

import os
from pathlib import Path


def report_dir(store_path: str | os.PathLike, sweep_id: str) -> Path:
    """Where a sweep's report goes: ``<store>-reports/<sweep_id>/`` next to the store."""
    p = Path(store_path)
    return p.with_name(p.stem + "-reports") / sweep_id
