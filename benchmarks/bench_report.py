"""What the HTML report costs: a default ``coarse`` sweep's report, its figures written
by ``report._png`` (one draw, cropped) against ``savefig(bbox_inches="tight")`` (two
draws), interleaved in one process.

    python benchmarks/bench_report.py               # ~1-2 min on 2 cores (fashion-mnist)
    python benchmarks/bench_report.py --dataset mnist-sample

It runs the default coarse sweep once (``--no-report``) into a temporary store, then
times ``write_report_hook`` (the sweep flows' report: parents, panels, figures, files)
``--reps`` times each way, alternating. Writes ``results/report-<backend>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

import common  # noqa: E402


def savefig_tight(fig) -> bytes:
    """The report's PNG as it was written before: savefig measures, then draws again."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi, bbox_inches="tight")
    return buf.getvalue()


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args(argv)

    import sweepjax
    import sweepjax.report as report
    from sweepjax.config import DataConfig
    from sweepjax.data import load_dataset
    from sweepjax.flows.runner import write_report_hook
    from sweepjax.store.db import Store

    m = common.machine()
    out = {"machine": m, "command": common.command_line(__file__, argv), "reps": a.reps}
    one_draw = report._png
    with tempfile.TemporaryDirectory() as d:
        res = sweepjax.coarse(dataset=a.dataset, store=f"{d}/r.db", report=False)
        ds = load_dataset(DataConfig(dataset=a.dataset, seed=0))
        times = {"one draw (report._png)": [], "savefig tight (before)": []}
        with Store.open(f"{d}/r.db") as st:
            for _ in range(a.reps):
                for name, png in zip(times, (one_draw, savefig_tight), strict=True):
                    report._png = png
                    t0 = time.perf_counter()
                    write_report_hook(res, st, ds)
                    times[name].append(time.perf_counter() - t0)
        report._png = one_draw
    out["seconds"] = times
    out["ratio_median"] = common.median([a_ / b for a_, b in zip(*times.values(), strict=True)])
    out["load_avg_at_end"] = list(__import__("os").getloadavg())
    common.write_json(common.RESULTS / f"report-{m['backend']}.json", out)
    rows = [[k, common.median(v), min(v), max(v)] for k, v in times.items()]
    md = "\n".join(
        [
            f"# What the report costs: a default coarse sweep's report on {a.dataset}",
            "",
            common.machine_line(m) + f"; load average at end {out['load_avg_at_end'][0]:.2f}.",
            "",
            f"Reproduce: `{out['command']}`",
            "",
            common.md_table(["PNG writer", "median s", "min s", "max s"], rows),
            "",
            f"One draw / two draws, median of the {a.reps} paired ratios: "
            f"{out['ratio_median']:.2f}.",
            "",
        ]
    )
    (common.RESULTS / f"report-{m['backend']}.md").write_text(md)
    print(md)
    return out


if __name__ == "__main__":
    main()
