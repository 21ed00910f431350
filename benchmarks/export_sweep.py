"""Copy a finished sweep's tables into benchmarks/results under a header that says how they were made.

    python benchmarks/export_sweep.py --sweep-id SWEEP_ID --name digits-small_cnn-all \
        --command "python -m tmu_core sweep --dataset digits --classes all --seeds 0 1 2" [--note "..."]

Reads the sweep's results from the run store (TMU_RUNS_DIR) and rebuilds its tables with the sweep's own table
code (so a file exported later has today's columns; the numbers are the runs'), writes <name>.md (header +
tables) and <name>-<table>.csv for each table. When the sweep has several forget counts it also draws the
forgetting-more-data curve (paper Fig. 3) with the dashboard's own chart, |Δ| and per-sample agreement
against |D_f|, and saves it as <name>-curve.png through the headless Chromium the browser tests use.

`--add OTHER_SWEEP_ID` (repeatable) adds runs another sweep already made, so nothing is computed twice: the
tables are then rebuilt from both sweeps' results with the sweep's own table code. `--add-where seed=0
class=3,8` keeps only the added runs that match (seed, class, count). An added run with K > 1 gold models joins
a K = 1 sweep as a K = 1 run (its gold ensemble is left out: the first gold is the same model either way).

    python benchmarks/export_sweep.py --sweep-id cifar-rest --add cifar-4x3 --add-where seed=0 --name ... \
        --command "..."
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

import pandas as pd

from tmu_core import store
from tmu_core.evaluate.paper_tables import cost_frame, tables
from tmu_core.jobs.sweep import sweep_header, tables_with_failures

RESULTS = Path(__file__).resolve().parent / "results"


def curve_png(curve: pd.DataFrame, out: Path) -> None:
    """Both curve charts side by side, as a PNG (plotly inline, so no network is needed)."""
    from playwright.sync_api import sync_playwright

    from ui import charts

    figs = [charts.forget_curve_figure(curve, m) for m in ("|Δ|", "agreement")]
    html = "".join(
        f.to_html(full_html=False, include_plotlyjs=(i == 0), default_width="620px", default_height="420px")
        for i, f in enumerate(figs)
    )
    with tempfile.TemporaryDirectory() as tmp:
        page_file = Path(tmp) / "curve.html"
        page_file.write_text(f"<html><body style='display:flex;margin:0'>{html}</body></html>")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium") or None)
            page = browser.new_page(viewport={"width": 1260, "height": 440})
            page.goto(page_file.as_uri())
            page.wait_for_timeout(1500)
            page.screenshot(path=str(out))
            browser.close()


WHERE_KEYS = {"seed": "seed", "class": "forget_class", "count": "forget_count"}
SOFT_KEYS = ("soft_label_accuracy", "soft_auc_p_easy")


def parse_where(items: list[str]) -> dict[str, set[int]]:
    """['seed=0', 'class=3,8'] -> {'seed': {0}, 'forget_class': {3, 8}}; one clear error for anything else."""
    out = {}
    for item in items:
        key, _, values = item.partition("=")
        if key not in WHERE_KEYS or not values:
            raise SystemExit(f"--add-where takes {', '.join(k + '=N[,N]' for k in WHERE_KEYS)}; got '{item}'")
        out[WHERE_KEYS[key]] = {int(v) for v in values.split(",")}
    return out


def as_k1(r: dict) -> dict:
    """A run as a K = 1 run: without its gold ensemble and the soft-truth numbers that come from it."""
    r = {k: v for k, v in r.items() if k != "gold_ensemble"}
    if isinstance(r.get("tmu"), dict):
        r["tmu"] = {k: v for k, v in r["tmu"].items() if k not in SOFT_KEYS}
    return r


def merged(meta: dict, added: list[str], where: dict[str, set[int]]) -> tuple[str, list[dict], list[str]]:
    """The tables (Markdown) and results of a sweep with other sweeps' matching runs added, and what was added."""
    results, notes = list(meta.get("results", [])), []
    for other in added:
        runs = [
            r for r in store.Sweep(other).results().get("results", []) if all(r.get(k) in v for k, v in where.items())
        ]
        if meta.get("gold_seeds", 1) == 1:
            runs = [as_k1(r) for r in runs]
        results += runs
        notes.append(
            f"{len(runs)} runs added from sweep `{other}`"
            + (f" ({', '.join(f'{k}={sorted(v)}' for k, v in where.items())})" if where else "")
        )
    if not results:
        raise SystemExit(
            f"sweep {meta['sweep_id']} has no completed run to export"
            + (f" and the added sweeps gave none either ({'; '.join(notes)})" if notes else "")
        )
    classes = sorted({r["forget_class"] for r in results})
    all_meta = {
        **meta,
        "sweep_id": " + ".join([meta["sweep_id"], *added]),
        "classes": classes,
        "results": results,
        "held_out_classes": [c for c in classes if c not in meta.get("tuning_classes", [])],
        "forget_counts": sorted({r["forget_count"] for r in results}),
        "seeds": sorted({r["seed"] for r in results}),
    }
    header = sweep_header(all_meta, results, machine=False)
    frames = {
        **tables(results, meta.get("tuning_classes", [])),
        "cost": cost_frame(results, meta.get("tuning_classes", [])),
    }
    markdown, files = tables_with_failures(frames, header, meta.get("failed", []))
    return markdown, files, notes


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--sweep-id", required=True)
    p.add_argument("--name", required=True, help="file name stem under benchmarks/results")
    p.add_argument("--command", required=True, help="the command that made the sweep, quoted")
    p.add_argument("--note", action="append", default=[], help="a line for the header (repeatable)")
    p.add_argument("--add", action="append", default=[], metavar="SWEEP_ID", help="another sweep whose runs join")
    p.add_argument(
        "--add-where",
        nargs="+",
        default=[],
        metavar="KEY=N[,N]",
        help="keep only added runs with these seed= / class= / count= values",
    )
    a = p.parse_args(argv)
    sweep = store.Sweep(a.sweep_id)
    meta = sweep.results()
    done = meta.get("results", [])
    tables_md, frames, added = merged(meta, a.add, parse_where(a.add_where))  # today's table code, same numbers
    a.note += added
    header = [
        f"# {a.name}",
        "",
        f"- command: `{a.command}`",
        f"- exported {dt.datetime.now().isoformat(timespec='minutes')} from sweep `{a.sweep_id}` "
        f"({len(done)} runs, {len(meta.get('failed', []))} failed); {platform.machine()}, {os.cpu_count()} "
        f"CPU cores; executor {meta.get('executor')}",
        *[f"- {n}" for n in a.note],
        "",
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{a.name}.md").write_text("\n".join(header) + "\n" + tables_md)
    for key, frame in frames.items():
        store.write_csv(RESULTS / f"{a.name}-{key}.csv", frame)
    curve = RESULTS / f"{a.name}-curve.csv"
    if curve.exists():
        curve_png(pd.read_csv(curve), RESULTS / f"{a.name}-curve.png")
    print(f"written {RESULTS / a.name}.md and its CSVs", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
