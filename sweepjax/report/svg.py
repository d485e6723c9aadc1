"""Small inline SVG charts drawn on the server (``sweepjax watch``): lines and a
coloured scatter, no JavaScript and no external resource, so a page of them opens
offline and redraws cheaply every two seconds.

Sizes stay small for any population: the caller hands at most a few hundred points per
line; a scatter draws each colour class as one ``<path>`` of zero-length round-capped
segments (about 14 bytes a point).

Example::

  svg = line_chart([Series("best", [0, 1, 2], [0.5, 0.7, 0.8])], "seconds", "val acc")
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

from sweepjax.report.html import esc

W, H = 460, 250
LEFT, RIGHT, TOP, BOTTOM = 52, 12, 40, 40
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2")
# Accuracy colour ramp (viridis at 8 stops), low -> high.
RAMP = ("#440154", "#46327e", "#365c8d", "#277f8e", "#1fa187", "#4ac16d", "#a0da39", "#fde725")


class Series(NamedTuple):
    """One line: ``xs``/``ys`` (None or NaN breaks the line), its colour and width."""

    name: str
    xs: Sequence[float | None]
    ys: Sequence[float | None]
    color: str = PALETTE[0]
    width: float = 1.6
    opacity: float = 1.0
    dash: str = ""
    in_legend: bool = True


def _ok(v) -> bool:
    return v is not None and math.isfinite(float(v))


def _fmt(v: float, extra: int = 0) -> str:
    """A short label: ``5000``, ``1e4``, ``0.25``; ``extra`` more significant digits
    (``1.5e4``)."""
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e4 or a < 1e-3:
        mant, _, exp = f"{v:.{extra}e}".partition("e")
        if "." in mant:
            mant = mant.rstrip("0").rstrip(".")
        return f"{mant}e{int(exp)}"
    return f"{v:.{4 + extra}g}"


def tick_labels(ticks: Sequence[float]) -> list[str]:
    """One label per tick, each its tick's value and no two alike: as short as
    :func:`_fmt` makes them, with the digits a round tick needs (``5000, 1e4, 1.5e4,
    2e4``, not ``..., 2e4, 2e4``)."""
    gaps = [abs(b - a) for a, b in zip(ticks, ticks[1:], strict=False) if b != a]
    tol = 1e-6 * min(gaps, default=max((abs(t) for t in ticks), default=1.0) or 1.0)
    for extra in range(17):  # 17 significant digits tell any two floats apart
        labels = [_fmt(t, extra) for t in ticks]
        exact = all(abs(float(lab) - t) <= tol for lab, t in zip(labels, ticks, strict=True))
        if exact and len(set(labels)) == len(labels):
            break
    return labels


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering ``[lo, hi]``."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    raw = (hi - lo) / max(1, n)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + i * step, 12) for i in range(int((hi - first) / step + 1e-9) + 1)]


class _Axis(NamedTuple):
    lo: float
    hi: float
    log: bool
    a: float  # pixel of lo
    b: float  # pixel of hi

    def px(self, v: float) -> float:
        v = math.log10(v) if self.log else v
        lo, hi = (math.log10(self.lo), math.log10(self.hi)) if self.log else (self.lo, self.hi)
        return self.a + (v - lo) / (hi - lo) * (self.b - self.a)

    def ticks(self) -> list[float]:
        if not self.log:
            return nice_ticks(self.lo, self.hi)
        lo, hi = math.floor(math.log10(self.lo)), math.ceil(math.log10(self.hi))
        step = max(1, math.ceil((hi - lo) / 6))
        out = [10.0**e for e in range(lo, hi + 1, step) if self.lo <= 10.0**e <= self.hi]
        if len(out) < 3:  # a narrow range: 1, 2, 5 in every decade
            out = [
                m * 10.0**e
                for e in range(lo, hi + 1)
                for m in (1, 2, 5)
                if self.lo <= m * 10.0**e <= self.hi
            ]
        if len(out) < 2:
            out = [t for t in nice_ticks(self.lo, self.hi, 4) if t > 0]
        return out


def _axis(vals: list[float], log: bool, a: float, b: float, span=None) -> _Axis:
    vals = [v for v in vals if _ok(v) and (not log or v > 0)]
    if span is not None:
        lo, hi = span
    elif vals:
        lo, hi = min(vals), max(vals)
    else:
        lo, hi = (1.0, 10.0) if log else (0.0, 1.0)
    if hi <= lo:  # one value: a small box around it
        d = abs(lo) * 0.05 or 0.5
        lo, hi = (lo / 2, hi * 2) if log else (lo - d, hi + d)
    return _Axis(lo, hi, log, a, b)


def _padded(vals: list[float]) -> tuple[float, float]:
    """A log axis's span with a margin, so no point sits on the frame."""
    lo, hi = min(vals), max(vals)
    pad = 10 ** (0.04 * max(math.log10(hi / lo), 1.0))
    return lo / pad, hi * pad


