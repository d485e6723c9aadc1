"""Memory that fits, or one line before anything runs; the training block as a GPU needs it.

    python benchmarks/bench_memory.py           # ~5 min on 2 cores
    python benchmarks/bench_memory.py --quick   # smoke run (mnist-sample, tiny sizes)

1. Sweeps through the command line, each in its own process under ``/usr/bin/time -v``
   (peak resident memory, wall, exit status), against ``engine.footprint``'s estimate
   for the same population: the issue's 4,096-member Adam MLP-256 on Fashion-MNIST
   (killed at 24.3 GB before: it must finish below the machine's memory or be refused in
   one line before a sweep row is written; the store is read afterwards), and 10-step
   sweeps that fit: 256 and 512 members (host groups of 240 under the default 2 GiB
   program budget).
2. Donation: one 10-step chunk of 256 Adam MLP-256 members, its state on the device,
   compiled with the state donated and without, each in its own process: XLA's memory
   analysis of each program (bytes aliased, outputs, temporaries) and the resident
   memory the chunk adds over what was resident before it (freed pages the allocator
   reuses do not show in it, so it understates both).
3. Dispatch: the host's time per ``exe(...)`` call (it returns before the block ends)
   against the block's own time, 64 Adam MLP-256 members, chunks of 10 steps chained
   through their donated state (3 blocks); and ``active.run_chunk``'s time per block
   (it waits for the block's metrics).

Writes ``results/memory-<backend>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]

import common  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402

from sweepjax import DataConfig, HParams, ModelConfig, TrainConfig, load_dataset  # noqa: E402
from sweepjax.engine import active, footprint, program, setup  # noqa: E402
from sweepjax.engine.distributed import SINGLE, put_members  # noqa: E402
from sweepjax.errors import ConfigError  # noqa: E402

MLP = ModelConfig("mlp", hidden=256)  # the command line's default MLP width


def time_v(cmd: list[str], env=None) -> dict:
    """Run ``cmd`` under ``/usr/bin/time -v``: exit status, wall seconds, peak RSS, the
    last line of its stderr."""
    out = subprocess.run(
        ["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, cwd=ROOT, env=env
    )
    err = out.stderr
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", err).group(1)) * 1024
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", err).group(1)
    secs = sum(float(p) * 60**i for i, p in enumerate(reversed(wall.split(":"))))
    own = [
        ln
        for ln in err[: err.rfind("\tCommand being timed")].strip().splitlines()
        if not ln.startswith("Command exited with non-zero status")  # time's own line
    ]
    return {
        "rc": out.returncode,
        "wall_s": secs,
        "peak_rss": rss,
        "last_line": own[-1] if own else "",
    }


def sweep_case(dataset: str, members: int, steps: int, optimizer: str, ds) -> dict:
    """One ``coarse`` sweep in its own process, and the estimate of its footprint."""
    cfg = TrainConfig(optimizer=optimizer, steps=steps)
    fp = footprint.estimate(ds, MLP, cfg, members)
    with tempfile.TemporaryDirectory() as d:
        store = Path(d) / "s.db"
        argv = ["coarse", "--model", "mlp", "--trials", str(members), "--steps", str(steps)]
        argv += ["--optimizer", optimizer, "--dataset", dataset, "--no-report"]
        run = time_v([sys.executable, "-m", "sweepjax", *argv, "--store", str(store)])
        rows = None
        if store.exists():
            with sqlite3.connect(store) as c:
                rows = c.execute("SELECT COUNT(*) FROM sweeps").fetchone()[0]
    return {
        "command": "sweepjax " + " ".join(argv),
        **run,
        "sweep_rows_written": rows,
        "estimate_total": fp.total,
        "estimate_parts": fp._asdict(),
        "peak_over_estimate": run["peak_rss"] / fp.total,
    }


def child_state(ds, members: int):
    """A population of ``members`` Adam MLP-256s on the device and one chunk's other
    arguments (the host copy of the state released)."""
    cfg = TrainConfig(optimizer="adam", steps=100)
    hp = HParams.create(lr=np.geomspace(1e-4, 1e-2, members), l2=1e-4)
    st = setup.static(ds, MLP, cfg, hparams=hp)
    states = put_members(setup.init_states(ds, hp, MLP, cfg), SINGLE)
    _, data_key = setup.root_keys(cfg.seed)
    key = np.asarray(jax.random.key_data(data_key))
    data = program.device_data(ds, cfg)
    z = np.zeros(members, np.int32)
    rest = put_members((hp, z - 1, z), SINGLE)
    return states, rest, data, key, st, hp, cfg


def rss_now() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child_donation(dataset: str, members: int, donate: bool) -> dict:
    ds = load_dataset(DataConfig(dataset=dataset))
    states, rest, data, key, st, _, _ = child_state(ds, members)
    nbytes = sum(a.nbytes for a in jax.tree.leaves(states))
    scalars = jax.device_put((np.int32(0), np.int32(10), np.int32(100), key))
    fn = functools.partial(program._population_block, static=st)
    jitted = jax.jit(fn, donate_argnums=(0,) if donate else ())
    exe = jitted.lower(states, *rest, data, *scalars).compile()
    ma = exe.memory_analysis()
    before_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    before = rss_now()
    out, met = exe(states, *rest, data, *scalars)
    jax.block_until_ready((out, met))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "donated": donate,
        "state_bytes": nbytes,
        "rss_before_chunk": before,
        "peak_before_chunk": before_peak,
        "peak_after_chunk": peak,
        "chunk_adds": peak - before,
        "xla_alias_bytes": ma.alias_size_in_bytes,
        "xla_output_bytes": ma.output_size_in_bytes,
        "xla_temp_bytes": ma.temp_size_in_bytes,
        "xla_new_bytes": ma.output_size_in_bytes - ma.alias_size_in_bytes + ma.temp_size_in_bytes,
        "input_deleted": all(a.is_deleted() for a in jax.tree.leaves(states)),
    }


def child_dispatch(dataset: str, members: int, blocks: int) -> dict:
    ds = load_dataset(DataConfig(dataset=dataset))
    states, rest, data, key, st, hp, cfg = child_state(ds, members)
    scalars = jax.device_put((np.int32(0), np.int32(10), np.int32(100), key))
    args = (states, *rest, data, *scalars)
    exe, compile_s = program.compiled_block(args, st, SINGLE)
    s, _ = exe(*args)
    jax.block_until_ready(s)  # warm
    host, t0 = [], time.perf_counter()
    for _ in range(blocks):  # chained through the donated state, nothing waited for
        t = time.perf_counter()
        s, met = exe(s, *rest, data, *scalars)
        host.append(time.perf_counter() - t)
    jax.block_until_ready((s, met))
    per_block = (time.perf_counter() - t0) / blocks
    act = active.Active(s, members, members, True)
    chunk = []
    for b in range(blocks):  # the trainer's call: places the members' values, waits for metrics
        t = time.perf_counter()
        act, *_ = active.run_chunk(
            act, hp, np.full(members, -1), data, 10 * b, 10, 100, key, st, SINGLE
        )
        chunk.append(time.perf_counter() - t)
    return {
        "members": members,
        "steps_per_block": 10,
        "compile_s": compile_s,
        "host_dispatch_s": host,
        "block_s": per_block,
        "run_chunk_s": chunk,
        "host_share": common.median(host) / per_block,
    }


def in_child(what: str, *args) -> dict:
    cmd = [sys.executable, __file__, "--child", json.dumps([what, *args])]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def markdown(res: dict) -> str:
    m = res["machine"]
    mem = res["available"]
    gb = 1e9
    lines = [
        "# Memory: fit or refuse before anything runs; donation; dispatch",
        "",
        f"Machine: {common.machine_line(m)}; {mem['MemTotal'] / gb:.1f} GB of memory, "
        f"{mem['host'] / gb:.1f} GB available at the start ({mem['source']}).",
        f"Reproduce: `{res['command']}`",
        "",
        "Sweeps, each process under `/usr/bin/time -v`; the estimate is "
        "`engine.footprint.estimate` of the same population:",
        "",
    ]
    rows = [
        [
            c["command"].replace("sweepjax coarse ", "").replace(" --no-report", ""),
            c["rc"],
            c["wall_s"],
            f"{c['peak_rss'] / gb:.2f}",
            f"{c['estimate_total'] / gb:.2f}",
            c["sweep_rows_written"],
            "refused (below)" if c["rc"] == 2 else c["last_line"] if c["rc"] else "finished",
        ]
        for c in res["sweeps"]
    ]
    head = ["coarse", "exit", "wall s", "peak RSS GB", "estimate GB", "rows", "outcome"]
    lines += [common.md_table(head, rows), ""]
    lines += [f"> {c['last_line']}" for c in res["sweeps"] if c["rc"] == 2]
    lines += [""]
    d = {r["donated"]: r for r in res["donation"]}
    lines += [
        f"Donation, one 10-step chunk of {res['donation_members']} Adam MLP-256 members "
        f"(state {d[True]['state_bytes'] / gb:.2f} GB on the device), resident memory the "
        "chunk adds:",
        "",
        common.md_table(
            [
                "state",
                "XLA: aliased GB",
                "XLA: new outputs + temps GB",
                "RSS: chunk adds GB",
                "peak before GB",
                "peak after GB",
                "input deleted",
            ],
            [
                [
                    "donated" if k else "kept",
                    f"{r['xla_alias_bytes'] / gb:.2f}",
                    f"{r['xla_new_bytes'] / gb:.2f}",
                    f"{r['chunk_adds'] / gb:.2f}",
                    f"{r['peak_before_chunk'] / gb:.2f}",
                    f"{r['peak_after_chunk'] / gb:.2f}",
                    r["input_deleted"],
                ]
                for k, r in sorted(d.items(), reverse=True)
            ],
        ),
        "",
    ]
    p = res["dispatch"]
    lines += [
        f"Dispatch, {p['members']} Adam MLP-256 members, blocks of {p['steps_per_block']} "
        "steps chained through the donated state:",
        "",
        common.md_table(
            ["host time per exe() call ms", "block ms", "host share", "run_chunk ms"],
            [
                [
                    1e3 * common.median(p["host_dispatch_s"]),
                    1e3 * p["block_s"],
                    f"{p['host_share']:.3f}",
                    1e3 * common.median(p["run_chunk_s"]),
                ]
            ],
        ),
    ]
    return "\n".join(lines) + "\n"


def meminfo(key: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=common.RESULTS)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        what, *rest = json.loads(args.child)
        fn = {"donation": child_donation, "dispatch": child_dispatch}[what]
        print(json.dumps(fn(*rest), default=float))
        return
    quick = args.quick
    dataset = "mnist-sample" if quick else "fashion-mnist"
    mach = common.machine()
    avail = footprint.available()
    ds = load_dataset(DataConfig(dataset=dataset))
    issue = 64 if quick else 4096
    cases = [(issue, 30), (16, 10)] if quick else [(issue, 30), (256, 10), (512, 10)]
    sweeps = [sweep_case(dataset, m, s, "adam", ds) for m, s in cases]
    try:
        footprint.check(ds, MLP, TrainConfig(optimizer="adam", steps=30), issue)
        fits = issue
    except ConfigError:
        adam = TrainConfig(optimizer="adam", steps=30)
        fits = footprint.most_that_fit(ds, MLP, adam, avail, issue)
    dm = 16 if quick else 256
    donation = [in_child("donation", dataset, dm, flag) for flag in (True, False)]
    dispatch = in_child("dispatch", dataset, 8 if quick else 64, 3)
    res = {
        "machine": mach,
        "command": common.command_line(__file__, argv),
        "available": {**avail._asdict(), "MemTotal": meminfo("MemTotal")},
        "sweeps": sweeps,
        "issue_members_that_fit": fits,
        "donation_members": dm,
        "donation": donation,
        "dispatch": dispatch,
    }
    name = f"memory-{jax.default_backend()}" + ("-quick" if quick else "")
    common.write_json(args.out / f"{name}.json", res)
    (args.out / f"{name}.md").write_text(markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
