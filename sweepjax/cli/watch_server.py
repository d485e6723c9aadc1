"""The server behind ``sweepjax watch`` (:mod:`sweepjax.cli.watch`): :class:`Center`
reads the store per request and renders the pages of :mod:`sweepjax.report.live_page`;
:func:`make_server` serves it with the standard library's threaded HTTP server.

Routes: ``/`` (the index of every sweep, or SWEEP's page when given), ``/sweeps``,
``/sweep/ID``, their JSON twins ``/api/sweeps`` and ``/api/sweep/ID`` (the pages
refresh from them every 2 s), and ``/report/ID`` (the full HTML report once written).
Each request opens the store afresh (WAL lets it read while a sweep writes).
"""

from __future__ import annotations

import json
import math
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

from sweepjax.errors import ConfigError, StoreError
from sweepjax.flows.runner import report_dir
from sweepjax.report import live_page
from sweepjax.report.live_page import SweepCard
from sweepjax.store import live, live_snapshot
from sweepjax.store.db import Store, SweepRow


class Response(NamedTuple):
    status: int
    content_type: str
    body: bytes


def _clean(x):
    """JSON-safe: NaN and infinities become null (browsers reject NaN)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    return x


def _json(doc: dict) -> Response:
    body = json.dumps(_clean(doc), separators=(",", ":"), allow_nan=False).encode()
    return Response(HTTPStatus.OK, "application/json", body)


def _html(text: str, status: int = HTTPStatus.OK) -> Response:
    return Response(status, "text/html; charset=utf-8", text.encode())


def _text(msg: str, status: int) -> Response:
    return Response(status, "text/plain; charset=utf-8", (msg + "\n").encode())


class Center:
    """The command center of one store: reads it per request and renders the pages.
    Finished sweeps' snapshots are kept (they no longer change)."""

    def __init__(self, store: str | Path, sweep: str | None = None):
        self.store = Path(store)
        self.sweep = sweep
        self._finished: dict[tuple[str, float | None], live_snapshot.Snapshot] = {}
        self._lock = threading.Lock()

    def report_path(self, row: SweepRow) -> Path | None:
        for p in (row.report, report_dir(self.store, row.id) / "index.html"):
            if p and Path(p).is_file():
                return Path(p)
        return None

    def card(self, row: SweepRow, newest: live.LiveRow | None) -> SweepCard:
        url = f"/report/{row.id}" if self.report_path(row) is not None else None
        return SweepCard(row, live.sweep_state(row), newest, url)

    def cards(self, st: Store) -> list[SweepCard]:
        newest = live.newest_rows(st.conn)
        return [self.card(r, newest.get(r.id)) for r in st.list_sweeps()]

    def snapshot(self, st: Store, card: SweepCard, payload) -> live_snapshot.Snapshot | None:
        """The running sweep's newest snapshot; a finished one's from its stored result."""
        if card.state != "done":
            return payload.snapshot if payload is not None else None
        key = (card.row.id, card.row.finished)
        with self._lock:
            snap = self._finished.get(key)
        if snap is None:
            snap = live_snapshot.of_result(st.load_sweep(card.row.id))
            with self._lock:
                self._finished[key] = snap
        return snap

    def sweep_parts(self, st: Store, sid: str):
        row = st.sweep_row(sid)  # StoreError for an unknown id
        rows = live.progress(st.conn, sid)
        card = self.card(row, rows[-1] if rows else None)
        payload = live.newest_payload(st.conn, sid)
        return card, rows, payload, self.snapshot(st, card, payload)

    def respond(self, path: str) -> Response:
        """The response to ``GET path``."""
        route = unquote(urlsplit(path).path).rstrip("/") or "/"
        if route == "/" and self.sweep is not None:
            route = f"/sweep/{self.sweep}"
        try:
            with Store.open(self.store) as st:
                if route in ("/", "/sweeps"):
                    return _html(live_page.index_html(str(self.store), self.cards(st)))
                if route == "/api/sweeps":
                    cards = self.cards(st)
                    return _json(
                        {
                            "title": f"sweepjax watch: {self.store}",
                            "state": "running",
                            "sweeps": [live_page.card_json(c) for c in cards],
                            "html": live_page.index_body(str(self.store), cards),
                        }
                    )
                head, _, sid = route.rpartition("/")
                if head == "/sweep":
                    return _html(live_page.sweep_html(*self.sweep_parts(st, sid)))
                if head == "/api/sweep":
                    return _json(live_page.sweep_json(*self.sweep_parts(st, sid)))
                if head == "/report":
                    report = self.report_path(st.sweep_row(sid))
                    if report is None:
                        return _text(f"sweep {sid} has no report yet", HTTPStatus.NOT_FOUND)
                    return _html(report.read_text())
        except StoreError as e:
            return _text(str(e), HTTPStatus.NOT_FOUND)
        return _text(f"no page {route}; the index is at /", HTTPStatus.NOT_FOUND)


def make_server(center: Center, host: str, port: int) -> ThreadingHTTPServer:
    """A threaded HTTP server of ``center`` bound to ``host:port`` (not yet serving)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            try:
                res = center.respond(self.path)
            except Exception as e:  # one bad page must not stop the server
                res = _text(f"error: {type(e).__name__}: {e}", HTTPStatus.INTERNAL_SERVER_ERROR)
            self.send_response(res.status)
            self.send_header("Content-Type", res.content_type)
            self.send_header("Content-Length", str(len(res.body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(res.body)

        def log_message(self, format, *args):  # quiet: the terminal shows the URL only
            return

    try:
        server = ThreadingHTTPServer((host, port), Handler)
    except OSError as e:
        raise ConfigError(
            f"cannot serve on {host}:{port} ({e.strerror or e}); pass another --port "
            "(0 picks a free one) or --host"
        ) from None
    server.daemon_threads = True
    return server
