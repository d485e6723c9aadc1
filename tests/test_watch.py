"""``sweepjax watch``: the live command center served over HTTP from the store. The
pages and JSON of a finished sweep and of a running 4,096-member one (bounded sizes,
the store's numbers on the page), the CLI's errors and Ctrl-C, and (slow) a headless
browser watching a sweep that trains in another process."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from sweepjax.cli import main
from sweepjax.cli.watch_server import Center, make_server
from sweepjax.config import ModelConfig
from sweepjax.store.db import Store
from sweepjax.store.live import LiveWriter, progress
from tests.helpers import sweep_config
from tests.test_live import FakeClock, population, report
from tests.test_store import make_result, new_sweep

CHROMIUM = "/usr/bin/chromium"
MAX_BYTES = 500_000


@contextlib.contextmanager
def serving(store: Path, sweep: str | None = None):
    srv = make_server(Center(store, sweep), "127.0.0.1", 0)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()
        t.join()


def get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.headers["Content-Type"], r.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.headers["Content-Type"], e.read()


@pytest.fixture
def finished(tmp_path):
    """A store with one finished sweep (and its report file) and one older sweep that
    is marked running but whose process is gone."""
    db = tmp_path / "s.db"
    with Store.open(db, create=True) as st:
        res = make_result("x", m=6)
        res.sweep_id = new_sweep(st, res)
        LiveWriter(st, res.sweep_id, clock=FakeClock()).update(report(40, total=40))
        st.save_results(res)
        page = tmp_path / "s-reports" / res.sweep_id / "index.html"
        page.parent.mkdir(parents=True)
        page.write_text("<html><body>the full report</body></html>")
        st.set_report(res.sweep_id, str(page))
        dead = new_sweep(st, make_result("y", m=4), name="killed")
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        st.conn.execute("UPDATE sweeps SET pid=? WHERE id=?", (gone.pid, dead))
    return db, res


def test_a_finished_sweep_and_the_index(finished):
    db, res = finished
    sid = res.sweep_id
    with serving(db) as url:
        code, ctype, body = get(f"{url}/")
        index = body.decode()
        assert code == 200 and ctype.startswith("text/html")
        assert f'href="/sweep/{sid}"' in index and f'href="/report/{sid}"' in index
        assert re.search(rf"{sid}</a></td><td>coarse</td><td><span class=\"state done\"", index)
        assert 'class="state interrupted">interrupted' in index  # marked running, pid gone
        code, _, body = get(f"{url}/sweep/{sid}")
        page = body.decode()
        assert code == 200 and "step 40/40" in page
        best = max(m.best_val_acc for m in res.members)
        assert f"#{res.winner.id}, best val {res.winner.val_acc:.4f}" in page
        assert "5 ok, 1 diverged" in page
        assert page.count("<svg") == 5  # best so far, members, 2 curve charts, surface
        assert f'<a href="/report/{sid}">open the HTML report</a>' in page
        doc = json.loads(get(f"{url}/api/sweep/{sid}")[2])
        assert (doc["state"], doc["step"], doc["total_steps"]) == ("done", 40, 40)
        assert doc["best_val_acc"] == pytest.approx(res.winner.val_acc)
        assert doc["counts"] == {"training": 0, "ok": 5, "stopped": 0, "diverged": 1}
        assert doc["html"].count("<svg") == 5 and doc["report"] == f"/report/{sid}"
        sweeps = json.loads(get(f"{url}/api/sweeps")[2])["sweeps"]
        assert [(s["id"], s["state"]) for s in sweeps] == [(sid, "done"), ("killed", "interrupted")]
        assert get(f"{url}/report/{sid}")[2] == b"<html><body>the full report</body></html>"
        assert get(f"{url}/report/killed")[0] == 404
        code, _, body = get(f"{url}/sweep/nope")
        assert code == 404 and b"no sweep 'nope'" in body
        assert get(f"{url}/favicon.ico")[0] == 404
    assert best >= res.winner.val_acc
    with serving(db, sweep="killed") as url:  # SWEEP given: its page at /
        page = get(f"{url}/")[2].decode()
        assert "<h1>killed <span" in page and "no live progress recorded" in page


@pytest.fixture
def running_4096(tmp_path):
    """A running sweep of 4,096 members with 40 live rows, the newest with curves of
    500 evaluations (this process plays the sweep's process)."""
    db = tmp_path / "big.db"
    curves, sched = population(m=4096, e=500)
    clock = FakeClock()
    with Store.open(db, create=True) as st:
        sid = st.create_sweep("coarse", sweep_config(model=ModelConfig("mlp")),
                              {"name": "mnist"}, {}, 4096, 3000)  # fmt: skip
        w = LiveWriter(st, sid, clock=clock)
        for i in range(1, 41):
            w.update(report(25 * i, total=3000, elapsed=1.0 + 0.5 * i, best=0.5 + i / 100,
                            curves=curves, sched=sched))  # fmt: skip
            clock.t += 1.0
        newest = progress(st.conn, sid)[-1]
    return db, sid, newest


def test_a_running_4096_member_sweep_is_bounded(running_4096):
    db, sid, newest = running_4096
    assert newest.step == 1000 and newest.best_val_acc == pytest.approx(0.9)
    with serving(db) as url:
        t0 = time.perf_counter()
        code, _, body = get(f"{url}/sweep/{sid}")
        took = time.perf_counter() - t0
        page = body.decode()
        assert code == 200 and len(body) < MAX_BYTES and took < 5.0
        assert "step 1000/3000" in page and 'class="state running"' in page
        assert f"{newest.active} / {newest.alive} / 4096" in page
        assert f"{newest.best_val_acc:.4f}" in page
        assert "surface: 2000 of 4096 members" in page
        assert page.count("<svg") == 5
        raw = get(f"{url}/api/sweep/{sid}")[2]
        doc = json.loads(raw)
        assert len(raw) < MAX_BYTES
        assert (doc["state"], doc["step"], doc["active"], doc["alive"]) == (
            "running",
            1000,
            newest.active,
            newest.alive,
        )
        assert doc["eta_s"] == pytest.approx(newest.eta_s) and doc["eta_s"] > 0
        assert len(doc["progress"]) == 40 and doc["progress"][-1]["step"] == 1000
        assert sum(doc["counts"].values()) == 4096
        index = get(f"{url}/")[2]
        assert len(index) < MAX_BYTES and b"step 1000/3000" in index
        # Each member curve is one path of at most 200 points.
        paths = re.findall(r'<path d="([^"]*)"[^>]*stroke-width="[12]\.[02]"', page)
        assert paths and max(p.count("L") + 1 for p in paths) <= 200


def test_cli_errors_are_one_line_and_exit_2(tmp_path, finished, capsys):
    db, res = finished
    assert main(["watch", "--store", str(tmp_path / "missing.db")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no sweepjax store at" in err
    assert main(["watch", "nope", "--store", str(db)]) == 2
    assert "no sweep 'nope'" in capsys.readouterr().err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["watch", "--store", str(db), "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"cannot serve on 127.0.0.1:{port}" in err


def test_ctrl_c_stops_cleanly(finished, capsys, monkeypatch):
    db, _ = finished
    from http.server import ThreadingHTTPServer

    def interrupted(self, poll_interval=0.5):
        raise KeyboardInterrupt

    monkeypatch.setattr(ThreadingHTTPServer, "serve_forever", interrupted)
    assert main(["watch", "--store", str(db), "--port", "0"]) == 0
    out, err = capsys.readouterr()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/\n", out) and "watch stopped" in err


# --------------------------------------------------------------------------- slow
def _chromium_dom(url: str, cwd: Path, *extra: str) -> str:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run",
             f"--user-data-dir={cwd / 'profile'}",
             "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]  # fmt: skip
    out = subprocess.run([CHROMIUM, *flags, *extra, "--dump-dom", url], capture_output=True,
                         text=True, timeout=120, cwd=cwd)  # fmt: skip
    return out.stdout


def _running_step(db: Path, timeout: float = 240.0) -> int:
    """Wait until the sweep in ``db`` has written a live row; its step."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if db.exists():
            with contextlib.suppress(Exception), Store.open(db) as st:
                rows = progress(st.conn, "c1")
                if rows:
                    return rows[-1].step
        time.sleep(0.5)
    raise AssertionError("the sweep wrote no live progress")


@pytest.mark.slow
@pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason=f"{CHROMIUM} is missing (CI installs it with apt-get install chromium)",
)
def test_chromium_watches_a_sweep_train_in_another_process(tmp_path):
    db = tmp_path / "live.db"
    cmd = [sys.executable, "-m", "sweepjax", "coarse", "--dataset", "mnist-sample",
           "--trials", "16", "--steps", "100000", "--batch-size", "64", "--schedule", "full",
           "--chunk-steps", "100", "--eval-every", "1000", "--no-report", "--store",
           str(db)]  # fmt: skip
    sweep = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _running_step(db)
        with serving(db) as url:
            doms = [_chromium_dom(f"{url}/sweep/c1", tmp_path)]
            time.sleep(4)
            # The second look lets the page's script refresh itself (virtual time: 5 s).
            doms.append(_chromium_dom(f"{url}/sweep/c1", tmp_path, "--virtual-time-budget=5000"))
        assert sweep.poll() is None, "the sweep finished before the second look"
    finally:
        sweep.send_signal(signal.SIGINT)
        sweep.communicate(timeout=120)
        shutil.rmtree(tmp_path / "profile", ignore_errors=True)
    steps = []
    for dom in doms:
        assert 'class="state running"' in dom and "training / alive / members" in dom
        assert dom.count("<svg") >= 3
        steps.append(int(re.search(r"step (\d+)/100000", dom).group(1)))
    assert 0 < steps[0] < steps[1] < 100000
    assert int(re.search(r'data-refreshes="(\d+)"', doms[1]).group(1)) >= 1  # the fetch ran
    with Store.open(db) as st:  # stopped with Ctrl-C: interrupted, its progress kept
        assert st.sweep_row("c1").status == "interrupted"
        assert progress(st.conn, "c1")[-1].step >= steps[1]


@contextlib.contextmanager
def _sigint_handled():
    """Installs a Python handler for SIGINT around a spawn. A handler, unlike an ignored
    signal, is reset to the default at exec, so the child then gets Python's own
    KeyboardInterrupt handler (a ``preexec_fn`` would do it too, but forks a
    multithreaded process: JAX warns, and pytest counts the warning as a failure)."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


@pytest.mark.slow
def test_ctrl_c_stops_the_server_process(finished):
    db, _ = finished
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "sweepjax", "watch", "--store", str(db), "--port", "0"]
    # Ctrl-C as at a terminal: a test run started in the background (`cmd &` without job
    # control) hands its children SIGINT ignored, and Python then installs no handler.
    with _sigint_handled():
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env)  # fmt: skip
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        assert get(url)[0] == 200
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0 and "watch stopped" in err and "Traceback" not in err


# --------------------------------------------------------------------------- hardening
def request(url: str, path: str, method: str = "GET", host: str | None = None):
    """``(status, headers, body)`` of one bounded request; ``host``: the Host header
    to send ("" sends none)."""
    import http.client

    netloc = url.removeprefix("http://")
    conn = http.client.HTTPConnection(netloc, timeout=30)
    try:
        conn.putrequest(method, path, skip_host=host is not None)
        if host:
            conn.putheader("Host", host)
        conn.endheaders()
        r = conn.getresponse()
        return r.status, r.headers, r.read()
    finally:
        conn.close()


def test_a_report_is_served_only_from_its_own_folder(finished, tmp_path):
    """A store is data: its report column may name any file. Only a regular file inside
    <store>-reports/SWEEP/ (after symlinks) is served."""
    db, res = finished
    sid = res.sweep_id
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    page = tmp_path / "s-reports" / sid / "index.html"
    with Store.open(db) as st:
        st.set_report(sid, str(secret))
    with serving(db) as url:
        assert get(f"{url}/report/{sid}")[2] == b"<html><body>the full report</body></html>"
        for named in (page.parent / ".." / ".." / "secret.txt", page.parent):
            with Store.open(db) as st:
                st.set_report(sid, str(named))
            assert get(f"{url}/report/{sid}")[2] == b"<html><body>the full report</body></html>"
        page.unlink()
        page.symlink_to(secret)  # a link inside the folder that points out of it
        code, _, body = get(f"{url}/report/{sid}")
        assert code == 404 and b"SECRET" not in body
        assert f'href="/report/{sid}"' not in get(f"{url}/")[2].decode()
        page.unlink()
        inner = page.parent / "real.html"
        inner.write_text("<p>kept inside</p>")
        page.symlink_to(inner)  # a link that stays inside is fine
        assert get(f"{url}/report/{sid}")[2] == b"<p>kept inside</p>"


def test_the_host_header_names_this_server(finished):
    """DNS rebinding: a page on evil.example whose name now points at 127.0.0.1 sends
    `Host: evil.example:PORT`; it gets 421 and no data."""
    db, res = finished
    srv = make_server(
        Center(db), "127.0.0.1", 0, allow_hosts=["watch.example.org", "Other.Example:8443"]
    )
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    port = srv.server_address[1]
    url = f"http://127.0.0.1:{port}"
    try:
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}",
                     f"[::1]:{port}", "watch.example.org", "watch.example.org:443",
                     "other.example:8443"):  # fmt: skip
            assert request(url, "/api/sweeps", host=host)[0] == 200, host
        for host in (f"evil.example:{port}", "evil.example", f"localhost:{port + 1}",
                     "localhost", f"127.0.0.1.evil.example:{port}", "", f"::1:{port}",
                     f"localhost:{port}x"):  # fmt: skip
            code, _, body = request(url, "/api/sweeps", host=host)
            assert code == 421 and len(body) < 200 and res.sweep_id.encode() not in body, host
            assert str(db).encode() not in body
    finally:
        srv.shutdown()
        srv.server_close()
        t.join()
    from sweepjax.cli import build_parser

    args = build_parser().parse_args(["watch", "--allow-host", "a.example", "--allow-host", "b"])
    assert args.allow_host == ["a.example", "b"] and args.host == "127.0.0.1"


