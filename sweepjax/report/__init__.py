"""The command center: a self-contained HTML report of a sweep, plus its PNGs.

Entry point: :func:`write_report`. Figures are in :mod:`sweepjax.report.figures` (and the
modules it names), the sections on every swept axis and on the network's insides in
:mod:`sweepjax.report.panels`, the page in :mod:`sweepjax.report.html`. The report reads
a ``SweepResult`` (from the flows or the store) and never trains or touches the store.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before anything imports pyplot; the report never opens windows

from sweepjax.report import sections  # noqa: E402
from sweepjax.report.html import render  # noqa: E402
from sweepjax.report.members import chosen_members  # noqa: E402
from sweepjax.report.panels import hidden_unit_stats  # noqa: E402

__all__ = ["chosen_members", "hidden_unit_stats", "write_report"]


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi, bbox_inches="tight")
    return buf.getvalue()


def write_report(result, parents, out_dir, dataset_images=None, x_sample=None) -> str:
    """Write ``index.html`` (self-contained) and one PNG per figure into ``out_dir``.

    Args:
      result: the ``SweepResult`` to show.
      parents: its ancestors' ``SweepResult``s, oldest first (their members are drawn
        faintly on the response surface; may be empty).
      out_dir: created if needed.
      dataset_images: ``[n, H, W]`` raw training images for the data check (the flows
        pass ``dataset.raw_train_images``), or ``[n, D]`` rows of tabular features; the
        panel is skipped with a note when None.
      x_sample: ``[N, D]`` preprocessed examples (e.g. ``dataset.x_val[:1000]``) for the
        winner's hidden-unit correlation, and for its activation statistics when the
        result has none stored (``result.activations``, written by the sweep flows);
        those parts are skipped with a note when None.

    Returns:
      The path of ``index.html``.

    Example::

      path = write_report(result, [], "reports/abc123", dataset.raw_train_images)
    """
    out = Path(out_dir)  # created once every figure is drawn: a failed report leaves none
    files: dict[str, bytes] = {}

    def fig(name: str, f) -> bytes:
        files[name] = _png(f)
        return files[name]

    p = sections.page(result, parents, dataset_images, x_sample)
    panels = [panel for section in sections.SECTIONS for panel in section(p, fig)]
    page = render(
        f"sweepjax command center: {result.kind} sweep {result.sweep_id}",
        f"{len(result.members)} members on {(result.dataset or {}).get('name', '?')}",
        panels,
    )
    out.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (out / name).write_bytes(data)
    index = out / "index.html"
    tmp = out / "index.html.tmp"
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, index)  # a reader never sees half a page
    return str(index)
