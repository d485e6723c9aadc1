"""Time to quality over several seeds: one table of best-so-far validation accuracy per
seed, and the sweepjax-minus-peer difference at each time with its spread.

A single run of ``bench_time_to_quality.py`` compares one split and one search of each
approach; their best-so-far curves differ by less than one SE of the validation set
(0.0046 on 6,000 images), so which one is "ahead" at a given second is mostly luck. This
script reads the seed-0 results (``results/time-to-quality-cpu.json``) and any runs made
with ``--seed N --out results/seeds/seedN`` and reports, per model and time, each
seed's numbers and the median and range of the differences.

Reproduce (each seed is another validation split and another search for everyone)::

  for s in 1 2; do
    python benchmarks/bench_time_to_quality.py --model softmax --flows auto,asha \\
      --peers "optuna tpe+hyperband" --budget-s 160 --seed $s --out benchmarks/results/seeds/seed$s
    python benchmarks/bench_time_to_quality.py --model mlp --flows auto,asha \\
      --peers "optuna tpe+hyperband" --budget-s 160 --seed $s --out benchmarks/results/seeds/seed$s
  done
  python benchmarks/summarize_seeds.py
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import common

# Each compared with PEER where a seed ran it.
OURS = ("sweepjax asha", "sweepjax asha-hb", "sweepjax auto")
N_VAL = 6000  # Fashion-MNIST's validation split: one SE is sqrt(p (1 - p) / N_VAL)
PEER = "optuna tpe+hyperband"
STEM = "time-to-quality-cpu"


def runs(results: Path) -> dict[int, dict]:
    """``{seed: results JSON}``: the seed-0 file and every ``seeds/seed*/`` one."""
    out = {}
    for path in [results / f"{STEM}.json", *sorted(results.glob(f"seeds/seed*/{STEM}.json"))]:
        if path.exists():
            doc = json.loads(path.read_text())
            out[int(doc["settings"].get("seed", 0))] = doc
    return out


def row(doc: dict, model: str, approach: str) -> dict | None:
    m = doc["models"].get(model)
    for r in (m or {}).get("rows", []):
        if r["approach"] == approach and "best_at" in r:
            return r
    return None


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def compare(docs: dict[int, dict], model: str, ours: str) -> dict | None:
    """Each seed's best-so-far of ``ours`` and the peer at each time, the test accuracy
    of each one's final model (``refit``: ours retrained on train + validation, where
    the flow does), and the differences (ours minus peer; None where either had
    nothing yet)."""
    seeds = {}
    for seed, doc in sorted(docs.items()):
        a, b = row(doc, model, ours), row(doc, model, PEER)
        if a is not None and b is not None:
            seeds[seed] = {
                "ours": a["best_at"],
                "peer": b["best_at"],
                # Optuna's own answer (study.best_value: completed trials only), where
                # the run recorded it
                "peer_complete": complete_at(b, list(a["best_at"])),
                "test": {
                    "ours": a.get("final_test"),
                    "refit": a.get("final_refit_test"),
                    "peer": b.get("final_test"),
                },
            }
    if not seeds:
        return None
    times = list(next(iter(seeds.values()))["ours"])
    diffs = {}
    for t in times:
        d = [
            s["ours"][t] - s["peer"][t]
            for s in seeds.values()
            if s["ours"][t] is not None and s["peer"][t] is not None
        ]
        ahead = sum(1 for s in seeds.values() if s["ours"][t] is not None and s["peer"][t] is None)
        # The target: ours within one SE of the peer (the SE of the peer's value).
        within = sum(
            1
            for s in seeds.values()
            if s["peer"][t] is None
            or (s["ours"][t] is not None and s["ours"][t] >= s["peer"][t] - se(s["peer"][t]))
        )
        done = [s for s in seeds.values() if s["peer_complete"] is not None]
        within_c = sum(
            1
            for s in done
            if s["peer_complete"][t] is None
            or (
                s["ours"][t] is not None
                and s["ours"][t] >= s["peer_complete"][t] - se(s["peer_complete"][t])
            )
        )
        diffs[t] = {
            "n": len(d),
            "within_one_se": within,
            "within_one_se_of_complete": within_c,
            "seeds_complete": len(done),
            "seeds": len(seeds),
            "median": statistics.median(d) if d else None,
            "min": min(d) if d else None,
            "max": max(d) if d else None,
            "only_ours": ahead,
        }
    return {"seeds": seeds, "diffs": diffs}


def summarize(docs: dict[int, dict]) -> dict:
    """``{model: {sweepjax approach: compare(...)}}`` for every approach some seed ran."""
    out = {}
    for model in ("softmax", "mlp"):
        per = {o: c for o in OURS if (c := compare(docs, model, o)) is not None}
        if per:
            out[model] = per
    return out


def complete_at(peer_row: dict, times: list) -> dict | None:
    """The peer's best completed trial at each time (``events_complete``; None where
    the run predates that record)."""
    ev = peer_row.get("events_complete")
    if ev is None:
        return None
    out = {}
    for t in times:
        vals = [e["val"] for e in ev if e["t"] <= float(t)]
        out[t] = max(vals) if vals else None
    return out


def se(p: float) -> float:
    return (p * (1 - p) / N_VAL) ** 0.5


def _section(model: str, ours: str, m: dict) -> list[str]:
    times = list(m["diffs"])
    lines = [f"## {model}: {ours}", "", f"Best-so-far validation accuracy, {ours} / {PEER}:", ""]
    lines.append("| seed | " + " | ".join(f"at {t} s" for t in times) + " | final test |")
    lines.append("|---|" + "---|" * (len(times) + 1))
    for seed, s in m["seeds"].items():
        cells = [f"{_f(s['ours'][t])} / {_f(s['peer'][t])}" for t in times]
        te = s["test"]
        refit = f" (refit {_f(te['refit'])})" if te.get("refit") is not None else ""
        cells.append(f"{_f(te['ours'])}{refit} / {_f(te['peer'])}")
        lines.append(f"| {seed} | " + " | ".join(cells) + " |")
    lines += ["", f"{ours} minus {PEER} (median [min, max] over seeds where both had a model):"]
    lines += ["", "| | " + " | ".join(f"at {t} s" for t in times) + " |"]
    lines.append("|---|" + "---|" * len(times))
    cells = []
    for t in times:
        d = m["diffs"][t]
        cell = f"{d['median']:+.4f} [{d['min']:+.4f}, {d['max']:+.4f}]" if d["n"] else "-"
        if d["only_ours"]:
            cell += f" (+{d['only_ours']} seed(s) where only sweepjax had one)"
        cells.append(cell)
    d = m["diffs"]
    within = [f"{d[t]['within_one_se']} of {d[t]['seeds']}" for t in times]
    rows = [
        "| difference | " + " | ".join(cells) + " |",
        "| within one SE of the peer (or the peer had none) | " + " | ".join(within) + " |",
    ]
    if d[times[0]]["seeds_complete"]:
        c = [f"{d[t]['within_one_se_of_complete']} of {d[t]['seeds_complete']}" for t in times]
        rows.append(
            "| within one SE of the peer's `study.best_value` (completed trials only) | "
            + " | ".join(c)
            + " |"
        )
    return [*lines, *rows, ""]


def markdown(summary: dict, docs: dict[int, dict]) -> str:
    lines = ["# Time to quality over seeds (cpu)", ""]
    for model, per in summary.items():
        for ours, m in per.items():
            lines += _section(model, ours, m)
    some = next(iter(docs.values()))
    lines += [
        "One SE of a validation accuracy near 0.86 on 6,000 images is 0.0046. Each seed is "
        "another validation split and another search for both approaches. 'final test': "
        "the test accuracy of the model each approach ends with (its best validation "
        "accuracy's model; sweepjax auto's refit on train + validation in brackets).",
        "",
        f"Machine: {some['machine'].get('cpu', '?')}; seeds {sorted(docs)}; each seed's "
        "command and load average are in its own results file.",
        "",
        "Reproduce: see `benchmarks/summarize_seeds.py`.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=common.RESULTS)
    args = ap.parse_args()
    docs = runs(args.results)
    summary = summarize(docs)
    common.write_json(args.results / "time-to-quality-seeds-cpu.json", {"summary": summary})
    (args.results / "time-to-quality-seeds-cpu.md").write_text(markdown(summary, docs))
    print(markdown(summary, docs))


if __name__ == "__main__":
    main()