def _csp(headers) -> dict[str, str]:
    policy = headers["Content-Security-Policy"]
    return dict((d.strip().split(" ", 1) + [""])[:2] for d in policy.split(";"))


def test_every_response_says_nosniff_and_a_policy(finished):
    import base64
    import hashlib

    db, res = finished
    sid = res.sweep_id
    with serving(db) as url:
        host = url.removeprefix("http://")
        answers = {p: request(url, p) for p in ("/", "/api/sweeps", f"/sweep/{sid}",
                   f"/api/sweep/{sid}", f"/report/{sid}", "/nope", "/sweep/nope")}  # fmt: skip
        answers["421"] = request(url, "/", host="evil.example")
        answers["POST"] = request(url, "/", method="POST", host=host)
    assert answers["POST"][0] == 501 and answers["421"][0] == 421
    for what, (_, headers, _) in answers.items():
        assert headers["X-Content-Type-Options"] == "nosniff", what
        csp = _csp(headers)
        assert csp["default-src"] == "'none'" and csp["frame-ancestors"] == "'none'", what
        assert "unsafe-inline" not in csp.get("script-src", ""), what
    for p in ("/", f"/sweep/{sid}"):  # a live page may run its own script only
        code, headers, body = answers[p]
        scripts = re.findall(rb"<script>(.*?)</script>", body, re.S)
        assert code == 200 and len(scripts) == 1
        digest = base64.b64encode(hashlib.sha256(scripts[0]).digest()).decode()
        csp = _csp(headers)
        assert csp["script-src"] == f"'sha256-{digest}'"
        assert csp["connect-src"] == "'self'" and "style-src" in csp
    assert _csp(answers[f"/report/{sid}"][1])["img-src"] == "data:"  # its figures
    assert "script-src" not in _csp(answers["/nope"][1])  # text: no script at all


