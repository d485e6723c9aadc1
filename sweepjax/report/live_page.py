"""The live command center's pages (``sweepjax watch``): an index of the sweeps in a
store and one page per sweep, with its progress and inline SVG charts. Pure functions
of what the store read (:mod:`sweepjax.store.live`); the server is in
:mod:`sweepjax.cli.watch`.

Each page is complete as served (a browser without JavaScript, or a headless one,
sees the numbers); a small inline script then fetches the page's JSON twin every
``REFRESH_S`` seconds and swaps in its ``html``. Sizes are bounded whatever the
population: the snapshot holds at most 14 curves of 200 points and 2,000 surface
points, the progress at most 200 points.
"""

from __future__ import annotations

import math
import time
from typing import NamedTuple

from sweepjax.report.html import CSS, esc, table
from sweepjax.report.svg import PALETTE, Series, empty_chart, line_chart, scatter
from sweepjax.store.db import SweepRow
from sweepjax.store.live import LivePayload, LiveRow
from sweepjax.store.live_snapshot import DIVERGED, STATUS, STOPPED, Snapshot

REFRESH_S = 2

EXTRA_CSS = """
.state{font-weight:600;padding:1px 6px;border-radius:3px;font-size:12px}
.running{background:#e3f2fd;color:#0d47a1} .done{background:#e8f5e9;color:#1b5e20}
.interrupted{background:#fff3e0;color:#8a4b00}
.bar{width:420px;height:10px;background:#eee;border-radius:5px;overflow:hidden;margin:6px 0}
.bar div{height:100%;background:#1f77b4} .nums td{font-variant-numeric:tabular-nums}
svg{border:1px solid #eee;background:#fff}
"""

SCRIPT = """
(function () {
  var api = document.body.dataset.api, box = document.getElementById('live');
  function tick() {
    fetch(api, {cache: 'no-store'}).then(function (r) { return r.json(); })
      .then(function (d) {
        box.innerHTML = d.html; document.title = d.title;
        document.body.dataset.refreshes = String(1 + Number(document.body.dataset.refreshes));
        if (d.state !== 'done') { setTimeout(tick, MS); }
      }).catch(function () { setTimeout(tick, 2 * MS); });
  }
  if (document.body.dataset.state !== 'done') { setTimeout(tick, MS); }
})();
""".replace("MS", str(REFRESH_S * 1000))


class SweepCard(NamedTuple):
    """What the pages show of one sweep: its row, its state (``running`` | ``done`` |
    ``interrupted``), its newest live row (None: it has none), the URL of its full
    HTML report (None: not written) and, once done, its stored result's ``(members,
    diverged)`` (:func:`sweepjax.store.live.member_statuses`)."""

    row: SweepRow
    state: str
    newest: LiveRow | None
    report_url: str | None
    final: tuple[int, int] | None = None


def duration(s: float | None) -> str:
    """``42s``, ``3m07s``, ``2h05m``; an en dash when unknown."""
    if s is None or not math.isfinite(s):
        return "–"
    s = max(0, int(round(s)))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def _acc(x: float | None) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:.4f}"


def _state(state: str) -> str:
    return f'<span class="state {esc(state)}">{esc(state)}</span>'


def _progress_text(card: SweepCard) -> str:
    """``step 120/300`` or ``12s of 60s`` (anytime), with the share done."""
    r, n = card.row, card.newest
    if n is not None and n.spent is not None:
        return f"{duration(n.elapsed_s)} ({100 * n.spent:.0f}% of the budget)"
    step = r.total_steps if card.state == "done" else (n.step if n else r.steps_done)
    return f"step {step}/{r.total_steps}"


def _done_share(card: SweepCard) -> float:
    r, n = card.row, card.newest
    if card.state == "done":
        return 1.0
    if n is None:
        return r.steps_done / max(1, r.total_steps)
    if n.spent is not None:
        return min(1.0, n.spent)
    return n.step / max(1, n.total_steps)


def _best(card: SweepCard) -> float | None:
    if card.row.best_val_acc is not None:
        return card.row.best_val_acc
    n = card.newest
    if n is None:
        return None
    return n.best_full_val_acc if n.best_full_val_acc is not None else n.best_val_acc


def member_counts(card: SweepCard, snap: Snapshot | None = None) -> tuple[int | None, ...]:
    """``(training, alive, members)``: the newest live row's while the sweep runs; once
    it is done, 0 training and every member alive but those its stored result calls
    diverged (the last live row was written before the end, and counts a member that
    diverged in the last block as still training). None: not known yet."""
    r, n = card.row, card.newest
    if card.state == "done":
        if snap is not None:
            return 0, snap.num_members - snap.counts.get("diverged", 0), snap.num_members
        if card.final is not None and card.final[0]:
            return 0, card.final[0] - card.final[1], card.final[0]
        return 0, (n.alive if n else None), r.num_members
    if n is None:
        return None, None, r.num_members
    return n.active, n.alive, n.num_members