def _frame(x: _Axis, y: _Axis, title: str, xlabel: str, ylabel: str) -> list[str]:
    right = x.b  # the plot's right edge (a scatter keeps room for its colour bar)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
        f'viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="11">',
        f'<text x="{W / 2}" y="15" text-anchor="middle" font-size="13">{esc(title)}</text>',
        f'<rect x="{LEFT}" y="{TOP}" width="{right - LEFT}" height="{H - TOP - BOTTOM}" '
        'fill="none" stroke="#999"/>',
    ]
    xt = x.ticks()
    for t, label in zip(xt, tick_labels(xt), strict=True):
        p = x.px(t)
        out.append(
            f'<line x1="{p:.1f}" x2="{p:.1f}" y1="{TOP}" y2="{H - BOTTOM}" stroke="#eee"/>'
            f'<text x="{p:.1f}" y="{H - BOTTOM + 14}" text-anchor="middle">{label}</text>'
        )
    yt = y.ticks()
    for t, label in zip(yt, tick_labels(yt), strict=True):
        p = y.px(t)
        out.append(
            f'<line x1="{LEFT}" x2="{right}" y1="{p:.1f}" y2="{p:.1f}" stroke="#eee"/>'
            f'<text x="{LEFT - 4}" y="{p + 4:.1f}" text-anchor="end">{label}</text>'
        )
    out.append(
        f'<text x="{(LEFT + right) / 2}" y="{H - 6}" text-anchor="middle">{esc(xlabel)}</text>'
        f'<text transform="translate(12 {(TOP + H - BOTTOM) / 2}) rotate(-90)" '
        f'text-anchor="middle">{esc(ylabel)}</text>'
    )
    return out


def _path(x: _Axis, y: _Axis, xs, ys) -> str:
    """``M x y L x y ...``, a new ``M`` after every gap (a missing or unplottable value)."""
    parts, pen = [], "M"
    for u, v in zip(xs, ys, strict=True):
        if not (_ok(u) and _ok(v)) or (x.log and u <= 0) or (y.log and v <= 0):
            pen = "M"
            continue
        if pen == "M" and parts and parts[-1][0] == "M":
            parts.append("h0")  # a lone point: a dot (the line has round caps)
        parts.append(f"{pen}{x.px(u):.1f} {y.px(v):.1f}")
        pen = "L"
    if parts and parts[-1][0] == "M":
        parts.append("h0")
    return "".join(parts)


def empty_chart(title: str, note: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="80" '
        f'font-family="sans-serif" font-size="12"><text x="8" y="18" font-size="13">'
        f'{esc(title)}</text><text x="8" y="44" fill="#777">{esc(note)}</text></svg>'
    )


def line_chart(
    series: Sequence[Series],
    xlabel: str,
    ylabel: str,
    title: str = "",
    ylog: bool = False,
    yspan: tuple[float, float] | None = None,
    legend: bool = True,
) -> str:
    """Lines on shared axes; the legend names each series that has a name."""
    xs = [v for s in series for v in s.xs]
    ys = [v for s in series for v in s.ys]
    if not any(_ok(v) for v in ys):
        return empty_chart(title, "nothing to draw yet")
    x = _axis(xs, False, LEFT, W - RIGHT)
    y = _axis(ys, ylog, H - BOTTOM, TOP, yspan)
    out = _frame(x, y, title, xlabel, ylabel)
    for s in series:
        d = _path(x, y, s.xs, s.ys)
        if d:
            extra = f' stroke-dasharray="{s.dash}"' if s.dash else ""
            op = f' stroke-opacity="{s.opacity}"' if s.opacity < 1 else ""
            out.append(
                f'<path d="{d}" fill="none" stroke="{s.color}" stroke-width="{s.width}" '
                'stroke-linecap="round"'
                f"{op}{extra}><title>{esc(s.name)}</title></path>"
            )
    if legend:
        named = [s for s in series if s.name and s.in_legend][:4]
        xx = LEFT
        for s in named:  # one row between the title and the plot
            out.append(
                f'<line x1="{xx}" x2="{xx + 16}" y1="{TOP - 8}" y2="{TOP - 8}" '
                f'stroke="{s.color}" stroke-width="2"/>'
                f'<text x="{xx + 20}" y="{TOP - 4}">{esc(s.name)}</text>'
            )
            xx += 30 + 6 * len(s.name)
    out.append("</svg>")
    return "".join(out)


