"""The server behind ``sweepjax watch`` (:mod:`sweepjax.cli.watch`): :class:`Center`
reads the store per request and renders the pages of :mod:`sweepjax.report.live_page`;
:func:`make_server` serves it with the standard library's threaded HTTP server.

Routes: ``/`` (the index of every sweep, or SWEEP's page when given), ``/sweeps``,
``/sweep/ID``, their JSON twins ``/api/sweeps`` and ``/api/sweep/ID`` (the pages
refresh from them every 2 s), and ``/report/ID`` (the full HTML report once written).
Each request opens the store afresh (WAL lets it read while a sweep writes). GET and
HEAD are answered.

A store is data that users share, so nothing it names is trusted: ``/report/ID`` serves
only a file inside the sweep's own report folder (``<store>-reports/ID/``), checked
after symlinks are resolved. Requests whose ``Host`` header names another host than
this server's own address, ``localhost`` or a name allowed with ``--allow-host`` get
421 (a DNS-rebinding page cannot read the store). Every response carries
``X-Content-Type-Options: nosniff`` and a Content-Security-Policy that lets a page run
only its own inline script; error bodies name no path on this machine.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import sys
import threading
from collections.abc import Iterable
from functools import cache
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import unquote, urlsplit

from sweepjax.errors import ConfigError, StoreError
from sweepjax.store import live
from sweepjax.store.db import Store, SweepRow
from sweepjax.store.paths import report_dir

if TYPE_CHECKING:
    from sweepjax.report.live_page import SweepCard
    from sweepjax.store import live_snapshot

# The names every server answers to (with its port), besides its bound address.
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
# What a response that is not a page may do: nothing.
BASE_CSP = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"


class Response(NamedTuple):
    status: int
    content_type: str
    body: bytes
    csp: str = BASE_CSP


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


def _text(msg: str, status: int) -> Response:
    return Response(status, "text/plain; charset=utf-8", (msg + "\n").encode())


def _script_hash(script: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"


def page_csp(scripts: Iterable[str], connect: bool) -> str:
    """A page's policy: only the inline ``scripts`` given (by hash), inline styles and
    ``data:`` images; ``connect``: it may fetch from this server (the live pages)."""
    parts = [
        "default-src 'none'",
        "script-src " + " ".join(_script_hash(s) for s in scripts),
        "style-src 'unsafe-inline'",  # the pages' <style> and the progress bar's width
        "img-src data:",  # the report's figures are data: PNGs
    ]
    if connect:
        parts.append("connect-src 'self'")
    return "; ".join([*parts, "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'"])


def _live_page():
    """The live pages' module, imported on the first request that renders one (the
    report package imports matplotlib: about a second)."""
    from sweepjax.report import live_page

    return live_page


@cache
def _live_csp() -> str:
    return page_csp([_live_page().SCRIPT], connect=True)


@cache
def _report_csp() -> str:
    from sweepjax.report.html import SCRIPT

    return page_csp([SCRIPT], connect=False)


def _html(text: str, status: int = HTTPStatus.OK) -> Response:
    return Response(status, "text/html; charset=utf-8", text.encode(), _live_csp())


def _inside(path: Path, folder: Path) -> Path | None:
    """``path`` with every symlink resolved when it is a regular file inside ``folder``
    (resolved too); otherwise None."""
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):  # missing, or a symlink loop
        return None
    if real.is_relative_to(folder) and real != folder and real.is_file():
        return real
    return None


def read_inside(path: Path, folder: Path) -> bytes | None:
    """The bytes of ``path`` if it is (still) a regular file inside ``folder``, opened
    without following a symlink swapped in after the check; None otherwise."""
    real = _inside(path, folder)
    if real is None:
        return None
    try:
        fd = os.open(real, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        return f.read()


class Center:
    """The command center of one store: reads it per request and renders the pages.
    Finished sweeps' snapshots are kept (they no longer change)."""

    def __init__(self, path: str | Path, sweep: str | None = None):
        self.path = Path(path)
        self.sweep = sweep
        # Finished sweeps' snapshots and (members, diverged), by (what, id, finished).
        self._finished: dict[tuple[str, str, float | None], object] = {}
        self._lock = threading.Lock()

    def report_folder(self, sweep_id: str) -> Path | None:
        """The sweep's report folder, resolved; None when the id would leave
        ``<store>-reports/`` (a crafted store)."""
        folder = report_dir(self.path.resolve(), sweep_id)
        root, real = folder.parent.resolve(), folder.resolve()
        return real if real.parent == root else None

    def report_path(self, row: SweepRow) -> Path | None:
        """The sweep's report: the file the store names, or ``index.html``, when it is
        a regular file inside the sweep's report folder (after symlinks). The store's
        ``report`` column is never opened elsewhere."""
        folder = self.report_folder(row.id)
        if folder is None:
            return None
        for p in (row.report, folder / "index.html"):
            if p and (real := _inside(Path(p), folder)) is not None:
                return real
        return None

    def card(self, store: Store, row: SweepRow, newest: live.LiveRow | None) -> SweepCard:
        url = f"/report/{row.id}" if self.report_path(row) is not None else None
        state = live.sweep_state(row)
        final = None
        if state == "done":  # a finished sweep's statuses no longer change
            key = ("statuses", row.id, row.finished)
            with self._lock:
                final = self._finished.get(key)
            if final is None:
                final = live.member_statuses(store.conn, row.id)
                with self._lock:
                    self._finished[key] = final
        return _live_page().SweepCard(row, state, newest, url, final)

    def cards(self, store: Store) -> list[SweepCard]:
        newest = live.newest_rows(store.conn)
        return [self.card(store, r, newest.get(r.id)) for r in store.list_sweeps()]

    def snapshot(self, store: Store, card: SweepCard, payload) -> live_snapshot.Snapshot | None:
        """The running sweep's newest snapshot; a finished one's from its stored result."""
        from sweepjax.store import live_snapshot

        if card.state != "done":
            return payload.snapshot if payload is not None else None
        key = ("snapshot", card.row.id, card.row.finished)
        with self._lock:
            snap = self._finished.get(key)
        if snap is None:
            snap = live_snapshot.of_result(store.load_sweep(card.row.id))
            with self._lock:
                self._finished[key] = snap
        return snap

    def sweep_parts(self, store: Store, sid: str):
        row = store.sweep_row(sid)  # StoreError for an unknown id
        rows = live.progress(store.conn, sid)
        card = self.card(store, row, rows[-1] if rows else None)
        payload = live.newest_payload(store.conn, sid)
        return card, rows, payload, self.snapshot(store, card, payload)

    def report(self, store: Store, sid: str) -> Response:
        path = self.report_path(store.sweep_row(sid))
        body = None if path is None else read_inside(path, self.report_folder(sid))
        if body is None:
            return _text(f"sweep {sid} has no report yet", HTTPStatus.NOT_FOUND)
        return Response(HTTPStatus.OK, "text/html; charset=utf-8", body, _report_csp())

    def respond(self, path: str) -> Response:
        """The response to ``GET path``."""
        route = unquote(urlsplit(path).path).rstrip("/") or "/"
        if route == "/" and self.sweep is not None:
            route = f"/sweep/{self.sweep}"
        head, _, sid = route.rpartition("/")
        if head not in ("/sweep", "/api/sweep", "/report") and route not in ALL_SWEEPS:
            return _text("no such page; the index is at /", HTTPStatus.NOT_FOUND)
        try:
            with Store.open(self.path) as store:
                if route in ALL_SWEEPS:
                    return self.index(store, json_twin=route == "/api/sweeps")
                if not store.exists(sid):
                    return _text(
                        f"no sweep {sid!r} in this store; the index is at /", HTTPStatus.NOT_FOUND
                    )
                if head == "/report":
                    return self.report(store, sid)
                parts = self.sweep_parts(store, sid)
                if head == "/sweep":
                    return _html(_live_page().sweep_html(*parts))
                return _json(_live_page().sweep_json(*parts))
        except StoreError as e:  # the details (and the store's path) stay on this machine
            print(f"sweepjax: watch: {e}", file=sys.stderr)
            return _text("the store cannot be read now; see the terminal running watch", 503)

    def index(self, store: Store, json_twin: bool) -> Response:
        pages, cards = _live_page(), self.cards(store)
        if not json_twin:
            return _html(pages.index_html(str(self.path), cards))
        return _json(
            {
                "title": f"sweepjax watch: {self.path}",
                "state": "running",
                "sweeps": [pages.card_json(c) for c in cards],
                "html": pages.index_body(str(self.path), cards),
            }
        )


