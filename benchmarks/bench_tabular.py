"""Test accuracy on scikit-learn's bundled tabular sets: sweepjax from arrays against
scikit-learn's LogisticRegression, on one fixed split.

    pip install -e '.[bench]'                      # scikit-learn among them
    python benchmarks/bench_tabular.py             # wine, breast-cancer, digits (~5 min, 2 cores)
    python benchmarks/bench_tabular.py --quick     # smoke run (few members, few steps)

Each dataset is split once, ``train_test_split(test_size=0.25, stratify=y,
random_state=0)``; every method sees the same training rows and is scored on the same
test rows. Methods:

1. ``LogisticRegression()`` on the raw features (scikit-learn's defaults; a
   ConvergenceWarning is counted, not hidden);
2. ``make_pipeline(StandardScaler(), LogisticRegression())``, as its docs teach;
3. ``sweepjax.coarse(x_train=..., y_train=..., x_test=..., y_test=...)`` with default
   settings (the softmax, 256 members x 300 steps, halving; features standardised per
   feature, the default for ``[N, D]`` data; validation a seeded 10% of the training rows);
4. the same with ``scaling="global"`` (one shared scale: what sweepjax did before);
5. the same with ``folds=5``: the validation split is tiny (13-43 rows), so every config
   is scored by 5-fold cross-validation over train + validation instead;
6. ``sweepjax.fine`` after (3): a narrower box, 8x the steps, and the winner refit on
   train + validation (its test accuracy is reported).

Accuracy is the claim here, not speed: wall times are approximate (the machine may be
shared). Writes ``results/tabular-<backend>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

# This checkout's sweepjax (not whichever copy is installed), and the helpers beside us.
sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

import common  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402
from sklearn import datasets  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import sweepjax  # noqa: E402
from sweepjax.flows.sweep import Callbacks  # noqa: E402

LOADERS = {
    "wine": datasets.load_wine,
    "breast-cancer": datasets.load_breast_cancer,
    "digits": datasets.load_digits,
}
TEST_SIZE = 0.25
SPLIT_SEED = 0


class Split:
    """One fixed, stratified split of a bundled dataset."""

    def __init__(self, name: str):
        x, y = LOADERS[name](return_X_y=True)
        self.name, self.n, self.d, self.k = name, len(x), x.shape[1], len(np.unique(y))
        self.x_train, self.x_test, self.y_train, self.y_test = train_test_split(
            x, y, test_size=TEST_SIZE, stratify=y, random_state=SPLIT_SEED
        )

    def arrays(self) -> dict:
        return dict(x_train=self.x_train, y_train=self.y_train, x_test=self.x_test,
                    y_test=self.y_test)  # fmt: skip


def sklearn_lr(split: Split, standardise: bool) -> dict:
    model = LogisticRegression()
    if standardise:
        model = make_pipeline(StandardScaler(), model)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(split.x_train, split.y_train)
    wall = time.perf_counter() - t0
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    acc = float(model.score(split.x_test, split.y_test))
    return {"test_acc": acc, "wall_s": wall, "converged": converged}


def sweep(split: Split, store: Path, quick: bool, **options) -> tuple[dict, object]:
    notes: list[str] = []
    size = dict(trials=16, steps=40) if quick else {}
    t0 = time.perf_counter()
    res = sweepjax.coarse(**split.arrays(), store=str(store), report=False,
                          callbacks=Callbacks(note=notes.append), **size, **options)  # fmt: skip
    wall = time.perf_counter() - t0
    return _row(res, wall, notes), res


def fine(split: Split, store: Path, parent: str, quick: bool) -> dict:
    notes: list[str] = []
    size = dict(trials=16, steps=80) if quick else {}
    t0 = time.perf_counter()
    res = sweepjax.fine(**split.arrays(), parent=parent, store=str(store), report=False,
                        callbacks=Callbacks(note=notes.append), **size)  # fmt: skip
    row = _row(res, time.perf_counter() - t0, notes)
    row["refit_test_acc"] = res.winner.refit_test_acc
    return row


def _row(res, wall: float, notes: list[str]) -> dict:
    w = res.winner
    return {
        "test_acc": w.test_acc,
        "val_acc": w.val_acc,
        "val_acc_se": w.val_acc_se,
        "n_val": res.dataset["n_val"],
        "scaling": res.dataset.get("scaling"),
        "lr": w.lr,
        "l2": w.l2,
        "wall_s": wall,
        "notes": notes,
    }


def run_dataset(name: str, quick: bool, tmp: Path) -> dict:
    split = Split(name)
    out = {
        "n": split.n,
        "features": split.d,
        "classes": split.k,
        "n_train": len(split.y_train),
        "n_test": len(split.y_test),
        "sklearn_raw": sklearn_lr(split, standardise=False),
        "sklearn_standardised": sklearn_lr(split, standardise=True),
    }
    store = tmp / f"{name}.db"
    out["sweepjax_default"], coarse = sweep(split, store, quick)
    out["sweepjax_global"], _ = sweep(split, store, quick, scaling="global")
    out["sweepjax_folds5"], _ = sweep(split, store, quick, folds=5)
    out["sweepjax_fine"] = fine(split, store, coarse.sweep_id, quick)
    return out


COLUMNS = [
    ("sklearn_raw", "LR raw"),
    ("sklearn_standardised", "LR standardised"),
    ("sweepjax_global", "sweepjax, one shared scale"),
    ("sweepjax_default", "sweepjax coarse (default)"),
    ("sweepjax_folds5", "sweepjax coarse, folds 5"),
    ("sweepjax_fine", "sweepjax fine (early-stopped / refit)"),
]


def _reaches(r: dict, key: str) -> bool:
    """Whether column ``key`` (its refit, for fine) got at least as many test rows
    right as the standardised LogisticRegression."""
    c = r[key]
    acc = c["refit_test_acc"] if c.get("refit_test_acc") is not None else c["test_acc"]
    return round(acc * r["n_test"]) >= round(r["sklearn_standardised"]["test_acc"] * r["n_test"])


def markdown(result: dict) -> str:
    lines = [
        "# Tabular data: sweepjax from arrays vs scikit-learn's LogisticRegression",
        "",
        f"Machine: {common.machine_line(result['machine'])}.",
        "",
        f"Reproduce: `{result['command']}`",
        "",
        "Test accuracy on one fixed split (`train_test_split(test_size=0.25, stratify=y, "
        "random_state=0)`); the methods are described in the script's docstring. "
        "sweepjax's winner is chosen on its validation split (a seeded 10% of the "
        "training rows), or by 5-fold cross-validation; `n_val` is that split's size.",
        "",
    ]
    header = ["dataset (n, features, classes)", *(label for _, label in COLUMNS)]
    rows = []
    for name, r in result["datasets"].items():
        cells = [f"{name} ({r['n']}, {r['features']}, {r['classes']})"]
        for key, _ in COLUMNS:
            c = r[key]
            text = f"{c['test_acc']:.3f}"
            if key == "sklearn_raw" and not c["converged"]:
                text += " (not converged)"
            if key == "sweepjax_fine" and c.get("refit_test_acc") is not None:
                text += f" / {c['refit_test_acc']:.3f}"
            cells.append(text)
        rows.append(cells)
    lines.append(common.md_table(header, rows))
    lines += ["", "Target: at least `LR standardised`'s test accuracy (counted in test rows):", ""]
    for key, label in COLUMNS[2:]:
        reached = [name for name, r in result["datasets"].items() if _reaches(r, key)]
        label += " (the refit)" if key == "sweepjax_fine" else ""
        lines.append(f"- {label}: {len(reached)} of {len(result['datasets'])} "
                     f"({', '.join(reached) or 'none'})")  # fmt: skip
    lines += [
        "",
        "Approximate wall time per run, seconds (compile included; shared machine; a run "
        "reuses the programs an earlier run with the same shapes compiled):",
        "",
    ]
    rows = [
        [name, *(f"{r[key]['wall_s']:.1f}" for key, _ in COLUMNS)]
        for name, r in result["datasets"].items()
    ]
    lines.append(common.md_table(["dataset", *(label for _, label in COLUMNS)], rows))
    lines += ["", "sweepjax's validation split and winner (default coarse run):", ""]
    rows = [
        [name, r["sweepjax_default"]["n_val"], f"{r['sweepjax_default']['val_acc']:.3f}",
         f"{r['sweepjax_default']['val_acc_se'] or float('nan'):.3f}",
         f"{r['sweepjax_default']['lr']:.3g}", f"{r['sweepjax_default']['l2']:.3g}"]
        for name, r in result["datasets"].items()
    ]  # fmt: skip
    lines.append(common.md_table(["dataset", "n_val", "val acc", "SE", "lr", "l2"], rows))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: few members and steps")
    ap.add_argument("--datasets", nargs="+", default=list(LOADERS), choices=list(LOADERS))
    ap.add_argument("--out", default=str(common.RESULTS), help="results directory")
    ap.add_argument("--markdown-only", metavar="JSON", help="rewrite the .md from a results JSON")
    args = ap.parse_args(argv)
    if args.markdown_only:
        result = json.loads(Path(args.markdown_only).read_text())
        Path(args.markdown_only).with_suffix(".md").write_text(markdown(result))
        return result
    result = {
        "machine": common.machine(),
        "command": common.command_line(__file__, argv),
        "split": {"test_size": TEST_SIZE, "stratify": True, "random_state": SPLIT_SEED},
        "quick": args.quick,
        "datasets": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets:
            result["datasets"][name] = run_dataset(name, args.quick, Path(tmp))
            print(name, {k: v["test_acc"] for k, v in result["datasets"][name].items()
                         if isinstance(v, dict)}, flush=True)  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"tabular-{jax.default_backend()}" + ("-quick" if args.quick else "")
    common.write_json(out / f"{stem}.json", result)
    (out / f"{stem}.md").write_text(markdown(result))
    return result


if __name__ == "__main__":
    main()
