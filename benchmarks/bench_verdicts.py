"""The verdicts against the evidence, on the default flow: does the modelled optimum stay
within a few SE of the best member, and does ``fine`` stay off the divergence cliff?

For each default ``coarse`` on full Fashion-MNIST (softmax halving seeds 0-4, softmax
``--schedule full`` seeds 0-3, MLP halving seeds 0-1) it reports the modelled optimum minus
the best finished member in SEs of that member, twice from the same members:

- **before**: the surface as it was fitted up to this change (diverged members left out,
  the optimum the model mean's own maximum, no divergence frontier);
- **after**: the verdict the flow printed (docs/verdicts.md, "Where the evidence is").

Then it runs ``fine`` from softmax halving seed 3 and from full seed 2, once with the box
the flow builds now and once with the box the old rule built (passed as ``lr``/``l2``),
and counts the members that diverge in each.

    python benchmarks/bench_verdicts.py          # ~10 min on 2 CPU cores
    python benchmarks/bench_verdicts.py --quick  # mnist-sample, 1 seed, seconds
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common  # noqa: E402

import sweepjax  # noqa: E402
from sweepjax.analysis import verdict as vd  # noqa: E402
from sweepjax.analysis.surface import fit_surface  # noqa: E402
from sweepjax.config import Range  # noqa: E402
from sweepjax.results.appraise import stopped_offsets  # noqa: E402
from sweepjax.search import as_space  # noqa: E402

FULL = [("softmax", "halving", s) for s in range(5)]
FULL += [("softmax", "full", s) for s in range(4)]
FULL += [("mlp", "halving", s) for s in range(2)]
FINES = [("softmax", "halving", 3), ("softmax", "full", 2)]


def old_verdict(result):
    """The verdict and next box as fitted before diverged members were evidence."""
    space = as_space(result.space)
    axes = tuple(space.axes())
    ms = result.members
    n_val = int(result.dataset["n_val"])
    x = np.stack(
        [np.asarray(space.axes()[a].to_unit([getattr(m, a) for m in ms])) for a in axes], 1
    )
    acc = np.array([m.best_val_acc for m in ms], np.float64)
    loss = np.array([np.nan if m.final_val_loss is None else m.final_val_loss for m in ms])
    ok = np.array([m.status == "ok" for m in ms]) & np.isfinite(acc)
    rank = vd.tied_set(acc, loss, ok, n_val)
    score, extra, use = stopped_offsets(ms, result.curves)
    fit_se = np.sqrt(vd.accuracy_se(np.nan_to_num(score), n_val) ** 2 + extra**2)
    s = fit_surface(x, score, use, n_val, axes, acc_se=fit_se)._replace(x=None)
    v = vd.judge_surface(s, rank.winner_se, seed=result.config.train.seed)
    box = vd.refine_box(v, axes, x[rank.tied])
    real = {
        a: Range(*(float(t) for t in space.axes()[a].from_unit([box.lo[j], box.hi[j]])))
        for j, a in enumerate(axes)
    }
    real = {a: Range(max(r.lo, 1e-12), r.hi) for a, r in real.items()}
    return v, real


def row(result, wall):
    w = result.winner
    v_old, box_old = old_verdict(result)
    v = result.verdict
    return {
        "winner_val": w.val_acc,
        "winner_se": w.val_acc_se,
        "before": {
            "optimum": v_old.optimum,
            "optimum_value": v_old.optimum_value,
            "gap_se": (v_old.optimum_value - w.val_acc) / w.val_acc_se,
            "flags": [f"{b.param} {b.side}" for b in v_old.flags],
            "flat": list(v_old.flat),
            "inside": not v_old.flags,
            "box_lr": [box_old["lr"].lo, box_old["lr"].hi],
            "box_l2": [box_old["l2"].lo, box_old["l2"].hi],
        },
        "after": {
            "optimum": v.optimum,
            "optimum_value": v.optimum_value,
            "optimum_sd": v.optimum_sd,
            "gap_se": (v.optimum_value - w.val_acc) / w.val_acc_se,
            "flags": [f"{b.param} {b.side}" for b in result.boundary],
            "flat": list(v.flat),
            "status": v.optimum_status,
            "confidence": v.optimum_confidence,
            "diverged_regions": v.diverged_regions,
        },
        "diverged": sum(m.status == "diverged" for m in result.members),
        "wall_s": wall,
    }


def run(out: Path, quick: bool = False) -> dict:
    data = "mnist-sample" if quick else "fashion-mnist"
    cases = [("softmax", "halving", 3)] if quick else FULL
    fines = cases[:1] if quick else FINES
    size = dict(trials=64, steps=60) if quick else {}
    res = {"machine": common.machine(), "dataset": data, "coarse": [], "fine": []}
    with tempfile.TemporaryDirectory() as tmp:
        stores = {}
        for model, sched, seed in cases:
            store = str(Path(tmp) / f"{model}-{sched}-{seed}.db")
            t0 = time.perf_counter()
            r = sweepjax.coarse(
                dataset=data, model=model, schedule=sched, seed=seed, store=store,
                report=False, **size,
            )  # fmt: skip
            res["coarse"].append(
                {
                    "model": model,
                    "schedule": sched,
                    "seed": seed,
                    **row(r, time.perf_counter() - t0),
                }
            )
            stores[(model, sched, seed)] = (store, r)
            gap = res["coarse"][-1]["after"]["gap_se"]
            print(f"coarse {model} {sched} seed {seed}: optimum {gap:+.1f} SE over the best")
        for key in fines:
            store, parent = stores[key]
            _, box_old = old_verdict(parent)
            fsize = dict(trials=32, steps=120) if quick else {}
            runs = {}
            for label, kw in (
                ("after", {}),
                ("before", {"lr": box_old["lr"], "l2": box_old["l2"]}),
            ):
                t0 = time.perf_counter()
                f = sweepjax.fine(
                    store=store, parent=parent.sweep_id, refit=False, report=False, **kw,
                    **fsize,
                )  # fmt: skip
                n_div = sum(m.status == "diverged" for m in f.members)
                runs[label] = {
                    "box": f.space,
                    "diverged": n_div,
                    "members": len(f.members),
                    "winner_val": f.winner.val_acc if f.winner else None,
                    "wall_s": time.perf_counter() - t0,
                }
                print(f"fine from {key} ({label}): {n_div} of {len(f.members)} diverged")
            res["fine"].append({"parent": list(key), **runs})
    suffix = "-quick" if quick else ""
    name = f"verdicts-{res['machine']['backend']}{suffix}"
    cmd = common.command_line(__file__, ["--quick"] if quick else [])
    common.write_json(out / f"{name}.json", res)
    (out / f"{name}.md").write_text(markdown(res, cmd))
    return res


def markdown(res: dict, cmd: str) -> str:
    rows = []
    for c in res["coarse"]:
        b, a = c["before"], c["after"]
        rows.append(
            [
                f"{c['model']} {c['schedule']} seed {c['seed']}",
                f"{c['winner_val']:.4f}",
                f"{b['optimum_value']:.4f} ({b['gap_se']:+.1f} SE)",
                f"{a['optimum_value']:.4f} +/- {a['optimum_sd']:.4f} ({a['gap_se']:+.1f} SE)",
                ", ".join(b["flags"]) or "-",
                ", ".join(a["flags"]) or "-",
                f"{a['status']} ({a['confidence']:.0%})",
                "; ".join(
                    f"{d['param']} > {d['bound']:.3g}: {d['diverged']}/{d['members']}"
                    for d in a["diverged_regions"]
                )
                or "-",
            ]
        )
    frows = []
    for f in res["fine"]:
        for label in ("before", "after"):
            r = f[label]
            lr = r["box"]["lr"]
            frows.append(
                [
                    " ".join(str(p) for p in f["parent"]),
                    label,
                    f"[{lr[0]:.3g}, {lr[1]:.3g}]",
                    f"{r['diverged']} / {r['members']} ({r['diverged'] / r['members']:.0%})",
                    "-" if r["winner_val"] is None else f"{r['winner_val']:.4f}",
                ]
            )
    return "\n".join(
        [
            f"# Verdicts against the evidence ({res['dataset']})",
            "",
            f"Machine: {common.machine_line(res['machine'])}",
            "",
            "Default `coarse` runs. The modelled optimum minus the best finished member, in",
            "SEs of that member: *before* fits the same members as the surface did up to",
            "this change (diverged members left out, the optimum the mean's own maximum);",
            "*after* is the flow's verdict (docs/verdicts.md). Target: within 3 SE.",
            "",
            common.md_table(
                [
                    "sweep",
                    "best member",
                    "optimum before",
                    "optimum after",
                    "flags before",
                    "flags after",
                    "optimum status",
                    "diverged region",
                ],
                rows,
            ),  # fmt: skip
            "",
            "`fine` from a parent, with the box the flow builds now (*after*) and with the",
            "box the old rule built (*before*, passed as `lr`/`l2`). Target: at most 15%",
            "of its members diverge.",
            "",
            common.md_table(["parent", "box", "lr box", "diverged", "winner val"], frows),
            "",
            f"Reproduce: `{cmd}`",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="mnist-sample, one seed, seconds")
    p.add_argument("--out", type=Path, default=common.RESULTS)
    args = p.parse_args(argv)
    return run(args.out, quick=args.quick)


if __name__ == "__main__":
    main()
