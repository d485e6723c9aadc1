"""Faults a sweep meets for real: a full disk at each of the store's write sites (injected
as SQLite and the OS raise it, and on a small tmpfs where mounting is allowed) and
SIGTERM from a scheduler. Each ends in one line with its exit code, leaves a store whose
``list`` and ``show`` agree, and a sweep that ``resume`` finishes to exactly the results
of an uninterrupted run.

Every in-process sweep has the same shape (4 members, 12 steps, chunks of 3), so the
compiled chunk program is reused across the tests."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sweepjax.cli import main
from sweepjax.store.db import Store

ROOT = Path(__file__).resolve().parents[1]
ARGS = [
    "coarse",
    "--dataset",
    "mnist-sample",
    "--trials",
    "4",
    "--steps",
    "12",
    "--batch-size",
    "32",
    "--eval-every",
    "3",
    "--chunk-steps",
    "3",
    "--schedule",
    "full",
    "--no-report",
]
FULL = sqlite3.OperationalError("database or disk is full")


class Faulty(sqlite3.Connection):
    """A connection that fails as a full disk does: the ``n``-th statement starting with
    ``prefix`` (every one: ``n=None``) raises ``error`` (or, ``at_commit``, the COMMIT of
    its transaction, which is where SQLite reports a full disk for a large write)."""

    faults: list[dict] = []

    def _check(self, sql: str) -> None:
        for f in Faulty.faults:
            if f.get("armed") and sql.strip().upper() == "COMMIT":
                f["armed"] = False
                raise f["error"]
            if sql.lstrip().startswith(f["prefix"]):
                f["seen"] = f.get("seen", 0) + 1
                if f["n"] is None or f["seen"] == f["n"]:
                    if f.get("at_commit"):
                        f["armed"] = True
                    else:
                        raise f["error"]

    def execute(self, sql, *args):
        self._check(sql)
        return super().execute(sql, *args)

    def executemany(self, sql, *args):
        self._check(sql)
        return super().executemany(sql, *args)


@pytest.fixture
def faults(monkeypatch):
    """``faults(prefix, n=1, at_commit=False, error=FULL)``: arm a fault; every store
    opened after it uses :class:`Faulty`."""
    real = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect", lambda *a, **k: real(*a, factory=Faulty, **k))
    # A checkpoint after every chunk (not throttled), so the n-th write is at step 3n.
    monkeypatch.setattr("sweepjax.flows.runner.CHECKPOINT_SHARE", 0.999)
    Faulty.faults = []

    def arm(prefix, n=1, at_commit=False, error=FULL):
        Faulty.faults.append({"prefix": prefix, "n": n, "at_commit": at_commit, "error": error})

    yield arm
    Faulty.faults = []


def cli(capsys, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run's members (what every resumed sweep must end with)."""
    from contextlib import redirect_stdout
    from io import StringIO

    store = tmp_path_factory.mktemp("ref") / "ref.db"
    buf = StringIO()
    with redirect_stdout(buf):
        assert main([*ARGS, "--store", str(store), "--format", "json"]) == 0
    return json.loads(buf.getvalue())["members"]


def agree(capsys, store: Path, sid: str = "c1") -> tuple[str, int, int]:
    """``list`` and ``show`` of ``sid``: assert they agree on status, members and steps
    done; return them."""
    code, out, _ = cli(capsys, "list", "--store", store)
    assert code == 0
    row = next(line.split() for line in out.splitlines() if line.startswith(sid + " "))
    status, members, steps = row[3], int(row[4]), row[5]
    code, out, _ = cli(capsys, "show", sid, "--store", store)
    assert code == 0
    assert re.search(rf": {members} members x", out), out
    done = steps.split("/")[0]
    if status != "finished":
        assert f"status: {status}" in out and f"progress: step {steps}" in out, out
    else:
        assert "status:" not in out and "winner" in out, out
    return status, members, int(done)