def test_head_is_answered_like_get(finished):
    db, res = finished
    sid = res.sweep_id
    with serving(db) as url:
        code, headers, body = request(url, f"/report/{sid}", method="HEAD")
        full = get(f"{url}/report/{sid}")[2]
        assert code == 200 and body == b"" and int(headers["Content-Length"]) == len(full)
        assert headers["Content-Type"].startswith("text/html")
        code, headers, body = request(url, "/", method="HEAD")
        assert code == 200 and body == b"" and int(headers["Content-Length"]) > 1000
        assert request(url, "/sweep/nope", method="HEAD")[:3:2] == (404, b"")


def test_not_found_bodies_name_no_path(finished, tmp_path):
    db, res = finished
    with serving(db) as url:
        for p in ("/sweep/nope", "/api/sweep/nope", "/report/nope", "/report/killed",
                  "/favicon.ico", "/sweep/", "/report/..%2F..%2Fetc%2Fpasswd"):  # fmt: skip
            code, _, body = get(url + p)
            assert code == 404 and len(body) < 200, p
            assert str(tmp_path).encode() not in body and b"s.db" not in body, p
        assert b"no sweep 'nope' in this store" in get(f"{url}/sweep/nope")[2]


def test_a_port_out_of_range_is_one_line_and_nothing_starts(finished, capsys, monkeypatch):
    db, _ = finished
    import sweepjax.cli.watch_server as ws

    def no_server(*a, **k):
        raise AssertionError("a server was started")

    monkeypatch.setattr(ws, "make_server", no_server)
    for port in ("99999", "-1", "65536", "eighty"):  # 99999 and -1 were a 22-line traceback
        with pytest.raises(SystemExit) as e:
            main(["watch", "--store", str(db), "--port", port])
        out, err = capsys.readouterr()
        assert e.value.code == 2 and out == "", port
        assert err.count("\n") == 1 and "--port" in err, port
        assert "out of range 0..65535" in err or "not a port number" in err, port


