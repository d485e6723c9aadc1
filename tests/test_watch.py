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
from sweepjax.store.db import Store
from sweepjax.store.live import LiveWriter, progress
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
        sid = st.create_sweep("coarse", {"model": {"kind": "mlp"}}, {"name": "mnist"}, {},
                              4096, 3000)  # fmt: skip
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


@pytest.mark.slow
def test_ctrl_c_stops_the_server_process(finished):
    db, _ = finished
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "sweepjax", "watch", "--store", str(db), "--port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)  # fmt: skip
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
