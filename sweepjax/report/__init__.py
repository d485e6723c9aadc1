"""The command center: a self-contained HTML report of a sweep, plus its PNGs.

Entry point: :func:`write_report`. Figures are in :mod:`sweepjax.report.figures` (and the
modules it names), the sections on every swept axis and on the network's insides in
:mod:`sweepjax.report.panels`, the page in :mod:`sweepjax.report.html`. The report reads
a ``SweepResult`` (from the flows or the store) and never trains or touches the store.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")  # before anything imports pyplot; the report never opens windows

from sweepjax.report import sections  # noqa: E402
from sweepjax.report.html import render  # noqa: E402
from sweepjax.report.members import chosen_members  # noqa: E402
from sweepjax.report.panels import hidden_unit_stats  # noqa: E402

__all__ = ["chosen_members", "hidden_unit_stats", "write_report"]


# The margin kept around a figure's drawn extent, inches (savefig's ``pad_inches``).
PAD_INCHES = 0.1


def _png(fig) -> bytes:
    """``fig`` as PNG bytes, cut to its drawn extent plus :data:`PAD_INCHES`.

    ``savefig(bbox_inches="tight")`` draws a figure twice (once to measure, once to
    write): a third of a report's time, and the report is most of what a warm ``coarse``
    spends outside training (issue 29). This draws once, measures on the same renderer
    and crops the pixels; a figure whose ink leaves the canvas goes through savefig.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image  # matplotlib's own PNG writer

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    drawn = fig.get_tightbbox(canvas.get_renderer())
    w, h = canvas.get_width_height()
    if drawn.x0 < 0 or drawn.y0 < 0 or drawn.x1 * fig.dpi > w or drawn.y1 * fig.dpi > h:
        buf = io.BytesIO()  # ink past the canvas (a long title): savefig widens the page
        fig.savefig(buf, format="png", dpi=fig.dpi, bbox_inches="tight", pad_inches=PAD_INCHES)
        return buf.getvalue()
    box, dpi = drawn.padded(PAD_INCHES), fig.dpi
    x0, x1 = math.floor(box.x0 * dpi), math.ceil(box.x1 * dpi)
    y0, y1 = math.floor(box.y0 * dpi), math.ceil(box.y1 * dpi)
    # The pad may reach past the canvas (ink at its edge): that margin is the figure's
    # face colour, as savefig makes it. Canvas rows run top down (row r is y = h - r).
    face = np.round(np.asarray(fig.get_facecolor()) * 255).astype(np.uint8)
    pixels = np.empty((y1 - y0, x1 - x0, 4), np.uint8)
    pixels[...] = face
    cx0, cx1, cy0, cy1 = max(x0, 0), min(x1, w), max(y0, 0), min(y1, h)
    canvas_px = np.asarray(canvas.buffer_rgba())
    pixels[y1 - cy1 : y1 - cy0, cx0 - x0 : cx1 - x0] = canvas_px[h - cy1 : h - cy0, cx0:cx1]
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="png")
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