def scatter(
    xs: Sequence[float | None],
    ys: Sequence[float | None],
    values: Sequence[float | None],
    marks: Sequence[int],
    xlabel: str,
    ylabel: str,
    title: str = "",
    cross: int = -1,
    ring: int = -1,
) -> str:
    """Points on log-log axes coloured by ``values``; a point whose mark is ``cross``
    is drawn apart as a red x (diverged) and kept off the colour scale, which spans the
    other points' values (one diverged member's 0.15 must not squash the rest into one
    colour); one whose mark is ``ring`` is drawn hollow (stopped)."""
    pts = [(u, v) for u, v in zip(xs, ys, strict=True) if _ok(u) and _ok(v) and u > 0 and v > 0]
    if not pts:
        return empty_chart(title, "no members to draw yet")
    x, y = (
        _axis(vals, True, a, b, _padded(vals))
        for vals, a, b in (
            ([p[0] for p in pts], LEFT, W - RIGHT - 40),
            ([p[1] for p in pts], H - BOTTOM, TOP),
        )
    )
    vals = [float(v) for v, mk in zip(values, marks, strict=True) if _ok(v) and mk != cross]
    lo, hi = (min(vals), max(vals)) if vals else (0.0, 1.0)
    span = hi - lo or 1.0
    classes: dict[tuple[str, str], list[str]] = {}
    for u, v, val, mk in zip(xs, ys, values, marks, strict=True):
        if not (_ok(u) and _ok(v)) or u <= 0 or v <= 0:
            continue
        px, py = x.px(u), y.px(v)
        if mk == cross or not _ok(val):
            key, seg = ("#d62728", "x"), f"M{px - 2.5:.1f} {py - 2.5:.1f}l5 5m0-5l-5 5"
        else:
            c = RAMP[min(len(RAMP) - 1, int((float(val) - lo) / span * len(RAMP)))]
            key, seg = (c, "o" if mk == ring else "."), f"M{px:.1f} {py:.1f}h0"
        classes.setdefault(key, []).append(seg)
    out = _frame(x, y, title, xlabel, ylabel)

    def order(kv):  # crosses first, then low to high accuracy (the best drawn on top)
        (color, kind), _ = kv
        return (kind != "x", RAMP.index(color) if color in RAMP else -1, kind == ".")

    for (color, kind), segs in sorted(classes.items(), key=order):
        d = "".join(segs)
        if kind == "x":
            style = f'stroke="{color}" stroke-width="1.2"'
        elif kind == "o":
            style = f'stroke="{color}" stroke-width="6" stroke-linecap="round" opacity="0.5"'
        else:
            style = f'stroke="{color}" stroke-width="6" stroke-linecap="round"'
        out.append(f'<path d="{d}" fill="none" {style}/>')
    bx = W - RIGHT - 30
    step = (H - TOP - BOTTOM) / len(RAMP)
    for i, c in enumerate(RAMP):  # the colour bar, high at the top
        out.append(
            f'<rect x="{bx}" y="{H - BOTTOM - (i + 1) * step:.1f}" width="10" '
            f'height="{step:.1f}" fill="{c}"/>'
        )
    out.append(
        f'<text x="{bx + 12}" y="{TOP + 8}" font-size="10">{hi:.3f}</text>'
        f'<text x="{bx + 12}" y="{H - BOTTOM}" font-size="10">{lo:.3f}</text></svg>'
    )
    return "".join(out)
