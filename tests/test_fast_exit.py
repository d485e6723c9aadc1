"""``python -m sweepjax`` ends without the interpreter's teardown (cli/fast_exit.py), and
loses nothing by it: exit functions run, buffered output is written, the exit code kept;
where something could be lost (another thread, a profiler) the exit is the ordinary one."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

from sweepjax.cli import fast_exit


def test_the_fast_exit_is_refused_where_something_could_be_lost(monkeypatch):
    monkeypatch.delenv(fast_exit.ENV, raising=False)
    assert fast_exit.allowed()
    monkeypatch.setenv(fast_exit.ENV, "off")
    assert not fast_exit.allowed()
    monkeypatch.setenv(fast_exit.ENV, "1")
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait)  # not a daemon: the interpreter waits
    worker.start()
    try:
        assert not fast_exit.allowed()
    finally:
        stop.set()
        worker.join()
    assert fast_exit.allowed()
    daemon = threading.Thread(target=stop.wait, daemon=True)
    daemon.start()
    assert fast_exit.allowed()  # a daemon thread would be killed at any exit
    previous = sys.getprofile()
    sys.setprofile(lambda *a: None)
    try:
        assert not fast_exit.allowed()  # a profiler writes its results after we return
    finally:
        sys.setprofile(previous)


def test_exit_functions_run_and_buffered_writes_land(tmp_path):
    code = textwrap.dedent(f"""
        import atexit, sys
        from sweepjax.cli.fast_exit import exit
        atexit.register(lambda: open({str(tmp_path / "atexit")!r}, "w").write("ran"))
        kept = open({str(tmp_path / "kept")!r}, "w", buffering=1 << 20)  # never closed
        kept.write("buffered")
        class Cycle:
            pass
        c = Cycle()
        c.me = c  # garbage only the cycle collector would free
        c.f = open({str(tmp_path / "cycle")!r}, "wb", buffering=1 << 20)
        c.f.write(b"buffered too")
        del c
        sys.stdout.write("unflushed stdout")
        exit(3)
        """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 3, out.stderr
    assert out.stdout == "unflushed stdout"
    assert (tmp_path / "atexit").read_text() == "ran"
    assert (tmp_path / "kept").read_text() == "buffered"
    assert (tmp_path / "cycle").read_text() == "buffered too"