def one_line(err: str, *words: str) -> str:
    """The one error line (after the run's own header, if it got that far)."""
    lines = err.strip().splitlines()
    assert "Traceback" not in err and sum("error" in x for x in lines) == 1, err
    lines = lines[-1:]
    assert lines[0].startswith("sweepjax: error: "), err
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def finish(capsys, store: Path, reference, resume: bool = True) -> None:
    """Space freed: the same command (plus --resume) ends with the uninterrupted run's
    members."""
    argv = [*ARGS, "--store", store, "--format", "json", *(["--resume"] if resume else [])]
    code, out, err = cli(capsys, *argv)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["sweep_id"] == "c1" and doc["members"] == reference
    assert agree(capsys, store)[0] == "finished"


@pytest.mark.parametrize(
    "prefix, n, at_commit, error, words",
    [
        # the sweep's row: nothing exists yet; the same command starts it again
        ("INSERT INTO sweeps", 1, False, FULL, ("a new sweep", "run the command again")),
        # its first timing record, then a checkpoint (reported at COMMIT, as SQLite does),
        # one as the OS reports it, and the results: kept interrupted, resumable
        ("UPDATE sweeps SET timing", 1, False, FULL, ("sweep c1's timing", "at step 0/12")),
        ("INSERT OR REPLACE INTO checkpoints", 2, True, FULL, ("step 6", "at step 3/12")),
        (
            "INSERT OR REPLACE INTO checkpoints",
            1,
            False,
            OSError(errno.ENOSPC, "No space left on device"),
            ("checkpoint at step", "at step 0/12"),
        ),
        ("INSERT INTO members", 1, False, FULL, ("sweep c1's results",)),
    ],
)
def test_full_disk_one_line_consistent_store_resumable(
    tmp_path, capsys, faults, reference, prefix, n, at_commit, error, words
):
    store = tmp_path / "s.db"
    faults(prefix, n=n, at_commit=at_commit, error=error)
    code, _, err = cli(capsys, *ARGS, "--store", store)
    assert code == 2
    line = one_line(err, "the disk is full", str(store), "needed", *words)
    Faulty.faults = []  # space freed
    if prefix == "INSERT INTO sweeps":
        with Store.open(store) as st:
            assert st.list_sweeps() == []  # nothing half-written
        finish(capsys, store, reference, resume=False)
        return
    assert "rerun the same command with --resume" in line
    status, members, done = agree(capsys, store)
    assert (status, members) == ("interrupted", 4)
    with Store.open(store) as st:
        ck = st.conn.execute("SELECT step FROM checkpoints").fetchone()
    assert done == (ck[0] if ck else 0)  # the row says what the checkpoint holds
    assert f"at step {done}/12" in line
    finish(capsys, store, reference)


def test_full_disk_on_resume_and_on_the_interrupted_mark(tmp_path, capsys, faults, reference):
    """The checkpoint's write fails and so does the small write marking the sweep
    interrupted: still one line; the row says running (this process's pid), list and
    show agree, and resume continues it. A resume whose first write fails leaves it as
    it was."""
    store = tmp_path / "s.db"
    faults("INSERT OR REPLACE INTO checkpoints", n=2, at_commit=True)
    faults("UPDATE sweeps SET status='interrupted'", n=None)
    code, _, err = cli(capsys, *ARGS, "--store", store)
    assert code == 2
    one_line(err, "the disk is full", "checkpoint at step", "--resume")
    Faulty.faults = []
    status, _, done = agree(capsys, store)
    assert status == "running" and done > 0  # this process: a dead one lists interrupted
    faults("UPDATE sweeps SET status='running'")  # resume's first write
    code, _, err = cli(capsys, *ARGS, "--store", store, "--resume")
    assert code == 2
    one_line(err, "the disk is full", "sweep c1's status", f"at step {done}/12")
    Faulty.faults = []
    assert agree(capsys, store)[:2] == ("interrupted", 4)
    finish(capsys, store, reference)


