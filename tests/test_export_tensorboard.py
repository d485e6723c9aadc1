"""A sweep as TensorBoard runs (``export --format tensorboard --logdir DIR``), read back
from the event files without TensorBoard: the TFRecord framing parsed here (length, masked
CRC-32C of the length, data, masked CRC-32C of the data; both CRCs checked) and each record
decoded as tensorboardX's ``Event``. Checked against the store: one run per member, the
scalars equal the stored curves at the stored steps, each run's HParams session holds the
member's hyperparameters, status and best accuracy, the experiment lists the searched axes
and the metrics; a missing tensorboardX, a folder already written, or a failed write is one
line, exit 2, nothing written.

One tiny halving sweep on the bundled sample (8 members, 30 steps), made once; the
diverged, replicated and integer-axis cases on the report tests' synthetic sweep.
"""

from __future__ import annotations

import dataclasses
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import sweepjax
from sweepjax.cli import main
from sweepjax.errors import ConfigError
from sweepjax.store import tensorboard_export as tbe
from sweepjax.store.db import Store
from sweepjax.store.optuna_export import sweep_clock

pytest.importorskip("tensorboardX")
from tensorboardX.proto import event_pb2, plugin_hparams_pb2  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(dataset="mnist-sample", steps=30, batch_size=64, report=False)


# --------------------------------------------------------------------------- reading back
def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


CRC_TABLE = _crc32c_table()


def masked_crc32c(data: bytes) -> int:
    """TFRecord's checksum: CRC-32C (Castagnoli), rotated right by 15, plus a constant."""
    c = 0xFFFFFFFF
    for b in data:
        c = CRC_TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    c ^= 0xFFFFFFFF
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def records(path: Path) -> list[bytes]:
    """The records of one TFRecord file, each checksum checked."""
    raw, out, i = path.read_bytes(), [], 0
    while i < len(raw):
        head = raw[i : i + 8]
        (n,) = struct.unpack("<Q", head)
        (head_crc,) = struct.unpack("<I", raw[i + 8 : i + 12])
        data = raw[i + 12 : i + 12 + n]
        (data_crc,) = struct.unpack("<I", raw[i + 12 + n : i + 16 + n])
        assert head_crc == masked_crc32c(head) and data_crc == masked_crc32c(data)
        out.append(data)
        i += 16 + n
    assert i == len(raw)
    return out


def events(folder: Path) -> list:
    """The events of a run folder's one events file (its own, not its subfolders')."""
    files = sorted(folder.glob("events.out.tfevents.*"))
    assert len(files) == 1, files
    evs = [event_pb2.Event.FromString(r) for r in records(files[0])]
    assert evs[0].file_version == "brain.Event:2"
    return evs[1:]


class Run:
    """One run read back: scalars ``{tag: [(step, value, wall)]}`` and the hparams
    plugin records ``{tag: HParamsPluginData}`` with their steps and walls."""

    def __init__(self, folder: Path):
        self.scalars: dict[str, list[tuple[int, float, float]]] = {}
        self.plugin: dict[str, tuple[int, float, object]] = {}
        self.steps: list[int] = []
        for ev in events(folder):
            self.steps.append(ev.step)
            for v in ev.summary.value:
                if v.metadata.plugin_data.plugin_name == "hparams":
                    data = plugin_hparams_pb2.HParamsPluginData.FromString(
                        v.metadata.plugin_data.content
                    )
                    assert v.tag not in self.plugin
                    self.plugin[v.tag] = (ev.step, ev.wall_time, data)
                else:
                    self.scalars.setdefault(v.tag, []).append(
                        (ev.step, v.simple_value, ev.wall_time)
                    )

    @property
    def start(self):
        return self.plugin[tbe.SESSION_START_TAG][2].session_start_info

    @property
    def end(self):
        return self.plugin[tbe.SESSION_END_TAG][2].session_end_info

    def hparams(self) -> dict[str, float]:
        return {k: v.number_value for k, v in self.start.hparams.items()}


def experiment(folder: Path):
    (ev,) = events(folder)
    (v,) = ev.summary.value
    assert v.tag == tbe.EXPERIMENT_TAG and v.metadata.plugin_data.plugin_name == "hparams"
    return plugin_hparams_pb2.HParamsPluginData.FromString(
        v.metadata.plugin_data.content
    ).experiment