def card_json(card: SweepCard, snap: Snapshot | None = None) -> dict:
    """The numbers of one sweep, as the JSON endpoints give them."""
    r, n = card.row, card.newest
    active, alive, _ = member_counts(card, snap)
    return {
        "id": r.id,
        "kind": r.kind,
        "state": card.state,
        "step": r.total_steps if card.state == "done" else (n.step if n else r.steps_done),
        "total_steps": r.total_steps,
        "done": round(_done_share(card), 4),
        "elapsed_s": n.elapsed_s if n else None,
        "eta_s": n.eta_s if n and card.state == "running" else None,
        "active": active,
        "alive": alive,
        "num_members": r.num_members,
        "best_val_acc": _best(card),
        "updated": n.wall if n else r.updated,
        "report": card.report_url,
    }


# --------------------------------------------------------------------------- index
def index_fragment(cards: list[SweepCard], now: float | None = None) -> str:
    """The table of sweeps (newest first)."""
    now = time.time() if now is None else now
    if not cards:
        return '<p class="note">no sweeps in this store yet; start one with `sweepjax coarse`</p>'
    rows = []
    for c in reversed(cards):
        n = c.newest
        members = "/".join("–" if k is None else str(k) for k in member_counts(c))
        report = f'<a href="{esc(c.report_url)}">report</a>' if c.report_url else ""
        rows.append(
            [
                f'<a href="/sweep/{esc(c.row.id)}">{esc(c.row.id)}</a>',
                esc(c.row.kind),
                _state(c.state),
                esc(_progress_text(c)),
                members,
                _acc(_best(c)),
                duration(n.eta_s) if n and c.state == "running" else "–",
                f"{duration(now - (n.wall if n else c.row.updated))} ago",
                report,
            ]
        )
    head = ["sweep", "kind", "state", "progress", "training/alive/members", "best val"]
    return table([*head, "ETA", "updated", "report"], rows, raw=True)


def _page(title: str, api: str, state: str, body: str, nav: str = "") -> str:
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>{CSS}{EXTRA_CSS}</style></head>"
        f'<body data-api="{esc(api)}" data-state="{esc(state)}" data-refreshes="0">{nav}'
        f'<div id="live">{body}</div><script>{SCRIPT}</script></body></html>'
    )


def index_html(store_name: str, cards: list[SweepCard]) -> str:
    return _page(
        f"sweepjax watch: {store_name}",
        "/api/sweeps",
        "running",
        index_body(store_name, cards),
    )


def index_body(store_name: str, cards: list[SweepCard]) -> str:
    running = sum(c.state == "running" for c in cards)
    return (
        f"<h1>sweepjax command center</h1><p class='sub'>store {esc(store_name)}: "
        f"{len(cards)} sweep{'' if len(cards) == 1 else 's'}, {running} running; "
        f"refreshes every {REFRESH_S} s</p>" + index_fragment(cards)
    )


# --------------------------------------------------------------------------- one sweep
def _progress_charts(rows: list[LiveRow], end: tuple | None = None) -> list[str]:
    """``end``: a finished sweep's ``(training, alive, members)``, drawn as the last
    point of the members chart (the last live row was written before the end)."""
    if not rows:
        note = "no live progress recorded (the sweep ran before sweepjax recorded it)"
        return [empty_chart("best so far", note)]
    t = [r.elapsed_s for r in rows]
    full = [r.best_full_val_acc for r in rows]  # measured at a schedule's decisions only
    best = line_chart(
        [Series("best val (subset)", t, [r.best_val_acc for r in rows])]
        + (
            [Series("best val (whole set)", t, full, PALETTE[1])]
            if any(v is not None for v in full)
            else []
        ),
        "elapsed seconds",
        "validation accuracy",
        "best so far",
    )
    active, alive = [r.active for r in rows], [r.alive for r in rows]
    tm = t
    if end is not None and end[1] is not None:
        tm, active, alive = [*t, t[-1]], [*active, end[0]], [*alive, end[1]]
    members = line_chart(
        [
            Series("training", tm, active),
            Series("alive", tm, alive, PALETTE[2], dash="4 3"),
        ],
        "elapsed seconds",
        "members",
        "members training and alive",
        yspan=(0.0, float(max(r.num_members for r in rows))),
    )
    return [best, members]


def _curve_series(snap: Snapshot, metric: str) -> list[Series]:
    out = []
    tops = [c for c in snap.curves if c.role == "top"]
    for i, c in enumerate(snap.curves):
        top = c.role == "top"
        name = f"#{c.member} lr {c.lr:.3g} l2 {c.l2:.3g}" if c.lr and c.l2 else f"#{c.member}"
        name += "".join(f" {k} {v:.3g}" for k, v in c.hparams.items() if v is not None)
        out.append(
            Series(
                name,
                snap.steps,
                getattr(c, metric),
                PALETTE[0] if top else "#888",
                width=2.0 if top and i == 0 else 1.2,
                opacity=1.0 if top else 0.7,
                in_legend=False,
            )
        )
    if tops:  # a legend of the two roles
        out.append(Series(f"top {len(tops)} by {snap.acc_label}", [], [], PALETTE[0]))
        if len(tops) < len(snap.curves):
            out.append(Series("typical (quantiles of the rest)", [], [], "#888"))
    return out