def test_an_unexpected_crash_says_the_sweep_is_kept_and_resume_finishes_it(
    tmp_path, capsys, faults, reference
):
    """A bug or a lost device mid-sweep (here: the second checkpoint's write raises a
    RuntimeError) is no error of ours: it propagates with its traceback (exit 1 from the
    CLI). The sweep is kept interrupted at its last checkpoint, the traceback's note says
    so in one line, and resume finishes it to the uninterrupted members."""
    store = tmp_path / "s.db"
    faults("INSERT OR REPLACE INTO checkpoints", n=2, error=RuntimeError("device lost"))
    with pytest.raises(RuntimeError, match="device lost") as e:
        main([*ARGS, "--store", str(store)])
    Faulty.faults = []
    status, members, done = agree(capsys, store)
    assert (status, members, done) == ("interrupted", 4, 3)  # the first checkpoint's step
    assert e.value.__notes__ == [
        "sweepjax: sweep c1 is kept, interrupted at step 3/12 (its last checkpoint); once "
        "the cause is fixed, the same command with `resume` continues it"
    ]
    finish(capsys, store, reference)


def test_full_disk_while_creating_the_store_leaves_no_file(tmp_path, capsys, faults, reference):
    store = tmp_path / "s.db"
    faults("CREATE TABLE sweeps")
    code, _, err = cli(capsys, *ARGS, "--store", store)
    assert code == 2
    one_line(err, "the disk is full", "a new store", str(store))
    assert sorted(os.listdir(tmp_path)) == []  # no half-made store (nor -wal, -shm)
    Faulty.faults = []
    finish(capsys, store, reference, resume=False)


def test_full_disk_on_live_progress_keeps_the_sweep_going(tmp_path, capsys, faults, reference):
    """Live progress is a view: its write failing is one note, and the sweep finishes."""
    store = tmp_path / "s.db"
    faults("INSERT OR REPLACE INTO live")
    code, out, err = cli(capsys, *ARGS, "--store", store, "--format", "json")
    assert code == 0
    assert "note: live progress not written (the disk is full" in err
    assert json.loads(out)["members"] == reference


# --------------------------------------------------------------------------- room
def test_checkpoint_estimate_matches_the_stored_checkpoint(tmp_path, monkeypatch):
    """The estimate the room check uses (members x params x copies x 4 bytes + curves)
    is within 2% of the checkpoint the sweep really stores (sgd: 2 copies, params and
    best params; adam: 4, with its two moments)."""
    import sweepjax
    from sweepjax.flows import faults
    from sweepjax.flows.sweep import Callbacks, SweepInterrupted

    seen = {}
    real = faults.checkpoint_bytes
    monkeypatch.setattr(faults, "checkpoint_bytes", lambda *a: seen.setdefault(len(seen), real(*a)))
    for i, opt in enumerate(("sgd", "adam")):
        store = tmp_path / f"{opt}.db"
        with pytest.raises(SweepInterrupted):  # stopped after the first chunk
            sweepjax.coarse(
                dataset="mnist-sample", trials=4, steps=12, batch_size=32, eval_every=3,
                chunk_steps=3, schedule="full", optimizer=opt, store=str(store),
                report=False, callbacks=Callbacks(stop=lambda: True),
            )  # fmt: skip
        with Store.open(store) as st:
            blob = st.conn.execute("SELECT LENGTH(blob) FROM checkpoints").fetchone()[0]
        est, how = seen[i]
        assert how == f"4 members x 7,850 params x {2 if opt == 'sgd' else 4} copies x 4 bytes"
        assert est == pytest.approx(blob, rel=0.02), (opt, est, blob)


def test_a_sweep_that_would_not_fit_is_refused_before_it_starts(
    tmp_path, capsys, monkeypatch, reference
):
    """Room for less than the checkpoints: one line naming what they need and what is
    free, exit 2, no sweep row (2.25 x 4 members x (7,850 params x 2 copies x 4 bytes +
    5 evaluations x 5 curves x 4 bytes) = 566 kB)."""
    store = tmp_path / "s.db"
    Store.open(store, create=True).close()
    monkeypatch.setattr("sweepjax.store.space.free_bytes", lambda p: 50_000)
    code, _, err = cli(capsys, *ARGS, "--store", store)
    assert code == 2
    one_line(err, "checkpoints need about 566 kB", "4 members x 7,850 params x 2", "50 kB free")
    with Store.open(store) as st:
        assert st.list_sweeps() == []


