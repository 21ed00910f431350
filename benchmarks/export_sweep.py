"""Copy a finished sweep's tables into benchmarks/results under a header that says how they were made.

    python benchmarks/export_sweep.py --sweep-id SWEEP_ID --name digits-small_cnn-all \
        --command "python -m tmu_core sweep --dataset digits --classes all --seeds 0 1 2" [--note "..."]

Reads the sweep from the run store (TMU_RUNS_DIR), writes <name>.md (header + the sweep's own tables.md) and
<name>-<table>.csv for each table. When the sweep has several forget counts it also draws the
forgetting-more-data curve (paper Fig. 3) with the dashboard's own chart, |Δ| and per-sample agreement
against |D_f|, and saves it as <name>-curve.png through the headless Chromium the browser tests use.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tmu_core import store  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def curve_png(curve: pd.DataFrame, out: Path) -> None:
    """Both curve charts side by side, as a PNG (plotly inline, so no network is needed)."""
    from playwright.sync_api import sync_playwright

    from ui import charts

    figs = [charts.forget_curve_figure(curve, m) for m in ("|Δ|", "agreement")]
    html = "".join(f.to_html(full_html=False, include_plotlyjs=(i == 0), default_width="620px", default_height="420px")
                   for i, f in enumerate(figs))
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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sweep-id", required=True)
    p.add_argument("--name", required=True, help="file name stem under benchmarks/results")
    p.add_argument("--command", required=True, help="the command that made the sweep, quoted")
    p.add_argument("--note", action="append", default=[], help="a line for the header (repeatable)")
    a = p.parse_args(argv)
    sweep = store.Sweep(a.sweep_id)
    tables_md = (sweep.dir / "tables.md").read_text()
    meta = sweep.results()
    done = meta.get("results", [])
    header = [f"# {a.name}", "", f"- command: `{a.command}`",
              f"- exported {dt.datetime.now().isoformat(timespec='minutes')} from sweep `{a.sweep_id}` "
              f"({len(done)} runs, {len(meta.get('failed', []))} failed); {platform.machine()}, {os.cpu_count()} "
              f"CPU cores; executor {meta.get('executor')}", *[f"- {n}" for n in a.note], ""]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{a.name}.md").write_text("\n".join(header) + "\n" + tables_md)
    for csv in sorted(sweep.dir.glob("*.csv")):
        shutil.copyfile(csv, RESULTS / f"{a.name}-{csv.stem}.csv")
    if (sweep.dir / "curve.csv").exists():
        curve_png(pd.read_csv(sweep.dir / "curve.csv"), RESULTS / f"{a.name}-curve.png")
    print(f"written {RESULTS / a.name}.md and its CSVs", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