def _snapshot_charts(snap: Snapshot | None) -> list[str]:
    if snap is None:
        return [empty_chart("members", "no member snapshot yet")]
    charts = []
    if snap.curves and snap.steps:
        charts.append(
            line_chart(_curve_series(snap, "val_acc"), "step", "val acc", "validation accuracy")
        )
        charts.append(
            line_chart(
                _curve_series(snap, "train_loss"), "step", "train loss", "training loss", ylog=True
            )
        )
    n = len(snap.member)
    shown = f"{n} of {snap.num_members}" if n < snap.num_members else f"{n}"
    charts.append(
        scatter(
            snap.lr,
            snap.l2,
            snap.acc,
            snap.status,
            "learning rate",
            "L2 lambda",
            f"surface: {shown} members by {snap.acc_label}",
            cross=DIVERGED,
            ring=STOPPED,
        )
    )
    return charts


def _facts(card: SweepCard, payload: LivePayload | None, snap: Snapshot | None) -> str:
    r, n = card.row, card.newest
    rows = [["state", _state(card.state)], ["progress", esc(_progress_text(card))]]
    if n is not None:
        rows.append(["elapsed", duration(n.elapsed_s)])
        if card.state == "running":
            rows.append(["ETA", duration(n.eta_s)])
        counts = " / ".join("–" if k is None else str(k) for k in member_counts(card, snap))
        rows.append(["training / alive / members", counts])
        rows.append(["best val so far (subset)", _acc(n.best_val_acc)])
        if n.best_full_val_acc is not None:  # no empty row: --schedule full never measures it
            rows.append(["best val so far (whole set)", _acc(n.best_full_val_acc)])
    else:
        rows.append(["members", str(r.num_members)])
    if r.winner is not None:
        rows.append(["winner", f"#{r.winner}, best val {_acc(r.best_val_acc)}"])
    if snap is not None:
        counts = ", ".join(f"{v} {k}" for k, v in snap.counts.items() if v)
        rows.append(["members by status", esc(counts)])
    a = payload.anytime if payload is not None else None
    if a:
        rows.append(["anytime", esc(f"{a['finished']} finished, budget {a['budget'] or 'none'}")])
    if card.report_url:
        rows.append(["full report", f'<a href="{esc(card.report_url)}">open the HTML report</a>'])
    elif card.state == "done":
        rows.append(["full report", esc(f"not written: `sweepjax report {r.id}` writes it")])
    if n is not None:
        rows.append(["last update", f"{duration(time.time() - n.wall)} ago"])
    return table(None, rows, raw=True)


def sweep_body(
    card: SweepCard,
    rows: list[LiveRow],
    payload: LivePayload | None,
    snap: Snapshot | None,
) -> str:
    """The part of a sweep's page the script refreshes."""
    r = card.row
    model = r.config.model.kind
    sub = f"{r.kind} sweep of {r.num_members} {model} members on {r.dataset.get('name', '?')}"
    pct = 100 * _done_share(card)
    end = member_counts(card, snap) if card.state == "done" else None
    charts = _progress_charts(rows, end) + _snapshot_charts(snap)
    return (
        f"<h1>{esc(r.id)} {_state(card.state)}</h1><p class='sub'>{esc(sub)}"
        f"{f', refines {esc(r.parent)}' if r.parent else ''}</p>"
        f'<div class="bar" title="{pct:.0f}%"><div style="width:{pct:.1f}%"></div></div>'
        f'<div class="nums">{_facts(card, payload, snap)}</div>'
        f'<div class="grid">{"".join(charts)}</div>'
    )


def sweep_html(card, rows, payload, snap) -> str:
    nav = '<p class="sub"><a href="/">all sweeps</a></p>'
    return _page(
        title(card),
        f"/api/sweep/{card.row.id}",
        card.state,
        sweep_body(card, rows, payload, snap),
        nav,
    )


def title(card: SweepCard) -> str:
    return f"{card.row.id} {card.state}: {_progress_text(card)}"


def sweep_json(card, rows, payload, snap) -> dict:
    """A sweep's numbers, its progress points, and the refreshed HTML."""
    return {
        **card_json(card, snap),
        "title": title(card),
        "progress": [r._asdict() for r in rows],
        "counts": snap.counts if snap is not None else None,
        "html": sweep_body(card, rows, payload, snap),
    }


__all__ = [
    "REFRESH_S",
    "SweepCard",
    "STATUS",
    "card_json",
    "duration",
    "index_body",
    "index_html",
    "sweep_html",
    "sweep_json",
]