# --------------------------------------------------------------------------- tmpfs
TMPFS_SCRIPT = r"""
set -u
mount -t tmpfs -o size=300k tmpfs "$MNT" || exit 77
run() { "$PY" -m sweepjax "$@" --store "$MNT/s.db"; }
# 0: the issue's tmpfs: too small for the checkpoints, refused before anything is written
run coarse $SWEEP > "$OUT/0.out" 2> "$OUT/0.err"; echo $? > "$OUT/0.rc"
run list > "$OUT/0.list" 2>&1
# 1: room to start, then another writer fills the disk while the sweep trains
mount -o remount,size=64m "$MNT"
run coarse $SWEEP > "$OUT/1.out" 2> "$OUT/1.err" &
P=$!
"$PY" -c "
import sqlite3, sys, time
for _ in range(6000):
    try:
        c = sqlite3.connect('file:$MNT/s.db?mode=ro', uri=True, timeout=1)
        if c.execute('SELECT COUNT(*) FROM checkpoints').fetchone()[0]:
            sys.exit(0)
    except sqlite3.Error:
        pass
    time.sleep(0.02)
"
dd if=/dev/zero of="$MNT/fill" bs=64k 2> /dev/null
wait $P; echo $? > "$OUT/1.rc"
run list > "$OUT/list1.out" 2>&1
run show c1 > "$OUT/show1.out" 2>&1
run coarse $SWEEP --resume > "$OUT/2.out" 2> "$OUT/2.err"; echo $? > "$OUT/2.rc"
rm "$MNT/fill"  # space freed
run coarse $SWEEP --resume --format json > "$OUT/3.out" 2> "$OUT/3.err"; echo $? > "$OUT/3.rc"
run list > "$OUT/list3.out" 2>&1
"""