def status_name(end) -> str:
    from tensorboardX.proto import api_pb2

    return api_pb2.Status.Name(end.status)


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A halving sweep (stopped members), stored and read back with its curves."""
    store = str(tmp_path_factory.mktemp("tb") / "s.db")
    sid = sweepjax.coarse(trials=8, schedule="halving", store=store, **TINY).sweep_id
    with Store.open(store) as st:
        return store, st.load_sweep(sid, curves=True)


def synthetic():
    from tests.test_report import synthetic as make

    return make(diverged=(10,))  # 12 members, lr and l2 searched, member 10 diverged


# --------------------------------------------------------------------------- tests
def test_cli_writes_one_run_per_member_matching_the_store(sweep, tmp_path, capsys):
    store, r = sweep
    logdir = tmp_path / "runs"
    argv = ["export", r.sweep_id, "--store", store, "--format", "tensorboard"]
    assert main([*argv, "--logdir", str(logdir)]) == 0
    err = capsys.readouterr().err
    assert f"8 runs (8 succeeded) written to {logdir / r.sweep_id}" in err
    assert f"tensorboard --logdir {logdir}" in err
    root = logdir / r.sweep_id
    assert sorted(p.name for p in logdir.iterdir()) == [r.sweep_id]  # no hidden leftovers
    runs = sorted(p.name for p in root.iterdir() if p.is_dir())
    assert runs == [f"member-{m.id:04d}" for m in r.members]

    exp = experiment(root)
    assert exp.name == r.sweep_id and "halving" in exp.description
    axes = {
        h.name: (h.domain_interval.min_value, h.domain_interval.max_value) for h in exp.hparam_infos
    }
    assert list(axes) == list(r.space) == ["lr", "l2"]
    for name, (lo, hi) in r.space.items():
        assert axes[name] == pytest.approx((lo, hi), rel=1e-12)
    assert [m.name.tag for m in exp.metric_infos] == list(tbe.METRICS)
    assert {"best_val_acc", "val_acc", "val_loss", "train_loss", "train_acc", "update_ratio"} == {
        m.name.tag for m in exp.metric_infos
    }

    stopped = 0
    for i, m in enumerate(r.members):
        run = Run(root / f"member-{m.id:04d}")
        # searched, then what it trained with (softmax, sgd: no width, no momentum)
        assert run.hparams() == pytest.approx(
            {"lr": m.lr, "l2": m.l2, "lr_decay": 1.0, "dropout": 0.0, "init_scale": m.init_scale},
            rel=1e-12,
        )
        assert run.start.group_name == ""
        assert status_name(run.end) == "STATUS_SUCCESS"  # ok, or stopped by halving
        for tag in tbe.CURVES:
            row = np.asarray(getattr(r.curves, tag)[i], np.float64)
            fin = np.isfinite(row)
            got = run.scalars[tag]
            assert [s for s, _, _ in got] == [int(s) for s in r.curves.step[fin]]
            np.testing.assert_allclose([v for _, v, _ in got], row[fin], rtol=1e-6)
        ((step, best, _),) = run.scalars["best_val_acc"]
        assert best == pytest.approx(m.best_val_acc, rel=1e-6)
        assert step == run.scalars["val_acc"][-1][0]  # the last value the HParams view reads
        assert run.steps == sorted(run.steps)  # a step going back drops points in TensorBoard
        if m.status == "stopped":
            stopped += 1
            assert run.scalars["val_acc"][-1][0] <= m.stopped_at < r.config.train.steps
    assert stopped >= 1, "halving stopped no member: the test sweep is too short"


def test_walls_follow_the_sweeps_clock(sweep, tmp_path):
    """Each run starts and ends with its member (the Optuna timeline's clock), inside the
    sweep's life; a member stopped at a rung ends before one that trained to the end."""
    store, r = sweep
    with Store.open(store) as st:
        row = st.sweep_row(r.sweep_id)
        clock = sweep_clock(st, r)
    done = tbe.export_runs(r, tmp_path, clock=clock)
    assert done.path == tmp_path / r.sweep_id and done.runs == 8
    ends = {}
    for m in r.members:
        run = Run(done.path / f"member-{m.id:04d}")
        start, end = run.start.start_time_secs, run.end.end_time_secs
        assert row.created <= start <= end <= row.finished
        walls = [w for _, _, w in run.scalars["val_acc"]]
        assert walls == sorted(walls) and start <= walls[0] and walls[-1] <= end + 1e-6
        ends[m.id] = (m.stopped_at or 30, end)
    by_step = sorted(ends.values())
    assert [e for _, e in by_step] == sorted(e for _, e in by_step)
    assert by_step[0][1] < by_step[-1][1]
    created = experiment(done.path).time_created_secs
    assert row.created <= created <= min(e for _, e in by_step)


def test_diverged_replicas_integer_axes_and_an_unfinished_sweep(tmp_path):
    """Diverged -> FAILURE with its curves up to the divergence (NaN after it skipped) and
    its best accuracy before it; replicas of a config share a session group; a searched
    whole-number axis is an interval of the experiment; the axes not searched are in each
    run's hparams; an unfinished sweep's ok members are RUNNING."""
    r = synthetic()
    ms = [
        dataclasses.replace(m, hidden=8 + i, config=i // 2, replica=i % 2, dropout=0.25)
        for i, m in enumerate(r.members)
    ]
    r = dataclasses.replace(r, members=ms, space={**r.space, "hidden": [8, 24]})
    done = tbe.export_runs(r, tmp_path / "a" / "b")
    assert done.states["STATUS_SUCCESS"] == 11 and done.states["STATUS_FAILURE"] == 1
    exp = experiment(done.path)
    assert [h.name for h in exp.hparam_infos] == ["lr", "l2", "hidden"]
    hidden = exp.hparam_infos[2].domain_interval
    assert (hidden.min_value, hidden.max_value) == (8.0, 24.0)
    for i, m in enumerate(r.members):
        run = Run(done.path / f"member-{m.id:04d}")
        assert run.hparams() == pytest.approx(
            {"lr": m.lr, "l2": m.l2, "hidden": 8 + i, "lr_decay": 1.0, "dropout": 0.25}
        )
        assert run.start.group_name == f"{r.sweep_id}/config-{i // 2:04d}"
        want = "STATUS_FAILURE" if i == 10 else "STATUS_SUCCESS"
        assert status_name(run.end) == want
        n = 2 if i == 10 else len(r.curves.step)  # the synthetic curves are NaN after 2
        assert [s for s, _, _ in run.scalars["train_loss"]] == list(r.curves.step[:n])
    diverged = Run(done.path / "member-0010")
    assert diverged.scalars["best_val_acc"][0][1] == pytest.approx(r.members[10].best_val_acc)

    running = dataclasses.replace(r, status="running")
    specs = tbe.run_specs(running)
    assert [s.status for s in specs].count("STATUS_RUNNING") == 11
    assert specs[10].status == "STATUS_FAILURE"
    assert tbe.run_specs(dataclasses.replace(r, status="interrupted"))[0].status == "STATUS_UNKNOWN"


def test_a_folder_already_written_is_refused_and_nothing_changes(sweep, tmp_path, capsys):
    store, r = sweep
    logdir = tmp_path / "runs"
    argv = ["export", r.sweep_id, "--store", store, "--format", "tensorboard", "--logdir"]
    assert main([*argv, str(logdir)]) == 0
    before = sorted((p, p.stat().st_size) for p in logdir.rglob("*"))
    capsys.readouterr()
    assert main([*argv, str(logdir)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "already exists and is not empty" in err and "another --logdir" in err
    assert sorted((p, p.stat().st_size) for p in logdir.rglob("*")) == before
    # an empty folder of that name is not a mix: it is written
    (tmp_path / "empty" / r.sweep_id).mkdir(parents=True)
    assert main([*argv, str(tmp_path / "empty")]) == 0
    assert len(list((tmp_path / "empty" / r.sweep_id).iterdir())) == 9
    # a file as the logdir; flags of the wrong format; no --logdir
    (tmp_path / "file").write_text("x")
    capsys.readouterr()
    assert main([*argv, str(tmp_path / "file")]) == 2
    assert "is a file" in capsys.readouterr().err
    assert main(["export", r.sweep_id, "--store", store, "--logdir", str(tmp_path / "j")]) == 2
    assert "--format tensorboard" in capsys.readouterr().err
    assert main(argv[:-1]) == 2
    assert "needs --logdir" in capsys.readouterr().err
    assert not (tmp_path / "j").exists()


def test_missing_tensorboardx_is_one_line_exit_2(sweep, tmp_path, monkeypatch, capsys):
    store, r = sweep
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # what an absent package raises
    with pytest.raises(ConfigError, match="pip install 'sweepjax\\[tensorboard\\]'"):
        tbe.export_runs(r, tmp_path / "runs")
    argv = ["export", r.sweep_id, "--store", store, "--format", "tensorboard"]
    assert main([*argv, "--logdir", str(tmp_path / "runs")]) == 2
    assert capsys.readouterr().err == f"sweepjax: error: {tbe.TENSORBOARDX_MISSING}\n"
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_leaves_nothing(sweep, tmp_path, monkeypatch):
    """A write that fails part-way (a full disk) is one line, and neither the sweep's folder,
    its hidden working copy nor the folders the export made are left behind."""
    _, r = sweep
    real, calls = tbe._write_run, []

    def fail_third(proto, folder, run, wall):
        calls.append(run.member)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real(proto, folder, run, wall)

    monkeypatch.setattr(tbe, "_write_run", fail_third)
    (tmp_path / "keep").mkdir()
    with pytest.raises(ConfigError) as e:
        tbe.export_runs(r, tmp_path / "new" / "deeper")
    assert str(e.value) == (
        f"cannot write the TensorBoard runs to {tmp_path / 'new' / 'deeper' / r.sweep_id} "
        "(No space left on device); free some space, or give another --logdir"
    )
    assert len(calls) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep"]
    # a folder it cannot make its working copy in: the folders it made are gone too

    def refuse(**kw):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tbe.tempfile, "mkdtemp", refuse)
    with pytest.raises(ConfigError, match=r"\(Permission denied\); check that you can write"):
        tbe.export_runs(r, tmp_path / "new" / "deeper")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep"]


def test_a_pbt_members_schedule_is_written_as_scalars(tmp_path):
    """A member whose values changed while it trained (PBT's history) gets ``schedule/lr``
    etc. at each evaluated step: the value in force over the steps up to it. A member
    that kept its values gets none (its hparams say them)."""
    r = synthetic()  # curves at steps 25, 50, ..., 200
    r.history = [
        {"step": 0, "member": m.id, "lr": m.lr, "l2": m.l2, "lr_decay": 1.0} for m in r.members
    ]
    r.history += [
        {"step": 75, "member": 0, "lr": 0.5, "l2": 1e-3, "lr_decay": 1.0},
        {"step": 150, "member": 0, "lr": 0.25, "l2": 1e-3, "lr_decay": 1.0},
    ]
    done = tbe.export_runs(r, tmp_path)
    run = Run(done.path / "member-0000")
    lr0 = r.members[0].lr
    want = [(25, lr0), (50, lr0), (75, lr0), (100, 0.5), (125, 0.5), (150, 0.5)]
    want += [(175, 0.25), (200, 0.25)]
    got = [(s, v) for s, v, _ in run.scalars["schedule/lr"]]
    assert [s for s, _ in got] == [s for s, _ in want]
    np.testing.assert_allclose([v for _, v in got], [v for _, v in want], rtol=1e-6)
    assert [v for _, v, _ in run.scalars["schedule/l2"]][-1] == pytest.approx(1e-3)
    assert not any(t.startswith("schedule/") for t in Run(done.path / "member-0001").scalars)


@pytest.mark.slow
def test_cli_end_to_end_in_a_fresh_process_without_tensorboardx(tmp_path):
    """The commands as a person types them: a replicated sweep, its runs (one session
    group per config); then the same export in an interpreter where tensorboardX cannot be
    imported: one line, exit 2, nothing written."""
    store, logdir = str(tmp_path / "s.db"), tmp_path / "runs"

    def sj(*argv, block=False):
        pre = "sys.modules['tensorboardX'] = None; " if block else ""
        code = f"import sys; {pre}from sweepjax.cli import main; sys.exit(main({list(argv)!r}))"
        return subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=600
        )

    p = sj(
        "coarse", "--dataset", "mnist-sample", "--trials", "4", "--replicas", "2",
        "--steps", "30", "--batch-size", "64", "--no-report", "--store", store,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    p = sj("export", "c1", "--store", store, "--format", "tensorboard", "--logdir", str(logdir))
    assert p.returncode == 0, p.stderr
    assert p.stdout == "" and "8 runs" in p.stderr
    groups = [Run(logdir / "c1" / f"member-{i:04d}").start.group_name for i in range(8)]
    assert groups == [f"c1/config-{i // 2:04d}" for i in range(8)]
    other = tmp_path / "other"
    p = sj(
        "export",
        "c1",
        "--store",
        store,
        "--format",
        "tensorboard",
        "--logdir",
        str(other),
        block=True,
    )
    assert p.returncode == 2
    assert p.stderr.strip() == f"sweepjax: error: {tbe.TENSORBOARDX_MISSING}"
    assert not other.exists()
