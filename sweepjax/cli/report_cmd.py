"""``sweepjax report [SWEEP]``: (re)write the command-center HTML of a stored sweep.

The coarse and fine commands already write it at the end of a run; this command redraws
it from the store (e.g. after a crash, or for an older sweep). SWEEP defaults to the
newest sweep. Exit codes: 0 ok, 2 unknown sweep / bad store.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sweepjax.cli.options import add_options


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "report",
        help="write the HTML command center of a sweep",
        description=(
            "Write a self-contained HTML report (response surface, curves, learned "
            "weights, diagnoses) of a stored sweep and print the path of its index.html."
        ),
    )
    p.add_argument(
        "sweep", nargs="?", default=None, help="sweep id (default: the newest sweep in the store)"
    )
    add_options(p, "coarse", only=("store",))  # declared once, in sweepjax.spec
    p.add_argument(
        "--out",
        default=None,
        help="output directory (default: <store>-reports/SWEEP next to the store, where "
        "coarse and fine write it)",
    )
    p.set_defaults(func=run)


def _newest(store):
    """The newest sweep of any kind (fine sweeps refine coarse ones, so prefer the later)."""
    found = [s for s in (store.newest("coarse"), store.newest("fine")) if s is not None]
    found = [store.load_sweep(s) if isinstance(s, str) else s for s in found]
    if not found:
        return None
    # Ids are not ordered; a fine sweep is newer than the coarse sweep it refined.
    fine = [s for s in found if s.kind == "fine"]
    return fine[0] if fine else found[0]


def _ancestors(store, result) -> list:
    """Parents, oldest first, following ``result.parent``."""
    chain, seen, cur = [], {result.sweep_id}, result
    while cur.parent and cur.parent not in seen:
        seen.add(cur.parent)
        cur = store.load_sweep(cur.parent)
        chain.append(cur)
    return chain[::-1]


def _data_for_pictures(result):
    """Raw images and a data sample, when the dataset can be loaded offline; else Nones
    (the report then says the panel is skipped)."""
    from sweepjax.config import DataConfig
    from sweepjax.data import load_dataset
    from sweepjax.errors import SweepjaxError

    info = result.dataset or {}
    cfg = result.config.data
    name = info.get("name")
    if not name:
        return None, None
    try:
        ds = load_dataset(
            DataConfig(
                dataset=name,
                data_dir=cfg.data_dir,
                val_fraction=cfg.val_fraction,
                seed=cfg.seed,
                download=False,
                # as trained; sweeps stored before it was recorded scaled globally
                scaling=info.get("scaling") or "global",
            )
        )
    except SweepjaxError as e:
        print(f"sweepjax: note: data pictures skipped: {e}", file=sys.stderr)
        return None, None
    return ds.raw_train_images, ds.x_val[:1000]


def run(args: argparse.Namespace) -> int:
    from sweepjax.errors import StoreError
    from sweepjax.flows.sweep import report_dir
    from sweepjax.report import write_report
    from sweepjax.store.db import Store, default_path

    args.store = args.store or default_path()
    store = Store.open(args.store)
    if args.sweep is None:
        result = _newest(store)
        if result is None:
            raise StoreError(f"no sweeps in {args.store}; run `sweepjax coarse` first")
    else:
        result = store.load_sweep(args.sweep)
    parents = _ancestors(store, result)
    out = Path(args.out) if args.out else report_dir(args.store, result.sweep_id)
    images, x_sample = _data_for_pictures(result)
    print(write_report(result, parents, out, dataset_images=images, x_sample=x_sample))
    return 0