LAZY_PROBE = """
import sys, urllib.request
from http.server import ThreadingHTTPServer
from sweepjax.cli import main

ORIGINAL = ThreadingHTTPServer.serve_forever

def serve(self, poll_interval=0.5):  # listening: what has been imported so far?
    print("listening:", *[m for m in ("jax", "matplotlib") if m in sys.modules])
    port = self.server_address[1]
    import threading
    threading.Thread(target=ORIGINAL, args=(self, 0.05),
                     daemon=True).start()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as r:
        assert r.status == 200
    print("served /:", *[m for m in ("jax",) if m in sys.modules])
    raise KeyboardInterrupt

ThreadingHTTPServer.serve_forever = serve
sys.exit(main(["watch", "--store", sys.argv[1], "--port", "0"]))
"""


@pytest.mark.slow
def test_watch_listens_before_importing_jax_or_matplotlib(finished):
    """`watch` binds before the heavy modules load: jax never for the index, matplotlib
    (the report package) only when a page is rendered."""
    db, _ = finished
    out = subprocess.run([sys.executable, "-c", LAZY_PROBE, str(db)], capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "listening:" in lines and "served /:" in lines, out.stdout


def test_after_the_end_the_counts_agree_with_the_statuses(finished):
    """The last live row was written before the end (it says 4 training, 7 alive of 8);
    the stored result has 5 ok and 1 diverged of 6: the pages say 0 / 5 / 6."""
    db, res = finished
    sid = res.sweep_id
    ok = sum(m.status != "diverged" for m in res.members)
    assert (ok, len(res.members)) == (5, 6)
    with serving(db) as url:
        page = get(f"{url}/sweep/{sid}")[2].decode()
        assert "training / alive / members</td><td>0 / 5 / 6</td>" in page
        assert "5 ok, 1 diverged" in page
        doc = json.loads(get(f"{url}/api/sweep/{sid}")[2])
        assert (doc["active"], doc["alive"]) == (0, doc["counts"]["ok"] + doc["counts"]["stopped"])
        index = json.loads(get(f"{url}/api/sweeps")[2])
        done = next(s for s in index["sweeps"] if s["id"] == sid)
        assert (done["active"], done["alive"]) == (0, 5)
        assert "<td>0/5/6</td>" in get(f"{url}/")[2].decode()


def _png_pixel() -> bytes:
    """A valid 1x1 grey PNG."""
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data).to_bytes(4, "big")
        return len(data).to_bytes(4, "big") + kind + data + crc

    head = chunk(b"IHDR", bytes([0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0]))
    return (
        b"\x89PNG\r\n\x1a\n"
        + head
        + chunk(b"IDAT", zlib.compress(b"\x00\x80"))
        + chunk(b"IEND", b"")
    )


@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing")
def test_chromium_runs_the_report_under_its_policy(finished, tmp_path):
    """The report's inline script and data: images pass watch's Content-Security-Policy
    (the script counts the images that loaded)."""
    from sweepjax.report.html import Panel, render

    db, res = finished
    png = _png_pixel()
    page = tmp_path / "s-reports" / res.sweep_id / "index.html"
    page.write_text(render("r", "s", [Panel("p", [(png, "a pixel"), (png, "again")])]))
    try:
        with serving(db) as url:
            dom = _chromium_dom(f"{url}/report/{res.sweep_id}", tmp_path)
    finally:
        shutil.rmtree(tmp_path / "profile", ignore_errors=True)
    assert 'data-images-total="2"' in dom and 'data-images-ok="2"' in dom
