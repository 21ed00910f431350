"""Cost benchmark: wall seconds of every stage, each method against the gold retrain, UMAP and page renders.

    python benchmarks/cost.py                       # digits, fresh run store (the gold model is really trained)
    python benchmarks/cost.py --dataset imagefolder --data-root ../shared/data/cifar10 --train-per-class 1000

Reports, from ONE run (same data, model and machine): the seconds of original, gold and every method,
the ratio method / gold retrain (`cost_ratio` for TMU), TMU's stage seconds; UMAP seconds at 1k and 10k
points of real penultimate activations (repeated with small noise to reach 10k); and the time AppTest
takes to render each dashboard page from the stored run. Targets are checked as ratios and printed, not
asserted. Writes benchmarks/results/cost-<dataset>.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tmu_core.jobs.embedding import fit_map

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def umap_seconds(emb: np.ndarray, n: int, seed: int = 0) -> float:
    """Seconds of the dashboard's map (embedding.fit_map) on n points made from the run's activations."""
    rng = np.random.default_rng(seed)
    reps = int(np.ceil(n / len(emb)))
    x = np.concatenate([emb] * reps)[:n]
    x = x + rng.normal(0, 0.01 * x.std(), x.shape).astype(np.float32)
    t = time.perf_counter()
    fit_map(x, seed)
    return time.perf_counter() - t


def page_seconds(run_id: str) -> dict[str, float]:
    """Seconds AppTest needs to run each page script with the run selected (second, warm render)."""
    from streamlit.testing.v1 import AppTest

    out = {}
    for page in sorted((ROOT / "pages").glob("*.py")):
        times = []
        for _ in range(2):  # the first render pays imports and cache fills; the second is what a user waits for
            at = AppTest.from_file(str(page), default_timeout=120)
            at.session_state["run_id"] = run_id
            t = time.perf_counter()
            at.run()
            times.append(time.perf_counter() - t)
            if at.exception:
                raise RuntimeError(f"{page.name}: {at.exception[0].value}")
        out[page.stem] = times[-1]
    return out


def main(argv=None) -> int:
    from tmu_core.cli import add_method_args, add_run_args, run_config_from_args
    from tmu_core.methods import METHODS

    p = argparse.ArgumentParser(
        allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_run_args(p)
    add_method_args(p)
    p.add_argument("--keep-store", action="store_true", help="use TMU_RUNS_DIR as is (cached models count as 0 s)")
    args = p.parse_args(argv)
    if not args.keep_store:
        os.environ["TMU_RUNS_DIR"] = tempfile.mkdtemp(prefix="tmu-cost-")
    from tmu_core import store
    from tmu_core.jobs.pipeline import execute, start

    cfg = run_config_from_args(args, METHODS.names())
    t = time.perf_counter()
    result = execute(start(cfg))
    wall = time.perf_counter() - t
    gold = result["models"]["gold"]["seconds"]
    lines = [
        f"# Cost benchmark: {cfg.data.dataset}, {cfg.train.model}",
        "",
        f"- command: `python benchmarks/cost.py {shlex.join(sys.argv[1:] if argv is None else argv)}`",
        f"- date: {dt.datetime.now().isoformat(timespec='minutes')}; machine {platform.machine()}, "
        f"{os.cpu_count()} CPU cores; device {result['device']}; run wall time {wall:.1f} s",
        "",
        "## One run: seconds and ratio to the gold retrain",
        "",
        "| model | seconds | / gold retrain |",
        "|---|---|---|",
    ]
    for name, m in result["models"].items():
        lines.append(f"| {name} | {m['seconds']:.2f} | {m['seconds'] / gold:.3f} |")
    lines += [
        "",
        f"TMU stages (s): {result['tmu']['stage_seconds']} (cost_ratio leaves out 'ablation': the audit's extra classifiers)",
        "",
        f"**cost_ratio (TMU / gold retrain) = {result['cost_ratio']:.3f}** (target <= 0.15: "
        f"{'met' if result['cost_ratio'] <= 0.15 else 'missed'})",
        "",
    ]
    emb = store.open_run(result["run_id"]).load_arrays("embeddings.npz")["emb_original"]
    # The first fits in a process include numba's compilation: at 1k points UMAP's own kernels, and at the
    # first fit over 4096 points pynndescent's neighbour search. Each is reported, then warm timings.
    cold1, cold10 = umap_seconds(emb, 1000), umap_seconds(emb, 10000)
    u1, u10 = umap_seconds(emb, 1000), umap_seconds(emb, 10000)
    lines += [
        "## UMAP (tmu_core.embedding.fit_map: umap-learn, seeded)",
        "",
        f"- activations of width {emb.shape[1]}; first fits in the process (numba compiling): 1k points "
        f"{cold1:.1f} s, then 10k points {cold10:.1f} s",
        f"- warm: 1k points {u1:.1f} s; 10k points {u10:.1f} s (target < 30 s: {'met' if u10 < 30 else 'missed'})",
        "",
    ]
    pages = page_seconds(result["run_id"])
    lines += [
        "## Dashboard pages rendered from the stored run (AppTest, warm second render)",
        "",
        "| page | seconds |",
        "|---|---|",
    ] + [f"| {k} | {v:.2f} |" for k, v in pages.items()]
    worst = max(pages.values())
    lines += ["", f"slowest page {worst:.2f} s (target < 2 s: {'met' if worst < 2 else 'missed'})", ""]
    md = "\n".join(lines)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"cost-{cfg.data.dataset}.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
