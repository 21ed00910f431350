"""How far one method's result moves when it is simply run again: M_o, D_f and gold fixed, only the method's seed
(and, with --threads, torch's thread count) changes. This is the method's own rerun spread, the second source of
the verdict's noise floor beside gold's seed spread (EVALUATION.md §5).

    OMP_NUM_THREADS=1 python benchmarks/rerun_noise.py --dataset digits --classes 1,3,5,8 --seeds 0 1 \
        --method-seeds 0 1 2

For each class and run seed the original and gold models are trained once (or read from the model cache); then
every method (the run's methods, controls after TMU) runs once per method seed with the same M_o and gold. Per
(method, class, seed) the table gives the range (max − min) over method seeds of A_f in points and of |Δ|, and
the SD of A_f; the summary gives, per method, the mean and the largest range over the (class, seed) cells. Writes
benchmarks/results/rerun-noise-<dataset><-tag>.md and .csv, and with --package also
tmu_core/evaluate/rerun_noise.json, the per-method spread the verdict reads as each method's rerun floor.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from common import provenance, script_parser

from tmu_core import store
from tmu_core.cli import run_config_from_args
from tmu_core.data import class_ref
from tmu_core.evaluate.evaluator import Evaluator
from tmu_core.evaluate.paper_tables import md_table
from tmu_core.jobs.pipeline import validate
from tmu_core.jobs.sweep import parse_classes
from tmu_core.methods import METHODS, REFERENCES, ordered, run_method_config, run_order
from tmu_core.references import original_and_gold
from tmu_core.train import pick_device, seed_everything
from tmu_core.unlearn.loop import UnlearnTask

RESULTS = Path(__file__).resolve().parent / "results"
PACKAGE_FILE = Path(__file__).resolve().parent.parent / "tmu_core" / "evaluate" / "rerun_noise.json"


def run_cell(cfg, cls, seed, method_seeds, threads, log) -> list[dict]:
    """Every method once per (method seed, thread count) on one class and run seed, M_o and gold fixed."""

    cfg = cfg.model_copy(
        update={"seed": seed, "forget": cfg.forget.model_copy(update={"forget_class": class_ref(cls)})}
    )
    data, forget = validate(cfg)
    device = pick_device(cfg.device)
    original, gold = original_and_gold(data, cfg.data, forget, cfg.train, cfg.seed, device)
    ev = Evaluator(data, forget, device, cfg.seed)
    gold_logits = ev.logits(gold.model)
    rows = []
    for n_threads in threads:
        torch.set_num_threads(n_threads)
        for ms in method_seeds:
            earlier = {}
            for name in run_order(cfg.methods):
                entry = METHODS.get(name)
                task = UnlearnTask(
                    data,
                    cfg.data,
                    cfg.train,
                    forget,
                    original.model,
                    ms,
                    None,
                    gold=gold.model if entry.uses_gold else None,
                    earlier=dict(earlier),
                )
                seed_everything(ms)
                t = time.perf_counter()
                result = entry.run(task, run_method_config(name, cfg), device, None)
                seconds = time.perf_counter() - t
                if result.report is not None:
                    earlier[name] = result.report
                rep = ev.report(ev.logits(result.model), gold_logits)
                rows.append(
                    {
                        "method": name,
                        "class": cls,
                        "seed": seed,
                        "method seed": ms,
                        "threads": n_threads,
                        "A_f": rep["acc_forget"],
                        "|Δ|": rep["abs_delta"],
                        "agreement": rep["sample_agreement"],
                        "act dist": rep["activation_distance"],
                        "A_test": rep["acc_test"],
                        "seconds": seconds,
                    }
                )
                log(
                    f"class {cls} seed {seed} method seed {ms} threads {n_threads} {name}: A_f {rep['acc_forget']:.1f} "
                    f"|Δ| {rep['abs_delta']:.1f} ({seconds:.1f} s)"
                )
    return rows


def spreads(df: pd.DataFrame) -> pd.DataFrame:
    """Per (method, class, seed): the range over reruns of A_f, |Δ|, agreement, and the SD of A_f."""
    g = df.groupby(["method", "class", "seed"], sort=False)
    return pd.DataFrame(
        {
            "reruns": g.size(),
            "A_f mean": g["A_f"].mean(),
            "A_f range": g["A_f"].agg(np.ptp),
            "A_f SD": g["A_f"].std(ddof=1),
            "|Δ| range": g["|Δ|"].agg(np.ptp),
            "agreement range": g["agreement"].agg(np.ptp),
            "act dist range": g["act dist"].agg(np.ptp),
        }
    ).reset_index()


def summary(cells: pd.DataFrame) -> pd.DataFrame:
    """Per method: mean and largest A_f range over the (class, seed) cells, mean SD, mean agreement range."""
    g = cells.groupby("method", sort=False)
    return pd.DataFrame(
        {
            "cells": g.size(),
            "mean A_f range (points)": g["A_f range"].mean(),
            "max A_f range (points)": g["A_f range"].max(),
            "mean A_f SD": g["A_f SD"].mean(),
            "mean agreement range": g["agreement range"].mean(),
            "mean act dist range": g["act dist range"].mean(),
        }
    ).reset_index()


def package_entry(dataset: str, summ: pd.DataFrame, source: str, forget_count: int) -> dict:
    """The verdict's per-method rerun spread for `dataset`: the mean A_f range in points (the same statistic as
    gold's floor, the range of a few seeds), with the file that measured it."""
    rows = summ.to_dict("records")
    return {
        "source": source,
        "forget_count": forget_count,
        "range_points": {r["method"]: round(float(r["mean A_f range (points)"]), 2) for r in rows},
        "agreement_range_points": {r["method"]: round(float(r["mean agreement range"]), 2) for r in rows},
    }