ALL_SWEEPS = ("/", "/sweeps", "/api/sweeps")


def _host_port(header: str) -> tuple[str, int | None] | None:
    """``Host`` as (lower-case name, port or None); None when malformed."""
    h = header.strip()
    if h.startswith("["):  # [::1]:8765
        name, sep, rest = h[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            return None
        port = rest[1:] if rest else None
    elif h.count(":") > 1:  # a bare IPv6 address is not a valid Host
        return None
    else:
        name, _, port = h.partition(":")
        port = port if ":" in h else None
    if port is not None and not (port.isdigit() and len(port) <= 5):
        return None
    return name.lower().rstrip("."), None if port is None else int(port)


class HostCheck(NamedTuple):
    """Which ``Host`` headers a server answers: its own names at its own port, and the
    names a reverse proxy sends (``--allow-host``) at any port."""

    own: frozenset[str]
    port: int
    proxies: frozenset[str]

    @classmethod
    def of(cls, bound: str, given: str, port: int, allow: Iterable[str] = ()) -> HostCheck:
        own = {n.lower().strip("[]") for n in (*LOCAL_NAMES, bound, given) if n}
        names = [_host_port(a) for a in allow]  # a NAME:PORT given counts as NAME
        proxies = {hp[0] if hp else a.lower() for hp, a in zip(names, allow, strict=True)}
        return cls(frozenset(own), port, frozenset(proxies))

    def allows(self, header: str | None) -> bool:
        hp = _host_port(header) if header else None
        if hp is None:
            return False
        name, port = hp
        if name in self.proxies:
            return True
        return name in self.own and (80 if port is None else port) == self.port


def make_server(
    center: Center, host: str, port: int, allow_hosts: Iterable[str] = ()
) -> ThreadingHTTPServer:
    """A threaded HTTP server of ``center`` bound to ``host:port`` (not yet serving).
    It answers requests whose Host names its address, ``localhost`` or one of
    ``allow_hosts``."""
    allow_hosts = tuple(allow_hosts)

    class Handler(BaseHTTPRequestHandler):
        csp = BASE_CSP
        server_version, sys_version = "sweepjax-watch", ""  # no Python version on the wire

        def end_headers(self):  # every response, http.server's own errors too
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Content-Security-Policy", self.csp)
            self.send_header("Referrer-Policy", "no-referrer")
            super().end_headers()

        def answer(self) -> Response:
            if not self.server.hosts.allows(self.headers.get("Host")):
                return _text(
                    "unknown Host: this server answers to its own address and localhost "
                    "(start watch with --allow-host NAME for a proxy's name)",
                    HTTPStatus.MISDIRECTED_REQUEST,
                )
            try:
                return center.respond(self.path)
            except Exception as e:  # one bad page must not stop the server
                print(f"sweepjax: watch: {self.path}: {type(e).__name__}: {e}", file=sys.stderr)
                msg = "internal error; see the terminal running watch"
                return _text(msg, HTTPStatus.INTERNAL_SERVER_ERROR)

        def send(self, res: Response, body: bool) -> None:
            self.csp = res.csp
            self.send_response(res.status)
            self.send_header("Content-Type", res.content_type)
            self.send_header("Content-Length", str(len(res.body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if body:
                self.wfile.write(res.body)

        def do_GET(self):  # noqa: N802 (http.server's name)
            self.send(self.answer(), body=True)

        def do_HEAD(self):  # noqa: N802
            self.send(self.answer(), body=False)

        def log_message(self, format, *args):  # quiet: the terminal shows the URL only
            return

    try:
        server = ThreadingHTTPServer((host, port), Handler)
    except OSError as e:
        raise ConfigError(
            f"cannot serve on {host}:{port} ({e.strerror or e}); pass another --port "
            "(0 picks a free one) or --host"
        ) from None
    except OverflowError:  # callers outside the CLI (the CLI checks the range)
        raise ConfigError(f"port {port} is out of range; pass --port 0..65535") from None
    server.daemon_threads = True
    bound, real_port = server.server_address[:2]
    server.hosts = HostCheck.of(bound, host, real_port, allow_hosts)
    return server