@pytest.mark.slow
def test_full_tmpfs_for_real(tmp_path):
    """On a real small filesystem (a tmpfs in a private mount namespace, ``unshare
    -rm``): the issue's 300 kB tmpfs is refused before anything is written; a disk filled
    by another writer mid-sweep ends the sweep, and its resume, in one line, exit 2, with
    list and show agreeing; once the space is freed, --resume finishes it."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1) to mount a private tmpfs")
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {tmp_path}"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not allowed here ({probe.stderr.strip()})")
    mnt, out = tmp_path / "mnt", tmp_path / "out"
    mnt.mkdir()
    out.mkdir()
    # adam: a 8 MB checkpoint, more than the WAL keeps allocated (4 MB), so a write
    # after the fill needs new blocks; long enough that one comes after the fill
    sweep = (
        "--dataset mnist-sample --trials 64 --steps 600 --optimizer adam --schedule full "
        "--chunk-steps 10 --no-report"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "JAX_PLATFORMS": "cpu",
        "MNT": str(mnt),
        "OUT": str(out),
        "PY": sys.executable,
        "SWEEP": sweep,
    }
    subprocess.run(["unshare", "-rm", "sh", "-c", TMPFS_SCRIPT], env=env, timeout=600)

    def error_line(i: int) -> str:
        assert (out / f"{i}.rc").read_text().strip() == "2", (out / f"{i}.err").read_text()
        err = (out / f"{i}.err").read_text()
        line = [x for x in err.splitlines() if x.startswith("sweepjax: error")]
        assert len(line) == 1 and "Traceback" not in err, err
        return line[0]

    line = error_line(0)
    assert "checkpoints need about 18 MB" in line and "kB free" in line  # a 300 kB disk
    listed = (out / "0.list").read_text()  # no sweep row (at most an empty store)
    assert "no sweeps yet" in listed or "no sweepjax store" in listed, listed
    line = error_line(1)
    assert "the disk is full" in line and "needed" in line and "--resume" in line
    error_line(2)  # still full: refused or failed, in one line
    row = next(x.split() for x in (out / "list1.out").read_text().splitlines() if x[:3] == "c1 ")
    show = (out / "show1.out").read_text()
    assert row[3] == "interrupted" and f"status: {row[3]}" in show, show
    assert f": {row[4]} members x" in show and f"progress: step {row[5]}" in show, show
    assert (out / "3.rc").read_text().strip() == "0", (out / "3.err").read_text()
    assert json.loads((out / "3.out").read_text())["sweep_id"] == "c1"
    assert " finished " in (out / "list3.out").read_text()


# --------------------------------------------------------------------------- SIGTERM
@pytest.mark.slow
def test_sigterm_checkpoints_now_exits_143_and_resume_continues(tmp_path, capsys):
    """SIGTERM (a scheduler's preemption) stops at the next chunk boundary: the
    checkpoint of the step reached is stored at once (not the last throttled one), the
    sweep is interrupted, one line, exit 143; --resume continues from that step to
    exactly the uninterrupted results."""
    argv = [*ARGS, "--steps", "600", "--trials", "12"]  # the later flags win
    store = tmp_path / "t.db"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    err_path = tmp_path / "stderr.txt"
    with err_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sweepjax", *argv, "--store", str(store)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        seen = 0
        try:
            deadline = time.time() + 120
            while time.time() < deadline and proc.poll() is None:
                try:
                    con = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=1)
                    row = con.execute("SELECT MAX(step) FROM live").fetchone()
                    con.close()
                except sqlite3.Error:
                    row = None
                if row and row[0] and row[0] >= 30:
                    seen = row[0]
                    break
                time.sleep(0.02)
            proc.send_signal(signal.SIGTERM)
        finally:
            proc.wait(timeout=60)
    err = err_path.read_text()
    assert proc.returncode == 143, err
    assert 30 <= seen < 600
    # the run's own notes (its header line), then the one line of the stop
    assert "Traceback" not in err and err.count("SIGTERM") == 1, err
    lines = [err.strip().splitlines()[-1]]
    assert lines[0].startswith("sweepjax: SIGTERM: sweep c1 stopped") and "--resume" in lines[0]
    with Store.open(store) as st:
        row = st.sweep_row("c1")
        ck = st.conn.execute("SELECT step FROM checkpoints").fetchone()[0]
        last_live = st.conn.execute("SELECT MAX(step) FROM live").fetchone()[0]
    assert row.status == "interrupted"
    assert row.steps_done == ck == last_live >= seen  # nothing lost: the step reached
    assert f"at step {ck}/600" in lines[0]

    code, out, err = cli(capsys, *argv, "--store", store, "--resume", "--format", "json")
    assert code == 0, err
    assert f"resuming coarse sweep c1 at step {ck}/600" in err
    resumed = json.loads(out)
    code, out, _ = cli(capsys, *argv, "--store", tmp_path / "fresh.db", "--format", "json")
    assert code == 0
    assert resumed["members"] == json.loads(out)["members"]


# --------------------------------------------------------------------------- closed pipe
@pytest.mark.slow
@pytest.mark.parametrize("command", [["list"], ["show", "c1"], ["export", "c1"]])
def test_a_closed_pipe_ends_quietly(tmp_path, reference, command):
    """``sweepjax show c1 | head``: the reader leaves before the output is written; the
    command ends without a traceback, with the shell's SIGPIPE status 141."""
    store = tmp_path / "p.db"
    assert main([*ARGS, "--store", str(store)]) == 0
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    with subprocess.Popen(
        [sys.executable, "-m", "sweepjax", *command, "--store", str(store)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        proc.stdout.close()  # the reader is gone before the command prints (imports: ~s)
        err = proc.stderr.read().decode()
        code = proc.wait(timeout=60)
    assert code == 141, err
    assert err == ""