def main(argv=None) -> int:
    p = script_parser(__doc__, classes="1,3,5,8")
    p.add_argument("--methods", nargs="+", help="subset of methods (default: all; a control needs TMU before it)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="run seeds (each: its own D_f, M_o and gold)")
    p.add_argument("--method-seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the method's reruns")
    p.add_argument("--threads", type=int, nargs="+", default=[1], help="torch thread counts to rerun with")
    p.add_argument(
        "--package", action="store_true", help="also write the summary into tmu_core/evaluate/rerun_noise.json"
    )
    p.add_argument(
        "--from-csv",
        type=Path,
        metavar="CSV",
        help="rebuild the summary (and with --package the JSON) from this script's earlier CSV instead of running; "
        "the results files are left as they are",
    )
    args = p.parse_args(argv)
    methods = tuple(m for m in (args.methods or ordered(METHODS.names())) if m not in REFERENCES)
    cfg = run_config_from_args(args, methods)
    classes = parse_classes(args.classes, cfg)
    started = time.perf_counter()

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    if args.from_csv:
        df = pd.read_csv(args.from_csv)
    else:
        df = pd.DataFrame(
            [
                row
                for seed in args.seeds
                for c in classes
                for row in run_cell(cfg, c, seed, args.method_seeds, args.threads, log)
            ]
        )
    cells = spreads(df)
    summ = summary(cells)
    name = f"rerun-noise-{cfg.data.dataset}{('-' + args.tag) if args.tag else ''}"
    md = "\n".join(
        [
            f"# Method rerun spread: {cfg.data.dataset}, {cfg.train.model}",
            "",
            *provenance("rerun_noise.py", argv, started, pick_device(cfg.device)),
            f"- data: {cfg.data}; forget {cfg.forget.forget_count} of each class in {classes}; run seeds {args.seeds}; "
            f"method seeds {args.method_seeds}; torch threads {args.threads}",
            "- M_o, D_f and gold are fixed within a (class, seed) cell; only the method's seed (and thread count) "
            "changes. Range = max − min over the reruns, in points of A_f (one point = one image at |D_f| = 100).",
            "",
            "### Per method: over the (class, seed) cells",
            "",
            md_table(summ),
            "",
            "### Per (method, class, seed) cell",
            "",
            md_table(cells),
            "",
            "### Every rerun",
            "",
            md_table(df),
            "",
        ]
    )
    if not args.from_csv:  # a rebuild leaves the measured file and its provenance as they are
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"{name}.md").write_text(md)
        store.write_csv(RESULTS / f"{name}.csv", df)
    if args.package:
        current = json.loads(PACKAGE_FILE.read_text()) if PACKAGE_FILE.exists() else {}
        current[cfg.data.dataset] = package_entry(
            cfg.data.dataset, summ, f"benchmarks/results/{name}.md", cfg.forget.forget_count
        )
        PACKAGE_FILE.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
    print(md)
    log(f"written {RESULTS / (name + '.md')} and .csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
